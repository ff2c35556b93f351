package uplink

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"syscall"
	"testing"
	"time"
)

// spoolRun drives a spool on the in-memory filesystem through appends,
// acknowledgements, faults, full disks, clean restarts and power cuts,
// and checks after every step what the spool promises:
//
//   - Peek returns messages in seq order, each with the bytes appended
//     under its seq, none already acknowledged;
//   - Depth is what Peek returns;
//   - every message appended and not acknowledged is returned or counted
//     in drops, exactly, across restarts and power cuts too (messages held
//     in memory and lost at a stop are counted at the next start), unless
//     the state file could not be written or read (then counting starts
//     afresh);
//   - a power cut loses nothing that was on disk (held in memory only is
//     lost, and was reported), and no seq is handed out twice, unless the
//     state file itself could not be written (a failing disk, reported);
//   - no call panics or hangs.
type spoolRun struct {
	t     testing.TB
	fs    *memFS
	env   *spoolEnv
	s     *Spool
	lim   Limits
	rng   func(n int) int
	steps int

	payload      map[uint64][]byte // every message appended, by seq
	handedOut    uint64            // the highest seq handed out since numbering was last known to go on
	riskBelow    uint64            // seqs up to this may be handed out again (the state file failed)
	blind        bool              // the spool could not open its disk: drops are not counted
	slack        int               // drops may exceed what is gone by this much (counted twice)
	acked        uint64            // the consumer's acknowledgements
	want         map[uint64]bool   // appended, not acknowledged, not yet found dropped
	dropped      int               // of want, found dropped
	drops0       uint64            // the spool's drops when counting began
	faults       int               // calls left to fail
	fault        error
	metaRisk     bool   // the state file failed to be written: seqs may be reused after a power cut
	ackRisk      bool   // the last acknowledgement was not written: it may come again after a restart
	ackedDurable uint64 // the acknowledgements that were written
	metaSynced   bool   // since the last acknowledgement: the state was written
	metaFailed   bool   // or failed to be
	log          []string
}

func newSpoolRun(t testing.TB, rng func(int) int) *spoolRun {
	r := &spoolRun{t: t, rng: rng, fs: newMemFS(int64(256<<10 + rng(4<<20))),
		lim:     Limits{MaxBytes: MinSpoolBytes + int64(rng(2<<20)), MaxMessages: 5 + rng(3000)},
		payload: map[uint64][]byte{}, want: map[uint64]bool{}}
	r.env = newSpoolEnv(t, r.fs)
	r.fs.fail = r.inject
	r.reopen()
	return r
}

func (r *spoolRun) inject(op, name string) error {
	meta := path.Base(name) == metaName
	if r.faults <= 0 || op == "read" || op == "readdir" {
		if meta && op == "sync" {
			r.metaRisk = false // the state written is on disk
			r.metaSynced = true
		}
		return nil
	}
	r.faults--
	if meta {
		r.metaRisk, r.metaFailed = true, true
	}
	return r.fault
}

func (r *spoolRun) reopen() {
	risk := r.metaRisk
	openFaults := r.faults > 0
	var log *slog.Logger
	if os.Getenv("SPOOL_DEBUG") != "" {
		log = slog.New(slog.NewTextHandler(tlogWriter{r.t}, nil))
	}
	clockNumbers := r.s != nil && !r.s.metaRead
	blind := r.s != nil && r.s.meta == nil // the last run could not write its state
	r.env.clock.advance(time.Second)       // a restart takes time
	s, _, err := openSpool(r.fs, r.env.clock.now, r.env.dir, r.lim, log)
	if err != nil {
		r.t.Fatalf("step %d: open: %v", r.steps, err)
	}
	r.s = s
	if risk {
		// The reservation may not be on disk: numbers may come again.
		r.riskBelow = max(r.riskBelow, r.handedOut)
		r.handedOut = 0
	}
	if clockNumbers {
		// The last run numbered from the clock, the numbers on disk not
		// known: this one goes on from those on disk, below (never one
		// used before), and acknowledgements of those numbers say
		// nothing of these.
		r.handedOut = 0
		r.acked = r.ackedDurable
	}
	if r.ackRisk {
		r.acked, r.ackRisk = r.ackedDurable, false
	}
	if risk || r.metaRisk || openFaults || blind || s.meta == nil {
		// What the disk holds is not known to the spool (it may come
		// back when the disk is tried again), or the state is not
		// known to be on it.
		r.rebase()
		return
	}
	// Go on counting: every message wanted before the stop is returned
	// now or was counted in drops by the open.
	for seq := range r.want {
		if seq <= r.acked {
			delete(r.want, seq)
		}
	}
}

// rebase starts counting drops afresh from what the spool holds now.
func (r *spoolRun) rebase() {
	r.want = map[uint64]bool{}
	for _, e := range r.peek() {
		if !e.Dropped {
			r.want[e.Seq] = true
		}
	}
	r.drops0, r.dropped, r.slack = r.s.Stats().Drops, 0, 0
}

func (r *spoolRun) peek() []Entry {
	es, err := r.s.Peek(0, 1<<30)
	if err != nil && r.faults == 0 {
		r.t.Fatalf("step %d: peek: %v", r.steps, err)
	}
	return es
}

func (r *spoolRun) step(op int) {
	r.steps++
	r.log = append(r.log, []string{"append", "append", "append", "ack", "ack", "fault", "space", "restart", "powercut"}[op%9])
	switch op % 9 {
	case 0, 1, 2: // append a few, of various sizes (some too large)
		var its []Item
		for range 1 + r.rng(4) {
			n := 8 + r.rng(600)
			if r.rng(50) == 0 {
				n = 8 + r.rng(80<<10)
			}
			fill := byte(r.rng(256))
			its = append(its, Item{Topic: "t", Retain: n%2 == 0, Encode: func(seq uint64, b []byte) []byte {
				b = binary.BigEndian.AppendUint64(b, seq)
				return append(b, bytes.Repeat([]byte{fill}, n-8)...)
			}})
		}
		first, _ := r.s.Append(its)
		if first <= r.handedOut {
			r.t.Fatalf("step %d: seq %d handed out again or out of order (up to %d were)\n%s", r.steps, first, r.handedOut, r.history())
		}
		for i := range its {
			if seq := first + uint64(i); seq > r.riskBelow && r.payload[seq] != nil {
				r.t.Fatalf("step %d: seq %d handed out again\n%s", r.steps, seq, r.history())
			}
		}
		for i, it := range its {
			seq := first + uint64(i)
			r.payload[seq] = it.Encode(seq, nil)
			r.want[seq] = true
		}
		r.handedOut = first + uint64(len(its)) - 1
	case 3, 4: // the consumer: acknowledge a prefix of what is there
		es := r.peek()
		if len(es) == 0 {
			return
		}
		k := r.rng(len(es)) + 1
		last := es[k-1].Seq
		r.metaSynced, r.metaFailed = false, false
		if err := r.s.Ack(last); err != nil {
			r.t.Fatalf("step %d: ack: %v", r.steps, err)
		}
		switch {
		case r.metaSynced:
			r.ackRisk = false
			r.ackedDurable = max(r.ackedDurable, last)
		case r.metaFailed:
			r.ackRisk = true
		}
		peeked := map[uint64]bool{}
		for _, e := range es[:k] {
			peeked[e.Seq] = !e.Dropped
		}
		for seq := range r.want {
			if seq <= last {
				if !peeked[seq] {
					r.dropped++ // gone before this peek, or a dropped one
				}
				delete(r.want, seq)
			}
		}
		r.acked = max(r.acked, last)
	case 5: // faults for the next few calls
		r.faults = 1 + r.rng(6)
		r.fault = []error{syscall.ENOSPC, syscall.EIO, errTorn, syscall.EROFS}[r.rng(4)]
		r.log[len(r.log)-1] = fmt.Sprintf("fault %dx %v", r.faults, r.fault)
	case 6: // the disk fills or empties; time passes
		r.fs.SetCapacity(max(r.fs.used()+int64(r.rng(1<<20))-512<<10, 0))
		r.env.clock.advance(time.Duration(r.rng(15)) * time.Second)
	case 7: // a clean restart, sometimes with faults while opening
		r.s.Close()
		r.faults = 0
		if r.rng(3) == 0 {
			r.faults = 1 + r.rng(4)
			r.fault = []error{syscall.ENOSPC, syscall.EIO, syscall.EROFS}[r.rng(3)]
			r.log[len(r.log)-1] = fmt.Sprintf("restart, %dx %v", r.faults, r.fault)
		}
		r.reopen()
		return
	case 8: // a power cut
		r.powerCut()
		return
	}
	r.check()
}

func (r *spoolRun) powerCut() {
	before := r.peek()
	mem := map[uint64]bool{}
	for _, e := range r.s.mem {
		mem[e.Seq] = true
		if e.Dropped {
			// Counted when it was dropped, and again as lost at the
			// next open, which cannot tell it from the others.
			r.slack++
		}
	}
	r.fs.Crash()
	r.faults = 0
	r.reopen()
	after := map[uint64]bool{}
	for _, e := range r.peek() {
		after[e.Seq] = true
	}
	for _, e := range before {
		if !mem[e.Seq] && !after[e.Seq] {
			r.t.Fatalf("step %d: seq %d was on disk before the power cut and is gone after it", r.steps, e.Seq)
		}
	}
	r.check()
}

func (r *spoolRun) history() string {
	return fmt.Sprintf("steps: %v\n%s", r.log, r.fs)
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func (r *spoolRun) check() {
	if os.Getenv("SPOOL_DEBUG") != "" {
		st := r.s.Stats()
		r.t.Logf("step %d %s: head %d next %d depth %d mem %d drops %d segs %d diskErr %v", r.steps, r.log[len(r.log)-1], r.s.head, r.s.next, st.Depth, st.InMemory, st.Drops, len(r.s.segs), st.DiskErr)
	}
	if r.faults > 0 {
		return // Peek may fail with an injected read fault
	}
	if r.blind && r.s.meta != nil {
		// The disk is opened again. Acknowledgements made meanwhile
		// were of the numbers held in memory: those on disk come back.
		r.acked = r.ackedDurable
	}
	es := r.peek()
	st := r.s.Stats()
	if uint64(len(es)) != st.Depth {
		r.t.Fatalf("step %d: Peek returns %d, Depth says %d", r.steps, len(es), st.Depth)
	}
	seen := map[uint64]bool{}
	var prev uint64
	for _, e := range es {
		if e.Seq <= prev {
			r.t.Fatalf("step %d: seq %d after %d", r.steps, e.Seq, prev)
		}
		prev = e.Seq
		if e.Seq <= r.acked && !r.ackRisk {
			// An acknowledgement whose state write failed comes back
			// after a restart (at least once); otherwise never.
			r.t.Fatalf("step %d: seq %d returned after it was acknowledged (up to %d)\n%s", r.steps, e.Seq, r.acked, r.history())
		}
		want, ok := r.payload[e.Seq]
		if !ok {
			r.t.Fatalf("step %d: seq %d was never appended", r.steps, e.Seq)
		}
		if e.Dropped {
			if r.want[e.Seq] {
				delete(r.want, e.Seq)
				r.dropped++
			}
			continue
		}
		if !bytes.Equal(e.Payload, want) || e.Topic != "t" || e.Retain != (len(want)%2 == 0) {
			r.t.Fatalf("step %d: seq %d came back changed", r.steps, e.Seq)
		}
		seen[e.Seq] = true
	}
	if r.s.meta == nil || r.blind {
		// The spool could not open its disk: what it holds there is out
		// of sight, its drops not counted, until it can. Counting starts
		// afresh once it has.
		r.blind = r.s.meta == nil
		if !r.blind {
			r.rebase()
		}
		return
	}
	for seq := range r.want {
		if !seen[seq] {
			delete(r.want, seq)
			r.dropped++
		}
	}
	if got := int(st.Drops - r.drops0); got < r.dropped || got > r.dropped+r.slack {
		r.t.Fatalf("step %d: %d messages gone unacknowledged, drops grew by %d\n%s", r.steps, r.dropped, got, r.fs)
	}
	if h := st.Held; h > uint64(r.lim.MaxBytes) {
		r.t.Fatalf("step %d: holds %d bytes, max_bytes %d", r.steps, h, r.lim.MaxBytes)
	}
}

// TestSpoolFaults runs random sequences of appends, acknowledgements,
// faults, full disks, restarts and power cuts.
func TestSpoolFaults(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 30
	}
	for seed := range uint64(n) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			r := newSpoolRun(t, rng.IntN)
			for range 400 {
				r.step(rng.IntN(1000))
			}
			r.s.Close()
		})
	}
}

// FuzzSpool: the same, with the steps chosen by the fuzzer.
func FuzzSpool(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 7, 0, 8, 0})                // append, ack, restart, power cut
	f.Add([]byte{5, 1, 0, 1, 6, 0, 0, 8, 3})             // a fault while appending, then a power cut
	f.Add(bytes.Repeat([]byte{0, 1, 2, 6}, 40))          // fill the disk
	f.Add([]byte{0, 5, 2, 0, 0, 6, 9, 0, 4, 8, 0, 7, 3}) // torn writes and restarts
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 2 {
			return
		}
		seed := uint64(ops[0])<<8 | uint64(ops[1])
		rng := rand.New(rand.NewPCG(seed, 7))
		r := newSpoolRun(t, rng.IntN)
		for _, op := range ops[2:] {
			r.step(int(op))
		}
		r.s.Close()
	})
}
