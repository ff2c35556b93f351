package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/sim"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// TestLearnAndReplayBaseline: learn writes a baseline from a capture of
// normal traffic; replay --baseline enforces it and replay --learn does
// both in one pass.
func TestLearnAndReplayBaseline(t *testing.T) {
	dir := t.TempDir()
	normal := filepath.Join(dir, "normal.pcap")
	var buf bytes.Buffer
	truth, err := sim.Generate(&buf, sim.Scenario{Seed: 1, Learn: 2 * time.Minute, Monitor: sim.MinAttackSlot, Attacks: []sim.Kind{sim.SetpointOutOfRange}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(normal, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "baseline.yaml")
	var out, errb bytes.Buffer
	if code := run([]string{"learn", "-o", base, normal}, &out, &errb); code != 0 {
		t.Fatalf("learn: exit %d: %s", code, errb.String())
	}
	p, err := policy.Load(base)
	if err != nil || p.Baseline == nil || len(p.Baseline.Conversations) == 0 {
		t.Fatalf("baseline: %v", err)
	}
	// The whole capture was learned, attack included: nothing to report.
	out.Reset()
	if code := run([]string{"replay", "--baseline", base, "--fail-on", "high", normal}, &out, &errb); code != 0 {
		t.Errorf("replay --baseline: exit %d: %s%s", code, out.String(), errb.String())
	}
	// Learning over the learning period only catches the setpoint.
	out.Reset()
	d := truth.LearnEnd.Sub(truth.Start).String()
	code := run([]string{"replay", "--learn", d, "--fail-on", "high", normal}, &out, &errb)
	if code != 3 || !strings.Contains(out.String(), `"baseline-value-range"`) {
		t.Errorf("replay --learn: exit %d: %s%s", code, out.String(), errb.String())
	}
	if code := run([]string{"replay", "--learn", d, "--baseline", base, normal}, &out, &errb); code != 2 {
		t.Errorf("--learn with --baseline: exit %d", code)
	}
}
