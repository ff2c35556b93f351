package pcapgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestLinks writes the same conversation with every link encapsulation, in
// pcap and pcapng, and checks what gopacket decodes from the file.
func TestLinks(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"ethernet", Options{Link: LinkEthernet}},
		{"vlan", Options{Link: LinkVLAN, VLAN: 42}},
		{"qinq", Options{Link: LinkQinQ, VLAN: 42, OuterVLAN: 300}},
		{"null", Options{Link: LinkNull}},
		{"null-bsd-bigendian", Options{Link: LinkNull, NullFamilyIPv6: 24, NullBigEndian: true}},
		{"raw", Options{Link: LinkRaw}},
		{"sll", Options{Link: LinkSLL}},
	}
	for _, tc := range cases {
		for _, ng := range []bool{false, true} {
			tc.opts.PcapNG = ng
			t.Run(fmt.Sprintf("%s/pcapng=%v", tc.name, ng), func(t *testing.T) {
				testLink(t, tc.opts)
			})
		}
	}
}

func testLink(t *testing.T, opts Options) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	cli4, srv4 := ep(mac(1), "10.0.0.1", 40000), ep(mac(2), "10.0.0.2", 502)
	cli6, srv6 := ep(mac(1), "fd00::1", 40001), ep(mac(2), "fd00::2", 502)

	c4, err := NewTCPConn(w, cli4, srv4, 1000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := c4.Handshake(); err != nil || !slices.Equal(f, []int{1, 2, 3}) {
		t.Fatalf("Handshake = %v, %v; want frames 1-3", f, err)
	}
	hello := []byte("hello")
	if f, err := c4.Client(hello); err != nil || !slices.Equal(f, []int{4}) {
		t.Fatalf("Client = %v, %v; want frame 4", f, err)
	}
	c6, err := NewTCPConn(w, cli6, srv6, 7, 9)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c6.Server(hello); err != nil { // frame 5
		t.Fatal(err)
	}
	u, err := NewUDP(w, ep(mac(1), "10.0.0.1", 3000), ep(mac(2), "10.0.0.2", 502))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Send(hello); err != nil { // frame 6
		t.Fatal(err)
	}
	if _, err := w.Ping(cli6, srv6, 1, 2, hello); err != nil { // frames 7, 8
		t.Fatal(err)
	}
	_, err = w.ARPRequest(cli4, srv4.IP) // frame 9 where ARP fits
	if opts.Link == LinkNull || opts.Link == LinkRaw {
		if !errors.Is(err, ErrLinkCannotCarry) {
			t.Fatalf("ARPRequest on %v: err = %v, want ErrLinkCannotCarry", opts.Link, err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	lt, pkts := readBack(t, buf.Bytes())
	if lt != w.Link().LinkType() {
		t.Errorf("file link type %v, want %v", lt, w.Link().LinkType())
	}
	if len(pkts) != w.Packets() {
		t.Fatalf("read %d frames, Writer counted %d", len(pkts), w.Packets())
	}
	for i, p := range pkts {
		want := DefaultStart.Add(time.Duration(i) * DefaultStep)
		if ts := p.Metadata().Timestamp; !ts.Equal(want) {
			t.Errorf("frame %d: timestamp %v, want %v", i+1, ts, want)
		}
		checkLinkHeader(t, opts, i+1, p)
	}

	// The data segment: seq and ack follow the handshake.
	tcp := tcpOf(t, pkts[3])
	if tcp.Seq != 1001 || tcp.Ack != 5001 || flagString(tcp) != "PSH|ACK" || !bytes.Equal(tcp.Payload, hello) {
		t.Errorf("frame 4: seq %d ack %d flags %s payload %q", tcp.Seq, tcp.Ack, flagString(tcp), tcp.Payload)
	}
	ip4 := pkts[3].Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if int(ip4.Length) != 20+20+len(hello) || ip4.Flags != layers.IPv4DontFragment {
		t.Errorf("frame 4: IPv4 length %d flags %v", ip4.Length, ip4.Flags)
	}
	// Mid-stream IPv6: the server's first byte is its ISN+1.
	tcp = tcpOf(t, pkts[4])
	if tcp.Seq != 10 || tcp.Ack != 8 || tcp.SrcPort != 502 || tcp.DstPort != 40001 {
		t.Errorf("frame 5: seq %d ack %d ports %d>%d", tcp.Seq, tcp.Ack, tcp.SrcPort, tcp.DstPort)
	}
	if ip6 := pkts[4].Layer(layers.LayerTypeIPv6).(*layers.IPv6); int(ip6.Length) != 20+len(hello) {
		t.Errorf("frame 5: IPv6 payload length %d", ip6.Length)
	}
	if udp, ok := pkts[5].Layer(layers.LayerTypeUDP).(*layers.UDP); !ok || udp.Length != 8+5 || !bytes.Equal(udp.Payload, hello) {
		t.Errorf("frame 6: UDP %+v", udp)
	}
	for i, typ := range []uint8{layers.ICMPv6TypeEchoRequest, layers.ICMPv6TypeEchoReply} {
		icmp, ok := pkts[6+i].Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok || icmp.TypeCode.Type() != typ {
			t.Errorf("frame %d: ICMPv6 %v, want type %d", 7+i, icmp, typ)
		}
	}
	if len(pkts) == 9 {
		arp, ok := pkts[8].Layer(layers.LayerTypeARP).(*layers.ARP)
		if !ok || arp.Operation != layers.ARPRequest || !bytes.Equal(arp.DstProtAddress, []byte{10, 0, 0, 2}) {
			t.Errorf("frame 9: ARP %+v", arp)
		}
	}
}

func checkLinkHeader(t *testing.T, opts Options, frame int, p gopacket.Packet) {
	t.Helper()
	data := p.Data()
	v6 := p.Layer(layers.LayerTypeIPv6) != nil
	isARP := p.Layer(layers.LayerTypeARP) != nil
	wantType := layers.EthernetTypeIPv4
	switch {
	case v6:
		wantType = layers.EthernetTypeIPv6
	case isARP:
		wantType = layers.EthernetTypeARP
	}
	switch opts.Link {
	case LinkEthernet, LinkVLAN, LinkQinQ:
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if len(data) < 60 {
			t.Errorf("frame %d: %d-byte Ethernet frame is not padded to 60", frame, len(data))
		}
		var tags []*layers.Dot1Q
		for _, l := range p.Layers() {
			if d, ok := l.(*layers.Dot1Q); ok {
				tags = append(tags, d)
			}
		}
		var last layers.EthernetType
		switch opts.Link {
		case LinkEthernet:
			last = eth.EthernetType
			if len(tags) != 0 {
				t.Errorf("frame %d: %d VLAN tags on plain Ethernet", frame, len(tags))
			}
		case LinkVLAN:
			if eth.EthernetType != layers.EthernetTypeDot1Q || len(tags) != 1 || tags[0].VLANIdentifier != opts.VLAN {
				t.Fatalf("frame %d: type %v, tags %v; want one 802.1Q tag %d", frame, eth.EthernetType, tags, opts.VLAN)
			}
			last = tags[0].Type
		case LinkQinQ:
			if eth.EthernetType != layers.EthernetTypeQinQ || len(tags) != 2 ||
				tags[0].VLANIdentifier != opts.OuterVLAN || tags[0].Type != layers.EthernetTypeDot1Q ||
				tags[1].VLANIdentifier != opts.VLAN {
				t.Fatalf("frame %d: type %v, tags %+v; want 0x88a8 %d then 0x8100 %d", frame, eth.EthernetType, tags, opts.OuterVLAN, opts.VLAN)
			}
			last = tags[1].Type
		}
		if last != wantType {
			t.Errorf("frame %d: inner EtherType %v, want %v", frame, last, wantType)
		}
		if isARP && !bytes.Equal(eth.DstMAC, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
			t.Errorf("frame %d: ARP request to %v, want broadcast", frame, eth.DstMAC)
		}
	case LinkNull:
		fam := uint32(2)
		if v6 {
			fam = opts.NullFamilyIPv6
			if fam == 0 {
				fam = 30
			}
		}
		got := binary.LittleEndian.Uint32(data)
		if opts.NullBigEndian {
			got = binary.BigEndian.Uint32(data)
		}
		if got != fam {
			t.Errorf("frame %d: loopback family % x, want %d", frame, data[:4], fam)
		}
		if p.Layer(layers.LayerTypeLoopback) == nil {
			t.Errorf("frame %d: no Loopback layer", frame)
		}
	case LinkRaw:
		if v6 && data[0]>>4 != 6 || !v6 && data[0]>>4 != 4 {
			t.Errorf("frame %d: raw frame starts with %#x", frame, data[0])
		}
	case LinkSLL:
		sll, ok := p.Layer(layers.LayerTypeLinuxSLL).(*layers.LinuxSLL)
		if !ok {
			t.Fatalf("frame %d: no Linux SLL layer", frame)
		}
		if sll.AddrType != 1 || sll.AddrLen != 6 || sll.EthernetType != wantType || len(sll.Addr) != 6 {
			t.Errorf("frame %d: SLL %+v", frame, sll)
		}
		if isARP && sll.PacketType != 1 || !isARP && sll.PacketType != 0 { // broadcast, to us
			t.Errorf("frame %d: SLL packet type %v", frame, sll.PacketType)
		}
	}
}

func TestWriterClock(t *testing.T) {
	var buf bytes.Buffer
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	w, err := NewWriter(&buf, Options{Start: start, Step: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := NewUDP(w, ep(mac(1), "10.0.0.1", 1), ep(mac(2), "10.0.0.2", 2))
	u.Send([]byte{1})
	w.Advance(time.Second)
	u.Reply([]byte{2})
	late := start.Add(time.Hour)
	raw := make([]byte, 60) // an all-zero Ethernet frame, written as is
	if err := w.WritePacket(late, raw); err != nil {
		t.Fatal(err)
	}
	u.Send([]byte{3})
	w.Flush()
	_, pkts := readBack(t, buf.Bytes())
	want := []time.Time{start, start.Add(time.Second + time.Millisecond), late, late.Add(time.Millisecond)}
	if len(pkts) != len(want) || w.Packets() != 4 {
		t.Fatalf("read %d frames, Packets() = %d; want 4", len(pkts), w.Packets())
	}
	for i, p := range pkts {
		if ts := p.Metadata().Timestamp; !ts.Equal(want[i]) {
			t.Errorf("frame %d: %v, want %v", i+1, ts, want[i])
		}
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{Link: 99},
		{VLAN: 4095},
		{NullFamilyIPv6: 10},
		{Step: -time.Second},
	} {
		if _, err := NewWriter(&bytes.Buffer{}, o); err == nil {
			t.Errorf("NewWriter(%+v) succeeded", o)
		}
	}
	w, _ := NewWriter(&bytes.Buffer{}, Options{})
	if _, err := NewTCPConn(w, ep(nil, "10.0.0.1", 1), ep(nil, "fd00::1", 2), 0, 0); err == nil {
		t.Error("NewTCPConn mixing IPv4 and IPv6 succeeded")
	}
	if _, err := NewUDP(w, Endpoint{}, ep(nil, "10.0.0.1", 2)); err == nil {
		t.Error("NewUDP without an address succeeded")
	}
	if _, err := w.WriteARP(mac(1), mac(2), ARP{SenderMAC: mac(1), TargetMAC: mac(2), SenderIP: []byte{1, 2, 3, 4}}); err == nil {
		t.Error("WriteARP with addresses of different lengths succeeded")
	}
	if _, err := w.WriteARP(mac(1), mac(2)[:5], ARP{}); err == nil {
		t.Error("WriteARP to a 5-byte Ethernet address succeeded")
	}
	if _, err := w.ARPRequest(ep(mac(1), "fd00::1", 0), netip.MustParseAddr("fd00::2")); err == nil {
		t.Error("ARP over IPv6 succeeded")
	}
}

// TestEchoRequest: a lone echo request, IPv4 and IPv6, with no reply.
func TestEchoRequest(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.EchoRequest(ep(mac(1), "10.0.0.1", 0), ep(nil, "10.0.0.7", 0), 5, 6, []byte("ping")); err != nil || n != 1 {
		t.Fatalf("EchoRequest = %d, %v", n, err)
	}
	if n, err := w.EchoRequest(ep(mac(1), "fd00::1", 0), ep(nil, "fd00::7", 0), 5, 7, nil); err != nil || n != 2 {
		t.Fatalf("EchoRequest v6 = %d, %v", n, err)
	}
	if _, err := w.EchoRequest(ep(mac(1), "10.0.0.1", 0), ep(nil, "fd00::7", 0), 5, 8, nil); err == nil {
		t.Error("EchoRequest mixing IPv4 and IPv6 succeeded")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_, pkts := readBack(t, buf.Bytes())
	if len(pkts) != 2 {
		t.Fatalf("read %d frames, want 2", len(pkts))
	}
	if icmp, ok := pkts[0].Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); !ok || icmp.TypeCode.Type() != layers.ICMPv4TypeEchoRequest || icmp.Seq != 6 || string(icmp.Payload) != "ping" {
		t.Errorf("frame 1: %v", pkts[0])
	}
	if icmp, ok := pkts[1].Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); !ok || icmp.TypeCode.Type() != layers.ICMPv6TypeEchoRequest {
		t.Errorf("frame 2: %v", pkts[1])
	}
}
