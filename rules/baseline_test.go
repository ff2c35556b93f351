package rules

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/sim"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// learnFeed hands the test's ops straight to a Learner, so that each
// learned fact can be checked on its own; an Engine in learning mode feeds
// its Learner the same way.
type learnFeed struct{ l *Learner }

func (lf learnFeed) feedAll(fs ...feeder) {
	e, _ := NewEngine(nil, &recorder{}, EngineOptions{})
	for _, f := range fs {
		f.feed(e)
		lf.l.Observe(&e.op)
	}
}

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

func learned(t *testing.T) *policy.Policy {
	t.Helper()
	l := NewLearner(LearnerOptions{})
	learnFeed{l}.feedAll(normalOps()...)
	p := l.Baseline(0.1)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLearnerFacts(t *testing.T) {
	p := learned(t)
	names := []string{}
	for _, a := range p.Assets {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "master-10-10-1-10,master-10-10-1-11,plc-10-10-1-20,outstation-10-10-2-20" {
		t.Errorf("assets %s", got)
	}
	if a := p.Asset("plc-10-10-1-20"); a == nil || !a.Units.Has(1) || a.Units.Len() != 1 {
		t.Errorf("plc units: %+v", a)
	}
	if a := p.Asset("outstation-10-10-2-20"); a == nil || !reflect.DeepEqual(a.DNP3, policy.Ranges{{Lo: 10, Hi: 10}}) {
		t.Errorf("outstation links: %+v", a)
	}
	b := p.Baseline
	if len(b.Conversations) != 2 {
		t.Fatalf("%d conversations", len(b.Conversations))
	}
	m := b.Conversations[0]
	if m.Proto != proto.Modbus || !m.FC.Has(3) || !m.FC.Has(6) || m.FC.Len() != 2 {
		t.Errorf("modbus fc: %v", m.FC)
	}
	if !reflect.DeepEqual(m.Read[policy.TableHoldingRegisters], policy.Ranges{{Lo: 0, Hi: 9}}) || !reflect.DeepEqual(m.Write[policy.TableHoldingRegisters], policy.Ranges{{Lo: 5, Hi: 5}}) {
		t.Errorf("ranges: read %v write %v", m.Read, m.Write)
	}
	if len(m.Values) != 1 || m.Values[0] != (policy.ValueRange{Table: policy.TableHoldingRegisters, At: 5, Min: 120, Max: 180}) {
		t.Errorf("values %+v", m.Values)
	}
	if m.WritesPerMinute != 6 {
		t.Errorf("writes per minute %d, want 6", m.WritesPerMinute)
	}
	d := b.Conversations[1]
	if d.Proto != proto.DNP3 || !d.FC.Has(dnp3.FuncRead) || !d.FC.Has(dnp3.FuncDirectOperate) {
		t.Errorf("dnp3 fc %v", d.FC)
	}
	want := []policy.ObjectPoints{{GroupVar: policy.GroupVar{Group: 41, Var: 2}, Points: policy.Ranges{{Lo: 2, Hi: 2}}}, {GroupVar: policy.GroupVar{Group: 60, Var: 2}}}
	if !reflect.DeepEqual(d.Objects, want) {
		t.Errorf("objects %+v", d.Objects)
	}
	if len(d.Values) != 1 || d.Values[0] != (policy.ValueRange{Group: 41, At: 2, Min: 50, Max: 55}) {
		t.Errorf("dnp3 values %+v", d.Values)
	}
	if bd := b.Widen(&m.Values[0]); bd != (policy.Bounds{Min: 114, Max: 186}) {
		t.Errorf("widened %v, want 114..186", bd)
	}
	if bd := b.Widen(&d.Values[0]); bd != (policy.Bounds{Min: 49, Max: 56}) {
		t.Errorf("widened %v, want 49..56 (margin at least 1)", bd)
	}
}

func TestLearnerBounded(t *testing.T) {
	l := NewLearner(LearnerOptions{MaxHosts: 8, MaxPairs: 3, MaxRanges: 4, MaxValues: 5})
	e, _ := NewEngine(nil, &recorder{}, EngineOptions{})
	for i := range 200 {
		src := fmt.Sprintf("10.10.5.%d:5000", i%50)
		// Many hosts and pairs, scattered addresses and values.
		mb{src: src, dst: plc1S, unit: 1, fc: 6, addr: uint16(i * 37 % 1000), count: 1, vals: []uint16{uint16(i)}}.feed(e)
		l.Observe(&e.op)
		mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: uint16(i * 13 % 5000), count: 1, vals: []uint16{uint16(i)}}.feed(e)
		l.Observe(&e.op)
	}
	if len(l.hosts) > 8 || len(l.pairs) > 3 {
		t.Errorf("%d hosts, %d pairs", len(l.hosts), len(l.pairs))
	}
	for _, p := range l.pairs {
		if n := len(p.write[policy.TableHoldingRegisters]); n > 4 {
			t.Errorf("%d ranges", n)
		}
		if len(p.values) > 5 {
			t.Errorf("%d values", len(p.values))
		}
	}
	st := l.Stats()
	if st.DroppedPairs == 0 && st.DroppedHosts == 0 || st.DroppedValues == 0 || st.MergedRanges == 0 {
		t.Errorf("stats %+v", st)
	}
	if err := l.Baseline(0.1).Validate(); err != nil {
		t.Error(err)
	}
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

// TestEngineLearnMode: with EngineOptions.Learn the engine learns, then
// enforces what it learned, in one pass.
func TestEngineLearnMode(t *testing.T) {
	p := policy.New()
	rec := &recorder{}
	e, err := NewEngine(p, rec, EngineOptions{Learn: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range normalOps() {
		f.feed(e)
	}
	if !e.Learning() || len(rec.alerts) != 0 {
		t.Fatalf("learning %v, alerts %v", e.Learning(), rec.rules())
	}
	w := mb{src: hmiC, dst: plc1S, unit: 1, fc: 6, addr: 5, count: 1, vals: []uint16{900}, at: 2 * time.Minute}
	w.feed(e)
	if e.Learning() || e.Learned() == nil {
		t.Fatal("still learning")
	}
	if got := strings.Join(rec.rules(), ","); got != "baseline-value-range" {
		t.Errorf("fired %q", got)
	}
}

// TestBaselineNoAllocs: a request that fits the baseline allocates
// nothing.
func TestBaselineNoAllocs(t *testing.T) {
	e, rec := baselineEngine(t)
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

// simBaselineGaps are the (attack kind, baseline detector) pairs that the
// baseline cannot catch, with the reason. The test fails when one is
// caught after all.
var simBaselineGaps = map[string]string{}

// TestSimBaseline learns over each scenario's learning period in the same
// pass (EngineOptions.Learn), then checks that every labelled attack is
// caught by each baseline detector its truth names, and that no baseline
// detector fires outside the attacks.
func TestSimBaseline(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			simBaseline(t, seed)
		})
	}
}

func simBaseline(t *testing.T, seed int64) {
	truth, rec, e := replaySim(t, seed, func(truth *sim.Truth) (*policy.Policy, EngineOptions) {
		return policy.New(), EngineOptions{Learn: truth.LearnEnd.Sub(truth.Start)}
	})
	if e.Learned() == nil {
		t.Fatal("the learning period never ended")
	}
	scoreSim(t, seed, truth, rec, "baseline", BaselineIDs(), simBaselineGaps)
}

func mbMessage(unit, fc uint8, addr, count uint16, vals []uint16) *modbus.Message {
	return &modbus.Message{Dir: modbus.Request, Unit: unit, FC: fc, HasAddr: true, Addr: addr, Count: count, Values: vals, PDU: []byte{fc}}
}

// TestLearnerResume: a learning period interrupted halfway and resumed
// from its checkpoint (Baseline(0), written and read back as a file)
// learns what an uninterrupted one learns.
func TestLearnerResume(t *testing.T) {
	ops := normalOps()
	whole := NewLearner(LearnerOptions{})
	learnFeed{whole}.feedAll(ops...)

	first := NewLearner(LearnerOptions{})
	learnFeed{first}.feedAll(ops[:len(ops)/2]...)
	var buf bytes.Buffer
	first.Baseline(0).Format(&buf)
	cp, err := policy.Parse(buf.Bytes(), "learning.yaml")
	if err != nil {
		t.Fatalf("checkpoint does not load: %v\n%s", err, buf.String())
	}
	resumed := NewLearner(LearnerOptions{})
	resumed.Resume(cp)
	learnFeed{resumed}.feedAll(ops[len(ops)/2:]...)

	// The count of writes in the minute the checkpoint cut is not kept:
	// the busiest minute is counted on each side of the restart.
	wp, rp := whole.Baseline(0.1), resumed.Baseline(0.1)
	if len(wp.Baseline.Conversations) != len(rp.Baseline.Conversations) {
		t.Fatalf("%d conversations resumed, want %d", len(rp.Baseline.Conversations), len(wp.Baseline.Conversations))
	}
	for i := range rp.Baseline.Conversations {
		if got := rp.Baseline.Conversations[i].WritesPerMinute; got != 3 {
			t.Errorf("conversation %d: %d writes per minute after the resume, want 3 (each half's)", i, got)
		}
		wp.Baseline.Conversations[i].WritesPerMinute = 0
		rp.Baseline.Conversations[i].WritesPerMinute = 0
	}
	var want, got bytes.Buffer
	wp.Format(&want)
	rp.Format(&got)
	if want.String() != got.String() {
		t.Errorf("resumed learning differs.\nuninterrupted:\n%s\nresumed:\n%s", want.String(), got.String())
	}
	// Resuming from nothing, or from a policy without a baseline, is a no-op.
	empty := NewLearner(LearnerOptions{})
	empty.Resume(nil)
	empty.Resume(policy.New())
	if b := empty.Baseline(0); len(b.Assets) != 0 || len(b.Baseline.Conversations) != 0 {
		t.Errorf("resume from nothing learned %+v", b)
	}
}
