package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/hw"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor/daemon"
)

// ledStatus is the daemon's health as the LEDs show it.
func ledStatus(h daemon.Health) hw.Status {
	s := hw.Status{State: h.State, Learning: h.Learning, Fresh: h.Fresh, Link: hw.LinkFlowing, Unacked: h.Unacked}
	for _, l := range h.Links {
		switch {
		case l.State == daemon.LinkDown:
			s.Link = hw.LinkDown
		case h.Dropping && s.Link > hw.LinkDropping:
			s.Link = hw.LinkDropping
		case l.State == daemon.LinkIdle && s.Link > hw.LinkIdle:
			s.Link = hw.LinkIdle
		}
	}
	switch {
	case h.Uplink == event.UplinkDisabled:
		s.Uplink = hw.UplinkDisabled
	case h.SpoolErr || h.SpoolFull > 0.8:
		s.Uplink = hw.UplinkSpoolHigh
	case h.Uplink == event.UplinkConnected:
		s.Uplink = hw.UplinkConnected
	default:
		s.Uplink = hw.UplinkSpooling
	}
	return s
}

// hardwarePlan is the hardware cfg wires, keeping what must outlive a
// crash (the board LED's own trigger) in the config's state dir. Its
// errors name the config's fields, with their places in the file.
func hardwarePlan(cfg *config.Config) (*hw.Plan, error) {
	h := &cfg.Hardware
	set := func(field, value string) hw.Setting {
		line, col := cfg.Position(field)
		return hw.Setting{Value: value, Field: field, Line: line, Column: col}
	}
	c := hw.Config{
		Board: set("hardware.board", h.Board),
		Pins: [hw.NumFns]hw.Setting{
			hw.FnRun:    set("hardware.leds.run", h.LEDs.Run),
			hw.FnLink:   set("hardware.leds.link", h.LEDs.Link),
			hw.FnUplink: set("hardware.leds.uplink", h.LEDs.Uplink),
			hw.FnAlert:  set("hardware.leds.alert", h.LEDs.Alert),
			hw.FnBoard:  set("hardware.leds.board", h.LEDs.Board),
			hw.FnButton: set("hardware.button.pin", h.Button.Pin),
			hw.FnAlarm:  set("hardware.relays.alarm", h.Relays.Alarm),
			hw.FnHealth: set("hardware.relays.health", h.Relays.Health),
		},
		LEDsActiveLow:   h.LEDs.ActiveLow,
		ButtonActiveLow: h.Button.ActiveLow == nil || *h.Button.ActiveLow,
		RelaysActiveLow: h.Relays.ActiveLow,
		Watchdog:        h.Watchdog,
		Panel:           panelSettings[h.Panel],
		SysRoot:         h.SysRoot,
		DevRoot:         h.DevRoot,
		ProcRoot:        h.ProcRoot,
		SimDir:          h.SimDir,
		StateDir:        cfg.StateDir,
		Errorf:          func(field, msg string) error { return cfg.FieldError(field, "%s", msg) },
	}
	// hw ranks severities as the rules do (TestAlarmLevel). Validate has
	// checked a loaded config's; this is for one built in code.
	sev, err := policy.ParseSeverity(h.Relays.AlarmSeverity)
	if err != nil {
		return nil, cfg.FieldError("hardware.relays.alarm_severity", "%v", err)
	}
	c.AlarmAt = hw.Level(sev)
	return hw.NewPlan(c)
}

// panelSettings are the config's panel settings as hw takes them.
var panelSettings = map[string]hw.PanelSetting{config.PanelAuto: hw.PanelAuto, config.PanelOn: hw.PanelOn, config.PanelOff: hw.PanelOff}

// hardware is the box's LEDs, button, relays and watchdog around a
// running daemon.
type hardware struct {
	box    *hw.Box
	dog    *hw.Watchdog // set by the pinger's goroutine before dogged closes
	cancel context.CancelFunc
	done   chan struct{} // the controller has stopped
	dogged chan struct{} // the watchdog's pinger has returned
	log    *slog.Logger
}

// startHardware opens what the plan wires and runs it on the daemon's
// health: the LED controller (the button acknowledges through the
// daemon) and the watchdog. The watchdog is armed once the daemon has
// started (its capture is open), so a box that cannot start is not reset
// over and over; from then on it is pinged while the daemon is alive or
// stopping cleanly.
func startHardware(plan *hw.Plan, panel *hw.Panel, d *daemon.Daemon, log *slog.Logger) *hardware {
	box := plan.Open(log.With("part", "hardware"), panel)
	opts := box.Options
	opts.Lights = func() hw.Lights { return hw.Show(ledStatus(d.Health()), plan.Config.AlarmAt) }
	opts.Acknowledge = func() {
		log.Info("button: alerts acknowledged")
		d.Acknowledge()
	}
	ctl := hw.NewController(opts)
	ctx, cancel := context.WithCancel(context.Background())
	h := &hardware{box: box, cancel: cancel, done: make(chan struct{}), dogged: make(chan struct{}), log: log}
	go func() {
		defer close(h.done)
		ctl.Run(ctx)
	}()
	go func() {
		defer close(h.dogged)
		if plan.Watchdog == "" {
			return
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for d.Health().State == event.StateStarting {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		if h.dog = plan.OpenWatchdog(log.With("part", "hardware")); h.dog != nil {
			h.dog.Run(ctx, hw.WatchdogEvery, func() bool {
				st := d.Health()
				return st.Fresh || st.Stopping
			})
		}
	}()
	return h
}

// stop turns the LEDs off and de-energizes the relays; after a clean stop
// it disarms the watchdog too, and otherwise leaves it to reset the board
// unless systemd's restart brings the pipeline back first.
func (h *hardware) stop(clean bool) {
	h.cancel()
	<-h.done
	<-h.dogged // no ping after the disarm
	if p, ok := h.box.Options.Panel.(*hw.Panel); ok {
		p.End()
	}
	h.box.Close()
	if w := h.dog; w != nil {
		if !clean {
			h.log.Warn("hardware watchdog left armed: not a clean stop")
			return
		}
		if err := w.Disarm(); err != nil {
			h.log.Error("hardware watchdog: disarming", "err", err)
			return
		}
		h.log.Info("hardware watchdog disarmed")
	}
}

const ledsSynopsis = `tapwatch leds [-c CONFIG] [--board NAME] [--show LIST] [--for DURATION]

Drives the box's LEDs and relays without capturing, to check the wiring
when installing it, with the pins of the config and the board profile
(tapwatch check -c CONFIG prints them).

Without --show it runs a walk test: each LED on for two seconds in turn
(RUN, LINK, UPLINK, ALERT; the board LED lights with RUN), then every
LED slow, fast and heartbeat, while it reports every press of the
button; the relays are not touched. With --show it holds the given patterns (off, slow, fast, on
or heartbeat per LED, as in run=on,alert=fast; the relays as alarm=on,
health=on) for the given time or until interrupted. Everything is off
when it ends.

Stop tapwatch run first (systemctl stop tapwatch): both would drive the
same pins, and the daemon writes its pins again every second.
`

// cmdLeds is tapwatch leds.
func cmdLeds(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("leds")
	cfgPath := fs.String("c", "", "the config `FILE` whose hardware section to use (default: the board profile alone)")
	boardName := fs.String("board", "", "the board profile `NAME`, in place of the config's (auto, pi4, ...)")
	show := fs.String("show", "", "hold these patterns: `LIST` of LED=PATTERN (run, link, uplink, alert; off, slow, fast, on, heartbeat) and alarm=on, health=on")
	hold := fs.Duration("for", 0, "how long to hold --show (default: until interrupted)")
	pos, err := parseCommand(fs, args, stdout, ledsSynopsis)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("leds takes no arguments, got %q", pos)
	}
	var lights hw.Lights
	if *show != "" {
		if lights, err = parseLights(*show); err != nil {
			return usageError("--show: %v", err)
		}
	}
	if *hold < 0 || (*hold > 0 && *show == "") {
		return usageError("--for takes a positive duration, with --show")
	}
	cfg := &config.Config{}
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			for _, line := range config.Errors(err) {
				fmt.Fprintln(stderr, line)
			}
			return fmt.Errorf("invalid configuration: %s", *cfgPath)
		}
	} else {
		cfg.SetDefaults()
	}
	if *boardName != "" {
		cfg.Hardware.Board = *boardName
	}
	plan, err := hardwarePlan(cfg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	plan.Watchdog = "" // never armed by a wiring check
	box := plan.Open(log, plan.Panel(os.Stderr))
	defer box.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP, os.Interrupt)
	defer stop()

	var presses int
	cur := lights
	opts := box.Options
	opts.Lights = func() hw.Lights { return cur }
	opts.Acknowledge = func() {
		presses++
		fmt.Fprintf(stdout, "button pressed (%d)\n", presses)
	}
	ctl := hw.NewController(opts)
	// The controller runs here, on this goroutine, so that cur needs no
	// lock.
	t := time.NewTicker(hw.TickEvery)
	defer t.Stop()
	wait := func(d time.Duration) bool {
		end := time.Now().Add(d)
		for {
			ctl.Step(time.Now())
			if d > 0 && !time.Now().Before(end) {
				return true
			}
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
			}
		}
	}
	defer func() {
		ctl.Stop()
		if p, ok := opts.Panel.(*hw.Panel); ok {
			p.End()
		}
	}()
	fmt.Fprintf(stdout, "board %s; %s\n", plan.Profile.Name, strings.Join(wiring(box), ", "))
	if *show != "" {
		wait(*hold)
		return nil
	}
	type step struct {
		what   string
		lights hw.Lights
	}
	var steps []step
	for i := range hw.NumLEDs {
		var l hw.Lights
		l.LEDs[i] = hw.On
		steps = append(steps, step{hw.LEDNames[i] + " on", l})
	}
	for _, p := range []hw.Pattern{hw.Slow, hw.Fast, hw.Heartbeat} {
		steps = append(steps, step{"every LED " + p.String(), hw.Lights{LEDs: [hw.NumLEDs]hw.Pattern{p, p, p, p}}})
	}
	fmt.Fprintln(stdout, "walk test; press the button at any time")
	for _, s := range steps {
		fmt.Fprintln(stdout, s.what)
		cur = s.lights
		if !wait(2 * time.Second) {
			return nil
		}
	}
	fmt.Fprintf(stdout, "walk test done; %d button presses\n", presses)
	return nil
}

// wiring lists what was opened, for the leds command's first line.
func wiring(b *hw.Box) []string {
	var out []string
	for i, o := range b.Options.LEDs {
		if o != nil {
			out = append(out, hw.LEDNames[i]+" "+o.String())
		}
	}
	if b.Options.Board != nil {
		out = append(out, "board LED "+b.Options.Board.String())
	}
	if b.Options.Button != nil {
		out = append(out, "button "+b.Options.Button.String())
	}
	if b.Options.Alarm != nil {
		out = append(out, "alarm relay "+b.Options.Alarm.String())
	}
	if b.Options.Health != nil {
		out = append(out, "health relay "+b.Options.Health.String())
	}
	if len(out) == 0 {
		return []string{"nothing wired"}
	}
	return out
}

// parseLights reads run=on,link=slow,alarm=on.
func parseLights(s string) (hw.Lights, error) {
	var l hw.Lights
	for _, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return l, fmt.Errorf("%q: want NAME=VALUE", item)
		}
		switch k = strings.ToLower(k); k {
		case "alarm", "health":
			if v != "on" && v != "off" {
				return l, fmt.Errorf("%s=%q: want on or off", k, v)
			}
			if k == "alarm" {
				l.Alarm = v == "on"
			} else {
				l.Healthy = v == "on"
			}
			continue
		}
		i := -1
		for j, n := range hw.LEDNames {
			if strings.EqualFold(n, k) {
				i = j
			}
		}
		if i < 0 {
			return l, fmt.Errorf("%q: no such LED (run, link, uplink, alert) or relay (alarm, health)", k)
		}
		p, ok := hw.ParsePattern(v)
		if !ok {
			return l, fmt.Errorf("%s=%q: want off, slow, fast, on or heartbeat", k, v)
		}
		l.LEDs[i] = p
	}
	return l, nil
}
