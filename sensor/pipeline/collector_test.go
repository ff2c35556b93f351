package pipeline

import (
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// gcPercent is the collector's setting, left as it was.
func gcPercent() int {
	v := debug.SetGCPercent(-1)
	debug.SetGCPercent(v)
	return v
}

// cycles is how many collections the runtime began on its own (its
// pacing) and how many were forced.
func cycles() (auto, forced uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/automatic:gc-cycles"}, {Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

var garbage [][]byte

// churn allocates n bytes that are garbage at once, in pieces of 4 KiB.
func churn(n int) {
	for range n / 4096 {
		garbage = append(garbage[:0], make([]byte, 4096))
	}
	garbage = nil
}

// TestLoadCollectorPaces: between Pieces(true) and Pieces(false) the
// runtime's pacing is off, whatever is allocated; Piece collects once the
// heap has grown past its plan and not again before it grows again; and
// the setting before is given back.
func TestLoadCollectorPaces(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(loadGCPercent))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	c := newLoadCollector()
	c.Pieces(true)
	if p := gcPercent(); p != -1 {
		t.Errorf("GOGC %d during the pieces, want the pacing off", p)
	}
	if l := debug.SetMemoryLimit(-1); l != offLimit {
		t.Errorf("memory limit %d during the pieces, want %d", l, offLimit)
	}
	auto, forced := cycles()
	churn(64 << 20)
	if a, f := cycles(); a != auto || f != forced {
		t.Fatalf("64 MiB of garbage with the pacing off: %d collections of the runtime's, %d forced", a-auto, f-forced)
	}
	c.Piece()
	if _, f := cycles(); f != forced+1 {
		t.Errorf("a piece after 64 MiB: %d collections, want one", f-forced)
	}
	c.Piece()
	if _, f := cycles(); f != forced+1 {
		t.Errorf("a second piece with nothing allocated between: %d collections, want still one", f-forced)
	}
	c.Pieces(false)
	if p := gcPercent(); p != loadGCPercent {
		t.Errorf("GOGC %d after the pieces, want %d back", p, loadGCPercent)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("memory limit %d after the pieces, want none back", l)
	}
	// A process's own lower limit is kept, and given back.
	debug.SetMemoryLimit(64 << 20)
	c.Pieces(true)
	if l := debug.SetMemoryLimit(-1); l != 64<<20 {
		t.Errorf("memory limit %d during the pieces under a limit of 64 MiB, want it kept", l)
	}
	c.Pieces(false)
	if l := debug.SetMemoryLimit(-1); l != 64<<20 {
		t.Errorf("memory limit %d after the pieces, want 64 MiB back", l)
	}
	if a, _ := cycles(); a != auto {
		t.Errorf("%d collections of the runtime's during the pieces", a-auto)
	}
}

// TestLoadCollectorPlan: the next collection is due after the heap grows
// by the setting's percentage of what is live, or by leastGrowth (1 MiB
// at GOGC 10) scaled to the setting, whichever is more; a process
// already more frugal than loadGCPercent keeps its percentage.
func TestLoadCollectorPlan(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, big := range []bool{false, true} {
		var held []byte
		if big { // enough live for the percentage to be the larger
			held = make([]byte, 64<<20)
			for i := 0; i < len(held); i += 4096 {
				held[i] = 1
			}
		}
		for _, gogc := range []int{loadGCPercent, 5} {
			debug.SetGCPercent(gogc)
			runtime.GC()
			c := newLoadCollector()
			c.Pieces(true)
			allocs, live := c.samples[0].Value.Uint64(), c.samples[1].Value.Uint64()
			want := uint64(1<<20) * uint64(gogc) / 10
			if big {
				if live < 64<<20 {
					t.Fatalf("%d live with 64 MiB held", live)
				}
				want = live * uint64(gogc) / 100
			} else if live >= 10<<20 {
				t.Fatalf("%d live in the test, want less than 10 MiB", live)
			}
			if got := c.next - allocs; got != want {
				t.Errorf("GOGC %d, %d live: the next collection after %d more, want %d", gogc, live, got, want)
			}
			c.Pieces(false)
		}
		runtime.KeepAlive(held)
	}
}

// TestLoadLeavesHugePagesAlone: a load in pieces collects with the
// pacing off, and a collection that ends with a heap goal above 1 GiB
// makes the runtime advise huge pages for its metadata (MADV_HUGEPAGE),
// which cost 2 MiB of RSS where the kernel grants them. After a load in
// pieces, no mapping of the process may carry that advice (VmFlags hg in
// /proc/self/smaps). It runs in a process of its own: the advice, once
// given, stays.
func TestLoadLeavesHugePagesAlone(t *testing.T) {
	testenv.Need(t, runtime.GOOS == "linux", "MADV_HUGEPAGE and /proc/self/smaps are Linux's: run it on Linux")
	if os.Getenv("TAPWATCH_HUGEPAGE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLoadLeavesHugePagesAlone$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "TAPWATCH_HUGEPAGE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestLoadLeavesHugePagesAlone") {
			t.Fatalf("the load in a process of its own: %v\n%s", err, out)
		}
		return
	}
	_, forced := cycles()
	c := newLoadCollector()
	c.Pieces(true)
	churn(4 << 20)
	c.Piece() // collects, as a load in pieces does
	c.Pieces(false)
	if _, f := cycles(); f == forced {
		t.Fatal("the piece did not collect; the test tests nothing")
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(smaps), "\n") {
		if strings.HasPrefix(line, "VmFlags:") && slices.Contains(strings.Fields(line), "hg") {
			t.Fatalf("a mapping advised huge pages after a load in pieces: %s", line)
		}
	}
}
