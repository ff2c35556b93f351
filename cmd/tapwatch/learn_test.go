package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	if strings.Contains(errb.String(), "warning") {
		t.Errorf("replay --learn %s: %s", d, errb.String())
	}
	if code := run([]string{"replay", "--learn", d, "--baseline", base, normal}, &out, &errb); code != 2 {
		t.Errorf("--learn with --baseline: exit %d", code)
	}
	// Learning longer than the capture: it says that nothing was monitored.
	errb.Reset()
	if code := run([]string{"replay", "--learn", "24h", normal}, &out, &errb); code != 0 ||
		!strings.Contains(errb.String(), "tapwatch: warning: the capture ended before --learn 24h0m0s did: it was all learned, and no baseline was enforced") {
		t.Errorf("replay --learn 24h: exit %d: %s", code, errb.String())
	}
}

// TestLearnKeepsCaptures: learn -o refuses to overwrite a capture, one it
// learns from (a glob after -o: learn -o week*.pcap) or another, and the
// capture is left as it was.
func TestLearnKeepsCaptures(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if _, err := sim.Generate(&buf, sim.Scenario{Seed: 1, Learn: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "week_1.pcap"), filepath.Join(dir, "week_2.pcap")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"learn", "-o", a, b}, "-o " + a + " is a capture file: refusing to overwrite it"},
		{[]string{"learn", "-o", b, b}, "-o " + b + " is one of the capture files to learn from"},
		{[]string{"learn", "-o", a, a, b}, "-o " + a + " is one of the capture files to learn from"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
	for _, f := range []string{a, b} {
		if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("%s changed: %v", f, err)
		}
	}
	// A FIFO (or /dev/stdout on a pipe) is written, not read to see
	// whether it holds a capture: that read would wait forever.
	fifo := filepath.Join(dir, "out.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo) // waits for the writer
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	done := make(chan int, 1)
	var errf bytes.Buffer
	go func() { done <- run([]string{"learn", "-o", fifo, a}, io.Discard, &errf) }()
	select {
	case code := <-done:
		if b := <-got; code != 0 || !bytes.Contains(b, []byte("rules:")) {
			t.Errorf("learn -o FIFO: exit %d, %s; read %q", code, errf.String(), b)
		}
	case <-time.After(20 * time.Second):
		os.WriteFile(fifo, nil, 0o600) // let a read that waits for a writer go
		t.Fatal("learn -o FIFO: still running after 20 s (reading its output?)")
	}
	// A baseline is overwritten as before.
	base := filepath.Join(dir, "baseline.yaml")
	for range 2 {
		var out, errb bytes.Buffer
		if code := run([]string{"learn", "-o", base, a}, &out, &errb); code != 0 {
			t.Fatalf("learn: exit %d: %s", code, errb.String())
		}
	}
}
