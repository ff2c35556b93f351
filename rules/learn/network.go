package learn

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Learning the network: the MACs hosts claim their addresses with in
// ARP, and the links (a client talking to a server's port) with the
// service each carried. The learner hears of them as a dpi.NetHandler; it
// learns a link at its flow's first payload (FlowData), when the service
// is known, so that a SYN nobody answered teaches nothing.

// Default bounds of the network a Learner remembers.
const (
	DefaultMaxNetHosts = 4096 // hosts with their MACs
	DefaultMaxLinks    = 8192 // links
	maxMACs            = 4    // MACs kept per host
)

// netHost is a host seen on the tap.
type netHost struct {
	macs []policy.MAC
}

var _ dpi.NetHandler = (*Learner)(nil)

// NewFlow implements dpi.NetHandler; flows are learned at their first
// payload.
func (l *Learner) NewFlow(*dpi.Flow, time.Time) { l.heard = true }

// FlowEnd implements dpi.NetHandler.
func (l *Learner) FlowEnd(*dpi.Flow, time.Time) {}

// FlowCounts implements dpi.NetHandler; the baseline keeps no counts.
func (l *Learner) FlowCounts(*dpi.Flow, time.Time) {}

// ICMP implements dpi.NetHandler.
func (l *Learner) ICMP(*dpi.ICMP) {}

// FlowData implements dpi.NetHandler: it learns the flow's link, and its
// two ends as hosts of the tap (not a broadcast or multicast address).
func (l *Learner) FlowData(f *dpi.Flow, _ time.Time) {
	l.heard = true
	c, s := f.Client.Addr().Unmap(), f.Server.Addr().Unmap()
	if !c.IsValid() || !s.IsValid() {
		return
	}
	l.netHost(c)
	l.netHost(s)
	if rules.DynamicPort(f.Server.Port()) && f.Service == service.Unknown {
		return // a port handed out per session: new every time
	}
	k := policy.LinkKey{Src: c, Dst: s, UDP: f.Transport == dpi.UDP, Port: f.Server.Port()}
	lk, ok := l.links[k]
	if !ok {
		if len(l.links) >= l.opts.MaxLinks {
			l.stats.DroppedLinks++
			return
		}
		l.links[k] = f.Service
		return
	}
	if lk == service.Unknown && f.Service != service.Unknown {
		l.links[k] = f.Service
	}
}

// ARP implements dpi.NetHandler: the sender claims its address with its
// MAC.
func (l *Learner) ARP(a *dpi.ARP) {
	l.heard = true
	if !a.SenderIP.IsValid() || a.SenderIP.IsUnspecified() || a.SenderMAC == ([6]byte{}) {
		return
	}
	h := l.netHost(a.SenderIP)
	if h == nil {
		return
	}
	m := policy.MAC(a.SenderMAC)
	if slices.Contains(h.macs, m) {
		return
	}
	if len(h.macs) >= maxMACs {
		l.stats.DroppedMACs++
		return
	}
	h.macs = append(h.macs, m)
}

// netHost returns the host of a, new if need be; nil for an address that
// is no host (broadcast, multicast, unspecified) or when the learner holds
// MaxNetHosts already (counted).
func (l *Learner) netHost(a netip.Addr) *netHost {
	if !isHost(a) {
		return nil
	}
	h := l.net[a]
	if h == nil {
		if len(l.net) >= l.opts.MaxNetHosts {
			l.stats.DroppedNetHosts++
			return nil
		}
		h = &netHost{}
		l.net[a] = h
	}
	return h
}

// isHost reports whether a can be one host's address: not unspecified,
// multicast, or an IPv4 limited or subnet broadcast (last octet 255, the
// common /24 and wider plants).
func isHost(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	if a.Is4() && a.As4()[3] == 255 {
		return false
	}
	return true
}

// network writes what was learned of the network into p: an asset for
// each host no conversation named (host-…), the hosts' MACs, and the
// links; nothing when the learner never heard the network.
func (l *Learner) network(p *policy.Policy) {
	if !l.heard {
		return
	}
	b := p.Baseline
	b.Network = true
	named := map[netip.Addr]bool{}
	for _, a := range p.Assets {
		named[a.Prefixes[0].Addr()] = true
	}
	addrs := make([]netip.Addr, 0, len(l.net))
	for a := range l.net {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		if !named[a] && rules.PlantAddr(a) {
			p.Assets = append(p.Assets, policy.Asset{Name: "host-" + addrName(a), Prefixes: []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}})
		}
		if h := l.net[a]; len(h.macs) > 0 {
			b.Hosts = append(b.Hosts, policy.NetHost{Addr: a, MACs: slices.Clone(h.macs)})
		}
	}
	slices.SortFunc(p.Assets, func(x, y policy.Asset) int { return x.Prefixes[0].Addr().Compare(y.Prefixes[0].Addr()) })
	for k, s := range l.links {
		b.Links = append(b.Links, policy.NetLink{Src: k.Src, Dst: k.Dst, UDP: k.UDP, Port: k.Port, Service: s})
	}
	slices.SortFunc(b.Links, func(x, y policy.NetLink) int {
		if c := x.Src.Compare(y.Src); c != 0 {
			return c
		}
		if c := x.Dst.Compare(y.Dst); c != 0 {
			return c
		}
		if x.UDP != y.UDP {
			if x.UDP {
				return 1
			}
			return -1
		}
		return int(x.Port) - int(y.Port)
	})
}

// resumeNetwork adds a checkpoint's network section to what the learner
// knows.
func (l *Learner) resumeNetwork(b *policy.Baseline) {
	if !b.Network {
		return
	}
	l.heard = true
	for _, h := range b.Hosts {
		nh := l.netHost(h.Addr)
		if nh == nil {
			continue
		}
		for _, m := range h.MACs {
			if !slices.Contains(nh.macs, m) && len(nh.macs) < maxMACs {
				nh.macs = append(nh.macs, m)
			}
		}
	}
	for _, lk := range b.Links {
		l.netHost(lk.Src)
		l.netHost(lk.Dst)
		k := lk.Key()
		if s, ok := l.links[k]; ok && s != service.Unknown {
			continue
		}
		if _, ok := l.links[k]; !ok && len(l.links) >= l.opts.MaxLinks {
			l.stats.DroppedLinks++
			continue
		}
		l.links[k] = lk.Service
	}
}
