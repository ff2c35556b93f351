package rules

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/lru"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// xmb is a Modbus message with the fields the detectors read.
type xmb struct {
	src, dst  string
	unit, fc  uint8
	sub       uint16
	mei       uint8
	exception uint8
	malformed modbus.Reason
	afterLoss bool
	reused    bool // a request whose TID is still awaited (modbus-tid-reuse)
	udp       bool
	resp      bool
	at        time.Duration
}

func (x xmb) feed(e *Engine) {
	f := &dpi.Flow{ID: 11, Transport: dpi.TCP, App: dpi.AppModbus}
	if x.udp {
		f.Transport = dpi.UDP
	}
	src, dst := netip.MustParseAddrPort(x.src), netip.MustParseAddrPort(x.dst)
	f.Client, f.Server = src, dst
	m := &modbus.Message{Dir: modbus.Request, Unit: x.unit, FC: x.fc, Sub: x.sub, MEI: x.mei,
		Exception: x.exception, Malformed: x.malformed, AfterLoss: x.afterLoss, Reused: x.reused, PDU: []byte{x.fc, 0, 0}}
	if x.resp {
		m.Dir = modbus.Response
		f.Client, f.Server = dst, src
	}
	if x.malformed == modbus.NotModbus {
		m.FC = 0
	}
	m.Time, m.Frame = t0.Add(x.at), 3
	e.Message(f, dpi.FromClient, m)
}

// xdn is a DNP3 message with the fields the detectors read.
type xdn struct {
	src, dst   string
	lsrc, ldst uint16
	kind       dnp3.Kind
	fc         uint8
	group      uint8 // an object header of this group, when not 0
	sbo        dnp3.SBOResult
	iin        uint16
	anomalies  []dnp3.Reason
	truncated  bool
	resp       bool
	at         time.Duration
}

func (x xdn) feed(e *Engine) {
	f := &dpi.Flow{ID: 12, Transport: dpi.TCP, App: dpi.AppDNP3}
	src, dst := netip.MustParseAddrPort(x.src), netip.MustParseAddrPort(x.dst)
	f.Client, f.Server = src, dst
	if x.resp {
		f.Client, f.Server = dst, src
	}
	m := &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Request, FC: x.fc, SBO: x.sbo, IIN: x.iin,
		Link: dnp3.LinkHeader{Src: x.lsrc, Dst: x.ldst}, Fragment: []byte{0xC0, x.fc}, Truncated: x.truncated}
	if x.kind != 0 {
		m.Kind = x.kind
	}
	if x.resp {
		m.Dir, m.HasIIN = dnp3.Response, true
		if x.fc == dnp3.FuncUnsolicitedResponse {
			m.Dir = dnp3.Unsolicited
		}
	}
	if x.group != 0 {
		m.Objects = []dnp3.ObjectHeader{{Group: x.group, Variation: 1}}
	}
	for i, r := range x.anomalies {
		if i == 0 {
			m.Malformed = r
		}
		m.Anomalies |= 1 << r
	}
	m.Time, m.Frame = t0.Add(x.at), 4
	e.Message(f, side(x.resp), m)
}

// feeds is a list of messages fed in order.
type feeds []feeder

func (fs feeds) feed(e *Engine) {
	for _, f := range fs {
		f.feed(e)
	}
}

// repeat feeds n messages made by mk(i).
func repeat(n int, mk func(i int) feeder) feeds {
	fs := make(feeds, n)
	for i := range fs {
		fs[i] = mk(i)
	}
	return fs
}

const (
	publicS = "203.0.113.7:502"
	newC    = "10.10.1.77:50009"
)

// TestBuiltinDetectors feeds each detector a fixture that must fire it
// and fixtures that must not, each to a fresh engine with every built-in
// detector on and no rules.
func TestBuiltinDetectors(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		id       string
		category string
		fire     feeder
		title    string // a part of the title of the first alert
		quiet    []feeder
	}{
		{"malformed", CategoryProtocolAnomaly,
			xmb{src: engC, dst: plc1S, unit: 1, fc: 3, malformed: modbus.LengthMismatch},
			"Malformed Modbus message from 10.10.1.30 to 10.10.1.20: length_mismatch",
			[]feeder{
				xmb{src: engC, dst: plc1S, malformed: modbus.NotModbus, afterLoss: true},
				xmb{src: engC, dst: plc1S, unit: 1, fc: 3, malformed: modbus.Truncated},
				rreg(engC, plc1S, 1, 0, 10),
			}},
		{"malformed", CategoryProtocolAnomaly,
			xmb{src: engC, dst: plc1S, malformed: modbus.NotModbus},
			"not_modbus", nil},
		{"malformed", CategoryProtocolAnomaly,
			xmb{src: engC, dst: plc1S, unit: 1, fc: 3, malformed: modbus.Truncated, udp: true},
			"truncated", nil},
		{"malformed", CategoryProtocolAnomaly,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, kind: dnp3.KindGarbage, anomalies: []dnp3.Reason{dnp3.BadBlockCRC}},
			"Malformed DNP3 message from 10.10.1.11 to 10.10.2.20: bad_block_crc",
			[]feeder{
				xdn{src: mstC, dst: rtu7S, kind: dnp3.KindGarbage, anomalies: []dnp3.Reason{dnp3.NotDNP3}, truncated: true},
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: 1, anomalies: []dnp3.Reason{dnp3.FragmentTruncated}, truncated: true},
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: 4, sbo: dnp3.SBOMatched},
			}},
		{"malformed", CategoryProtocolAnomaly,
			xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: 129, resp: true, anomalies: []dnp3.Reason{dnp3.UnknownObject}},
			"unknown_object", nil},
		{"modbus-diagnostics", CategoryDiagnostics,
			xmb{src: engC, dst: plc1S, unit: 1, fc: 8, sub: 4},
			"FC 8 force listen-only from 10.10.1.30 to 10.10.1.20 unit 1",
			[]feeder{
				xmb{src: engC, dst: plc1S, unit: 1, fc: 8, sub: 0},  // return query data
				xmb{src: engC, dst: plc1S, unit: 1, fc: 8, sub: 11}, // return bus message count
				xmb{src: plc1S, dst: engC, unit: 1, fc: 8, sub: 1, resp: true},
			}},
		{"modbus-diagnostics", CategoryDiagnostics, xmb{src: engC, dst: plc1S, unit: 1, fc: 8, sub: 1}, "restart communications", nil},
		{"modbus-diagnostics", CategoryDiagnostics, xmb{src: engC, dst: plc1S, unit: 1, fc: 8, sub: 10}, "clear counters", nil},
		{"modbus-diagnostics", CategoryDiagnostics, xmb{src: engC, dst: plc1S, unit: 1, fc: 8, sub: 20}, "clear overrun", nil},
		{"recon-device-id", CategoryReconnaissance,
			xmb{src: engC, dst: plc1S, unit: 1, fc: 43, mei: 14},
			"Device identification read (FC 43/14) from 10.10.1.30 to 10.10.1.20 unit 1",
			[]feeder{
				xmb{src: engC, dst: plc1S, unit: 1, fc: 43, mei: 13},
				xmb{src: plc1S, dst: engC, unit: 1, fc: 43, mei: 14, resp: true},
			}},
		{"recon-sweep", CategoryReconnaissance,
			repeat(13, func(i int) feeder { return xmb{src: engC, dst: plc1S, unit: 1, fc: uint8(1 + i), at: ms(100 * i)} }),
			"Modbus sweep from 10.10.1.30 to 10.10.1.20: 13 function codes within 10s",
			[]feeder{
				// 12 codes is not more than 12.
				repeat(12, func(i int) feeder { return xmb{src: engC, dst: plc1S, unit: 1, fc: uint8(1 + i), at: ms(100 * i)} }),
				// 13 codes over 39 s: never more than 12 within two windows.
				repeat(13, func(i int) feeder { return xmb{src: engC, dst: plc1S, unit: 1, fc: uint8(1 + i), at: ms(3000 * i)} }),
				// 13 codes from different masters.
				repeat(13, func(i int) feeder {
					return xmb{src: "10.10.1." + itoa(100+i) + ":5000", dst: plc1S, unit: 1, fc: uint8(1 + i), at: ms(10 * i)}
				}),
			}},
		{"recon-sweep", CategoryReconnaissance,
			repeat(20, func(i int) feeder { return rreg(engC, plc1S, uint8(1+i), 0, 1) }),
			"13 unit ids", nil},
		{"recon-sweep", CategoryReconnaissance,
			repeat(20, func(i int) feeder { return xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: uint16(1 + i), fc: 1} }),
			"DNP3 sweep from 10.10.1.11 to 10.10.2.20: 13 link addresses", nil},
		{"exception-storm", CategoryReconnaissance,
			repeat(11, func(i int) feeder {
				return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 2, resp: true, at: ms(300 * i)}
			}),
			"Exception storm from 10.10.1.20 to 10.10.1.30: at most 10 per 10s exceeded",
			[]feeder{
				repeat(10, func(i int) feeder {
					return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 2, resp: true, at: ms(300 * i)}
				}),
				// Other exception codes do not count: server device failure.
				repeat(30, func(i int) feeder {
					return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 4, resp: true, at: ms(100 * i)}
				}),
				// A dead unit behind a gateway, polled every 100 ms.
				repeat(30, func(i int) feeder {
					return xmb{src: plc1S, dst: engC, unit: 3, fc: 3, exception: 11, resp: true, at: ms(100 * i)}
				}),
				// Slow: one every 2 s.
				repeat(30, func(i int) feeder {
					return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 1, resp: true, at: ms(2000 * i)}
				}),
			}},
		{"modbus-busy-delay", CategoryFlood,
			repeat(5, func(i int) feeder {
				return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 6, resp: true, at: ms(1000 * i)}
			}),
			"Modbus server busy exceptions from 10.10.1.20 to 10.10.1.30 unit 1: at most 4 per 15s exceeded",
			[]feeder{
				// A busy device now and then: one every 6 s.
				repeat(20, func(i int) feeder {
					return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 6, resp: true, at: ms(6000 * i)}
				}),
				// Other exceptions do not count.
				repeat(20, func(i int) feeder {
					return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 4, resp: true, at: ms(500 * i)}
				}),
			}},
		{"modbus-busy-delay", CategoryFlood,
			repeat(5, func(i int) feeder {
				return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 5, resp: true, at: ms(2000 * i)}
			}),
			"Modbus acknowledge exceptions", nil},
		{"recon-device-id", CategoryReconnaissance,
			xmb{src: engC, dst: plc1S, unit: 1, fc: 17},
			"Server id read (FC 17) from 10.10.1.30 to 10.10.1.20 unit 1", nil},
		{"exception-storm", CategoryReconnaissance,
			repeat(11, func(i int) feeder {
				return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 6, resp: true, at: ms(300 * i)}
			}),
			"Exception storm from 10.10.1.20 to 10.10.1.30: at most 10 per 10s exceeded", nil}, // server busy: a swamped device
		{"exception-storm", CategoryReconnaissance,
			repeat(18, func(i int) feeder {
				return xmb{src: plc1S, dst: engC, unit: uint8(1 + i), fc: 3, exception: 11, resp: true, at: ms(50 * i)}
			}),
			"Exception storm", nil},
		{"exception-storm", CategoryReconnaissance,
			repeat(11, func(i int) feeder {
				return xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: 129, resp: true, iin: dnp3.IINObjectUnknown, at: ms(100 * i)}
			}),
			"Exception storm from 10.10.2.20 to 10.10.1.11",
			[]feeder{repeat(30, func(i int) feeder {
				return xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: 129, resp: true, iin: dnp3.IINDeviceRestart | dnp3.IINNeedTime, at: ms(100 * i)}
			})}},
		{"dnp3-restart", CategoryDangerousFunction,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncColdRestart},
			"DNP3 cold_restart from 10.10.1.11 to 10.10.2.20 (link 1 to 10)",
			[]feeder{
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead},
				xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: 129, resp: true},
			}},
		{"dnp3-restart", CategoryDangerousFunction, xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncWarmRestart}, "warm_restart", nil},
		{"dnp3-application-control", CategoryDangerousFunction,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncStopApplication, group: 90},
			"DNP3 stop_application",
			[]feeder{xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncSaveConfiguration}}},
		{"dnp3-application-control", CategoryDangerousFunction, xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncStartApplication}, "start_application", nil},
		{"dnp3-application-control", CategoryDangerousFunction, xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncInitializeData}, "initialize_data", nil},
		{"dnp3-application-control", CategoryDangerousFunction, xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncInitializeApplication}, "initialize_application", nil},
		{"dnp3-disable-unsolicited", CategoryDangerousFunction,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncDisableUnsolicited, group: 60},
			"DNP3 disable_unsolicited",
			[]feeder{xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncEnableUnsolicited, group: 60}}},
		{"dnp3-file", CategoryDangerousFunction,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncOpenFile, group: 70},
			"DNP3 open_file",
			[]feeder{xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncWrite, group: 50}}},
		{"dnp3-file", CategoryDangerousFunction, xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncDeleteFile}, "delete_file", nil},
		{"dnp3-file", CategoryDangerousFunction, xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncWrite, group: 70}, "DNP3 write", nil},
		{"dnp3-operate-without-select", CategoryDangerousFunction,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncOperate, sbo: dnp3.SBONoSelect, anomalies: []dnp3.Reason{dnp3.OperateWithoutSelect}},
			"DNP3 operate without select from 10.10.1.11 to 10.10.2.20",
			[]feeder{
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncSelect},
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncOperate, sbo: dnp3.SBOMatched},
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncDirectOperate},
			}},
		{"dnp3-operate-without-select", CategoryDangerousFunction,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncOperate, sbo: dnp3.SBOMismatch, anomalies: []dnp3.Reason{dnp3.SelectMismatch}},
			"not matching its select", nil},
		{"dnp3-operate-without-select", CategoryDangerousFunction,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncOperate, sbo: dnp3.SBOLate, anomalies: []dnp3.Reason{dnp3.OperateLate}},
			"after the select timed out", nil},
		{"dnp3-unsolicited-storm", CategoryFlood,
			repeat(5, func(i int) feeder {
				return xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: dnp3.FuncUnsolicitedResponse, resp: true, at: ms(1500 * i)}
			}),
			"DNP3 unsolicited response storm from 10.10.2.20 to 10.10.1.11 (link 10 to 1): at most 4 per 10s exceeded",
			[]feeder{
				// Event reporting every 4 s.
				repeat(30, func(i int) feeder {
					return xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: dnp3.FuncUnsolicitedResponse, resp: true, at: ms(4000 * i)}
				}),
				// Solicited responses do not count.
				repeat(30, func(i int) feeder {
					return xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: 129, resp: true, at: ms(100 * i)}
				}),
			}},
		{"broadcast-write", CategoryBroadcast,
			wreg(hmiC, plc1S, 0, 5, 150),
			"Modbus broadcast write_multiple_registers (unit 0) from 10.10.1.10 via 10.10.1.20",
			[]feeder{
				rreg(hmiC, plc1S, 0, 0, 10), // unit 0 reads address the device itself
				wreg(hmiC, plc1S, 1, 5, 150),
				xmb{src: engC, dst: plc1S, unit: 0, fc: 8, sub: 2},
			}},
		{"broadcast-write", CategoryBroadcast, xmb{src: engC, dst: plc1S, unit: 0, fc: 8, sub: 4}, "diagnostics (unit 0)", nil},
		{"broadcast-write", CategoryBroadcast,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 0xFFFF, fc: dnp3.FuncDirectOperateNR, group: 12},
			"DNP3 broadcast direct_operate_nr to link address 0xffff from 10.10.1.11 via 10.10.2.20",
			[]feeder{
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 0xFFFC, fc: dnp3.FuncDirectOperateNR, group: 12},
				xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 0xFFFF, fc: dnp3.FuncRead},
			}},
		{"broadcast-write", CategoryBroadcast, xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 0xFFFD, fc: dnp3.FuncWrite, group: 80}, "0xfffd", nil},
		{"request-flood", CategoryFlood,
			repeat(150, func(i int) feeder { return xmb{src: engC, dst: plc1S, unit: 1, fc: 3, at: ms(5 * i)} }),
			"Request flood to 10.10.1.20 (last from 10.10.1.30): at most 100 per 1s exceeded",
			[]feeder{
				repeat(300, func(i int) feeder { return xmb{src: engC, dst: plc1S, unit: 1, fc: 3, at: ms(20 * i)} }),
				// Responses are not requests.
				repeat(300, func(i int) feeder { return xmb{src: plc1S, dst: engC, unit: 1, fc: 3, resp: true, at: ms(2 * i)} }),
			}},
		{"request-flood", CategoryFlood,
			// All masters together.
			repeat(150, func(i int) feeder {
				return xmb{src: "10.10.1." + itoa(100+i%50) + ":5000", dst: plc1S, unit: 1, fc: 3, at: ms(5 * i)}
			}),
			"Request flood to 10.10.1.20", nil},
		{"request-flood", CategoryFlood,
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead, anomalies: []dnp3.Reason{dnp3.RequestFlood}},
			"DNP3 request flood from 10.10.1.11 to 10.10.2.20", nil},
		{"public-address", CategoryNetwork,
			rreg(hmiC, publicS, 1, 0, 10),
			"Modbus between 10.10.1.10 and public address 203.0.113.7",
			[]feeder{
				rreg(hmiC, plc1S, 1, 0, 10),
				rreg("100.64.1.1:5000", plc1S, 1, 0, 10),
				rreg("[fd00::1]:5000", "[fe80::2]:502", 1, 0, 10),
				rreg("8.8.8.8:5000", "1.1.1.1:502", 1, 0, 10), // neither end is private
			}},
		{"public-address", CategoryNetwork,
			xdn{src: rtu7S, dst: "198.51.100.3:20000", lsrc: 10, ldst: 1, fc: 129, resp: true},
			"DNP3 between 10.10.2.20 and public address 198.51.100.3", nil},
		{"new-asset", CategoryInventory,
			rreg(newC, plc1S, 1, 0, 10),
			"New asset 10.10.1.77: Modbus master talking to 10.10.1.20",
			[]feeder{
				rreg(hmiC, plc1S, 1, 0, 10),
				rreg(hmiC, fieldS, 1, 0, 10), // in a network asset
			}},
		{"new-asset", CategoryInventory,
			rreg(hmiC, "10.10.1.88:502", 1, 0, 10),
			"New asset 10.10.1.88: Modbus device talking to 10.10.1.10", nil},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			e, rec := newTestEngineDetectors(t, "", EngineOptions{}, true)
			c.fire.feed(e)
			got := alertsOf(rec, c.id)
			if len(got) != 1 {
				t.Fatalf("fire: got %v, want one alert of %s", ruleIDs(got), c.id)
			}
			a := got[0]
			det := policy.LookupDetector(c.id)
			if a.Category != c.category || a.Severity != det.Severity || strings.Join(a.Attack, ",") != strings.Join(det.Attack, ",") {
				t.Errorf("fire: category %s severity %s attack %v", a.Category, a.Severity, a.Attack)
			}
			if !strings.Contains(a.Title, c.title) {
				t.Errorf("title %q lacks %q", a.Title, c.title)
			}
			for i, q := range c.quiet {
				e, rec := newTestEngineDetectors(t, "", EngineOptions{}, true)
				q.feed(e)
				if got := alertsOf(rec, c.id); len(got) > 0 {
					t.Errorf("quiet[%d]: fired %v: %s", i, ruleIDs(got), got[0].Title)
				}
			}
			// Disabled in the policy: nothing.
			e, rec = newEngineTuned(t, func(s *policy.DetectorSettings) { s.Enabled = s.ID != c.id })
			if e.bi.on[detectorIndex(t, c.id)] {
				t.Fatal("disabled in the policy, but on")
			}
			c.fire.feed(e)
			for _, a := range rec.alerts {
				if a.Rule == c.id {
					t.Errorf("disabled, but fired")
				}
			}
		})
	}
}

// newEngineTuned builds an engine with the test assets, no rules, and
// every detector on at its defaults but for what tune changes.
func newEngineTuned(t *testing.T, tune func(*policy.DetectorSettings)) (*Engine, *recorder) {
	t.Helper()
	p, err := policy.Parse([]byte(engineAssets), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Detectors {
		tune(&p.Detectors[i])
	}
	rec := &recorder{}
	e, err := NewEngine(p, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e, rec
}

func detectorIndex(t *testing.T, id string) detKind {
	for k := range numBuiltin {
		if Detectors[k].ID == id {
			return k
		}
	}
	t.Fatalf("no detector %s", id)
	return 0
}

// alertsOf are the first reports of the alerts of detector id.
func alertsOf(rec *recorder, id string) []*Alert {
	var out []*Alert
	for _, a := range rec.alerts {
		if a.Rule == id && a.Count == 1 {
			out = append(out, a)
		}
	}
	return out
}

// builtinAlerts are the first reports of the alerts of built-in detectors.
func builtinAlerts(rec *recorder) []*Alert {
	var out []*Alert
	for _, a := range rec.alerts {
		if a.Rule != BudgetRule && a.Count == 1 && !strings.HasPrefix(a.Category, CategoryPolicy) {
			out = append(out, a)
		}
	}
	return out
}

func ruleIDs(as []*Alert) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.Rule)
	}
	return ids
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestBuiltinPolicy: the policy disables and tunes detectors by id.
func TestBuiltinPolicy(t *testing.T) {
	p, err := policy.Parse([]byte(engineAssets+`
detectors:
  dnp3-restart: {enabled: false}
  request-flood: {severity: critical, rate: {max: 10, per: 1s}}
  malformed: {window: 5m}
`), "tuned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e, err := NewEngine(p, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.bi.on[dDNP3Restart] {
		t.Error("dnp3-restart is on")
	}
	xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncColdRestart}.feed(e)
	// 15 requests in 1 s: over the tuned rate, far under the default.
	repeat(15, func(i int) feeder { return rreg(engC, plc1S, 1, 0, 1) }).feed(e)
	// Malformed messages 2 and 4 minutes apart: one alert in a window of 5.
	for _, at := range []time.Duration{0, 2 * time.Minute, 4 * time.Minute, 6 * time.Minute} {
		xmb{src: engC, dst: plc1S, unit: 1, fc: 3, malformed: modbus.BadQuantity, at: at}.feed(e)
	}
	e.Flush()
	var flood, malformed []*Alert
	for _, a := range rec.alerts {
		switch a.Rule {
		case "dnp3-restart":
			t.Error("dnp3-restart fired")
		case "request-flood":
			flood = append(flood, a)
		case "malformed":
			malformed = append(malformed, a)
		}
	}
	if len(flood) == 0 || flood[0].Severity != policy.SeverityCritical || flood[0].Expected != "at most 10 per 1s" {
		t.Errorf("request-flood: %+v", flood)
	}
	// The first alert, its summary (count 3) at the end of its window, and
	// the new alert after the window.
	if len(malformed) != 3 || malformed[1].Count != 3 || malformed[2].Count != 1 {
		for _, a := range malformed {
			t.Logf("%d count %d first %v", a.ID, a.Count, a.First.Sub(t0))
		}
		t.Errorf("malformed: %d alerts", len(malformed))
	}

	// Without assets, new-asset has nothing to compare with.
	e, err = NewEngine(policy.New(), rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.bi.on[dNewAsset] || !e.bi.on[dMalformed] {
		t.Errorf("no assets: new-asset %v, malformed %v", e.bi.on[dNewAsset], e.bi.on[dMalformed])
	}
}

// TestBuiltinOnce: new-asset reports an address once; malformed once per
// flow and window, whichever way the messages go.
func TestBuiltinOnce(t *testing.T) {
	e, rec := newTestEngineDetectors(t, "", EngineOptions{}, true)
	for i := range 50 {
		rreg(newC, plc1S, 1, 0, 10).feed(e)
		rreg(newC, plc2S, 1, 0, 10).feed(e)
		xmb{src: engC, dst: plc1S, unit: 1, fc: 3, malformed: modbus.BadQuantity, at: time.Duration(i) * time.Second}.feed(e)
		xmb{src: plc1S, dst: engC, unit: 1, fc: 3, malformed: modbus.ByteCountMismatch, resp: true, at: time.Duration(i) * time.Second}.feed(e)
	}
	got := builtinAlerts(rec)
	if len(got) != 2 || got[0].Rule != "new-asset" || got[1].Rule != "malformed" {
		t.Errorf("got %v", ruleIDs(got))
	}
}

// TestBuiltinTimeBack: packet time that goes back (a second capture file)
// neither panics nor fires.
func TestBuiltinTimeBack(t *testing.T) {
	e, rec := newTestEngineDetectors(t, "", EngineOptions{}, true)
	for range 3 {
		for i := range 100 {
			if i%10 == 0 { // 10 exceptions in each 5 s round: 30 if the rounds added up
				xmb{src: plc1S, dst: engC, unit: 1, fc: 3, exception: 2, resp: true, at: time.Duration(i) * 50 * time.Millisecond}.feed(e)
			}
			xmb{src: engC, dst: plc1S, unit: 1, fc: uint8(1 + i%4), at: time.Duration(i) * 50 * time.Millisecond}.feed(e)
		}
	}
	if got := builtinAlerts(rec); len(got) > 0 {
		t.Errorf("fired %v", ruleIDs(got))
	}
}

// TestBuiltinCatalogue: every detector on decoded messages has its entry
// in Detectors at the index of its detKind, with a category, a check and
// a title; the baseline detectors follow, with neither.
func TestBuiltinCatalogue(t *testing.T) {
	ids := BuiltinIDs()
	if len(ids) != int(numBuiltin) {
		t.Fatalf("%d ids for %d detectors", len(ids), numBuiltin)
	}
	for k, d := range Detectors {
		builtin := k < int(numBuiltin)
		if builtin != !d.Baseline && d.ID != "new-asset" {
			t.Errorf("%s: baseline %v at index %d", d.ID, d.Baseline, k)
		}
		if builtin != !strings.HasPrefix(d.ID, "baseline-") {
			t.Errorf("%s at index %d", d.ID, k)
		}
		if d.ID == "" || d.Category == "" {
			t.Errorf("entry %d: id %q category %q", k, d.ID, d.Category)
		}
		// The network detectors are run by network.go, not by checks.
		network := k >= int(dARPSpoof) && k < int(numBuiltin)
		if builtin != (len(d.checks) > 0 || network) || network && len(d.checks) > 0 || builtin != (d.title != nil) {
			t.Errorf("%s: %d checks, title %v", d.ID, len(d.checks), d.title != nil)
		}
		if builtin && ids[k] != d.ID {
			t.Errorf("BuiltinIDs()[%d] = %s, want %s", k, ids[k], d.ID)
		}
		if !builtin && d.Category != CategoryBaseline {
			t.Errorf("%s: category %s", d.ID, d.Category)
		}
		for _, c := range d.checks {
			if c.stage >= numStages || c.on >= numMessages || c.run == nil || c.fcs == nil {
				t.Errorf("%s: check %+v", d.ID, c)
			}
		}
	}
	for _, id := range BaselineIDs() {
		if d := policy.LookupDetector(id); d == nil || !d.Baseline {
			t.Errorf("baseline detector %s: %+v", id, d)
		}
	}
}

// oldAddrTable is a set of the address table as it was before it became
// an lru.Table: without a used flag (the zero address marks an empty
// slot), it filled a set from its last empty slot, not its first.
type oldAddrTable [lru.Ways]struct {
	a    netip.Addr
	last int64
}

func (set *oldAddrTable) has(a netip.Addr) bool {
	for _, s := range set {
		if s.a == a {
			return true
		}
	}
	return false
}

func (set *oldAddrTable) add(a netip.Addr, now int64) bool {
	victim := -1
	for i := range set {
		s := &set[i]
		if s.a == a {
			s.last = now
			return false
		}
		if victim < 0 || !s.a.IsValid() || set[victim].a.IsValid() && s.last < set[victim].last {
			victim = i
		}
	}
	set[victim].a, set[victim].last = a, now
	return true
}

// TestAddrTableAsBefore: the address tables of new-asset and
// public-address answer add and has as they did before they became
// lru.Tables, which fill a set from its first empty slot where the old
// table took its last, as long as no two addresses of a set were last seen
// at the same packet time. (With such a tie, the old table forgot the
// last inserted of them, the new one the first.) The table is one set, so
// that it overflows all the time.
func TestAddrTableAsBefore(t *testing.T) {
	var got addrTable
	got.init(lru.Ways)
	var want oldAddrTable
	rng := uint64(1)
	for now := int64(1); now <= 20000; now++ {
		rng = rng*6364136223846793005 + 1442695040888963407
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(rng>>40) % 9})
		if rng>>33%3 == 0 {
			if g, w := got.has(a), want.has(a); g != w {
				t.Fatalf("at %d: has(%v) = %v, was %v", now, a, g, w)
			}
			continue
		}
		if g, w := got.add(a, now), want.add(a, now); g != w {
			t.Fatalf("at %d: add(%v) = %v, was %v", now, a, g, w)
		}
	}
	if got.Evictions() < 1000 {
		t.Errorf("only %d evictions: the set did not overflow", got.Evictions())
	}

	// The one difference: four addresses seen at the same time fill the
	// set, and a fifth evicts the first of them where it used to evict the
	// last.
	got.init(lru.Ways)
	want = oldAddrTable{}
	addr := func(b byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, b}) }
	for b := range byte(5) {
		got.add(addr(b), 7)
		want.add(addr(b), 7)
	}
	if got.has(addr(0)) || !got.has(addr(3)) || !want.has(addr(0)) || want.has(addr(3)) {
		t.Errorf("tie: now 0 %v, 3 %v; before 0 %v, 3 %v", got.has(addr(0)), got.has(addr(3)), want.has(addr(0)), want.has(addr(3)))
	}
}

// TestDocsDetectorCategories keeps the table of what the detectors key on
// in docs/policy.md, and the categories docs/events.md lists, in step with
// Detectors.
func TestDocsDetectorCategories(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "### What the detectors key on")
	if !ok {
		t.Fatal("docs/policy.md has no section on what the detectors key on")
	}
	table, _, _ = strings.Cut(table, "\n\n## ")
	documented := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		cols := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cols) < 3 {
			continue
		}
		for _, id := range strings.Split(strings.TrimPrefix(cols[0], "| "), ", ") {
			documented[strings.Trim(id, "`")] = strings.Trim(cols[1], "`")
		}
	}
	events, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Detectors[:numBuiltin] {
		if got, ok := documented[d.ID]; !ok || got != d.Category {
			t.Errorf("docs/policy.md gives %s the category %q, want %q", d.ID, got, d.Category)
		}
		delete(documented, d.ID)
		if !strings.Contains(string(events), "`"+d.Category+"`") {
			t.Errorf("docs/events.md lacks the category %s", d.Category)
		}
	}
	for id := range documented {
		t.Errorf("docs/policy.md keys %s, which is not a detector on decoded messages", id)
	}
}

// TestBuiltinAlertOrder: the alerts one message raises come in the order
// of the stages of the checks (the message, its function, the counts),
// then of Detectors; the alert ids follow that order. The fixtures make
// one message fire five detectors at once.
func TestBuiltinAlertOrder(t *testing.T) {
	tune := func(s *policy.DetectorSettings) {
		if s.ID == "recon-sweep" || s.ID == "request-flood" {
			s.Rate = &policy.Rate{Max: 2, Per: 10 * time.Second}
		}
	}
	for _, c := range []struct {
		name string
		fs   feeds
		want string
	}{
		{"dnp3", feeds{
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead},
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncEnableUnsolicited, at: time.Millisecond},
			// The third function code, a cold restart to every outstation,
			// with the decoder's flood anomaly.
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 0xFFFF, fc: dnp3.FuncColdRestart, anomalies: []dnp3.Reason{dnp3.RequestFlood}, at: 2 * time.Millisecond},
		}, "request-flood dnp3-restart broadcast-write recon-sweep request-flood"},
		{"modbus", feeds{
			xmb{src: engC, dst: plc1S, unit: 1, fc: 3},
			xmb{src: engC, dst: plc1S, unit: 1, fc: 4, at: time.Millisecond},
			// The third function code, a write to unit 0.
			xmb{src: engC, dst: plc1S, unit: 0, fc: 6, at: 2 * time.Millisecond},
		}, "broadcast-write recon-sweep request-flood"},
	} {
		e, rec := newEngineTuned(t, tune)
		c.fs.feed(e)
		var got []string
		for i, a := range rec.alerts {
			got = append(got, a.Rule)
			if a.ID != uint64(i+1) {
				t.Errorf("%s: alert %d has id %d", c.name, i, a.ID)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s: alerts %v, want %s", c.name, got, c.want)
		}
	}
}

// TestCheckFilters: the function codes and the messages a check is
// declared for only spare calls, and so does leaving out the checks of a
// flow's ends once its memo has them judged (flowMemo.settled). An engine
// that runs every check on every function code and every message, sound
// or anomalous (anomalyClass), settled or not, raises the same alerts as
// one that skips them, on messages of each function code made to fire
// every check, sound and anomalous ones, on flows with a public end or a
// new asset among others; with every detector on, and with public-address
// or new-asset off (the other's check is then left out on its own). No
// filter leaves out a Modbus sub-function that changes something.
func TestCheckFilters(t *testing.T) {
	for fc := range 256 {
		for sub := range 1 << 16 {
			if modbusClassChanges(uint8(fc), ModbusClass(uint8(fc), uint16(sub))) && !modbusMayChange(uint8(fc)) {
				t.Fatalf("FC %d sub-function %d changes something; modbusMayChange says no", fc, sub)
			}
		}
	}
	var fs feeds
	for fc := range 256 {
		at := time.Duration(fc) * time.Second
		c := uint8(fc)
		fs = append(fs,
			xmb{src: engC, dst: plc1S, unit: 0, fc: c, sub: modbus.SubForceListenOnlyMode, mei: modbus.MEIReadDeviceID, at: at},
			xmb{src: engC, dst: plc1S, unit: 1, fc: c, sub: modbus.SubRestartCommunicationsOption, at: at},
			xmb{src: plc1S, dst: engC, unit: 1, fc: c, exception: 6, resp: true, at: at},
			xmb{src: plc1S, dst: engC, unit: 1, fc: c, resp: true, at: at},
			xmb{src: engC, dst: plc1S, unit: 2, fc: c, reused: true, at: at},
			xmb{src: engC, dst: plc1S, unit: 1, fc: c, malformed: modbus.LengthMismatch, at: at},
			xmb{src: plc1S, dst: engC, unit: 1, fc: c, malformed: modbus.LengthMismatch, resp: true, at: at},
			xmb{src: engC, dst: publicS, unit: 1, fc: c, at: at},
			xmb{src: publicS, dst: engC, unit: 1, fc: c, resp: true, at: at},
			xmb{src: newC, dst: plc1S, unit: 1, fc: c, at: at},
			xmb{src: plc1S, dst: newC, unit: 1, fc: c, resp: true, at: at},
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 0xFFFF, fc: c, group: 70, sbo: dnp3.SBONoSelect, at: at},
			xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: c, iin: dnp3ExceptionIIN, resp: true, at: at},
			xdn{src: rtu7S, dst: mstC, lsrc: 10, ldst: 1, fc: c, resp: true, at: at},
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: c, anomalies: []dnp3.Reason{dnp3.BadBlockCRC}, at: at},
			xdn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: c, anomalies: []dnp3.Reason{dnp3.RequestFlood}, at: at},
			xdn{src: "198.51.100.9:40000", dst: rtu7S, lsrc: 1, ldst: 10, fc: c, at: at},
			xdn{src: rtu7S, dst: "198.51.100.9:40000", lsrc: 10, ldst: 1, fc: c, resp: true, at: at},
		)
	}
	for _, off := range []string{"", "public-address", "new-asset"} {
		tune := func(d *policy.DetectorSettings) {
			if d.ID == off {
				d.Enabled = false
			}
		}
		filtered, got := newEngineTuned(t, tune)
		unfiltered, want := newEngineTuned(t, tune)
		unfiltered.bi.initChecks(false)
		if len(filtered.bi.lists) <= len(unfiltered.bi.lists) {
			t.Errorf("%s off: %d lists of checks with filters, %d without", off, len(filtered.bi.lists), len(unfiltered.bi.lists))
		}
		fs.feed(filtered)
		fs.feed(unfiltered)
		filtered.Flush()
		unfiltered.Flush()
		if len(want.alerts) < 50 {
			t.Fatalf("%s off: only %d alerts without filters", off, len(want.alerts))
		}
		for _, id := range []string{"public-address", "new-asset"} {
			if n := len(alertsOf(want, id)); (n == 0) != (id == off) {
				t.Errorf("%s off: %d %s alerts without filters", off, n, id)
			}
		}
		if len(got.alerts) != len(want.alerts) {
			t.Fatalf("%s off: %d alerts with filters, %d without", off, len(got.alerts), len(want.alerts))
		}
		for i := range got.alerts {
			if g, w := got.alerts[i], want.alerts[i]; g.Rule != w.Rule || g.Title != w.Title || g.Count != w.Count {
				t.Errorf("%s off: alert %d: %s %q ×%d with filters, %s %q ×%d without", off, i, g.Rule, g.Title, g.Count, w.Rule, w.Title, w.Count)
			}
		}
	}
}

// TestPublicPairs: a message between two addresses raises public-address
// when one is private and the other public, whichever sends, and both
// directions fold into one alert; on addresses of every kind isPrivate
// and isPublic tell apart.
func TestPublicPairs(t *testing.T) {
	var addrs []netip.Addr
	for _, s := range []string{"10.1.2.3", "172.16.0.1", "172.32.0.1", "192.168.1.1", "127.0.0.1", "169.254.1.1",
		"100.64.0.1", "100.128.0.1", "0.1.2.3", "0.0.0.0", "255.255.255.255", "224.0.0.1", "8.8.8.8", "203.0.113.7",
		"::1", "::", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "2001:db8::1", "2600::1", "::ffff:10.1.2.3", "::ffff:8.8.8.8"} {
		addrs = append(addrs, netip.MustParseAddr(s))
	}
	e, rec := newEngineTuned(t, func(*policy.DetectorSettings) {})
	at := time.Duration(0)
	for _, a := range addrs {
		for _, b := range addrs {
			ua, ub := a.Unmap(), b.Unmap()
			want := isPrivate(ua) && isPublic(ub) || isPublic(ua) && isPrivate(ub)
			before := len(rec.alerts)
			as, bs := netip.AddrPortFrom(a, 40000).String(), netip.AddrPortFrom(b, 502).String()
			at += 10 * time.Minute // a window and a budget minute of its own
			feeds{xmb{src: as, dst: bs, unit: 1, fc: 3, at: at}, xmb{src: bs, dst: as, unit: 1, fc: 3, resp: true, at: at + time.Second}}.feed(e)
			e.Flush()
			var got []*Alert
			for _, a := range rec.alerts[before:] {
				if a.Rule == "public-address" {
					got = append(got, a)
				}
			}
			switch {
			case !want && len(got) != 0:
				t.Errorf("%v and %v: %d alerts, want none", a, b, len(got))
			case want && (len(got) != 2 || got[1].Count != 2):
				t.Errorf("%v and %v: %d alerts, want one and its repeat", a, b, len(got))
			}
		}
	}
}
