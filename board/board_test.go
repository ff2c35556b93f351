package board

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestProfilesLoad(t *testing.T) {
	want := []string{"pi-zero", "pi-zero-2w", "pi3", "pi4", "pi5", "cm4", GenericARM, Lab}
	got := Names()
	if len(got) != len(want) {
		t.Fatalf("profiles %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("profiles %v, want %v", got, want)
		}
	}
	for _, p := range All() {
		if p.Title == "" || p.Capture == "" {
			t.Errorf("%s: no title or capture interface", p.Name)
		}
		if len(p.Models) > 0 { // a Pi: every function wired, on its header, none on a reserved pin
			pins := map[string]string{}
			for fn, pin := range map[string]string{"run": p.LEDs.Run, "link": p.LEDs.Link, "uplink": p.LEDs.Uplink,
				"alert": p.LEDs.Alert, "button": p.Button, "alarm": p.Relays.Alarm, "health": p.Relays.Health} {
				if pin == "" || pin == None {
					t.Errorf("%s: %s not wired", p.Name, fn)
				}
				if other, dup := pins[pin]; dup {
					t.Errorf("%s: %s and %s both on %s", p.Name, fn, other, pin)
				}
				pins[pin] = fn
				if !p.OnHeader(pin) {
					t.Errorf("%s: %s on %s, not on the header", p.Name, fn, pin)
				}
				if why, ok := p.Reserved[pin]; ok {
					t.Errorf("%s: %s on %s, reserved for %s", p.Name, fn, pin, why)
				}
			}
			if len(p.LEDs.Board) == 0 || p.Watchdog != "/dev/watchdog" {
				t.Errorf("%s: no board LED or watchdog", p.Name)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown key": "- {name: a, capture: eth0, watchdog: none, arch: arm64, colour: red}",
		"duplicate":   "- {name: a, capture: eth0, watchdog: none, arch: arm64}\n- {name: a, capture: eth0, watchdog: none, arch: arm64}",
		"no capture":  "- {name: a, watchdog: none, arch: arm64}",
		"named none":  "- {name: none, capture: eth0, watchdog: none, arch: arm64}",
		"no fallback": "- {name: a, capture: eth0, watchdog: none, arch: arm64}",
	} {
		if _, err := parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Model strings as the boards' device trees give them (NUL-terminated).
func TestDetect(t *testing.T) {
	for model, want := range map[string]string{
		"Raspberry Pi Zero W Rev 1.1":            "pi-zero",
		"Raspberry Pi Zero Rev 1.3":              "pi-zero",
		"Raspberry Pi Model B Plus Rev 1.2":      "pi-zero",
		"Raspberry Pi Zero 2 W Rev 1.0":          "pi-zero-2w",
		"Raspberry Pi 3 Model B Plus Rev 1.3":    "pi3",
		"Raspberry Pi 2 Model B Rev 1.1":         "pi3",
		"Raspberry Pi 4 Model B Rev 1.5":         "pi4",
		"Raspberry Pi 400 Rev 1.0":               "pi4",
		"Raspberry Pi 5 Model B Rev 1.0":         "pi5",
		"Raspberry Pi Compute Module 5 Rev 1.0":  "pi5",
		"Raspberry Pi Compute Module 4 Rev 1.1":  "cm4",
		"Raspberry Pi Compute Module 3 Plus Rev": "pi3",
		"Pine64 RockPro64 v2.1":                  GenericARM,
		"Radxa ROCK 5B":                          GenericARM,
	} {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "device-tree"), 0o755)
		if err := os.WriteFile(filepath.Join(root, ModelFile), []byte(model+"\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
		p, got, err := Detect(root)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != want || got != model {
			t.Errorf("%q: profile %s (model %q), want %s", model, p.Name, got, want)
		}
	}
	// No device tree: the lab machine (or, on ARM, the generic board).
	p, model, err := Detect(t.TempDir())
	want := Lab
	if runtime.GOARCH == "arm" || runtime.GOARCH == "arm64" {
		want = GenericARM
	}
	if err != nil || p.Name != want || model != "" {
		t.Errorf("no device tree: %s %q %v, want %s", p.Name, model, err, want)
	}
	// An unreadable model is an error, not a guess.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, ModelFile), 0o755) // a folder: reading it fails
	if _, _, err := Detect(root); err == nil {
		t.Error("an unreadable model: no error")
	}
}
