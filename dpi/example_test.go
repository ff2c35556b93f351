package dpi_test

import (
	"bytes"
	"fmt"
	"github.com/tapwatch/tapwatch/dpi/link"
	"io"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

type printer struct{}

func (printer) Message(f *dpi.Flow, from dpi.Side, msg any) {
	m, ok := msg.(*modbus.Message)
	if !ok {
		return
	}
	src := f.Client
	if from == dpi.FromServer {
		src = f.Server
	}
	m.DecodeValues() // the engine leaves a read response's values undecoded until asked
	fmt.Printf("frame %d %v from %v: fc %d %s addr %d count %d values %v\n",
		m.Frame, m.Dir, src, m.FC, modbus.FunctionName(m.FC), m.Addr, m.Count, m.Values)
}

// A read of two holding registers, its request split over two TCP
// segments, decoded from raw frames.
func ExampleEngine_Packet() {
	var capture bytes.Buffer
	w, _ := pcapgen.NewWriter(&capture, pcapgen.Options{})
	hmi := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("10.0.0.1"), Port: 50000}
	plc := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, IP: netip.MustParseAddr("10.0.0.2"), Port: 502}
	conn, _ := pcapgen.NewTCPConn(w, hmi, plc, 100, 200)
	conn.Handshake()
	conn.Client(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegisters(40, 2)), pcapgen.Split(2))
	conn.Server(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegistersResponse(150, 7)))
	w.Flush()

	eng, _ := dpi.New(dpi.Config{}, printer{})
	r, _ := pcapgo.NewReader(&capture)
	for frame := uint64(1); ; frame++ {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		eng.Packet(link.Type(r.LinkType()), ci.Timestamp, frame, data, ci.Length)
	}
	// Output:
	// frame 5 request from 10.0.0.1:50000: fc 3 read_holding_registers addr 40 count 2 values []
	// frame 6 response from 10.0.0.2:502: fc 3 read_holding_registers addr 40 count 2 values [150 7]
}
