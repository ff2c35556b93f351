package modbus

import (
	"math"
	"time"
)

// noTime marks a request captured without a timestamp.
const noTime = math.MinInt64

// pendingRequest is what a response needs from its request, and what an
// unanswered request is reported with. It is kept to 32 bytes because Conn
// holds MaxPendingLimit of them in every flow record.
type pendingRequest struct {
	time   int64 // Unix nanoseconds, or noTime
	frame  uint64
	tid    uint16
	addr   uint16
	count  uint16
	raddr  uint16 // FC 23 read address; FC 43: object id
	rcount uint16 // FC 23 read quantity; FC 43: read device id code
	sub    uint16
	unit   uint8
	fc     uint8
	mei    uint8
	flags  uint8
}

const pendingHasAddr = 1

// reuseWithin is how many of the master's last requests an id is
// reused from to be marked: a master that cycles through a few ids comes
// back, further on, to the id of a request never answered.
const reuseWithin = 4

// recentTID reports whether one of the last reuseWithin requests had tid.
func (c *Conn) recentTID(tid uint16) bool {
	for i := range min(int(c.nrecent), reuseWithin) {
		if c.recent[i] == tid {
			return true
		}
	}
	return false
}

// Conn.tidState.
const (
	tidOne      = 1 // requests seen, all with one transaction id
	tidNumbered = 2 // requests with different transaction ids
)

func (r *pendingRequest) objectID() uint8 { return uint8(r.raddr) }

// track remembers a request until its response comes. A request reusing
// the transaction id of a pending one (a retransmission) replaces it, and
// is marked Reused when it asks for something else; when
// the table is full the oldest request is reported as unanswered. An RTU
// master has one request out at a time, so on an RTU connection a new
// request leaves the one waiting unanswered.
func (d *Decoder) track(c *Conn, m *Message, h Handler) {
	if c.rtu {
		for c.npending > 0 {
			d.unanswered(c, 0, h)
		}
		if m.Unit == 0 {
			return // a broadcast: no slave answers it (serial line spec §2.1)
		}
	}
	if m.FC == FuncDiagnostics && m.Sub == SubForceListenOnlyMode && m.Malformed == 0 {
		return // the server never answers it
	}
	// Only a master that numbers its transactions, and only an id it
	// has moved past: some masters send several writes under their
	// current id (a corpus capture does).
	numbered := c.tidState == tidNumbered && m.TID != c.lastTID && c.recentTID(m.TID)
	c.recent[c.nrecent%reuseWithin] = m.TID
	if c.nrecent++; c.nrecent == 2*reuseWithin {
		c.nrecent = reuseWithin // full: stays in [reuseWithin, 2*reuseWithin)
	}
	switch {
	case c.tidState == 0:
		c.tidState = tidOne
	case m.TID != c.lastTID:
		c.tidState = tidNumbered
	}
	c.lastTID = m.TID
	for i := 0; i < int(c.npending); i++ {
		if r := &c.pending[i]; r.tid == m.TID && r.unit == m.Unit {
			if numbered && (r.fc != m.FC || r.addr != m.Addr || r.count != m.Count || r.sub != m.Sub) {
				m.Reused, m.ReusedFrame = true, r.frame
			}
			c.remove(i)
			break
		}
	}
	for int(c.npending) >= d.maxPending {
		d.unanswered(c, 0, h)
	}
	r := &c.pending[c.npending]
	c.npending++
	*r = pendingRequest{
		time:  noTime,
		frame: m.Frame,
		tid:   m.TID,
		addr:  m.Addr,
		count: m.Count,
		sub:   m.Sub,
		unit:  m.Unit,
		fc:    m.FC,
		mei:   m.MEI,
	}
	if !m.Time.IsZero() {
		r.time = m.Time.UnixNano()
	}
	if m.HasAddr {
		r.flags |= pendingHasAddr
	}
	switch m.FC {
	case FuncReadWriteMultipleRegisters:
		r.raddr, r.rcount = m.ReadAddr, m.ReadCount
	case FuncEncapsulatedInterface:
		r.raddr, r.rcount = uint16(m.ObjectID), uint16(m.DeviceIDCode)
	}
}

// take removes and returns the request a response answers: the one with
// its transaction id, unit and function, or else the oldest with its unit
// and function.
func (c *Conn) take(tid uint16, unit, fc uint8) (pendingRequest, bool) {
	n := int(c.npending)
	for i := 0; i < n; i++ {
		if r := &c.pending[i]; r.tid == tid && r.unit == unit && r.fc == fc {
			req := *r
			c.remove(i)
			return req, true
		}
	}
	for i := 0; i < n; i++ {
		if r := &c.pending[i]; r.unit == unit && r.fc == fc {
			req := *r
			c.remove(i)
			return req, true
		}
	}
	return pendingRequest{}, false
}

func (c *Conn) remove(i int) {
	n := int(c.npending)
	if i+1 < n { // usually the only one: no call to copy nothing
		copy(c.pending[i:n], c.pending[i+1:n])
	}
	c.npending--
	c.pending[c.npending] = pendingRequest{}
}

// Expire reports requests older than the timeout as unanswered. now is
// packet time, not wall time. Feed and Datagram expire with the time of
// their packet before decoding it, so a response arriving after the
// timeout is an orphan however often Expire is called.
func (d *Decoder) Expire(c *Conn, now time.Time, h Handler) { d.expire(c, now, h) }

func (d *Decoder) expire(c *Conn, now time.Time, h Handler) {
	if c.npending == 0 || now.IsZero() {
		return
	}
	t := now.UnixNano()
	for i := 0; i < int(c.npending); {
		if r := &c.pending[i]; r.time != noTime && t-r.time > int64(d.timeout) {
			d.unanswered(c, i, h)
			continue
		}
		i++
	}
}

// Close reports every request still waiting as unanswered.
func (d *Decoder) Close(c *Conn, meta Meta, h Handler) {
	for c.npending > 0 {
		d.unanswered(c, 0, h)
	}
}

// unanswered reports and forgets pending request i.
func (d *Decoder) unanswered(c *Conn, i int, h Handler) {
	r := c.pending[i]
	c.remove(i)
	m := d.begin(&d.aux, Request, &Meta{Frame: r.frame})
	if r.time != noTime {
		m.Time = time.Unix(0, r.time)
	}
	m.TID, m.Unit, m.FC = r.tid, r.unit, r.fc
	m.HasAddr = r.flags&pendingHasAddr != 0
	m.Addr, m.Count = r.addr, r.count
	m.Sub, m.MEI = r.sub, r.mei
	switch r.fc {
	case FuncReadWriteMultipleRegisters:
		m.ReadAddr, m.ReadCount = r.raddr, r.rcount
	case FuncEncapsulatedInterface:
		m.ObjectID, m.DeviceIDCode = uint8(r.raddr), uint8(r.rcount)
	}
	m.Outcome = OutcomeUnanswered
	m.RequestFrame = r.frame
	h.Message(m)
}

func durationBetween(from int64, to time.Time) time.Duration {
	return time.Duration(to.UnixNano() - from)
}
