package dnp3

import (
	"testing"
	"unsafe"
)

// countHandler counts messages without keeping them.
type countHandler struct{ n, truncated, anomalies int }

func (h *countHandler) Message(m *Message) {
	h.n++
	if m.Truncated {
		h.truncated++
	}
	if m.Anomalies != 0 {
		h.anomalies++
	}
}

// steadyStream is a conversation with multi-segment fragments, single
// segment requests, link frames, and a select-before-operate.
func steadyStream() (requests, responses []byte) {
	requests = joinBytes(
		segFrame(ctlMasterData, outstation, master1, true, true, 0, readClass1),
		frameResetLink,
		segFrame(ctlMasterData, outstation, master1, true, true, 1, request(FuncSelect, 1, crob(5, 3))),
		segFrame(ctlMasterData, outstation, master1, true, true, 2, request(FuncOperate, 2, crob(5, 3))),
		segments(ctlMasterData, outstation, master1, 3, request(FuncSelect, 3, analogOutputs(60, 7))),
		segments(ctlMasterData, outstation, master1, 5, request(FuncOperate, 4, analogOutputs(60, 7))),
	)
	responses = joinBytes(
		segments(ctlOutstationData, master1, outstation, 60, analogResponse(120)),
		frameLinkStatus,
		segments(ctlOutstationData, master1, outstation, 63, analogResponse(200)),
	)
	return requests, responses
}

// playStream feeds b in chunks of chunk bytes the way package dpi does,
// keeping the unconsumed bytes in held.
func playStream(d *Decoder, c *Conn, side Side, b []byte, chunk int, held *[]byte, h Handler) {
	for len(b) > 0 {
		k := min(chunk, len(b))
		buf := append(*held, b[:k]...)
		n := d.Feed(c, side, buf, Meta{}, h)
		*held = append(buf[:0], buf[n:]...)
		b = b[k:]
	}
}

func TestFeedAllocs(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	c.Reset(false)
	h := &countHandler{}
	req, resp := steadyStream()
	reqHeld, respHeld := make([]byte, 0, 1024), make([]byte, 0, 1024)
	run := func() {
		playStream(d, &c, FromClient, req, 100, &reqHeld, h)
		playStream(d, &c, FromServer, resp, 333, &respHeld, h)
		d.Datagram(&c, FromServer, resp, Meta{}, h)
	}
	run() // the slots' buffers grow once
	if h.truncated != 0 || h.anomalies != 0 || h.n != 12 {
		t.Fatalf("%d messages, %d truncated, %d with anomalies", h.n, h.truncated, h.anomalies)
	}
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Errorf("%v allocations per run of the stream, want 0", allocs)
	}
}

func BenchmarkFeed(b *testing.B) {
	b.Run("points", func(b *testing.B) { benchmarkFeed(b, Config{}) })
	b.Run("lazy", func(b *testing.B) { benchmarkFeed(b, Config{LazyPoints: true}) })
}

func benchmarkFeed(b *testing.B, cfg Config) {
	d := NewDecoder(cfg)
	var c Conn
	c.Reset(false)
	h := &countHandler{}
	req, resp := steadyStream()
	var held []byte
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		playStream(d, &c, FromClient, req, 1460, &held, h)
		playStream(d, &c, FromServer, resp, 1460, &held, h)
	}
}

// TestConnSize keeps Conn small: there is one in every DNP3 flow record,
// and its large buffers grow only when used.
func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 512 {
		t.Errorf("Conn is %d bytes", size)
	}
}

// BenchmarkUserData takes the user data out of a full frame's blocks
// (250 octets, 16 blocks), the CRC loop every DNP3 octet goes through.
func BenchmarkUserData(b *testing.B) {
	data := make([]byte, 250)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var body []byte
	for i := 0; i < len(data); i += 16 {
		blk := data[i:min(len(data), i+16)]
		c := crc16(blk)
		body = append(append(body, blk...), byte(c), byte(c>>8))
	}
	user := make([]byte, len(data))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if !userData(user, body) {
			b.Fatal("refused")
		}
	}
}
