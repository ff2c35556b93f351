package hw

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/board"
	"github.com/tapwatch/tapwatch/config"
)

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func loadConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tapwatch.yaml")
	if err := os.WriteFile(path, []byte("interfaces: [eth0]\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPlanDetect: the profile comes from the device tree's model under
// proc_root, and its pins fill what the config leaves empty.
func TestPlanDetect(t *testing.T) {
	proc := t.TempDir()
	os.Mkdir(filepath.Join(proc, "device-tree"), 0o755)
	os.WriteFile(filepath.Join(proc, board.ModelFile), []byte("Raspberry Pi 5 Model B Rev 1.0\x00"), 0o644)
	cfg := loadConfig(t, "hardware: {proc_root: "+proc+", leds: {alert: GPIO26}, relays: {health: none}}\n")
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Profile.Name != "pi5" || !p.Detected || p.Model != "Raspberry Pi 5 Model B Rev 1.0" {
		t.Errorf("profile %s detected %v model %q", p.Profile.Name, p.Detected, p.Model)
	}
	want := [numFns]string{"GPIO17", "GPIO27", "GPIO22", "GPIO26", "", "GPIO24", "GPIO16", ""}
	for fn, pin := range p.Pins {
		if pin.Spec != want[fn] {
			t.Errorf("%s: %q, want %q", fnNames[fn], pin.Spec, want[fn])
		}
	}
	if !p.Pins[FnAlert].FromConfig || p.Pins[FnRun].FromConfig || strings.Join(p.Pins[FnBoard].Candidates, ",") != "led:ACT,led:led0" {
		t.Errorf("pins %+v", p.Pins)
	}
	if p.Watchdog != "/dev/watchdog" || len(p.Warnings) != 0 {
		t.Errorf("watchdog %q warnings %v", p.Watchdog, p.Warnings)
	}
	var b strings.Builder
	p.Describe(&b)
	for _, s := range []string{"pi5 (Raspberry Pi 5", `detected from the model "Raspberry Pi 5 Model B Rev 1.0"`,
		"ALERT LED:                GPIO26 (config)", "RUN LED:                  GPIO17 (profile)", "health relay:             not wired",
		"board LED (mirrors RUN):  led:ACT or led:led0 (profile)", "hardware watchdog:        /dev/watchdog"} {
		if !strings.Contains(squash(b.String()), squash(s)) {
			t.Errorf("describe lacks %q:\n%s", s, b.String())
		}
	}
}

// TestPlanConflicts: two functions on one pin is an error at the config
// field that made it; reserved and off-header pins are warnings.
func TestPlanConflicts(t *testing.T) {
	cfg := loadConfig(t, "hardware:\n  board: pi4\n  leds:\n    link: GPIO17\n  relays: {alarm: GPIO14, health: GPIO40}\n")
	_, err := NewPlan(cfg)
	if err == nil {
		t.Fatal("GPIO17 twice: no error")
	}
	if !strings.Contains(err.Error(), "tapwatch.yaml:5:11: hardware.leds.link: GPIO17: the RUN LED and the LINK LED are both on it") {
		t.Errorf("error: %v", err)
	}
	cfg = loadConfig(t, "hardware:\n  board: pi4\n  relays: {alarm: GPIO14, health: GPIO40}\n")
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(p.Warnings, "\n")
	if !strings.Contains(w, "alarm relay: GPIO14 is usually the serial console TX on a pi4") || !strings.Contains(w, "health relay: GPIO40 is not on the pi4's pin header") {
		t.Errorf("warnings: %s", w)
	}
	// The profile's own pin taken by the config is reported at the config's
	// field, not the profile's function.
	cfg = loadConfig(t, "hardware:\n  board: pi4\n  relays:\n    health: GPIO24\n")
	if _, err := NewPlan(cfg); err == nil || !strings.Contains(err.Error(), "hardware.relays.health: GPIO24: the button and the health relay") {
		t.Errorf("error: %v", err)
	}
	// Board none: nothing wired, no watchdog.
	cfg = loadConfig(t, "hardware: {board: none}\n")
	p, err = NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for fn, pin := range p.Pins {
		if len(pin.specs()) > 0 {
			t.Errorf("board none: %s on %v", fnNames[fn], pin.specs())
		}
	}
	if p.Watchdog != "" {
		t.Errorf("board none: watchdog %q", p.Watchdog)
	}
}

// squash collapses runs of spaces, for comparing aligned text.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
