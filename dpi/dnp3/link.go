package dnp3

import (
	"bytes"
	"unsafe"
)

// Link frame layout (IEEE 1815-2012 §9.2.4.1): the start octets 0x05 0x64,
// LENGTH, CONTROL, DESTINATION and SOURCE (little endian), the header CRC;
// then the user data in blocks of 16 octets, each followed by its CRC (the
// last block may be shorter). LENGTH counts CONTROL, the addresses and the
// user data, not the CRCs.
const (
	linkStart0      = 0x05
	linkStart1      = 0x64
	linkOffLength   = 2
	linkOffControl  = 3
	linkOffDst      = 4
	linkOffSrc      = 6
	linkHeaderData  = 8  // the octets the header CRC covers
	linkHeaderLen   = 10 // with the header CRC
	linkBlockLen    = 16
	linkMinLength   = 5 // CONTROL, DESTINATION and SOURCE
	linkMaxLength   = 255
	maxUserData     = linkMaxLength - linkMinLength // 250
	maxSegmentData  = maxUserData - tpHeaderLen     // 249: the application bytes of one segment
	linkMaxBlocks   = (maxUserData + linkBlockLen - 1) / linkBlockLen
	linkMinFrameLen = linkHeaderLen

	// MaxFrameLen is the longest link frame: a 10-octet header, 250
	// octets of user data and 16 block CRCs. Feed never leaves more than
	// this unconsumed, and KindGarbage messages carry at most this many
	// skipped bytes in Raw.
	MaxFrameLen = linkHeaderLen + maxUserData + crcLen*linkMaxBlocks // 292
)

// CONTROL octet (§9.2.4.1.3).
const (
	linkDIR  = 0x80
	linkPRM  = 0x40
	linkFCB  = 0x20
	linkFCV  = 0x10 // DFC in secondary frames
	linkFunc = 0x0F
)

// Link function codes (§9.2.4.1.3, tables 9-1 and 9-2).
const (
	lfResetLinkStates   = 0 // primary
	lfResetUserProcess  = 1 // primary, obsolete
	lfTestLinkStates    = 2 // primary
	lfConfirmedData     = 3 // primary, carries a transport segment
	lfUnconfirmedData   = 4 // primary, carries a transport segment
	lfRequestLinkStatus = 9 // primary

	lfAck          = 0  // secondary
	lfNack         = 1  // secondary
	lfLinkStatus   = 11 // secondary
	lfNotSupported = 15 // secondary
)

// linkScratch is the Decoder's room for the user data of the frame being
// decoded, with the block CRCs taken out.
type linkScratch struct {
	user [maxUserData]byte
}

// linkState is the per-conversation state of the link layer and the
// transport function.
type linkState struct {
	sides [2]framer // indexed by Side-1
	slots [numSlots]slot
	tick  uint32 // ages the slots
}

// framer is the framing state of one direction of the byte stream.
type framer struct {
	reported bool // the current run of skipped bytes has been reported
	lost     bool // bytes were lost (a gap, a mid-stream start) and no frame was framed since
	quiet    bool // segments without FIR are tails cut by that loss, until the next FIR from this side
}

func (c *Conn) framer(side Side) *framer {
	switch side {
	case FromClient, FromServer:
		return &c.link.sides[side-1]
	}
	return nil
}

func (c *Conn) reset(midStream bool) {
	ls := &c.link
	for i := range ls.slots {
		ls.slots[i] = slot{buf: ls.slots[i].buf[:0]} // keep the buffers
	}
	ls.tick = 0
	for i := range ls.sides {
		ls.sides[i] = framer{lost: midStream, quiet: midStream}
	}
	c.waiting, c.flooded = 0, false
	c.sbo.reset()
}

func detect(b []byte) bool {
	return len(b) >= linkHeaderLen && b[0] == linkStart0 && b[1] == linkStart1 && headerOK(b)
}

// ready makes a zero Decoder (not made by NewDecoder) usable.
func (d *Decoder) ready() {
	if d.cfg.MaxFragment == 0 {
		d.cfg = d.cfg.withDefaults()
	}
}

func (d *Decoder) feed(c *Conn, side Side, data []byte, meta *Meta, h Handler) int {
	st := c.framer(side)
	if st == nil {
		return len(data)
	}
	d.ready()
	return d.frames(c, st, side, data, meta, h, false)
}

func (d *Decoder) datagram(c *Conn, side Side, data []byte, meta *Meta, h Handler) {
	if c.framer(side) == nil {
		return
	}
	d.ready()
	var st framer // every datagram starts at a frame boundary
	d.frames(c, &st, side, data, meta, h, true)
}

// gap reports what the caller held (the start of a frame cut by the loss)
// and the fragments in progress from side as truncated; the next segments
// from side may lack their FIR without being anomalies.
func (d *Decoder) gap(c *Conn, side Side, pending []byte, meta *Meta, h Handler) {
	st := c.framer(side)
	if st == nil {
		return
	}
	d.ready()
	if len(pending) > 0 {
		d.cut(pending, 0, meta, h)
	}
	ls := &c.link
	for i := range ls.slots {
		s := &ls.slots[i]
		if s.side != side {
			continue
		}
		if s.state == slotAssembling {
			d.abandon(c, s, FragmentTruncated, meta, h)
		}
		s.state = slotFree
	}
	*st = framer{lost: true, quiet: true}
}

// frames consumes whole link frames from data. final says no more bytes
// will follow (a datagram): an incomplete frame is then reported instead of
// kept.
func (d *Decoder) frames(c *Conn, st *framer, side Side, data []byte, meta *Meta, h Handler, final bool) int {
	off := 0
	skip := -1       // start of the bytes being skipped
	var extra uint64 // anomalies of the skipped run besides NotDNP3
	tail := false    // the run ends in a partial header (datagrams)
	for off < len(data) {
		b := data[off:]
		if b[0] != linkStart0 || len(b) > 1 && b[1] != linkStart1 {
			if skip < 0 {
				skip = off
			}
			if i := bytes.IndexByte(b[1:], linkStart0); i >= 0 {
				off += 1 + i
			} else {
				off = len(data)
			}
			continue
		}
		if len(b) < linkHeaderLen {
			if !final {
				break // wait for the rest of the header
			}
			if skip < 0 {
				skip = off
			}
			off = len(data)
			tail = true
			break
		}
		if !headerOK(b) {
			// Two start octets that begin no frame.
			if skip < 0 {
				skip = off
			}
			extra |= 1 << BadHeaderCRC
			off += 2
			continue
		}
		size := linkFrameLen(b[linkOffLength])
		if len(b) < size {
			if !final {
				break
			}
			d.skipped(st, data, skip, off, extra, false, meta, h)
			skip, extra = -1, 0
			d.cut(b, NotDNP3, meta, h)
			off = len(data)
			break
		}
		d.skipped(st, data, skip, off, extra, false, meta, h)
		skip, extra = -1, 0
		d.frame(c, st, side, b[:size], meta, h)
		off += size
	}
	d.skipped(st, data, skip, off, extra, tail, meta, h)
	return off
}

// linkFrameLen is the size of the frame whose LENGTH octet is length,
// CRCs included. A LENGTH below the minimum frames the header alone.
func linkFrameLen(length uint8) int {
	if length < linkMinLength {
		return linkMinFrameLen
	}
	n := int(length) - linkMinLength
	return linkHeaderLen + n + crcLen*((n+linkBlockLen-1)/linkBlockLen)
}

// skipped reports data[from:to], skipped while looking for a frame, unless
// the run it belongs to was already reported (it began in an earlier
// call). A run that follows lost bytes, or ends in a frame cut short, is
// Truncated.
//
// Framing calls it at the end of every segment, nearly always with
// nothing skipped: the test is inlined, the report is not.
func (d *Decoder) skipped(st *framer, data []byte, from, to int, extra uint64, truncated bool, meta *Meta, h Handler) {
	if from >= 0 && to > from && !st.reported {
		d.reportSkipped(st, data, from, to, extra, truncated, meta, h)
	}
}

func (d *Decoder) reportSkipped(st *framer, data []byte, from, to int, extra uint64, truncated bool, meta *Meta, h Handler) {
	st.reported = true
	m := &d.msg
	*m = Message{Meta: *meta, Kind: KindGarbage}
	linkAnomaly(m, NotDNP3)
	m.Anomalies |= extra
	m.Truncated = truncated || st.lost
	m.Raw = data[from:min(to, from+MaxFrameLen)]
	h.Message(m)
}

// cut reports b, the start of a frame that will never be complete: the
// tail of a datagram (reason NotDNP3) or what was held before a gap
// (reason 0: the loss is not the sender's fault).
func (d *Decoder) cut(b []byte, reason Reason, meta *Meta, h Handler) {
	m := &d.msg
	*m = Message{Meta: *meta, Kind: KindGarbage, Truncated: true}
	if detect(b) {
		decodeLinkHeader(&m.Link, b)
		m.Dir = linkDirection(&m.Link)
	}
	if reason != 0 {
		linkAnomaly(m, reason)
	}
	m.Raw = b[:min(len(b), MaxFrameLen)]
	h.Message(m)
}

// decodeLinkHeader fills lh from the header at the start of b, which holds
// at least linkHeaderLen octets.
func decodeLinkHeader(lh *LinkHeader, b []byte) {
	_ = b[linkHeaderLen-1]
	ctl := b[linkOffControl]
	*lh = LinkHeader{
		Length:  b[linkOffLength],
		Control: ctl,
		Dst:     uint16(b[linkOffDst]) | uint16(b[linkOffDst+1])<<8,
		Src:     uint16(b[linkOffSrc]) | uint16(b[linkOffSrc+1])<<8,
		DIR:     ctl&linkDIR != 0,
		PRM:     ctl&linkPRM != 0,
		FCB:     ctl&linkFCB != 0,
		FCV:     ctl&linkFCV != 0,
		Func:    ctl & linkFunc,
	}
}

// linkDirection is the Direction of a link frame: primary frames initiate.
func linkDirection(lh *LinkHeader) Direction {
	if lh.PRM {
		return Request
	}
	return Response
}

// linkFunctionValid reports whether fc is assigned for frames with the PRM
// bit prm.
func linkFunctionValid(prm bool, fc uint8) bool {
	if prm {
		switch fc {
		case lfResetLinkStates, lfResetUserProcess, lfTestLinkStates,
			lfConfirmedData, lfUnconfirmedData, lfRequestLinkStatus:
			return true
		}
		return false
	}
	switch fc {
	case lfAck, lfNack, lfLinkStatus, lfNotSupported:
		return true
	}
	return false
}

// frame decodes the whole frame f, whose header CRC is valid.
func (d *Decoder) frame(c *Conn, st *framer, side Side, f []byte, meta *Meta, h Handler) {
	st.reported, st.lost = false, false
	var lh LinkHeader
	decodeLinkHeader(&lh, f)
	if lh.Length < linkMinLength {
		d.linkOnly(&lh, LinkTooShort, meta, h)
		return
	}
	n := int(lh.Length) - linkMinLength
	user := d.link.user[:n]
	if !userData(user, f[linkHeaderLen:]) {
		d.badBlock(c, side, &lh, meta, h)
		return
	}
	if n > 0 && lh.PRM && (lh.Func == lfConfirmedData || lh.Func == lfUnconfirmedData) {
		d.segment(c, side, &lh, user, meta, h)
		return
	}
	var r Reason
	if !linkFunctionValid(lh.PRM, lh.Func) || n > 0 {
		// A reserved function, or user data on a function that carries
		// none (only confirmed and unconfirmed user data do, IEEE
		// 1815-2012 9.2.4.1.3): the data is not passed up.
		r = BadLinkFunction
	}
	d.linkOnly(&lh, r, meta, h)
}

// userData copies the user data of a frame, whose blocks and their CRCs
// follow the header in body, into user (len(user) octets), and reports
// false when a block's CRC is wrong or the frame ends before the block
// does. It runs for every 16 octets of DNP3 on the wire: apart from
// frame, whose many live values would otherwise stay on the stack in its
// loop, and with crc16's steps for a full block written into the loop,
// where a call would spill them too (TestUserData checks it against
// crc16).
//
//go:noinline
func userData(user, body []byte) bool {
	n := len(user) / linkBlockLen
	if len(body) < n*(linkBlockLen+crcLen) {
		return false
	}
	t := crcTab
	// The blocks at offsets from the slices' starts, bounds checked once
	// above: slicing user and body a block at a time clamps each pointer
	// and keeps lengths and capacities live, which spill in a loop this
	// full of values.
	u, d := unsafe.Pointer(unsafe.SliceData(user)), unsafe.Pointer(unsafe.SliceData(body))
	for i := range n {
		b := (*[linkBlockLen + crcLen]byte)(unsafe.Add(d, i*(linkBlockLen+crcLen)))
		c := uint16(b[0]) | uint16(b[1])<<8
		c = t[7][byte(c)] ^ t[6][c>>8] ^ t[5][b[2]] ^ t[4][b[3]] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		c ^= uint16(b[8]) | uint16(b[9])<<8
		c = t[7][byte(c)] ^ t[6][c>>8] ^ t[5][b[10]] ^ t[4][b[11]] ^
			t[3][b[12]] ^ t[2][b[13]] ^ t[1][b[14]] ^ t[0][b[15]]
		if ^c != uint16(b[16])|uint16(b[17])<<8 {
			return false
		}
		*(*[linkBlockLen]byte)(unsafe.Add(u, i*linkBlockLen)) = [linkBlockLen]byte(b[:linkBlockLen])
	}
	if k := len(user) - n*linkBlockLen; k > 0 {
		user, body = user[n*linkBlockLen:], body[n*(linkBlockLen+crcLen):]
		if len(body) < k+crcLen || !crcOK(body, k) {
			return false
		}
		copy(user, body[:k])
	}
	return true
}

// linkOnly reports a frame that carries no transport segment.
func (d *Decoder) linkOnly(lh *LinkHeader, r Reason, meta *Meta, h Handler) {
	m := &d.msg
	*m = Message{Meta: *meta, Kind: KindLink, Link: *lh, Dir: linkDirection(lh)}
	if r != 0 {
		linkAnomaly(m, r)
	}
	h.Message(m)
}

// badBlock reports a frame whose header is sound but whose user data is
// corrupt: as the fragment it belonged to, when one was in progress, or as
// a link frame. Reassembly for its source and destination skips to the
// next FIR, so that the rest of a damaged fragment raises nothing more.
func (d *Decoder) badBlock(c *Conn, side Side, lh *LinkHeader, meta *Meta, h Handler) {
	if !lh.PRM || lh.Func != lfConfirmedData && lh.Func != lfUnconfirmedData {
		d.linkOnly(lh, BadBlockCRC, meta, h)
		return
	}
	s := c.link.find(lh)
	if s != nil && s.state == slotAssembling {
		s.link = *lh
		d.abandon(c, s, BadBlockCRC, meta, h)
	} else {
		d.linkOnly(lh, BadBlockCRC, meta, h)
	}
	if s == nil {
		s = d.claim(c, lh, side, meta, h)
	}
	s.state = slotDiscarding
}

// linkAnomaly records r on m; the first one recorded is m.Malformed.
func linkAnomaly(m *Message, r Reason) {
	m.Anomalies |= 1 << r
	if m.Malformed == 0 {
		m.Malformed = r
	}
}
