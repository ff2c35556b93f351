package sim

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

const (
	scadaLinkAddr  = 1
	firstOutAddr   = 10
	selectTimeout  = 10 * time.Second
	maxEvents      = 8
	breakerIndex   = 0
	integrityEvery = 5 * time.Minute
)

// Application function codes the builders do not name.
const (
	fcWarmRestart     = 14
	fcStopApplication = 18
	fcOpenFile        = 25
	fcCloseFile       = 26
)

// outstation is a DNP3 outstation (an RTU or a protection relay).
type outstation struct {
	name     string
	ep       pcapgen.Endpoint
	addr     uint16
	binaries []uint8 // flags octets, with the state in bit 7
	analogs  []wave

	restart, needTime, broadcast bool
	unsolicited                  bool // enabled by the master
	unsSeq                       uint8
	selected                     []byte // objects of the last SELECT, status octets cleared
	selectedAt                   time.Duration
	aevents                      []pcapgen.AnalogEvent
	bevents                      []pcapgen.BinaryEvent
	fileHandle                   uint32
}

func (m *sim) newOutstation(i int) *outstation {
	o := &outstation{
		name:     fmt.Sprintf("rtu%d", i+1),
		ep:       pcapgen.Endpoint{MAC: mac(4, byte(i)), IP: ip(byte(40 + i)), Port: pcapgen.DNP3Port},
		addr:     firstOutAddr + uint16(i),
		binaries: make([]uint8, 8+m.rng.IntN(9)),
		analogs:  make([]wave, 6+m.rng.IntN(7)),
		restart:  true, // the capture starts as the SCADA system comes up
		needTime: true,
	}
	for k := range o.binaries {
		o.binaries[k] = pcapgen.DNP3FlagOnline
		if k == breakerIndex || m.rng.IntN(4) == 0 {
			o.binaries[k] |= pcapgen.DNP3BinaryState
		}
	}
	for k := range o.analogs {
		o.analogs[k] = wave{
			base:   float64(1000 + m.rng.IntN(20000)),
			amp:    float64(100 + m.rng.IntN(2000)),
			noise:  float64(5 + m.rng.IntN(20)),
			period: time.Duration(10+m.rng.IntN(50)) * time.Minute,
			phase:  2 * math.Pi * m.rng.Float64(),
		}
	}
	return o
}

func (o *outstation) value(m *sim, k int) int32 {
	w := &o.analogs[k]
	v := w.base + w.amp*math.Sin(2*math.Pi*m.now().Seconds()/w.period.Seconds()+w.phase) + w.noise*(2*m.rng.Float64()-1)
	return int32(math.Round(v))
}

func (o *outstation) iin() uint16 {
	var v uint16
	if o.restart {
		v |= pcapgen.IINDeviceRestart
	}
	if o.needTime {
		v |= pcapgen.IINNeedTime
	}
	if o.broadcast {
		v |= pcapgen.IINBroadcast
		o.broadcast = false
	}
	if len(o.aevents)+len(o.bevents) > 0 {
		v |= pcapgen.IINClass1Events
	}
	return v
}

// addEvents records 1 to 3 analog changes past the deadband.
func (m *sim) addEvents(o *outstation) {
	for range 1 + m.rng.IntN(3) {
		if len(o.aevents) == maxEvents {
			return
		}
		k := m.rng.IntN(len(o.analogs))
		o.aevents = append(o.aevents, pcapgen.AnalogEvent{Index: uint16(k), Flags: pcapgen.DNP3FlagOnline, Value: o.value(m, k)})
	}
}

// takeEvents returns the object headers of the pending events and clears
// them.
func (o *outstation) takeEvents() [][]byte {
	var objs [][]byte
	if len(o.bevents) > 0 {
		objs = append(objs, pcapgen.BinaryInputEvents(o.bevents...))
		o.bevents = o.bevents[:0]
	}
	if len(o.aevents) > 0 {
		objs = append(objs, pcapgen.AnalogInputEvents(o.aevents...))
		o.aevents = o.aevents[:0]
	}
	return objs
}

// answer is the outstation's response to request fragment req, or nil
// when it sends none.
func (m *sim) answer(o *outstation, req []byte) []byte {
	seq := req[0] & 0x0f
	fc, objs := req[1], req[2:]
	ctl := pcapgen.AppControl(true, true, false, false, seq)
	null := func() []byte { return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, o.iin()) }
	switch fc {
	case pcapgen.DNP3Confirm, pcapgen.DNP3DirectOperateNR:
		if fc == pcapgen.DNP3DirectOperateNR {
			m.operate(o, objs)
		}
		return nil
	case pcapgen.DNP3Read:
		integrity := bytes.Contains(objs, pcapgen.ClassData(0))
		if !integrity && m.rng.IntN(10) < 3 {
			m.addEvents(o)
		}
		events := o.takeEvents()
		if integrity {
			values := make([]int32, len(o.analogs))
			for k := range values {
				values[k] = o.value(m, k)
			}
			events = append(events, pcapgen.BinaryInputs(0, o.binaries...), pcapgen.AnalogInputs(0, pcapgen.DNP3FlagOnline, values...))
		}
		con := len(events) > 0 && (events[0][0] == 2 || events[0][0] == 32)
		ctl = pcapgen.AppControl(true, true, con, false, seq)
		iin := o.iin()
		return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, iin, events...)
	case pcapgen.DNP3Write:
		switch objs[0] {
		case 80:
			o.restart = false
		case 50:
			o.needTime = false
		}
		return null()
	case pcapgen.DNP3Select:
		o.selected = bytes.Clone(objs)
		o.selected[len(o.selected)-1] = 0
		o.selectedAt = m.now()
		return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, o.iin(), objs)
	case pcapgen.DNP3Operate:
		status := byte(pcapgen.DNP3StatusSuccess)
		if o.selected == nil || !bytes.Equal(o.selected, objs) || m.now()-o.selectedAt > selectTimeout {
			status = pcapgen.DNP3StatusNoSelect
		} else {
			m.operate(o, objs)
		}
		o.selected = nil
		echo := bytes.Clone(objs)
		echo[len(echo)-1] = status
		return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, o.iin(), echo)
	case pcapgen.DNP3ColdRestart, fcWarmRestart:
		delay := uint16(1000)
		if fc == pcapgen.DNP3ColdRestart {
			delay = 5000
			o.needTime = true
		}
		o.restart, o.unsolicited = true, false
		return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, o.iin(), []byte{52, 2, 0x07, 1, byte(delay), byte(delay >> 8)})
	case pcapgen.DNP3EnableUnsolicited:
		o.unsolicited = true
		return null()
	case pcapgen.DNP3DisableUnsolicited:
		o.unsolicited = false
		return null()
	case fcStopApplication:
		return null()
	case fcOpenFile:
		o.fileHandle = 0x1000 + uint32(m.rng.IntN(0x1000))
		return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, o.iin(), fileStatus(o.fileHandle, 2048, 0))
	case fcCloseFile:
		return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, o.iin(), fileStatus(o.fileHandle, 0, 0))
	}
	return pcapgen.AppResponse(ctl, pcapgen.DNP3Response, o.iin()|pcapgen.IINNoFuncSupport)
}

// operate carries out the CROB in objs: the breaker (index 0) trips or
// closes, and a binary event records it.
func (m *sim) operate(o *outstation, objs []byte) {
	if len(objs) < 16 || objs[0] != 12 || objs[1] != 1 {
		return
	}
	index := int(objs[5]) | int(objs[6])<<8
	if index >= len(o.binaries) {
		return
	}
	code := objs[7]
	on := code == pcapgen.CROBClose || code&0x0f == pcapgen.CROBLatchOn
	off := code == pcapgen.CROBTrip || code&0x0f == pcapgen.CROBLatchOff
	if !on && !off {
		return
	}
	f := uint8(pcapgen.DNP3FlagOnline)
	if on {
		f |= pcapgen.DNP3BinaryState
	}
	o.binaries[index] = f
	if len(o.bevents) < maxEvents {
		o.bevents = append(o.bevents, pcapgen.BinaryEvent{Index: uint16(index), Flags: f, Time: uint64(m.w.Now().UnixMilli())})
	}
}

// fileStatus returns a g70v4 file command status object: handle, size,
// maximum block size, request id, status code.
func fileStatus(handle, size uint32, status uint8) []byte {
	b := []byte{70, 4, 0x5b, 1, 13, 0}
	b = append(b, byte(handle), byte(handle>>8), byte(handle>>16), byte(handle>>24))
	b = append(b, byte(size), byte(size>>8), byte(size>>16), byte(size>>24))
	b = append(b, 0x00, 0x04) // max block size 1024
	b = append(b, 0x01, 0x00) // request id 1
	return append(b, status)
}

// assoc is the SCADA master's association with one outstation over TCP.
type assoc struct {
	out    *outstation
	d      *pcapgen.DNP3Conn
	client netip.AddrPort
	lane   bool
	seq    uint8
}

func (a *assoc) nextSeq() uint8 {
	s := a.seq
	a.seq = (a.seq + 1) & 0x0f
	return s
}

var (
	eventClasses    = concat(pcapgen.ClassData(1), pcapgen.ClassData(2), pcapgen.ClassData(3))
	integrityRead   = concat(pcapgen.ClassData(1), pcapgen.ClassData(2), pcapgen.ClassData(3), pcapgen.ClassData(0))
	unsolicitedObjs = []byte{60, 2, 0x06, 60, 3, 0x06, 60, 4, 0x06}
)

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func (m *sim) startAssoc(o *outstation) error {
	client := m.scada.ep
	client.Port = m.port()
	c, err := pcapgen.NewTCPConn(m.w, client, o.ep, m.rng.Uint32(), m.rng.Uint32())
	if err != nil {
		return err
	}
	a := &assoc{out: o, d: pcapgen.NewDNP3TCP(c, scadaLinkAddr, o.addr), client: netip.AddrPortFrom(client.IP, client.Port), seq: uint8(m.rng.IntN(16))}
	a.d.MasterSeq, a.d.OutstationSeq = uint8(m.rng.IntN(64)), uint8(m.rng.IntN(64))
	o.unsSeq = uint8(m.rng.IntN(16))
	m.assocs = append(m.assocs, a)
	t := time.Duration(m.rng.Int64N(int64(time.Second)))
	m.play(&a.lane, t, []step{{0, func() error { _, err := c.Handshake(); return err }}})

	// The event poll, preceded by the start-up sequence when the
	// outstation reports a restart: integrity poll, clear the restart
	// indication, set the time, enable unsolicited responses.
	period := m.period(2 * time.Second)
	m.every(t+100*time.Millisecond, period, 50*time.Millisecond, func() error {
		if a.lane {
			return nil // busy: skip this poll
		}
		var st []step
		if o.restart {
			st = m.dtx(st, a, 0, pcapgen.DNP3Read, integrityRead, nil, false)
			st = m.dtx(st, a, m.ms(5, 20), pcapgen.DNP3Write, pcapgen.ClearRestart(), nil, false)
			st = m.dtx(st, a, m.ms(5, 20), pcapgen.DNP3Write, nil, nil, false) // the time, set when sent
			st = m.dtx(st, a, m.ms(5, 20), pcapgen.DNP3EnableUnsolicited, unsolicitedObjs, nil, false)
		} else if o.needTime {
			st = m.dtx(st, a, 0, pcapgen.DNP3Write, nil, nil, false)
		}
		st = m.dtx(st, a, m.ms(1, 5), pcapgen.DNP3Read, eventClasses, nil, false)
		m.play(&a.lane, m.now(), m.dackMaster(st, a, nil))
		return nil
	})
	// The periodic integrity poll.
	m.every(t+integrityEvery+m.ms(0, 10000), integrityEvery, time.Second, func() error {
		st := m.dtx(nil, a, 0, pcapgen.DNP3Read, integrityRead, nil, false)
		m.play(&a.lane, m.now(), m.dackMaster(st, a, nil))
		return nil
	})
	// Unsolicited responses when a measurement moves, while enabled.
	m.every(t+m.ms(5000, 20000), 30*time.Second, 25*time.Second, func() error {
		if !o.unsolicited {
			return nil
		}
		m.addEvents(o)
		m.play(&a.lane, m.now(), m.unsolicited(a))
		return nil
	})
	return nil
}

// dtx appends one DNP3 exchange to st: the master's request after gap (its
// sequence number taken when sent; a WRITE with no objects writes the
// time), the outstation's response after its latency, and the master's
// confirm if the response asks for one.
func (m *sim) dtx(st []step, a *assoc, gap time.Duration, fc uint8, objs []byte, r *rec, key bool) []step {
	var resp []byte
	return m.dtxWith(st, a, gap, func(seq uint8) []byte {
		o := objs
		if fc == pcapgen.DNP3Write && o == nil {
			o = pcapgen.TimeAndDate(uint64(m.w.Now().UnixMilli()))
		}
		return pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, seq), fc, o)
	}, &resp, r, key)
}

// dtxWith is dtx with the request built by build; *resp receives the
// response (nil when none).
func (m *sim) dtxWith(st []step, a *assoc, gap time.Duration, build func(seq uint8) []byte, resp *[]byte, r *rec, key bool) []step {
	var req []byte
	st = append(st, step{gap, func() error {
		req = build(a.nextSeq())
		return m.send(r, key, func() ([]int, error) { return a.d.Master(req) })
	}})
	st = append(st, step{m.ms(5, 25), func() error {
		*resp = m.answer(a.out, req)
		if *resp == nil {
			return nil
		}
		return m.send(r, false, func() ([]int, error) { return a.d.Outstation(*resp) })
	}})
	return append(st, step{m.ms(2, 8), func() error {
		if *resp == nil || (*resp)[0]&0x20 == 0 {
			return nil
		}
		return m.send(r, false, func() ([]int, error) { return a.d.Master(confirm((*resp)[0])) })
	}})
}

func confirm(ctl uint8) []byte {
	return pcapgen.AppRequest(pcapgen.AppControl(true, true, false, ctl&0x10 != 0, ctl), pcapgen.DNP3Confirm)
}

// dackMaster appends the master's delayed ACK.
func (m *sim) dackMaster(st []step, a *assoc, r *rec) []step {
	return append(st, step{m.ms(30, 20), func() error {
		return m.send(r, false, func() ([]int, error) {
			f, err := a.d.TCP().Ack(pcapgen.FromMaster)
			return []int{f}, err
		})
	}})
}

// unsolicited returns the steps of an unsolicited response, the master's
// confirm and the outstation's delayed ACK.
func (m *sim) unsolicited(a *assoc) []step {
	o := a.out
	var ctl uint8
	return []step{
		{0, func() error {
			ctl = pcapgen.AppControl(true, true, true, true, o.unsSeq)
			o.unsSeq = (o.unsSeq + 1) & 0x0f
			_, err := a.d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3UnsolicitedResponse, o.iin(), o.takeEvents()...))
			return err
		}},
		{m.ms(2, 10), func() error { _, err := a.d.Master(confirm(ctl)); return err }},
		{m.ms(30, 20), func() error { _, err := a.d.TCP().Ack(pcapgen.FromOutstation); return err }},
	}
}

// breakerOperate has the SCADA master trip or close the breaker of rtu1
// with select before operate.
func (m *sim) breakerOperate() error {
	a := m.assocs[0]
	code := uint8(pcapgen.CROBTrip)
	if m.breakerWrites%2 == 1 {
		code = pcapgen.CROBClose
	}
	m.breakerWrites++
	obj := pcapgen.CROB(breakerIndex, code, 1, 100, 0, pcapgen.DNP3StatusSuccess)
	st := m.dtx(nil, a, 0, pcapgen.DNP3Select, obj, nil, false)
	st = m.dtx(st, a, m.ms(200, 600), pcapgen.DNP3Operate, obj, nil, false)
	m.play(&a.lane, m.now(), m.dackMaster(st, a, nil))
	return nil
}
