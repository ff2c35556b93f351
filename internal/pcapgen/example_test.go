package pcapgen_test

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"net/netip"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// A Modbus read whose response is split in two, as a test fixture would
// write it; the frame numbers say where each ADU completes.
func ExampleTCPConn() {
	var file bytes.Buffer // an *os.File in real use
	w, err := pcapgen.NewWriter(&file, pcapgen.Options{Link: pcapgen.LinkVLAN})
	if err != nil {
		log.Fatal(err)
	}
	hmi := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("10.10.1.10"), Port: 50000}
	plc := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, IP: netip.MustParseAddr("10.10.1.20"), Port: 502}
	c, err := pcapgen.NewTCPConn(w, hmi, plc, 1000, 2000)
	if err != nil {
		log.Fatal(err)
	}
	c.Handshake()
	req, _ := c.Client(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegisters(0, 2)))
	resp, _ := c.Server(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegistersResponse(10, 20)), pcapgen.Split(2))
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("request in frame", req[0], "- response completes in frame", resp[len(resp)-1])
	// Output: request in frame 4 - response completes in frame 6
}
