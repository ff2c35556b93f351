package pcapgen

import (
	"fmt"
	"net"
	"net/netip"
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

// end is an Endpoint checked and completed once.
type end struct {
	mac  net.HardwareAddr
	ip   netip.Addr // not IPv4-mapped
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
	return end{mac: mac, ip: a, v6: a.Is6(), port: e.Port, ttl: ttl}, nil
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

func (w *Writer) writeTCP(src, dst *end, seq, ack uint32, flags uint8, win uint16, payload []byte) (int, error) {
	if err := w.ipHeader(src, dst, protoTCP, true); err != nil {
		return 0, err
	}
	w.buf = appendTCP(w.buf, src.port, dst.port, seq, ack, flags, win)
	w.buf = append(w.buf, payload...)
	return w.emitIP()
}

func (w *Writer) writeUDP(src, dst *end, payload []byte) (int, error) {
	if err := w.ipHeader(src, dst, protoUDP, false); err != nil {
		return 0, err
	}
	w.buf = appendUDP(w.buf, src.port, dst.port)
	w.buf = append(w.buf, payload...)
	return w.emitIP()
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
	return w.WriteARP(s.mac, bcast, ARP{
		HardwareType: arphrdEther, ProtocolType: etherTypeIPv4, Operation: arpRequest,
		SenderMAC: s.mac, SenderIP: s.ip.AsSlice(),
		TargetMAC: make(net.HardwareAddr, 6), TargetIP: t.AsSlice(),
	})
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
	return w.WriteARP(o.mac, a.mac, ARP{
		HardwareType: arphrdEther, ProtocolType: etherTypeIPv4, Operation: arpReply,
		SenderMAC: o.mac, SenderIP: o.ip.AsSlice(),
		TargetMAC: a.mac, TargetIP: a.ip.AsSlice(),
	})
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
	if err := w.ipHeader(&s, &d, protoICMPv4, false); err != nil {
		return 0, err
	}
	w.buf = appendICMP(w.buf, icmpv4DestUnreachable, code, 0, 0)
	// The quote: an IPv4 header with no length, id or checksum, and the
	// UDP ports.
	sa, da := s.ip.As4(), d.ip.As4()
	w.buf = append(w.buf, 4<<4|ipv4HeaderLen/4, 0, 0, 0, 0, 0, 0, 0, 64, protoUDP, 0, 0)
	w.buf = append(w.buf, da[:]...)
	w.buf = append(w.buf, sa[:]...)
	w.buf = be.AppendUint16(w.buf, d.port)
	w.buf = be.AppendUint16(w.buf, port)
	w.buf = append(w.buf, 0, 0, 0, 0) // UDP length and checksum
	return w.emitIP()
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
		f, err := w.writeEcho(p[0], p[1], i == 1, id, seq, payload)
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
	return w.writeEcho(&s, &d, false, id, seq, payload)
}

// writeEcho writes an ICMP or ICMPv6 echo request or reply.
func (w *Writer) writeEcho(src, dst *end, reply bool, id, seq uint16, payload []byte) (int, error) {
	proto, typ := uint8(protoICMPv4), uint8(icmpv4EchoRequest)
	switch {
	case src.v6 && reply:
		proto, typ = protoICMPv6, icmpv6EchoReply
	case src.v6:
		proto, typ = protoICMPv6, icmpv6EchoRequest
	case reply:
		typ = icmpv4EchoReply
	}
	if err := w.ipHeader(src, dst, proto, false); err != nil {
		return 0, err
	}
	w.buf = appendICMP(w.buf, typ, 0, id, seq)
	w.buf = append(w.buf, payload...)
	return w.emitIP()
}
