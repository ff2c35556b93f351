package hw

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

// periph's drivers are loaded once per process: the character-device
// driver (gpioioctl: every current kernel, and the only one on a Pi 5),
// then the board drivers (bcm283x on older Pis).
var (
	hostOnce  sync.Once
	hostState *driverreg.State
	hostErr   error
)

// loadGPIO loads periph's drivers, once, and reports what loaded and
// what failed (with why).
func loadGPIO() (loaded, failed []string, err error) {
	hostOnce.Do(func() { hostState, hostErr = host.Init() })
	if hostErr != nil {
		return nil, nil, hostErr
	}
	for _, d := range hostState.Loaded {
		loaded = append(loaded, d.String())
	}
	for _, f := range hostState.Failed {
		failed = append(failed, f.D.String()+": "+f.Err.Error())
	}
	return loaded, failed, nil
}

// gpioPin finds a GPIO line by name (GPIO17) once periph's drivers are
// loaded.
func gpioPin(name string) (gpio.PinIO, error) {
	loaded, failed, err := loadGPIO()
	if err != nil {
		return nil, fmt.Errorf("%s: loading the GPIO drivers: %w", name, err)
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	if len(loaded) == 0 {
		why := "no /dev/gpiochip*, or no permission: is the user in group gpio?"
		if len(failed) > 0 {
			why = strings.Join(failed, "; ")
		}
		return nil, fmt.Errorf("%s: no GPIO driver loaded (%s)", name, why)
	}
	return nil, fmt.Errorf("%s: no such GPIO line (drivers loaded: %s; lines: %s)", name, strings.Join(loaded, ", "), lineNames(8))
}

// lineName is the GPIO line's own name, through periph's aliases (on a
// Pi, 18 and PWM0 are GPIO18).
func lineName(p gpio.PinIO) string {
	for range 8 {
		r, ok := p.(gpio.RealPin)
		if !ok {
			break
		}
		p = r.Real()
	}
	return p.Name()
}

// lineNames lists up to n registered GPIO lines, for an error message.
func lineNames(n int) string {
	var names []string
	for _, p := range gpioreg.All() {
		names = append(names, p.Name())
	}
	sort.Strings(names)
	if len(names) > n {
		return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// openGPIOOut opens a GPIO line as an output, off.
func openGPIOOut(name string, activeLow bool) (Output, error) {
	p, err := gpioPin(name)
	if err != nil {
		return nil, err
	}
	if err := p.Out(gpio.Level(activeLow)); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// openGPIOIn opens a GPIO line as the button's input, with the pull-up
// (active low) or pull-down (active high) that holds it released.
func openGPIOIn(name string, activeLow bool) (Input, error) {
	p, err := gpioPin(name)
	if err != nil {
		return nil, err
	}
	pull := gpio.PullDown
	if activeLow {
		pull = gpio.PullUp
	}
	if err := p.In(pull, gpio.NoEdge); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}
