package dnp3

import (
	"bytes"
	"time"
)

// Select-before-operate (IEEE 1815-2012 §4.4.4): a master SELECTs points
// with their control parameters, the outstation arms them, and an OPERATE
// with the very same objects, the next application sequence number, before
// the select timeout, executes them. An OPERATE that no valid SELECT
// prepared is refused by a conforming outstation, so seeing one on the
// wire means a broken or hostile master.
//
// Each conversation remembers the last SELECT of a few master/outstation
// pairs (link source and destination). An OPERATE consumes its pair's
// SELECT, whatever the verdict. DIRECT OPERATE needs no SELECT and is not
// judged. Only whole fragments count: a truncated SELECT arms nothing.
const (
	appSeqMask = 0x0F // application sequence in the control octet

	// sboKeep is how many object bytes of a SELECT are kept to compare;
	// longer ones also compare by length and hash.
	sboKeep = 256
	// sboSlots is how many master/outstation pairs of one conversation
	// are remembered; a new pair replaces the oldest.
	sboSlots = 2
)

type sboState struct {
	sel  [sboSlots]selectRecord
	tick uint32
}

// selectRecord is the last SELECT from master to outstation.
type selectRecord struct {
	master, outstation uint16
	armed              bool
	seq                uint8
	used               uint32
	at                 time.Time
	n                  int    // length of the object bytes
	sum                uint64 // FNV-1a of the object bytes, when longer than sboKeep
	obj                []byte // the first sboKeep object bytes; allocated at the first SELECT
}

func (sb *sboState) reset() {
	for i := range sb.sel {
		sb.sel[i] = selectRecord{obj: sb.sel[i].obj[:0]}
	}
	sb.tick = 0
}

// find returns the armed record of master and outstation, or nil.
func (sb *sboState) find(master, outstation uint16) *selectRecord {
	for i := range sb.sel {
		r := &sb.sel[i]
		if r.armed && r.master == master && r.outstation == outstation {
			return r
		}
	}
	return nil
}

// take returns the record for master and outstation: theirs, a free one,
// or the oldest.
func (sb *sboState) take(master, outstation uint16) *selectRecord {
	if r := sb.find(master, outstation); r != nil {
		return r
	}
	var victim *selectRecord
	for i := range sb.sel {
		r := &sb.sel[i]
		if !r.armed {
			victim = r
			break
		}
		if victim == nil || int32(r.used-victim.used) < 0 {
			victim = r
		}
	}
	return victim
}

// trackSBO remembers SELECT requests and judges OPERATE requests in the
// whole fragment frag reported in m. The test for them is inlined into
// every fragment's path; the tracking is not.
func (d *Decoder) trackSBO(c *Conn, m *Message, frag []byte) {
	if len(frag) >= 2 && (frag[1] == FuncSelect || frag[1] == FuncOperate) {
		d.selectOperate(c, m, frag)
	}
}

// selectOperate is trackSBO for a SELECT or an OPERATE.
func (d *Decoder) selectOperate(c *Conn, m *Message, frag []byte) {
	fc := frag[1]
	seq := frag[0] & appSeqMask
	obj := frag[2:]
	sb := &c.sbo
	master, outstation := m.Link.Src, m.Link.Dst
	if fc == FuncSelect {
		r := sb.take(master, outstation)
		sb.tick++
		if cap(r.obj) == 0 {
			r.obj = make([]byte, 0, sboKeep)
		}
		*r = selectRecord{
			master:     master,
			outstation: outstation,
			armed:      true,
			seq:        seq,
			used:       sb.tick,
			at:         m.Time,
			n:          len(obj),
			obj:        append(r.obj[:0], obj[:min(len(obj), sboKeep)]...),
		}
		if len(obj) > sboKeep {
			r.sum = fnv64a(obj)
		}
		return
	}
	r := sb.find(master, outstation)
	switch {
	case r == nil:
		sboVerdict(m, SBONoSelect, OperateWithoutSelect)
		return
	case m.Time.Sub(r.at) > d.cfg.SelectTimeout:
		sboVerdict(m, SBOLate, OperateLate)
	case seq != (r.seq+1)&appSeqMask || !r.same(obj):
		sboVerdict(m, SBOMismatch, SelectMismatch)
	default:
		m.SBO = SBOMatched
	}
	r.armed = false
}

// same reports whether obj are the object bytes the SELECT carried.
func (r *selectRecord) same(obj []byte) bool {
	if len(obj) != r.n || !bytes.Equal(obj[:min(len(obj), sboKeep)], r.obj) {
		return false
	}
	return r.n <= sboKeep || fnv64a(obj) == r.sum
}

func sboVerdict(m *Message, v SBOResult, r Reason) {
	m.SBO = v
	linkAnomaly(m, r)
}

// fnv64a is the 64-bit FNV-1a hash of b.
func fnv64a(b []byte) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, x := range b {
		h ^= uint64(x)
		h *= prime
	}
	return h
}
