package sim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"
)

// Truth is the ground truth of a generated capture.
type Truth struct {
	Seed     int64
	Link     string    // the capture's link type, as pcapgen.Link names it
	Start    time.Time // time of the first frame
	LearnEnd time.Time // end of the learning period: only normal traffic before it
	End      time.Time // just after the last frame
	Packets  int       // frames written
	Hosts    []Host    // the legitimate hosts (attackers are not listed)
	Attacks  []Attack  // in time order
}

// Host is a legitimate host of the plant.
type Host struct {
	Name string     `json:"name"` // "hmi", "ews", "scada", "plc1", "gw5", "rtu1", "dns"...
	Addr netip.Addr `json:"addr"`
	// Role: router, dns, ntp, hmi, ews (Modbus masters), scada (the DNP3
	// master), plc, modbus-gateway, outstation.
	Role string `json:"role"`
}

// Attack is one labelled attack.
type Attack struct {
	Kind Kind `json:"kind"`
	// Detectors are the ids of the detectors expected to fire on it; the
	// first is the one it is built for.
	Detectors []string `json:"detectors"`
	// Start is the time of its first frame; End is just after its last
	// frame (the interval is half open).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// FirstFrame and LastFrame are the 1-based frame numbers of its first
	// and last frames; frames of normal traffic may come between.
	FirstFrame int `json:"first_frame"`
	LastFrame  int `json:"last_frame"`
	// KeyFrame is the frame that carries (completes) the labelled
	// operation, e.g. the FC 6 request writing 900, the COLD_RESTART
	// request, the first request of a sweep or flood, the SYN to the
	// public address.
	KeyFrame int   `json:"key_frame"`
	Frames   []int `json:"frames"` // every frame of the attack, in order
	// Src is the attacking end (client address and port), Dst the target
	// (server address and port).
	Src netip.AddrPort `json:"src"`
	Dst netip.AddrPort `json:"dst"`
	// Targets are the other addresses the attack reaches from Src, beside
	// Dst: the addresses a sweep probes, the second victim of ARP
	// spoofing. Port 0 in Src and Dst: the attack has no one port (ARP).
	Targets []netip.Addr `json:"targets,omitempty"`
	Desc    string       `json:"desc"`
}

// Covers reports whether a frame at time t between hosts x and y (either
// way round) belongs to the attack's conversation and time: t is in
// [Start, End+grace) and {x, y} is {Src, Dst} or {Src, one of Targets} by
// address.
func (a *Attack) Covers(t time.Time, x, y netip.Addr, grace time.Duration) bool {
	if t.Before(a.Start) || !t.Before(a.End.Add(grace)) {
		return false
	}
	s := a.Src.Addr()
	if y == s {
		x, y = y, x
	}
	return x == s && (y == a.Dst.Addr() || slices.Contains(a.Targets, y))
}

// Find returns the first attack that Covers t, x and y, or nil.
func (t *Truth) Find(at time.Time, x, y netip.Addr, grace time.Duration) *Attack {
	for i := range t.Attacks {
		if t.Attacks[i].Covers(at, x, y, grace) {
			return &t.Attacks[i]
		}
	}
	return nil
}

// Host returns the legitimate host named name.
func (t *Truth) Host(name string) (Host, bool) {
	for _, h := range t.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// The JSON lines: one scenario record, then one attack record per line.
type scenarioLine struct {
	Type     string    `json:"type"` // "scenario"
	Seed     int64     `json:"seed"`
	Link     string    `json:"link"`
	Start    time.Time `json:"start"`
	LearnEnd time.Time `json:"learn_end"`
	End      time.Time `json:"end"`
	Packets  int       `json:"packets"`
	Hosts    []Host    `json:"hosts"`
}

type attackLine struct {
	Type string `json:"type"` // "attack"
	Attack
}

// WriteJSON writes t as JSON lines: first a "scenario" record, then one
// "attack" record per attack.
func (t *Truth) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(scenarioLine{"scenario", t.Seed, t.Link, t.Start, t.LearnEnd, t.End, t.Packets, t.Hosts}); err != nil {
		return err
	}
	for _, a := range t.Attacks {
		if err := enc.Encode(attackLine{"attack", a}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadTruth reads what WriteJSON wrote.
func ReadTruth(r io.Reader) (*Truth, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var t *Truth
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return nil, fmt.Errorf("sim: truth line %d: %w", n, err)
		}
		switch head.Type {
		case "scenario":
			if t != nil {
				return nil, fmt.Errorf("sim: truth line %d: a second scenario record", n)
			}
			var s scenarioLine
			if err := json.Unmarshal(line, &s); err != nil {
				return nil, fmt.Errorf("sim: truth line %d: %w", n, err)
			}
			t = &Truth{Seed: s.Seed, Link: s.Link, Start: s.Start, LearnEnd: s.LearnEnd, End: s.End, Packets: s.Packets, Hosts: s.Hosts}
		case "attack":
			if t == nil {
				return nil, fmt.Errorf("sim: truth line %d: attack before the scenario record", n)
			}
			var a attackLine
			if err := json.Unmarshal(line, &a); err != nil {
				return nil, fmt.Errorf("sim: truth line %d: %w", n, err)
			}
			if _, ok := kindInfo[a.Kind]; !ok {
				return nil, fmt.Errorf("sim: truth line %d: unknown attack kind %q", n, a.Kind)
			}
			t.Attacks = append(t.Attacks, a.Attack)
		default:
			return nil, fmt.Errorf("sim: truth line %d: unknown record type %q", n, head.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errors.New("sim: truth has no scenario record")
	}
	return t, nil
}
