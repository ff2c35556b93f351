package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/hw"
)

// simBox is the box's hardware for a tapwatch run in another process:
// sim pins (files) for the LEDs, the relays and the button, a fixture
// /sys/class/leds/ACT for the board LED, and a fixture watchdog device.
type simBox struct {
	dir, sim, sys, dog string
}

func newSimBox(t *testing.T) *simBox {
	t.Helper()
	b := &simBox{dir: t.TempDir()}
	b.sim, b.sys, b.dog = filepath.Join(b.dir, "sim"), filepath.Join(b.dir, "sys"), filepath.Join(b.dir, "watchdog")
	act := filepath.Join(b.sys, "class", "leds", "ACT")
	if err := os.MkdirAll(act, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(b.sim, 0o755)
	for f, v := range map[string]string{"trigger": "none [mmc0] timer heartbeat\n", "brightness": "0\n", "max_brightness": "1\n"} {
		os.WriteFile(filepath.Join(act, f), []byte(v), 0o644)
	}
	os.WriteFile(b.dog, nil, 0o600)
	return b
}

// config is the config's hardware section for it.
func (b *simBox) config() string {
	return fmt.Sprintf(`hardware:
  board: pi4
  leds: {run: sim:run, link: sim:link, uplink: sim:uplink, alert: sim:alert, board: led:ACT}
  button: {pin: sim:button}
  relays: {alarm: sim:alarm, health: sim:health}
  watchdog: %s
  panel: off
  sim_dir: %s
  sys_root: %s
`, b.dog, b.sim, b.sys)
}

func (b *simBox) level(name string) (bool, bool) {
	v, err := os.ReadFile(filepath.Join(b.sim, name))
	if err != nil {
		return false, false
	}
	return strings.TrimSpace(string(v)) == "1", true
}

// waitLevels waits until every named sim pin has its level.
func (b *simBox) waitLevels(t *testing.T, what string, within time.Duration, want map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var bad []string
		for name, w := range want {
			if v, ok := b.level(name); !ok || v != w {
				bad = append(bad, fmt.Sprintf("%s=%v (want %v)", name, v, w))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, strings.Join(bad, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitBlink waits until the pin blinks: five changes in a row alternate,
// each lit stretch between minOn and maxOn (0, 0: a heartbeat, long on
// and short off), the last of them since the wait began. Any such run
// counts, not only the latest: on a busy machine the box's process may
// stall for half a second, and the stretches around a stall are out of
// time through no fault of the box.
func (b *simBox) waitBlink(t *testing.T, name string, minOn, maxOn time.Duration) {
	t.Helper()
	since := time.Now()
	deadline := since.Add(10 * time.Second)
	for {
		ch, _ := hw.ReadSimLog(b.sim, name)
		if blinking(ch, since, minOn, maxOn) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not blink (%v to %v lit): %d changes, last %v", name, minOn, maxOn, len(ch), tailChanges(ch))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// blinking reports whether five changes in a row, the last at or after
// since, make the blink.
func blinking(ch []hw.SimChange, since time.Time, minOn, maxOn time.Duration) bool {
	const n = 5
	for end := len(ch); end >= n && !ch[end-1].At.Before(since); end-- {
		if blinks(ch[end-n:end], minOn, maxOn) {
			return true
		}
	}
	return false
}

func blinks(run []hw.SimChange, minOn, maxOn time.Duration) bool {
	for i := 1; i < len(run); i++ {
		if run[i].On == run[i-1].On {
			return false
		}
		d := run[i].At.Sub(run[i-1].At)
		switch {
		case minOn == 0 && run[i-1].On: // heartbeat: long on
			if d < time.Second {
				return false
			}
		case minOn == 0: // heartbeat: short off
			if d > 300*time.Millisecond {
				return false
			}
		case run[i-1].On && (d < minOn || d > maxOn):
			return false
		}
	}
	return true
}

func tailChanges(ch []hw.SimChange) []hw.SimChange {
	return ch[max(0, len(ch)-12):]
}

// still checks that the pin does not change for d.
func (b *simBox) still(t *testing.T, name string, d time.Duration) {
	t.Helper()
	before, _ := hw.ReadSimLog(b.sim, name)
	time.Sleep(d)
	after, _ := hw.ReadSimLog(b.sim, name)
	if len(after) != len(before) {
		t.Errorf("%s changed %d times in %v: %v", name, len(after)-len(before), d, tailChanges(after))
	}
}

// press holds the button (active low: the file reads 0) for d.
func (b *simBox) press(t *testing.T, d time.Duration) {
	t.Helper()
	path := filepath.Join(b.sim, "button")
	if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkStopped checks the board LED and the watchdog after a clean stop.
func (b *simBox) checkStopped(t *testing.T) {
	t.Helper()
	act := filepath.Join(b.sys, "class", "leds", "ACT")
	if tr, _ := os.ReadFile(filepath.Join(act, "trigger")); strings.TrimSpace(string(tr)) != "mmc0" {
		t.Errorf("ACT trigger after the stop: %q, want mmc0 back", tr)
	}
	if v, _ := os.ReadFile(filepath.Join(act, "brightness")); strings.TrimSpace(string(v)) != "0" {
		t.Errorf("ACT lit after the stop: %q", v)
	}
	dog, _ := os.ReadFile(b.dog)
	if len(dog) < 3 || !strings.HasSuffix(string(dog), "V") || strings.Count(string(dog), "V") != 1 {
		t.Errorf("watchdog got %q: want pings and one V at the end", dog)
	}
}

// TestLedsShow: tapwatch leds --show holds the patterns on the config's
// pins for the time given, then turns everything off, and gives the board
// LED its trigger back, also the one kept in the state dir by a run that
// crashed; bad lists are usage errors.
func TestLedsShow(t *testing.T) {
	b := newSimBox(t)
	cfg := filepath.Join(b.dir, "tapwatch.yaml")
	state := filepath.Join(b.dir, "state")
	os.WriteFile(cfg, []byte("interfaces: [eth0]\nstate_dir: "+state+"\n"+b.config()), 0o644)
	r := tapwatch("leds", "-c", cfg, "--show", "run=on,link=fast,alert=slow,health=on", "--for", "600ms")
	if r.code != 0 || !strings.Contains(r.stdout, "board pi4; RUN sim:run, LINK sim:link, UPLINK sim:uplink, ALERT sim:alert, board LED led:ACT, button sim:button, alarm relay sim:alarm, health relay sim:health") {
		t.Fatalf("leds --show: %v", r)
	}
	for name, want := range map[string]int{"run": 2, "uplink": 1, "alarm": 1, "health": 2} {
		ch, _ := hw.ReadSimLog(b.sim, name)
		if len(ch) != want {
			t.Errorf("%s: %d changes, want %d: %v", name, len(ch), want, ch)
		}
	}
	if ch, _ := hw.ReadSimLog(b.sim, "link"); len(ch) < 3 {
		t.Errorf("link: %d changes in 600 ms of fast blink", len(ch))
	}
	for _, name := range []string{"run", "link", "uplink", "alert", "alarm", "health"} {
		if v, _ := b.level(name); v {
			t.Errorf("%s on after the end", name)
		}
	}
	if b, _ := os.ReadFile(b.dog); len(b) != 0 {
		t.Errorf("leds armed the watchdog: %q", b)
	}
	trigger := filepath.Join(b.sys, "class", "leds", "ACT", "trigger")
	if tr, _ := os.ReadFile(trigger); string(tr) != "mmc0" {
		t.Errorf("ACT trigger after leds: %q, want mmc0 back", tr)
	}
	// A run that crashed left the trigger at none and kept mmc0.
	os.WriteFile(trigger, []byte("[none] mmc0 timer heartbeat\n"), 0o644)
	os.WriteFile(filepath.Join(state, "led-ACT.trigger"), []byte("mmc0\n"), 0o644)
	if r := tapwatch("leds", "-c", cfg, "--show", "run=on", "--for", "100ms"); r.code != 0 {
		t.Fatalf("leds after a crash: %v", r)
	}
	if tr, _ := os.ReadFile(trigger); string(tr) != "mmc0" {
		t.Errorf("ACT trigger after a crash and leds: %q, want mmc0 back", tr)
	}
	for _, bad := range []string{"run=blue", "fan=on", "alarm=slow", "run"} {
		if r := tapwatch("leds", "-c", cfg, "--show", bad); r.code != 2 {
			t.Errorf("--show %s: %v", bad, r)
		}
	}
}

// The blink check itself: a slow blink passes, also with a stall's
// broken stretches before it; a fast blink, a stall's stretches alone
// and a blink that ended before the wait do not.
func TestBlinking(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	seq := func(ms ...int) []hw.SimChange { // alternating, lit first
		var ch []hw.SimChange
		for i, m := range ms {
			ch = append(ch, hw.SimChange{At: t0.Add(time.Duration(m) * time.Millisecond), On: i%2 == 0})
		}
		return ch
	}
	const lo, hi = 350 * time.Millisecond, 750 * time.Millisecond
	for _, c := range []struct {
		name  string
		ch    []hw.SimChange
		since int // ms
		want  bool
	}{
		{"slow", seq(0, 500, 1000, 1500, 2000, 2500), 1000, true},
		{"slow after a stall", seq(0, 1500, 1550, 1850, 2350, 2850, 3350, 3850), 1000, true},
		// Blinking when the wait began, a stall's stretches since.
		{"slow, then a stall", seq(0, 500, 1000, 1500, 2000, 2500, 3000, 3052, 3350), 1000, true},
		// What a CI run recorded: a 650 ms stall put a 52 ms dark
		// flicker and a 298 ms lit stretch among the last five.
		{"a stall's stretches", seq(0, 1500, 1550, 1850, 2350, 2850), 1000, false},
		{"fast", seq(0, 125, 250, 375, 500, 625, 750), 0, false},
		{"ended before the wait", seq(0, 500, 1000, 1500, 2000), 2500, false},
		{"too few", seq(0, 500, 1000, 1500), 0, false},
	} {
		if got := blinking(c.ch, t0.Add(time.Duration(c.since)*time.Millisecond), lo, hi); got != c.want {
			t.Errorf("%s: blinking %v, want %v", c.name, got, c.want)
		}
	}
	// The heartbeat: long on, short dark.
	if !blinking(seq(0, 1900, 2000, 3900, 4000), t0, 0, 0) || blinking(seq(0, 500, 1000, 1500, 2000), t0, 0, 0) {
		t.Error("heartbeat misjudged")
	}
}
