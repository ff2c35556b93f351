package modbus

import (
	"bytes"
	"testing"
	"unsafe"
)

var (
	readReq   = adu(1, 1, 0x03, 0x00, 0x10, 0x00, 0x02)             // read 2 holding registers at 16
	writeReq  = adu(2, 1, 0x06, 0x00, 0x05, 0x00, 0x96)             // write 150 to register 5
	write2Req = adu(3, 1, 0x10, 0x00, 0x07, 0x00, 0x01, 0x02, 0, 9) // write 9 to register 7
)

// summary is what the framing tests compare: function, transaction id and
// malformation of each message.
type summary struct {
	FC        uint8
	TID       uint16
	Malformed Reason
}

func summarize(msgs []Message) []summary {
	var s []summary
	for _, m := range msgs {
		s = append(s, summary{m.FC, m.TID, m.Malformed})
	}
	return s
}

func wantSummary(t *testing.T, got []Message, want ...summary) {
	t.Helper()
	g := summarize(got)
	if len(g) != len(want) {
		t.Fatalf("got %d messages %+v, want %d %+v", len(g), g, len(want), want)
	}
	for i := range want {
		if g[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, g[i], want[i])
		}
	}
}

func TestFeedSeveralADUs(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	data := cat(readReq, writeReq, write2Req)
	if n := d.Feed(&c, Request, data, at(1, 0), &r); n != len(data) {
		t.Fatalf("consumed %d of %d", n, len(data))
	}
	wantSummary(t, r.msgs, summary{3, 1, 0}, summary{6, 2, 0}, summary{16, 3, 0})
	if c.Pending() != 3 {
		t.Errorf("pending = %d, want 3", c.Pending())
	}
}

func TestFeedSplitADU(t *testing.T) {
	data := cat(write2Req, readReq)
	// Every way to cut the first ADU in three.
	for i := 1; i < len(write2Req); i++ {
		for j := i; j < len(write2Req); j++ {
			d := NewDecoder(Config{})
			var c Conn
			var r recorder
			left := feedAll(d, &c, Request, data, []int{i, j}, at(1, 0), &r)
			if len(left) != 0 {
				t.Fatalf("cuts %d,%d: %d bytes left", i, j, len(left))
			}
			wantSummary(t, r.msgs, summary{16, 3, 0}, summary{3, 1, 0})
			if got := r.msgs[0].Values; len(got) != 1 || got[0] != 9 {
				t.Fatalf("cuts %d,%d: values %v", i, j, got)
			}
		}
	}
}

func TestFeedIncompleteLeavesBytes(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	data := cat(readReq, writeReq[:9])
	if n := d.Feed(&c, Request, data, at(1, 0), &r); n != len(readReq) {
		t.Fatalf("consumed %d, want %d", n, len(readReq))
	}
	wantSummary(t, r.msgs, summary{3, 1, 0})
}

func TestFeedResyncAfterGarbage(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	junk := []byte("GET / HTTP/1.1\r\nHost: plc\r\n\r\n")
	data := cat(readReq, junk, writeReq, junk, junk, write2Req)
	if n := d.Feed(&c, Request, data, at(1, 0), &r); n != len(data) {
		t.Fatalf("consumed %d of %d", n, len(data))
	}
	wantSummary(t, r.msgs,
		summary{3, 1, 0},
		summary{0, 0, NotModbus},
		summary{6, 2, 0},
		summary{0, 0, NotModbus},
		summary{16, 3, 0})
	if !bytes.Equal(r.msgs[1].PDU, junk) {
		t.Errorf("skipped %q, want %q", r.msgs[1].PDU, junk)
	}
	if r.msgs[1].Dir != Request || r.msgs[1].AfterLoss {
		t.Errorf("garbage reported with direction %v, after loss %v", r.msgs[1].Dir, r.msgs[1].AfterLoss)
	}
}

// A run of garbage spread over many Feed calls is reported once.
func TestFeedGarbageReportedOncePerRun(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	junk := bytes.Repeat([]byte("\xde\xad\xbe\xef not modbus "), 400)
	data := cat(readReq, junk, writeReq)
	cuts := []int{}
	for i := 100; i < len(data); i += 997 {
		cuts = append(cuts, i)
	}
	var buf []byte
	prev := 0
	for _, cut := range append(cuts, len(data)) {
		buf = append(buf, data[prev:cut]...)
		prev = cut
		n := d.Feed(&c, Request, buf, at(1, 0), &r)
		buf = buf[n:]
		if len(buf) > maxKeep {
			t.Fatalf("keeps %d bytes, more than one ADU", len(buf))
		}
	}
	wantSummary(t, r.msgs, summary{3, 1, 0}, summary{0, 0, NotModbus}, summary{6, 2, 0})
}

func TestFeedMidStream(t *testing.T) {
	tailOfADU := write2Req[5:] // the capture began inside an ADU
	tests := []struct {
		name string
		data []byte
		want []summary
	}{
		{"at a boundary", cat(readReq, writeReq), []summary{{3, 1, 0}, {6, 2, 0}}},
		{"inside an ADU", cat(tailOfADU, readReq, writeReq), []summary{{0, 0, NotModbus}, {3, 1, 0}, {6, 2, 0}}},
		{"inside a header", cat(readReq[3:], writeReq, readReq), []summary{{0, 0, NotModbus}, {6, 2, 0}, {3, 1, 0}}},
		{"inside garbage", cat(bytes.Repeat([]byte{0xFF}, 600), writeReq), []summary{{0, 0, NotModbus}, {6, 2, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Config{})
			var c Conn
			c.Reset(true)
			var r recorder
			if n := d.Feed(&c, Request, tc.data, at(1, 0), &r); n != len(tc.data) {
				t.Fatalf("consumed %d of %d", n, len(tc.data))
			}
			wantSummary(t, r.msgs, tc.want...)
			if m := r.msgs[0]; m.Malformed == NotModbus && !m.AfterLoss {
				t.Errorf("skipped bytes at a mid-stream start not marked AfterLoss")
			}
		})
	}
}

// A candidate header that the next header contradicts is not believed.
func TestFeedMidStreamConfirmsWithNextHeader(t *testing.T) {
	fake := []byte{
		0xAA,       // the last byte of some ADU
		0x00, 0x05, // looks like a transaction id
		0x00, 0x00, // a protocol id
		0x00, 0x06, // a length
		0x01,       // a unit id
		0x06,       // write single register, whose 5-byte PDU would end
		0x00, 0x01, // two bytes into readReq, where no header starts
	}
	data := cat(fake, readReq, writeReq)
	d := NewDecoder(Config{})
	var c Conn
	c.Reset(true)
	var r recorder
	if n := d.Feed(&c, Request, data, at(1, 0), &r); n != len(data) {
		t.Fatalf("consumed %d of %d", n, len(data))
	}
	wantSummary(t, r.msgs, summary{0, 0, NotModbus}, summary{3, 1, 0}, summary{6, 2, 0})
	if !bytes.Equal(r.msgs[0].PDU, fake) {
		t.Errorf("skipped %x, want %x", r.msgs[0].PDU, fake)
	}
}

func TestFeedLyingLength(t *testing.T) {
	tests := []struct {
		name  string
		first []byte
		want  []summary
	}{
		{
			name: "length claims more than the PDU",
			first: []byte{
				0x00, 0x09, // transaction id
				0x00, 0x00, // protocol id
				0x00, 0x20, // length: 32, would swallow the next ADU
				0x01,       // unit id
				0x06,       // write single register
				0x00, 0x05, // register address
				0x00, 0x96, // register value
			},
			want: []summary{{6, 9, LengthMismatch}, {3, 1, 0}, {6, 2, 0}},
		},
		{
			name: "length claims less than the PDU",
			first: []byte{
				0x00, 0x09, // transaction id
				0x00, 0x00, // protocol id
				0x00, 0x06, // length: too short for 4 registers
				0x01,       // unit id
				0x10,       // write multiple registers
				0x00, 0x05, // starting address
				0x00, 0x04, // quantity
				0x08,       // byte count
				0x00, 0x01, // registers
				0x00, 0x02,
				0x00, 0x03,
				0x00, 0x04,
			},
			want: []summary{{16, 9, LengthMismatch}, {3, 1, 0}, {6, 2, 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Config{})
			var c Conn
			var r recorder
			data := cat(tc.first, readReq, writeReq)
			if n := d.Feed(&c, Request, data, at(1, 0), &r); n != len(data) {
				t.Fatalf("consumed %d of %d", n, len(data))
			}
			wantSummary(t, r.msgs, tc.want...)
		})
	}
}

func TestFeedLengthTooLongThenResync(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	bad := []byte{
		0x00, 0x07, // transaction id
		0x00, 0x00, // protocol id
		0x04, 0x00, // length: 1024
		0x01, // unit id
	}
	data := cat(bad, bytes.Repeat([]byte{0x55}, 1017), readReq)
	left := feedAll(d, &c, Request, data, []int{300, 700}, at(1, 0), &r)
	if len(left) != 0 {
		t.Fatalf("%d bytes left", len(left))
	}
	// The claimed 1024 bytes are not reported again as garbage.
	wantSummary(t, r.msgs, summary{0, 7, LengthTooLong}, summary{3, 1, 0})
}

func TestGap(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	// The first 9 bytes of writeReq arrived, then a hole, then the tail of
	// some other ADU and a whole one.
	pending := writeReq[:9]
	d.Gap(&c, Request, pending, at(5, 0), &r)
	after := cat(write2Req[4:], readReq)
	if n := d.Feed(&c, Request, after, at(6, 0), &r); n != len(after) {
		t.Fatalf("consumed %d of %d", n, len(after))
	}
	wantSummary(t, r.msgs, summary{6, 2, Truncated}, summary{0, 0, NotModbus}, summary{3, 1, 0})
	if !r.msgs[1].AfterLoss {
		t.Errorf("bytes skipped after a gap not marked AfterLoss")
	}
	if r.msgs[0].Frame != 5 || r.msgs[0].Unit != 1 {
		t.Errorf("truncated message %+v", r.msgs[0])
	}
	if c.Pending() != 1 {
		t.Errorf("a truncated request was remembered: pending = %d", c.Pending())
	}
}

func TestDatagram(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []summary
	}{
		{"one ADU", readReq, []summary{{3, 1, 0}}},
		{"two ADUs", cat(readReq, writeReq), []summary{{3, 1, 0}, {6, 2, 0}}},
		{"leftover header", cat(readReq, writeReq[:10]), []summary{{3, 1, 0}, {6, 2, Truncated}}},
		{"leftover garbage", cat(readReq, []byte("xyzzy")), []summary{{3, 1, 0}, {0, 0, NotModbus}}},
		{"MBAP longer than the datagram", cat(readReq[:5], []byte{0x30}, readReq[6:]), []summary{{3, 1, LengthMismatch}}},
		{"empty", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Config{})
			var c Conn
			var r recorder
			d.Datagram(&c, Request, tc.data, at(1, 0), &r)
			wantSummary(t, r.msgs, tc.want...)
		})
	}
}

func TestInvalidDirection(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	if n := d.Feed(&c, 0, readReq, at(1, 0), &r); n != len(readReq) {
		t.Errorf("consumed %d of %d", n, len(readReq))
	}
	d.Datagram(&c, 3, readReq, at(1, 0), &r)
	d.Gap(&c, 0, readReq[:3], at(1, 0), &r)
	if len(r.msgs) != 0 {
		t.Errorf("got messages %+v", r.msgs)
	}
}

func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 600 {
		t.Errorf("Conn is %d bytes, want at most 600", size)
	}
}

// Schneider devices send UMAS (FC 90) ADUs with length 255, one over the
// limit: they are framed and flagged, and framing carries on.
func TestFeedLengthSlightlyTooLong(t *testing.T) {
	long := adu(4, 1, append([]byte{0x5A, 0x00}, make([]byte, 252)...)...) // length 255
	if long[5] != 255 {
		t.Fatalf("length %d", long[5])
	}
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	data := cat(long, readReq)
	left := feedAll(d, &c, Request, data, []int{100, 258}, at(1, 0), &r)
	if len(left) != 0 {
		t.Fatalf("%d bytes left", len(left))
	}
	wantSummary(t, r.msgs, summary{90, 4, LengthTooLong}, summary{3, 1, 0})
}

// After garbage, framing resyncs on reserved and user-defined function
// codes too, as UMAS traffic is all FC 90.
func TestFeedResyncOnReservedFunction(t *testing.T) {
	umas := adu(5, 1, 0x5A, 0x00, 0x02)
	d := NewDecoder(Config{})
	var c Conn
	var r recorder
	data := cat([]byte("junk"), umas, umas)
	if n := d.Feed(&c, Request, data, at(1, 0), &r); n != len(data) {
		t.Fatalf("consumed %d of %d", n, len(data))
	}
	wantSummary(t, r.msgs, summary{0, 0, NotModbus}, summary{90, 5, ReservedFunction}, summary{90, 5, ReservedFunction})
}
