package rules

import (
	"hash/maphash"
	"net/netip"
	"strconv"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/internal/lru"
)

// The detectors of forged, replayed and modified ICS messages:
//   - ics-spoof: packets of ICS conversations whose source MAC or TTL
//     is not what that host's ICS packets had (dpi reports each end's
//     first packet, every change, and each live flow's ends every
//     FlowReport: IntegrityHandler);
//   - stream-conflict: two versions of the same bytes of an ICS stream
//     (dpi compares each retransmission with what it delivered);
//   - dnp3-unsolicited-repeat: an unsolicited response that repeats the
//     sequence number of the previous one with other content;
//   - modbus-tid-reuse: a request that reuses the transaction id of a
//     waiting request for something else (the decoder marks it).
//
// State is bounded: each is a fixed table that evicts its least recently
// used entry, counted in the engine's stats.

// Table sizes of the integrity detectors.
const (
	printSlots  = 1024 // ICS hosts and what their packets look like
	unsolSlots  = 1024 // DNP3 associations and their last unsolicited response
	unseenSlots = 256  // ICS connections with a recent unseen stretch
)

// printRelearn is how long a host's packets must have looked otherwise,
// with no packet looking as before, for the new look to become the
// host's: a replaced device, a new route. Until then each is an alert.
const printRelearn = 6 * time.Hour

// aggregation key address (aggKey.addr) of stream-conflict.
const keyConflict = 3

// fingerprint is what a host's packets look like on the tap: the source
// MAC and the TTL (IPv6: hop limit) they arrive with.
type fingerprint struct {
	mac [6]byte
	ttl uint8
}

func (p fingerprint) hash() uint16 {
	return uint16(hashMAC(p.mac)>>48) ^ uint16(p.ttl)<<8 ^ uint16(p.ttl)
}

// hostPrint is what an ICS host's packets look like: the fingerprint of
// its first ICS packets (own), when it was last seen, and another one
// seen since (alt), from when.
type hostPrint struct {
	own      fingerprint
	seen     int64 // packet time own was last reported
	alt      fingerprint
	altSince int64 // 0: no alt
}

// assocKey is a DNP3 association: outstation and master addresses, and
// the outstation's and master's link addresses.
type assocKey struct {
	outstation, master netip.Addr
	linkSrc, linkDst   uint16
}

// streamMark says where a message came: its connection, and the gaps in
// both directions of it so far (dpi.Flow.Lost). Two messages with the
// same mark came over one stream the capture saw whole in between; a
// message and a confirm or a value are compared only then, lest a lost
// message look like none.
type streamMark struct {
	flow uint64 // 0: not known
	lost uint32
}

func markOf(f *dpi.Flow) streamMark {
	if f == nil {
		return streamMark{}
	}
	return streamMark{f.ID, f.Lost[0] + f.Lost[1]}
}

// sameStream reports whether m and o are known and the same.
func (m streamMark) sameStream(o streamMark) bool { return m.flow != 0 && m == o }

// awaiting is an association's last response of one kind (unsolicited,
// or solicited with CON) that asks the master for a confirm.
type awaiting struct {
	seen   bool
	seq    uint8
	copies uint8 // copies sent (the first and its retries) not yet confirmed
	mark   streamMark
}

// unsolState is what dnp3-unsolicited-repeat and -confirm-unmatched know
// of an association: its last unsolicited response (its sequence
// number, copies, and a hash of its content) and its last solicited
// response that asked for a confirm.
type unsolState struct {
	unsol, resp awaiting
	hash        uint64
	confirmed   bool // the master confirmed the last unsolicited response
	// confirmedAt is when the master confirmed it, and sentAt when its
	// last copy came (packet time): a retry sent as the confirm crossed
	// it is no second sender.
	confirmedAt, sentAt int64
	// retried: it repeats the one before it, unconfirmed: the retry
	// DNP3 allows (dnp3-replay lets it pass).
	retried bool
}

// integrity is the state of the integrity detectors.
type integrity struct {
	prints lru.Table[bindKey, hostPrint]
	unsol  lru.Table[assocKey, unsolState]
	unseen lru.Table[uint64, unseenRun] // by dpi.Flow.ID
	seed   maphash.Seed
	// Confirms that matched no unsolicited response, waiting for
	// confirmWait in case the response comes late (the two directions of
	// a tap are merged slightly out of order).
	pending  [maxPending]pendingConfirm
	npending int
}

// confirmWait is how long a confirm that matches no unsolicited response
// waits for it.
const confirmWait = time.Second

// minRetry is the shortest confirm timeout an outstation is taken to
// have: a copy of an unsolicited response sooner than that after the one
// before is no retry.
const minRetry = 500 * time.Millisecond

// maxPending is how many unmatched confirms wait at once; when more
// come, the oldest is reported at once.
const maxPending = 8

// pendingConfirm is a confirm waiting for its unsolicited response.
type pendingConfirm struct {
	key  assocKey
	uns  bool // of an unsolicited response, else of a solicited one
	due  int64
	f    finding
	op   Op       // the confirm, without its message
	flow dpi.Flow // op.Flow, copied
}

func (n *integrity) init(b *builtins, seed uint64) {
	if b.on[dSpoof] {
		n.prints.Init(printSlots, seed)
	}
	if b.on[dStreamUnseen] {
		n.unseen.Init(unseenSlots, seed)
	}
	if b.on[dDNP3UnsolRepeat] || b.on[dConfirmUnmatched] {
		n.unsol.Init(unsolSlots, seed)
		n.seed = maphash.MakeSeed()
	}
}

var _ dpi.IntegrityHandler = (*Engine)(nil)

// Integrity implements dpi.IntegrityHandler.
func (e *Engine) Integrity(f *dpi.Flow, s *dpi.Integrity) {
	e.tick(s.Time)
	switch s.Kind {
	case dpi.Endpoint:
		if e.bi.on[dSpoof] {
			e.checkSpoof(f, s)
		}
	case dpi.Unseen:
		if e.bi.on[dStreamUnseen] {
			e.checkUnseen(f, s)
		}
	case dpi.Conflict:
		if e.bi.on[dStreamConflict] {
			op := e.integrityOp(f, s)
			e.fireBuiltin(dStreamConflict, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), addr: keyConflict},
				finding{seq: s.Seq, delivered: s.Delivered, evidence: conflictEvidence(e.evidence[:0], s)})
		}
	}
}

// integrityOp is the op of an alert about a packet s reports.
func (e *Engine) integrityOp(f *dpi.Flow, s *dpi.Integrity) *Op {
	op := &e.flowOp
	*op = Op{Time: s.Time, Frame: s.Frame, Flow: f, Src: f.Client, Dst: f.Server}
	if s.From == dpi.FromServer {
		op.Src, op.Dst = f.Server, f.Client
	}
	return op
}

// conflictEvidence is the two versions of a conflict, one after the
// other: what was seen first, then what differs from it.
func conflictEvidence(b []byte, s *dpi.Integrity) []byte {
	b = append(b, s.First...)
	return append(b, s.Second...)
}

// checkSpoof compares what the packet s reports looks like with what
// the host's ICS packets looked like.
func (e *Engine) checkSpoof(f *dpi.Flow, s *dpi.Integrity) {
	now := s.Time.UnixNano()
	got := fingerprint{s.MAC, s.TTL}
	if f.Client.Addr() == f.Server.Addr() {
		// A host talking to itself (a capture on the host, not a tap):
		// the address names both ends, so only a change within one end
		// of the connection says anything.
		if s.Changed && !s.Refresh {
			e.fireBuiltin(dSpoof, e.integrityOp(f, s), aggKey{src: s.Addr, addr: keySpoof, dev: got.hash()},
				finding{mac: s.MAC, mac2: s.PrevMAC, ttl: s.TTL, ttl2: s.PrevTTL, reason: f.App.Title()})
		}
		return
	}
	k := bindKey{ip: s.Addr, vlan: f.VLAN}
	ent, found := e.bi.integ.prints.Get(&k, hashAddr(k.ip)^uint64(k.vlan)<<48, now)
	hp := &ent.Value
	if !found {
		hp.own, hp.seen = got, now
		if !s.Changed {
			return
		}
		// The table forgot the host, but the connection itself changed:
		// its earlier packets are the host's.
		hp.own = fingerprint{s.PrevMAC, s.PrevTTL}
	}
	if got == hp.own {
		hp.seen = now
		return
	}
	if hp.altSince == 0 || hp.alt != got {
		hp.alt, hp.altSince = got, now
	} else if hp.seen < hp.altSince && now-hp.altSince > int64(printRelearn) {
		// Only the new look for that long: the host changed.
		*hp = hostPrint{own: got, seen: now}
		return
	}
	if s.Refresh {
		return // reported when its packets came
	}
	op := e.integrityOp(f, s)
	e.fireBuiltin(dSpoof, op, aggKey{src: s.Addr, addr: keySpoof, dev: got.hash()},
		finding{mac: s.MAC, mac2: hp.own.mac, ttl: s.TTL, ttl2: hp.own.ttl, reason: f.App.Title()})
}

// aggregation key address (aggKey.addr) of ics-spoof.
const keySpoof = 4

// ---- dnp3-unsolicited-repeat ----

// checkDNP3UnsolRepeat: an outstation repeats an unsolicited response,
// with the same sequence number, only when the master did not confirm
// it, and then with the same content (the internal indications may
// change). Another response with the sequence number of the previous
// one, or the same one after the master confirmed it over TCP, is a
// second sender: a forged response pushed between the real ones. A
// restart (IIN1.7) starts the sequence anew and passes.
func (e *Engine) checkDNP3UnsolRepeat(op *Op) {
	m := dnp3Of(op)
	if m == nil || m.Dir != dnp3.Unsolicited || len(m.Fragment) < 4 {
		return
	}
	h := maphash.Bytes(e.bi.integ.seed, m.Fragment[4:])
	k := assocKey{outstation: op.Src.Addr(), master: op.Dst.Addr(), linkSrc: op.LinkSrc, linkDst: op.LinkDst}
	ent, found := e.bi.integ.unsol.Get(&k, k.hash(), op.nano)
	st := &ent.Value
	now := op.nano
	found = found && st.unsol.seen
	same := found && st.unsol.seq == m.Seq && st.hash == h
	// A retry that crossed the confirm comes soon after the confirm but
	// no sooner after the copy before it than an outstation's confirm
	// timeout allows.
	crossed := same && st.confirmed && now-st.confirmedAt <= int64(confirmWait) && now-st.sentAt >= int64(minRetry)
	var why string
	if found && st.unsol.seq == m.Seq && m.IIN&iinRestart == 0 {
		switch {
		case st.hash != h:
			why = "other content"
		case st.confirmed && !crossed && op.Flow != nil && op.Flow.Transport == dpi.TCP:
			why = "the same content after the master confirmed it"
		}
	}
	late := e.cancelPending(&k, m.Seq, true)
	copies := uint8(1)
	if same && !st.confirmed {
		copies = min(st.unsol.copies, 254) + 1
	}
	st.retried = same && (!st.confirmed || crossed)
	st.unsol = awaiting{seen: true, seq: m.Seq, copies: copies, mark: markOf(op.Flow)}
	st.hash, st.sentAt, st.confirmed, st.confirmedAt = h, now, false, 0
	if late {
		// Its confirm came first: the two directions of the tap merged
		// out of order.
		st.confirmed, st.unsol.copies, st.confirmedAt = true, 0, now
	}
	if why != "" && e.bi.on[dDNP3UnsolRepeat] {
		e.fireBuiltin(dDNP3UnsolRepeat, op, e.opKey(&e.bi.det[dDNP3UnsolRepeat].c, op), finding{count: int(m.Seq), reason: why})
	}
}

// checkDNP3UnsolConfirm notes the master's confirm of the association's
// last unsolicited response, or last solicited response that asked for
// one, and reports a confirm of a response the outstation did not send
// (dnp3-confirm-unmatched): another sequence number than its last one,
// or one confirm more than the copies it sent. A confirm that matches
// none waits confirmWait for a response that comes late. Only on the
// connection the last one came on, with no capture gap in either
// direction since, lest a lost response look like none.
func (e *Engine) checkDNP3UnsolConfirm(op *Op) {
	m := dnp3Of(op)
	if m == nil || m.Dir != dnp3.Request || m.FC != dnp3.FuncConfirm {
		return
	}
	k := assocKey{outstation: op.Dst.Addr(), master: op.Src.Addr(), linkSrc: op.LinkDst, linkDst: op.LinkSrc}
	ent := e.bi.integ.unsol.Find(&k, k.hash())
	if ent == nil {
		return
	}
	st := &ent.Value
	a := &st.unsol
	if !m.UNS {
		a = &st.resp
	}
	if !a.seen {
		return
	}
	if a.seq == m.Seq && a.copies > 0 {
		// A confirm for each copy the outstation sent.
		a.copies--
		if m.UNS {
			st.confirmed, st.confirmedAt = true, op.nano
		}
		return
	}
	if !e.bi.on[dConfirmUnmatched] || !markOf(op.Flow).sameStream(a.mark) {
		return
	}
	n := &e.bi.integ
	if n.npending == maxPending {
		e.reportPending(0)
	}
	p := &n.pending[n.npending]
	n.npending++
	*p = pendingConfirm{key: k, uns: m.UNS, due: op.nano + int64(confirmWait), op: *op, flow: *op.Flow,
		f: finding{count: int(m.Seq), prev: uint32(a.seq), again: a.seq == m.Seq, solicited: !m.UNS}}
	p.op.DNP3 = nil
	p.op.memo = nil // judged later, outside the message: the slot may be another flow's by then
}

// checkDNP3Solicited notes a solicited response that asks for a confirm,
// for dnp3-confirm-unmatched.
func (e *Engine) checkDNP3Solicited(op *Op) {
	m := dnp3Of(op)
	if m == nil || m.Dir != dnp3.Response || !m.CON {
		return
	}
	k := assocKey{outstation: op.Src.Addr(), master: op.Dst.Addr(), linkSrc: op.LinkSrc, linkDst: op.LinkDst}
	ent, _ := e.bi.integ.unsol.Get(&k, k.hash(), op.nano)
	a := &ent.Value.resp
	late := e.cancelPending(&k, m.Seq, false)
	if a.seen && a.seq == m.Seq && a.copies > 0 {
		a.copies = min(a.copies, 254) + 1 // sent again
	} else {
		*a = awaiting{seen: true, seq: m.Seq, copies: 1}
	}
	if late {
		a.copies-- // its confirm came first
	}
	a.mark = markOf(op.Flow)
}

// cancelPending drops the waiting confirms of association k that a
// response (uns: unsolicited) with sequence number seq, come late,
// matches, and reports whether there were any.
func (e *Engine) cancelPending(k *assocKey, seq uint8, uns bool) bool {
	n := &e.bi.integ
	found := false
	for i := 0; i < n.npending; {
		if p := &n.pending[i]; p.key == *k && uint8(p.f.count) == seq && p.uns == uns {
			n.npending--
			copy(n.pending[i:], n.pending[i+1:n.npending+1])
			found = true
			continue
		}
		i++
	}
	return found
}

// duePending reports the waiting confirms whose response did not come.
func (e *Engine) duePending(now int64) {
	n := &e.bi.integ
	for n.npending > 0 && n.pending[0].due <= now {
		e.reportPending(0)
	}
}

// reportPending reports waiting confirm i and forgets it.
func (e *Engine) reportPending(i int) {
	n := &e.bi.integ
	p := n.pending[i]
	n.npending--
	copy(n.pending[i:], n.pending[i+1:n.npending+1])
	p.op.Flow = &p.flow
	e.fireBuiltin(dConfirmUnmatched, &p.op, e.opKey(&e.bi.det[dConfirmUnmatched].c, &p.op), p.f)
}

func (k *assocKey) hash() uint64 {
	return hashAddr(k.outstation) ^ hashAddr(k.master)>>7 ^ uint64(k.linkSrc)<<32 ^ uint64(k.linkDst)<<48
}

// ---- modbus-tid-reuse ----

func (e *Engine) checkModbusTIDReuse(op *Op) {
	if m := op.Modbus; m != nil && m.Reused {
		e.fireBuiltin(dModbusTIDReuse, op, e.opKey(&e.bi.det[dModbusTIDReuse].c, op), finding{count: int(m.TID), frame: m.ReusedFrame})
	}
}

// iinRestart is IIN1.7, device restart, in dnp3.Message.IIN.
const iinRestart = 1 << 7

// ---- titles ----

func titleSpoof(op *Op, _ *builtinDet, f finding) string {
	var what string
	switch {
	case f.mac != f.mac2 && f.ttl != f.ttl2:
		what = "MAC " + macText(f.mac) + " and TTL " + strconv.Itoa(int(f.ttl)) + ", not " + macText(f.mac2) + " and " + strconv.Itoa(int(f.ttl2))
	case f.mac != f.mac2:
		what = "MAC " + macText(f.mac) + ", not " + macText(f.mac2)
	default:
		what = "TTL " + strconv.Itoa(int(f.ttl)) + ", not " + strconv.Itoa(int(f.ttl2))
	}
	src, dst := ends(op)
	return f.reason + " packets from " + src + " to " + dst + " come from another machine: " + what + " as its earlier packets"
}

func titleStreamConflict(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	first := "held"
	if f.delivered {
		first = "delivered"
	}
	return "Two versions of the stream from " + src + " to " + dst + " at sequence number " + strconv.FormatUint(uint64(f.seq), 10) +
		": a retransmission differs from the bytes " + first + " before (evidence: the first version, then the second)"
}

func titleModbusTIDReuse(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	return "Modbus request from " + src + " to " + dst + unitText(op) + " reuses transaction id " + strconv.Itoa(f.count) +
		" of a request still waiting (frame " + strconv.FormatUint(f.frame, 10) + ") for something else: a second sender on the connection"
}

func titleConfirmUnmatched(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	kind := "an unsolicited response"
	if f.solicited {
		kind = "a response"
	}
	what := "sequence number " + strconv.Itoa(f.count) + ", but the last one it sent was " + strconv.FormatUint(uint64(f.prev), 10)
	if f.again {
		what = "sequence number " + strconv.Itoa(f.count) + " again, though it was confirmed and none came since"
	}
	return "DNP3 confirm from " + src + " to " + dst + linkText(op) + " of " + kind + " the outstation did not send: " + what
}

func titleDNP3UnsolRepeat(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	return "DNP3 unsolicited response from " + src + " to " + dst + linkText(op) + " repeats sequence number " + strconv.Itoa(f.count) + " with " + f.reason + ": a second sender"
}

// evidenceBytes is the room of an alert's evidence built by a detector.
const evidenceBytes = 2 * dpi.ConflictBytes
