package modbus

import (
	"testing"
	"time"
)

// checker verifies what every message must satisfy and that its slices lie
// inside the consumed part of the bytes just fed.
type checker struct {
	t       *testing.T
	buf     []byte // the bytes of the current call
	pending []Message
	lastBad bool // the previous message of this direction reported skipped bytes
	msgs    int
}

func (c *checker) Message(m *Message) {
	c.msgs++
	if len(m.Values) > maxValues || len(m.Objects) > maxObjects || len(m.Records) > maxRecords {
		c.t.Fatalf("unbounded slices: %d values, %d objects, %d records", len(m.Values), len(m.Objects), len(m.Records))
	}
	if len(m.PDU) > maxLenientLength-1 && !(m.Malformed == NotModbus && len(m.PDU) <= maxADULen) {
		c.t.Fatalf("PDU of %d bytes", len(m.PDU))
	}
	if m.Dir != Request && m.Dir != Response {
		c.t.Fatalf("direction %d", m.Dir)
	}
	if m.Outcome == OutcomeUnanswered {
		if m.Dir != Request || m.PDU != nil {
			c.t.Fatalf("unanswered %+v", m)
		}
		return
	}
	if m.Malformed == NotModbus {
		if c.lastBad {
			c.t.Fatalf("one run of garbage reported twice")
		}
		c.lastBad = true
	} else {
		// A header whose length cannot be framed (reported without a PDU)
		// begins a bad run; a framed ADU ends one.
		badHeader := (m.Malformed == LengthTooShort || m.Malformed == LengthTooLong) && m.PDU == nil
		c.lastBad = badHeader || m.Malformed == Truncated
	}
	// Keep a copy of the slice positions to check once n is known.
	c.pending = append(c.pending, Message{PDU: m.PDU, Data: m.Data})
}

// within reports the offset of s inside buf, or -1.
func within(buf, s []byte) int {
	if len(s) == 0 {
		return 0
	}
	for i := range buf {
		if &buf[i] == &s[0] {
			if i+len(s) > len(buf) {
				return -1
			}
			return i
		}
	}
	return -1
}

func (c *checker) settle(n int) {
	for _, m := range c.pending {
		for _, s := range [][]byte{m.PDU, m.Data} {
			off := within(c.buf, s)
			if off < 0 || off+len(s) > n {
				c.t.Fatalf("message bytes at %d+%d outside the %d consumed bytes", off, len(s), n)
			}
		}
	}
	c.pending = c.pending[:0]
}

func fuzzSeeds(f *testing.F) {
	req, resp := trafficPairs()
	seeds := []struct {
		data []byte
		cut1 uint16
		cut2 uint16
		mode uint8
	}{
		{req, 0, 0, 0},                                                                        // a steady poll, whole
		{resp, 3, 17, 1},                                                                      // responses cut inside the header and the data
		{cat(req, resp), 7, 8, 0},                                                             // cut right after the header and after the function code
		{[]byte("GET / HTTP/1.1\r\n\r\n"), 4, 9, 0},                                           // another protocol on port 502
		{cat(readReq[3:], writeReq), 2, 5, 2},                                                 // mid-stream start inside a header
		{cat([]byte{0, 7, 0, 0, 4, 0, 1}, readReq), 0, 0, 0},                                  // length too long, then an ADU
		{cat([]byte{0, 7, 0, 0, 0, 1, 1}, readReq), 0, 0, 0},                                  // length too short
		{cat([]byte{0, 7, 0, 0, 0, 0}, readReq), 0, 0, 0},                                     // length zero
		{cat([]byte{0, 9, 0, 0, 0, 0x20, 1, 6, 0, 5, 0, 0x96}, readReq), 0, 0, 0},             // lying long length
		{cat([]byte{0, 9, 0, 0, 0, 6, 1, 0x10, 0, 5, 0, 2, 4, 0, 1, 0, 2}, readReq), 0, 0, 0}, // lying short length
		{adu(1, 1, 0x2B, 0x0E, 1, 1, 0, 0, 0xFF, 0, 0xFF), 0, 0, 1},                           // device id with 255 objects claimed
		{adu(1, 1, 0x14, 0xF5), 0, 0, 0},                                                      // file record byte count with no sub-requests
		{adu(1, 1, 0x01, 0xFA), 0, 0, 1},                                                      // coil response claiming 250 bytes, none sent
		{adu(1, 1, 0x18, 0xFF, 0xFF, 0xFF, 0xFF), 0, 0, 1},                                    // FIFO byte count 65535
		{adu(1, 1, 0x83), 0, 0, 1},                                                            // exception with no code
		{make([]byte, 64), 10, 20, 0},                                                         // zeros: tid 0, protocol 0, length 0
		{cat(readReq, []byte{0, 1, 0, 0}), 0, 0, 3},                                           // a partial header before a gap
	}
	for _, s := range seeds {
		f.Add(s.data, s.cut1, s.cut2, s.mode)
	}
}

// FuzzFeed feeds arbitrary bytes cut at two arbitrary points, keeping the
// unconsumed tail as package dpi does. mode bit 0 picks the direction, bit
// 1 a mid-stream start, bit 2 a gap before the last piece.
func FuzzFeed(f *testing.F) {
	fuzzSeeds(f)
	d := NewDecoder(Config{MaxPending: 4})
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16, mode uint8) {
		var c Conn
		c.Reset(mode&2 != 0)
		fuzzStream(t, d, &c, data, cut1, cut2, mode, maxKeep, 4)
	})
}

// fuzzStream feeds data to c in three pieces, as FuzzFeed says, and checks
// that no more than keep bytes are ever left over and no more than
// pending requests wait.
func fuzzStream(t *testing.T, d *Decoder, c *Conn, data []byte, cut1, cut2 uint16, mode uint8, keep, pending int) {
	dir := Request
	if mode&1 != 0 {
		dir = Response
	}
	h := &checker{t: t}
	cuts := []int{int(cut1) % (len(data) + 1), int(cut2) % (len(data) + 1)}
	if cuts[0] > cuts[1] {
		cuts[0], cuts[1] = cuts[1], cuts[0]
	}
	var kept []byte
	prev := 0
	total := 0
	for i, cut := range append(cuts, len(data)) {
		if i == 2 && mode&4 != 0 {
			d.Gap(c, dir, kept, Meta{Frame: uint64(i)}, h)
			h.pending = h.pending[:0]
			h.lastBad = false // a new run may begin after the hole
			total += len(kept)
			kept = nil
		}
		h.buf = append(append([]byte(nil), kept...), data[prev:cut]...)
		prev = cut
		meta := Meta{Time: t0.Add(time.Duration(i) * time.Second), Frame: uint64(i + 1)}
		n := d.Feed(c, dir, h.buf, meta, h)
		if n < 0 || n > len(h.buf) {
			t.Fatalf("Feed returned %d for %d bytes", n, len(h.buf))
		}
		if len(h.buf)-n > keep {
			t.Fatalf("keeps %d bytes, more than one message", len(h.buf)-n)
		}
		h.settle(n)
		total += n
		kept = h.buf[n:]
		if c.Pending() > pending {
			t.Fatalf("%d pending requests", c.Pending())
		}
	}
	if total+len(kept) != len(data) {
		t.Fatalf("consumed or dropped %d and kept %d of %d bytes", total, len(kept), len(data))
	}
	d.Gap(c, dir, kept, Meta{}, h)
	h.pending = h.pending[:0]
	d.Close(c, Meta{}, h)
	if c.Pending() != 0 {
		t.Fatalf("%d pending after Close", c.Pending())
	}
}

// FuzzDatagram decodes arbitrary bytes as one UDP datagram.
func FuzzDatagram(f *testing.F) {
	fuzzSeeds(f)
	d := NewDecoder(Config{})
	f.Fuzz(func(t *testing.T, data []byte, _, _ uint16, mode uint8) {
		var c Conn
		dir := Request
		if mode&1 != 0 {
			dir = Response
		}
		h := &checker{t: t, buf: data}
		d.Datagram(&c, dir, data, Meta{Time: t0, Frame: 1}, h)
		h.settle(len(data))
		d.Expire(&c, t0.Add(time.Hour), h)
		if c.Pending() != 0 {
			t.Fatalf("%d pending after expiry", c.Pending())
		}
	})
}
