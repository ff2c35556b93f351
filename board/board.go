// Package board is the boards tapwatch runs on, as data: for each, the
// pins of the status LEDs, the button and the relays, the capture and
// management interfaces, and the hardware watchdog (profiles.yaml). The
// board is detected from the device tree's model string, so one binary
// runs on every Pi, on another ARM board and on a lab laptop.
package board

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goccy/go-yaml"
)

// Profile names that are not Raspberry Pis; Detect falls back to them.
const (
	GenericARM = "generic-arm64"
	Lab        = "x86-lab"
	None       = "none" // a pin, or hardware.board: nothing wired, no profile
)

//go:embed profiles.yaml
var profilesYAML []byte

// Profile is one board.
type Profile struct {
	Name   string   `yaml:"name"`
	Title  string   `yaml:"title"`
	Models []string `yaml:"models"` // prefixes of /proc/device-tree/model
	Arch   string   `yaml:"arch"`   // the Debian architecture of the package for its usual OS
	LEDs   LEDs     `yaml:"leds"`
	Button string   `yaml:"button"`
	Relays Relays   `yaml:"relays"`
	// Capture is the interface that usually goes to the tap, Management
	// the one that reaches the broker.
	Capture    string `yaml:"capture"`
	Management string `yaml:"management"`
	Watchdog   string `yaml:"watchdog"` // the device, or none
	// Reserved are pins with another usual use (I2C, the serial console),
	// by name; a function put on one is a warning.
	Reserved map[string]string `yaml:"reserved"`
	// Header is every GPIO on the board's pin header; a pin outside it is
	// a warning. Empty: not known.
	Header []string `yaml:"header"`
}

// LEDs are the four status LEDs' pins and the board's own LEDs that can
// mirror RUN (the first that exists is used).
type LEDs struct {
	Run    string   `yaml:"run"`
	Link   string   `yaml:"link"`
	Uplink string   `yaml:"uplink"`
	Alert  string   `yaml:"alert"`
	Board  []string `yaml:"board"`
}

// Relays are the optional outputs' pins.
type Relays struct {
	Alarm  string `yaml:"alarm"`
	Health string `yaml:"health"`
}

var profiles = mustLoad(profilesYAML)

func mustLoad(data []byte) []Profile {
	ps, err := parse(data)
	if err != nil {
		panic("board/profiles.yaml: " + err.Error())
	}
	return ps
}

func parse(data []byte) ([]Profile, error) {
	var ps []Profile
	if err := yaml.UnmarshalWithOptions(data, &ps, yaml.Strict()); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range ps {
		switch {
		case p.Name == "" || p.Name == None:
			return nil, fmt.Errorf("a profile named %q", p.Name)
		case seen[p.Name]:
			return nil, fmt.Errorf("profile %s twice", p.Name)
		case p.Capture == "" || p.Watchdog == "" || p.Arch == "":
			return nil, fmt.Errorf("profile %s: capture, watchdog and arch are required", p.Name)
		}
		seen[p.Name] = true
	}
	for _, must := range []string{GenericARM, Lab} {
		if !seen[must] {
			return nil, fmt.Errorf("no profile %s", must)
		}
	}
	return ps, nil
}

// All returns every profile, in the file's order.
func All() []Profile {
	out := make([]Profile, len(profiles))
	copy(out, profiles)
	return out
}

// Names returns every profile's name.
func Names() []string {
	out := make([]string, len(profiles))
	for i, p := range profiles {
		out[i] = p.Name
	}
	return out
}

// ByName returns the named profile.
func ByName(name string) (Profile, bool) {
	for _, p := range profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// ModelFile is where the device tree's model is, under the /proc root.
const ModelFile = "device-tree/model"

// Detect picks the profile for this machine from procRoot's
// device-tree/model (procRoot "" is /proc). A model no profile knows is
// the generic ARM board; no device tree at all is the x86 lab machine
// (or, on ARM, the generic board). It returns the model string read ("" when
// there is none).
func Detect(procRoot string) (Profile, string, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	data, err := os.ReadFile(filepath.Join(procRoot, ModelFile))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return Profile{}, "", fmt.Errorf("board: %w", err)
		}
		name := Lab
		if strings.HasPrefix(runtime.GOARCH, "arm") {
			name = GenericARM
		}
		p, _ := ByName(name)
		return p, "", nil
	}
	model := strings.TrimSpace(strings.TrimRight(string(data), "\x00"))
	if p, ok := Match(model); ok {
		return p, model, nil
	}
	p, _ := ByName(GenericARM)
	return p, model, nil
}

// Match returns the profile whose model prefix is the longest match of
// model.
func Match(model string) (Profile, bool) {
	best, bestLen := -1, 0
	for i, p := range profiles {
		for _, m := range p.Models {
			if len(m) > bestLen && strings.HasPrefix(model, m) {
				best, bestLen = i, len(m)
			}
		}
	}
	if best < 0 {
		return Profile{}, false
	}
	return profiles[best], true
}

// OnHeader reports whether pin is on the board's header; true when the
// header is not known.
func (p Profile) OnHeader(pin string) bool {
	if len(p.Header) == 0 {
		return true
	}
	for _, h := range p.Header {
		if h == pin {
			return true
		}
	}
	return false
}
