package learn

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Default bounds of a Learner's memory.
const (
	DefaultMaxHosts         = 4096 // hosts remembered
	DefaultMaxPairs         = 4096 // conversations remembered
	DefaultMaxRanges        = 64   // ranges per table, object or link list: beyond, the closest neighbours merge
	DefaultMaxValues        = 256  // addresses or points with a value range, per conversation
	DefaultMaxObjects       = 64   // DNP3 object kinds per conversation
	maxLinkRanges           = 16
	learnWindow       int64 = int64(time.Minute)
)

// Options bound what a Learner remembers; zero fields take the
// defaults.
type Options struct {
	MaxHosts, MaxPairs, MaxRanges, MaxValues, MaxObjects int
	// MaxNetHosts and MaxLinks bound the network learned (network.go).
	MaxNetHosts, MaxLinks int
	// Adapters are adapters of further protocols, next to Modbus and DNP3.
	Adapters []rules.Adapter
}

// Stats count what a Learner saw and what it could not keep.
type Stats struct {
	Requests      uint64 // requests learned from
	DroppedHosts  uint64 // requests whose hosts did not fit
	DroppedPairs  uint64 // requests whose conversation did not fit
	DroppedValues uint64 // written values whose address did not fit
	MergedRanges  uint64 // times two ranges merged to stay within MaxRanges (the baseline then allows the gap)
	// The network: hosts and links not kept at MaxNetHosts and MaxLinks,
	// and MACs beyond the few kept per host.
	DroppedNetHosts, DroppedLinks, DroppedMACs uint64
	First, Last                                time.Time
}

// Learner records the normal behaviour of a plant from decoded requests,
// in bounded memory, and writes it as a policy with a baseline section
// (Baseline). It implements dpi.Handler, and rules.Learner for an engine
// with rules.EngineOptions.Learn. It is not safe for concurrent use.
type Learner struct {
	opts  Options
	hosts map[netip.Addr]*learnHost
	pairs map[policy.PairKey]*learnPair
	order []*learnPair // in order of first sight
	stats Stats
	op    rules.Op
	ads   *rules.Adapters
	cur   learnTo // the Learned handed to adapters, reused
	net   map[netip.Addr]*netHost
	links map[policy.LinkKey]service.ID
	// heard: the learner hears the network (a pipeline's NetHandler
	// events, or a checkpoint with a network section); a learner fed
	// only messages writes no network section.
	heard bool
}

type learnHost struct {
	addr          netip.Addr
	master, slave policy.CodeSet // the protocols it is a master or a device of
	units         policy.CodeSet
	links         policy.Ranges
}

// valueKey is where a value was written: a Modbus table, or 0x80 | a
// DNP3 group (space), and the address or point (at).
type valueKey struct {
	space uint8
	at    uint32
}

type learnPair struct {
	key         policy.PairKey
	units       policy.CodeSet
	linkSrc     policy.Ranges
	linkDst     policy.Ranges
	fc          policy.CodeSet
	read, write [policy.TableHoldingRegisters + 1]policy.Ranges
	objects     []policy.ObjectPoints
	// What the device answered (its responses): Modbus addresses read
	// with data, DNP3 objects and points reported.
	answered    [policy.TableHoldingRegisters + 1]policy.Ranges
	reported    []policy.ObjectPoints
	values      map[valueKey]*policy.ValueRange
	valueOrder  []*policy.ValueRange
	minute      int64 // current minute of packet time
	writes, max uint32
	// The polling rhythm: requests seen, the time of the last, and the
	// longest gap between two (unix ns).
	requests        uint32
	lastReq, maxGap int64
}

// New returns an empty learner.
func New(o Options) *Learner {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxHosts, DefaultMaxHosts)
	def(&o.MaxPairs, DefaultMaxPairs)
	def(&o.MaxRanges, DefaultMaxRanges)
	def(&o.MaxValues, DefaultMaxValues)
	def(&o.MaxObjects, DefaultMaxObjects)
	def(&o.MaxNetHosts, DefaultMaxNetHosts)
	def(&o.MaxLinks, DefaultMaxLinks)
	return &Learner{opts: o, ads: rules.NewAdapters(o.Adapters...), hosts: map[netip.Addr]*learnHost{}, pairs: map[policy.PairKey]*learnPair{},
		net: map[netip.Addr]*netHost{}, links: map[policy.LinkKey]service.ID{}}
}

var (
	_ dpi.Handler   = (*Learner)(nil)
	_ rules.Learner = (*Learner)(nil)
)

// Message implements dpi.Handler: it learns from the requests the adapter
// of f's protocol gives to the rules (rules.UseRules), and ignores
// protocols without an adapter.
func (l *Learner) Message(f *dpi.Flow, from dpi.Side, m any) {
	if ad := l.ads[f.App]; ad != nil && ad.Op(&l.op, f, from, m) == rules.UseRules {
		l.Observe(&l.op)
	}
}

// Stats returns the learner's counters.
func (l *Learner) Stats() Stats { return l.stats }

// Observe learns from one operation: a request, or a response in a
// conversation whose requests were seen.
func (l *Learner) Observe(op *rules.Op) {
	if op.Proto == 0 {
		return
	}
	if !op.Request {
		l.observeResponse(op)
		return
	}
	src, dst := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() {
		return
	}
	hs, hd := l.host(src), l.host(dst)
	if hs == nil || hd == nil {
		l.stats.DroppedHosts++
		return
	}
	p := l.pair(policy.PairKey{Src: src, Dst: dst, Proto: op.Proto})
	if p == nil {
		return
	}
	if l.stats.Requests == 0 {
		l.stats.First = op.Time
	}
	l.stats.Requests++
	l.stats.Last = op.Time
	hs.master.Add(uint8(op.Proto))
	hd.slave.Add(uint8(op.Proto))
	p.fc.Add(op.FC)
	now := op.Time.UnixNano()
	if p.requests > 0 && now > p.lastReq {
		p.maxGap = max(p.maxGap, now-p.lastReq)
	}
	p.requests++
	p.lastReq = max(p.lastReq, now)
	if ad := l.ads[op.Proto]; ad != nil {
		l.cur = learnTo{l: l, p: p, hs: hs, hd: hd}
		ad.Learn(op, &l.cur)
	}
	if op.Class == policy.OpWrite || op.Class == policy.OpControl {
		min := op.Time.UnixNano() / learnWindow
		if min != p.minute {
			p.minute, p.writes = min, 0
		}
		p.writes++
		p.max = max(p.max, p.writes)
	}
}

// observeResponse learns what a device answered its master, in a
// conversation learned from the master's requests.
func (l *Learner) observeResponse(op *rules.Op) {
	master, device := op.Dst.Addr().Unmap(), op.Src.Addr().Unmap()
	p := l.pairs[policy.PairKey{Src: master, Dst: device, Proto: op.Proto}]
	if p == nil {
		return
	}
	if ad := l.ads[op.Proto]; ad != nil {
		l.cur = learnTo{l: l, p: p, hs: l.hosts[master], hd: l.hosts[device]}
		ad.Learn(op, &l.cur)
	}
}

// pair returns the conversation of k, new if need be; nil (counted) when
// the learner holds MaxPairs already.
func (l *Learner) pair(k policy.PairKey) *learnPair {
	p := l.pairs[k]
	if p == nil {
		if len(l.pairs) >= l.opts.MaxPairs {
			l.stats.DroppedPairs++
			return nil
		}
		p = &learnPair{key: k, values: map[valueKey]*policy.ValueRange{}}
		l.pairs[k] = p
		l.order = append(l.order, p)
	}
	return p
}

func (l *Learner) host(a netip.Addr) *learnHost {
	h := l.hosts[a]
	if h == nil {
		if len(l.hosts) >= l.opts.MaxHosts {
			return nil
		}
		h = &learnHost{addr: a}
		l.hosts[a] = h
	}
	return h
}

// learnTo is the Learned of one request: its conversation and hosts.
type learnTo struct {
	l      *Learner
	p      *learnPair
	hs, hd *learnHost
}

func (t *learnTo) Unit(u uint8, device bool) {
	t.p.units.Add(u)
	if device {
		t.hd.units.Add(u)
	}
}

func (t *learnTo) Link(src, dst uint16) {
	l, p := t.l, t.p
	p.linkSrc = l.addRange(p.linkSrc, uint32(src), uint32(src), maxLinkRanges)
	p.linkDst = l.addRange(p.linkDst, uint32(dst), uint32(dst), maxLinkRanges)
	if src < 0xFFF0 {
		t.hs.links = l.addRange(t.hs.links, uint32(src), uint32(src), maxLinkRanges)
	}
	if dst < 0xFFF0 {
		t.hd.links = l.addRange(t.hd.links, uint32(dst), uint32(dst), maxLinkRanges)
	}
}

func (t *learnTo) Addresses(tb policy.Table, write bool, lo, hi uint32) {
	if tb < policy.TableCoils || tb > policy.TableHoldingRegisters {
		return
	}
	rs := &t.p.read[tb]
	if write {
		rs = &t.p.write[tb]
	}
	*rs = t.l.addRange(*rs, lo, hi, t.l.opts.MaxRanges)
}

func (t *learnTo) Points(gv policy.GroupVar, some bool, lo, hi uint32) {
	t.l.addPoints(&t.p.objects, gv, some, lo, hi)
}

func (t *learnTo) Answered(tb policy.Table, lo, hi uint32) {
	if tb < policy.TableCoils || tb > policy.TableHoldingRegisters {
		return
	}
	t.p.answered[tb] = t.l.addRange(t.p.answered[tb], lo, hi, t.l.opts.MaxRanges)
}

func (t *learnTo) Reported(gv policy.GroupVar, some bool, lo, hi uint32) {
	t.l.addPoints(&t.p.reported, gv, some, lo, hi)
}

// addPoints adds object gv, and points lo..hi of it when some, to os.
func (l *Learner) addPoints(os *[]policy.ObjectPoints, gv policy.GroupVar, some bool, lo, hi uint32) {
	j := slices.IndexFunc(*os, func(o policy.ObjectPoints) bool { return o.GroupVar == gv })
	if j < 0 {
		if len(*os) >= l.opts.MaxObjects {
			if !some {
				l.stats.DroppedValues++
			}
			return
		}
		*os = append(*os, policy.ObjectPoints{GroupVar: gv})
		j = len(*os) - 1
	}
	if some {
		(*os)[j].Points = l.addRange((*os)[j].Points, lo, hi, l.opts.MaxRanges)
	}
}

func (t *learnTo) Value(tb policy.Table, g uint8, at uint32, x float64) {
	k := valueKey{uint8(tb), at}
	if tb == 0 {
		k.space = 0x80 | g
	}
	t.l.value(t.p, k, x)
}

func (l *Learner) value(p *learnPair, k valueKey, x float64) {
	if x != x { // NaN
		return
	}
	v := p.values[k]
	if v == nil {
		if len(p.values) >= l.opts.MaxValues {
			l.stats.DroppedValues++
			return
		}
		v = &policy.ValueRange{At: k.at, Min: x, Max: x}
		if k.space&0x80 != 0 {
			v.Group = k.space &^ 0x80
		} else {
			v.Table = policy.Table(k.space)
		}
		p.values[k] = v
		p.valueOrder = append(p.valueOrder, v)
		return
	}
	v.Min, v.Max = min(v.Min, x), max(v.Max, x)
}

// addRange adds lo..hi to rs, keeping at most limit ranges by merging the
// two closest neighbours.
func (l *Learner) addRange(rs policy.Ranges, lo, hi uint32, limit int) policy.Ranges {
	if rs.Covers(lo, hi) {
		return rs
	}
	rs = policy.Normalize(append(rs, policy.Range{Lo: lo, Hi: hi}))
	for len(rs) > limit {
		best := 1
		for i := 2; i < len(rs); i++ {
			if rs[i].Lo-rs[i-1].Hi < rs[best].Lo-rs[best-1].Hi {
				best = i
			}
		}
		rs[best-1].Hi = rs[best].Hi
		rs = slices.Delete(rs, best, best+1)
		l.stats.MergedRanges++
	}
	return rs
}

// Baseline returns what was learned as a policy: one asset per host seen
// (named by role and address, like plc-10-10-1-20, with the Modbus units
// and DNP3 link addresses it answered to or spoke from) and a baseline
// section with one conversation per master, device and protocol. margin
// is the baseline's margin (negative: DefaultMargin). Every built-in
// detector is at its defaults.
func (l *Learner) Baseline(margin float64) *policy.Policy {
	if margin < 0 {
		margin = policy.DefaultMargin
	}
	p := policy.New()
	b := &policy.Baseline{Margin: margin, RateFactor: policy.DefaultRateFactor}
	p.Baseline = b
	hosts := make([]*learnHost, 0, len(l.hosts))
	for _, h := range l.hosts {
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b *learnHost) int { return a.addr.Compare(b.addr) })
	for _, h := range hosts {
		a := policy.Asset{Name: assetName(h), Prefixes: []netip.Prefix{netip.PrefixFrom(h.addr, h.addr.BitLen())}}
		if h.slave.Has(uint8(proto.Modbus)) {
			a.Units = h.units
		}
		for _, r := range h.links {
			if r.Hi < 0xFFF0 {
				a.DNP3 = append(a.DNP3, r)
			}
		}
		p.Assets = append(p.Assets, a)
	}
	pairs := slices.Clone(l.order)
	slices.SortStableFunc(pairs, func(a, b *learnPair) int {
		if c := a.key.Src.Compare(b.key.Src); c != 0 {
			return c
		}
		if c := a.key.Dst.Compare(b.key.Dst); c != 0 {
			return c
		}
		return int(a.key.Proto) - int(b.key.Proto)
	})
	for _, lp := range pairs {
		c := policy.Conversation{
			Proto: lp.key.Proto, Src: lp.key.Src, Dst: lp.key.Dst,
			FC: lp.fc, WritesPerMinute: lp.max,
			LinkSrc: slices.Clone(lp.linkSrc), LinkDst: slices.Clone(lp.linkDst),
		}
		if c.Proto == proto.Modbus {
			c.Units = lp.units
		}
		if lp.requests >= policy.MinPollRequests && lp.maxGap > 0 {
			// Whole milliseconds, rounded up, as the file writes them.
			c.MaxGap = (time.Duration(lp.maxGap) + time.Millisecond - 1).Truncate(time.Millisecond)
		}
		for t := range lp.read {
			c.Read[t] = slices.Clone(lp.read[t])
			c.Write[t] = slices.Clone(lp.write[t])
			c.Answered[t] = slices.Clone(lp.answered[t])
		}
		c.Objects = sortedObjects(lp.objects)
		c.Reported = sortedObjects(lp.reported)
		for _, v := range lp.valueOrder {
			c.Values = append(c.Values, *v)
		}
		slices.SortFunc(c.Values, func(a, b policy.ValueRange) int {
			ka, kb := int64(a.Table)<<40|int64(a.Group)<<32|int64(a.At), int64(b.Table)<<40|int64(b.Group)<<32|int64(b.At)
			return int(min(max(ka-kb, -1), 1))
		})
		b.Conversations = append(b.Conversations, c)
	}
	l.network(p)
	return p
}

// sortedObjects copies os in order of group and variation.
func sortedObjects(os []policy.ObjectPoints) []policy.ObjectPoints {
	var out []policy.ObjectPoints
	for _, o := range os {
		out = append(out, policy.ObjectPoints{GroupVar: o.GroupVar, Points: slices.Clone(o.Points)})
	}
	slices.SortFunc(out, func(a, b policy.ObjectPoints) int {
		return (int(a.Group)<<8 | int(a.Var)) - (int(b.Group)<<8 | int(b.Var))
	})
	return out
}

// assetName names a host by its role and address: master-10-10-1-10,
// plc-10-10-1-20 (a Modbus device), outstation-10-10-1-40 (a DNP3
// device), device-… (a device of other protocols only), host-… when it
// is both a master and a device, or both a Modbus and a DNP3 device.
func assetName(h *learnHost) string {
	var modbus, dnp3 policy.CodeSet
	modbus.Add(uint8(proto.Modbus))
	dnp3.Add(uint8(proto.DNP3))
	role := "host"
	switch {
	case !h.master.Empty() && h.slave.Empty():
		role = "master"
	case h.master.Empty() && h.slave == modbus:
		role = "plc"
	case h.master.Empty() && h.slave == dnp3:
		role = "outstation"
	case h.master.Empty() && !h.slave.Has(uint8(proto.Modbus)) && !h.slave.Has(uint8(proto.DNP3)):
		role = "device"
	}
	return role + "-" + addrName(h.addr)
}

// addrName is an address as asset names write it: 10-10-1-20.
func addrName(a netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(a.String())
}

// Resume adds what a baseline says to what the learner knows, as if it had
// seen it: the hosts of its conversations with their roles, units and DNP3
// link addresses, and each conversation's function codes, addresses,
// objects, value ranges and busiest minute of writes. The daemon resumes
// a learning period interrupted by a restart from the checkpoint it
// wrote with Baseline(0). Widened ranges are taken as they are: resume
// from a baseline learned with margin 0. The learner's bounds apply.
func (l *Learner) Resume(p *policy.Policy) {
	if p == nil || p.Baseline == nil {
		return
	}
	l.resumeNetwork(p.Baseline)
	assets := map[netip.Addr]*policy.Asset{}
	for i := range p.Assets {
		a := &p.Assets[i]
		for _, pr := range a.Prefixes {
			if pr.IsSingleIP() {
				assets[pr.Addr().Unmap()] = a
			}
		}
	}
	seed := func(addr netip.Addr) *learnHost {
		h := l.host(addr)
		if h == nil {
			l.stats.DroppedHosts++
			return nil
		}
		if a := assets[addr]; a != nil {
			for _, r := range a.DNP3 {
				h.links = l.addRange(h.links, r.Lo, r.Hi, maxLinkRanges)
			}
		}
		return h
	}
	for i := range p.Baseline.Conversations {
		c := &p.Baseline.Conversations[i]
		hs, hd := seed(c.Src), seed(c.Dst)
		if hs == nil || hd == nil {
			continue
		}
		hs.master.Add(uint8(c.Proto))
		hd.slave.Add(uint8(c.Proto))
		if c.Proto == proto.Modbus {
			if a := assets[c.Dst]; a != nil {
				hd.units.Union(&a.Units)
			}
		}
		lp := l.pair(policy.PairKey{Src: c.Src, Dst: c.Dst, Proto: c.Proto})
		if lp == nil {
			continue
		}
		lp.fc.Union(&c.FC)
		lp.units.Union(&c.Units)
		for _, r := range c.LinkSrc {
			lp.linkSrc = l.addRange(lp.linkSrc, r.Lo, r.Hi, maxLinkRanges)
		}
		for _, r := range c.LinkDst {
			lp.linkDst = l.addRange(lp.linkDst, r.Lo, r.Hi, maxLinkRanges)
		}
		for t := range c.Read {
			for _, r := range c.Read[t] {
				lp.read[t] = l.addRange(lp.read[t], r.Lo, r.Hi, l.opts.MaxRanges)
			}
			for _, r := range c.Write[t] {
				lp.write[t] = l.addRange(lp.write[t], r.Lo, r.Hi, l.opts.MaxRanges)
			}
			for _, r := range c.Answered[t] {
				lp.answered[t] = l.addRange(lp.answered[t], r.Lo, r.Hi, l.opts.MaxRanges)
			}
		}
		for _, side := range []struct {
			from []policy.ObjectPoints
			to   *[]policy.ObjectPoints
		}{{c.Objects, &lp.objects}, {c.Reported, &lp.reported}} {
			for _, o := range side.from {
				l.addPoints(side.to, o.GroupVar, false, 0, 0)
				for _, r := range o.Points {
					l.addPoints(side.to, o.GroupVar, true, r.Lo, r.Hi)
				}
			}
		}
		for _, v := range c.Values {
			k := valueKey{uint8(v.Table), v.At}
			if v.Group != 0 {
				k.space = 0x80 | v.Group
			}
			l.value(lp, k, v.Min)
			l.value(lp, k, v.Max)
		}
		lp.max = max(lp.max, c.WritesPerMinute)
		if c.MaxGap > 0 {
			// The checkpoint's conversation polled: keep its rhythm, and
			// count it as polling already.
			lp.maxGap = max(lp.maxGap, int64(c.MaxGap))
			lp.requests = max(lp.requests, policy.MinPollRequests)
		}
	}
}
