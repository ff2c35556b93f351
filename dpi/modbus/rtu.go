package modbus

// Modbus RTU over TCP: serial RTU frames (MODBUS over Serial Line
// Specification and Implementation Guide V1.02, §2.5.1) carried in a TCP
// stream with no MBAP header, as serial-to-Ethernet gateways and some SCADA
// drivers pass them: slave address, PDU, CRC-16 low byte first.
//
// On the serial line a frame ends at a silence of 3.5 characters. A
// reassembled stream has no such timing (a gateway may send one frame in
// several segments, or several frames in one), so a frame's length comes
// from its function code and fields, as pduLen reads them, and its CRC
// confirms it. Where the function code does not tell the length
// (user-defined and reserved codes, FC 8 sub-function 0, MEI 13), the frame
// ends at the first CRC that matches. Whatever does not frame is skipped a
// byte at a time until a frame whose CRC matches.

// RTU frame layout and limits.
const (
	rtuAddrLen  = 1
	rtuCRCLen   = 2
	rtuMinFrame = rtuAddrLen + fcLen + rtuCRCLen     // 4
	rtuMaxFrame = rtuAddrLen + maxPDULen + rtuCRCLen // 256 (serial line spec §2.5.1)
	rtuMaxAddr  = 247                                // 248–255 are reserved (§2.2)

	// rtuHeaderNeed bytes are enough for pduLen to read any header it
	// reads (FC 23's request header is the longest). While resyncing, a
	// frame of unknown length is waited for only that long.
	rtuHeaderNeed = rtuAddrLen + rwHdrLen

	// Resyncing looks for a matching CRC at every place a frame of
	// unknown length may start: up to 256 CRC steps for each byte of
	// garbage crafted so. A Feed call may spend this many steps per byte
	// given, and two frames' worth, on such searches; past that, frames of
	// unknown length are not looked for until the next call. (A frame
	// whose fields tell its length costs one CRC of that length, at most
	// about 85 steps a byte of garbage however crafted, and is always
	// looked for.)
	rtuResyncWorkPerByte = 8
	rtuResyncWorkBase    = 2 * rtuMaxFrame
)

// crcTables[0] is CRC-16/MODBUS (polynomial 0x8005 processed least
// significant bit first, 0xA001; initial value 0xFFFF) a byte at a time;
// crcTables[k] advances the register over k more zero bytes, so that crc16
// takes eight bytes a step (slicing by eight, 4 KiB of tables): resyncing
// checks a CRC at every place a frame may start. (The same as package
// dnp3's with another polynomial; this package imports nothing of the
// project.)
var crcTables = makeCRCTables()

func makeCRCTables() (t [8][256]uint16) {
	for i := range t[0] {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for k := 1; k < len(t); k++ {
		for i := range t[k] {
			c := t[k-1][i]
			t[k][i] = c>>8 ^ t[0][byte(c)]
		}
	}
	return t
}

const crcInit = 0xFFFF

// crc16 returns the CRC-16/MODBUS of b. Run over a frame and its CRC (low
// byte first) it returns 0.
func crc16(b []byte) uint16 {
	c := uint16(crcInit)
	t := &crcTables
	for len(b) >= 8 {
		c ^= uint16(b[0]) | uint16(b[1])<<8
		c = t[7][byte(c)] ^ t[6][c>>8] ^ t[5][b[2]] ^ t[4][b[3]] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
	}
	for _, x := range b {
		c = c>>8 ^ t[0][byte(c)^x]
	}
	return c
}

// crcEnd returns the length of the shortest frame at the start of b whose
// CRC matches, or 0.
func crcEnd(b []byte) int {
	c := uint16(crcInit)
	for i, x := range b {
		c = c>>8 ^ crcTables[0][byte(c)^x]
		if c == 0 && i+1 >= rtuMinFrame {
			return i + 1
		}
	}
	return 0
}

// rtuStart says whether b begins with a slave address and a function code
// that can start a frame sent in direction dir: a request may go to the
// broadcast address 0, a response comes from 1–247.
func rtuStart(dir Direction, b []byte) bool {
	if len(b) == 0 || b[0] > rtuMaxAddr || dir == Response && b[0] == 0 {
		return false
	}
	return len(b) == 1 || knownFunction(dir, b[1])
}

// rtuVerdict is what rtuAt makes of the bytes at a candidate frame start.
type rtuVerdict uint8

const (
	rtuFrame   rtuVerdict = iota // a frame whose CRC matches
	rtuBadCRC                    // a frame whose length its fields tell, with a wrong CRC
	rtuWait                      // maybe a frame: come back with more bytes
	rtuGarbage                   // no frame starts here
)

// rtuAt frames the bytes at the start of b and returns the frame's length.
// In step (st not resyncing: b starts where the last frame or the
// connection began), a frame whose fields tell its length but whose CRC is
// wrong is reported as such when it ends where the data ends or where
// another frame may begin; while resyncing only a matching CRC will do,
// at the length the fields tell when they tell one. A frame of unknown
// length is waited for (up to the largest frame) only right after a frame
// whose CRC matched, and only while no whole frame follows it.
func (d *Decoder) rtuAt(dir Direction, b []byte, st *stream) (int, rtuVerdict) {
	if len(b) < 2 {
		if rtuStart(dir, b) {
			return 0, rtuWait
		}
		return 0, rtuGarbage
	}
	if !rtuStart(dir, b) {
		return 0, rtuGarbage
	}
	scan := b[:min(len(b), rtuMaxFrame)]
	if p, ok := pduLen(dir, b[rtuAddrLen:]); ok && p <= maxPDULen {
		n := rtuAddrLen + p + rtuCRCLen
		switch {
		case n > len(b):
			return 0, rtuWait
		case crc16(b[:n]) == 0:
			return n, rtuFrame
		case st.resync:
			return 0, rtuGarbage
		}
		// The fields may lie (a byte count that disagrees with the data):
		// the CRC has the last word, and the decoder flags the mismatch.
		if k := crcEnd(scan); k > 0 {
			return k, rtuFrame
		}
		if n == len(b) || rtuStart(dir, b[n:]) {
			return n, rtuBadCRC
		}
		return 0, rtuGarbage
	}
	if st.resync && !d.spend(len(scan)) {
		return 0, rtuGarbage
	}
	if k := crcEnd(scan); k > 0 {
		return k, rtuFrame
	}
	switch {
	case st.framed && len(b) < rtuMaxFrame && !frameFollows(dir, b),
		len(b) < rtuHeaderNeed:
		return 0, rtuWait
	}
	return 0, rtuGarbage
}

// spend takes n CRC steps from what resyncing may still spend in this
// Feed call on frames of unknown length, and says whether there were that
// many.
func (d *Decoder) spend(n int) bool {
	if d.rtuWork < n {
		return false
	}
	d.rtuWork -= n
	return true
}

// frameFollows says whether a frame whose fields tell its length and whose
// CRC matches starts somewhere in b after its first byte: then b does not
// start with a frame of unknown length still coming. The search is
// bounded (it runs again each time bytes are added while a frame is
// awaited); past the bound it answers no, and the frame is awaited up to
// the largest frame.
func frameFollows(dir Direction, b []byte) bool {
	budget := 2 * rtuMaxFrame // bytes of CRC computed
	for j := 1; j+rtuMinFrame <= len(b) && budget > 0; j++ {
		if !rtuStart(dir, b[j:]) {
			continue
		}
		p, ok := pduLen(dir, b[j+rtuAddrLen:])
		n := rtuAddrLen + p + rtuCRCLen
		if !ok || p > maxPDULen || j+n > len(b) {
			continue
		}
		budget -= n
		if crc16(b[j:j+n]) == 0 {
			return true
		}
	}
	return false
}

// frameRTU consumes whole RTU frames from data, as frame does MBAP ADUs.
func (d *Decoder) frameRTU(c *Conn, st *stream, dir Direction, data []byte, meta *Meta, h Handler, final bool) int {
	off := 0
	skip := -1 // start of the bytes being skipped
	d.rtuWork = rtuResyncWorkBase + rtuResyncWorkPerByte*len(data)
	for off < len(data) {
		b := data[off:]
		n, v := d.rtuAt(dir, b, st)
		switch v {
		case rtuWait:
			if !final {
				d.skipped(st, dir, data, skip, off, meta, h)
				return off
			}
			if st.resync {
				if skip < 0 {
					skip = off
				}
				off = len(data) // the run of skipped bytes goes on to the end
				continue
			}
			d.truncatedRTU(dir, b, meta, h)
			return len(data)
		case rtuGarbage:
			if skip < 0 {
				skip = off
			}
			st.resync, st.framed = true, false
			off++
			continue
		}
		d.skipped(st, dir, data, skip, off, meta, h)
		skip = -1
		*st = stream{framed: v == rtuFrame}
		d.decodeRTU(c, dir, b[:n], v == rtuBadCRC, meta, h)
		off += n
	}
	d.skipped(st, dir, data, skip, off, meta, h)
	return off
}

// decodeRTU reports one RTU frame. A frame with a wrong CRC is not decoded
// or paired: its slave would have dropped it. It carries its address and
// function code, and the whole frame as evidence.
func (d *Decoder) decodeRTU(c *Conn, dir Direction, frame []byte, badCRC bool, meta *Meta, h Handler) {
	pdu := frame[rtuAddrLen : len(frame)-rtuCRCLen]
	if !badCRC {
		d.decodePDU(c, dir, 0, frame[0], pdu, 0, meta, h)
		return
	}
	m := d.begin(&d.msg, dir, meta)
	m.Unit, m.FC = frame[0], functionOf(dir, pdu[0])
	m.Malformed = BadCRC
	m.PDU = frame
	h.Message(m)
}

// truncatedRTU reports the start of a frame whose end will never come.
func (d *Decoder) truncatedRTU(dir Direction, b []byte, meta *Meta, h Handler) {
	d.truncatedPDU(dir, 0, b[0], b[rtuAddrLen:], meta, h)
}
