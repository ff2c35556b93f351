package hw

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Panel draws the four LEDs on a terminal: in colour on one line redrawn
// in place; with [#] and [ ] where colour is off (NO_COLOR, TERM=dumb);
// and, when the output is not a terminal (a log, a pipe), as one line
// each time a pattern changes.
type Panel struct {
	w    io.Writer
	mode panelMode
	last Lights
	any  bool
}

type panelMode uint8

const (
	panelLines panelMode = iota // not a terminal: a line per change of pattern
	panelMono                   // a terminal without colour
	panelColour
)

// ANSI colours of the LEDs: green, amber, blue, red.
var ledColour = [NumLEDs]string{"\x1b[1;32m", "\x1b[1;33m", "\x1b[1;34m", "\x1b[1;31m"}

// NewPanel draws on w; tty says whether w is a terminal, colour whether
// it takes colour.
func NewPanel(w io.Writer, tty, colour bool) *Panel {
	p := &Panel{w: w}
	switch {
	case tty && colour:
		p.mode = panelColour
	case tty:
		p.mode = panelMono
	}
	return p
}

// TerminalPanel is a panel on f, in colour when f is a terminal that
// takes it (NO_COLOR unset, TERM not dumb).
func TerminalPanel(f *os.File) *Panel {
	tty := IsTerminal(f)
	colour := tty && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb" && os.Getenv("TERM") != ""
	return NewPanel(f, tty, colour)
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Show implements Display.
func (p *Panel) Show(l Lights, lit [NumLEDs]bool) {
	if p.mode == panelLines {
		if p.any && l == p.last {
			return
		}
		p.last, p.any = l, true
		fmt.Fprintln(p.w, Describe(l))
		return
	}
	var b strings.Builder
	b.WriteString("\r\x1b[K")
	for i, pat := range l.LEDs {
		if p.mode == panelColour {
			if lit[i] {
				b.WriteString(ledColour[i] + "●\x1b[0m")
			} else {
				b.WriteString("\x1b[2m○\x1b[0m")
			}
		} else if lit[i] {
			b.WriteString("[#]")
		} else {
			b.WriteString("[ ]")
		}
		fmt.Fprintf(&b, " %s %-15s", LEDNames[i], pat)
	}
	fmt.Fprintf(&b, "alarm %s, health %s", onOff(l.Alarm), onOff(l.Healthy))
	io.WriteString(p.w, b.String())
}

// Describe is the lights in words: "RUN on (heartbeat), LINK on, UPLINK
// slow blink, ALERT off; alarm relay off, health relay on".
func Describe(l Lights) string {
	var b strings.Builder
	b.WriteString("LEDs: ")
	for i, pat := range l.LEDs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(LEDNames[i] + " " + pat.String())
	}
	fmt.Fprintf(&b, "; alarm relay %s, health relay %s", onOff(l.Alarm), onOff(l.Healthy))
	return b.String()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
