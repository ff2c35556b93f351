package rules

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// The network section of a baseline, enforced: baseline-new-host,
// baseline-new-link, baseline-new-service and baseline-new-protocol, on
// the network events of the engine's dpi.NetHandler (a flow's first
// payload, ARP). And remote-access, which needs no baseline but heeds
// one.

// servKey is a service of a host: its address, transport and port.
type servKey struct {
	addr netip.Addr
	udp  bool
	port uint16
}

// netBase is a baseline's network section, compiled. It is read only.
type netBase struct {
	hosts  map[netip.Addr][]policy.MAC // every host the baseline names (assets, hosts, link ends) and the MACs learned for it
	links  map[policy.LinkKey]service.ID
	served map[servKey]struct{}
	ot     map[netip.Addr]struct{} // the ends of its conversations
}

func newNetBase(p *policy.Policy, b *policy.Baseline) *netBase {
	n := &netBase{hosts: map[netip.Addr][]policy.MAC{}, links: map[policy.LinkKey]service.ID{},
		served: map[servKey]struct{}{}, ot: map[netip.Addr]struct{}{}}
	for _, a := range p.Assets {
		for _, pf := range a.Prefixes {
			if pf.IsSingleIP() {
				n.hosts[pf.Addr().Unmap()] = nil
			}
		}
	}
	for _, h := range b.Hosts {
		n.hosts[h.Addr] = h.MACs
	}
	for _, l := range b.Links {
		n.links[l.Key()] = l.Service
		n.served[servKey{l.Dst, l.UDP, l.Port}] = struct{}{}
		for _, a := range [2]netip.Addr{l.Src, l.Dst} {
			if _, ok := n.hosts[a]; !ok {
				n.hosts[a] = nil
			}
		}
	}
	for _, c := range b.Conversations {
		n.ot[c.Src], n.ot[c.Dst] = struct{}{}, struct{}{}
	}
	return n
}

// PlantAddr reports whether a is one of a plant's own addresses, not the
// Internet's: private, shared (100.64.0.0/10), link-local or loopback.
// Learning names such hosts as assets.
func PlantAddr(a netip.Addr) bool {
	if isPrivate(a) {
		return true
	}
	b := a.As16()
	return a.Is4() && b[12] == 100 && b[13]&0xC0 == 64
}

// onNet reports whether a is an address a host on the tap may have: a
// plant address (PlantAddr) that is unicast. IPv6 link-local addresses
// are left out: every IPv6 interface makes one, next to the host's IPv4
// address, so they tell of no new machine.
func onNet(a netip.Addr) bool {
	if !PlantAddr(a) || a.IsMulticast() || a.IsUnspecified() || a.Is6() && a.IsLinkLocalUnicast() {
		return false
	}
	return !a.Is4() || a.As4()[3] != 255
}

// FlowData implements dpi.NetHandler: a flow's first payload, with its
// service named, goes to remote-access and to the network baseline.
func (e *Engine) FlowData(f *dpi.Flow, t time.Time) {
	if n := e.learnNet(); n != nil {
		n.FlowData(f, t)
	}
	b := &e.bi
	c, s := f.Client.Addr().Unmap(), f.Server.Addr().Unmap()
	if b.otOn && f.App != dpi.AppNone {
		b.ot.add(c, t.UnixNano())
		b.ot.add(s, t.UnixNano())
	}
	if len(e.links) > 0 {
		e.checkLinks(f, t)
	}
	var nb *netBase
	if e.base != nil {
		nb = e.base.net
	}
	udp := f.Transport == dpi.UDP
	k := policy.LinkKey{Src: c, Dst: s, UDP: udp, Port: f.Server.Port()}
	learned, known := service.Unknown, false
	if nb != nil {
		learned, known = nb.links[k]
	}
	if b.on[dRemote] && (f.Service.Has(service.RemoteAccess) || f.Service.Has(service.FileTransfer)) &&
		!(known && learned == f.Service) && e.isOT(c, nb) && e.isOT(s, nb) {
		e.tick(t)
		op := &e.flowOp
		*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
		e.fireBuiltin(dRemote, op, aggKey{src: c, dst: s, addr: uint32(f.Service)}, finding{reason: f.Service.String()})
	}
	if nb == nil {
		return
	}
	r := e.base
	e.tick(t)
	for _, a := range [2]netip.Addr{c, s} {
		if _, ok := nb.hosts[a]; !ok && r.on[bNewHost] && onNet(a) {
			op := &e.flowOp
			*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
			r.title = "New host " + a.String() + " on the tap: " + flowText(f)
			r.expected = "the hosts of the baseline"
			e.fireBase(bNewHost, op, aggKey{src: a}, false)
		}
	}
	switch {
	case known:
		if r.on[bNewProtocol] && learned != service.Unknown && f.Service != service.Unknown && f.Service != learned {
			op := &e.flowOp
			*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
			r.title = "New protocol on a known link: " + flowText(f)
			r.expected = learned.String()
			e.fireBase(bNewProtocol, op, aggKey{src: c, dst: s, addr: uint32(k.Port)}, false)
		}
	case f.Service.Has(service.Chatter) || !onNet(s):
		// Background chatter (name lookups, discovery, time) and
		// broadcasts are normal from any host; the host itself, if new,
		// was reported above.
	case DynamicPort(k.Port) && f.Service == service.Unknown:
		// A port of the dynamic range that carries nothing named: one of
		// those DCE/RPC (OPC Classic's DCOM too) and passive FTP hand
		// out per session, new every time.
	default:
		_, serves := nb.served[servKey{s, udp, k.Port}]
		if !serves && r.on[bNewService] {
			op := &e.flowOp
			*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
			r.title = "New service " + policy.PortText(udp, k.Port) + " (" + f.Service.String() + ") on " + s.String() + ", used by " + c.String()
			r.expected = "the services the baseline has for " + s.String()
			e.fireBase(bNewService, op, aggKey{dst: s, addr: uint32(k.Port)}, false)
		} else if serves && r.on[bNewLink] {
			op := &e.flowOp
			*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
			r.title = "New link: " + flowText(f)
			r.expected = "the clients the baseline has for " + policy.PortText(udp, k.Port) + " on " + s.String()
			e.fireBase(bNewLink, op, aggKey{src: c, dst: s, addr: uint32(k.Port)}, false)
		}
	}
}

// DynamicPort reports whether p is in the IANA dynamic range, 49152 and
// up, which servers hand out per session (DCE/RPC, passive FTP): the
// network baseline neither learns nor reports such a port that carries
// nothing named.
func DynamicPort(p uint16) bool { return p >= 49152 }

// flowText describes a flow: 10.10.1.10 to 10.10.1.20 tcp/502 (modbus).
func flowText(f *dpi.Flow) string {
	return f.Client.Addr().String() + " to " + f.Server.Addr().String() + " " + policy.PortText(f.Transport == dpi.UDP, f.Server.Port()) + " (" + f.Service.String() + ")"
}

// isOT reports whether a is an OT host: seen in a Modbus or DNP3
// conversation, or an end of a conversation of the baseline nb.
func (e *Engine) isOT(a netip.Addr, nb *netBase) bool {
	if e.bi.ot.has(a) {
		return true
	}
	if nb != nil {
		_, ok := nb.ot[a]
		return ok
	}
	return false
}

// arpBaseline checks an ARP sender against the network baseline: a host
// it does not have, or a MAC it never learned for the host.
func (e *Engine) arpBaseline(a *dpi.ARP) {
	r := e.base
	nb := r.net
	if !r.on[bNewHost] || !a.SenderIP.IsValid() || a.SenderIP.IsUnspecified() || a.SenderMAC == ([6]byte{}) {
		return
	}
	macs, known := nb.hosts[a.SenderIP]
	switch {
	case !known && onNet(a.SenderIP):
		op := e.frameOp(a.Time, a.Frame, a.VLAN, a.SenderIP, a.TargetIP, a.EthSrc, a.EthDst)
		r.title = "New host " + a.SenderIP.String() + " (MAC " + macText(a.SenderMAC) + ") on the tap"
		r.expected = "the hosts of the baseline"
		e.fireBase(bNewHost, op, aggKey{src: a.SenderIP}, false)
	case known && len(macs) > 0 && !slices.Contains(macs, policy.MAC(a.SenderMAC)):
		// From the MAC's own address, when known, to the address it
		// claims: a spoofer is named as arp-spoof names it.
		owner := a.SenderIP
		if e.bi.on[dARPSpoof] {
			owner = e.ownerOf(a.SenderMAC, a.SenderIP)
		}
		op := e.frameOp(a.Time, a.Frame, a.VLAN, owner, a.SenderIP, a.SenderMAC, [6]byte{})
		r.title = "New MAC " + macText(a.SenderMAC) + " for host " + a.SenderIP.String()
		r.expected = macsText(macs)
		e.fireBase(bNewHost, op, aggKey{src: a.SenderIP, dst: macAddr(a.SenderMAC)}, false)
	}
}

func macsText(macs []policy.MAC) string {
	s := ""
	for i, m := range macs {
		if i > 0 {
			s += ", "
		}
		s += m.String()
	}
	return s
}

func titleRemote(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	return "Remote access or file transfer (" + f.reason + ") from " + src + " to " + dst + " port " + strconv.Itoa(int(op.Dst.Port()))
}
