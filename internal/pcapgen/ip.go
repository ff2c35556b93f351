package pcapgen

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Endpoint is one end of a conversation. MAC is needed on Ethernet-based
// links (and as the source address on LinkSLL); Port is ignored by ARP and
// ICMP.
type Endpoint struct {
	MAC  net.HardwareAddr
	IP   netip.Addr
	Port uint16
	TTL  uint8 // IPv4 TTL or IPv6 hop limit of what it sends; default 64
}

func (e Endpoint) String() string {
	return netip.AddrPortFrom(e.IP, e.Port).String()
}

// end is an Endpoint converted once to the forms gopacket wants.
type end struct {
	mac  net.HardwareAddr
	ip   net.IP
	v6   bool
	port uint16
	ttl  uint8
}

func newEnd(e Endpoint) (end, error) {
	a := e.IP.Unmap()
	if !a.IsValid() {
		return end{}, fmt.Errorf("pcapgen: endpoint %v has no IP address", e)
	}
	if e.MAC != nil && len(e.MAC) != 6 {
		return end{}, fmt.Errorf("pcapgen: endpoint %v has a %d-byte MAC address", e, len(e.MAC))
	}
	mac := e.MAC
	if mac == nil {
		mac = make(net.HardwareAddr, 6)
	}
	ttl := e.TTL
	if ttl == 0 {
		ttl = 64
	}
	return end{mac: mac, ip: net.IP(a.AsSlice()), v6: a.Is6(), port: e.Port, ttl: ttl}, nil
}

func newEnds(a, b Endpoint) (end, end, error) {
	ea, err := newEnd(a)
	if err != nil {
		return end{}, end{}, err
	}
	eb, err := newEnd(b)
	if err != nil {
		return end{}, end{}, err
	}
	if ea.v6 != eb.v6 {
		return end{}, end{}, fmt.Errorf("pcapgen: endpoints %v and %v mix IPv4 and IPv6", a, b)
	}
	return ea, eb, nil
}

// ipLayer fills the Writer's reused IPv4 or IPv6 header from src to dst and
// starts w.ls with the link layers and that header.
func (w *Writer) ipLayer(src, dst *end, proto layers.IPProtocol, df bool) (gopacket.NetworkLayer, error) {
	if src.v6 {
		w.ip6 = layers.IPv6{Version: 6, NextHeader: proto, HopLimit: src.ttl, SrcIP: src.ip, DstIP: dst.ip}
		if err := w.link(src.mac, dst.mac, layers.LayerTypeIPv6); err != nil {
			return nil, err
		}
		w.ls = append(w.ls, &w.ip6)
		return &w.ip6, nil
	}
	w.ipID++
	w.ip4 = layers.IPv4{Version: 4, IHL: 5, TTL: src.ttl, Protocol: proto, Id: w.ipID, SrcIP: src.ip, DstIP: dst.ip}
	if df {
		w.ip4.Flags = layers.IPv4DontFragment
	}
	if err := w.link(src.mac, dst.mac, layers.LayerTypeIPv4); err != nil {
		return nil, err
	}
	w.ls = append(w.ls, &w.ip4)
	return &w.ip4, nil
}

// TCP flag bits for writeTCP.
const (
	flagFIN = 1 << iota
	flagSYN
	flagRST
	flagPSH
	flagACK
)

var mssOption = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}

func (w *Writer) writeTCP(src, dst *end, seq, ack uint32, flags uint8, win uint16, payload []byte) (int, error) {
	nl, err := w.ipLayer(src, dst, layers.IPProtocolTCP, true)
	if err != nil {
		return 0, err
	}
	w.tcp = layers.TCP{
		SrcPort: layers.TCPPort(src.port),
		DstPort: layers.TCPPort(dst.port),
		Seq:     seq,
		Window:  win,
		FIN:     flags&flagFIN != 0,
		SYN:     flags&flagSYN != 0,
		RST:     flags&flagRST != 0,
		PSH:     flags&flagPSH != 0,
		ACK:     flags&flagACK != 0,
	}
	if w.tcp.ACK {
		w.tcp.Ack = ack
	}
	if w.tcp.SYN {
		w.tcp.Options = mssOption
	}
	if err := w.tcp.SetNetworkLayerForChecksum(nl); err != nil {
		return 0, err
	}
	w.ls = append(w.ls, &w.tcp)
	if len(payload) > 0 {
		w.ls = append(w.ls, gopacket.Payload(payload))
	}
	return w.emit()
}

func (w *Writer) writeUDP(src, dst *end, payload []byte) (int, error) {
	nl, err := w.ipLayer(src, dst, layers.IPProtocolUDP, false)
	if err != nil {
		return 0, err
	}
	w.udp = layers.UDP{SrcPort: layers.UDPPort(src.port), DstPort: layers.UDPPort(dst.port)}
	if err := w.udp.SetNetworkLayerForChecksum(nl); err != nil {
		return 0, err
	}
	w.ls = append(w.ls, &w.udp, gopacket.Payload(payload))
	return w.emit()
}

// ARPRequest writes a broadcast who-has for target from the sender.
func (w *Writer) ARPRequest(sender Endpoint, target netip.Addr) (int, error) {
	s, err := newEnd(sender)
	if err != nil {
		return 0, err
	}
	t := target.Unmap()
	if s.v6 || !t.Is4() {
		return 0, fmt.Errorf("pcapgen: ARP needs IPv4 addresses, have %v and %v", sender.IP, target)
	}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: s.mac, SourceProtAddress: s.ip,
		DstHwAddress: make([]byte, 6), DstProtAddress: t.AsSlice(),
	}
	return w.WriteLayers(s.mac, bcast, arp)
}

// ARPReply writes owner's is-at answer to asker.
func (w *Writer) ARPReply(owner, asker Endpoint) (int, error) {
	o, a, err := newEnds(owner, asker)
	if err != nil {
		return 0, err
	}
	if o.v6 {
		return 0, fmt.Errorf("pcapgen: ARP needs IPv4 addresses, have %v and %v", owner.IP, asker.IP)
	}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPReply,
		SourceHwAddress: o.mac, SourceProtAddress: o.ip,
		DstHwAddress: a.mac, DstProtAddress: a.ip,
	}
	return w.WriteLayers(o.mac, a.mac, arp)
}

// Unreachable writes an ICMP destination unreachable (code: 1 host, 3
// port) from src to dst, about a UDP datagram dst sent to port on src:
// the error quotes its IPv4 and UDP headers.
func (w *Writer) Unreachable(src, dst Endpoint, code uint8, port uint16) (int, error) {
	s, d, err := newEnds(src, dst)
	if err != nil {
		return 0, err
	}
	if s.v6 {
		return 0, fmt.Errorf("pcapgen: Unreachable writes ICMPv4 only, have %v", src.IP)
	}
	quote := make([]byte, 28)
	quote[0], quote[8], quote[9] = 0x45, 64, byte(layers.IPProtocolUDP)
	copy(quote[12:16], d.ip.To4())
	copy(quote[16:20], s.ip.To4())
	quote[20], quote[21] = byte(d.port>>8), byte(d.port)
	quote[22], quote[23] = byte(port>>8), byte(port)
	if _, err := w.ipLayer(&s, &d, layers.IPProtocolICMPv4, false); err != nil {
		return 0, err
	}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, code)}
	w.ls = append(w.ls, icmp, gopacket.Payload(quote))
	return w.emit()
}

// Ping writes an ICMP (or ICMPv6) echo request from src to dst and dst's
// reply, and returns their frame numbers.
func (w *Writer) Ping(src, dst Endpoint, id, seq uint16, payload []byte) ([]int, error) {
	s, d, err := newEnds(src, dst)
	if err != nil {
		return nil, err
	}
	var frames []int
	for i, p := range [2][2]*end{{&s, &d}, {&d, &s}} {
		var f int
		if s.v6 {
			f, err = w.writeICMPv6(p[0], p[1], i == 1, id, seq, payload)
		} else {
			f, err = w.writeICMPv4(p[0], p[1], i == 1, id, seq, payload)
		}
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// EchoRequest writes an ICMP (or ICMPv6) echo request from src to dst
// alone, with no reply: a ping of an address where no host answers.
func (w *Writer) EchoRequest(src, dst Endpoint, id, seq uint16, payload []byte) (int, error) {
	s, d, err := newEnds(src, dst)
	if err != nil {
		return 0, err
	}
	if s.v6 {
		return w.writeICMPv6(&s, &d, false, id, seq, payload)
	}
	return w.writeICMPv4(&s, &d, false, id, seq, payload)
}

func (w *Writer) writeICMPv4(src, dst *end, reply bool, id, seq uint16, payload []byte) (int, error) {
	if _, err := w.ipLayer(src, dst, layers.IPProtocolICMPv4, false); err != nil {
		return 0, err
	}
	typ := uint8(layers.ICMPv4TypeEchoRequest)
	if reply {
		typ = layers.ICMPv4TypeEchoReply
	}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: seq}
	w.ls = append(w.ls, icmp, gopacket.Payload(payload))
	return w.emit()
}

func (w *Writer) writeICMPv6(src, dst *end, reply bool, id, seq uint16, payload []byte) (int, error) {
	nl, err := w.ipLayer(src, dst, layers.IPProtocolICMPv6, false)
	if err != nil {
		return 0, err
	}
	typ := uint8(layers.ICMPv6TypeEchoRequest)
	if reply {
		typ = layers.ICMPv6TypeEchoReply
	}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	if err := icmp.SetNetworkLayerForChecksum(nl); err != nil {
		return 0, err
	}
	echo := &layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}
	w.ls = append(w.ls, icmp, echo, gopacket.Payload(payload))
	return w.emit()
}
