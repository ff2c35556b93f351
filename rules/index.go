package rules

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// compiled is an enabled rule prepared for evaluation.
type compiled struct {
	rule     *policy.Rule
	idx      int32            // position in the engine's rule list (file order among enabled rules)
	reqOnly  bool             // when.op is set: only requests have a class
	fc       []policy.CodeSet // by Proto: the function codes that may match, with when.op folded in
	expected string           // Alert.Expected
	seen     uint64           // the engine's operation number when last checked, so that a rule found twice is checked once
}

// bucket is a list of rules, in file order, with the union of the function
// codes they accept, for requests and for responses, so that a bucket is
// skipped with one bit test.
type bucket struct {
	req, resp policy.CodeSet
	rules     []int32
}

func (b *bucket) add(r *compiled, p proto.ID) {
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
// once per prefix length in use (an exact address is a /32 or /128). It
// runs when a flow's memo has no buckets yet, for each direction of each
// new flow: the keys are plain words, masked with shifts, which hash and
// compare faster than netip.Prefix, masked by netip.
type addrIndex struct {
	lens4, lens6 []uint8 // prefix lengths in use, longest first
	m            map[prefixKey]*bucket
}

// prefixKey is a masked prefix: the address as two words in network
// order (an IPv4 address in the top 32 bits of hi), its length and its
// family.
type prefixKey struct {
	hi, lo uint64
	bits   uint8
	v4     bool
}

// addrWords is a's address as prefixKey takes it, a unmapped.
func addrWords(a netip.Addr) (hi, lo uint64, v4 bool) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0, true
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), false
}

// keyOf is the key of the prefix of length l (at most 32 for IPv4, 128
// for IPv6) of the address hi, lo. A shift by 64 or more gives 0.
func keyOf(hi, lo uint64, l uint8, v4 bool) prefixKey {
	if l <= 64 {
		return prefixKey{hi: hi &^ (^uint64(0) >> l), bits: l, v4: v4}
	}
	return prefixKey{hi: hi, lo: lo &^ (^uint64(0) >> (l - 64)), bits: l, v4: v4}
}

func (ai *addrIndex) add(pf netip.Prefix, c *compiled, p proto.ID) {
	if a := pf.Addr(); a.Is4In6() {
		pf = netip.PrefixFrom(a.Unmap(), max(pf.Bits()-96, 0))
	}
	hi, lo, v4 := addrWords(pf.Addr())
	k := keyOf(hi, lo, uint8(pf.Bits()), v4)
	if ai.m == nil {
		ai.m = map[prefixKey]*bucket{}
	}
	b := ai.m[k]
	if b == nil {
		b = &bucket{}
		ai.m[k] = b
		lens := &ai.lens6
		if v4 {
			lens = &ai.lens4
		}
		if !slices.Contains(*lens, k.bits) {
			*lens = append(*lens, k.bits)
			slices.Sort(*lens)
			slices.Reverse(*lens)
		}
	}
	b.add(c, p)
}

// lookup appends the buckets of the prefixes that contain a to out, up to
// its capacity; it reports false when some did not fit.
func (ai *addrIndex) lookup(a netip.Addr, out []*bucket) ([]*bucket, bool) {
	if ai.m == nil || !a.IsValid() {
		return out, true
	}
	hi, lo, v4 := addrWords(a)
	lens := ai.lens6
	if v4 {
		lens = ai.lens4
	}
	for _, l := range lens {
		if b := ai.m[keyOf(hi, lo, l, v4)]; b != nil {
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
	protos []protoIndex // by Proto, for the protocols with an adapter; 0 unused
}

// compileRule prepares r for the protocols of ads.
func compileRule(r *policy.Rule, idx int32, ads *Adapters) *compiled {
	c := &compiled{rule: r, idx: idx, reqOnly: r.When.Ops != 0, fc: make([]policy.CodeSet, ads.span())}
	for p, ad := range ads[:len(c.fc)] {
		if ad == nil || r.When.Proto != 0 && r.When.Proto != proto.ID(p) {
			continue
		}
		for fc := 0; fc < 256; fc++ {
			if r.When.FC.Has(proto.ID(p), uint8(fc)) && classMayMatch(r.When.Ops, ad, uint8(fc)) {
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

// classMayMatch reports whether a request with function code fc of ad's
// protocol may have a class in ops (any when ops is empty).
func classMayMatch(ops policy.OpSet, ad Adapter, fc uint8) bool {
	return ops == 0 || ops&ad.Classes(fc) != 0
}

// accepts reports whether op's protocol and function code may match c.
func (c *compiled) accepts(op *Op) bool {
	return int(op.Proto) < len(c.fc) && c.fc[op.Proto].Has(op.FC)
}

func (ix *ruleIndex) add(c *compiled) {
	if len(ix.protos) < len(c.fc) {
		ix.protos = append(ix.protos, make([]protoIndex, len(c.fc)-len(ix.protos))...)
	}
	for i := range c.fc {
		p := proto.ID(i)
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
func (ix *ruleIndex) buckets(p proto.ID, src, dst netip.Addr, out []*bucket) []*bucket {
	if int(p) >= len(ix.protos) {
		return out
	}
	pi := &ix.protos[p]
	out, _ = pi.dst.lookup(dst, out)
	out, _ = pi.src.lookup(src, out)
	if len(pi.any.rules) > 0 {
		out = append(out, &pi.any)
	}
	return out
}

// matches reports whether op satisfies every field of m. The cheap
// fields are tested first; the fields that need the message decoded
// further (DNP3 points) last. ad is the adapter of op's protocol.
func matches(ad Adapter, m *policy.Match, op *Op) bool {
	if m.Proto != 0 && m.Proto != op.Proto {
		return false
	}
	if m.Ops != 0 && (!op.Request || !m.Ops.Has(op.Class)) {
		return false
	}
	if !m.FC.Has(op.Proto, op.FC) {
		return false
	}
	if !ad.Match(m, op) {
		return false
	}
	if len(m.Dst) > 0 && !endpointsMatch(ad, m.Dst, op.Dst.Addr(), op, false) {
		return false
	}
	if len(m.Src) > 0 && !endpointsMatch(ad, m.Src, op.Src.Addr(), op, true) {
		return false
	}
	return ad.MatchPayload(m, op)
}

// addrMatches reports whether the addresses a Modbus operation touches
// overlap rs: [Addr, Addr+Count-1], and for FC 23 the read part too.
func addrMatches(rs policy.Ranges, op *Op) bool {
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
func endpointsMatch(ad Adapter, eps []policy.Endpoint, addr netip.Addr, op *Op, isSrc bool) bool {
	addr = addr.Unmap()
	for i := range eps {
		ep := &eps[i]
		if !prefixesContain(ep.Prefixes, addr) {
			continue
		}
		if !ad.Endpoint(ep, op, isSrc) {
			continue
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

func groupsMatch(gs []policy.GroupVar, h *dnp3.ObjectHeader) bool {
	for _, g := range gs {
		if g.Matches(h.Group, h.Variation) {
			return true
		}
	}
	return false
}

// objectsMatch reports whether an object header of m matches the groups
// of the match and, when it has points, touches one of its point indexes.
func objectsMatch(mt *policy.Match, m *dnp3.Message) bool {
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
func headerTouches(rs policy.Ranges, m *dnp3.Message, i int) bool {
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
