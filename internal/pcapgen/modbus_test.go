package pcapgen

import (
	"bytes"
	"testing"
)

func TestModbusBuilders(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"MBAP", MBAP(0x1234, 0x11, []byte{0x03, 0x00, 0x6b, 0x00, 0x03}), []byte{
			0x12, 0x34, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length: unit id + 5-byte PDU
			0x11,                         // unit id
			0x03, 0x00, 0x6b, 0x00, 0x03, // PDU
		}},
		{"AppendMBAP", AppendMBAP([]byte{0xaa}, 1, 2, []byte{0x05}), []byte{
			0xaa,       // what was there
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x02, // length
			0x02, // unit id
			0x05, // PDU
		}},
		{"RTU", RTU(0x01, []byte{0x03, 0x00, 0x00, 0x00, 0x0A}), []byte{
			0x01,       // slave address
			0x03,       // function code
			0x00, 0x00, // starting address
			0x00, 0x0A, // quantity
			0xC5, 0xCD, // CRC, low byte first (the serial line specification's example)
		}},
		{"AppendRTU", AppendRTU([]byte{0xaa}, 0x11, []byte{0x83, 0x02}), []byte{
			0xaa,       // what was there
			0x11,       // slave address
			0x83,       // exception to FC 3
			0x02,       // illegal data address
			0xC1, 0x34, // CRC of the frame only
		}},
		{"WriteSingleCoil", WriteSingleCoil(172, true), []byte{
			0x05,       // function code
			0x00, 0xAC, // output address
			0xFF, 0x00, // on
		}},
		{"ReadHoldingRegisters", ReadHoldingRegisters(107, 3), []byte{
			0x03,       // function code
			0x00, 0x6b, // starting address
			0x00, 0x03, // quantity
		}},
		{"ReadInputRegisters", ReadInputRegisters(8, 1), []byte{0x04, 0x00, 0x08, 0x00, 0x01}},
		{"ReadRequest coils", ReadRequest(FCReadCoils, 19, 19), []byte{0x01, 0x00, 0x13, 0x00, 0x13}},
		{"ReadHoldingRegistersResponse", ReadHoldingRegistersResponse(0x022b, 0x0000, 0x0064), []byte{
			0x03,       // function code
			0x06,       // byte count
			0x02, 0x2b, // register 107
			0x00, 0x00, // register 108
			0x00, 0x64, // register 109
		}},
		{"RegistersResponse FC4", RegistersResponse(FCReadInputRegisters, 10), []byte{0x04, 0x02, 0x00, 0x0a}},
		{"BitsResponse", BitsResponse(FCReadCoils,
			true, false, true, true, false, false, true, true, // 0xcd
			true, true, false, true, false, true, true, false, // 0x6b
			true, false, true), // 0x05
			[]byte{
				0x01,             // function code
				0x03,             // byte count
				0xcd, 0x6b, 0x05, // coils 20-38, LSB first (the specification's example)
			}},
		{"WriteSingleRegister", WriteSingleRegister(1, 3), []byte{
			0x06,       // function code
			0x00, 0x01, // address
			0x00, 0x03, // value
		}},
		{"WriteMultipleRegisters", WriteMultipleRegisters(1, 0x000a, 0x0102), []byte{
			0x10,       // function code
			0x00, 0x01, // starting address
			0x00, 0x02, // quantity
			0x04,       // byte count
			0x00, 0x0a, // value 1
			0x01, 0x02, // value 2
		}},
		{"WriteMultipleRegistersResponse", WriteMultipleRegistersResponse(1, 2), []byte{0x10, 0x00, 0x01, 0x00, 0x02}},
		{"ExceptionResponse", ExceptionResponse(FCReadInputRegisters, ExIllegalDataAddress), []byte{
			0x84, // function code with the exception bit
			0x02, // illegal data address
		}},
	}
	for _, tc := range cases {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s = % x, want % x", tc.name, tc.got, tc.want)
		}
	}
}
