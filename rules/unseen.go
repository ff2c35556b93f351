package rules

import (
	"math"
	"strconv"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
)

// stream-unseen: bytes of an ICS stream that the peer acknowledged and
// the tap never saw (dpi reports each stretch once the stream has gone
// past it). One packet at a time, bytes sent around the tap look exactly
// like bytes the tap lost, so a stretch is judged against capture loss:
//   - by speed: the bytes were sent while the sender was silent on the
//     tap; more of them than a 10 Gb/s link carries in that time were
//     never sent on the wire at all (an acknowledgement far outside the
//     stream: two legs of a man in the middle that disagree, or a forged
//     packet);
//   - by count: within a minute of a connection's first stretch, the
//     chance that the capture's loss gave it so many is computed from
//     the rate at which the other TCP flows lost segments, in the same
//     time or since the start, whichever is higher (dpi's tcp_gaps per
//     TCP packet, at least unseenFloor), as a Poisson tail over the
//     connection's packets in that time. Below unseenChance it fires. A
//     lossy tap loses segments of every flow alike; one connection
//     losing far more than the others is not the tap.

const (
	// unseenLinkRate is the fastest link taken to carry unseen bytes,
	// in bytes a second: 10 Gb/s.
	unseenLinkRate = 10e9 / 8
	// unseenWindow is how long a connection's stretches are counted
	// together.
	unseenWindow = time.Minute
	// unseenFloor is the least loss rate (gaps a TCP packet) a capture
	// is credited with, however clean the other flows are.
	unseenFloor = 1e-4
	// unseenChance is the chance below which so many stretches are not
	// the capture's loss.
	unseenChance = 1e-6
)

// unseenRun is a connection's stretches within unseenWindow of the first
// of them, and the counts at that first one: the connection's packets,
// its gaps (dpi.Flow.Lost), the engine's TCP gaps and packets.
type unseenRun struct {
	start      int64
	n          int
	pkts, lost uint64
	gaps, segs uint64
}

// checkUnseen judges a stretch of bytes acknowledged and never seen.
func (e *Engine) checkUnseen(f *dpi.Flow, s *dpi.Integrity) {
	span := float64(s.Acked - s.Seq)
	f0 := finding{seq: s.Seq, ack: s.Acked}
	if secs := s.Silent.Seconds(); span > unseenLinkRate*max(secs, 1e-6) {
		f0.rate = span / max(secs, 1e-6)
		e.fireUnseen(f, s, f0)
		return
	}
	now := s.Time.UnixNano()
	pkts, lost := f.Packets[0]+f.Packets[1], uint64(f.Lost[0])+uint64(f.Lost[1])
	k := f.ID
	ent, found := e.bi.integ.unseen.Get(&k, k*0x9e3779b97f4a7c15, now)
	r := &ent.Value
	if !found || now-r.start > int64(unseenWindow) {
		*r = unseenRun{start: now, n: 1, pkts: pkts, lost: lost, gaps: s.Gaps, segs: s.Segments}
		return
	}
	r.n++
	f0.chance = unseenTail(r.n-1, unseenExpected(r, f, s))
	if f0.chance >= unseenChance {
		return
	}
	f0.count = r.n
	e.fireUnseen(f, s, f0)
	*r = unseenRun{start: now, pkts: pkts, lost: lost, gaps: s.Gaps, segs: s.Segments}
}

// unseenExpected is how many gaps the capture's loss would give the
// connection over its packets since r started. The loss rate is the
// gaps a TCP packet of the other flows (dpi.Flow.Lost counts the
// connection's own), the higher of two measures: since r started, and
// since the engine started; and at least unseenFloor.
func unseenExpected(r *unseenRun, f *dpi.Flow, s *dpi.Integrity) float64 {
	pkts, lost := f.Packets[0]+f.Packets[1], uint64(f.Lost[0])+uint64(f.Lost[1])
	own := float64(pkts - r.pkts)
	rate := unseenFloor
	for _, m := range [2]struct{ gaps, segs float64 }{
		{float64(s.Gaps-r.gaps) - float64(lost-r.lost), float64(s.Segments-r.segs) - own},
		{float64(s.Gaps) - float64(lost), float64(s.Segments) - float64(pkts)},
	} {
		if m.gaps > 0 && m.segs > 0 {
			rate = max(rate, m.gaps/m.segs)
		}
	}
	return max(own, 1) * rate
}

// unseenTail is the chance that a Poisson variable of mean lambda is at
// least k.
func unseenTail(k int, lambda float64) float64 {
	if k <= 0 {
		return 1
	}
	term := math.Exp(-lambda) // P(X = 0)
	below := 0.0
	for i := 0; i < k; i++ {
		below += term
		term *= lambda / float64(i+1)
	}
	return max(1-below, term) // 1-below loses precision when it is tiny: term is P(X = k), a lower bound
}

func (e *Engine) fireUnseen(f *dpi.Flow, s *dpi.Integrity, fd finding) {
	op := e.integrityOp(f, s)
	e.fireBuiltin(dStreamUnseen, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), addr: keyUnseen}, fd)
}

// aggregation key address (aggKey.addr) of stream-unseen.
const keyUnseen = 5

func titleStreamUnseen(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	t := dst + " acknowledged " + strconv.FormatUint(uint64(f.ack-f.seq), 10) + " bytes of the stream from " + src +
		" (sequence numbers " + strconv.FormatUint(uint64(f.seq), 10) + " to " + strconv.FormatUint(uint64(f.ack), 10) +
		") that the tap never saw: "
	if f.rate > 0 {
		return t + "they would have crossed the wire at " + strconv.FormatFloat(f.rate/1e9*8, 'g', 3, 64) +
			" Gb/s while the sender was silent, so they were never sent on it"
	}
	return t + "stretch " + strconv.Itoa(f.count) + " on this connection within a minute, a chance of " +
		strconv.FormatFloat(f.chance, 'g', 2, 64) + " under the capture's loss: sent around the tap"
}
