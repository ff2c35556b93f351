package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/benchtool"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

// The HMI and the PLC of the test capture.
var hmi, plc = netip.MustParseAddrPort("10.10.1.10:49152"), netip.MustParseAddrPort("10.10.1.20:502")

func load(t *testing.T, f pipeline.PolicyFiles) *policy.Policy {
	t.Helper()
	p, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func assemble(t *testing.T, s pipeline.Setup) *pipeline.Assembly {
	t.Helper()
	a, err := pipeline.Assemble(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writesPolicy raises an alert on every Modbus write.
const writesPolicy = `version: 1
rules:
  - id: any-write
    when: {proto: modbus, op: write}
    severity: high
`

// writeCapture is the HMI polling the PLC, then writing a register.
func writeCapture(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pcapgen.NewTCPConn(w, pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: hmi.Addr(), Port: hmi.Port()},
		pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, IP: plc.Addr(), Port: plc.Port()}, 1000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() ([]int, error){
		conn.Handshake,
		func() ([]int, error) { return conn.Client(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegisters(100, 2))) },
		func() ([]int, error) {
			return conn.Server(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegistersResponse(7, 300)))
		},
		func() ([]int, error) { return conn.Client(pcapgen.MBAP(2, 1, pcapgen.WriteSingleRegister(5, 150))) },
		func() ([]int, error) { return conn.Server(pcapgen.MBAP(2, 1, pcapgen.WriteSingleRegister(5, 150))) },
		conn.Close,
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "write.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The sinks record what they get; each one appends its name to a shared
// log, so that the order across sinks shows.
type (
	alertRec struct {
		name string
		log  *[]string
		got  []*rules.Alert
	}
	assetRec struct {
		name string
		log  *[]string
		got  []*event.Asset
	}
	opsRec struct {
		name string
		log  *[]string
		n    int
	}
)

func (r *alertRec) Alert(a *rules.Alert) {
	*r.log = append(*r.log, r.name)
	r.got = append(r.got, a)
}

func (r *assetRec) Asset(a *event.Asset) {
	*r.log = append(*r.log, r.name)
	r.got = append(r.got, a)
}

func (r *opsRec) Message(*dpi.Flow, dpi.Side, any) {
	*r.log = append(*r.log, r.name)
	r.n++
}

func replayAll(t *testing.T, asm *pipeline.Assembly, path string) sensor.Summary {
	t.Helper()
	src := capture.OpenFiles(path)
	defer src.Close()
	sum, err := asm.Replay(context.Background(), src)
	if err != nil || len(sum.Errors) > 0 {
		t.Fatalf("replay: %v %v", err, sum.Errors)
	}
	return sum
}

// TestAssembleSinks: every sink of each list gets every alert, asset
// message or decoded message, in list order; without an asset sink no
// inventory is kept.
func TestAssembleSinks(t *testing.T) {
	policy := load(t, pipeline.PolicyFiles{Policy: writeFile(t, "policy.yaml", writesPolicy)})
	var log []string
	a1, a2 := &alertRec{name: "a1", log: &log}, &alertRec{name: "a2", log: &log}
	s1, s2 := &assetRec{name: "s1", log: &log}, &assetRec{name: "s2", log: &log}
	o1, o2 := &opsRec{name: "o1", log: &log}, &opsRec{name: "o2", log: &log}
	asm := assemble(t, pipeline.Setup{Policy: policy, Sinks: pipeline.Sinks{
		Alerts: []pipeline.AlertSink{a1, a2}, Assets: []pipeline.AssetSink{s1, s2}, Ops: []sensor.OpsSink{o1, o2}}})
	if asm.Inventory == nil || asm.Learner != nil || asm.Policy != policy {
		t.Fatalf("inventory %v, learner %v, policy %p (want %p)", asm.Inventory, asm.Learner, asm.Policy, policy)
	}
	sum := replayAll(t, asm, writeCapture(t))

	if len(a1.got) != 1 || a1.got[0].Rule != "any-write" || len(a2.got) != 1 || a2.got[0] != a1.got[0] {
		t.Errorf("alerts: a1 %d, a2 %d; want the one any-write alert in both", len(a1.got), len(a2.got))
	}
	if len(s1.got) < 2 || len(s2.got) != len(s1.got) {
		t.Errorf("assets: s1 %d, s2 %d; want the HMI and the PLC at least, in both", len(s1.got), len(s2.got))
	}
	if want := int(sum.Messages.Messages); o1.n != want || o2.n != want {
		t.Errorf("ops: o1 %d, o2 %d messages; want %d each", o1.n, o2.n, want)
	}
	// Each list in order: a2 right after a1, s2 after s1, o2 after o1.
	for i, name := range log {
		if next := map[string]string{"a1": "a2", "s1": "s2", "o1": "o2"}[name]; next != "" && (i+1 >= len(log) || log[i+1] != next) {
			t.Fatalf("log %v: %s at %d is not followed by %s", log, name, i, next)
		}
	}

	bare := assemble(t, pipeline.Setup{})
	if bare.Inventory != nil || bare.Policy == nil {
		t.Errorf("no asset sinks: inventory %v; policy %v, want the built-in one", bare.Inventory, bare.Policy)
	}
}

// TestAssemblyRebuild: an engine rebuilt from changed files takes the old
// one's place, with the same sinks.
func TestAssemblyRebuild(t *testing.T) {
	path := writeFile(t, "policy.yaml", writesPolicy)
	files := pipeline.PolicyFiles{Policy: path}
	var log []string
	rec := &alertRec{name: "a", log: &log}
	asm := assemble(t, pipeline.Setup{Policy: load(t, files),
		Sinks: pipeline.Sinks{Alerts: []pipeline.AlertSink{rec}}})
	pcap := writeCapture(t)
	replayAll(t, asm, pcap)
	if len(rec.got) != 1 {
		t.Fatalf("%d alerts, want 1", len(rec.got))
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(writesPolicy, "op: write", "op: read")), 0o644); err != nil {
		t.Fatal(err)
	}
	e, p, err := asm.Rebuild(files)
	if err != nil {
		t.Fatal(err)
	}
	asm.SetEngine(e, p)
	if asm.Engine != e || asm.Policy != p {
		t.Fatalf("the new engine and policy are not in place")
	}
	rec.got = nil
	replayAll(t, asm, pcap)
	if len(rec.got) != 1 || rec.got[0].FC != 3 {
		t.Errorf("after the rebuild: %d alerts, want 1 on the read (fc 3)", len(rec.got))
	}
}

// TestAssemblyLearning: the learner learns next to the engine until
// StopLearning takes it out.
func TestAssemblyLearning(t *testing.T) {
	asm := assemble(t, pipeline.Setup{Learn: true})
	l := asm.Learner
	if l == nil {
		t.Fatal("no learner")
	}
	pcap := writeCapture(t)
	replayAll(t, asm, pcap)
	n := l.Stats().Requests
	if n != 2 {
		t.Fatalf("learned %d requests, want 2", n)
	}
	if links := l.Baseline(0).Baseline.Links; len(links) == 0 {
		t.Error("the learner alone learned no link: it hears no network event")
	}
	// Beside another ops sink, in the fan, it hears them too.
	fan := assemble(t, pipeline.Setup{Learn: true, Sinks: pipeline.Sinks{Ops: []sensor.OpsSink{sensor.NewOpsWriter(io.Discard)}}})
	replayAll(t, fan, pcap)
	if links := fan.Learner.Baseline(0).Baseline.Links; len(links) == 0 {
		t.Error("the learner in a fan of ops sinks learned no link")
	}
	asm.StopLearning()
	replayAll(t, asm, pcap)
	if asm.Learner != nil || l.Stats().Requests != n {
		t.Errorf("after StopLearning: learner %v, %d requests learned (want %d)", asm.Learner, l.Stats().Requests, n)
	}
}

// TestPolicyFilesLoad: which baseline wins, and errors that name the file.
func TestPolicyFilesLoad(t *testing.T) {
	policyFile := writeFile(t, "policy.yaml", writesPolicy)
	src := capture.OpenFiles(writeCapture(t))
	l, _, err := pipeline.Learn(context.Background(), src, dpi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	learned := l.Baseline(0)
	var text bytes.Buffer
	learned.Format(&text)
	baseline := writeFile(t, "baseline.yaml", text.String())

	p := load(t, pipeline.PolicyFiles{})
	if len(p.Rules) != 0 || p.Baseline != nil || len(p.Detectors) == 0 {
		t.Errorf("no files: %d rules, baseline %v, %d detectors; want the built-in detectors only", len(p.Rules), p.Baseline, len(p.Detectors))
	}
	p = load(t, pipeline.PolicyFiles{Policy: policyFile, Learned: learned, LearnedFile: "learned.yaml"})
	if len(p.Rules) != 1 || p.Baseline != learned.Baseline {
		t.Errorf("policy and learned: %d rules, baseline %p; want 1 rule and the learned baseline", len(p.Rules), p.Baseline)
	}
	p = load(t, pipeline.PolicyFiles{Policy: policyFile, Baseline: baseline, Learned: learned})
	if p.Baseline == nil || p.Baseline == learned.Baseline {
		t.Errorf("a baseline file and learned: want the file's baseline")
	}
	// Of a baseline file, only its baseline and assets are taken, with a
	// policy or without one.
	withRule := writeFile(t, "with-rule.yaml", strings.Replace(text.String(), "rules: []\n", strings.TrimPrefix(writesPolicy, "version: 1\n"), 1))
	if p, err := policy.Load(withRule); err != nil || p.Rules == nil {
		t.Fatalf("the baseline file with a rule: %v", err)
	}
	p = load(t, pipeline.PolicyFiles{Baseline: withRule})
	if len(p.Rules) != 0 || p.Baseline == nil || len(p.Assets) == 0 {
		t.Errorf("a baseline file with a rule: %d rules, baseline %v, %d assets; want no rules, its baseline and assets", len(p.Rules), p.Baseline != nil, len(p.Assets))
	}

	for _, c := range []struct {
		files      pipeline.PolicyFiles
		what, path string
	}{
		{pipeline.PolicyFiles{Policy: filepath.Join(t.TempDir(), "none.yaml")}, "policy", "none.yaml"},
		{pipeline.PolicyFiles{Baseline: policyFile}, "baseline", "policy.yaml"}, // no baseline section
		{pipeline.PolicyFiles{Learned: policy.New(), LearnedFile: "learned.yaml"}, "baseline", "learned.yaml"},
	} {
		_, err := c.files.Load()
		var fe *pipeline.FileError
		if !errors.As(err, &fe) || fe.What != c.what || !strings.HasSuffix(fe.Path, c.path) ||
			!strings.HasPrefix(err.Error(), c.what+" "+fe.Path+": ") {
			t.Errorf("%+v: error %v; want a %s error naming %s", c.files, err, c.what, c.path)
		}
	}
	_, err = pipeline.PolicyFiles{Policy: filepath.Join(t.TempDir(), "none.yaml")}.Load()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing policy: %v does not unwrap to fs.ErrNotExist", err)
	}
}

type fakePublisher struct {
	keys   []uint64
	firsts []bool
	rules  []string
}

func (p *fakePublisher) Alert(a *event.Alert, key uint64, first bool) {
	p.keys, p.firsts, p.rules = append(p.keys, key), append(p.firsts, first), append(p.rules, a.Rule)
}

// TestPublishAlerts: an alert goes to the publisher as the wire's, with
// the engine's id as its key; its folded repeats are not first.
func TestPublishAlerts(t *testing.T) {
	p := &fakePublisher{}
	s := pipeline.PublishAlerts(p)
	s.Alert(&rules.Alert{ID: 7, Rule: "r", Severity: policy.SeverityHigh, Count: 1})
	s.Alert(&rules.Alert{ID: 7, Rule: "r", Severity: policy.SeverityHigh, Count: 5, Summary: true})
	s.Alert(&rules.Alert{ID: 8, Rule: rules.BudgetRule, Severity: policy.SeverityMedium, Count: 40})
	if want := []bool{true, false, true}; !equal(p.firsts, want) || p.keys[0] != 7 || p.keys[1] != 7 || p.keys[2] != 8 || p.rules[2] != rules.BudgetRule {
		t.Errorf("keys %v, first %v, rules %v; want 7 7 8, %v", p.keys, p.firsts, p.rules, want)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type nopAlerts struct{}

func (nopAlerts) Alert(*rules.Alert) {}

type nopAssets struct{}

func (nopAssets) Asset(*event.Asset) {}

type nopOps struct{}

func (nopOps) Message(*dpi.Flow, dpi.Side, any) {}

// TestAssembledAllocs: with lists of sinks, a message that matches
// nothing allocates nothing on its way through the engine, the
// inventory and the sinks.
func TestAssembledAllocs(t *testing.T) {
	asm := assemble(t, pipeline.Setup{Sinks: pipeline.Sinks{
		Alerts: []pipeline.AlertSink{nopAlerts{}, nopAlerts{}}, Assets: []pipeline.AssetSink{nopAssets{}, nopAssets{}},
		Ops: []sensor.OpsSink{nopOps{}, nopOps{}}}})
	f := dpi.Flow{Transport: dpi.TCP, App: dpi.AppModbus, Client: hmi, Server: plc}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := modbus.Message{Meta: modbus.Meta{Time: now, Frame: 4}, Dir: modbus.Request, TID: 1, Unit: 1, FC: 3,
		HasAddr: true, Addr: 100, Count: 2, PDU: []byte{3, 0, 100, 0, 2}}
	asm.Pipe.Message(&f, dpi.FromClient, &m)
	if n := testing.AllocsPerRun(1000, func() {
		m.Frame++
		asm.Pipe.Message(&f, dpi.FromClient, &m)
	}); n != 0 {
		t.Errorf("%v allocations per message, want 0", n)
	}
}

// TestLoadFreesGarbage: loading a large policy makes megabytes of
// garbage; Load gives it back to the system, so that the engine's tables
// made next do not land on retained pages that the allocator would zero
// and so touch (docs/performance.md, peak RSS). The load runs in a
// fresh process, where no other test's heap or goroutines blur the
// figure.
func TestLoadFreesGarbage(t *testing.T) {
	if path := os.Getenv("TAPWATCH_LOAD_PROBE"); path != "" {
		pol, err := (pipeline.PolicyFiles{Policy: path}).Load()
		if err != nil {
			t.Fatal(err)
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		runtime.KeepAlive(pol)
		t.Logf("after loading %d rules: %d KiB live on the heap, %d KiB of heap in use, %d KiB free kept", len(pol.Rules), m.HeapAlloc>>10, m.HeapInuse>>10, (m.HeapIdle-m.HeapReleased)>>10)
		if kept := m.HeapIdle - m.HeapReleased; kept > 1<<20 {
			t.Errorf("after loading %d rules, %d KiB of free heap kept from the system, want under 1 MiB", len(pol.Rules), kept>>10)
		}
		return
	}
	y, err := benchtool.Policy("site", 500)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, y, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadFreesGarbage$", "-test.v")
	cmd.Env = append(os.Environ(), "TAPWATCH_LOAD_PROBE="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLoadFreesGarbage") {
		t.Fatalf("the load in a fresh process: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "after loading") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

// TestLoadRestoresGC: loading a policy collects garbage more often
// (loadGCPercent; between the pieces of a large file, with the pacing
// off) and then gives the collector back its setting, or leaves a more
// frugal one alone.
func TestLoadRestoresGC(t *testing.T) {
	small := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(small, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := sitePolicyFile(t, t.TempDir(), 200)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, path := range []string{small, big} {
		for _, before := range []int{100, 5, -1} {
			debug.SetGCPercent(before)
			if _, err := (pipeline.PolicyFiles{Policy: path}).Load(); err != nil {
				t.Fatal(err)
			}
			if after := debug.SetGCPercent(before); after != before {
				t.Errorf("%s: GOGC %d before the load, %d after", filepath.Base(path), before, after)
			}
		}
	}
}

// TestLoadCollectsBetweenPieces: a policy large enough to be parsed in
// pieces is collected between them, by forced collections, as many in
// every load of it (one more at most: what the rest of the process
// allocates meanwhile counts too). Read without the YAML parser, 500
// rules leave too little garbage for more than one collection in their
// pieces, and 2,000 only three or four on a 32-bit board, whose words
// are half as large; 4,000 leave seven there, eleven on amd64.
func TestLoadCollectsBetweenPieces(t *testing.T) {
	path := sitePolicyFile(t, t.TempDir(), 4000)
	forced := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	var n []uint64
	for range 3 {
		before := forced()
		if _, err := (pipeline.PolicyFiles{Policy: path}).Load(); err != nil {
			t.Fatal(err)
		}
		n = append(n, forced()-before)
	}
	// One is the load's last, which gives the garbage back to the system.
	if slices.Min(n) < 4 || slices.Max(n)-slices.Min(n) > 1 {
		t.Errorf("forced collections in three loads of 4,000 rules: %v, want the same, several", n)
	}
}

// TestConcurrentLoadsRestoreGC: loads on two goroutines at once leave the
// collector as they found it. Each load changes the process's setting:
// one that started while the other had the pacing off would save that
// and, finishing last, put it back.
func TestConcurrentLoadsRestoreGC(t *testing.T) {
	dir := t.TempDir()
	paths := []string{sitePolicyFile(t, dir, 100), sitePolicyFile(t, dir, 400)}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for trial := range 8 {
		done := make(chan error, 2)
		for i, p := range paths {
			go func() {
				time.Sleep(time.Duration(i*trial) * time.Millisecond)
				_, err := (pipeline.PolicyFiles{Policy: p}).Load()
				done <- err
			}()
		}
		for range paths {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if after := debug.SetGCPercent(100); after != 100 {
			t.Fatalf("trial %d: GOGC %d after two loads at once, want 100", trial, after)
		}
	}
}

// sitePolicyFile writes the bench's policy of n rules (parsed in pieces
// from 60: over 16 KiB) into dir and returns its path.
func sitePolicyFile(t *testing.T, dir string, n int) string {
	t.Helper()
	y, err := benchtool.Policy("site", n)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("site%d.yaml", n))
	if err := os.WriteFile(p, y, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
