package pcapgen

import "encoding/binary"

// Modbus function codes used by the builders (MODBUS Application Protocol
// Specification V1.1b3, section 6).
const (
	FCReadCoils              = 1
	FCReadDiscreteInputs     = 2
	FCReadHoldingRegisters   = 3
	FCReadInputRegisters     = 4
	FCWriteSingleCoil        = 5
	FCWriteSingleRegister    = 6
	FCWriteMultipleCoils     = 15
	FCWriteMultipleRegisters = 16
)

// WriteSingleCoil returns an FC 5 request PDU: on is 0xFF00, off 0x0000.
// The normal response echoes it.
func WriteSingleCoil(addr uint16, on bool) []byte {
	var v byte
	if on {
		v = 0xFF
	}
	return []byte{FCWriteSingleCoil, byte(addr >> 8), byte(addr), v, 0}
}

// Modbus exception codes (section 7).
const (
	ExIllegalFunction    = 1
	ExIllegalDataAddress = 2
	ExIllegalDataValue   = 3
	ExServerDeviceFail   = 4
	ExServerDeviceBusy   = 6
)

// MBAPLen is the length of the Modbus/TCP MBAP header.
const MBAPLen = 7

// MBAP returns a Modbus/TCP ADU: the MBAP header (transaction id, protocol
// id 0, length = 1 + len(pdu), unit id) followed by pdu.
func MBAP(tid uint16, unit uint8, pdu []byte) []byte {
	return AppendMBAP(make([]byte, 0, MBAPLen+len(pdu)), tid, unit, pdu)
}

// AppendMBAP appends the ADU MBAP would return to dst, so that several ADUs
// can share one TCP segment.
func AppendMBAP(dst []byte, tid uint16, unit uint8, pdu []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, tid)
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(1+len(pdu)))
	dst = append(dst, unit)
	return append(dst, pdu...)
}

// RTU returns a Modbus RTU frame (MODBUS over Serial Line V1.02, §2.5.1):
// the slave address, pdu, and the CRC-16 of both, low byte first. Serial
// gateways carry such frames over TCP with no MBAP header (RTU over TCP).
func RTU(addr uint8, pdu []byte) []byte {
	return AppendRTU(make([]byte, 0, 1+len(pdu)+2), addr, pdu)
}

// AppendRTU appends the frame RTU would return to dst.
func AppendRTU(dst []byte, addr uint8, pdu []byte) []byte {
	start := len(dst)
	dst = append(dst, addr)
	dst = append(dst, pdu...)
	return binary.LittleEndian.AppendUint16(dst, CRC16Modbus(dst[start:]))
}

// CRC16Modbus is the CRC of an RTU frame (§6.2.2): polynomial 0xA001
// (0x8005 reflected), initial value 0xFFFF, computed bit by bit.
func CRC16Modbus(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			lsb := crc & 1
			crc >>= 1
			if lsb != 0 {
				crc ^= 0xA001
			}
		}
	}
	return crc
}

// ReadRequest returns the request PDU of read function fc (1-4): starting
// address and quantity.
func ReadRequest(fc uint8, addr, qty uint16) []byte {
	return []byte{fc, byte(addr >> 8), byte(addr), byte(qty >> 8), byte(qty)}
}

// ReadHoldingRegisters returns an FC 3 request PDU.
func ReadHoldingRegisters(addr, qty uint16) []byte {
	return ReadRequest(FCReadHoldingRegisters, addr, qty)
}

// ReadInputRegisters returns an FC 4 request PDU.
func ReadInputRegisters(addr, qty uint16) []byte {
	return ReadRequest(FCReadInputRegisters, addr, qty)
}

// RegistersResponse returns the response PDU of FC 3 or 4: byte count and
// the register values.
func RegistersResponse(fc uint8, values ...uint16) []byte {
	p := make([]byte, 2, 2+2*len(values))
	p[0], p[1] = fc, byte(2*len(values))
	for _, v := range values {
		p = binary.BigEndian.AppendUint16(p, v)
	}
	return p
}

// ReadHoldingRegistersResponse returns an FC 3 response PDU.
func ReadHoldingRegistersResponse(values ...uint16) []byte {
	return RegistersResponse(FCReadHoldingRegisters, values...)
}

// BitsResponse returns the response PDU of FC 1 or 2: byte count and the
// bits packed LSB first, the last byte padded with zeros.
func BitsResponse(fc uint8, bits ...bool) []byte {
	n := (len(bits) + 7) / 8
	p := make([]byte, 2+n)
	p[0], p[1] = fc, byte(n)
	for i, b := range bits {
		if b {
			p[2+i/8] |= 1 << (i % 8)
		}
	}
	return p
}

// WriteSingleRegister returns an FC 6 request PDU; the normal response is
// the same PDU echoed.
func WriteSingleRegister(addr, value uint16) []byte {
	return []byte{FCWriteSingleRegister, byte(addr >> 8), byte(addr), byte(value >> 8), byte(value)}
}

// WriteMultipleRegisters returns an FC 16 request PDU: address, quantity,
// byte count and values.
func WriteMultipleRegisters(addr uint16, values ...uint16) []byte {
	p := make([]byte, 6, 6+2*len(values))
	p[0] = FCWriteMultipleRegisters
	binary.BigEndian.PutUint16(p[1:], addr)
	binary.BigEndian.PutUint16(p[3:], uint16(len(values)))
	p[5] = byte(2 * len(values))
	for _, v := range values {
		p = binary.BigEndian.AppendUint16(p, v)
	}
	return p
}

// WriteMultipleRegistersResponse returns the FC 16 response PDU: address and
// quantity written.
func WriteMultipleRegistersResponse(addr, qty uint16) []byte {
	return []byte{FCWriteMultipleRegisters, byte(addr >> 8), byte(addr), byte(qty >> 8), byte(qty)}
}

// ExceptionResponse returns the exception PDU for function fc: fc with the
// high bit set, and the exception code.
func ExceptionResponse(fc, code uint8) []byte {
	return []byte{fc | 0x80, code}
}
