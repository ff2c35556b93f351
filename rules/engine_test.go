package rules

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// The hosts of the engine tests.
const engineAssets = `
version: 1
assets:
  hmi:    {ip: 10.10.1.10}
  eng:    {ip: 10.10.1.30}
  plc1:   {ip: 10.10.1.20, modbus_units: [1, 2]}
  plc2:   {ip: 10.10.1.21}
  rtu7:   {ip: 10.10.2.20, dnp3: 10}
  master: {ip: 10.10.1.11, dnp3: 1}
  field:  {cidr: 10.10.3.0/24}
rules:
`

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

// recorder is an AlertSink that keeps every alert.
type recorder struct{ alerts []*Alert }

func (r *recorder) Alert(a *Alert) { r.alerts = append(r.alerts, a) }

func (r *recorder) rules() []string {
	var ids []string
	for _, a := range r.alerts {
		ids = append(ids, a.Rule)
	}
	return ids
}

// newTestEngine builds an engine for the rules of rulesYAML with the
// built-in detectors off, so that only the rules speak; builtin_test.go
// tests the detectors.
func newTestEngine(t testing.TB, rulesYAML string, opts EngineOptions) (*Engine, *recorder) {
	t.Helper()
	return newTestEngineDetectors(t, rulesYAML, opts, false)
}

func newTestEngineDetectors(t testing.TB, rulesYAML string, opts EngineOptions, detectors bool) (*Engine, *recorder) {
	t.Helper()
	p, err := policy.Parse([]byte(engineAssets+rulesYAML), "test.yaml")
	if err != nil {
		t.Fatalf("policy: %v\n%s", err, rulesYAML)
	}
	for i := range p.Detectors {
		p.Detectors[i].Enabled = detectors
	}
	rec := &recorder{}
	e, err := NewEngine(p, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, rec
}

// mb is a Modbus message as a test feeds it: src sends to dst.
type mb struct {
	src, dst    string // "ip:port"
	unit, fc    uint8
	sub         uint16
	addr, count uint16
	vals        []uint16
	resp        bool // a response: src is the server
	at          time.Duration
}

// dn is a DNP3 application fragment: src sends to dst.
type dn struct {
	src, dst   string
	lsrc, ldst uint16
	fc         uint8
	objs       []obj
	resp       bool // sent by the outstation (src is the server)
	at         time.Duration
}

// obj is an object header with its decoded points.
type obj struct {
	g, v, prefix, rng uint8
	start, stop       uint32
	hasRange          bool
	count             uint32
	pts               []dnp3.Point
}

type feeder interface{ feed(e *Engine) }

func (x mb) feed(e *Engine) {
	f := &dpi.Flow{ID: 1, Transport: dpi.TCP, App: dpi.AppModbus,
		ClientMAC: [6]byte{2, 0, 0, 0, 0, 1}, ServerMAC: [6]byte{2, 0, 0, 0, 0, 2}}
	src, dst := netip.MustParseAddrPort(x.src), netip.MustParseAddrPort(x.dst)
	m := &modbus.Message{Dir: modbus.Request, Unit: x.unit, FC: x.fc, Sub: x.sub, Values: x.vals}
	m.Time, m.Frame = t0.Add(x.at), 7
	f.Client, f.Server = src, dst
	if x.resp {
		m.Dir = modbus.Response
		f.Client, f.Server = dst, src
	}
	if x.count > 0 || x.addr > 0 {
		m.HasAddr, m.Addr, m.Count = true, x.addr, x.count
	}
	m.PDU = []byte{x.fc, byte(x.addr >> 8), byte(x.addr), 0, byte(x.count)}
	e.Message(f, dpi.FromClient, m)
}

func (x dn) feed(e *Engine) {
	f := &dpi.Flow{ID: 2, Transport: dpi.TCP, App: dpi.AppDNP3}
	src, dst := netip.MustParseAddrPort(x.src), netip.MustParseAddrPort(x.dst)
	f.Client, f.Server = src, dst
	if x.resp {
		f.Client, f.Server = dst, src
	}
	m := &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Request, FC: x.fc,
		Link: dnp3.LinkHeader{Src: x.lsrc, Dst: x.ldst}, Fragment: []byte{0xC0, x.fc}}
	if x.resp {
		m.Dir = dnp3.Response
	}
	m.Time, m.Frame = t0.Add(x.at), 9
	for _, o := range x.objs {
		h := dnp3.ObjectHeader{Group: o.g, Variation: o.v, Prefix: o.prefix, Range: o.rng,
			HasRange: o.hasRange, Start: o.start, Stop: o.stop, Count: o.count,
			FirstPoint: len(m.Points), NumPoints: len(o.pts)}
		m.Objects = append(m.Objects, h)
		m.Points = append(m.Points, o.pts...)
	}
	e.Message(f, side(x.resp), m)
}

// Hosts, as ip:port.
const (
	hmiC   = "10.10.1.10:50000"
	engC   = "10.10.1.30:50001"
	rogueC = "10.10.1.99:50002"
	plc1S  = "10.10.1.20:502"
	plc2S  = "10.10.1.21:502"
	fieldS = "10.10.3.7:502"
	mstC   = "10.10.1.11:40000"
	rtu7S  = "10.10.2.20:20000"
)

// Handy operations.
func wreg(src, dst string, unit uint8, addr uint16, vals ...uint16) mb {
	return mb{src: src, dst: dst, unit: unit, fc: 16, addr: addr, count: uint16(len(vals)), vals: vals}
}

func rreg(src, dst string, unit uint8, addr, n uint16) mb {
	return mb{src: src, dst: dst, unit: unit, fc: 3, addr: addr, count: n}
}

func crob(src, dst string, lsrc, ldst uint16, fc uint8, idx ...uint32) dn {
	o := obj{g: 12, v: 1, prefix: 1, rng: 7, count: uint32(len(idx))}
	for _, i := range idx {
		o.pts = append(o.pts, dnp3.Point{Index: i, Code: 3, Count: 1})
	}
	return dn{src: src, dst: dst, lsrc: lsrc, ldst: ldst, fc: fc, objs: []obj{o}}
}

func aout(src, dst string, idx uint32, v float64) dn {
	return dn{src: src, dst: dst, lsrc: 1, ldst: 10, fc: dnp3.FuncDirectOperate,
		objs: []obj{{g: 41, v: 2, prefix: 1, rng: 7, count: 1, pts: []dnp3.Point{{Index: idx, Value: v}}}}}
}

// TestRuleFeatures gives, for each policy feature, operations that must
// fire the rule and operations that must not.
func TestRuleFeatures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rule  string
		fire  []feeder
		quiet []feeder
	}{
		{"proto modbus", `{proto: modbus}`,
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1)},
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 1)}},
		{"proto dnp3", `{proto: dnp3}`,
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 1)},
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1)}},
		{"dst asset", `{proto: modbus, dst: plc2}`,
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1), rreg(engC, plc2S, 9, 0, 1)},
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1), rreg(plc2S, hmiC, 1, 0, 1)}},
		{"src asset", `{proto: modbus, src: hmi}`,
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1)},
			[]feeder{rreg(engC, plc2S, 1, 0, 1)}},
		{"dst ip", `{proto: modbus, dst: 10.10.1.21}`,
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1)},
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1)}},
		{"dst cidr", `{proto: modbus, dst: 10.10.3.0/24}`,
			[]feeder{rreg(hmiC, fieldS, 1, 0, 1)},
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1)}},
		{"dst cidr asset", `{proto: modbus, dst: field}`,
			[]feeder{rreg(hmiC, fieldS, 1, 0, 1)},
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1)}},
		{"src cidr", `{proto: modbus, src: 10.10.1.0/28}`,
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1)},
			[]feeder{rreg(engC, plc2S, 1, 0, 1)}},
		{"dst list mixing ip and cidr", `{proto: modbus, dst: [plc2, field]}`,
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1), rreg(hmiC, fieldS, 1, 0, 1)},
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1)}},
		{"asset units constrain dst", `{proto: modbus, dst: plc1}`,
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1), rreg(hmiC, plc1S, 2, 0, 1)},
			[]feeder{rreg(hmiC, plc1S, 3, 0, 1)}},
		{"asset units constrain src (responses)", `{proto: modbus, src: plc1}`,
			[]feeder{mb{src: plc1S, dst: hmiC, unit: 2, fc: 3, addr: 0, count: 1, resp: true}},
			[]feeder{mb{src: plc1S, dst: hmiC, unit: 5, fc: 3, addr: 0, count: 1, resp: true}}},
		{"asset dnp3 address constrains dst", `{proto: dnp3, dst: rtu7}`,
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 1)},
			[]feeder{crob(mstC, rtu7S, 1, 11, dnp3.FuncSelect, 1)}},
		{"asset dnp3 address constrains src", `{proto: dnp3, src: master}`,
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 1)},
			[]feeder{crob(mstC, rtu7S, 2, 10, dnp3.FuncSelect, 1)}},
		{"units", `{proto: modbus, unit: [3, 5-9]}`,
			[]feeder{rreg(hmiC, plc2S, 3, 0, 1), rreg(hmiC, plc2S, 7, 0, 1)},
			[]feeder{rreg(hmiC, plc2S, 4, 0, 1)}},
		{"link_src", `{proto: dnp3, link_src: 2}`,
			[]feeder{crob(mstC, rtu7S, 2, 10, dnp3.FuncSelect, 1)},
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 1)}},
		{"link_dst", `{proto: dnp3, link_dst: "10-12"}`,
			[]feeder{crob(mstC, rtu7S, 1, 12, dnp3.FuncSelect, 1)},
			[]feeder{crob(mstC, rtu7S, 1, 13, dnp3.FuncSelect, 1)}},
		{"op write", `{proto: modbus, op: write}`,
			[]feeder{wreg(hmiC, plc2S, 1, 5, 1), mb{src: hmiC, dst: plc2S, unit: 1, fc: 5, addr: 3, count: 1, vals: []uint16{1}}},
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1), mb{src: plc2S, dst: hmiC, unit: 1, fc: 16, addr: 5, count: 1, resp: true}}},
		{"op restart (modbus fc 8 sub 1)", `{proto: modbus, op: restart}`,
			[]feeder{mb{src: hmiC, dst: plc2S, unit: 1, fc: 8, sub: 1}},
			[]feeder{mb{src: hmiC, dst: plc2S, unit: 1, fc: 8, sub: 0}}},
		{"op control (dnp3)", `{proto: dnp3, op: control}`,
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncOperate, 1)},
			[]feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead}}},
		{"fc by number", `{proto: modbus, fc: 6}`,
			[]feeder{mb{src: hmiC, dst: plc2S, unit: 1, fc: 6, addr: 1, count: 1, vals: []uint16{4}}},
			[]feeder{wreg(hmiC, plc2S, 1, 1, 4)}},
		{"fc by name", `{proto: modbus, fc: write_multiple_registers}`,
			[]feeder{wreg(hmiC, plc2S, 1, 1, 4)},
			[]feeder{mb{src: hmiC, dst: plc2S, unit: 1, fc: 6, addr: 1, count: 1, vals: []uint16{4}}}},
		{"fc by dnp3 name", `{fc: cold_restart}`,
			[]feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncColdRestart}},
			[]feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncWarmRestart}, mb{src: hmiC, dst: plc2S, unit: 1, fc: 13}}},
		{"fc number applies to both protocols", `{fc: 5}`,
			[]feeder{mb{src: hmiC, dst: plc2S, unit: 1, fc: 5, addr: 3, count: 1, vals: []uint16{1}}, crob(mstC, rtu7S, 1, 10, dnp3.FuncDirectOperate, 1)},
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncOperate, 1)}},
		{"table", `{proto: modbus, table: coils}`,
			[]feeder{mb{src: hmiC, dst: plc2S, unit: 1, fc: 1, addr: 0, count: 8}, mb{src: hmiC, dst: plc2S, unit: 1, fc: 15, addr: 0, count: 2, vals: []uint16{1, 0}}},
			[]feeder{rreg(hmiC, plc2S, 1, 0, 1)}},
		{"addr range", `{proto: modbus, addr: "100-199"}`,
			[]feeder{rreg(hmiC, plc2S, 1, 150, 1), rreg(hmiC, plc2S, 1, 199, 1)},
			[]feeder{rreg(hmiC, plc2S, 1, 200, 5), rreg(hmiC, plc2S, 1, 90, 10)}},
		{"addr overlapped by a multi-register write", `{proto: modbus, addr: 5}`,
			[]feeder{wreg(hmiC, plc2S, 1, 3, 1, 2, 3), wreg(hmiC, plc2S, 1, 5, 1)},
			[]feeder{wreg(hmiC, plc2S, 1, 0, 1, 2, 3, 4, 5), wreg(hmiC, plc2S, 1, 6, 1, 2)}},
		{"group", `{proto: dnp3, group: 12}`,
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 1)},
			[]feeder{aout(mstC, rtu7S, 1, 5)}},
		{"group/variation", `{proto: dnp3, group: "41/2"}`,
			[]feeder{aout(mstC, rtu7S, 1, 5)},
			[]feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncDirectOperate,
				objs: []obj{{g: 41, v: 1, prefix: 1, rng: 7, count: 1, pts: []dnp3.Point{{Index: 1, Value: 5}}}}}}},
		{"points of prefixed objects", `{proto: dnp3, group: 12, points: "0-15"}`,
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 3), crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 20, 15)},
			[]feeder{crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 16)}},
		{"points of a range header", `{proto: dnp3, points: "10-20"}`,
			[]feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead, objs: []obj{{g: 30, v: 1, rng: 0, hasRange: true, start: 5, stop: 10}}}},
			[]feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead, objs: []obj{{g: 30, v: 1, rng: 0, hasRange: true, start: 0, stop: 9}}}}},
		{"value out of range", `{proto: modbus, op: write, table: holding, addr: 5}
    value: {min: 100, max: 200}`,
			[]feeder{wreg(hmiC, plc2S, 1, 5, 99), wreg(hmiC, plc2S, 1, 5, 201), wreg(hmiC, plc2S, 1, 3, 150, 150, 250)},
			[]feeder{wreg(hmiC, plc2S, 1, 5, 100), wreg(hmiC, plc2S, 1, 5, 200),
				// only address 5 is bounded: the others may hold anything
				wreg(hmiC, plc2S, 1, 3, 0, 0, 150, 9999), wreg(hmiC, plc2S, 1, 6, 9999),
				rreg(hmiC, plc2S, 1, 5, 1)}},
		{"value without addr checks every written value", `{proto: modbus, op: write}
    value: {max: 10}`,
			[]feeder{wreg(hmiC, plc2S, 1, 0, 1, 2, 11)},
			[]feeder{wreg(hmiC, plc2S, 1, 0, 1, 2, 10)}},
		{"dnp3 analog output value", `{proto: dnp3, op: control, points: 1}
    value: {min: 0, max: 100}`,
			[]feeder{aout(mstC, rtu7S, 1, 101), aout(mstC, rtu7S, 1, -1)},
			[]feeder{aout(mstC, rtu7S, 1, 50), aout(mstC, rtu7S, 2, 1000), crob(mstC, rtu7S, 1, 10, dnp3.FuncOperate, 1)}},
		{"unless", `{proto: modbus, dst: plc2, op: write}
    unless: {src: hmi}`,
			[]feeder{wreg(engC, plc2S, 1, 5, 1), wreg(rogueC, plc2S, 1, 5, 1)},
			[]feeder{wreg(hmiC, plc2S, 1, 5, 1), rreg(engC, plc2S, 1, 5, 1)}},
		{"several unless", `{proto: modbus, dst: plc2, op: write}
    unless:
      - {src: hmi}
      - {src: eng, unit: 7}`,
			[]feeder{wreg(engC, plc2S, 1, 5, 1), wreg(rogueC, plc2S, 7, 5, 1)},
			[]feeder{wreg(hmiC, plc2S, 1, 5, 1), wreg(engC, plc2S, 7, 5, 1)}},
		{"disabled", `{proto: modbus}
    enabled: false`,
			nil,
			[]feeder{rreg(hmiC, plc1S, 1, 0, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule := "  - id: r\n    when: " + tc.rule + "\n"
			for i, f := range tc.fire {
				e, rec := newTestEngine(t, rule, EngineOptions{})
				f.feed(e)
				if len(rec.alerts) != 1 || rec.alerts[0].Rule != "r" {
					t.Errorf("fire[%d] %+v: got alerts %v, want one of rule r", i, f, rec.rules())
				}
			}
			for i, f := range tc.quiet {
				e, rec := newTestEngine(t, rule, EngineOptions{})
				f.feed(e)
				e.Flush()
				if len(rec.alerts) != 0 {
					t.Errorf("quiet[%d] %+v: fired %v", i, f, rec.rules())
				}
			}
		})
	}
}

func TestAlertFields(t *testing.T) {
	e, rec := newTestEngine(t, `
  - id: pump3
    name: Pump-3 speed setpoint
    when: {proto: modbus, dst: plc2, op: write, table: holding, addr: "5-6"}
    value: {min: 100, max: 200}
    severity: critical
    attack: [T0836, T0855]
  - id: crob
    when: {proto: dnp3, op: control}
    severity: low
`, EngineOptions{})
	wreg(rogueC, plc2S, 3, 4, 0, 500, 150, 7).feed(e)
	crob(mstC, rtu7S, 1, 10, dnp3.FuncSelect, 4).feed(e)
	if len(rec.alerts) != 2 {
		t.Fatalf("got %v", rec.rules())
	}
	a := rec.alerts[0]
	want := `{"id":1,"rule":"pump3","severity":"critical","category":"policy","title":"Pump-3 speed setpoint","attack":["T0836","T0855"],` +
		`"proto":"modbus","transport":"tcp","src":{"ip":"10.10.1.99","port":50002,"mac":"02:00:00:00:00:01"},"dst":{"ip":"10.10.1.21","port":502,"mac":"02:00:00:00:00:02","asset":"plc2"},` +
		`"unit":3,"fc":16,"fc_name":"write_multiple_registers","addr":{"lo":5,"hi":5},"values":[500],"expected":"100..200","count":1,` +
		`"first":"2025-03-01T08:00:00.000000000Z","last":"2025-03-01T08:00:00.000000000Z","frame":7,"evidence":"1000040004"}`
	if got := alertJSON(a); got != want {
		t.Errorf("alert JSON\n got %s\nwant %s", got, want)
	}
	b := rec.alerts[1]
	if b.ID != 2 || b.Severity != policy.SeverityLow || b.Proto != proto.DNP3 || b.LinkSrc != 1 || b.LinkDst != 10 || b.FCName != "select" || b.Title != "crob" || len(b.Attack) != 0 {
		t.Errorf("dnp3 alert: %+v", b)
	}
	js := alertJSON(b)
	for _, w := range []string{`"dnp3_src":1`, `"dnp3_dst":10`, `"attack":[]`, `"evidence":"c003"`} {
		if !strings.Contains(js, w) {
			t.Errorf("dnp3 alert JSON lacks %s: %s", w, js)
		}
	}
	if strings.Contains(js, `"unit"`) {
		t.Errorf("dnp3 alert JSON has a unit: %s", js)
	}
}

func TestAlertBounded(t *testing.T) {
	e, rec := newTestEngine(t, `
  - id: w
    when: {proto: modbus, op: write}
    value: {max: 10}
`, EngineOptions{})
	vals := make([]uint16, 100)
	for i := range vals {
		vals[i] = 1000 + uint16(i)
	}
	x := wreg(rogueC, plc2S, 1, 0, vals...)
	x.feed(e)
	if len(rec.alerts) != 1 {
		t.Fatal(rec.rules())
	}
	a := rec.alerts[0]
	if len(a.Values) != MaxAlertValues || a.Values[0] != 1000 || a.AddrLo != 0 || a.AddrHi != 99 {
		t.Errorf("values %v addr %d-%d", a.Values, a.AddrLo, a.AddrHi)
	}
}

func TestRate(t *testing.T) {
	rule := `
  - id: burst
    when: {proto: modbus, op: write}
    rate: {max: 3, per: 1s}
`
	e, rec := newTestEngine(t, rule, EngineOptions{})
	// Two writes a second from the HMI never fire. (The window is an
	// estimate from two fixed windows: a steady rate of exactly max per
	// second may fire.)
	for i := range 30 {
		x := wreg(hmiC, plc2S, 1, 5, 1)
		x.at = time.Duration(i) * time.Second / 2
		x.feed(e)
	}
	if len(rec.alerts) != 0 {
		t.Fatalf("2 per second fired: %v", rec.rules())
	}
	// Four within 100 ms: the fourth fires.
	for i := range 4 {
		x := wreg(engC, plc2S, 1, 5, 1)
		x.at = 20*time.Second + time.Duration(i)*25*time.Millisecond
		x.feed(e)
		if want := max(0, i-2); len(rec.alerts) != want {
			t.Fatalf("after write %d: %d alerts, want %d", i+1, len(rec.alerts), want)
		}
	}
	a := rec.alerts[0]
	if a.Src.Addr() != netip.MustParseAddr("10.10.1.30") || a.Expected != "at most 3 per 1s" {
		t.Errorf("rate alert: %+v", a)
	}
	// The count is per pair: another source on the same PLC starts at 0.
	for i := range 3 {
		x := wreg(rogueC, plc2S, 1, 5, 1)
		x.at = 20*time.Second + time.Duration(i)*25*time.Millisecond
		x.feed(e)
	}
	if len(rec.alerts) != 1 {
		t.Errorf("another pair: %d alerts", len(rec.alerts))
	}
	// A sliding window: 3 at the end of one second and 3 at the start of
	// the next are 6 within 1s.
	e, rec = newTestEngine(t, rule, EngineOptions{})
	for i, at := range []time.Duration{900, 950, 990, 1010, 1050, 1090} {
		x := wreg(engC, plc2S, 1, 5, 1)
		x.at = 60*time.Second + at*time.Millisecond
		x.feed(e)
		if i == 3 && len(rec.alerts) != 1 {
			t.Errorf("4 writes within 110ms across a window boundary: %d alerts", len(rec.alerts))
		}
	}
}

func TestRateTableBounded(t *testing.T) {
	e, _ := newTestEngine(t, `
  - id: burst
    when: {proto: modbus}
    rate: {max: 100, per: 1s}
`, EngineOptions{RateSlots: 16})
	for i := range 1000 {
		x := rreg(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 1000).String(), plc2S, 1, 0, 1)
		x.feed(e)
	}
	if e.rate.Cap() != 16 || e.Stats().RateEvictions < 1000-16 {
		t.Errorf("slots %d, evictions %d", e.rate.Cap(), e.Stats().RateEvictions)
	}
}

func TestAggregation(t *testing.T) {
	e, rec := newTestEngine(t, `
  - id: w
    when: {proto: modbus, op: write}
    severity: high
`, EngineOptions{Window: 10 * time.Second})
	for i := range 5 {
		x := wreg(rogueC, plc2S, 1, 5, 1)
		x.at = time.Duration(i) * time.Second
		x.feed(e)
	}
	// Another address is another alert.
	wreg(rogueC, plc2S, 1, 6, 1).feed(e)
	if len(rec.alerts) != 2 {
		t.Fatalf("repeats: %d alerts, want the first of each key at once", len(rec.alerts))
	}
	first := rec.alerts[0]
	if first.Count != 1 || !first.First.Equal(t0) || !first.Last.Equal(t0) {
		t.Errorf("first: count %d first %v last %v", first.Count, first.First, first.Last)
	}
	// The window ends with packet time: the summary comes with the next
	// operation after it, whatever it is.
	x := rreg(hmiC, plc1S, 1, 0, 1)
	x.at = 11 * time.Second
	x.feed(e)
	if len(rec.alerts) != 3 {
		t.Fatalf("after the window: %v", rec.rules())
	}
	s := rec.alerts[2]
	if s.ID != first.ID || s.Count != 5 || !s.First.Equal(t0) || !s.Last.Equal(t0.Add(4*time.Second)) {
		t.Errorf("summary: id %d count %d first %v last %v", s.ID, s.Count, s.First, s.Last)
	}
	if first.Count != 1 {
		t.Errorf("the summary changed the alert already handed over")
	}
	// A repeat after the window is a new alert.
	x = wreg(rogueC, plc2S, 1, 5, 1)
	x.at = 12 * time.Second
	x.feed(e)
	if len(rec.alerts) != 4 || rec.alerts[3].ID == first.ID || rec.alerts[3].Count != 1 {
		t.Errorf("after the window: %v", rec.alerts[len(rec.alerts)-1])
	}
	st := e.Stats()
	if st.Folded != 4 || st.Summaries != 1 || st.Alerts[policy.SeverityHigh] != 3 || st.MaxSeverity != policy.SeverityHigh {
		t.Errorf("stats %+v", st)
	}
	// Flush reports nothing for alerts without repeats.
	n := len(rec.alerts)
	e.Flush()
	if len(rec.alerts) != n {
		t.Errorf("Flush reported alerts without repeats")
	}
}

// TestFoldEscalates: a repeat that does more than the occurrence an alert
// reports is not hidden in its count. The demo's rogue master reads, then
// writes, within the window of baseline-new-master, which folds per source
// whatever the function: the write must be an alert of its own, and a
// summary must say which function codes it folded.
func TestFoldEscalates(t *testing.T) {
	e, rec := baselineEngine(t)
	at := time.Hour
	read := rreg(rogueC, plc1S, 1, 0, 10)
	read.at = at
	read.feed(e)
	read.at = at + 100*time.Millisecond
	read.feed(e)
	write := wreg(rogueC, plc1S, 1, 0, 0, 0)
	write.at = at + 200*time.Millisecond
	write.feed(e)
	if len(rec.alerts) != 3 {
		t.Fatalf("read, read, write from a new master: %d alerts, want the read, its summary and the write:\n%v", len(rec.alerts), rec.alerts)
	}
	r, sum, w := rec.alerts[0], rec.alerts[1], rec.alerts[2]
	if r.FC != 3 || r.Summary || sum.ID != r.ID || sum.Count != 2 || !sum.Summary || sum.FCs != nil {
		t.Errorf("reads: alert fc %d, summary id %d (want %d) count %d fcs %v", r.FC, sum.ID, r.ID, sum.Count, sum.FCs)
	}
	if w.Rule != "baseline-new-master" || w.FC != 16 || w.ID == r.ID || w.Count != 1 || !strings.Contains(w.Title, "write_multiple_registers") ||
		len(w.Values) != 2 {
		t.Errorf("write: %+v", w)
	}
	// Reads after the write fold into it (they do less), and a single
	// register write too; its summary lists what it folded.
	read.at = at + 300*time.Millisecond
	read.feed(e)
	single := mb{src: rogueC, dst: plc1S, unit: 1, fc: 6, addr: 1, count: 1, vals: []uint16{0}, at: at + 400*time.Millisecond}
	single.feed(e)
	e.Flush()
	if len(rec.alerts) != 4 {
		t.Fatalf("%d alerts, want the write's summary last: %v", len(rec.alerts), rec.rules())
	}
	if s := rec.alerts[3]; s.ID != w.ID || s.Count != 3 || !reflect.DeepEqual(s.FCs, []uint8{3, 6, 16}) ||
		!strings.Contains(alertJSON(s), `"fcs":[3,6,16]`) {
		t.Errorf("write summary: id %d (want %d) count %d fcs %v", s.ID, w.ID, s.Count, s.FCs)
	}
	if ev := rec.alerts[3].Event(); !reflect.DeepEqual(ev.FCs, []uint16{3, 6, 16}) {
		t.Errorf("wire fcs %v", ev.FCs)
	}
	// Escalation goes one way: a restart after the write is a third
	// alert; equal or lesser operations never are.
	e, rec = baselineEngine(t)
	for i, x := range []mb{write, read, {src: rogueC, dst: plc1S, unit: 1, fc: 8, sub: 1, at: at}, read, write} {
		x.at = at + time.Duration(i)*time.Second
		x.feed(e)
	}
	if got := newAlertFCs(rec.alerts); got != "16,8" {
		t.Errorf("write, read, restart, read, write: new alerts of fc %s, want 16,8", got)
	}
	// A message too damaged to have a function code adds none to fcs:
	// malformed folds per conversation, whatever the messages.
	e, rec = newTestEngineDetectors(t, "", EngineOptions{}, true)
	xmb{src: engC, dst: plc1S, unit: 1, fc: 3, malformed: modbus.LengthMismatch}.feed(e)
	xmb{src: engC, dst: plc1S, malformed: modbus.NotModbus, at: time.Second}.feed(e)
	e.Flush()
	if got := strings.Join(rec.rules(), ","); got != "malformed,malformed" || rec.alerts[1].Count != 2 || rec.alerts[1].FCs != nil {
		t.Errorf("a read and garbage: %s, summary %+v; want no fcs", got, rec.alerts[len(rec.alerts)-1])
	}
}

// TestAcknowledgeEndsFolding: after Acknowledge (the box's button), a
// repeat of an alert being folded is a new alert, not a count in a
// summary that nobody would see as news; the alert acknowledged is
// reported with the repeats it had.
func TestAcknowledgeEndsFolding(t *testing.T) {
	e, rec := newTestEngine(t, `
  - id: w
    when: {proto: modbus, op: write}
    severity: high
`, EngineOptions{})
	for i := range 4 {
		if i == 2 {
			e.Acknowledge()
		}
		x := wreg(rogueC, plc2S, 1, 5, 1)
		x.at = time.Duration(i) * time.Second
		x.feed(e)
	}
	e.Flush()
	if len(rec.alerts) != 4 {
		t.Fatalf("2 writes, acknowledge, 2 writes: %d alerts, want alert, summary, alert, summary: %+v", len(rec.alerts), rec.alerts)
	}
	a, sum, b, sum2 := rec.alerts[0], rec.alerts[1], rec.alerts[2], rec.alerts[3]
	if !sum.Summary || sum.ID != a.ID || sum.Count != 2 || !sum.Last.Equal(t0.Add(time.Second)) {
		t.Errorf("summary of the alert acknowledged: %+v", sum)
	}
	if b.Summary || b.ID == a.ID || b.Count != 1 || !b.First.Equal(t0.Add(2*time.Second)) {
		t.Errorf("the repeat after the acknowledgement: %+v", b)
	}
	if !sum2.Summary || sum2.ID != b.ID || sum2.Count != 2 {
		t.Errorf("repeats of the new alert fold into it: %+v", sum2)
	}
}

// TestTakeOver: a reload (a new engine on the policy read again) keeps
// what is still valid: rate counts straddling it add up, alerts being
// folded go on folding, acknowledged ones stay acknowledged, new-asset
// does not report again, alert numbers go on; a rule that changed starts
// afresh, its alerts being folded reported first.
func TestTakeOver(t *testing.T) {
	const before = `
  - id: burst
    when: {proto: modbus, op: write}
    rate: {max: 3, per: 1s}
  - id: w
    when: {proto: modbus, dst: plc2, op: write}
  - id: acked
    when: {proto: modbus, dst: plc1, op: write}
  - id: changed
    when: {proto: modbus, dst: plc2, op: write}
    severity: low
`
	// Rules reordered, one added, one changed.
	const after = `
  - id: added
    when: {proto: dnp3}
  - id: changed
    when: {proto: modbus, dst: plc2, op: write}
    severity: high
  - id: w
    when: {proto: modbus, dst: plc2, op: write}
  - id: acked
    when: {proto: modbus, dst: plc1, op: write}
  - id: burst
    when: {proto: modbus, op: write}
    rate: {max: 3, per: 1s}
`
	e, rec := newTestEngineDetectors(t, before, EngineOptions{}, true)
	write := func(e *Engine, dst string, at time.Duration) {
		x := wreg(rogueC, dst, 1, 5, 1)
		x.at = at
		x.feed(e)
	}
	write(e, plc1S, 0)
	e.Acknowledge()
	for i := range 3 {
		write(e, plc2S, time.Duration(1+i)*100*time.Millisecond)
	}
	if got := strings.Join(rec.rules(), ","); got != "new-asset,acked,w,changed" {
		t.Fatalf("before the reload: %s", got)
	}
	lastID := rec.alerts[len(rec.alerts)-1].ID
	rec.alerts = nil

	p, err := policy.Parse([]byte(engineAssets+after), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewEngine(p, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.TakeOver(e)
	if got := strings.Join(rec.rules(), ","); got != "changed" || rec.alerts[0].Count != 3 || !rec.alerts[0].Summary {
		t.Fatalf("at the reload: %v, want the summary of the changed rule's 3 writes", rec.rules())
	}
	rec.alerts = nil
	// The fourth write within a second fires burst; w folds it, changed
	// raises it anew; new-asset knows the rogue; acked's repeat is news.
	write(n, plc2S, 350*time.Millisecond)
	write(n, plc1S, 400*time.Millisecond)
	if got := strings.Join(rec.rules(), ","); got != "changed,burst,acked" {
		t.Fatalf("after the reload: %s, want changed,burst,acked", got)
	}
	for _, a := range rec.alerts {
		if a.ID <= lastID {
			t.Errorf("alert %s after the reload has id %d, not above %d", a.Rule, a.ID, lastID)
		}
		if a.Rule == "changed" && a.Severity != policy.SeverityHigh {
			t.Errorf("changed rule with its old severity: %+v", a)
		}
	}
	rec.alerts = nil
	n.Flush()
	for _, a := range rec.alerts {
		if a.Rule == "w" && (a.Count != 4 || a.ID > lastID) {
			t.Errorf("w's summary: count %d id %d; want the 4 writes in the alert raised before the reload", a.Count, a.ID)
		}
	}
	if st := n.Stats(); st.Folded < 3 || st.Alerts[policy.SeverityMedium] < 4 {
		t.Errorf("stats not carried over: %+v", st)
	}
}

// TestTakeOverFullTables: a reload with the same policy keeps every fold
// and rate counter of tables nearly full, and raises nothing. A key lives
// in one of two sets, and which one depended on the keys before it: put
// back in another order, the old keys could fill both sets of one and
// evict it (reportAgg then raised its summary at the reload).
func TestTakeOverFullTables(t *testing.T) {
	const rules = `
  - id: w
    when: {proto: modbus, op: write}
  - id: burst
    when: {proto: modbus, op: write}
    rate: {max: 1000, per: 1m}
`
	for _, n := range []int{256, 400, 480} {
		for seed := range uint64(3) {
			opts := EngineOptions{AggSlots: 512, RateSlots: 512, MaxAlertsPerMinute: -1, seed: seed + 1}
			old, rec := newTestEngine(t, rules, opts)
			for round := range 2 {
				for i := range n {
					x := wreg(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 20, byte(i / 200), byte(i%200 + 1)}), 40000).String(), plc1S, 1, 5, 1)
					x.at = time.Duration(round*n+i) * time.Millisecond
					x.feed(old)
				}
			}
			aggLive, rateLive := old.agg.Len(), old.rate.Len()
			if aggLive < n*9/10 {
				t.Fatalf("%d writers, seed %d: only %d folds before the reload", n, seed+1, aggLive)
			}
			rec.alerts = nil
			e, err := NewEngine(old.policy, rec, opts)
			if err != nil {
				t.Fatal(err)
			}
			e.TakeOver(old)
			if e.agg.Len() != aggLive || e.rate.Len() != rateLive || e.agg.Evictions() != 0 || e.rate.Evictions() != 0 || len(rec.alerts) != 0 {
				t.Errorf("%d writers, seed %d: folds %d → %d, counters %d → %d, %d and %d evictions, %d alerts at the reload",
					n, seed+1, aggLive, e.agg.Len(), rateLive, e.rate.Len(), e.agg.Evictions(), e.rate.Evictions(), len(rec.alerts))
			}
		}
	}
}

// newAlertFCs lists the function codes of the new alerts, not of the
// summaries.
func newAlertFCs(as []*Alert) string {
	var s []string
	for _, a := range as {
		if !a.Summary {
			s = append(s, strconv.Itoa(int(a.FC)))
		}
	}
	return strings.Join(s, ",")
}

func TestFlush(t *testing.T) {
	e, rec := newTestEngine(t, `
  - id: w
    when: {proto: modbus, op: write}
`, EngineOptions{})
	for i := range 3 {
		x := wreg(rogueC, plc2S, 1, 5, 1)
		x.at = time.Duration(i) * time.Millisecond
		x.feed(e)
	}
	e.Flush()
	if len(rec.alerts) != 2 || rec.alerts[1].Count != 3 {
		t.Fatalf("flush: %v", rec.alerts)
	}
	e.Flush()
	if len(rec.alerts) != 2 {
		t.Errorf("a second Flush reported again")
	}
}

func TestBudget(t *testing.T) {
	e, rec := newTestEngine(t, `
  - id: w
    when: {proto: modbus, op: write}
    severity: critical
`, EngineOptions{MaxAlertsPerMinute: 3})
	// Ten different addresses: ten alerts, three within the budget.
	for i := range 10 {
		x := wreg(rogueC, plc2S, 1, uint16(i), 1)
		x.at = time.Duration(i) * time.Second
		x.feed(e)
	}
	if len(rec.alerts) != 3 || e.Suppressed() != 7 {
		t.Fatalf("%d alerts, %d suppressed; want 3 and 7", len(rec.alerts), e.Suppressed())
	}
	// The minute ends: one alert says how many were suppressed.
	x := rreg(hmiC, plc1S, 1, 0, 1)
	x.at = 61 * time.Second
	x.feed(e)
	if len(rec.alerts) != 4 {
		t.Fatalf("after the minute: %v", rec.rules())
	}
	b := rec.alerts[3]
	if b.Rule != BudgetRule || b.Severity != policy.SeverityHigh || b.Count != 7 || b.Summary || b.Category != CategorySystem ||
		!b.First.Equal(t0.Add(3*time.Second)) || !b.Last.Equal(t0.Add(9*time.Second)) || !strings.Contains(b.Title, "7 alerts suppressed") {
		t.Errorf("budget alert: %+v", b)
	}
	if st := e.Stats(); st.MaxSeverity != policy.SeverityCritical {
		t.Errorf("max severity %v", st.MaxSeverity)
	}
	// A new minute has a new budget.
	x = wreg(rogueC, plc2S, 1, 100, 1)
	x.at = 62 * time.Second
	x.feed(e)
	if len(rec.alerts) != 5 || rec.alerts[4].Rule != "w" {
		t.Errorf("new minute: %v", rec.rules())
	}
	// Flush reports the suppressions of the current minute.
	for i := range 5 {
		x := wreg(rogueC, plc2S, 1, uint16(200+i), 1)
		x.at = 63 * time.Second
		x.feed(e)
	}
	e.Flush()
	last := rec.alerts[len(rec.alerts)-1]
	if last.Rule != BudgetRule || last.Count != 3 || e.Suppressed() != 10 {
		t.Errorf("flush: last %+v, suppressed %d", last, e.Suppressed())
	}
	// No budget.
	e, rec = newTestEngine(t, `
  - id: w
    when: {proto: modbus, op: write}
`, EngineOptions{MaxAlertsPerMinute: -1})
	for i := range 1000 {
		wreg(rogueC, plc2S, 1, uint16(i), 1).feed(e)
	}
	if len(rec.alerts) != 1000 || e.Suppressed() != 0 {
		t.Errorf("no budget: %d alerts", len(rec.alerts))
	}
}

// TestRuleOrder: rules indexed by destination and the others fire in file
// order.
func TestRuleOrder(t *testing.T) {
	e, rec := newTestEngine(t, `
  - {id: a, when: {proto: modbus, op: write}}
  - {id: b, when: {proto: modbus, dst: plc2}}
  - {id: c, when: {dst: field}}
  - {id: d, when: {proto: modbus, dst: [plc2, 10.10.9.9], fc: 16}}
  - {id: e, when: {proto: modbus, dst: plc2, fc: 3}}
  - {id: f, when: {fc: 16}}
`, EngineOptions{})
	wreg(hmiC, plc2S, 1, 5, 1).feed(e)
	if got := strings.Join(rec.rules(), ","); got != "a,b,d,f" {
		t.Errorf("fired %s, want a,b,d,f", got)
	}
}

func TestNewEngineErrors(t *testing.T) {
	if _, err := NewEngine(nil, nil, EngineOptions{}); err == nil {
		t.Error("no sink: no error")
	}
	if _, err := NewEngine(nil, &recorder{}, EngineOptions{Window: time.Nanosecond}); err == nil {
		t.Error("1ns window: no error")
	}
	e, err := NewEngine(nil, &recorder{}, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rreg(hmiC, plc1S, 1, 0, 1).feed(e)
}

// TestEngineNoAllocs: an operation that fires no rule and no built-in
// detector allocates nothing, whether rules are looked at or not.
func TestEngineNoAllocs(t *testing.T) {
	e, rec := newTestEngineDetectors(t, `
  - id: writes
    when: {proto: modbus, dst: plc2, op: write}
    unless: {src: [hmi, eng]}
  - id: setpoint
    when: {proto: modbus, dst: plc2, op: write, addr: "0-100"}
    value: {min: 0, max: 1000}
  - id: rate
    when: {proto: modbus, dst: 10.10.1.0/24}
    rate: {max: 1000000, per: 1s}
  - id: crob
    when: {proto: dnp3, dst: rtu7, group: 12, points: "0-15"}
    unless: {src: master}
  - id: ao
    when: {proto: dnp3, op: control, group: 41}
    value: {min: 0, max: 100}
`, EngineOptions{}, true)
	for k := range numBuiltin {
		if !e.bi.on[k] {
			t.Fatalf("detector %s is off", Detectors[k].ID)
		}
	}
	f := &dpi.Flow{App: dpi.AppModbus, Client: netip.MustParseAddrPort(hmiC), Server: netip.MustParseAddrPort(plc2S)}
	m := &modbus.Message{Dir: modbus.Request, Unit: 1, FC: 16, HasAddr: true, Addr: 5, Count: 2, Values: []uint16{1, 2}, PDU: []byte{16}}
	g := &dpi.Flow{App: dpi.AppDNP3, Client: netip.MustParseAddrPort(mstC), Server: netip.MustParseAddrPort(rtu7S)}
	d := &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Request, FC: dnp3.FuncDirectOperate, Link: dnp3.LinkHeader{Src: 1, Dst: 10},
		Objects: []dnp3.ObjectHeader{{Group: 12, Variation: 1, Prefix: 1, Range: 7, Count: 1, NumPoints: 1}, {Group: 41, Variation: 2, Prefix: 1, Range: 7, Count: 1, FirstPoint: 1, NumPoints: 1}},
		Points:  []dnp3.Point{{Index: 3}, {Index: 3, Value: 50}}}
	var i int64
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		m.Time = t0.Add(time.Duration(i) * 20 * time.Millisecond) // 50 a second: no flood
		d.Time = m.Time
		e.Message(f, dpi.FromClient, m)
		e.Message(g, dpi.FromClient, d)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per operation", allocs)
	}
	if len(rec.alerts) != 0 {
		t.Errorf("fired: %v", rec.rules())
	}
}

func TestAlertJSONEscapes(t *testing.T) {
	a := &Alert{ID: 3, Rule: "r", Severity: policy.SeverityInfo, Title: "a \"quoted\" \\ title\x01\xff", Values: []float64{1.5, nanValue()}}
	got := alertJSON(a)
	for _, w := range []string{`"title":"a \"quoted\" \\ title\u0001` + "\ufffd" + `"`, `"values":[1.5,null]`, `"count":0`} {
		if !strings.Contains(got, w) {
			t.Errorf("lacks %s: %s", w, got)
		}
	}
	for _, no := range []string{`"proto"`, `"src"`, `"unit"`, `"fc"`, `"addr"`, `"evidence"`} {
		if strings.Contains(got, no) {
			t.Errorf("has %s: %s", no, got)
		}
	}
}

func nanValue() float64 {
	z := 0.0
	return z / z
}

// TestQuietSpan: tick finds the windows that ended in a heap of their
// ends (dues), not by looking through the table of alerts being folded.
// An engine that looks through the table on every tick due reports the
// same alerts at the same messages, with windows of two lengths, time
// going back a little and a lot, and a reload; and again with so many
// sources and so small a table that alerts are evicted and closed before
// their due comes up.
func TestQuietSpan(t *testing.T) {
	tune := func(s *policy.DetectorSettings) {
		if s.ID == "malformed" {
			s.Window = 3 * time.Minute // the others fold within the engine's minute
		}
	}
	newEngine := func(slots int) (*Engine, *recorder) {
		p, err := policy.Parse([]byte(engineAssets), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Detectors {
			tune(&p.Detectors[i])
		}
		rec := &recorder{}
		e, err := NewEngine(p, rec, EngineOptions{AggSlots: slots, MaxAlertsPerMinute: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return e, rec
	}
	for _, tc := range []struct {
		name         string
		sources      int
		slots        int
		wantEvicted  bool
		wantMinAlert int
	}{
		{"few sources", 4, 0, false, 100},
		{"evictions", 200, 16, true, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, got := newEngine(tc.slots)
			ref, want := newEngine(tc.slots)
			// The same seed, so that the two evict the same entries.
			ref.seed = e.seed
			ref.rate.Reset(e.seed)
			ref.agg.Reset(e.seed)
			rnd := rand.New(rand.NewPCG(1, 2))
			at := time.Duration(0)
			for i := range 3000 {
				switch {
				case i == 1500:
					e2, _ := newEngine(tc.slots)
					e2.sink = got
					e2.TakeOver(e)
					e = e2
					ref2, _ := newEngine(tc.slots)
					ref2.sink = want
					ref2.TakeOver(ref)
					ref = ref2
				case i%1000 == 999:
					at -= time.Hour // a new capture file
				case i%7 == 3:
					at -= time.Duration(rnd.IntN(30_000)) * time.Millisecond // out of order
				default:
					at += time.Duration(rnd.IntN(20_000)) * time.Millisecond
				}
				src := "10.10." + itoa(1+rnd.IntN(tc.sources)/200) + "." + itoa(30+rnd.IntN(tc.sources)%200) + ":50001"
				var f feeder
				switch rnd.IntN(3) {
				case 0:
					f = xmb{src: src, dst: plc1S, unit: 1, fc: 8, sub: modbus.SubForceListenOnlyMode, at: at}
				case 1:
					f = xmb{src: src, dst: plc1S, unit: 1, fc: 3, malformed: modbus.LengthMismatch, at: at}
				default:
					f = xdn{src: src, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncColdRestart, at: at}
				}
				f.feed(e)
				ref.aggFrom = math.MaxInt64 // look through the table every time
				f.feed(ref)
				if len(got.alerts) != len(want.alerts) {
					t.Fatalf("message %d: %d alerts, want %d", i, len(got.alerts), len(want.alerts))
				}
				if len(e.dues) > 2*e.agg.Cap() {
					t.Fatalf("message %d: %d dues for a table of %d", i, len(e.dues), e.agg.Cap())
				}
			}
			e.Flush()
			ref.Flush()
			if len(want.alerts) < tc.wantMinAlert {
				t.Fatalf("only %d alerts", len(want.alerts))
			}
			if ev := e.Stats().AggEvictions; (ev > 0) != tc.wantEvicted {
				t.Fatalf("%d evictions", ev)
			}
			if len(got.alerts) != len(want.alerts) {
				t.Fatalf("%d alerts, want %d", len(got.alerts), len(want.alerts))
			}
			for i := range got.alerts {
				if g, w := got.alerts[i], want.alerts[i]; g.Rule != w.Rule || g.Count != w.Count || g.ID != w.ID {
					t.Errorf("alert %d: %s #%d ×%d, want %s #%d ×%d", i, g.Rule, g.ID, g.Count, w.Rule, w.ID, w.Count)
				}
			}
		})
	}
}

// side is the end of a flow that sends a response (resp) or a request.
func side(resp bool) dpi.Side {
	if resp {
		return dpi.FromServer
	}
	return dpi.FromClient
}
