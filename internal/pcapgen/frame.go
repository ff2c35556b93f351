package pcapgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// Frames are built front to back in Writer.buf: the link-layer header
// (begin), the network header, the transport header and payload; emitIP
// then fills in lengths and checksums. The bytes are those gopacket's
// SerializeLayers wrote with FixLengths and ComputeChecksums, which
// pcapgen used before: Ethernet frames padded to 60 bytes, IPv4 headers of
// 20 bytes with no options, TCP with the MSS option on SYNs, the UDP
// checksum 0 sent as 0xffff.

// EtherTypes.
const (
	etherTypeIPv4  = 0x0800
	etherTypeARP   = 0x0806
	etherTypeDot1Q = 0x8100
	etherTypeQinQ  = 0x88a8 // 802.1ad service tag
	etherTypeIPv6  = 0x86dd
)

// IP protocol numbers.
const (
	protoICMPv4 = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// BSD loopback address families (LinkNull).
const (
	nullFamilyIPv4        = 2
	nullFamilyIPv6BSD     = 24 // NetBSD, OpenBSD
	nullFamilyIPv6FreeBSD = 28
	nullFamilyIPv6Darwin  = 30
)

// Header sizes and fields.
const (
	ethMinFrame            = 60 // without the FCS
	ipv4HeaderLen          = 20
	ipv6HeaderLen          = 40
	ipv4DontFragment       = 0x4000
	ipv4MoreFragments      = 0x2000
	ipv4FlagsAndOffsetMask = 0x3fff // MF and the fragment offset
	maxIPLen               = 0xffff // of an IPv4 packet, an IPv6 payload
)

// Linux cooked capture v1 header (LinkSLL).
const (
	sllPacketTypeHost      = 0
	sllPacketTypeBroadcast = 1
	arphrdEther            = 1
	sllAddrLen             = 8
)

// TCP flag bits, as in the header's 14th byte.
const (
	flagFIN = 1 << iota
	flagSYN
	flagRST
	flagPSH
	flagACK
)

// mssOption is the option of every SYN: maximum segment size 1460.
var mssOption = [...]byte{2, 4, 0x05, 0xb4}

// ARP operations.
const (
	arpRequest = 1
	arpReply   = 2
)

// ICMP types.
const (
	icmpv4EchoReply       = 0
	icmpv4DestUnreachable = 3
	icmpv4EchoRequest     = 8
	icmpv6EchoRequest     = 128
	icmpv6EchoReply       = 129
)

var be = binary.BigEndian

// begin starts w.buf with the link-layer header of a packet of EtherType
// et from src to dst, and notes where the network layer starts.
func (w *Writer) begin(src, dst net.HardwareAddr, et uint16) error {
	b := w.buf[:0]
	switch w.opts.Link {
	case LinkEthernet, LinkVLAN, LinkQinQ:
		if len(dst) != 6 || len(src) != 6 {
			return fmt.Errorf("pcapgen: Ethernet addresses %v and %v are not 6 bytes long", src, dst)
		}
		b = append(b, dst...)
		b = append(b, src...)
		switch w.opts.Link {
		case LinkVLAN:
			b = be.AppendUint16(b, etherTypeDot1Q)
			b = be.AppendUint16(b, w.opts.VLAN)
		case LinkQinQ:
			b = be.AppendUint16(b, etherTypeQinQ)
			b = be.AppendUint16(b, w.opts.OuterVLAN)
			b = be.AppendUint16(b, etherTypeDot1Q)
			b = be.AppendUint16(b, w.opts.VLAN)
		}
		b = be.AppendUint16(b, et)
	case LinkNull:
		var family uint32
		switch et {
		case etherTypeIPv4:
			family = nullFamilyIPv4
		case etherTypeIPv6:
			family = w.opts.NullFamilyIPv6
		default:
			return cannotCarry(et, w.opts.Link)
		}
		if w.opts.NullBigEndian {
			b = be.AppendUint32(b, family)
		} else {
			b = binary.LittleEndian.AppendUint32(b, family)
		}
	case LinkRaw:
		if et == etherTypeARP {
			return cannotCarry(et, w.opts.Link)
		}
	case LinkSLL:
		packetType := uint16(sllPacketTypeHost)
		if isBroadcast(dst) {
			packetType = sllPacketTypeBroadcast
		}
		b = be.AppendUint16(b, packetType)
		b = be.AppendUint16(b, arphrdEther)
		b = be.AppendUint16(b, uint16(len(src)))
		var addr [sllAddrLen]byte
		copy(addr[:], src)
		b = append(b, addr[:]...)
		b = be.AppendUint16(b, et)
	}
	w.buf = b
	w.l3 = len(b)
	return nil
}

func cannotCarry(et uint16, l Link) error {
	name := map[uint16]string{etherTypeIPv4: "IPv4", etherTypeIPv6: "IPv6", etherTypeARP: "ARP"}[et]
	return fmt.Errorf("%w: %s on %v", ErrLinkCannotCarry, name, l)
}

func isBroadcast(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0]&mac[1]&mac[2]&mac[3]&mac[4]&mac[5] == 0xff
}

// ipHeader starts w.buf with the link-layer header and an IP header from
// src to dst: IPv6, or IPv4 with the Writer's next id.
func (w *Writer) ipHeader(src, dst *end, proto uint8, df bool) error {
	if src.v6 {
		if err := w.begin(src.mac, dst.mac, etherTypeIPv6); err != nil {
			return err
		}
		s, d := src.ip.As16(), dst.ip.As16()
		w.buf = append(w.buf, 6<<4, 0, 0, 0) // version, traffic class, flow label
		w.buf = be.AppendUint16(w.buf, 0)    // payload length, set by emitIP
		w.buf = append(w.buf, proto, src.ttl)
		w.buf = append(w.buf, s[:]...)
		w.buf = append(w.buf, d[:]...)
		return nil
	}
	w.ipID++
	var flags uint16
	if df {
		flags = ipv4DontFragment
	}
	return w.ipv4Header(src, dst, w.ipID, flags, src.ttl, proto)
}

// ipv4Header is ipHeader for IPv4 with every field given; flagsFrag holds
// the flags and the fragment offset.
func (w *Writer) ipv4Header(src, dst *end, id, flagsFrag uint16, ttl, proto uint8) error {
	if err := w.begin(src.mac, dst.mac, etherTypeIPv4); err != nil {
		return err
	}
	s, d := src.ip.As4(), dst.ip.As4()
	w.buf = append(w.buf, 4<<4|ipv4HeaderLen/4, 0) // version, IHL, TOS
	w.buf = be.AppendUint16(w.buf, 0)              // total length, set by emitIP
	w.buf = be.AppendUint16(w.buf, id)
	w.buf = be.AppendUint16(w.buf, flagsFrag)
	w.buf = append(w.buf, ttl, proto, 0, 0) // checksum set by emitIP
	w.buf = append(w.buf, s[:]...)
	w.buf = append(w.buf, d[:]...)
	return nil
}

// appendTCP appends a TCP header with the MSS option on a SYN; the ack
// number is written only with ACK.
func appendTCP(b []byte, src, dst uint16, seq, ack uint32, flags uint8, win uint16) []byte {
	words := uint8(5)
	if flags&flagSYN != 0 {
		words += uint8(len(mssOption) / 4)
	}
	if flags&flagACK == 0 {
		ack = 0
	}
	b = be.AppendUint16(b, src)
	b = be.AppendUint16(b, dst)
	b = be.AppendUint32(b, seq)
	b = be.AppendUint32(b, ack)
	b = append(b, words<<4, flags)
	b = be.AppendUint16(b, win)
	b = append(b, 0, 0, 0, 0) // checksum (set by emitIP), urgent pointer
	if flags&flagSYN != 0 {
		b = append(b, mssOption[:]...)
	}
	return b
}

// appendUDP appends a UDP header; emitIP (or setChecksum) sets its length
// and checksum.
func appendUDP(b []byte, src, dst uint16) []byte {
	b = be.AppendUint16(b, src)
	b = be.AppendUint16(b, dst)
	return append(b, 0, 0, 0, 0)
}

// appendICMP appends an ICMP or ICMPv6 header: type, code, checksum (set
// by emitIP), and the echo identifier and sequence number (0 for errors).
func appendICMP(b []byte, typ, code uint8, id, seq uint16) []byte {
	b = append(b, typ, code, 0, 0)
	b = be.AppendUint16(b, id)
	return be.AppendUint16(b, seq)
}

// emitIP completes the IP packet that starts at w.buf[w.l3:] and ends the
// buffer (its lengths and checksums) and writes the frame.
func (w *Writer) emitIP() (int, error) {
	ip := w.buf[w.l3:]
	var src, dst, seg []byte
	var proto uint8
	if ip[0]>>4 == 4 {
		if len(ip) > maxIPLen {
			return 0, fmt.Errorf("pcapgen: %d-byte IPv4 packet", len(ip))
		}
		be.PutUint16(ip[2:], uint16(len(ip)))
		be.PutUint16(ip[10:], checksum(ip[:ipv4HeaderLen], 0))
		src, dst, seg = ip[12:16], ip[16:20], ip[ipv4HeaderLen:]
		// A fragment's transport checksum is the whole datagram's.
		if be.Uint16(ip[6:])&ipv4FlagsAndOffsetMask == 0 {
			proto = ip[9]
		}
	} else {
		if len(ip)-ipv6HeaderLen > maxIPLen {
			return 0, fmt.Errorf("pcapgen: %d-byte IPv6 payload", len(ip)-ipv6HeaderLen)
		}
		be.PutUint16(ip[4:], uint16(len(ip)-ipv6HeaderLen))
		src, dst, seg, proto = ip[8:24], ip[24:40], ip[ipv6HeaderLen:], ip[6]
	}
	setChecksum(seg, proto, src, dst)
	return w.emit()
}

// setChecksum sets the checksum of the transport segment seg of protocol
// proto sent from src to dst, and the length of a UDP header.
func setChecksum(seg []byte, proto uint8, src, dst []byte) {
	var at int
	switch proto {
	case protoTCP:
		at = 16
	case protoUDP:
		be.PutUint16(seg[4:], uint16(len(seg)))
		at = 6
	case protoICMPv4:
		be.PutUint16(seg[2:], checksum(seg, 0))
		return
	case protoICMPv6:
		at = 2
	default:
		return
	}
	be.PutUint16(seg[at:], 0)
	n := uint32(len(seg))
	c := checksum(seg, sum(dst, sum(src, uint32(proto)+n&0xffff+n>>16)))
	if c == 0 && proto == protoUDP {
		c = 0xffff // RFC 768: 0 means no checksum
	}
	be.PutUint16(seg[at:], c)
}

// sum adds b to the RFC 1071 sum s, as big-endian 16-bit words with an odd
// last byte padded with a zero. Packets are short enough that s does not
// overflow.
func sum(b []byte, s uint32) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if n < len(b) {
		s += uint32(b[n]) << 8
	}
	return s
}

// checksum is the Internet checksum of b with the sum s of a pseudo-header.
func checksum(b []byte, s uint32) uint16 {
	s = sum(b, s)
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// emit pads an Ethernet frame to the minimum length and writes w.buf at
// the clock's time.
func (w *Writer) emit() (int, error) {
	switch w.opts.Link {
	case LinkEthernet, LinkVLAN, LinkQinQ:
		if n := len(w.buf); n < ethMinFrame {
			w.buf = append(w.buf, make([]byte, ethMinFrame-n)...)
		}
	}
	if err := w.WritePacket(w.now, w.buf); err != nil {
		return 0, err
	}
	return w.packets, nil
}

// ARP is an ARP packet as WriteARP writes it. The lengths of the addresses
// give its hardware and protocol address sizes.
type ARP struct {
	HardwareType uint16 // 1 for Ethernet
	ProtocolType uint16 // an EtherType: 0x0800 for IPv4
	Operation    uint16 // 1 request, 2 reply

	SenderMAC, TargetMAC net.HardwareAddr
	SenderIP, TargetIP   []byte // 4 bytes for IPv4
}

// WriteARP encapsulates a in the Writer's link type, from Ethernet address
// src to dst (src alone counts on LinkSLL), stamps it with the clock and
// writes it. It returns the frame number, or ErrLinkCannotCarry on LinkNull
// and LinkRaw.
func (w *Writer) WriteARP(src, dst net.HardwareAddr, a ARP) (int, error) {
	if len(a.SenderMAC) != len(a.TargetMAC) || len(a.SenderIP) != len(a.TargetIP) {
		return 0, errors.New("pcapgen: ARP sender and target addresses of different lengths")
	}
	if err := w.begin(src, dst, etherTypeARP); err != nil {
		return 0, err
	}
	b := be.AppendUint16(w.buf, a.HardwareType)
	b = be.AppendUint16(b, a.ProtocolType)
	b = append(b, byte(len(a.SenderMAC)), byte(len(a.SenderIP)))
	b = be.AppendUint16(b, a.Operation)
	for _, addr := range [...][]byte{a.SenderMAC, a.SenderIP, a.TargetMAC, a.TargetIP} {
		b = append(b, addr...)
	}
	w.buf = b
	return w.emit()
}
