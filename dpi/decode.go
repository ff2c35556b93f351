package dpi

import (
	"errors"
)

// dpi decodes the link, network and transport headers itself. A frame is
// followed header by header, as far as the headers dpi knows (layer)
// lead: the link layer of its capture, 802.1Q/802.1ad tags, IPv4 and
// IPv6 (tunnelled in each other too), then TCP, UDP, ICMP or ARP. It
// stops without an error at a header it does not know or when nothing
// is left, and with one at a header that is too short or inconsistent.
// dpi used gopacket's DecodingLayerParser with the same headers before;
// TestDecodeLikeGopacket and FuzzDecodeLikeGopacket hold
// this decoder to what that one found, error and truncation included.
// fastPacket handles the common frame before this runs.

// layer is a header dpi decodes.
type layer uint8

const (
	lNone layer = iota // a header dpi does not decode: decoding stops
	lEthernet
	lDot1Q
	lLoopback
	lSLL
	lSLL2
	lIPv4
	lIPv6
	lTCP
	lUDP
	lARP
	lICMPv4
	lICMPv6
)

// The headers of the current frame, as decoded.
type (
	ethHeader struct {
		dst, src [6]byte
	}
	ip4Header struct {
		ihl       uint8
		length    uint16 // as the header says; the frame's length when it says 0 (TCP segmentation offload)
		flagsFrag uint16
		ttl       uint8
		src, dst  [4]byte
	}
	ip6Header struct {
		length   uint16
		hopLimit uint8
		src, dst [16]byte
		hbh      int // the length of a Hop-by-Hop options header, 0 for none
	}
	// tcpHeader has the fields tcpPacket reads.
	tcpHeader struct {
		SrcPort, DstPort uint16
		Seq, Ack         uint32
		DataOffset       uint8
		Flags            uint8 // the header's flags octet: FIN is bit 0, CWR bit 7
		Payload          []byte
	}
	udpHeader struct {
		SrcPort, DstPort uint16
		Payload          []byte
	}
	arpHeader struct {
		addrType, protocol uint16
		op                 uint16
		senderHW, senderIP []byte
		targetHW, targetIP []byte
	}
	icmpHeader struct {
		typ, code uint8
		payload   []byte // after the type, code and checksum (ICMPv6), or after the first 8 bytes (ICMPv4)
	}
)

var errDecode = errors.New("undecodable header")

// decodeFrame decodes data from its first header on: e.decoded lists
// the headers decoded, in order, and e.truncated says whether one of them
// found the frame cut short. It returns an error when a header could not
// be decoded (the headers before it are listed).
func (e *Engine) decodeFrame(first layer, data []byte) error {
	e.decoded = e.decoded[:0]
	e.truncated = false
	e.cookedEth = false
	e.vlan.n = 0
	for typ := first; ; {
		next, payload, err := e.decodeHeader(typ, data)
		if err != nil {
			return err
		}
		e.decoded = append(e.decoded, typ)
		if len(payload) == 0 || next == lNone {
			return nil
		}
		typ, data = next, payload
	}
}

// cookedMAC takes the MACs a Linux cooked header (SLL, SLL2: tcpdump -i
// any) gives of an Ethernet frame: the sender's address, and of the
// destination only whether the frame was broadcast (packet type 1). Of
// any other interface the MACs stay unknown.
func (e *Engine) cookedMAC(hatype, halen, pktType uint16, addr []byte) {
	const arphrdEther, packetBroadcast = 1, 1
	if hatype != arphrdEther || halen != 6 {
		return
	}
	e.eth.src, e.eth.dst = [6]byte(addr), [6]byte{}
	if pktType == packetBroadcast {
		e.eth.dst = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	e.cookedEth = true
}

// decodeHeader decodes one header of type typ at the start of data and
// returns the type of the next and its bytes.
func (e *Engine) decodeHeader(typ layer, data []byte) (layer, []byte, error) {
	switch typ {
	case lEthernet:
		if len(data) < 14 {
			return lNone, nil, errDecode
		}
		e.eth.dst, e.eth.src = [6]byte(data[0:6]), [6]byte(data[6:12])
		return e.etherPayload(be16(data[12:]), data[14:])
	case lDot1Q:
		if len(data) < 4 {
			e.truncated = true
			return lNone, nil, errDecode
		}
		if e.vlan.n < len(e.vlan.ids) {
			e.vlan.ids[e.vlan.n] = be16(data) & 0x0fff
		}
		e.vlan.n++
		return e.etherPayload(be16(data[2:]), data[4:])
	case lLoopback:
		if len(data) < 4 {
			return lNone, nil, errDecode
		}
		// The address family is in the writer's byte order, and less
		// than 256.
		family := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		if data[0] == 0 && data[1] == 0 {
			family = be32(data)
		}
		if family > 0xff {
			return lNone, nil, errDecode
		}
		switch family {
		case 2:
			return lIPv4, data[4:], nil
		case 10, 24, 28, 30: // AF_INET6 of Linux, the BSDs, FreeBSD and Darwin
			return lIPv6, data[4:], nil
		}
		return lNone, data[4:], nil
	case lSLL:
		if len(data) < 16 || be16(data[4:]) > 8 {
			return lNone, nil, errDecode
		}
		et, addrType := be16(data[14:]), be16(data[2:])
		e.cookedMAC(addrType, be16(data[4:]), be16(data[0:]), data[6:12])
		if et == 0x0004 && addrType != 803 { // 802.2 LLC follows (not for radiotap)
			return lNone, data[16:], nil
		}
		return etherNext(et), data[16:], nil
	case lSLL2:
		if len(data) < 20 || data[11] > 8 {
			return lNone, nil, errDecode
		}
		e.cookedMAC(be16(data[8:]), uint16(data[11]), uint16(data[10]), data[12:18])
		switch hw, pt := be16(data[8:]), be16(data[0:]); {
		case hw == 778: // ARPHRD_IPGRE: Ethernet follows
			return lEthernet, data[20:], nil
		case hw == 770 || hw == 803: // Frame Relay, radiotap
			return lNone, data[20:], nil
		case pt == 0x0001 || pt == 0x0003 || pt == 0x0004 || pt == 0x000c: // 802.3, unknown, LLC, CAN
			return lNone, data[20:], nil
		default:
			return etherNext(pt), data[20:], nil
		}
	case lIPv4:
		return e.decodeIPv4(data)
	case lIPv6:
		return e.decodeIPv6(data)
	case lTCP:
		t := &e.tcp
		if len(data) < 20 {
			e.truncated = true
			return lNone, nil, errDecode
		}
		t.SrcPort, t.DstPort = be16(data[0:]), be16(data[2:])
		t.Seq, t.Ack = be32(data[4:]), be32(data[8:])
		t.DataOffset = data[12] >> 4
		t.Flags = data[13]
		if t.DataOffset < 5 {
			return lNone, nil, errDecode
		}
		if start := int(t.DataOffset) * 4; start <= len(data) {
			t.Payload = data[start:]
			return lNone, t.Payload, nil
		}
		e.truncated = true
		t.Payload = nil
		return lNone, nil, errDecode
	case lUDP:
		u := &e.udp
		if len(data) < 8 {
			e.truncated = true
			return lNone, nil, errDecode
		}
		u.SrcPort, u.DstPort = be16(data[0:]), be16(data[2:])
		switch n := int(be16(data[4:])); {
		case n == 0: // a jumbogram's: the rest
			u.Payload = data[8:]
		case n < 8:
			return lNone, nil, errDecode
		default:
			if n > len(data) {
				e.truncated = true
				n = len(data)
			}
			u.Payload = data[8:n]
		}
		return lNone, u.Payload, nil
	case lARP:
		a := &e.arpHdr
		if len(data) < 8 {
			e.truncated = true
			return lNone, nil, errDecode
		}
		a.addrType, a.protocol, a.op = be16(data[0:]), be16(data[2:]), be16(data[6:])
		hw, pr := int(data[4]), int(data[5])
		end := 8 + 2*hw + 2*pr
		if len(data) < end {
			e.truncated = true
			return lNone, nil, errDecode
		}
		a.senderHW, a.senderIP = data[8:8+hw], data[8+hw:8+hw+pr]
		a.targetHW, a.targetIP = data[8+hw+pr:8+2*hw+pr], data[8+2*hw+pr:end]
		return lNone, data[end:], nil
	case lICMPv4:
		if len(data) < 8 {
			e.truncated = true
			return lNone, nil, errDecode
		}
		e.icmp = icmpHeader{typ: data[0], code: data[1], payload: data[8:]}
		return lNone, data[8:], nil
	case lICMPv6:
		if len(data) < 4 {
			e.truncated = true
			return lNone, nil, errDecode
		}
		e.icmp = icmpHeader{typ: data[0], code: data[1], payload: data[4:]}
		return lNone, data[4:], nil
	}
	return lNone, nil, nil
}

// etherPayload is what follows an EtherType or, below 0x600, an 802.3
// length (then an LLC header follows, which dpi does not decode).
func (e *Engine) etherPayload(et uint16, payload []byte) (layer, []byte, error) {
	if et < 0x600 {
		if len(payload) < int(et) {
			e.truncated = true
		} else {
			payload = payload[:et]
		}
		return lNone, payload, nil
	}
	return etherNext(et), payload, nil
}

// etherNext is the header an EtherType announces.
func etherNext(et uint16) layer {
	switch et {
	case 0x0800, 0xffff: // IPv4 (0xffff: as gopacket took it)
		return lIPv4
	case 0x86dd:
		return lIPv6
	case 0x0806:
		return lARP
	case 0x8100, 0x88a8: // 802.1Q, 802.1ad
		return lDot1Q
	case 0x6558: // transparent Ethernet bridging
		return lEthernet
	}
	return lNone
}

// ipNext is the header an IPv4 protocol or IPv6 next header announces.
func ipNext(p uint8) layer {
	switch p {
	case 1:
		return lICMPv4
	case 4, 94: // IP in IP
		return lIPv4
	case 6:
		return lTCP
	case 17:
		return lUDP
	case 41:
		return lIPv6
	case 58:
		return lICMPv6
	}
	return lNone
}

func (e *Engine) decodeIPv4(data []byte) (layer, []byte, error) {
	ip := &e.ip4
	if len(data) < 20 {
		e.truncated = true
		return lNone, nil, errDecode
	}
	ip.ihl = data[0] & 0x0f
	n := int(be16(data[2:]))
	ip.length = uint16(n)
	if n == 0 { // TCP segmentation offload: the frame's length
		n = len(data)
		ip.length = uint16(min(n, 0xffff))
	}
	hl := int(ip.ihl) * 4
	if n < 20 || ip.ihl < 5 || hl > n {
		return lNone, nil, errDecode
	}
	if len(data) > n {
		data = data[:n]
	} else if len(data) < n {
		e.truncated = true
		if hl > len(data) {
			return lNone, nil, errDecode
		}
	}
	// Options: checked, not kept.
	for opts := data[20:hl]; len(opts) > 0; {
		switch opts[0] {
		case 0: // end of options
			opts = nil
		case 1: // no operation
			opts = opts[1:]
		default:
			if len(opts) < 2 || len(opts) < int(opts[1]) {
				e.truncated = true
				return lNone, nil, errDecode
			}
			if opts[1] < 2 {
				return lNone, nil, errDecode
			}
			opts = opts[opts[1]:]
		}
	}
	ip.flagsFrag = be16(data[6:])
	ip.ttl = data[8]
	ip.src, ip.dst = [4]byte(data[12:16]), [4]byte(data[16:20])
	if ip.flagsFrag&0x3fff != 0 {
		return lNone, data[hl:], nil // a fragment
	}
	return ipNext(data[9]), data[hl:], nil
}

func (e *Engine) decodeIPv6(data []byte) (layer, []byte, error) {
	ip := &e.ip6
	if len(data) < 40 {
		e.truncated = true
		return lNone, nil, errDecode
	}
	ip.length = be16(data[4:])
	next := data[6]
	ip.hopLimit = data[7]
	ip.src, ip.dst = [16]byte(data[8:24]), [16]byte(data[24:40])
	ip.hbh = 0
	payload := data[40:]
	if ip.length != 0 {
		end := int(ip.length)
		if end > len(payload) {
			e.truncated = true
			end = len(payload)
		}
		payload = payload[:end]
	}
	if next == 0 {
		// A Hop-by-Hop options header is decoded as part of IPv6: it may
		// carry a jumbogram's length.
		if len(payload) < 2 {
			e.truncated = true
			return lNone, nil, errDecode
		}
		hl := int(payload[1])*8 + 8
		if len(payload) < hl {
			return lNone, nil, errDecode
		}
		jumbo, hasJumbo := uint32(0), false
		for off := 2; off < hl; {
			if payload[off] == 0 { // Pad1
				off++
				continue
			}
			if hl-off < 2 || hl-off < int(payload[off+1])+2 {
				return lNone, nil, errDecode
			}
			if typ, n := payload[off], int(payload[off+1]); typ == 0xc2 && !hasJumbo {
				if n != 4 {
					return lNone, nil, errDecode
				}
				jumbo, hasJumbo = be32(payload[off+2:]), true
				if jumbo <= 0xffff {
					return lNone, nil, errDecode
				}
			}
			off += int(payload[off+1]) + 2
		}
		ip.hbh = hl
		next = payload[0]
		switch {
		case hasJumbo && ip.length == 0:
			end := min(int64(jumbo), int64(len(payload)))
			if int64(jumbo) > int64(len(payload)) {
				e.truncated = true
			}
			if end < int64(hl) {
				return lNone, nil, errDecode
			}
			return ipNext(next), payload[hl:end], nil
		case hasJumbo || ip.length == 0:
			return lNone, nil, errDecode
		}
		payload = payload[hl:]
	}
	if ip.length == 0 {
		return lNone, nil, errDecode
	}
	return ipNext(next), payload, nil
}

// The TCP flags of a tcpHeader. The header keeps the octet as it came:
// eight booleans cost the fast path a test and a store each, for every
// segment, and tcpPacket reads four of them.
func (t *tcpHeader) FIN() bool { return t.Flags&0x01 != 0 }
func (t *tcpHeader) SYN() bool { return t.Flags&0x02 != 0 }
func (t *tcpHeader) RST() bool { return t.Flags&0x04 != 0 }
func (t *tcpHeader) PSH() bool { return t.Flags&0x08 != 0 }
func (t *tcpHeader) ACK() bool { return t.Flags&0x10 != 0 }
func (t *tcpHeader) URG() bool { return t.Flags&0x20 != 0 }
func (t *tcpHeader) ECE() bool { return t.Flags&0x40 != 0 }
func (t *tcpHeader) CWR() bool { return t.Flags&0x80 != 0 }
