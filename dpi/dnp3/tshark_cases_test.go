package dnp3

import "testing"

// Cases where tapwatch and Wireshark 4.0.17 decode the public corpus
// differently and IEEE 1815-2012 sides with tapwatch. They pin this
// package's behaviour so that nobody "fixes" it to match tshark; the
// corpus test lists the same differences in
// sensor/testdata/corpus-allow-dnp3*.tsv. The bytes are this file's own;
// comments name the capture and frame where the pattern was seen.

// time48 is ms as a DNP3 absolute time: 48 bits, little endian.
func time48(ms uint64) []byte {
	return []byte{byte(ms), byte(ms >> 8), byte(ms >> 16), byte(ms >> 24), byte(ms >> 32), byte(ms >> 40)}
}

// fcSeen is what TestTshark* compare of a Message besides seen.
type fcSeen struct {
	Kind Kind
	FC   uint8
	Seq  uint8
}

type fcRecorder struct{ got []fcSeen }

func (r *fcRecorder) Message(m *Message) { r.got = append(r.got, fcSeen{m.Kind, m.FC, m.Seq}) }

// The transport sequence counts modulo 64 (§8.2): a segment with sequence
// 0 continues one with 63, and a FIR segment starts a new fragment
// whatever was before it. Wireshark 4.0 joins wrongly across the wrap:
// in cisagov-icsnpp-dnp3 testing__traces__dnp3_example.pcap it reports
// no fragment at frames 18, 114, 210 (FIR seq 63 then FIN seq 0) and 810
// (seq 62, 63, 0), and at frame 311 (FIR FIN seq 0, a RESPONSE) a CONFIRM
// read from the stale seq-0 segment of frame 210.
func TestTsharkTransportWrap(t *testing.T) {
	resp := analogResponse(60) // 308 octets: two segments
	resp[0] = 0xC3             // application control: FIR, FIN, sequence 3
	echo := func(seq uint8) []byte {
		return []byte{
			0xC0 | seq, // application control: FIR, FIN
			0x81,       // RESPONSE
			0x00, 0x00, // IIN
			0x0C, 0x01, 0x17, 0x01, // g12v1 CROB, 1-octet index, count 1
			0x02,       // index 2
			0x03, 0x01, // latch on, count 1
			0xE8, 0x03, 0x00, 0x00, // on 1000 ms
			0x00, 0x00, 0x00, 0x00, // off 0
			0x00, // status: success
		}
	}
	seg := func(fir, fin bool, seq uint8, app []byte) []byte {
		return segFrame(ctlOutstationData, master1, outstation, fir, fin, seq, app)
	}
	in := [][]byte{
		seg(true, false, 63, resp[:maxSegmentData]), // FIR, sequence 63
		seg(false, true, 0, resp[maxSegmentData:]),  // FIN, sequence 0: the same fragment
		seg(true, true, 63, echo(7)),                // a whole fragment at 63
		seg(true, true, 0, echo(8)),                 // and one at 0: not joined to anything
	}
	want := []seen{
		appSeen(outstation, master1, 2, 63, resp),
		appSeen(outstation, master1, 1, 63, echo(7)),
		appSeen(outstation, master1, 1, 0, echo(8)),
	}
	wantFC := []fcSeen{
		{KindApplication, FuncResponse, 3},
		{KindApplication, FuncResponse, 7},
		{KindApplication, FuncResponse, 8},
	}
	f, r := newFeeder(t, Config{}, false)
	for _, b := range in {
		f.feed(FromServer, b, Meta{})
	}
	checkSeen(t, r.got, want)

	fr := &fcRecorder{}
	var c Conn
	c.Reset(false)
	d := NewDecoder(Config{})
	for _, b := range in {
		d.Datagram(&c, FromServer, b, Meta{}, fr)
	}
	if len(fr.got) != len(wantFC) {
		t.Fatalf("got %+v, want %+v", fr.got, wantFC)
	}
	for i := range wantFC {
		if fr.got[i] != wantFC[i] {
			t.Errorf("message %d: got %+v, want %+v", i, fr.got[i], wantFC[i])
		}
	}
}

// Only CONFIRMED_USER_DATA and UNCONFIRMED_USER_DATA pass user data to
// the transport function (§9.2.4.1.3, Table 9-1). Wireshark decodes the
// user data of other primary frames as a fragment: a READ under the
// reserved functions 5 and 10 (opendnp3 conformance 6.6.2.2 dump, frames
// 14 and 16, control 0xC5 and 0xCA) and under TEST_LINK_STATES with
// LENGTH above 5 (6.6.2.5 dump, frame 8, control 0xC2).
func TestTsharkUserDataOutsideUserDataFrames(t *testing.T) {
	user := []byte{
		0xC0,                         // transport: FIR, FIN, sequence 0
		0xC4, 0x01, 0x3C, 0x01, 0x06, // READ class 0, application sequence 4
	}
	tests := []struct {
		name    string
		control byte
		want    seen
	}{
		{"test link states with user data", linkDIR | linkPRM | lfTestLinkStates,
			seen{Kind: KindLink, Dir: Request, PRM: true, Func: lfTestLinkStates, Src: master1, Dst: outstation,
				Malformed: BadLinkFunction, Anomalies: 1 << BadLinkFunction}}, // user data on a function that carries none
		{"reserved primary 5 with user data", linkDIR | linkPRM | 5,
			seen{Kind: KindLink, Dir: Request, PRM: true, Func: 5, Src: master1, Dst: outstation,
				Malformed: BadLinkFunction, Anomalies: 1 << BadLinkFunction}},
		{"reserved primary 10 with user data", linkDIR | linkPRM | 10,
			seen{Kind: KindLink, Dir: Request, PRM: true, Func: 10, Src: master1, Dst: outstation,
				Malformed: BadLinkFunction, Anomalies: 1 << BadLinkFunction}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, r := newFeeder(t, Config{}, false)
			f.feed(FromClient, linkFrame(tt.control, outstation, master1, user), Meta{})
			// The next frame, a real READ, is decoded: nothing was left
			// in reassembly by the one before.
			f.feed(FromClient, segFrame(ctlMasterData, outstation, master1, true, true, 1, readClass1), Meta{})
			checkSeen(t, r.got, []seen{tt.want, appSeen(master1, outstation, 1, 1, readClass1)})
		})
	}
}

// Group 51 variation 2 is the unsynchronized CTO, a 6-octet time (Annex
// A) like variation 1. Wireshark 4.0 does not know it and stops at it,
// so it never lists the relative-time events after it: opendnp3
// conformance 8.14.2.12–15 and 8.22.2.13–15 dumps, frames 10 and 16 (a
// response g51v2, g2v3 or g4v3 with 2-octet index prefixes, and again).
func TestTsharkUnsynchronizedCTO(t *testing.T) {
	const cto1, cto2 = t1ms, t1ms + 65000
	checkApp(t, appCase{
		name: "g51v2 then g2v3, g51v2 then g4v3",
		frag: cat([]byte{
			0xE5, 0x81, 0x10, 0x00, // FIR FIN CON seq 5, RESPONSE, IIN1.4 need_time
			0x33, 0x02, 0x07, 0x01, // g51v2 CTO unsynchronized, count 1
		}, time48(cto1), []byte{
			0x02, 0x03, 0x28, 0x03, 0x00, // g2v3, 2-octet index, 2-octet count 3
			0xFF, 0xFF, 0x81, 0x00, 0x00, // index 65535: online, on, CTO + 0
			0x07, 0x00, 0x01, 0x0A, 0x00, // index 7: online, off, CTO + 10 ms
			0x07, 0x00, 0x81, 0x0B, 0x01, // index 7: online, on, CTO + 267 ms
			0x33, 0x02, 0x07, 0x01, // g51v2 again
		}, time48(cto2), []byte{
			0x04, 0x03, 0x28, 0x01, 0x00, // g4v3, 2-octet index, 2-octet count 1
			0x00, 0x04, 0x81, 0x02, 0x00, // index 1024: online, state 2 (on), CTO + 2 ms
		}),
		want: appWant{fc: FuncResponse, dir: Response, seq: 5, iin: 0x0010,
			objects: []ObjectHeader{
				{Group: 51, Variation: 2, Qualifier: 0x07, Range: 7, Count: 1, Size: 6, NumPoints: 1},
				{Group: 2, Variation: 3, Qualifier: 0x28, Prefix: 2, Range: 8, Count: 3, Size: 15, FirstPoint: 1, NumPoints: 3},
				{Group: 51, Variation: 2, Qualifier: 0x07, Range: 7, Count: 1, Size: 6, FirstPoint: 4, NumPoints: 1},
				{Group: 4, Variation: 3, Qualifier: 0x28, Prefix: 2, Range: 8, Count: 1, Size: 5, FirstPoint: 5, NumPoints: 1},
			},
			points: []Point{
				{Index: 0, Time: cto1, HasTime: true},
				{Index: 65535, Value: 1, Flags: 0x81, HasFlags: true, Time: cto1, HasTime: true},
				{Index: 7, Value: 0, Flags: 0x01, HasFlags: true, Time: cto1 + 10, HasTime: true},
				{Index: 7, Value: 1, Flags: 0x81, HasFlags: true, Time: cto1 + 267, HasTime: true},
				{Index: 0, Time: cto2, HasTime: true},
				{Index: 1024, Value: 2, Flags: 0x81, HasFlags: true, Time: cto2 + 2, HasTime: true},
			}},
	})
}

// A qualifier with the reserved bit 7 set and the reserved range code 0xD
// (§4.2.2.7.3) makes no object header: its range field has no defined
// length, so decoding stops there with BadQualifier and the headers
// before it stay. Wireshark lists the group and variation of such a
// header anyway, with "Unknown Range Type": DNP3 test data part 1
// (bro/dnp3, openics, quickdraw, zeek copies), frames 154 and 156, a
// broadcast DISABLE_UNSOLICITED whose third header is 3C 04 ED.
func TestTsharkReservedQualifier(t *testing.T) {
	checkApp(t, appCase{
		name: "g60v2, g60v3, then qualifier 0xED",
		frag: []byte{
			0xC6,             // FIR FIN seq 6
			0x15,             // DISABLE_UNSOLICITED
			0x3C, 0x02, 0x06, // class 1, all objects
			0x3C, 0x03, 0x06, // class 2, all objects
			0x3C, 0x04, 0xED, // class 3, qualifier 0xED: bit 7 reserved, prefix 6, range 0xD reserved
			0x00, 0x00, // what follows cannot be framed
		},
		want: appWant{fc: FuncDisableUnsolicited, dir: Request, seq: 6, malformed: BadQualifier,
			objects: []ObjectHeader{
				{Group: 60, Variation: 2, Qualifier: 0x06, Range: 6},
				{Group: 60, Variation: 3, Qualifier: 0x06, Range: 6},
			}},
	})
}
