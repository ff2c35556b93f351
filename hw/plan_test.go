package hw

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/board"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testFields are the config's fields of the functions' pins, as
// cmd/tapwatch names them.
var testFields = [NumFns]string{"hardware.leds.run", "hardware.leds.link", "hardware.leds.uplink", "hardware.leds.alert",
	"hardware.leds.board", "hardware.button.pin", "hardware.relays.alarm", "hardware.relays.health"}

// testConfig is a Config on the board profile name with the config's
// defaults and the given pins, by function.
func testConfig(name string, pins map[int]string) Config {
	c := Config{Board: Setting{Value: name, Field: "hardware.board"}, ButtonActiveLow: true, AlarmAt: LevelHigh,
		Panel: PanelAuto, SysRoot: "/sys", DevRoot: "/dev", ProcRoot: "/proc"}
	for fn := range NumFns {
		c.Pins[fn] = Setting{Value: pins[fn], Field: testFields[fn]}
	}
	return c
}

// TestPlanDetect: the profile comes from the device tree's model under
// proc_root, and its pins fill what the config leaves empty.
func TestPlanDetect(t *testing.T) {
	proc := t.TempDir()
	os.Mkdir(filepath.Join(proc, "device-tree"), 0o755)
	os.WriteFile(filepath.Join(proc, board.ModelFile), []byte("Raspberry Pi 5 Model B Rev 1.0\x00"), 0o644)
	cfg := testConfig(board.Auto, map[int]string{FnAlert: "GPIO26", FnHealth: "none"})
	cfg.ProcRoot = proc
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Profile.Name != "pi5" || !p.Detected || p.Model != "Raspberry Pi 5 Model B Rev 1.0" {
		t.Errorf("profile %s detected %v model %q", p.Profile.Name, p.Detected, p.Model)
	}
	want := [NumFns]string{"GPIO17", "GPIO27", "GPIO22", "GPIO26", "", "GPIO24", "GPIO16", ""}
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
	cfg := testConfig("pi4", map[int]string{FnLink: "GPIO17", FnAlarm: "GPIO14", FnHealth: "GPIO40"})
	cfg.Pins[FnLink].Line, cfg.Pins[FnLink].Column = 5, 11
	_, err := NewPlan(cfg)
	if err == nil {
		t.Fatal("GPIO17 twice: no error")
	}
	if err.Error() != `hardware.leds.link: GPIO17: the RUN LED (the pi4 profile's GPIO17) and the LINK LED (hardware.leds.link: "GPIO17", line 5 column 11) are both on it (one pin, one function)` {
		t.Errorf("error: %v", err)
	}
	// The caller's Errorf makes the errors.
	cfg.Errorf = func(field, msg string) error { return fmt.Errorf("%s says %s", field, msg) }
	if _, err := NewPlan(cfg); err == nil || !strings.HasPrefix(err.Error(), "hardware.leds.link says GPIO17: the RUN LED") {
		t.Errorf("error from Errorf: %v", err)
	}
	cfg = testConfig("pi4", map[int]string{FnAlarm: "GPIO14", FnHealth: "GPIO40"})
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
	cfg = testConfig("pi4", map[int]string{FnHealth: "GPIO24"})
	if _, err := NewPlan(cfg); err == nil || !strings.Contains(err.Error(), "hardware.relays.health: GPIO24: the button (the pi4 profile's GPIO24) and the health relay") {
		t.Errorf("error: %v", err)
	}
	// Board none: nothing wired, no watchdog.
	p, err = NewPlan(testConfig(board.None, nil))
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

// TestPlanPinAliases: a GPIO written 17, gpio17 or BCM17 is GPIO17, so
// two functions on it conflict whatever the spellings, and the error names
// both, with their places; the plan and check use the one spelling.
func TestPlanPinAliases(t *testing.T) {
	for _, c := range []struct {
		run, alarm string
		conflict   bool
	}{
		{"GPIO17", "17", true},
		{"17", "GPIO17", true},
		{"gpio17", "BCM17", true},
		{"Gpio017", "bcm17", true},
		{"BCM5", "5", true},
		{"17", "18", false},
		{"GPIO17", "GPIO170", false},
		{"led:17", "17", false},
		{"sim:17", "GPIO17", false},
	} {
		cfg := testConfig("pi4", map[int]string{FnRun: c.run, FnAlarm: c.alarm})
		cfg.Pins[FnRun].Line, cfg.Pins[FnRun].Column = 6, 10
		cfg.Pins[FnAlarm].Line, cfg.Pins[FnAlarm].Column = 8, 12
		p, err := NewPlan(cfg)
		if !c.conflict {
			if err != nil {
				t.Errorf("%s and %s: %v", c.run, c.alarm, err)
			}
			continue
		}
		want := fmt.Sprintf(`hardware.relays.alarm: %s: the RUN LED (hardware.leds.run: %q, line 6 column 10) and the alarm relay (hardware.relays.alarm: %q, line 8 column 12) are both on it (one pin, one function)`,
			board.CanonicalPin(c.run), c.run, c.alarm)
		if err == nil || err.Error() != want {
			t.Errorf("%s and %s: %v\nwant %s", c.run, c.alarm, err, want)
		}
		if p != nil {
			t.Errorf("%s and %s: a plan", c.run, c.alarm)
		}
	}
	// One spelling in the plan, the written one beside it; a reserved pin
	// is found under any spelling.
	p, err := NewPlan(testConfig("pi4", map[int]string{FnRun: "BCM26", FnLink: "14", FnUplink: "P1_15"}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Pins[FnRun].Spec != "GPIO26" || p.Pins[FnRun].Written != "BCM26" || p.Pins[FnLink].Spec != "GPIO14" {
		t.Errorf("pins %+v", p.Pins)
	}
	if w := strings.Join(p.Warnings, "\n"); !strings.Contains(w, "LINK LED: GPIO14 is usually the serial console TX") ||
		!strings.Contains(w, "UPLINK LED: P1_15 is not on the pi4's pin header (a pin is named by its GPIO line, not its place on the header") {
		t.Errorf("warnings: %s", w)
	}
	var b strings.Builder
	p.Describe(&b)
	if !strings.Contains(squash(b.String()), `RUN LED: GPIO26 (config as "BCM26")`) {
		t.Errorf("describe:\n%s", b.String())
	}
}

// TestOpenPinAliases: two functions on one line under the driver's own
// aliases, which NewPlan cannot tell apart, get the line once; the second
// is logged and left out.
func TestOpenPinAliases(t *testing.T) {
	line := &gpiotest.Pin{N: "GPIO218", Num: 218}
	if err := gpioreg.Register(line); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gpioreg.Unregister("GPIO218") })
	for _, alias := range []string{"TEST_PWM9", "TEST_SPI9"} {
		if err := gpioreg.RegisterAlias(alias, "GPIO218"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gpioreg.Unregister(alias) })
	}
	p, err := NewPlan(testConfig(board.None, map[int]string{FnRun: "GPIO218", FnButton: "TEST_SPI9", FnAlarm: "TEST_PWM9"}))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	box := p.Open(newTestLogger(&log), nil)
	defer box.Close()
	if o := box.Options; o.LEDs[Run] == nil || o.Alarm != nil || o.Button != nil {
		t.Errorf("opened %+v", o)
	}
	for _, want := range []string{"alarm relay not driven", "button not read", "TEST_PWM9 is the line GPIO218, the RUN LED's already", "TEST_SPI9 is the line GPIO218"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

// squash collapses runs of spaces, for comparing aligned text.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
