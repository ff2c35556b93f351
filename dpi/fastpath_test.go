package dpi

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// slowFrame decodes an Ethernet frame as Packet does when fastPacket
// declines it (decodeFrame, which TestDecodeLikeGopacket holds to
// gopacket) and returns what fastFrame would hold, with ok false unless
// Packet would hand the packet to tcpPacket or udpPacket with no error
// and nothing cut short.
func slowFrame(e *Engine, data []byte) (fr fastFrame, ok bool) {
	err := e.decodeFrame(lEthernet, data)
	if err != nil || e.truncated {
		return fr, false
	}
	h := e.decodedHeaders()
	v4, v6, tcp, udp, eth := h.v4, h.v6, h.tcp, h.udp, h.eth
	if !eth {
		return fr, false
	}
	switch {
	case v4:
		if e.ip4.flagsFrag&0x3fff != 0 {
			return fr, false
		}
		fr.k.a, fr.k.b = ip16From4(e.ip4.src[:]), ip16From4(e.ip4.dst[:])
		fr.ttl = e.ip4.ttl
	case v6:
		fr.k.a, fr.k.b = ip16From16(e.ip6.src[:]), ip16From16(e.ip6.dst[:])
		fr.ttl, fr.v6 = e.ip6.hopLimit, true
	default:
		return fr, false
	}
	fr.tags = e.vlan.n
	fr.vlans = e.vlan.ids
	if fr.tags > 0 {
		fr.k.setVLAN(e.vlan.ids[0])
	}
	switch {
	case tcp:
		t := &e.tcp
		fr.k.setProto(ipTCP)
		fr.k.setPorts(t.SrcPort, t.DstPort)
		fr.tcp = *t
		if e.segmentLengthSlow() != len(t.Payload) {
			return fr, false // Packet would count a cut or a bad IP length
		}
	case udp:
		fr.k.setProto(ipUDP)
		fr.k.setPorts(e.udp.SrcPort, e.udp.DstPort)
		fr.payload = e.udp.Payload
	default:
		return fr, false
	}
	return fr, true
}

// segmentLengthSlow is segmentLength for a packet gopacket decoded.
func (e *Engine) segmentLengthSlow() int {
	fast := e.fast
	e.fast = false
	defer func() { e.fast = fast }()
	return e.segmentLength(&e.tcp)
}

func frameString(fr fastFrame) string {
	return fmt.Sprintf("key %+v vlans %v/%d v6 %v ttl %d tcp %+v payload %x",
		fr.k, fr.vlans[:min(fr.tags, 2)], fr.tags, fr.v6, fr.ttl, fr.tcp, fr.payload)
}

// fastFrameAgrees returns an error if the fast path takes a frame that
// gopacket decodes otherwise, and whether the fast path took it.
func fastFrameAgrees(e *Engine, data []byte) (bool, error) {
	var fr fastFrame
	if !fr.decode(data) {
		return false, tcp4AgreesTagged(data, fr, false)
	}
	slow, ok := slowFrame(e, data)
	if !ok {
		return true, fmt.Errorf("the fast path takes a frame the full decoder does not decode cleanly: %x", data)
	}
	// The fast path hands on the frame's first twelve octets as its
	// Ethernet addresses.
	if got, want := *(*macs)(data), macsOf(e.eth.dst, e.eth.src); got != want {
		return true, fmt.Errorf("frame %x: the fast path's addresses %x, the full decoder's %x", data, got, want)
	}
	if !bytes.Equal(fr.payload, slow.payload) || frameString(fr) != frameString(slow) {
		return true, fmt.Errorf("frame %x:\nfast %s\nslow %s", data, frameString(fr), frameString(slow))
	}
	return true, tcp4AgreesTagged(data, fr, true)
}

// tcp4AgreesTagged checks tcp4 against decode's general path, for a frame
// of tcp4's shape (untagged IPv4 with no options carrying TCP) that
// decode took (took) or refused: the frame with a VLAN tag added, which
// only the general path reads, must be taken or refused alike, and read
// alike but for the tag. A tcp4 that refused what it should take would
// otherwise cost only speed, and go unnoticed.
func tcp4AgreesTagged(data []byte, fr fastFrame, took bool) error {
	if len(data) < tcp4Len || be16(data[12:]) != 0x0800 || data[14] != 0x45 || data[23] != ipTCP {
		return nil
	}
	tagged := append(append(append([]byte(nil), data[:12]...), 0x81, 0x00, 0x00, 0x07), data[12:]...)
	var g fastFrame
	if g.decode(tagged) != took {
		return fmt.Errorf("frame %x: tcp4 took it %v, the general path took it tagged %v", data, took, !took)
	}
	if !took {
		return nil
	}
	if g.tags != 1 || g.vlans[0] != 7 || g.k.vlan() != 7 {
		return fmt.Errorf("frame %x tagged: tags %d %v, key's VLAN %d", data, g.tags, g.vlans, g.k.vlan())
	}
	g.tags, g.vlans[0] = 0, 0
	g.k.setVLAN(0)
	if frameString(g) != frameString(fr) {
		return fmt.Errorf("frame %x:\ntcp4     %s\ngeneral  %s", data, frameString(fr), frameString(g))
	}
	return nil
}

// FastFrameAgrees is fastFrameAgrees, for TestFastPathCorpus.
var FastFrameAgrees = fastFrameAgrees

func checkFastFrame(t *testing.T, e *Engine, data []byte) bool {
	t.Helper()
	took, err := fastFrameAgrees(e, data)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

func fastSeeds() [][]byte {
	vlan := func(b []byte, ids ...uint16) []byte {
		out := append([]byte(nil), b[:12]...)
		for _, id := range ids {
			out = append(out, 0x81, 0x00, byte(id>>8)|0x20, byte(id))
		}
		return append(out, b[12:]...)
	}
	syn := tcpFrame(false, 1, 0, 1, nil)
	data := tcpFrame(true, 7, 9, 8, []byte{0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 7})
	udp6 := udpFrame6([]byte("dns?"))
	padded := append(append([]byte(nil), syn...), make([]byte, 6)...) // an Ethernet trailer
	cut := data[:len(data)-3]
	frag := append([]byte(nil), data...)
	frag[14+6] |= 0x20 // more fragments
	opts := append([]byte(nil), data...)
	opts[14] = 0x46
	df := append([]byte(nil), data...)
	df[14+6] |= 0x40 // don't fragment: not a fragment
	return [][]byte{syn, data, udp6, padded, cut, frag, opts, vlan(data, 10), vlan(data, 10, 20, 30), vlan(udp6, 5), data[:14], data[:30],
		df, tcpOptionsFrame()}
}

// tcpOptionsFrame builds an Ethernet/IPv4/TCP frame whose TCP header has
// options (two NOPs and timestamps) and whose IP header says don't
// fragment, with a Modbus request.
func tcpOptionsFrame() []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 502, Seq: 7, Ack: 9, ACK: true, PSH: true, Window: 512,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 2}}}}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp,
		gopacket.Payload([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1}))
	return buf.Bytes()
}

// udpFrame6 builds an Ethernet/IPv6/UDP frame.
func udpFrame6(payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload))
	return buf.Bytes()
}

func TestFastPathSeeds(t *testing.T) {
	e, err := New(Config{}, &nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	took := 0
	for _, s := range fastSeeds() {
		if checkFastFrame(t, e, s) {
			took++
		}
	}
	// syn, data, udp6, padded, the three tagged frames, the one that
	// must not be fragmented and the one with TCP options; not the cut
	// one, the fragment, the one with IP options or the short ones.
	if took != 9 {
		t.Errorf("the fast path took %d of the seeds, want 9", took)
	}
}

// FuzzFastPath holds the fast path to gopacket's decoding on any frame.
func FuzzFastPath(f *testing.F) {
	for _, s := range fastSeeds() {
		f.Add(s)
	}
	e, err := New(Config{}, &nopHandler{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFastFrame(t, e, data) })
}
