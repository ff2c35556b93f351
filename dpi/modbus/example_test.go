package modbus_test

import (
	"fmt"
	"time"

	"github.com/tapwatch/tapwatch/dpi/modbus"
)

type printer struct{}

func (printer) Message(m *modbus.Message) {
	fmt.Printf("%-8s tid=%d unit=%d %s", m.Dir, m.TID, m.Unit, modbus.FunctionName(m.FC))
	if m.HasAddr {
		fmt.Printf(" addr=%d count=%d", m.Addr, m.Count)
	}
	if len(m.Values) > 0 {
		fmt.Printf(" values=%v", m.Values)
	}
	if m.Outcome != modbus.OutcomeNone {
		fmt.Printf(" %s latency=%v", m.Outcome, m.Latency)
	}
	if m.Malformed != 0 {
		fmt.Printf(" malformed=%s", m.Malformed)
	}
	fmt.Println()
}

func ExampleDecoder_Feed() {
	d := modbus.NewDecoder(modbus.Config{})
	var c modbus.Conn // normally embedded in a flow record
	c.Reset(false)
	start := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

	request := []byte{
		0x00, 0x2A, // transaction id
		0x00, 0x00, // protocol id
		0x00, 0x06, // length
		0x01,       // unit id
		0x03,       // read holding registers
		0x00, 0x6B, // starting address
		0x00, 0x02, // quantity
	}
	response := []byte{
		0x00, 0x2A, 0x00, 0x00, 0x00, 0x07, 0x01, // MBAP header
		0x03,       // read holding registers
		0x04,       // byte count
		0x02, 0x2B, // register 107
		0x00, 0x64, // register 108
	}

	// The request arrives in two segments; Feed leaves the incomplete
	// ADU for the caller to present again with the next bytes.
	n := d.Feed(&c, modbus.Request, request[:5], modbus.Meta{Time: start, Frame: 1}, printer{})
	fmt.Println("consumed", n)
	n = d.Feed(&c, modbus.Request, request, modbus.Meta{Time: start, Frame: 2}, printer{})
	fmt.Println("consumed", n)
	d.Feed(&c, modbus.Response, response, modbus.Meta{Time: start.Add(4 * time.Millisecond), Frame: 3}, printer{})
	// Output:
	// consumed 0
	// request  tid=42 unit=1 read_holding_registers addr=107 count=2
	// consumed 12
	// response tid=42 unit=1 read_holding_registers addr=107 count=2 values=[555 100] ok latency=4ms
}

func ExampleConn_ResetRTU() {
	d := modbus.NewDecoder(modbus.Config{})
	var c modbus.Conn
	c.ResetRTU(false) // a serial gateway's port: RTU frames, no MBAP header
	start := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

	request := []byte{
		0x11,       // slave address
		0x03,       // read holding registers
		0x00, 0x6B, // starting address
		0x00, 0x03, // quantity
		0x76, 0x87, // CRC, low byte first
	}
	response := []byte{
		0x11,       // slave address
		0x03,       // read holding registers
		0x06,       // byte count
		0x02, 0x2B, // register 107
		0x00, 0x00, // register 108
		0x00, 0x64, // register 109
		0xC8, 0xBA, // CRC
	}
	d.Feed(&c, modbus.Request, request, modbus.Meta{Time: start, Frame: 1}, printer{})
	// The gateway sends the response in two segments: the function code
	// and byte count say how long the frame is, and its CRC confirms it.
	n := d.Feed(&c, modbus.Response, response[:4], modbus.Meta{Time: start.Add(9 * time.Millisecond), Frame: 2}, printer{})
	fmt.Println("consumed", n)
	d.Feed(&c, modbus.Response, response, modbus.Meta{Time: start.Add(10 * time.Millisecond), Frame: 3}, printer{})

	// A frame whose CRC does not match is reported, not decoded.
	spoiled := append(request[:6:6], 0x76, 0x88)
	d.Feed(&c, modbus.Request, spoiled, modbus.Meta{Time: start.Add(time.Second), Frame: 4}, printer{})
	// Output:
	// request  tid=0 unit=17 read_holding_registers addr=107 count=3
	// consumed 0
	// response tid=0 unit=17 read_holding_registers addr=107 count=3 values=[555 0 100] ok latency=10ms
	// request  tid=0 unit=17 read_holding_registers malformed=bad_crc
}
