package uplink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// item is a spool item whose payload is its seq and a tag.
func item(tag string) Item {
	return Item{Topic: "t/" + tag, Encode: func(seq uint64, b []byte) []byte {
		b = binary.BigEndian.AppendUint64(b, seq)
		return append(b, tag...)
	}}
}

func items(tags ...string) []Item {
	var out []Item
	for _, t := range tags {
		out = append(out, item(t))
	}
	return out
}

// sized is an item whose payload is n bytes long.
func sized(n int) Item {
	return Item{Topic: "t/x", Encode: func(seq uint64, b []byte) []byte {
		b = binary.BigEndian.AppendUint64(b, seq)
		return append(b, bytes.Repeat([]byte{'x'}, n-8)...)
	}}
}

// clock is a fake clock for the spool's retry and log timers.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// spoolEnv opens spools on one filesystem and records their log.
type spoolEnv struct {
	t     testing.TB
	fs    fileSystem
	clock *clock
	dir   string
	log   testenv.Buffer
}

func newSpoolEnv(t testing.TB, fs fileSystem) *spoolEnv {
	dir := "/state"
	if fs == nil {
		fs, dir = osFS{}, t.TempDir()
	}
	return &spoolEnv{t: t, fs: fs, clock: newClock(), dir: dir}
}

func (e *spoolEnv) open(lim Limits) (*Spool, error) {
	e.t.Helper()
	s, warn, err := openSpool(e.fs, e.clock.now, e.dir, lim, slog.New(slog.NewTextHandler(&e.log, nil)))
	if err != nil {
		e.t.Fatalf("OpenSpool: %v", err)
	}
	return s, warn
}

func (e *spoolEnv) mustOpen(lim Limits) *Spool {
	e.t.Helper()
	s, warn := e.open(lim)
	if warn != nil {
		e.t.Fatalf("OpenSpool warned: %v", warn)
	}
	return s
}

func openSpoolDir(t testing.TB, dir string, lim Limits) *Spool {
	t.Helper()
	s, warn, err := OpenSpool(dir, lim, nil)
	if err != nil || warn != nil {
		t.Fatalf("OpenSpool: %v, warning %v", err, warn)
	}
	return s
}

// contents lists "seq:tag" of every message in the spool, checking that
// the payload carries the key's seq.
func contents(t testing.TB, s *Spool) []string {
	t.Helper()
	es, err := s.Peek(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Dropped {
			if e.Topic != "" || len(e.Payload) != 0 {
				t.Fatalf("dropped entry %d with topic %q, %d bytes", e.Seq, e.Topic, len(e.Payload))
			}
			out = append(out, fmt.Sprintf("%d:dropped", e.Seq))
			continue
		}
		if got := binary.BigEndian.Uint64(e.Payload); got != e.Seq {
			t.Fatalf("payload carries seq %d, key %d", got, e.Seq)
		}
		tag := string(e.Payload[8:])
		if strings.HasPrefix(e.Topic, "t/") && e.Topic != "t/"+tag && e.Topic != "t/x" {
			t.Fatalf("topic %q for %q", e.Topic, tag)
		}
		if e.Topic == "t/x" {
			tag = "x"
		}
		out = append(out, fmt.Sprintf("%d:%s", e.Seq, tag))
	}
	return out
}

func joined(t testing.TB, s *Spool) string { return strings.Join(contents(t, s), " ") }

func TestSpoolOrderAckReopen(t *testing.T) {
	dir := t.TempDir()
	s := openSpoolDir(t, dir, DefaultLimits)
	first, err := s.Append(items("a", "b", "c"))
	if err != nil || first != 1 {
		t.Fatalf("first %d, %v", first, err)
	}
	if first, _ = s.Append(items("d")); first != 4 {
		t.Fatalf("first %d", first)
	}
	if got := joined(t, s); got != "1:a 2:b 3:c 4:d" {
		t.Fatalf("contents %s", got)
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Depth != 2 || st.LastSeq != 4 || st.Oldest != 3 {
		t.Fatalf("stats %+v", st)
	}
	es, _ := s.Peek(4, 10)
	if len(es) != 1 || es[0].Seq != 4 {
		t.Fatalf("Peek(4): %+v", es)
	}
	es, _ = s.Peek(0, 1)
	if len(es) != 1 || es[0].Seq != 3 {
		t.Fatalf("Peek(0, 1): %+v", es)
	}
	s.Close()

	// Reopened: the unacknowledged messages are there, and numbering
	// goes on.
	s = openSpoolDir(t, dir, DefaultLimits)
	if got := joined(t, s); got != "3:c 4:d" {
		t.Fatalf("after reopen: %s", got)
	}
	if first, _ = s.Append(items("e")); first != 5 {
		t.Fatalf("after reopen, first %d", first)
	}
	if err := s.Ack(100); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Depth != 0 || st.Bytes != 0 || st.LastSeq != 5 {
		t.Fatalf("stats %+v", st)
	}
	s.Close()
	s = openSpoolDir(t, dir, DefaultLimits)
	defer s.Close()
	if first, _ = s.Append(items("f")); first != 6 {
		t.Fatalf("empty spool reopened: first %d, want 6", first)
	}
}

// TestSpoolManySegments: messages across many segments come back in
// order, after acknowledgements in between and a reopen; acknowledged
// segments are deleted, giving their space back.
func TestSpoolManySegments(t *testing.T) {
	e := newSpoolEnv(t, nil)
	lim := Limits{MaxBytes: 8 << 20, MaxMessages: 100_000}
	s := e.mustOpen(lim)
	var want []string
	for i := range 2000 {
		tag := fmt.Sprintf("m%d", i)
		if _, err := s.Append([]Item{item(tag + strings.Repeat(".", 400))}); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%d:%s", i+1, tag+strings.Repeat(".", 400)))
	}
	segs, _ := filepath.Glob(filepath.Join(e.dir, spoolDirName, "*"+segSuffix))
	if len(segs) < 10 {
		t.Fatalf("%d segments for 2000 messages of 430 bytes in segments of %d", len(segs), s.segSize)
	}
	if got := contents(t, s); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("contents differ: %d messages, want %d", len(got), len(want))
	}
	s.Ack(1500)
	st := s.Stats()
	if st.Depth != 500 || st.Oldest != 1501 {
		t.Fatalf("after Ack(1500): %+v", st)
	}
	after, _ := filepath.Glob(filepath.Join(e.dir, spoolDirName, "*"+segSuffix))
	if len(after) >= len(segs)/2 {
		t.Fatalf("acknowledged segments not deleted: %d of %d left", len(after), len(segs))
	}
	// Peek from the middle of a segment, from a cold cursor.
	es, _ := s.Peek(1777, 3)
	if len(es) != 3 || es[0].Seq != 1777 || es[2].Seq != 1779 {
		t.Fatalf("Peek(1777, 3): %v", es)
	}
	s.Close()
	s = e.mustOpen(lim)
	defer s.Close()
	if got := contents(t, s); strings.Join(got, " ") != strings.Join(want[1500:], " ") {
		t.Fatalf("after reopen: %d messages", len(got))
	}
	if st2 := s.Stats(); st2.Bytes != st.Bytes || st2.Depth != 500 {
		t.Fatalf("bytes after reopen %d, before %d", st2.Bytes, st.Bytes)
	}
}

func TestSpoolMaxMessagesDropsOldest(t *testing.T) {
	e := newSpoolEnv(t, nil)
	lim := Limits{MaxBytes: 1 << 20, MaxMessages: 3}
	s := e.mustOpen(lim)
	for _, tag := range []string{"a", "b", "c", "d", "e"} {
		if _, err := s.Append(items(tag)); err != nil {
			t.Fatal(err)
		}
	}
	if got := joined(t, s); got != "3:c 4:d 5:e" {
		t.Fatalf("contents %s", got)
	}
	if st := s.Stats(); st.Drops != 2 || st.Depth != 3 {
		t.Fatalf("stats %+v", st)
	}
	// A batch larger than the limit keeps its newest; every message got
	// its number, so the gap shows.
	if first, _ := s.Append(items("f", "g", "h", "i")); first != 6 {
		t.Fatalf("first %d", first)
	}
	if got := joined(t, s); got != "7:g 8:h 9:i" {
		t.Fatalf("contents %s", got)
	}
	s.flushDropLog(true)
	if log := e.log.String(); !strings.Contains(log, "dropped the oldest messages") || !strings.Contains(log, "max_messages (3) reached") {
		t.Fatalf("drops not logged with their reason:\n%s", log)
	}
	s.Close()
	// The drops are counted for good.
	s = e.mustOpen(lim)
	defer s.Close()
	if st := s.Stats(); st.Drops != 6 || st.Depth != 3 {
		t.Fatalf("stats after reopen %+v", st)
	}
}

// TestSpoolMaxBytes: the spool never holds more than max_bytes of disk;
// when it must grow beyond, its oldest segment is reused, its messages
// dropped and counted, and they show as a gap before what is left.
func TestSpoolMaxBytes(t *testing.T) {
	e := newSpoolEnv(t, newMemFS(-1))
	lim := Limits{MaxBytes: 4 * minSegment, MaxMessages: 100_000}
	s := e.mustOpen(lim)
	defer s.Close()
	const n = 1000
	for range n {
		if _, err := s.Append([]Item{sized(500)}); err != nil {
			t.Fatal(err)
		}
		if h := s.Stats().Held; h > uint64(lim.MaxBytes) {
			t.Fatalf("the spool holds %d bytes, above max_bytes %d", h, lim.MaxBytes)
		}
	}
	st := s.Stats()
	got := contents(t, s)
	if st.Drops == 0 || uint64(len(got)) != st.Depth || st.Depth+st.Drops != n {
		t.Fatalf("%d held, %d dropped, of %d: %+v", len(got), st.Drops, n, st)
	}
	if want := fmt.Sprintf("%d:x", st.Drops+1); got[0] != want {
		t.Fatalf("oldest held %s, want %s: the drops are the oldest", got[0], want)
	}
	s.flushDropLog(true)
	if log := e.log.String(); !strings.Contains(log, "max_bytes") {
		t.Fatalf("drop reason not logged:\n%s", log)
	}
	if st.Bytes > uint64(lim.MaxBytes) || st.Capacity != uint64(lim.MaxBytes) {
		t.Fatalf("bytes %d, capacity %d", st.Bytes, st.Capacity)
	}
}

// TestSpoolTooLarge: a message that fits no segment gets its number and is
// dropped, counted; the others are spooled.
func TestSpoolTooLarge(t *testing.T) {
	e := newSpoolEnv(t, newMemFS(-1))
	s := e.mustOpen(Limits{MaxBytes: MinSpoolBytes, MaxMessages: 10})
	first, err := s.Append([]Item{item("a"), sized(minSegment), item("c")})
	if err != nil || first != 1 {
		t.Fatal(first, err)
	}
	// The dropped one keeps its place, so that the segment has no gap,
	// and is to be acknowledged without publishing.
	if got := joined(t, s); got != "1:a 2:dropped 3:c" {
		t.Fatalf("contents %s", got)
	}
	if st := s.Stats(); st.Drops != 1 {
		t.Fatalf("stats %+v", st)
	}
	s.Close()
	s = e.mustOpen(Limits{MaxBytes: MinSpoolBytes, MaxMessages: 10})
	defer s.Close()
	if st := s.Stats(); st.Drops != 1 || st.Depth != 3 {
		t.Fatalf("reopened: %+v", st)
	}
}

// TestSpoolDiskFull is the field failure: the state directory on a small
// filesystem. The spool takes its space as it grows, leaves a reserve for
// other files, and, when it cannot grow, drops its oldest messages,
// counted and logged, instead of failing; when other files take the rest
// of the disk it keeps working in what it holds; when space comes back,
// it grows again.
func TestSpoolDiskFull(t *testing.T) {
	const disk = 2 << 20
	fs := newMemFS(disk)
	e := newSpoolEnv(t, fs)
	s := e.mustOpen(DefaultLimits)
	defer s.Close()
	seq := uint64(0)
	add := func(k int) {
		t.Helper()
		for range k {
			first, err := s.Append([]Item{sized(700)})
			if err != nil {
				t.Fatalf("append %d: %v\n%s", seq+1, err, fs)
			}
			if first != seq+1 {
				t.Fatalf("seq %d, want %d", first, seq+1)
			}
			seq = first
		}
	}
	add(5000) // 3.5 MB of messages into a 2 MB disk
	st := s.Stats()
	if st.Drops == 0 || st.Depth+st.Drops != seq {
		t.Fatalf("after 5000 messages: %+v", st)
	}
	if free := disk - fs.used(); free < minFreeReserve-s.segSize {
		t.Fatalf("the spool left %d bytes free, want about %d for other files", free, minFreeReserve)
	}
	if st.Capacity >= uint64(DefaultLimits.MaxBytes) || st.Held > st.Capacity {
		t.Fatalf("capacity %d, held %d: the limit is not kept within the disk", st.Capacity, st.Held)
	}
	s.flushDropLog(true)
	if log := e.log.String(); !strings.Contains(log, "the disk is nearly full") {
		t.Fatalf("the drop's reason is not logged:\n%s", log)
	}
	got := contents(t, s)
	if uint64(len(got)) != st.Depth || got[len(got)-1] != fmt.Sprintf("%d:x", seq) {
		t.Fatalf("held %d, depth %d, last %s", len(got), st.Depth, got[len(got)-1])
	}

	// Another program fills the disk: the spool goes on in what it holds.
	fs.SetCapacity(fs.used())
	e.clock.advance(2 * time.Second)
	held := s.Stats().Held
	add(3000)
	if st := s.Stats(); st.Held != held || st.DiskErr != nil {
		t.Fatalf("on a disk filled by others: held %d, was %d; %v", st.Held, held, st.DiskErr)
	}

	// Space comes back: the spool grows again.
	fs.SetCapacity(8 << 20)
	e.clock.advance(2 * time.Second)
	drops := s.Stats().Drops
	add(3000)
	if st := s.Stats(); st.Held <= held || st.Drops != drops {
		t.Fatalf("after space came back: held %d (was %d), drops %d (was %d)", st.Held, held, st.Drops, drops)
	}
}

// TestSpoolRestartOnFullDisk: a spool reopened on a disk with no space
// left works: it needs no new space to open, to number messages or to
// drop.
func TestSpoolRestartOnFullDisk(t *testing.T) {
	fs := newMemFS(1 << 20)
	e := newSpoolEnv(t, fs)
	s := e.mustOpen(DefaultLimits)
	for range 3000 {
		s.Append([]Item{sized(300)})
	}
	before := s.Stats()
	s.Close()
	fs.SetCapacity(fs.used())
	s = e.mustOpen(DefaultLimits)
	defer s.Close()
	if st := s.Stats(); st.Depth != before.Depth || st.Drops != before.Drops {
		t.Fatalf("reopened: %+v, before %+v", st, before)
	}
	for i := range 5000 { // more than two seq blocks
		first, err := s.Append([]Item{sized(300)})
		if err != nil || first != before.LastSeq+uint64(i)+1 {
			t.Fatalf("append on a full disk: %d, %v", first, err)
		}
	}
	if st := s.Stats(); st.Drops <= before.Drops || st.DiskErr != nil {
		t.Fatalf("stats %+v", st)
	}
}

// TestSpoolSeqNeverReused: when the segments are lost, numbering resumes
// above every number handed out, reserved in meta.
func TestSpoolSeqNeverReused(t *testing.T) {
	e := newSpoolEnv(t, nil)
	s := e.mustOpen(DefaultLimits)
	for range 3 {
		s.Append(items("a", "b", "c"))
	}
	last := s.Stats().LastSeq
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(e.dir, spoolDirName, "*"+segSuffix))
	for _, f := range segs {
		os.Remove(f)
	}
	s, warn := e.open(DefaultLimits)
	if warn == nil || !strings.Contains(warn.Error(), "9 messages (seq 1 to 9) were not found") {
		t.Fatalf("warning %v", warn)
	}
	if st := s.Stats(); st.Drops != 9 {
		t.Fatalf("the lost messages are not counted: %+v", st)
	}
	first, err := s.Append(items("x"))
	if err != nil || first <= last {
		t.Fatalf("after losing the segments: first %d, last handed out %d (%v)", first, last, err)
	}
	// Counted once: not again at the next start.
	s.Close()
	s = e.mustOpen(DefaultLimits)
	defer s.Close()
	if st := s.Stats(); st.Drops != 9 {
		t.Fatalf("counted again at a restart: %+v", st)
	}
}

// corrupt flips a byte of the file at off.
func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= 0xFF
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolDamaged: a record damaged on disk ends what is read of its
// segment; the messages lost are reported and counted as dropped, and
// the others are sent.
func TestSpoolDamaged(t *testing.T) {
	e := newSpoolEnv(t, nil)
	lim := Limits{MaxBytes: 4 * minSegment, MaxMessages: 1000}
	e.fill(lim, 200, 400) // several segments of 32 KiB
	segs, _ := filepath.Glob(filepath.Join(e.dir, spoolDirName, "*"+segSuffix))
	if len(segs) < 2 {
		t.Fatalf("segments %v", segs)
	}
	corrupt(t, segs[0], 3*int64(recHeader+recFixed+3+400)+20) // inside the 4th record of the first segment
	s, warn := e.open(lim)
	if warn == nil || !strings.Contains(warn.Error(), "unreadable") {
		t.Fatalf("warning %v", warn)
	}
	st := s.Stats()
	got := contents(t, s)
	if uint64(len(got)) != st.Depth || st.Drops == 0 || st.Depth+st.Drops != 200 || got[0] != "1:x" || got[3] == "4:x" {
		t.Fatalf("held %d, %+v; first %v", len(got), st, got[:4])
	}

	// Damaged after it was opened: found by Peek, skipped and counted.
	s.Ack(100)
	drops := st.Drops
	s.Close()
	s = e.mustOpen(lim)
	defer s.Close()
	tail := s.tail()
	corrupt(t, filepath.Join(e.dir, spoolDirName, segName(tail.first)), 30)
	got = contents(t, s)
	if st := s.Stats(); st.Drops <= drops || uint64(len(got)) != st.Depth {
		t.Fatalf("damage found by Peek: drops %d (was %d), depth %d, held %d", st.Drops, drops, st.Depth, len(got))
	}
}

// TestSpoolMetaDamaged: with both state slots damaged, every message
// found is sent again (duplicates, not losses), and it is reported.
func TestSpoolMetaDamaged(t *testing.T) {
	e := newSpoolEnv(t, nil)
	s := e.mustOpen(DefaultLimits)
	s.Append(items("a", "b", "c", "d"))
	s.Ack(2)
	s.Close()
	meta := filepath.Join(e.dir, spoolDirName, metaName)
	corrupt(t, meta, 20)
	corrupt(t, meta, metaSlotSize+20)
	s, warn := e.open(DefaultLimits)
	if warn == nil || !strings.Contains(warn.Error(), "damaged") {
		t.Fatalf("warning %v", warn)
	}
	defer s.Close()
	if got := joined(t, s); got != "1:a 2:b 3:c 4:d" {
		t.Fatalf("contents %s", got)
	}
	if first, _ := s.Append(items("e")); first != 5 {
		t.Fatalf("first %d", first)
	}
	// One slot damaged: the other one is used, nothing is lost or sent
	// again.
	s.Ack(3)
	s.Close()
	corrupt(t, meta, int64(s.gen%2)*metaSlotSize+20)
	s = e.mustOpen(DefaultLimits)
	defer s.Close()
	if got := joined(t, s); got != "4:d 5:e" && got != "3:c 4:d 5:e" {
		t.Fatalf("one slot damaged: %s", got)
	}
}

func TestSpoolInUse(t *testing.T) {
	dir := t.TempDir()
	s := openSpoolDir(t, dir, DefaultLimits)
	defer s.Close()
	_, _, err := OpenSpool(dir, DefaultLimits, nil)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v", err)
	}
}

// TestSpoolDiskFails: a disk that fails (I/O errors, a read-only remount)
// does not stop the spool: messages get their numbers and are held in
// memory, in order with those on disk, the error is reported in a form
// that does not change with every file, and the disk is used again when
// it works.
func TestSpoolDiskFails(t *testing.T) {
	fs := newMemFS(-1)
	e := newSpoolEnv(t, fs)
	s := e.mustOpen(Limits{MaxBytes: 4 * minSegment, MaxMessages: 100_000})
	defer s.Close()
	s.Append(items("a", "b"))
	fs.fail = func(op, name string) error {
		if op == "write" || op == "sync" || op == "allocate" {
			return syscall.EIO
		}
		return nil
	}
	first, err := s.Append(items("c", "d"))
	if err == nil || first != 3 {
		t.Fatalf("append on a failing disk: %d, %v", first, err)
	}
	msg := err.Error()
	for range 300 { // across segment boundaries: the error stays the same
		if _, err := s.Append([]Item{sized(400)}); err == nil || err.Error() != msg {
			t.Fatalf("error %v, first was %q", err, msg)
		}
	}
	st := s.Stats()
	if st.InMemory != 302 || st.Depth != 304 || st.DiskErr == nil {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(e.log.String(), "holding messages in memory") || strings.Count(e.log.String(), "cannot write to disk") != 1 {
		t.Fatalf("log:\n%s", e.log.String())
	}
	// The disk works again, after the retry interval.
	fs.fail = nil
	s.Append(items("late")) // before the retry: memory
	e.clock.advance(diskRetry)
	if _, err := s.Append(items("e")); err != nil {
		t.Fatalf("the disk works again: %v", err)
	}
	got := contents(t, s)
	if len(got) != 306 || got[0] != "1:a" || got[2] != "3:c" || got[305] != "306:e" {
		t.Fatalf("contents: %d, %v ... %v", len(got), got[:3], got[len(got)-2:])
	}
	s.Ack(304)
	if st := s.Stats(); st.Depth != 2 || st.InMemory != 1 || st.DiskErr != nil {
		t.Fatalf("after ack: %+v", st)
	}
	if got := joined(t, s); got != "305:late 306:e" {
		t.Fatalf("after ack: %s", got)
	}
}

// TestSpoolNoRoomAtFirstStart: a first start on a full disk numbers and
// holds messages in memory, and moves to the disk when space comes.
func TestSpoolNoRoomAtFirstStart(t *testing.T) {
	fs := newMemFS(0)
	e := newSpoolEnv(t, fs)
	s, warn := e.open(DefaultLimits)
	if warn == nil || !strings.Contains(warn.Error(), "held in memory") {
		t.Fatalf("warning %v", warn)
	}
	defer s.Close()
	if first, err := s.Append(items("a", "b")); first != 1 || err == nil {
		t.Fatalf("append: %d, %v", first, err)
	}
	fs.SetCapacity(4 << 20)
	e.clock.advance(diskRetry)
	if first, err := s.Append(items("c")); first != 3 || err != nil {
		t.Fatalf("append after space came: %d, %v", first, err)
	}
	if got := joined(t, s); got != "1:a 2:b 3:c" {
		t.Fatalf("contents %s", got)
	}
	st := s.Stats()
	if st.InMemory != 2 || st.Held == 0 {
		t.Fatalf("stats %+v", st)
	}
	s.Ack(3)
	s.Close()
	s = e.mustOpen(DefaultLimits)
	if first, _ := s.Append(items("d")); first != 4 {
		t.Fatalf("after reopen, first %d", first)
	}
}

// writeLegacy makes a spool.db as versions before the segment log did.
func writeLegacy(t *testing.T, dir string, next, drops uint64, seqs ...uint64) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, legacySpoolFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		msgs, _ := tx.CreateBucket([]byte("msgs"))
		meta, _ := tx.CreateBucket([]byte("meta"))
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], next)
		meta.Put([]byte("next"), append([]byte(nil), v[:]...))
		binary.BigEndian.PutUint64(v[:], drops)
		meta.Put([]byte("drops"), append([]byte(nil), v[:]...))
		for _, seq := range seqs {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], seq)
			tag := fmt.Sprintf("old%d", seq)
			val := append([]byte{1, 0, byte(2 + len(tag))}, "t/"+tag...)
			val = binary.BigEndian.AppendUint64(val, seq)
			val = append(val, tag...)
			if err := msgs.Put(k[:], val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSpoolMigratesLegacy: the messages, drops and numbering of an
// earlier version's bbolt spool move into the new one.
func TestSpoolMigratesLegacy(t *testing.T) {
	e := newSpoolEnv(t, nil)
	writeLegacy(t, e.dir, 10, 3, 5, 6, 7, 8, 9)
	os.WriteFile(filepath.Join(e.dir, legacyReserveFile), []byte("2048\n"), 0o600)
	s := e.mustOpen(DefaultLimits)
	if got := joined(t, s); got != "5:old5 6:old6 7:old7 8:old8 9:old9" {
		t.Fatalf("contents %s", got)
	}
	es, _ := s.Peek(5, 1)
	if !es[0].Retain {
		t.Fatal("the retained flag was lost")
	}
	if st := s.Stats(); st.Drops != 3 || st.Depth != 5 {
		t.Fatalf("stats %+v", st)
	}
	if first, _ := s.Append(items("new")); first != 10 {
		t.Fatalf("numbering goes on at %d, want 10", first)
	}
	for _, f := range []string{legacySpoolFile, legacyReserveFile} {
		if _, err := os.Stat(filepath.Join(e.dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", f, err)
		}
	}
	if !strings.Contains(e.log.String(), "moved the messages of an earlier version") {
		t.Fatalf("log:\n%s", e.log.String())
	}
	s.Close()
	s = e.mustOpen(DefaultLimits)
	defer s.Close()
	if got := joined(t, s); got != "5:old5 6:old6 7:old7 8:old8 9:old9 10:new" {
		t.Fatalf("reopened: %s", got)
	}
}

// TestSpoolLegacyDamaged: a damaged legacy database is moved aside and
// reported, and numbering starts above its reservation.
func TestSpoolLegacyDamaged(t *testing.T) {
	e := newSpoolEnv(t, nil)
	path := filepath.Join(e.dir, legacySpoolFile)
	os.WriteFile(path, []byte(strings.Repeat("not a bbolt file ", 512)), 0o600)
	os.WriteFile(filepath.Join(e.dir, legacyReserveFile), []byte("2048\n"), 0o600)
	s, warn := e.open(DefaultLimits)
	if warn == nil || !strings.Contains(warn.Error(), "moved to") {
		t.Fatalf("warning %v", warn)
	}
	defer s.Close()
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 1 {
		t.Fatalf("quarantined files: %v", m)
	}
	if first, _ := s.Append(items("c")); first < 2048 {
		t.Fatalf("numbering restarted at %d", first)
	}
}

// BenchmarkSpoolAppend: one message per append, as when alerts come one
// at a time; the cost is the disk's sync.
func BenchmarkSpoolAppend(b *testing.B) {
	s := openSpoolDir(b, b.TempDir(), DefaultLimits)
	defer s.Close()
	it := items("benchmark-alert-payload")
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Append(it); err != nil {
			b.Fatal(err)
		}
		if i%100 == 99 {
			s.Ack(uint64(i))
		}
	}
}
