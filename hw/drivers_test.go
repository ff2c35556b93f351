package hw

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// fixtureLED makes sysRoot/class/leds/NAME as the kernel shows it.
func fixtureLED(t *testing.T, sysRoot, name, trigger, max string) string {
	t.Helper()
	dir := filepath.Join(sysRoot, "class", "leds", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"trigger": trigger, "brightness": "0\n", "max_brightness": max} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestLEDClass: the trigger is set to none before the first write, the
// brightness is max_brightness or 0, and Close gives the trigger back.
func TestLEDClass(t *testing.T) {
	sys := t.TempDir()
	dir := fixtureLED(t, sys, "ACT", "none rc-feedback kbd-scrolllock [mmc0] timer oneshot heartbeat default-on\n", "255\n")
	l, err := OpenLEDClass(sys, "ACT", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "none" {
		t.Errorf("trigger after open: %q", got)
	}
	for _, c := range []struct {
		l    gpio.Level
		want string
	}{{gpio.High, "255"}, {gpio.Low, "0"}, {gpio.High, "255"}} {
		if err := l.Out(c.l); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dir, "brightness")); got != c.want {
			t.Errorf("brightness after Out(%v): %q, want %q", c.l, got, c.want)
		}
	}
	if l.String() != "led:ACT" {
		t.Errorf("String %q", l.String())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "mmc0" {
		t.Errorf("trigger after close: %q, want mmc0 back", got)
	}

	// No max_brightness: 1. A trigger already none stays none.
	dir = fixtureLED(t, sys, "led0", "[none] mmc0", "")
	os.Remove(filepath.Join(dir, "max_brightness"))
	l, err = OpenLEDClass(sys, "led0", "")
	if err != nil {
		t.Fatal(err)
	}
	l.Out(gpio.High)
	if got := readFile(t, filepath.Join(dir, "brightness")); got != "1" {
		t.Errorf("brightness without max_brightness: %q", got)
	}
	l.Close()
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "none" {
		t.Errorf("trigger: %q", got)
	}

	// Missing LED; unwritable trigger (not root: permissions; root: a
	// folder in its place).
	if _, err := OpenLEDClass(sys, "PWR", ""); err == nil || !strings.Contains(err.Error(), "led:PWR") {
		t.Errorf("a missing LED: %v", err)
	}
	dir = fixtureLED(t, sys, "broken", "[mmc0]", "1")
	os.Remove(filepath.Join(dir, "trigger"))
	os.Mkdir(filepath.Join(dir, "trigger"), 0o755)
	if _, err := OpenLEDClass(sys, "broken", ""); err == nil {
		t.Error("an unreadable trigger: no error")
	}
}

// TestLEDClassAfterCrash: a start after a crash (no Close) finds the
// trigger at none, and gives back the trigger kept in the state dir, not
// none; a kept trigger the kernel no longer offers, or a trigger set
// since (a reboot), is not overridden; a state dir that cannot keep it
// leaves the LED alone.
func TestLEDClassAfterCrash(t *testing.T) {
	const offered = "rc-feedback kbd-scrolllock mmc0 timer oneshot heartbeat default-on"
	for _, own := range []string{"mmc0", "heartbeat"} {
		sys, state := t.TempDir(), t.TempDir()
		dir := fixtureLED(t, sys, "ACT", "none "+strings.Replace(offered, own, "["+own+"]", 1)+"\n", "1\n")
		if _, err := OpenLEDClass(sys, "ACT", state); err != nil {
			t.Fatal(err)
		}
		// The crash: no Close. The kernel shows none as the current trigger.
		os.WriteFile(filepath.Join(dir, "trigger"), []byte("[none] "+offered+"\n"), 0o644)
		l, err := OpenLEDClass(sys, "ACT", state)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dir, "trigger")); got != "none" {
			t.Errorf("%s: trigger after the second open: %q", own, got)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dir, "trigger")); got != own {
			t.Errorf("trigger after a crash, a start and a clean stop: %q, want %s", got, own)
		}
		if _, err := os.Stat(filepath.Join(state, "led-ACT.trigger")); !os.IsNotExist(err) {
			t.Errorf("%s: the kept trigger outlives a clean stop: %v", own, err)
		}
	}

	// Kept heartbeat, but the kernel now shows mmc0 (a reboot): mmc0.
	sys, state := t.TempDir(), t.TempDir()
	dir := fixtureLED(t, sys, "ACT", "none [mmc0] heartbeat", "1")
	os.WriteFile(filepath.Join(state, "led-ACT.trigger"), []byte("heartbeat\n"), 0o644)
	l, err := OpenLEDClass(sys, "ACT", state)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(state, "led-ACT.trigger")); got != "mmc0" {
		t.Errorf("kept %q, want mmc0", got)
	}
	l.Close()
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "mmc0" {
		t.Errorf("after a reboot: %q, want mmc0", got)
	}

	// Kept, but not a trigger this kernel offers: none stays none.
	fixtureLED(t, sys, "ACT", "[none] mmc0 heartbeat", "1")
	os.WriteFile(filepath.Join(state, "led-ACT.trigger"), []byte("gone-trigger\n"), 0o644)
	if l, err = OpenLEDClass(sys, "ACT", state); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "none" {
		t.Errorf("a kept trigger not offered: %q, want none", got)
	}

	// A state dir that cannot be made (a file in its place): not taken.
	fixtureLED(t, sys, "ACT", "none [mmc0] heartbeat", "1")
	notDir := filepath.Join(state, "file")
	os.WriteFile(notDir, nil, 0o644)
	if _, err := OpenLEDClass(sys, "ACT", filepath.Join(notDir, "state")); err == nil || !strings.Contains(err.Error(), "keeping its trigger mmc0") {
		t.Errorf("an unusable state dir: %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "none [mmc0] heartbeat" {
		t.Errorf("an LED not taken was changed: %q", got)
	}
}

// TestSimPins: outputs write their level and log their changes; inputs
// read the file, or their idle level without one.
func TestSimPins(t *testing.T) {
	dir := t.TempDir()
	out, err := OpenSimOut(dir, "alert")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []gpio.Level{gpio.High, gpio.Low, gpio.High} {
		if err := out.Out(l); err != nil {
			t.Fatal(err)
		}
	}
	out.Close()
	if got := readFile(t, filepath.Join(dir, "alert")); got != "1" {
		t.Errorf("level %q", got)
	}
	changes, err := ReadSimLog(dir, "alert")
	if err != nil || len(changes) != 3 || !changes[0].On || changes[1].On || !changes[2].On || changes[2].At.Before(changes[0].At) {
		t.Errorf("log %+v %v", changes, err)
	}
	in, err := OpenSimIn(dir, "button", gpio.High)
	if err != nil {
		t.Fatal(err)
	}
	if in.Read() != gpio.High {
		t.Error("no file: not idle high")
	}
	os.WriteFile(filepath.Join(dir, "button"), []byte("0\n"), 0o644)
	if in.Read() != gpio.Low {
		t.Error("0: not low")
	}
	if _, err := OpenSimIn(filepath.Join(dir, "nope"), "b", gpio.High); err == nil {
		t.Error("a missing sim_dir: no error")
	}
}

// TestPanel: colour, monochrome and line modes.
func TestPanel(t *testing.T) {
	l := Lights{LEDs: [NumLEDs]Pattern{Heartbeat, On, Slow, Fast}, Healthy: true}
	lit := [NumLEDs]bool{true, true, false, true}
	var b bytes.Buffer
	NewPanel(&b, true, true).Show(l, lit)
	s := b.String()
	if !strings.HasPrefix(s, "\r\x1b[K") || !strings.Contains(s, "\x1b[1;32m●") || !strings.Contains(s, "\x1b[2m○\x1b[0m UPLINK slow ") ||
		!strings.Contains(s, "ALERT fast ") || !strings.Contains(s, "health on") {
		t.Errorf("colour: %q", s)
	}
	b.Reset()
	NewPanel(&b, true, false).Show(l, lit)
	if s := b.String(); strings.Contains(s, "\x1b[1") || !strings.Contains(s, "# RUN heartbeat ") || !strings.Contains(s, ". UPLINK slow ") ||
		len(strings.TrimPrefix(s, "\r\x1b[K")) > 80 {
		t.Errorf("monochrome: %q", s)
	}
	b.Reset()
	p := NewPanel(&b, false, false)
	p.Show(l, lit)
	p.Show(l, [NumLEDs]bool{}) // same patterns: no line
	l.LEDs[Alert] = Off
	p.Show(l, lit)
	want := "LEDs: RUN on (heartbeat), LINK on, UPLINK slow blink, ALERT fast blink; alarm relay off, health relay on\n" +
		"LEDs: RUN on (heartbeat), LINK on, UPLINK slow blink, ALERT off; alarm relay off, health relay on\n"
	if b.String() != want {
		t.Errorf("lines:\n%s\nwant\n%s", b.String(), want)
	}
}

// TestWatchdogKeeper: pings while alive, none while not (the board would
// reset), pings again when alive again; a failing ping is logged and
// retried; the device stays armed when Run returns.
func TestWatchdogKeeper(t *testing.T) {
	dev := &FakeWatchdog{}
	var log bytes.Buffer
	w := &Watchdog{Dev: dev, Path: "/dev/watchdog", Log: newTestLogger(&log)}
	alive := make(chan bool, 1)
	alive <- true
	cur := true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, 5*time.Millisecond, func() bool {
			select {
			case cur = <-alive:
			default:
			}
			return cur
		})
	}()
	waitPings := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for dev.Pings() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d pings, want %d", dev.Pings(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitPings(5)
	alive <- false
	time.Sleep(50 * time.Millisecond)
	stalled := dev.Pings()
	time.Sleep(100 * time.Millisecond)
	if dev.Pings() != stalled {
		t.Fatalf("pinged while not alive: %d then %d", stalled, dev.Pings())
	}
	alive <- true
	waitPings(stalled + 5)
	dev.Fail(errors.New("EIO"))
	for deadline := time.Now().Add(5 * time.Second); dev.Failures() < 3; {
		if time.Now().After(deadline) {
			t.Fatal("no failed pings")
		}
		time.Sleep(time.Millisecond)
	}
	dev.Fail(nil)
	waitPings(stalled + 8)
	cancel()
	<-done
	if dev.Disarmed() {
		t.Error("Run disarmed the watchdog")
	}
	for _, want := range []string{"no more pings to the hardware watchdog", "alive again", "hardware watchdog ping"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Count(log.String(), "hardware watchdog ping") != 1 {
		t.Errorf("ping errors logged more than once:\n%s", log.String())
	}
	w.Disarm()
	if !dev.Disarmed() {
		t.Error("Disarm did not")
	}
}

// TestFileWatchdog: the kernel API's basic mode on a fixture device: a
// write per ping, never a "V" but for the disarm.
func TestFileWatchdog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog1")
	os.WriteFile(path, nil, 0o600)
	d, err := OpenWatchdog(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := d.Ping(); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, path); got != "" {
		t.Errorf("after pings: %q", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "\n\n\nV" {
		t.Errorf("device got %q, want three pings and the magic V", b)
	}
	if _, err := OpenWatchdog(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing device: no error")
	}
}

// TestPlanOpen: a config with sim pins, a fixture LED class tree and a
// fixture watchdog opens all of it; a pin that cannot open is left out
// and logged.
func TestPlanOpen(t *testing.T) {
	root := t.TempDir()
	sim := filepath.Join(root, "sim")
	os.Mkdir(sim, 0o755)
	sys := filepath.Join(root, "sys")
	fixtureLED(t, sys, "ACT", "[mmc0] none", "1")
	dev := filepath.Join(root, "dev")
	os.Mkdir(dev, 0o755)
	os.WriteFile(filepath.Join(dev, "watchdog"), nil, 0o600)
	cfg := testConfig("pi4", map[int]string{FnRun: "sim:run", FnLink: "sim:link", FnUplink: "sim:uplink", FnAlert: "sim:alert",
		FnButton: "sim:button", FnAlarm: "sim:alarm", FnHealth: "led:missing"})
	cfg.SimDir, cfg.SysRoot, cfg.DevRoot = sim, sys, dev
	cfg.StateDir = filepath.Join(root, "state")
	plan, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Watchdog != filepath.Join(dev, "watchdog") {
		t.Errorf("watchdog %q under dev_root", plan.Watchdog)
	}
	var log bytes.Buffer
	box := plan.Open(newTestLogger(&log), nil)
	if got := readFile(t, filepath.Join(cfg.StateDir, "led-ACT.trigger")); got != "mmc0" {
		t.Errorf("board LED's trigger kept: %q", got)
	}
	o := box.Options
	for i, want := range []string{"sim:run", "sim:link", "sim:uplink", "sim:alert"} {
		if o.LEDs[i] == nil || o.LEDs[i].String() != want {
			t.Errorf("LED %d: %v", i, o.LEDs[i])
		}
	}
	if o.Board == nil || o.Board.String() != "led:ACT" || o.Button == nil || o.Alarm == nil || o.Health != nil {
		t.Errorf("opened %+v", o)
	}
	if !strings.Contains(log.String(), "health relay not driven") || !strings.Contains(log.String(), "led:missing") {
		t.Errorf("log: %s", log.String())
	}
	box.Close()
	dog := plan.OpenWatchdog(newTestLogger(&log))
	if dog == nil {
		t.Fatal("no watchdog")
	}
	dog.Disarm()
	if b, _ := os.ReadFile(filepath.Join(dev, "watchdog")); string(b) != "V" {
		t.Errorf("watchdog got %q", b)
	}
}

// TestPanelWrap: a log line written through Wrap clears the panel's line
// and draws it again after.
func TestPanelWrap(t *testing.T) {
	var b bytes.Buffer
	p := NewPanel(&b, true, false)
	log := p.Wrap(&b)
	log.Write([]byte("before any panel\n"))
	p.Show(Lights{LEDs: [NumLEDs]Pattern{On}}, [NumLEDs]bool{true})
	b.Reset()
	log.Write([]byte("level=INFO msg=alert\n"))
	if s := b.String(); !strings.HasPrefix(s, "\r\x1b[Klevel=INFO msg=alert\n\r\x1b[K# RUN on") {
		t.Errorf("wrapped: %q", s)
	}
	b.Reset()
	p.End()
	p.End()
	if b.String() != "\n" {
		t.Errorf("End: %q", b.String())
	}
	var lines bytes.Buffer
	if w := NewPanel(&lines, false, false).Wrap(&lines); w != &lines {
		t.Error("a line panel wraps its writer")
	}
}
