// Package hw is the box's hardware: the four status LEDs (RUN, LINK,
// UPLINK, ALERT) and the field LED code they show, the acknowledge
// button, the alarm and health relays, the hardware watchdog, and a
// terminal LED panel for laptops, the demo and the lab.
//
// Outputs are GPIO lines through periph.io (the kernel's character device,
// or bcm283x), LEDs of the Linux LED class (/sys/class/leds), or sim pins
// (files, for tests and demos). One timer runs every pattern; the
// daemon's state reaches it through a function it polls, so nothing the
// LEDs do can ever block the packet pipeline.
package hw

import "github.com/tapwatch/tapwatch/event"

// The status LEDs.
const (
	Run = iota
	Link
	Uplink
	Alert
	NumLEDs
)

// LEDNames are the LEDs' names, as on the box's label.
var LEDNames = [NumLEDs]string{"RUN", "LINK", "UPLINK", "ALERT"}

// Pattern is what an LED shows.
type Pattern uint8

// The patterns of the field LED code (docs/leds.md).
const (
	Off       Pattern = iota
	Slow              // 1 Hz: 500 ms on, 500 ms off
	Fast              // 4 Hz: 125 ms on, 125 ms off
	On                // steady
	Heartbeat         // on, with a 100 ms dark blink every 2 s: the pipeline is alive
)

var patternNames = [...]string{Off: "off", Slow: "slow blink", Fast: "fast blink", On: "on", Heartbeat: "on (heartbeat)"}

func (p Pattern) String() string {
	if int(p) < len(patternNames) {
		return patternNames[p]
	}
	return "?"
}

var patternShort = [...]string{Off: "off", Slow: "slow", Fast: "fast", On: "on", Heartbeat: "heartbeat"}

// Short is the pattern's short name, the one ParsePattern reads.
func (p Pattern) Short() string {
	if int(p) < len(patternShort) {
		return patternShort[p]
	}
	return "?"
}

// ParsePattern reads a pattern by its short name: off, slow, fast, on,
// heartbeat.
func ParsePattern(s string) (Pattern, bool) {
	for p, name := range patternShort {
		if s == name {
			return Pattern(p), true
		}
	}
	return Off, false
}

// The patterns' timing, in ticks of the controller's one timer.
const (
	slowHalf       = 20 // ticks: 500 ms
	fastHalf       = 5  // 125 ms
	heartbeatEvery = 80 // 2 s
	heartbeatDark  = 4  // 100 ms
)

// lit reports whether the pattern lights its LED at tick n. Every LED
// counts from the same tick, so LEDs with the same pattern blink
// together.
func (p Pattern) lit(n uint64) bool {
	switch p {
	case Slow:
		return n%(2*slowHalf) < slowHalf
	case Fast:
		return n%(2*fastHalf) < fastHalf
	case On:
		return true
	case Heartbeat:
		return n%heartbeatEvery >= heartbeatDark
	}
	return false
}

// LinkState is the capture links' state, worst first.
type LinkState uint8

const (
	LinkDown     LinkState = iota // no link on a capture port
	LinkDropping                  // the kernel is dropping packets
	LinkIdle                      // up, but no ICS traffic for link_idle (a wrong tap port?)
	LinkFlowing                   // up, ICS traffic flowing
)

// UplinkState is the uplink's state.
type UplinkState uint8

const (
	UplinkDisabled  UplinkState = iota // no broker configured
	UplinkSpooling                     // the broker is unreachable: events wait in the spool
	UplinkSpoolHigh                    // the spool is over 80 % full, or failing
	UplinkConnected
)

// Status is what the LEDs and relays show, as the daemon sees it.
type Status struct {
	State    string // event.StateStarting, StateLearning, StateMonitoring, StateDegraded; "" or StateOffline: not running
	Learning bool   // in the learning period (also when degraded)
	Fresh    bool   // the pipeline's heartbeat is recent
	Link     LinkState
	Uplink   UplinkState
	Unacked  event.Severities // alerts not yet acknowledged
}

// Lights are the LEDs' patterns and the relays' states.
type Lights struct {
	LEDs [NumLEDs]Pattern
	// Alarm energizes the alarm relay: an unacknowledged alert at or
	// above its severity.
	Alarm bool
	// Healthy energizes the health relay: running, pipeline alive, not
	// degraded.
	Healthy bool
}

// Level is an alert's severity as the LEDs and the alarm relay rank
// them, from LevelInfo to LevelCritical; 0 is no alert. cmd/tapwatch
// gives the config's alarm severity as a Level.
type Level uint8

// The levels, lowest first.
const (
	LevelInfo Level = 1 + iota
	LevelLow
	LevelMedium
	LevelHigh
	LevelCritical
)

var levelNames = [...]string{LevelInfo: "info", LevelLow: "low", LevelMedium: "medium", LevelHigh: "high", LevelCritical: "critical"}

// String is the severity's name, as alerts and the config spell it.
func (l Level) String() string {
	if l >= LevelInfo && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "invalid"
}

// Show maps a status to the field LED code. alarmAt is the alarm relay's
// severity.
func Show(s Status, alarmAt Level) Lights {
	var l Lights
	running := s.State != "" && s.State != event.StateOffline
	switch {
	case !running:
		l.LEDs[Run] = Off
	case s.State == event.StateStarting:
		l.LEDs[Run] = Fast
	case !s.Fresh:
		l.LEDs[Run] = Off // hung
	case s.Learning:
		l.LEDs[Run] = Slow
	default:
		l.LEDs[Run] = Heartbeat
	}
	if running && s.State != event.StateStarting {
		switch s.Link {
		case LinkDown:
			l.LEDs[Link] = Off
		case LinkDropping:
			l.LEDs[Link] = Fast
		case LinkIdle:
			l.LEDs[Link] = Slow
		default:
			l.LEDs[Link] = On
		}
	}
	// UPLINK shows the connection while starting too: the status the box
	// sends on connecting says so at once.
	if running {
		switch s.Uplink {
		case UplinkSpooling:
			l.LEDs[Uplink] = Slow
		case UplinkSpoolHigh:
			l.LEDs[Uplink] = Fast
		case UplinkConnected:
			l.LEDs[Uplink] = On
		}
	}
	switch top := MaxUnacked(s.Unacked); {
	case top == LevelCritical:
		l.LEDs[Alert] = Fast
	case top >= LevelMedium:
		l.LEDs[Alert] = Slow
	}
	l.Alarm = MaxUnacked(s.Unacked) >= alarmAt && alarmAt > 0
	l.Healthy = running && s.Fresh && (s.State == event.StateLearning || s.State == event.StateMonitoring)
	return l
}

// MaxUnacked is the highest severity with an unacknowledged alert; 0
// when there is none.
func MaxUnacked(u event.Severities) Level {
	switch {
	case u.Critical > 0:
		return LevelCritical
	case u.High > 0:
		return LevelHigh
	case u.Medium > 0:
		return LevelMedium
	case u.Low > 0:
		return LevelLow
	case u.Info > 0:
		return LevelInfo
	}
	return 0
}
