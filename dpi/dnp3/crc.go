package dnp3

// CRC-16/DNP (IEEE 1815-2012 §9.2.4.1.4 and Annex E): polynomial 0x3D65
// processed least significant bit first (0xA6BC reflected), initial value 0,
// the result complemented and sent low octet first.
const (
	crcPoly = 0xA6BC // 0x3D65 bit-reversed
	crcLen  = 2
)

// crcTables[0] is the usual byte-at-a-time table; crcTables[k] advances
// the register over k more zero octets, so that crc16 takes eight octets a
// step (slicing by eight, 4 KiB of tables): every DNP3 header and 16-octet
// block is checked, and this is the decoder's hottest loop.
var crcTables = makeCRCTables()

// crcTab points at crcTables for the loops that index them: through a
// pointer the compiler reads each table at an offset from one register,
// where the table's own address is loaded afresh for every look-up.
var crcTab = &crcTables

func makeCRCTables() (t [8][256]uint16) {
	for i := range t[0] {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ crcPoly
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

// crc16 returns the CRC-16/DNP of b. Every frame's last, short block
// comes here: the octets past the steps of eight go four, two and one at
// a time, not a loop of one.
func crc16(b []byte) uint16 {
	var c uint16
	t := crcTab
	for len(b) >= 8 {
		c ^= uint16(b[0]) | uint16(b[1])<<8
		c = t[7][byte(c)] ^ t[6][c>>8] ^ t[5][b[2]] ^ t[4][b[3]] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
	}
	if len(b) >= 4 {
		c ^= uint16(b[0]) | uint16(b[1])<<8
		c = t[3][byte(c)] ^ t[2][c>>8] ^ t[1][b[2]] ^ t[0][b[3]]
		b = b[4:]
	}
	if len(b) >= 2 {
		c ^= uint16(b[0]) | uint16(b[1])<<8
		c = t[1][byte(c)] ^ t[0][c>>8]
		b = b[2:]
	}
	if len(b) == 1 {
		c = c>>8 ^ t[0][byte(c)^b[0]]
	}
	return ^c
}

// headerOK reports whether the link header at the start of b, which is
// at least linkHeaderLen octets, carries the CRC of its first eight: crc16
// for exactly one step of eight, without its loops, for every frame. The
// step is written out here as in crc16 and userData: as a function of its
// own it is over the inliner's budget, and a call every eight octets
// would cost more than the loops did.
func headerOK(b []byte) bool {
	h := (*[linkHeaderData + crcLen]byte)(b)
	t := crcTab
	c := uint16(h[0]) | uint16(h[1])<<8
	c = t[7][byte(c)] ^ t[6][c>>8] ^ t[5][h[2]] ^ t[4][h[3]] ^
		t[3][h[4]] ^ t[2][h[5]] ^ t[1][h[6]] ^ t[0][h[7]]
	return ^c == uint16(h[8])|uint16(h[9])<<8
}

// crcOK reports whether the two octets after data[:n] hold the CRC of
// data[:n]. The caller guarantees len(data) >= n+crcLen.
func crcOK(data []byte, n int) bool {
	return crc16(data[:n]) == le16(data[n:])
}

func le16(b []byte) uint16 {
	_ = b[1]
	return uint16(b[0]) | uint16(b[1])<<8
}
