// Command ledprobe is the HIL run's second program under test
// (scripts/hil-qemu.sh --dut ledprobe; the default tests tapwatch's own
// "leds" command). It is periph.io alone, without tapwatch: it drives the
// status LEDs with the same command-line shape as "tapwatch leds", so that
// a HIL failure can be placed in tapwatch or in the board under test, and
// --selftest can show that the harness catches a buggy program:
//
//	ledprobe --show run=on,link=off,uplink=on,alert=on --for 3s
//
// It calls host.Init(), looks each LED's line up by name in gpioreg (run
// GPIO17, link GPIO27, uplink GPIO22, alert GPIO23: the pi4 board's
// wiring), drives them as asked, holds them for --for, then drives every
// LED low and exits 0. Any error exits 1. --leave-on skips turning them
// off, so that the HIL self-test can show the harness catches that bug.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

var leds = []struct{ name, line string }{
	{"run", "GPIO17"},
	{"link", "GPIO27"},
	{"uplink", "GPIO22"},
	{"alert", "GPIO23"},
}

func parseShow(s string) (map[string]gpio.Level, error) {
	want := map[string]gpio.Level{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || (v != "on" && v != "off") {
			return nil, fmt.Errorf("--show: %q: want NAME=on or NAME=off", kv)
		}
		known := false
		for _, l := range leds {
			known = known || l.name == k
		}
		if !known {
			return nil, fmt.Errorf("--show: unknown LED %q", k)
		}
		want[k] = v == "on"
	}
	return want, nil
}

func run() error {
	show := flag.String("show", "", "LED states, e.g. run=on,link=off (LEDs not named stay off)")
	hold := flag.Duration("for", 3*time.Second, "how long to hold the LEDs before turning them all off")
	leaveOn := flag.Bool("leave-on", false, "exit without turning the LEDs off (a deliberate bug, for the harness's self-test)")
	flag.Parse()
	want, err := parseShow(*show)
	if err != nil {
		return err
	}
	state, err := host.Init()
	if err != nil {
		return fmt.Errorf("host.Init: %w", err)
	}
	for _, d := range state.Loaded {
		fmt.Printf("ledprobe: periph driver loaded: %s\n", d)
	}
	for _, f := range state.Failed {
		fmt.Printf("ledprobe: periph driver failed: %s: %v\n", f.D, f.Err)
	}
	pins := map[string]gpio.PinIO{}
	for _, l := range leds {
		p := gpioreg.ByName(l.line)
		if p == nil {
			return fmt.Errorf("%s LED: no GPIO line named %s", l.name, l.line)
		}
		pins[l.name] = p
	}
	for _, l := range leds {
		if err := pins[l.name].Out(want[l.name]); err != nil {
			return fmt.Errorf("%s LED (%s): %w", l.name, l.line, err)
		}
		fmt.Printf("ledprobe: %s (%s via %T) = %v\n", l.name, l.line, pins[l.name], want[l.name])
	}
	time.Sleep(*hold)
	if *leaveOn {
		fmt.Println("ledprobe: leaving the LEDs as they are (--leave-on)")
		return nil
	}
	var firstErr error
	for _, l := range leds {
		if err := pins[l.name].Out(gpio.Low); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s LED (%s) off: %w", l.name, l.line, err)
		}
	}
	fmt.Println("ledprobe: all LEDs off")
	return firstErr
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ledprobe:", err)
		os.Exit(1)
	}
}
