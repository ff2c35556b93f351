package rules

import (
	"strconv"
	"strings"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// modbusAdapter is the Adapter of Modbus (TCP, UDP and RTU over TCP).
type modbusAdapter struct{}

func init() { registerAdapter(&modbusAdapter{}) }

func (*modbusAdapter) Proto() proto.ID { return proto.Modbus }

// Op: requests repeated when given up on (OutcomeUnanswered) are not
// evaluated. The built-in detectors see every other message, malformed
// ones included; the rules only messages with a function code.
func (*modbusAdapter) Op(op *Op, f *dpi.Flow, from dpi.Side, m any) Use {
	mb, ok := m.(*modbus.Message)
	if !ok {
		return UseNone
	}
	op.FromModbus(f, mb)
	switch {
	case mb.Outcome == modbus.OutcomeUnanswered:
		return UseTime
	case mb.HasFunction():
		return UseRules
	}
	return UseDetect
}

func (*modbusAdapter) HasFunction(op *Op) bool {
	return op.Modbus == nil || op.Modbus.HasFunction()
}

// Classes: FC 8's class depends on its sub-function.
func (*modbusAdapter) Classes(fc uint8) policy.OpSet {
	if fc == 8 {
		return 1<<policy.OpDiagnostic | 1<<policy.OpRestart | 1<<policy.OpConfig
	}
	return 1 << ModbusClass(fc, 0)
}

// Match: the unit, table and addresses.
func (*modbusAdapter) Match(m *policy.Match, op *Op) bool {
	if !m.Units.Empty() && !m.Units.Has(op.Unit) {
		return false
	}
	if m.Tables != 0 && !m.Tables.Has(op.Table) {
		return false
	}
	return len(m.Addr) == 0 || addrMatches(m.Addr, op)
}

func (*modbusAdapter) MatchPayload(*policy.Match, *Op) bool { return true }

// Endpoint: the endpoint's unit ids.
func (*modbusAdapter) Endpoint(ep *policy.Endpoint, op *Op, _ bool) bool {
	return ep.Units.Empty() || ep.Units.Has(op.Unit)
}

// Values: the values of a write request, at the addresses of when.addr
// (all when it has none).
func (*modbusAdapter) Values(r *policy.Rule, op *Op, v *Violations) {
	if !op.HasAddr || op.Class != policy.OpWrite {
		return
	}
	for i, x := range op.Values {
		at := uint32(op.Addr) + uint32(i)
		if len(r.When.Addr) > 0 && !r.When.Addr.Contains(at) {
			continue
		}
		if f := float64(x); !r.Value.Contains(f) {
			v.Add(at, f)
		}
	}
}

func (a *modbusAdapter) Unclassed(op *Op) bool { return a.HasFunction(op) }

func (*modbusAdapter) Device(op *Op) uint16 { return uint16(op.Unit) }

// Learn: the unit, the table and addresses read or written, and the
// values written.
func (*modbusAdapter) Learn(op *Op, to Learned) {
	if !op.Request {
		if lo, hi, ok := answeredRead(op); ok {
			to.Answered(op.Table, lo, hi)
		}
		return
	}
	to.Unit(op.Unit, op.Unit != 0)
	if op.Table == 0 || !op.HasAddr {
		return
	}
	lo, hi := span(op.Addr, op.Count)
	write := op.Class == policy.OpWrite
	to.Addresses(op.Table, write, lo, hi)
	if write {
		for i, x := range op.Values {
			to.Value(op.Table, 0, uint32(op.Addr)+uint32(i), float64(x))
		}
	}
}

// Alert: the unit, the PDU as evidence, and the address range of the
// request or response, with the values a write request carries.
func (*modbusAdapter) Alert(a *Alert, op *Op, addr bool) {
	a.Unit = op.Unit
	a.FCName = modbus.FunctionName(op.FC)
	if addr && op.HasAddr {
		a.HasAddr = true
		a.AddrLo, a.AddrHi = span(op.Addr, op.Count)
		if op.Request && op.Class == policy.OpWrite && len(op.Values) > 0 {
			n := min(len(op.Values), MaxAlertValues)
			a.Values = make([]float64, n)
			for i, x := range op.Values[:n] {
				a.Values[i] = float64(x)
			}
		}
	}
	if op.Modbus != nil {
		setEvidence(a, op.Modbus.PDU)
	}
}

func (*modbusAdapter) Wire(ev *event.Alert, a *Alert) {
	u := a.Unit
	ev.Unit = &u
}

// FromModbus fills op from a decoded Modbus message on flow f.
//
// Every field of op is written one by one, not as a composite literal,
// which the compiler builds in a temporary and copies: this runs for
// every message (TestOpFilledWhole checks that no field is left over).
func (op *Op) FromModbus(f *dpi.Flow, m *modbus.Message) {
	op.Time, op.Frame, op.Proto, op.Flow = m.Time, m.Frame, proto.Modbus, f
	op.nano = 0 // Engine.Message and Evaluate set it, where it is read
	op.Request = m.Dir == modbus.Request
	if op.Request {
		op.Src, op.Dst = f.Client, f.Server
	} else {
		op.Src, op.Dst = f.Server, f.Client
	}
	op.Class = 0
	if op.Request && m.HasFunction() {
		op.Class = ModbusClass(m.FC, m.Sub)
	}
	op.FC, op.Unit, op.Table = m.FC, m.Unit, ModbusTable(m.FC)
	op.HasAddr, op.Addr, op.Count, op.Values = m.HasAddr, m.Addr, m.Count, m.Values
	op.LinkSrc, op.LinkDst = 0, 0
	op.Modbus, op.DNP3, op.memo = m, nil, nil
}

// ModbusTable is the data table a Modbus function code addresses, or 0.
func ModbusTable(fc uint8) policy.Table {
	switch fc {
	case 1, 5, 15:
		return policy.TableCoils
	case 2:
		return policy.TableDiscreteInputs
	case 4:
		return policy.TableInputRegisters
	case 3, 6, 16, 22, 23, 24:
		return policy.TableHoldingRegisters
	}
	return 0
}

// ModbusClass is the class of a Modbus request (MODBUS Application
// Protocol V1.1b3): sub is the FC 8 sub-function. Device identification
// and the event log are reads; writes of any table are writes; FC 8 is a
// diagnostic, but restart communications (sub-function 1) is a restart and
// force listen only (4) changes the device's operating mode; file records
// are files. Function codes outside the specification have no class.
func ModbusClass(fc uint8, sub uint16) policy.OpClass {
	switch fc {
	case 1, 2, 3, 4, 7, 11, 12, 17, 24, 43:
		return policy.OpRead
	case 5, 6, 15, 16, 22, 23:
		return policy.OpWrite
	case 8:
		switch sub {
		case 1:
			return policy.OpRestart
		case 4:
			return policy.OpConfig
		}
		return policy.OpDiagnostic
	case 20, 21:
		return policy.OpFile
	}
	return 0
}

// checkBaseline: the unit, the addresses read or written and the values
// written.
func (*modbusAdapter) checkBaseline(e *Engine, op *Op, pr *pairRun) {
	r := e.base
	c := pr.c
	src, dst := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	if r.on[bNewAddress] && !c.Units.Has(op.Unit) {
		r.title = "New Modbus unit " + strconv.Itoa(int(op.Unit)) + " addressed by " + src.String() + " at " + dst.String()
		r.expected = "unit " + strings.Join(policy.CodeTerms(&c.Units), ", ")
		e.fireBase(bNewAddress, op, aggKey{src: src, dst: dst, addr: keyBaseUnit + uint32(op.Unit)}, false)
		return
	}
	if op.Table == 0 || !op.HasAddr {
		return
	}
	write := op.Class == policy.OpWrite
	rs := c.Read[op.Table]
	if write {
		rs = c.Write[op.Table]
	}
	lo, hi := span(op.Addr, op.Count)
	if r.on[bNewAddress] && !rs.Covers(lo, hi) {
		what := "reads"
		if write {
			what = "writes"
		}
		r.title = "New Modbus address: " + src.String() + " " + what + " " + op.Table.String() + " " + strconv.Itoa(int(lo)) + "-" + strconv.Itoa(int(hi)) + " of " + dst.String() + unitText(op)
		r.expected = op.Table.String() + " " + rangesText(rs)
		e.fireBase(bNewAddress, op, aggKey{src: src, dst: dst, fc: op.FC, dev: uint16(op.Unit), addr: lo}, false)
		return
	}
	if !write || !r.on[bValueRange] || len(pr.values) == 0 {
		return
	}
	v := &e.viol
	v.n = 0
	var first *policy.ValueRange
	for i, x := range op.Values {
		at := uint32(op.Addr) + uint32(i)
		j, ok := pr.values[valueKey{uint8(op.Table), at}]
		if !ok {
			continue
		}
		if bd := r.b.Widen(&c.Values[j]); !bd.Contains(float64(x)) {
			if first == nil {
				first = &c.Values[j]
			}
			v.Add(at, float64(x))
		}
	}
	if v.n > 0 {
		e.valueAlert(op, first)
	}
}

// answeredRead gives the addresses a read response answered with data:
// paired with its request, no exception.
func answeredRead(op *Op) (lo, hi uint32, ok bool) {
	m := op.Modbus
	if op.Request || m == nil || m.Outcome != modbus.OutcomeOK || m.Exception != 0 || op.Table == 0 || !op.HasAddr || ModbusClass(m.FC, 0) != policy.OpRead {
		return 0, 0, false
	}
	lo, hi = span(op.Addr, op.Count)
	return lo, hi, true
}

// checkResponse: baseline-new-point, for a conversation that learned
// what its server answered.
func (*modbusAdapter) checkResponse(e *Engine, op *Op, pr *pairRun) {
	c, m := pr.c, op.Modbus
	r := e.base
	if !r.on[bNewPoint] || m == nil || op.Table == 0 || !op.HasAddr || !anyRanges(c.Answered[:]) {
		return
	}
	answered := c.Answered[op.Table]
	lo, hi := span(op.Addr, op.Count)
	device, master := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	where := op.Table.String() + " " + rangeText(lo, hi)
	key := aggKey{src: device, dst: master, dev: uint16(op.Unit), addr: uint32(op.Table)<<16 | lo&0xFFFF}
	switch _, _, data := answeredRead(op); {
	case data && !answered.Covers(lo, hi):
		r.title = "Modbus server " + device.String() + unitText(op) + " answered a read of " + where + " from " + master.String() + " with data: it never answered those while learning"
		key.addr += keyBasePoint
	case m.Outcome == modbus.OutcomeException && m.Exception == modbus.ExIllegalDataAddress && ModbusClass(m.FC, 0) == policy.OpRead && answered.Covers(lo, hi):
		r.title = "Modbus server " + device.String() + unitText(op) + " refuses a read of " + where + " from " + master.String() + " (illegal data address): it answered those with data while learning"
		key.addr += keyBaseGone
	default:
		return
	}
	r.expected = "answered " + op.Table.String() + " " + rangesText(answered)
	e.fireBase(bNewPoint, op, key, false)
}

func anyRanges(rs []policy.Ranges) bool {
	for _, r := range rs {
		if len(r) > 0 {
			return true
		}
	}
	return false
}

func rangeText(lo, hi uint32) string {
	if lo == hi {
		return strconv.FormatUint(uint64(lo), 10)
	}
	return strconv.FormatUint(uint64(lo), 10) + "-" + strconv.FormatUint(uint64(hi), 10)
}
