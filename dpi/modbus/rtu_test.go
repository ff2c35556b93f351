package modbus

import (
	"bytes"
	"testing"
	"time"
)

// rtuADU builds an RTU frame: slave address, PDU and a CRC computed bit by
// bit, independently of the decoder's table.
func rtuADU(addr uint8, pdu ...byte) []byte {
	b := append([]byte{addr}, pdu...)
	c := uint16(0xFFFF)
	for _, x := range b {
		c ^= uint16(x)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
	}
	return append(b, byte(c), byte(c>>8))
}

// newRTU returns a decoder and an RTU connection seen from its start.
func newRTU() (*Decoder, *Conn) {
	var c Conn
	c.ResetRTU(false)
	return NewDecoder(Config{}), &c
}

func TestRTUCRC(t *testing.T) {
	// The serial line specification's example frame (§6.2.2 and
	// Appendix B): read 10 holding registers of slave 1 from address 0.
	frame := []byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD}
	if got := crc16(frame[:6]); got != 0xCDC5 {
		t.Errorf("crc16 = %#04x, want 0xcdc5 (sent C5 CD)", got)
	}
	if got := crc16(frame); got != 0 {
		t.Errorf("crc16 over the frame and its CRC = %#04x, want 0", got)
	}
	if !bytes.Equal(rtuADU(1, frame[1:6]...), frame) {
		t.Errorf("the test's own CRC disagrees: % x", rtuADU(1, frame[1:6]...))
	}
	if got := crcEnd(cat(frame, frame)); got != len(frame) {
		t.Errorf("crcEnd = %d, want %d", got, len(frame))
	}
	if got := crcEnd(frame[:7]); got != 0 {
		t.Errorf("crcEnd of a cut frame = %d, want 0", got)
	}
}

// rtuCases are frames written out one field per line, with CRCs computed
// outside this package. When req is set it is fed first as the request
// the frame answers. The PDUs are the specification's examples (§6).
var rtuCases = []decodeCase{
	{
		name: "read holding registers request",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x03,       // function code
			0x00, 0x6B, // starting address: 107
			0x00, 0x03, // quantity of registers
			0x76, 0x87, // CRC, low byte first
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 3, HasAddr: true, Addr: 107, Count: 3},
	},
	{
		name: "read holding registers response",
		dir:  Response,
		req:  rtuADU(0x11, 0x03, 0x00, 0x6B, 0x00, 0x03),
		in: []byte{
			0x11,       // slave address
			0x03,       // function code
			0x06,       // byte count
			0x02, 0x2B, // register 107: 555
			0x00, 0x00, // register 108
			0x00, 0x64, // register 109: 100
			0xC8, 0xBA, // CRC
		},
		want: Message{Dir: Response, Unit: 0x11, FC: 3, HasAddr: true, Addr: 107, Count: 3,
			Values: []uint16{555, 0, 100}, Outcome: OutcomeOK},
	},
	{
		name: "read coils request",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x01,       // function code
			0x00, 0x13, // starting address: 19
			0x00, 0x13, // quantity of coils: 19
			0x8E, 0x92, // CRC
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 1, HasAddr: true, Addr: 19, Count: 19},
	},
	{
		name: "read coils response",
		dir:  Response,
		req:  rtuADU(0x11, 0x01, 0x00, 0x13, 0x00, 0x13),
		in: []byte{
			0x11,             // slave address
			0x01,             // function code
			0x03,             // byte count
			0xCD, 0x6B, 0x05, // coils 19–26, 27–34, 35–37
			0x40, 0x12, // CRC
		},
		want: Message{Dir: Response, Unit: 0x11, FC: 1, HasAddr: true, Addr: 19, Count: 19,
			Values:  []uint16{1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1},
			Outcome: OutcomeOK},
	},
	{
		name: "write single coil request",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x05,       // function code
			0x00, 0xAC, // output address: 172
			0xFF, 0x00, // on
			0x4E, 0x8B, // CRC
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 5, HasAddr: true, Addr: 172, Count: 1, Values: []uint16{1}},
	},
	{
		name: "write single register response",
		dir:  Response,
		req:  rtuADU(0x11, 0x06, 0x00, 0x01, 0x00, 0x03),
		in: []byte{
			0x11,       // slave address
			0x06,       // function code
			0x00, 0x01, // register address
			0x00, 0x03, // value, echoed
			0x9A, 0x9B, // CRC
		},
		want: Message{Dir: Response, Unit: 0x11, FC: 6, HasAddr: true, Addr: 1, Count: 1, Values: []uint16{3}, Outcome: OutcomeOK},
	},
	{
		name: "write multiple coils request",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x0F,       // function code
			0x00, 0x13, // starting address: 19
			0x00, 0x0A, // quantity of outputs: 10
			0x02,       // byte count
			0xCD, 0x01, // outputs 19–26, 27–28
			0xBF, 0x0B, // CRC
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 15, HasAddr: true, Addr: 19, Count: 10,
			Values: []uint16{1, 0, 1, 1, 0, 0, 1, 1, 1, 0}},
	},
	{
		name: "write multiple coils response",
		dir:  Response,
		req:  rtuADU(0x11, 0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01),
		in: []byte{
			0x11,       // slave address
			0x0F,       // function code
			0x00, 0x13, // starting address
			0x00, 0x0A, // quantity of outputs
			0x26, 0x99, // CRC
		},
		want: Message{Dir: Response, Unit: 0x11, FC: 15, HasAddr: true, Addr: 19, Count: 10, Outcome: OutcomeOK},
	},
	{
		name: "write multiple registers request",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x10,       // function code
			0x00, 0x01, // starting address
			0x00, 0x02, // quantity of registers
			0x04,       // byte count
			0x00, 0x0A, // register 1: 10
			0x01, 0x02, // register 2: 258
			0xC6, 0xF0, // CRC
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 16, HasAddr: true, Addr: 1, Count: 2, Values: []uint16{10, 258}},
	},
	{
		name: "write multiple registers response",
		dir:  Response,
		req:  rtuADU(0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02),
		in: []byte{
			0x11,       // slave address
			0x10,       // function code
			0x00, 0x01, // starting address
			0x00, 0x02, // quantity of registers
			0x12, 0x98, // CRC
		},
		want: Message{Dir: Response, Unit: 0x11, FC: 16, HasAddr: true, Addr: 1, Count: 2, Outcome: OutcomeOK},
	},
	{
		name: "exception response",
		dir:  Response,
		req:  rtuADU(0x11, 0x03, 0x00, 0x6B, 0x00, 0x03),
		in: []byte{
			0x11,       // slave address
			0x83,       // function code 3 with the exception bit
			0x02,       // illegal data address
			0xC1, 0x34, // CRC
		},
		// The refused address comes from the request.
		want: Message{Dir: Response, Unit: 0x11, FC: 3, Exception: 2, HasAddr: true, Addr: 107, Count: 3, Outcome: OutcomeException},
	},
	{
		name: "diagnostics return query data (length from the CRC)",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x08,       // function code
			0x00, 0x00, // sub-function 0: return query data, any length
			0xA5, 0x37, // data
			0xD8, 0x1D, // CRC
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 8, Sub: 0, Data: []byte{0xA5, 0x37}, Values: []uint16{0xA537}},
	},
	{
		name: "user-defined function (length from the CRC)",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x41,       // function code 65, user-defined
			0x01, 0x02, // data
			0xD5, 0x5D, // CRC
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 65},
	},
	{
		name: "broadcast write",
		dir:  Request,
		in: []byte{
			0x00,       // broadcast address
			0x06,       // function code
			0x00, 0x01, // register address
			0x00, 0x03, // value
			0x99, 0xDA, // CRC
		},
		want: Message{Dir: Request, Unit: 0, FC: 6, HasAddr: true, Addr: 1, Count: 1, Values: []uint16{3}},
	},
	{
		name: "read device identification request",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x2B,       // function code 43
			0x0E,       // MEI type 14
			0x01,       // read device id code: basic
			0x00,       // object id
			0xB1, 0xB4, // CRC
		},
		want: Message{Dir: Request, Unit: 0x11, FC: 43, MEI: 14, DeviceIDCode: 1},
	},
	{
		name: "bad CRC",
		dir:  Request,
		in: []byte{
			0x11,       // slave address
			0x06,       // function code
			0x00, 0x01, // register address
			0x00, 0x03, // value
			0x9A, 0x9C, // CRC, high byte wrong (9B)
		},
		// Not decoded: the slave drops it. The whole frame is evidence.
		want: Message{Dir: Request, Unit: 0x11, FC: 6, Malformed: BadCRC},
	},
}

func TestRTUFunctionCodes(t *testing.T) {
	for _, tc := range rtuCases {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newRTU()
			var r recorder
			if tc.req != nil {
				if n := d.Feed(c, Request, tc.req, at(1, 0), &r); n != len(tc.req) {
					t.Fatalf("request: consumed %d of %d", n, len(tc.req))
				}
			}
			r.msgs = nil
			if n := d.Feed(c, tc.dir, tc.in, at(2, time.Millisecond), &r); n != len(tc.in) {
				t.Fatalf("consumed %d of %d", n, len(tc.in))
			}
			if len(r.msgs) != 1 {
				t.Fatalf("%d messages, want 1: %+v", len(r.msgs), r.msgs)
			}
			m := r.msgs[0]
			if tc.want.Malformed == BadCRC {
				if !bytes.Equal(m.PDU, tc.in) || m.HasFunction() {
					t.Errorf("bad CRC: PDU % x, has function %v; want the frame, false", m.PDU, m.HasFunction())
				}
			} else if !bytes.Equal(m.PDU, tc.in[1:len(tc.in)-2]) {
				t.Errorf("PDU % x, want % x", m.PDU, tc.in[1:len(tc.in)-2])
			}
			diffMessage(t, tc.name, strip(m), tc.want)
			if m.Outcome == OutcomeOK && (m.RequestFrame != 1 || m.Latency != time.Millisecond) {
				t.Errorf("paired with frame %d after %v, want frame 1 after 1ms", m.RequestFrame, m.Latency)
			}
			// A request waits for its response, except a broadcast and a
			// frame its slave dropped.
			wantPending := 0
			if tc.dir == Request && tc.want.Unit != 0 && tc.want.Malformed == 0 {
				wantPending = 1
			}
			if c.Pending() != wantPending {
				t.Errorf("pending %d, want %d", c.Pending(), wantPending)
			}
		})
	}
}

// The same PDUs framed by MBAP and by RTU decode to the same message, but
// for the transaction id.
func TestRTUSameAsMBAP(t *testing.T) {
	for _, tc := range rtuCases {
		if tc.want.Malformed != 0 {
			continue
		}
		pdu := tc.in[1 : len(tc.in)-2]
		var viaTCP, viaRTU recorder
		dt, dr := NewDecoder(Config{}), NewDecoder(Config{})
		var ct Conn
		_, cr := newRTU()
		if tc.req != nil {
			dt.Feed(&ct, Request, adu(9, tc.req[0], tc.req[1:len(tc.req)-2]...), at(1, 0), &viaTCP)
			dr.Feed(cr, Request, tc.req, at(1, 0), &viaRTU)
		}
		dt.Feed(&ct, tc.dir, adu(9, tc.in[0], pdu...), at(2, 0), &viaTCP)
		dr.Feed(cr, tc.dir, tc.in, at(2, 0), &viaRTU)
		if len(viaTCP.msgs) != len(viaRTU.msgs) {
			t.Fatalf("%s: %d messages over MBAP, %d over RTU", tc.name, len(viaTCP.msgs), len(viaRTU.msgs))
		}
		for i := range viaTCP.msgs {
			m := viaTCP.msgs[i]
			m.TID = 0
			diffMessage(t, tc.name, viaRTU.msgs[i], m)
		}
	}
}

var (
	rtuRead  = rtuADU(1, 0x03, 0x00, 0x10, 0x00, 0x02)                   // read 2 holding registers at 16
	rtuWrite = rtuADU(1, 0x06, 0x00, 0x05, 0x00, 0x96)                   // write 150 to register 5
	rtuMulti = rtuADU(1, 0x10, 0x00, 0x07, 0x00, 0x01, 0x02, 0x00, 0x09) // write 9 to register 7
	rtuEcho  = rtuADU(1, 0x08, 0x00, 0x00, 0x12, 0x34, 0x56)             // FC 8 return query data: length from the CRC
)

// badCRC returns frame with its CRC spoiled.
func badCRC(frame []byte) []byte {
	b := bytes.Clone(frame)
	b[len(b)-1] ^= 0xFF
	return b
}

func TestRTUBadCRC(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []summary
	}{
		{"between frames", cat(rtuRead, badCRC(rtuWrite), rtuMulti),
			[]summary{{3, 0, 0}, {6, 0, BadCRC}, {3, 0, 0}, {16, 0, 0}}}, // the read is given up on when the next request comes
		{"at the end of the data", cat(rtuRead, badCRC(rtuWrite)),
			[]summary{{3, 0, 0}, {6, 0, BadCRC}}},
		{"first on the connection", cat(badCRC(rtuWrite), rtuRead),
			[]summary{{6, 0, BadCRC}, {3, 0, 0}}},
		// Without a length from the function code, a wrong CRC cannot
		// delimit a frame: its bytes are skipped.
		{"length from the CRC", cat(rtuRead, badCRC(rtuEcho), rtuMulti),
			[]summary{{3, 0, 0}, {0, 0, NotModbus}, {3, 0, 0}, {16, 0, 0}}},
		// Followed by bytes that cannot start a frame, the bytes are not
		// taken for a frame either.
		{"followed by garbage", cat(rtuRead, badCRC(rtuWrite), []byte{0xFF, 0xFF}, rtuMulti),
			[]summary{{3, 0, 0}, {0, 0, NotModbus}, {3, 0, 0}, {16, 0, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newRTU()
			var r recorder
			if n := d.Feed(c, Request, tc.data, at(1, 0), &r); n != len(tc.data) {
				t.Fatalf("consumed %d of %d", n, len(tc.data))
			}
			wantSummary(t, r.msgs, tc.want...)
			for _, m := range r.msgs {
				if m.Malformed == BadCRC && !bytes.Equal(m.PDU, badCRC(rtuWrite)) {
					t.Errorf("bad CRC evidence % x, want the frame", m.PDU)
				}
			}
		})
	}
}

// A response with a wrong CRC is not paired: the master would retry, and
// the response to the retry is.
func TestRTUBadCRCResponse(t *testing.T) {
	d, c := newRTU()
	var r recorder
	resp := rtuADU(1, 0x03, 0x04, 0x00, 0x07, 0x01, 0x2C)
	d.Feed(c, Request, rtuRead, at(1, 0), &r)
	d.Feed(c, Response, badCRC(resp), at(2, time.Millisecond), &r)
	d.Feed(c, Request, rtuRead, at(3, 2*time.Millisecond), &r)
	d.Feed(c, Response, resp, at(4, 3*time.Millisecond), &r)
	wantSummary(t, r.msgs, summary{3, 0, 0}, summary{3, 0, BadCRC}, summary{3, 0, 0}, summary{3, 0, 0}, summary{3, 0, 0})
	if o := r.msgs[1].Outcome; o != OutcomeNone {
		t.Errorf("bad CRC response outcome %v, want none", o)
	}
	if m := r.msgs[2]; m.Outcome != OutcomeUnanswered || m.Frame != 1 {
		t.Errorf("first request: outcome %v frame %d, want unanswered frame 1", m.Outcome, m.Frame)
	}
	if m := r.msgs[4]; m.Outcome != OutcomeOK || m.RequestFrame != 3 || len(m.Values) != 2 || m.Values[1] != 300 {
		t.Errorf("response to the retry: %+v", m)
	}
}

func TestRTUResyncAfterGarbage(t *testing.T) {
	junk := []byte("GET / HTTP/1.1\r\nHost: plc\r\n\r\n")
	d, c := newRTU()
	var r recorder
	data := cat(junk, rtuRead, junk, rtuWrite, rtuMulti)
	if n := d.Feed(c, Request, data, at(1, 0), &r); n != len(data) {
		t.Fatalf("consumed %d of %d", n, len(data))
	}
	wantSummary(t, r.msgs,
		summary{0, 0, NotModbus},
		summary{3, 0, 0},
		summary{0, 0, NotModbus},
		summary{3, 0, 0}, // the read, unanswered
		summary{6, 0, 0},
		summary{6, 0, 0}, // the write, unanswered
		summary{16, 0, 0})
	for _, i := range []int{0, 2} {
		if m := r.msgs[i]; !bytes.Equal(m.PDU, junk) || m.AfterLoss {
			t.Errorf("message %d: skipped %q (after loss %v), want %q", i, m.PDU, m.AfterLoss, junk)
		}
	}
}

// Garbage that looks like the start of a frame of unknown length right
// after a frame is held, up to the largest frame, and then skipped; a
// frame after it is found.
func TestRTUGarbageAfterFrame(t *testing.T) {
	junk := bytes.Repeat([]byte{0x01, 0x41, 0x00}, 100) // slave 1, user-defined FC 65, no CRC anywhere
	d, c := newRTU()
	var r recorder
	left := feedAll(d, c, Request, cat(rtuRead, junk, rtuWrite), []int{len(rtuRead) + 10, len(rtuRead) + 200}, at(1, 0), &r)
	if len(left) != 0 {
		t.Fatalf("%d bytes left", len(left))
	}
	wantSummary(t, r.msgs, summary{3, 0, 0}, summary{0, 0, NotModbus}, summary{3, 0, 0}, summary{6, 0, 0})
	if got := r.msgs[1].PDU; !bytes.Equal(got, junk[:maxADULen]) {
		t.Errorf("skipped % x, want the first %d bytes of the garbage", got, maxADULen)
	}
}

// Every way to cut three frames into three segments, the frame whose
// length only its CRC tells among them, decodes the same.
func TestRTUSplit(t *testing.T) {
	data := cat(rtuMulti, rtuEcho, rtuRead)
	want := []summary{{16, 0, 0}, {16, 0, 0}, {8, 0, 0}, {8, 0, 0}, {3, 0, 0}} // each request leaves the one before unanswered
	for i := 1; i < len(data); i++ {
		for j := i; j < len(data); j++ {
			d, c := newRTU()
			var r recorder
			left := feedAll(d, c, Request, data, []int{i, j}, at(1, 0), &r)
			if len(left) != 0 {
				t.Fatalf("cuts %d,%d: %d bytes left", i, j, len(left))
			}
			if got := summarize(r.msgs); len(got) != len(want) {
				t.Fatalf("cuts %d,%d: %+v", i, j, got)
			}
			wantSummary(t, r.msgs, want...)
			if v := r.msgs[0].Values; len(v) != 1 || v[0] != 9 {
				t.Fatalf("cuts %d,%d: values %v", i, j, v)
			}
			if got := r.msgs[2].Data; !bytes.Equal(got, []byte{0x12, 0x34, 0x56}) {
				t.Fatalf("cuts %d,%d: echo data % x", i, j, got)
			}
		}
	}
}

func TestRTUMidStream(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	c.ResetRTU(true)
	var r recorder
	data := cat(rtuMulti[3:], rtuRead, rtuWrite) // the capture began inside a frame
	if n := d.Feed(&c, Request, data, at(1, 0), &r); n != len(data) {
		t.Fatalf("consumed %d of %d", n, len(data))
	}
	wantSummary(t, r.msgs, summary{0, 0, NotModbus}, summary{3, 0, 0}, summary{3, 0, 0}, summary{6, 0, 0})
	if m := r.msgs[0]; !m.AfterLoss || !bytes.Equal(m.PDU, rtuMulti[3:]) {
		t.Errorf("skipped % x after loss %v, want % x after loss", m.PDU, m.AfterLoss, rtuMulti[3:])
	}
}

// Bytes held before a hole are reported as a truncated frame, and framing
// resyncs after it.
func TestRTUGap(t *testing.T) {
	d, c := newRTU()
	var r recorder
	held := feedAll(d, c, Request, cat(rtuRead, rtuMulti[:6]), nil, at(1, 0), &r)
	if !bytes.Equal(held, rtuMulti[:6]) {
		t.Fatalf("held % x", held)
	}
	d.Gap(c, Request, held, at(2, 0), &r)
	data := cat(rtuMulti[4:], rtuWrite) // the rest of some frame after the hole
	if n := d.Feed(c, Request, data, at(3, 0), &r); n != len(data) {
		t.Fatalf("consumed %d of %d", n, len(data))
	}
	wantSummary(t, r.msgs, summary{3, 0, 0}, summary{16, 0, Truncated}, summary{0, 0, NotModbus}, summary{3, 0, 0}, summary{6, 0, 0})
	if m := r.msgs[1]; m.Unit != 1 || !bytes.Equal(m.PDU, rtuMulti[1:6]) {
		t.Errorf("truncated: unit %d PDU % x", m.Unit, m.PDU)
	}
	if !r.msgs[2].AfterLoss {
		t.Error("bytes after the hole not marked after loss")
	}
}

func TestRTUPairing(t *testing.T) {
	d, c := newRTU()
	var r recorder
	readResp := rtuADU(1, 0x03, 0x04, 0x00, 0x07, 0x01, 0x2C)
	feed := func(dir Direction, frame []byte, ms int) {
		t.Helper()
		if n := d.Feed(c, dir, frame, at(uint64(ms), time.Duration(ms)*time.Millisecond), &r); n != len(frame) {
			t.Fatalf("consumed %d of %d", n, len(frame))
		}
	}
	feed(Request, rtuRead, 1)
	feed(Response, rtuADU(2, 0x03, 0x02, 0x00, 0x01), 2) // slave 2 did not get the request
	feed(Response, readResp, 3)
	feed(Response, readResp, 4)                               // answers nothing now
	feed(Request, rtuADU(0, 0x06, 0x00, 0x05, 0x00, 0x96), 5) // broadcast: no answer expected
	feed(Request, rtuWrite, 6)
	feed(Request, rtuRead, 7) // the write went unanswered
	d.Expire(c, t0.Add(time.Minute), &r)

	type outcome struct {
		dir     Direction
		unit    uint8
		fc      uint8
		outcome Outcome
		frame   uint64
		reqFrom uint64
	}
	var got []outcome
	for _, m := range r.msgs {
		got = append(got, outcome{m.Dir, m.Unit, m.FC, m.Outcome, m.Frame, m.RequestFrame})
	}
	want := []outcome{
		{Request, 1, 3, OutcomeNone, 1, 0},
		{Response, 2, 3, OutcomeOrphan, 2, 0},
		{Response, 1, 3, OutcomeOK, 3, 1},
		{Response, 1, 3, OutcomeOrphan, 4, 0},
		{Request, 0, 6, OutcomeNone, 5, 0},
		{Request, 1, 6, OutcomeNone, 6, 0},
		{Request, 1, 6, OutcomeUnanswered, 6, 6},
		{Request, 1, 3, OutcomeNone, 7, 0},
		{Request, 1, 3, OutcomeUnanswered, 7, 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if m := r.msgs[2]; m.Latency != 2*time.Millisecond || len(m.Values) != 2 || m.Values[0] != 7 {
		t.Errorf("paired response: latency %v values %v", m.Latency, m.Values)
	}
}

func TestRTUDatagram(t *testing.T) {
	d, c := newRTU()
	var r recorder
	d.Datagram(c, Request, cat(rtuRead, rtuWrite[:5]), at(1, 0), &r)
	d.Datagram(c, Request, cat([]byte{0xFF}, rtuWrite), at(2, 0), &r)
	wantSummary(t, r.msgs, summary{3, 0, 0}, summary{6, 0, Truncated}, summary{0, 0, NotModbus}, summary{3, 0, 0}, summary{6, 0, 0})
}

// However the bytes come, Feed never holds more than one frame.
func TestRTUKeepsAtMostOneFrame(t *testing.T) {
	streams := map[string][]byte{
		"unknown lengths": bytes.Repeat([]byte{0x01, 0x41}, 600),
		"byte counts":     bytes.Repeat([]byte{0x01, 0x03, 0xFA}, 400),
		"frames":          bytes.Repeat(cat(rtuEcho, rtuMulti), 40),
	}
	for name, data := range streams {
		for _, framed := range []bool{false, true} {
			d, c := newRTU()
			h := &countHandler{}
			var buf []byte
			if framed {
				buf = bytes.Clone(rtuRead)
			}
			for i := range data {
				buf = append(buf, data[i])
				n := d.Feed(c, Request, buf, Meta{}, h)
				buf = buf[n:]
				if len(buf) >= rtuMaxFrame {
					t.Fatalf("%s: holds %d bytes", name, len(buf))
				}
			}
		}
	}
}

func TestRTUFeedAllocs(t *testing.T) {
	d, c := newRTU()
	h := &countHandler{}
	req := cat(rtuRead, rtuADU(1, 0x10, 0x00, 0xC8, 0x00, 0x04, 0x08, 0, 1, 0, 2, 0, 3, 0, 4))
	resp := cat(rtuADU(1, 0x03, 0x04, 0, 1, 0, 2), rtuADU(1, 0x10, 0x00, 0xC8, 0x00, 0x04))
	meta := at(1, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		meta.Frame++
		meta.Time = meta.Time.Add(time.Millisecond)
		if n := d.Feed(c, Request, req[:len(rtuRead)], meta, h); n != len(rtuRead) {
			t.Fatalf("consumed %d", n)
		}
		if n := d.Feed(c, Response, resp[:9], meta, h); n != 9 {
			t.Fatalf("consumed %d", n)
		}
		if n := d.Feed(c, Request, req[len(rtuRead):], meta, h); n != len(req)-len(rtuRead) {
			t.Fatalf("consumed %d", n)
		}
		if n := d.Feed(c, Response, resp[9:], meta, h); n != len(resp)-9 {
			t.Fatalf("consumed %d", n)
		}
	})
	if allocs != 0 {
		t.Errorf("Feed allocates %v times per two request/response pairs, want 0", allocs)
	}
	if h.n == 0 || h.values == 0 || c.Pending() != 0 {
		t.Errorf("messages %d, values %d, pending %d", h.n, h.values, c.Pending())
	}
}

func BenchmarkFeedRTU(b *testing.B) {
	d, c := newRTU()
	h := &countHandler{}
	req := rtuRead
	resp := rtuADU(1, 0x03, 0x04, 0, 1, 0, 2)
	meta := at(1, 0)
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		meta.Frame++
		d.Feed(c, Request, req, meta, h)
		d.Feed(c, Response, resp, meta, h)
	}
}

// BenchmarkFeedRTUResync measures the worst cases of resyncing: garbage
// crafted so that every other byte may start a frame of unknown length
// (each a CRC search), or every third one a frame of 255 bytes (each a CRC
// of that length), and random bytes.
func BenchmarkFeedRTUResync(b *testing.B) {
	random := make([]byte, 2048)
	for i := range random {
		random[i] = byte(i*7919 + i*i*31 + i>>3)
	}
	for _, bc := range []struct {
		name string
		junk []byte
	}{
		{"unknown-lengths", bytes.Repeat([]byte{0x01, 0x41}, 1024)},
		{"long-byte-counts", bytes.Repeat([]byte{0x01, 0x03, 0xFA}, 683)},
		{"random", random},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDecoder(Config{})
			var c Conn
			c.ResetRTU(true)
			h := &countHandler{}
			b.SetBytes(int64(len(bc.junk)))
			b.ReportAllocs()
			for b.Loop() {
				d.Feed(&c, Response, bc.junk, Meta{}, h)
			}
		})
	}
}

// FuzzRTUFeed feeds arbitrary bytes to an RTU connection cut at two
// arbitrary points, keeping the unconsumed tail as package dpi does. mode
// bit 0 picks the direction, bit 1 a mid-stream start, bit 2 a gap before
// the last piece, bit 3 decodes the bytes as one datagram instead.
func FuzzRTUFeed(f *testing.F) {
	resp := rtuADU(1, 0x03, 0x04, 0x00, 0x07, 0x01, 0x2C)
	seeds := []struct {
		data       []byte
		cut1, cut2 uint16
		mode       uint8
	}{
		{cat(rtuRead, rtuWrite, rtuMulti), 0, 0, 0},                      // requests, whole
		{cat(resp, resp), 3, 9, 1},                                       // responses cut inside a frame
		{cat(rtuMulti, rtuEcho, rtuRead), 13, 15, 0},                     // a frame of unknown length cut in three
		{cat(rtuRead, badCRC(rtuWrite), rtuMulti), 0, 0, 0},              // a wrong CRC between frames
		{cat(rtuRead, badCRC(rtuEcho), rtuMulti), 0, 0, 0},               // a wrong CRC on a frame of unknown length
		{cat([]byte("GET / HTTP/1.1\r\n\r\n"), rtuRead), 4, 9, 0},        // another protocol on the port
		{cat(rtuMulti[3:], rtuRead), 2, 5, 2},                            // mid-stream start inside a frame
		{cat(rtuRead, rtuMulti[:6], rtuWrite), 8, 14, 4},                 // a gap inside a frame
		{bytes.Repeat([]byte{0x01, 0x41}, 200), 100, 300, 0},             // every byte may start a frame of unknown length
		{bytes.Repeat([]byte{0x01, 0x03, 0xFA}, 120), 7, 200, 1},         // byte counts promising the largest frames
		{rtuADU(1, 0x2B, 0x0E, 1, 1, 0, 0, 0xFF, 0, 0xFF), 0, 0, 1},      // device id claiming 255 objects
		{rtuADU(1, 0x83), 0, 0, 1},                                       // exception with no code
		{cat(rtuRead, rtuADU(0, 0x06, 0, 1, 0, 2), resp), 0, 0, 0},       // a broadcast
		{cat(rtuRead, rtuWrite[:5]), 0, 0, 8},                            // a datagram ending inside a frame
		{make([]byte, 64), 10, 20, 0},                                    // zeros: address 0, function 0
		{bytes.Repeat([]byte{0xFF}, 40), 0, 0, 3},                        // reserved addresses only
		{cat(rtuRead, rtuADU(1, 0x10, 0, 1, 0, 9, 0x02, 0, 1)), 0, 0, 0}, // a byte count that disagrees with the quantity
	}
	for _, s := range seeds {
		f.Add(s.data, s.cut1, s.cut2, s.mode)
	}
	d := NewDecoder(Config{MaxPending: 4})
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16, mode uint8) {
		var c Conn
		c.ResetRTU(mode&2 != 0)
		if mode&8 == 0 {
			// At most one frame is kept, and one request waits.
			fuzzStream(t, d, &c, data, cut1, cut2, mode, rtuMaxFrame-1, 1)
			return
		}
		dir := Request
		if mode&1 != 0 {
			dir = Response
		}
		h := &checker{t: t, buf: data}
		d.Datagram(&c, dir, data, Meta{Time: t0, Frame: 1}, h)
		h.settle(len(data))
		d.Close(&c, Meta{}, h)
	})
}
