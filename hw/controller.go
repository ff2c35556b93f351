package hw

import (
	"context"
	"io"
	"log/slog"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Output is one LED or relay. A periph gpio.PinOut is one; so are the
// LED-class LEDs and the sim pins of this package.
type Output interface {
	Out(l gpio.Level) error
	String() string
}

// Input is the button: a periph gpio.PinIn set up as an input, or a sim
// pin.
type Input interface {
	Read() gpio.Level
	String() string
}

// Display shows the LEDs as a whole (the terminal panel): their patterns
// and which are lit now. It is called when either changes.
type Display interface {
	Show(l Lights, lit [NumLEDs]bool)
}

// Controller timings.
const (
	TickEvery = 25 * time.Millisecond // the one timer: patterns and the button
	pollEvery = 100 * time.Millisecond
	// Every output is written again this often, even unchanged, so that a
	// pin another program changed (the bcm283x register driver does not
	// keep other programs off a line) is put right.
	refreshEvery = time.Second
	LongPress    = 5 * time.Second // a press this long is a lamp test, not an acknowledge
	LampTestFor  = 3 * time.Second
)

// Options are the controller's outputs, inputs and sources. Every output
// may be nil (not wired).
type Options struct {
	LEDs          [NumLEDs]Output
	Board         Output // the board's own LED; it mirrors RUN
	LEDsActiveLow bool
	Alarm, Health Output // the relays
	// RelaysActiveLow drives the relays' pins low to energize them.
	RelaysActiveLow bool
	Button          Input
	// ButtonActiveLow: a pressed button reads low (wired to ground, with
	// the pin's pull-up).
	ButtonActiveLow bool
	Panel           Display
	// Lights is polled every 100 ms for what to show (Show of the
	// daemon's health); it must not block.
	Lights func() Lights
	// Acknowledge runs on a short press of the button, on the
	// controller's goroutine; it must be quick.
	Acknowledge func()
	Log         *slog.Logger
	// Now is Run's clock; time.Now when nil.
	Now func() time.Time
}

// Controller runs the LEDs, the relays and the button on one timer.
type Controller struct {
	o         Options
	log       *slog.Logger
	start     time.Time
	pollAt    time.Time
	refreshAt time.Time
	lights    Lights
	lit       [NumLEDs]bool
	shown     bool   // the panel has been drawn
	drawn     Lights // what it shows

	outs  []*output // every wired output, written only on change
	leds  [NumLEDs]*output
	board *output
	alarm *output
	healt *output

	// The button.
	raw       bool // last sample
	pressed   bool // debounced
	pressedAt time.Time
	long      bool // this press became a lamp test
	lampUntil time.Time
}

type output struct {
	Output
	activeLow bool
	on, known bool
	failed    bool // an error was logged; not again until it works
}

func (o *output) set(c *Controller, on bool) {
	if o == nil || (o.known && o.on == on) {
		return
	}
	lvl := gpio.Level(on != o.activeLow)
	if err := o.Out(lvl); err != nil {
		if !o.failed {
			c.log.Error("output", "pin", o.String(), "err", err)
			o.failed = true
		}
		return
	}
	o.on, o.known, o.failed = on, true, false
}

// NewController builds a controller; nothing is driven until Run or
// Step.
func NewController(o Options) *Controller {
	c := &Controller{o: o, log: o.Log}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	wire := func(out Output, activeLow bool) *output {
		if out == nil {
			return nil
		}
		w := &output{Output: out, activeLow: activeLow}
		c.outs = append(c.outs, w)
		return w
	}
	for i, l := range o.LEDs {
		c.leds[i] = wire(l, o.LEDsActiveLow)
	}
	c.board = wire(o.Board, false)
	c.alarm = wire(o.Alarm, o.RelaysActiveLow)
	c.healt = wire(o.Health, o.RelaysActiveLow)
	return c
}

// Run drives the outputs until ctx ends, then turns every LED off and
// de-energizes the relays.
func (c *Controller) Run(ctx context.Context) {
	now := c.o.Now
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(TickEvery)
	defer t.Stop()
	c.Step(now())
	for {
		select {
		case <-ctx.Done():
			c.Stop()
			return
		case <-t.C:
			// Not the tick's own time: after a stall (a busy CPU), the
			// tick received is the one due when the stall began, and a
			// step at that time would flicker the LEDs back to an old
			// phase for one tick.
			c.Step(now())
		}
	}
}

// Step is one tick of the timer at now: it samples the button, polls the
// lights when due, and writes what changed. Run calls it; tests call it
// with a fake clock.
func (c *Controller) Step(now time.Time) {
	if c.start.IsZero() {
		c.start = now
	}
	n := uint64(now.Sub(c.start) / TickEvery)
	if c.button(now) || c.pollAt.IsZero() || now.Sub(c.pollAt) >= pollEvery {
		c.pollAt = now
		if c.o.Lights != nil {
			c.lights = c.o.Lights()
		}
	}
	if now.Sub(c.refreshAt) >= refreshEvery {
		c.refreshAt = now
		for _, o := range c.outs {
			o.known = false
		}
	}
	lamp := now.Before(c.lampUntil)
	var lit [NumLEDs]bool
	for i, p := range c.lights.LEDs {
		lit[i] = lamp || p.lit(n)
		c.leds[i].set(c, lit[i])
	}
	c.board.set(c, lit[Run])
	c.alarm.set(c, c.lights.Alarm)
	c.healt.set(c, c.lights.Healthy)
	if c.o.Panel != nil && (!c.shown || lit != c.lit || c.lights != c.drawn) {
		c.o.Panel.Show(c.lights, lit)
		c.shown, c.drawn = true, c.lights
	}
	c.lit = lit
}

// button samples the button and acts on a debounced press; true when it
// acknowledged (the lights must be polled again at once).
func (c *Controller) button(now time.Time) bool {
	if c.o.Button == nil {
		return false
	}
	// Debounced: a change counts when two samples in a row (25 to 50 ms)
	// agree on it.
	raw := c.o.Button.Read() == gpio.Level(!c.o.ButtonActiveLow)
	stable := raw == c.raw
	c.raw = raw
	if !stable || raw == c.pressed {
		if c.pressed && !c.long && now.Sub(c.pressedAt) >= LongPress {
			c.long = true
			c.lampUntil = now.Add(LampTestFor)
			c.log.Info("button: long press; lamp test: every LED on for " + LampTestFor.String())
		}
		return false
	}
	c.pressed = raw
	if raw {
		c.pressedAt, c.long = now, false
		return false
	}
	if c.long {
		return false
	}
	c.log.Debug("button: short press")
	if c.o.Acknowledge != nil {
		c.o.Acknowledge()
	}
	return true
}

// Stop turns every LED off and de-energizes the relays (Run does it when
// its context ends).
func (c *Controller) Stop() {
	c.lights = Lights{}
	for _, o := range c.outs {
		o.set(c, false)
	}
	if c.o.Panel != nil {
		c.o.Panel.Show(Lights{}, [NumLEDs]bool{})
	}
}
