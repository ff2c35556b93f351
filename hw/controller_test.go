package hw

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/event"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// rig is a controller on gpiotest pins, stepped by a fake clock.
type rig struct {
	t       *testing.T
	c       *Controller
	leds    [NumLEDs]*gpiotest.Pin
	board   *gpiotest.Pin
	alarm   *gpiotest.Pin
	health  *gpiotest.Pin
	button  *gpiotest.Pin
	status  Status
	now     time.Time
	acks    int
	alarmAt Level
}

func newRig(t *testing.T, ledsActiveLow, relaysActiveLow bool) *rig {
	r := &rig{t: t, now: time.Unix(1_700_000_000, 0), alarmAt: LevelHigh}
	var o Options
	for i := range r.leds {
		r.leds[i] = &gpiotest.Pin{N: "GPIO" + fmt.Sprint(20+i), Num: 20 + i}
		o.LEDs[i] = r.leds[i]
	}
	r.board = &gpiotest.Pin{N: "ACT"}
	r.alarm = &gpiotest.Pin{N: "GPIO5", Num: 5}
	r.health = &gpiotest.Pin{N: "GPIO6", Num: 6}
	r.button = &gpiotest.Pin{N: "GPIO24", Num: 24}
	if err := r.button.In(gpio.PullUp, gpio.NoEdge); err != nil { // released: high
		t.Fatal(err)
	}
	o.Board, o.Alarm, o.Health, o.Button = r.board, r.alarm, r.health, r.button
	o.LEDsActiveLow, o.RelaysActiveLow, o.ButtonActiveLow = ledsActiveLow, relaysActiveLow, true
	o.Lights = func() Lights { return Show(r.status, r.alarmAt) }
	o.Acknowledge = func() {
		r.acks++
		r.status.Unacked = event.Severities{}
	}
	r.c = NewController(o)
	return r
}

// lit reads an LED's pin, minding its polarity.
func (r *rig) lit(i int) bool { return r.leds[i].Read() != gpio.Level(r.c.o.LEDsActiveLow) }

// run steps the controller for d, a tick at a time, and returns what each
// LED showed at each tick.
func (r *rig) run(d time.Duration) (seq [NumLEDs][]bool, board []bool) {
	for end := r.now.Add(d); r.now.Before(end); r.now = r.now.Add(TickEvery) {
		r.c.Step(r.now)
		for i := range r.leds {
			seq[i] = append(seq[i], r.lit(i))
		}
		board = append(board, bool(r.board.Read()))
	}
	return seq, board
}

// classify names the pattern a sequence of ticks shows.
func classify(seq []bool) Pattern {
	on, edges := 0, 0
	for i, v := range seq {
		if v {
			on++
		}
		if i > 0 && v != seq[i-1] {
			edges++
		}
	}
	switch {
	case on == 0:
		return Off
	case on == len(seq):
		return On
	}
	// Count the ticks of each run of equal values, apart from the first
	// and last (cut by the window).
	var runs []int
	n := 1
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			n++
			continue
		}
		runs = append(runs, n)
		n = 1
	}
	if len(runs) > 2 {
		runs = runs[1:]
	}
	dark := 0
	for i, v := range seq {
		if !v && (i == 0 || seq[i-1]) {
			dark = 0
		}
		if !v {
			dark++
		}
	}
	switch {
	case allEqual(runs, fastHalf):
		return Fast
	case allEqual(runs, slowHalf):
		return Slow
	case on*100/len(seq) >= 90 && dark <= heartbeatDark:
		return Heartbeat
	}
	return Pattern(99)
}

func allEqual(runs []int, n int) bool {
	for _, r := range runs {
		if r != n {
			return false
		}
	}
	return len(runs) > 0
}

func flowing() Status {
	return Status{State: event.StateMonitoring, Fresh: true, Link: LinkFlowing, Uplink: UplinkConnected}
}

// TestLEDTable: every state of the field LED code (docs/leds.md) gives
// its pattern on its pin, with active-high and active-low LEDs.
func TestLEDTable(t *testing.T) {
	type want [NumLEDs]Pattern
	cases := []struct {
		name string
		edit func(*Status)
		want want
	}{
		{"not running", func(s *Status) { *s = Status{} }, want{Off, Off, Off, Off}},
		{"offline", func(s *Status) { *s = Status{State: event.StateOffline} }, want{Off, Off, Off, Off}},
		{"starting", func(s *Status) { s.State = event.StateStarting }, want{Fast, Off, On, Off}},
		{"starting, broker not reached yet", func(s *Status) { s.State, s.Uplink = event.StateStarting, UplinkSpooling }, want{Fast, Off, Slow, Off}},
		{"learning", func(s *Status) { s.State, s.Learning = event.StateLearning, true }, want{Slow, On, On, Off}},
		{"monitoring, healthy", func(s *Status) {}, want{Heartbeat, On, On, Off}},
		{"hung", func(s *Status) { s.State, s.Fresh = event.StateDegraded, false }, want{Off, On, On, Off}},
		{"learning, degraded", func(s *Status) { s.State, s.Learning, s.Link = event.StateDegraded, true, LinkDown }, want{Slow, Off, On, Off}},
		{"no link", func(s *Status) { s.State, s.Link = event.StateDegraded, LinkDown }, want{Heartbeat, Off, On, Off}},
		{"no ICS traffic", func(s *Status) { s.State, s.Link = event.StateDegraded, LinkIdle }, want{Heartbeat, Slow, On, Off}},
		{"kernel drops", func(s *Status) { s.State, s.Link = event.StateDegraded, LinkDropping }, want{Heartbeat, Fast, On, Off}},
		{"uplink disabled", func(s *Status) { s.Uplink = UplinkDisabled }, want{Heartbeat, On, Off, Off}},
		{"broker unreachable", func(s *Status) { s.Uplink = UplinkSpooling }, want{Heartbeat, On, Slow, Off}},
		{"spool over 80 %", func(s *Status) { s.Uplink = UplinkSpoolHigh }, want{Heartbeat, On, Fast, Off}},
		{"low alert", func(s *Status) { s.Unacked.Low = 3 }, want{Heartbeat, On, On, Off}},
		{"medium alert", func(s *Status) { s.Unacked.Medium = 1 }, want{Heartbeat, On, On, Slow}},
		{"high alert", func(s *Status) { s.Unacked.High = 1 }, want{Heartbeat, On, On, Slow}},
		{"critical alert", func(s *Status) { s.Unacked.Critical, s.Unacked.Medium = 1, 2 }, want{Heartbeat, On, On, Fast}},
	}
	for _, activeLow := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/active_low=%v", tc.name, activeLow), func(t *testing.T) {
				r := newRig(t, activeLow, false)
				r.status = flowing()
				tc.edit(&r.status)
				seq, board := r.run(4 * time.Second)
				for i := range NumLEDs {
					if got := classify(seq[i]); got != tc.want[i] {
						t.Errorf("%s on %s: %v, want %v", LEDNames[i], r.leds[i], got, tc.want[i])
					}
				}
				for i := range board {
					if board[i] != seq[Run][i] {
						t.Fatalf("the board LED does not follow RUN at tick %d", i)
					}
				}
			})
		}
	}
}

// TestTransitions: a change of state shows within the poll interval, and
// blinks stay in step with the one timer.
func TestTransitions(t *testing.T) {
	r := newRig(t, false, false)
	r.status = Status{State: event.StateStarting}
	steps := []struct {
		edit func(*Status)
		want [NumLEDs]Pattern
	}{
		{func(s *Status) {}, [NumLEDs]Pattern{Fast, Off, Off, Off}},
		{func(s *Status) { *s = flowing(); s.State, s.Learning = event.StateLearning, true }, [NumLEDs]Pattern{Slow, On, On, Off}},
		{func(s *Status) { s.State, s.Learning = event.StateMonitoring, false }, [NumLEDs]Pattern{Heartbeat, On, On, Off}},
		{func(s *Status) { s.State, s.Link = event.StateDegraded, LinkDown }, [NumLEDs]Pattern{Heartbeat, Off, On, Off}},
		{func(s *Status) { s.State, s.Link, s.Unacked.Critical = event.StateMonitoring, LinkFlowing, 1 }, [NumLEDs]Pattern{Heartbeat, On, On, Fast}},
		{func(s *Status) { s.Uplink = UplinkSpooling }, [NumLEDs]Pattern{Heartbeat, On, Slow, Fast}},
		{func(s *Status) { s.Fresh = false }, [NumLEDs]Pattern{Off, On, Slow, Fast}},
	}
	for _, st := range steps {
		st.edit(&r.status)
		r.run(pollEvery) // the change is picked up
		seq, _ := r.run(4 * time.Second)
		for i := range NumLEDs {
			if got := classify(seq[i]); got != st.want[i] {
				t.Errorf("%+v: %s %v, want %v", r.status, LEDNames[i], got, st.want[i])
			}
		}
		// Two LEDs with the same blink blink together.
		if st.want[Uplink] == Slow && st.want[Run] == Slow {
			for i := range seq[Run] {
				if seq[Run][i] != seq[Uplink][i] {
					t.Fatal("RUN and UPLINK blink out of step")
				}
			}
		}
	}
}

// TestButton: a debounced short press acknowledges once and the ALERT LED
// goes dark at once; a new alert lights it again; bounces and glitches
// do nothing; a long press is a lamp test that acknowledges nothing and
// leaves the relays alone.
func TestButton(t *testing.T) {
	r := newRig(t, false, false)
	r.status = flowing()
	r.status.Unacked.Critical = 1
	r.run(time.Second)
	if r.alarm.Read() != gpio.High {
		t.Fatal("alarm relay not energized for a critical alert")
	}

	// A one-sample glitch is not a press.
	r.button.Out(gpio.Low)
	r.run(TickEvery)
	r.button.Out(gpio.High)
	r.run(200 * time.Millisecond)
	if r.acks != 0 {
		t.Fatal("a 25 ms glitch acknowledged")
	}

	// A bouncing press of 300 ms: one acknowledge, on release.
	for _, l := range []gpio.Level{gpio.Low, gpio.High, gpio.Low, gpio.High, gpio.Low} {
		r.button.Out(l)
		r.run(TickEvery)
	}
	r.run(300 * time.Millisecond)
	if r.acks != 0 {
		t.Fatal("acknowledged before the release")
	}
	for _, l := range []gpio.Level{gpio.High, gpio.Low, gpio.High} {
		r.button.Out(l)
		r.run(TickEvery)
	}
	r.run(2 * TickEvery)
	if r.acks != 1 {
		t.Fatalf("%d acknowledges for one press", r.acks)
	}
	seq, _ := r.run(2 * time.Second)
	if got := classify(seq[Alert]); got != Off {
		t.Errorf("ALERT after the acknowledge: %v", got)
	}
	if r.alarm.Read() != gpio.Low {
		t.Error("alarm relay still energized after the acknowledge")
	}

	// A new alert lights it again.
	r.status.Unacked.High = 1
	r.run(pollEvery)
	seq, _ = r.run(2 * time.Second)
	if got := classify(seq[Alert]); got != Slow {
		t.Errorf("ALERT after a new high alert: %v", got)
	}

	// A long press: after 5 s every LED is on for 3 s; no acknowledge;
	// the relays stay as they were.
	r.button.Out(gpio.Low)
	r.run(LongPress - 100*time.Millisecond)
	seq, _ = r.run(200 * time.Millisecond)
	if !seq[Link][len(seq[Link])-1] || !seq[Alert][len(seq[Alert])-1] || !seq[Uplink][len(seq[Uplink])-1] || !seq[Run][len(seq[Run])-1] {
		t.Error("no lamp test after a 5 s press")
	}
	r.button.Out(gpio.High)
	seq, _ = r.run(LampTestFor - time.Second)
	for i := range NumLEDs {
		if classify(seq[i]) != On {
			t.Errorf("lamp test: %s %v", LEDNames[i], classify(seq[i]))
		}
	}
	if r.acks != 1 {
		t.Errorf("the long press acknowledged (%d)", r.acks)
	}
	if r.alarm.Read() != gpio.High || r.health.Read() != gpio.High {
		t.Error("the lamp test moved a relay")
	}
	r.run(2 * time.Second)
	seq, _ = r.run(2 * time.Second)
	if got := classify(seq[Alert]); got != Slow {
		t.Errorf("ALERT after the lamp test: %v", got)
	}
}

// TestRelays: the alarm relay follows its severity; the health relay is
// energized only while running, alive and not degraded; Stop releases
// both and darkens every LED; active-low relays are inverted.
func TestRelays(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		r := newRig(t, false, activeLow)
		energized := func(p *gpiotest.Pin) bool { return p.Read() != gpio.Level(activeLow) }
		for _, tc := range []struct {
			status        Status
			at            Level
			alarm, health bool
		}{
			{Status{State: event.StateStarting}, LevelHigh, false, false},
			{flowing(), LevelHigh, false, true},
			{Status{State: event.StateLearning, Learning: true, Fresh: true}, LevelHigh, false, true},
			{Status{State: event.StateDegraded, Fresh: true}, LevelHigh, false, false},
			{Status{State: event.StateMonitoring, Fresh: false}, LevelHigh, false, false},
			{Status{State: event.StateMonitoring, Fresh: true, Unacked: event.Severities{Medium: 4}}, LevelHigh, false, true},
			{Status{State: event.StateMonitoring, Fresh: true, Unacked: event.Severities{Medium: 4}}, LevelMedium, true, true},
			{Status{State: event.StateMonitoring, Fresh: true, Unacked: event.Severities{High: 1}}, LevelHigh, true, true},
			{Status{State: event.StateMonitoring, Fresh: true, Unacked: event.Severities{Critical: 1}}, LevelCritical, true, true},
		} {
			r.status, r.alarmAt = tc.status, tc.at
			r.run(2 * pollEvery)
			if energized(r.alarm) != tc.alarm || energized(r.health) != tc.health {
				t.Errorf("active low %v, %+v at %v: alarm %v health %v, want %v %v", activeLow, tc.status, tc.at,
					energized(r.alarm), energized(r.health), tc.alarm, tc.health)
			}
		}
		r.c.Stop()
		for i, p := range r.leds {
			if p.Read() != gpio.Low {
				t.Errorf("%s lit after Stop", LEDNames[i])
			}
		}
		if energized(r.alarm) || energized(r.health) {
			t.Error("a relay energized after Stop")
		}
	}
}

// failingOut fails its first writes.
type failingOut struct {
	fails int
	level gpio.Level
}

func (f *failingOut) Out(l gpio.Level) error {
	if f.fails > 0 {
		f.fails--
		return fmt.Errorf("EIO")
	}
	f.level = l
	return nil
}
func (f *failingOut) String() string { return "failing" }

// An output that fails is retried on the next tick, and the others go on.
func TestOutputErrors(t *testing.T) {
	bad := &failingOut{fails: 3}
	good := &gpiotest.Pin{N: "GPIO17"}
	c := NewController(Options{LEDs: [NumLEDs]Output{bad, good}, Lights: func() Lights { return Lights{LEDs: [NumLEDs]Pattern{On, On}} }})
	now := time.Unix(0, 0)
	for range 5 {
		c.Step(now)
		now = now.Add(TickEvery)
	}
	if bad.level != gpio.High || good.Read() != gpio.High {
		t.Errorf("after errors: failing %v, good %v", bad.level, good.Read())
	}
}

// countingOut counts its writes.
type countingOut struct {
	mu     sync.Mutex
	writes []gpio.Level
}

func (o *countingOut) Out(l gpio.Level) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes = append(o.writes, l)
	return nil
}
func (o *countingOut) String() string { return "counting" }

// Run steps at its clock's time, never at a tick's: after a stall the
// tick received is stale (the one due when the stall began), and a step
// at its time flickers the LEDs back to an old phase. With the clock
// standing still, a slow blink must stay in its first, lit half however
// many real ticks go by.
func TestRunStepsAtTheClock(t *testing.T) {
	out := &countingOut{}
	still := time.Unix(1_700_000_000, 0)
	c := NewController(Options{
		LEDs:   [NumLEDs]Output{Alert: out},
		Lights: func() Lights { return Lights{LEDs: [NumLEDs]Pattern{Alert: Slow}} },
		Now:    func() time.Time { return still },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	time.Sleep(2*slowHalf*TickEvery - 200*time.Millisecond) // a real half past, and most of the next
	// What Run wrote before it is stopped: Stop's own write would hide a
	// stale step that left the LED dark.
	out.mu.Lock()
	writes := slices.Clone(out.writes)
	out.mu.Unlock()
	cancel()
	<-done
	if len(writes) == 0 {
		t.Fatal("Run wrote nothing")
	}
	for i, l := range writes {
		if l != gpio.High {
			t.Fatalf("write %d of %v: %v, with the clock standing in the lit half", i, writes, l)
		}
	}
	if last := out.writes[len(out.writes)-1]; last != gpio.Low {
		t.Errorf("writes %v: want dark at Stop", out.writes)
	}
}

// The panel sees every change of pattern and of light.
type recordPanel struct{ shows []Lights }

func (p *recordPanel) Show(l Lights, lit [NumLEDs]bool) { p.shows = append(p.shows, l) }

func TestControllerPanel(t *testing.T) {
	p := &recordPanel{}
	l := Lights{LEDs: [NumLEDs]Pattern{On}}
	c := NewController(Options{Panel: p, Lights: func() Lights { return l }})
	now := time.Unix(0, 0)
	for range 10 {
		c.Step(now)
		now = now.Add(TickEvery)
	}
	if len(p.shows) != 1 {
		t.Fatalf("%d draws of a steady panel", len(p.shows))
	}
	l.LEDs[Alert] = Fast
	for range 20 { // 500 ms: 4 changes of light, one of pattern
		c.Step(now)
		now = now.Add(TickEvery)
	}
	if len(p.shows) < 4 || p.shows[len(p.shows)-1].LEDs[Alert] != Fast {
		t.Errorf("draws %d, last %+v", len(p.shows), p.shows[len(p.shows)-1])
	}
	c.Stop()
	if p.shows[len(p.shows)-1] != (Lights{}) {
		t.Error("Stop did not draw the panel dark")
	}
}

// BenchmarkControllerStep: one tick of the timer, on gpiotest pins, with
// a blinking LED (the cost of the LEDs is 40 of these a second).
func BenchmarkControllerStep(b *testing.B) {
	var o Options
	for i := range o.LEDs {
		o.LEDs[i] = &gpiotest.Pin{N: fmt.Sprint(i)}
	}
	l := Lights{LEDs: [NumLEDs]Pattern{Heartbeat, On, Slow, Fast}, Healthy: true}
	o.Lights = func() Lights { return l }
	o.Button = &gpiotest.Pin{N: "button", L: gpio.High}
	o.ButtonActiveLow = true
	c := NewController(o)
	now := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		c.Step(now)
		now = now.Add(TickEvery)
	}
}
