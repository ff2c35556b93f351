package dnp3

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
)

// t1 is 2023-11-14T22:13:20Z, 1700000000000 ms, as DNP3 time (48 bits, LE).
var t1 = []byte{0x00, 0x68, 0xE5, 0xCF, 0x8B, 0x01}

const t1ms = 1700000000000

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

type appWant struct {
	fc        uint8
	dir       Direction
	seq       uint8
	iin       uint16
	malformed Reason
	anomalies []Reason // besides malformed
	objects   []ObjectHeader
	points    []Point
	more      int
}

type appCase struct {
	name string
	cfg  Config
	frag []byte
	want appWant
}

func pointsEqual(a, b []Point) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !bytes.Equal(x.Octets, y.Octets) {
			return false
		}
		x.Octets, y.Octets = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func checkApp(t *testing.T, tc appCase) {
	t.Helper()
	d := NewDecoder(tc.cfg)
	var m Message
	d.decodeApp(&m, tc.frag)
	w := tc.want
	if m.FC != w.fc || m.Dir != w.dir || m.Seq != w.seq {
		t.Errorf("fc %d dir %d seq %d, want %d %d %d", m.FC, m.Dir, m.Seq, w.fc, w.dir, w.seq)
	}
	if m.IIN != w.iin || m.HasIIN != (w.dir != Request && w.dir != 0 && w.malformed != AppTooShort) {
		t.Errorf("IIN %#04x has %v, want %#04x", m.IIN, m.HasIIN, w.iin)
	}
	if m.Malformed != w.malformed {
		t.Errorf("Malformed %v, want %v", m.Malformed, w.malformed)
	}
	var an uint64
	if w.malformed != 0 {
		an |= 1 << w.malformed
	}
	for _, r := range w.anomalies {
		an |= 1 << r
	}
	if m.Anomalies != an {
		t.Errorf("Anomalies %#x, want %#x", m.Anomalies, an)
	}
	// Offset is checked against the bytes: each header's object data
	// starts there, right after the header and its range or count.
	got := slices.Clone(m.Objects)
	for i := range got {
		h := &got[i]
		if h.Offset < 5 || h.Offset > len(m.Fragment) {
			t.Errorf("object %d: offset %d, size %d, fragment %d bytes", i, h.Offset, h.Size, len(m.Fragment))
		} else if hdr := m.Fragment[h.Offset-3-2*rangeLenOf(h)-countLenOf(h):]; hdr[0] != h.Group || hdr[1] != h.Variation {
			t.Errorf("object %d: offset %d does not follow its header % x", i, h.Offset, hdr[:3])
		}
		h.Offset = 0
	}
	if len(got) != len(w.objects) || (len(w.objects) > 0 && !reflect.DeepEqual(got, w.objects)) {
		t.Errorf("objects\n got %+v\nwant %+v", m.Objects, w.objects)
	}
	if !pointsEqual(m.Points, w.points) {
		t.Errorf("points\n got %+v\nwant %+v", m.Points, w.points)
	}
	if m.MorePoints != w.more {
		t.Errorf("MorePoints %d, want %d", m.MorePoints, w.more)
	}
	if !bytes.Equal(m.Fragment, tc.frag) {
		t.Errorf("Fragment not set")
	}
}

var appCases = []appCase{
	{
		name: "read class 0 1 2 3",
		frag: []byte{
			0xC0,             // FIR FIN seq 0
			0x01,             // read
			0x3C, 0x02, 0x06, // g60v2 class 1, all objects
			0x3C, 0x03, 0x06, // g60v3 class 2
			0x3C, 0x04, 0x06, // g60v4 class 3
			0x3C, 0x01, 0x06, // g60v1 class 0
		},
		want: appWant{fc: FuncRead, dir: Request, objects: []ObjectHeader{
			{Group: 60, Variation: 2, Qualifier: 0x06, Range: 6},
			{Group: 60, Variation: 3, Qualifier: 0x06, Range: 6},
			{Group: 60, Variation: 4, Qualifier: 0x06, Range: 6},
			{Group: 60, Variation: 1, Qualifier: 0x06, Range: 6},
		}},
	},
	{
		name: "read ranges carry no data",
		frag: []byte{
			0xC3,                   // FIR FIN seq 3
			0x01,                   // read
			0x01, 0x02, 0x00, 0, 9, // g1v2, start 0 stop 9
			0x1E, 0x00, 0x17, 0x02, 4, 7, // g30v0, index prefix, count 2: indices 4 and 7 (no data)
		},
		want: appWant{fc: FuncRead, dir: Request, seq: 3, objects: []ObjectHeader{
			{Group: 1, Variation: 2, HasRange: true, Stop: 9, Count: 10},
			{Group: 30, Variation: 0, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 2, Size: 2, NumPoints: 2},
		},
			points: []Point{{Index: 4}, {Index: 7}}},
	},
	{
		name: "response g1v2 and g30v5, IIN device restart and need time",
		frag: []byte{
			0xC0,       // FIR FIN seq 0
			0x81,       // response
			0x90, 0x00, // IIN1 device_restart | need_time, IIN2 0
			0x01, 0x02, 0x00, 0x00, 0x02, // g1v2, start 0 stop 2
			0x81,                                     // 0: online, state 1
			0x01,                                     // 1: online, state 0
			0x81,                                     // 2: online, state 1
			0x1E, 0x05, 0x01, 0x0A, 0x00, 0x0B, 0x00, // g30v5, start 10 stop 11 (2 octets)
			0x01, 0x00, 0x00, 0xC0, 0x3F, // 10: online, 1.5
			0x01, 0x00, 0x00, 0x20, 0xC1, // 11: online, -10.0
		},
		want: appWant{fc: FuncResponse, dir: Response, iin: IINDeviceRestart | IINNeedTime,
			objects: []ObjectHeader{
				{Group: 1, Variation: 2, HasRange: true, Stop: 2, Count: 3, Size: 3, NumPoints: 3},
				{Group: 30, Variation: 5, Qualifier: 1, Range: 1, HasRange: true, Start: 10, Stop: 11, Count: 2, Size: 10, FirstPoint: 3, NumPoints: 2},
			},
			points: []Point{
				{Index: 0, Value: 1, Flags: 0x81, HasFlags: true},
				{Index: 1, Value: 0, Flags: 0x01, HasFlags: true},
				{Index: 2, Value: 1, Flags: 0x81, HasFlags: true},
				{Index: 10, Value: 1.5, Flags: 0x01, HasFlags: true},
				{Index: 11, Value: -10, Flags: 0x01, HasFlags: true},
			}},
	},
	{
		name: "unsolicited g2v2 events with time",
		frag: cat([]byte{
			0xF5,       // FIR FIN CON UNS seq 5
			0x82,       // unsolicited response
			0x02, 0x00, // IIN1 class_1_events
			0x02, 0x02, 0x17, 0x02, // g2v2, 1-octet index, count 2
			0x05, 0x81, // index 5: online, state 1
		}, t1, []byte{
			0x07, 0x01, // index 7: online, state 0
		}, t1),
		want: appWant{fc: FuncUnsolicitedResponse, dir: Unsolicited, seq: 5, iin: IINClass1Events,
			objects: []ObjectHeader{{Group: 2, Variation: 2, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 2, Size: 16, NumPoints: 2}},
			points: []Point{
				{Index: 5, Value: 1, Flags: 0x81, HasFlags: true, Time: t1ms, HasTime: true},
				{Index: 7, Value: 0, Flags: 0x01, HasFlags: true, Time: t1ms, HasTime: true},
			}},
	},
	{
		name: "g51 CTO then g2v3 relative time",
		frag: cat([]byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x33, 0x01, 0x07, 0x01, // g51v1 CTO, count 1
		}, t1, []byte{
			0x02, 0x03, 0x17, 0x01, // g2v3, 1-octet index, count 1
			0x09, 0x81, 0xE8, 0x03, // index 9: online, state 1, CTO + 1000 ms
		}),
		want: appWant{fc: FuncResponse, dir: Response,
			objects: []ObjectHeader{
				{Group: 51, Variation: 1, Qualifier: 0x07, Range: 7, Count: 1, Size: 6, NumPoints: 1},
				{Group: 2, Variation: 3, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 1, Size: 4, FirstPoint: 1, NumPoints: 1},
			},
			points: []Point{
				{Index: 0, Time: t1ms, HasTime: true},
				{Index: 9, Value: 1, Flags: 0x81, HasFlags: true, Time: t1ms + 1000, HasTime: true},
			}},
	},
	{
		name: "select g12v1 CROB",
		frag: []byte{
			0xC1,                         // FIR FIN seq 1
			0x03,                         // select
			0x0C, 0x01, 0x28, 0x01, 0x00, // g12v1, 2-octet index, 2-octet count 1
			0x05, 0x00, // index 5
			0x03,                   // control code: latch on
			0x01,                   // count
			0xE8, 0x03, 0x00, 0x00, // on-time 1000 ms
			0x00, 0x00, 0x00, 0x00, // off-time 0
			0x00, // status
		},
		want: appWant{fc: FuncSelect, dir: Request, seq: 1,
			objects: []ObjectHeader{{Group: 12, Variation: 1, Qualifier: 0x28, Prefix: 2, Range: 8, Count: 1, Size: 13, NumPoints: 1}},
			points:  []Point{{Index: 5, Code: 3, Count: 1, OnTime: 1000}}},
	},
	{
		name: "operate g12v1 CROB, two points",
		frag: []byte{
			0xC2,                   // FIR FIN seq 2
			0x04,                   // operate
			0x0C, 0x01, 0x17, 0x02, // g12v1, 1-octet index, count 2
			0x00,                                                 // index 0
			0x41, 0x01, 0xF4, 0x01, 0, 0, 0xF4, 0x01, 0, 0, 0x00, // close pulse on, 500/500 ms
			0x01,                                                 // index 1
			0x81, 0x01, 0xF4, 0x01, 0, 0, 0xF4, 0x01, 0, 0, 0x00, // trip pulse on
		},
		want: appWant{fc: FuncOperate, dir: Request, seq: 2,
			objects: []ObjectHeader{{Group: 12, Variation: 1, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 2, Size: 24, NumPoints: 2}},
			points: []Point{
				{Index: 0, Code: 0x41, Count: 1, OnTime: 500, OffTime: 500},
				{Index: 1, Code: 0x81, Count: 1, OnTime: 500, OffTime: 500},
			}},
	},
	{
		name: "direct operate response g12v1 with status",
		frag: []byte{
			0xC3, 0x81, 0x00, 0x00, // response seq 3, IIN 0
			0x0C, 0x01, 0x28, 0x01, 0x00, // g12v1, 2-octet index, count 1
			0x07, 0x00, // index 7
			0x04, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, // latch off, count 1
			0x04, // status: not supported
		},
		want: appWant{fc: FuncResponse, dir: Response, seq: 3,
			objects: []ObjectHeader{{Group: 12, Variation: 1, Qualifier: 0x28, Prefix: 2, Range: 8, Count: 1, Size: 13, NumPoints: 1}},
			points:  []Point{{Index: 7, Code: 4, Count: 1, Status: 4}}},
	},
	{
		name: "direct operate g41v1 and g41v3",
		frag: []byte{
			0xC4, 0x05, // direct operate seq 4
			0x29, 0x01, 0x17, 0x01, // g41v1, 1-octet index, count 1
			0x03,                   // index 3
			0x10, 0x27, 0x00, 0x00, // 10000
			0x00,                   // status
			0x29, 0x03, 0x17, 0x01, // g41v3, 1-octet index, count 1
			0x04,                   // index 4
			0x00, 0x00, 0x48, 0x42, // 50.0
			0x00, // status
		},
		want: appWant{fc: FuncDirectOperate, dir: Request, seq: 4,
			objects: []ObjectHeader{
				{Group: 41, Variation: 1, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 1, Size: 6, NumPoints: 1},
				{Group: 41, Variation: 3, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 1, Size: 6, FirstPoint: 1, NumPoints: 1},
			},
			points: []Point{{Index: 3, Value: 10000}, {Index: 4, Value: 50}}},
	},
	{
		name: "response g20v1 counters",
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x14, 0x01, 0x00, 0x00, 0x01, // g20v1, start 0 stop 1
			0x01, 0x39, 0x30, 0x00, 0x00, // 0: online, 12345
			0x01, 0xFF, 0xFF, 0xFF, 0xFF, // 1: online, 4294967295
		},
		want: appWant{fc: FuncResponse, dir: Response,
			objects: []ObjectHeader{{Group: 20, Variation: 1, HasRange: true, Stop: 1, Count: 2, Size: 10, NumPoints: 2}},
			points: []Point{
				{Index: 0, Value: 12345, Flags: 1, HasFlags: true},
				{Index: 1, Value: 4294967295, Flags: 1, HasFlags: true},
			}},
	},
	{
		name: "response g32v1, g32v7 and g32v8 events",
		frag: cat([]byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x20, 0x01, 0x28, 0x01, 0x00, // g32v1, 2-octet index, count 1
			0x02, 0x01, // index 258
			0x01, 0xFE, 0xFF, 0xFF, 0xFF, // online, -2
			0x20, 0x07, 0x17, 0x01, // g32v7 float with time, count 1
			0x04,                         // index 4
			0x01, 0x00, 0x00, 0xA4, 0x41, // online, 20.5
		}, t1, []byte{
			0x20, 0x06, 0x17, 0x01, // g32v6 double without time
			0x05,                                                 // index 5
			0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xC0, // online, -2.25
		}),
		want: appWant{fc: FuncResponse, dir: Response,
			objects: []ObjectHeader{
				{Group: 32, Variation: 1, Qualifier: 0x28, Prefix: 2, Range: 8, Count: 1, Size: 7, NumPoints: 1},
				{Group: 32, Variation: 7, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 1, Size: 12, FirstPoint: 1, NumPoints: 1},
				{Group: 32, Variation: 6, Qualifier: 0x17, Prefix: 1, Range: 7, Count: 1, Size: 10, FirstPoint: 2, NumPoints: 1},
			},
			points: []Point{
				{Index: 258, Value: -2, Flags: 1, HasFlags: true},
				{Index: 4, Value: 20.5, Flags: 1, HasFlags: true, Time: t1ms, HasTime: true},
				{Index: 5, Value: -2.25, Flags: 1, HasFlags: true},
			}},
	},
	{
		name: "write g50v1 time",
		frag: cat([]byte{
			0xC5, 0x02, // write seq 5
			0x32, 0x01, 0x07, 0x01, // g50v1, count 1
		}, t1),
		want: appWant{fc: FuncWrite, dir: Request, seq: 5,
			objects: []ObjectHeader{{Group: 50, Variation: 1, Qualifier: 0x07, Range: 7, Count: 1, Size: 6, NumPoints: 1}},
			points:  []Point{{Time: t1ms, HasTime: true}}},
	},
	{
		name: "delay measure request takes no objects",
		frag: []byte{0xC6, 0x17}, // delay measure seq 6
		want: appWant{fc: FuncDelayMeasure, dir: Request, seq: 6},
	},
	{
		name: "delay measure response g52v2",
		frag: []byte{
			0xC6, 0x81, 0x00, 0x00, // response seq 6
			0x34, 0x02, 0x07, 0x01, // g52v2 fine time delay, count 1
			0x2C, 0x01, // 300 ms
		},
		want: appWant{fc: FuncResponse, dir: Response, seq: 6,
			objects: []ObjectHeader{{Group: 52, Variation: 2, Qualifier: 0x07, Range: 7, Count: 1, Size: 2, NumPoints: 1}},
			points:  []Point{{Value: 300}}},
	},
	{
		name: "g52v1 coarse delay in seconds",
		frag: []byte{
			0xC6, 0x81, 0x00, 0x00, // response seq 6
			0x34, 0x01, 0x07, 0x01, // g52v1 coarse, count 1
			0x02, 0x00, // 2 s
		},
		want: appWant{fc: FuncResponse, dir: Response, seq: 6,
			objects: []ObjectHeader{{Group: 52, Variation: 1, Qualifier: 0x07, Range: 7, Count: 1, Size: 2, NumPoints: 1}},
			points:  []Point{{Value: 2000}}},
	},
	{
		name: "write g80v1 clears device restart",
		frag: []byte{
			0xC7, 0x02, // write seq 7
			0x50, 0x01, 0x00, 0x07, 0x07, // g80v1, start 7 stop 7
			0x00, // IIN1.7 = 0
		},
		want: appWant{fc: FuncWrite, dir: Request, seq: 7,
			objects: []ObjectHeader{{Group: 80, Variation: 1, HasRange: true, Start: 7, Stop: 7, Count: 1, Size: 1, NumPoints: 1}},
			points:  []Point{{Index: 7, Value: 0}}},
	},
	{
		name: "response g110 octet string",
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x6E, 0x05, 0x00, 0x02, 0x02, // g110v5 (5 octets), start 2 stop 2
			'h', 'e', 'l', 'l', 'o',
		},
		want: appWant{fc: FuncResponse, dir: Response,
			objects: []ObjectHeader{{Group: 110, Variation: 5, HasRange: true, Start: 2, Stop: 2, Count: 1, Size: 5, NumPoints: 1}},
			points:  []Point{{Index: 2, Octets: []byte("hello")}}},
	},
	{
		name: "open file g70v3 file command",
		frag: []byte{
			0xC8, 0x19, // open file seq 8
			0x46, 0x03, 0x5B, 0x01, // g70v3, 2-octet size prefix, count 1
			0x1F, 0x00, // object size 31
			0x1A, 0x00, // file name offset 26
			0x05, 0x00, // file name size 5
			0, 0, 0, 0, 0, 0, // creation time
			0xFF, 0x01, // permissions
			0, 0, 0, 0, // authentication key
			0, 0, 0, 0, // file size
			0x01, 0x00, // mode: read
			0x00, 0x04, // maximum block size 1024
			0x2A, 0x00, // request id
			'a', '.', 't', 'x', 't',
		},
		want: appWant{fc: FuncOpenFile, dir: Request, seq: 8,
			objects: []ObjectHeader{{Group: 70, Variation: 3, Qualifier: 0x5B, Prefix: 5, Range: 0xB, Count: 1, Size: 33, NumPoints: 1}},
			points: []Point{{Octets: []byte{
				0x1A, 0x00, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0xFF, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
				0x01, 0x00, 0x00, 0x04, 0x2A, 0x00, 'a', '.', 't', 'x', 't',
			}}}},
	},
	{
		name: "authenticate request g120v1 free format, content skipped",
		frag: []byte{
			0xC9, 0x20, // authenticate request seq 9
			0x78, 0x01, 0x5B, 0x01, // g120v1 challenge, 2-octet size prefix, count 1
			0x0C, 0x00, // size 12
			0x01, 0x00, 0x00, 0x00, // challenge sequence number
			0x01, 0x00, // user number
			0x04,                   // MAC algorithm
			0x01,                   // reason: critical
			0xDE, 0xAD, 0xBE, 0xEF, // challenge data
		},
		want: appWant{fc: FuncAuthenticateRequest, dir: Request, seq: 9,
			objects: []ObjectHeader{{Group: 120, Variation: 1, Qualifier: 0x5B, Prefix: 5, Range: 0xB, Count: 1, Size: 14}}},
	},
	{
		name: "aggressive mode cold restart: g120 only is no anomaly",
		frag: []byte{
			0xC0, 0x0D, // cold restart
			0x78, 0x03, 0x07, 0x01, // g120v3 aggressive mode request, count 1
			0x02, 0x00, 0x00, 0x00, // challenge sequence number
			0x01, 0x00, // user number
			0x78, 0x09, 0x5B, 0x01, // g120v9 MAC, count 1
			0x04, 0x00, 0x01, 0x02, 0x03, 0x04, // size 4, MAC
		},
		want: appWant{fc: FuncColdRestart, dir: Request,
			objects: []ObjectHeader{
				{Group: 120, Variation: 3, Qualifier: 0x07, Range: 7, Count: 1, Size: 6},
				{Group: 120, Variation: 9, Qualifier: 0x5B, Prefix: 5, Range: 0xB, Count: 1, Size: 6},
			}},
	},
	{
		name: "cold restart with objects",
		frag: []byte{
			0xC0, 0x0D, // cold restart
			0x3C, 0x01, 0x06, // g60v1
		},
		want: appWant{fc: FuncColdRestart, dir: Request, malformed: ObjectsNotAllowed,
			objects: []ObjectHeader{{Group: 60, Variation: 1, Qualifier: 0x06, Range: 6}}},
	},
	{
		name: "freeze at time: g50v2 carries data, the counters do not",
		frag: cat([]byte{
			0xC0, 0x0B, // freeze at time
			0x32, 0x02, 0x07, 0x01, // g50v2, count 1
		}, t1, []byte{
			0x60, 0xEA, 0x00, 0x00, // interval 60000 ms
			0x14, 0x00, 0x06, // g20v0, all
		}),
		want: appWant{fc: FuncFreezeAtTime, dir: Request,
			objects: []ObjectHeader{
				{Group: 50, Variation: 2, Qualifier: 0x07, Range: 7, Count: 1, Size: 10, NumPoints: 1},
				{Group: 20, Variation: 0, Qualifier: 0x06, Range: 6, FirstPoint: 1},
			},
			points: []Point{{Value: 60000, Time: t1ms, HasTime: true}}},
	},
	{
		name: "g1v1 packed bits and g3v1 double bits",
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x01, 0x01, 0x00, 0x00, 0x09, // g1v1, start 0 stop 9: 10 bits in 2 octets
			0b10100101, 0b00000010, // 0,2,5,7 on; 9 on
			0x03, 0x01, 0x00, 0x04, 0x08, // g3v1, start 4 stop 8: 5 points in 2 octets
			0b11100100, 0b00000001, // 4:0 5:1 6:2 7:3 8:1
		},
		want: appWant{fc: FuncResponse, dir: Response,
			objects: []ObjectHeader{
				{Group: 1, Variation: 1, HasRange: true, Stop: 9, Count: 10, Size: 2, NumPoints: 10},
				{Group: 3, Variation: 1, HasRange: true, Start: 4, Stop: 8, Count: 5, Size: 2, FirstPoint: 10, NumPoints: 5},
			},
			points: []Point{
				{Index: 0, Value: 1}, {Index: 1}, {Index: 2, Value: 1}, {Index: 3}, {Index: 4},
				{Index: 5, Value: 1}, {Index: 6}, {Index: 7, Value: 1}, {Index: 8}, {Index: 9, Value: 1},
				{Index: 4, Value: 0}, {Index: 5, Value: 1}, {Index: 6, Value: 2}, {Index: 7, Value: 3}, {Index: 8, Value: 1},
			}},
	},
	{
		name: "g0 device attribute",
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x00, 0xFC, 0x00, 0x00, 0x00, // g0v252 device manufacturer's name, start 0 stop 0
			0x01, 0x03, 'A', 'C', 'M', // visible string, length 3
		},
		want: appWant{fc: FuncResponse, dir: Response,
			objects: []ObjectHeader{{Group: 0, Variation: 252, HasRange: true, Count: 1, Size: 5, NumPoints: 1}},
			points:  []Point{{Code: 1, Octets: []byte("ACM")}}},
	},
	{
		name: "unknown object stops decoding",
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x1E, 0x04, 0x00, 0x00, 0x00, // g30v4 int16, start 0 stop 0
			0x64, 0x00, // 100
			0x1E, 0x63, 0x00, 0x00, 0x00, // g30v99: not assigned
			0xAA, 0xBB, // unknowable
			0x01, 0x02, 0x00, 0x00, 0x00, 0x01, // g1v2: never reached
		},
		want: appWant{fc: FuncResponse, dir: Response, malformed: UnknownObject,
			objects: []ObjectHeader{
				{Group: 30, Variation: 4, HasRange: true, Count: 1, Size: 2, NumPoints: 1},
				{Group: 30, Variation: 99, HasRange: true, Count: 1, Size: -1, FirstPoint: 1},
			},
			points: []Point{{Value: 100}}},
	},
	{
		name: "free format object without a size prefix is unknown",
		frag: []byte{
			0xC0, 0x19, // open file
			0x46, 0x03, 0x07, 0x01, // g70v3 with count 1 but no size prefix
			0x00, 0x00,
		},
		want: appWant{fc: FuncOpenFile, dir: Request, malformed: UnknownObject,
			objects: []ObjectHeader{{Group: 70, Variation: 3, Qualifier: 0x07, Range: 7, Count: 1, Size: -1}}},
	},
	{
		name: "truncated object data",
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x1E, 0x01, 0x00, 0x00, 0x02, // g30v1, start 0 stop 2: 15 octets
			0x01, 0x0A, 0x00, 0x00, 0x00, // 0: online, 10
			0x01, 0x14, 0x00, // 1: cut off
		},
		want: appWant{fc: FuncResponse, dir: Response, malformed: ObjectTooShort,
			objects: []ObjectHeader{{Group: 30, Variation: 1, HasRange: true, Stop: 2, Count: 3, Size: 15, NumPoints: 1}},
			points:  []Point{{Value: 10, Flags: 1, HasFlags: true}}},
	},
	{
		name: "truncated object header",
		frag: []byte{
			0xC0, 0x01, // read
			0x3C, 0x02, 0x06, // g60v2
			0x3C, 0x03, // cut off
		},
		want: appWant{fc: FuncRead, dir: Request, malformed: ObjectTooShort,
			objects: []ObjectHeader{{Group: 60, Variation: 2, Qualifier: 0x06, Range: 6}}},
	},
	{
		name: "truncated range",
		frag: []byte{
			0xC0, 0x01, // read
			0x01, 0x02, 0x01, 0x00, 0x00, 0x05, // g1v2, 2-octet start 0, stop cut off
		},
		want: appWant{fc: FuncRead, dir: Request, malformed: ObjectTooShort},
	},
	{
		name: "too many objects",
		cfg:  Config{MaxObjects: 2},
		frag: []byte{
			0xC0, 0x01, // read
			0x3C, 0x02, 0x06, // g60v2
			0x3C, 0x03, 0x06, // g60v3
			0x3C, 0x04, 0x06, // g60v4: one too many
		},
		want: appWant{fc: FuncRead, dir: Request, malformed: TooManyObjects,
			objects: []ObjectHeader{
				{Group: 60, Variation: 2, Qualifier: 0x06, Range: 6},
				{Group: 60, Variation: 3, Qualifier: 0x06, Range: 6},
			}},
	},
	{
		name: "points over MaxPoints are counted",
		cfg:  Config{MaxPoints: 2},
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x0A, 0x02, 0x00, 0x00, 0x03, // g10v2, start 0 stop 3
			0x81, 0x01, 0x81, 0x01,
		},
		want: appWant{fc: FuncResponse, dir: Response, more: 2,
			objects: []ObjectHeader{{Group: 10, Variation: 2, HasRange: true, Stop: 3, Count: 4, Size: 4, NumPoints: 2}},
			points: []Point{
				{Index: 0, Value: 1, Flags: 0x81, HasFlags: true},
				{Index: 1, Value: 0, Flags: 0x01, HasFlags: true},
			}},
	},
	{
		name: "stop before start",
		frag: []byte{
			0xC0, 0x81, 0x00, 0x00, // response, IIN 0
			0x01, 0x02, 0x00, 0x05, 0x02, // g1v2, start 5 stop 2
			0x01,
		},
		want: appWant{fc: FuncResponse, dir: Response, malformed: BadRange},
	},
	{
		name: "stop before start in a read is noted, the walk goes on",
		frag: []byte{
			0xC0, 0x01, // read
			0x01, 0x02, 0x00, 0x05, 0x02, // g1v2, start 5 stop 2
			0x3C, 0x01, 0x06, // g60v1
		},
		want: appWant{fc: FuncRead, dir: Request, malformed: BadRange,
			objects: []ObjectHeader{
				{Group: 1, Variation: 2, HasRange: true, Start: 5, Stop: 2},
				{Group: 60, Variation: 1, Qualifier: 0x06, Range: 6},
			}},
	},
	{
		name: "unknown function code",
		frag: []byte{
			0xC0, 0x40, // function 64: not assigned
			0x3C, 0x01, 0x06, // not decoded
		},
		want: appWant{fc: 64, dir: Request, malformed: UnknownFunction},
	},
	{
		name: "unknown response-range function code",
		frag: []byte{0xC0, 0x84, 0x00, 0x00}, // function 132
		want: appWant{fc: 132, dir: Request, malformed: UnknownFunction},
	},
	{
		name: "empty fragment",
		frag: []byte{},
		want: appWant{malformed: AppTooShort},
	},
	{
		name: "control octet only",
		frag: []byte{0xC0},
		want: appWant{malformed: AppTooShort},
	},
	{
		name: "response without the second IIN octet",
		frag: []byte{0xC0, 0x81, 0x00},
		want: appWant{fc: FuncResponse, dir: Response, malformed: AppTooShort},
	},
	{
		name: "authenticate response with IIN",
		frag: []byte{0xC0, 0x83, 0x00, 0x20}, // authenticate response, IIN2 config_corrupt
		want: appWant{fc: FuncAuthenticateResponse, dir: Response, iin: IINConfigCorrupt},
	},
	{
		name: "reserved qualifier",
		frag: []byte{
			0xC0, 0x01, // read
			0x3C, 0x02, 0x06, // g60v2
			0x3C, 0x03, 0x0A, // range code 0xA is reserved
		},
		want: appWant{fc: FuncRead, dir: Request, malformed: BadQualifier,
			objects: []ObjectHeader{{Group: 60, Variation: 2, Qualifier: 0x06, Range: 6}}},
	},
}

func TestDecodeApp(t *testing.T) {
	for _, tc := range appCases {
		t.Run(tc.name, func(t *testing.T) { checkApp(t, tc) })
	}
}

// A second fragment through the same Decoder must not see the first.
func TestDecodeAppReuse(t *testing.T) {
	d := NewDecoder(Config{})
	var m Message
	for _, tc := range appCases {
		m = Message{}
		d.decodeApp(&m, tc.frag)
	}
	m = Message{}
	d.decodeApp(&m, appCases[0].frag)
	if len(m.Objects) != 4 || len(m.Points) != 0 || m.Anomalies != 0 {
		t.Fatalf("reuse: %d objects %d points anomalies %#x", len(m.Objects), len(m.Points), m.Anomalies)
	}
}

// decodeApp keeps the transport's anomalies and adds its own.
func TestDecodeAppKeepsAnomalies(t *testing.T) {
	d := NewDecoder(Config{})
	m := Message{Malformed: FragmentTruncated, Anomalies: 1 << FragmentTruncated}
	d.decodeApp(&m, []byte{0xC0, 0x81, 0x00, 0x00, 0x1E, 0x01, 0x00, 0x00, 0x02, 0x01})
	if m.Malformed != FragmentTruncated || m.Anomalies != 1<<FragmentTruncated|1<<ObjectTooShort {
		t.Fatalf("Malformed %v Anomalies %#x", m.Malformed, m.Anomalies)
	}
}

func TestControlBits(t *testing.T) {
	d := NewDecoder(Config{})
	for c := 0; c < 256; c++ {
		var m Message
		d.decodeApp(&m, []byte{byte(c), FuncConfirm})
		if m.AppControl != byte(c) || m.FIR != (c&0x80 != 0) || m.FIN != (c&0x40 != 0) ||
			m.CON != (c&0x20 != 0) || m.UNS != (c&0x10 != 0) || m.Seq != byte(c&0x0F) {
			t.Fatalf("control %#02x: %+v", c, m)
		}
	}
}

func TestNames(t *testing.T) {
	want := map[uint8]string{
		0: "confirm", 1: "read", 2: "write", 3: "select", 4: "operate", 5: "direct_operate",
		6: "direct_operate_nr", 7: "immed_freeze", 8: "immed_freeze_nr", 9: "freeze_clear",
		10: "freeze_clear_nr", 11: "freeze_at_time", 12: "freeze_at_time_nr", 13: "cold_restart",
		14: "warm_restart", 15: "initialize_data", 16: "initialize_application",
		17: "start_application", 18: "stop_application", 19: "save_configuration",
		20: "enable_unsolicited", 21: "disable_unsolicited", 22: "assign_class",
		23: "delay_measure", 24: "record_current_time", 25: "open_file", 26: "close_file",
		27: "delete_file", 28: "get_file_info", 29: "authenticate_file", 30: "abort_file",
		31: "activate_config", 32: "authenticate_request", 33: "authenticate_error",
		129: "response", 130: "unsolicited_response", 131: "authenticate_response",
	}
	for fc := 0; fc < 256; fc++ {
		name, ok := want[uint8(fc)]
		if !ok {
			name = "unknown"
		}
		if got := FunctionName(uint8(fc)); got != name {
			t.Errorf("FunctionName(%d) = %q, want %q", fc, got, name)
		}
		if knownFunction(uint8(fc)) != ok {
			t.Errorf("knownFunction(%d) = %v", fc, !ok)
		}
	}
	iin := []string{"all_stations", "class_1_events", "class_2_events", "class_3_events",
		"need_time", "local_control", "device_trouble", "device_restart",
		"no_func_code_support", "object_unknown", "parameter_error", "event_buffer_overflow",
		"already_executing", "config_corrupt", "reserved_2", "reserved_1"}
	for bit, name := range iin {
		if got := IINName(uint(bit)); got != name {
			t.Errorf("IINName(%d) = %q, want %q", bit, got, name)
		}
	}
	if IINName(16) != "" {
		t.Errorf("IINName(16) = %q", IINName(16))
	}
	for _, c := range []struct {
		prm  bool
		fc   uint8
		name string
	}{
		{true, 0, "reset_link_states"}, {true, 2, "test_link_states"},
		{true, 3, "confirmed_user_data"}, {true, 4, "unconfirmed_user_data"},
		{true, 9, "request_link_status"}, {true, 5, "unknown"},
		{false, 0, "ack"}, {false, 1, "nack"}, {false, 11, "link_status"},
		{false, 15, "not_supported"}, {false, 4, "unknown"}, {false, 200, "unknown"},
	} {
		if got := LinkFunctionName(c.prm, c.fc); got != c.name {
			t.Errorf("LinkFunctionName(%v, %d) = %q, want %q", c.prm, c.fc, got, c.name)
		}
	}
	if GroupName(12) != "control_relay_output_block" || GroupName(120) != "authentication" || GroupName(5) != "" {
		t.Errorf("GroupName: %q %q %q", GroupName(12), GroupName(120), GroupName(5))
	}
	seen := map[string]bool{}
	for r := Reason(1); r < numReasons; r++ {
		s := r.String()
		if s == "" || s == "invalid" || seen[s] {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
		for _, c := range s {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
				t.Errorf("Reason(%d).String() = %q is not snake_case", r, s)
			}
		}
		seen[s] = true
	}
	if Reason(0).String() != "ok" || numReasons.String() != "invalid" {
		t.Errorf("Reason(0) %q, numReasons %q", Reason(0).String(), numReasons.String())
	}
	if err := Error(UnknownObject); err.Error() != "dnp3: unknown_object" || err.Reason() != UnknownObject {
		t.Errorf("Error() = %q", err.Error())
	}
}

// Every group the decoder sizes has a name.
func TestGroupsNamed(t *testing.T) {
	for g := 0; g < 256; g++ {
		for v := 0; v < 256; v++ {
			if lookup(uint8(g), uint8(v)).kind != objUnknown && GroupName(uint8(g)) == "" {
				t.Errorf("g%dv%d has a layout but no group name", g, v)
			}
		}
	}
}

// TestLazyPointsMatchEager: with LazyPoints, DecodePoints gives exactly
// what eager decoding gives, for every fragment of the table.
func TestLazyPointsMatchEager(t *testing.T) {
	for _, tc := range appCases {
		t.Run(tc.name, func(t *testing.T) {
			eager := NewDecoder(tc.cfg)
			var em Message
			eager.decodeApp(&em, tc.frag)
			cfg := tc.cfg
			cfg.LazyPoints = true
			lazy := NewDecoder(cfg)
			var lm Message
			lazy.decodeApp(&lm, tc.frag)
			if len(lm.Points) != 0 || len(lm.Objects) != len(em.Objects) {
				t.Fatalf("before DecodePoints: %d points, %d objects (eager %d)", len(lm.Points), len(lm.Objects), len(em.Objects))
			}
			lm.DecodePoints()
			lm.DecodePoints() // a second call changes nothing
			if !pointsEqual(lm.Points, em.Points) || lm.MorePoints != em.MorePoints {
				t.Errorf("points differ: lazy %d (+%d more), eager %d (+%d more)", len(lm.Points), lm.MorePoints, len(em.Points), em.MorePoints)
			}
			for i := range em.Objects {
				if lm.Objects[i] != em.Objects[i] {
					t.Errorf("object %d: lazy %+v, eager %+v", i, lm.Objects[i], em.Objects[i])
				}
			}
			if lm.Malformed != em.Malformed || lm.Anomalies != em.Anomalies {
				t.Errorf("anomalies: lazy %v %#x, eager %v %#x", lm.Malformed, lm.Anomalies, em.Malformed, em.Anomalies)
			}
		})
	}
}

// rangeLenOf is the octets of one of a header's start and stop, 0 when
// it has none; countLenOf the octets of its count.
func rangeLenOf(h *ObjectHeader) int {
	if !h.HasRange && h.Range > rangeVirtual4 {
		return 0
	}
	return rangeLen[h.Range]
}

func countLenOf(h *ObjectHeader) int {
	if h.Range <= rangeVirtual4 || h.Range == rangeAll {
		return 0
	}
	return rangeLen[h.Range]
}
