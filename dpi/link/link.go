// Package link names the link-layer encapsulations of captured frames:
// the LINKTYPE_ values of pcap and pcapng files (tcpdump.org's
// link-layer header types) that tapwatch decodes.
//
// It imports nothing, so that capture, which reads them from files, and
// dpi, which decodes the frames, share them without gopacket.
package link

import "strconv"

// Type is a pcap LINKTYPE_ value.
type Type uint16

// The link types tapwatch decodes, and a few others it names.
const (
	Null       Type = 0   // BSD loopback: a 4-byte address family, then IP
	Ethernet   Type = 1   // Ethernet II or 802.3, with 802.1Q/802.1ad tags
	PPP        Type = 9   // not decoded
	RawBSD     Type = 12  // raw IP, as some BSDs number LINKTYPE_RAW
	RawOpenBSD Type = 14  // raw IP, as OpenBSD numbers it
	Raw        Type = 101 // raw IP: version 4 or 6 in the first nibble
	IEEE80211  Type = 105 // not decoded
	Loop       Type = 108 // OpenBSD loopback: like Null, in network order
	LinuxSLL   Type = 113 // Linux "cooked" capture, version 1
	IPv4       Type = 228 // raw IPv4
	IPv6       Type = 229 // raw IPv6
	LinuxSLL2  Type = 276 // Linux "cooked" capture, version 2
)

var names = map[Type]string{
	Null: "Null", Ethernet: "Ethernet", PPP: "PPP", RawBSD: "Raw", RawOpenBSD: "Raw",
	Raw: "Raw", IEEE80211: "IEEE802_11", Loop: "Loop", LinuxSLL: "Linux SLL",
	IPv4: "IPv4", IPv6: "IPv6", LinuxSLL2: "Linux SLL2",
}

// String names the link type, or says it is unknown.
func (t Type) String() string {
	if n, ok := names[t]; ok {
		return n
	}
	return "UnknownLinkType(" + strconv.Itoa(int(t)) + ")"
}

// Decoded reports whether dpi decodes frames of link type t.
func (t Type) Decoded() bool {
	switch t {
	case Ethernet, Null, Loop, Raw, RawBSD, RawOpenBSD, IPv4, IPv6, LinuxSLL, LinuxSLL2:
		return true
	}
	return false
}
