package dpi

import (
	"bytes"
	"encoding/binary"
	"github.com/tapwatch/tapwatch/dpi/link"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

var (
	hmi = pcapgen.Endpoint{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}, IP: netip.MustParseAddr("10.10.1.10"), Port: 49152}
	plc = pcapgen.Endpoint{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x20}, IP: netip.MustParseAddr("10.10.1.20"), Port: 502}
)

type packet struct {
	ts   time.Time
	data []byte
	wire int // length on the wire; 0: len(data)
}

// generate writes a capture with pcapgen and returns its packets.
func generate(t testing.TB, opts pcapgen.Options, write func(w *pcapgen.Writer) error) (layers.LinkType, []packet) {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var pkts []packet
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return r.LinkType(), pkts
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, packet{ts: ci.Timestamp, data: data})
	}
}

type counter struct {
	n      int
	frames []uint64
	fcs    []uint8
}

func (c *counter) Message(_ *Flow, _ Side, msg any) {
	m, ok := msg.(*modbus.Message)
	if !ok {
		return
	}
	c.n++
	c.frames = append(c.frames, m.Frame)
	c.fcs = append(c.fcs, m.FC)
}

// nopHandler counts messages, and takes the network events too, so that
// the tests and fuzzers that use it run those paths.
type nopHandler struct{ n, dnp3, net, integ int }

func (h *nopHandler) Integrity(*Flow, *Integrity) { h.integ++ }

func (h *nopHandler) NewFlow(*Flow, time.Time)    { h.net++ }
func (h *nopHandler) FlowData(*Flow, time.Time)   { h.net++ }
func (h *nopHandler) FlowCounts(*Flow, time.Time) { h.net++ }
func (h *nopHandler) FlowEnd(*Flow, time.Time)    { h.net++ }
func (h *nopHandler) ARP(*ARP)                    { h.net++ }
func (h *nopHandler) ICMP(*ICMP)                  { h.net++ }

func (h *nopHandler) Message(_ *Flow, _ Side, m any) {
	switch m.(type) {
	case *modbus.Message:
		h.n++
	case *dnp3.Message:
		h.dnp3++
	}
}

func run(t testing.TB, cfg Config, h Handler, lt layers.LinkType, pkts []packet) *Engine {
	t.Helper()
	e, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		e.Packet(link.Type(lt), p.ts, uint64(i+1), p.data, p.wire)
	}
	return e
}

// polling writes n read transactions on each of conns connections.
func polling(conns, n int) func(w *pcapgen.Writer) error {
	return func(w *pcapgen.Writer) error {
		cs := make([]*pcapgen.TCPConn, conns)
		for i := range cs {
			c := hmi
			c.Port = uint16(40000 + i)
			conn, err := pcapgen.NewTCPConn(w, c, plc, uint32(i)*1000, 7777)
			if err != nil {
				return err
			}
			if _, err := conn.Handshake(); err != nil {
				return err
			}
			cs[i] = conn
		}
		for j := 0; j < n; j++ {
			for i, conn := range cs {
				tid := uint16(j)
				if _, err := conn.Client(pcapgen.MBAP(tid, 1, pcapgen.ReadHoldingRegisters(uint16(i), 4))); err != nil {
					return err
				}
				if _, err := conn.Server(pcapgen.MBAP(tid, 1, pcapgen.ReadHoldingRegistersResponse(1, 2, 3, 4))); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func TestLinkTypes(t *testing.T) {
	for _, link := range []pcapgen.Link{pcapgen.LinkEthernet, pcapgen.LinkVLAN, pcapgen.LinkQinQ, pcapgen.LinkNull, pcapgen.LinkRaw, pcapgen.LinkSLL} {
		t.Run(link.String(), func(t *testing.T) {
			lt, pkts := generate(t, pcapgen.Options{Link: link}, polling(2, 3))
			var c counter
			e := run(t, Config{}, &c, lt, pkts)
			if c.n != 2*3*2 {
				t.Errorf("%d messages, want 12", c.n)
			}
			if got := e.Counters(); got.FlowsCreated != 2 || got.TCP != uint64(len(pkts)) {
				t.Errorf("counters %+v", got)
			}
		})
	}
}

func TestNullLinkByteOrderAndIPv6Families(t *testing.T) {
	for _, fam := range []uint32{24, 28, 30} {
		for _, be := range []bool{false, true} {
			six := hmi
			six.IP = netip.MustParseAddr("fd00::10")
			srv := plc
			srv.IP = netip.MustParseAddr("fd00::20")
			lt, pkts := generate(t, pcapgen.Options{Link: pcapgen.LinkNull, NullFamilyIPv6: fam, NullBigEndian: be}, func(w *pcapgen.Writer) error {
				conn, err := pcapgen.NewTCPConn(w, six, srv, 1, 2)
				if err != nil {
					return err
				}
				_, err = conn.Client(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegisters(0, 1)))
				return err
			})
			var c counter
			e := run(t, Config{}, &c, lt, pkts)
			if c.n != 1 || e.Counters().IPv6 != 1 {
				t.Errorf("family %d big-endian %v: %d messages, counters %+v", fam, be, c.n, e.Counters())
			}
		}
	}
}

func TestIPv4FragmentsAreCounted(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		u, err := pcapgen.NewUDP(w, hmi, plc)
		if err != nil {
			return err
		}
		_, err = u.SendFragments(pcapgen.MBAP(1, 1, pcapgen.WriteMultipleRegisters(0, make([]uint16, 100)...)), 64)
		return err
	})
	var c counter
	e := run(t, Config{}, &c, lt, pkts)
	if got := e.Counters().IPv4Fragments; got != 2 {
		t.Errorf("%d fragments counted, want 2", got)
	}
	if c.n != 0 {
		t.Errorf("%d messages decoded from fragments, want 0", c.n)
	}
}

func TestEvictionAndExpiry(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, polling(20, 0)) // handshakes only
	e, err := New(Config{MaxFlows: 16}, &nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		e.Packet(link.Type(lt), p.ts, uint64(i+1), p.data, p.wire)
	}
	c := e.Counters()
	if c.FlowsCreated != 20 || c.FlowsEvicted != 4 || c.FlowsActive != 16 {
		t.Errorf("created %d, evicted %d, active %d; want 20, 4, 16", c.FlowsCreated, c.FlowsEvicted, c.FlowsActive)
	}
	// The evicted flows were the least recently used: the first four handshakes.
	for i := 0; i < 4; i++ {
		k := flowKey{rest: restOf(uint16(40000+i), 502, 0, 6)}
		ha, pa := hmi.IP.As16(), plc.IP.As16()
		k.a, k.b = ip16From16(ha[:]), ip16From16(pa[:])
		ck, _ := k.canonical()
		if e.flows.get(&ck) != nil {
			t.Errorf("flow from port %d is still there", 40000+i)
		}
	}
	// Ten minutes later, one packet expires every other flow.
	last := pkts[len(pkts)-1]
	e.Packet(link.Type(lt), last.ts.Add(10*time.Minute), uint64(len(pkts)+1), pkts[0].data, 0)
	c = e.Counters()
	if c.FlowsExpired != 16 || c.FlowsActive != 1 {
		t.Errorf("expired %d, active %d; want 16, 1", c.FlowsExpired, c.FlowsActive)
	}
}

// get is lookup's search: the cached flow, else the slots.
func (t *table) get(k *flowKey) *flow {
	if f := t.cached(k); f != nil {
		return f
	}
	return t.find(k)
}

func TestTableMatchesMap(t *testing.T) {
	var tb table
	tb.init(64)
	ref := map[flowKey]*flow{}
	var order []flowKey // most recently used first
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]flowKey, 200)
	for i := range keys {
		keys[i].a.lo = uint64(rng.IntN(4))
		keys[i].b.lo = uint64(rng.IntN(4))
		keys[i].rest = restOf(uint16(rng.IntN(8)), 502, 0, 6)
	}
	for step := 0; step < 100000; step++ {
		k := keys[rng.IntN(len(keys))]
		if c := tb.cached(&k); c != nil && c != ref[k] {
			t.Fatalf("step %d: cached %v, want %v", step, c, ref[k])
		}
		f := tb.get(&k)
		if f != ref[k] {
			t.Fatalf("step %d: get %v, want %v", step, f, ref[k])
		}
		switch {
		case f == nil && !tb.full():
			ref[k] = tb.add(k)
			order = slices.Insert(order, 0, k)
		case f != nil && rng.IntN(2) == 0:
			tb.remove(f)
			delete(ref, k)
			order = slices.DeleteFunc(order, func(o flowKey) bool { return o == k })
		case f != nil:
			tb.touch(f)
			order = slices.DeleteFunc(order, func(o flowKey) bool { return o == k })
			order = slices.Insert(order, 0, k)
		default:
			old := tb.oldest()
			delete(ref, old.key)
			tb.remove(old)
			order = slices.DeleteFunc(order, func(o flowKey) bool { return o == old.key })
		}
		if tb.live != len(ref) {
			t.Fatalf("step %d: %d live, map has %d", step, tb.live, len(ref))
		}
		// The list is in order of use, the least recent last.
		if o := tb.oldest(); len(order) > 0 && (o == nil || o.key != order[len(order)-1]) || len(order) == 0 && o != nil {
			t.Fatalf("step %d: oldest %v, want %v", step, o, order[max(len(order)-1, 0):])
		}
	}
}

func TestOutOfOrderMemoryCaps(t *testing.T) {
	// Every request is split in 8 and sent last-segment-first, behind a
	// hole that never fills: the engine must hold no more than its caps.
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		conn, err := pcapgen.NewTCPConn(w, hmi, plc, 1, 2)
		if err != nil {
			return err
		}
		if _, err := conn.Handshake(); err != nil {
			return err
		}
		conn.Skip(pcapgen.FromClient, 3)
		for i := 0; i < 200; i++ {
			adu := pcapgen.MBAP(uint16(i), 1, pcapgen.WriteMultipleRegisters(0, make([]uint16, 120)...))
			if _, err := conn.Client(adu, pcapgen.Split(8), pcapgen.Order(7, 6, 5, 4, 3, 2, 1, 0)); err != nil {
				return err
			}
		}
		return nil
	})
	cfg := Config{FlowBuffer: 4096, TotalBuffer: 8192, MaxOutOfOrder: 1024, GapTimeout: time.Hour}
	var c counter
	e := run(t, cfg, &c, lt, pkts)
	got := e.Counters()
	if got.BufferedPeak > 4096 {
		t.Errorf("peak %d bytes held, cap 4096", got.BufferedPeak)
	}
	if got.TCPGaps == 0 || got.TCPOutOfOrder == 0 {
		t.Errorf("gaps %d, out of order %d; want both > 0", got.TCPGaps, got.TCPOutOfOrder)
	}
	if c.n < 150 {
		t.Errorf("only %d of 200 requests decoded despite the caps", c.n)
	}
	e.Flush()
	if b := e.Counters().BufferedBytes; b != 0 {
		t.Errorf("%d bytes still accounted after Flush", b)
	}
}

// TestSteadyStateAllocs proves the hot path allocates nothing per packet
// once flows exist: decoding, reassembly, pairing and delivery.
func TestSteadyStateAllocs(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, polling(4, 400))
	h := &nopHandler{}
	checkSteadyStateAllocs(t, Config{}, lt, pkts, h)
	if h.n < len(pkts)-4*3 { // every data packet carries one message
		t.Errorf("only %d messages decoded from %d packets", h.n, len(pkts))
	}
}

// checkSteadyStateAllocs feeds the first half of pkts to warm flows up,
// then fails if the second half allocates.
func checkSteadyStateAllocs(t *testing.T, cfg Config, lt layers.LinkType, pkts []packet, h Handler) {
	t.Helper()
	e, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	warm := len(pkts) / 2
	for i := 0; i < warm; i++ {
		e.Packet(link.Type(lt), pkts[i].ts, uint64(i+1), pkts[i].data, 0)
	}
	i := warm
	allocs := testing.AllocsPerRun(len(pkts)-warm-1, func() {
		e.Packet(link.Type(lt), pkts[i].ts, uint64(i+1), pkts[i].data, 0)
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet, want 0", allocs)
	}
}

// FuzzPacket feeds arbitrary frames to the engine under every link type
// (the link-layer header type numbers, LINUX_SLL2's 276 among them): it
// must never panic, and its byte accounting must stay balanced.
func FuzzPacket(f *testing.F) {
	_, pkts := generate(f, pcapgen.Options{Link: pcapgen.LinkVLAN}, polling(1, 2))
	for _, p := range pkts {
		f.Add(uint16(1), p.data) // well-formed VLAN-tagged Modbus
	}
	f.Add(uint16(0), []byte{2, 0, 0, 0, 0x45, 0, 0, 20}) // loopback, IPv4 header cut short
	f.Add(uint16(101), []byte{0x60, 0, 0, 0, 0, 8, 6})   // raw IPv6, truncated
	f.Add(uint16(113), make([]byte, 16))                 // SLL header only
	f.Add(uint16(276), make([]byte, 20))                 // SLL2 header only
	_, pkts = generate(f, pcapgen.Options{Link: pcapgen.LinkVLAN}, func(w *pcapgen.Writer) error {
		c, err := pcapgen.NewTCPConn(w, hmi, gateway, 1, 2) // mid-stream
		if err == nil {
			_, err = c.Client(rtuReq(1))
		}
		return err
	})
	f.Add(uint16(1), pkts[0].data) // an RTU frame to a gateway
	_, pkts = generate(f, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		if _, err := w.ARPReply(plc, hmi); err != nil {
			return err
		}
		_, err := w.Unreachable(plc, hmi, 3, 161)
		return err
	})
	f.Add(uint16(1), pkts[0].data)                     // an ARP reply
	f.Add(uint16(1), pkts[1].data)                     // an ICMP port unreachable quoting a UDP datagram
	f.Add(uint16(113), cooked(pkts[0].data, false, 1)) // the ARP reply, Linux cooked (ARPHRD_ETHER)
	f.Add(uint16(276), cooked(pkts[0].data, true, 1))  // and cooked v2
	f.Fuzz(func(t *testing.T, lt uint16, data []byte) {
		e, err := New(Config{MaxFlows: 16, ModbusRTUPorts: []uint16{gateway.Port}}, &nopHandler{})
		if err != nil {
			t.Fatal(err)
		}
		ts := time.Unix(1700000000, 0)
		for i := 0; i < 3; i++ {
			e.Packet(link.Type(lt), ts.Add(time.Duration(i)*time.Millisecond), uint64(i+1), data, len(data)+int(lt)%3*100)
		}
		e.Flush()
		if c := e.Counters(); c.BufferedBytes != 0 || c.FlowsActive != 0 {
			t.Fatalf("after Flush: %d bytes held, %d flows", c.BufferedBytes, c.FlowsActive)
		}
	})
}

// TestForgedIPLength: an IP header claiming more bytes than a frame that
// the snap length did not cut is counted, and the bytes present are used;
// the stream is not skipped ahead on the word of a forged header.
func TestForgedIPLength(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, polling(1, 3))
	// Frame 6 is the second request: raise its IPv4 total length by 200.
	ip := pkts[5].data[14:]
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+200)
	var c counter
	e := run(t, Config{}, &c, lt, pkts)
	if got := e.Counters(); got.BadIPLength != 1 || got.TCPGaps != 0 {
		t.Errorf("bad IP length %d, gaps %d; want 1, 0", got.BadIPLength, got.TCPGaps)
	}
	if c.n != 6 {
		t.Errorf("%d messages, want all 6", c.n)
	}
}

// TestBlindResetIgnored: an RST whose sequence number is nowhere near the
// stream does not end the flow; one at the right place does.
func TestBlindResetIgnored(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		conn, err := pcapgen.NewTCPConn(w, hmi, plc, 1000, 5000)
		if err != nil {
			return err
		}
		if _, err := conn.Handshake(); err != nil {
			return err
		}
		if _, err := conn.Client(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegisters(0, 1))); err != nil {
			return err
		}
		conn.Skip(pcapgen.FromServer, 1<<24) // the forged RST's sequence number
		if _, err := conn.Rst(pcapgen.FromServer); err != nil {
			return err
		}
		conn.Skip(pcapgen.FromServer, -(1 << 24))
		if _, err := conn.Server(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegistersResponse(9))); err != nil {
			return err
		}
		_, err = conn.Rst(pcapgen.FromClient)
		return err
	})
	var c counter
	e := run(t, Config{}, &c, lt, pkts)
	got := e.Counters()
	if got.TCPIgnoredRSTs != 1 || got.FlowsClosed != 1 || got.FlowsCreated != 1 || c.n != 2 {
		t.Errorf("ignored %d, closed %d, created %d flows, %d messages; want 1, 1, 1, 2", got.TCPIgnoredRSTs, got.FlowsClosed, got.FlowsCreated, c.n)
	}
}

// TestDNP3SteadyStateAllocs: DNP3 over TCP (polls answered by
// multi-segment responses, several frames per segment) allocates nothing
// per packet once the flow exists.
func TestDNP3SteadyStateAllocs(t *testing.T) {
	outstation := plc
	outstation.Port = 20000
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		conn, err := pcapgen.NewTCPConn(w, hmi, outstation, 1, 2)
		if err != nil {
			return err
		}
		if _, err := conn.Handshake(); err != nil {
			return err
		}
		d := pcapgen.NewDNP3TCP(conn, 1, 10)
		d.MaxSegment = 60
		values := make([]float32, 30)
		for i := 0; i < 300; i++ {
			ctl := pcapgen.AppControl(true, true, false, false, uint8(i))
			if _, err := d.Master(pcapgen.AppRequest(ctl, pcapgen.DNP3Read, pcapgen.ClassData(0))); err != nil {
				return err
			}
			values[i%30] = float32(i)
			if _, err := d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3Response, 0,
				pcapgen.BinaryInputs(0, 1, 1, 1, 1), pcapgen.AnalogInputsFloat(0, 1, values...))); err != nil {
				return err
			}
		}
		return nil
	})
	h := &nopHandler{}
	checkSteadyStateAllocs(t, Config{}, lt, pkts, h)
	if h.dnp3 < 290 {
		t.Errorf("only %d DNP3 messages decoded", h.dnp3)
	}
}

type dnp3Recorder struct {
	from []bool
	fcs  []uint8
}

func (r *dnp3Recorder) Message(_ *Flow, from Side, msg any) {
	m, ok := msg.(*dnp3.Message)
	if !ok {
		return
	}
	r.from = append(r.from, from == FromServer)
	r.fcs = append(r.fcs, m.FC)
}

// TestDNP3OnAnyPort: DNP3 on a port nobody configured is recognised by a
// link header with a valid CRC, and the master is told apart by the DIR
// bit even when the outstation opened the connection.
func TestDNP3OnAnyPort(t *testing.T) {
	rtu := pcapgen.Endpoint{MAC: plc.MAC, IP: plc.IP, Port: 40001}
	scada := pcapgen.Endpoint{MAC: hmi.MAC, IP: hmi.IP, Port: 20001}
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		// The outstation (rtu) is the TCP client here.
		conn, err := pcapgen.NewTCPConn(w, rtu, scada, 1, 2)
		if err != nil {
			return err
		}
		if _, err := conn.Handshake(); err != nil {
			return err
		}
		d := pcapgen.NewDNP3TCP(conn, 1, 10) // Master sends as the TCP client...
		ctl := pcapgen.AppControl(true, true, false, true, 0)
		// ...so send the unsolicited response from the TCP client by hand.
		b, err := d.Frames(pcapgen.FromOutstation, pcapgen.AppResponse(ctl, pcapgen.DNP3UnsolicitedResponse, pcapgen.IINDeviceRestart))
		if err != nil {
			return err
		}
		if _, err := conn.Client(b); err != nil {
			return err
		}
		b, err = d.Frames(pcapgen.FromMaster, pcapgen.AppRequest(ctl, pcapgen.DNP3Confirm))
		if err != nil {
			return err
		}
		_, err = conn.Server(b)
		return err
	})
	var r dnp3Recorder
	e := run(t, Config{}, &r, lt, pkts)
	if got := e.Counters().DNP3Sniffed; got != 1 {
		t.Errorf("%d flows recognised as DNP3, want 1", got)
	}
	// The master (the TCP server) is the flow's client after recognition:
	// the unsolicited response comes from the flow's server.
	if !slices.Equal(r.fcs, []uint8{130, 0}) || !slices.Equal(r.from, []bool{true, false}) {
		t.Errorf("function codes %v from server %v; want [130 0] [true false]", r.fcs, r.from)
	}
}

type flowCounter struct {
	nopHandler
	apps []App
}

func (c *flowCounter) NewFlow(f *Flow, _ time.Time) { c.apps = append(c.apps, f.App) }

// TestFlowHandler: a handler that implements FlowHandler hears of every new
// conversation, Modbus or not, once.
func TestFlowHandler(t *testing.T) {
	web := plc
	web.Port = 443
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		for _, srv := range []pcapgen.Endpoint{plc, web} {
			conn, err := pcapgen.NewTCPConn(w, hmi, srv, 1, 2)
			if err != nil {
				return err
			}
			if _, err := conn.Handshake(); err != nil {
				return err
			}
			if _, err := conn.Client([]byte("hello")); err != nil {
				return err
			}
		}
		return nil
	})
	var c flowCounter
	run(t, Config{}, &c, lt, pkts)
	if !slices.Equal(c.apps, []App{AppModbus, AppNone}) {
		t.Errorf("new flows %v, want [modbus none]", c.apps)
	}
}

// TestIP16 checks the key's form of an address against netip: an IPv4
// address is its IPv4-mapped form, the octets come back as they went in,
// and the order of keys is the order of their octets.
func TestIP16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var prev [16]byte
	for i := range 2000 {
		var o [16]byte
		for j := range o {
			o[j] = byte(rng.IntN(3)) // few values: equal words are common
		}
		if i%2 == 0 {
			o = netip.AddrFrom4([4]byte(o[12:])).As16() // IPv4-mapped
		}
		a := ip16From16(o[:])
		if a.as16() != o || a.addr() != netip.AddrFrom16(o).Unmap() {
			t.Fatalf("%x: as16 %x, addr %v", o, a.as16(), a.addr())
		}
		if m := netip.AddrFrom16(o); m.Is4In6() && ip16From4(o[12:]) != a {
			t.Fatalf("%x: ip16From4 %+v, want %+v", o, ip16From4(o[12:]), a)
		}
		p := ip16From16(prev[:])
		if got, want := before(t, p, 1, a, 1), bytes.Compare(prev[:], o[:]) < 0; got != want {
			t.Fatalf("before(%x, %x) = %v, want %v", prev, o, got, want)
		}
		prev = o
	}
	// Ends with the same address are ordered by port, ends with the same
	// address and port not at all.
	ports := []uint16{0, 1, 2, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff}
	for _, o := range []string{"10.0.0.1", "::", "fd00::1:2"} {
		b := netip.MustParseAddr(o).As16()
		a := ip16From16(b[:])
		for _, pa := range ports {
			for _, pb := range ports {
				if got := before(t, a, pa, a, pb); got != (pa < pb) {
					t.Fatalf("%s: before(port %d, port %d) = %v", o, pa, pb, got)
				}
			}
		}
	}
}

// before reports whether end x, px orders before end y, py: whether
// canonicalize swaps a key with y first. It checks the swapped key too.
func before(t *testing.T, x ip16, px uint16, y ip16, py uint16) bool {
	k := flowKey{a: y, b: x, rest: uint64(py)<<48 | uint64(px)<<32 | 7<<16 | 6}
	if !k.canonicalize() {
		return false
	}
	if k.a != x || k.b != y || k.pa() != px || k.pb() != py || k.vlan() != 7 || k.proto() != 6 {
		t.Fatalf("canonicalize of %+v, %d then %+v, %d swapped to %+v", y, py, x, px, k)
	}
	return true
}

// TestFlowKeyEqual: equal agrees with == on keys that differ in any one
// octet of any field, or in none.
func TestFlowKeyEqual(t *testing.T) {
	base := flowKey{rest: restOf(40000, 502, 7, 6)}
	var a, b [16]byte
	for i := range a {
		a[i], b[i] = byte(i), byte(100+i)
	}
	base.a, base.b = ip16From16(a[:]), ip16From16(b[:])
	if o := base; !base.equal(&o) || base != o {
		t.Fatal("a key is not equal to its copy")
	}
	mutations := []func(k *flowKey){
		func(k *flowKey) { k.setProto(k.proto() + 1) }, func(k *flowKey) { k.setPorts(k.pa()+1, k.pb()) },
		func(k *flowKey) { k.setPorts(k.pa(), k.pb()^0x100) }, func(k *flowKey) { k.setVLAN(k.vlan() + 1) },
	}
	for i := range 16 {
		octet := func(x *ip16) {
			o := x.as16()
			o[i]++
			*x = ip16From16(o[:])
		}
		mutations = append(mutations, func(k *flowKey) { octet(&k.a) }, func(k *flowKey) { octet(&k.b) })
	}
	for j, mutate := range mutations {
		o := base
		mutate(&o)
		if base.equal(&o) || o.equal(&base) || base == o {
			t.Errorf("mutation %d: keys that differ are equal", j)
		}
	}
}

// restOf is the rest word of a key (flowKey.rest).
func restOf(pa, pb, vlan uint16, proto uint8) uint64 {
	return uint64(pa)<<48 | uint64(pb)<<32 | uint64(vlan)<<16 | uint64(proto)
}
