package hw

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// SimPin is a pin simulated by files, for tests and demos in which
// another process watches the LEDs or presses the button: DIR/NAME holds
// its level, "1" or "0", and an output appends each change of level to
// DIR/NAME.log as "UNIXNANO LEVEL" lines.
type SimPin struct {
	name, path string
	log        *os.File
	idle       gpio.Level // what an input reads when its file is absent
	last       gpio.Level // an output's level, logged on change only
	logged     bool
}

// OpenSimOut creates an output sim pin in dir.
func OpenSimOut(dir, name string) (*SimPin, error) {
	p := &SimPin{name: name, path: filepath.Join(dir, name)}
	f, err := os.OpenFile(p.path+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sim:%s: %w", name, err)
	}
	p.log = f
	return p, nil
}

// OpenSimIn opens an input sim pin in dir; until its file exists it
// reads idle.
func OpenSimIn(dir, name string, idle gpio.Level) (*SimPin, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("sim:%s: %w", name, err)
	}
	return &SimPin{name: name, path: filepath.Join(dir, name), idle: idle}, nil
}

// Out writes the level and logs the change.
func (p *SimPin) Out(l gpio.Level) error {
	v := "0"
	if l {
		v = "1"
	}
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(v+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return err
	}
	if p.logged && p.last == l {
		return nil
	}
	p.last, p.logged = l, true
	_, err := fmt.Fprintf(p.log, "%d %s\n", time.Now().UnixNano(), v)
	return err
}

// Read reads the level: "1" is high, "0" low.
func (p *SimPin) Read() gpio.Level {
	b, err := os.ReadFile(p.path)
	if err != nil {
		return p.idle
	}
	return strings.TrimSpace(string(b)) == "1"
}

func (p *SimPin) String() string { return "sim:" + p.name }

// Close closes an output's log.
func (p *SimPin) Close() error {
	if p.log == nil {
		return nil
	}
	return p.log.Close()
}

// SimChange is one change of an output sim pin.
type SimChange struct {
	At time.Time
	On bool
}

// ReadSimLog reads an output sim pin's changes.
func ReadSimLog(dir, name string) ([]SimChange, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	var out []SimChange
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ts, v, ok := strings.Cut(line, " ")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil {
			continue // a line cut short by a crash
		}
		out = append(out, SimChange{At: time.Unix(0, n), On: v == "1"})
	}
	return out, nil
}
