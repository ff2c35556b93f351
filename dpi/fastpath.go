package dpi

import ()

// fastPacket decodes the frames a plant network is made of in one
// pass: an Ethernet frame with at most two VLAN tags, carrying an IPv4
// packet with no options that is not a fragment, or an IPv6 packet with
// no extension header, carrying a TCP segment or a UDP datagram, none of
// it cut short by the snap length or by a length field. It then hands the
// packet on exactly as Packet does after decodeFrame, and reports true.
// For any other frame it changes nothing and reports false, and Packet
// decodes it header by header (decodeFrame). The two agree on every frame
// the fast path takes: FuzzFastPath and TestFastPathCorpus compare them.
//
// gopacket's DecodingLayerParser, which dpi used before, cost about 650
// instructions a packet (docs/performance.md); this costs about 230.
func (e *Engine) fastPacket(data []byte) bool {
	fr := &e.fr
	if !fr.decode(data) {
		return false
	}
	e.fast = true
	e.vlan.ids, e.vlan.n = fr.vlans, fr.tags
	if fr.tags > 0 {
		e.c.VLANTagged++
	}
	if fr.v6 {
		e.c.IPv6++
	} else {
		e.c.IPv4++
	}
	e.ttl = fr.ttl
	if fr.k.proto == ipUDP {
		e.c.UDP++
		e.udpPacket(&fr.k, fr.mac, fr.payload)
		return true
	}
	e.c.TCP++
	t := &e.tcp
	t.SrcPort, t.DstPort = fr.k.pa, fr.k.pb
	t.Seq, t.Ack, t.DataOffset = fr.seq, fr.ack, fr.dataOffset
	t.Flags = fr.flags
	t.Payload = fr.payload
	e.tcpPacket(&fr.k, fr.mac, t)
	return true
}

// fastFrame is what fastPacket reads from a frame.
type fastFrame struct {
	k          flowKey // proto, both addresses and ports, the first VLAN id
	mac        [2][6]byte
	vlans      [2]uint16
	tags       int
	v6         bool
	ttl        uint8
	seq, ack   uint32 // TCP
	dataOffset uint8
	flags      uint8
	payload    []byte
}

// decode fills fr from data, or reports false for a frame fastPacket
// leaves to decodeFrame (fr is then garbage).
func (fr *fastFrame) decode(data []byte) bool {
	if len(data) < 14 {
		return false
	}
	fr.k, fr.tags = flowKey{}, 0
	off := 12 // the EtherType's offset
	et := be16(data[off:])
	for et == 0x8100 || et == 0x88a8 { // 802.1Q, 802.1ad
		if len(data) < off+6 {
			return false
		}
		if fr.tags < len(fr.vlans) {
			fr.vlans[fr.tags] = be16(data[off+2:]) & 0x0fff
		}
		fr.tags++
		et = be16(data[off+4:])
		off += 4
	}
	ip := data[off+2:]
	var l4 []byte
	switch et {
	case 0x0800: // IPv4
		if len(ip) < 20 || ip[0]&0x0f != 5 {
			return false // options (or a bad header length): decodeFrame
		}
		n := int(be16(ip[2:]))
		if n < 20 || n > len(ip) || be16(ip[6:])&0x3fff != 0 {
			return false // a TSO length of 0, cut short, or a fragment
		}
		fr.k.proto, fr.ttl, fr.v6 = ip[9], ip[8], false
		fr.k.a, fr.k.b = ip16From4(ip[12:16]), ip16From4(ip[16:20]) // IPv4-mapped
		l4 = ip[20:n]
	case 0x86dd: // IPv6
		if len(ip) < 40 {
			return false
		}
		n := int(be16(ip[4:]))
		if n == 0 || 40+n > len(ip) {
			return false // a jumbogram, or cut short
		}
		fr.k.proto, fr.ttl, fr.v6 = ip[6], ip[7], true
		fr.k.a, fr.k.b = ip16From16(ip[8:24]), ip16From16(ip[24:40])
		l4 = ip[40 : 40+n]
	default:
		return false
	}
	switch fr.k.proto {
	case ipTCP:
		if len(l4) < 20 {
			return false
		}
		hdr := int(l4[12]>>4) * 4
		if hdr < 20 || hdr > len(l4) {
			return false
		}
		fr.seq, fr.ack = be32(l4[4:]), be32(l4[8:])
		fr.dataOffset, fr.flags = l4[12]>>4, l4[13]
		fr.payload = l4[hdr:]
	case ipUDP:
		if len(l4) < 8 {
			return false
		}
		switch n := int(be16(l4[4:])); {
		case n == 0: // a jumbogram's: the rest
			fr.payload = l4[8:]
		case n < 8 || n > len(l4):
			return false
		default:
			fr.payload = l4[8:n]
		}
	default:
		return false
	}
	if fr.tags > 0 {
		fr.k.vlan = fr.vlans[0]
	}
	fr.k.pa, fr.k.pb = be16(l4[0:]), be16(l4[2:])
	fr.mac = [2][6]byte{[6]byte(data[6:12]), [6]byte(data[0:6])}
	return true
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
