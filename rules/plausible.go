package rules

import (
	"net/netip"
	"strconv"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/internal/lru"
)

// Plausibility of what DNP3 outstations report, with no physics: what
// a point says now against what it said before.
//   - dnp3-counter-backwards: a running counter (group 20) lower than the
//     last value reported, with no restart (IIN1.7) and no freeze-and-clear
//     request since, and no wrap;
//   - dnp3-silent-change: a binary or double-bit input whose static value
//     changed while the outstation, which reports events for that point,
//     reported no event for it since the last static value (and no event
//     buffer overflow, IIN2.3);
//   - dnp3-quality-change: a static point's ONLINE, RESTART or COMM_LOST
//     flag changed.
//
// A response or unsolicited response with the restart indication starts
// the outstation's points afresh. State is bounded: points are kept in
// blocks of pointBlock consecutive indexes of one kind on one outstation,
// in a fixed table that evicts its least recently used block; an
// outstation's restarts and freeze-and-clears are counted in another.

// Table sizes and the block of points.
const (
	blockSlots   = 512 // blocks of pointBlock points: 512 × 64 × 8 bytes
	outSlots     = 256 // outstations: restarts and freeze-and-clears
	pointBlock   = 64
	counterWrap  = 1 << 28 // a counter this close to its top that drops this close to 0 wrapped
	counterWrapS = 1 << 12 // the same, for 16-bit counters
)

// Kinds of points.
const (
	kindBinary  = 1
	kindDouble  = 2
	kindCounter = 3
	kindAnalog  = 4
)

// pointKind classifies a group: the kind of its points, and whether it
// is of events (else static values). 0: not kept.
func pointKind(g uint8) (kind uint8, event bool) {
	switch g {
	case 1:
		return kindBinary, false
	case 2:
		return kindBinary, true
	case 3:
		return kindDouble, false
	case 4:
		return kindDouble, true
	case 20:
		return kindCounter, false
	case 30:
		return kindAnalog, false
	}
	return 0, false
}

// Quality flags of static points.
const (
	flagOnline   = 0x01
	flagRestart  = 0x02
	flagCommLost = 0x04
	qualityFlags = flagOnline | flagRestart | flagCommLost
)

// pointState is what a point said last.
type pointState struct {
	value uint32 // a binary or double-bit state, or a counter
	flags uint8
	bits  uint8 // the pt* bits
}

const (
	ptValue   = 1 << iota // value holds a static value
	ptFlags               // flags holds a static point's flags
	ptEvents              // the outstation reported events for the point
	ptEvented             // an event for it came since its last static value
)

// blockKey names a block: the outstation and its link address, the kind
// of points, and the block (index / pointBlock).
type blockKey struct {
	out   netip.Addr
	link  uint16
	kind  uint8
	block uint32
}

// pointSet is a block of points, and the outstation's restart and
// freeze-and-clear counts when it was last updated.
type pointSet struct {
	restarts, clears uint32
	// The connection that last updated the block, and the gaps in the
	// outstation's stream then: values are compared only over a stream
	// the capture saw whole, lest a lost event look like a silent change.
	flow uint64
	lost uint32
	pts  [pointBlock]pointState
}

// outKey names an outstation.
type outKey struct {
	out  netip.Addr
	link uint16
}

type outState struct{ restarts, clears uint32 }

// plausible is the state of the plausibility detectors.
type plausible struct {
	blocks lru.Table[blockKey, pointSet]
	outs   lru.Table[outKey, outState]
}

func (p *plausible) init(b *builtins, seed uint64) {
	if b.on[dCounterBackwards] || b.on[dSilentChange] || b.on[dQualityChange] {
		p.blocks.Init(blockSlots, seed)
		p.outs.Init(outSlots, seed)
	}
}

func (k *outKey) hash() uint64 { return hashAddr(k.out) ^ uint64(k.link)<<40 }

func (k *blockKey) hash() uint64 {
	return hashAddr(k.out) ^ uint64(k.link)<<40 ^ uint64(k.kind)<<56 ^ uint64(k.block)*0x9e3779b97f4a7c15
}

// checkDNP3Clear counts a freeze-and-clear request: the outstation's
// counters may restart from 0.
func (e *Engine) checkDNP3Clear(op *Op) {
	if m := dnp3Request(op); m != nil {
		k := outKey{op.Dst.Addr(), op.LinkDst}
		ent, _ := e.bi.plaus.outs.Get(&k, k.hash(), op.Time.UnixNano())
		ent.Value.clears++
	}
}

// checkDNP3Plausible compares the points of a response with what they
// said before.
func (e *Engine) checkDNP3Plausible(op *Op) {
	m := dnp3Of(op)
	if m == nil || m.Dir == dnp3.Request || m.Malformed != 0 {
		return
	}
	points, restart := reportsPoints(m), m.IIN&iinRestart != 0
	if !points && !restart {
		return
	}
	p := &e.bi.plaus
	now := op.Time.UnixNano()
	ok := outKey{op.Src.Addr(), op.LinkSrc}
	oe, _ := p.outs.Get(&ok, ok.hash(), now)
	if restart {
		oe.Value.restarts++
	}
	if !points {
		return
	}
	out := oe.Value
	overflow := m.IIN&iinOverflow != 0
	var fid uint64
	var lost uint32
	if f := op.Flow; f != nil {
		fid, lost = f.ID, f.Lost[0]
		if op.Src == f.Server {
			lost = f.Lost[1]
		}
	}
	m.DecodePoints()
	var (
		cur *pointSet
		ck  blockKey
	)
	for i := range m.Objects {
		h := &m.Objects[i]
		kind, event := pointKind(h.Group)
		if kind == 0 {
			continue
		}
		wide := !(h.Group == 20 && (h.Variation == 2 || h.Variation == 6))
		for _, pt := range headerPoints(m, i) {
			k := blockKey{out: ok.out, link: ok.link, kind: kind, block: pt.Index / pointBlock}
			if cur == nil || k != ck {
				if cur != nil {
					cur.flow, cur.lost, cur.clears = fid, lost, out.clears
				}
				ent, found := p.blocks.Get(&k, k.hash(), now)
				cur, ck = &ent.Value, k
				if !found || cur.restarts != out.restarts {
					*cur = pointSet{restarts: out.restarts, clears: out.clears}
				}
			}
			compare := cur.flow == fid && cur.lost == lost && fid != 0
			e.point(op, m, cur, &cur.pts[pt.Index%pointBlock], kind, event, wide, overflow || !compare, &pt, out.clears)
		}
		if cur != nil {
			cur.flow, cur.lost, cur.clears = fid, lost, out.clears
		}
		cur = nil
	}
}

// The three detectors share one pass over a response: the first of them
// that is on makes it.
func (e *Engine) checkCounterBackwards(op *Op) { e.checkDNP3Plausible(op) }

func (e *Engine) checkSilentChange(op *Op) {
	if !e.bi.on[dCounterBackwards] {
		e.checkDNP3Plausible(op)
	}
}

func (e *Engine) checkQualityChange(op *Op) {
	if !e.bi.on[dCounterBackwards] && !e.bi.on[dSilentChange] {
		e.checkDNP3Plausible(op)
	}
}

// point checks one point of a response against its state, and updates it.
//
// blind says the point cannot be judged now: events may have been lost
// (an event buffer overflow, a gap in the stream, another connection).
// The block's state (set) is updated by the caller once it is done with
// the block.
func (e *Engine) point(op *Op, m *dnp3.Message, set *pointSet, ps *pointState, kind uint8, event, wide, blind bool, pt *dnp3.Point, clears uint32) {
	v := uint32(pt.Value)
	if kind == kindAnalog {
		v = 0
	}
	b := &e.bi
	if event {
		ps.bits |= ptEvents | ptEvented
		return
	}
	switch {
	case ps.bits&ptValue == 0 || kind == kindAnalog || blind:
	case kind == kindCounter && v < ps.value && set.clears == clears && b.on[dCounterBackwards] && !wrapped(ps.value, v, wide):
		e.firePoint(dCounterBackwards, op, kind, pt.Index, finding{count: int(v), prev: ps.value})
	case (kind == kindBinary || kind == kindDouble) && v != ps.value && ps.bits&(ptEvents|ptEvented) == ptEvents && b.on[dSilentChange]:
		e.firePoint(dSilentChange, op, kind, pt.Index, finding{count: int(v), prev: ps.value})
	}
	if pt.HasFlags {
		if ps.bits&ptFlags != 0 && !blind && (pt.Flags^ps.flags)&qualityFlags != 0 && m.IIN&iinRestart == 0 && b.on[dQualityChange] {
			e.firePoint(dQualityChange, op, kind, pt.Index, finding{count: int(pt.Flags), prev: uint32(ps.flags)})
		}
		ps.flags = pt.Flags
		ps.bits |= ptFlags
	}
	ps.value = v
	ps.bits = ps.bits&^ptEvented | ptValue
}

// wrapped reports whether a counter that went from prev to v wrapped
// around its top.
func wrapped(prev, v uint32, wide bool) bool {
	if wide {
		return prev > 1<<32-counterWrap && v < counterWrap
	}
	return prev > 1<<16-counterWrapS && v < counterWrapS
}

// reportsPoints reports whether a response carries objects the
// plausibility checks keep.
func reportsPoints(m *dnp3.Message) bool {
	for i := range m.Objects {
		if k, _ := pointKind(m.Objects[i].Group); k != 0 {
			return true
		}
	}
	return false
}

// iinOverflow is IIN2.3, event buffer overflow, in dnp3.Message.IIN.
const iinOverflow = 1 << 11

// firePoint raises detector k about point index of the given kind.
func (e *Engine) firePoint(k detKind, op *Op, kind uint8, index uint32, f finding) {
	f.kind, f.index = kind, index
	e.fireBuiltin(k, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), dev: op.LinkSrc, addr: uint32(kind)<<24 | index&0xFFFFFF}, f)
}

// ---- titles ----

func kindText(kind uint8) string {
	switch kind {
	case kindBinary:
		return "binary input"
	case kindDouble:
		return "double-bit input"
	case kindCounter:
		return "counter"
	}
	return "analog input"
}

func titleCounterBackwards(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	return "DNP3 outstation " + src + linkText(op) + " reports " + kindText(f.kind) + " " + strconv.FormatUint(uint64(f.index), 10) + " at " +
		strconv.Itoa(f.count) + " to " + dst + ", below the " + strconv.FormatUint(uint64(f.prev), 10) + " it reported before, with no restart or freeze-and-clear since"
}

func titleSilentChange(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	return "DNP3 outstation " + src + linkText(op) + " reports " + kindText(f.kind) + " " + strconv.FormatUint(uint64(f.index), 10) + " changed from " +
		strconv.FormatUint(uint64(f.prev), 10) + " to " + strconv.Itoa(f.count) + " to " + dst + " with no event, though it reports events for it"
}

func titleQualityChange(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	return "DNP3 outstation " + src + linkText(op) + " reports the quality of " + kindText(f.kind) + " " + strconv.FormatUint(uint64(f.index), 10) + " to " + dst +
		" changed: " + qualityText(uint8(f.prev)) + " to " + qualityText(uint8(f.count))
}

func qualityText(flags uint8) string {
	s := "offline"
	if flags&flagOnline != 0 {
		s = "online"
	}
	if flags&flagRestart != 0 {
		s += ", restart"
	}
	if flags&flagCommLost != 0 {
		s += ", comm lost"
	}
	return s
}
