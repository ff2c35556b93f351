package pcapgen

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DNP3 (IEEE 1815-2012) builders: the data link layer (clause 9), the
// transport function (clause 8) and application fragments (clauses 4 and
// 10 to 12, objects in clause A). They are written from the standard alone
// and share nothing with tapwatch's decoder.

// DNP3Port is the registered TCP and UDP port of DNP3.
const DNP3Port = 20000

// FromMaster and FromOutstation name the sides of a DNP3Conn: the master is
// the TCP client (or the UDP conversation's source).
const (
	FromMaster     = FromClient
	FromOutstation = FromServer
)

// Link layer function codes (IEEE 1815-2012, 9.2.4.1.3). The PRM bit of the
// control octet says which table applies.
const (
	DNP3PriResetLink       = 0  // primary: reset link states
	DNP3PriTestLink        = 2  // primary: test link states
	DNP3PriConfirmedData   = 3  // primary: confirmed user data
	DNP3PriUnconfirmedData = 4  // primary: unconfirmed user data
	DNP3PriRequestStatus   = 9  // primary: request link status
	DNP3SecAck             = 0  // secondary: ACK
	DNP3SecNack            = 1  // secondary: NACK
	DNP3SecLinkStatus      = 11 // secondary: link status
	DNP3SecNotSupported    = 15 // secondary: not supported
)

// Link layer limits: a LENGTH octet counts the control, destination and
// source octets (5) and the user data, and may not exceed 255.
const (
	DNP3LinkHeaderLen = 10  // start, length, control, destination, source, CRC
	DNP3MaxLinkUser   = 250 // user data octets of one frame
	DNP3MaxSegment    = 249 // application octets of one transport segment
)

// Transport header bits (8.2.1).
const (
	DNP3TransportFIN = 0x80
	DNP3TransportFIR = 0x40
)

// Application layer function codes (4.2.2.5).
const (
	DNP3Confirm             = 0
	DNP3Read                = 1
	DNP3Write               = 2
	DNP3Select              = 3
	DNP3Operate             = 4
	DNP3DirectOperate       = 5
	DNP3DirectOperateNR     = 6
	DNP3ColdRestart         = 13
	DNP3WarmRestart         = 14
	DNP3EnableUnsolicited   = 20
	DNP3DisableUnsolicited  = 21
	DNP3Response            = 129
	DNP3UnsolicitedResponse = 130
)

// Internal indications (4.2.2.7) as AppResponse takes them: IIN1 is the low
// octet, IIN2 the high one.
const (
	IINBroadcast       = 0x0001 // IIN1.0
	IINClass1Events    = 0x0002 // IIN1.1
	IINClass2Events    = 0x0004 // IIN1.2
	IINClass3Events    = 0x0008 // IIN1.3
	IINNeedTime        = 0x0010 // IIN1.4
	IINLocalControl    = 0x0020 // IIN1.5
	IINDeviceTrouble   = 0x0040 // IIN1.6
	IINDeviceRestart   = 0x0080 // IIN1.7
	IINNoFuncSupport   = 0x0100 // IIN2.0
	IINObjectUnknown   = 0x0200 // IIN2.1
	IINParameterError  = 0x0400 // IIN2.2
	IINEventOverflow   = 0x0800 // IIN2.3
	IINAlreadyExecutes = 0x1000 // IIN2.4
	IINConfigCorrupt   = 0x2000 // IIN2.5
)

// Point flags of binary and analog inputs (A.2, A.15).
const (
	DNP3FlagOnline      = 0x01
	DNP3FlagRestart     = 0x02
	DNP3FlagCommLost    = 0x04
	DNP3FlagRemoteForce = 0x08
	DNP3FlagLocalForce  = 0x10
	DNP3BinaryState     = 0x80 // the state of a binary input (g1v2, g2v2)
)

// Control codes of a CROB (g12v1, A.8.1): operation type in bits 0-3,
// trip-close code in bits 6-7.
const (
	CROBPulseOn  = 0x01
	CROBPulseOff = 0x02
	CROBLatchOn  = 0x03
	CROBLatchOff = 0x04
	CROBClose    = 0x41 // pulse on, close
	CROBTrip     = 0x81 // pulse on, trip
)

// Command status codes of CROBs and analog output blocks (A.8.1 table 11-4).
const (
	DNP3StatusSuccess       = 0
	DNP3StatusTimeout       = 1
	DNP3StatusNoSelect      = 2
	DNP3StatusFormatError   = 3
	DNP3StatusNotSupported  = 4
	DNP3StatusAlreadyActive = 5
	DNP3StatusHardwareError = 6
	DNP3StatusLocal         = 7
)

var crcDNPTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xa6bc
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRCDNP is the CRC-16/DNP of b: polynomial 0x3d65 processed LSB first
// (0xa6bc reflected), initial value 0, result complemented. DNP3 sends it
// low octet first. CRCDNP([]byte("123456789")) is 0xea82.
func CRCDNP(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c>>8 ^ crcDNPTable[byte(c)^x]
	}
	return ^c
}

// LinkControl returns a link layer control octet: DIR (bit 7, set on frames
// from a master), PRM (bit 6, set on primary frames), FCB (bit 5), FCV
// (bit 4; DFC on secondary frames) and function code fc (bits 0-3).
func LinkControl(dir, prm, fcb, fcv bool, fc uint8) uint8 {
	c := fc & 0x0f
	if dir {
		c |= 0x80
	}
	if prm {
		c |= 0x40
	}
	if fcb {
		c |= 0x20
	}
	if fcv {
		c |= 0x10
	}
	return c
}

// LinkFrameLen is the length of a link frame carrying n user data octets:
// the 10-octet header and n octets in blocks of 16, each block followed by
// a 2-octet CRC.
func LinkFrameLen(n int) int {
	return DNP3LinkHeaderLen + n + 2*((n+15)/16)
}

// LinkFrame returns a link layer frame: 0x05 0x64, LENGTH (5 + len(user)),
// control octet ctrl, destination and source addresses little-endian, the
// CRC of those 8 octets, then user in blocks of 16 octets (the last may be
// shorter), each followed by its CRC. It panics if user holds more than 250
// octets.
func LinkFrame(ctrl uint8, dst, src uint16, user []byte) []byte {
	return AppendLinkFrame(make([]byte, 0, LinkFrameLen(len(user))), ctrl, dst, src, user)
}

// AppendLinkFrame appends the frame LinkFrame would return to b.
func AppendLinkFrame(b []byte, ctrl uint8, dst, src uint16, user []byte) []byte {
	return appendFrame(b, ctrl, dst, src, -1, user)
}

// appendFrame appends a link frame whose user data is the transport header
// th (none if th < 0) followed by data.
func appendFrame(b []byte, ctrl uint8, dst, src uint16, th int, data []byte) []byte {
	n := len(data)
	if th >= 0 {
		n++
	}
	if n > DNP3MaxLinkUser {
		panic(fmt.Sprintf("pcapgen: %d octets of DNP3 link user data, at most %d fit", n, DNP3MaxLinkUser))
	}
	start := len(b)
	b = append(b, 0x05, 0x64, byte(5+n), ctrl, byte(dst), byte(dst>>8), byte(src), byte(src>>8))
	b = binary.LittleEndian.AppendUint16(b, CRCDNP(b[start:]))
	for n > 0 {
		k := min(16, n)
		block := len(b)
		if th >= 0 {
			b = append(b, byte(th))
			b = append(b, data[:k-1]...)
			data = data[k-1:]
			th = -1
		} else {
			b = append(b, data[:k]...)
			data = data[k:]
		}
		b = binary.LittleEndian.AppendUint16(b, CRCDNP(b[block:]))
		n -= k
	}
	return b
}

// AppendDNP3Frames appends to b the link frames that carry an application
// fragment. It cuts fragment into transport segments of at most maxSeg
// application octets (0 or more than 249 mean 249); each segment has a
// transport header octet (FIN 0x80 on the last, FIR 0x40 on the first,
// sequence number *seq in bits 0-5, after which *seq advances modulo 64) and
// travels in an unconfirmed user data frame (PRM 1, FCB 0, FCV 0, function
// 4) with the given DIR bit from src to dst. An empty fragment yields one
// segment holding only the transport header.
func AppendDNP3Frames(b, fragment []byte, dir bool, dst, src uint16, seq *uint8, maxSeg int) []byte {
	return appendTransport(b, fragment, dir, dst, src, seq, maxSeg, nil)
}

// DNP3Frames returns, one slice per link frame, the frames AppendDNP3Frames
// would append. The frames share one backing array.
func DNP3Frames(fragment []byte, dir bool, dst, src uint16, seq *uint8, maxSeg int) [][]byte {
	var ends []int
	b := appendTransport(nil, fragment, dir, dst, src, seq, maxSeg, &ends)
	frames := make([][]byte, len(ends))
	start := 0
	for i, e := range ends {
		frames[i] = b[start:e:e]
		start = e
	}
	return frames
}

// appendTransport does AppendDNP3Frames and, when ends is not nil, appends
// to it the offset in b just past each frame.
func appendTransport(b, fragment []byte, dir bool, dst, src uint16, seq *uint8, maxSeg int, ends *[]int) []byte {
	if maxSeg <= 0 || maxSeg > DNP3MaxSegment {
		maxSeg = DNP3MaxSegment
	}
	ctrl := LinkControl(dir, true, false, false, DNP3PriUnconfirmedData)
	first := true
	for {
		k := min(maxSeg, len(fragment))
		th := int(*seq & 0x3f)
		*seq = (*seq + 1) & 0x3f
		if first {
			th |= DNP3TransportFIR
			first = false
		}
		if k == len(fragment) {
			th |= DNP3TransportFIN
		}
		b = appendFrame(b, ctrl, dst, src, th, fragment[:k])
		if ends != nil {
			*ends = append(*ends, len(b))
		}
		fragment = fragment[k:]
		if len(fragment) == 0 {
			return b
		}
	}
}

// AppControl returns an application control octet: FIR (bit 7), FIN
// (bit 6), CON (bit 5), UNS (bit 4) and the sequence number seq (bits 0-3).
func AppControl(fir, fin, con, uns bool, seq uint8) uint8 {
	c := seq & 0x0f
	if fir {
		c |= 0x80
	}
	if fin {
		c |= 0x40
	}
	if con {
		c |= 0x20
	}
	if uns {
		c |= 0x10
	}
	return c
}

// AppRequest returns a request fragment: application control ctl, function
// code fc, then the object headers and objects in order.
func AppRequest(ctl, fc uint8, objects ...[]byte) []byte {
	n := 2
	for _, o := range objects {
		n += len(o)
	}
	b := make([]byte, 2, n)
	b[0], b[1] = ctl, fc
	for _, o := range objects {
		b = append(b, o...)
	}
	return b
}

// AppResponse returns a response fragment: application control ctl,
// function code fc (129 or 130), the internal indications (IIN1 = iin&0xff,
// then IIN2 = iin>>8), then the objects in order.
func AppResponse(ctl, fc uint8, iin uint16, objects ...[]byte) []byte {
	n := 4
	for _, o := range objects {
		n += len(o)
	}
	b := make([]byte, 4, n)
	b[0], b[1], b[2], b[3] = ctl, fc, byte(iin), byte(iin>>8)
	for _, o := range objects {
		b = append(b, o...)
	}
	return b
}

// ClassData returns the object header that reads the data of class 0-3:
// group 60, variation class+1, qualifier 0x06 (all objects, no range):
// 0x3c, 1+class, 0x06.
func ClassData(class uint8) []byte {
	return []byte{60, 1 + class&3, 0x06}
}

// AppendRangeHeader appends an object header with a start-stop range:
// group, variation, qualifier q, then start and stop as one octet each
// (q 0x00) or two octets little-endian (q 0x01). It panics on another
// qualifier or on an index an 8-bit range cannot hold.
func AppendRangeHeader(b []byte, group, variation, q uint8, start, stop uint16) []byte {
	switch q {
	case 0x00:
		if start > 0xff || stop > 0xff {
			panic(fmt.Sprintf("pcapgen: range %d-%d does not fit qualifier 0x00", start, stop))
		}
		return append(b, group, variation, q, byte(start), byte(stop))
	case 0x01:
		return append(b, group, variation, q, byte(start), byte(start>>8), byte(stop), byte(stop>>8))
	}
	panic(fmt.Sprintf("pcapgen: qualifier %#02x is not a start-stop range", q))
}

// rangeQualifier is 0x00 when indexes start to start+n-1 fit in an octet,
// else 0x01.
func rangeQualifier(start uint16, n int) uint8 {
	if int(start)+n-1 <= 0xff {
		return 0x00
	}
	return 0x01
}

// BinaryInputs returns g1v2 (binary input with flags) for the points start
// to start+len(flags)-1: the header 0x01 0x02, qualifier 0x00 with 1-octet
// start and stop when stop ≤ 255, else qualifier 0x01 with 2-octet start
// and stop little-endian; then one flags octet per point (bit 0 online,
// bit 7 the state). flags must not be empty.
func BinaryInputs(start uint16, flags ...uint8) []byte {
	b := AppendRangeHeader(make([]byte, 0, 7+len(flags)), 1, 2, rangeQualifier(start, len(flags)), start, start+uint16(len(flags))-1)
	return append(b, flags...)
}

// AnalogInputs returns g30v1 (32-bit analog input with flags) for the
// points start to start+len(values)-1, with the range header BinaryInputs
// uses (group 0x1e, variation 0x01); then per point the flags octet and the
// value as a little-endian int32: 5 octets.
func AnalogInputs(start uint16, flags uint8, values ...int32) []byte {
	b := AppendRangeHeader(make([]byte, 0, 7+5*len(values)), 30, 1, rangeQualifier(start, len(values)), start, start+uint16(len(values))-1)
	for _, v := range values {
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b
}

// AnalogInputsFloat returns g30v5 (single-precision analog input with
// flags) for the points start to start+len(values)-1, with the range header
// BinaryInputs uses (group 0x1e, variation 0x05); then per point the flags
// octet and the IEEE 754 value little-endian: 5 octets.
func AnalogInputsFloat(start uint16, flags uint8, values ...float32) []byte {
	b := AppendRangeHeader(make([]byte, 0, 7+5*len(values)), 30, 5, rangeQualifier(start, len(values)), start, start+uint16(len(values))-1)
	for _, v := range values {
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// BinaryEvent is one g2v2 object: a binary input change with its time, in
// milliseconds since 1970-01-01 UTC (48 bits).
type BinaryEvent struct {
	Index uint16
	Flags uint8
	Time  uint64
}

// AnalogEvent is one g32v1 object: a 32-bit analog input change.
type AnalogEvent struct {
	Index uint16
	Flags uint8
	Value int32
}

// prefixHeader appends a header with a count and an index prefix before
// each object: qualifier 0x17 (1-octet count, 1-octet indexes) when the
// count and every index fit in an octet, else 0x28 (2-octet count and
// indexes, little-endian).
func prefixHeader(b []byte, group, variation uint8, n int, wide bool) []byte {
	if !wide && n <= 0xff {
		return append(b, group, variation, 0x17, byte(n))
	}
	return append(b, group, variation, 0x28, byte(n), byte(n>>8))
}

func appendIndex(b []byte, i uint16, q uint8) []byte {
	if q == 0x17 {
		return append(b, byte(i))
	}
	return append(b, byte(i), byte(i>>8))
}

// BinaryInputEvents returns g2v2 (binary input event with absolute time):
// 0x02 0x02, qualifier 0x17 with a 1-octet count when there are at most 255
// events and every index is at most 255, else 0x28 with a 2-octet count;
// then per event its index (1 or 2 octets), the flags octet and the 6-octet
// time, all little-endian.
func BinaryInputEvents(events ...BinaryEvent) []byte {
	wide := false
	for _, e := range events {
		wide = wide || e.Index > 0xff
	}
	b := prefixHeader(make([]byte, 0, 5+9*len(events)), 2, 2, len(events), wide)
	q := b[2]
	for _, e := range events {
		b = appendIndex(b, e.Index, q)
		b = append(b, e.Flags)
		b = appendTime48(b, e.Time)
	}
	return b
}

// AnalogInputEvents returns g32v1 (32-bit analog input event without
// time): 0x20 0x01 and the qualifier and count BinaryInputEvents would use;
// then per event its index, the flags octet and the value as a
// little-endian int32.
func AnalogInputEvents(events ...AnalogEvent) []byte {
	wide := false
	for _, e := range events {
		wide = wide || e.Index > 0xff
	}
	b := prefixHeader(make([]byte, 0, 5+7*len(events)), 32, 1, len(events), wide)
	q := b[2]
	for _, e := range events {
		b = appendIndex(b, e.Index, q)
		b = append(b, e.Flags)
		b = binary.LittleEndian.AppendUint32(b, uint32(e.Value))
	}
	return b
}

// CROB returns one g12v1 control relay output block: 0x0c 0x01, qualifier
// 0x28, count 1 (2 octets), index (2 octets), control code, count, on-time
// and off-time in ms (4 octets each) and status; little-endian, 16 octets
// in all. Select, operate and their responses carry the same object, the
// responses with the outcome in status.
func CROB(index uint16, code, count uint8, onMs, offMs uint32, status uint8) []byte {
	b := make([]byte, 0, 16)
	b = append(b, 12, 1, 0x28, 1, 0, byte(index), byte(index>>8), code, count)
	b = binary.LittleEndian.AppendUint32(b, onMs)
	b = binary.LittleEndian.AppendUint32(b, offMs)
	return append(b, status)
}

// AnalogOutput returns one g41v1 analog output block (32-bit): 0x29 0x01,
// qualifier 0x28, count 1 (2 octets), index (2 octets), the value as a
// little-endian int32 and the status octet: 12 octets.
func AnalogOutput(index uint16, value int32, status uint8) []byte {
	b := make([]byte, 0, 12)
	b = append(b, 41, 1, 0x28, 1, 0, byte(index), byte(index>>8))
	b = binary.LittleEndian.AppendUint32(b, uint32(value))
	return append(b, status)
}

// TimeAndDate returns g50v1 for a write that sets the outstation's clock:
// 0x32 0x01, qualifier 0x07, count 1, then ms (milliseconds since
// 1970-01-01 UTC) in 6 octets little-endian.
func TimeAndDate(ms uint64) []byte {
	return appendTime48([]byte{50, 1, 0x07, 1}, ms)
}

// TimeDelayFine returns g52v2, the time delay (fine) an outstation answers
// a cold or warm restart with: 0x34 0x02, qualifier 0x07, count 1, then ms,
// the time until it is back, as 2 octets little-endian.
func TimeDelayFine(ms uint16) []byte {
	return []byte{52, 2, 0x07, 1, byte(ms), byte(ms >> 8)}
}

// ClearRestart returns the g80v1 write that clears IIN1.7 (device
// restart): 0x50 0x01, qualifier 0x00, start 7, stop 7, and the packed bit
// value 0x00.
func ClearRestart() []byte {
	return []byte{80, 1, 0x00, 7, 7, 0x00}
}

func appendTime48(b []byte, ms uint64) []byte {
	return append(b, byte(ms), byte(ms>>8), byte(ms>>16), byte(ms>>24), byte(ms>>32), byte(ms>>40))
}

// DNP3Conn sends DNP3 between a master and an outstation over a TCPConn
// (the master is the client) or a UDP conversation (the master is its
// source). It keeps each station's transport sequence number; the
// application layer's sequence numbers are the caller's.
type DNP3Conn struct {
	tcp *TCPConn
	udp *UDP

	MasterAddr, OutstationAddr uint16 // link addresses

	// MasterSeq and OutstationSeq are the transport sequence numbers of the
	// next segment each station sends; they advance modulo 64.
	MasterSeq, OutstationSeq uint8

	// MaxSegment caps the application octets of a transport segment; 0
	// means 249, the most a link frame holds.
	MaxSegment int

	// FramesPerSegment is how many link frames Send puts in one TCP segment
	// or UDP datagram; 0 puts all the frames of a fragment in one. Nothing
	// cuts a segment at the MSS: four full frames (4 × 292 octets) fit in
	// an Ethernet MTU, five do not.
	FramesPerSegment int

	buf  []byte
	ends []int
}

// NewDNP3TCP returns a DNP3Conn over c, whose client is the master.
func NewDNP3TCP(c *TCPConn, master, outstation uint16) *DNP3Conn {
	return &DNP3Conn{tcp: c, MasterAddr: master, OutstationAddr: outstation}
}

// NewDNP3UDP returns a DNP3Conn over u, whose source is the master.
func NewDNP3UDP(u *UDP, master, outstation uint16) *DNP3Conn {
	return &DNP3Conn{udp: u, MasterAddr: master, OutstationAddr: outstation}
}

// TCP is the connection a DNP3Conn from NewDNP3TCP sends on, nil over UDP.
func (d *DNP3Conn) TCP() *TCPConn { return d.tcp }

// Master sends fragment from the master; see Send.
func (d *DNP3Conn) Master(fragment []byte) ([]int, error) {
	return d.Send(FromMaster, fragment)
}

// Outstation sends fragment from the outstation; see Send.
func (d *DNP3Conn) Outstation(fragment []byte) ([]int, error) {
	return d.Send(FromOutstation, fragment)
}

// Send writes an application fragment from side as link frames (see
// AppendDNP3Frames; DIR is set from the master), FramesPerSegment of them
// per TCP segment or UDP datagram, and returns the frame numbers written.
func (d *DNP3Conn) Send(side Side, fragment []byte) ([]int, error) {
	d.ends = d.ends[:0]
	if _, err := d.frames(side, fragment, &d.ends); err != nil {
		return nil, err
	}
	per := d.FramesPerSegment
	if per <= 0 {
		per = len(d.ends)
	}
	frames := make([]int, 0, (len(d.ends)+per-1)/per)
	start := 0
	for i := per - 1; ; i += per {
		stop := d.ends[min(i, len(d.ends)-1)]
		f, err := d.write(side, d.buf[start:stop])
		if err != nil {
			return frames, err
		}
		frames = append(frames, f...)
		start = stop
		if i >= len(d.ends)-1 {
			return frames, nil
		}
	}
}

// Frames returns the bytes Send would write for fragment, advancing side's
// transport sequence number but writing nothing, for callers that cut the
// stream themselves (e.g. TCPConn.Send with SplitAt). The slice is valid
// until the next call on d.
func (d *DNP3Conn) Frames(side Side, fragment []byte) ([]byte, error) {
	return d.frames(side, fragment, nil)
}

func (d *DNP3Conn) frames(side Side, fragment []byte, ends *[]int) ([]byte, error) {
	switch side {
	case FromMaster:
		d.buf = appendTransport(d.buf[:0], fragment, true, d.OutstationAddr, d.MasterAddr, &d.MasterSeq, d.MaxSegment, ends)
	case FromOutstation:
		d.buf = appendTransport(d.buf[:0], fragment, false, d.MasterAddr, d.OutstationAddr, &d.OutstationSeq, d.MaxSegment, ends)
	default:
		return nil, fmt.Errorf("pcapgen: invalid side %v", side)
	}
	return d.buf, nil
}

// SendLink writes one link frame from side with control octet ctrl and user
// data user (often none), addressed to the other station, in its own TCP
// segment or UDP datagram.
func (d *DNP3Conn) SendLink(side Side, ctrl uint8, user []byte) (int, error) {
	dst, src := d.OutstationAddr, d.MasterAddr
	if side == FromOutstation {
		dst, src = src, dst
	}
	d.buf = AppendLinkFrame(d.buf[:0], ctrl, dst, src, user)
	f, err := d.write(side, d.buf)
	if err != nil || len(f) == 0 {
		return 0, err
	}
	return f[0], nil
}

// LinkStatus writes a link keepalive: the master's request link status
// (DIR 1, PRM 1, function 9) and the outstation's link status (DIR 0,
// PRM 0, function 11). It returns both frame numbers.
func (d *DNP3Conn) LinkStatus() ([]int, error) {
	frames := make([]int, 0, 2)
	f, err := d.SendLink(FromMaster, LinkControl(true, true, false, false, DNP3PriRequestStatus), nil)
	if err != nil {
		return frames, err
	}
	frames = append(frames, f)
	if f, err = d.SendLink(FromOutstation, LinkControl(false, false, false, false, DNP3SecLinkStatus), nil); err != nil {
		return frames, err
	}
	return append(frames, f), nil
}

func (d *DNP3Conn) write(side Side, b []byte) ([]int, error) {
	if d.tcp != nil {
		return d.tcp.Send(side, b)
	}
	var f int
	var err error
	switch side {
	case FromMaster:
		f, err = d.udp.Send(b)
	case FromOutstation:
		f, err = d.udp.Reply(b)
	default:
		return nil, fmt.Errorf("pcapgen: invalid side %v", side)
	}
	if err != nil {
		return nil, err
	}
	return []int{f}, nil
}
