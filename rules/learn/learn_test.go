package learn

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
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
)

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

// Hosts, as ip:port, those of the rules package's tests.
const (
	hmiC  = "10.10.1.10:50000"
	plc1S = "10.10.1.20:502"
	mstC  = "10.10.1.11:40000"
	rtu7S = "10.10.2.20:20000"
)

// msg is one decoded message and the flow it came on, as the dpi engine
// hands it to a dpi.Handler.
type msg struct {
	f    *dpi.Flow
	from dpi.Side
	m    any
}

func (x msg) to(h dpi.Handler) { h.Message(x.f, x.from, x.m) }

// mbReq is a Modbus request from src to dst; vals are written from addr.
func mbReq(src, dst string, at time.Duration, unit, fc uint8, addr, count uint16, vals ...uint16) msg {
	f := &dpi.Flow{ID: 1, Transport: dpi.TCP, App: proto.Modbus,
		Client: netip.MustParseAddrPort(src), Server: netip.MustParseAddrPort(dst)}
	m := &modbus.Message{Dir: modbus.Request, Unit: unit, FC: fc, Values: vals, HasAddr: true, Addr: addr, Count: count,
		PDU: []byte{fc, byte(addr >> 8), byte(addr), 0, byte(count)}}
	m.Time, m.Frame = t0.Add(at), 7
	return msg{f, dpi.FromClient, m}
}

// dnReq is a DNP3 request from src to dst, link address 1 to 10, with
// one object header.
func dnReq(src, dst string, at time.Duration, fc uint8, h dnp3.ObjectHeader, pts ...dnp3.Point) msg {
	f := &dpi.Flow{ID: 2, Transport: dpi.TCP, App: proto.DNP3,
		Client: netip.MustParseAddrPort(src), Server: netip.MustParseAddrPort(dst)}
	m := &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Request, FC: fc,
		Link: dnp3.LinkHeader{Src: 1, Dst: 10}, Fragment: []byte{0xC0, fc}}
	m.Time, m.Frame = t0.Add(at), 9
	h.NumPoints = len(pts)
	m.Objects = []dnp3.ObjectHeader{h}
	m.Points = pts
	return msg{f, dpi.FromClient, m}
}

// normalOps is the normal behaviour of the tests, the same as the rules
// package's: the HMI polls and writes PLC 1, the DNP3 master polls and
// operates RTU 7.
func normalOps() []msg {
	var ms []msg
	for i := range 6 {
		at := time.Duration(i) * 10 * time.Second
		ms = append(ms,
			mbReq(hmiC, plc1S, at, 1, 3, 0, 10),
			mbReq(hmiC, plc1S, at+time.Second, 1, 6, 5, 1, uint16(120+12*i)),
			dnReq(mstC, rtu7S, at, dnp3.FuncRead, dnp3.ObjectHeader{Group: 60, Variation: 2, Range: 6}),
			dnReq(mstC, rtu7S, at+time.Second, dnp3.FuncDirectOperate, dnp3.ObjectHeader{Group: 41, Variation: 2, Prefix: 1, Range: 7, Count: 1},
				dnp3.Point{Index: 2, Value: 50 + float64(i)}))
	}
	return ms
}

func feed(h dpi.Handler, ms []msg) {
	for _, m := range ms {
		m.to(h)
	}
}

// golden is the baseline the rules package's tests enforce as what the
// learner writes for normalOps.
func golden(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Load("../testdata/learned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func format(p *policy.Policy) string {
	var b bytes.Buffer
	p.Format(&b)
	return b.String()
}

// TestLearnerWritesGolden: from the normal operations, the learner writes
// the assets and the baseline the rules tests enforce, and the file it
// writes reads back the same.
func TestLearnerWritesGolden(t *testing.T) {
	l := New(Options{})
	feed(l, normalOps())
	p := l.Baseline(0.1)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	want := golden(t)
	if !reflect.DeepEqual(p.Assets, want.Assets) || !reflect.DeepEqual(p.Baseline, want.Baseline) {
		t.Errorf("learned:\n%s\nwant (../testdata/learned.yaml):\n%s", format(p), format(want))
	}
	q, err := policy.Parse([]byte(format(p)), "learned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if format(q) != format(p) {
		t.Errorf("the learned file does not read back the same:\n%s\n---\n%s", format(p), format(q))
	}
	if st := l.Stats(); st.Requests != uint64(len(normalOps())) || !st.First.Equal(t0) || st.Last.Before(st.First) {
		t.Errorf("stats %+v", st)
	}
}

// TestLearnerOnlyRequests: a response in no learned conversation teaches
// nothing.
func TestLearnerOnlyRequests(t *testing.T) {
	l := New(Options{})
	r := mbReq(hmiC, plc1S, 0, 1, 3, 0, 10)
	r.m.(*modbus.Message).Dir = modbus.Response
	r.f.Client, r.f.Server = r.f.Server, r.f.Client
	r.from = dpi.FromServer
	r.to(l)
	if st := l.Stats(); st.Requests != 0 || len(l.Baseline(0).Assets) != 0 {
		t.Errorf("a response was learned: %+v", st)
	}
}

func TestLearnerBounded(t *testing.T) {
	l := New(Options{MaxHosts: 8, MaxPairs: 3, MaxRanges: 4, MaxValues: 5})
	for i := range 200 {
		// Many hosts and pairs, scattered addresses and values.
		src := fmt.Sprintf("10.10.5.%d:5000", i%50)
		mbReq(src, plc1S, 0, 1, 6, uint16(i*37%1000), 1, uint16(i)).to(l)
		mbReq(hmiC, plc1S, 0, 1, 6, uint16(i*13%5000), 1, uint16(i)).to(l)
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

// TestLearnerResume: a learning period interrupted halfway and resumed
// from its checkpoint (Baseline(0), written and read back as a file)
// learns what an uninterrupted one learns.
func TestLearnerResume(t *testing.T) {
	ops := normalOps()
	whole := New(Options{})
	feed(whole, ops)

	first := New(Options{})
	feed(first, ops[:len(ops)/2])
	cp, err := policy.Parse([]byte(format(first.Baseline(0))), "learning.yaml")
	if err != nil {
		t.Fatalf("checkpoint does not load: %v", err)
	}
	resumed := New(Options{})
	resumed.Resume(cp)
	feed(resumed, ops[len(ops)/2:])

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
		// Neither half has policy.MinPollRequests requests: the
		// polling rhythm is learned by the uninterrupted learner only.
		if wp.Baseline.Conversations[i].MaxGap != 9*time.Second || rp.Baseline.Conversations[i].MaxGap != 0 {
			t.Errorf("conversation %d: max gap %v uninterrupted, %v resumed; want 9s and none", i, wp.Baseline.Conversations[i].MaxGap, rp.Baseline.Conversations[i].MaxGap)
		}
		wp.Baseline.Conversations[i].MaxGap = 0
	}
	if want, got := format(wp), format(rp); want != got {
		t.Errorf("resumed learning differs.\nuninterrupted:\n%s\nresumed:\n%s", want, got)
	}
	// A checkpoint with a polling rhythm keeps it.
	full, err := policy.Parse([]byte(format(whole.Baseline(0))), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	again := New(Options{})
	again.Resume(full)
	if g := again.Baseline(0).Baseline.Conversations[0].MaxGap; g != 9*time.Second {
		t.Errorf("resumed from a checkpoint with max_gap 9s: %v", g)
	}
	// Resuming from nothing, or from a policy without a baseline, is a no-op.
	empty := New(Options{})
	empty.Resume(nil)
	empty.Resume(policy.New())
	if b := empty.Baseline(0); len(b.Assets) != 0 || len(b.Baseline.Conversations) != 0 {
		t.Errorf("resume from nothing learned %+v", b)
	}
}

// toyProto is a protocol the learner has no adapter for by default.
var toyProto = proto.New("toy-learn", "Toy")

// toyAdapter is the part of a rules.Adapter the learner calls: every
// message is a read with function code 1.
type toyAdapter struct{ rules.Adapter }

func (toyAdapter) Proto() proto.ID { return toyProto }

func (toyAdapter) Op(op *rules.Op, f *dpi.Flow, from dpi.Side, m any) rules.Use {
	*op = rules.Op{Time: m.(time.Time), Proto: toyProto, Flow: f, Src: f.Client, Dst: f.Server, Request: true, FC: 1, Class: policy.OpRead}
	return rules.UseRules
}

func (toyAdapter) Learn(*rules.Op, rules.Learned) {}

// TestLearnerAdapters: the learner learns the conversations of a
// protocol it has an adapter for, and ignores one it has none for.
func TestLearnerAdapters(t *testing.T) {
	f := &dpi.Flow{ID: 3, Transport: dpi.TCP, App: toyProto,
		Client: netip.MustParseAddrPort("10.10.1.10:40000"), Server: netip.MustParseAddrPort("10.10.1.50:7777")}
	plain := New(Options{})
	plain.Message(f, dpi.FromClient, t0)
	if plain.Stats().Requests != 0 {
		t.Error("learned a protocol without an adapter")
	}
	l := New(Options{Adapters: []rules.Adapter{toyAdapter{}}})
	l.Message(f, dpi.FromClient, t0)
	feed(l, normalOps()[:1])
	p := l.Baseline(0)
	if l.Stats().Requests != 2 || p.Asset("device-10-10-1-50") == nil || p.Asset("plc-10-10-1-20") == nil {
		t.Fatalf("learned %d requests:\n%s", l.Stats().Requests, format(p))
	}
	cs := p.Baseline.Conversations
	if len(cs) != 2 || cs[1].Proto != toyProto || !cs[1].FC.Has(1) || cs[1].FC.Len() != 1 {
		t.Errorf("conversations %+v, want Modbus then the toy one with fc 1", cs)
	}
}

// recorder collects alerts.
type recorder struct{ alerts []*rules.Alert }

func (r *recorder) Alert(a *rules.Alert) { r.alerts = append(r.alerts, a) }

func (r *recorder) ids() string {
	var ids []string
	for _, a := range r.alerts {
		ids = append(ids, a.Rule)
	}
	return strings.Join(ids, ",")
}

// TestEngineLearnMode: an engine with rules.EngineOptions.Learn and a
// Learner learns, then enforces what it learned, in one pass.
func TestEngineLearnMode(t *testing.T) {
	rec := &recorder{}
	e, err := rules.NewEngine(policy.New(), rec, rules.EngineOptions{Learn: time.Minute, Learner: New(Options{})})
	if err != nil {
		t.Fatal(err)
	}
	feed(e, normalOps())
	if !e.Learning() || len(rec.alerts) != 0 {
		t.Fatalf("learning %v, alerts %v", e.Learning(), rec.ids())
	}
	// Within the learned range once widened by the default margin: quiet.
	mbReq(hmiC, plc1S, 2*time.Minute, 1, 6, 5, 1, 150).to(e)
	if e.Learning() || e.Learned() == nil {
		t.Fatal("still learning")
	}
	if len(rec.alerts) != 0 {
		t.Fatalf("a learned write fired %s", rec.ids())
	}
	mbReq(hmiC, plc1S, 2*time.Minute+time.Second, 1, 6, 5, 1, 900).to(e)
	if got := rec.ids(); got != "baseline-value-range" {
		t.Errorf("fired %q", got)
	}
}

// TestObserveNoAllocs: learning a request of a known conversation,
// address and value allocates nothing.
func TestObserveNoAllocs(t *testing.T) {
	l := New(Options{})
	ops := normalOps()
	feed(l, ops)
	allocs := testing.AllocsPerRun(1000, func() { feed(l, ops[:4]) })
	if allocs != 0 {
		t.Errorf("%v allocations per 4 known requests", allocs)
	}
}
