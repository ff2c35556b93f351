package modbus

import (
	"fmt"
	"slices"
	"testing"
)

// valueRecorder notes each message's decoded fields, values decoded first
// (DecodeValues, a no-op for an eager decoder).
type valueRecorder struct {
	lines []string
	nils  int // read responses whose Values were nil before DecodeValues
}

func (r *valueRecorder) Message(m *Message) {
	if m.Dir == Response && m.lazy != nil && m.Values == nil {
		r.nils++
	}
	m.DecodeValues()
	m.DecodeValues() // twice: the second does nothing
	r.lines = append(r.lines, fmt.Sprintf("%v tid=%d fc=%d exc=%d addr=%v/%d count=%d read=%d/%d values=%v bad=%d outcome=%d",
		m.Dir, m.TID, m.FC, m.Exception, m.HasAddr, m.Addr, m.Count, m.ReadAddr, m.ReadCount, m.Values, m.Malformed, m.Outcome))
}

// lazyTraffic is requests and responses of every function that carries
// values: coils and discrete inputs (a count from the request, and an
// orphan's every bit), registers, FC 23, writes.
func lazyTraffic() (req, resp []byte) {
	req = cat(
		adu(1, 1, 0x01, 0x00, 0x10, 0x00, 0x0B), // 11 coils
		adu(2, 1, 0x02, 0x00, 0x00, 0x00, 0x03), // 3 discrete inputs
		adu(3, 1, 0x03, 0x00, 0x64, 0x00, 0x02),
		adu(4, 1, 0x04, 0x00, 0x01, 0x00, 0x01),
		adu(5, 1, 0x17, 0x00, 0x0A, 0x00, 0x02, 0x00, 0x14, 0x00, 0x01, 0x02, 0x12, 0x34),
		adu(6, 1, 0x0F, 0x00, 0x00, 0x00, 0x0A, 0x02, 0xCD, 0x01),
		adu(7, 1, 0x06, 0x00, 0x05, 0x01, 0x02),
	)
	resp = cat(
		adu(1, 1, 0x01, 0x02, 0xCD, 0x6B),
		adu(2, 1, 0x02, 0x01, 0x05),
		adu(3, 1, 0x03, 0x04, 0x00, 0x07, 0x01, 0x2C),
		adu(4, 1, 0x04, 0x02, 0xFF, 0xFF),
		adu(5, 1, 0x17, 0x04, 0x00, 0x01, 0x00, 0x02),
		adu(6, 1, 0x0F, 0x00, 0x00, 0x00, 0x0A),
		adu(7, 1, 0x06, 0x00, 0x05, 0x01, 0x02),
		adu(9, 1, 0x01, 0x01, 0x81),             // an orphan: every bit
		adu(8, 1, 0x03, 0x03, 0x00, 0x01, 0x02), // odd byte count
	)
	return req, resp
}

// decodeBoth decodes req then resp with an eager and a lazy decoder.
func decodeBoth(req, resp []byte) (eager, lazy *valueRecorder) {
	eager, lazy = &valueRecorder{}, &valueRecorder{}
	for _, x := range []struct {
		d *Decoder
		r *valueRecorder
	}{{NewDecoder(Config{}), eager}, {NewDecoder(Config{LazyValues: true}), lazy}} {
		var c Conn
		c.Reset(false)
		n := x.d.Feed(&c, Request, req, at(1, 0), x.r)
		x.d.Feed(&c, Response, resp, at(2, 0), x.r)
		x.d.Datagram(&c, Response, resp[min(n, len(resp)):], at(3, 0), x.r)
		x.d.Close(&c, at(4, 0), x.r)
	}
	return eager, lazy
}

// TestLazyValues: a decoder with LazyValues reports read responses with
// no Values until DecodeValues, which gives what an eager decoder gives;
// requests' values are decoded either way.
func TestLazyValues(t *testing.T) {
	eager, lazy := decodeBoth(lazyTraffic())
	if !slices.Equal(eager.lines, lazy.lines) {
		t.Errorf("lazy:\n%v\neager:\n%v", lazy.lines, eager.lines)
	}
	if eager.nils != 0 || lazy.nils != 7 {
		t.Errorf("read responses left undecoded: eager %d, lazy %d; want 0 and 7", eager.nils, lazy.nils)
	}
	want := []string{"values=[1 0 1 1 0 0 1 1 1 1 0]", "values=[1 0 1]", "values=[7 300]", "values=[65535]", "values=[1 2]", "values=[1 0 0 0 0 0 0 1]"}
	for _, w := range want {
		if !slices.ContainsFunc(lazy.lines, func(l string) bool { return containsWord(l, w) }) {
			t.Errorf("no message with %s in\n%v", w, lazy.lines)
		}
	}
}

func containsWord(line, w string) bool {
	for i := 0; i+len(w) <= len(line); i++ {
		if line[i:i+len(w)] == w && (i+len(w) == len(line) || line[i+len(w)] == ' ') {
			return true
		}
	}
	return false
}

// TestLazyValuesAllocs: leaving values undecoded, and decoding them,
// allocates nothing.
func TestLazyValuesAllocs(t *testing.T) {
	d := NewDecoder(Config{LazyValues: true})
	var c Conn
	h := &decodingHandler{}
	req, resp := trafficPairs()
	meta := at(1, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		meta.Frame++
		d.Feed(&c, Request, req, meta, h)
		d.Feed(&c, Response, resp, meta, h)
	})
	if allocs != 0 || h.values == 0 {
		t.Errorf("%v allocations per pair, %d values decoded; want 0 and some", allocs, h.values)
	}
}

type decodingHandler struct{ values int }

func (h *decodingHandler) Message(m *Message) {
	m.DecodeValues()
	h.values += len(m.Values)
}

// FuzzLazyValues holds a lazy decoder to an eager one on any traffic.
func FuzzLazyValues(f *testing.F) {
	req, resp := lazyTraffic()
	f.Add(req, resp)
	req, resp = trafficPairs()
	f.Add(req, resp)
	f.Fuzz(func(t *testing.T, req, resp []byte) {
		eager, lazy := decodeBoth(req, resp)
		if !slices.Equal(eager.lines, lazy.lines) {
			t.Fatalf("lazy:\n%v\neager:\n%v", lazy.lines, eager.lines)
		}
	})
}
