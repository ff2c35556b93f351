//go:build linux

package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// oldRing is the sizing before the ring was measured: 16 blocks of
// 512 KiB and a 50ms block timeout, which held 0.8 s of a quiet link.
var oldRing = LiveConfig{RingBytes: 8 << 20, BlockTimeout: 50 * time.Millisecond, blockBytes: 512 << 10}

// TestLiveRingHoldsStall: while the reader is stalled for 5 s, a link
// carrying 200 small packets a second fills the default ring with
// nothing lost, and the old sizing, on the same link at the same time,
// loses most of them (the kernel counts the drops). The default ring holds
// 128 blocks × 100ms = 12.8 s at this rate; the stall takes 5. A sender
// that bunches its packets (a loaded machine) only makes a ring hold
// more.
func TestLiveRingHoldsStall(t *testing.T) {
	lab := newRingLab(t)
	def, old := lab.open(LiveConfig{}), lab.open(oldRing)
	const rate, stall = 200, 5 * time.Second
	sent := lab.send(rate, stall)
	got, gotOld := lab.drain(def, sent), lab.drain(old, sent)
	// The old ring cannot hold packets that arrive in more bunches than
	// it has blocks, a bunch being what spans one block timeout (and a
	// timer tick). On a loaded machine the sender may send in so few
	// bunches that they fit; the old ring is judged only when they are
	// clearly too many.
	bunches := bunches(got.arrived, 60*time.Millisecond)
	t.Logf("%d packets sent at %d a second in %v, arriving in %d bunches: the default ring held %v, the old one %v", sent, rate, stall, bunches, got, gotOld)
	if got.held != sent || got.Drops != 0 {
		t.Errorf("the default ring lost packets in a %v stall at %d packets a second: %v of %d", stall, rate, got, sent)
	}
	if bunches < 3*16 {
		t.Logf("the packets arrived in only %d bunches: the old ring's 16 blocks are not judged", bunches)
	} else if gotOld.held >= sent || gotOld.Drops == 0 {
		t.Errorf("the old ring (16 blocks, 50ms) lost nothing in a %v stall at %d a second, the packets in %d bunches (%v of %d): the test cannot tell a ring that is too small",
			stall, rate, bunches, gotOld, sent)
	}
}

// bunches counts the groups of times, each spanning at most span, that
// times fall into: the blocks a ring needs at the least to hold packets
// that arrived at those times, if a block is handed over no later than
// span after it starts.
func bunches(times []time.Time, span time.Duration) int {
	times = slices.SortedFunc(slices.Values(times), time.Time.Compare)
	n := 0
	var start time.Time
	for _, ts := range times {
		if n == 0 || ts.Sub(start) > span {
			n, start = n+1, ts
		}
	}
	return n
}

// BenchmarkRingHold measures how much of a link's traffic a ring holds
// while its reader stalls for longer than it can hold: -benchtime 1x,
// root. It reports the packets sent, held and dropped, and the seconds
// held (held ÷ rate), for the default ring and the old sizing, at rates
// from a quiet plant's to a busy one's. The packets are Modbus-sized: 106
// bytes on the wire, 192 in the ring.
//
//	go test ./capture -run '^$' -bench RingHold -benchtime 1x
func BenchmarkRingHold(b *testing.B) {
	const stall = 20 * time.Second
	for _, ring := range []struct {
		name string
		cfg  LiveConfig
	}{{"default", LiveConfig{}}, {"old", oldRing}} {
		for _, rate := range []int{50, 200, 1000, 5000, 20000} {
			b.Run(fmt.Sprintf("ring=%s/pps=%d", ring.name, rate), func(b *testing.B) {
				lab := newRingLab(b)
				live := lab.open(ring.cfg)
				for range b.N {
					sent := lab.send(rate, stall)
					got := lab.drain(live, sent)
					b.ReportMetric(float64(sent), "sent")
					b.ReportMetric(float64(got.held), "held")
					b.ReportMetric(float64(got.Drops), "drops")
					b.ReportMetric(float64(got.held)/float64(rate), "held-s")
				}
			})
		}
	}
}

// ringLab is a veth pair between two namespaces the test creates: UDP to
// port 502 (Modbus over UDP, kept whole by the kernel filter) is sent
// from one end and captured on the other.
type ringLab struct {
	tb     testing.TB
	tx, rx *testenv.Netns
	write  func(payload []byte) error
	run    uint64 // tells this send's packets from earlier ones
}

var ringMagic = [4]byte{'t', 'w', 'r', 'g'}

func newRingLab(tb testing.TB) *ringLab {
	tb.Helper()
	tx, rx := testenv.NewNetns(tb, "twrtx"), testenv.NewNetns(tb, "twrrx")
	testenv.Veth(tb, tx, "twr0", rx, "twr1")
	tx.IP("addr", "add", "10.97.0.1/24", "dev", "twr0")
	rx.IP("addr", "add", "10.97.0.2/24", "dev", "twr1")
	// A listener that discards, so that the sends draw no ICMP errors; it
	// reads without allocating, as allocation tests count its work too.
	var sink net.Conn
	if err := rx.Do(func() (err error) {
		sink, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 97, 0, 2), Port: 502})
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	}()
	var conn net.Conn
	if err := tx.Do(func() (err error) { conn, err = net.Dial("udp4", "10.97.0.2:502"); return err }); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &ringLab{tb: tb, tx: tx, rx: rx, write: func(p []byte) error { _, err := conn.Write(p); return err }}
}

// tagVLAN makes the lab send its datagrams as Ethernet frames tagged with
// vlan, from a packet socket: the receiving kernel moves the tag into the
// packet's metadata before a capture sees the frame, as it does with
// every tagged frame.
func (l *ringLab) tagVLAN(vlan uint16) {
	l.tb.Helper()
	var dst, src net.HardwareAddr
	if err := l.rx.Do(func() error { ifc, err := net.InterfaceByName("twr1"); dst = ifc.HardwareAddr; return err }); err != nil {
		l.tb.Fatal(err)
	}
	var fd int
	var to unix.SockaddrLinklayer
	if err := l.tx.Do(func() error {
		ifc, err := net.InterfaceByName("twr0")
		if err != nil {
			return err
		}
		src, to.Ifindex = ifc.HardwareAddr, ifc.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		return err
	}); err != nil {
		l.tb.Fatal(err)
	}
	l.tb.Cleanup(func() { unix.Close(fd) })
	var frame []byte
	l.write = func(p []byte) error {
		frame = append(vlanUDPHeader(frame[:0], dst, src, vlan, len(p)), p...)
		return unix.Sendto(fd, frame, 0, &to)
	}
}

// vlanUDPHeader appends the headers of a datagram of n bytes from
// 10.97.0.1 to 10.97.0.2:502 in an Ethernet frame tagged with vlan.
func vlanUDPHeader(b []byte, dst, src net.HardwareAddr, vlan uint16, n int) []byte {
	b = append(append(b, dst...), src...)
	b = binary.BigEndian.AppendUint16(b, 0x8100)
	b = binary.BigEndian.AppendUint16(b, vlan)
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	ip := len(b)
	b = append(b, 0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 97, 0, 1, 10, 97, 0, 2)
	binary.BigEndian.PutUint16(b[ip+2:], uint16(20+8+n))
	var sum uint32
	for i := ip; i < ip+20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[ip+10:], ^uint16(sum))
	b = binary.BigEndian.AppendUint16(b, 40000)
	b = binary.BigEndian.AppendUint16(b, 502)
	b = binary.BigEndian.AppendUint16(b, uint16(8+n))
	return binary.BigEndian.AppendUint16(b, 0) // no UDP checksum
}

// open opens a capture on the receiving end, and reads up to a first
// packet sent, so that the neighbour is resolved before the stall.
func (l *ringLab) open(cfg LiveConfig) *Live {
	l.tb.Helper()
	cfg.Interface, cfg.Ports, cfg.ReturnIdle = "twr1", []uint16{502}, true
	var live *Live
	if err := l.rx.Do(func() (err error) { live, err = OpenLive(cfg); return err }); err != nil {
		l.tb.Fatal(err)
	}
	l.tb.Cleanup(func() { live.Close() })
	l.send(1000, 0)
	if got := l.drain(live, 1); got.held != 1 {
		l.tb.Fatalf("the capture did not see a first packet: %v", got)
	}
	return live
}

// send sends packets at rate a second for d (at least one packet), each
// with its number, and returns how many it sent. It keeps to the rate on
// average: when the sender is late it catches up.
func (l *ringLab) send(rate int, d time.Duration) int {
	l.tb.Helper()
	l.run++
	total := max(int(d.Seconds()*float64(rate)), 1)
	pkt := make([]byte, 64) // 106 bytes on the wire
	copy(pkt, ringMagic[:])
	binary.BigEndian.PutUint64(pkt[4:], l.run)
	start := time.Now()
	for sent := 0; sent < total; {
		due := min(int(time.Since(start).Seconds()*float64(rate))+1, total)
		for ; sent < due; sent++ {
			binary.BigEndian.PutUint32(pkt[12:], uint32(sent))
			if err := l.write(pkt); err != nil {
				l.tb.Fatalf("send: %v", err)
			}
		}
		time.Sleep(time.Millisecond)
	}
	return total
}

// ringHeld is what a drained ring held of the last send, and the kernel's
// counters since the capture opened.
type ringHeld struct {
	held    int         // distinct packets of the last send
	arrived []time.Time // their kernel timestamps
	LiveStats
}

func (h ringHeld) String() string {
	return fmt.Sprintf("%d packets (kernel: %d packets, %d drops, %d freezes)", h.held, h.Packets, h.Drops, h.Freezes)
}

// drain reads what live holds until the link has been quiet for its
// block timeout and two poll timeouts (the last block is handed over
// within its block timeout), and counts the packets of the last send,
// numbered 0 to sent-1.
func (l *ringLab) drain(live *Live, sent int) ringHeld {
	l.tb.Helper()
	seen := make([]bool, sent)
	var h ringHeld
	idle, quiet := 0, 2+int(live.timeout/livePollTimeout)
	for deadline := time.Now().Add(time.Minute); idle < quiet && time.Now().Before(deadline); {
		var ci Info
		data, err := live.ReadPacket(&ci)
		if errors.Is(err, ErrIdle) {
			idle++
			continue
		}
		if err != nil {
			l.tb.Fatal(err)
		}
		idle = 0
		// Ethernet, IPv4 without options, UDP to 502, then the payload.
		if len(data) < 42+16 || data[23] != 17 || binary.BigEndian.Uint16(data[36:]) != 502 ||
			!bytes.Equal(data[42:46], ringMagic[:]) || binary.BigEndian.Uint64(data[46:]) != l.run {
			continue
		}
		if n := int(binary.BigEndian.Uint32(data[54:])); n < sent && !seen[n] {
			seen[n] = true
			h.held++
			h.arrived = append(h.arrived, ci.Timestamp)
		}
	}
	st, err := live.Stats()
	if err != nil {
		l.tb.Fatal(err)
	}
	h.LiveStats = st
	return h
}
