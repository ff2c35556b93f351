package rules

import (
	"math"
	"math/bits"
)

// windows finds the fixed window of packet time that holds a time: now /
// per, for the rate and code-set counters of the rules and of the
// built-in detectors, on every message.
//
// A 64-bit processor divides in one instruction. A 32-bit one has no
// 64-bit divide: Go calls a software routine of several hundred
// instructions (callgrind, GOARCH=386: 815 instructions a packet on the
// benchmark capture, an eighth of the whole), and the Pi Zero's ARMv6 has
// no divide instruction at all. There windows keeps the last window found
// for each window length in use, and divides only when a time leaves it:
// about once a window for each length, since packet times mostly go
// forward.
//
// The lengths are the detectors' (four with the defaults and a
// baseline) and those of the rules' rates. They are kept in four sets of
// two entries, a length's set chosen by a hash of it: three lengths that
// fall in one set and take turns divide every time, as before.
type windows struct {
	c    [windowSets][2]window
	turn [windowSets]uint8 // the entry of the set a new length replaces
}

const windowSets = 4

// window is the index w of the window [lo, hi) of length per.
type window struct {
	per, lo, hi, w int64
}

// index is now / per; per is positive.
func (ws *windows) index(now, per int64) int64 {
	if bits.UintSize == 64 {
		return now / per
	}
	return ws.cached(now, per)
}

// cached is index by the kept windows, on any processor (tests call it).
func (ws *windows) cached(now, per int64) int64 {
	if now < 0 || per <= 0 {
		// Before 1970 the quotient rounds towards zero, and the window
		// is not [w*per, (w+1)*per); a length of 0 or less is none (and
		// divides as it did).
		return now / per
	}
	s := uint64(per) * 0x9e3779b97f4a7c15 >> 62
	set := &ws.c[s]
	e := &set[0]
	switch {
	case set[0].per == per:
	case set[1].per == per:
		e = &set[1]
	default:
		e = &set[ws.turn[s]&1]
		ws.turn[s]++
	}
	if e.per == per && now >= e.lo && now < e.hi {
		return e.w
	}
	w := now / per
	lo := w * per
	hi := lo + per
	if hi < lo {
		hi = math.MaxInt64 // the last window: now is below it, or the division is made again
	}
	*e = window{per: per, lo: lo, hi: hi, w: w}
	return w
}
