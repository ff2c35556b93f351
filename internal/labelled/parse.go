package labelled

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// LogZone is the time zone of the QUT attack logs: Brisbane, UTC+10,
// without daylight saving. The captures' timestamps are UTC.
var LogZone = time.FixedZone("UTC+10", 10*60*60)

// logTime is the layout of a QUT log line's date and time; the fraction
// of a second may be absent.
const logTime = "2006-01-02 15:04:05.999999999"

// ParseError is a line of a label file or an attack log that could not
// be read.
type ParseError struct {
	File string
	Line int // 1-based
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// Episode is one attack of a QUT attack log, from its START line to its
// END line.
type Episode struct {
	Type       string       // the attack script's name for it: nmap, MITM_forwarding, injection_ColdRestart, ...
	Targets    []netip.Addr // the IP addresses the line names, if any
	Start, End time.Time    // UTC
	Line       int          // of the START line
	// OnWire says that the attack put something on the wire: the
	// capture holds a frame to or from one of its targets (any frame but
	// loopback, for an episode without targets) within its scoring
	// window. Set by the caller, which reads the capture (OnWire is false
	// as parsed); some episodes never left the attacker's machine.
	OnWire bool
}

// ParseAttackLog reads a QUT attack log, one line per attack start and
// end:
//
//	2016-10-10 17:54:58.056444 reconnaissance 192.168.10.222 START
//
// and returns its episodes in the order they started, with their times
// in UTC (the log's are LogZone). A START and its END name the same type
// and targets. file names the log in errors. Blank lines are skipped; an
// empty log (the Control days) has no episode.
func ParseAttackLog(r io.Reader, file string) ([]Episode, error) {
	var eps []Episode
	begun := map[string]int{} // type and targets → index in eps of the episode without its END yet
	err := eachLine(r, file, func(line int, text string) error {
		f := strings.Fields(text)
		if len(f) < 4 {
			return fmt.Errorf("want a date, a time, an attack type, target IP addresses if any, then START or END; got %q", text)
		}
		t, err := time.ParseInLocation(logTime, f[0]+" "+f[1], LogZone)
		if err != nil {
			return fmt.Errorf("%q is not a date and time like 2016-10-10 17:54:58.056444", f[0]+" "+f[1])
		}
		ep := Episode{Type: f[2], Line: line}
		if !isName(ep.Type) {
			return fmt.Errorf("%q is not an attack type (letters, digits, _ and -)", ep.Type)
		}
		mark := f[len(f)-1]
		for _, s := range f[3 : len(f)-1] {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("target %q is not an IP address", s)
			}
			ep.Targets = append(ep.Targets, a)
		}
		key := strings.Join(f[2:len(f)-1], " ")
		i, open := begun[key]
		switch mark {
		case "START":
			if open {
				return fmt.Errorf("%s starts again before the END of its START on line %d", key, eps[i].Line)
			}
			ep.Start = t.UTC()
			begun[key] = len(eps)
			eps = append(eps, ep)
		case "END":
			if !open {
				return fmt.Errorf("END of %s, which has not started", key)
			}
			if t.UTC().Before(eps[i].Start) {
				return fmt.Errorf("%s ends at %s, before its START on line %d", key, f[0]+" "+f[1], eps[i].Line)
			}
			eps[i].End = t.UTC()
			delete(begun, key)
		default:
			return fmt.Errorf("the line ends with %q, not START or END", mark)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range eps {
		if eps[i].End.IsZero() {
			return nil, &ParseError{File: file, Line: eps[i].Line, Err: fmt.Errorf("%s has no END", eps[i].Type)}
		}
	}
	return eps, nil
}

// eachLine calls do with the number (from 1) and the text, without its
// LF or CRLF, of each line of r that is not blank, until do returns an
// error. It returns that error, or the reader's, as a ParseError of file
// at its line.
func eachLine(r io.Reader, file string, do func(line int, text string) error) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := do(line, text); err != nil {
			return &ParseError{File: file, Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		return &ParseError{File: file, Line: line + 1, Err: err}
	}
	return nil
}

// isName reports whether s is made of letters, digits, _ and -, and is
// not an IP address.
func isName(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// Labels marks which frames of a capture belong to an attack.
type Labels struct {
	attack []bool // by frame number - 1
	first  uint64 // first attack frame; 0: none
	count  int    // attack frames
}

// Frames is the number of frames labelled.
func (l Labels) Frames() int { return len(l.attack) }

// Attack reports whether frame (1-based) is labelled as an attack's; a
// frame past the labels is not.
func (l Labels) Attack(frame uint64) bool {
	return frame >= 1 && frame <= uint64(len(l.attack)) && l.attack[frame-1]
}

// First is the first attack frame, 0 when there is none.
func (l Labels) First() uint64 { return l.first }

// Count is the number of attack frames.
func (l Labels) Count() int { return l.count }

// ParseLabels reads a Lemay label file: one line a frame,
// "frame_number;label", the frames numbered from 1 in order, the label 1
// for a frame of the attack and 0 for normal traffic. Lines end in CRLF
// (LF alone is taken too). file names the label file in errors. Blank
// lines are skipped.
func ParseLabels(r io.Reader, file string) (Labels, error) {
	var l Labels
	err := eachLine(r, file, func(_ int, text string) error {
		num, label, ok := strings.Cut(text, ";")
		if !ok {
			return fmt.Errorf("want frame_number;label, got %q", text)
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a frame number", num)
		}
		if want := uint64(len(l.attack)) + 1; n != want {
			return fmt.Errorf("frame %d where frame %d was expected (frames are numbered from 1, in order)", n, want)
		}
		switch label {
		case "0":
			l.attack = append(l.attack, false)
		case "1":
			l.attack = append(l.attack, true)
			l.count++
			if l.first == 0 {
				l.first = n
			}
		default:
			return fmt.Errorf("label %q of frame %d is not 0 or 1", label, n)
		}
		return nil
	})
	if err != nil {
		return Labels{}, err
	}
	return l, nil
}

// readFile opens path and parses it.
func readFile[T any](path string, parse func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f, path)
}
