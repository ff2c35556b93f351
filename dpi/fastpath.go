package dpi

import "encoding/binary"

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
	if fr.k.proto() == ipUDP {
		e.c.UDP++
		e.udpPacket(&fr.k, (*macs)(data), fr.payload)
		return true
	}
	e.c.TCP++
	e.tcpPacket(&fr.k, (*macs)(data), &fr.tcp)
	return true
}

// fastFrame is what fastPacket reads from a frame.
type fastFrame struct {
	k       flowKey // proto, both addresses and ports, the first VLAN id
	vlans   [2]uint16
	tags    int
	v6      bool
	ttl     uint8
	tcp     tcpHeader // a TCP segment's header and payload
	payload []byte    // a UDP datagram's payload
}

// decode fills fr from data, or reports false for a frame fastPacket
// leaves to decodeFrame (fr is then garbage).
func (fr *fastFrame) decode(data []byte) bool {
	if len(data) >= tcp4Len {
		if d := (*[tcp4Len]byte)(data); binary.BigEndian.Uint16(d[12:]) == 0x0800 && d[14] == 0x45 && d[23] == ipTCP {
			return fr.tcp4(data, d)
		}
	}
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
		fr.ttl, fr.v6 = ip[8], false
		fr.k.setProto(ip[9])
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
		fr.ttl, fr.v6 = ip[7], true
		fr.k.setProto(ip[6])
		fr.k.a, fr.k.b = ip16From16(ip[8:24]), ip16From16(ip[24:40])
		l4 = ip[40 : 40+n]
	default:
		return false
	}
	switch fr.k.proto() {
	case ipTCP:
		if len(l4) < 20 {
			return false
		}
		hdr := int(l4[12]>>4) * 4
		if hdr < 20 || hdr > len(l4) {
			return false
		}
		t := &fr.tcp
		t.SrcPort, t.DstPort = be16(l4[0:]), be16(l4[2:])
		t.Seq, t.Ack = be32(l4[4:]), be32(l4[8:])
		t.DataOffset, t.Flags = l4[12]>>4, l4[13]
		t.Payload = l4[hdr:]
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
		fr.k.setVLAN(fr.vlans[0])
	}
	fr.k.setPorts(be16(l4[0:]), be16(l4[2:]))
	return true
}

// tcp4Len is the shortest frame tcp4 takes: Ethernet, IPv4 with no
// options and TCP, headers only.
const tcp4Len = 14 + 20 + 20

// tcp4 is decode for the commonest frame of a plant network, and the
// only kind most of its packets are: untagged Ethernet (d[12:14] 0x0800)
// carrying IPv4 with no options (d[14] 0x45) carrying TCP. Every field
// sits at a fixed offset of d, the frame's first tcp4Len octets, so they
// are read with no bounds check a field. It takes and refuses exactly
// the frames decode's general path does, and reads them alike: the tests
// check it on each frame by adding a VLAN tag, which sends the frame down
// the general path (tcp4AgreesTagged).
func (fr *fastFrame) tcp4(data []byte, d *[tcp4Len]byte) bool {
	n := int(binary.BigEndian.Uint16(d[16:])) // the IP total length
	hdr := int(d[46]>>4) * 4                  // the TCP header's
	if n < 40 || 14+n > len(data) || binary.BigEndian.Uint16(d[20:])&0x3fff != 0 || hdr < 20 || 34+hdr > 14+n {
		return false // cut short, a fragment, a TSO length of 0, a bad TCP header
	}
	fr.k = flowKey{
		a: ip16From4(d[26:30]), b: ip16From4(d[30:34]), // IPv4-mapped
		rest: uint64(binary.BigEndian.Uint32(d[34:]))<<32 | ipTCP, // the two ports as one word (flowKey.rest), no VLAN
	}
	fr.tags, fr.ttl, fr.v6 = 0, d[22], false
	t := &fr.tcp
	t.SrcPort, t.DstPort = fr.k.pa(), fr.k.pb()
	t.Seq, t.Ack = binary.BigEndian.Uint32(d[38:]), binary.BigEndian.Uint32(d[42:])
	t.DataOffset, t.Flags = d[46]>>4, d[47]
	t.Payload = data[34+hdr : 14+n]
	return true
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
