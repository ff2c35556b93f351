package labelled

import (
	"net/netip"
	"time"
)

// Window widens an episode: Before its START, After its END.
type Window struct{ Before, After time.Duration }

// ScoreWindow is how far around an episode an alert still counts for
// it. The attacker's first frame comes 0.1-0.6 s after the START line
// (the datasets' README), and an attack's effects (a stream left
// broken, the engine's rate windows) may be seen a few seconds after its
// END.
var ScoreWindow = Window{Before: time.Second, After: 5 * time.Second}

// LearnMargin is how far around every episode learning stays: an
// ARP-spoofing man in the middle leaves the hosts' caches poisoned, and
// the connections it broke are retried, for a while after its END.
var LearnMargin = Window{Before: 10 * time.Second, After: 30 * time.Second}

// Overlaps reports whether [first, last] overlaps e's window widened by w.
func (e *Episode) Overlaps(w Window, first, last time.Time) bool {
	return !first.After(e.End.Add(w.After)) && !last.Before(e.Start.Add(-w.Before))
}

// Alert is what scoring needs of an alert.
type Alert struct {
	// ID identifies an alert within a run: the reports of an alert's
	// folded repeats carry its ID again, and count as that one alert. 0:
	// an alert of its own.
	ID          uint64
	Rule        string
	First, Last time.Time  // capture time of its first and last occurrence
	Frame       uint64     // capture frame of its first occurrence (1-based); 0: none
	Src, Dst    netip.Addr // invalid when the alert names none
}

// distinct folds the reports of each alert (the same non-zero ID) into
// one, with the first report's rule and frame, the earliest First and the
// latest Last.
func distinct(alerts []Alert) []Alert {
	at := map[uint64]int{}
	out := make([]Alert, 0, len(alerts))
	for _, a := range alerts {
		if a.ID != 0 {
			if i, ok := at[a.ID]; ok {
				if a.First.Before(out[i].First) {
					out[i].First = a.First
				}
				if a.Last.After(out[i].Last) {
					out[i].Last = a.Last
				}
				continue
			}
			at[a.ID] = len(out)
		}
		out = append(out, a)
	}
	return out
}

// Tally is how many episodes of an attack type there were and how many
// were detected.
type Tally struct {
	Detected, Episodes int
	// OnWire episodes put something on the wire (Episode.OnWire), and
	// DetectedOnWire of them were detected.
	OnWire, DetectedOnWire int
	ByRule                 map[string]int // episodes in whose window each rule raised an alert
}

// EpisodeScore is how alerts fared against the episodes of QUT captures.
type EpisodeScore struct {
	Types       map[string]*Tally // by attack type
	Alerts      int               // distinct alerts
	False       int               // alerts outside the window of every episode
	FalseByRule map[string]int
}

// ScoreEpisodes scores alerts against the episodes of one capture: an
// episode is detected when an alert's [First, Last] overlaps its window
// widened by w, and an alert that overlaps no episode's window is false.
func ScoreEpisodes(eps []Episode, alerts []Alert, w Window) EpisodeScore {
	s := EpisodeScore{Types: map[string]*Tally{}, FalseByRule: map[string]int{}}
	al := distinct(alerts)
	s.Alerts = len(al)
	for i := range eps {
		e := &eps[i]
		t := s.tally(e.Type)
		t.Episodes++
		seen := map[string]bool{}
		for _, a := range al {
			if e.Overlaps(w, a.First, a.Last) && !seen[a.Rule] {
				seen[a.Rule] = true
				t.ByRule[a.Rule]++
			}
		}
		if len(seen) > 0 {
			t.Detected++
		}
		if e.OnWire {
			t.OnWire++
			if len(seen) > 0 {
				t.DetectedOnWire++
			}
		}
	}
	for _, a := range al {
		outside := true
		for i := range eps {
			if eps[i].Overlaps(w, a.First, a.Last) {
				outside = false
				break
			}
		}
		if outside {
			s.False++
			s.FalseByRule[a.Rule]++
		}
	}
	return s
}

func (s *EpisodeScore) tally(typ string) *Tally {
	t := s.Types[typ]
	if t == nil {
		t = &Tally{ByRule: map[string]int{}}
		s.Types[typ] = t
	}
	return t
}

// Add adds o's counts to s's, to score several captures together.
func (s *EpisodeScore) Add(o EpisodeScore) {
	if s.Types == nil {
		s.Types, s.FalseByRule = map[string]*Tally{}, map[string]int{}
	}
	for typ, ot := range o.Types {
		t := s.tally(typ)
		t.Detected += ot.Detected
		t.Episodes += ot.Episodes
		t.OnWire += ot.OnWire
		t.DetectedOnWire += ot.DetectedOnWire
		addCounts(t.ByRule, ot.ByRule)
	}
	s.Alerts += o.Alerts
	s.False += o.False
	addCounts(s.FalseByRule, o.FalseByRule)
}

func addCounts(to, from map[string]int) {
	for k, n := range from {
		to[k] += n
	}
}

// FrameScore is how alerts fared against a Lemay capture's frame labels.
type FrameScore struct {
	Alerts         int            // distinct alerts
	OnAttack       int            // alerts whose first occurrence is an attack frame
	OnAttackByRule map[string]int //
	False          int            // alerts whose first occurrence is a normal frame, or no labelled frame
	FalseByRule    map[string]int
	// NamesAttacker: an alert on an attack frame has the attacker as its
	// source or destination.
	NamesAttacker bool
}

// Detected reports whether an alert fired on an attack frame.
func (s *FrameScore) Detected() bool { return s.OnAttack > 0 }

// ScoreFrames scores alerts against frame labels, by the frame of each
// alert's first occurrence. attacker is the attacking host.
func ScoreFrames(l Labels, alerts []Alert, attacker netip.Addr) FrameScore {
	s := FrameScore{OnAttackByRule: map[string]int{}, FalseByRule: map[string]int{}}
	al := distinct(alerts)
	s.Alerts = len(al)
	for _, a := range al {
		if !l.Attack(a.Frame) {
			s.False++
			s.FalseByRule[a.Rule]++
			continue
		}
		s.OnAttack++
		s.OnAttackByRule[a.Rule]++
		if attacker.IsValid() && (a.Src == attacker || a.Dst == attacker) {
			s.NamesAttacker = true
		}
	}
	return s
}
