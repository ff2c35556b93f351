package modbus

import (
	"slices"
	"testing"
	"time"
)

func TestPairByTransactionID(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	d.Feed(&c, Request, cat(
		adu(1, 1, 0x03, 0x00, 0x10, 0x00, 0x01), // read register 16
		adu(2, 1, 0x03, 0x00, 0x20, 0x00, 0x01), // read register 32
	), at(1, 0), &r)
	// Answered in reverse order.
	d.Feed(&c, Response, cat(
		adu(2, 1, 0x03, 0x02, 0x00, 0x20),
		adu(1, 1, 0x03, 0x02, 0x00, 0x10),
	), at(2, 3*time.Millisecond), &r)
	if len(r.msgs) != 4 {
		t.Fatalf("got %d messages", len(r.msgs))
	}
	for _, m := range r.msgs[2:] {
		if m.Outcome != OutcomeOK || !m.HasAddr || m.Addr != m.Values[0] || m.RequestFrame != 1 {
			t.Errorf("tid %d paired wrongly: %+v", m.TID, m)
		}
		if m.Latency != 3*time.Millisecond {
			t.Errorf("latency %v, want 3ms", m.Latency)
		}
	}
	if c.Pending() != 0 {
		t.Errorf("pending = %d", c.Pending())
	}
}

func TestPairFallbackToOrder(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	d.Feed(&c, Request, cat(
		adu(5, 1, 0x01, 0x00, 0x00, 0x00, 0x03), // read 3 coils at 0
		adu(6, 2, 0x01, 0x00, 0x08, 0x00, 0x04), // another unit
		adu(7, 1, 0x01, 0x00, 0x10, 0x00, 0x05), // read 5 coils at 16
	), at(1, 0), &r)
	// A gateway that rewrites transaction ids.
	d.Feed(&c, Response, adu(900, 1, 0x01, 0x01, 0xFF), at(2, time.Millisecond), &r)
	m := r.msgs[3]
	if m.Outcome != OutcomeOK || m.Addr != 0 || m.Count != 3 || len(m.Values) != 3 {
		t.Errorf("not paired with the oldest request of unit 1: %+v", m)
	}
	d.Feed(&c, Response, adu(901, 1, 0x01, 0x01, 0xFF), at(3, time.Millisecond), &r)
	if m := r.msgs[4]; m.Outcome != OutcomeOK || m.Addr != 16 || len(m.Values) != 5 {
		t.Errorf("second response: %+v", m)
	}
}

func TestPairOrphan(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	d.Feed(&c, Request, adu(1, 1, 0x03, 0x00, 0x10, 0x00, 0x01), at(1, 0), &r)
	// Same transaction id, other function: not its answer.
	d.Feed(&c, Response, adu(1, 1, 0x06, 0x00, 0x10, 0x00, 0x01), at(2, 0), &r)
	// Other unit.
	d.Feed(&c, Response, adu(1, 9, 0x83, 0x02), at(3, 0), &r)
	for _, m := range r.msgs[1:] {
		if m.Outcome != OutcomeOrphan || m.RequestFrame != 0 || m.Latency != 0 {
			t.Errorf("want an orphan: %+v", m)
		}
	}
	// A read response without its request still shows its values.
	r.msgs = nil
	d.Feed(&c, Response, adu(4, 1, 0x01, 0x01, 0x05), at(4, 0), &r)
	if m := r.msgs[0]; m.HasAddr || len(m.Values) != 8 || m.Values[0] != 1 || m.Values[2] != 1 {
		t.Errorf("orphan coils: %+v", m)
	}
}

func TestUnansweredByExpire(t *testing.T) {
	d := NewDecoder(Config{RequestTimeout: 2 * time.Second})
	var c Conn
	var r recorder
	d.Feed(&c, Request, adu(1, 7, 0x03, 0x00, 0x10, 0x00, 0x04), at(10, 0), &r)
	d.Feed(&c, Request, adu(2, 7, 0x06, 0x00, 0x05, 0x00, 0x01), at(11, time.Second), &r)
	r.msgs = nil
	d.Expire(&c, t0.Add(2*time.Second), &r) // not yet: exactly the timeout
	if len(r.msgs) != 0 {
		t.Fatalf("expired too early: %+v", r.msgs)
	}
	d.Expire(&c, t0.Add(2500*time.Millisecond), &r)
	if len(r.msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(r.msgs))
	}
	m := r.msgs[0]
	want := Message{Dir: Request, TID: 1, Unit: 7, FC: 3, HasAddr: true, Addr: 0x10, Count: 4,
		Outcome: OutcomeUnanswered}
	diffMessage(t, "unanswered", strip(m), want)
	if m.Frame != 10 || m.RequestFrame != 10 || !m.Time.Equal(t0) {
		t.Errorf("unanswered meta %+v, request frame %d", m.Meta, m.RequestFrame)
	}
	// A late response is an orphan: Feed expires by packet time first.
	r.msgs = nil
	d.Feed(&c, Response, adu(2, 7, 0x06, 0x00, 0x05, 0x00, 0x01), at(12, 4*time.Second), &r)
	if len(r.msgs) != 2 || r.msgs[0].Outcome != OutcomeUnanswered || r.msgs[1].Outcome != OutcomeOrphan {
		t.Errorf("late response: %+v", summarizeOutcomes(r.msgs))
	}
}

func summarizeOutcomes(msgs []Message) []Outcome {
	var o []Outcome
	for _, m := range msgs {
		o = append(o, m.Outcome)
	}
	return o
}

func TestUnansweredByClose(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	d.Feed(&c, Request, cat(
		adu(1, 1, 0x17, 0, 3, 0, 6, 0, 0x0E, 0, 1, 2, 0, 0xFF), // read/write registers
		adu(2, 1, 0x2B, 0x0E, 0x01, 0x00),                      // read device identification
		adu(3, 1, 0x08, 0x00, 0x04, 0x00, 0x00),                // force listen only: never answered
	), at(1, 0), &r)
	r.msgs = nil
	d.Close(&c, at(2, time.Second), &r)
	if len(r.msgs) != 2 {
		t.Fatalf("got %d messages %+v", len(r.msgs), summarizeOutcomes(r.msgs))
	}
	diffMessage(t, "FC 23", strip(r.msgs[0]), Message{Dir: Request, TID: 1, Unit: 1, FC: 23,
		HasAddr: true, Addr: 0x0E, Count: 1, ReadAddr: 3, ReadCount: 6, Outcome: OutcomeUnanswered})
	diffMessage(t, "FC 43", strip(r.msgs[1]), Message{Dir: Request, TID: 2, Unit: 1, FC: 43,
		MEI: 14, DeviceIDCode: 1, Outcome: OutcomeUnanswered})
	if c.Pending() != 0 {
		t.Errorf("pending = %d after Close", c.Pending())
	}
}

func TestPendingFullEvictsOldest(t *testing.T) {
	d := NewDecoder(Config{MaxPending: 2})
	var c Conn
	var r recorder
	d.Feed(&c, Request, cat(
		adu(1, 1, 0x03, 0x00, 0x01, 0x00, 0x01),
		adu(2, 1, 0x03, 0x00, 0x02, 0x00, 0x01),
		adu(3, 1, 0x03, 0x00, 0x03, 0x00, 0x01),
	), at(1, 0), &r)
	got := []Outcome{}
	tids := []uint16{}
	for _, m := range r.msgs {
		got = append(got, m.Outcome)
		tids = append(tids, m.TID)
	}
	want := []Outcome{OutcomeNone, OutcomeNone, OutcomeUnanswered, OutcomeNone}
	if len(got) != len(want) || got[2] != want[2] || tids[2] != 1 || tids[3] != 3 {
		t.Errorf("outcomes %v for tids %v, want %v for [1 2 1 3]", got, tids, want)
	}
	if c.Pending() != 2 {
		t.Errorf("pending = %d", c.Pending())
	}
}

func TestRetransmissionReplaces(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	d.Feed(&c, Request, adu(1, 1, 0x03, 0x00, 0x01, 0x00, 0x01), at(1, 0), &r)
	d.Feed(&c, Request, adu(1, 1, 0x03, 0x00, 0x01, 0x00, 0x01), at(2, time.Second), &r)
	if c.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", c.Pending())
	}
	d.Feed(&c, Response, adu(1, 1, 0x03, 0x02, 0x00, 0x00), at(3, 1500*time.Millisecond), &r)
	if m := r.msgs[2]; m.RequestFrame != 2 || m.Latency != 500*time.Millisecond {
		t.Errorf("paired with frame %d after %v, want the retransmission", m.RequestFrame, m.Latency)
	}
}

func TestDatagramPairs(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	d.Datagram(&c, Request, adu(1, 1, 0x04, 0x00, 0x08, 0x00, 0x01), at(1, 0), &r)
	d.Datagram(&c, Response, adu(1, 1, 0x04, 0x02, 0x00, 0x0A), at(2, 2*time.Millisecond), &r)
	if m := r.msgs[1]; m.Outcome != OutcomeOK || m.Addr != 8 || m.Latency != 2*time.Millisecond {
		t.Errorf("%+v", m)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{RequestTimeout: time.Second, MaxPending: MaxPendingLimit}, true},
		{Config{RequestTimeout: -1}, false},
		{Config{MaxPending: MaxPendingLimit + 1}, false},
		{Config{MaxPending: -1}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v", tc.cfg, err)
		}
	}
	d := NewDecoder(Config{MaxPending: 1000})
	if d.maxPending != MaxPendingLimit || d.timeout != DefaultRequestTimeout {
		t.Errorf("defaults not applied: %d %v", d.maxPending, d.timeout)
	}
}

// TestReusedTransactionID: a request that reuses the transaction id of a
// waiting request of a master that numbers its transactions is marked
// when it asks for something else; a repeat of the same request and a
// master that sends one id always are not.
func TestReusedTransactionID(t *testing.T) {
	d := NewDecoder(Config{})
	reused := func(c *Conn, frames ...[]byte) []bool {
		var r recorder
		for i, f := range frames {
			d.Feed(c, Request, f, at(uint64(i+1), time.Duration(i)*time.Millisecond), &r)
		}
		var out []bool
		for _, m := range r.msgs {
			out = append(out, m.Reused)
		}
		return out
	}
	read := func(tid uint16) []byte { return adu(tid, 1, 0x03, 0x00, 0x10, 0x00, 0x01) }
	write := func(tid uint16) []byte { return adu(tid, 1, 0x06, 0x00, 0x10, 0x00, 0x63) }
	var c Conn
	// write(2) comes under the master's current id; write(1) reuses
	// one it has moved past.
	got := reused(&c, read(1), read(2), read(2), write(2), write(1), read(3))
	if want := []bool{false, false, false, false, true, false}; !slices.Equal(got, want) {
		t.Errorf("numbered master: reused %v, want %v", got, want)
	}
	var r recorder
	d.Feed(&c, Request, read(4), at(9, 0), &r)
	d.Feed(&c, Request, write(3), at(10, 0), &r)
	if !r.msgs[1].Reused || r.msgs[1].ReusedFrame != 6 {
		t.Errorf("%+v: want reused, of frame 6", r.msgs[1])
	}
	// A master cycling through 8 ids comes back, 8 requests later, to
	// the id of a read never answered: no second sender.
	var cyc Conn
	var frames [][]byte
	for i := range 20 {
		if i == 8 {
			frames = append(frames, write(0))
			continue
		}
		frames = append(frames, read(uint16(i%8)))
	}
	for _, m := range reused(&cyc, frames...) {
		if m {
			t.Errorf("a master cycling through 8 ids: marked reused")
		}
	}
	var one Conn
	if got := reused(&one, read(0), write(0), read(0)); !slices.Equal(got, []bool{false, false, false}) {
		t.Errorf("a master with one transaction id: reused %v", got)
	}
}
