package benchtool

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

type alertLog struct{ alerts []rules.Alert }

func (l *alertLog) Alert(a *rules.Alert) {
	if !a.Summary {
		l.alerts = append(l.alerts, *a)
	}
}

// replayWithPolicy runs a capture of the plant through the pipeline
// tapwatch replay assembles, with the bench policy of n rules loaded as
// replay --policy loads it, and returns the alerts (not their folded
// summaries).
func replayWithPolicy(t *testing.T, plant string, packets, n int) []rules.Alert {
	t.Helper()
	dir := t.TempDir()
	capPath, polPath := filepath.Join(dir, "plant.pcap"), filepath.Join(dir, "policy.yaml")
	if _, _, err := Generate(capPath, plant, packets, DefaultSeed); err != nil {
		t.Fatal(err)
	}
	y, err := Policy(plant, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(polPath, y, 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := pipeline.PolicyFiles{Policy: polPath}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Rules) != n || len(pol.Assets) != PolicyAssets {
		t.Fatalf("%s policy: %d rules, %d assets; want %d and %d", plant, len(pol.Rules), len(pol.Assets), n, PolicyAssets)
	}
	log := &alertLog{}
	asm, err := pipeline.Assemble(pipeline.Setup{Policy: pol, Sinks: pipeline.Sinks{Alerts: []pipeline.AlertSink{log}}})
	if err != nil {
		t.Fatal(err)
	}
	src := capture.OpenFiles(capPath)
	defer src.Close()
	if _, err := asm.Replay(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	return log.alerts
}

// TestPolicySite replays a site capture with the 500-rule policy: every
// alert is about the rogue host (its writes, its sweep, itself) or a
// DNP3 restart, and the rogue host's writes trip the policy's rules.
func TestPolicySite(t *testing.T) {
	alerts := replayWithPolicy(t, PlantSite, 100000, DefaultRules)
	byRule := map[string]int{}
	for _, a := range alerts {
		byRule[a.Rule]++
		rogue := a.Src.Addr() == pcapgen.SiteRogue || a.Dst.Addr() == pcapgen.SiteRogue
		if !rogue && a.Rule != "dnp3-restart" {
			t.Errorf("%s: %s (%v -> %v, frame %d)", a.Rule, a.Title, a.Src, a.Dst, a.Frame)
		}
	}
	t.Logf("%d alerts: %v", len(alerts), byRule)
	var policyRules int
	for r := range byRule {
		if strings.HasPrefix(r, "r") && !strings.Contains(r, "-") {
			policyRules++
		}
	}
	if policyRules < 2 || byRule["r9"] == 0 {
		t.Errorf("the policy's rules fired %d times; want the write rules and the link rule r9 on the rogue host", policyRules)
	}
	for _, r := range []string{"dnp3-restart", "scan-ports", "new-asset"} {
		if byRule[r] == 0 {
			t.Errorf("no %s alert", r)
		}
	}
	if len(alerts) > 100 {
		t.Errorf("%d alerts in 100,000 packets: a flood, not a few alerting hosts", len(alerts))
	}
}

// TestPolicySmall replays a small plant capture with its policy: nothing
// fires.
func TestPolicySmall(t *testing.T) {
	for _, a := range replayWithPolicy(t, PlantSmall, 30000, DefaultRules) {
		t.Errorf("%s: %s (%v -> %v, frame %d)", a.Rule, a.Title, a.Src, a.Dst, a.Frame)
	}
}
