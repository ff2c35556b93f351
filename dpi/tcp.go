package dpi

import (
	"bytes"
	"sort"

	"github.com/gopacket/gopacket/layers"
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

func (e *Engine) tcpPacket(k *flowKey, mac [2][6]byte, t *layers.TCP) {
	payload := t.Payload
	f, side, fresh := e.lookup(k, mac, TCP, t.SYN || len(payload) > 0)
	if f == nil {
		return
	}
	if fresh && t.SYN && t.ACK {
		// The handshake's second packet: the client's SYN was missed, but
		// the connection still starts here.
		f.half[side^1].seen = true
		f.half[side^1].next = t.Ack
	}
	if fresh {
		f.MidStream = !t.SYN
		if f.MidStream {
			e.c.TCPMidStream++
		}
		f.mb.Reset(f.MidStream)
	}
	if f.App == AppNone {
		if t.RST || t.FIN {
			e.endSide(f, side, t.RST)
		}
		return
	}
	e.cur = f
	h := &f.half[side]
	seq := t.Seq
	if t.SYN {
		if h.seen && !fresh && seq+1 != h.next && f.last != 0 {
			// A new connection on the same ports: end the old one.
			e.closeFlow(f, &e.c.FlowsClosed)
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
	if t.ACK {
		e.acked(f, side^1, t.Ack)
	}
	if len(payload) > 0 {
		if missing := e.segmentLength() - len(payload); missing > 0 {
			e.truncatedSegment(f, side, seq, payload, missing)
		} else {
			e.segment(f, side, seq, payload, true)
		}
	}
	if t.RST || t.FIN {
		e.endSide(f, side, t.RST)
	}
}

// segmentLength is the TCP payload length the IP header announces.
func (e *Engine) segmentLength() int {
	hdr := int(e.tcp.DataOffset) * 4
	for _, t := range e.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			return int(e.ip4.Length) - int(e.ip4.IHL)*4 - hdr
		case layers.LayerTypeIPv6:
			return int(e.ip6.Length) - hdr
		}
	}
	return len(e.tcp.Payload)
}

func (e *Engine) endSide(f *flow, side int, reset bool) {
	f.closed[side] = true
	if reset || (f.closed[0] && f.closed[1]) {
		e.closeFlow(f, &e.c.FlowsClosed)
	}
}

// segment handles one segment's payload in direction side. hold says an
// out-of-order segment may be held.
func (e *Engine) segment(f *flow, side int, seq uint32, data []byte, hold bool) {
	h := &f.half[side]
	rel := int32(seq - h.next)
	if rel > maxSeqJump || rel < -maxSeqJump {
		e.skipTo(f, side, seq, 0)
		rel = 0
	}
	if rel < 0 {
		done := int(-rel)
		if done >= len(data) {
			e.c.TCPRetransmits++
			return
		}
		e.c.TCPOverlaps++
		data = data[done:]
		seq = h.next
		rel = 0
	}
	if rel > 0 {
		if hold {
			e.hold(f, side, seq, data)
		}
		return
	}
	e.deliver(f, side, data)
	h.next += uint32(len(data))
	e.drain(f, side)
}

// acked handles an acknowledgement for the bytes side sent. When the peer
// acknowledges bytes beyond a hole while segments wait behind it, the peer
// got the missing bytes and will not ask for them again: the tap missed
// them, so waiting longer is pointless and the hole is skipped at once.
// Without held segments an early ACK proves nothing (the two directions of
// a two-port tap may be merged slightly out of order), so it is ignored.
func (e *Engine) acked(f *flow, side int, ack uint32) {
	h := &f.half[side]
	if len(h.ooo) == 0 || !h.seen {
		return
	}
	first := h.ooo[0].seq
	if int32(ack-first) < 0 {
		return
	}
	e.skipTo(f, side, first, int(first-h.next))
	e.drain(f, side)
}

// truncatedSegment delivers the captured part of a segment cut short by the
// snap length and skips the part that was not captured.
func (e *Engine) truncatedSegment(f *flow, side int, seq uint32, data []byte, missing int) {
	h := &f.half[side]
	if seq != h.next {
		e.c.TCPBufferDrops++
		return
	}
	e.deliver(f, side, data)
	h.next += uint32(len(data))
	e.skipTo(f, side, h.next+uint32(missing), missing)
	e.drain(f, side)
}

// hold keeps an out-of-order segment until the hole before it fills.
func (e *Engine) hold(f *flow, side int, seq uint32, data []byte) {
	h := &f.half[side]
	if len(h.ooo) == 0 {
		h.oooSince = e.now
	}
	// An identical start is a retransmission of a held segment: first copy wins.
	i := sort.Search(len(h.ooo), func(i int) bool { return int32(h.ooo[i].seq-seq) >= 0 })
	if i < len(h.ooo) && h.ooo[i].seq == seq {
		old := h.ooo[i].data
		n := min(len(old), len(data))
		if !bytes.Equal(old[:n], data[:n]) {
			e.c.TCPConflicts++
		}
		if len(data) <= len(old) {
			e.c.TCPRetransmits++
			return
		}
	}
	e.c.TCPOutOfOrder++
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
			e.segment(f, side, seq, data, !allFull)
			return
		}
		if flowFull || allFull {
			e.c.TCPBufferDrops++
			return
		}
	}
	s := segment{seq: seq, data: append([]byte(nil), data...)}
	h.ooo = append(h.ooo, segment{})
	copy(h.ooo[i+1:], h.ooo[i:])
	h.ooo[i] = s
	h.oooBytes += len(data)
	e.account(len(data))
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
	e.c.TCPGaps++
	if lost > 0 {
		e.c.TCPGapBytes += uint64(lost)
	}
	if f.App == AppModbus {
		e.mb.Gap(&f.mb, f.dirOf(side), h.buf, e.meta, e)
	}
	e.account(-len(h.buf))
	h.buf = h.buf[:0]
	h.next = seq
	h.oooSince = e.now
}

// deliver hands contiguous bytes to the decoder and keeps what it did not
// consume. When nothing is held, data goes to the decoder without a copy.
func (e *Engine) deliver(f *flow, side int, data []byte) {
	h := &f.half[side]
	e.c.AppBytes += uint64(len(data))
	dir := f.dirOf(side)
	if len(h.buf) == 0 {
		n := e.mb.Feed(&f.mb, dir, data, e.meta, e)
		if rest := data[n:]; len(rest) > 0 {
			e.keep(f, side, rest)
		}
		return
	}
	if !e.keep(f, side, data) {
		return
	}
	n := e.mb.Feed(&f.mb, dir, h.buf, e.meta, e)
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
		e.mb.Gap(&f.mb, f.dirOf(side), h.buf, e.meta, e)
		e.account(-len(h.buf))
		h.buf = h.buf[:0]
		return false
	}
	h.buf = append(h.buf, data...)
	e.account(len(data))
	return true
}
