package dnp3

import (
	"errors"
	"testing"
)

func FuzzApp(f *testing.F) {
	for _, tc := range appCases {
		f.Add(tc.frag)
	}
	f.Add(respMixed)
	// A read listing 255 indices (the largest 1-octet count) without data.
	f.Add([]byte{0xC0, 0x01, 0x01, 0x02, 0x17, 0xFF})
	// A size-prefixed object whose 4-octet size is near the int limit.
	f.Add([]byte{0xC0, 0x81, 0, 0, 0x46, 0x05, 0x6B, 0x01, 0xFF, 0xFF, 0xFF, 0x7F})
	// 4-octet count of packed bits far beyond the fragment.
	f.Add([]byte{0xC0, 0x81, 0, 0, 0x01, 0x01, 0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0x00})
	// Device attributes with a length past the end.
	f.Add([]byte{0xC0, 0x81, 0, 0, 0x00, 0xF3, 0x07, 0x02, 0x01, 0x09, 'x'})

	d := NewDecoder(Config{MaxObjects: 8, MaxPoints: 16})
	f.Fuzz(func(t *testing.T, frag []byte) {
		var m Message
		d.decodeApp(&m, frag)
		if len(m.Objects) > 8 || len(m.Points) > 16 || m.MorePoints < 0 {
			t.Fatalf("%d objects %d points %d more", len(m.Objects), len(m.Points), m.MorePoints)
		}
		if (m.Malformed == 0) != (m.Anomalies == 0) || (m.Malformed != 0 && m.Anomalies&(1<<m.Malformed) == 0) {
			t.Fatalf("Malformed %v Anomalies %#x", m.Malformed, m.Anomalies)
		}
		next := 0
		for i, o := range m.Objects {
			if o.FirstPoint != next || o.NumPoints < 0 || o.FirstPoint+o.NumPoints > len(m.Points) {
				t.Fatalf("object %d: points %d+%d of %d", i, o.FirstPoint, o.NumPoints, len(m.Points))
			}
			next += o.NumPoints
			if o.Size < -1 || o.Size > len(frag) && m.Anomalies&(1<<ObjectTooShort) == 0 {
				t.Fatalf("object %d: size %d of %d", i, o.Size, len(frag))
			}
			if uint64(o.NumPoints) > uint64(o.Count) {
				t.Fatalf("object %d: %d points, count %d", i, o.NumPoints, o.Count)
			}
		}
		if next != len(m.Points) {
			t.Fatalf("objects cover %d of %d points", next, len(m.Points))
		}
		for _, pt := range m.Points {
			if len(pt.Octets) > len(frag) {
				t.Fatalf("octets %d of %d", len(pt.Octets), len(frag))
			}
		}

		// The Parser alone, with Skip on every other header.
		var p Parser
		if _, err := p.Start(frag); err != nil {
			return
		}
		for i := 0; ; i++ {
			_, err := p.Next()
			if err != nil {
				var e Error
				if err != ErrDone && !errors.As(err, &e) {
					t.Fatalf("Next: %v", err)
				}
				if err == ErrDone {
					return
				}
			}
			if i%2 == 1 {
				p.Skip()
			} else {
				for n := 0; ; n++ {
					if _, err := p.Point(); err != nil {
						break
					}
					if n > 8*len(frag)+1 {
						t.Fatal("Point does not end")
					}
				}
			}
			if err != nil {
				if _, err2 := p.Next(); err2 != err {
					t.Fatalf("Next after %v: %v", err, err2)
				}
				return
			}
			if i > len(frag) {
				t.Fatal("Next does not end")
			}
		}
	})
}
