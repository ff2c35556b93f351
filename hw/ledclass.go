package hw

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tapwatch/tapwatch/internal/atomicfile"
	"periph.io/x/conn/v3/gpio"
)

// LEDClass is an LED of the Linux LED class (/sys/class/leds/NAME), such
// as a Pi's green ACT LED. Opening it writes "none" to its trigger, so
// that the kernel stops driving it (on a Pi, from SD card activity); Close
// gives the trigger back.
//
// While it is taken, the trigger it had is also kept in a file of the
// state dir: after a crash (kill -9, no Close) the kernel still shows
// "none", and the next start would otherwise take that for the LED's own
// trigger and leave the LED dark for good.
type LEDClass struct {
	name, dir string
	on        []byte // max_brightness
	trigger   string // the trigger it had
	kept      string // the state file keeping trigger; "" when there is no state dir
}

// OpenLEDClass takes the LED class LED name under sysRoot (usually /sys),
// keeping its trigger in stateDir ("": in memory only).
func OpenLEDClass(sysRoot, name, stateDir string) (*LEDClass, error) {
	l := &LEDClass{name: name, dir: filepath.Join(sysRoot, "class", "leds", name), on: []byte("1")}
	if _, err := os.Stat(filepath.Join(l.dir, "brightness")); err != nil {
		return nil, fmt.Errorf("led:%s: %w", name, err)
	}
	if b, err := os.ReadFile(filepath.Join(l.dir, "max_brightness")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			l.on = []byte(strconv.Itoa(n))
		}
	}
	b, err := os.ReadFile(filepath.Join(l.dir, "trigger"))
	if err != nil {
		return nil, fmt.Errorf("led:%s: %w", name, err)
	}
	var offered []string
	l.trigger, offered = parseTriggers(string(b))
	if stateDir != "" {
		l.kept = filepath.Join(stateDir, "led-"+name+".trigger")
		if err := l.keep(offered); err != nil {
			return nil, err
		}
	}
	if err := l.write("trigger", []byte("none")); err != nil {
		if l.kept != "" {
			os.Remove(l.kept)
		}
		return nil, err
	}
	return l, nil
}

// keep reconciles the trigger with the kept one: "none" now with a kept
// trigger the kernel still offers is what a crash left, so the kept one
// is the LED's own; any other trigger now is the LED's own (a reboot
// gave it back, or someone set it) and is kept from here on.
func (l *LEDClass) keep(offered []string) error {
	if l.trigger == "none" {
		b, err := os.ReadFile(l.kept)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("led:%s: its trigger kept from before: %w", l.name, err)
		default:
			if t := strings.TrimSpace(string(b)); t != "none" && slices.Contains(offered, t) {
				l.trigger = t
			}
		}
	}
	if l.trigger == "" || l.trigger == "none" {
		return nil
	}
	// Readable by all: tapwatch leds, run by root, may leave it for the
	// daemon, run as user tapwatch.
	err := os.MkdirAll(filepath.Dir(l.kept), 0o750)
	if err == nil {
		err = atomicfile.Write(l.kept, []byte(l.trigger+"\n"), 0o644)
	}
	if err != nil {
		return fmt.Errorf("led:%s: keeping its trigger %s: %w (not taken, so that a crash cannot leave it dark)", l.name, l.trigger, err)
	}
	return nil
}

// parseTriggers reads a trigger file: "none [mmc0] timer" is the current
// trigger mmc0, of none, mmc0 and timer.
func parseTriggers(s string) (current string, offered []string) {
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			w = strings.Trim(w, "[]")
			current = w
		}
		offered = append(offered, w)
	}
	return current, offered
}

func (l *LEDClass) write(file string, data []byte) error {
	// Opened each time with truncation: sysfs takes each write whole, and a
	// fixture file ends up holding the last value only.
	if err := os.WriteFile(filepath.Join(l.dir, file), data, 0o644); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("led:%s: %w (the package's udev rule gives group gpio write access)", l.name, err)
		}
		return fmt.Errorf("led:%s: %w", l.name, err)
	}
	return nil
}

// Out lights the LED (High) or darkens it.
func (l *LEDClass) Out(v gpio.Level) error {
	if v {
		return l.write("brightness", l.on)
	}
	return l.write("brightness", []byte("0"))
}

func (l *LEDClass) String() string { return "led:" + l.name }

// Close gives the LED back to the trigger it had, then forgets the kept
// trigger (when the trigger cannot be given back it stays kept, for the
// next start).
func (l *LEDClass) Close() error {
	if l.trigger != "" && l.trigger != "none" {
		if err := l.write("trigger", []byte(l.trigger)); err != nil {
			return err
		}
	}
	if l.kept != "" {
		if err := os.Remove(l.kept); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("led:%s: %w", l.name, err)
		}
	}
	return nil
}
