package sensor_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

// The toy protocol of toy_test.go gets a rules adapter here, also only in
// a test file: a line "SET <name> <value>" is a write request, "RESET" a
// restart, any other line from the client a read request. Lines from the
// server are responses, which move the engine's clock and nothing else.
type toyAdapter struct{}

func (toyAdapter) Proto() proto.ID { return toyID }

func (toyAdapter) Op(op *rules.Op, f *dpi.Flow, from dpi.Side, m any) rules.Use {
	msg, ok := m.(*toyMsg)
	if !ok {
		return rules.UseNone
	}
	*op = rules.Op{Time: msg.meta.Time, Frame: msg.meta.Frame, Proto: toyID, Flow: f,
		Src: f.Client, Dst: f.Server, Request: from == dpi.FromClient}
	if !op.Request {
		op.Src, op.Dst = f.Server, f.Client
		return rules.UseTime
	}
	switch line := string(msg.line); {
	case strings.HasPrefix(line, "SET "):
		op.FC, op.Class = 2, policy.OpWrite
	case line == "RESET":
		op.FC, op.Class = 3, policy.OpRestart
	default:
		op.FC, op.Class = 1, policy.OpRead
	}
	return rules.UseRules
}

func (toyAdapter) HasFunction(*rules.Op) bool { return true }

func (toyAdapter) Classes(fc uint8) policy.OpSet {
	switch fc {
	case 1:
		return 1 << policy.OpRead
	case 2:
		return 1 << policy.OpWrite
	case 3:
		return 1 << policy.OpRestart
	}
	return 1
}

func (toyAdapter) Match(*policy.Match, *rules.Op) bool               { return true }
func (toyAdapter) MatchPayload(*policy.Match, *rules.Op) bool        { return true }
func (toyAdapter) Endpoint(*policy.Endpoint, *rules.Op, bool) bool   { return true }
func (toyAdapter) Values(*policy.Rule, *rules.Op, *rules.Violations) {}
func (toyAdapter) Unclassed(*rules.Op) bool                          { return true }
func (toyAdapter) Device(*rules.Op) uint16                           { return 0 }
func (toyAdapter) Learn(*rules.Op, rules.Learned)                    {}
func (toyAdapter) Wire(*event.Alert, *rules.Alert)                   {}
func (toyAdapter) Alert(a *rules.Alert, op *rules.Op, _ bool) {
	a.FCName = [...]string{"", "get", "set", "reset"}[min(op.FC, 3)]
}

// wirePublisher stands where the uplink publisher stands: it encodes
// each alert as the wire's msgpack, with the header, and decodes it
// again, as the security center would.
type wirePublisher struct {
	t   *testing.T
	seq uint64
	got []*event.Alert
}

func (w *wirePublisher) Alert(a *event.Alert, _ uint64, _ bool) {
	w.seq++
	a.SetHeader("toy-sensor", "toy-site", w.seq, a.Last)
	b, err := a.MarshalMsg(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	var back event.Alert
	if _, err := back.UnmarshalMsg(b); err != nil {
		w.t.Fatal(err)
	}
	w.got = append(w.got, &back)
}

// toyCapture writes a capture of toy conversations: each client sends
// its lines, in turn, to the toy server on port 7777, which answers
// "OK" to each.
func toyCapture(t *testing.T, start time.Time, talks ...toyTalk) capture.Source {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	server := pcapgen.Endpoint{MAC: plc.MAC, IP: plc.IP, Port: 7777}
	for i, tk := range talks {
		c, err := pcapgen.NewTCPConn(w, tk.from, server, uint32(1000*i+100), uint32(1000*i+200))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		for _, line := range tk.lines {
			if _, err := c.Client([]byte(line + "\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Server([]byte("OK\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return toySource(t, w, &buf)
}

type assetFunc func(*event.Asset)

func (f assetFunc) Asset(a *event.Asset) { f(a) }

type toyTalk struct {
	from  pcapgen.Endpoint
	lines []string
}

// TestToyEndToEnd: a protocol defined only in test files (its decoder in
// toy_test.go, its rules adapter above) flows through every stage with
// no edit of a non-test file: it is decoded and written to the ops log,
// learned into a baseline file an engineer can read, its hosts enter the
// asset inventory, and, once that
// baseline and a policy rule that names it are enforced, raises alerts
// that arrive on the wire with its name, function codes and names.
func TestToyEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := dpi.Config{}
	cfg.Protocols = append(dpi.DefaultProtocols(cfg), toyProtocol())
	engine := rules.EngineOptions{Adapters: []rules.Adapter{toyAdapter{}}}
	hmiToy := pcapgen.Endpoint{MAC: hmi.MAC, IP: hmi.IP, Port: 40000}
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

	// Learning: the HMI reads and writes the toy server, and the ops log
	// gets every message.
	var ops bytes.Buffer
	opsw := sensor.NewOpsWriter(&ops)
	learnRun, err := pipeline.Assemble(pipeline.Setup{DPI: cfg, Engine: engine, Learn: true,
		Sinks: pipeline.Sinks{Ops: []sensor.OpsSink{opsw}}})
	if err != nil {
		t.Fatal(err)
	}
	train := toyCapture(t, start, toyTalk{hmiToy, []string{"GET temp", "SET temp 20", "GET temp", "GET level"}})
	sum, err := learnRun.Replay(context.Background(), train)
	if err != nil {
		t.Fatal(err)
	}
	if st := sensor.NewStats(sum.DPI, &sum.Messages, event.Severities{}, 0, nil); st.Messages["toy"] != 8 {
		t.Errorf("stats count %d toy messages, want 8 (%v)", st.Messages["toy"], st.Messages)
	}
	if err := opsw.Err(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(ops.String(), `"proto":"toy"`); n != 8 {
		t.Errorf("the ops log has %d toy lines, want 8:\n%s", n, ops.String())
	}
	if !strings.Contains(ops.String(), `"line":"SET temp 20"`) {
		t.Errorf("the ops log lacks the write:\n%s", ops.String())
	}

	// The learned baseline is a file, read back as any baseline is.
	var learned bytes.Buffer
	learnRun.Learner.Baseline(0).Format(&learned)
	for _, want := range []string{"master-10-10-1-10: {ip: 10.10.1.10}", "device-10-10-1-20: {ip: 10.10.1.20}", "proto: toy\n", "fc: [1, 2]\n", "writes_per_minute: 1\n"} {
		if !strings.Contains(learned.String(), want) {
			t.Errorf("the learned baseline lacks %q:\n%s", want, learned.String())
		}
	}
	basePath := filepath.Join(dir, "learned.yaml")
	policyPath := filepath.Join(dir, "policy.yaml")
	const policy = `version: 1
assets:
  hmi: {ip: 10.10.1.10}
  toy-server: {ip: 10.10.1.20}
rules:
  - id: toy-writes-from-the-hmi-only
    when: {proto: toy, dst: toy-server, op: write}
    unless: [{src: hmi}]
    severity: high
`
	for path, text := range map[string]string{basePath: learned.String(), policyPath: policy} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := pipeline.PolicyFiles{Policy: policyPath, Baseline: basePath}.Load()
	if err != nil {
		t.Fatal(err)
	}

	// Monitoring: what was learned stays quiet; a new function code, a
	// host that is no asset, a new master and its write raise alerts.
	wire := &wirePublisher{t: t}
	assets := map[string]string{}
	mon, err := pipeline.Assemble(pipeline.Setup{DPI: cfg, Policy: p, Engine: engine,
		Sinks: pipeline.Sinks{Alerts: []pipeline.AlertSink{pipeline.PublishAlerts(wire)},
			Assets: []pipeline.AssetSink{assetFunc(func(a *event.Asset) {
				assets[a.IP] = strings.Join(a.Roles, ",") + " " + strings.Join(a.Protocols, ",")
			})}}})
	if err != nil {
		t.Fatal(err)
	}
	rogue := pcapgen.Endpoint{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x66}, IP: netip.MustParseAddr("10.10.1.66"), Port: 41000}
	watch := toyCapture(t, start.Add(time.Hour),
		toyTalk{hmiToy, []string{"GET temp", "SET temp 21", "GET level"}},
		toyTalk{hmiToy, []string{"RESET"}},
		toyTalk{rogue, []string{"SET temp 99"}})
	if _, err := mon.Replay(context.Background(), watch); err != nil {
		t.Fatal(err)
	}
	// The inventory knows the toy's hosts and their roles.
	wantAssets := map[string]string{"10.10.1.10": "master toy", "10.10.1.20": "server toy", "10.10.1.66": "master toy"}
	if len(assets) != len(wantAssets) {
		t.Errorf("assets %v, want %v", assets, wantAssets)
	}
	for ip, want := range wantAssets {
		if assets[ip] != want {
			t.Errorf("asset %s: %q, want %q", ip, assets[ip], want)
		}
	}
	var got []string
	for _, a := range wire.got {
		fc := -1
		if a.FC != nil {
			fc = int(*a.FC)
		}
		got = append(got, a.Rule+" "+a.Proto+" "+a.Src.IP+" "+a.FCName+" "+string(rune('0'+fc)))
		if a.Sensor != "toy-sensor" || a.Seq == 0 || a.TS.IsZero() {
			t.Errorf("alert %s lacks its wire header: %+v", a.Rule, a)
		}
	}
	want := []string{
		"baseline-new-function toy 10.10.1.10 reset 3",
		"new-asset toy 10.10.1.66 set 2",
		"baseline-new-master toy 10.10.1.66 set 2",
		"toy-writes-from-the-hmi-only toy 10.10.1.66 set 2",
		// The learned network section knows neither the rogue host nor
		// its link to the device (the protocol-neutral network view).
		"baseline-new-host  10.10.1.66  /",
		"baseline-new-link  10.10.1.66  /",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alerts on the wire:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
