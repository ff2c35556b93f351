package dpi

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// Tests of the TCP reassembly policy in docs/dpi.md: each builds a capture
// with pcapgen, runs it through an engine and compares every decoded
// message and the reassembly counters with what the policy says.

// msg is what the tests compare of a decoded message.
type msg struct {
	Frame     uint64
	Dir       modbus.Direction
	TID       uint16
	Unit      uint8
	FC        uint8
	Malformed modbus.Reason
	Outcome   modbus.Outcome
	Flow      uint64 // Flow.ID
}

func (m msg) String() string {
	dir := "req"
	if m.Dir == modbus.Response {
		dir = "rsp"
	}
	return fmt.Sprintf("{frame %d %s tid %d unit %d fc %d malformed %v outcome %d flow %d}",
		m.Frame, dir, m.TID, m.Unit, m.FC, m.Malformed, m.Outcome, m.Flow)
}

// recorder keeps every message it is given.
type recorder struct {
	msgs  []msg
	pdus  [][]byte // the PDU of each message
	flows []Flow   // the flow of each message
}

func (r *recorder) Message(f *Flow, _ Side, v any) {
	m, ok := v.(*modbus.Message)
	if !ok {
		return
	}
	r.msgs = append(r.msgs, msg{m.Frame, m.Dir, m.TID, m.Unit, m.FC, m.Malformed, m.Outcome, f.ID})
	r.pdus = append(r.pdus, slices.Clone(m.PDU))
	r.flows = append(r.flows, *f)
}

// Shorthands for expected messages; the flow id is 1 unless set.
func req(frame int, tid uint16, fc uint8) msg {
	return msg{Frame: uint64(frame), Dir: modbus.Request, TID: tid, Unit: 1, FC: fc, Flow: 1}
}

func rsp(frame int, tid uint16, fc uint8) msg {
	m := req(frame, tid, fc)
	m.Dir = modbus.Response
	m.Outcome = modbus.OutcomeOK
	return m
}

func truncated(frame int, dir modbus.Direction, tid uint16, fc uint8) msg {
	return msg{Frame: uint64(frame), Dir: dir, TID: tid, Unit: 1, FC: fc, Malformed: modbus.Truncated, Flow: 1}
}

func unanswered(frame int, tid uint16, fc uint8) msg {
	m := req(frame, tid, fc)
	m.Outcome = modbus.OutcomeUnanswered
	return m
}

func onFlow(id uint64, ms ...msg) []msg {
	out := make([]msg, len(ms))
	for i, m := range ms {
		m.Flow = id
		out[i] = m
	}
	return out
}

// ADUs used throughout: a 12-byte FC 3 request and its 17-byte response.
func readReq(tid uint16) []byte { return pcapgen.MBAP(tid, 1, pcapgen.ReadHoldingRegisters(0, 4)) }
func readRsp(tid uint16) []byte {
	return pcapgen.MBAP(tid, 1, pcapgen.ReadHoldingRegistersResponse(1, 2, 3, 4))
}

// tcpCounters are the counters the reassembly tests compare exactly.
type tcpCounters struct {
	FlowsCreated, FlowsClosed, FlowsActive                  uint64
	MidStream, OutOfOrder, Retransmits, Overlaps, Conflicts uint64
	Gaps, GapBytes, BufferDrops, Buffered                   uint64
}

func tcpCountersOf(c Counters) tcpCounters {
	return tcpCounters{
		FlowsCreated: c.FlowsCreated, FlowsClosed: c.FlowsClosed, FlowsActive: c.FlowsActive,
		MidStream: c.TCPMidStream, OutOfOrder: c.TCPOutOfOrder, Retransmits: c.TCPRetransmits,
		Overlaps: c.TCPOverlaps, Conflicts: c.TCPConflicts,
		Gaps: c.TCPGaps, GapBytes: c.TCPGapBytes, BufferDrops: c.TCPBufferDrops, Buffered: c.BufferedBytes,
	}
}

// script wraps pcapgen calls so that a test can write them without error
// plumbing: any error fails the test.
type script struct {
	t testing.TB
	w *pcapgen.Writer
}

func (s script) conn(client, server pcapgen.Endpoint, clientISN, serverISN uint32) sconn {
	c, err := pcapgen.NewTCPConn(s.w, client, server, clientISN, serverISN)
	if err != nil {
		s.t.Fatal(err)
	}
	return sconn{s.t, c}
}

type sconn struct {
	t testing.TB
	*pcapgen.TCPConn
}

func (c sconn) ok(frames []int, err error) []int {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
	return frames
}

func (c sconn) ok1(frame int, err error) int {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
	return frame
}

func (c sconn) handshake() []int { return c.ok(c.Handshake()) }
func (c sconn) client(p []byte, o ...pcapgen.SendOption) []int {
	return c.ok(c.Client(p, o...))
}
func (c sconn) server(p []byte, o ...pcapgen.SendOption) []int {
	return c.ok(c.Server(p, o...))
}
func (c sconn) sendAt(side pcapgen.Side, seq uint32, p []byte) int {
	return c.ok1(c.SendAt(side, seq, p))
}
func (c sconn) rst(side pcapgen.Side) int { return c.ok1(c.Rst(side)) }
func (c sconn) close() []int              { return c.ok(c.Close()) }

// capture runs write against a fresh Writer and returns the packets.
func capture(t testing.TB, opts pcapgen.Options, write func(s script)) (layers.LinkType, []packet) {
	t.Helper()
	return generate(t, opts, func(w *pcapgen.Writer) error {
		write(script{t, w})
		return nil
	})
}

// replay runs pkts through an engine with cfg and returns it with what it
// reported. flush ends the capture with Flush.
func replay(t testing.TB, cfg Config, lt layers.LinkType, pkts []packet, flush bool) (*Engine, *recorder) {
	t.Helper()
	var r recorder
	e := run(t, cfg, &r, lt, pkts)
	if flush {
		e.Flush()
	}
	return e, &r
}

func checkMsgs(t testing.TB, got, want []msg) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("messages differ")
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i].String()
		}
		if i < len(want) {
			w = want[i].String()
		}
		mark := "  "
		if g != w {
			mark = "!="
		}
		t.Logf("%2d %s got %-80s want %s", i, mark, g, w)
	}
}

func checkCounters(t testing.TB, e *Engine, want tcpCounters) {
	t.Helper()
	if got := tcpCountersOf(e.Counters()); got != want {
		t.Errorf("counters\n got %+v\nwant %+v", got, want)
	}
}

// drop returns pkts without the frames given (1-based).
func drop(pkts []packet, frames ...int) []packet {
	var out []packet
	for i, p := range pkts {
		if !slices.Contains(frames, i+1) {
			out = append(out, p)
		}
	}
	return out
}

func TestOverlapConflictDelivered(t *testing.T) {
	// The first copy of the overlapping bytes was delivered already: the
	// later copy contributes only its new bytes, whatever it says about the
	// old ones.
	adu := readReq(1) // 00 01 00 00 00 06 01 03 00 00 00 04
	evil := slices.Clone(adu)
	evil[6], evil[7] = 9, pcapgen.FCWriteSingleRegister // unit 9, FC 6
	var f []int
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 100, 200)
		c.handshake()
		base := c.NextSeq(pcapgen.FromClient)
		f = append(f, c.sendAt(pcapgen.FromClient, base, adu[:8]))       // 4: first copy of 6..7
		f = append(f, c.sendAt(pcapgen.FromClient, base+6, evil[6:]))    // 5: overlaps 2 bytes, conflicting
		f = append(f, c.sendAt(pcapgen.FromClient, base, evil[:12]))     // 6: a whole different copy
		f = append(f, c.sendAt(pcapgen.FromClient, base+12, readReq(2))) // 7: the next request
	})
	e, r := replay(t, Config{}, lt, pkts, false)
	checkMsgs(t, r.msgs, []msg{
		req(f[1], 1, pcapgen.FCReadHoldingRegisters),
		req(f[3], 2, pcapgen.FCReadHoldingRegisters),
	})
	if len(r.pdus) > 0 && !slices.Equal(r.pdus[0], adu[7:]) {
		t.Errorf("PDU % x, want the first copy % x", r.pdus[0], adu[7:])
	}
	// Both later copies differ from the delivered bytes they repeat,
	// which the flow's history still holds.
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsActive: 1, Overlaps: 1, Retransmits: 1, Conflicts: 2})
}

func TestOverlapConflictHeld(t *testing.T) {
	// The first copy of the overlapping bytes is held out of order: it wins
	// over every later copy, whether that copy fills the hole or is held
	// too. The later copies differ from the first in every byte they
	// repeat, and agree with it on the bytes they add.
	adu := readReq(1)
	evil := slices.Clone(adu)
	for i := range evil {
		evil[i] ^= 0xA5
	}
	type seg struct {
		off, end int
		evil     bool
	}
	tests := []struct {
		name string
		segs []seg // sent in this order; the first copy of any byte is the good one
		want tcpCounters
	}{
		{
			// The held first copy is overlapped by the segment that fills
			// the hole: the held bytes win over the in-order copy.
			name: "in-order copy overlaps held",
			segs: []seg{{6, 12, false}, {0, 12, true}},
			want: tcpCounters{OutOfOrder: 1, Overlaps: 1, Conflicts: 1},
		},
		{
			name: "in-order copy overlaps held and goes beyond",
			segs: []seg{{6, 8, false}, {0, 12, true}},
			want: tcpCounters{OutOfOrder: 1, Overlaps: 1, Conflicts: 1},
		},
		{
			// Two held copies, the later one starting earlier.
			name: "held copy starting earlier",
			segs: []seg{{6, 12, false}, {2, 12, true}, {0, 2, false}},
			want: tcpCounters{OutOfOrder: 2, Overlaps: 1, Conflicts: 1},
		},
		{
			// Two held copies with the same start, the later one longer.
			name: "held copy with the same start, longer",
			segs: []seg{{6, 8, false}, {6, 12, true}, {0, 6, false}},
			want: tcpCounters{OutOfOrder: 2, Overlaps: 1, Conflicts: 1},
		},
		{
			// The later copy lies wholly inside a held one.
			name: "held copy covers the later one",
			segs: []seg{{4, 12, false}, {6, 8, true}, {0, 4, false}},
			want: tcpCounters{OutOfOrder: 1, Retransmits: 1, Conflicts: 1},
		},
		{
			// Identical bytes overlapping are no conflict.
			name: "identical overlap",
			segs: []seg{{6, 12, false}, {2, 10, false}, {0, 2, false}},
			want: tcpCounters{OutOfOrder: 2, Overlaps: 1},
		},
		{
			// A later copy spanning two held segments and the hole between
			// them keeps only the hole's bytes.
			name: "spans two held segments",
			segs: []seg{{4, 6, false}, {8, 10, false}, {2, 12, true}, {0, 2, false}},
			want: tcpCounters{OutOfOrder: 3, Overlaps: 1, Conflicts: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := slices.Clone(adu)
			sent := make([]bool, len(adu))
			var last int
			lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
				c := s.conn(hmi, plc, 100, 200)
				c.handshake()
				base := c.NextSeq(pcapgen.FromClient)
				for _, sg := range tt.segs {
					b := good
					if sg.evil {
						b = slices.Clone(good)
						for i := sg.off; i < sg.end; i++ {
							if sent[i] {
								b[i] = evil[i]
							}
						}
					}
					for i := sg.off; i < sg.end; i++ {
						sent[i] = true
					}
					last = c.sendAt(pcapgen.FromClient, base+uint32(sg.off), b[sg.off:sg.end])
				}
			})
			e, r := replay(t, Config{}, lt, pkts, false)
			checkMsgs(t, r.msgs, []msg{req(last, 1, pcapgen.FCReadHoldingRegisters)})
			if len(r.pdus) == 1 && !slices.Equal(r.pdus[0], adu[7:]) {
				t.Errorf("PDU % x, want the first copy % x", r.pdus[0], adu[7:])
			}
			want := tt.want
			want.FlowsCreated, want.FlowsActive = 1, 1
			checkCounters(t, e, want)
		})
	}
}

func TestSequenceWrap(t *testing.T) {
	// Both ISNs lie just below 2^32 so that the streams wrap inside an
	// ADU, and held out-of-order segments straddle the wrap.
	tests := []struct {
		name    string
		cISN    uint32
		sISN    uint32
		opts    []pcapgen.SendOption
		ooo     uint64 // out-of-order segments per ADU sent with opts
		overlap uint64
	}{
		{name: "in order", cISN: 0xFFFFFFF0, sISN: 0xFFFFFFF8, opts: []pcapgen.SendOption{pcapgen.Split(3)}},
		{name: "reversed", cISN: 0xFFFFFFF0, sISN: 0xFFFFFFF8, opts: []pcapgen.SendOption{pcapgen.Split(3), pcapgen.Order(2, 1, 0)}, ooo: 2},
		{name: "reversed overlapping", cISN: 0xFFFFFFFA, sISN: 0xFFFFFFF0, opts: []pcapgen.SendOption{pcapgen.Split(3), pcapgen.Order(2, 0, 1), pcapgen.Overlap(2)}, ooo: 1, overlap: 1},
		{name: "wrap at an ADU boundary", cISN: 0xFFFFFFFF - 12, sISN: 0xFFFFFFFF - 17, opts: []pcapgen.SendOption{pcapgen.Split(2), pcapgen.Order(1, 0)}, ooo: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []msg
			lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
				c := s.conn(hmi, plc, tt.cISN, tt.sISN)
				c.handshake()
				for tid := uint16(1); tid <= 3; tid++ {
					f := c.client(readReq(tid), tt.opts...)
					want = append(want, req(f[len(f)-1], tid, pcapgen.FCReadHoldingRegisters))
					f = c.server(readRsp(tid), tt.opts...)
					want = append(want, rsp(f[len(f)-1], tid, pcapgen.FCReadHoldingRegisters))
				}
			})
			e, r := replay(t, Config{}, lt, pkts, false)
			checkMsgs(t, r.msgs, want)
			checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsActive: 1, OutOfOrder: 6 * tt.ooo, Overlaps: 6 * tt.overlap})
		})
	}
}

func TestSequenceWrapGap(t *testing.T) {
	// A hole that the wrap runs through is skipped with its exact size.
	var want []msg
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 0xFFFFFFF0, 7)
		c.handshake()
		c.Skip(pcapgen.FromClient, 30) // 0xFFFFFFF1 .. 0x0000000E never seen
		c.client(readReq(1))
		c.client(readReq(2))
		f := c.server(readRsp(1))[0] // acknowledges the hole: skipped at once
		want = []msg{
			req(f, 1, pcapgen.FCReadHoldingRegisters),
			req(f, 2, pcapgen.FCReadHoldingRegisters),
			rsp(f, 1, pcapgen.FCReadHoldingRegisters),
			unanswered(f, 2, pcapgen.FCReadHoldingRegisters), // at Flush
		}
	})
	e, r := replay(t, Config{}, lt, pkts, true)
	checkMsgs(t, r.msgs, want)
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, OutOfOrder: 2, Gaps: 1, GapBytes: 30})
}

func TestConnectionReuse(t *testing.T) {
	// A second connection on the same 4-tuple after the first ended, or
	// opened with a SYN of another ISN while the first is still open, is a
	// new flow: its own id, its own pairing, no bytes carried over.
	const fc = pcapgen.FCReadHoldingRegisters
	tests := []struct {
		name string
		end  func(c sconn) int // ends the first connection; returns the frame that closed it, or 0
		want tcpCounters
	}{
		{
			name: "after FIN",
			end:  func(c sconn) int { return c.close()[1] },
			want: tcpCounters{FlowsCreated: 2, FlowsClosed: 2},
		},
		{
			name: "after RST",
			end:  func(c sconn) int { return c.rst(pcapgen.FromServer) },
			want: tcpCounters{FlowsCreated: 2, FlowsClosed: 2},
		},
		{
			name: "SYN with another ISN",
			end:  func(sconn) int { return 0 },
			want: tcpCounters{FlowsCreated: 2, FlowsClosed: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []msg
			lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
				c := s.conn(hmi, plc, 1000, 2000)
				c.handshake()
				f1 := c.client(readReq(1))[0]
				f2 := c.server(readRsp(1))[0]
				// tid 2 is never answered, and the client leaves half an ADU.
				f3 := c.client(readReq(2))[0]
				c.client(readReq(3)[:9])
				closed := tt.end(c)
				c2 := s.conn(hmi, plc, 5000, 6000)
				syn := c2.handshake()[0]
				if closed == 0 {
					closed = syn
				}
				f4 := c2.client(readReq(2))[0] // the same tid as the unanswered one
				f5 := c2.server(readRsp(2))[0]
				c2.close()
				want = []msg{
					req(f1, 1, fc), rsp(f2, 1, fc), req(f3, 2, fc),
					truncated(closed, modbus.Request, 3, fc), unanswered(f3, 2, fc),
				}
				want = append(want, onFlow(2, req(f4, 2, fc), rsp(f5, 2, fc))...)
			})
			e, r := replay(t, Config{}, lt, pkts, false)
			checkMsgs(t, r.msgs, want)
			checkCounters(t, e, tt.want)
			if n := len(r.flows); n > 0 && r.flows[n-1].MidStream {
				t.Errorf("second connection marked mid-stream")
			}
		})
	}
}

func TestSynAckWithAnotherISN(t *testing.T) {
	// The server's side of a new connection seen first (its SYN-ACK, the
	// client's SYN missed) on an established flow also starts a new one.
	const fc = pcapgen.FCReadHoldingRegisters
	var (
		want []msg
		syn  int
	)
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 1000, 2000)
		c.handshake()
		f1 := c.client(readReq(1))[0]
		c2 := s.conn(hmi, plc, 5000, 6000)
		hs := c2.handshake()
		f2 := c2.client(readReq(7), pcapgen.Split(2), pcapgen.Order(1, 0))
		f3 := c2.server(readRsp(7))[0]
		// The client's SYN is dropped below, so the frames after it
		// move down by one.
		want = []msg{req(f1, 1, fc), unanswered(f1, 1, fc)}
		want = append(want, onFlow(2, req(f2[1]-1, 7, fc), rsp(f3-1, 7, fc))...)
		syn = hs[0]
	})
	pkts = drop(pkts, syn)
	e, r := replay(t, Config{}, lt, pkts, false)
	checkMsgs(t, r.msgs, want)
	checkCounters(t, e, tcpCounters{FlowsCreated: 2, FlowsClosed: 1, FlowsActive: 1, OutOfOrder: 1})
}

func TestRstInSplitADU(t *testing.T) {
	// An RST while both directions hold part of an ADU: the parts are
	// reported as truncated (the client's first), the requests still
	// waiting as unanswered, and nothing stays buffered.
	const fc = pcapgen.FCReadHoldingRegisters
	for _, from := range []pcapgen.Side{pcapgen.FromClient, pcapgen.FromServer} {
		t.Run(from.String(), func(t *testing.T) {
			var want []msg
			lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
				c := s.conn(hmi, plc, 100, 200)
				c.handshake()
				f1 := c.client(readReq(1))[0]
				f2 := c.client(readReq(2))[0]
				c.server(readRsp(1)[:10]) // the response to 1, cut by the RST
				c.client(readReq(3)[:8])  // a request, cut by the RST
				c.Skip(pcapgen.FromClient, 10)
				c.client(readReq(4)[10:]) // held behind the hole
				rst := c.rst(from)
				// The hole is given up on (when the server resets, because
				// its ACK covers the hole): the cut request is reported,
				// then the two held bytes, which start like a header.
				tail := truncated(rst, modbus.Request, 4, 0)
				tail.Unit = 0
				want = []msg{
					req(f1, 1, fc), req(f2, 2, fc),
					truncated(rst, modbus.Request, 3, fc),
					tail,
					truncated(rst, modbus.Response, 1, fc),
					unanswered(f1, 1, fc), unanswered(f2, 2, fc),
				}
			})
			e, r := replay(t, Config{}, lt, pkts, false)
			checkMsgs(t, r.msgs, want)
			checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsClosed: 1, OutOfOrder: 1, Gaps: 1, GapBytes: 10})
			if c := e.Counters(); c.BufferedPeak == 0 {
				t.Errorf("nothing was ever buffered")
			}
		})
	}
}

func TestFinWithHeldSegments(t *testing.T) {
	// Segments held behind a hole nobody acknowledged are decoded when the
	// connection closes, after a gap; nothing stays buffered.
	const fc = pcapgen.FCReadHoldingRegisters
	var want []msg
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 100, 200)
		c.handshake()
		f1 := c.client(readReq(1))[0]
		next := c.NextSeq(pcapgen.FromClient)
		// Sent at explicit sequence numbers, these do not advance the
		// connection, so the server's ACKs never cover the hole.
		c.sendAt(pcapgen.FromClient, next+3, readReq(2))
		c.sendAt(pcapgen.FromClient, next+15, readReq(3))
		f2 := c.server(readRsp(1))[0]
		fins := c.close()
		want = []msg{
			req(f1, 1, fc), rsp(f2, 1, fc),
			req(fins[1], 2, fc), req(fins[1], 3, fc),
			unanswered(fins[1], 2, fc), unanswered(fins[1], 3, fc),
		}
	})
	e, r := replay(t, Config{}, lt, pkts, false)
	checkMsgs(t, r.msgs, want)
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsClosed: 1, OutOfOrder: 2, Gaps: 1, GapBytes: 3})
	if c := e.Counters(); c.BufferedPeak != 24 {
		t.Errorf("buffered peak %d, want 24", c.BufferedPeak)
	}
}

func TestLoneSynAck(t *testing.T) {
	// The client's SYN was missed: the SYN-ACK still starts the
	// connection, with the client's next sequence number from its ACK, so
	// the client's first segment arriving out of order is held rather than
	// taken as a mid-stream start.
	const fc = pcapgen.FCReadHoldingRegisters
	var want []msg
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 0xFFFFFFFF, 77) // data starts at 0
		c.handshake()
		f1 := c.client(readReq(1), pcapgen.Split(2), pcapgen.Order(1, 0))
		f2 := c.server(readRsp(1))[0]
		want = []msg{req(f1[1]-1, 1, fc), rsp(f2-1, 1, fc)} // after the SYN is dropped
	})
	e, r := replay(t, Config{}, lt, drop(pkts, 1), false)
	checkMsgs(t, r.msgs, want)
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsActive: 1, OutOfOrder: 1})
	if len(r.flows) > 0 && r.flows[0].MidStream {
		t.Errorf("flow started by a SYN-ACK marked mid-stream")
	}
}

func TestGapTimeout(t *testing.T) {
	// A hole nobody acknowledges is given up on once it has been open for
	// GapTimeout of packet time, when the next segment arrives.
	const fc = pcapgen.FCReadHoldingRegisters
	var want []msg
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 100, 200)
		c.handshake()
		c.Skip(pcapgen.FromClient, 5)
		c.client(readReq(1))
		s.w.Advance(300 * time.Millisecond)
		c.client(readReq(2)) // 0.3 s: still waiting
		s.w.Advance(300 * time.Millisecond)
		f := c.client(readReq(3))[0] // 0.6 s: the hole is skipped
		want = []msg{req(f, 1, fc), req(f, 2, fc), req(f, 3, fc)}
	})
	e, r := replay(t, Config{GapTimeout: 500 * time.Millisecond}, lt, pkts, false)
	checkMsgs(t, r.msgs, want)
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsActive: 1, OutOfOrder: 3, Gaps: 1, GapBytes: 5})

	// With the default of 1 s, all three are still held.
	e, r = replay(t, Config{}, lt, pkts, false)
	checkMsgs(t, r.msgs, nil)
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsActive: 1, OutOfOrder: 3, Buffered: 36})
}

func TestMaxOutOfOrder(t *testing.T) {
	// The hole is given up on when a segment arrives while MaxOutOfOrder
	// segments wait behind it.
	const fc = pcapgen.FCReadHoldingRegisters
	var want []msg
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 100, 200)
		c.handshake()
		c.Skip(pcapgen.FromClient, 5)
		for tid := uint16(1); tid <= 3; tid++ {
			c.client(readReq(tid))
		}
		f := c.client(readReq(4))[0]
		want = []msg{req(f, 1, fc), req(f, 2, fc), req(f, 3, fc), req(f, 4, fc)}
	})
	e, r := replay(t, Config{MaxOutOfOrder: 3}, lt, pkts, false)
	checkMsgs(t, r.msgs, want)
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsActive: 1, OutOfOrder: 4, Gaps: 1, GapBytes: 5})
	if c := e.Counters(); c.BufferedPeak != 36 {
		t.Errorf("buffered peak %d, want 36", c.BufferedPeak)
	}
}

// cut shortens frame (1-based) as a snap length would: its last n bytes
// are not captured, while the IP header still gives the full length.
func cut(pkts []packet, frame, n int) {
	p := &pkts[frame-1]
	p.wire = len(p.data)
	p.data = p.data[:len(p.data)-n]
}

func TestSnaplenCut(t *testing.T) {
	// A segment cut by the snap length delivers the part captured; the
	// rest is a gap. The cut ADU is reported as truncated and the decoder
	// resyncs on the next header.
	const fc = pcapgen.FCReadHoldingRegisters
	big := pcapgen.MBAP(1, 1, pcapgen.WriteMultipleRegisters(0, make([]uint16, 100)...)) // 213 bytes
	tests := []struct {
		name  string
		write func(c sconn) (cutFrames []int, missing int, want []msg) // the frames to cut and by how much
		flush bool
		want  tcpCounters
	}{
		{
			name: "in order",
			write: func(c sconn) ([]int, int, []msg) {
				f1 := c.client(big)[0]
				f2 := c.client(readReq(2))[0]
				return []int{f1}, 193, []msg{truncated(f1, modbus.Request, 1, pcapgen.FCWriteMultipleRegisters), req(f2, 2, fc)}
			},
			want: tcpCounters{FlowsCreated: 1, FlowsActive: 1, Gaps: 1, GapBytes: 193},
		},
		{
			// Cut before its first payload byte: all of it is a gap.
			name: "no payload captured",
			write: func(c sconn) ([]int, int, []msg) {
				f1 := c.client(big)[0]
				f2 := c.client(readReq(2))[0]
				return []int{f1}, 213, []msg{req(f2, 2, fc)}
			},
			want: tcpCounters{FlowsCreated: 1, FlowsActive: 1, Gaps: 1, GapBytes: 213},
		},
		{
			// A retransmission of the cut segment is a retransmission,
			// not a buffer drop.
			name: "retransmitted",
			write: func(c sconn) ([]int, int, []msg) {
				f1 := c.client(big)[0]
				f2 := c.ok1(c.Retransmit(f1))
				f3 := c.client(readReq(2))[0]
				return []int{f1, f2}, 193, []msg{truncated(f1, modbus.Request, 1, pcapgen.FCWriteMultipleRegisters), req(f3, 2, fc)}
			},
			want: tcpCounters{FlowsCreated: 1, FlowsActive: 1, Retransmits: 1, Gaps: 1, GapBytes: 193},
		},
		{
			// The cut segment arrives ahead of a hole: its captured part is
			// held, and what was not captured is a hole given up on at
			// the end of the capture.
			name: "out of order",
			write: func(c sconn) ([]int, int, []msg) {
				f := c.client(big, pcapgen.SplitAt(100), pcapgen.Order(1, 0))
				f2 := c.client(readReq(2))[0]
				return []int{f[0]}, 93, []msg{
					truncated(f2, modbus.Request, 1, pcapgen.FCWriteMultipleRegisters),
					req(f2, 2, fc), unanswered(f2, 2, fc),
				}
			},
			flush: true,
			want:  tcpCounters{FlowsCreated: 1, OutOfOrder: 2, Gaps: 1, GapBytes: 93},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				cuts    []int
				missing int
				want    []msg
			)
			lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
				c := s.conn(hmi, plc, 100, 200)
				c.handshake()
				cuts, missing, want = tt.write(c)
			})
			for _, f := range cuts {
				cut(pkts, f, missing)
			}
			e, r := replay(t, Config{}, lt, pkts, tt.flush)
			checkMsgs(t, r.msgs, want)
			checkCounters(t, e, tt.want)
			if got := e.Counters().Truncated; got != uint64(len(cuts)) {
				t.Errorf("%d packets counted as truncated, want %d", got, len(cuts))
			}
		})
	}
}

func TestNonModbusFlowsHoldNothing(t *testing.T) {
	// A flow on a port that is not Modbus is tracked but never reassembled:
	// out-of-order and split data is neither held nor decoded.
	web := plc
	web.Port = 80
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, web, 100, 200)
		c.handshake()
		c.client(readReq(1), pcapgen.Split(2), pcapgen.Order(1, 0))
		c.Skip(pcapgen.FromServer, 3)
		c.server(readRsp(1)[:9])
		c.close()
		m := s.conn(hmi, web, 300, 400) // mid-stream, ended by an RST
		m.client(readReq(2)[:5])
		m.rst(pcapgen.FromServer)
	})
	e, r := replay(t, Config{}, lt, pkts, false)
	checkMsgs(t, r.msgs, nil)
	checkCounters(t, e, tcpCounters{FlowsCreated: 2, FlowsClosed: 2, MidStream: 1})
	if c := e.Counters(); c.BufferedPeak != 0 || c.AppBytes != 0 {
		t.Errorf("peak %d bytes buffered, %d application bytes; want 0, 0", c.BufferedPeak, c.AppBytes)
	}
}

func TestUDPDatagrams(t *testing.T) {
	// Each datagram holds whole ADUs; a datagram cut short (by its sender
	// or by the snap length) reports the cut ADU as truncated.
	const fc = pcapgen.FCReadHoldingRegisters
	var want []msg
	var cutFrame int
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		u, err := pcapgen.NewUDP(s.w, hmi, plc)
		if err != nil {
			t.Fatal(err)
		}
		send := func(p []byte) int {
			f, err := u.Send(p)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		reply := func(p []byte) int {
			f, err := u.Reply(p)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		three := append(append(readReq(1), readReq(2)...), readReq(3)...)
		f1 := send(three)
		f2 := reply(append(readRsp(2), readRsp(1)...))
		f3 := send(append(readReq(4), readReq(5)[:9]...)) // the second ADU cut by the sender
		f4 := reply(append(readRsp(4), readRsp(3)...))    // cut by the snap length below
		cutFrame = f4
		want = []msg{
			req(f1, 1, fc), req(f1, 2, fc), req(f1, 3, fc),
			rsp(f2, 2, fc), rsp(f2, 1, fc),
			req(f3, 4, fc), truncated(f3, modbus.Request, 5, fc),
			rsp(f4, 4, fc), msg{Frame: uint64(f4), Dir: modbus.Response, TID: 3, Unit: 1, FC: fc, Malformed: modbus.Truncated, Flow: 1},
			unanswered(f1, 3, fc), // at Flush
		}
	})
	cut(pkts, cutFrame, 5)
	e, r := replay(t, Config{}, lt, pkts, true)
	checkMsgs(t, r.msgs, want)
	c := e.Counters()
	if c.UDP != 4 || c.Truncated != 1 || c.FlowsCreated != 1 || c.FlowsFlushed != 1 || c.BufferedPeak != 0 {
		t.Errorf("udp %d, truncated %d, flows %d, flushed %d, peak %d; want 4, 1, 1, 1, 0",
			c.UDP, c.Truncated, c.FlowsCreated, c.FlowsFlushed, c.BufferedPeak)
	}
}

func TestIPv6HopByHop(t *testing.T) {
	// The IPv6 payload length counts a Hop-by-Hop header: a segment behind
	// one is whole, not cut by the snap length.
	const fc = pcapgen.FCReadHoldingRegisters
	six, srv := hmi, plc
	six.IP = netip.MustParseAddr("fd00::10")
	srv.IP = netip.MustParseAddr("fd00::20")
	var want []msg
	lt, pkts := capture(t, pcapgen.Options{Link: pcapgen.LinkRaw}, func(s script) {
		c := s.conn(six, srv, 100, 200)
		c.handshake()
		for tid := uint16(1); tid <= 2; tid++ {
			f1 := c.client(readReq(tid), pcapgen.Split(2))
			f2 := c.server(readRsp(tid))[0]
			want = append(want, req(f1[1], tid, fc), rsp(f2, tid, fc))
		}
	})
	for i := range pkts {
		d := pkts[i].data
		if d[6] != byte(layers.IPProtocolTCP) {
			t.Fatalf("frame %d: next header %d", i+1, d[6])
		}
		// Insert a Hop-by-Hop header holding one PadN option.
		hbh := []byte{byte(layers.IPProtocolTCP), 0, 1, 4, 0, 0, 0, 0}
		out := slices.Concat(d[:40], hbh, d[40:])
		out[6] = byte(layers.IPProtocolIPv6HopByHop)
		out[5] += 8 // payload length, below 256 in this capture
		pkts[i].data = out
	}
	e, r := replay(t, Config{}, lt, pkts, false)
	checkMsgs(t, r.msgs, want)
	checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsActive: 1})
	if c := e.Counters(); c.Truncated != 0 || c.IPv6 != uint64(len(pkts)) {
		t.Errorf("truncated %d, ipv6 %d; want 0, %d", c.Truncated, c.IPv6, len(pkts))
	}
}

func TestCloseDecodesRequestsFirst(t *testing.T) {
	// At the end of a flow, held requests are decoded before held
	// responses, so that they pair, whichever end has the lower address
	// (the flow key's first side).
	const fc = pcapgen.FCReadHoldingRegisters
	low := plc
	low.IP = netip.MustParseAddr("10.10.1.1") // below the HMI's 10.10.1.10
	for _, server := range []pcapgen.Endpoint{plc, low} {
		t.Run(server.IP.String(), func(t *testing.T) {
			var want []msg
			lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
				c := s.conn(hmi, server, 100, 200)
				c.handshake()
				// Both directions hold an ADU behind a hole nobody
				// acknowledges.
				c.sendAt(pcapgen.FromClient, c.NextSeq(pcapgen.FromClient)+1, readReq(1))
				c.sendAt(pcapgen.FromServer, c.NextSeq(pcapgen.FromServer)+1, readRsp(1))
				rst := c.rst(pcapgen.FromClient)
				want = []msg{req(rst, 1, fc), rsp(rst, 1, fc)}
			})
			e, r := replay(t, Config{}, lt, pkts, false)
			checkMsgs(t, r.msgs, want)
			checkCounters(t, e, tcpCounters{FlowsCreated: 1, FlowsClosed: 1, OutOfOrder: 2, Gaps: 2, GapBytes: 2})
		})
	}
}

func TestFirstCopyWinsRandom(t *testing.T) {
	// A stream of requests sent as random segments, locally reordered, with
	// random overlapping copies whose repeated bytes are garbage: the first
	// copy of every byte is a good one, so every request must be decoded
	// once, in order, with nothing malformed, nothing lost and nothing left
	// held. The stream wraps around 2^32.
	const n = 40
	var stream []byte
	for tid := uint16(1); tid <= n; tid++ {
		stream = append(stream, readReq(tid)...)
	}
	type seg struct{ from, to int }
	for iter := range 200 {
		rng := rand.New(rand.NewPCG(uint64(iter), 7))
		var segs []seg
		for from := 0; from < len(stream); {
			to := min(from+1+rng.IntN(30), len(stream))
			segs = append(segs, seg{from, to})
			if rng.IntN(3) == 0 { // an overlapping copy
				a := max(0, from-rng.IntN(20))
				b := min(len(stream), to+rng.IntN(20))
				segs = append(segs, seg{a, b})
			}
			from = to
		}
		for i := range segs { // local reordering
			j := min(len(segs)-1, i+rng.IntN(6))
			segs[i], segs[j] = segs[j], segs[i]
		}
		lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
			c := s.conn(hmi, plc, 0xFFFFFF00+uint32(rng.IntN(256)), 1)
			c.handshake()
			base := c.NextSeq(pcapgen.FromClient)
			sent := make([]bool, len(stream))
			for _, sg := range segs {
				b := slices.Clone(stream[sg.from:sg.to])
				for i := range b {
					if sent[sg.from+i] {
						b[i] = byte(rng.IntN(256))
					}
					sent[sg.from+i] = true
				}
				c.sendAt(pcapgen.FromClient, base+uint32(sg.from), b)
			}
		})
		e, r := replay(t, Config{MaxOutOfOrder: 1024, GapTimeout: time.Hour}, lt, pkts, false)
		// Requests pushed out of the pending table are reported as
		// unanswered on the way; only the decoded ones matter here.
		var tids []uint16
		good := true
		for i, m := range r.msgs {
			if m.Outcome == modbus.OutcomeUnanswered {
				continue
			}
			tids = append(tids, m.TID)
			good = good && m.Malformed == 0 && slices.Equal(r.pdus[i], readReq(1)[7:])
		}
		c := e.Counters()
		if len(tids) != n || !good || c.TCPGaps != 0 || c.BufferedBytes != 0 {
			t.Fatalf("iteration %d: tids %v; messages %v; counters %+v", iter, tids, r.msgs, c)
		}
		for i, tid := range tids {
			if tid != uint16(i+1) {
				t.Fatalf("iteration %d: tids %v", iter, tids)
			}
		}
	}
}
