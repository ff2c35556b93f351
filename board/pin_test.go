package board

import "testing"

// TestCanonicalPin: a GPIO's number and its other spellings are one pin;
// anything else is as written.
func TestCanonicalPin(t *testing.T) {
	for in, want := range map[string]string{
		"GPIO17": "GPIO17", "17": "GPIO17", "gpio17": "GPIO17", "Gpio17": "GPIO17", "BCM17": "GPIO17", "bcm17": "GPIO17",
		"017": "GPIO17", "GPIO0": "GPIO0", "0": "GPIO0", "GPIO": "GPIO", "BCM": "BCM", "GPIO17a": "GPIO17a", "GPIO_17": "GPIO_17",
		"12345": "12345", "PA6": "PA6", "P1_11": "P1_11", "led:17": "led:17", "sim:GPIO17": "sim:GPIO17", "": "", "none": "none",
	} {
		if got := CanonicalPin(in); got != want {
			t.Errorf("CanonicalPin(%q) = %q, want %q", in, got, want)
		}
	}
}
