package dnp3

import (
	"errors"
	"testing"
)

// respMixed is a response with three headers, for the Parser tests.
var respMixed = []byte{
	0xC0, 0x81, // response
	0x00, 0x00, // IIN
	0x01, 0x02, 0x00, 0x00, 0x03, // g1v2, start 0 stop 3
	0x81, 0x01, 0x81, 0x01,
	0x14, 0x05, 0x00, 0x00, 0x01, // g20v5 32-bit counter without flags, start 0 stop 1
	0x07, 0x00, 0x00, 0x00, // 7
	0x08, 0x00, 0x00, 0x00, // 8
	0x1E, 0x04, 0x00, 0x05, 0x05, // g30v4, start 5 stop 5
	0xFF, 0xFF, // -1
}

func TestParserStopEarly(t *testing.T) {
	var p Parser
	h, err := p.Start(respMixed)
	if err != nil || h.FC != FuncResponse || h.Dir != Response || !h.HasIIN {
		t.Fatalf("Start: %+v %v", h, err)
	}
	oh, err := p.Next()
	if err != nil || oh.Group != 1 || oh.Count != 4 {
		t.Fatalf("Next: %+v %v", oh, err)
	}
	pt, err := p.Point()
	if err != nil || pt.Index != 0 || pt.Value != 1 {
		t.Fatalf("Point: %+v %v", pt, err)
	}
	// Next skips the three points left of g1v2.
	oh, err = p.Next()
	if err != nil || oh.Group != 20 || oh.Variation != 5 {
		t.Fatalf("Next: %+v %v", oh, err)
	}
	if err := p.Skip(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Point(); err != ErrDone {
		t.Fatalf("Point after Skip: %v, want ErrDone", err)
	}
	oh, err = p.Next()
	if err != nil || oh.Group != 30 {
		t.Fatalf("Next: %+v %v", oh, err)
	}
	pt, err = p.Point()
	if err != nil || pt.Index != 5 || pt.Value != -1 {
		t.Fatalf("Point: %+v %v", pt, err)
	}
	if _, err := p.Point(); err != ErrDone {
		t.Fatalf("Point: %v, want ErrDone", err)
	}
	if _, err := p.Next(); err != ErrDone {
		t.Fatalf("Next: %v, want ErrDone", err)
	}
	if _, err := p.Next(); err != ErrDone {
		t.Fatalf("Next again: %v, want ErrDone", err)
	}

	// Starting again resets everything.
	if _, err := p.Start(respMixed[:2]); !errors.Is(err, Error(AppTooShort)) {
		t.Fatalf("Start short: %v", err)
	}
	if _, err := p.Next(); !errors.Is(err, Error(AppTooShort)) {
		t.Fatalf("Next after a short header: %v", err)
	}
}

func TestParserNotStarted(t *testing.T) {
	var p Parser
	if _, err := p.Next(); err != ErrNotStarted {
		t.Errorf("Next: %v", err)
	}
	if _, err := p.Point(); err != ErrNotStarted {
		t.Errorf("Point: %v", err)
	}
	if err := p.Skip(); err != ErrNotStarted {
		t.Errorf("Skip: %v", err)
	}
	p.Start(respMixed)
	if _, err := p.Point(); err != ErrNotStarted {
		t.Errorf("Point before Next: %v", err)
	}
}

// Skip and Point on a header whose data is cut off.
func TestParserTruncated(t *testing.T) {
	frag := respMixed[:len(respMixed)-1]
	var p Parser
	p.Start(frag)
	for range 2 {
		if _, err := p.Next(); err != nil {
			t.Fatal(err)
		}
	}
	oh, err := p.Next()
	if !errors.Is(err, Error(ObjectTooShort)) || oh.Group != 30 || oh.Size != 2 {
		t.Fatalf("Next: %+v %v", oh, err)
	}
	if _, err := p.Point(); !errors.Is(err, Error(ObjectTooShort)) {
		t.Fatalf("Point: %v", err)
	}
	if err := p.Skip(); !errors.Is(err, Error(ObjectTooShort)) {
		t.Fatalf("Skip: %v", err)
	}
	if _, err := p.Next(); !errors.Is(err, Error(ObjectTooShort)) {
		t.Fatalf("Next: %v", err)
	}
}

func TestDecodeAppAllocs(t *testing.T) {
	d := NewDecoder(Config{})
	var m Message
	d.decodeApp(&m, respMixed) // scratch exists after NewDecoder; this warms nothing else
	for _, tc := range appCases {
		n := testing.AllocsPerRun(100, func() { d.decodeApp(&m, tc.frag) })
		if n != 0 {
			t.Errorf("%s: %v allocations per fragment", tc.name, n)
		}
	}
	var p Parser
	n := testing.AllocsPerRun(100, func() {
		p.Start(respMixed)
		for {
			if _, err := p.Next(); err != nil {
				break
			}
			for {
				if _, err := p.Point(); err != nil {
					break
				}
			}
		}
	})
	if n != 0 {
		t.Errorf("Parser: %v allocations per fragment", n)
	}
}

// A Decoder made without NewDecoder (the zero value) allocates its
// scratch on first use.
func TestDecodeAppZeroDecoder(t *testing.T) {
	var d Decoder
	var m Message
	d.decodeApp(&m, respMixed)
	if len(m.Objects) != 3 || len(m.Points) != 7 || m.Anomalies != 0 {
		t.Fatalf("%d objects, %d points, anomalies %#x", len(m.Objects), len(m.Points), m.Anomalies)
	}
	if cap(m.Objects) != DefaultMaxObjects || cap(m.Points) != DefaultMaxPoints {
		t.Fatalf("caps %d %d", cap(m.Objects), cap(m.Points))
	}
}

func BenchmarkDecodeApp(b *testing.B) {
	d := NewDecoder(Config{})
	var m Message
	b.SetBytes(int64(len(respMixed)))
	b.ReportAllocs()
	for b.Loop() {
		d.decodeApp(&m, respMixed)
	}
}
