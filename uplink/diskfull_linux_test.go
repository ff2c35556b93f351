//go:build linux

package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// smallDisk mounts a tmpfs of size bytes on a new folder, for the state
// directory; it needs root.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	testenv.NeedRoot(t, "mounting a small tmpfs as the state directory")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fillDisk writes a file in dir of size bytes, or until the filesystem
// is full (size < 0), as another program would; it returns the file.
func fillDisk(t *testing.T, dir, name string, size int) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for n := 0; size < 0 || n < size; n += len(buf) {
		if _, err := f.Write(buf); err != nil {
			if size < 0 && errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("filling the disk: %v", err)
		}
	}
	return path
}

// freePort is a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// bigAlert is an alert of about 900 bytes.
func bigAlert(i int) *event.Alert {
	a := testAlert(i)
	a.Evidence = make([]byte, 600)
	return a
}

// raise hands n alerts to p, numbered from key, and fails if that does
// not end: the pipeline would stall.
func raise(t *testing.T, p *Publisher, key, n int) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			p.Alert(bigAlert(key+i), uint64(key+i), true)
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("handing %d alerts to the publisher did not end in 60s: capture would stall", n)
	}
	waitSpooled(t, p)
}

// closeWithin closes p, failing if that hangs.
func closeWithin(t *testing.T, p *Publisher) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close hangs")
	}
}

// TestPublisherFullDisk is the field failure of a state directory on a
// small filesystem, shared with other files, while the broker is away:
// the alerts keep their numbers and never stall the pipeline; the spool
// drops its oldest messages, counted and logged, when it cannot grow; it
// works on in the space it holds when others fill the disk; a stop does
// not hang and a restart on the full disk works; when space comes back
// the spool grows again; when the broker is back the security center
// receives everything the spool held, and the gap before it is the
// drops.
func TestPublisherFullDisk(t *testing.T) {
	dir := smallDisk(t, 2<<20)
	others := fillDisk(t, dir, "others", 1<<20) // another program's files
	addr := freePort(t)
	cfg := testConfig("tcp://" + addr)
	var log testenv.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	p, warn, err := New(cfg, dir, "test", logger)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	p.Start()

	const n = 3000 // about 2.7 MB of alerts into less than 1 MB
	raise(t, p, 1, n)
	st := p.State()
	t.Logf("after %d alerts: %d in the spool, %d dropped, %d bytes held, %d may be", n, st.Spool.Depth, st.Spool.Drops, st.Spool.Held, st.Spool.Capacity)
	if st.Spool.LastSeq != n || st.Spool.Drops == 0 || st.Spool.Depth+st.Spool.Drops != n || st.SpoolError != nil {
		t.Fatalf("after %d alerts into a full disk: %+v, spool error %v", n, st.Spool, st.SpoolError)
	}
	if !strings.Contains(log.String(), "dropped the oldest messages") || !strings.Contains(log.String(), "the disk is nearly full") {
		t.Fatalf("the drops are not logged with their reason:\n%s", log.String())
	}
	if _, full, err := p.Health(); full < 0.8 || err != nil {
		t.Errorf("health: spool %.2f full, error %v; want over 0.8 (UPLINK fast blink), no error", full, err)
	}

	// The other program takes the rest of the disk: the spool goes on in
	// the space it holds.
	rest := fillDisk(t, dir, "rest", -1)
	raise(t, p, n+1, 1000)
	if st := p.State(); st.Spool.LastSeq != n+1000 || st.SpoolError != nil || st.Spool.Held > st.Spool.Capacity {
		t.Fatalf("on a disk filled by another program: %+v, %v", st.Spool, st.SpoolError)
	}
	closeWithin(t, p)

	// A restart on the full disk works, and numbering goes on.
	p, warn, err = New(cfg, dir, "test", logger)
	if err != nil || warn != nil {
		t.Fatalf("restart on a full disk: %v, %v", err, warn)
	}
	p.Start()
	defer closeWithin(t, p)
	raise(t, p, n+1001, 500)
	full := p.State().Spool
	if full.LastSeq != n+1500 {
		t.Fatalf("after the restart: %+v", full)
	}

	// Space comes back: the spool grows again, by itself.
	os.Remove(others)
	os.Remove(rest)
	time.Sleep(1100 * time.Millisecond) // the free space is read once a second
	raise(t, p, n+1501, 1000)
	before := p.State().Spool
	t.Logf("after space came back and 1000 more: %d in the spool, %d dropped, %d bytes held (was %d)", before.Depth, before.Drops, before.Held, full.Held)
	if before.Held <= full.Held+(512<<10) || before.Drops != full.Drops {
		t.Fatalf("the spool did not grow into the space freed: held %d, was %d; drops %d, were %d", before.Held, full.Held, before.Drops, full.Drops)
	}

	// The broker is back, and the security center subscribed before the
	// publisher can reach it.
	b, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	open := openLater(t, addr, strings.TrimPrefix(b.URL(), "tcp://"))
	tl := startTail(t, TailConfig{Brokers: []string{b.URL()}, Kinds: []string{"alert"}})
	pollUntil(t, 10*time.Second, "tail to subscribe", func() bool { return b.Subscribed("tapwatch-tail-") })
	open()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	last := uint64(n + 2500)
	pollUntil(t, 10*time.Second, "tail to receive the last alert", func() bool { _, hi := tl.seen("tap1"); return hi == last })
	seqs, dups := orderCheck(t, tl.alerts(t, "tap1"))
	got := uint64(len(seqs))
	t.Logf("delivered %d distinct alerts (%d duplicates); %d dropped; %d handed out", got, dups, before.Drops, before.LastSeq)
	if before.LastSeq != last || got != before.Depth || got+before.Drops != last {
		t.Fatalf("delivered %d, the spool held %d and dropped %d of %d", got, before.Depth, before.Drops, before.LastSeq)
	}
	for s := before.Drops + 1; s <= last; s++ {
		if !seqs[s] {
			t.Fatalf("seq %d missing: the drops are not the oldest", s)
		}
	}
}

// TestSpoolLegacyFillsDisk: an earlier version's spool.db that fills the
// disk, so that not even meta can be made, is migrated all the same: it
// is read, then removed to make room.
func TestSpoolLegacyFillsDisk(t *testing.T) {
	dir := smallDisk(t, 1<<20)
	writeLegacy(t, dir, 10, 0, 5, 6, 7, 8, 9)
	// Its file grown as bbolt's do (never given back), then the disk
	// filled by another program.
	db, err := bolt.Open(filepath.Join(dir, legacySpoolFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("freed"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), make([]byte, 600<<10))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	fillDisk(t, dir, "other", -1)
	s, warn, err := OpenSpool(dir, DefaultLimits, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if warn != nil {
		t.Fatalf("warning %v", warn)
	}
	if got := joined(t, s); got != "5:old5 6:old6 7:old7 8:old8 9:old9" {
		t.Fatalf("contents %s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, legacySpoolFile)); !os.IsNotExist(err) {
		t.Fatalf("spool.db left: %v", err)
	}
	if st := s.Stats(); st.InMemory != 0 || st.DiskErr != nil {
		t.Fatalf("not on disk: %+v", st)
	}
	if first, err := s.Append(items("new")); first != 10 || err != nil {
		t.Fatalf("append: %d, %v", first, err)
	}
}
