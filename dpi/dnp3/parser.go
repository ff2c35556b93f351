package dnp3

import (
	"errors"
	"math"
)

// Application header sizes (IEEE 1815-2012 §4.2.2).
const (
	reqHeaderLen  = 2 // application control, function code
	respHeaderLen = 4 // ... and two IIN octets
	objHeaderLen  = 3 // group, variation, qualifier

	ctlFIR   = 0x80
	ctlFIN   = 0x40
	ctlCON   = 0x20
	ctlUNS   = 0x10
	ctlSeq   = 0x0F
	qualResv = 0x80 // qualifier bit 7 is reserved and must be 0

	prefixReserved = 7

	rangeStartStop1 = 0x0
	rangeVirtual4   = 0x5 // virtual addresses, 4-octet start and stop
	rangeAll        = 0x6 // no range field: all objects
	rangeCount1     = 0x7
	rangeCount2     = 0x8
	rangeCount4     = 0x9
	rangeFreeCount1 = 0xB // 1-octet count of variable-format objects

	binaryState  = 0x80 // state bit of a binary flags octet
	doubleShift  = 6    // double-bit state in bits 6–7
	csBit        = 0x80 // commanded state of group 13
	statusMask   = 0x7F
	msPerSecond  = 1000
	groupClass   = 60
	groupTime    = 50
	groupCTO     = 51
	groupAuth    = 120
	attrHeadLen  = 2 // device attribute data type and length
	maxInt32Size = 1<<31 - 1
)

var (
	// ErrDone is returned by Next after the last object header and by
	// Point after the last object of the current header.
	ErrDone = errors.New("dnp3: no more objects")
	// ErrNotStarted is returned by Next before Start and by Point and
	// Skip before Next.
	ErrNotStarted = errors.New("dnp3: parser not positioned")
)

// AppHeader is the application header of a fragment: control octet,
// function code and, in responses, the internal indications.
type AppHeader struct {
	Control            uint8 // raw application control octet
	FIR, FIN, CON, UNS bool
	Seq                uint8 // 4 bits
	FC                 uint8
	Dir                Direction
	IIN                uint16 // first octet in bits 0–7, second in 8–15
	HasIIN             bool
}

// Parser walks an application fragment incrementally, in the manner of
// golang.org/x/net/dns/dnsmessage: Start reads the application header,
// Next each object header, Point the objects of the current header one at
// a time, Skip the rest of them. Next skips whatever Point has not read.
// A caller can stop at any step. Octets in a returned Point alias the
// fragment.
//
// Errors are ErrDone, ErrNotStarted, or an Error holding a Reason (AppTooShort,
// UnknownFunction, BadQualifier, UnknownObject, ObjectTooShort, BadRange).
// After a Reason from Next the parser is stopped: Next returns it again.
// Anomalies that do not stop the walk are collected in Anomalies.
//
// The zero value is ready for Start; a Parser can be reused.
type Parser struct {
	frag      []byte
	fc        uint8
	started   bool
	off       int   // offset of the next object header
	err       error // sticky result of Next
	anomalies uint64
	first     Reason // the first anomaly
	cto       uint64 // last CTO (group 51) seen in the fragment
	hasCTO    bool

	// The current object header.
	hdr     ObjectHeader
	inHdr   bool
	lay     layout
	preLen  int    // octets of each object's prefix
	cur     int    // offset of the next object
	next    uint32 // objects returned so far
	total   uint32 // objects Point returns (0 when the header has no points)
	short   bool   // the header's data is cut off
	pointOK bool
}

// Start resets p to walk fragment, which begins with the application
// control octet, and returns the application header. It fills what it
// could read even when it returns an error: AppTooShort when the header is
// cut off, UnknownFunction for an unassigned function code (whose objects
// Next does not decode: it returns ErrDone).
func (p *Parser) Start(fragment []byte) (AppHeader, error) {
	*p = Parser{} // in place: a literal with fields is built aside and copied
	p.frag, p.started, p.off = fragment, true, len(fragment)
	var h AppHeader
	if len(fragment) < 1 {
		return h, p.stop(AppTooShort)
	}
	c := fragment[0]
	h.Control = c
	h.FIR = c&ctlFIR != 0
	h.FIN = c&ctlFIN != 0
	h.CON = c&ctlCON != 0
	h.UNS = c&ctlUNS != 0
	h.Seq = c & ctlSeq
	if len(fragment) < reqHeaderLen {
		return h, p.stop(AppTooShort)
	}
	fc := fragment[1]
	h.FC = fc
	p.fc = fc
	switch fc {
	case FuncResponse, FuncAuthenticateResponse:
		h.Dir = Response
	case FuncUnsolicitedResponse:
		h.Dir = Unsolicited
	default:
		h.Dir = Request
	}
	hlen := reqHeaderLen
	if h.Dir != Request {
		if len(fragment) < respHeaderLen {
			return h, p.stop(AppTooShort)
		}
		h.IIN = uint16(fragment[2]) | uint16(fragment[3])<<8
		h.HasIIN = true
		hlen = respHeaderLen
	}
	if !knownFunction(fc) {
		p.note(UnknownFunction)
		p.err = ErrDone
		return h, Error(UnknownFunction)
	}
	p.off = hlen
	return h, nil
}

// Anomalies has a bit (1<<Reason) for each anomaly found so far that did
// not stop the walk, such as ObjectsNotAllowed, and for each one that did.
func (p *Parser) Anomalies() uint64 { return p.anomalies }

func (p *Parser) note(r Reason) {
	if p.first == 0 {
		p.first = r
	}
	p.anomalies |= 1 << r
}

func (p *Parser) stop(r Reason) error {
	p.note(r)
	p.err = Error(r)
	return p.err
}

// carriesData reports whether the object headers of function fc are
// followed by object data. Requests that name points (read, freeze, assign
// class, enable and disable unsolicited) carry headers only, except for
// the time of a freeze at time and secure authentication objects.
func carriesData(fc, group uint8) bool {
	if group == groupAuth {
		return true
	}
	switch fc {
	case FuncRead, FuncImmedFreeze, FuncImmedFreezeNR, FuncFreezeClear, FuncFreezeClearNR,
		FuncEnableUnsolicited, FuncDisableUnsolicited, FuncAssignClass:
		return false
	case FuncFreezeAtTime, FuncFreezeAtTimeNR:
		return group == groupTime
	}
	return true
}

// takesObjects reports whether function fc may carry object headers
// other than secure authentication ones (aggressive mode may add those to
// any request).
func takesObjects(fc uint8) bool {
	switch fc {
	case FuncConfirm, FuncColdRestart, FuncWarmRestart, FuncDelayMeasure, FuncRecordCurrentTime:
		return false
	}
	return true
}

// prefixLen is the octets of an object prefix code; rangeLen of a range
// code's field (with -1 for reserved codes).
var (
	prefixLen = [8]int{0, 1, 2, 4, 1, 2, 4, 0}
	rangeLen  = [16]int{1, 2, 4, 1, 2, 4, 0, 1, 2, 4, -1, 1, -1, -1, -1, -1}
)

func isSizePrefix(prefix uint8) bool { return prefix >= 4 && prefix <= 6 }

func readUint(b []byte, off, n int) uint32 {
	switch n {
	case 1:
		return uint32(b[off])
	case 2:
		return uint32(b[off]) | uint32(b[off+1])<<8
	case 4:
		return uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16 | uint32(b[off+3])<<24
	}
	return 0
}

// Next returns the next object header. Size is the octets of its object
// data (prefixes included), or -1 when it cannot be known. With
// ObjectTooShort the header is returned too: its data is cut off, and
// Point still returns the objects that are whole. With UnknownObject the
// header is returned with Size -1: nothing after it can be decoded.
func (p *Parser) Next() (ObjectHeader, error) {
	var h ObjectHeader
	err := p.header(&h)
	return h, err
}

// header is Next writing the header into *h, which it sets whole: the
// decoder reads headers straight into its message's list, where a
// returned header was copied twice.
func (p *Parser) header(h *ObjectHeader) error {
	if !p.started {
		*h = ObjectHeader{}
		return ErrNotStarted
	}
	if p.err != nil {
		*h = ObjectHeader{}
		return p.err
	}
	p.inHdr = false
	if p.off >= len(p.frag) {
		p.err = ErrDone
		*h = ObjectHeader{}
		return ErrDone
	}
	b := p.frag
	off := p.off
	if off+objHeaderLen > len(b) {
		*h = ObjectHeader{}
		return p.stop(ObjectTooShort)
	}
	*h = ObjectHeader{Group: b[off], Variation: b[off+1], Qualifier: b[off+2], Size: -1}
	off += objHeaderLen
	h.Prefix = h.Qualifier >> 4 & 7
	h.Range = h.Qualifier & 0x0F
	rl := rangeLen[h.Range]
	if h.Qualifier&qualResv != 0 || h.Prefix == prefixReserved || rl < 0 {
		*h = ObjectHeader{}
		return p.stop(BadQualifier)
	}
	if off+2*rl > len(b) && h.Range <= rangeVirtual4 || off+rl > len(b) {
		*h = ObjectHeader{}
		return p.stop(ObjectTooShort)
	}
	data := carriesData(p.fc, h.Group)
	if !takesObjects(p.fc) && h.Group != groupAuth {
		p.note(ObjectsNotAllowed)
	}
	badRange := false
	switch {
	case h.Range <= rangeVirtual4:
		h.HasRange = true
		h.Start = readUint(b, off, rl)
		h.Stop = readUint(b, off+rl, rl)
		off += 2 * rl
		n := uint64(h.Stop) - uint64(h.Start) + 1
		if h.Stop < h.Start || n > math.MaxUint32 {
			badRange = true
		} else {
			h.Count = uint32(n)
		}
	case h.Range == rangeAll:
	default: // counts
		h.Count = readUint(b, off, rl)
		off += rl
	}
	h.Offset = off
	p.hdr = *h
	p.inHdr = true
	p.cur = off
	p.next = 0
	p.total = 0
	p.short = false
	p.pointOK = false
	p.preLen = prefixLen[h.Prefix]
	if badRange {
		p.note(BadRange)
		if data {
			// Without a count the data cannot be sized.
			p.inHdr = false
			p.err = Error(BadRange)
			return p.err
		}
	}
	if h.Range == rangeAll {
		h.Size = 0
		p.hdr = *h
		p.off = off
		return nil
	}

	lay := lookup(h.Group, h.Variation)
	if !data {
		// Requests that name points list their indices, without values.
		lay = lIndex
	}
	if isSizePrefix(h.Prefix) {
		lay = lSized
	} else if lay.kind == objSized {
		lay = layout{} // free format needs a size prefix
	}
	p.lay = lay
	rest := uint64(len(b) - off)
	var size uint64 // octets of object data; ^0 when unknown
	switch lay.kind {
	case objNone:
	case objBits:
		if h.Prefix != 0 {
			p.inHdr = false
			*h = ObjectHeader{}
			return p.stop(BadQualifier)
		}
		size = (uint64(h.Count)*uint64(lay.bits) + 7) / 8
	case objFixed, objIndex:
		size = uint64(h.Count) * uint64(p.preLen+lay.size())
	case objRaw:
		size = uint64(h.Count) * uint64(p.preLen+int(lay.bits))
	case objVarLen:
		size = uint64(h.Count) * uint64(p.preLen+int(h.Variation))
	case objAttr, objSized:
		size = p.walk(off, h.Count)
	default:
		p.inHdr = false
		return p.stop(UnknownObject)
	}
	p.pointOK = lay.kind != objNone && h.Group != groupAuth && (lay.kind != objIndex || p.preLen > 0)
	if p.pointOK {
		p.total = h.Count
	}
	if size > rest {
		if size <= maxInt32Size {
			h.Size = int(size)
		}
		p.hdr = *h
		p.short = true
		p.off = len(b)
		return p.stop(ObjectTooShort)
	}
	h.Size = int(size)
	p.hdr = *h
	p.off = off + int(size)
	return nil
}

// walk returns the octets of count self-sized objects from off, or ^0 when
// they run past the fragment.
func (p *Parser) walk(off int, count uint32) uint64 {
	start := off
	for i := uint32(0); i < count; i++ {
		n, ok := p.objLen(off)
		if !ok {
			return math.MaxUint64
		}
		off += n
	}
	return uint64(off - start)
}

// objLen returns the octets (prefix included) of the self-sized object at
// off, and whether they are all in the fragment.
func (p *Parser) objLen(off int) (int, bool) {
	b := p.frag
	if isSizePrefix(p.hdr.Prefix) {
		if off+p.preLen > len(b) {
			return 0, false
		}
		n := p.preLen + int(readUint(b, off, p.preLen))
		if n < 0 || n > len(b)-off {
			return 0, false
		}
		return n, true
	}
	// Device attribute: data type, length, value.
	a := off + p.preLen
	if a+attrHeadLen > len(b) {
		return 0, false
	}
	n := p.preLen + attrHeadLen + int(b[a+1])
	if n > len(b)-off {
		return 0, false
	}
	return n, true
}

// Skip skips the objects of the current header that Point has not
// returned. It returns ObjectTooShort when that header's data is cut off.
func (p *Parser) Skip() error {
	if !p.inHdr {
		return ErrNotStarted
	}
	p.next = p.total
	if p.short {
		return Error(ObjectTooShort)
	}
	return nil
}

// Point decodes the next object of the current header. It returns ErrDone
// after the last one (at once for headers without object data, class
// data, and secure authentication objects, whose content is not decoded)
// and ObjectTooShort when the next object is cut off.
func (p *Parser) Point() (Point, error) {
	var pt Point
	err := p.point(&pt)
	return pt, err
}

// point decodes the next object into *pt, which it overwrites: decodeApp
// decodes straight into the Message's points, without copies.
func (p *Parser) point(pt *Point) error {
	if !p.inHdr {
		return ErrNotStarted
	}
	if p.next >= p.total {
		return ErrDone
	}
	b := p.frag
	h := &p.hdr
	i := p.next
	*pt = Point{}
	if h.HasRange {
		pt.Index = h.Start + i
	} else {
		pt.Index = i
	}
	off := p.cur
	if p.lay.kind == objBits {
		bit := uint64(i) * uint64(p.lay.bits)
		at := uint64(off) + bit/8
		if at >= uint64(len(b)) {
			return p.cut()
		}
		pt.Value = float64(b[at] >> (bit % 8) & (1<<p.lay.bits - 1))
		p.next++
		return nil
	}
	var n int
	switch p.lay.kind {
	case objFixed, objIndex:
		n = p.preLen + p.lay.size()
	case objRaw:
		n = p.preLen + int(p.lay.bits)
	case objVarLen:
		n = p.preLen + int(h.Variation)
	default:
		var ok bool
		if n, ok = p.objLen(off); !ok {
			return p.cut()
		}
	}
	if n > len(b)-off {
		return p.cut()
	}
	obj := b[off+p.preLen : off+n]
	switch h.Prefix {
	case 1, 2, 3:
		pt.Index = readUint(b, off, p.preLen)
	}
	switch p.lay.kind {
	case objFixed:
		p.decodeFields(pt, obj)
	case objAttr:
		pt.Code = obj[0] // data type code
		pt.Octets = obj[attrHeadLen:]
	default:
		pt.Octets = obj
	}
	p.cur = off + n
	p.next++
	return nil
}

// cut ends the current header's points at a cut-off object.
func (p *Parser) cut() error {
	p.next = p.total
	return Error(ObjectTooShort)
}
