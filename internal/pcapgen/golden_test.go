package pcapgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// everything writes, on w's link, one of each kind of frame pcapgen makes:
// TCP (handshake, split, reordered, overlapping and retransmitted data,
// SendAt, Skip, RST, FIN, forged segments, a scan's SYN), UDP (empty, odd
// and large payloads, IPv4 fragments), ARP, ICMP unreachables, echoes,
// DNP3 over TCP and UDP, for IPv4, IPv6 and endpoints without a MAC.
func everything(w *Writer) error {
	c4, s4 := ep(mac(1), "10.0.0.1", 40000), ep(mac(2), "10.0.0.2", 502)
	c6, s6 := ep(mac(3), "fd00::1", 40001), ep(mac(4), "fd00::2", 20000)
	s6.TTL = 200
	for _, pair := range [][2]Endpoint{{c4, s4}, {c6, s6}, {ep(nil, "10.1.1.1", 1), ep(nil, "10.1.1.2", 2)}} {
		if err := everythingBetween(w, pair[0], pair[1]); err != nil {
			return err
		}
	}
	return nil
}

// everythingAndJunk adds a frame given whole to WritePacket, 5 s after the
// rest.
func everythingAndJunk(w *Writer) error {
	if err := everything(w); err != nil {
		return err
	}
	return w.WritePacket(w.Now().Add(5*time.Second+time.Microsecond), []byte{1, 2, 3, 4, 5})
}

func everythingBetween(w *Writer, a, b Endpoint) error {
	var errs []error
	try := func(_ any, err error) { errs = append(errs, err) }
	c, err := NewTCPConn(w, a, b, 1000, 0xfffffff0)
	if err != nil {
		return err
	}
	c.Window = 1234
	try(c.Handshake())
	try(c.Client(MBAP(1, 1, ReadHoldingRegisters(0, 10))))
	f, err := c.Server(bytes.Repeat([]byte{0xab, 0xcd, 0xef}, 100), Split(3), Order(2, 0, 1), Overlap(5))
	if err != nil {
		return err
	}
	try(c.Retransmit(f[1]))
	try(c.Client([]byte("hello world!!"), SplitAt(3, 7)))
	c.Skip(FromServer, 17)
	try(c.Ack(FromClient))
	try(c.SendAt(FromServer, 5, []byte{1, 2, 3}))
	w.Advance(3 * time.Second)
	try(nil, c.Impersonate(FromServer, ep(mac(9), "10.9.9.9", 1)))
	try(c.Rst(FromServer))
	try(nil, c.Impersonate(FromServer, b))
	try(c.Close())
	scan, err := NewTCPConn(w, a, b, 0, 0)
	if err != nil {
		return err
	}
	try(scan.Syn())
	try(scan.SynAck())
	try(scan.Rst(FromClient))
	try(scan.Fin(FromServer))

	u, err := NewUDP(w, a, b)
	if err != nil {
		return err
	}
	for _, p := range [][]byte{nil, {0}, {1, 2, 3}, bytes.Repeat([]byte{7}, 1400)} {
		try(u.Send(p))
		try(u.Reply(p))
	}
	if a.IP.Is4() {
		try(u.SendFragments(bytes.Repeat([]byte("frag"), 100), 203))
		try(u.SendFragments([]byte("0123456789"), 8))
		if w.Link().CarriesARP() {
			try(w.ARPRequest(a, b.IP))
			try(w.ARPReply(b, a))
			try(nil, oddARP(w))
		}
		for _, code := range []uint8{1, 3} {
			try(w.Unreachable(b, a, code, 161))
		}
	}
	try(w.Ping(a, b, 77, 3, []byte("abcdefghijklmnopqrstuvwxyz0123456789")))
	try(w.Ping(a, b, 78, 4, []byte("odd")))
	try(w.EchoRequest(a, b, 79, 5, nil))

	dc, err := NewTCPConn(w, a, b, 5, 6)
	if err != nil {
		return err
	}
	d := NewDNP3TCP(dc, 1, 10)
	try(d.Master(AppRequest(AppControl(true, true, false, false, 1), DNP3Read, ClassData(0))))
	try(d.Outstation(AppResponse(AppControl(true, true, false, false, 1), 0x81, IINNeedTime, AnalogInputs(0, 1, make([]int32, 200)...))))
	try(d.LinkStatus())
	try(NewDNP3UDP(u, 1, 10).Master(AppRequest(AppControl(true, true, false, false, 2), DNP3Operate, CROB(0, CROBTrip, 1, 100, 0, 0))))
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// oddARP writes ARP no helper makes: IPv6 addresses, and a reply whose
// Ethernet and ARP addresses disagree.
func oddARP(w *Writer) error {
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if _, err := w.WriteARP(mac(5), bcast, ARP{HardwareType: 1, ProtocolType: 0x86dd, Operation: 1,
		SenderMAC: mac(5), SenderIP: make([]byte, 16), TargetMAC: make([]byte, 6), TargetIP: make([]byte, 16)}); err != nil {
		return err
	}
	_, err := w.WriteARP(mac(5), mac(6), ARP{HardwareType: 1, ProtocolType: 0x0800, Operation: 2,
		SenderMAC: mac(7), SenderIP: []byte{10, 0, 0, 7}, TargetMAC: bcast, TargetIP: []byte{10, 0, 0, 8}})
	return err
}

// sweep writes every 2-byte payload, and some 3-byte ones, in UDP, TCP and
// ICMP, so that every checksum value occurs: 0 and 0xffff included.
func sweep(w *Writer, a, b Endpoint) error {
	u, err := NewUDP(w, a, b)
	if err != nil {
		return err
	}
	c, err := NewTCPConn(w, a, b, 0, 0)
	if err != nil {
		return err
	}
	for i := range 1 << 16 {
		p := []byte{byte(i >> 8), byte(i)}
		if _, err := u.Send(p); err != nil {
			return err
		}
		if _, err := c.SendAt(FromClient, 1, p); err != nil {
			return err
		}
		if _, err := w.EchoRequest(a, b, 1, 1, p); err != nil {
			return err
		}
		if i%251 == 0 {
			if _, err := u.Send(append(p, byte(i))); err != nil {
				return err
			}
		}
	}
	return nil
}

func capture(t testing.TB, opts Options, write func(*Writer) error) []byte {
	t.Helper()
	b, err := Capture(opts, write)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The SHA-256 of captures as gopacket's serializers and pcapgo wrote them
// before pcapgen wrote its own bytes. Frames must not change silently:
// tests elsewhere assert on their exact sizes and sequence numbers.
var golden = []struct {
	name  string
	opts  Options
	write func(*Writer) error
	sum   string
}{
	{"everything/ethernet", Options{}, everythingAndJunk, "2199c6c1ed32d50d99b1222510c006546154930e5ae45ccec86da806486ba34f"},
	{"everything/vlan", Options{Link: LinkVLAN, VLAN: 4094}, everythingAndJunk, "f310e55fe7f1fd7621d0b56db900299f8d4de448bdc89a2cbbbdce8af7d3d795"},
	{"everything/qinq", Options{Link: LinkQinQ, VLAN: 7, OuterVLAN: 3000}, everythingAndJunk, "31fd27282300655c1533217206955b4a5fbb701156df483168ea6905fbe73b92"},
	{"everything/null", Options{Link: LinkNull}, everythingAndJunk, "a11e68832acbdfa14610d035e97e14f5db28372273f22cc49a8e425f38df3d88"},
	{"everything/null-bsd-be", Options{Link: LinkNull, NullFamilyIPv6: 24, NullBigEndian: true}, everythingAndJunk, "1639c95eaca4aa9085ef3410397c549a67319084f6e993bdfa8d59f4b8894412"},
	{"everything/null-freebsd", Options{Link: LinkNull, NullFamilyIPv6: 28}, everythingAndJunk, "69a8366b9c7bbd2ed9584f08976a5dfbdbe5b9281a2abfee7ddd86232ab6322c"},
	{"everything/raw", Options{Link: LinkRaw}, everythingAndJunk, "d98cc68de9d337c43607aa51b3f1828897726770b096f1ab65380d945730cd35"},
	{"everything/sll", Options{Link: LinkSLL}, everythingAndJunk, "8b6008ad421103be40f9344764cf7f14df250c3a110bb636ab3a2e243721ce5e"},
	{"everything/clock", Options{Start: time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC), Step: 1234567, Snaplen: 1500}, everythingAndJunk, "ee023ff49a1a773605fd3dd74298084e359f0783a320d48e97e46b1a706f7b44"},
	{"sweep/v4", Options{}, func(w *Writer) error {
		return sweep(w, ep(mac(1), "192.168.7.1", 1234), ep(mac(2), "192.168.7.2", 5678))
	}, "7c0f666f70f7c25214d0da4a4f216539c48f2260e66a6406db7aa7c0c26a5191"},
	{"sweep/v6", Options{Link: LinkNull}, func(w *Writer) error { return sweep(w, ep(mac(1), "fd00:7::1", 1234), ep(mac(2), "fd00:7::2", 5678)) }, "da501defd2d334c4f7df1e384eb7665c6bb21974496a572b6d2309093405dd83"},
	{"plant", Options{}, func(w *Writer) error { return Plant(w, 3000, 1) }, "3d643819405734c0222e5976968434ed5cc2f844feb39d60aafb4be338b024d2"},
	{"siteplant", Options{Link: LinkVLAN}, func(w *Writer) error { return SitePlant(w, 3000, 1) }, "0a85c09b4572c8db3b9bd1284d16bf5ae254c6e71f16225c5087fa5a75b5d557"},
}

func TestGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			b := capture(t, g.opts, g.write)
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != g.sum {
				t.Errorf("%d bytes with SHA-256 %x, want %s", len(b), sum, g.sum)
			}
		})
	}
}

// TestGoldenPcapNG: a pcapng file holds the same frames as the pcap one,
// after a section header and an interface description whose options name
// the machine, as pcapgo wrote them.
func TestGoldenPcapNG(t *testing.T) {
	for _, opts := range []Options{{Link: LinkEthernet}, {Link: LinkQinQ, Snaplen: 1500}, {Link: LinkRaw, Start: time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)}} {
		t.Run(opts.Link.String(), func(t *testing.T) {
			pcap := capture(t, opts, everythingAndJunk)
			opts.PcapNG = true
			ng := capture(t, opts, everythingAndJunk)
			opts.setDefaults()

			var want []byte
			want = ngBlock(want, 0x0a0d0d0a, func(b []byte) []byte {
				b = binary.LittleEndian.AppendUint32(b, 0x1a2b3c4d)
				b = binary.LittleEndian.AppendUint32(b, 1) // version 1.0
				b = binary.LittleEndian.AppendUint64(b, ^uint64(0))
				b = ngOpt(b, 4, []byte("gopacket"))
				b = ngOpt(b, 2, []byte(runtime.GOARCH))
				b = ngOpt(b, 3, []byte(runtime.GOOS))
				return ngOpt(b, 0, nil)
			})
			want = ngBlock(want, 1, func(b []byte) []byte {
				b = binary.LittleEndian.AppendUint32(b, uint32(opts.Link.LinkType()))
				b = binary.LittleEndian.AppendUint32(b, opts.Snaplen)
				b = ngOpt(b, 2, []byte("intf0"))
				b = ngOpt(b, 12, []byte(runtime.GOOS))
				b = ngOpt(b, 9, []byte{9})
				return ngOpt(b, 0, nil)
			})
			// Each pcap record becomes an enhanced packet block.
			for p := pcap[24:]; len(p) > 0; {
				n := int(binary.LittleEndian.Uint32(p[8:]))
				ts := time.Unix(int64(binary.LittleEndian.Uint32(p)), int64(binary.LittleEndian.Uint32(p[4:]))*1000)
				frame := p[16 : 16+n]
				p = p[16+n:]
				want = ngBlock(want, 6, func(b []byte) []byte {
					b = binary.LittleEndian.AppendUint32(b, 0)
					// pcap has microseconds: the nanoseconds are Start's.
					ns := uint64(ts.UnixNano() + int64(opts.Start.Nanosecond()%1000))
					b = binary.LittleEndian.AppendUint32(b, uint32(ns>>32))
					b = binary.LittleEndian.AppendUint32(b, uint32(ns))
					b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
					b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
					return append(b, pad4(frame)...)
				})
			}
			if !bytes.Equal(ng, want) {
				i := 0
				for i < min(len(ng), len(want)) && ng[i] == want[i] {
					i++
				}
				t.Errorf("pcapng differs from the expected blocks at byte %d of %d (want %d)", i, len(ng), len(want))
			}
		})
	}
}

func pad4(b []byte) []byte { return append(b[:len(b):len(b)], make([]byte, -len(b)&3)...) }

func ngBlock(dst []byte, typ uint32, body func([]byte) []byte) []byte {
	b := body(nil)
	n := uint32(12 + len(b))
	dst = binary.LittleEndian.AppendUint32(dst, typ)
	dst = binary.LittleEndian.AppendUint32(dst, n)
	dst = append(dst, b...)
	return binary.LittleEndian.AppendUint32(dst, n)
}

func ngOpt(b []byte, code uint16, val []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(val)))
	return append(b, pad4(val)...)
}

// TestDecodeEverything decodes every frame of everything, on every link,
// with gopacket, which checks the checksums (readBack), and checks the
// lengths each header states.
func TestDecodeEverything(t *testing.T) {
	for _, l := range []Link{LinkEthernet, LinkVLAN, LinkQinQ, LinkNull, LinkRaw, LinkSLL} {
		t.Run(l.String(), func(t *testing.T) {
			_, pkts := readBack(t, capture(t, Options{Link: l, PcapNG: l == LinkQinQ}, everything))
			if len(pkts) < 120 {
				t.Fatalf("%d frames", len(pkts))
			}
			for i, p := range pkts {
				checkLengths(t, i+1, l, p)
			}
		})
	}
}

func checkLengths(t *testing.T, frame int, l Link, p gopacket.Packet) {
	t.Helper()
	if p.ErrorLayer() != nil || p.Metadata().Truncated {
		t.Fatalf("frame %d: decode error %v", frame, p.ErrorLayer())
	}
	pad := 0
	if eth, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ok {
		if len(p.Data()) < 60 {
			t.Errorf("frame %d: %d-byte Ethernet frame", frame, len(p.Data()))
		}
		if len(p.Data()) == 60 {
			pad = -1 // any padding
		}
		_ = eth
	}
	var ipEnd int // bytes from the start of the IP header to the frame's end
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		ipEnd = len(ip.Contents) + len(ip.Payload)
		if ip.IHL != 5 || int(ip.Length) != 20+len(ip.Payload) {
			t.Errorf("frame %d: IPv4 IHL %d length %d with %d payload bytes", frame, ip.IHL, ip.Length, len(ip.Payload))
		}
	case *layers.IPv6:
		ipEnd = len(ip.Contents) + len(ip.Payload)
		if int(ip.Length) != len(ip.Payload) {
			t.Errorf("frame %d: IPv6 payload length %d of %d bytes", frame, ip.Length, len(ip.Payload))
		}
	case nil:
		if arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); !ok {
			t.Errorf("frame %d: neither IP nor ARP: %v", frame, p)
		} else if l == LinkNull || l == LinkRaw {
			t.Errorf("frame %d: ARP on %v", frame, l)
		} else if int(arp.HwAddressSize) != len(arp.SourceHwAddress) || int(arp.ProtAddressSize) != len(arp.DstProtAddress) {
			t.Errorf("frame %d: ARP sizes %+v", frame, arp)
		}
		return
	}
	// The IP packet ends the frame, but for Ethernet padding.
	if linkLen := len(p.Data()) - ipEnd; pad == 0 && linkLen != map[Link]int{LinkEthernet: 14, LinkVLAN: 18, LinkQinQ: 22, LinkNull: 4, LinkRaw: 0, LinkSLL: 16}[l] {
		t.Errorf("frame %d: %d bytes before the IP header", frame, linkLen)
	}
	switch tl := p.TransportLayer().(type) {
	case *layers.UDP:
		if frag, ok := p.NetworkLayer().(*layers.IPv4); ok && (frag.Flags&layers.IPv4MoreFragments != 0 || frag.FragOffset != 0) {
			return
		}
		if int(tl.Length) != 8+len(tl.Payload) || tl.Checksum == 0 {
			t.Errorf("frame %d: UDP length %d checksum %#x for %d payload bytes", frame, tl.Length, tl.Checksum, len(tl.Payload))
		}
	case *layers.TCP:
		want := uint8(5)
		if tl.SYN {
			want = 6
			if len(tl.Options) != 1 || tl.Options[0].OptionType != layers.TCPOptionKindMSS || !bytes.Equal(tl.Options[0].OptionData, []byte{0x05, 0xb4}) {
				t.Errorf("frame %d: SYN options %v, want MSS 1460", frame, tl.Options)
			}
		}
		if tl.DataOffset != want {
			t.Errorf("frame %d: TCP data offset %d, want %d", frame, tl.DataOffset, want)
		}
	}
}

// TestSweepChecksums: the UDP checksum that sums to 0 is sent as 0xffff
// (RFC 768), TCP's as 0, and those frames, with a sample of the others,
// verify with gopacket.
func TestSweepChecksums(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprint("v6=", v6), func(t *testing.T) {
			a, b := ep(mac(1), "192.168.7.1", 1234), ep(mac(2), "192.168.7.2", 5678)
			ipLen := 20
			if v6 {
				a.IP, b.IP = netip.MustParseAddr("fd00:7::1"), netip.MustParseAddr("fd00:7::2")
				ipLen = 40
			}
			r, err := pcapgo.NewReader(bytes.NewReader(capture(t, Options{Link: LinkRaw}, func(w *Writer) error { return sweep(w, a, b) })))
			if err != nil {
				t.Fatal(err)
			}
			var udpFFFF, tcpZero, tcpFFFF int
			for n := 1; ; n++ {
				data, _, err := r.ReadPacketData()
				if err != nil {
					break
				}
				var sum uint16
				proto := data[9]
				if v6 {
					proto = data[6]
				}
				switch proto {
				case 6:
					sum = binary.BigEndian.Uint16(data[ipLen+16:])
					tcpZero += b2i(sum == 0)
					tcpFFFF += b2i(sum == 0xffff)
				case 17:
					sum = binary.BigEndian.Uint16(data[ipLen+6:])
					udpFFFF += b2i(sum == 0xffff)
					if sum == 0 {
						t.Errorf("frame %d: UDP checksum 0", n)
					}
				}
				if sum == 0 || sum == 0xffff || n%997 == 0 {
					p := gopacket.NewPacket(data, layers.LinkTypeRaw, gopacket.Default)
					if p.ErrorLayer() != nil {
						t.Fatalf("frame %d: %v", n, p.ErrorLayer().Error())
					}
					verifyChecksums(t, n, p)
				}
			}
			if udpFFFF == 0 || tcpZero == 0 || tcpFFFF != 0 {
				t.Errorf("UDP checksums 0xffff: %d; TCP checksums 0: %d, 0xffff: %d", udpFFFF, tcpZero, tcpFFFF)
			}
		})
	}
}
