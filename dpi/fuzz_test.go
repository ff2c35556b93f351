package dpi

import (
	"encoding/binary"
	"github.com/tapwatch/tapwatch/dpi/link"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// tcpFrame builds an Ethernet/IPv4/TCP frame between 10.0.0.1:40000 (the
// client) and 10.0.0.2:502.
func tcpFrame(fromServer bool, seq, ack uint32, flags byte, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 502, Seq: seq, Ack: ack, Window: 65535,
		SYN: flags&1 != 0, FIN: flags&2 != 0, RST: flags&4 != 0, ACK: flags&8 != 0, PSH: len(payload) > 0}
	if fromServer {
		eth.SrcMAC, eth.DstMAC = eth.DstMAC, eth.SrcMAC
		ip.SrcIP, ip.DstIP = ip.DstIP, ip.SrcIP
		tcp.SrcPort, tcp.DstPort = tcp.DstPort, tcp.SrcPort
	}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload))
	return buf.Bytes()
}

// FuzzStream drives one TCP connection with segments the fuzzer chooses:
// each record is a control byte (bit 7: from the server; bits 0-3: SYN,
// FIN, RST, ACK; bits 4-6: time step), a signed 16-bit sequence offset from
// the sender's running position, a length, and that many payload bytes.
// Reassembly must never panic, never hold more than its caps, and give
// back every byte it accounted for when the flow ends.
func FuzzStream(f *testing.F) {
	// A request and its response, in order.
	f.Add([]byte{0x08, 0, 0, 12, 0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1,
		0x88, 0, 0, 11, 0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 7})
	// The same request in two segments, second first (out of order).
	f.Add([]byte{0x08, 0, 5, 7, 0, 6, 1, 3, 0, 0, 0, 0x08, 0xff, 0xfb, 5, 0, 1, 0, 0, 0})
	// SYN, data, RST.
	f.Add([]byte{0x01, 0, 0, 0, 0x08, 0, 1, 3, 0, 1, 0, 0x04, 0, 0, 0})
	// Overlapping copies with conflicting bytes.
	f.Add([]byte{0x08, 0, 4, 4, 9, 9, 9, 9, 0x08, 0, 2, 6, 1, 1, 1, 1, 1, 1, 0x08, 0, 0, 4, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Config{MaxFlows: 16, FlowBuffer: 2048, TotalBuffer: 4096, MaxOutOfOrder: 4, GapTimeout: 50 * time.Millisecond}
		e, err := New(cfg, &nopHandler{})
		if err != nil {
			t.Fatal(err)
		}
		pos := [2]uint32{1000, 90000} // client, server
		ts := time.Unix(1700000000, 0)
		for frame := uint64(1); len(data) >= 4; frame++ {
			ctl, off, n := data[0], int16(binary.BigEndian.Uint16(data[1:3])), int(data[3])
			data = data[4:]
			n = min(n, len(data))
			payload := data[:n]
			data = data[n:]
			side := int(ctl >> 7)
			seq := pos[side] + uint32(int32(off))
			if off >= 0 {
				pos[side] = seq + uint32(n)
			}
			ts = ts.Add(time.Duration(ctl>>4&7) * 20 * time.Millisecond)
			e.Packet(link.Ethernet, ts, frame, tcpFrame(side == 1, seq, pos[side^1], ctl&0x0f, payload), 0)
			if c := e.Counters(); c.BufferedBytes > uint64(cfg.TotalBuffer) {
				t.Fatalf("frame %d: %d bytes held, cap %d", frame, c.BufferedBytes, cfg.TotalBuffer)
			}
		}
		e.Flush()
		if c := e.Counters(); c.BufferedBytes != 0 || c.FlowsActive != 0 {
			t.Fatalf("after Flush: %d bytes held, %d flows", c.BufferedBytes, c.FlowsActive)
		}
	})
}
