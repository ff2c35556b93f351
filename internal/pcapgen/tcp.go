package pcapgen

import (
	"errors"
	"fmt"
)

// Side says which end of a TCPConn sends. The zero value is invalid.
type Side uint8

const (
	FromClient Side = 1
	FromServer Side = 2
)

func (s Side) String() string {
	switch s {
	case FromClient:
		return "client"
	case FromServer:
		return "server"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

func (s Side) peer() Side { return 3 - s }

// DefaultWindow is the advertised TCP window of a new TCPConn.
const DefaultWindow = 64240

// historyLen bounds how far back Retransmit can reach, and so the memory a
// long-lived connection holds.
const historyLen = 32

// TCPConn simulates one TCP connection and writes its segments to a Writer,
// with sequence and acknowledgement numbers as the two hosts would keep them.
//
// A connection is mid-stream until Handshake is called: NewTCPConn followed
// directly by Client or Server produces exactly the frames a capture started
// after the handshake would hold. Every data segment carries ACK (for all
// the peer has sent) and the last segment of each send carries PSH.
type TCPConn struct {
	w      *Writer
	ends   [3]end    // indexed by Side
	nxt    [3]uint32 // next sequence number each side sends
	Window uint16    // advertised window; default DefaultWindow

	hist  [historyLen]sentSegment
	nhist int
}

type sentSegment struct {
	frame   int
	side    Side
	seq     uint32
	payload []byte
}

// NewTCPConn returns a connection from client to server. clientISN and
// serverISN are the initial sequence numbers, the sequence numbers of the
// SYNs; data starts at ISN+1 whether or not Handshake is called.
func NewTCPConn(w *Writer, client, server Endpoint, clientISN, serverISN uint32) (*TCPConn, error) {
	c, s, err := newEnds(client, server)
	if err != nil {
		return nil, err
	}
	conn := &TCPConn{w: w, Window: DefaultWindow}
	conn.ends[FromClient], conn.ends[FromServer] = c, s
	conn.nxt[FromClient], conn.nxt[FromServer] = clientISN+1, serverISN+1
	return conn, nil
}

// NextSeq is the sequence number of the next byte side will send.
func (c *TCPConn) NextSeq(side Side) uint32 { return c.nxt[side] }

// Impersonate makes side's later packets come from e's MAC and TTL, with
// side's own address and port: a packet forged by another machine into
// the connection. Impersonate(side, the original endpoint) ends it.
func (c *TCPConn) Impersonate(side Side, e Endpoint) error {
	if err := c.checkSide(side); err != nil {
		return err
	}
	n, err := newEnd(e)
	if err != nil {
		return err
	}
	c.ends[side].mac, c.ends[side].ttl = n.mac, n.ttl
	return nil
}

// Handshake writes SYN, SYN-ACK and ACK.
func (c *TCPConn) Handshake() ([]int, error) {
	frames := make([]int, 0, 3)
	f, err := c.segment(FromClient, c.nxt[FromClient]-1, flagSYN, nil)
	if err != nil {
		return frames, err
	}
	frames = append(frames, f)
	if f, err = c.segment(FromServer, c.nxt[FromServer]-1, flagSYN|flagACK, nil); err != nil {
		return frames, err
	}
	frames = append(frames, f)
	if f, err = c.segment(FromClient, c.nxt[FromClient], flagACK, nil); err != nil {
		return frames, err
	}
	return append(frames, f), nil
}

// Syn writes the client's SYN alone: a connection attempt, as a scan
// makes them. Answer it with Rst(FromServer) for a closed port.
func (c *TCPConn) Syn() (int, error) {
	return c.segment(FromClient, c.nxt[FromClient]-1, flagSYN, nil)
}

// SynAck writes the server's SYN-ACK alone: an open port's answer to
// Syn. A scanner then resets with Rst(FromClient).
func (c *TCPConn) SynAck() (int, error) {
	return c.segment(FromServer, c.nxt[FromServer]-1, flagSYN|flagACK, nil)
}

// SendOption changes how Send cuts and orders a payload's segments.
type SendOption func(*sendPlan)

type sendPlan struct {
	split   int
	at      []int
	order   []int
	overlap int
}

// Split cuts the payload into n segments of nearly equal size.
func Split(n int) SendOption { return func(p *sendPlan) { p.split = n } }

// SplitAt cuts the payload before each of the given byte offsets, which must
// be increasing and inside the payload.
func SplitAt(offsets ...int) SendOption { return func(p *sendPlan) { p.at = offsets } }

// Order writes the segments in the given order (indexes from 0), e.g.
// Order(1, 0) sends the second segment first.
func Order(idx ...int) SendOption { return func(p *sendPlan) { p.order = idx } }

// Overlap makes every segment after the first start n bytes earlier, so it
// repeats (with the same data) the end of the segment before it.
func Overlap(n int) SendOption { return func(p *sendPlan) { p.overlap = n } }

// Client sends payload from the client; see Send.
func (c *TCPConn) Client(payload []byte, opts ...SendOption) ([]int, error) {
	return c.Send(FromClient, payload, opts...)
}

// Server sends payload from the server; see Send.
func (c *TCPConn) Server(payload []byte, opts ...SendOption) ([]int, error) {
	return c.Send(FromServer, payload, opts...)
}

// Send writes payload from side as one or more segments, advances side's
// sequence number by len(payload), and returns the frame numbers in the
// order written.
func (c *TCPConn) Send(side Side, payload []byte, opts ...SendOption) ([]int, error) {
	if err := c.checkSide(side); err != nil {
		return nil, err
	}
	if len(payload) == 0 {
		return nil, errors.New("pcapgen: Send with an empty payload (use Ack)")
	}
	var p sendPlan
	for _, o := range opts {
		o(&p)
	}
	cuts, err := p.cuts(len(payload))
	if err != nil {
		return nil, err
	}
	n := len(cuts) - 1
	order := p.order
	if order == nil {
		order = make([]int, n)
		for i := range order {
			order[i] = i
		}
	} else if err := checkPermutation(order, n); err != nil {
		return nil, err
	}
	base := c.nxt[side]
	frames := make([]int, 0, n)
	for k, i := range order {
		start, stop := cuts[i], cuts[i+1]
		if i > 0 {
			start = max(0, start-p.overlap)
		}
		flags := uint8(flagACK)
		if k == n-1 {
			flags |= flagPSH
		}
		f, err := c.data(side, base+uint32(start), flags, payload[start:stop])
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
	c.nxt[side] = base + uint32(len(payload))
	return frames, nil
}

// cuts returns the segment boundaries: 0, ..., size.
func (p *sendPlan) cuts(size int) ([]int, error) {
	if p.overlap < 0 {
		return nil, fmt.Errorf("pcapgen: negative overlap %d", p.overlap)
	}
	if p.at != nil {
		cuts := make([]int, 0, len(p.at)+2)
		cuts = append(cuts, 0)
		for _, o := range p.at {
			if o <= cuts[len(cuts)-1] || o >= size {
				return nil, fmt.Errorf("pcapgen: split offsets %v not increasing inside a %d-byte payload", p.at, size)
			}
			cuts = append(cuts, o)
		}
		return append(cuts, size), nil
	}
	n := max(p.split, 1)
	if n > size {
		return nil, fmt.Errorf("pcapgen: cannot split %d bytes into %d segments", size, n)
	}
	cuts := make([]int, n+1)
	for i := range cuts {
		cuts[i] = i * size / n
	}
	return cuts, nil
}

func checkPermutation(order []int, n int) error {
	seen := make([]bool, n)
	for _, i := range order {
		if i < 0 || i >= n || seen[i] {
			return fmt.Errorf("pcapgen: order %v is not a permutation of %d segments", order, n)
		}
		seen[i] = true
	}
	if len(order) != n {
		return fmt.Errorf("pcapgen: order %v is not a permutation of %d segments", order, n)
	}
	return nil
}

// SendAt writes one data segment from side at an explicit sequence number
// without changing the connection's state: for overlaps with conflicting
// data, stale or out-of-window segments.
func (c *TCPConn) SendAt(side Side, seq uint32, payload []byte) (int, error) {
	if err := c.checkSide(side); err != nil {
		return 0, err
	}
	return c.data(side, seq, flagACK|flagPSH, payload)
}

// Retransmit writes again the data segment first written as frame, with its
// sequence number and payload and the current ACK. Only the last 32 data
// segments of the connection can be retransmitted.
func (c *TCPConn) Retransmit(frame int) (int, error) {
	for i := range min(c.nhist, historyLen) {
		h := &c.hist[i]
		if h.frame == frame {
			return c.segment(h.side, h.seq, flagACK|flagPSH, h.payload)
		}
	}
	return 0, fmt.Errorf("pcapgen: frame %d is not one of the last %d data segments of this connection", frame, historyLen)
}

// Skip advances side's sequence number by n bytes that are never written:
// bytes the peer received (later ACKs cover them) but the tap missed.
func (c *TCPConn) Skip(side Side, n int) {
	c.nxt[side] += uint32(n)
}

// Ack writes a segment from side with no payload that acknowledges all the
// peer has sent.
func (c *TCPConn) Ack(side Side) (int, error) {
	if err := c.checkSide(side); err != nil {
		return 0, err
	}
	return c.segment(side, c.nxt[side], flagACK, nil)
}

// Fin writes a FIN from side, which consumes one sequence number.
func (c *TCPConn) Fin(side Side) (int, error) {
	if err := c.checkSide(side); err != nil {
		return 0, err
	}
	f, err := c.segment(side, c.nxt[side], flagFIN|flagACK, nil)
	if err == nil {
		c.nxt[side]++
	}
	return f, err
}

// Close writes the client's FIN, the server's FIN and the client's last ACK.
func (c *TCPConn) Close() ([]int, error) {
	frames := make([]int, 0, 3)
	for _, step := range [...]func() (int, error){
		func() (int, error) { return c.Fin(FromClient) },
		func() (int, error) { return c.Fin(FromServer) },
		func() (int, error) { return c.Ack(FromClient) },
	} {
		f, err := step()
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// Rst writes a RST (with ACK) from side.
func (c *TCPConn) Rst(side Side) (int, error) {
	if err := c.checkSide(side); err != nil {
		return 0, err
	}
	return c.segment(side, c.nxt[side], flagRST|flagACK, nil)
}

func (c *TCPConn) checkSide(side Side) error {
	if side != FromClient && side != FromServer {
		return fmt.Errorf("pcapgen: invalid side %v", side)
	}
	return nil
}

// data writes a data segment and remembers it for Retransmit.
func (c *TCPConn) data(side Side, seq uint32, flags uint8, payload []byte) (int, error) {
	f, err := c.segment(side, seq, flags, payload)
	if err != nil {
		return 0, err
	}
	h := &c.hist[c.nhist%historyLen]
	c.nhist++
	h.frame, h.side, h.seq = f, side, seq
	h.payload = append(h.payload[:0], payload...)
	return f, nil
}

func (c *TCPConn) segment(side Side, seq uint32, flags uint8, payload []byte) (int, error) {
	return c.w.writeTCP(&c.ends[side], &c.ends[side.peer()], seq, c.nxt[side.peer()], flags, c.Window, payload)
}
