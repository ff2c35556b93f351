package capture

import (
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource delivers its packets, each after its delay, then io.EOF (or
// err).
type fakeSource struct {
	pkts    []fakePkt
	err     error
	stopped atomic.Bool
}

type fakePkt struct {
	delay time.Duration
	ts    int // seconds after t0, and the packet's one byte
}

var mergeT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (f *fakeSource) ReadPacket(ci *Info) ([]byte, error) {
	if len(f.pkts) == 0 || f.stopped.Load() {
		if f.err != nil {
			err := f.err
			f.err = nil
			return nil, err
		}
		return nil, io.EOF
	}
	p := f.pkts[0]
	f.pkts = f.pkts[1:]
	time.Sleep(p.delay)
	*ci = Info{Timestamp: mergeT0.Add(time.Duration(p.ts) * time.Second), CaptureLength: 1, Length: 1, Frame: 99}
	return []byte{byte(p.ts)}, nil
}

func (f *fakeSource) Stop() { f.stopped.Store(true) }

func readMerged(t *testing.T, m *Merged) (order []int, sources []int, errs []error) {
	t.Helper()
	var prev uint64
	for {
		var ci Info
		data, err := m.ReadPacket(&ci)
		if err == io.EOF {
			return
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev != 0 && ci.Frame != prev+1 {
			t.Errorf("frame %d after frame %d", ci.Frame, prev)
		}
		prev = ci.Frame
		if !ci.Timestamp.Equal(mergeT0.Add(time.Duration(data[0]) * time.Second)) {
			t.Errorf("packet %d carries the info of another", data[0])
		}
		order = append(order, int(data[0]))
		sources = append(sources, ci.Source)
	}
}

// TestMerge: one direction arrives late, in a block, as a quiet
// interface's packets do; the merged stream is in timestamp order.
func TestMerge(t *testing.T) {
	a := &fakeSource{pkts: []fakePkt{{40 * time.Millisecond, 1}, {0, 3}, {0, 5}}}
	b := &fakeSource{pkts: []fakePkt{{0, 2}, {0, 4}, {0, 6}}}
	// Hold is far longer than a's 40 ms: the test asserts the order, not
	// the timing, and a loaded machine (qemu-user in test-arm, with other
	// jobs) can stall a goroutine for a few hundred milliseconds. The
	// merge waits only until a delivers.
	order, sources, errs := readMerged(t, NewMerged(MergeConfig{Hold: 10 * time.Second}, a, b))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if want := []int{1, 2, 3, 4, 5, 6}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if want := []int{0, 1, 0, 1, 0, 1}; !slices.Equal(sources, want) {
		t.Errorf("sources %v, want %v", sources, want)
	}
}

// TestMergeBounded: with MaxHeld packets held, the oldest leaves at once
// instead of waiting for Hold.
func TestMergeBounded(t *testing.T) {
	a := &fakeSource{pkts: []fakePkt{{0, 3}, {0, 1}, {0, 2}, {0, 4}, {0, 5}}}
	start := time.Now()
	m := NewMerged(MergeConfig{Hold: time.Hour, MaxHeld: 3}, a)
	var ci Info
	data, err := m.ReadPacket(&ci)
	if err != nil || data[0] != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("first packet %v %v after %v", data, err, time.Since(start))
	}
	rest, _, _ := readMerged(t, m) // the source ended: the rest drains at once
	if want := []int{2, 3, 4, 5}; !slices.Equal(rest, want) {
		t.Errorf("rest %v, want %v", rest, want)
	}
}

// TestMergeError: a source's error is returned once; the others go on.
func TestMergeError(t *testing.T) {
	boom := errors.New("ring broken")
	a := &fakeSource{pkts: []fakePkt{{0, 1}}, err: boom}
	b := &fakeSource{pkts: []fakePkt{{0, 2}, {20 * time.Millisecond, 3}}}
	order, _, errs := readMerged(t, NewMerged(MergeConfig{Hold: 10 * time.Millisecond}, a, b))
	if len(errs) != 1 || !errors.Is(errs[0], boom) {
		t.Errorf("errors %v", errs)
	}
	if len(order) != 3 {
		t.Errorf("order %v", order)
	}
}

func TestMergeStop(t *testing.T) {
	a := &fakeSource{pkts: make([]fakePkt, 1000)}
	for i := range a.pkts {
		a.pkts[i] = fakePkt{time.Millisecond, i % 200}
	}
	m := NewMerged(MergeConfig{Hold: time.Millisecond}, a)
	var ci Info
	if _, err := m.ReadPacket(&ci); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	done := make(chan struct{})
	go func() {
		readMerged(t, m)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ReadPacket did not end after Stop")
	}
}

// TestMergeIdle: with Idle set, a quiet stream returns ErrIdle instead of
// waiting, and the packets that come later are still delivered in order;
// a source's own ErrIdle is not passed on.
func TestMergeIdle(t *testing.T) {
	a := &fakeSource{pkts: []fakePkt{{0, 1}, {150 * time.Millisecond, 2}}}
	b := &idleSource{}
	m := NewMerged(MergeConfig{Hold: time.Millisecond, Idle: 20 * time.Millisecond}, a, b)
	var got []int
	idles := 0
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		var ci Info
		data, err := m.ReadPacket(&ci)
		switch {
		case errors.Is(err, ErrIdle):
			idles++
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, int(data[0]))
		}
	}
	m.Stop()
	if !slices.Equal(got, []int{1, 2}) {
		t.Errorf("packets %v, want [1 2]", got)
	}
	if idles < 2 {
		t.Errorf("%d ErrIdle in the 150ms gap with Idle 20ms, want several", idles)
	}
	if b.calls.Load() < 2 {
		t.Errorf("the source that said ErrIdle was read %d times, want it read again", b.calls.Load())
	}
}

// idleSource has nothing to deliver: ErrIdle every few milliseconds until
// stopped.
type idleSource struct {
	calls   atomic.Int32
	stopped atomic.Bool
}

func (s *idleSource) ReadPacket(*Info) ([]byte, error) {
	s.calls.Add(1)
	if s.stopped.Load() {
		return nil, io.EOF
	}
	time.Sleep(5 * time.Millisecond)
	return nil, ErrIdle
}

func (s *idleSource) Stop() { s.stopped.Store(true) }

// TestMergeAllocs: the merged stream of two ports allocates nothing per
// packet once its buffers are warm: the reading goroutines and the
// reorder buffer recycle what they hold. "bounded": a busy link, whose
// packets leave the reorder buffer when it is full; "held": a quiet
// one, whose packets wait out Hold.
func TestMergeAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MergeConfig
		gap  time.Duration // between a source's packets
		warm int           // packets that fill the free list, the channel and the reorder buffer
	}{
		{"bounded", MergeConfig{Hold: time.Hour, MaxHeld: 64}, 0, 10000},
		{"held", MergeConfig{Hold: time.Millisecond, Idle: time.Hour}, 100 * time.Microsecond, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &steadySource{pkt: make([]byte, 120), next: mergeT0, step: 2, gap: tc.gap}
			b := &steadySource{pkt: make([]byte, 80), next: mergeT0.Add(1), step: 2, gap: tc.gap}
			m := NewMerged(tc.cfg, a, b)
			var ci Info
			defer func() {
				m.Stop()
				for _, err := m.ReadPacket(&ci); err == nil; _, err = m.ReadPacket(&ci) {
				}
			}()
			read := func() {
				if _, err := m.ReadPacket(&ci); err != nil {
					t.Fatal(err)
				}
			}
			for range tc.warm {
				read()
			}
			if n := testing.AllocsPerRun(1000, read); n != 0 {
				t.Errorf("%v allocations per merged packet, want 0", n)
			}
		})
	}
}

// steadySource delivers the same packet until stopped, each step later
// than the last, without allocating.
type steadySource struct {
	pkt     []byte
	next    time.Time
	step    time.Duration
	gap     time.Duration
	stopped atomic.Bool
}

func (s *steadySource) ReadPacket(ci *Info) ([]byte, error) {
	if s.stopped.Load() {
		return nil, io.EOF
	}
	if s.gap > 0 {
		time.Sleep(s.gap)
	}
	*ci = Info{Timestamp: s.next, CaptureLength: len(s.pkt), Length: len(s.pkt)}
	s.next = s.next.Add(s.step)
	return s.pkt, nil
}

func (s *steadySource) Stop() { s.stopped.Store(true) }

// TestMergeSourceRecovers: a source that fails (an interface down for a
// while) is read again, and its later packets are delivered.
func TestMergeSourceRecovers(t *testing.T) {
	order, _, errs := readMerged(t, NewMerged(MergeConfig{Hold: 10 * time.Millisecond}, &flakySource{}))
	if len(errs) != 1 || !slices.Equal(order, []int{1, 3}) {
		t.Errorf("packets %v, errors %v; want [1 3] and one error", order, errs)
	}
}

// flakySource delivers packet 1, fails, then delivers packet 3.
type flakySource struct{ n int }

func (s *flakySource) ReadPacket(ci *Info) ([]byte, error) {
	s.n++
	switch s.n {
	case 1, 3:
		*ci = Info{Timestamp: mergeT0.Add(time.Duration(s.n) * time.Second), CaptureLength: 1, Length: 1}
		return []byte{byte(s.n)}, nil
	case 2:
		return nil, errors.New("network is down")
	}
	return nil, io.EOF
}

func (s *flakySource) Stop() {}
