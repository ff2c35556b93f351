package dnp3

// CRC-16/DNP (IEEE 1815-2012 §9.2.4.1.4 and Annex E): polynomial 0x3D65
// processed least significant bit first (0xA6BC reflected), initial value 0,
// the result complemented and sent low octet first.
const (
	crcPoly = 0xA6BC // 0x3D65 bit-reversed
	crcLen  = 2
)

var crcTable = makeCRCTable()

func makeCRCTable() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ crcPoly
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}

// crc16 returns the CRC-16/DNP of b.
func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c>>8 ^ crcTable[byte(c)^x]
	}
	return ^c
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
