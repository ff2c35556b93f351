package capture

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
)

// Live reads packets from an AF_PACKET TPACKET_V3 ring on one interface
// (gopacket's pure-Go afpacket), with the kernel filter of Filter. It
// only receives: it has no way to send, and tapwatch never puts an
// address on the interface.
//
// ReadPacket returns bytes in the ring, valid until the next call, like
// the file sources. ReadPacket and Close belong to one goroutine; Stop
// and Stats may be called from any.
type Live struct {
	tp      *afpacket.TPacket
	iface   string
	idle    bool
	frame   uint64
	stopped atomic.Bool
	closeMu sync.Mutex // Close against Stats
	closed  bool
}

// OpenLive opens a live capture. It needs CAP_NET_RAW (and CAP_NET_ADMIN
// for promiscuous mode on some kernels); the error says so.
func OpenLive(cfg LiveConfig) (*Live, error) {
	if cfg.Interface == "" {
		return nil, errors.New("live capture: no interface")
	}
	ring := cfg.RingBytes
	if ring == 0 {
		ring = DefaultRingBytes
	}
	block := LiveBlockBytes
	if cfg.blockBytes != 0 {
		block = cfg.blockBytes
	}
	blocks := max(ring/block, 2)
	timeout := cfg.BlockTimeout
	if timeout == 0 {
		timeout = DefaultBlockTimeout
	}
	prog, err := Filter(cfg.Ports, FullSnap, ShortSnap)
	if err != nil {
		return nil, fmt.Errorf("live capture on %s: %w", cfg.Interface, err)
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(cfg.Interface),
		afpacket.TPacketVersion3,
		afpacket.OptFrameSize(afpacket.DefaultFrameSize),
		afpacket.OptBlockSize(block),
		afpacket.OptNumBlocks(blocks),
		afpacket.OptBlockTimeout(timeout),
		afpacket.OptPollTimeout(livePollTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("live capture on %s: %w%s", cfg.Interface, err, privilegeHint(err))
	}
	if err := tp.SetBPF(prog); err != nil {
		tp.Close()
		return nil, fmt.Errorf("live capture on %s: kernel filter: %w", cfg.Interface, err)
	}
	if !cfg.NoPromiscuous {
		if err := tp.SetPromiscuous(true); err != nil {
			tp.Close()
			return nil, fmt.Errorf("live capture on %s: promiscuous mode: %w%s", cfg.Interface, err, privilegeHint(err))
		}
	}
	return &Live{tp: tp, iface: cfg.Interface, idle: cfg.ReturnIdle}, nil
}

func privilegeHint(err error) string {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return " (needs CAP_NET_RAW and CAP_NET_ADMIN: run as root, or grant them, as the systemd unit does)"
	}
	return ""
}

// Interface is the interface name.
func (l *Live) Interface() string { return l.iface }

// ReadPacket waits for the next packet; with LiveConfig.ReturnIdle it
// returns ErrIdle after the poll timeout without one. After Stop it
// returns io.EOF.
func (l *Live) ReadPacket(ci *Info) ([]byte, error) {
	for {
		if l.stopped.Load() {
			l.Close()
			return nil, io.EOF
		}
		data, c, err := l.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			if l.idle && !l.stopped.Load() {
				return nil, ErrIdle
			}
			continue
		}
		if err != nil {
			if l.stopped.Load() {
				l.Close()
				return nil, io.EOF
			}
			return nil, fmt.Errorf("live capture on %s: %w", l.iface, err)
		}
		l.frame++
		*ci = Info{Timestamp: c.Timestamp, CaptureLength: c.CaptureLength, Length: c.Length,
			LinkType: layers.LinkTypeEthernet, Frame: l.frame}
		return data, nil
	}
}

// Stop makes ReadPacket return io.EOF within its poll timeout (200ms),
// from any goroutine; the reading goroutine then releases the ring.
func (l *Live) Stop() { l.stopped.Store(true) }

// Stats returns the kernel's counters since the capture opened.
func (l *Live) Stats() (LiveStats, error) {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return LiveStats{}, fmt.Errorf("live capture on %s: closed", l.iface)
	}
	_, v3, err := l.tp.SocketStats()
	if err != nil {
		return LiveStats{}, fmt.Errorf("live capture on %s: %w", l.iface, err)
	}
	return LiveStats{Packets: uint64(v3.Packets()), Drops: uint64(v3.Drops()), Freezes: uint64(v3.QueueFreezes())}, nil
}

// Close releases the ring and the socket; call it from the goroutine
// that reads, or after it has stopped reading.
func (l *Live) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if !l.closed {
		l.closed = true
		l.tp.Close()
	}
	return nil
}
