package uplink

import (
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Numbering and counting when the disk is lost, damaged or unreadable:
// no number is used twice, and every message lost is counted once.

// TestSpoolUnknownNumbers: a start where not even meta can be read
// cannot know the numbers used before: it numbers from the clock, above
// any of them, and keeps those numbers once the disk works again.
func TestSpoolUnknownNumbers(t *testing.T) {
	fs := newMemFS(-1)
	e := newSpoolEnv(t, fs)
	s := e.mustOpen(DefaultLimits)
	s.Append(items("a", "b", "c"))
	s.Close()

	fs.fail = func(op, name string) error { return syscall.EIO }
	s, warn := e.open(DefaultLimits)
	if warn == nil || !strings.Contains(warn.Error(), "numbering starts at") {
		t.Fatalf("warning %v", warn)
	}
	clockSeq := uint64(e.clock.now().UnixMicro())
	first, err := s.Append(items("x"))
	if err == nil || first < clockSeq {
		t.Fatalf("with the disk unreadable: first %d (want at least %d), err %v", first, clockSeq, err)
	}

	// The disk works again: what it held comes back, before the
	// messages held in memory, and numbering goes on above the clock's.
	fs.fail = nil
	e.clock.advance(diskRetry)
	second, err := s.Append(items("y"))
	if err != nil || second != first+1 {
		t.Fatalf("after the disk came back: %d, %v", second, err)
	}
	if got, want := joined(t, s), "1:a 2:b 3:c "+itoa(first)+":x "+itoa(second)+":y"; got != want {
		t.Fatalf("contents %s, want %s", got, want)
	}
	s.Close()
	s, warn = e.open(DefaultLimits)
	if warn == nil || !strings.Contains(warn.Error(), "1 messages (seq "+itoa(first)+" to "+itoa(first)+")") {
		t.Fatalf("the message held in memory at the stop is not reported lost: %v", warn)
	}
	defer s.Close()
	if third, _ := s.Append(items("z")); third != second+1 {
		t.Fatalf("after a restart, numbering went on at %d, want %d", third, second+1)
	}
	// x was held in memory when the spool closed: lost, and counted.
	if st := s.Stats(); st.Drops != 1 {
		t.Fatalf("the message lost at the stop is not counted once: %+v", st)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// fill appends n messages of size bytes to a new spool, and closes it.
func (e *spoolEnv) fill(lim Limits, n, size int) {
	e.t.Helper()
	s := e.mustOpen(lim)
	for range n {
		if _, err := s.Append([]Item{sized(size)}); err != nil {
			e.t.Fatal(err)
		}
	}
	s.Close()
}

// TestSpoolDamagedTail: the end of the last segment damaged (or cut by a
// power cut) loses what it held; the loss is counted once and numbering
// goes on above every number reserved, so that none is used twice.
func TestSpoolDamagedTail(t *testing.T) {
	e := newSpoolEnv(t, nil)
	lim := Limits{MaxBytes: 4 * minSegment, MaxMessages: 1000}
	e.fill(lim, 10, 100)
	recLen := int64(recHeader + recFixed + 3 + 100)
	corrupt(t, filepath.Join(e.dir, spoolDirName, segName(1)), 7*recLen+20) // the 8th record
	s, warn := e.open(lim)
	if warn == nil || !strings.Contains(warn.Error(), "3 messages (seq 8 to 10)") || !strings.Contains(warn.Error(), "numbering goes on at") {
		t.Fatalf("warning %v", warn)
	}
	st := s.Stats()
	if st.Depth != 7 || st.Drops != 3 {
		t.Fatalf("stats %+v", st)
	}
	first, _ := s.Append(items("new"))
	if first <= 10 || first < seqBlock {
		t.Fatalf("numbering went on at %d: a number handed out before may come again", first)
	}
	s.Close()
	s = e.mustOpen(lim)
	defer s.Close()
	if st := s.Stats(); st.Drops != 3 || st.Depth != 8 {
		t.Fatalf("after another restart: %+v (counted again?)", st)
	}
}

// TestSpoolDropCountedOnce: a hole left by damage between two segments
// is counted at the first start that finds it, not at every start.
func TestSpoolDropCountedOnce(t *testing.T) {
	e := newSpoolEnv(t, nil)
	lim := Limits{MaxBytes: 8 * minSegment, MaxMessages: 1000}
	e.fill(lim, 200, 400)
	corrupt(t, filepath.Join(e.dir, spoolDirName, segName(1)), 20)
	s, warn := e.open(lim)
	if warn == nil {
		t.Fatal("no warning for the damage")
	}
	drops := s.Stats().Drops
	if drops == 0 {
		t.Fatal("not counted")
	}
	for range 3 {
		s.Close()
		s = e.mustOpen(lim)
		if st := s.Stats(); st.Drops != drops {
			t.Fatalf("counted again: %d, first %d", st.Drops, drops)
		}
	}
	s.Close()
}

// TestSpoolReadError: a segment that cannot be read (an I/O error) does
// not stall delivery: its remaining messages are dropped, counted and
// logged, and the next segments are sent.
func TestSpoolReadError(t *testing.T) {
	fs := newMemFS(-1)
	e := newSpoolEnv(t, fs)
	lim := Limits{MaxBytes: 8 * minSegment, MaxMessages: 1000}
	s := e.mustOpen(lim)
	defer s.Close()
	for range 200 {
		s.Append([]Item{sized(400)})
	}
	if len(s.segs) < 3 {
		t.Fatalf("segments: %d", len(s.segs))
	}
	bad := path.Join(e.dir, spoolDirName, segName(s.segs[1].first))
	fs.fail = func(op, name string) error {
		if op == "read" && name == bad {
			return syscall.EIO
		}
		return nil
	}
	es, err := s.Peek(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if uint64(len(es)) != st.Depth || st.Drops == 0 || st.Depth+st.Drops != 200 || es[len(es)-1].Seq != 200 {
		t.Fatalf("peeked %d, last %d, %+v", len(es), es[len(es)-1].Seq, st)
	}
	if !strings.Contains(e.log.String(), "cannot read a segment") || !strings.Contains(e.log.String(), "input/output error") {
		t.Fatalf("log:\n%s", e.log.String())
	}
}

// TestSpoolDropsKeptAcrossRecovery: drops counted while the disk could
// not be opened are added to those meta has once it can, not lost.
func TestSpoolDropsKeptAcrossRecovery(t *testing.T) {
	fs := newMemFS(-1)
	e := newSpoolEnv(t, fs)
	lim := Limits{MaxBytes: DefaultLimits.MaxBytes, MaxMessages: 3}
	s := e.mustOpen(lim)
	s.Append(items("a", "b", "c", "d", "e")) // 2 dropped
	s.Close()
	fs.fail = func(op, name string) error { return syscall.EROFS }
	s, _ = e.open(lim)
	s.Append(items("f", "g", "h", "i")) // 1 dropped in memory
	if st := s.Stats(); st.Drops != 1 {
		t.Fatalf("in memory: %+v", st)
	}
	fs.fail = nil
	e.clock.advance(diskRetry)
	s.Append(items("j"))
	// On disk c, d, e; in memory g, h, i, then j: the limit drops the
	// four oldest.
	st := s.Stats()
	if st.Depth != 3 || st.Drops != 2+1+4 || !strings.HasSuffix(joined(t, s), ":i "+itoa(st.LastSeq)+":j") {
		t.Fatalf("after recovery: %+v, %s", st, joined(t, s))
	}
	s.Close()
}

// TestSpoolReusedTailClean: a segment reused for newer messages keeps
// the records of its earlier use after the new ones, cut anywhere; a
// restart takes them for the clean end they are, not for damage (which
// would skip numbers and warn).
func TestSpoolReusedTailClean(t *testing.T) {
	e := newSpoolEnv(t, nil)
	lim := Limits{MaxBytes: 2 * minSegment, MaxMessages: 100_000}
	s := e.mustOpen(lim)
	for i := range 300 { // several rounds of reuse, records of varying sizes
		s.Append([]Item{sized(100 + i%7*37)})
	}
	last := s.Stats().LastSeq
	drops := s.Stats().Drops
	if drops == 0 {
		t.Fatal("no segment was reused")
	}
	s.Close()
	s = e.mustOpen(lim)
	defer s.Close()
	if first, _ := s.Append(items("x")); first != last+1 {
		t.Fatalf("numbering went on at %d, want %d", first, last+1)
	}
	if st := s.Stats(); st.Drops != drops {
		t.Fatalf("drops %d, before %d", st.Drops, drops)
	}
}
