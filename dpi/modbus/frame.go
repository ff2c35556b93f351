package modbus

// MBAP header layout (TCP implementation guide §3.1.3): transaction id,
// protocol id, length (of what follows: unit id and PDU), unit id.
const (
	offTID      = 0
	offProtocol = 2
	offLength   = 4
	offUnit     = 6
	lengthEnd   = 6 // the header up to and including the length field
	headerLen   = 7
	probeLen    = headerLen + 1 // a header and the function code

	minLength = 2                     // unit id and function code
	maxLength = 254                   // unit id and the largest PDU
	maxPDULen = maxLength - 1         // 253
	maxADULen = lengthEnd + maxLength // 260

	// Lengths a little over the limit are framed (and flagged) rather
	// than skipped: Schneider devices send 255 in UMAS (FC 90) traffic.
	maxLenientLength = 260
	maxKeep          = lengthEnd + maxLenientLength // the most Feed leaves unconsumed
)

// stream is the framing state of one direction.
type stream struct {
	resync    bool // looking for a header: at a mid-stream start, after a gap or garbage
	reported  bool // the current run of bad bytes has been reported
	afterLoss bool // no ADU framed since bytes were lost (a gap or the capture start)
	framed    bool // RTU: the last frame's CRC matched, so a frame starts here
}

// lost puts s in resync after bytes were lost.
func (s *stream) lost() { *s = stream{resync: true, afterLoss: true} }

func (c *Conn) stream(dir Direction) *stream {
	switch dir {
	case Request:
		return &c.streams[0]
	case Response:
		return &c.streams[1]
	}
	return nil
}

// Feed frames and decodes contiguous stream bytes sent in direction dir. It
// returns how many bytes were consumed; the caller keeps data[n:] and
// presents it again, followed by new bytes, on the next call. What is kept
// is never longer than one ADU (at most 266 bytes, allowing for the lengths
// some devices send a little over the limit; an RTU frame is at most 256).
// An invalid dir consumes everything and reports nothing.
func (d *Decoder) Feed(c *Conn, dir Direction, data []byte, meta Meta, h Handler) (n int) {
	return d.feed(c, dir, data, &meta, h)
}

// feed is Feed with meta by pointer, for the dpi stream.
func (d *Decoder) feed(c *Conn, dir Direction, data []byte, meta *Meta, h Handler) (n int) {
	st := c.stream(dir)
	if st == nil {
		return len(data)
	}
	d.expire(c, meta.Time, h)
	if c.rtu {
		return d.frameRTU(c, st, dir, data, meta, h, false)
	}
	return d.frame(c, st, dir, data, meta, h, false)
}

// Gap tells c that bytes were lost in direction dir. pending is what the
// caller still held before the hole (an incomplete ADU, possibly empty); it
// is reported as truncated and framing resyncs on the next valid header.
func (d *Decoder) Gap(c *Conn, dir Direction, pending []byte, meta Meta, h Handler) {
	st := c.stream(dir)
	if st == nil {
		return
	}
	switch {
	case len(pending) == 0:
	case c.rtu && rtuStart(dir, pending):
		d.truncatedRTU(dir, pending, &meta, h)
	case !c.rtu && headerPrefix(pending):
		d.truncated(dir, pending, &meta, h)
	default:
		d.skipped(st, dir, pending, 0, len(pending), &meta, h)
	}
	st.lost()
}

// Datagram decodes one UDP datagram, which holds one or more whole ADUs.
// Bytes left over after the last whole ADU are reported as truncated (when
// they begin like a header) or as not Modbus.
func (d *Decoder) Datagram(c *Conn, dir Direction, data []byte, meta Meta, h Handler) {
	d.datagram(c, dir, data, &meta, h)
}

// datagram is Datagram with meta by pointer, for the dpi stream.
func (d *Decoder) datagram(c *Conn, dir Direction, data []byte, meta *Meta, h Handler) {
	if c.stream(dir) == nil {
		return
	}
	d.expire(c, meta.Time, h)
	var st stream // every datagram starts at an ADU boundary
	if c.rtu {
		d.frameRTU(c, &st, dir, data, meta, h, true)
		return
	}
	d.frame(c, &st, dir, data, meta, h, true)
}

// verdict of aduAt on the bytes at an ADU boundary.
type verdict uint8

const (
	consumed verdict = iota // a message was reported for the bytes consumed
	wait                    // an incomplete ADU: come back with more bytes
	garbage                 // not the start of an ADU: resync
)

// frame consumes whole ADUs from data. final says no more bytes will follow
// (a datagram): incomplete ADUs are then reported instead of kept.
func (d *Decoder) frame(c *Conn, st *stream, dir Direction, data []byte, meta *Meta, h Handler, final bool) int {
	off := 0
	skip := -1 // start of the bytes being skipped while resyncing
	for off < len(data) {
		b := data[off:]
		if st.resync {
			switch probe(dir, b, st.afterLoss) {
			case probeNo:
				if skip < 0 {
					skip = off
				}
				off++
				continue
			case probeWait:
				if final {
					if skip < 0 {
						skip = off
					}
					off = len(data)
					continue
				}
				d.skipped(st, dir, data, skip, off, meta, h)
				return off
			}
			d.skipped(st, dir, data, skip, off, meta, h)
			skip = -1
			st.resync = false
		}
		n, v := d.aduAt(c, st, dir, b, meta, h, final)
		switch v {
		case wait:
			return off
		case garbage:
			st.resync = true
			skip = off
			off++
		default:
			off += n
		}
	}
	d.skipped(st, dir, data, skip, off, meta, h)
	return off
}

// aduAt frames the ADU at the start of b, which is at an ADU boundary.
func (d *Decoder) aduAt(c *Conn, st *stream, dir Direction, b []byte, meta *Meta, h Handler, final bool) (int, verdict) {
	have := len(b)
	if have >= lengthEnd {
		length := int(be16(b[offLength:]))
		if length < minLength || length > maxLenientLength {
			if be16(b[offProtocol:]) != 0 {
				return 0, garbage
			}
			n := headerLen
			if length == 0 {
				n = lengthEnd
			}
			if have < n {
				if !final {
					return 0, wait
				}
				n = have
			}
			d.badLength(st, dir, b[:n], length, meta, h)
			return n, consumed
		}
	}
	if have < probeLen {
		if !final {
			return 0, wait
		}
		if !headerPrefix(b) {
			return 0, garbage
		}
		d.truncated(dir, b, meta, h)
		return have, consumed
	}

	fc := b[headerLen]
	var reason Reason
	length := int(be16(b[offLength:]))
	if be16(b[offProtocol:]) != 0 {
		// Frame it only when the rest of the header is convincing;
		// otherwise this is some other protocol on the port.
		if length > maxLength || !knownFunction(dir, fc) {
			return 0, garbage
		}
		reason = BadProtocolID
	}
	if length > maxLength {
		if !knownFunction(dir, fc) {
			d.badLength(st, dir, b[:headerLen], length, meta, h)
			return headerLen, consumed
		}
		reason = LengthTooLong
	}
	end := lengthEnd + length
	if p, ok := pduLen(dir, b[headerLen:]); ok && p <= maxPDULen && headerLen+p != end {
		// The MBAP length lies or the PDU does. Believe the PDU when a
		// header follows it and none follows the MBAP length, so that a
		// lying length does not swallow the next ADU.
		implied := headerLen + p
		switch {
		case plausible(dir, tail(b, implied)) && !plausible(dir, tail(b, end)):
			end = implied
		case end <= have:
		case final && implied <= have:
			end = implied
		case !final:
			return 0, wait
		}
		if reason == 0 {
			reason = LengthMismatch
		}
	}
	if end > have {
		if !final {
			return 0, wait
		}
		d.truncated(dir, b, meta, h)
		return have, consumed
	}
	*st = stream{}
	d.decode(c, dir, b[:end], reason, meta, h)
	return end, consumed
}

// skipped reports data[from:to], skipped while resyncing, unless the run
// it belongs to was already reported. Framing calls it at the end of
// every segment, nearly always with nothing skipped: the test is inlined,
// the report is not.
func (d *Decoder) skipped(st *stream, dir Direction, data []byte, from, to int, meta *Meta, h Handler) {
	if from >= 0 && to > from && !st.reported {
		d.reportSkipped(st, dir, data, from, to, meta, h)
	}
}

func (d *Decoder) reportSkipped(st *stream, dir Direction, data []byte, from, to int, meta *Meta, h Handler) {
	st.reported = true
	m := d.begin(&d.msg, dir, meta)
	m.Malformed = NotModbus
	m.AfterLoss = st.afterLoss
	m.PDU = data[from:min(to, from+maxADULen)] // evidence, bounded
	h.Message(m)
}

// badLength reports a header whose length field cannot be right; what
// follows it is skipped as part of the same bad run.
func (d *Decoder) badLength(st *stream, dir Direction, b []byte, length int, meta *Meta, h Handler) {
	m := d.begin(&d.msg, dir, meta)
	m.TID = be16(b[offTID:])
	if len(b) > offUnit {
		m.Unit = b[offUnit]
	}
	m.Malformed = LengthTooShort
	if length > maxLength {
		m.Malformed = LengthTooLong
	}
	*st = stream{resync: true, reported: true}
	h.Message(m)
}

// truncated reports the start of an ADU whose end will never come.
func (d *Decoder) truncated(dir Direction, b []byte, meta *Meta, h Handler) {
	var tid uint16
	var unit uint8
	if len(b) > offTID+1 {
		tid = be16(b[offTID:])
	}
	if len(b) > offUnit {
		unit = b[offUnit]
	}
	d.truncatedPDU(dir, tid, unit, tail(b, headerLen), meta, h)
}

// truncatedPDU reports the start p of a PDU (possibly empty) whose end
// will never come.
func (d *Decoder) truncatedPDU(dir Direction, tid uint16, unit uint8, p []byte, meta *Meta, h Handler) {
	m := d.begin(&d.msg, dir, meta)
	m.Malformed = Truncated
	m.TID, m.Unit = tid, unit
	if len(p) > 0 {
		m.FC = functionOf(dir, p[0])
		m.PDU = p[:min(len(p), maxPDULen)]
	}
	h.Message(m)
}

// Resync probe results.
const (
	probeNo   = iota // no ADU starts here
	probeWait        // an ADU may start here; more bytes will tell
	probeYes         // a plausible, complete ADU starts here
)

// probe judges whether an ADU starts at b while resyncing: a header with
// protocol id 0, length 2..254, a public function code and a PDU whose own
// length agrees with the header. When strict (bytes were lost, so b is
// likely inside Modbus data, where register values can look like a header)
// the bytes after it, if any, must also begin a plausible header.
func probe(dir Direction, b []byte, strict bool) int {
	if !prefixPlausible(dir, b) {
		return probeNo
	}
	if len(b) < probeLen {
		return probeWait
	}
	end := lengthEnd + int(be16(b[offLength:]))
	if p, ok := pduLen(dir, b[headerLen:]); ok && headerLen+p != end {
		return probeNo
	}
	if end > len(b) {
		return probeWait
	}
	if strict && !prefixPlausible(dir, b[end:]) {
		return probeNo
	}
	return probeYes
}

// plausible says whether b starts with a whole plausible header and
// function code.
func plausible(dir Direction, b []byte) bool {
	return len(b) >= probeLen && prefixPlausible(dir, b)
}

// prefixPlausible says whether b could be the start of a plausible header
// and function code, judging only the bytes present.
func prefixPlausible(dir Direction, b []byte) bool {
	if !headerPrefix(b) {
		return false
	}
	return len(b) <= headerLen || knownFunction(dir, b[headerLen])
}

// headerPrefix says whether the bytes of b could begin a valid MBAP header:
// protocol id 0 and a length of 2..254, as far as they are present.
func headerPrefix(b []byte) bool {
	for i := offProtocol; i < offLength+1 && i < len(b); i++ {
		if b[i] != 0 { // protocol id, then the length's high byte
			return false
		}
	}
	return len(b) <= offLength+1 || b[offLength+1] >= minLength && b[offLength+1] <= maxLength
}

// knownFunction says whether fc, as sent in direction dir, is a public,
// user-defined or reserved function code or an exception response to one.
func knownFunction(dir Direction, fc uint8) bool {
	if fc&ExceptionBit != 0 {
		if dir != Response {
			return false
		}
		fc &^= ExceptionBit
	}
	return Class(fc) != ClassUnknown
}

// tail returns b[i:], or nil when i is past the end of b.
func tail(b []byte, i int) []byte {
	if i > len(b) {
		return nil
	}
	return b[i:]
}

func be16(b []byte) uint16 {
	_ = b[1]
	return uint16(b[0])<<8 | uint16(b[1])
}
