package uplink

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func openSpool(t testing.TB, dir string, lim Limits) *Spool {
	t.Helper()
	s, q, err := OpenSpool(dir, lim)
	if err != nil || q != nil {
		t.Fatalf("OpenSpool: %v, quarantined %v", err, q)
	}
	return s
}

// contents lists "seq:tag" of every message in the spool, checking that
// the payload carries the key's seq.
func contents(t *testing.T, s *Spool) []string {
	t.Helper()
	es, err := s.Peek(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if got := binary.BigEndian.Uint64(e.Payload); got != e.Seq {
			t.Fatalf("payload carries seq %d, key %d", got, e.Seq)
		}
		tag := string(e.Payload[8:])
		if e.Topic != "t/"+tag {
			t.Fatalf("topic %q for %q", e.Topic, tag)
		}
		out = append(out, string(rune('0'+e.Seq%10))+":"+tag)
	}
	return out
}

func TestSpoolOrderAckReopen(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, DefaultLimits)
	first, err := s.Append(items("a", "b", "c"))
	if err != nil || first != 1 {
		t.Fatalf("first %d, %v", first, err)
	}
	if first, _ = s.Append(items("d")); first != 4 {
		t.Fatalf("first %d", first)
	}
	if got := strings.Join(contents(t, s), " "); got != "1:a 2:b 3:c 4:d" {
		t.Fatalf("contents %s", got)
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Depth != 2 || st.LastSeq != 4 {
		t.Fatalf("stats %+v", st)
	}
	es, _ := s.Peek(4, 10)
	if len(es) != 1 || es[0].Seq != 4 {
		t.Fatalf("Peek(4): %+v", es)
	}
	s.Close()

	// Reopened: the unacknowledged messages are there, and numbering
	// goes on.
	s = openSpool(t, dir, DefaultLimits)
	if got := strings.Join(contents(t, s), " "); got != "3:c 4:d" {
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
	s = openSpool(t, dir, DefaultLimits)
	defer s.Close()
	if first, _ = s.Append(items("f")); first != 6 {
		t.Fatalf("empty spool reopened: first %d, want 6", first)
	}
}

func TestSpoolLimitsDropOldest(t *testing.T) {
	s := openSpool(t, t.TempDir(), Limits{MaxBytes: 1 << 20, MaxMessages: 3})
	defer s.Close()
	for _, tag := range []string{"a", "b", "c", "d", "e"} {
		if _, err := s.Append(items(tag)); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(contents(t, s), " "); got != "3:c 4:d 5:e" {
		t.Fatalf("contents %s", got)
	}
	if st := s.Stats(); st.Drops != 2 || st.Depth != 3 {
		t.Fatalf("stats %+v", st)
	}
	// A batch larger than the limit keeps its newest.
	s.Append(items("f", "g", "h", "i"))
	if got := strings.Join(contents(t, s), " "); got != "7:g 8:h 9:i" {
		t.Fatalf("contents %s", got)
	}

	// Bytes: each entry is 3 + len(topic) + 8 + len(tag) = 3+3+8+1 = 15.
	b := openSpool(t, t.TempDir(), Limits{MaxBytes: 45, MaxMessages: 100})
	defer b.Close()
	b.Append(items("a", "b", "c", "d"))
	if st := b.Stats(); st.Depth != 3 || st.Bytes != 45 || st.Drops != 1 {
		t.Fatalf("byte limit: %+v", st)
	}
	if _, err := b.Append([]Item{{Topic: "t/x", Encode: func(_ uint64, p []byte) []byte { return append(p, make([]byte, 100)...) }}}); err == nil {
		t.Fatal("a message larger than the spool was taken")
	}
	if st := b.Stats(); st.Depth != 3 || st.Drops != 1 {
		t.Fatalf("a refused message changed the spool: %+v", st)
	}
}

// TestSpoolDropsPersist: the count of dropped messages survives a restart.
func TestSpoolDropsPersist(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, Limits{MaxBytes: 1 << 20, MaxMessages: 2})
	s.Append(items("a", "b", "c", "d"))
	s.Close()
	s = openSpool(t, dir, Limits{MaxBytes: 1 << 20, MaxMessages: 2})
	defer s.Close()
	if st := s.Stats(); st.Drops != 2 || st.Depth != 2 {
		t.Fatalf("stats after reopen %+v", st)
	}
}

// TestSpoolSeqNeverReused: when the database is lost, numbering resumes
// above every number handed out, from seq.reserve.
func TestSpoolSeqNeverReused(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, DefaultLimits)
	for range 3 {
		s.Append(items("a", "b", "c"))
	}
	last := s.Stats().LastSeq
	s.Close()
	if err := os.Remove(filepath.Join(dir, spoolFile)); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, dir, DefaultLimits)
	defer s.Close()
	first, err := s.Append(items("x"))
	if err != nil || first <= last {
		t.Fatalf("after losing the database: first %d, last handed out %d (%v)", first, last, err)
	}
}

// TestSpoolQuarantine: a damaged database is moved aside, reported, and a
// new spool continues the numbering.
func TestSpoolQuarantine(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, DefaultLimits)
	s.Append(items("a", "b"))
	s.Close()
	path := filepath.Join(dir, spoolFile)
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, q, err := OpenSpool(dir, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if q == nil || !strings.Contains(q.Error(), "moved to") || !strings.Contains(q.Error(), spoolFile+".corrupt-") {
		t.Fatalf("quarantine report: %v", q)
	}
	m, _ := filepath.Glob(path + ".corrupt-*")
	if len(m) != 1 {
		t.Fatalf("quarantined files: %v", m)
	}
	if first, _ := s.Append(items("c")); first <= 2 {
		t.Fatalf("numbering restarted at %d", first)
	}
}

func TestSpoolBadReserve(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, reserveFile), []byte("garbage\n"), 0o600)
	_, _, err := OpenSpool(dir, DefaultLimits)
	if err == nil || !strings.Contains(err.Error(), reserveFile) {
		t.Fatalf("want an error naming %s, got %v", reserveFile, err)
	}
}

// BenchmarkSpoolAppend: one message per transaction, as when alerts come
// one at a time; the cost is the disk's fsync.
func BenchmarkSpoolAppend(b *testing.B) {
	s := openSpool(b, b.TempDir(), DefaultLimits)
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
