package rules

import (
	"net/netip"
	"slices"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
)

// compiled is an enabled rule prepared for evaluation.
type compiled struct {
	rule     *Rule
	idx      int32      // position in the engine's rule list (file order among enabled rules)
	reqOnly  bool       // when.op is set: only requests have a class
	fc       [3]CodeSet // by Proto: the function codes that may match, with when.op folded in
	expected string     // Alert.Expected
	seen     uint64     // the engine's operation number when last checked, so that a rule found twice is checked once
}

// bucket is a list of rules, in file order, with the union of the function
// codes they accept, for requests and for responses, so that a bucket is
// skipped with one bit test.
type bucket struct {
	req, resp CodeSet
	rules     []int32
}

func (b *bucket) add(r *compiled, p Proto) {
	if n := len(b.rules); n > 0 && b.rules[n-1] == r.idx {
		return // the rule names two addresses of one prefix
	}
	for i := range b.req {
		b.req[i] |= r.fc[p][i]
		if !r.reqOnly {
			b.resp[i] |= r.fc[p][i]
		}
	}
	b.rules = append(b.rules, r.idx)
}

// accepts reports whether a rule of the bucket may match function code fc
// in a request or a response.
func (b *bucket) accepts(fc uint8, request bool) bool {
	if request {
		return b.req.Has(fc)
	}
	return b.resp.Has(fc)
}

// addrIndex finds buckets by address: one map keyed by prefix, looked up
// once per prefix length in use (an exact address is a /32 or /128).
type addrIndex struct {
	lens4, lens6 []uint8 // prefix lengths in use, longest first
	m            map[netip.Prefix]*bucket
}

func (ai *addrIndex) add(pf netip.Prefix, c *compiled, p Proto) {
	if a := pf.Addr(); a.Is4In6() {
		pf = netip.PrefixFrom(a.Unmap(), max(pf.Bits()-96, 0))
	}
	pf = pf.Masked()
	if ai.m == nil {
		ai.m = map[netip.Prefix]*bucket{}
	}
	b := ai.m[pf]
	if b == nil {
		b = &bucket{}
		ai.m[pf] = b
		lens := &ai.lens6
		if pf.Addr().Is4() {
			lens = &ai.lens4
		}
		if l := uint8(pf.Bits()); !slices.Contains(*lens, l) {
			*lens = append(*lens, l)
			slices.Sort(*lens)
			slices.Reverse(*lens)
		}
	}
	b.add(c, p)
}

// lookup appends the buckets of the prefixes that contain a to out, up to
// its capacity; it reports false when some did not fit.
func (ai *addrIndex) lookup(a netip.Addr, out []*bucket) ([]*bucket, bool) {
	if ai.m == nil {
		return out, true
	}
	a = a.Unmap()
	lens := ai.lens6
	if a.Is4() {
		lens = ai.lens4
	}
	for _, l := range lens {
		k := netip.PrefixFrom(a, int(l))
		if int(l) != a.BitLen() {
			k = k.Masked()
		}
		if b := ai.m[k]; b != nil {
			if len(out) == cap(out) {
				return out, false
			}
			out = append(out, b)
		}
	}
	return out, true
}

// protoIndex holds the rules of one protocol. A rule with a destination
// is found by it, one with a source but no destination by its source, and
// the others are in any.
type protoIndex struct {
	dst, src addrIndex
	any      bucket
}

// ruleIndex finds the rules that may apply to an operation without
// scanning them all: by protocol, by destination (or source) address or
// network, then by function code and direction (a bitset per bucket and
// per rule), before the full match.
type ruleIndex struct {
	protos [3]protoIndex // by Proto; 0 unused
}

func compileRule(r *Rule, idx int32) *compiled {
	c := &compiled{rule: r, idx: idx, reqOnly: r.When.Ops != 0}
	for _, p := range []Proto{ProtoModbus, ProtoDNP3} {
		if r.When.Proto != 0 && r.When.Proto != p {
			continue
		}
		for fc := 0; fc < 256; fc++ {
			if r.When.FC.Has(p, uint8(fc)) && classMayMatch(r.When.Ops, p, uint8(fc)) {
				c.fc[p].Add(uint8(fc))
			}
		}
	}
	switch {
	case r.Value != nil:
		c.expected = formatBounds(r.Value)
	case r.Rate != nil:
		c.expected = formatRate(r.Rate)
	}
	return c
}

// classMayMatch reports whether a request with function code fc of
// protocol p may have a class in ops (any when ops is empty).
func classMayMatch(ops OpSet, p Proto, fc uint8) bool {
	if ops == 0 {
		return true
	}
	switch p {
	case ProtoModbus:
		if fc == 8 {
			return ops.Has(OpDiagnostic) || ops.Has(OpRestart) || ops.Has(OpConfig)
		}
		return ops.Has(ModbusClass(fc, 0))
	case ProtoDNP3:
		return ops.Has(DNP3Class(fc))
	}
	return false
}

func (ix *ruleIndex) add(c *compiled) {
	for _, p := range []Proto{ProtoModbus, ProtoDNP3} {
		if c.fc[p].Empty() {
			continue
		}
		pi := &ix.protos[p]
		w := &c.rule.When
		switch {
		case len(w.Dst) > 0:
			for _, ep := range w.Dst {
				for _, pf := range ep.Prefixes {
					pi.dst.add(pf, c, p)
				}
			}
		case len(w.Src) > 0:
			for _, ep := range w.Src {
				for _, pf := range ep.Prefixes {
					pi.src.add(pf, c, p)
				}
			}
		default:
			pi.any.add(c, p)
		}
	}
}

// maxBuckets bounds the buckets one operation can be found in: one per
// prefix length in use for destinations and for sources, and any.
const maxBuckets = 2*(128+1) + 1

// buckets appends to out the buckets whose rules may apply to operations
// of protocol p from src to dst, before the function code is known.
func (ix *ruleIndex) buckets(p Proto, src, dst netip.Addr, out []*bucket) []*bucket {
	pi := &ix.protos[p]
	out, _ = pi.dst.lookup(dst, out)
	out, _ = pi.src.lookup(src, out)
	if len(pi.any.rules) > 0 {
		out = append(out, &pi.any)
	}
	return out
}

// matches reports whether op satisfies every field of m. The cheap
// fields are tested first; DNP3 points are decoded only when m needs them.
func matches(m *Match, op *Op) bool {
	if m.Proto != 0 && m.Proto != op.Proto {
		return false
	}
	if m.Ops != 0 && (!op.Request || !m.Ops.Has(op.Class)) {
		return false
	}
	if !m.FC.Has(op.Proto, op.FC) {
		return false
	}
	switch op.Proto {
	case ProtoModbus:
		if !m.Units.Empty() && !m.Units.Has(op.Unit) {
			return false
		}
		if m.Tables != 0 && !m.Tables.Has(op.Table) {
			return false
		}
		if len(m.Addr) > 0 && !addrMatches(m.Addr, op) {
			return false
		}
	case ProtoDNP3:
		if len(m.LinkSrc) > 0 && !m.LinkSrc.Contains(uint32(op.LinkSrc)) {
			return false
		}
		if len(m.LinkDst) > 0 && !m.LinkDst.Contains(uint32(op.LinkDst)) {
			return false
		}
	}
	if len(m.Dst) > 0 && !endpointsMatch(m.Dst, op.Dst.Addr(), op, false) {
		return false
	}
	if len(m.Src) > 0 && !endpointsMatch(m.Src, op.Src.Addr(), op, true) {
		return false
	}
	if op.Proto == ProtoDNP3 && (len(m.Groups) > 0 || len(m.Points) > 0) {
		return objectsMatch(m, op.DNP3)
	}
	return true
}

// addrMatches reports whether the addresses a Modbus operation touches
// overlap rs: [Addr, Addr+Count-1], and for FC 23 the read part too.
func addrMatches(rs Ranges, op *Op) bool {
	if !op.HasAddr {
		return false
	}
	if rs.Overlaps(span(op.Addr, op.Count)) {
		return true
	}
	if m := op.Modbus; m != nil && m.FC == 23 && m.ReadCount > 0 {
		return rs.Overlaps(span(m.ReadAddr, m.ReadCount))
	}
	return false
}

// span is the inclusive address range of count items from addr; a count
// of 0 (a malformed request) is taken as the one address.
func span(addr, count uint16) (lo, hi uint32) {
	lo = uint32(addr)
	hi = lo
	if count > 0 {
		hi = lo + uint32(count) - 1
	}
	return lo, hi
}

// endpointsMatch reports whether addr, with the unit or link address of
// op, matches one of eps (see Endpoint).
func endpointsMatch(eps []Endpoint, addr netip.Addr, op *Op, isSrc bool) bool {
	addr = addr.Unmap()
	for i := range eps {
		ep := &eps[i]
		if !prefixesContain(ep.Prefixes, addr) {
			continue
		}
		switch op.Proto {
		case ProtoModbus:
			if !ep.Units.Empty() && !ep.Units.Has(op.Unit) {
				continue
			}
		case ProtoDNP3:
			if len(ep.DNP3) > 0 {
				la := op.LinkDst
				if isSrc {
					la = op.LinkSrc
				}
				if !ep.DNP3.Contains(uint32(la)) {
					continue
				}
			}
		}
		return true
	}
	return false
}

func prefixesContain(pfs []netip.Prefix, a netip.Addr) bool {
	for _, pf := range pfs {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

func groupsMatch(gs []GroupVar, h *dnp3.ObjectHeader) bool {
	for _, g := range gs {
		if g.Matches(h.Group, h.Variation) {
			return true
		}
	}
	return false
}

// objectsMatch reports whether an object header of m matches the groups
// of the match and, when it has points, touches one of its point indexes.
func objectsMatch(mt *Match, m *dnp3.Message) bool {
	if m == nil {
		return false
	}
	for i := range m.Objects {
		h := &m.Objects[i]
		if len(mt.Groups) > 0 && !groupsMatch(mt.Groups, h) {
			continue
		}
		if len(mt.Points) == 0 || headerTouches(mt.Points, m, i) {
			return true
		}
	}
	return false
}

// Object prefix codes 1–3 carry point indexes; range code 6 means every
// point of the group.
const (
	prefixIndexMax = 3
	rangeAll       = 6
)

// headerTouches reports whether object header i of m names a point index
// in rs. Headers with index prefixes need the decoded points; the others
// are answered from the header's range (or 0..count-1 for count
// qualifiers, every index for "all").
func headerTouches(rs Ranges, m *dnp3.Message, i int) bool {
	h := &m.Objects[i]
	switch {
	case h.Prefix >= 1 && h.Prefix <= prefixIndexMax:
		m.DecodePoints()
		for _, pt := range headerPoints(m, i) {
			if rs.Contains(pt.Index) {
				return true
			}
		}
		return false
	case h.HasRange:
		return rs.Overlaps(h.Start, h.Stop)
	case h.Range == rangeAll:
		return true
	case h.Count > 0:
		return rs.Overlaps(0, h.Count-1)
	}
	return false
}

// headerPoints returns the decoded points of object header i of m (after
// DecodePoints).
func headerPoints(m *dnp3.Message, i int) []dnp3.Point {
	h := &m.Objects[i]
	lo, hi := h.FirstPoint, h.FirstPoint+h.NumPoints
	if lo < 0 || h.NumPoints <= 0 || hi > len(m.Points) {
		return nil
	}
	return m.Points[lo:hi]
}
