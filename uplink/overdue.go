package uplink

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"
)

// overdueAfter is how many of its stats intervals a sensor may stay
// silent before Tail says its stats are overdue: one stats message lost
// (they go at QoS 0), or one late, is not yet a warning.
const overdueAfter = 2.5

// maxWatched bounds the sensors whose stats Tail watches.
const maxWatched = 1 << 14

// The kinds of Tail's own lines about a sensor's stats (docs/events.md).
const (
	noticeStatsOverdue = "stats_overdue"
	noticeStatsResumed = "stats_resumed"
)

// statsNotice is a line of Tail's own: a sensor's periodic stats are
// overdue, or came again after that. A sensor whose process is stopped or
// hung while its MQTT connection stays up sends nothing and leaves no
// Last Will: only the missing stats tell.
type statsNotice struct {
	Kind   string    `json:"kind"` // noticeStatsOverdue or noticeStatsResumed
	Site   string    `json:"site"`
	Sensor string    `json:"sensor"`
	TS     time.Time `json:"ts"` // when Tail noticed, by its own clock
	// Interval is the sensor's stats interval in seconds, as its last
	// stats message said.
	Interval float64 `json:"interval"`
	// Silence is how long, in seconds, Tail has received no stats from the
	// sensor: since the last one (overdue), or until this one (resumed).
	Silence float64   `json:"silence"`
	willAt  time.Time // when the sensor's Last Will came, if it did since its last stats
}

func (n *statsNotice) json() []byte {
	b, _ := json.Marshal(n) // strings and numbers only
	return b
}

// statsWatch follows the periodic stats of each sensor that has sent
// some, on Tail's own clock: the interval comes from the stats message,
// so no clock of the sensor's is compared with Tail's. It is not safe for
// concurrent use.
type statsWatch struct {
	sensors map[string]*statsClock // site/sensor
	paused  bool                   // Tail is disconnected: no stats can arrive
}

type statsClock struct {
	site, sensor string
	every        time.Duration
	last         time.Time // when the last stats message was received
	since        time.Time // the silence is counted from here: last, or Tail's reconnection
	willAt       time.Time // when its Last Will came, since the last stats
	overdue      bool      // said to be overdue, and no stats since
}

func newStatsWatch() *statsWatch { return &statsWatch{sensors: map[string]*statsClock{}} }

// statsInterval is the interval a stats message announces; 0 for none,
// or one no sensor can mean.
func statsInterval(seconds float64) time.Duration {
	if math.IsNaN(seconds) || seconds <= 0 || seconds > (24*time.Hour).Seconds() {
		return 0
	}
	return time.Duration(seconds * float64(time.Second))
}

// stats records a live stats message that announces interval seconds
// (0: none follows) received at now. It returns the notice that the stats
// of a sensor said to be overdue resumed, or nil.
func (w *statsWatch) stats(site, sensor string, interval float64, now time.Time) *statsNotice {
	k := site + "/" + sensor
	c := w.sensors[k]
	var n *statsNotice
	if c != nil && c.overdue {
		n = c.notice(noticeStatsResumed, now)
	}
	every := statsInterval(interval)
	switch {
	case every == 0:
		delete(w.sensors, k) // no more promised: a clean stop, a replay
		return n
	case c == nil && len(w.sensors) >= maxWatched:
		return n
	case c == nil:
		c = &statsClock{site: site, sensor: sensor}
		w.sensors[k] = c
	}
	c.every, c.last, c.since, c.willAt, c.overdue = every, now, now, time.Time{}, false
	return n
}

// offline records a live status offline received at now. A clean stop
// (reason "stopped") ends the watch: the silence is meant. The Last Will
// does not: the sensor is gone without meaning to, which the overdue
// notice repeats for a tail that prints no status, and whose end the
// resumed notice tells.
func (w *statsWatch) offline(site, sensor, reason string, now time.Time) {
	k := site + "/" + sensor
	if reason == "stopped" {
		delete(w.sensors, k)
	} else if c := w.sensors[k]; c != nil {
		c.willAt = now
	}
}

// pause stops the clocks while Tail is disconnected.
func (w *statsWatch) pause() { w.paused = true }

// rearm restarts the clocks when Tail has connected: each sensor has a
// whole period again, since none of its stats could arrive meanwhile.
func (w *statsWatch) rearm(now time.Time) {
	w.paused = false
	for _, c := range w.sensors {
		c.since = now
	}
}

// due returns the notices of the sensors overdue at now, each once, and
// when the next one falls due (zero: none is watched).
func (w *statsWatch) due(now time.Time) (out []*statsNotice, next time.Time) {
	if w.paused {
		return nil, time.Time{}
	}
	for _, c := range w.sensors {
		if c.overdue {
			continue
		}
		deadline := c.since.Add(time.Duration(overdueAfter * float64(c.every)))
		if !now.Before(deadline) {
			c.overdue = true
			out = append(out, c.notice(noticeStatsOverdue, now))
			continue
		}
		if next.IsZero() || deadline.Before(next) {
			next = deadline
		}
	}
	slices.SortFunc(out, func(a, b *statsNotice) int {
		return cmp.Or(strings.Compare(a.Site, b.Site), strings.Compare(a.Sensor, b.Sensor))
	})
	return out, next
}

func (c *statsClock) notice(kind string, now time.Time) *statsNotice {
	return &statsNotice{Kind: kind, Site: c.site, Sensor: c.sensor, TS: now.UTC(),
		Interval: c.every.Seconds(), Silence: math.Round(now.Sub(c.last).Seconds()*1000) / 1000, willAt: c.willAt}
}
