package dnp3

import (
	"bytes"
	"testing"
)

// Addresses of the test conversations.
const (
	master1    = 1024
	master2    = 1025
	outstation = 1
)

// appSeen is what a whole fragment sent from src to dst reports.
func appSeen(src, dst uint16, segments int, firstSeq uint8, frag []byte) seen {
	return seen{Kind: KindApplication, PRM: true, Func: lfUnconfirmedData, Src: src, Dst: dst,
		Segments: segments, FirstSeq: firstSeq, Fragment: string(frag)}
}

// truncSeen is appSeen of a fragment given up for reason r.
func truncSeen(src, dst uint16, segments int, firstSeq uint8, frag []byte, r Reason) seen {
	s := appSeen(src, dst, segments, firstSeq, frag)
	s.Truncated, s.Malformed, s.Anomalies = true, r, 1<<r
	return s
}

// orphanSeen is a segment that belongs to no fragment: with MissingFIR,
// or (r == 0) after lost bytes.
func orphanSeen(control byte, src, dst uint16, seq uint8, segment []byte, r Reason) seen {
	s := seen{Kind: KindGarbage, Dir: Response, PRM: true, Func: lfUnconfirmedData, Src: src, Dst: dst,
		Segments: 1, FirstSeq: seq, Raw: string(segment)}
	if control&linkDIR != 0 {
		s.Dir = Request
	}
	if r != 0 {
		s.Malformed, s.Anomalies = r, 1<<r
	} else {
		s.Truncated = true
	}
	return s
}

func TestTransport(t *testing.T) {
	resp := analogResponse(120) // 608 octets: three segments
	p1, p2, p3 := resp[:249], resp[249:498], resp[498:]
	seg := func(fir, fin bool, seq uint8, app []byte) []byte {
		return segFrame(ctlOutstationData, master1, outstation, fir, fin, seq, app)
	}
	seg1 := func(fir, fin bool, seq uint8, app []byte) []byte { // the first master's requests
		return segFrame(ctlMasterData, outstation, master1, fir, fin, seq, app)
	}
	seg2 := func(fir, fin bool, seq uint8, app []byte) []byte { // the second master's
		return segFrame(ctlMasterData, outstation, master2, fir, fin, seq, app)
	}
	whole := appSeen(outstation, master1, 3, 5, resp)

	tests := []struct {
		name      string
		midStream bool
		cfg       Config
		in        [][]byte // frames, fed one at a time
		want      []seen
	}{
		{
			name: "one fragment in three segments",
			in:   [][]byte{seg(true, false, 5, p1), seg(false, false, 6, p2), seg(false, true, 7, p3)},
			want: []seen{whole},
		},
		{
			name: "sequence wraps from 63 to 0",
			in:   [][]byte{seg(true, false, 62, p1), seg(false, false, 63, p2), seg(false, true, 0, p3)},
			want: []seen{appSeen(outstation, master1, 3, 62, resp)},
		},
		{
			name: "a FIR segment may have any sequence",
			in:   [][]byte{seg(true, true, 40, readClass1), seg(true, true, 3, readClass1)},
			want: []seen{appSeen(outstation, master1, 1, 40, readClass1), appSeen(outstation, master1, 1, 3, readClass1)},
		},
		{
			name: "missing FIR: reported once, the rest of that fragment dropped",
			in: [][]byte{
				seg(false, false, 6, p2),
				seg(false, true, 7, p3),
				seg(true, true, 8, readClass1),
			},
			want: []seen{
				orphanSeen(ctlOutstationData, outstation, master1, 6, append([]byte{6}, p2...), MissingFIR),
				appSeen(outstation, master1, 1, 8, readClass1),
			},
		},
		{
			name: "missing FIR on a single segment",
			in:   [][]byte{seg(false, true, 7, p3), seg(false, true, 9, p3)},
			want: []seen{
				orphanSeen(ctlOutstationData, outstation, master1, 7, append([]byte{0x80 | 7}, p3...), MissingFIR),
				orphanSeen(ctlOutstationData, outstation, master1, 9, append([]byte{0x80 | 9}, p3...), MissingFIR),
			},
		},
		{
			name: "sequence out of order: the fragment is given up until the next FIR",
			in: [][]byte{
				seg(true, false, 5, p1),
				seg(false, false, 7, p2), // 6 was lost
				seg(false, true, 8, p3),
				seg(true, false, 9, p1),
				seg(false, false, 10, p2),
				seg(false, true, 11, p3),
			},
			want: []seen{
				truncSeen(outstation, master1, 1, 5, p1, SequenceOutOfOrder),
				appSeen(outstation, master1, 3, 9, resp),
			},
		},
		{
			name: "a repeated segment is out of order",
			in:   [][]byte{seg(true, false, 5, p1), seg(false, false, 6, p2), seg(false, false, 6, p2), seg(false, true, 7, p3)},
			want: []seen{truncSeen(outstation, master1, 2, 5, joinBytes(p1, p2), SequenceOutOfOrder)},
		},
		{
			name: "too long: what fits is reported, the rest dropped",
			cfg:  Config{MaxFragment: 500},
			in: [][]byte{
				seg(true, false, 5, p1),
				seg(false, false, 6, p2),
				seg(false, true, 7, p3), // 608 > 500
				seg(true, true, 8, readClass1),
			},
			want: []seen{
				truncSeen(outstation, master1, 2, 5, joinBytes(p1, p2), FragmentTooLong),
				appSeen(outstation, master1, 1, 8, readClass1),
			},
		},
		{
			name: "too long by a stream of segments",
			cfg:  Config{MaxFragment: 249},
			in:   [][]byte{seg(true, false, 5, p1), seg(false, false, 6, []byte{1}), seg(false, false, 7, p2), seg(false, true, 8, p3)},
			want: []seen{truncSeen(outstation, master1, 1, 5, p1, FragmentTooLong)},
		},
		{
			name: "exactly MaxFragment fits",
			cfg:  Config{MaxFragment: len(resp)},
			in:   [][]byte{seg(true, false, 5, p1), seg(false, false, 6, p2), seg(false, true, 7, p3)},
			want: []seen{whole},
		},
		{
			name: "FIR while a fragment is in progress",
			in:   [][]byte{seg(true, false, 5, p1), seg(false, false, 6, p2), seg(true, true, 7, readClass1)},
			want: []seen{
				truncSeen(outstation, master1, 2, 5, joinBytes(p1, p2), FragmentTruncated),
				appSeen(outstation, master1, 1, 7, readClass1),
			},
		},
		{
			name:      "mid-stream: tails before the first FIR are counted, not anomalies",
			midStream: true,
			in: [][]byte{
				seg(false, false, 6, p2),
				seg(false, true, 7, p3),
				seg(true, false, 8, p1),
				seg(false, false, 9, p2),
				seg(false, true, 10, p3),
				seg(false, true, 11, p3), // after a FIR: an anomaly again
			},
			want: []seen{
				orphanSeen(ctlOutstationData, outstation, master1, 6, append([]byte{6}, p2...), 0),
				orphanSeen(ctlOutstationData, outstation, master1, 7, append([]byte{0x80 | 7}, p3...), 0),
				appSeen(outstation, master1, 3, 8, resp),
				orphanSeen(ctlOutstationData, outstation, master1, 11, append([]byte{0x80 | 11}, p3...), MissingFIR),
			},
		},
		{
			name: "two masters and the outstation interleaved",
			in: [][]byte{
				seg1(true, false, 1, p1),
				seg2(true, false, 20, p2),
				seg(true, false, 5, p1),
				seg1(false, true, 2, p3),
				seg(false, false, 6, p2),
				seg2(false, true, 21, p1),
				seg(false, true, 7, p3),
			},
			want: []seen{
				appSeen(master1, outstation, 2, 1, joinBytes(p1, p3)),
				appSeen(master2, outstation, 2, 20, joinBytes(p2, p1)),
				whole,
			},
		},
		{
			name: "a fifth address pair takes the least recently used slot",
			in: [][]byte{
				segFrame(ctlMasterData, 1, 100, true, false, 0, p1),
				segFrame(ctlMasterData, 2, 100, true, false, 0, p1),
				segFrame(ctlMasterData, 3, 100, true, false, 0, p1),
				segFrame(ctlMasterData, 4, 100, true, false, 0, p1),
				segFrame(ctlMasterData, 1, 100, false, false, 1, p2), // 1 is used again: 2 is the oldest
				segFrame(ctlMasterData, 5, 100, true, false, 0, p1),
				segFrame(ctlMasterData, 5, 100, false, true, 1, p3),
				segFrame(ctlMasterData, 1, 100, false, true, 2, p3),
			},
			want: []seen{
				truncSeen(100, 2, 1, 0, p1, FragmentTruncated),
				appSeen(100, 5, 2, 0, joinBytes(p1, p3)),
				appSeen(100, 1, 3, 0, resp),
			},
		},
		{
			name: "the DIR bit keeps apart fragments between the same addresses",
			in: [][]byte{
				segFrame(ctlMasterData, 1, 2, true, false, 0, p1),
				segFrame(ctlOutstationData, 1, 2, true, true, 0, readClass1),
				segFrame(ctlMasterData, 1, 2, false, true, 1, p2),
			},
			want: []seen{
				appSeen(2, 1, 1, 0, readClass1),
				appSeen(2, 1, 2, 0, joinBytes(p1, p2)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, r := newFeeder(t, tt.cfg, tt.midStream)
			for _, b := range tt.in {
				f.feed(FromServer, b, Meta{})
			}
			checkSeen(t, r.got, tt.want)

			// All in one Feed, and as one datagram, the same.
			f, r = newFeeder(t, tt.cfg, tt.midStream)
			f.feed(FromServer, joinBytes(tt.in...), Meta{})
			checkSeen(t, r.got, tt.want)
			r = &recorder{}
			var c Conn
			c.Reset(tt.midStream)
			NewDecoder(tt.cfg).Datagram(&c, FromServer, joinBytes(tt.in...), Meta{}, r)
			checkSeen(t, r.got, tt.want)
		})
	}
}

func TestTransportBadBlockCRC(t *testing.T) {
	resp := analogResponse(120)
	p1, p2, p3 := resp[:249], resp[249:498], resp[498:]
	bad := segFrame(ctlOutstationData, master1, outstation, false, false, 6, p2)
	bad[20] ^= 1 // in the first block
	f, r := newFeeder(t, Config{}, false)
	f.feed(FromServer, joinBytes(
		segFrame(ctlOutstationData, master1, outstation, true, false, 5, p1),
		bad,
		segFrame(ctlOutstationData, master1, outstation, false, true, 7, p3), // dropped
		segFrame(ctlOutstationData, master1, outstation, true, true, 8, readClass1),
	), Meta{})
	checkSeen(t, r.got, []seen{
		truncSeen(outstation, master1, 1, 5, p1, BadBlockCRC),
		appSeen(outstation, master1, 1, 8, readClass1),
	})

	// With no fragment in progress, the frame is reported alone, and the
	// rest of its fragment raises nothing more.
	f, r = newFeeder(t, Config{}, false)
	first := segFrame(ctlOutstationData, master1, outstation, true, false, 5, p1)
	first[len(first)-1] ^= 1
	f.feed(FromServer, joinBytes(
		first,
		segFrame(ctlOutstationData, master1, outstation, false, false, 6, p2),
		segFrame(ctlOutstationData, master1, outstation, false, true, 7, p3),
	), Meta{})
	checkSeen(t, r.got, []seen{{Kind: KindLink, Dir: Request, PRM: true, Func: lfUnconfirmedData,
		Src: outstation, Dst: master1, Malformed: BadBlockCRC, Anomalies: 1 << BadBlockCRC}})
}

func TestTransportGapAndClose(t *testing.T) {
	resp := analogResponse(120)
	p1, p2, p3 := resp[:249], resp[249:498], resp[498:]
	fromMaster := segFrame(ctlMasterData, outstation, master1, true, false, 1, p1)
	fromOutstation := segFrame(ctlOutstationData, master1, outstation, true, false, 9, p1)

	f, r := newFeeder(t, Config{}, false)
	f.feed(FromClient, fromMaster, Meta{Frame: 1})
	f.feed(FromServer, fromOutstation, Meta{Frame: 2})
	next := segFrame(ctlOutstationData, master1, outstation, false, false, 10, p2)
	f.feed(FromServer, next[:30], Meta{Frame: 3})
	f.gap(FromServer, Meta{Frame: 4}) // the client's fragment goes on
	f.feed(FromServer, segFrame(ctlOutstationData, master1, outstation, false, true, 11, p3), Meta{Frame: 5})
	f.feed(FromClient, segFrame(ctlMasterData, outstation, master1, false, false, 2, p2), Meta{Frame: 6})
	f.d.Close(f.c, Meta{Frame: 7}, r)

	cut := truncSeen(outstation, master1, 1, 9, p1, FragmentTruncated)
	cut.Frame = 4
	tail := orphanSeen(ctlOutstationData, outstation, master1, 11, append([]byte{0x80 | 11}, p3...), 0)
	tail.Frame = 5
	closed := truncSeen(master1, outstation, 2, 1, joinBytes(p1, p2), FragmentTruncated)
	closed.Frame = 7
	checkSeen(t, r.got, []seen{
		{Kind: KindGarbage, Dir: Request, PRM: true, Func: lfUnconfirmedData, Src: outstation, Dst: master1,
			Truncated: true, Raw: string(next[:30]), Frame: 4},
		cut,
		tail,
		closed,
	})

	// Close again: nothing left.
	r.got = nil
	f.d.Close(f.c, Meta{}, r)
	if len(r.got) != 0 {
		t.Errorf("second Close reported %+v", r.got)
	}
}

func TestTransportReuseAfterReset(t *testing.T) {
	resp := analogResponse(120)
	in := segments(ctlOutstationData, master1, outstation, 0, resp)
	f, r := newFeeder(t, Config{}, false)
	f.feed(FromServer, in[:400], Meta{})
	f.c.Reset(false)
	f.held = [2][]byte{}
	f.feed(FromServer, in, Meta{})
	checkSeen(t, r.got, []seen{appSeen(outstation, master1, 3, 0, resp)})
	if !bytes.Equal([]byte(r.got[0].Fragment), resp) {
		t.Error("fragment differs")
	}
}
