package hw

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Panel draws the four LEDs on a terminal: in colour on one line redrawn
// in place; with # (lit) and . (dark) where colour is off (NO_COLOR,
// TERM=dumb);
// and, when the output is not a terminal (a log, a pipe), as one line
// each time a pattern changes.
type Panel struct {
	mu   sync.Mutex
	w    io.Writer
	mode panelMode
	last Lights
	any  bool
	line string // what the terminal line shows now
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
	return NewPanel(f, tty, tty && ColourTerm())
}

// ColourTerm reports whether the environment allows colour on a
// terminal: NO_COLOR unset, TERM set and not dumb.
func ColourTerm() bool {
	return os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb" && os.Getenv("TERM") != ""
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Show implements Display.
func (p *Panel) Show(l Lights, lit [NumLEDs]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
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
			b.WriteString("#")
		} else {
			b.WriteString(".")
		}
		// The short names, padded to the longest each LED shows, keep
		// the line within 80 columns and steady as patterns change.
		w := 4
		if i == 0 {
			w = len("heartbeat")
		}
		fmt.Fprintf(&b, " %s %-*s ", LEDNames[i], w, pat.Short())
	}
	fmt.Fprintf(&b, "alarm %-3s health %s", onOff(l.Alarm), onOff(l.Healthy))
	p.line = b.String()
	io.WriteString(p.w, p.line)
}

// End ends the panel's line on a terminal, so that what follows starts on
// a line of its own.
func (p *Panel) End() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line != "" {
		io.WriteString(p.w, "\n")
		p.line = ""
	}
}

// Wrap returns a writer for the same terminal (a logger's): on a terminal
// each write clears the panel's line first and draws it again after, so
// that log lines scroll above the panel instead of running into it.
func (p *Panel) Wrap(w io.Writer) io.Writer {
	if p.mode == panelLines {
		return w
	}
	return panelWriter{p, w}
}

type panelWriter struct {
	p *Panel
	w io.Writer
}

func (pw panelWriter) Write(b []byte) (int, error) {
	pw.p.mu.Lock()
	defer pw.p.mu.Unlock()
	if pw.p.line != "" {
		io.WriteString(pw.w, "\r\x1b[K")
	}
	n, err := pw.w.Write(b)
	if pw.p.line != "" {
		io.WriteString(pw.w, pw.p.line)
	}
	return n, err
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
