package rules

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// ---- enforcement ----

// The baseline detectors, in catalogue order.
type baseKind uint8

const (
	bNewMaster baseKind = iota
	bNewConversation
	bNewFunction
	bNewAddress
	bValueRange
	bWriteRate
	bNewHost
	bNewLink
	bNewService
	bNewProtocol
	bSilent
	bNewPoint
	numBaseline
)

var baselineIDs = [numBaseline]string{
	"baseline-new-master", "baseline-new-conversation", "baseline-new-function",
	"baseline-new-address", "baseline-value-range", "baseline-write-rate",
	"baseline-new-host", "baseline-new-link", "baseline-new-service", "baseline-new-protocol",
	"baseline-silent", "baseline-new-point",
}

// CategoryBaseline is the category of the baseline detectors' alerts.
const CategoryBaseline = "baseline"

// BaselineIDs returns the ids of the detectors a baseline drives.
func BaselineIDs() []string { return append([]string(nil), baselineIDs[:]...) }

// Aggregation key addresses of baseline alerts that are not about an
// address.
const (
	keyBaseUnit   = 1 << 20 // + unit id or link address
	keyBaseObject = 1 << 21 // + group<<8 | variation
	keyBasePoint  = 1 << 22 // + a Modbus table<<16 | address, or a DNP3 group<<8 | variation
	keyBaseGone   = 1 << 23 // the same, for what disappeared
)

type valueKey struct {
	space uint8 // Modbus table, or 0x80 | DNP3 group
	at    uint32
}

type pairRun struct {
	c      *policy.Conversation
	values map[valueKey]int // index into c.Values
	rate   policy.Rate
	// baseline-silent: the packet time of its last request (or of the
	// engine's first packet), and whether its silence was reported.
	last   int64
	silent bool
	// baseline-new-point: the last request was a DNP3 class 0 read, which
	// the outstation answers with all its static points.
	class0 bool
}

// baseRun is a baseline compiled for the engine.
type baseRun struct {
	b       *policy.Baseline
	masters map[netip.Addr]struct{}
	pairs   map[policy.PairKey]*pairRun
	on      [numBaseline]bool
	det     [numBaseline]builtinDet

	// What the alert being raised is about, for describe.
	title, expected string

	net *netBase // the network section; nil when the baseline has none (netbase.go)

	polls []*pairRun // the conversations with a polling rhythm, for baseline-silent
}

func idxBaseline(k baseKind) int32 { return -1 - int32(numBuiltin) - int32(k) }

func isBaselineIdx(idx int32) bool { return idx <= -1-int32(numBuiltin) }

func newBaseRun(p *policy.Policy, b *policy.Baseline) *baseRun {
	r := &baseRun{b: b, masters: map[netip.Addr]struct{}{}, pairs: map[policy.PairKey]*pairRun{}}
	any := false
	for k := range numBaseline {
		s, ok := p.Detector(baselineIDs[k])
		cat := policy.LookupDetector(baselineIDs[k])
		if !ok || cat == nil || !s.Enabled {
			continue
		}
		d := &r.det[k]
		d.rule = policy.Rule{ID: s.ID, Name: cat.Name, Severity: s.Severity, Attack: cat.Attack, Enabled: true}
		d.c = compiled{rule: &d.rule, idx: idxBaseline(k)}
		d.window = int64(s.Window)
		r.on[k] = true
		any = true
	}
	if !any {
		return nil
	}
	window := time.Minute
	if s, ok := p.Detector(baselineIDs[bWriteRate]); ok && s.Window > 0 {
		window = s.Window
	}
	for i := range b.Conversations {
		c := &b.Conversations[i]
		r.masters[c.Src] = struct{}{}
		pr := &pairRun{c: c, values: map[valueKey]int{}}
		for j, v := range c.Values {
			pr.values[valueSpace(v)] = j
		}
		limit := math.Ceil(float64(c.WritesPerMinute) * b.RateFactor * float64(window) / float64(time.Minute))
		pr.rate = policy.Rate{Max: uint32(min(max(limit, 1), math.MaxUint32)), Per: window}
		r.pairs[policy.PairKey{Src: c.Src, Dst: c.Dst, Proto: c.Proto}] = pr
		if c.MaxGap > 0 && r.on[bSilent] {
			r.polls = append(r.polls, pr)
		}
	}
	if b.Network {
		r.net = newNetBase(p, b)
	}
	return r
}

func valueSpace(v policy.ValueRange) valueKey {
	if v.Table != 0 {
		return valueKey{space: uint8(v.Table), at: v.At}
	}
	return valueKey{space: 0x80 | v.Group, at: v.At}
}

func (e *Engine) fireBase(k baseKind, op *Op, key aggKey, isValue bool) {
	r := e.base
	c := &r.det[k].c
	key.rule = c.idx
	e.raise(c, op, key, isValue)
}

// baselineChecker is implemented by the adapters of protocols whose
// conversations in a baseline have more than function codes and a write
// rate: it checks op against those fields of pr.
type baselineChecker interface {
	checkBaseline(e *Engine, op *Op, pr *pairRun)
}

// responseChecker is implemented by the adapters of protocols whose
// conversations in a baseline learn what the device answered: it checks
// a response against those fields of pr (baseline-new-point), and its
// addresses against the conversation's (baseline-new-address).
type responseChecker interface {
	checkResponse(e *Engine, op *Op, pr *pairRun)
}

// checkBaseline runs the baseline detectors on a request, and
// baseline-new-point on a response.
func (e *Engine) checkBaseline(op *Op) {
	r := e.base
	if !op.Request {
		if r.on[bNewPoint] || r.on[bNewAddress] {
			if rc, ok := e.ads[op.Proto].(responseChecker); ok {
				if pr := r.pairs[policy.PairKey{Src: op.Dst.Addr().Unmap(), Dst: op.Src.Addr().Unmap(), Proto: op.Proto}]; pr != nil {
					rc.checkResponse(e, op, pr)
				}
			}
		}
		return
	}
	src, dst := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	if _, ok := r.masters[src]; !ok {
		if r.on[bNewMaster] {
			r.title = "New " + op.Proto.Title() + " master " + src.String() + " sends " + fcName(op) + " to " + dst.String()
			r.expected = "only the learned masters send requests"
			e.fireBase(bNewMaster, op, aggKey{src: src}, false)
		}
		return
	}
	pr := r.pairs[policy.PairKey{Src: src, Dst: dst, Proto: op.Proto}]
	if pr == nil {
		if r.on[bNewConversation] {
			r.title = "New conversation: " + src.String() + " sends " + op.Proto.Title() + " " + fcName(op) + " to " + dst.String()
			r.expected = "no " + op.Proto.Title() + " requests from " + src.String() + " to " + dst.String()
			e.fireBase(bNewConversation, op, aggKey{src: src, dst: dst}, false)
		}
		return
	}
	c := pr.c
	pr.last, pr.silent = max(pr.last, op.nano), false
	if r.on[bNewFunction] && !c.FC.Has(op.FC) {
		r.title = "New function code " + fcName(op) + " from " + src.String() + " to " + dst.String()
		r.expected = "fc " + strings.Join(fcTermsPlain(c), ", ")
		e.fireBase(bNewFunction, op, aggKey{src: src, dst: dst, fc: op.FC}, false)
	}
	if bc, ok := e.ads[op.Proto].(baselineChecker); ok {
		bc.checkBaseline(e, op, pr)
	}
	if r.on[bWriteRate] && (op.Class == policy.OpWrite || op.Class == policy.OpControl) {
		if e.countRate(&pr.rate, rateKey{src: src, dst: dst, rule: idxBaseline(bWriteRate)}, op.nano) {
			r.title = "Write rate from " + src.String() + " to " + dst.String() + " far above normal"
			r.expected = formatRate(&pr.rate) + " (learned " + strconv.FormatUint(uint64(c.WritesPerMinute), 10) + " per minute)"
			e.fireBase(bWriteRate, op, aggKey{src: src, dst: dst}, false)
		}
	}
}

func fcName(op *Op) string {
	return "fc " + strconv.Itoa(int(op.FC)) + " (" + opFuncName(op) + ")"
}

func opFuncName(op *Op) string {
	m := policy.Match{Proto: op.Proto}
	m.FC.Set(op.Proto).Add(op.FC)
	return strings.Join(policy.FCTerms(&m), "")
}

func fcTermsPlain(c *policy.Conversation) []string {
	m := policy.Match{Proto: c.Proto}
	*m.FC.Set(c.Proto) = c.FC
	return policy.FCTerms(&m)
}

func rangesText(rs policy.Ranges) string {
	if len(rs) == 0 {
		return "none"
	}
	return strings.ReplaceAll(strings.Join(policy.RangeTerms(rs), ", "), `"`, "")
}

func (e *Engine) valueAlert(op *Op, vr *policy.ValueRange) {
	r := e.base
	src, dst := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	bd := r.b.Widen(vr)
	where := vr.Table.String() + " " + strconv.FormatUint(uint64(vr.At), 10)
	if vr.Table == 0 {
		where = "group " + strconv.Itoa(int(vr.Group)) + " point " + strconv.FormatUint(uint64(vr.At), 10)
	}
	r.title = "Written value " + policy.FormatFloat(e.viol.vals[0]) + " out of learned range at " + where + " of " + dst.String() + " from " + src.String()
	r.expected = policy.FormatFloat(bd.Min) + ".." + policy.FormatFloat(bd.Max) + " (learned " + policy.FormatFloat(vr.Min) + ".." + policy.FormatFloat(vr.Max) + ")"
	k := aggKey{src: src, dst: dst, fc: op.FC, dev: e.ads[op.Proto].Device(op), addr: e.viol.lo}
	e.fireBase(bValueRange, op, k, true)
}

// headerIndexes calls fn with the point indexes object header i of m
// names: from its index prefixes or its start-stop range; none for
// headers that name no indexes (class reads, all points, counts).
func headerIndexes(m *dnp3.Message, i int, fn func(lo, hi uint32) bool) {
	h := &m.Objects[i]
	switch {
	case h.Prefix >= 1 && h.Prefix <= prefixIndexMax:
		m.DecodePoints()
		for _, pt := range headerPoints(m, i) {
			if !fn(pt.Index, pt.Index) {
				return
			}
		}
	case h.HasRange && h.Start <= h.Stop:
		fn(h.Start, h.Stop)
	}
}

func objectsText(os []policy.ObjectPoints) string {
	if len(os) == 0 {
		return "none"
	}
	var parts []string
	for _, o := range os {
		parts = append(parts, policy.GroupVarText(o.GroupVar))
	}
	return strings.Join(parts, ", ")
}

// checkSilence reports the polling conversations whose last request is
// longer ago than rate_factor times the longest gap learned (at least
// that gap plus silenceSlack): a device or master gone quiet, or a link
// cut. Each silence is reported once, until the conversation speaks
// again. A conversation never seen since the engine started counts from
// its first packet.
func (e *Engine) checkSilence(t time.Time) {
	r := e.base
	now := t.UnixNano()
	for _, pr := range r.polls {
		if pr.last == 0 || pr.last > now {
			pr.last = now // the first packet, or packet time went back
			continue
		}
		limit := max(int64(float64(pr.c.MaxGap)*r.b.RateFactor), int64(pr.c.MaxGap+silenceSlack))
		if pr.silent || now-pr.last <= limit {
			continue
		}
		pr.silent = true
		c := pr.c
		op := &e.flowOp
		*op = Op{Time: t, Proto: c.Proto, Src: netip.AddrPortFrom(c.Src, 0), Dst: netip.AddrPortFrom(c.Dst, 0), Request: true}
		silence := time.Duration(now - pr.last).Truncate(time.Second)
		r.title = c.Proto.Title() + " conversation " + c.Src.String() + " to " + c.Dst.String() + " silent for " + policy.FormatDuration(silence)
		r.expected = "a request at least every " + policy.FormatDuration(time.Duration(limit).Truncate(time.Millisecond)) + " (learned gaps up to " + policy.FormatDuration(c.MaxGap) + ")"
		e.fireBase(bSilent, op, aggKey{src: c.Src, dst: c.Dst, addr: uint32(c.Proto)}, false)
	}
}

// silenceSlack is the least a polling conversation may be late before it
// counts as silent: a master skipping one or two polls is no news.
const silenceSlack = 30 * time.Second
