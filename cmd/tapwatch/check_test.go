package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/board"
	"github.com/tapwatch/tapwatch/rules"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`version: 1
assets:
  hmi:  {ip: 10.10.1.10}
  plc1: {ip: 10.10.1.20}
rules:
  - id: plc1-writes-only-from-hmi
    when: {proto: modbus, dst: plc1, op: write}
    unless: {src: hmi}
    severity: high
`), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`version: 1
rules:
  - id: no-restarts
    when: {proto: dnp3, fc: cold_restrat}
    severity: hihg
`), 0o644)

	r := tapwatch("check", "--policy", good)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("valid policy: %v", r)
	}
	// The effective policy loads again, with every detector listed.
	if _, err := rules.Parse([]byte(r.stdout), "effective"); err != nil {
		t.Errorf("the effective policy does not load: %v\n%s", err, r.stdout)
	}
	for _, d := range rules.Detectors {
		if !strings.Contains(r.stdout, d.ID) {
			t.Errorf("effective policy lacks detector %s", d.ID)
		}
	}

	r = tapwatch("check", "--policy", good, "--policy", bad)
	if r.code != 1 {
		t.Fatalf("invalid policy: %v", r)
	}
	for _, want := range []string{
		bad + ":4:29: rules[0].when.fc: \"cold_restrat\" is not a DNP3 function code (did you mean cold_restart?)",
		bad + ":5:15: rules[0].severity: \"hihg\" is not a severity (did you mean high?)",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if r := tapwatch("check", "--policy", good, "-q"); r.code != 0 || r.stdout != "" {
		t.Errorf("-q: %v", r)
	}
	if r := tapwatch("check"); r.code != 2 {
		t.Errorf("no policy: %v", r)
	}
	if r := tapwatch("check", "--policy", filepath.Join(dir, "missing.yaml")); r.code != 1 || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("missing file: %v", r)
	}
}

// TestCheckConfig: check -c validates the daemon's config, then the
// policy it names, and says what run would do.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("rules:\n  - id: w\n    when: {proto: modbus, op: write}\n    severity: low\n"), 0o644)
	cfg := filepath.Join(dir, "tapwatch.yaml")
	os.WriteFile(cfg, []byte("interfaces: [eth1, eth2]\npolicy: policy.yaml\nmode: learn\nlearn: {duration: 48h}\n"), 0o644)
	r := tapwatch("check", "-c", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("valid config: %v", r)
	}
	for _, want := range []string{"capture on eth1 and eth2", "learn for 48h0m0s", "publish nothing (no uplink)", "effective policy of " + filepath.Join(dir, "policy.yaml"), "id: w"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	os.WriteFile(cfg, []byte("interfaces: [eth1]\nmode: lurn\npolicy: policy.yaml\n"), 0o644)
	r = tapwatch("check", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, cfg+`:2:7: mode: "lurn"; want monitor or learn`) {
		t.Errorf("bad config: %v", r)
	}
	os.WriteFile(cfg, []byte("interfaces: [eth1]\npolicy: missing.yaml\n"), 0o644)
	if r = tapwatch("check", "-c", cfg); r.code != 1 || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("missing policy: %v", r)
	}
}

// TestCheckBoards: check -c on every board profile prints the profile
// and its pins; a pin conflict is an error at its line; --board with a
// name no profile has is reported with the names there are.
func TestCheckBoards(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tapwatch.yaml")
	os.WriteFile(cfg, []byte("interfaces: [eth0]\nhardware:\n  relays: {alarm_severity: critical}\n"), 0o644)
	for _, p := range board.All() {
		r := tapwatch("check", "-c", cfg, "--board", p.Name)
		if r.code != 0 {
			t.Errorf("%s: %v", p.Name, r)
			continue
		}
		out := strings.Join(strings.Fields(r.stdout), " ")
		for _, want := range []string{"# board: " + p.Name + " (" + p.Title + "), named in the config or with --board",
			"usual capture port " + p.Capture} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", p.Name, want, r.stdout)
			}
		}
		if p.LEDs.Run != board.None {
			for _, want := range []string{"# RUN LED: " + p.LEDs.Run + " (profile)", "# ALERT LED: " + p.LEDs.Alert + " (profile)",
				"# button: " + p.Button + " (profile, active low", "# alarm relay: " + p.Relays.Alarm + " (profile, on unacknowledged critical or higher)",
				"# health relay: " + p.Relays.Health + " (profile)", "# board LED (mirrors RUN): led:ACT or led:led0", "# hardware watchdog: " + p.Watchdog} {
				if !strings.Contains(out, want) {
					t.Errorf("%s: output lacks %q:\n%s", p.Name, want, r.stdout)
				}
			}
		} else if !strings.Contains(out, "# RUN LED: not wired") {
			t.Errorf("%s: RUN wired:\n%s", p.Name, r.stdout)
		}
		if strings.Contains(out, "warning:") {
			t.Errorf("%s: warnings on the profile's own pins:\n%s", p.Name, r.stdout)
		}
	}

	os.WriteFile(cfg, []byte("interfaces: [eth0]\nhardware:\n  board: pi4\n  button: {pin: \"22\"}\n"), 0o644)
	r := tapwatch("check", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, cfg+`:4:17: hardware.button.pin: GPIO22: the UPLINK LED (the pi4 profile's GPIO22) and the button (hardware.button.pin: "22", line 4 column 17) are both on it`) {
		t.Errorf("conflict: %v", r)
	}
	r = tapwatch("check", "-c", cfg, "--board", "pi6")
	if r.code != 1 || !strings.Contains(r.stderr, `hardware.board: "pi6" is not a board profile`) || !strings.Contains(r.stderr, "pi-zero-2w") {
		t.Errorf("--board pi6: %v", r)
	}
}
