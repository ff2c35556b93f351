package rules

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestWindowsLikeDivision checks the kept windows against the division
// they stand for, on any processor: times that go forward, back, jump,
// sit on the edges of windows, precede 1970 or reach the end of int64,
// with more window lengths than are kept.
func TestWindowsLikeDivision(t *testing.T) {
	pers := []int64{1, 7, 1e9, 10e9, 15e9, 60e9, 3600e9, 86400e9, math.MaxInt64 / 3, math.MaxInt64, -1, -10}
	var ws windows
	check := func(now, per int64) {
		t.Helper()
		if got, want := ws.cached(now, per), now/per; got != want {
			t.Fatalf("cached(%d, %d) = %d, want %d", now, per, got, want)
		}
		if got, want := ws.index(now, per), now/per; got != want {
			t.Fatalf("index(%d, %d) = %d, want %d", now, per, got, want)
		}
	}
	edges := []int64{0, 1, -1, math.MaxInt64, math.MaxInt64 - 1, math.MinInt64, math.MinInt64 + 1}
	for _, per := range pers {
		for _, e := range edges {
			check(e, per)
		}
		for _, w := range []int64{1, 2, 1000, math.MaxInt64 / per} {
			if w > math.MaxInt64/per {
				continue
			}
			lo := w * per
			check(lo, per)
			check(lo-1, per)
			if lo < math.MaxInt64 {
				check(lo+1, per)
			}
			check(-lo, per)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	now := int64(1_700_000_000e9)
	for range 200_000 {
		switch r.IntN(10) {
		case 0:
			now -= r.Int64N(120e9) // back
		case 1:
			now += r.Int64N(7200e9) // a silence
		case 2:
			now = r.Int64() - r.Int64() // anywhere, negative too
		default:
			now += r.Int64N(50e6)
		}
		check(now, pers[r.IntN(len(pers))])
	}
}

// TestWindowsKeepLengths checks that the lengths in use are kept, and a
// time inside a kept window is found without dividing again.
func TestWindowsKeepLengths(t *testing.T) {
	var ws windows
	now := int64(1_700_000_000e9)
	pers := []int64{1e9, 10e9, 15e9, 60e9} // the detectors' with a baseline
	kept := func(per int64) *window {
		for s := range ws.c {
			for i := range ws.c[s] {
				if ws.c[s][i].per == per {
					return &ws.c[s][i]
				}
			}
		}
		return nil
	}
	for _, per := range pers {
		ws.cached(now, per)
	}
	for _, per := range pers {
		if c := kept(per); c == nil || c.w != now/per || now < c.lo || now >= c.hi || c.hi-c.lo != per {
			t.Errorf("the window of %d holding %d: %+v", per, now, c)
		}
	}
	// A later window of a kept length replaces its own entry, not another.
	ws.cached(now+60e9, 60e9)
	for _, per := range pers {
		if c := kept(per); c == nil || per != 60e9 && c.w != now/per || per == 60e9 && c.w != (now+60e9)/60e9 {
			t.Errorf("after the next window of 60 s, the window of %d: %+v", per, c)
		}
	}
	// Poisoned, an entry that is used answers its own w: the time is
	// found in the window, not divided.
	kept(10e9).w = -42
	if got := ws.cached(now+1, 10e9); got != -42 {
		t.Errorf("cached = %d, want the kept window's index", got)
	}
	// No length of 0 or less is kept; a negative one divides as before.
	for _, per := range []int64{-10, -1} {
		for _, now := range []int64{25, 35, 1e18} {
			if got := ws.cached(now, per); got != now/per {
				t.Errorf("cached(%d, %d) = %d, want %d", now, per, got, now/per)
			}
		}
		if kept(per) != nil {
			t.Errorf("a length of %d was kept", per)
		}
	}
}
