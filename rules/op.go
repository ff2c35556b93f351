package rules

import (
	"net/netip"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
)

// Op is one decoded operation as rules see it, whatever the protocol: a
// Modbus request or response, or a DNP3 application fragment. It points
// into the decoder's message, so it is valid only during the call that
// hands it over.
type Op struct {
	Time     time.Time
	Frame    uint64
	Proto    Proto
	Flow     *dpi.Flow
	Src, Dst netip.AddrPort // sender and receiver of this message
	Request  bool           // sent by the master (Modbus client, DNP3 master)
	Class    OpClass        // 0 for responses and for function codes outside every class
	FC       uint8

	// Modbus.
	Unit    uint8
	Table   Table // 0 when the function addresses no table
	HasAddr bool
	Addr    uint16
	Count   uint16
	Values  []uint16 // written values (requests) or read values (responses)

	// DNP3.
	LinkSrc, LinkDst uint16

	Modbus *modbus.Message // the decoded message, for detectors that need more
	DNP3   *dnp3.Message
}

// FromModbus fills op from a decoded Modbus message on flow f.
func (op *Op) FromModbus(f *dpi.Flow, m *modbus.Message) {
	*op = Op{
		Time: m.Time, Frame: m.Frame, Proto: ProtoModbus, Flow: f,
		Src: f.Client, Dst: f.Server, Request: m.Dir == modbus.Request,
		FC: m.FC, Unit: m.Unit, HasAddr: m.HasAddr, Addr: m.Addr, Count: m.Count, Values: m.Values,
		Modbus: m,
	}
	if !op.Request {
		op.Src, op.Dst = f.Server, f.Client
	}
	op.Table = ModbusTable(m.FC)
	if op.Request && m.HasFunction() {
		op.Class = ModbusClass(m.FC, m.Sub)
	}
}

// FromDNP3 fills op from a decoded DNP3 message on flow f; fromServer says
// which end of f sent it.
func (op *Op) FromDNP3(f *dpi.Flow, fromServer bool, m *dnp3.Message) {
	*op = Op{
		Time: m.Time, Frame: m.Frame, Proto: ProtoDNP3, Flow: f,
		Src: f.Client, Dst: f.Server, Request: m.Dir == dnp3.Request,
		FC: m.FC, LinkSrc: m.Link.Src, LinkDst: m.Link.Dst,
		DNP3: m,
	}
	if fromServer {
		op.Src, op.Dst = f.Server, f.Client
	}
	if op.Request && m.Kind == dnp3.KindApplication {
		op.Class = DNP3Class(m.FC)
	}
}

// ModbusTable is the data table a Modbus function code addresses, or 0.
func ModbusTable(fc uint8) Table {
	switch fc {
	case 1, 5, 15:
		return TableCoils
	case 2:
		return TableDiscreteInputs
	case 4:
		return TableInputRegisters
	case 3, 6, 16, 22, 23, 24:
		return TableHoldingRegisters
	}
	return 0
}

// ModbusClass is the class of a Modbus request (MODBUS Application
// Protocol V1.1b3): sub is the FC 8 sub-function. Device identification
// and the event log are reads; writes of any table are writes; FC 8 is a
// diagnostic, but restart communications (sub-function 1) is a restart and
// force listen only (4) changes the device's operating mode; file records
// are files. Function codes outside the specification have no class.
func ModbusClass(fc uint8, sub uint16) OpClass {
	switch fc {
	case 1, 2, 3, 4, 7, 11, 12, 17, 24, 43:
		return OpRead
	case 5, 6, 15, 16, 22, 23:
		return OpWrite
	case 8:
		switch sub {
		case 1:
			return OpRestart
		case 4:
			return OpConfig
		}
		return OpDiagnostic
	case 20, 21:
		return OpFile
	}
	return 0
}

// DNP3Class is the class of a DNP3 request function (IEEE 1815-2012
// table 4-1).
func DNP3Class(fc uint8) OpClass {
	switch fc {
	case dnp3.FuncRead:
		return OpRead
	case dnp3.FuncWrite:
		return OpWrite
	case dnp3.FuncSelect, dnp3.FuncOperate, dnp3.FuncDirectOperate, dnp3.FuncDirectOperateNR,
		dnp3.FuncImmedFreeze, dnp3.FuncImmedFreezeNR, dnp3.FuncFreezeClear, dnp3.FuncFreezeClearNR,
		dnp3.FuncFreezeAtTime, dnp3.FuncFreezeAtTimeNR:
		return OpControl
	case dnp3.FuncColdRestart, dnp3.FuncWarmRestart:
		return OpRestart
	case dnp3.FuncInitializeData, dnp3.FuncInitializeApplication, dnp3.FuncStartApplication,
		dnp3.FuncStopApplication, dnp3.FuncSaveConfiguration, dnp3.FuncEnableUnsolicited,
		dnp3.FuncDisableUnsolicited, dnp3.FuncAssignClass, dnp3.FuncRecordCurrentTime,
		dnp3.FuncActivateConfig:
		return OpConfig
	case dnp3.FuncDelayMeasure:
		return OpDiagnostic
	case dnp3.FuncOpenFile, dnp3.FuncCloseFile, dnp3.FuncDeleteFile, dnp3.FuncGetFileInfo,
		dnp3.FuncAuthenticateFile, dnp3.FuncAbortFile:
		return OpFile
	case dnp3.FuncAuthenticateRequest, dnp3.FuncAuthenticateError:
		return OpAuth
	}
	return 0
}
