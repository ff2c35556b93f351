package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/hw"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// TestAlarmLevel: hw ranks and names the severities as the rules do, so
// that the config's alarm severity reaches hw as the same level.
func TestAlarmLevel(t *testing.T) {
	for s := policy.SeverityInfo; s <= policy.SeverityCritical; s++ {
		if l := hw.Level(s); l.String() != s.String() {
			t.Errorf("rules severity %d is %s; hw's level %d is %s", s, s, l, l)
		}
	}
	if hw.Level(policy.SeverityInfo) != hw.LevelInfo || hw.Level(policy.SeverityCritical) != hw.LevelCritical {
		t.Error("hw's levels do not run from info to critical as the rules' do")
	}
}

// TestPanelSettings: every panel setting the config takes reaches hw as
// the one of that name.
func TestPanelSettings(t *testing.T) {
	for _, v := range []string{"auto", "on", "off", "colour"} {
		cfg := &config.Config{Interfaces: []string{"eth0"}}
		cfg.SetDefaults()
		cfg.Hardware.Panel = v
		valid := cfg.Validate() == nil
		s, ok := panelSettings[v]
		if valid != ok || (ok && s.String() != v) {
			t.Errorf("panel %q: the config takes it %v; hw has %v, %q", v, valid, ok, s)
		}
	}
}

// TestHardwarePlan: each of the config's hardware settings reaches hw
// under its own field, with its place in the file.
func TestHardwarePlan(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tapwatch.yaml")
	yaml := "interfaces: [eth0]\nstate_dir: state\nhardware:\n  board: none\n  sim_dir: sim\n  panel: on\n" +
		"  leds: {run: sim:1, link: sim:2, uplink: sim:3, alert: sim:4, board: sim:5, active_low: true}\n" +
		"  button: {pin: sim:6, active_low: false}\n  relays: {alarm: sim:7, health: sim:8, alarm_severity: medium, active_low: true}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := hardwarePlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := plan.Config
	for fn, pin := range plan.Pins {
		if want := "sim:" + string(rune('1'+fn)); pin.Spec != want || !pin.FromConfig {
			t.Errorf("function %d: %+v, want %s", fn, pin, want)
		}
	}
	if !c.LEDsActiveLow || c.ButtonActiveLow || !c.RelaysActiveLow || c.AlarmAt != hw.LevelMedium || c.Panel != hw.PanelOn ||
		c.SimDir != filepath.Join(dir, "sim") || c.StateDir != filepath.Join(dir, "state") || c.SysRoot != "/sys" || c.DevRoot != "/dev" || c.ProcRoot != "/proc" {
		t.Errorf("config %+v", c)
	}
	// Each pin's field and place: put every function on one pin in turn.
	fields := []string{"hardware.leds.run", "hardware.leds.link", "hardware.leds.uplink", "hardware.leds.alert",
		"hardware.leds.board", "hardware.button.pin", "hardware.relays.alarm", "hardware.relays.health"}
	for fn := 1; fn < hw.NumFns; fn++ {
		taken := strings.Replace(yaml, "sim:"+string(rune('1'+fn)), "sim:1", 1)
		os.WriteFile(path, []byte(taken), 0o644)
		if cfg, err = config.Load(path); err != nil {
			t.Fatal(err)
		}
		line, col := cfg.Position(fields[fn])
		_, err := hardwarePlan(cfg)
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d:%d: %s: sim:1:", path, line, col, fields[fn])+" the RUN LED (hardware.leds.run: \"sim:1\", line 7 column 15) and the ") {
			t.Errorf("%s on sim:1: %v", fields[fn], err)
		}
	}
	// A config built in code is not validated: hardwarePlan says what is
	// wrong.
	cfg = &config.Config{Interfaces: []string{"eth0"}}
	cfg.SetDefaults()
	cfg.Hardware.Board = "none"
	cfg.Hardware.Relays.AlarmSeverity = "severe"
	if _, err := hardwarePlan(cfg); err == nil || err.Error() != `config: hardware.relays.alarm_severity: "severe" is not a severity (expected info, low, medium, high or critical)` {
		t.Errorf("severity: %v", err)
	}
	cfg.Hardware.Relays.AlarmSeverity = "high"
	cfg.Hardware.Board = "pi6"
	if _, err := hardwarePlan(cfg); err == nil || err.Error() != `config: hardware.board: "pi6" is not a board profile` {
		t.Errorf("board: %v", err)
	}
}
