package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/tapwatch/tapwatch/dpi/link"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Live reads packets from an AF_PACKET TPACKET_V3 ring on one interface,
// with the kernel filter of Filter. It only receives: it has no way to
// send, and tapwatch never puts an address on the interface.
//
// The ring is read in place, as packet(7) lays it out. (gopacket's
// reader allocated for every packet whose VLAN tag the kernel had moved
// into the packet's metadata, which it does with every tagged frame: all
// of a tap's on a trunk.)
//
// An interface that goes down, or away and back (a USB adapter plugged
// in again), is an error once; the capture then goes on when it is back.
//
// ReadPacket returns bytes in the ring, valid until the next call, like
// the file sources. ReadPacket and Close belong to one goroutine; Stop
// and Stats may be called from any.
type Live struct {
	fd      int
	ring    []byte // blocks × block bytes, shared with the kernel
	block   int
	blocks  int
	timeout time.Duration
	iface   string
	ifindex int  // 0 while the interface is gone
	promisc bool // asked for
	idle    bool
	poll    [1]unix.PollFd

	cur  int      // the block being read, or the next one the kernel hands over
	held bool     // cur is ours until released
	next int      // offset in ring of cur's next packet
	left uint32   // packets of cur not yet returned
	seqs []uint64 // each block's sequence number when it was last ours

	frame   uint64
	stopped atomic.Bool
	stopAt  atomic.Int64 // Unix nanoseconds

	mu     sync.Mutex // Close against Stats
	closed bool
	stats  LiveStats // summed: the kernel clears its counters when they are read
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
	timeout := cfg.BlockTimeout
	if timeout == 0 {
		timeout = DefaultBlockTimeout
	}
	prog, err := Filter(cfg.Ports, FullSnap, ShortSnap)
	if err != nil {
		return nil, fmt.Errorf("live capture on %s: %w", cfg.Interface, err)
	}
	blocks := max(ring/block, 2)
	l := &Live{fd: -1, block: block, blocks: blocks, timeout: max(timeout, time.Millisecond),
		iface: cfg.Interface, promisc: !cfg.NoPromiscuous, idle: cfg.ReturnIdle, seqs: make([]uint64, blocks)}
	if err := l.open(prog); err != nil {
		l.Close()
		return nil, fmt.Errorf("live capture on %s: %w", cfg.Interface, err)
	}
	return l, nil
}

// open sets the socket up: filter, ring and all before it is bound, so
// that no packet of another interface, or unfiltered, gets in.
func (l *Live) open(prog []bpf.RawInstruction) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: nothing until bound
	if err != nil {
		return fmt.Errorf("packet socket: %w%s", err, privilegeHint(err))
	}
	l.fd = fd
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return fmt.Errorf("kernel filter: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{Block_size: uint32(l.block), Block_nr: uint32(l.blocks),
		Frame_size: uint32(l.block), Frame_nr: uint32(l.blocks), Retire_blk_tov: uint32(l.timeout / time.Millisecond)}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("ring of %d blocks of %d bytes: %w", l.blocks, l.block, err)
	}
	if l.ring, err = unix.Mmap(fd, 0, l.block*l.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fmt.Errorf("mapping the ring: %w", err)
	}
	return l.bind()
}

// bind binds the socket to the interface, in promiscuous mode if asked.
func (l *Live) bind() error {
	index, err := l.index()
	if err != nil {
		return err
	}
	if err := unix.Bind(l.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		return fmt.Errorf("bind: %w%s", err, privilegeHint(err))
	}
	if l.promisc {
		mreq := unix.PacketMreq{Ifindex: int32(index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(l.fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fmt.Errorf("promiscuous mode: %w%s", err, privilegeHint(err))
		}
	}
	l.ifindex = index
	return nil
}

// index looks the interface up in the socket's own network namespace.
func (l *Live) index() (int, error) {
	ifr, err := unix.NewIfreq(l.iface)
	if err == nil {
		err = unix.IoctlIfreq(l.fd, unix.SIOCGIFINDEX, ifr)
	}
	if err != nil {
		return 0, fmt.Errorf("no such interface (%w)", err)
	}
	return int(ifr.Uint32()), nil
}

// follow binds the socket again when the interface it was bound to is
// gone and another has its name (a USB adapter plugged in again): the
// kernel does not. It says when the interface is gone, once.
func (l *Live) follow() error {
	index, err := l.index()
	switch {
	case err == nil && index == l.ifindex:
		return nil
	case err != nil && l.ifindex == 0:
		return nil // still gone: said already
	case err != nil:
		l.ifindex = 0
		return fmt.Errorf("live capture on %s: the interface is gone; capturing again once it is back", l.iface)
	}
	if err := l.bind(); err != nil {
		return fmt.Errorf("live capture on %s: the interface is back: %w", l.iface, err)
	}
	return nil
}

// htons puts v in network byte order, as AF_PACKET takes protocols.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
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
// returns the packets captured before Stop, then io.EOF.
func (l *Live) ReadPacket(ci *Info) ([]byte, error) {
	if l.ring == nil {
		return nil, io.EOF // drained and closed
	}
	for {
		if l.left > 0 {
			return l.packet(ci)
		}
		if l.held {
			atomic.StoreUint32(&l.blockHeader(l.cur).Block_status, unix.TP_STATUS_KERNEL)
			l.held = false
			l.cur = (l.cur + 1) % l.blocks
		}
		if h := l.blockHeader(l.cur); atomic.LoadUint32(&h.Block_status)&unix.TP_STATUS_USER != 0 {
			l.held, l.left, l.next = true, h.Num_pkts, l.cur*l.block+int(h.Offset_to_first_pkt)
			l.seqs[l.cur] = h.Seq_num
			continue
		}
		if err := l.wait(); err != nil {
			return nil, err
		}
	}
}

// blockHeader is block i's header, in the ring.
func (l *Live) blockHeader(i int) *unix.TpacketHdrV1 {
	return (*unix.TpacketHdrV1)(unsafe.Pointer(&l.ring[i*l.block+int(unsafe.Offsetof(unix.TpacketBlockDesc{}.Hdr))]))
}

// packet returns the next packet of the block held.
func (l *Live) packet(ci *Info) ([]byte, error) {
	end := (l.cur + 1) * l.block
	if l.next+int(unsafe.Sizeof(unix.Tpacket3Hdr{})) > end {
		l.left = 0
		return nil, fmt.Errorf("live capture on %s: block %d lists more packets than it holds", l.iface, l.cur)
	}
	h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&l.ring[l.next]))
	start, stop := l.next+int(h.Mac), l.next+int(h.Mac)+int(h.Snaplen)
	if stop > end {
		l.left = 0
		return nil, fmt.Errorf("live capture on %s: a packet of %d bytes runs past its block %d", l.iface, h.Snaplen, l.cur)
	}
	ts := time.Unix(int64(h.Sec), int64(h.Nsec))
	if l.stopped.Load() && ts.UnixNano() > l.stopAt.Load() {
		return l.end()
	}
	l.left--
	l.next += int(h.Next_offset)
	l.frame++
	*ci = Info{Timestamp: ts, CaptureLength: stop - start, Length: int(h.Len), LinkType: link.Ethernet, Frame: l.frame}
	return l.ring[start:stop:stop], nil
}

// wait waits for the kernel to hand over a block, for the poll timeout at
// most: nil when it may have, ErrIdle or io.EOF when it did not.
func (l *Live) wait() error {
	timeout := livePollTimeout
	stopping := l.stopped.Load()
	if stopping {
		// The kernel hands the block it is filling over within its block
		// timeout; a second more in case its timer is late.
		timeout = time.Until(time.Unix(0, l.stopAt.Load()).Add(l.timeout + time.Second))
		if timeout <= 0 || !l.filling() {
			_, err := l.end()
			return err
		}
	}
	l.poll[0] = unix.PollFd{Fd: int32(l.fd), Events: unix.POLLIN}
	n, err := unix.Poll(l.poll[:], int(min(timeout, livePollTimeout).Milliseconds())+1)
	switch {
	case errors.Is(err, unix.EINTR):
		return nil
	case err != nil:
		return fmt.Errorf("live capture on %s: poll: %w", l.iface, err)
	case n == 0:
		if err := l.follow(); err != nil {
			return err
		}
		if l.idle && !stopping {
			return ErrIdle
		}
		return nil
	case l.poll[0].Revents&unix.POLLERR != 0:
		// The kernel sets the socket's error when the interface goes
		// down (the capture resumes when it is up again) or away.
		code, err := unix.GetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_ERROR) // and clears it
		if err != nil {
			return fmt.Errorf("live capture on %s: %w", l.iface, err)
		}
		if err := l.follow(); err != nil {
			return err
		}
		return fmt.Errorf("live capture on %s: %w", l.iface, syscall.Errno(code))
	}
	return nil
}

// filling reports whether the kernel has put packets in the block it is
// filling, the next one it hands over. (A block it has not opened again
// since it was last ours keeps its old count and sequence number.)
func (l *Live) filling() bool {
	h := l.blockHeader(l.cur)
	return atomic.LoadUint64(&h.Seq_num) != l.seqs[l.cur] && atomic.LoadUint32(&h.Num_pkts) > 0
}

// end releases the ring at the end of a drain.
func (l *Live) end() ([]byte, error) {
	l.Close()
	return nil, io.EOF
}

// Stop makes ReadPacket return what the kernel captured before Stop,
// including what is in the block it is still filling, which it hands
// over within its block timeout, then io.EOF; the reading goroutine then
// releases the ring. It may be called from any goroutine.
func (l *Live) Stop() {
	l.stopAt.CompareAndSwap(0, time.Now().UnixNano())
	l.stopped.Store(true)
}

// Stats returns the kernel's counters since the capture opened.
func (l *Live) Stats() (LiveStats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return LiveStats{}, fmt.Errorf("live capture on %s: closed", l.iface)
	}
	st, err := unix.GetsockoptTpacketStatsV3(l.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return LiveStats{}, fmt.Errorf("live capture on %s: %w", l.iface, err)
	}
	l.stats.Packets += uint64(st.Packets)
	l.stats.Drops += uint64(st.Drops)
	l.stats.Freezes += uint64(st.Freeze_q_cnt)
	return l.stats, nil
}

// Close releases the ring and the socket; call it from the goroutine
// that reads, or after it has stopped reading.
func (l *Live) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.ring != nil {
		unix.Munmap(l.ring)
		l.ring = nil
	}
	if l.fd >= 0 {
		unix.Close(l.fd)
	}
	return nil
}
