package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// The watch on its own clock: stats on time never warn; a silence of 2.5
// intervals warns once; stats again resume; an offline sensor, a stats
// message that promises no other and a disconnected tail do not warn.
func TestStatsWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	w := newStatsWatch()
	for i := range 10 { // every 60 s, up to 20 s late, checked every second
		if n := w.stats("plant1", "tap1", 60, at(float64(60*i+20*(i%2)))); n != nil {
			t.Fatalf("stats on time: %+v", n)
		}
		for s := 60 * i; s < 60*(i+1); s++ {
			if ns, _ := w.due(at(float64(s))); ns != nil {
				t.Fatalf("stats on time, at %d s: %+v", s, ns[0])
			}
		}
	}
	last := at(560) // the tenth, 20 s late
	if ns, next := w.due(last.Add(149 * time.Second)); ns != nil || !next.Equal(last.Add(150*time.Second)) {
		t.Fatalf("149 s after the last stats: %v, next due %v; want none, due at 150 s", ns, next)
	}
	ns, next := w.due(last.Add(151 * time.Second))
	if len(ns) != 1 || *ns[0] != (statsNotice{Kind: noticeStatsOverdue, Site: "plant1", Sensor: "tap1", TS: last.Add(151 * time.Second), Interval: 60, Silence: 151}) || !next.IsZero() {
		t.Fatalf("151 s after the last stats: %+v, next %v; want one overdue notice and nothing more due", ns, next)
	}
	if ns, _ := w.due(last.Add(time.Hour)); ns != nil {
		t.Fatalf("said overdue twice: %+v", ns[0])
	}
	n := w.stats("plant1", "tap1", 60, last.Add(200*time.Second))
	if n == nil || n.Kind != noticeStatsResumed || n.Silence != 200 {
		t.Fatalf("stats again after 200 s: %+v, want resumed after 200 s", n)
	}
	if n := w.stats("plant1", "tap1", 60, last.Add(210*time.Second)); n != nil {
		t.Fatalf("resumed twice: %+v", n)
	}

	// Tail disconnected: no stats can come, and none is said overdue; a
	// reconnection gives a whole period again.
	w.pause()
	if ns, _ := w.due(last.Add(time.Hour)); ns != nil {
		t.Fatalf("while tail is disconnected: %+v", ns[0])
	}
	back := last.Add(time.Hour)
	w.rearm(back)
	if ns, next := w.due(back.Add(time.Second)); ns != nil || !next.Equal(back.Add(150*time.Second)) {
		t.Fatalf("after the reconnection: %v, next %v", ns, next)
	}
	if ns, _ := w.due(back.Add(150 * time.Second)); len(ns) != 1 || ns[0].Silence != (time.Hour-60*time.Second).Seconds() {
		t.Fatalf("overdue after the reconnection: %+v; want the silence since the last stats", ns)
	}

	// A sensor stopped cleanly is forgotten; so is one whose stats say
	// none follows, or announce an impossible interval.
	w.offline("plant1", "tap1", "stopped", back)
	w.stats("plant1", "tap2", 60, t0)
	w.stats("plant1", "tap2", 0, t0.Add(time.Second))
	for _, iv := range []float64{-1, math.NaN(), math.Inf(1), 1e300} {
		w.stats("plant1", "bad", iv, t0)
	}
	if ns, next := w.due(t0.Add(24 * time.Hour)); ns != nil || !next.IsZero() || len(w.sensors) != 0 {
		t.Fatalf("forgotten sensors: %v, next %v, %d watched", ns, next, len(w.sensors))
	}

	// The Last Will does not end the watch: the sensor is silent against
	// its will, which the notice says, and its return is told.
	w.stats("plant1", "tap3", 60, t0)
	w.offline("plant1", "tap3", "connection lost", t0.Add(40*time.Second))
	if ns, _ := w.due(t0.Add(150 * time.Second)); len(ns) != 1 || !ns[0].willAt.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("after the Last Will: %+v, want overdue, with the time of the Will", ns)
	}
	if n := w.stats("plant1", "tap3", 60, t0.Add(200*time.Second)); n == nil || n.Kind != noticeStatsResumed {
		t.Fatalf("back after the Last Will: %+v, want resumed", n)
	}
	w.offline("plant1", "tap3", "stopped", t0.Add(201*time.Second))

	// Several overdue at once come in order; the sensors watched are
	// bounded.
	for i := range maxWatched + 10 {
		w.stats(fmt.Sprintf("site%05d", maxWatched-i), "tap", 1, t0) // the last ten are not watched
	}
	if len(w.sensors) != maxWatched {
		t.Fatalf("%d sensors watched, want at most %d", len(w.sensors), maxWatched)
	}
	ns, _ = w.due(t0.Add(time.Minute))
	if len(ns) != maxWatched || ns[0].Site != "site00001" || ns[1].Site != "site00002" {
		t.Fatalf("%d overdue, the first %+v", len(ns), ns[0])
	}
}

func TestStatsNoticeText(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.Local)
	f := newTextFormatter(false, true)
	f.now = func() time.Time { return now }
	for _, c := range []struct {
		n    statsNotice
		want string
	}{
		{statsNotice{Kind: noticeStatsOverdue, Site: "plant1", Sensor: "tap1", TS: now.Add(150 * time.Second), Interval: 60, Silence: 150.02},
			"10:02:30 OVERDUE plant1/tap1: no stats for 2m30s, expected every 1m: the sensor may be hung, or cut off from the broker"},
		{statsNotice{Kind: noticeStatsResumed, Site: "plant1", Sensor: "tap\x1b[2J", TS: now.Add(time.Hour), Interval: 3600, Silence: 3.55},
			"11:00:00 RESUMED plant1/tap?[2J: stats again, after 3.6s without"},
		{statsNotice{Kind: noticeStatsOverdue, Site: "s", Sensor: "n", TS: now, Interval: 3600, Silence: 9000},
			"10:00:00 OVERDUE s/n: no stats for 2h30m, expected every 1h: the sensor may be hung, or cut off from the broker"},
		{statsNotice{Kind: noticeStatsOverdue, Site: "s", Sensor: "n", TS: now, Interval: 60, Silence: 150, willAt: now.Add(-110 * time.Second)},
			"10:00:00 OVERDUE s/n: no stats for 2m30s, expected every 1m: its connection broke at 09:58:10 (its Last Will came then)"},
	} {
		if got := string(f.notice(&c.n)); got != c.want {
			t.Errorf("notice:\n got %q\nwant %q", got, c.want)
		}
	}
	var back map[string]any
	n := statsNotice{Kind: noticeStatsOverdue, Site: "plant1", Sensor: "tap1", TS: now.UTC(), Interval: 60, Silence: 150.5}
	if err := json.Unmarshal(n.json(), &back); err != nil || len(back) != 6 || back["kind"] != "stats_overdue" || back["silence"] != 150.5 || back["interval"] != 60.0 {
		t.Errorf("JSON notice %s: %v", n.json(), err)
	}
}

// A sensor whose pipeline hangs while its MQTT connection stays up (no
// Last Will: paho answers the broker's keep-alive on goroutines of its
// own) sends no stats: tail says they are overdue, once, also when it
// prints only alerts, and says when they resume. A sensor that stops
// cleanly (offline) is not said to be overdue.
func TestTailStatsOverdue(t *testing.T) {
	t.Parallel()
	b, tl := startTextTail(t, TailConfig{Format: FormatText, Kinds: []string{event.KindAlert}})

	cfg := testConfig(b.URL())
	cfg.StatsInterval = time.Second // the least the config allows
	p, _, err := New(cfg, t.TempDir(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's stats source reads its snapshot under a lock: a hung
	// pipeline that holds it blocks the publisher's session.
	var (
		mu      sync.Mutex
		calls   int
		lastAt  time.Time // of the last stats sent
		frozen  = make(chan struct{})
		release = make(chan struct{})
	)
	p.SetStatsSource(func() *event.Stats {
		mu.Lock()
		calls++
		n := calls
		if n != 3 {
			lastAt = time.Now()
		}
		mu.Unlock()
		if n == 3 {
			close(frozen)
			<-release
		}
		return &event.Stats{}
	})
	p.Start()
	var closeOnce sync.Once
	closeP := func() {
		closeOnce.Do(func() {
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	defer closeP()
	var releaseOnce sync.Once
	unfreeze := func() { releaseOnce.Do(func() { close(release) }) }
	defer unfreeze() // before closeP: Close waits for the session the source holds

	const overdue, resumed = " OVERDUE plant1/tap1: no stats for ", " RESUMED plant1/tap1: stats again, after "
	<-frozen
	mu.Lock()
	hungAt := lastAt
	mu.Unlock()
	tl.waitFor(t, 10*time.Second, overdue)
	if d := time.Since(hungAt); d < 2500*time.Millisecond {
		t.Errorf("said overdue %v after the last stats, before 2.5 intervals", d)
	}
	if !p.State().Connected {
		t.Error("the publisher lost its connection while hung: the Last Will, not the stats, would tell")
	}
	time.Sleep(1500 * time.Millisecond) // no second warning
	unfreeze()
	tl.waitFor(t, 10*time.Second, resumed)
	if n := strings.Count(tl.out.String(), overdue); n != 1 {
		t.Errorf("said overdue %d times, want once:\n%s", n, tl.out.String())
	}

	// A clean stop: its offline status ends the watch.
	closeP()
	time.Sleep(time.Duration(overdueAfter*float64(cfg.StatsInterval)) + time.Second)
	if n := strings.Count(tl.out.String(), overdue); n != 1 {
		t.Errorf("a sensor stopped cleanly said to be overdue:\n%s", tl.out.String())
	}
}

// The same in JSON: lines of their own shape, from stats messages that
// announce an interval of 0.2 s.
func TestTailStatsOverdueJSON(t *testing.T) {
	t.Parallel()
	b, tl := startTextTail(t, TailConfig{})
	p, _ := startPublisher(t, testConfig(b.URL()), t.TempDir())
	pollUntil(t, 10*time.Second, "the publisher connected", func() bool { return p.State().Connected })

	const overdue, resumed = `{"kind":"stats_overdue","site":"plant1","sensor":"tap1",`, `{"kind":"stats_resumed","site":"plant1","sensor":"tap1",`
	p.Stats(&event.Stats{Interval: 0.2})
	tl.waitFor(t, 10*time.Second, overdue)
	p.Stats(&event.Stats{Interval: 0.2})
	tl.waitFor(t, 10*time.Second, resumed)
	for _, l := range strings.Split(strings.TrimSpace(tl.out.String()), "\n") {
		if !strings.HasPrefix(l, overdue) && !strings.HasPrefix(l, resumed) {
			continue
		}
		var n statsNotice
		if err := json.Unmarshal([]byte(l), &n); err != nil || n.Interval != 0.2 || n.Silence < overdueAfter*0.2 || time.Since(n.TS) > time.Minute {
			t.Errorf("notice %s: %+v, %v", l, n, err)
		}
	}
}

// textTail runs Tail in the background, keeping what it writes as text.
type textTail struct {
	out, rep testenv.Buffer
}

// startTextTail starts an embedded broker and a Tail of it, subscribed.
func startTextTail(t *testing.T, c TailConfig) (*Embedded, *textTail) {
	b, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c.Brokers = []string{b.URL()}
	tl := &textTail{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Tail(ctx, c, &tl.out, &tl.rep)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("tail wrote:\n%s\nreported:\n%s", tl.out.String(), tl.rep.String())
		}
	})
	pollUntil(t, 5*time.Second, "tail subscribed", func() bool { return b.Subscribed("tapwatch-tail-") })
	return b, tl
}

func (tl *textTail) waitFor(t *testing.T, d time.Duration, s string) {
	t.Helper()
	pollUntil(t, d, fmt.Sprintf("tail to write %q", s), func() bool { return strings.Contains(tl.out.String(), s) })
}
