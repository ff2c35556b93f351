package rules

import (
	"hash/maphash"
	"net/netip"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/internal/lru"
)

// dnp3-replay: a DNP3 fragment that carries absolute time (time-stamped
// events, a time write, a CTO) byte-identical to one seen before from
// the same sender to the same receiver. Time makes such a fragment
// unique: the outstation stamps each event when it happens and the
// master writes the time it is; only a recording sends one again. A
// plain TCP retransmission never reaches here (dpi delivers each byte
// once), and the one repeat DNP3 allows, an unsolicited response sent
// again because it was not confirmed, passes.
//
// Each direction of an association keeps the hashes of its last
// replaySlots such fragments, in a fixed table that evicts its least
// recently used direction.

// Sizes of the replay history.
const (
	replayDirs  = 256 // directions of associations
	replaySlots = 32  // fragment hashes each keeps
)

// replayKey is one direction of an association: the sender and receiver
// addresses and link addresses.
type replayKey struct {
	src, dst         netip.Addr
	linkSrc, linkDst uint16
}

func (k *replayKey) hash() uint64 {
	return hashAddr(k.src) ^ hashAddr(k.dst)>>9 ^ uint64(k.linkSrc)<<32 ^ uint64(k.linkDst)<<48
}

// replayHist is a ring of fragment hashes.
type replayHist struct {
	hashes [replaySlots]uint64
	next   uint8 // where the next hash goes
	n      uint8 // hashes held
}

// has reports whether the ring holds h.
func (r *replayHist) has(h uint64) bool {
	for _, x := range r.hashes[:r.n] {
		if x == h {
			return true
		}
	}
	return false
}

func (r *replayHist) add(h uint64) {
	r.hashes[r.next] = h
	r.next = (r.next + 1) % replaySlots
	r.n = min(r.n+1, replaySlots)
}

// replay is the state of dnp3-replay.
type replay struct {
	dirs lru.Table[replayKey, replayHist]
	seed maphash.Seed
}

func (r *replay) init(b *builtins, seed uint64) {
	if b.on[dDNP3Replay] {
		r.dirs.Init(replayDirs, seed)
		r.seed = maphash.MakeSeed()
	}
}

// timedObject reports whether objects of group g, variation v carry an
// absolute time, or a time relative to one (group 51, common time of
// occurrence).
func timedObject(g, v uint8) bool {
	switch g {
	case 2, 4, 11, 13:
		return v == 2 || v == 3
	case 22, 23:
		return v >= 5 && v <= 8
	case 32, 33, 42, 43:
		return v == 3 || v == 4 || v == 7 || v == 8
	case 50:
		return v == 1 || v == 3
	case 51:
		return v == 1 || v == 2
	}
	return false
}

// timedFragment reports whether m carries time-stamped objects: object
// data, not a read that names a timed variation.
func timedFragment(m *dnp3.Message) bool {
	if m.Dir == dnp3.Request && m.FC == dnp3.FuncRead {
		return false
	}
	for i := range m.Objects {
		if h := &m.Objects[i]; h.Size > 0 && timedObject(h.Group, h.Variation) {
			return true
		}
	}
	return false
}

func (e *Engine) checkDNP3Replay(op *Op) {
	m := dnp3Of(op)
	if m == nil || m.Malformed != 0 || !timedFragment(m) {
		return
	}
	h := maphash.Bytes(e.bi.replay.seed, m.Fragment)
	k := replayKey{src: op.Src.Addr(), dst: op.Dst.Addr(), linkSrc: op.LinkSrc, linkDst: op.LinkDst}
	ent, _ := e.bi.replay.dirs.Get(&k, k.hash(), op.nano)
	r := &ent.Value
	if !r.has(h) {
		r.add(h)
		return
	}
	if m.Dir == dnp3.Unsolicited && e.unsolRetry(op, m) {
		return
	}
	e.fireBuiltin(dDNP3Replay, op, e.opKey(&e.bi.det[dDNP3Replay].c, op), finding{})
}

// unsolRetry reports whether the unsolicited response m repeats the
// association's last one, unconfirmed: the retry DNP3 allows. It reads
// the state dnp3-unsolicited-repeat keeps, which has seen m already;
// without it, any repeat passes.
func (e *Engine) unsolRetry(op *Op, m *dnp3.Message) bool {
	if !e.bi.on[dDNP3UnsolRepeat] && !e.bi.on[dConfirmUnmatched] {
		return true
	}
	k := assocKey{outstation: op.Src.Addr(), master: op.Dst.Addr(), linkSrc: op.LinkSrc, linkDst: op.LinkDst}
	ent := e.bi.integ.unsol.Find(&k, k.hash())
	return ent != nil && ent.Value.unsol.seq == m.Seq && ent.Value.retried
}

func titleDNP3Replay(op *Op, _ *builtinDet, _ finding) string {
	src, dst := ends(op)
	return "DNP3 " + dnp3.FunctionName(op.FC) + " from " + src + " to " + dst + linkText(op) + " repeats, byte for byte, a time-stamped fragment sent before: a replay"
}
