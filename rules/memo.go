package rules

import (
	"net/netip"

	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/lru"
)

// memoSlots is the size of the flow memo, a power of two: one direction
// of a flow a slot, direct mapped by flow id (consecutive ids take
// consecutive slots).
const memoSlots = 2048

// flowMemo is what the engine keeps about one direction of one flow, so
// that a message finds it in one step (memoFor) instead of each check
// looking up its own table by addresses. The slot is chosen by the flow's
// id and the direction, and holds the sender, the receiver and the
// protocol, which every message it serves must match: what it keeps
// depends on those alone.
//
// What it keeps is only ever a shortcut: a slot taken over by another
// flow, or a handle whose entry was evicted since, sends the check back
// to the table it would have looked in, with the same result.
type flowMemo struct {
	src, dst netip.Addr
	key      uint64 // 1 + flow id<<1 | direction; 0: empty
	proto    proto.ID

	// public-address's verdict on the two ends, once judged.
	judged bool
	public publicVerdict
	// new-asset has checked the two ends.
	known bool

	// The rule index's buckets for the ends and protocol (buckets), when
	// there are at most memoBuckets of them.
	hasBuckets bool
	nb         uint8
	b          [memoBuckets]*bucket

	// The entries of request-flood's counter for the receiver and of
	// recon-sweep's code sets for the pair.
	flood lru.Handle[rateKey, rateCount]
	sweep lru.Handle[sweepKey, sweepCodes]
}

// memoBuckets is how many index buckets a memo keeps; operations found in
// more are looked up every time.
const memoBuckets = 6

// memoFor is the memo of op's flow in op's direction, emptied first when
// its slot held other ends or another protocol. Flow ids are unique, but
// a handler may be given flows by more than one source, or made-up ones:
// the ends are checked all the same.
func (e *Engine) memoFor(op *Op) *flowMemo {
	key := 1 + op.Flow.ID<<1
	if !op.Request {
		key++ // the direction only spreads the slots; the ends decide
	}
	src, dst := op.Src.Addr(), op.Dst.Addr()
	m := &e.memo[key&uint64(len(e.memo)-1)]
	if m.key != key || m.proto != op.Proto || m.src != src || m.dst != dst {
		*m = flowMemo{key: key, proto: op.Proto, src: src, dst: dst}
	}
	return m
}
