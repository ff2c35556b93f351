package hw

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/tapwatch/tapwatch/board"
	"periph.io/x/conn/v3/gpio"
)

// Functions of the box's pins, in the order check prints them.
const (
	FnRun = iota
	FnLink
	FnUplink
	FnAlert
	FnBoard
	FnButton
	FnAlarm
	FnHealth
	NumFns
)

var fnNames = [NumFns]string{"RUN LED", "LINK LED", "UPLINK LED", "ALERT LED", "board LED (mirrors RUN)", "button", "alarm relay", "health relay"}

// Config is what the hardware takes from the config file. cmd/tapwatch
// builds it from the config's hardware section, so that this package
// needs neither the config nor the rules (nor what they import).
type Config struct {
	// Board is the profile: a profile's name; auto or "": the one
	// detected; none: nothing wired.
	Board Setting
	// Pins are the functions' pins, FnRun to FnHealth: "" is the
	// profile's, none is not wired; otherwise as board.CheckPin takes it.
	Pins            [NumFns]Setting
	LEDsActiveLow   bool  // the LEDs light when their pin is low
	ButtonActiveLow bool  // pressed connects the pin to ground, with its pull-up
	RelaysActiveLow bool  // a relay is energized by a low pin
	AlarmAt         Level // the alarm relay's severity: at or above it, unacknowledged
	// Watchdog is the hardware watchdog device; "": the profile's; none:
	// not used.
	Watchdog string
	Panel    PanelSetting
	// The roots of /sys, /dev and /proc, for tests against fixture trees.
	SysRoot, DevRoot, ProcRoot string
	SimDir                     string // holds the sim: pins
	// StateDir keeps what must outlive a crash: the board LED's own
	// trigger (tapwatch run: the config's state_dir); "" keeps it in
	// memory only.
	StateDir string
	// Errorf makes the error about a setting's field: cmd/tapwatch's adds
	// the config file and the field's place in it. nil: "field: msg".
	Errorf func(field, msg string) error
}

// Setting is one setting from the config file: its value and, for
// messages, the field that holds it and where (line 0: not known).
type Setting struct {
	Value        string
	Field        string // hardware.leds.run
	Line, Column int
}

func (c *Config) errorf(field, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	if c.Errorf == nil {
		return errors.New(field + ": " + msg)
	}
	return c.Errorf(field, msg)
}

// Pin is one function's pin, as planned.
type Pin struct {
	Spec string // GPIO17, led:ACT, sim:alert; "" when not wired
	// Written is the config's spelling of Spec (17, BCM17, gpio17 are
	// GPIO17: board.CanonicalPin).
	Written string
	// Candidates are the board LEDs to try in turn (the first that
	// exists); only for the board LED from a profile.
	Candidates []string
	FromConfig bool // set in the config, not the profile
}

// Plan is the hardware the config and the board profile give: which
// profile, every function's pin, the watchdog and the panel.
type Plan struct {
	Profile  board.Profile
	Model    string // the device tree's model; "" when there is none
	Detected bool   // the profile was detected, not named
	Pins     [NumFns]Pin
	Config   Config // what the plan was made from
	Watchdog string // "" when not used
	Warnings []string
}

// NewPlan works out the hardware from the config: the profile it names
// or the one detected, with the config's pins over the profile's. Two
// functions on one pin is an error naming the config field; a pin that
// the board reserves (I2C, the serial console) or that is not on its
// header is a warning.
func NewPlan(c Config) (*Plan, error) {
	p := &Plan{Config: c}
	switch c.Board.Value {
	case board.None:
		p.Profile = board.Profile{Name: board.None, Title: "no board: nothing wired", Watchdog: board.None}
	case board.Auto, "":
		prof, model, err := board.Detect(c.ProcRoot)
		if err != nil {
			return nil, c.errorf(c.Board.Field, "%v", err)
		}
		p.Profile, p.Model, p.Detected = prof, model, true
	default:
		prof, ok := board.ByName(c.Board.Value)
		if !ok {
			return nil, c.errorf(c.Board.Field, "%q is not a board profile", c.Board.Value)
		}
		p.Profile = prof
	}
	prof := p.Profile
	defaults := [NumFns]string{prof.LEDs.Run, prof.LEDs.Link, prof.LEDs.Uplink, prof.LEDs.Alert, "", prof.Button, prof.Relays.Alarm, prof.Relays.Health}
	for fn := range NumFns {
		pin := Pin{Spec: defaults[fn]}
		if fn == FnBoard {
			pin.Candidates = prof.LEDs.Board
		}
		if set := c.Pins[fn].Value; set != "" {
			pin = Pin{Spec: board.CanonicalPin(set), Written: set, FromConfig: true}
		}
		if pin.Spec == board.None {
			pin.Spec = ""
		}
		p.Pins[fn] = pin
	}
	var errs []error
	owner := map[string]int{}
	for fn, pin := range p.Pins {
		for _, spec := range pin.specs() {
			if other, dup := owner[spec]; dup {
				field := c.Pins[fn].Field
				if !pin.FromConfig && p.Pins[other].FromConfig {
					field = c.Pins[other].Field
				}
				errs = append(errs, c.errorf(field, "%s: the %s and the %s are both on it (one pin, one function)",
					spec, p.whose(other, spec), p.whose(fn, spec)))
				continue
			}
			owner[spec] = fn
			if strings.Contains(spec, ":") {
				continue
			}
			if why, ok := prof.Reserved[spec]; ok {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %s is usually the %s on a %s", fnNames[fn], spec, why, prof.Name))
			}
			if !prof.OnHeader(spec) {
				hint := ""
				if headerPosition.MatchString(spec) {
					hint = " (a pin is named by its GPIO line, not its place on the header: header pin 11 is GPIO17 on a 40-pin Pi)"
				}
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %s is not on the %s's pin header%s", fnNames[fn], spec, prof.Name, hint))
			}
		}
	}
	p.Watchdog = c.Watchdog
	if p.Watchdog == "" {
		p.Watchdog = prof.Watchdog
	}
	if p.Watchdog == board.None {
		p.Watchdog = ""
	}
	if p.Watchdog != "" && c.DevRoot != "/dev" {
		if rel, ok := strings.CutPrefix(p.Watchdog, "/dev/"); ok {
			p.Watchdog = filepath.Join(c.DevRoot, rel)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// headerPosition is a header pin's place (P1_11, pin11, BOARD11), which
// periph.io's GPIO registry does not take as a line name.
var headerPosition = regexp.MustCompile(`^(?i:p1_|pin|board)[0-9]+$`)

// whose names function fn on spec for a conflict: with the config's
// field, spelling and place, or as the profile's.
func (p *Plan) whose(fn int, spec string) string {
	if p.Pins[fn].FromConfig {
		set := p.Config.Pins[fn]
		at := ""
		if set.Line > 0 {
			at = fmt.Sprintf(", line %d column %d", set.Line, set.Column)
		}
		return fmt.Sprintf("%s (%s: %q%s)", fnNames[fn], set.Field, p.Pins[fn].Written, at)
	}
	return fmt.Sprintf("%s (the %s profile's %s)", fnNames[fn], p.Profile.Name, spec)
}

func (p Pin) specs() []string {
	if p.Spec != "" {
		return []string{p.Spec}
	}
	return p.Candidates
}

// Describe writes the plan for tapwatch check.
func (p *Plan) Describe(w io.Writer) {
	how := "named in the config or with --board"
	if p.Detected {
		how = "detected"
		if p.Model != "" {
			how += " from the model " + fmt.Sprintf("%q", p.Model)
		} else {
			how += ": no device tree"
		}
	}
	fmt.Fprintf(w, "  board:      %s (%s), %s\n", p.Profile.Name, p.Profile.Title, how)
	if p.Profile.Capture != "" {
		fmt.Fprintf(w, "              usual capture port %s, management %s; package %s\n", p.Profile.Capture, orNone(p.Profile.Management), p.Profile.Arch)
	}
	for fn, pin := range p.Pins {
		spec := pin.Spec
		if spec == "" && len(pin.Candidates) > 0 {
			spec = strings.Join(pin.Candidates, " or ")
		}
		from := "profile"
		if pin.FromConfig {
			from = "config"
			if pin.Written != pin.Spec {
				from += fmt.Sprintf(" as %q", pin.Written)
			}
		}
		extra := ""
		switch fn {
		case FnLink, FnUplink, FnAlert, FnRun:
			if p.Config.LEDsActiveLow && spec != "" {
				extra = ", active low"
			}
		case FnButton:
			if spec != "" && p.Config.ButtonActiveLow {
				extra = ", active low: to ground, with the pull-up"
			}
		case FnAlarm:
			if spec != "" {
				extra = ", on unacknowledged " + p.Config.AlarmAt.String() + " or higher"
			}
		}
		if fn >= FnAlarm && spec != "" && p.Config.RelaysActiveLow {
			extra += ", active low"
		}
		if spec == "" {
			spec, from = "not wired", ""
		} else {
			from = " (" + from + extra + ")"
		}
		fmt.Fprintf(w, "  %-24s %s%s\n", fnNames[fn]+":", spec, from)
	}
	fmt.Fprintf(w, "  %-24s %s\n", "hardware watchdog:", orNone(p.Watchdog))
	fmt.Fprintf(w, "  %-24s %s\n", "terminal panel:", p.Config.Panel)
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Box is the opened hardware.
type Box struct {
	Options Options // for NewController: the outputs, the button, the panel
	closers []io.Closer
}

// PanelSetting says when the terminal panel is drawn.
type PanelSetting uint8

const (
	PanelOff  PanelSetting = iota
	PanelAuto              // when the output is a terminal
	PanelOn
)

var panelSettings = [...]string{PanelOff: "off", PanelAuto: "auto", PanelOn: "on"}

// String is the setting as the config spells it.
func (s PanelSetting) String() string {
	if int(s) < len(panelSettings) {
		return panelSettings[s]
	}
	return "?"
}

// Panel is the terminal panel the config asks for, on f: always with
// panel on, on a terminal with auto; nil otherwise.
func (p *Plan) Panel(f *os.File) *Panel {
	if p.Config.Panel == PanelOn || (p.Config.Panel == PanelAuto && IsTerminal(f)) {
		return TerminalPanel(f)
	}
	return nil
}

// Open opens what the plan wires, with panel (nil: none) as the display.
// A pin that cannot be opened (no such line, no permission, no LED) is
// logged and left out: the box monitors without it. The watchdog is not
// opened here: see OpenWatchdog.
//
// Two functions on one GPIO line under names NewPlan could not tell apart
// (the driver's aliases: PWM0 is GPIO18 on a Pi, PA6 is GPIO6 on an
// Allwinner board) is found here: the second is left out.
func (p *Plan) Open(log *slog.Logger, panel *Panel) *Box {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &p.Config
	b := &Box{Options: Options{LEDsActiveLow: c.LEDsActiveLow, RelaysActiveLow: c.RelaysActiveLow,
		ButtonActiveLow: c.ButtonActiveLow, Log: log}}
	lines := map[string]int{} // a GPIO line's own name → the function on it
	claim := func(fn int, spec string) error {
		if strings.Contains(spec, ":") {
			return nil
		}
		pin, err := gpioPin(spec)
		if err != nil {
			return nil // the open reports it
		}
		line := lineName(pin)
		if other, taken := lines[line]; taken {
			return fmt.Errorf("%s is the line %s, the %s's already (one pin, one function)", spec, line, fnNames[other])
		}
		lines[line] = fn
		return nil
	}
	out := func(fn int, activeLow bool) Output {
		pin := p.Pins[fn]
		var errs []string
		for _, spec := range pin.specs() {
			if err := claim(fn, spec); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			o, err := p.openOut(spec, activeLow)
			if err == nil {
				log.Debug("hardware", "function", fnNames[fn], "pin", spec)
				return o
			}
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			log.Error("hardware: "+fnNames[fn]+" not driven; carrying on without it", "err", strings.Join(errs, "; "))
		}
		return nil
	}
	for i := range NumLEDs {
		if o := out(FnRun+i, c.LEDsActiveLow); o != nil {
			b.Options.LEDs[i] = o
			b.track(o)
		}
	}
	if o := out(FnBoard, false); o != nil {
		b.Options.Board = o
		b.track(o)
	}
	if o := out(FnAlarm, c.RelaysActiveLow); o != nil {
		b.Options.Alarm = o
		b.track(o)
	}
	if o := out(FnHealth, c.RelaysActiveLow); o != nil {
		b.Options.Health = o
		b.track(o)
	}
	if spec := p.Pins[FnButton].Spec; spec != "" {
		err := claim(FnButton, spec)
		var in Input
		if err == nil {
			in, err = p.openIn(spec, b.Options.ButtonActiveLow)
		}
		if err != nil {
			log.Error("hardware: button not read; carrying on without it", "err", err)
		} else {
			b.Options.Button = in
		}
	}
	if panel != nil {
		b.Options.Panel = panel
	}
	return b
}

func (b *Box) track(o Output) {
	if c, ok := o.(io.Closer); ok {
		b.closers = append(b.closers, c)
	}
}

func (p *Plan) openOut(spec string, activeLow bool) (Output, error) {
	switch {
	case strings.HasPrefix(spec, board.LEDClass):
		return OpenLEDClass(p.Config.SysRoot, strings.TrimPrefix(spec, board.LEDClass), p.Config.StateDir)
	case strings.HasPrefix(spec, board.Sim):
		return OpenSimOut(p.Config.SimDir, strings.TrimPrefix(spec, board.Sim))
	}
	return openGPIOOut(spec, activeLow)
}

func (p *Plan) openIn(spec string, activeLow bool) (Input, error) {
	switch {
	case strings.HasPrefix(spec, board.LEDClass):
		return nil, fmt.Errorf("%s: an LED cannot be the button", spec)
	case strings.HasPrefix(spec, board.Sim):
		return OpenSimIn(p.Config.SimDir, strings.TrimPrefix(spec, board.Sim), gpio.Level(activeLow))
	}
	return openGPIOIn(spec, activeLow)
}

// Close gives back what was opened (the board LED's trigger).
func (b *Box) Close() {
	for _, c := range b.closers {
		if err := c.Close(); err != nil {
			b.Options.Log.Error("hardware: closing", "err", err)
		}
	}
}

// OpenWatchdog opens and arms the plan's watchdog; nil (logged) when
// there is none or it cannot be opened: the box carries on without it.
func (p *Plan) OpenWatchdog(log *slog.Logger) *Watchdog {
	if p.Watchdog == "" {
		return nil
	}
	dev, err := OpenWatchdog(p.Watchdog)
	if err != nil {
		log.Warn("hardware watchdog not used; carrying on without it", "err", err)
		return nil
	}
	log.Info("hardware watchdog armed", "device", p.Watchdog)
	return &Watchdog{Dev: dev, Path: p.Watchdog, Log: log}
}
