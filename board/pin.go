package board

import (
	"fmt"
	"strconv"
	"strings"
)

// A pin, in a profile or the config, is a GPIO line name (GPIO17),
// LEDClass+NAME for a /sys/class/leds LED, Sim+NAME for a file that
// stands in for a pin (tests and demos), or None. Auto, for the board,
// is the profile detected.
const (
	LEDClass = "led:"
	Sim      = "sim:"
	Auto     = "auto"
)

// CheckPin checks a pin's spelling: empty (the profile's), none, a GPIO
// line name (see CanonicalPin), led:NAME or sim:NAME.
func CheckPin(pin string) error {
	if pin == "" || pin == None {
		return nil
	}
	name := pin
	for _, p := range []string{LEDClass, Sim} {
		name = strings.TrimPrefix(name, p)
	}
	if name == "" || name == "." || name == ".." || len(name) > 64 || strings.ContainsAny(name, "/: \t\n\x00") {
		return fmt.Errorf("%q is not a pin: want a GPIO line name (GPIO17), led:NAME (an LED in /sys/class/leds), sim:NAME or none", pin)
	}
	return nil
}

// CanonicalPin is pin's one spelling, by which two functions on one pin
// are found. A GPIO given by its number (17, as periph.io's drivers also
// take it), in lower case (gpio17) or by its Broadcom name (BCM17) is
// GPIO17, the line's name on a Pi; any other pin is as written.
func CanonicalPin(pin string) string {
	up := strings.ToUpper(pin)
	for _, prefix := range []string{"GPIO", "BCM", ""} {
		digits, ok := strings.CutPrefix(up, prefix)
		if !ok || digits == "" || len(digits) > 4 || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		n, _ := strconv.Atoi(digits)
		return "GPIO" + strconv.Itoa(n)
	}
	return pin
}
