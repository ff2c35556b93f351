package rules

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/sim"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
)

// simGrace is how long after an attack's last frame an alert still counts
// as being about it: a folded summary or a rate that tips late.
const simGrace = 2 * time.Second

// simKnownGaps are the (attack kind, detector) pairs the built-in
// detectors cannot catch yet, with the reason. The test fails when one of
// them is caught after all, so that the list stays true.
// A detector that does not exist yet is not scored; its gaps wait here
// for it.
var simKnownGaps = map[string]string{}

// TestSimScenarios replays generated scenarios through the pipeline with
// the built-in detectors (assets: the scenario's hosts; no rules) and
// checks that each labelled attack is caught by every built-in detector
// its truth names, and that no built-in detector fires outside the
// attacks.
func TestSimScenarios(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			simScenario(t, seed)
		})
	}
}

func simScenario(t *testing.T, seed int64) {
	p := policy.New()
	truth, rec, _ := replaySim(t, seed, func(truth *sim.Truth) (*policy.Policy, EngineOptions) {
		for _, h := range truth.Hosts {
			p.Assets = append(p.Assets, policy.Asset{Name: h.Name, Prefixes: []netip.Prefix{netip.PrefixFrom(h.Addr, h.Addr.BitLen())}})
		}
		return p, EngineOptions{}
	})
	scoreSim(t, seed, truth, rec, "built-in", BuiltinIDs(), simKnownGaps)
	if testing.Verbose() {
		builtin := idSet(BuiltinIDs())
		var b strings.Builder
		for _, a := range rec.alerts {
			if builtin[a.Rule] && a.Count == 1 {
				b.WriteString("  " + a.Rule + ": " + a.Title + "\n")
			}
		}
		t.Logf("alerts:\n%s", b.String())
	}
}

// replaySim generates the scenario of seed (a 2-minute learning period,
// then every attack kind) and replays it through the pipeline with an
// engine built by setup.
func replaySim(t *testing.T, seed int64, setup func(*sim.Truth) (*policy.Policy, EngineOptions)) (*sim.Truth, *recorder, *Engine) {
	t.Helper()
	var buf bytes.Buffer
	truth, err := sim.Generate(&buf, sim.Scenario{Seed: seed, Learn: 2 * time.Minute, Monitor: time.Duration(len(sim.Kinds())) * sim.MinAttackSlot})
	if err != nil {
		t.Fatal(err)
	}
	p, opts := setup(truth)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e, err := NewEngine(p, rec, opts)
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
	return truth, rec, e
}

func idSet(ids []string) map[string]bool {
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// scoreSim checks the alerts of the detectors in ids against the truth:
// every labelled attack that names one of them is caught by it within the
// attack (but for the known gaps, which must stay gaps), and none of them
// fires outside an attack. It logs the figures.
func scoreSim(t *testing.T, seed int64, truth *sim.Truth, rec *recorder, kind string, ids []string, gaps map[string]string) {
	t.Helper()
	want := idSet(ids)
	// caught[i][id]: attack i was caught by detector id.
	caught := make([]map[string]bool, len(truth.Attacks))
	for i := range caught {
		caught[i] = map[string]bool{}
	}
	var fp []string
	alerts := 0
	for _, a := range rec.alerts {
		if !want[a.Rule] || a.Count > 1 {
			continue // folded summaries repeat an alert already counted
		}
		alerts++
		// The capture keeps microseconds, the truth nanoseconds: an alert
		// on an attack's first frame is up to 1µs before its Start.
		at := truth.Find(a.First.Add(time.Microsecond), a.Src.Addr(), a.Dst.Addr(), simGrace)
		if at == nil {
			fp = append(fp, a.Rule+": "+a.Title+" (expected "+a.Expected+") at "+a.First.Sub(truth.Start).String())
			continue
		}
		for i := range truth.Attacks {
			if &truth.Attacks[i] == at {
				caught[i][a.Rule] = true
			}
		}
	}
	expected, detected := 0, 0
	for i, at := range truth.Attacks {
		for _, id := range at.Detectors {
			if !want[id] {
				continue
			}
			key := string(at.Kind) + "/" + id
			gap, isGap := gaps[key]
			switch {
			case isGap && caught[i][id]:
				t.Errorf("%s: caught, but listed as a known gap (%s): remove it from the list", key, gap)
			case isGap:
				t.Logf("known gap %s: %s", key, gap)
				continue
			case !caught[i][id]:
				t.Errorf("%s missed (%s, %v to %v)", key, at.Desc, at.Src, at.Dst)
			}
			expected++
			if caught[i][id] {
				detected++
			}
		}
	}
	for _, f := range fp {
		t.Errorf("false positive: %s", f)
	}
	t.Logf("seed %d: %d attacks; %s detections %d/%d (known gaps excluded); %d %s alerts, %d false positives",
		seed, len(truth.Attacks), kind, detected, expected, alerts, kind, len(fp))
}
