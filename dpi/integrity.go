package dpi

import (
	"net/netip"
	"time"
)

// The integrity of ICS streams: who really sends a flow's packets, and
// whether the bytes on the wire are the ones already delivered. Only
// flows of a registered protocol are watched, and nothing here calls a
// handler while a flow behaves: the checks per packet are a few
// comparisons, and the history of delivered bytes is a copy into a ring
// each flow record keeps.
//
// What is reported (IntegrityHandler):
//   - Endpoint: the first packet each end of an ICS flow sends, with its
//     source MAC and TTL (IPv6: hop limit), and every later packet whose
//     MAC or TTL differs from the one before it; and, every
//     Config.FlowReport, what each end of a live ICS flow looks like now
//     (Refresh), so that a connection open for months still says how its
//     hosts look. A host's TCP stack
//     sends every packet of a connection with one TTL, and a switch
//     delivers them with one MAC; a packet forged by another machine
//     (injected, or sent by an adversary in the middle) rarely matches
//     both.
//   - Conflict: a TCP segment that overlaps bytes already delivered or
//     held, with different content. A retransmission repeats its bytes;
//     two versions of one stretch of the stream mean that two senders
//     used the same sequence numbers: an injection racing the real
//     sender, or a man in the middle rewriting a stream.
//   - Unseen: bytes of an ICS stream that the peer acknowledged, that the
//     tap never saw and that never came late: the stream went on past
//     them. The tap lost them, or they went around it: a message
//     injected by a host on another path. The handler judges which
//     from how lossy the capture is (Gaps, Segments) and how fast the
//     bytes would have had to be sent (Silent).

// IntegrityHandler is implemented by handlers that check the integrity
// of ICS streams. The arguments are reused after the call returns.
type IntegrityHandler interface {
	Integrity(f *Flow, s *Integrity)
}

// IntegrityKind is what an Integrity report is about.
type IntegrityKind uint8

const (
	// Endpoint: an end of an ICS flow sent its first packet
	// (Changed false), or a packet whose MAC or TTL differs from its
	// previous one (Changed true; PrevMAC and PrevTTL say what it was).
	Endpoint IntegrityKind = iota + 1
	// Conflict: a TCP segment's bytes differ from the bytes already
	// seen at the same sequence numbers (First and Second).
	Conflict
	// Unseen: the peer acknowledged bytes of this end (Seq up to
	// Acked) that the tap never saw, and the stream has now skipped them
	// (they did not come late).
	Unseen
)

// Integrity is one report of an IntegrityHandler.
type Integrity struct {
	Kind  IntegrityKind
	Time  time.Time
	Frame uint64
	From  Side       // the end of the flow that sent the packet
	Addr  netip.Addr // its address
	MAC   [6]byte    // the packet's source MAC
	TTL   uint8      // the packet's IPv4 TTL or IPv6 hop limit
	// Endpoint: whether the MAC or TTL changed, and what they were;
	// Refresh: a periodic report of a live flow, not about a packet
	// (Frame is the packet being decoded when it came).
	Changed bool
	Refresh bool
	PrevMAC [6]byte
	PrevTTL uint8
	// Conflict: the sequence number of the first byte that differs, and
	// the two versions from there (at most ConflictBytes each): the one
	// seen first, and the one in this packet. Delivered says whether the
	// first version had already been handed to the decoder (else it was
	// held, out of order).
	Seq           uint32
	First, Second []byte
	Delivered     bool
	// Unseen: the acknowledgement number (the unseen bytes are Seq up
	// to it), and how long this end had sent nothing the tap saw when
	// the acknowledgement came (the unseen bytes were sent within that
	// time). Gaps and Segments count, over all TCP flows so far, the
	// gaps as Flow.Lost counts them (tcp_gaps plus tcp_acked_unseen)
	// and the TCP packets (tcp): how lossy the capture has been.
	Acked          uint32
	Silent         time.Duration
	Gaps, Segments uint64
}

// ConflictBytes is the most bytes of each version a Conflict report
// carries.
const ConflictBytes = 32

// histSize is the bytes of stream each direction of an ICS flow keeps
// after delivering them, to compare retransmissions with: a power of two.
// A retransmission resends what was not acknowledged, which on a polling
// link is the last message or two.
const histSize = 512

// endpoint checks the source MAC and TTL of a packet that side of an ICS
// flow sent against its previous packet, and reports the first and every
// change.
func (e *Engine) endpoint(f *flow, side int, mac [6]byte) {
	h := &f.half[side]
	if h.fpSet && h.mac == mac && h.ttl == e.ttl {
		return
	}
	s := &e.integ
	*s = Integrity{Kind: Endpoint, Time: e.meta.Time, Frame: e.meta.Frame, From: f.sideOf(side),
		MAC: mac, TTL: e.ttl, Changed: h.fpSet, PrevMAC: h.mac, PrevTTL: h.ttl}
	h.fpSet, h.mac, h.ttl = true, mac, e.ttl
	if e.ih == nil {
		return
	}
	s.Addr = f.Client.Addr()
	if s.From == FromServer {
		s.Addr = f.Server.Addr()
	}
	e.ih.Integrity(&f.Flow, s)
}

// refreshEndpoints reports what each end of the live ICS flow f looks
// like now.
func (e *Engine) refreshEndpoints(f *flow) {
	for side := range f.half {
		h := &f.half[side]
		if !h.fpSet {
			continue
		}
		s := &e.integ
		*s = Integrity{Kind: Endpoint, Time: e.meta.Time, Frame: e.meta.Frame, From: f.sideOf(side),
			MAC: h.mac, TTL: h.ttl, Refresh: true}
		s.Addr = f.Client.Addr()
		if s.From == FromServer {
			s.Addr = f.Server.Addr()
		}
		e.ih.Integrity(&f.Flow, s)
	}
}

// remember keeps data, delivered at h.next, in the direction's history.
func (h *half) remember(data []byte) {
	n := len(h.hist)
	if n == 0 {
		return
	}
	seq := h.next
	if len(data) > n {
		seq += uint32(len(data) - n)
		data = data[len(data)-n:]
	}
	off := int(seq) & (n - 1)
	c := copy(h.hist[off:], data)
	if c < len(data) { // wrapped round: the call is not free even for nothing
		copy(h.hist, data[c:])
	}
	h.histN = min(h.histN+len(data), n)
}

// delivered compares data, to be placed at seq, with the history of
// bytes already delivered. It returns the offset in data of the first
// byte that differs, or -1.
func (h *half) delivered(seq uint32, data []byte) int {
	if h.histN == 0 {
		return -1
	}
	from := h.next - uint32(h.histN) // the oldest byte kept
	skip := 0
	if d := int32(seq - from); d < 0 {
		skip = int(-d)
	}
	end := min(len(data), int(int32(h.next-seq)))
	mask := len(h.hist) - 1
	for i := skip; i < end; i++ {
		if h.hist[int(seq+uint32(i))&mask] != data[i] {
			return i
		}
	}
	return -1
}

// conflict reports that data, placed at seq by side, differs from the
// stream's first version of it from data[at], which is old.
func (e *Engine) conflict(f *flow, side int, seq uint32, data []byte, at int, old []byte, delivered bool) {
	if e.ih == nil || f.dec == 0 {
		return
	}
	s := &e.integ
	*s = Integrity{Kind: Conflict, Time: e.meta.Time, Frame: e.meta.Frame, From: f.sideOf(side),
		Seq: seq + uint32(at), Delivered: delivered}
	h := &f.half[side]
	s.MAC, s.TTL = h.mac, e.ttl
	s.Addr = f.Client.Addr()
	if s.From == FromServer {
		s.Addr = f.Server.Addr()
	}
	s.Second = append(e.second[:0], data[at:min(len(data), at+ConflictBytes)]...)
	s.First = append(e.first[:0], old[:min(len(old), ConflictBytes)]...)
	e.ih.Integrity(&f.Flow, s)
}

// historyAt copies into e.first the delivered bytes from seq on, at most
// ConflictBytes of them and no further than the history reaches.
func (e *Engine) historyAt(h *half, seq uint32) []byte {
	n := min(int(int32(h.next-seq)), ConflictBytes)
	mask := len(h.hist) - 1
	b := e.first[:0]
	for i := range max(n, 0) {
		b = append(b, h.hist[int(seq+uint32(i))&mask])
	}
	return b
}

// unseen reports the stretch of the stream side sent that the peer
// acknowledged and the tap did not see, if the stream, now skipping to
// seq, has not filled it since.
func (e *Engine) unseen(f *flow, side int, seq uint32) {
	h := &f.half[side]
	h.unseenAt = 0
	if int32(h.next-h.ackedTo) >= 0 || int32(seq-h.next) <= 0 || e.ih == nil {
		return // the bytes came late, or nothing is skipped
	}
	s := &e.integ
	*s = Integrity{Kind: Unseen, Time: e.meta.Time, Frame: e.meta.Frame, From: f.sideOf(side),
		MAC: h.mac, TTL: h.ttl, Seq: h.next, Acked: h.ackedTo, Silent: time.Duration(h.unseenFor),
		Gaps: e.c.TCPGaps + e.c.TCPAckedUnseen, Segments: e.c.TCP}
	s.Addr = f.Client.Addr()
	if s.From == FromServer {
		s.Addr = f.Server.Addr()
	}
	e.ih.Integrity(&f.Flow, s)
}
