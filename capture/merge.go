package capture

import (
	"io"
	"slices"
	"sort"
	"sync"
	"time"
)

// A passive full-duplex tap delivers each direction of the link on its
// own port, so one conversation arrives on two interfaces. Merged reads
// several live sources at once and hands their packets on as one stream
// in timestamp order, so that TCP reassembly sees the conversation as it
// happened.
//
// Each source is read on its own goroutine, which copies the packet out
// of its ring into a recycled buffer. Packets wait in a reorder buffer
// for Hold after they arrive (the kernel hands a quiet interface's
// packets over only when its block times out) and leave it in timestamp
// order. The buffer is bounded: when it holds MaxHeld packets the oldest
// leaves at once.

// sourceErrorPause is how long a source that returned an error rests
// before it is read again.
const sourceErrorPause = 100 * time.Millisecond

// LiveSource is what Merged reads: a *Live, or a fake in tests.
type LiveSource interface {
	ReadPacket(ci *Info) ([]byte, error)
	Stop()
}

// MergeConfig tunes Merged; zero values are the defaults.
type MergeConfig struct {
	Hold    time.Duration // default 2 × DefaultBlockTimeout
	MaxHeld int           // default 4096
	// Idle, when set, makes ReadPacket return ErrIdle after this long
	// with no packet to hand out; without it ReadPacket waits. A source
	// that returns ErrIdle itself is simply read again.
	Idle time.Duration
}

type heldPacket struct {
	data    []byte
	ci      Info
	arrived time.Time
}

// Merged is the merged stream of several sources. ReadPacket belongs to
// one goroutine; Stop may be called from any.
type Merged struct {
	srcs    []LiveSource
	hold    time.Duration
	maxHeld int
	idle    time.Duration
	idleT   *time.Timer

	in   chan *heldPacket
	free chan *heldPacket
	errs chan error
	open int // sources still delivering

	held  []*heldPacket // held[start:], sorted by ci.Timestamp
	start int
	last  *heldPacket // returned by the last ReadPacket; recycled on the next
	frame uint64
	wg    sync.WaitGroup
	timer *time.Timer
}

// NewMerged starts reading srcs; the packets' Info.Source is the index of
// their source in srcs.
func NewMerged(cfg MergeConfig, srcs ...LiveSource) *Merged {
	if cfg.Hold == 0 {
		cfg.Hold = 2 * DefaultBlockTimeout
	}
	if cfg.MaxHeld == 0 {
		cfg.MaxHeld = 4096
	}
	m := &Merged{srcs: srcs, hold: cfg.Hold, maxHeld: cfg.MaxHeld, idle: cfg.Idle, idleT: time.NewTimer(time.Hour),
		in: make(chan *heldPacket, 256), free: make(chan *heldPacket, cfg.MaxHeld+256+len(srcs)+1),
		errs: make(chan error, len(srcs)), open: len(srcs), timer: time.NewTimer(time.Hour)}
	for i, s := range srcs {
		m.wg.Add(1)
		go m.read(i, s)
	}
	go func() {
		m.wg.Wait()
		close(m.in)
	}()
	return m
}

func (m *Merged) read(i int, s LiveSource) {
	defer m.wg.Done()
	// Declared once: through the interface call it escapes to the heap,
	// which inside the loop would be an allocation a packet.
	var ci Info
	for {
		data, err := s.ReadPacket(&ci)
		if err == ErrIdle {
			continue
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			// A source's errors are passing (an interface down for a
			// while): it is read again, after a pause in case it fails at
			// once every time.
			m.errs <- err
			time.Sleep(sourceErrorPause)
			continue
		}
		var p *heldPacket
		select {
		case p = <-m.free:
		default:
			p = &heldPacket{}
		}
		p.data = append(p.data[:0], data...)
		p.ci = ci
		p.ci.Source = i
		p.arrived = time.Now()
		m.in <- p
	}
}

// ReadPacket returns the next packet in timestamp order, valid until the
// next call; io.EOF once every source has ended and nothing is held;
// ErrIdle after MergeConfig.Idle with nothing to return, when set. A
// source's error is returned, and the sources go on, that one too.
func (m *Merged) ReadPacket(ci *Info) ([]byte, error) {
	if m.last != nil {
		select {
		case m.free <- m.last:
		default:
		}
		m.last = nil
	}
	for {
		select {
		case err := <-m.errs:
			return nil, err
		default:
		}
		held := m.held[m.start:]
		if len(held) > 0 {
			wait := m.hold - time.Since(held[0].arrived)
			if wait <= 0 || len(held) >= m.maxHeld || m.in == nil {
				return m.pop(ci), nil
			}
			m.timer.Reset(wait)
		} else if m.in == nil {
			return nil, io.EOF
		}
		var timeout, idle <-chan time.Time
		if len(held) > 0 {
			timeout = m.timer.C
		} else if m.idle > 0 {
			m.idleT.Reset(m.idle)
			idle = m.idleT.C
		}
		select {
		case p, ok := <-m.in:
			if !ok {
				m.in = nil // every source ended: drain what is held
				continue
			}
			m.insert(p)
		case <-timeout:
		case <-idle:
			return nil, ErrIdle
		case err := <-m.errs:
			return nil, err
		}
	}
}

// insert puts p after every held packet not later than it.
func (m *Merged) insert(p *heldPacket) {
	if m.start > 64 && m.start > len(m.held)/2 {
		n := copy(m.held, m.held[m.start:])
		clear(m.held[n:])
		m.held, m.start = m.held[:n], 0
	}
	held := m.held[m.start:]
	i := sort.Search(len(held), func(k int) bool { return held[k].ci.Timestamp.After(p.ci.Timestamp) })
	m.held = slices.Insert(m.held, m.start+i, p)
}

func (m *Merged) pop(ci *Info) []byte {
	p := m.held[m.start]
	m.held[m.start] = nil
	m.start++
	m.frame++
	*ci = p.ci
	ci.Frame = m.frame
	m.last = p
	return p.data
}

// Stop stops every source; ReadPacket then returns what is held, then
// io.EOF.
func (m *Merged) Stop() {
	for _, s := range m.srcs {
		s.Stop()
	}
}
