package pcapgen

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/dpi/link"
)

// readBack decodes a capture written by a Writer with pcapgo and gopacket's
// ordinary decoders, and fails the test on any checksum mismatch. It
// returns the file's link type.
func readBack(t *testing.T, capture []byte) (link.Type, []gopacket.Packet) {
	t.Helper()
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var (
		src source
		lt  layers.LinkType
	)
	if bytes.HasPrefix(capture, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(bytes.NewReader(capture), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		src, lt = r, r.LinkType()
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(capture))
		if err != nil {
			t.Fatal(err)
		}
		src, lt = r, r.LinkType()
	}
	var pkts []gopacket.Packet
	for {
		data, ci, err := src.ReadPacketData()
		if err != nil {
			break
		}
		if ci.CaptureLength != len(data) || ci.Length != len(data) {
			t.Fatalf("frame %d: capture info %+v for %d bytes", len(pkts)+1, ci, len(data))
		}
		p := gopacket.NewPacket(data, lt, gopacket.DecodeOptions{})
		p.Metadata().CaptureInfo = ci
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("frame %d: decode error: %v", len(pkts)+1, el.Error())
		}
		verifyChecksums(t, len(pkts)+1, p)
		pkts = append(pkts, p)
	}
	return link.Type(lt), pkts
}

func verifyChecksums(t *testing.T, frame int, p gopacket.Packet) {
	t.Helper()
	if nl := p.NetworkLayer(); nl != nil {
		switch l := p.TransportLayer().(type) {
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(nl)
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(nl)
		}
		if l, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
			l.SetNetworkLayerForChecksum(nl)
		}
	}
	err, bad := p.VerifyChecksums()
	if err != nil {
		t.Fatalf("frame %d: verifying checksums: %v", frame, err)
	}
	for _, m := range bad {
		t.Errorf("frame %d: bad %v checksum %#x, want %#x", frame, m.Layer.LayerType(), m.Actual, m.Correct)
	}
}

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, last} }

func ep(mac net.HardwareAddr, ip string, port uint16) Endpoint {
	return Endpoint{MAC: mac, IP: netip.MustParseAddr(ip), Port: port}
}

func tcpOf(t *testing.T, p gopacket.Packet) *layers.TCP {
	t.Helper()
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("no TCP layer in %v", p)
	}
	return tcp
}

// flagString renders TCP flags the way tests spell them: "SYN|ACK".
func flagString(tcp *layers.TCP) string {
	var s []string
	for _, f := range []struct {
		on   bool
		name string
	}{{tcp.SYN, "SYN"}, {tcp.FIN, "FIN"}, {tcp.RST, "RST"}, {tcp.PSH, "PSH"}, {tcp.ACK, "ACK"}} {
		if f.on {
			s = append(s, f.name)
		}
	}
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "|"
		}
		out += x
	}
	return out
}
