package rules

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/rules/policy"
)

var aoPt = func(idx uint32, v float64) obj {
	return obj{g: 41, v: 2, prefix: 1, rng: 7, count: 1, pts: []dnp3.Point{{Index: idx, Value: v}}}
}

// normalOps is the learned behaviour of the tests: the HMI polls and
// writes PLC 1, the DNP3 master polls and operates RTU 7.
func normalOps() []feeder {
	var fs []feeder
	for i := range 6 {
		at := time.Duration(i) * 10 * time.Second
		r := rreg(hmiC, plc1S, 1, 0, 10)
		r.at = at
		w := mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 5, count: 1, vals: []uint16{uint16(120 + 12*i)}, at: at + time.Second}
		c := dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead, objs: []obj{{g: 60, v: 2, rng: 6}}, at: at}
		o := dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncDirectOperate, objs: []obj{aoPt(2, 50+float64(i))}, at: at + time.Second}
		fs = append(fs, r, w, c, o)
	}
	return fs
}

// learned is the baseline a learn.Learner writes for normalOps (the learn
// package's tests check that it does).
func learned(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Load("testdata/learned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBaselineRoundTrip(t *testing.T) {
	p := learned(t)
	var b bytes.Buffer
	p.Format(&b)
	q, err := policy.Parse(b.Bytes(), "baseline.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(p.Baseline, q.Baseline) {
		t.Errorf("baseline differs after the round trip:\n%+v\n%+v\n%s", p.Baseline, q.Baseline, b.String())
	}
	var b2 bytes.Buffer
	q.Format(&b2)
	if b.String() != b2.String() {
		t.Errorf("format not stable:\n%s\n---\n%s", b.String(), b2.String())
	}
	for _, w := range []string{"src: master-10-10-1-10", "dst: plc-10-10-1-20", "read: {holding_registers: \"0-9\"}",
		"- {table: holding_registers, addr: 5, min: 120, max: 180}", `- {group: "41/2", points: 2}`, "writes_per_minute: 6"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("lacks %q:\n%s", w, b.String())
		}
	}
}

// baselineEngine enforces the learned baseline with only the baseline
// detectors on.
func baselineEngine(t *testing.T) (*Engine, *recorder) {
	p := learned(t)
	for i := range p.Detectors {
		p.Detectors[i].Enabled = strings.HasPrefix(p.Detectors[i].ID, "baseline-")
	}
	rec := &recorder{}
	e, err := NewEngine(p, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e, rec
}

func TestBaselineDetectors(t *testing.T) {
	later := time.Hour
	at := func(f feeder) feeder {
		switch x := f.(type) {
		case mb:
			x.at += later
			return x
		case dn:
			x.at += later
			return x
		}
		return f
	}
	for _, c := range []struct {
		name     string
		ops      []feeder
		want     string // detector id; "" for none
		expected string
	}{
		{"learned", normalOps(), "", ""},
		{"learned value within margin", []feeder{mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 5, count: 1, vals: []uint16{186}}}, "", ""},
		{"new master", []feeder{rreg(rogueC, plc1S, 1, 0, 10)}, "baseline-new-master", ""},
		{"new conversation", []feeder{rreg(hmiC, plc2S, 1, 0, 10)}, "baseline-new-conversation", ""},
		{"new function", []feeder{mb{src: hmiC, dst: plc1S, unit: 1, fc: 16, addr: 5, count: 1, vals: []uint16{150}}}, "baseline-new-function", "fc read_holding_registers, write_single_register"},
		{"new address", []feeder{rreg(hmiC, plc1S, 1, 5, 10)}, "baseline-new-address", "holding_registers 0-9"},
		{"new write address", []feeder{mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 6, count: 1, vals: []uint16{150}}}, "baseline-new-address", "holding_registers 5"},
		{"new unit", []feeder{rreg(hmiC, plc1S, 2, 0, 10)}, "baseline-new-address", "unit 1"},
		{"new dnp3 object", []feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead, objs: []obj{{g: 30, v: 1, rng: 6}}}}, "baseline-new-address", ""},
		{"new dnp3 point", []feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncDirectOperate, objs: []obj{aoPt(3, 50)}}}, "baseline-new-address", "points 2"},
		{"value out of range", []feeder{mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 5, count: 1, vals: []uint16{900}}}, "baseline-value-range", "114..186 (learned 120..180)"},
		{"dnp3 value out of range", []feeder{dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncDirectOperate, objs: []obj{aoPt(2, 99)}}}, "baseline-value-range", "49..56 (learned 50..55)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, rec := baselineEngine(t)
			for _, f := range c.ops {
				at(f).feed(e)
			}
			e.Flush()
			got := strings.Join(rec.rules(), ",")
			if got != c.want {
				t.Fatalf("fired %q, want %q", got, c.want)
			}
			if c.want != "" {
				a := rec.alerts[0]
				if a.Category != CategoryBaseline || a.Severity != policy.LookupDetector(c.want).Severity || a.Title == "" {
					t.Errorf("alert %+v", a)
				}
				if c.expected != "" && a.Expected != c.expected {
					t.Errorf("expected %q, want %q", a.Expected, c.expected)
				}
			}
		})
	}
	t.Run("write rate", func(t *testing.T) {
		e, rec := baselineEngine(t)
		// Learned 6 a minute; factor 3: 18 per minute pass, 19 fire.
		for i := range 18 {
			mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 5, count: 1, vals: []uint16{150}, at: later + time.Duration(i)*time.Second}.feed(e)
		}
		if len(rec.alerts) != 0 {
			t.Fatalf("fired %v at 18 a minute", rec.rules())
		}
		mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 5, count: 1, vals: []uint16{150}, at: later + 19*time.Second}.feed(e)
		if got := strings.Join(rec.rules(), ","); got != "baseline-write-rate" {
			t.Fatalf("fired %q", got)
		}
		if w := "at most 18 per 1m (learned 6 per minute)"; rec.alerts[0].Expected != w {
			t.Errorf("expected %q, want %q", rec.alerts[0].Expected, w)
		}
	})
}

// stubLearner stands for a learn.Learner: it counts what it observes
// and has learned the test baseline.
type stubLearner struct {
	t        *testing.T
	observed int
	margin   float64
}

func (s *stubLearner) Observe(*Op) { s.observed++ }

func (s *stubLearner) Baseline(margin float64) *policy.Policy {
	s.margin = margin
	return learned(s.t)
}

// TestEngineLearnMode: with EngineOptions.Learn the engine feeds its
// learner over the learning period, then enforces what it learned, in one
// pass. The learn package tests the same with the real learner.
func TestEngineLearnMode(t *testing.T) {
	rec := &recorder{}
	if _, err := NewEngine(nil, rec, EngineOptions{Learn: time.Minute}); err == nil {
		t.Error("learning without a learner was accepted")
	}
	l := &stubLearner{t: t}
	e, err := NewEngine(policy.New(), rec, EngineOptions{Learn: time.Minute, Learner: l})
	if err != nil {
		t.Fatal(err)
	}
	ops := normalOps()
	for _, f := range ops {
		f.feed(e)
	}
	if !e.Learning() || e.Learned() != nil || len(rec.alerts) != 0 || l.observed != len(ops) {
		t.Fatalf("learning %v, observed %d of %d, alerts %v", e.Learning(), l.observed, len(ops), rec.rules())
	}
	w := mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 5, count: 1, vals: []uint16{900}, at: 2 * time.Minute}
	w.feed(e)
	if e.Learning() || e.Learned() == nil || l.observed != len(ops) {
		t.Fatalf("still learning, or observed %d after the period", l.observed)
	}
	if l.margin != policy.DefaultMargin {
		t.Errorf("margin %v, want the default %v", l.margin, policy.DefaultMargin)
	}
	if got := strings.Join(rec.rules(), ","); got != "baseline-value-range" {
		t.Errorf("fired %q", got)
	}
}

// TestBaselineNoAllocs: a request that fits the baseline allocates
// nothing.
func TestBaselineNoAllocs(t *testing.T) {
	e, rec := baselineEngine(t)
	e.base.polls = nil // only the HMI's conversation speaks here; TestSilent checks baseline-silent
	f := &dpi.Flow{App: dpi.AppModbus, Client: netip.MustParseAddrPort(hmiC), Server: netip.MustParseAddrPort(plc1S)}
	m := mbMessage(1, 6, 5, 1, []uint16{150})
	var i int64
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		m.Time = t0.Add(time.Hour + time.Duration(i)*10*time.Second)
		e.Message(f, dpi.FromClient, m)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per operation", allocs)
	}
	if len(rec.alerts) != 0 {
		t.Errorf("fired: %v", rec.rules())
	}
}

func mbMessage(unit, fc uint8, addr, count uint16, vals []uint16) *modbus.Message {
	return &modbus.Message{Dir: modbus.Request, Unit: unit, FC: fc, HasAddr: true, Addr: addr, Count: count, Values: vals, PDU: []byte{fc}}
}

// TestSilent: a polling conversation that stops for longer than the rate
// factor times its longest learned gap is reported once, and again only
// after it spoke; one that keeps polling, or is late by less, is not.
func TestSilent(t *testing.T) {
	e, rec := baselineEngine(t)
	// Learned: each conversation polls at most 9 s apart; rate factor 3:
	// silent after 39 s (9 s + 30 s of slack beats 27 s).
	poll := func(at time.Duration) {
		mb{src: hmiC, dst: plc1S, unit: 1, fc: 3, addr: 0, count: 10, at: at}.feed(e)
	}
	for s := time.Duration(0); s <= 120*time.Second; s += 9 * time.Second {
		poll(time.Hour + s)
	}
	var silent []string
	for _, a := range rec.alerts {
		if a.Rule == "baseline-silent" {
			silent = append(silent, a.Src.Addr().String()+">"+a.Dst.Addr().String()+" "+a.First.Sub(t0).String())
		}
	}
	// The DNP3 master never polls in this test: silent 39 s after the
	// first packet, once. The HMI polls every 9 s: never.
	if want := "10.10.1.11>10.10.2.20 1h0m45s"; strings.Join(silent, ",") != want {
		t.Fatalf("silent %v, want %s", silent, want)
	}
	a := rec.alerts[0]
	if a.Title != "DNP3 conversation 10.10.1.11 to 10.10.2.20 silent for 45s" || a.Expected != "a request at least every 39s (learned gaps up to 9s)" {
		t.Errorf("title %q, expected %q", a.Title, a.Expected)
	}
	// It speaks again, then stops again: a new report.
	dn{src: mstC, dst: rtu7S, lsrc: 1, ldst: 10, fc: dnp3.FuncRead, objs: []obj{{g: 60, v: 2, rng: 6}}, at: time.Hour + 125*time.Second}.feed(e)
	for s := 130 * time.Second; s <= 200*time.Second; s += 9 * time.Second {
		poll(time.Hour + s)
	}
	n := 0
	for _, a := range rec.alerts {
		if a.Rule == "baseline-silent" && a.Count == 1 {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d silences reported, want 2 (alerts %v)", n, rec.rules())
	}
}
