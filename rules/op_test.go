package rules

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/rules/policy"
)

func TestModbusClassAndTable(t *testing.T) {
	for _, tc := range []struct {
		fc    uint8
		sub   uint16
		class policy.OpClass
		table policy.Table
	}{
		{1, 0, policy.OpRead, policy.TableCoils},
		{2, 0, policy.OpRead, policy.TableDiscreteInputs},
		{3, 0, policy.OpRead, policy.TableHoldingRegisters},
		{4, 0, policy.OpRead, policy.TableInputRegisters},
		{5, 0, policy.OpWrite, policy.TableCoils},
		{6, 0, policy.OpWrite, policy.TableHoldingRegisters},
		{8, 0, policy.OpDiagnostic, 0},  // return query data
		{8, 1, policy.OpRestart, 0},     // restart communications
		{8, 4, policy.OpConfig, 0},      // force listen only: changes the operating mode
		{8, 10, policy.OpDiagnostic, 0}, // clear counters
		{15, 0, policy.OpWrite, policy.TableCoils},
		{16, 0, policy.OpWrite, policy.TableHoldingRegisters},
		{20, 0, policy.OpFile, 0},
		{21, 0, policy.OpFile, 0},
		{22, 0, policy.OpWrite, policy.TableHoldingRegisters},
		{23, 0, policy.OpWrite, policy.TableHoldingRegisters},
		{24, 0, policy.OpRead, policy.TableHoldingRegisters},
		{43, 0, policy.OpRead, 0},
		{90, 0, 0, 0}, // UMAS: outside the specification
	} {
		if got := ModbusClass(tc.fc, tc.sub); got != tc.class {
			t.Errorf("fc %d sub %d: class %v, want %v", tc.fc, tc.sub, got, tc.class)
		}
		if got := ModbusTable(tc.fc); got != tc.table {
			t.Errorf("fc %d: table %v, want %v", tc.fc, got, tc.table)
		}
	}
}

func TestDNP3Class(t *testing.T) {
	for fc, want := range map[uint8]policy.OpClass{
		dnp3.FuncConfirm: 0, dnp3.FuncRead: policy.OpRead, dnp3.FuncWrite: policy.OpWrite,
		dnp3.FuncSelect: policy.OpControl, dnp3.FuncOperate: policy.OpControl, dnp3.FuncDirectOperate: policy.OpControl,
		dnp3.FuncColdRestart: policy.OpRestart, dnp3.FuncWarmRestart: policy.OpRestart,
		dnp3.FuncStopApplication: policy.OpConfig, dnp3.FuncDisableUnsolicited: policy.OpConfig, dnp3.FuncInitializeData: policy.OpConfig,
		dnp3.FuncDelayMeasure: policy.OpDiagnostic, dnp3.FuncOpenFile: policy.OpFile, dnp3.FuncAuthenticateRequest: policy.OpAuth,
		dnp3.FuncResponse: 0,
	} {
		if got := DNP3Class(fc); got != want {
			t.Errorf("fc %d (%s): class %v, want %v", fc, dnp3.FunctionName(fc), got, want)
		}
	}
	// Every request function code has a class but confirm.
	for fc := uint8(1); fc <= 33; fc++ {
		if DNP3Class(fc) == 0 {
			t.Errorf("fc %d (%s) has no class", fc, dnp3.FunctionName(fc))
		}
	}
}

func TestOpOrientation(t *testing.T) {
	f := &dpi.Flow{Transport: dpi.TCP, Client: netip.MustParseAddrPort("10.0.0.1:50000"), Server: netip.MustParseAddrPort("10.0.0.2:502")}
	ts := time.Unix(1700000000, 0)
	var op Op
	op.FromModbus(f, &modbus.Message{Meta: modbus.Meta{Time: ts, Frame: 7}, Dir: modbus.Request, Unit: 1, FC: 6,
		HasAddr: true, Addr: 5, Count: 1, Values: []uint16{900}, PDU: []byte{6}})
	if op.Src != f.Client || op.Dst != f.Server || !op.Request || op.Class != policy.OpWrite || op.Table != policy.TableHoldingRegisters || op.Values[0] != 900 {
		t.Errorf("modbus request: %+v", op)
	}
	op.FromModbus(f, &modbus.Message{Dir: modbus.Response, FC: 6, PDU: []byte{6}})
	if op.Src != f.Server || op.Request || op.Class != 0 {
		t.Errorf("modbus response: %+v", op)
	}
	m := &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Request, FC: dnp3.FuncColdRestart, Link: dnp3.LinkHeader{Src: 1, Dst: 10, DIR: true}}
	op.FromDNP3(f, false, m)
	if op.Src != f.Client || !op.Request || op.Class != policy.OpRestart || op.LinkSrc != 1 || op.LinkDst != 10 {
		t.Errorf("dnp3 request: %+v", op)
	}
	op.FromDNP3(f, true, &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Unsolicited, FC: dnp3.FuncUnsolicitedResponse})
	if op.Src != f.Server || op.Request || op.Class != 0 {
		t.Errorf("dnp3 unsolicited: %+v", op)
	}
}

// TestOpFilledWhole: FromModbus and FromDNP3 write every field of an Op
// already holding another message's: the result is the same as from a
// zero Op, whatever the fields held, so no field is left over (an Op
// field added later and not written fails here).
func TestOpFilledWhole(t *testing.T) {
	f := &dpi.Flow{ID: 3, Client: netip.MustParseAddrPort("10.0.0.1:40000"), Server: netip.MustParseAddrPort("10.0.0.2:502")}
	garbage := func() *Op {
		op := &Op{}
		v := reflect.ValueOf(op).Elem()
		for i := range v.NumField() {
			fv := v.Field(i)
			fv = reflect.NewAt(fv.Type(), fv.Addr().UnsafePointer()).Elem() // unexported fields too
			switch fv.Kind() {
			case reflect.Bool:
				fv.SetBool(true)
			case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				fv.SetUint(7)
			case reflect.Int64:
				fv.SetInt(7)
			case reflect.Slice:
				fv.Set(reflect.MakeSlice(fv.Type(), 1, 1))
			case reflect.Pointer:
				fv.Set(reflect.New(fv.Type().Elem()))
			case reflect.Struct:
				switch fv.Type() {
				case reflect.TypeOf(time.Time{}):
					fv.Set(reflect.ValueOf(time.Unix(99, 9)))
				case reflect.TypeOf(netip.AddrPort{}):
					fv.Set(reflect.ValueOf(netip.MustParseAddrPort("[2001:db8::9]:9")))
				default:
					t.Fatalf("field %s: no garbage for %s", v.Type().Field(i).Name, fv.Type())
				}
			default:
				t.Fatalf("field %s: no garbage for %s", v.Type().Field(i).Name, fv.Kind())
			}
		}
		return op
	}
	mbs := []*modbus.Message{
		{Dir: modbus.Request, FC: 16, Unit: 3, HasAddr: true, Addr: 10, Count: 2, Values: []uint16{1, 2}},
		{Dir: modbus.Response, FC: 3, Unit: 1, HasAddr: true, Addr: 0, Count: 1, Values: []uint16{4}},
		{Dir: modbus.Request, FC: 8, Sub: 1},
	}
	mbs[0].Time, mbs[0].Frame = time.Unix(5, 0), 12
	for i, m := range mbs {
		want, got := &Op{}, garbage()
		want.FromModbus(f, m)
		got.FromModbus(f, m)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Modbus %d: from a used Op\n%+v\nfrom a zero one\n%+v", i, got, want)
		}
	}
	dms := []*dnp3.Message{
		{Dir: dnp3.Request, Kind: dnp3.KindApplication, FC: dnp3.FuncWrite},
		{Dir: dnp3.Response, Kind: dnp3.KindApplication, FC: 129},
		{Dir: dnp3.Request, Kind: dnp3.KindLink},
	}
	for i, m := range dms {
		for _, fromServer := range []bool{false, true} {
			want, got := &Op{}, garbage()
			want.FromDNP3(f, fromServer, m)
			got.FromDNP3(f, fromServer, m)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DNP3 %d: from a used Op\n%+v\nfrom a zero one\n%+v", i, got, want)
			}
		}
	}
}
