package learn

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/sim"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
)

// simGrace is how long after an attack's last frame an alert still counts
// as being about it: a folded summary or a rate that tips late.
const simGrace = 2 * time.Second

// TestSimBaseline generates scenarios (a 2-minute learning period of
// normal traffic, then every attack kind), learns over the learning
// period and enforces what was learned in the same pass
// (rules.EngineOptions.Learn), then checks that every labelled attack is
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
	var buf bytes.Buffer
	truth, err := sim.Generate(&buf, sim.Scenario{Seed: seed, Learn: 2 * time.Minute, Monitor: time.Duration(len(sim.Kinds())) * sim.MinAttackSlot})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e, err := rules.NewEngine(policy.New(), rec, rules.EngineOptions{Learn: truth.LearnEnd.Sub(truth.Start), Learner: New(Options{})})
	if err != nil {
		t.Fatal(err)
	}
	src, err := capture.NewFile(&buf, "sim.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sensor.Replay(context.Background(), src, sensor.Options{Rules: e}); err != nil {
		t.Fatal(err)
	}
	if e.Learned() == nil {
		t.Fatal("the learning period never ended")
	}
	baseline := map[string]bool{}
	for _, id := range rules.BaselineIDs() {
		baseline[id] = true
	}
	caught := map[*sim.Attack]map[string]bool{}
	alerts := 0
	for _, a := range rec.alerts {
		if !baseline[a.Rule] || a.Count > 1 {
			continue // folded summaries repeat an alert already counted
		}
		alerts++
		// The capture keeps microseconds, the truth nanoseconds: an alert
		// on an attack's first frame is up to 1µs before its Start.
		at := truth.Find(a.First.Add(time.Microsecond), a.Src.Addr(), a.Dst.Addr(), simGrace)
		if at == nil {
			t.Errorf("false positive: %s: %s (expected %s) at %v", a.Rule, a.Title, a.Expected, a.First.Sub(truth.Start))
			continue
		}
		if caught[at] == nil {
			caught[at] = map[string]bool{}
		}
		caught[at][a.Rule] = true
	}
	expected, detected := 0, 0
	for i := range truth.Attacks {
		at := &truth.Attacks[i]
		for _, id := range at.Detectors {
			if !baseline[id] {
				continue
			}
			expected++
			if caught[at][id] {
				detected++
			} else {
				t.Errorf("%s/%s missed (%s, %v to %v)", at.Kind, id, at.Desc, at.Src, at.Dst)
			}
		}
	}
	if expected == 0 {
		t.Error("no attack names a baseline detector: the test checks nothing")
	}
	t.Logf("seed %d: %d attacks; baseline detections %d/%d; %d baseline alerts", seed, len(truth.Attacks), detected, expected, alerts)
}
