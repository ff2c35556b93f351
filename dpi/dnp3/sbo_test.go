package dnp3

import (
	"bytes"
	"hash/fnv"
	"testing"
)

// crob is the objects of a control relay output block request.
func crob(index uint16, code byte) []byte {
	return []byte{
		0x0C, 0x01, // group 12 variation 1: control relay output block
		0x28,       // qualifier: 2-octet index prefix, 2-octet count
		0x01, 0x00, // count 1
		byte(index), byte(index >> 8), // index
		code,                   // control code
		0x01,                   // count
		0x64, 0x00, 0x00, 0x00, // on time 100 ms
		0x64, 0x00, 0x00, 0x00, // off time 100 ms
		0x00, // status
	}
}

// analogOutputs is the objects of an analog output request (group 41
// variation 2, 16-bit) of n points, each set to value.
func analogOutputs(n int, value uint16) []byte {
	b := []byte{
		0x29, 0x02, // group 41 variation 2
		0x28,                  // qualifier: 2-octet index prefix, 2-octet count
		byte(n), byte(n >> 8), // count
	}
	for i := range n {
		b = append(b, byte(i), byte(i>>8), byte(value), byte(value>>8), 0x00) // index, value, status
	}
	return b
}

// request is a whole request fragment.
func request(fc, seq uint8, objects []byte) []byte {
	return append([]byte{0xC0 | seq&appSeqMask, fc}, objects...)
}

func TestSBO(t *testing.T) {
	type req struct {
		at       float64
		src, dst uint16
		app      []byte
	}
	on, off := crob(5, 0x03), crob(5, 0x04) // latch on, latch off
	long := analogOutputs(60, 100)          // 305 octets of objects
	longOther := analogOutputs(60, 100)
	longOther[len(longOther)-3] = 101 // the last value
	tests := []struct {
		name string
		cfg  Config
		in   []req
		want []SBOResult // of every request
		bad  []Reason
	}{
		{
			name: "matched",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, on)}, {0.2, 1024, 1, request(FuncOperate, 4, on)}},
			want: []SBOResult{SBONone, SBOMatched},
			bad:  []Reason{0, 0},
		},
		{
			name: "sequence wraps",
			in:   []req{{0, 1024, 1, request(FuncSelect, 15, on)}, {0.2, 1024, 1, request(FuncOperate, 0, on)}},
			want: []SBOResult{SBONone, SBOMatched},
			bad:  []Reason{0, 0},
		},
		{
			name: "no select",
			in:   []req{{0, 1024, 1, request(FuncOperate, 4, on)}},
			want: []SBOResult{SBONoSelect},
			bad:  []Reason{OperateWithoutSelect},
		},
		{
			name: "the select is consumed by its operate",
			in: []req{
				{0, 1024, 1, request(FuncSelect, 3, on)},
				{0.1, 1024, 1, request(FuncOperate, 4, on)},
				{0.2, 1024, 1, request(FuncOperate, 5, on)},
			},
			want: []SBOResult{SBONone, SBOMatched, SBONoSelect},
			bad:  []Reason{0, 0, OperateWithoutSelect},
		},
		{
			name: "mismatch: the same point, another control code",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, on)}, {0.2, 1024, 1, request(FuncOperate, 4, off)}},
			want: []SBOResult{SBONone, SBOMismatch},
			bad:  []Reason{0, SelectMismatch},
		},
		{
			name: "mismatch: another point",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, on)}, {0.2, 1024, 1, request(FuncOperate, 4, crob(6, 0x03))}},
			want: []SBOResult{SBONone, SBOMismatch},
			bad:  []Reason{0, SelectMismatch},
		},
		{
			name: "mismatch: the operate does not follow the select's sequence",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, on)}, {0.2, 1024, 1, request(FuncOperate, 3, on)}},
			want: []SBOResult{SBONone, SBOMismatch},
			bad:  []Reason{0, SelectMismatch},
		},
		{
			name: "late",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, on)}, {10.5, 1024, 1, request(FuncOperate, 4, on)}},
			want: []SBOResult{SBONone, SBOLate},
			bad:  []Reason{0, OperateLate},
		},
		{
			name: "in time at the timeout",
			cfg:  Config{SelectTimeout: 2e9},
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, on)}, {2, 1024, 1, request(FuncOperate, 4, on)}},
			want: []SBOResult{SBONone, SBOMatched},
			bad:  []Reason{0, 0},
		},
		{
			name: "late with a shorter timeout",
			cfg:  Config{SelectTimeout: 2e9},
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, on)}, {2.001, 1024, 1, request(FuncOperate, 4, on)}},
			want: []SBOResult{SBONone, SBOLate},
			bad:  []Reason{0, OperateLate},
		},
		{
			name: "direct operate needs no select and leaves it armed",
			in: []req{
				{0, 1024, 1, request(FuncDirectOperate, 2, off)},
				{0, 1024, 1, request(FuncSelect, 3, on)},
				{0.1, 1024, 1, request(FuncDirectOperateNR, 3, off)},
				{0.2, 1024, 1, request(FuncOperate, 4, on)},
			},
			want: []SBOResult{SBONone, SBONone, SBONone, SBOMatched},
			bad:  []Reason{0, 0, 0, 0},
		},
		{
			name: "a select from another master does not arm this one",
			in: []req{
				{0, 1025, 1, request(FuncSelect, 3, on)},
				{0.1, 1024, 1, request(FuncOperate, 4, on)},
				{0.2, 1025, 1, request(FuncOperate, 4, on)},
			},
			want: []SBOResult{SBONone, SBONoSelect, SBOMatched},
			bad:  []Reason{0, OperateWithoutSelect, 0},
		},
		{
			name: "selects to two outstations",
			in: []req{
				{0, 1024, 1, request(FuncSelect, 3, on)},
				{0, 1024, 2, request(FuncSelect, 7, off)},
				{0.1, 1024, 2, request(FuncOperate, 8, off)},
				{0.2, 1024, 1, request(FuncOperate, 4, on)},
			},
			want: []SBOResult{SBONone, SBONone, SBOMatched, SBOMatched},
			bad:  []Reason{0, 0, 0, 0},
		},
		{
			name: "a newer select replaces the older one",
			in: []req{
				{0, 1024, 1, request(FuncSelect, 3, on)},
				{0.1, 1024, 1, request(FuncSelect, 4, off)},
				{0.2, 1024, 1, request(FuncOperate, 5, off)},
			},
			want: []SBOResult{SBONone, SBONone, SBOMatched},
			bad:  []Reason{0, 0, 0},
		},
		{
			name: "long objects, matched",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, long)}, {0.2, 1024, 1, request(FuncOperate, 4, long)}},
			want: []SBOResult{SBONone, SBOMatched},
			bad:  []Reason{0, 0},
		},
		{
			name: "long objects differing after the kept bytes",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, long)}, {0.2, 1024, 1, request(FuncOperate, 4, longOther)}},
			want: []SBOResult{SBONone, SBOMismatch},
			bad:  []Reason{0, SelectMismatch},
		},
		{
			name: "long objects, one point fewer",
			in:   []req{{0, 1024, 1, request(FuncSelect, 3, long)}, {0.2, 1024, 1, request(FuncOperate, 4, analogOutputs(59, 100))}},
			want: []SBOResult{SBONone, SBOMismatch},
			bad:  []Reason{0, SelectMismatch},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(tt.cfg)
			var c Conn
			c.Reset(false)
			h := &sboRecorder{}
			for i, q := range tt.in {
				seq := uint8(i * 7)
				in := segments(ctlMasterData, q.dst, q.src, seq, q.app)
				if n := d.Feed(&c, FromClient, in, at(q.at), h); n != len(in) {
					t.Fatalf("request %d: consumed %d of %d", i, n, len(in))
				}
			}
			if len(h.sbo) != len(tt.want) {
				t.Fatalf("%d messages, want %d", len(h.sbo), len(tt.want))
			}
			for i := range tt.want {
				if h.sbo[i] != tt.want[i] || h.malformed[i] != tt.bad[i] || h.anomalies[i] != bit(tt.bad[i]) {
					t.Errorf("request %d: SBO %d, Malformed %v, anomalies %#x; want %d, %v", i,
						h.sbo[i], h.malformed[i], h.anomalies[i], tt.want[i], tt.bad[i])
				}
			}
		})
	}
}

// A truncated SELECT arms nothing.
func TestSBOTruncatedSelect(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	c.Reset(false)
	h := &sboRecorder{}
	sel := segments(ctlMasterData, 1, 1024, 0, request(FuncSelect, 3, analogOutputs(60, 1)))
	d.Feed(&c, FromClient, sel[:MaxFrameLen], at(0), h)
	d.Close(&c, at(0), h)
	d.Feed(&c, FromClient, segments(ctlMasterData, 1, 1024, 0, request(FuncOperate, 4, analogOutputs(60, 1))), at(1), h)
	if len(h.sbo) != 2 || h.sbo[1] != SBONoSelect {
		t.Errorf("got %v, want [0 %d]", h.sbo, SBONoSelect)
	}
}

// An anomaly found first stays Malformed; the SBO one is added.
func TestSBOKeepsFirstAnomaly(t *testing.T) {
	m := &Message{Malformed: ObjectTooShort, Anomalies: 1 << ObjectTooShort}
	sboVerdict(m, SBONoSelect, OperateWithoutSelect)
	if m.Malformed != ObjectTooShort || m.Anomalies != 1<<ObjectTooShort|1<<OperateWithoutSelect {
		t.Errorf("Malformed %v, anomalies %#x", m.Malformed, m.Anomalies)
	}
}

func TestFNV64a(t *testing.T) {
	// Reference values of the FNV-1a 64-bit hash.
	for _, tt := range []struct {
		in   string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	} {
		if got := fnv64a([]byte(tt.in)); got != tt.want {
			t.Errorf("fnv64a(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
	for i := range 300 {
		b := bytes.Repeat([]byte{byte(i)}, i)
		h := fnv.New64a()
		h.Write(b)
		if got, want := fnv64a(b), h.Sum64(); got != want {
			t.Errorf("fnv64a of %d octets = %#x, hash/fnv says %#x", i, got, want)
		}
	}
}

func bit(r Reason) uint64 {
	if r == 0 {
		return 0
	}
	return 1 << r
}

type sboRecorder struct {
	sbo       []SBOResult
	malformed []Reason
	anomalies []uint64
}

func (h *sboRecorder) Message(m *Message) {
	h.sbo = append(h.sbo, m.SBO)
	h.malformed = append(h.malformed, m.Malformed)
	h.anomalies = append(h.anomalies, m.Anomalies)
}
