package rules

import (
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/lru"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// The detectors that watch the network itself rather than the ICS
// messages on it: ARP spoofing and scans. The engine gets what they look
// at as a dpi.NetHandler: every ARP frame, every ICMP message, and the
// start and end of every flow. Nothing here runs per packet.
//
// State is bounded: the ARP bindings and the sets of addresses and ports
// a source probed are fixed tables that evict their least recently used
// entry; counts live in the engine's rate table.

// Table sizes of the network detectors.
const (
	bindingSlots = 1024 // IPv4 address to MAC bindings claimed in ARP
	probeSlots   = 1024 // (source, kind, destination) sets of probed addresses or ports
)

// aggregation key addresses (aggKey.addr) of the network detectors.
const (
	keyARPConflict = 1 // two MACs claim one address
	keyARPMismatch = 2 // an ARP reply's sender MAC is not its Ethernet source
)

// bindKey is an IPv4 address on one VLAN.
type bindKey struct {
	ip   netip.Addr
	vlan uint16
}

// binding is the MAC that last claimed an address in ARP, and when.
type binding struct {
	mac  [6]byte
	last int64 // packet time, unix ns
}

// owner is the address a MAC asked for others' MACs from in ARP, with no
// other MAC claiming that address: the host's own, most likely. An alert
// about a MAC names its host by it.
type owner struct {
	ip netip.Addr
}

// probeKey is what a probe set counts for: the addresses one source
// probed (kind probeHosts, dst unset), or the ports it probed on one
// destination (probePorts).
type probeKey struct {
	src  netip.Addr
	dst  netip.Addr
	kind uint8
}

const (
	probeHosts uint8 = iota + 1
	probePorts
	probeRejects
)

// probeSet is a sketch of the distinct addresses or ports a source probed
// in the current and the previous window: 256 bits each, one per hash of
// the item, counted by linear counting.
type probeSet struct {
	epoch     uint32
	win       int64
	cur, prev policy.CodeSet
}

// network is the state of the network detectors.
type network struct {
	binds  lru.Table[bindKey, binding]
	owners lru.Table[[6]byte, owner]
	probes lru.Table[probeKey, probeSet]
	// flow and op describe a frame that belongs to no flow (ARP, ICMP) to
	// the alert path; reused.
	flow dpi.Flow
	op   Op
}

func (n *network) init(b *builtins, seed uint64) {
	if b.on[dARPSpoof] {
		n.binds.Init(bindingSlots, seed)
		n.owners.Init(bindingSlots, seed)
	}
	if b.on[dScanHosts] || b.on[dScanPorts] || b.on[dScanRejects] {
		n.probes.Init(probeSlots, seed)
	}
}

var _ dpi.NetHandler = (*Engine)(nil)

// frameOp fills the engine's network op for a frame from src to dst that
// belongs to no flow.
func (e *Engine) frameOp(t time.Time, frame uint64, vlan uint16, src, dst netip.Addr, srcMAC, dstMAC [6]byte) *Op {
	n := &e.bi.net
	n.flow = dpi.Flow{VLAN: vlan, Client: netip.AddrPortFrom(src, 0), Server: netip.AddrPortFrom(dst, 0), ClientMAC: srcMAC, ServerMAC: dstMAC}
	n.op = Op{Time: t, Frame: frame, Flow: &n.flow, Src: n.flow.Client, Dst: n.flow.Server}
	return &n.op
}

// ARP implements dpi.NetHandler.
func (e *Engine) ARP(a *dpi.ARP) {
	if n := e.learnNet(); n != nil {
		n.ARP(a)
	}
	e.tick(a.Time)
	b := &e.bi
	if e.base != nil && e.base.net != nil {
		e.arpBaseline(a)
	}
	now := a.Time.UnixNano()
	if b.on[dARPSpoof] {
		e.checkARPSpoof(a, now)
	}
	if b.on[dARPStorm] && a.Gratuitous() && !a.Probe() {
		d := &b.det[dARPStorm]
		if e.countRate(d.rule.Rate, rateKey{src: macAddr(a.SenderMAC), rule: d.c.idx}, now) {
			op := e.frameOp(a.Time, a.Frame, a.VLAN, a.SenderIP, a.TargetIP, a.EthSrc, a.EthDst)
			e.fireBuiltin(dARPStorm, op, aggKey{src: macAddr(a.SenderMAC)}, finding{mac: a.SenderMAC})
		}
	}
	if b.on[dScanHosts] && a.Op == 1 && !a.Gratuitous() && !a.Probe() {
		// An ARP request asks who has an address: a sweep asks for many.
		if over, n := e.probe(probeKey{src: a.SenderIP, kind: probeHosts}, hashAddr(a.TargetIP), now, b.det[dScanHosts].rule.Rate); over {
			op := e.frameOp(a.Time, a.Frame, a.VLAN, a.SenderIP, a.TargetIP, a.EthSrc, a.EthDst)
			e.fireBuiltin(dScanHosts, op, aggKey{src: a.SenderIP}, finding{count: n, reason: "ARP"})
		}
	}
}

// checkARPSpoof looks for the signs of ARP spoofing in a: a reply whose
// sender MAC is not the frame's Ethernet source, and an address claimed
// by a second MAC while the first still claims it (within the detector's
// window). A MAC that takes over an address the first has not claimed
// for that long is a replaced device or a reassigned address, and passes.
func (e *Engine) checkARPSpoof(a *dpi.ARP, now int64) {
	if !a.SenderIP.IsValid() || a.SenderIP.IsUnspecified() || a.SenderMAC == ([6]byte{}) {
		return
	}
	if a.Op == 2 && a.EthSrc != ([6]byte{}) && a.SenderMAC != a.EthSrc {
		op := e.frameOp(a.Time, a.Frame, a.VLAN, e.ownerOf(a.EthSrc, a.SenderIP), a.SenderIP, a.EthSrc, a.EthDst)
		e.fireBuiltin(dARPSpoof, op, aggKey{src: a.SenderIP, addr: keyARPMismatch}, finding{mac: a.SenderMAC, mac2: a.EthSrc, reason: "mismatch"})
	}
	n := &e.bi.net
	k := bindKey{ip: a.SenderIP, vlan: a.VLAN}
	ent, found := n.binds.Get(&k, hashAddr(k.ip)^uint64(k.vlan)<<48, now)
	bd := &ent.Value
	if !found || bd.mac == a.SenderMAC {
		*bd = binding{mac: a.SenderMAC, last: now}
		if a.Op == 1 && !a.Gratuitous() {
			o, _ := n.owners.Get(&a.SenderMAC, hashMAC(a.SenderMAC), now)
			o.Value.ip = a.SenderIP
		}
		return
	}
	prev, last := bd.mac, bd.last
	*bd = binding{mac: a.SenderMAC, last: now}
	win := e.bi.window(e.bi.det[dARPSpoof].c.idx)
	if win == 0 {
		win = e.window
	}
	if now-last > win {
		return // taken over long after the last claim
	}
	// The alert goes from the claimer's own address, when known, to the
	// address claimed.
	op := e.frameOp(a.Time, a.Frame, a.VLAN, e.ownerOf(a.SenderMAC, a.SenderIP), a.SenderIP, a.SenderMAC, prev)
	// One alert for the pair of MACs, whichever claims last.
	lo, hi := macAddr(prev), macAddr(a.SenderMAC)
	if hi.Less(lo) {
		lo, hi = hi, lo
	}
	e.fireBuiltin(dARPSpoof, op, aggKey{src: a.SenderIP, dst: lo, addr: keyARPConflict, dev: uint16(hashAddr(hi))}, finding{mac: a.SenderMAC, mac2: prev, reason: "conflict"})
}

// ownerOf is the address mac asked from in ARP when it is not claimed,
// else claimed.
func (e *Engine) ownerOf(mac [6]byte, claimed netip.Addr) netip.Addr {
	if o := e.bi.net.owners.Find(&mac, hashMAC(mac)); o != nil && o.Value.ip != claimed {
		return o.Value.ip
	}
	return claimed
}

func hashMAC(mac [6]byte) uint64 {
	return (uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 | uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5])) * 0x9e3779b97f4a7c15
}

// macAddr makes a MAC a key address (an IPv6 address in fe80::/64 built
// from it, as SLAAC would), so that MACs fit the rate and aggregation
// keys.
func macAddr(mac [6]byte) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15] = mac[0]^2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// ICMP implements dpi.NetHandler.
func (e *Engine) ICMP(m *dpi.ICMP) {
	if n := e.learnNet(); n != nil {
		n.ICMP(m)
	}
	e.tick(m.Time)
	b := &e.bi
	now := m.Time.UnixNano()
	switch {
	case m.Echo() && b.on[dScanHosts] && onNet(m.Dst):
		if over, n := e.probe(probeKey{src: m.Src, kind: probeHosts}, hashAddr(m.Dst), now, b.det[dScanHosts].rule.Rate); over {
			op := e.frameOp(m.Time, m.Frame, m.VLAN, m.Src, m.Dst, m.SrcMAC, m.DstMAC)
			e.fireBuiltin(dScanHosts, op, aggKey{src: m.Src}, finding{count: n, reason: "ICMP echo"})
		}
	case m.Unreachable() && b.on[dScanRejects]:
		// The error goes back to the prober: m.Dst. Distinct targets
		// count: the reporting host and the port.
		d := &b.det[dScanRejects]
		if over, _ := e.probe(probeKey{src: m.Dst, kind: probeRejects}, hashAddr(m.Src)^uint64(m.InnerPort)*0x9e3779b97f4a7c15, now, d.rule.Rate); over {
			op := e.frameOp(m.Time, m.Frame, m.VLAN, m.Dst, m.Src, m.DstMAC, m.SrcMAC)
			e.fireBuiltin(dScanRejects, op, aggKey{src: m.Dst}, finding{reason: "ICMP unreachable"})
		}
	}
}

// newFlowProbe counts a new flow towards scan-hosts and scan-ports: a TCP
// connection whose opening the capture saw, or a UDP flow, to one of the
// plant's own addresses (a browser or a proxy reaches many Internet hosts
// a second; a scan of the plant stays in its ranges). scan-ports leaves
// out the dynamic range, which DCE/RPC and passive FTP hand out per
// session.
func (e *Engine) newFlowProbe(f *dpi.Flow, t time.Time) {
	b := &e.bi
	if f.Transport == dpi.TCP && f.MidStream {
		return
	}
	now := t.UnixNano()
	c, s := f.Client.Addr(), f.Server.Addr()
	if !onNet(s.Unmap()) {
		return
	}
	if b.on[dScanHosts] {
		if over, n := e.probe(probeKey{src: c, kind: probeHosts}, hashAddr(s), now, b.det[dScanHosts].rule.Rate); over {
			op := &e.flowOp
			*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
			e.fireBuiltin(dScanHosts, op, aggKey{src: c}, finding{count: n, reason: f.Transport.String()})
		}
	}
	if b.on[dScanPorts] && !DynamicPort(f.Server.Port()) {
		if over, n := e.probe(probeKey{src: c, dst: s, kind: probePorts}, uint64(f.Server.Port())*0x9e3779b97f4a7c15, now, b.det[dScanPorts].rule.Rate); over {
			op := &e.flowOp
			*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
			e.fireBuiltin(dScanPorts, op, aggKey{src: c, dst: s}, finding{count: n, reason: f.Transport.String()})
		}
	}
}

// FlowCounts implements dpi.NetHandler: the engine counts no traffic.
func (e *Engine) FlowCounts(f *dpi.Flow, t time.Time) {
	if n := e.learnNet(); n != nil {
		n.FlowCounts(f, t)
	}
}

// FlowEnd implements dpi.NetHandler: a connection the server rejected
// counts towards scan-rejects.
func (e *Engine) FlowEnd(f *dpi.Flow, t time.Time) {
	if n := e.learnNet(); n != nil {
		n.FlowEnd(f, t)
	}
	if f.End != dpi.EndRejected || !e.bi.on[dScanRejects] {
		return
	}
	e.tick(t)
	d := &e.bi.det[dScanRejects]
	c := f.Client.Addr()
	// Distinct targets count: a client retrying one closed port is no
	// scan.
	if over, _ := e.probe(probeKey{src: c, kind: probeRejects}, hashAddr(f.Server.Addr())^uint64(f.Server.Port())*0x9e3779b97f4a7c15, t.UnixNano(), d.rule.Rate); over {
		op := &e.flowOp
		*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
		e.fireBuiltin(dScanRejects, op, aggKey{src: c}, finding{reason: "TCP reset"})
	}
}

// probe adds item (a hash) to the set of k, and reports whether it was
// new in the span of the set's two windows and the distinct items now
// number more than r.Max, with that number.
func (e *Engine) probe(k probeKey, item uint64, now int64, r *policy.Rate) (bool, int) {
	t := &e.bi.net.probes
	w := e.windows.index(now, int64(r.Per))
	ent, found := t.Get(&k, hashAddr(k.src)^bits.RotateLeft64(hashAddr(k.dst), 29)^uint64(k.kind), now)
	c := &ent.Value
	if !found {
		*c = probeSet{win: w, epoch: e.epoch}
	}
	switch {
	case c.epoch != e.epoch:
		*c = probeSet{win: w, epoch: e.epoch}
	case w == c.win+1:
		c.prev, c.cur = c.cur, policy.CodeSet{}
		c.win = w
	case w > c.win+1 || w < c.win-1:
		*c = probeSet{win: w, epoch: c.epoch}
	}
	bit := uint8((item ^ item>>29) * 0x9e3779b97f4a7c15 >> 56)
	if c.cur.Has(bit) {
		return false, 0
	}
	c.cur.Add(bit)
	if c.prev.Has(bit) {
		return false, 0
	}
	set := 0
	for i := range c.cur {
		set += bits.OnesCount64(c.cur[i] | c.prev[i])
	}
	n := distinct(set)
	return n > int(r.Max), n
}

// distinct estimates how many distinct items set bits of a 256-bit sketch
// stand for (linear counting).
func distinct(set int) int {
	if set >= 256 {
		return 256 * 6 // saturated: at least this many
	}
	return int(math.Round(-256 * math.Log(1-float64(set)/256)))
}

// ---- titles ----

func titleARPSpoof(op *Op, _ *builtinDet, f finding) string {
	ip := op.Dst.Addr().String()
	by := func(mac [6]byte) string {
		if op.Src.Addr() != op.Dst.Addr() {
			return macText(mac) + " (" + op.Src.Addr().String() + ")"
		}
		return macText(mac)
	}
	if f.reason == "mismatch" {
		return "ARP reply for " + ip + " names MAC " + macText(f.mac) + " but comes from " + by(f.mac2)
	}
	return "ARP spoofing: " + ip + " claimed by " + by(f.mac) + " while " + macText(f.mac2) + " claims it"
}

func titleARPStorm(op *Op, d *builtinDet, f finding) string {
	return "Gratuitous ARP storm from " + macText(f.mac) + " (" + op.Src.Addr().String() + "): " + d.c.expected + " exceeded"
}

func titleScanHosts(op *Op, d *builtinDet, f finding) string {
	return "Host scan from " + op.Src.Addr().String() + ": about " + strconv.Itoa(f.count) + " addresses probed by " + f.reason + " within " + policy.FormatDuration(d.rule.Rate.Per)
}

func titleScanPorts(op *Op, d *builtinDet, f finding) string {
	src, dst := ends(op)
	return "Port scan from " + src + " to " + dst + ": about " + strconv.Itoa(f.count) + " " + f.reason + " ports within " + policy.FormatDuration(d.rule.Rate.Per)
}

func titleScanRejects(op *Op, d *builtinDet, f finding) string {
	return "Rejected connections to " + op.Src.Addr().String() + " (" + f.reason + "s): " + d.c.expected + " exceeded"
}

func macText(mac [6]byte) string { return string(appendMAC(nil, mac)) }
