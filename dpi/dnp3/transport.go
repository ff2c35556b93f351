package dnp3

// Transport function (IEEE 1815-2012 §8): the first octet of a frame's user
// data holds FIN, FIR and a 6-bit sequence number; the rest is a piece of
// an application fragment. Fragments are reassembled per link source,
// link destination and DIR bit, in a few slots per conversation whose
// buffers grow up to Config.MaxFragment and are then reused.
//
// What cannot be reassembled is reported, never silently lost:
//   - a FIR while a fragment is in progress: the old one, Truncated, with
//     FragmentTruncated;
//   - a sequence number other than the previous + 1 (mod 64): the fragment
//     in progress, Truncated, with SequenceOutOfOrder;
//   - a fragment growing past MaxFragment: what was assembled, Truncated,
//     with FragmentTooLong;
//   - a segment without FIR and no fragment in progress: a KindGarbage
//     message with MissingFIR holding the segment in Raw (its application
//     fields would be read from the middle of a fragment, so they are not
//     decoded);
//   - a gap, the end of the conversation, or a slot taken for another
//     address pair: the fragment in progress, Truncated, with
//     FragmentTruncated.
//
// After each of these anomalies the segments that follow for the same
// addresses are dropped without a report until the next FIR: one damaged
// fragment raises one anomaly.
//
// After lost bytes (a gap, or a conversation seen from the middle) the
// first segments may be the tail of a fragment whose start was lost. Until
// the next FIR from that side each of them is reported as a KindGarbage
// message that is Truncated, with the segment in Raw and no anomaly: it is
// counted, but the sender did nothing wrong.
const (
	tpHeaderLen = 1
	tpFIN       = 0x80
	tpFIR       = 0x40
	tpSeqMask   = 0x3F

	// numSlots is how many fragments of different address pairs one
	// conversation reassembles at once; a new pair takes the slot used
	// least recently.
	numSlots = 4
)

type slotState uint8

const (
	slotFree       slotState = iota
	slotAssembling           // a fragment is in progress
	slotDiscarding           // dropping segments until the next FIR
)

// slot reassembles the fragments sent from src to dst.
type slot struct {
	src, dst uint16
	dir      bool // the link DIR bit
	side     Side // the side that sent the segments
	state    slotState
	firstSeq uint8
	lastSeq  uint8
	used     uint32 // linkState.tick at the last segment
	segments int
	link     LinkHeader // of the last frame
	buf      []byte
}

// find returns the slot in use for lh's addresses and DIR bit, or nil.
func (ls *linkState) find(lh *LinkHeader) *slot {
	for i := range ls.slots {
		s := &ls.slots[i]
		if s.state != slotFree && s.src == lh.Src && s.dst == lh.Dst && s.dir == lh.DIR {
			s.used = ls.touch()
			return s
		}
	}
	return nil
}

func (ls *linkState) touch() uint32 {
	ls.tick++
	return ls.tick
}

// claim takes a slot for lh's addresses: a free one, else the least
// recently used one that is discarding, else the least recently used one
// (whose fragment is reported truncated).
func (d *Decoder) claim(c *Conn, lh *LinkHeader, side Side, meta *Meta, h Handler) *slot {
	ls := &c.link
	var victim *slot
	for i := range ls.slots {
		s := &ls.slots[i]
		if s.state == slotFree {
			victim = s
			break
		}
		if victim == nil || evictBefore(s, victim) {
			victim = s
		}
	}
	if victim.state == slotAssembling {
		d.abandon(c, victim, FragmentTruncated, meta, h)
	}
	*victim = slot{src: lh.Src, dst: lh.Dst, dir: lh.DIR, side: side, used: ls.touch(), buf: victim.buf[:0]}
	return victim
}

// evictBefore says whether slot a should be taken before slot b: one that
// is discarding before one that is assembling, then the older one.
func evictBefore(a, b *slot) bool {
	if a.state != b.state {
		return a.state == slotDiscarding
	}
	return int32(a.used-b.used) < 0 // wrap-around safe
}

// segment handles one transport segment, the user data of a frame.
func (d *Decoder) segment(c *Conn, side Side, lh *LinkHeader, data []byte, meta *Meta, h Handler) {
	th := data[0]
	payload := data[tpHeaderLen:]
	fir, fin, seq := th&tpFIR != 0, th&tpFIN != 0, th&tpSeqMask
	ls := &c.link
	s := ls.find(lh)
	if fir {
		ls.sides[side-1].quiet = false
		if s != nil && s.state == slotAssembling {
			d.abandon(c, s, FragmentTruncated, meta, h)
		}
		if fin {
			// The common case: a whole fragment in one segment needs no
			// copy into a slot.
			if s != nil {
				s.state = slotFree
			}
			d.complete(c, lh, payload, 1, seq, meta, h)
			return
		}
		if s == nil {
			s = d.claim(c, lh, side, meta, h)
		}
		s.state = slotAssembling
		s.side = side
		s.firstSeq, s.lastSeq, s.segments = seq, seq, 1
		s.link = *lh
		s.buf = append(s.buf[:0], payload...) // a segment always fits: MaxFragment >= maxSegmentData
		return
	}
	if s == nil {
		if ls.sides[side-1].quiet {
			d.orphan(lh, data, 0, meta, h)
			return
		}
		d.orphan(lh, data, MissingFIR, meta, h)
		if !fin {
			d.claim(c, lh, side, meta, h).state = slotDiscarding
		}
		return
	}
	switch {
	case s.state == slotDiscarding:
		if fin {
			s.state = slotFree
		}
	case seq != (s.lastSeq+1)&tpSeqMask:
		d.abandon(c, s, SequenceOutOfOrder, meta, h)
		if !fin {
			s.state = slotDiscarding
		}
	case len(s.buf)+len(payload) > d.cfg.MaxFragment:
		d.abandon(c, s, FragmentTooLong, meta, h)
		if !fin {
			s.state = slotDiscarding
		}
	default:
		s.buf = append(s.buf, payload...)
		s.lastSeq = seq
		s.segments++
		s.link = *lh
		if fin {
			s.state = slotFree
			d.complete(c, lh, s.buf, s.segments, s.firstSeq, meta, h)
		}
	}
}

// appMessage starts the report of a fragment. Dir is a guess from the
// link DIR bit until decodeApp reads the function code.
func (d *Decoder) appMessage(lh *LinkHeader, segments int, firstSeq uint8, frag []byte, meta *Meta) *Message {
	m := &d.msg
	// Cleared in place, then filled: a literal with fields is built in a
	// temporary and copied over, twice the work for every fragment.
	*m = Message{}
	m.Meta, m.Kind, m.Link, m.Dir = *meta, KindApplication, *lh, Response
	m.Segments, m.FirstSeq, m.Fragment = segments, firstSeq, frag
	if lh.DIR {
		m.Dir = Request
	}
	return m
}

// complete reports a whole fragment.
func (d *Decoder) complete(c *Conn, lh *LinkHeader, frag []byte, segments int, firstSeq uint8, meta *Meta, h Handler) {
	m := d.appMessage(lh, segments, firstSeq, frag, meta)
	d.decodeApp(m, frag)
	d.trackSBO(c, m, frag)
	d.trackFlood(c, m)
	h.Message(m)
}

// trackFlood counts the requests a master sends without a response in
// between: a flood of them swamps an outstation (Suricata's dnp3.flooded
// is the same idea). It is flagged once per run, on the request that
// passes the limit. Confirms ask for nothing and do not count.
func (d *Decoder) trackFlood(c *Conn, m *Message) {
	switch {
	case m.Dir == Response:
		c.waiting, c.flooded = 0, false
	case m.Dir == Request && m.FC != FuncConfirm:
		if c.waiting < 0xffff {
			c.waiting++
		}
		if int(c.waiting) > d.cfg.FloodRequests && !c.flooded {
			c.flooded = true
			flag(m, RequestFlood)
		}
	}
}

// abandon reports the fragment in progress in s as truncated, for reason
// r, and frees s. The application layer decodes what there is; the
// transport anomaly, found first, is Malformed.
func (d *Decoder) abandon(c *Conn, s *slot, r Reason, meta *Meta, h Handler) {
	s.state = slotFree
	m := d.appMessage(&s.link, s.segments, s.firstSeq, s.buf, meta)
	m.Truncated = true
	d.decodeApp(m, s.buf)
	m.Anomalies |= 1 << r
	m.Malformed = r
	h.Message(m)
}

// orphan reports a segment that belongs to no fragment in progress, as
// garbage: with MissingFIR, or with no reason when it follows lost bytes.
func (d *Decoder) orphan(lh *LinkHeader, data []byte, r Reason, meta *Meta, h Handler) {
	m := &d.msg
	*m = Message{Meta: *meta, Kind: KindGarbage, Link: *lh, Dir: Response, Segments: 1, FirstSeq: data[0] & tpSeqMask, Raw: data}
	if lh.DIR {
		m.Dir = Request
	}
	if r != 0 {
		linkAnomaly(m, r)
	} else {
		m.Truncated = true
	}
	h.Message(m)
}

func (d *Decoder) close(c *Conn, meta *Meta, h Handler) {
	d.ready()
	ls := &c.link
	for i := range ls.slots {
		s := &ls.slots[i]
		if s.state == slotAssembling {
			d.abandon(c, s, FragmentTruncated, meta, h)
		}
		s.state = slotFree
	}
}
