package dpi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/dpi/link"
)

// The decoder dpi used before it decoded headers itself: gopacket's
// DecodingLayerParser with the same headers, which is the oracle of
// decodeFrame.
type gopacketDecoder struct {
	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	eth     layers.Ethernet
	vlan    gpVLAN
	loop    layers.Loopback
	sll     layers.LinuxSLL
	sll2    layers.LinuxSLL2
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     gpTCP
	udp     gpUDP
	arp     layers.ARP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	decoded []gopacket.LayerType
}

type gpVLAN struct {
	layers.Dot1Q
	ids [2]uint16
	n   int
}

func (v *gpVLAN) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if err := v.Dot1Q.DecodeFromBytes(data, df); err != nil {
		return err
	}
	if v.n < len(v.ids) {
		v.ids[v.n] = v.VLANIdentifier
	}
	v.n++
	return nil
}

type gpTCP struct{ layers.TCP }

func (*gpTCP) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

type gpUDP struct{ layers.UDP }

func (*gpUDP) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

func newGopacketDecoder() *gopacketDecoder {
	g := &gopacketDecoder{parsers: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}}
	for _, first := range []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeLoopback, layers.LayerTypeLinuxSLL,
		layers.LayerTypeLinuxSLL2, layers.LayerTypeIPv4, layers.LayerTypeIPv6} {
		p := gopacket.NewDecodingLayerParser(first)
		p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
		for _, d := range []gopacket.DecodingLayer{&g.eth, &g.vlan, &g.loop, &g.sll, &g.sll2, &g.ip4, &g.ip6, &g.tcp, &g.udp, &g.arp, &g.icmp4, &g.icmp6} {
			p.AddDecodingLayer(d)
		}
		p.IgnoreUnsupported = true
		g.parsers[first] = p
	}
	return g
}

var gpFirst = map[layer]gopacket.LayerType{
	lEthernet: layers.LayerTypeEthernet, lLoopback: layers.LayerTypeLoopback, lSLL: layers.LayerTypeLinuxSLL,
	lSLL2: layers.LayerTypeLinuxSLL2, lIPv4: layers.LayerTypeIPv4, lIPv6: layers.LayerTypeIPv6,
}

var layerNames = map[layer]string{
	lEthernet: "Ethernet", lDot1Q: "Dot1Q", lLoopback: "Loopback", lSLL: "Linux SLL", lSLL2: "Linux SLL2",
	lIPv4: "IPv4", lIPv6: "IPv6", lTCP: "TCP", lUDP: "UDP", lARP: "ARP", lICMPv4: "ICMPv4", lICMPv6: "ICMPv6",
}

// decodeResult is what Packet reads from a decoded frame, as text.
type decodeResult struct {
	layers         []string
	err, truncated bool
	fields         []string
}

func (r decodeResult) String() string {
	return fmt.Sprintf("layers %v err %v truncated %v\n  %s", r.layers, r.err, r.truncated, strings.Join(r.fields, "\n  "))
}

func (g *gopacketDecoder) decode(first layer, data []byte) decodeResult {
	p := g.parsers[gpFirst[first]]
	g.vlan.n = 0
	err := p.DecodeLayers(data, &g.decoded)
	r := decodeResult{err: err != nil, truncated: p.Truncated}
	for _, t := range g.decoded {
		r.layers = append(r.layers, t.String())
		switch t {
		case layers.LayerTypeEthernet:
			r.fields = append(r.fields, fmt.Sprintf("eth %x %x", []byte(g.eth.SrcMAC), []byte(g.eth.DstMAC)))
		case layers.LayerTypeDot1Q:
			r.fields = append(r.fields, fmt.Sprintf("vlan %v %d", g.vlan.ids[:min(g.vlan.n, 2)], g.vlan.n))
		case layers.LayerTypeIPv4:
			ff := uint16(g.ip4.Flags)<<13 | g.ip4.FragOffset
			r.fields = append(r.fields, fmt.Sprintf("ip4 ihl %d len %d ff %#x ttl %d %x %x", g.ip4.IHL, g.ip4.Length, ff, g.ip4.TTL, []byte(g.ip4.SrcIP), []byte(g.ip4.DstIP)))
		case layers.LayerTypeIPv6:
			hbh := 0
			if g.ip6.HopByHop != nil {
				hbh = g.ip6.HopByHop.ActualLength
			}
			r.fields = append(r.fields, fmt.Sprintf("ip6 len %d hop %d hbh %d %x %x", g.ip6.Length, g.ip6.HopLimit, hbh, []byte(g.ip6.SrcIP), []byte(g.ip6.DstIP)))
		case layers.LayerTypeTCP:
			t := &g.tcp
			r.fields = append(r.fields, fmt.Sprintf("tcp %d %d seq %d ack %d off %d flags %v%v%v%v%v%v%v%v payload %x", t.SrcPort, t.DstPort, t.Seq, t.Ack, t.DataOffset,
				t.FIN, t.SYN, t.RST, t.PSH, t.ACK, t.URG, t.ECE, t.CWR, t.Payload))
		case layers.LayerTypeUDP:
			r.fields = append(r.fields, fmt.Sprintf("udp %d %d payload %x", g.udp.SrcPort, g.udp.DstPort, g.udp.Payload))
		case layers.LayerTypeARP:
			a := &g.arp
			r.fields = append(r.fields, fmt.Sprintf("arp %d %#x op %d %x %x %x %x", a.AddrType, uint16(a.Protocol), a.Operation, a.SourceHwAddress, a.SourceProtAddress, a.DstHwAddress, a.DstProtAddress))
		case layers.LayerTypeICMPv4:
			r.fields = append(r.fields, fmt.Sprintf("icmp %d %d payload %x", g.icmp4.TypeCode.Type(), g.icmp4.TypeCode.Code(), g.icmp4.Payload))
		case layers.LayerTypeICMPv6:
			r.fields = append(r.fields, fmt.Sprintf("icmp %d %d payload %x", g.icmp6.TypeCode.Type(), g.icmp6.TypeCode.Code(), g.icmp6.Payload))
		}
	}
	return r
}

func ourDecode(e *Engine, first layer, data []byte) decodeResult {
	err := e.decodeFrame(first, data)
	r := decodeResult{err: err != nil, truncated: e.truncated}
	for _, t := range e.decoded {
		r.layers = append(r.layers, layerNames[t])
		switch t {
		case lEthernet:
			r.fields = append(r.fields, fmt.Sprintf("eth %x %x", e.eth.src, e.eth.dst))
		case lDot1Q:
			r.fields = append(r.fields, fmt.Sprintf("vlan %v %d", e.vlan.ids[:min(e.vlan.n, 2)], e.vlan.n))
		case lIPv4:
			ip := &e.ip4
			r.fields = append(r.fields, fmt.Sprintf("ip4 ihl %d len %d ff %#x ttl %d %x %x", ip.ihl, ip.length, ip.flagsFrag, ip.ttl, ip.src, ip.dst))
		case lIPv6:
			ip := &e.ip6
			r.fields = append(r.fields, fmt.Sprintf("ip6 len %d hop %d hbh %d %x %x", ip.length, ip.hopLimit, ip.hbh, ip.src, ip.dst))
		case lTCP:
			t := &e.tcp
			r.fields = append(r.fields, fmt.Sprintf("tcp %d %d seq %d ack %d off %d flags %v%v%v%v%v%v%v%v payload %x", t.SrcPort, t.DstPort, t.Seq, t.Ack, t.DataOffset,
				t.FIN(), t.SYN(), t.RST(), t.PSH(), t.ACK(), t.URG(), t.ECE(), t.CWR(), t.Payload))
		case lUDP:
			r.fields = append(r.fields, fmt.Sprintf("udp %d %d payload %x", e.udp.SrcPort, e.udp.DstPort, e.udp.Payload))
		case lARP:
			a := &e.arpHdr
			r.fields = append(r.fields, fmt.Sprintf("arp %d %#x op %d %x %x %x %x", a.addrType, a.protocol, a.op, a.senderHW, a.senderIP, a.targetHW, a.targetIP))
		case lICMPv4, lICMPv6:
			r.fields = append(r.fields, fmt.Sprintf("icmp %d %d payload %x", e.icmp.typ, e.icmp.code, e.icmp.payload))
		}
	}
	return r
}

// decodeAgrees returns an error when decodeFrame and gopacket decode a
// frame of link type lt differently.
func decodeAgrees(e *Engine, g *gopacketDecoder, lt link.Type, data []byte) error {
	first := firstLayer(lt, data)
	if first == lNone {
		return nil
	}
	want, got := g.decode(first, data), ourDecode(e, first, data)
	if got.String() != want.String() {
		return fmt.Errorf("link type %d, frame %x:\n got %v\nwant %v", lt, data, got, want)
	}
	return nil
}

// NewDecodeComparer returns a function comparing the two decoders on
// frames, reusing them.
func NewDecodeComparer() func(lt link.Type, data []byte) error {
	e, err := New(Config{}, nil)
	if err != nil {
		panic(err)
	}
	g := newGopacketDecoder()
	return func(lt link.Type, data []byte) error { return decodeAgrees(e, g, lt, data) }
}

// The link types FuzzDecodeLikeGopacket tries, by a byte of its input.
var fuzzLinks = []link.Type{link.Ethernet, link.Null, link.Loop, link.LinuxSLL, link.LinuxSLL2, link.IPv4, link.IPv6, link.Raw}

func decodeSeeds() [][]byte {
	var seeds [][]byte
	for _, s := range fastSeeds() {
		seeds = append(seeds, append([]byte{0}, s...))
	}
	ip4 := tcpFrame(false, 1, 2, 8, []byte("hello"))[14:]
	ip6 := udpFrame6([]byte("dns?"))[14:]
	withOpts := append([]byte{0x46}, ip4[1:]...)
	withOpts = append(withOpts[:20], append([]byte{1, 1, 0x44, 4}, withOpts[20:]...)...) // NOP, NOP, a 4-byte option
	withOpts[3] += 4
	hbh := append([]byte(nil), ip6[:40]...)
	hbh[6] = 0 // Hop-by-Hop, then UDP
	hbh = append(hbh, 17, 0, 5, 2, 0, 0, 1, 0)
	hbh = append(hbh, ip6[40:]...)
	hbh[5] += 8
	seeds = append(seeds,
		append([]byte{1}, append([]byte{2, 0, 0, 0}, ip4...)...),                                     // Null, IPv4
		append([]byte{1}, append([]byte{0, 0, 0, 30}, ip6...)...),                                    // Null, IPv6 (Darwin)
		append([]byte{3}, append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 8, 0}, ip4...)...), // SLL
		append([]byte{4}, append([]byte{8, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}, ip4...)...),
		append([]byte{5}, withOpts...),
		append([]byte{6}, hbh...),
		append([]byte{5}, append([]byte{0x45, 0, 0, 0}, ip4[4:]...)...), // a length of 0 (TSO)
	)
	return seeds
}

func TestDecodeSeeds(t *testing.T) {
	e, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := newGopacketDecoder()
	for i, s := range decodeSeeds() {
		if err := decodeAgrees(e, g, fuzzLinks[int(s[0])%len(fuzzLinks)], s[1:]); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}

// FuzzDecodeLikeGopacket holds decodeFrame to gopacket's decoding of the
// same headers, on any frame of any link type dpi decodes.
func FuzzDecodeLikeGopacket(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add(s)
	}
	e, err := New(Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	g := newGopacketDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		if err := decodeAgrees(e, g, fuzzLinks[int(data[0])%len(fuzzLinks)], data[1:]); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEtherAndIPNext: the headers dpi follows from an EtherType, an IP
// protocol and a loopback address family are those gopacket followed to
// a header of dpi's set, for every value.
func TestEtherAndIPNext(t *testing.T) {
	ours := map[gopacket.LayerType]layer{
		layers.LayerTypeEthernet: lEthernet, layers.LayerTypeDot1Q: lDot1Q, layers.LayerTypeIPv4: lIPv4, layers.LayerTypeIPv6: lIPv6,
		layers.LayerTypeTCP: lTCP, layers.LayerTypeUDP: lUDP, layers.LayerTypeARP: lARP, layers.LayerTypeICMPv4: lICMPv4, layers.LayerTypeICMPv6: lICMPv6,
	}
	for i := range 1 << 16 {
		if i < 0x600 {
			continue // an 802.3 length
		}
		if want, got := ours[layers.EthernetType(i).LayerType()], etherNext(uint16(i)); got != want {
			t.Errorf("EtherType %#04x: %v, gopacket %v", i, layerNames[got], layerNames[want])
		}
	}
	for i := range 256 {
		if want, got := ours[layers.IPProtocol(i).LayerType()], ipNext(uint8(i)); got != want && i != 0 {
			t.Errorf("IP protocol %d: %v, gopacket %v", i, layerNames[got], layerNames[want])
		}
	}
}
