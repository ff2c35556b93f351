package dnp3

import (
	"bytes"
	"slices"
	"testing"
)

// linkChecker verifies what every message must satisfy.
type linkChecker struct {
	t      testing.TB
	maxFrg int
	got    []seen // messages that do not depend on how the stream was cut
	msgs   int
}

func (c *linkChecker) Message(m *Message) {
	c.msgs++
	switch m.Kind {
	case KindApplication, KindLink, KindGarbage:
	default:
		c.t.Fatalf("kind %d", m.Kind)
	}
	if len(m.Raw) > MaxFrameLen {
		c.t.Fatalf("Raw of %d bytes", len(m.Raw))
	}
	if len(m.Fragment) > c.maxFrg {
		c.t.Fatalf("fragment of %d bytes, over %d", len(m.Fragment), c.maxFrg)
	}
	if m.Malformed != 0 && m.Anomalies&(1<<m.Malformed) == 0 || m.Malformed == 0 && m.Anomalies != 0 {
		c.t.Fatalf("Malformed %v, anomalies %#x", m.Malformed, m.Anomalies)
	}
	if m.Kind == KindApplication && (m.Segments < 1 || m.Link.Length < linkMinLength+tpHeaderLen) {
		c.t.Fatalf("fragment of %d segments, LENGTH %d", m.Segments, m.Link.Length)
	}
	if m.Kind == KindGarbage && m.Segments == 0 && len(m.Raw) == 0 {
		c.t.Fatal("garbage without bytes")
	}
	// Frames, fragments and segments are the same however the stream
	// is cut; runs of skipped bytes are not.
	if m.Kind != KindGarbage || m.Segments > 0 {
		c.got = append(c.got, see(m))
	}
}

func linkSeeds(f *testing.F) {
	resp := analogResponse(120)
	seeds := []struct {
		data []byte
		cuts []byte
	}{
		// A link-only frame, cut after its start octets.
		{frameResetLink, []byte{2}},
		// Two frames, cut inside the header CRC of the second.
		{joinBytes(frameResetLink, frameLinkStatus), []byte{18}},
		// A three-segment fragment, cut inside a block.
		{segments(ctlOutstationData, 1024, 1, 5, resp), []byte{100, 200, 3}},
		// Garbage before a frame, longer than a frame.
		{joinBytes(bytes.Repeat([]byte{0x05}, 300), frameResetLink), nil},
		// A bad header CRC.
		{[]byte{0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x22}, nil},
		// LENGTH 0.
		{withCRCs(0x05, 0x64, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x04), nil},
		// LENGTH 255, the longest frame, with a bad block CRC.
		{func() []byte {
			b := linkFrame(ctlMasterData, 1, 2, append([]byte{0xC0}, resp[:249]...))
			b[len(b)-1] ^= 1
			return b
		}(), []byte{1, 1, 1}},
		// A segment without FIR, then with FIR but no FIN.
		{joinBytes(segFrame(ctlMasterData, 1, 2, false, true, 3, readClass1), segFrame(ctlMasterData, 1, 2, true, false, 4, readClass1)), nil},
		// SELECT then OPERATE.
		{joinBytes(
			segFrame(ctlMasterData, 1, 2, true, true, 0, request(FuncSelect, 1, crob(1, 3))),
			segFrame(ctlMasterData, 1, 2, true, true, 1, request(FuncOperate, 2, crob(1, 3))),
		), []byte{40}},
	}
	for _, s := range seeds {
		f.Add(s.data, s.cuts)
	}
}

// FuzzLink feeds arbitrary bytes cut at arbitrary points, then as a
// datagram.
func FuzzLink(f *testing.F) {
	linkSeeds(f)
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		cfg := Config{MaxFragment: 300}
		// Whole.
		whole := &linkChecker{t: t, maxFrg: 300}
		fw := &feeder{t: t, d: NewDecoder(cfg), c: &Conn{}, h: whole}
		fw.feed(FromClient, data, Meta{})

		// Cut.
		cut := &linkChecker{t: t, maxFrg: 300}
		fc := &feeder{t: t, d: NewDecoder(cfg), c: &Conn{}, h: cut}
		rest := data
		for _, c := range cuts {
			k := min(int(c), len(rest))
			fc.feed(FromClient, rest[:k], Meta{})
			rest = rest[k:]
		}
		fc.feed(FromClient, rest, Meta{})
		if !slices.Equal(whole.got, cut.got) {
			t.Fatalf("cutting the stream changed the frames:\nwhole %+v\n  cut %+v", whole.got, cut.got)
		}
		if !bytes.Equal(fw.held[0], fc.held[0]) {
			t.Fatalf("held %x whole, %x cut", fw.held[0], fc.held[0])
		}
		fc.gap(FromClient, Meta{})
		fc.feed(FromServer, data, Meta{})
		fc.d.Close(fc.c, Meta{}, cut)

		dg := &linkChecker{t: t, maxFrg: 300}
		var c Conn
		c.Reset(true)
		fc.d.Datagram(&c, FromServer, data, Meta{}, dg)
	})
}

// A transport model: what reassembly should report, restated plainly for
// at most numSlots address pairs (no slot is ever taken from another).
type modelFragment struct {
	state    slotState
	firstSeq uint8
	lastSeq  uint8
	segments int
	buf      []byte
}

type transportModel struct {
	maxFrg int
	frags  map[uint16]*modelFragment // by pair
	quiet  [2]bool
	want   []seen
}

func (tm *transportModel) frag(pair uint16) *modelFragment {
	if tm.frags[pair] == nil {
		tm.frags[pair] = &modelFragment{}
	}
	return tm.frags[pair]
}

func (tm *transportModel) emit(p fuzzPair, s seen) {
	s.PRM, s.Func, s.Src, s.Dst = true, lfUnconfirmedData, p.src, p.dst
	tm.want = append(tm.want, s)
}

func (tm *transportModel) truncate(p fuzzPair, fr *modelFragment, r Reason) {
	tm.emit(p, seen{Kind: KindApplication, Segments: fr.segments, FirstSeq: fr.firstSeq, Truncated: true,
		Malformed: r, Anomalies: 1 << r, Fragment: string(fr.buf)})
	fr.state = slotFree
}

func (tm *transportModel) segment(p fuzzPair, seg []byte) {
	fir, fin, seq := seg[0]&tpFIR != 0, seg[0]&tpFIN != 0, seg[0]&tpSeqMask
	payload := seg[1:]
	fr := tm.frag(p.key())
	if fir {
		tm.quiet[p.side()-1] = false
		if fr.state == slotAssembling {
			tm.truncate(p, fr, FragmentTruncated)
		}
		if fin {
			fr.state = slotFree
			tm.emit(p, seen{Kind: KindApplication, Segments: 1, FirstSeq: seq, Fragment: string(payload)})
			return
		}
		*fr = modelFragment{state: slotAssembling, firstSeq: seq, lastSeq: seq, segments: 1, buf: append([]byte(nil), payload...)}
		return
	}
	orphan := seen{Kind: KindGarbage, Dir: p.dir(), Segments: 1, FirstSeq: seq, Raw: string(seg)}
	switch {
	case fr.state == slotFree && tm.quiet[p.side()-1]:
		orphan.Truncated = true
		tm.emit(p, orphan)
	case fr.state == slotFree:
		orphan.Malformed, orphan.Anomalies = MissingFIR, 1<<MissingFIR
		tm.emit(p, orphan)
		if !fin {
			fr.state = slotDiscarding
		}
	case fr.state == slotDiscarding:
		if fin {
			fr.state = slotFree
		}
	case seq != (fr.lastSeq+1)%64 || len(fr.buf)+len(payload) > tm.maxFrg:
		r := SequenceOutOfOrder
		if seq == (fr.lastSeq+1)%64 {
			r = FragmentTooLong
		}
		tm.truncate(p, fr, r)
		if !fin {
			fr.state = slotDiscarding
		}
	default:
		fr.buf = append(fr.buf, payload...)
		fr.lastSeq = seq
		fr.segments++
		if fin {
			fr.state = slotFree
			tm.emit(p, seen{Kind: KindApplication, Segments: fr.segments, FirstSeq: fr.firstSeq, Fragment: string(fr.buf)})
		}
	}
}

// end abandons the fragments of side (0: both sides).
func (tm *transportModel) end(side Side) {
	for _, p := range fuzzPairs {
		if side != 0 && p.side() != side {
			continue
		}
		fr := tm.frag(p.key())
		if fr.state == slotAssembling {
			tm.truncate(p, fr, FragmentTruncated)
		}
		fr.state = slotFree
	}
	if side != 0 {
		tm.quiet[side-1] = true
	}
}

type fuzzPair struct {
	src, dst uint16
	master   bool // the DIR bit
}

var fuzzPairs = [numSlots]fuzzPair{{1024, 1, true}, {1, 1024, false}, {1025, 1, true}, {1, 1025, false}}

func (p fuzzPair) key() uint16 { return p.src<<8 ^ p.dst }

func (p fuzzPair) side() Side {
	if p.master {
		return FromClient
	}
	return FromServer
}

func (p fuzzPair) dir() Direction {
	if p.master {
		return Request
	}
	return Response
}

func (p fuzzPair) control() byte {
	if p.master {
		return ctlMasterData
	}
	return ctlOutstationData
}

// transportOrder sorts the messages of one Gap or Close, which come in slot
// order, by address pair.
func transportOrder(a, b seen) int {
	return int(a.Src)<<16 + int(a.Dst) - int(b.Src)<<16 - int(b.Dst)
}

// FuzzTransport plays sequences of segments with arbitrary FIR, FIN and
// sequence numbers, gaps and ends, and compares with the model. Each op is
// three octets: the transport header, the payload length, and the pair
// (low two bits), or a Gap (bit 2) or Close (bit 3) instead of a segment.
func FuzzTransport(f *testing.F) {
	f.Add([]byte{0x45, 200, 0, 0x06, 200, 0, 0x87, 10, 0})                    // FIR, middle, FIN
	f.Add([]byte{0x7F, 200, 1, 0x00, 200, 1, 0x81, 10, 1})                    // 63 wraps to 0, then out of order
	f.Add([]byte{0x05, 200, 2, 0x46, 10, 2, 0x47, 10, 4, 0x08, 1, 2})         // missing FIR, gap, quiet tail
	f.Add([]byte{0x40, 249, 3, 0x01, 249, 3, 0x42, 1, 3, 0, 0, 8})            // too long, a FIR after it, close
	f.Add([]byte{0x40, 9, 0, 0x40, 9, 1, 0x40, 9, 2, 0x40, 9, 3, 0x81, 9, 2}) // four pairs at once
	f.Fuzz(func(t *testing.T, ops []byte) {
		const maxFrg = 400
		d := NewDecoder(Config{MaxFragment: maxFrg})
		var c Conn
		c.Reset(false)
		h := &recorder{}
		tm := &transportModel{maxFrg: maxFrg, frags: map[uint16]*modelFragment{}}
		for i := 0; i+3 <= len(ops); i += 3 {
			th, n, sel := ops[i], int(ops[i+1])%(maxSegmentData+1), ops[i+2]
			p := fuzzPairs[sel&3]
			switch {
			case sel&8 != 0:
				mark, wmark := len(h.got), len(tm.want)
				d.Close(&c, Meta{}, h)
				tm.end(0)
				slices.SortStableFunc(h.got[mark:], transportOrder)
				slices.SortStableFunc(tm.want[wmark:], transportOrder)
			case sel&4 != 0:
				mark, wmark := len(h.got), len(tm.want)
				d.Gap(&c, p.side(), nil, Meta{}, h)
				tm.end(p.side())
				slices.SortStableFunc(h.got[mark:], transportOrder)
				slices.SortStableFunc(tm.want[wmark:], transportOrder)
			default:
				seg := make([]byte, 1+n)
				seg[0] = th
				for j := 1; j < len(seg); j++ {
					seg[j] = byte(i + j)
				}
				frame := linkFrame(p.control(), p.dst, p.src, seg)
				if k := d.Feed(&c, p.side(), frame, Meta{}, h); k != len(frame) {
					t.Fatalf("consumed %d of %d", k, len(frame))
				}
				tm.segment(p, seg)
			}
		}
		for i := range h.got {
			h.got[i].Anomalies &^= 1<<SelectMismatch | 1<<OperateWithoutSelect | 1<<OperateLate
			if m := h.got[i].Malformed; m == SelectMismatch || m == OperateWithoutSelect || m == OperateLate {
				h.got[i].Malformed = 0
			}
			h.got[i].SBO = 0
		}
		if !slices.Equal(h.got, tm.want) {
			t.Fatalf("reassembly differs from the model:\n got %+v\nwant %+v", h.got, tm.want)
		}
	})
}
