package dpi

import (
	"bytes"
	"sort"
)

// TCP reassembly, one direction at a time.
//
// Policy, written down because IDS evasion lives in these details:
//   - Bytes are delivered to the decoder once, in sequence order. The first
//     copy of any sequence range wins: a retransmission or an overlapping
//     segment never changes bytes already delivered or already held, and a
//     PDU is never decoded twice. Overlapping bytes that differ from the
//     first copy are counted as conflicts.
//   - A segment ahead of the expected sequence number is held (copied) until
//     the hole fills. The hole is skipped, counted as a gap, and the decoder
//     told to resync, when it stays open for GapTimeout of packet time, when
//     MaxOutOfOrder segments are waiting, when a memory cap is reached, or
//     when the flow ends, or at once when the receiver acknowledges bytes
//     beyond the hole (the tap missed them; nobody will send them again).
//   - A connection seen without its SYN starts at the first segment seen,
//     and the decoder resyncs on the next valid header.
//   - A segment more than maxSeqJump away from the expected sequence number
//     means the stream was lost: it is a gap, and the stream restarts there.
//   - A segment cut short by the snap length delivers what was captured; the
//     rest is a gap.

// half is one direction of a TCP flow.
type half struct {
	seen     bool   // next is known
	next     uint32 // sequence number of the next byte to deliver
	buf      []byte // delivered bytes the decoder has not consumed yet
	ooo      []segment
	oooBytes int
	oooSince int64 // packet time the current hole was first noticed
	// The sender's fingerprint (integrity.go): the source MAC and TTL of
	// its last packet, once fpSet.
	fpSet bool
	mac   [6]byte
	ttl   uint8
	// ackAhead: the peer acknowledged bytes of this direction the tap
	// never saw, up to ackedTo.
	ackAhead bool
	ackedTo  uint32
	// lastAt is the packet time of this direction's last packet. In an
	// ICS flow, an unseen stretch the peer acknowledged (next up to
	// ackedTo) waits until the stream skips it (integrity.go): unseenAt
	// is when it was acknowledged (0: none waits), unseenFor how long
	// the sender had been silent on the tap before that.
	lastAt    int64
	unseenAt  int64
	unseenFor int64
	// hist holds the last bytes delivered (histN of them, ending at
	// next), in a ring indexed by sequence number, for ICS flows; the
	// record keeps it for reuse.
	hist  []byte
	histN int
}

type segment struct {
	seq  uint32
	data []byte
}

// keepBuffer is the largest buffer a freed flow record keeps for reuse.
const keepBuffer = 1024

func (h *half) reuse(old half) {
	if cap(old.buf) <= keepBuffer {
		h.buf = old.buf[:0]
	}
	h.ooo = old.ooo[:0]
	h.hist = old.hist
}

func (e *Engine) releaseHalf(h *half) {
	e.account(-len(h.buf) - h.oooBytes)
	h.buf = h.buf[:0]
	for i := range h.ooo {
		h.ooo[i].data = nil
	}
	h.ooo = h.ooo[:0]
	h.oooBytes = 0
}

func (e *Engine) account(n int) {
	e.c.BufferedBytes = uint64(int64(e.c.BufferedBytes) + int64(n))
	if e.c.BufferedBytes > e.c.BufferedPeak {
		e.c.BufferedPeak = e.c.BufferedBytes
	}
}

func (e *Engine) tcpPacket(k *flowKey, mac *macs, t *tcpHeader) {
	payload := t.Payload
	e.synDir = 0
	if t.SYN() {
		e.synDir = 1
		if t.ACK() {
			e.synDir = 2
		}
	}
	f, side, fresh := e.lookup(k, mac, TCP, t.SYN() || len(payload) > 0)
	if f == nil {
		return
	}
	if len(payload) > 0 {
		f.payload = true
	}
	if fresh && t.SYN() && t.ACK() {
		// The handshake's second packet: the client's SYN was missed, but
		// the connection still starts here.
		f.half[side^1].seen = true
		f.half[side^1].next = t.Ack
	}
	if fresh {
		f.MidStream = !t.SYN()
		if f.MidStream {
			e.c.TCPMidStream++
		}
		e.resetApp(f)
	}
	sniffed := f.dec == 0 && len(payload) > 0 && e.sniff(f, side, payload)
	if len(payload) > 0 && !f.svcDone && e.nh != nil {
		e.identify(f, side, payload, false)
	}
	if f.dec == 0 && !sniffed {
		if t.RST() || t.FIN() {
			e.endSide(f, side, t.RST())
		}
		return
	}
	e.endpoint(f, side, mac.src())
	e.cur = f
	h := &f.half[side]
	h.lastAt = e.now
	seq := t.Seq
	if t.SYN() {
		if h.seen && !fresh && seq+1 != h.next && f.last != 0 {
			// A new connection on the same ports: end the old one.
			e.closeFlow(f, EndClosed)
			if side == 1 {
				// lookup put k in canonical order; give it back the
				// packet's own.
				k.swapEnds()
			}
			e.tcpPacket(k, mac, t)
			return
		}
		seq++
		h.seen = true
		h.next = seq
	}
	if !h.seen {
		h.seen = true
		h.next = seq
	}
	if t.ACK() {
		e.acked(f, side^1, t.Ack)
	}
	missing := e.segmentLength(t) - len(payload)
	if missing > 0 && e.cut == 0 {
		// The IP header claims bytes the frame never had: a forged or
		// broken packet, not a snap length. Believe what is there.
		e.c.BadIPLength++
		missing = 0
	}
	if missing > 0 {
		// Cut by the snap length, possibly before its first payload byte.
		e.truncatedSegment(f, side, seq, payload, min(missing, e.cut))
	} else if len(payload) > 0 {
		e.segment(f, side, seq, payload, true)
	}
	if t.RST() && h.seen && !inWindow(t.Seq, h.next) {
		// A reset far from where the stream is: blind injection or a
		// stale packet. Ending the flow on it would let anyone who can
		// put a packet on the wire blind the decoder (RFC 5961 asks the
		// endpoints for the same care).
		e.c.TCPIgnoredRSTs++
		return
	}
	if t.RST() || t.FIN() {
		e.endSide(f, side, t.RST())
	}
}

// rstWindow is how far from the expected sequence number an RST may be and
// still end a flow. The receive window is not known (window scaling is only
// in the handshake), so this is generous.
const rstWindow = 1 << 20

func inWindow(seq, next uint32) bool {
	d := int32(seq - next)
	return d > -rstWindow && d < rstWindow
}

// segmentLength is the TCP payload length the IP header announces for
// the segment whose header is t.
func (e *Engine) segmentLength(t *tcpHeader) int {
	if e.fast {
		return len(t.Payload) // fastPacket takes no segment cut short
	}
	hdr := int(t.DataOffset) * 4
	for _, l := range e.decoded {
		switch l {
		case lIPv4:
			return int(e.ip4.length) - int(e.ip4.ihl)*4 - hdr
		case lIPv6:
			// The payload length counts the Hop-by-Hop header, which
			// is decoded as part of the IPv6 header. A jumbogram
			// (length 0) carries its length in that header, and the
			// payload is already bounded by it.
			n := int(e.ip6.length)
			if e.ip6.hbh > 0 {
				if n == 0 {
					return len(t.Payload)
				}
				n -= e.ip6.hbh
			}
			return n - hdr
		}
	}
	return len(t.Payload)
}

func (e *Engine) endSide(f *flow, side int, reset bool) {
	f.closed[side] = true
	switch {
	case reset && !f.payload && side == f.server && !f.MidStream:
		e.closeFlow(f, EndRejected)
	case reset && !f.payload:
		e.closeFlow(f, EndReset)
	case reset || (f.closed[0] && f.closed[1]):
		e.closeFlow(f, EndClosed)
	}
}

// segment handles one segment's payload in direction side. hold says an
// out-of-order segment may be held.
func (e *Engine) segment(f *flow, side int, seq uint32, data []byte, hold bool) {
	h := &f.half[side]
	if rel := int32(seq - h.next); rel > maxSeqJump || rel < -maxSeqJump {
		// The stream was lost. What is held belongs to the old stream:
		// decode it now, then restart at seq.
		e.flushHeld(f, side)
		e.skipTo(f, side, seq, 0)
	}
	if len(h.ooo) == 0 && seq == h.next {
		// The common case: in order, nothing held.
		e.deliver(f, side, data)
		h.next += uint32(len(data))
		return
	}
	p := e.place(f, side, seq, data, hold)
	switch {
	case p.fresh == 0:
		e.c.TCPRetransmits++
	case p.fresh < len(data):
		e.c.TCPOverlaps++
	}
	if p.ahead {
		e.c.TCPOutOfOrder++
	}
	if p.conflict {
		e.c.TCPConflicts++
	}
}

// placed is what place did with a segment.
type placed struct {
	fresh    int  // bytes neither delivered nor held before
	ahead    bool // some of them lay ahead of a hole
	conflict bool // some held bytes differed from this copy
}

// place delivers or holds the bytes of data that were neither delivered nor
// held before. The first copy of every byte wins, whether it was delivered
// or is held out of order: a later copy only fills the holes around it.
// Held segments are kept sorted and never overlap one another, so each is
// compared with the later copy once.
func (e *Engine) place(f *flow, side int, seq uint32, data []byte, hold bool) (p placed) {
	h := &f.half[side]
	// Compare first: delivering the new bytes may drain the held ones.
	if at, old := conflicts(h.ooo, seq, data); at >= 0 {
		p.conflict = true
		e.conflict(f, side, seq, data, at, old, false)
	}
	// A keep-alive carries one byte before the next: any byte.
	keepalive := len(data) == 1 && seq == h.next-1
	for len(data) > 0 {
		if rel := int32(seq - h.next); rel < 0 {
			// Delivered already: it must be the same bytes.
			n := min(int(-rel), len(data))
			if !p.conflict && !keepalive {
				if at := h.delivered(seq, data[:n]); at >= 0 {
					p.conflict = true
					e.conflict(f, side, seq, data, at, e.historyAt(h, seq+uint32(at)), true)
				}
			}
			seq += uint32(n)
			data = data[n:]
			continue
		}
		// The first held segment that ends after seq.
		i := sort.Search(len(h.ooo), func(i int) bool {
			s := &h.ooo[i]
			return int32(s.seq+uint32(len(s.data))-seq) > 0
		})
		piece := data
		if i < len(h.ooo) {
			s := &h.ooo[i]
			at := int32(s.seq - seq)
			if at <= 0 {
				// seq lies inside held segment i, whose copy wins.
				n := min(len(s.data)-int(-at), len(data))
				seq += uint32(n)
				data = data[n:]
				continue
			}
			if int(at) < len(data) {
				piece = data[:at] // up to held segment i
			}
		}
		p.fresh += len(piece)
		switch {
		case seq == h.next:
			e.deliver(f, side, piece)
			h.next += uint32(len(piece))
			e.drain(f, side)
		case hold:
			p.ahead = true
			e.hold(f, side, seq, piece)
		default:
			e.c.TCPBufferDrops++
		}
		seq += uint32(len(piece))
		data = data[len(piece):]
	}
	return p
}

// acked handles an acknowledgement for the bytes side sent. When the peer
// acknowledges bytes beyond a hole while segments wait behind it, the peer
// got the missing bytes and will not ask for them again: the tap missed
// them, so waiting longer is pointless and the hole is skipped at once.
// Without held segments an early ACK proves nothing (the two directions of
// a two-port tap may be merged slightly out of order), so it is ignored.
func (e *Engine) acked(f *flow, side int, ack uint32) {
	h := &f.half[side]
	if !h.seen {
		return
	}
	if len(h.ooo) == 0 {
		// Bytes acknowledged that the tap never saw (one more may be a
		// FIN): lost by the capture, or not sent past the tap, unless
		// they come late. Counted, and told to handlers as a possible
		// loss (Flow.Lost), once per stretch.
		if d := int32(ack - h.next); d > 1 && (!h.ackAhead || int32(ack-h.ackedTo) > 0) {
			e.c.TCPAckedUnseen++
			if f.dec != 0 && (h.unseenAt == 0 || int32(h.next-h.ackedTo) >= 0) {
				h.unseenAt, h.unseenFor = e.now, e.now-h.lastAt
			}
			h.ackAhead, h.ackedTo = true, ack
			f.Lost[f.by(side)]++
		}
		return
	}
	first := h.ooo[0].seq
	if int32(ack-first) < 0 {
		return
	}
	e.skipTo(f, side, first, int(first-h.next))
	e.drain(f, side)
}

// conflicts compares data, to be placed at seq, with the held segments it
// overlaps. It returns the offset in data of the first byte that differs
// and the held bytes from there, or -1.
func conflicts(held []segment, seq uint32, data []byte) (int, []byte) {
	for i := range held {
		s := &held[i]
		at := int(int32(s.seq - seq)) // where s starts, relative to data
		if at >= len(data) {
			break // held is sorted
		}
		from, to := max(at, 0), min(at+len(s.data), len(data))
		if from < to && !bytes.Equal(data[from:to], s.data[from-at:to-at]) {
			j := from
			for data[j] == s.data[j-at] {
				j++
			}
			return j, s.data[j-at:]
		}
	}
	return -1, nil
}

// truncatedSegment handles a segment cut short by the snap length: the
// captured part is placed like any segment (it may be a retransmission or
// arrive out of order), and once the stream has reached the end of it, the
// part that was not captured is skipped as a gap.
func (e *Engine) truncatedSegment(f *flow, side int, seq uint32, data []byte, missing int) {
	h := &f.half[side]
	if len(data) > 0 {
		e.segment(f, side, seq, data, true)
	}
	if end := seq + uint32(len(data)); h.next == end {
		e.skipTo(f, side, end+uint32(missing), missing)
		e.drain(f, side)
	}
}

// hold keeps an out-of-order segment until the hole before it fills. place
// has already cut away whatever overlaps held segments.
func (e *Engine) hold(f *flow, side int, seq uint32, data []byte) {
	h := &f.half[side]
	if len(h.ooo) == 0 {
		h.oooSince = e.now
	}
	timedOut := e.now-h.oooSince > int64(e.cfg.GapTimeout)
	tooMany := len(h.ooo) >= e.cfg.MaxOutOfOrder
	flowFull := len(h.buf)+h.oooBytes+len(data) > e.cfg.FlowBuffer
	allFull := int(e.c.BufferedBytes)+len(data) > e.cfg.TotalBuffer
	if timedOut || tooMany || flowFull || allFull {
		if len(h.ooo) > 0 {
			// Give up on the hole: skip to the first held segment and
			// deliver what can be delivered, then place this segment.
			e.skipTo(f, side, h.ooo[0].seq, int(h.ooo[0].seq-h.next))
			e.drain(f, side)
			e.place(f, side, seq, data, !allFull)
			return
		}
		if flowFull || allFull {
			e.c.TCPBufferDrops++
			return
		}
	}
	i := sort.Search(len(h.ooo), func(i int) bool { return int32(h.ooo[i].seq-seq) > 0 })
	s := segment{seq: seq, data: append([]byte(nil), data...)}
	h.ooo = append(h.ooo, segment{})
	copy(h.ooo[i+1:], h.ooo[i:])
	h.ooo[i] = s
	h.oooBytes += len(data)
	e.account(len(data))
}

// flushHeld gives up every hole in direction side: the held segments are
// delivered in order, with a gap before each run.
func (e *Engine) flushHeld(f *flow, side int) {
	h := &f.half[side]
	for len(h.ooo) > 0 {
		e.skipTo(f, side, h.ooo[0].seq, int(h.ooo[0].seq-h.next))
		e.drain(f, side)
	}
}

// drain delivers held segments that have become contiguous.
func (e *Engine) drain(f *flow, side int) {
	h := &f.half[side]
	for len(h.ooo) > 0 {
		s := h.ooo[0]
		rel := int32(s.seq - h.next)
		if rel > 0 {
			return
		}
		copy(h.ooo, h.ooo[1:])
		h.ooo[len(h.ooo)-1] = segment{}
		h.ooo = h.ooo[:len(h.ooo)-1]
		h.oooBytes -= len(s.data)
		e.account(-len(s.data))
		if int(-rel) >= len(s.data) {
			continue
		}
		data := s.data[-rel:]
		e.deliver(f, side, data)
		h.next += uint32(len(data))
		h.oooSince = e.now
	}
}

// skipTo declares the bytes up to seq lost: what the decoder held is
// reported, and it resyncs from seq. lost is the number of bytes known to
// be missing (0 when unknown).
func (e *Engine) skipTo(f *flow, side int, seq uint32, lost int) {
	h := &f.half[side]
	if h.unseenAt != 0 {
		e.unseen(f, side, seq)
	}
	e.c.TCPGaps++
	f.Lost[f.by(side)]++
	if lost > 0 {
		e.c.TCPGapBytes += uint64(lost)
	}
	e.appGap(f, side, h.buf)
	e.account(-len(h.buf))
	h.buf = h.buf[:0]
	h.next = seq
	h.oooSince = e.now
	h.histN = 0
}

// deliver hands contiguous bytes to the decoder and keeps what it did not
// consume. When nothing is held, data goes to the decoder without a copy.
func (e *Engine) deliver(f *flow, side int, data []byte) {
	h := &f.half[side]
	e.c.AppBytes += uint64(len(data))
	if f.dec != 0 {
		if h.hist == nil {
			h.hist = make([]byte, histSize)
		}
		h.remember(data)
	}
	if len(h.buf) == 0 {
		n := e.feed(f, side, data)
		if n < len(data) {
			e.keep(f, side, data[n:])
		}
		return
	}
	e.deliverHeld(f, side, data)
}

// deliverHeld is deliver when bytes are held: data joins them, and the
// decoder has them all. Apart, so that deliver's usual path is short.
func (e *Engine) deliverHeld(f *flow, side int, data []byte) {
	if !e.keep(f, side, data) {
		return
	}
	h := &f.half[side]
	n := e.feed(f, side, h.buf)
	if n > 0 {
		m := copy(h.buf, h.buf[n:])
		h.buf = h.buf[:m]
		e.account(-n)
	}
}

// keep appends data to the direction's buffer within the memory caps. When
// a cap would be exceeded, what was held is given up as a gap first.
func (e *Engine) keep(f *flow, side int, data []byte) bool {
	h := &f.half[side]
	if len(h.buf)+h.oooBytes+len(data) > e.cfg.FlowBuffer || int(e.c.BufferedBytes)+len(data) > e.cfg.TotalBuffer {
		e.c.TCPBufferDrops++
		e.c.TCPGaps++
		e.c.TCPGapBytes += uint64(len(data))
		f.Lost[f.by(side)]++
		e.appGap(f, side, h.buf)
		e.account(-len(h.buf))
		h.buf = h.buf[:0]
		return false
	}
	h.buf = append(h.buf, data...)
	e.account(len(data))
	return true
}
