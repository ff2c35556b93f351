package rules

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/lru"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Engine defaults.
const (
	DefaultWindow             = time.Minute // aggregation window
	DefaultMaxAlertsPerMinute = 600
	DefaultRateSlots          = 4096 // rate counters (rule, source, destination)
	DefaultAggSlots           = 4096 // alerts being folded (rule, source, destination, key)
	maxSlots                  = 1 << 22
	budgetPeriod              = time.Minute
	timeJump                  = int64(time.Second) // packet time going back further starts a new epoch
)

// EngineOptions tune an Engine. The zero value of each field means its
// default.
type EngineOptions struct {
	// Window is how long repeats of an alert are folded into it (packet
	// time), counted from its first occurrence.
	Window time.Duration
	// MaxAlertsPerMinute is the global budget of new alerts per minute of
	// packet time; further alerts are suppressed and counted. Negative:
	// no budget.
	MaxAlertsPerMinute int
	// RateSlots and AggSlots size the fixed tables of rate counters and of
	// alerts being folded; rounded up to a power of two, at least 4. When
	// both sets a new key may take are full, the least recently used entry
	// of the two is evicted (a folded alert is reported first).
	RateSlots int
	AggSlots  int
	// Learn, when positive, has Learner learn a baseline over this much
	// packet time from the first operation; the engine then enforces it
	// (with margin LearnMargin; 0: policy.DefaultMargin, negative: none)
	// in place of the policy's baseline. Learner is then required: a
	// new learn.Learner with the same Adapters.
	Learn       time.Duration
	LearnMargin float64
	Learner     Learner
	// Adapters are adapters of further protocols, next to Modbus and
	// DNP3 (an adapter replaces the default one of its protocol).
	Adapters []Adapter

	// seed places keys in the engine's tables; 0: a random one. Tests
	// that must not see an eviction fix it: with two sets of four ways a
	// key (lru), a table a quarter full evicted for no seed in a thousand,
	// one half full for one to three in a hundred.
	seed uint64
}

func (o *EngineOptions) setDefaults() error {
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.MaxAlertsPerMinute == 0 {
		o.MaxAlertsPerMinute = DefaultMaxAlertsPerMinute
	}
	if o.RateSlots == 0 {
		o.RateSlots = DefaultRateSlots
	}
	if o.AggSlots == 0 {
		o.AggSlots = DefaultAggSlots
	}
	var errs []error
	if o.Window < policy.MinRatePer || o.Window > policy.MaxRatePer {
		errs = append(errs, fmt.Errorf("alert window %v is outside %v..%v", o.Window, policy.MinRatePer, policy.MaxRatePer))
	}
	if o.RateSlots < 0 || o.RateSlots > maxSlots {
		errs = append(errs, fmt.Errorf("rate slots %d is outside 1..%d", o.RateSlots, maxSlots))
	}
	if o.AggSlots < 0 || o.AggSlots > maxSlots {
		errs = append(errs, fmt.Errorf("aggregation slots %d is outside 1..%d", o.AggSlots, maxSlots))
	}
	return errors.Join(errs...)
}

// EngineStats count what the engine did.
type EngineStats struct {
	Alerts        [policy.SeverityCritical + 1]uint64 // new alerts handed to the sink, by severity (budget alerts included, summaries not)
	Summaries     uint64                              // folded alerts reported again with their count at the end of their window
	Folded        uint64                              // occurrences folded into an alert already reported
	Suppressed    uint64                              // new alerts dropped by the budget
	MaxSeverity   policy.Severity                     // the highest severity that fired, whether reported, folded or suppressed; 0 when nothing fired
	RateEvictions uint64                              // rate counters evicted from full sets
	AggEvictions  uint64                              // folded alerts evicted (and reported) from full sets
	// Evictions of the detectors' own tables.
	SweepEvictions, BindingEvictions, OwnerEvictions, ProbeEvictions                           uint64
	PrintEvictions, UnsolicitedEvictions, PointEvictions, OutstationEvictions, ReplayEvictions uint64
	UnseenEvictions                                                                            uint64
}

// Evictions are the counts of the stats message's evictions, by table;
// tables that never evicted are left out.
func (s EngineStats) Evictions() map[string]uint64 {
	m := map[string]uint64{}
	for _, t := range []struct {
		name string
		n    uint64
	}{{"rate", s.RateEvictions}, {"aggregation", s.AggEvictions}, {"sweep", s.SweepEvictions},
		{"arp_bindings", s.BindingEvictions}, {"arp_owners", s.OwnerEvictions}, {"probes", s.ProbeEvictions},
		{"ics_hosts", s.PrintEvictions}, {"dnp3_unsolicited", s.UnsolicitedEvictions},
		{"dnp3_points", s.PointEvictions}, {"dnp3_outstations", s.OutstationEvictions}, {"dnp3_replay", s.ReplayEvictions},
		{"unseen", s.UnseenEvictions}} {
		if t.n > 0 {
			m[t.name] = t.n
		}
	}
	return m
}

// Engine evaluates the rules of a policy on every decoded operation and
// reports alerts to a sink. It implements dpi.Handler. It allocates
// nothing for an operation that fires no rule. It is not safe for
// concurrent use.
type Engine struct {
	flowOp Op // the op NewFlow makes for a conversation that is not Modbus or DNP3
	// windows finds the counters' windows of packet time (window.go).
	windows windows
	// evidence is the room of the evidence of an alert whose op has no
	// message (finding.evidence).
	evidence [evidenceBytes]byte
	policy   *policy.Policy
	sink     AlertSink
	ads      *Adapters   // by protocol
	links    []*compiled // the rules about links, among rules
	names    assetNames  // the policy's names of addresses, for alerts
	opts     EngineOptions
	window   int64 // ns
	rules    []compiled
	ix       ruleIndex
	memo     []flowMemo // by flow (memo.go)
	opSeq    uint64     // operations that reached a rule
	lists    [maxBuckets][]int32
	scratch  [maxBuckets]*bucket
	op       Op
	viol     Violations
	seed     uint64

	rate lru.Table[rateKey, rateCount]
	agg  lru.Table[aggKey, aggState] // alerts being folded
	// dues holds, earliest first (a binary heap), when the window of each
	// alert being folded ends, so that a sweep finds them without looking
	// through the table. An entry closed or evicted since leaves its due
	// behind; it is dropped when it comes up (aggDue.live).
	dues []aggDue
	// aggFrom is the latest start of a window being folded, or later: a
	// packet earlier than that (the clock went back) makes tick look
	// through the whole table for windows that start after it.
	aggFrom int64
	// expiring is scratch space for the entries a sweep closes.
	expiring []*aggEntry

	// bi are the built-in detectors (builtin.go): they see every decoded
	// message and raise alerts through raise, like rules.
	bi builtins
	// base runs the baseline-* detectors of the policy's baseline
	// (baseline.go); nil without one. learn is the learning in progress
	// of EngineOptions.Learn (enginelearn.go); nil when none.
	base    *baseRun
	learn   *engineLearn
	learned *engineLearn

	nextID    uint64
	nextSweep int64 // packet time (unix ns) of the next sweep of expired state
	// clock is the latest packet time seen (unix ns). When packet time
	// goes back by more than timeJump (the next capture file of a replay,
	// or the same one again), epoch grows and counters of an older epoch
	// start afresh instead of adding the new file's events to the old
	// file's.
	clock     int64
	epoch     uint32
	sweepStep int64

	budgetStart time.Time // start of the budget's current minute; zero before the first alert
	budgetUsed  int
	supMinute   uint64 // suppressed in the current minute
	supFirst    time.Time
	supLast     time.Time

	stats EngineStats
}

var _ dpi.Handler = (*Engine)(nil)

// NewEngine builds an engine for the enabled rules of p (nil: no rules)
// that reports to sink.
func NewEngine(p *policy.Policy, sink AlertSink, opts EngineOptions) (*Engine, error) {
	if sink == nil {
		return nil, errors.New("rules: NewEngine needs an alert sink")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if p == nil {
		p = policy.New()
	}
	e := &Engine{policy: p, sink: sink, opts: opts, window: int64(opts.Window), seed: cmp.Or(opts.seed, rand.Uint64()), ads: NewAdapters(opts.Adapters...)}
	e.sweepStep = min(int64(time.Second), e.window/2)
	e.names = newAssetNames(p)
	for i := range p.Rules {
		r := &p.Rules[i]
		if !r.Enabled {
			continue
		}
		e.rules = append(e.rules, *compileRule(r, int32(len(e.rules)), e.ads))
	}
	for i := range e.rules {
		if e.rules[i].rule.When.Link() {
			// A rule about links is checked at each flow's first
			// payload (links.go), not on messages.
			e.links = append(e.links, &e.rules[i])
			continue
		}
		e.ix.add(&e.rules[i])
	}
	e.memo = make([]flowMemo, memoSlots)
	e.rate.Init(opts.RateSlots, e.seed)
	e.agg.Init(opts.AggSlots, e.seed)
	e.agg.OnEvict = e.reportAgg
	e.bi.init(p, e.seed)
	if p.Baseline != nil {
		e.base = newBaseRun(p, p.Baseline)
	}
	if opts.Learn > 0 {
		if opts.Learner == nil {
			return nil, errors.New("rules: EngineOptions.Learn needs a Learner")
		}
		e.learn = &engineLearn{l: opts.Learner, period: opts.Learn, margin: opts.LearnMargin}
		e.learn.net, _ = opts.Learner.(dpi.NetHandler)
	}
	return e, nil
}

// Policy returns the policy the engine enforces.
func (e *Engine) Policy() *policy.Policy { return e.policy }

// Suppressed is the number of new alerts the budget has suppressed so far.
func (e *Engine) Suppressed() uint64 { return e.stats.Suppressed }

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	s := e.stats
	s.RateEvictions += e.rate.Evictions()
	s.AggEvictions += e.agg.Evictions()
	s.SweepEvictions += e.bi.sweep.Evictions()
	s.BindingEvictions += e.bi.net.binds.Evictions()
	s.OwnerEvictions += e.bi.net.owners.Evictions()
	s.ProbeEvictions += e.bi.net.probes.Evictions()
	s.PrintEvictions += e.bi.integ.prints.Evictions()
	s.UnsolicitedEvictions += e.bi.integ.unsol.Evictions()
	s.PointEvictions += e.bi.plaus.blocks.Evictions()
	s.OutstationEvictions += e.bi.plaus.outs.Evictions()
	s.ReplayEvictions += e.bi.replay.dirs.Evictions()
	s.UnseenEvictions += e.bi.integ.unseen.Evictions()
	return s
}

// Message implements dpi.Handler: the adapter of f's protocol turns m
// into an Op, and says whether the built-in detectors alone see it or the
// rules too. Messages of a protocol without an adapter are ignored.
func (e *Engine) Message(f *dpi.Flow, from dpi.Side, m any) {
	ad := e.ads[f.App]
	if ad == nil {
		return
	}
	use := ad.Op(&e.op, f, from, m)
	if use == UseNone {
		return
	}
	e.op.nano = e.op.Time.UnixNano()
	e.tickAt(e.op.Time, e.op.nano)
	if use == UseTime {
		return
	}
	e.op.memo = nil // whatever the adapter left
	if e.op.Flow != nil && len(e.memo) > 0 {
		e.op.memo = e.memoFor(&e.op)
	}
	if e.bi.active {
		e.detect(&e.op)
	}
	if use == UseRules {
		e.evaluateRules(&e.op)
	}
}

// Evaluate checks the built-in detectors and the rules against one
// operation. Tests that build an Op themselves call it; detectors that
// need the decoded message skip an Op without one.
func (e *Engine) Evaluate(op *Op) {
	op.nano = op.Time.UnixNano()
	e.tickAt(op.Time, op.nano)
	if e.bi.active {
		e.detect(op)
	}
	e.evaluateRules(op)
}

// evaluateRules checks the policy's rules against op; the caller has
// ticked the clock.
func (e *Engine) evaluateRules(op *Op) {
	if e.learn != nil {
		e.learnOp(op)
	}
	if e.base != nil {
		e.checkBaseline(op)
	}
	if len(e.rules) == 0 {
		return
	}
	n := 0
	// The index buckets depend only on the protocol and the two
	// addresses: nearly every message finds them in its flow's memo,
	// read here rather than in a call.
	var bs []*bucket
	if m := op.memo; m != nil && m.hasBuckets {
		bs = m.b[:m.nb]
	} else {
		bs = e.buckets(op)
	}
	for _, b := range bs {
		if b.accepts(op.FC, op.Request) {
			e.lists[n] = b.rules
			n++
		}
	}
	if n == 0 {
		return
	}
	e.opSeq++
	if n == 1 {
		for _, i := range e.lists[0] {
			if c := &e.rules[i]; c.due(op, e.opSeq) {
				e.check(c, op)
			}
		}
		return
	}
	// Merge the lists so that rules fire in file order.
	for {
		best, bi := -1, int32(0)
		for k := range n {
			if l := e.lists[k]; len(l) > 0 && (best < 0 || l[0] < bi) {
				best, bi = k, l[0]
			}
		}
		if best < 0 {
			return
		}
		e.lists[best] = e.lists[best][1:]
		if c := &e.rules[bi]; c.due(op, e.opSeq) {
			e.check(c, op)
		}
	}
}

// buckets returns the index buckets for op, kept in its flow's memo when
// they fit: they depend only on the protocol and the two addresses.
func (e *Engine) buckets(op *Op) []*bucket {
	m := op.memo
	out := e.ix.buckets(op.Proto, op.Src.Addr(), op.Dst.Addr(), e.scratch[:0])
	if m != nil && len(out) <= memoBuckets {
		m.hasBuckets, m.nb = true, uint8(len(out))
		copy(m.b[:], out)
	}
	return out
}

// due reports whether rule c is still to be checked on op, the message
// of sequence seq: it was not yet (a rule can sit in two buckets), and
// op is of a kind it can match. Inlined into the loops: most rules a
// message's buckets list are for other function codes.
func (c *compiled) due(op *Op, seq uint64) bool {
	return c.seen != seq && (!c.reqOnly || op.Request) && c.accepts(op)
}

// check checks rule c, due on op.
func (e *Engine) check(c *compiled, op *Op) {
	c.seen = e.opSeq
	r := c.rule
	ad := e.ads[op.Proto]
	if !matches(ad, &r.When, op) {
		return
	}
	for i := range r.Unless {
		if matches(ad, &r.Unless[i], op) {
			return
		}
	}
	switch {
	case r.Value != nil:
		if e.outOfBounds(r, op) {
			e.fire(c, op, true)
		}
	case r.Rate != nil:
		if e.overRate(c, op) {
			e.fire(c, op, false)
		}
	default:
		e.fire(c, op, false)
	}
}

// Violations collects the values a value rule found out of bounds, with
// their addresses (Adapter.Values).
type Violations struct {
	n      int // values out of bounds (more than are kept)
	vals   [MaxAlertValues]float64
	lo, hi uint32 // their addresses or point indexes
}

// Add records value x, found at address or point index at.
func (v *Violations) Add(at uint32, x float64) {
	if v.n == 0 {
		v.lo, v.hi = at, at
	}
	v.lo, v.hi = min(v.lo, at), max(v.hi, at)
	if v.n < len(v.vals) {
		v.vals[v.n] = x
	}
	v.n++
}

// outOfBounds collects the written values of op that r selects and that
// lie outside its bounds; the adapter of op's protocol knows which values
// a message writes.
func (e *Engine) outOfBounds(r *policy.Rule, op *Op) bool {
	v := &e.viol
	v.n = 0
	if ad := e.ads[op.Proto]; ad != nil {
		ad.Values(r, op, v)
	}
	return v.n > 0
}

// ---- rates ----

// rateKey is what a rate counts per: the rule and the source–destination
// pair (addresses; ports change with every connection).
//
// The fields are ordered so that padding splits the key into runs of at
// most 32 bytes: comparing keys (lru.Table) then loads and compares
// words, where one longer run would call memequal. aggKey and sweepKey
// are laid out the same way.
type rateKey struct {
	src  netip.Addr
	rule int32
	dst  netip.Addr
}

// rateCount approximates a sliding window with two fixed ones: the count
// of the current window of length per, and of the one before, weighted by
// how much of it still lies within per of now. The entry's Last is the
// packet time of the last count.
type rateCount struct {
	epoch     uint32 // the engine's epoch when last counted
	win       int64  // index of the current window: time / per
	cur, prev uint32
}

// rateEntry is an entry of the rate table.
type rateEntry = lru.Entry[rateKey, rateCount]

// rateHash places k in the rate table (by pointer: a copy of the key costs
// more than the hash, on every request).
func rateHash(k *rateKey) uint64 {
	return hashAddr(k.src) ^ bits.RotateLeft64(hashAddr(k.dst), 17) ^ uint64(k.rule)*0x9e3779b97f4a7c15
}

func (e *Engine) overRate(c *compiled, op *Op) bool {
	return e.countRate(c.rule.Rate, rateKey{src: op.Src.Addr(), dst: op.Dst.Addr(), rule: c.idx}, op.nano)
}

// countRate counts one event of key k at packet time now (unix ns) and
// reports whether the events of k exceed r. Rules count per rule, source
// and destination; built-in detectors (negative rule numbers) choose
// their own keys.
func (e *Engine) countRate(r *policy.Rate, k rateKey, now int64) bool {
	ent, found := e.rate.Get(&k, rateHash(&k), now)
	return e.countIn(r, ent, found, now)
}

// countIn counts one event at packet time now in ent, the rate table's
// entry of its key (found: it held the key already, else it is new).
func (e *Engine) countIn(r *policy.Rate, ent *rateEntry, found bool, now int64) bool {
	per := int64(r.Per)
	w := e.windows.index(now, per)
	c := &ent.Value
	if !found {
		*c = rateCount{win: w, epoch: e.epoch}
	}
	switch {
	case c.epoch != e.epoch:
		c.prev, c.cur = 0, 0
		c.win, c.epoch = w, e.epoch
	case w == c.win+1:
		c.prev, c.cur = c.cur, 0
		c.win = w
	case w > c.win+1 || w < c.win-1:
		// Silence for more than a window, or packet time went back by
		// more than one (a new capture file): start afresh.
		c.prev, c.cur = 0, 0
		c.win = w
	}
	// w is c.win or the one before (packets slightly out of time
	// order): count it in the current window.
	if c.cur < math.MaxUint32 {
		c.cur++
	}
	elapsed := max(now-c.win*per, 0)
	est := float64(c.cur)
	if elapsed < per {
		est += float64(c.prev) * float64(per-elapsed) / float64(per)
	}
	return est > float64(r.Max)
}

func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	return binary.LittleEndian.Uint64(b[:8])*0xff51afd7ed558ccd ^ binary.LittleEndian.Uint64(b[8:])
}

// ---- aggregation ----

// aggKey says which occurrences fold into one alert: the same rule, source
// and destination addresses, function code, device (Modbus unit, DNP3
// destination link address) and address (the first offending address of
// a value rule, the starting address otherwise).
type aggKey struct {
	src  netip.Addr
	rule int32
	dst  netip.Addr
	addr uint32
	dev  uint16
	fc   uint8
}

// aggEntry is an alert being folded; its Last is the packet time of the
// last occurrence, for eviction.
type aggEntry = lru.Entry[aggKey, aggState]

type aggState struct {
	rank        uint8  // foldRank of the occurrence the alert reports
	acked       bool   // acknowledged (Acknowledge): repeats are new alerts
	window      int64  // ns: the engine's, or the detector's own window
	alert       *Alert // as first reported
	count       uint64
	fcs         policy.CodeSet // function codes of the occurrences (those that have one)
	first, last time.Time
}

// foldRank orders what an operation can do to a device. A repeat folds
// into an alert only when it ranks no higher than the occurrence the
// alert reports, so that a write after reads, or a restart after writes,
// is never hidden in the count of a lesser alert: it becomes an alert of
// its own. Responses and messages without a function rank lowest. A
// request whose function has no class (a vendor's function outside the
// specification, such as Modbus 90) ranks with writes: it may change
// anything.
func (e *Engine) foldRank(op *Op) uint8 {
	if !op.Request {
		return 0
	}
	switch op.Class {
	case policy.OpRead:
		return 1
	case policy.OpDiagnostic, policy.OpAuth:
		return 2
	case policy.OpWrite, policy.OpFile:
		return 3
	case policy.OpControl:
		return 4
	case policy.OpConfig:
		return 5
	case policy.OpRestart:
		return 6
	}
	if ad := e.ads[op.Proto]; ad != nil && ad.Unclassed(op) {
		return 3
	}
	return 0
}

// hasFunction reports whether op's FC is a function code, not the byte
// where one would be in a message too damaged to have one.
func (e *Engine) hasFunction(op *Op) bool {
	ad := e.ads[op.Proto]
	return ad != nil && ad.HasFunction(op)
}

func (e *Engine) fire(c *compiled, op *Op, isValue bool) {
	k := e.opKey(c, op)
	if isValue {
		k.addr = e.viol.lo
	}
	e.raise(c, op, k, isValue)
}

// opKey is the usual aggregation key of an alert of c about op: source,
// destination, function code, device and starting address.
func (e *Engine) opKey(c *compiled, op *Op) aggKey {
	k := aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), rule: c.idx, fc: op.FC}
	if ad := e.ads[op.Proto]; ad != nil {
		k.dev = ad.Device(op)
	}
	if op.HasAddr {
		k.addr = uint32(op.Addr)
	}
	return k
}

// raise is the one path by which rules and built-in detectors alert: an
// occurrence with aggregation key k folds into the alert of k when that
// is still within its window, and otherwise takes one from the budget and
// becomes a new alert. It reports whether a new alert was emitted.
func (e *Engine) raise(c *compiled, op *Op, k aggKey, isValue bool) bool {
	return e.raiseFinding(c, op, k, isValue, finding{})
}

// raiseFinding is raise for a built-in detector whose check found f.
func (e *Engine) raiseFinding(c *compiled, op *Op, k aggKey, isValue bool, f finding) bool {
	r := c.rule
	e.stats.MaxSeverity = max(e.stats.MaxSeverity, r.Severity)
	now := op.Time
	window := e.window
	if isBaselineIdx(c.idx) {
		if w := e.base.det[-1-int32(numBuiltin)-c.idx].window; w > 0 {
			window = w
		}
	} else if c.idx < 0 {
		if w := e.bi.window(c.idx); w > 0 {
			window = w // a detector with a window of its own
		}
	}
	rank := e.foldRank(op)
	h := aggHash(&k)
	ent, found := e.agg.Lookup(&k, h)
	if found {
		st := &ent.Value
		if d := now.Sub(st.first); d >= 0 && int64(d) < st.window && rank <= st.rank && !st.acked {
			st.count++
			if e.hasFunction(op) {
				st.fcs.Add(op.FC)
			}
			if now.After(st.last) {
				st.last = now
			}
			ent.Last = now.UnixNano()
			e.stats.Folded++
			return false
		}
		// The window is over, op does more than the alert reports, or the
		// alert was acknowledged: the alert is reported with its repeats,
		// and op is a new one.
		e.closeAgg(ent)
	}
	if !e.allow(now) {
		return false
	}
	e.agg.Put(ent, &k, h, now.UnixNano()) // reports the alert it evicts (reportAgg)
	a := e.newAlert(c, op, isValue, f)
	ent.Value = aggState{rank: rank, window: window, alert: a, count: 1, first: now, last: now}
	first := now.UnixNano()
	e.aggFrom = max(e.aggFrom, first)
	e.pushDue(aggDue{at: first + window, id: a.ID, ent: ent})
	if e.hasFunction(op) {
		ent.Value.fcs.Add(op.FC)
	}
	e.emit(a)
	return true
}

// aggHash places k in the aggregation table.
func aggHash(k *aggKey) uint64 {
	return hashAddr(k.src) ^ bits.RotateLeft64(hashAddr(k.dst), 23) ^
		uint64(k.rule)<<40 ^ uint64(k.fc)<<32 ^ uint64(k.dev)<<16 ^ uint64(k.addr)*0x9e3779b97f4a7c15
}

// closeAgg ends the window of an entry (reportAgg) and frees it.
func (e *Engine) closeAgg(ent *aggEntry) {
	e.reportAgg(ent)
	e.agg.Delete(ent)
}

// reportAgg reports an alert whose window ends, or that is evicted: when
// repeats were folded into it, it is reported again with their count,
// and with their function codes when they were not all the alert's.
func (e *Engine) reportAgg(ent *aggEntry) {
	if st := &ent.Value; st.count > 1 {
		s := *st.alert
		s.Count, s.First, s.Last, s.Summary = st.count, st.first, st.last, true
		var own policy.CodeSet
		own.Add(s.FC)
		if st.fcs != own && !st.fcs.Empty() {
			s.FCs = st.fcs.Codes()
		}
		e.stats.Summaries++
		e.sink.Alert(&s)
	}
}

func (e *Engine) emit(a *Alert) {
	e.stats.Alerts[a.Severity]++
	e.sink.Alert(a)
}

func (e *Engine) newID() uint64 {
	e.nextID++
	return e.nextID
}

func (e *Engine) newAlert(c *compiled, op *Op, isValue bool, f finding) *Alert {
	r := c.rule
	a := &Alert{
		ID: e.newID(), Rule: r.ID, Severity: r.Severity, Category: CategoryPolicy, Title: r.Name, Attack: r.Attack,
		Proto: op.Proto, Src: op.Src, Dst: op.Dst, FC: op.FC, Expected: c.expected,
		Count: 1, First: op.Time, Last: op.Time, Frame: op.Frame,
		SrcAsset: e.names.of(op.Src.Addr()), DstAsset: e.names.of(op.Dst.Addr()),
	}
	if isBaselineIdx(c.idx) {
		a.Category, a.Title, a.Expected = CategoryBaseline, e.base.title, e.base.expected
	} else if c.idx < 0 {
		// A built-in detector: its category, and a title about this op.
		a.Category, a.Title = e.bi.describe(c.idx, op, f)
	}
	if a.Title == "" {
		a.Title = r.ID
	}
	if f := op.Flow; f != nil {
		a.VLAN, a.Transport = f.VLAN, f.Transport
		a.SrcMAC, a.DstMAC = f.ClientMAC, f.ServerMAC
		if op.Src != f.Client {
			a.SrcMAC, a.DstMAC = f.ServerMAC, f.ClientMAC
		}
	}
	if ad := e.ads[op.Proto]; ad != nil {
		a.ad = ad
		ad.Alert(a, op, !isValue)
	}
	if len(f.evidence) > 0 {
		setEvidence(a, f.evidence)
	}
	if isValue {
		v := &e.viol
		a.HasAddr, a.AddrLo, a.AddrHi = true, v.lo, v.hi
		a.Values = append([]float64(nil), v.vals[:min(v.n, len(v.vals))]...)
	}
	return a
}

// ---- budget ----

// allow takes one new alert from the budget of the current minute, or
// counts it as suppressed.
func (e *Engine) allow(now time.Time) bool {
	if e.opts.MaxAlertsPerMinute < 0 {
		return true
	}
	if e.budgetStart.IsZero() {
		e.budgetStart = now
	} else if d := now.Sub(e.budgetStart); d < 0 || d >= budgetPeriod {
		e.endBudgetMinute()
		e.budgetStart = now
	}
	if e.budgetUsed < e.opts.MaxAlertsPerMinute {
		e.budgetUsed++
		return true
	}
	if e.supMinute == 0 {
		e.supFirst = now
	}
	e.supMinute++
	e.supLast = now
	e.stats.Suppressed++
	return false
}

// endBudgetMinute closes the budget's minute: when alerts were suppressed
// in it, one alert says how many.
func (e *Engine) endBudgetMinute() {
	if e.supMinute > 0 {
		n := strconv.FormatUint(e.supMinute, 10)
		a := &Alert{
			ID: e.newID(), Rule: BudgetRule, Severity: policy.SeverityHigh, Category: CategorySystem,
			Title:    "Alert budget exceeded: " + n + " alerts suppressed",
			Expected: "at most " + strconv.Itoa(e.opts.MaxAlertsPerMinute) + " alerts per minute",
			Count:    e.supMinute, First: e.supFirst, Last: e.supLast,
		}
		e.stats.MaxSeverity = max(e.stats.MaxSeverity, a.Severity)
		e.emit(a)
	}
	e.budgetUsed, e.supMinute = 0, 0
	e.budgetStart = time.Time{}
}

// ---- time ----

// tick runs the periodic work due at packet time t: folded alerts whose
// window ended are reported, and so is a budget minute that ended with
// suppressed alerts.
func (e *Engine) tick(t time.Time) { e.tickAt(t, t.UnixNano()) }

// tickAt is tick of a time whose UnixNano the caller has: now.
func (e *Engine) tickAt(t time.Time, now int64) {
	if now > e.clock {
		e.clock = now
	} else if now < e.clock-timeJump {
		e.epoch++
		e.clock = now
	}
	if e.bi.integ.npending > 0 {
		e.duePending(now)
	}
	if now < e.nextSweep && now > e.nextSweep-2*e.sweepStep {
		return
	}
	e.nextSweep = now + e.sweepStep
	switch {
	case e.agg.Len() == 0:
	case now < e.aggFrom:
		// The clock went back: windows that start after now end too.
		from := int64(math.MinInt64)
		e.closeExpired(func(ent *aggEntry) bool {
			st := &ent.Value
			d := t.Sub(st.first)
			if d < 0 || int64(d) >= st.window {
				return true
			}
			from = max(from, st.first.UnixNano())
			return false
		})
		e.aggFrom = from
	case len(e.dues) > 0 && e.dues[0].at <= now:
		e.closeDue(now)
	}
	if e.supMinute > 0 {
		if d := t.Sub(e.budgetStart); d < 0 || d >= budgetPeriod {
			e.endBudgetMinute()
		}
	}
	if e.base != nil && len(e.base.polls) > 0 {
		e.checkSilence(t)
	}
}

// Acknowledge marks the alerts being folded as seen by someone who acts
// on them (the box's button): a repeat of one of them is no longer folded
// into it, out of sight until the end of its window, but becomes a new
// alert, so that activity after the acknowledgement is news.
func (e *Engine) Acknowledge() {
	ents := e.agg.Entries()
	for i := range ents {
		if ents[i].Used() {
			ents[i].Value.acked = true
		}
	}
}

// Flush reports what the engine holds: folded alerts with repeats, and
// the budget alert of the current minute. Call it at the end of a capture.
func (e *Engine) Flush() {
	for e.bi.integ.npending > 0 {
		e.reportPending(0) // the capture ended before the responses could come
	}
	e.closeExpired(func(*aggEntry) bool { return true })
	e.endBudgetMinute()
}

// closeExpired closes the entries for which expired is true, in the order
// their alerts were first reported.
func (e *Engine) closeExpired(expired func(*aggEntry) bool) {
	list := e.expiring[:0]
	ents := e.agg.Entries()
	for i := range ents {
		if ent := &ents[i]; ent.Used() && expired(ent) {
			list = append(list, ent)
		}
	}
	e.closeList(list)
	if e.agg.Len() == 0 {
		clear(e.dues)
		e.dues = e.dues[:0]
	}
}

// closeDue closes the entries whose window ended by now, in the order
// their alerts were first reported, as closeExpired would, taking them
// from the top of dues.
func (e *Engine) closeDue(now int64) {
	list := e.expiring[:0]
	for len(e.dues) > 0 && e.dues[0].at <= now {
		d := e.popDue()
		if d.live() {
			list = append(list, d.ent)
		}
	}
	e.closeList(list)
}

func (e *Engine) closeList(list []*aggEntry) {
	slices.SortFunc(list, func(a, b *aggEntry) int { return cmp.Compare(a.Value.alert.ID, b.Value.alert.ID) })
	for i, ent := range list {
		e.closeAgg(ent)
		list[i] = nil
	}
	e.expiring = list[:0]
}

// aggDue is when the window of the alert id, folded in ent, ends.
type aggDue struct {
	at  int64 // unix ns
	id  uint64
	ent *aggEntry
}

// live reports whether ent still folds the alert d was pushed for.
func (d *aggDue) live() bool {
	st := &d.ent.Value
	return d.ent.Used() && st.alert != nil && st.alert.ID == d.id && st.first.UnixNano()+st.window == d.at
}

// pushDue adds d to the heap. The heap holds at most twice as many dues
// as the table has entries: past that, the dues of entries closed or
// evicted are dropped first, which leaves at most one for each entry.
func (e *Engine) pushDue(d aggDue) {
	if len(e.dues) >= 2*len(e.agg.Entries()) {
		live := e.dues[:0]
		for _, x := range e.dues {
			if x.live() {
				live = append(live, x)
			}
		}
		clear(e.dues[len(live):])
		e.dues = live
		for i := len(e.dues)/2 - 1; i >= 0; i-- {
			e.siftDown(i)
		}
	}
	e.dues = append(e.dues, d)
	for i := len(e.dues) - 1; i > 0; {
		p := (i - 1) / 2
		if e.dues[p].at <= e.dues[i].at {
			break
		}
		e.dues[p], e.dues[i] = e.dues[i], e.dues[p]
		i = p
	}
}

func (e *Engine) popDue() aggDue {
	top := e.dues[0]
	n := len(e.dues) - 1
	e.dues[0] = e.dues[n]
	e.dues[n] = aggDue{}
	e.dues = e.dues[:n]
	e.siftDown(0)
	return top
}

func (e *Engine) siftDown(i int) {
	h := e.dues
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1].at < h[c].at {
			c++
		}
		if h[i].at <= h[c].at {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// ---- reload ----

// TakeOver carries over to e, an engine built on a reloaded policy, the
// state of old, the engine it replaces, that is still valid under the new
// policy, so that a reload neither forgets what was counting towards an
// alert nor raises again what is being folded:
//
//   - the rate counters of the rules whose id, when, unless and rate.per
//     are unchanged, and of the detectors whose window or rate.per is;
//   - the alerts being folded of the rules and detectors that are
//     unchanged altogether, acknowledged or not; the others are reported
//     with their repeats, as Flush would;
//   - what the detectors remember: the code sets of recon-sweep and
//     exception-storm, the addresses new-asset reported, the hosts
//     public-address knows as OT;
//   - the budget's minute, the alert numbers, the counters, and the
//     packet clock.
//
// The learning of EngineOptions.Learn is not carried over. TakeOver runs
// on the goroutine that owns both engines, before e is handed its first
// operation; old must not be used afterwards. It allocates, once.
func (e *Engine) TakeOver(old *Engine) {
	for old.bi.integ.npending > 0 {
		old.reportPending(0) // confirms waiting for a response: judged now
	}
	c := carry{old: old, e: e, ids: make(map[string]int32, len(e.rules))}
	for i := range e.rules {
		c.ids[e.rules[i].rule.ID] = int32(i)
	}
	old.closeExpired(func(ent *aggEntry) bool {
		_, ok := c.rule(ent.Key.rule, false)
		return !ok
	})
	e.seed = old.seed // the tables place keys as old's do
	e.rate.Reset(e.seed)
	e.agg.Reset(e.seed)
	e.clock, e.epoch, e.nextSweep = old.clock, old.epoch, old.nextSweep
	e.nextID, e.stats = old.nextID, old.Stats()
	e.budgetStart, e.budgetUsed, e.supMinute, e.supFirst, e.supLast = old.budgetStart, old.budgetUsed, old.supMinute, old.supFirst, old.supLast
	e.agg.Refill(old.agg.Entries(), func(k *aggKey) (uint64, bool) {
		k.rule, _ = c.rule(k.rule, false)
		return aggHash(k), true
	}, func(slot, from *lru.Entry[aggKey, aggState], k *aggKey, h uint64) {
		e.agg.Put(slot, k, h, from.Last)
		slot.Value = from.Value
		if st := &slot.Value; st.alert != nil {
			first := st.first.UnixNano()
			e.aggFrom = max(e.aggFrom, first)
			e.pushDue(aggDue{at: first + st.window, id: st.alert.ID, ent: slot})
		}
	})
	e.rate.Refill(old.rate.Entries(), func(k *rateKey) (uint64, bool) {
		var ok bool
		k.rule, ok = c.rule(k.rule, true)
		return rateHash(k), ok
	}, func(slot, from *lru.Entry[rateKey, rateCount], k *rateKey, h uint64) {
		if slot.Used() && slot.Last >= from.Last {
			return // keep the more recent counter
		}
		e.rate.Put(slot, k, h, from.Last)
		slot.Value = from.Value
	})
	if !e.bi.sweep.CopyFrom(&old.bi.sweep) {
		e.bi.sweep.Reset(e.seed)
	}
	e.bi.reported.CopyFrom(&old.bi.reported.Table)
	e.bi.ot.CopyFrom(&old.bi.ot.Table)
	// What the integrity detectors know of hosts, associations and
	// points carries over; a table a detector turned on or off starts
	// afresh. Confirms still waiting were reported above.
	e.bi.integ.prints.CopyFrom(&old.bi.integ.prints)
	if e.bi.integ.unsol.CopyFrom(&old.bi.integ.unsol) {
		e.bi.integ.seed = old.bi.integ.seed // the hashes it holds
	}
	e.bi.integ.unseen.CopyFrom(&old.bi.integ.unseen)
	if e.bi.plaus.blocks.CopyFrom(&old.bi.plaus.blocks) {
		e.bi.plaus.seed = old.bi.plaus.seed // the settled blocks' digests
	}
	e.bi.plaus.outs.CopyFrom(&old.bi.plaus.outs)
	if e.bi.replay.dirs.CopyFrom(&old.bi.replay.dirs) {
		e.bi.replay.seed = old.bi.replay.seed
	}
}

// carry maps the rule numbers of an engine being replaced to those of its
// replacement.
type carry struct {
	old, e *Engine
	ids    map[string]int32 // e's rule numbers by id
}

// rule returns e's number for old's rule or detector idx, and whether
// what old holds for it stays valid in e: its counts (for counts), or its
// alerts being folded.
func (c *carry) rule(idx int32, counts bool) (int32, bool) {
	switch {
	case idx >= 0:
		r := c.old.rules[idx].rule
		n, ok := c.ids[r.ID]
		if !ok {
			return 0, false
		}
		nr := c.e.rules[n].rule
		if counts {
			return n, r.Rate != nil && nr.Rate != nil && r.Rate.Per == nr.Rate.Per &&
				reflect.DeepEqual(r.When, nr.When) && reflect.DeepEqual(r.Unless, nr.Unless)
		}
		return n, reflect.DeepEqual(r, nr)
	case isBaselineIdx(idx):
		if c.old.base == nil || c.e.base == nil {
			return 0, false
		}
		k := -1 - int32(numBuiltin) - idx
		return idx, c.old.base.on[k] && c.e.base.on[k] && sameDetector(&c.old.base.det[k], &c.e.base.det[k], counts)
	default:
		k := -1 - idx
		return idx, c.old.bi.on[k] && c.e.bi.on[k] && sameDetector(&c.old.bi.det[k], &c.e.bi.det[k], counts)
	}
}

// sameDetector reports whether a detector's counts (for counts: its
// window and rate.per) or its alerts (all its settings) stay valid.
func sameDetector(a, b *builtinDet, counts bool) bool {
	if a.window != b.window || (a.rule.Rate == nil) != (b.rule.Rate == nil) || a.rule.Rate != nil && a.rule.Rate.Per != b.rule.Rate.Per {
		return false
	}
	return counts || reflect.DeepEqual(a.rule, b.rule)
}
