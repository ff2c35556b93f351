package hw

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/gpio"
)

// LEDClass is an LED of the Linux LED class (/sys/class/leds/NAME), such
// as a Pi's green ACT LED. Opening it writes "none" to its trigger, so
// that the kernel stops driving it (on a Pi, from SD card activity); Close
// gives the trigger back.
type LEDClass struct {
	name, dir string
	on        []byte // max_brightness
	trigger   string // the trigger it had
}

// OpenLEDClass takes the LED class LED name under sysRoot (usually /sys).
func OpenLEDClass(sysRoot, name string) (*LEDClass, error) {
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
	l.trigger = currentTrigger(string(b))
	if err := l.write("trigger", []byte("none")); err != nil {
		return nil, err
	}
	return l, nil
}

// currentTrigger is the bracketed word of a trigger file: "none [mmc0]
// timer" is mmc0.
func currentTrigger(s string) string {
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			return strings.Trim(w, "[]")
		}
	}
	return ""
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

// Close gives the LED back to the trigger it had.
func (l *LEDClass) Close() error {
	if l.trigger == "" || l.trigger == "none" {
		return nil
	}
	return l.write("trigger", []byte(l.trigger))
}
