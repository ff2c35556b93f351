package dpi

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// integrityRecorder keeps copies of the Integrity reports.
type integrityRecorder struct {
	recorder
	reports []Integrity
}

func (r *integrityRecorder) Integrity(_ *Flow, s *Integrity) {
	c := *s
	c.First, c.Second = bytes.Clone(s.First), bytes.Clone(s.Second)
	r.reports = append(r.reports, c)
}

func (r *integrityRecorder) kind(k IntegrityKind) []Integrity {
	var out []Integrity
	for _, s := range r.reports {
		if s.Kind == k && !s.Refresh {
			out = append(out, s)
		}
	}
	return out
}

func replayIntegrity(t *testing.T, write func(s script)) *integrityRecorder {
	t.Helper()
	lt, pkts := capture(t, pcapgen.Options{}, write)
	var r integrityRecorder
	run(t, Config{}, &r, lt, pkts)
	return &r
}

// TestEndpointReports: each end of an ICS flow is reported at its first
// packet, and again at each packet whose MAC or TTL differs from its
// previous one; flows of no registered protocol are not watched.
func TestEndpointReports(t *testing.T) {
	forged := hmi
	forged.TTL = 128
	var f []int
	r := replayIntegrity(t, func(s script) {
		c := s.conn(hmi, plc, 100, 200)
		c.handshake()
		f = append(f, c.sendAt(pcapgen.FromClient, c.NextSeq(pcapgen.FromClient), readReq(1)))
		if err := c.Impersonate(pcapgen.FromClient, forged); err != nil {
			t.Fatal(err)
		}
		f = append(f, c.sendAt(pcapgen.FromClient, c.NextSeq(pcapgen.FromClient)+12, readReq(2)))
		if err := c.Impersonate(pcapgen.FromClient, hmi); err != nil {
			t.Fatal(err)
		}
		f = append(f, c.sendAt(pcapgen.FromClient, c.NextSeq(pcapgen.FromClient)+24, readReq(3)))
		web := hmi
		web.Port, web.TTL = 50000, 128
		srv := plc
		srv.Port = 80
		w := s.conn(web, srv, 1, 2)
		w.handshake()
	})
	got := r.kind(Endpoint)
	if len(got) != 4 {
		t.Fatalf("%d endpoint reports, want 4: %+v", len(got), got)
	}
	// The SYN, then the SYN-ACK, each end's first packet.
	if got[0].From != FromClient || got[0].Addr != hmi.IP || got[0].TTL != 64 || got[0].Changed || got[0].Frame != 1 {
		t.Errorf("first report %+v", got[0])
	}
	if got[1].From != FromServer || got[1].Addr != plc.IP || got[1].Changed {
		t.Errorf("second report %+v", got[1])
	}
	if s := got[2]; !s.Changed || s.TTL != 128 || s.PrevTTL != 64 || s.MAC != [6]byte(hmi.MAC) || s.Frame != uint64(f[1]) {
		t.Errorf("the forged packet's report %+v (frame %d)", s, f[1])
	}
	if s := got[3]; !s.Changed || s.TTL != 64 || s.PrevTTL != 128 || s.Frame != uint64(f[2]) {
		t.Errorf("the real packet's report %+v", s)
	}
}

// TestConflictReports: a segment that repeats delivered or held bytes
// with other content is reported with both versions from the first byte
// that differs; identical copies, a keep-alive and bytes before a gap
// are not.
func TestConflictReports(t *testing.T) {
	adu := readReq(1)
	evil := slices.Clone(adu)
	evil[7] = pcapgen.FCWriteSingleRegister
	t.Run("delivered", func(t *testing.T) {
		var base uint32
		var frame int
		r := replayIntegrity(t, func(s script) {
			c := s.conn(hmi, plc, 100, 200)
			c.handshake()
			base = c.NextSeq(pcapgen.FromClient)
			c.sendAt(pcapgen.FromClient, base, adu)
			c.sendAt(pcapgen.FromClient, base, adu)             // a retransmission
			c.sendAt(pcapgen.FromClient, base+11, adu[11:])     // a partial one
			c.sendAt(pcapgen.FromClient, base+11, []byte{0x55}) // a keep-alive
			frame = c.sendAt(pcapgen.FromClient, base+4, evil[4:])
		})
		got := r.kind(Conflict)
		if len(got) != 1 {
			t.Fatalf("%d conflict reports, want 1: %+v", len(got), got)
		}
		s := got[0]
		if s.Seq != base+7 || !s.Delivered || s.From != FromClient || s.Frame != uint64(frame) ||
			!bytes.Equal(s.First, adu[7:]) || !bytes.Equal(s.Second, evil[7:]) {
			t.Errorf("report %+v, want seq %d, first % x, second % x", s, base+7, adu[7:], evil[7:])
		}
	})
	t.Run("held", func(t *testing.T) {
		var base uint32
		r := replayIntegrity(t, func(s script) {
			c := s.conn(hmi, plc, 100, 200)
			c.handshake()
			base = c.NextSeq(pcapgen.FromClient)
			c.sendAt(pcapgen.FromClient, base+12, adu)  // held: the hole before it
			c.sendAt(pcapgen.FromClient, base+12, evil) // a second version
			c.sendAt(pcapgen.FromClient, base, readReq(9))
		})
		got := r.kind(Conflict)
		if len(got) != 1 || got[0].Delivered || got[0].Seq != base+12+7 || got[0].First[0] != adu[7] || got[0].Second[0] != evil[7] {
			t.Fatalf("reports %+v", got)
		}
	})
	t.Run("gap", func(t *testing.T) {
		r := replayIntegrity(t, func(s script) {
			c := s.conn(hmi, plc, 100, 200)
			c.handshake()
			base := c.NextSeq(pcapgen.FromClient)
			if _, err := c.Client(adu); err != nil {
				t.Fatal(err)
			}
			// The tap misses 12 bytes; the receiver acknowledges them.
			c.Skip(pcapgen.FromClient, 12)
			if _, err := c.Client(readReq(3)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Ack(pcapgen.FromServer); err != nil {
				t.Fatal(err)
			}
			// The missing segment comes late: the stream has skipped
			// it, and there is nothing it could be compared with.
			c.sendAt(pcapgen.FromClient, base+12, readReq(2))
		})
		if got := r.kind(Conflict); len(got) != 0 {
			t.Errorf("reports %+v", got)
		}
	})
}

// TestUnseenReports: a stretch the receiver acknowledged and the tap
// never saw is reported once the stream goes past it, with how long the
// sender had been silent; one whose bytes come late, or one acknowledged
// only with segments already held, is not.
func TestUnseenReports(t *testing.T) {
	t.Run("skipped", func(t *testing.T) {
		var from uint32
		r := replayIntegrity(t, func(s script) {
			c := s.conn(hmi, plc, 100, 200)
			c.handshake()
			if _, err := c.Client(readReq(1)); err != nil {
				t.Fatal(err)
			}
			s.w.Advance(time.Second)
			from = c.NextSeq(pcapgen.FromClient)
			c.Skip(pcapgen.FromClient, 12) // sent around the tap
			if _, err := c.Ack(pcapgen.FromServer); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Client(readReq(3)); err != nil { // the stream goes on past it
				t.Fatal(err)
			}
			if _, err := c.Ack(pcapgen.FromServer); err != nil {
				t.Fatal(err)
			}
		})
		got := r.kind(Unseen)
		if len(got) != 1 {
			t.Fatalf("%d unseen reports, want 1: %+v", len(got), got)
		}
		s := got[0]
		if s.Seq != from || s.Acked != from+12 || s.From != FromClient || s.Addr != hmi.IP ||
			s.Silent < time.Second || s.Silent > time.Second+time.Millisecond || s.Gaps != 1 || s.Segments == 0 {
			t.Errorf("report %+v, want bytes %d to %d from the client, silent about 1s, 1 gap (the acknowledgement; the skip is counted after)", s, from, from+12)
		}
	})
	t.Run("late", func(t *testing.T) {
		r := replayIntegrity(t, func(s script) {
			c := s.conn(hmi, plc, 100, 200)
			c.handshake()
			base := c.NextSeq(pcapgen.FromClient)
			c.Skip(pcapgen.FromClient, 12)
			if _, err := c.Ack(pcapgen.FromServer); err != nil { // merged before the request
				t.Fatal(err)
			}
			c.sendAt(pcapgen.FromClient, base, readReq(1))
			// A later gap: the tap misses a request the answer to the
			// next one acknowledges.
			c.Skip(pcapgen.FromClient, 12)
			if _, err := c.Client(readReq(3)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Ack(pcapgen.FromServer); err != nil {
				t.Fatal(err)
			}
		})
		if got := r.kind(Unseen); len(got) != 0 {
			t.Errorf("reports %+v", got)
		}
	})
}

// TestIntegrityAllocs: with a handler that checks integrity, ICS flows
// with identical retransmissions allocate nothing per packet.
func TestIntegrityAllocs(t *testing.T) {
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 100, 200)
		c.handshake()
		for i := range 400 {
			base := c.NextSeq(pcapgen.FromClient)
			c.sendAt(pcapgen.FromClient, base, readReq(uint16(i)))
			c.sendAt(pcapgen.FromClient, base, readReq(uint16(i))) // retransmitted
			if _, err := c.Server(readRsp(uint16(i))); err != nil {
				t.Fatal(err)
			}
		}
	})
	h := &nopHandler{}
	checkSteadyStateAllocs(t, Config{FlowReport: time.Second}, lt, pkts, h)
	if h.integ == 0 {
		t.Error("no integrity report")
	}
}

// FuzzHistory checks a direction's history of delivered bytes against a
// plain model: after any run of deliveries and gaps, comparing any bytes
// with it finds the first byte that differs from the bytes delivered,
// among those it still holds.
func FuzzHistory(f *testing.F) {
	f.Add([]byte{10, 1, 200, 3, 0, 5, 7})
	f.Add([]byte{255, 255, 255, 1, 0, 3, 2, 0, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		h := half{next: 0xfffffe00, hist: make([]byte, histSize)} // wraps the sequence space
		var model []byte                                          // delivered since the last gap
		for i := 0; i+2 < len(ops); i += 3 {
			op, a, b := ops[i], int(ops[i+1]), ops[i+2]
			switch op % 3 {
			case 0: // deliver a*3 bytes of b, b+1, ...
				data := make([]byte, a*3)
				for j := range data {
					data[j] = b + byte(j)
				}
				h.remember(data)
				h.next += uint32(len(data))
				model = append(model, data...)
			case 1: // a gap
				h.next += uint32(a) + 1
				h.histN = 0
				model = model[:0]
			case 2: // compare a copy of the last bytes, one changed
				back := a*2 + 1
				data := make([]byte, back)
				seq := h.next - uint32(back)
				for j := range data {
					if k := len(model) - back + j; k >= 0 {
						data[j] = model[k]
					}
				}
				flip := int(b) % back
				data[flip] ^= 0x5a
				want := -1
				held := min(len(model), histSize)
				for j := range data {
					k := len(model) - back + j
					if k >= len(model)-held && k >= 0 && data[j] != model[k] {
						want = j
						break
					}
				}
				if got := h.delivered(seq, data); got != want {
					t.Fatalf("op %d: delivered = %d, want %d (held %d, back %d)", i/3, got, want, held, back)
				}
			}
		}
	})
}

// remember keeps the last histSize octets delivered, whatever the
// segments' lengths and wherever they fall in the ring.
func TestRememberRing(t *testing.T) {
	var h half
	h.hist = make([]byte, histSize)
	var stream []byte
	next := uint32(0xfffffe00) // wraps round 2^32 too
	h.next = next
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		k := 1 + rng.IntN(40)
		if i%10 == 0 {
			k = 1 + rng.IntN(2*histSize)
		}
		seg := make([]byte, k)
		for j := range seg {
			seg[j] = byte(rng.Uint32())
		}
		h.remember(seg)
		h.next += uint32(k)
		stream = append(stream, seg...)
		n := min(len(stream), histSize)
		from := h.next - uint32(n)
		for j := range n {
			if got, want := h.hist[int(from+uint32(j))&(histSize-1)], stream[len(stream)-n+j]; got != want {
				t.Fatalf("segment %d (%d octets): octet %d of the history %#x, want %#x", i, k, j, got, want)
			}
		}
		if h.histN != n {
			t.Fatalf("histN %d, want %d", h.histN, n)
		}
	}
}
