package rules

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
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

// pointState is what a point said last, in one word so that the pass
// over a poll compares a point in one step: its value (a binary or
// double-bit state, or a counter) in the low 32 bits, its flags octet in
// the next 8, its pt* bits in the 8 above those.
type pointState uint64

func (p pointState) value() uint32 { return uint32(p) }
func (p pointState) flags() uint8  { return uint8(p >> 32) }
func (p pointState) bits() uint8   { return uint8(p >> 40) }

func (p *pointState) set(b uint8)   { *p |= pointState(b) << 40 }
func (p *pointState) clear(b uint8) { *p &^= pointState(b) << 40 }

// state is the word of a point with value v, flags f and the pt* bits b.
func state(v uint32, f, b uint8) pointState {
	return pointState(v) | pointState(f)<<32 | pointState(b)<<40
}

// stateMask keeps, of a point's word, its value, its flags and the pt*
// bits b.
func stateMask(b uint8) pointState { return state(^uint32(0), 0xff, b) }

const (
	ptValue   = 1 << iota // value holds a static value
	ptFlags               // flags holds a static point's flags
	ptEvents              // the outstation reported events for the point
	ptEvented             // an event for it came since its last static value
	ptSuspect             // its static value changed with no event: judged at the next answer
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
	// Where the answer that last updated the block came: values are
	// compared only over a stream the capture saw whole, lest a lost
	// event look like a silent change.
	mark streamMark
	// settled, when not 0, is the digest (statics.digest) of the static
	// values the block's points last reported, in a pass that left
	// every one of them settled: a value known, none suspected, no event
	// pending. Nothing has touched the block since (events and a reset
	// clear it), so the same values again change nothing, and the pass
	// skips them.
	settled uint64
	// quiet has bit j set when point j holds a value and flags, from a
	// layout of flags octets (flagsOnly), and is neither suspected nor
	// has an event since: a static value whose flags octet is raw[j]
	// again changes nothing. Only the pass over flags octets sets it;
	// any other that changes points clears it.
	quiet uint64
	raw   [pointBlock]uint8
	pts   [pointBlock]pointState
}

// outKey names an outstation.
type outKey struct {
	out  netip.Addr
	link uint16
}

type outState struct {
	restarts, clears uint32
	allClasses       bool // the last read asked for class 0 and every event class
}

// plausible is the state of the plausibility detectors.
type plausible struct {
	blocks lru.Table[blockKey, pointSet]
	outs   lru.Table[outKey, outState]
	seed   maphash.Seed // of pointSet.settled
}

func (p *plausible) init(b *builtins, seed uint64) {
	if b.on[dCounterBackwards] || b.on[dSilentChange] || b.on[dQualityChange] {
		p.blocks.Init(blockSlots, seed)
		p.outs.Init(outSlots, seed)
		p.seed = maphash.MakeSeed()
	}
}

// The link address, kind and block are spread over the word by a
// multiplication: shifted into place they would land on the bytes of an
// IPv4 address's hash, and an outstation's kinds would take the hashes of
// its neighbours' (10.0.0.41's binaries that of 10.0.0.40's analogs),
// filling one set of the table while others stay empty.
func (k *outKey) hash() uint64 { return hashAddr(k.out) ^ uint64(k.link)*0x9e3779b97f4a7c15 }

func (k *blockKey) hash() uint64 {
	return hashAddr(k.out) ^ (uint64(k.link)|uint64(k.kind)<<16|uint64(k.block)<<24)*0x9e3779b97f4a7c15
}

// checkDNP3Clear notes a request: a freeze-and-clear lets the
// outstation's counters start again; a read that asks for class 0 and
// every event class makes its answer one the silent-change check can
// judge (the events come before the static values).
func (e *Engine) checkDNP3Clear(op *Op) {
	m := dnp3Request(op)
	if m == nil {
		return
	}
	k := outKey{op.Dst.Addr(), op.LinkDst}
	switch m.FC {
	case dnp3.FuncFreezeClear, dnp3.FuncFreezeClearNR:
		ent, _ := e.bi.plaus.outs.Get(&k, k.hash(), op.nano)
		ent.Value.clears++
	case dnp3.FuncRead:
		all := readsAllClasses(m)
		if ent := e.bi.plaus.outs.Find(&k, k.hash()); ent != nil {
			ent.Value.allClasses = all
		} else if all {
			ent, _ := e.bi.plaus.outs.Get(&k, k.hash(), op.nano)
			ent.Value.allClasses = true
		}
	}
}

// readsAllClasses reports whether a read asks for class 0 and classes 1,
// 2 and 3 (objects 60/1-4).
func readsAllClasses(m *dnp3.Message) bool {
	var classes uint8
	for i := range m.Objects {
		if h := &m.Objects[i]; h.Group == 60 && h.Variation >= 1 && h.Variation <= 4 {
			classes |= 1 << (h.Variation - 1)
		}
	}
	return classes == 0xF
}

// objLayout is how the objects of a static or event variation lie in the
// fragment: stride octets each (0: packed, bits each), the flags octet
// first when flags, then the value (valueLen octets, little-endian; 0:
// the state in the flags or the packed bits).
type objLayout struct {
	stride, bits, valueLen uint8
	flags                  bool
}

// layoutOf is the layout of the variations the checks read; ok false for
// the others.
func layoutOf(g, v uint8) (objLayout, bool) {
	switch g {
	case 1, 3: // binary and double-bit inputs: packed, or a flags octet
		switch v {
		case 1:
			return objLayout{bits: 1 + g/3}, true // 1 bit (group 1), 2 bits (group 3)
		case 2:
			return objLayout{stride: 1, flags: true}, true
		}
	case 2, 4: // their events: the flags octet, then a time
		switch v {
		case 1:
			return objLayout{stride: 1, flags: true}, true
		case 2:
			return objLayout{stride: 7, flags: true}, true
		case 3:
			return objLayout{stride: 3, flags: true}, true
		}
	case 20: // counters
		switch v {
		case 1:
			return objLayout{stride: 5, flags: true, valueLen: 4}, true
		case 2:
			return objLayout{stride: 3, flags: true, valueLen: 2}, true
		case 5:
			return objLayout{stride: 4, valueLen: 4}, true
		case 6:
			return objLayout{stride: 2, valueLen: 2}, true
		}
	case 30: // analog inputs: only their flags are read
		switch v {
		case 1, 5:
			return objLayout{stride: 5, flags: true}, true
		case 2:
			return objLayout{stride: 3, flags: true}, true
		case 6:
			return objLayout{stride: 9, flags: true}, true
		}
	}
	return objLayout{}, false
}

// checkDNP3Plausible compares the points of a response with what they
// said before. It reads the object data of the fragment directly: the
// generic point decoder costs several times more.
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
	now := op.nano
	ok := outKey{op.Src.Addr(), op.LinkSrc}
	oe, _ := p.outs.Get(&ok, ok.hash(), now)
	if restart {
		oe.Value.restarts++
	}
	if !points {
		return
	}
	out := oe.Value
	var pc pass
	pc.op, pc.m = op, m
	pc.out = out
	pc.blind = m.IIN&iinOverflow != 0
	pc.judge = m.Dir == dnp3.Response && out.allClasses
	pc.mark = markOf(op.Flow)
	frag := m.Fragment
	for i := range m.Objects {
		h := &m.Objects[i]
		kind, event := pointKind(h.Group)
		if kind == 0 || h.Size <= 0 || h.Offset+h.Size > len(frag) {
			continue
		}
		lay, ok := layoutOf(h.Group, h.Variation)
		if !ok {
			continue
		}
		pc.kind, pc.lay = kind, lay
		pc.wide = !(h.Group == 20 && (h.Variation == 2 || h.Variation == 6))
		data := frag[h.Offset : h.Offset+h.Size]
		switch {
		case event && h.Prefix >= 1 && h.Prefix <= 3:
			e.events(&pc, h, data)
		case !event && h.Prefix == 0 && h.HasRange:
			e.statics(&pc, h, data)
		}
		pc.leave()
	}
}

// pass is one response's walk over its points.
type pass struct {
	op           *Op
	m            *dnp3.Message
	out          outState
	kind         uint8
	lay          objLayout
	wide         bool       // a 32-bit counter
	blind, judge bool       // events may be lost; the response answers a read of every class
	mark         streamMark // where the response came
	cur          *pointSet
	ck           blockKey
	compare      bool // the current block was last updated over this stream
}

// block makes the block of index of the pass's kind current.
func (e *Engine) block(pc *pass, index uint32) *pointSet {
	k := blockKey{out: pc.op.Src.Addr(), link: pc.op.LinkSrc, kind: pc.kind, block: index / pointBlock}
	if pc.cur != nil && k.block == pc.ck.block {
		return pc.cur
	}
	pc.leave()
	ent, found := e.bi.plaus.blocks.Get(&k, k.hash(), pc.op.nano)
	set := &ent.Value
	if !found || set.restarts != pc.out.restarts {
		*set = pointSet{restarts: pc.out.restarts, clears: pc.out.clears}
	}
	pc.cur, pc.ck = set, k
	pc.compare = pc.mark.sameStream(set.mark)
	return set
}

// leave records what the current block was last updated over.
func (pc *pass) leave() {
	if pc.cur != nil {
		pc.cur.mark, pc.cur.clears = pc.mark, pc.out.clears
		pc.cur = nil
	}
}

// events notes the events of a prefixed header: each point they name
// reported an event.
func (e *Engine) events(pc *pass, h *dnp3.ObjectHeader, data []byte) {
	pre := int(h.Prefix) // 1, 2 or 4 octets: prefix codes 1, 2, 3
	if pre == 3 {
		pre = 4
	}
	step := pre + int(pc.lay.stride)
	for off := 0; off+step <= len(data); off += step {
		var index uint32
		for j := pre - 1; j >= 0; j-- {
			index = index<<8 | uint32(data[off+j])
		}
		set := e.block(pc, index)
		set.pts[index%pointBlock].set(ptEvents | ptEvented)
		set.settled = 0
		set.quiet &^= 1 << (index % pointBlock)
	}
}

// skipSettled lets statics skip settled and quiet blocks; tests turn it
// off to compare.
var skipSettled = true

// statics checks the static values of a range header, a block of
// points at a time. Most points of a poll have not changed:
//   - in a layout of flags octets alone (binary and double-bit inputs
//     with flags; analog inputs, whose values are not kept), a block
//     whose points are quiet (pointSet.quiet) and whose flags octets are
//     those it holds is skipped: their values follow from the octets;
//     so are such points in a block with a change (quietRun);
//   - in another layout, a block whose points say, in the same layout,
//     what they said when last left settled is skipped
//     (pointSet.settled);
//   - in a block that is not skipped, a point that says what it said
//     before only has its "event since" mark cleared, a short path, one
//     loop per layout.
func (e *Engine) statics(pc *pass, h *dnp3.ObjectHeader, data []byte) {
	lay := pc.lay
	stride := int(lay.stride)
	n := h.Count
	// Only whole objects: the header's count may promise more.
	if lay.bits > 0 {
		n = min(n, uint32(len(data)*8/int(lay.bits)))
	} else {
		n = min(n, uint32(len(data)/stride))
	}
	mask := uint32(1)<<lay.bits - 1
	for i := uint32(0); i < n; {
		set := e.block(pc, h.Start+i)
		first := (h.Start + i) % pointBlock
		end := min(n, i+pointBlock-first)
		pts := set.pts[first : first+(end-i)]
		span := spanMask(first, end-i)
		if lay.flagsOnly() {
			if set.quiet&span == span && skipSettled && sameRaw(set.raw[first:first+(end-i)], data[int(i)*stride:int(end)*stride], stride) {
				i = end
				continue
			}
			vm := flagValue(2) // a binary input's state: bit 7
			switch pc.kind {
			case kindDouble:
				vm = 4 // bits 7 and 6
			case kindAnalog:
				vm = 0 // none
			}
			// After the pass, every point that is not suspected holds
			// this answer's flags octet, the value it gives, and no
			// event since: quiet.
			quiet := set.quiet >> first // before the pass: bit k is pts[k]'s
			if !skipSettled {
				quiet = 0
			}
			set.settled = 0
			set.quiet |= span
			raw := set.raw[first : first+(end-i)]
			for k := 0; k < len(pts); k++ {
				// Quiet points whose octet is raw again change nothing
				// (pointSet.quiet): a block with a change in it is
				// mostly those, skipped eight at a time.
				k += quietRun(quiet>>k, raw[k:], data[(int(i)+k)*stride:int(end)*stride], stride)
				if k == len(pts) {
					break
				}
				at := (int(i) + k) * stride
				k += sameFlags(pts[k:], raw[k:], data[at:int(end)*stride], stride, vm)
				if k == len(pts) {
					break
				}
				flags := data[(int(i)+k)*stride]
				raw[k] = flags
				e.point(pc, set, &pts[k], h.Start+i+uint32(k), vm.value(flags), flags)
				if pts[k].bits()&ptSuspect != 0 {
					set.quiet &^= 1 << (first + uint32(k))
				}
			}
			i = end
			continue
		}
		digest := e.digest(lay, first, i, end, data)
		if set.settled == digest && skipSettled {
			i = end
			continue
		}
		set.settled = 0
		set.quiet &^= span
		if lay.bits > 0 { // packed states, no flags
			for j := range pts {
				bit := int(i) * int(lay.bits)
				v := uint32(data[bit>>3]>>(bit&7)) & mask
				// No flags in the layout: the value and the bits.
				if ps := &pts[j]; *ps&state(^uint32(0), 0, ptValue|ptSuspect) != state(v, 0, ptValue) {
					e.point(pc, set, ps, h.Start+i, v, 0)
				} else {
					ps.clear(ptEvented)
				}
				i++
			}
		} else { // a value, after the flags octet if any
			for k := 0; k < len(pts); k++ {
				at := (int(i) + k) * stride
				k += sameValues(pts[k:], data[at:int(end)*stride], lay)
				if k == len(pts) {
					break
				}
				o := data[(int(i)+k)*stride:]
				flags, v := lay.valueAt(o)
				e.point(pc, set, &pts[k], h.Start+i+uint32(k), v, flags)
			}
			i = end
		}
		if settled(pts) {
			set.settled = digest
		}
	}
}

// flagsOnly reports whether the layout's objects are a flags octet that
// says all the checks keep of them (a binary or double-bit input's state
// is in it; an analog input's value is not kept).
func (lay objLayout) flagsOnly() bool { return lay.bits == 0 && lay.valueLen == 0 }

// spanMask has bits first to first+n-1 set; 1 <= n <= 64-first.
func spanMask(first, n uint32) uint64 { return ^uint64(0) >> (64 - n) << first }

// sameRaw reports whether the flags octets of data, one every stride
// octets, are raw: a whole run of single octets compared as a string, any
// other by quietRun with every point quiet.
func sameRaw(raw []uint8, data []byte, stride int) bool {
	if stride == 1 {
		return string(raw) == string(data[:len(raw)])
	}
	return quietRun(^uint64(0), raw, data, stride) == len(raw)
}

// quietRun returns how many points, from the first, are quiet (bit j of
// quiet set for raw[j]) and have their flags octet, one every stride
// octets of data, equal to raw: those sameFlags would leave as they are.
// Kept apart from statics so that its loops keep their values in
// registers. (statics tries sameRaw first: for a whole block of single
// octets, comparing them as a string is quicker still.)
//
//go:noinline
func quietRun(quiet uint64, raw []uint8, data []byte, stride int) int {
	n := 0
	switch stride {
	case 1: // binary and double-bit inputs with flags: eight octets a word
		for len(raw)-n >= 8 && len(data)-n >= 8 {
			d := binary.LittleEndian.Uint64(raw[n:]) ^ binary.LittleEndian.Uint64(data[n:])
			k := min(bits.TrailingZeros64(d)/8, bits.TrailingZeros64(^(quiet >> n)))
			if n += k; k < 8 {
				return n
			}
		}
	case 5: // analog inputs of 32 bits with flags (g30v1, g30v5), the most common
		for len(raw)-n >= 8 && len(data)-5*n >= 36 {
			d, r := (*[36]byte)(data[5*n:]), (*[8]byte)(raw[n:])
			w := uint64(d[0]) | uint64(d[5])<<8 | uint64(d[10])<<16 | uint64(d[15])<<24 |
				uint64(d[20])<<32 | uint64(d[25])<<40 | uint64(d[30])<<48 | uint64(d[35])<<56
			k := min(bits.TrailingZeros64(w^binary.LittleEndian.Uint64(r[:]))/8, bits.TrailingZeros64(^(quiet >> n)))
			if n += k; k < 8 {
				return n
			}
		}
	}
	for n < len(raw) && n*stride < len(data) && quiet>>n&1 != 0 && data[n*stride] == raw[n] {
		n++
	}
	return n
}

// flagValue is how a flags-only object holds its state: the top bits of
// its flags octet, as many as make this times 256 (2 for one bit, 4
// for two, 0 for none: an analog's). A product, not a shift, so that the
// loop of sameFlags keeps its counter in CX.
type flagValue uint32

func (f flagValue) value(flags uint8) uint32 { return uint32(flags) * uint32(f) >> 8 }

// sameFlags clears the "event since" mark of the points of pts, from the
// first, whose flags and state are what the flags octets at data[0],
// data[stride], ... say, and copies those octets to raw; it returns how
// many there were before the first that differs (len(pts) when none
// does). Kept apart from statics so that this, the loop over most points
// of a poll, keeps its values in registers (hence noinline).
//
//go:noinline
func sameFlags(pts []pointState, raw []uint8, data []byte, stride int, f flagValue) int {
	raw = raw[:len(pts)]
	at := 0
	for j := range pts {
		if at >= len(data) {
			return j
		}
		flags := data[at]
		p := pts[j]
		if p&stateMask(ptValue|ptFlags|ptSuspect) != state(f.value(flags), flags, ptValue|ptFlags) {
			return j
		}
		pts[j] = p &^ state(0, 0, ptEvented)
		raw[j] = flags
		at += stride
	}
	return len(pts)
}

// valueAt reads the flags octet (0 when the layout has none) and the
// value of the object at o.
func (lay objLayout) valueAt(o []byte) (uint8, uint32) {
	var flags uint8
	at := 0
	if lay.flags {
		flags, at = o[0], 1
	}
	v := uint32(o[at]) | uint32(o[at+1])<<8
	if lay.valueLen == 4 {
		v |= uint32(o[at+2])<<16 | uint32(o[at+3])<<24
	}
	return flags, v
}

// sameValues is sameFlags for objects with a value, after a flags octet
// when lay has one.
//
//go:noinline
func sameValues(pts []pointState, data []byte, lay objLayout) int {
	stride := int(lay.stride)
	same := uint8(ptValue)
	if lay.flags {
		same |= ptFlags
	}
	for j := range pts {
		at := j * stride
		if at+stride > len(data) {
			return j
		}
		flags, v := lay.valueAt(data[at : at+stride])
		ps := &pts[j]
		if *ps&stateMask(same|ptSuspect) != state(v, flags, same) {
			return j
		}
		ps.clear(ptEvented)
	}
	return len(pts)
}

// digest names what the points first to first+(end-start) of a block
// said in a static range header whose data is data, points start to end
// of it in layout lay: the octets that hold them, keyed, and where they
// lie and how. Never 0.
func (e *Engine) digest(lay objLayout, first, start, end uint32, data []byte) uint64 {
	var lo, hi, bit uint32
	if lay.bits > 0 {
		lo, bit = start*uint32(lay.bits)/8, start*uint32(lay.bits)%8
		hi = (end*uint32(lay.bits) + 7) / 8
	} else {
		lo, hi = start*uint32(lay.stride), end*uint32(lay.stride)
	}
	var flags uint64
	if lay.flags {
		flags = 1
	}
	where := uint64(first) | uint64(end-start)<<8 | uint64(bit)<<16 | uint64(lay.stride)<<24 |
		uint64(lay.bits)<<32 | uint64(lay.valueLen)<<40 | flags<<48
	return (maphash.Bytes(e.bi.plaus.seed, data[lo:hi]) ^ where*0x9e3779b97f4a7c15) | 1
}

// settled reports whether every point of pts has a value and none is
// suspected or has an event since.
func settled(pts []pointState) bool {
	for i := range pts {
		if pts[i].bits()&(ptValue|ptEvented|ptSuspect) != ptValue {
			return false
		}
	}
	return true
}

// point checks one static value of a response against the point's
// state, and updates it.
//
// A binary or double-bit input that changed with no event is only
// suspected at first: the outstation may report the event in a later
// answer (a class polled less often, an event held back). It is reported
// when a later answer to a read of every class still shows the new value
// and no event for it came in between.
func (e *Engine) point(pc *pass, set *pointSet, ps *pointState, index, v uint32, flags uint8) {
	b := &e.bi
	kind := pc.kind
	judge := ps.bits()&ptValue != 0 && pc.compare && !pc.blind
	switch {
	case !judge || kind == kindAnalog:
	case kind == kindCounter:
		if v < ps.value() && set.clears == pc.out.clears && b.on[dCounterBackwards] && !wrapped(ps.value(), v, pc.wide) {
			e.firePoint(dCounterBackwards, pc.op, kind, index, finding{count: int(v), prev: ps.value()})
		}
	case ps.bits()&ptEvents == 0 || ps.bits()&ptEvented != 0:
		// No events for the point, or one came: nothing to suspect.
		ps.clear(ptSuspect)
	case v == ps.value():
		ps.clear(ptSuspect) // back where it was: a flicker
	case ps.bits()&ptSuspect == 0:
		if pc.judge {
			ps.set(ptSuspect)
			return // keep the old value until the next answer says
		}
	case pc.judge && b.on[dSilentChange]:
		e.firePoint(dSilentChange, pc.op, kind, index, finding{count: int(v), prev: ps.value()})
		ps.clear(ptSuspect)
	default:
		return // still suspected: wait for an answer to a read of every class
	}
	if pc.lay.flags {
		// Quality: ONLINE, COMM_LOST, or RESTART raised; a RESTART flag
		// that clears after a restart is the device settling.
		changed := (flags ^ ps.flags()) & qualityFlags
		if changed == flagRestart && flags&flagRestart == 0 {
			changed = 0
		}
		if ps.bits()&ptFlags != 0 && pc.compare && !pc.blind && changed != 0 && pc.m.IIN&iinRestart == 0 && b.on[dQualityChange] {
			e.fireBuiltin(dQualityChange, pc.op, aggKey{src: pc.op.Src.Addr(), dst: pc.op.Dst.Addr(), dev: pc.op.LinkSrc, addr: uint32(kind) << 24},
				finding{count: int(flags), prev: uint32(ps.flags()), kind: kind, index: index})
		}
		*ps = state(ps.value(), flags, ps.bits()|ptFlags)
	}
	*ps = state(v, ps.flags(), ps.bits()&^(ptEvented|ptSuspect)|ptValue)
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
