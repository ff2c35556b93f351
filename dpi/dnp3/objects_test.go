package dnp3

import (
	"errors"
	"testing"
)

// Each qualifier on g30v4 (16-bit analog input without flags, 2 octets
// per object) in a response.
func TestQualifiers(t *testing.T) {
	resp := []byte{0xC0, 0x81, 0x00, 0x00} // response, IIN 0
	cases := []struct {
		name    string
		obj     []byte // object header and data
		hdr     ObjectHeader
		indices []uint32
		err     Reason
	}{
		{
			name:    "0x00 start-stop 1 octet",
			obj:     []byte{0x1E, 0x04, 0x00, 0x03, 0x04, 1, 0, 2, 0},
			hdr:     ObjectHeader{Qualifier: 0x00, Range: 0, HasRange: true, Start: 3, Stop: 4, Count: 2, Size: 4},
			indices: []uint32{3, 4},
		},
		{
			name:    "0x01 start-stop 2 octets",
			obj:     []byte{0x1E, 0x04, 0x01, 0x00, 0x01, 0x00, 0x01, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x01, Range: 1, HasRange: true, Start: 256, Stop: 256, Count: 1, Size: 2},
			indices: []uint32{256},
		},
		{
			name:    "0x02 start-stop 4 octets",
			obj:     []byte{0x1E, 0x04, 0x02, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 0},
			hdr:     ObjectHeader{Qualifier: 0x02, Range: 2, HasRange: true, Start: 65536, Stop: 65537, Count: 2, Size: 4},
			indices: []uint32{65536, 65537},
		},
		{
			name:    "0x03 virtual addresses 1 octet",
			obj:     []byte{0x1E, 0x04, 0x03, 0x07, 0x07, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x03, Range: 3, HasRange: true, Start: 7, Stop: 7, Count: 1, Size: 2},
			indices: []uint32{7},
		},
		{
			name:    "0x04 virtual addresses 2 octets",
			obj:     []byte{0x1E, 0x04, 0x04, 0x07, 0x00, 0x08, 0x00, 1, 0, 2, 0},
			hdr:     ObjectHeader{Qualifier: 0x04, Range: 4, HasRange: true, Start: 7, Stop: 8, Count: 2, Size: 4},
			indices: []uint32{7, 8},
		},
		{
			name:    "0x05 virtual addresses 4 octets",
			obj:     []byte{0x1E, 0x04, 0x05, 9, 0, 0, 0, 9, 0, 0, 0, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x05, Range: 5, HasRange: true, Start: 9, Stop: 9, Count: 1, Size: 2},
			indices: []uint32{9},
		},
		{
			name: "0x06 all objects: no data",
			obj:  []byte{0x1E, 0x04, 0x06},
			hdr:  ObjectHeader{Qualifier: 0x06, Range: 6},
		},
		{
			name:    "0x07 count 1 octet, no prefix",
			obj:     []byte{0x1E, 0x04, 0x07, 0x02, 1, 0, 2, 0},
			hdr:     ObjectHeader{Qualifier: 0x07, Range: 7, Count: 2, Size: 4},
			indices: []uint32{0, 1},
		},
		{
			name:    "0x08 count 2 octets",
			obj:     []byte{0x1E, 0x04, 0x08, 0x01, 0x00, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x08, Range: 8, Count: 1, Size: 2},
			indices: []uint32{0},
		},
		{
			name:    "0x09 count 4 octets",
			obj:     []byte{0x1E, 0x04, 0x09, 0x01, 0, 0, 0, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x09, Range: 9, Count: 1, Size: 2},
			indices: []uint32{0},
		},
		{
			name:    "0x17 1-octet index",
			obj:     []byte{0x1E, 0x04, 0x17, 0x02, 0x05, 1, 0, 0x09, 2, 0},
			hdr:     ObjectHeader{Qualifier: 0x17, Prefix: 1, Range: 7, Count: 2, Size: 6},
			indices: []uint32{5, 9},
		},
		{
			name:    "0x28 2-octet index",
			obj:     []byte{0x1E, 0x04, 0x28, 0x01, 0x00, 0x34, 0x12, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x28, Prefix: 2, Range: 8, Count: 1, Size: 4},
			indices: []uint32{0x1234},
		},
		{
			name:    "0x39 4-octet index",
			obj:     []byte{0x1E, 0x04, 0x39, 0x01, 0, 0, 0, 0x78, 0x56, 0x34, 0x12, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x39, Prefix: 3, Range: 9, Count: 1, Size: 6},
			indices: []uint32{0x12345678},
		},
		{
			name:    "0x47 1-octet size prefix",
			obj:     []byte{0x1E, 0x04, 0x47, 0x01, 0x02, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x47, Prefix: 4, Range: 7, Count: 1, Size: 3},
			indices: []uint32{0},
		},
		{
			name:    "0x5B 2-octet size prefix, variable-format count",
			obj:     []byte{0x1E, 0x04, 0x5B, 0x02, 0x02, 0x00, 1, 0, 0x00, 0x00},
			hdr:     ObjectHeader{Qualifier: 0x5B, Prefix: 5, Range: 0xB, Count: 2, Size: 6},
			indices: []uint32{0, 1},
		},
		{
			name:    "0x6B 4-octet size prefix",
			obj:     []byte{0x1E, 0x04, 0x6B, 0x01, 0x02, 0, 0, 0, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x6B, Prefix: 6, Range: 0xB, Count: 1, Size: 6},
			indices: []uint32{0},
		},
		{
			name:    "0x40 size prefix with a range",
			obj:     []byte{0x1E, 0x04, 0x40, 0x04, 0x04, 0x02, 1, 0},
			hdr:     ObjectHeader{Qualifier: 0x40, Prefix: 4, Range: 0, HasRange: true, Start: 4, Stop: 4, Count: 1, Size: 3},
			indices: []uint32{4},
		},
		{name: "0x70 prefix 7 reserved", obj: []byte{0x1E, 0x04, 0x70, 0x00, 0x00, 1, 0}, err: BadQualifier},
		{name: "0x0A range reserved", obj: []byte{0x1E, 0x04, 0x0A, 0x01, 1, 0}, err: BadQualifier},
		{name: "0x0C range reserved", obj: []byte{0x1E, 0x04, 0x0C}, err: BadQualifier},
		{name: "0x0F range reserved", obj: []byte{0x1E, 0x04, 0x0F}, err: BadQualifier},
		{name: "0x80 reserved bit", obj: []byte{0x1E, 0x04, 0x80, 0x00, 0x00, 1, 0}, err: BadQualifier},
		{name: "packed bits with an index prefix", obj: []byte{0x01, 0x01, 0x17, 0x01, 0x00, 0x01}, err: BadQualifier},
		{name: "4-octet range 0 to 0xFFFFFFFF", obj: []byte{0x1E, 0x04, 0x02, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, err: BadRange},
		{name: "4-octet count larger than the fragment", obj: []byte{0x1E, 0x04, 0x09, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0}, err: ObjectTooShort},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Parser
			if _, err := p.Start(cat(resp, tc.obj)); err != nil {
				t.Fatal(err)
			}
			h, err := p.Next()
			if tc.err != 0 {
				var e Error
				if !errors.As(err, &e) || e.Reason() != tc.err {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				if p.Anomalies()&(1<<tc.err) == 0 {
					t.Errorf("Anomalies %#x lacks %v", p.Anomalies(), tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.hdr
			want.Group, want.Variation = 30, 4
			want.Prefix = want.Qualifier >> 4
			want.Offset = len(resp) + len(tc.obj) - tc.hdr.Size // the data ends the fragment
			if h != want {
				t.Errorf("header\n got %+v\nwant %+v", h, want)
			}
			var got []uint32
			for {
				pt, err := p.Point()
				if err == ErrDone {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, pt.Index)
			}
			if len(got) != len(tc.indices) {
				t.Fatalf("indices %v, want %v", got, tc.indices)
			}
			for i := range got {
				if got[i] != tc.indices[i] {
					t.Fatalf("indices %v, want %v", got, tc.indices)
				}
			}
			if _, err := p.Next(); err != ErrDone {
				t.Errorf("after the header: %v, want ErrDone", err)
			}
		})
	}
}

// Sizes of fixed objects against the standard's tables, for groups where a
// wrong size would shift everything after it.
func TestObjectSizes(t *testing.T) {
	sizes := []struct{ g, v, n uint8 }{
		{1, 2, 1}, {2, 1, 1}, {2, 2, 7}, {2, 3, 3}, {3, 2, 1}, {4, 2, 7}, {4, 3, 3},
		{10, 2, 1}, {11, 1, 1}, {11, 2, 7}, {12, 1, 11}, {12, 2, 11}, {13, 1, 1}, {13, 2, 7},
		{20, 1, 5}, {20, 2, 3}, {20, 5, 4}, {20, 6, 2}, {21, 5, 11}, {21, 6, 9}, {21, 9, 4}, {21, 10, 2},
		{22, 1, 5}, {22, 5, 11}, {22, 8, 9}, {23, 5, 11},
		{30, 1, 5}, {30, 2, 3}, {30, 3, 4}, {30, 4, 2}, {30, 5, 5}, {30, 6, 9},
		{31, 3, 11}, {31, 8, 9}, {32, 3, 11}, {32, 4, 9}, {32, 7, 11}, {32, 8, 15}, {33, 8, 15},
		{34, 1, 2}, {34, 2, 4}, {34, 3, 4}, {40, 1, 5}, {40, 4, 9},
		{41, 1, 5}, {41, 2, 3}, {41, 3, 5}, {41, 4, 9}, {42, 8, 15}, {43, 1, 5}, {43, 8, 15},
		{50, 1, 6}, {50, 2, 10}, {50, 3, 6}, {50, 4, 11}, {51, 1, 6}, {51, 2, 6}, {52, 1, 2}, {52, 2, 2},
		{102, 1, 1}, {121, 1, 7}, {122, 1, 7}, {122, 2, 13},
	}
	for _, s := range sizes {
		l := lookup(s.g, s.v)
		if l.kind != objFixed || l.size() != int(s.n) {
			t.Errorf("g%dv%d: kind %d size %d, want %d", s.g, s.v, l.kind, l.size(), s.n)
		}
	}
	for _, gv := range [][2]uint8{{1, 3}, {2, 4}, {20, 9}, {22, 9}, {30, 7}, {32, 9}, {41, 5}, {50, 5}, {60, 5}, {110, 0}, {5, 1}, {255, 1}} {
		if k := lookup(gv[0], gv[1]).kind; k != objUnknown {
			t.Errorf("g%dv%d: kind %d, want unknown", gv[0], gv[1], k)
		}
	}
}
