package rules

import (
	"net/netip"

	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/lru"
)

// memoSlots is the size of the flow memo, a power of two: a flow a slot,
// direct mapped by flow id (consecutive ids take consecutive slots).
const memoSlots = 1024

// flowMemo is what the engine keeps about one flow, so that a message
// finds it in one step (memoFor) instead of each check looking up its own
// table by addresses. The slot is chosen by the flow's id and holds the
// flow's two ends and protocol, which every message it serves must
// match: what it keeps depends on those alone, so a slot taken over by
// another flow, or flows with made-up or reused ids, cannot mislead it.
//
// What it keeps spares the checks their lookups and leaves what they
// decide as it was: a slot taken over, or a handle whose entry was
// evicted since, sends a check back to the table it would have looked
// in. public-address and new-asset judge a flow once, both directions
// together, as they did with caches of their own.
type flowMemo struct {
	a, b  netip.Addr // the ends, as the sender and receiver of the first message the slot saw
	key   uint64     // 1 + flow id; 0: empty
	proto proto.ID

	// public-address's verdict on a message from a to b, once judged.
	judged bool
	public publicVerdict
	// new-asset has checked the two ends.
	known bool

	dir [2]memoDir // messages from a to b, and from b to a
}

// settled reports whether the checks that judge the flow's ends
// (endsOnce) have nothing left to do on its messages: public-address
// found neither end public while the other is private, and new-asset has
// checked both (a detector that is off has nothing to do).
func (f *flowMemo) settled(b *builtins) bool {
	return (f.judged && f.public == publicNone || !b.on[dPublic]) && (f.known || !b.on[dNewAsset])
}

// memoDir is what the memo keeps for the messages of one direction; the
// second of flow.dir is that of messages from b.
type memoDir struct {
	flow *flowMemo

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
// its slot held another flow, other ends or another protocol. When the
// two ends are the same address, both directions share the first: what
// it keeps is keyed by the addresses, which are then the same both ways.
func (e *Engine) memoFor(op *Op) *memoDir {
	key := 1 + op.Flow.ID
	src, dst := op.Src.Addr(), op.Dst.Addr()
	m := &e.memo[key&uint64(len(e.memo)-1)]
	if m.key == key && m.proto == op.Proto {
		if m.a == src && m.b == dst {
			return &m.dir[0]
		}
		if m.a == dst && m.b == src {
			return &m.dir[1]
		}
	}
	*m = flowMemo{key: key, proto: op.Proto, a: src, b: dst}
	m.dir[0].flow, m.dir[1].flow = m, m
	return &m.dir[0]
}
