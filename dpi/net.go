package dpi

import (
	"net/netip"
	"time"

	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/dpi/service"
)

// The network itself, beside the applications on it: ARP frames, ICMP
// messages, and the start and end of every flow, for handlers that keep a
// model of the hosts and links on the tap (NetHandler). Nothing here runs
// per packet but the two counters of Flow.Packets and Flow.Bytes; the
// rest runs on a new flow, an ARP frame or an ICMP message.

// NetHandler is implemented by handlers that watch the network, not only
// its ICS messages. The arguments are reused after each call returns.
type NetHandler interface {
	FlowHandler
	// FlowData: f carried its first payload, and f.Service now names its
	// service (by content, else by the server port). Once per flow with
	// payload, before FlowEnd.
	FlowData(f *Flow, t time.Time)
	// FlowCounts: f.NewPackets and f.NewBytes are what each side of f
	// sent since the last FlowCounts of f. It comes every
	// Config.FlowReport of packet time while the flow lives (a polling
	// connection may live for months), and at its end, before FlowEnd,
	// when there is anything new.
	FlowCounts(f *Flow, t time.Time)
	// FlowEnd: f ended, as f.End says, with f.Packets and f.Bytes sent
	// by each side.
	FlowEnd(f *Flow, t time.Time)
	// ARP: an ARP frame for IPv4 over Ethernet.
	ARP(a *ARP)
	// ICMP: an ICMP or ICMPv6 message.
	ICMP(m *ICMP)
}

// End is how a flow ended.
type End uint8

const (
	EndNone     End = iota // still open
	EndClosed              // FIN from both sides, or a reset after data
	EndRejected            // the server answered the client's SYN with a reset: nothing listens there
	EndReset               // a reset before any data, but for a rejected SYN
	EndExpired             // silent for longer than Config.FlowIdle
	EndEvicted             // dropped to make room in the flow table
	EndFlushed             // still open at the end of the capture (Flush)
)

func (e End) String() string {
	switch e {
	case EndClosed:
		return "closed"
	case EndRejected:
		return "rejected"
	case EndReset:
		return "reset"
	case EndExpired:
		return "expired"
	case EndEvicted:
		return "evicted"
	case EndFlushed:
		return "flushed"
	}
	return "open"
}

// ARP is an ARP frame for IPv4 over Ethernet, as a NetHandler sees it.
type ARP struct {
	Time   time.Time
	Frame  uint64
	VLAN   uint16
	EthSrc [6]byte // the Ethernet header's source and destination
	EthDst [6]byte
	// Op is ARPRequest (1) or ARPReply (2); other codes pass too.
	Op        uint16
	SenderMAC [6]byte
	SenderIP  netip.Addr
	TargetMAC [6]byte
	TargetIP  netip.Addr
}

// Gratuitous reports whether the frame announces the sender's own
// binding (sender and target IP the same), a request or a reply.
func (a *ARP) Gratuitous() bool { return a.SenderIP == a.TargetIP }

// Probe reports whether the frame is an address-conflict probe (RFC
// 5227): a request from sender IP 0.0.0.0.
func (a *ARP) Probe() bool { return a.Op == ARPRequest && a.SenderIP.IsUnspecified() }

// ICMP is an ICMP (IPv4) or ICMPv6 message, as a NetHandler sees it.
type ICMP struct {
	Time   time.Time
	Frame  uint64
	VLAN   uint16
	V6     bool
	Src    netip.Addr
	Dst    netip.Addr
	SrcMAC [6]byte
	DstMAC [6]byte
	Type   uint8
	Code   uint8
	// For an error message (destination unreachable and the like): the
	// packet it is about, from the bytes it quotes: its destination, its
	// IP protocol and, for TCP and UDP, its destination port. Inner is
	// false when the quote is too short to say.
	Inner      bool
	InnerDst   netip.Addr
	InnerProto uint8
	InnerPort  uint16
}

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// The ICMP and ICMPv6 types dpi tells apart, and the IP protocols.
const (
	icmp4EchoRequest      = 8
	icmp4Unreachable      = 3
	icmp4Redirect         = 5
	icmp4TimeExceeded     = 11
	icmp4ParameterProblem = 12
	icmp6Unreachable      = 1
	icmp6EchoRequest      = 128

	ipTCP = 6
	ipUDP = 17
)

// Echo reports whether m is an echo request.
func (m *ICMP) Echo() bool {
	if m.V6 {
		return m.Type == icmp6EchoRequest
	}
	return m.Type == icmp4EchoRequest
}

// Unreachable reports whether m is a destination-unreachable error.
func (m *ICMP) Unreachable() bool {
	if m.V6 {
		return m.Type == icmp6Unreachable
	}
	return m.Type == icmp4Unreachable
}

// identify names the service of f from the first payload side sent
// (udp: a datagram), or, when that says nothing, from the first payload
// of the other side; then from the server port. Once decided, the
// handler hears of it (FlowData).
func (e *Engine) identify(f *flow, side int, payload []byte, udp bool) {
	fromClient := side != f.server
	bit := uint8(1)
	if !fromClient {
		bit = 2
	}
	if f.svcTried&bit != 0 {
		return
	}
	f.svcTried |= bit
	id := service.Identify(udp, fromClient, payload)
	if id == service.Unknown && f.App != proto.None {
		id, _ = service.Lookup(f.App.String())
	}
	if id == service.Unknown && !udp && f.svcTried != 3 {
		return // the other side may say more
	}
	e.decideService(f, id, udp)
}

// decideService sets f's service, from the server port when id is
// Unknown, and tells the handler.
func (e *Engine) decideService(f *flow, id service.ID, udp bool) {
	if id == service.Unknown {
		id = service.ByPort(udp, f.Server.Port())
	}
	f.Service = id
	f.svcDone = true
	if e.nh != nil {
		f.Frame = e.meta.Frame
		e.nh.FlowData(&f.Flow, e.meta.Time)
	}
}

// reportCounts hands the handler what f's sides sent since the last
// report, if anything.
func (e *Engine) reportCounts(f *flow) {
	if f.Packets == f.reported {
		return
	}
	for i := range f.Packets {
		f.NewPackets[i] = f.Packets[i] - f.reported[i]
		f.NewBytes[i] = f.Bytes[i] - f.reportedBytes[i]
	}
	f.reported, f.reportedBytes = f.Packets, f.Bytes
	f.Frame = e.meta.Frame
	e.nh.FlowCounts(&f.Flow, e.meta.Time)
}

// reportAll reports the counts of every live flow, once every
// Config.FlowReport of packet time.
func (e *Engine) reportAll() {
	if e.nh == nil && e.ih == nil || e.now < e.nextReport {
		return
	}
	if e.nextReport != 0 {
		active := e.now - int64(e.cfg.FlowReport)
		for i := e.flows.head; i >= 0; {
			f := e.flows.at(i)
			i = f.next
			if e.nh != nil {
				e.reportCounts(f)
			}
			if e.ih != nil && f.dec != 0 && f.last >= active {
				e.refreshEndpoints(f)
			}
		}
	}
	e.nextReport = e.now + int64(e.cfg.FlowReport)
}

// arpPacket hands an ARP frame to the handler.
func (e *Engine) arpPacket(mac *macs) {
	e.c.ARP++
	if e.nh == nil {
		return
	}
	a := &e.arp
	l := &e.arpHdr
	if l.addrType != 1 || l.protocol != 0x0800 || // Ethernet, IPv4
		len(l.senderHW) != 6 || len(l.targetHW) != 6 || len(l.senderIP) != 4 || len(l.targetIP) != 4 {
		e.c.ARPOther++
		return
	}
	*a = ARP{Time: e.meta.Time, Frame: e.meta.Frame, EthSrc: mac.src(), EthDst: mac.dst(), Op: l.op,
		SenderMAC: [6]byte(l.senderHW), SenderIP: netip.AddrFrom4([4]byte(l.senderIP)),
		TargetMAC: [6]byte(l.targetHW), TargetIP: netip.AddrFrom4([4]byte(l.targetIP))}
	if e.vlan.n > 0 {
		a.VLAN = e.vlan.ids[0]
	}
	e.nh.ARP(a)
}

// icmpPacket hands an ICMP message to the handler. k holds the packet's
// addresses (IPv4-mapped for IPv4).
func (e *Engine) icmpPacket(k *flowKey, mac *macs, v6 bool) {
	e.c.ICMP++
	if e.nh == nil {
		return
	}
	m := &e.icmpMsg
	*m = ICMP{Time: e.meta.Time, Frame: e.meta.Frame, VLAN: k.vlan(), V6: v6,
		Src: k.a.addr(), Dst: k.b.addr(), SrcMAC: mac.src(), DstMAC: mac.dst()}
	var quote []byte
	m.Type, m.Code = e.icmp.typ, e.icmp.code
	if v6 {
		if m.Type < 128 && len(e.icmp.payload) >= 4 {
			quote = e.icmp.payload[4:] // the 4 bytes after the checksum, then the quote
		}
	} else {
		switch m.Type {
		case icmp4Unreachable, icmp4TimeExceeded, icmp4ParameterProblem, icmp4Redirect:
			quote = e.icmp.payload
		}
	}
	if quote != nil {
		m.InnerDst, m.InnerProto, m.InnerPort, m.Inner = quoted(quote)
	}
	e.nh.ICMP(m)
}

// quoted reads the destination, IP protocol and destination port of the
// IP packet whose start an ICMP error quotes.
func quoted(b []byte) (dst netip.Addr, ipProto uint8, port uint16, ok bool) {
	if len(b) < 1 {
		return
	}
	var hl int
	switch b[0] >> 4 {
	case 4:
		hl = int(b[0]&0x0f) * 4
		if hl < 20 || len(b) < hl {
			return
		}
		dst, ipProto = netip.AddrFrom4([4]byte(b[16:20])), b[9]
	case 6:
		hl = 40
		if len(b) < hl {
			return
		}
		dst, ipProto = netip.AddrFrom16([16]byte(b[24:40])), b[6]
	default:
		return
	}
	if (ipProto == ipTCP || ipProto == ipUDP) && len(b) >= hl+4 {
		port = uint16(b[hl+2])<<8 | uint16(b[hl+3])
	}
	return dst, ipProto, port, true
}
