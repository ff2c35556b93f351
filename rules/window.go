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
// for each of a few window lengths, and divides only when a time leaves
// it: about once a window for each length, since packet times mostly go
// forward.
type windows struct {
	c    [windowLengths]window
	next uint8 // the entry a new length replaces
}

// windowLengths is how many window lengths windows keeps: the built-in
// detectors use three or four; the rules' rates add theirs, which then
// take turns.
const windowLengths = 4

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
	slot := -1
	for i := range ws.c {
		c := &ws.c[i]
		if c.per != per {
			continue
		}
		if now >= c.lo && now < c.hi {
			return c.w
		}
		slot = i
		break
	}
	w := now / per
	if now < 0 {
		return w // before 1970: the quotient rounds towards zero, and the window is not [w*per, (w+1)*per)
	}
	if slot < 0 {
		slot = int(ws.next % windowLengths)
		ws.next++
	}
	lo := w * per
	hi := lo + per
	if hi < lo {
		hi = math.MaxInt64 // the last window: now is below it, or the division is made again
	}
	ws.c[slot] = window{per: per, lo: lo, hi: hi, w: w}
	return w
}
