package capture

import (
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// frame builds an Ethernet frame: optionally VLAN-tagged, IPv4 or IPv6,
// TCP or UDP between the ports, with payload bytes.
type frame struct {
	vlan       bool
	v6         bool
	udp        bool
	sport      uint16
	dport      uint16
	fragOffset uint16 // IPv4: in 8-byte units
	ipOptions  bool   // IPv4: a 4-byte option (IHL 6)
	payload    int
}

func (f frame) bytes(t *testing.T) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	ipType := layers.EthernetTypeIPv4
	if f.v6 {
		ipType = layers.EthernetTypeIPv6
	}
	if f.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 7, Type: ipType})
	} else {
		eth.EthernetType = ipType
	}
	proto := layers.IPProtocolTCP
	if f.udp {
		proto = layers.IPProtocolUDP
	}
	var nl gopacket.NetworkLayer
	if f.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		nl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2), FragOffset: f.fragOffset}
		if f.ipOptions {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		nl = ip
		ls = append(ls, ip)
	}
	if f.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
		u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), ACK: true, Window: 512}
		tc.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload(make([]byte, f.payload)))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFilter(t *testing.T) {
	prog, err := FilterProgram([]uint16{502, 20000, 502}, FullSnap, ShortSnap)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	for _, tc := range []struct {
		name  string
		f     frame
		raw   []byte
		whole bool
	}{
		{"modbus request", frame{sport: 50000, dport: 502, payload: 300}, nil, true},
		{"modbus response", frame{sport: 502, dport: 50000, payload: 300}, nil, true},
		{"dnp3 over udp", frame{udp: true, sport: 20000, dport: 20000, payload: 300}, nil, true},
		{"https", frame{sport: 443, dport: 50000, payload: 1200}, nil, false},
		{"dns over udp", frame{udp: true, sport: 53000, dport: 53, payload: 300}, nil, false},
		{"ipv6 modbus", frame{v6: true, sport: 50000, dport: 502, payload: 300}, nil, true},
		{"ipv6 http", frame{v6: true, sport: 80, dport: 50000, payload: 300}, nil, false},
		{"ipv6 dnp3 over udp", frame{v6: true, udp: true, sport: 40000, dport: 20000, payload: 300}, nil, true},
		{"vlan modbus", frame{vlan: true, sport: 50000, dport: 502, payload: 300}, nil, true},
		{"vlan http", frame{vlan: true, sport: 50000, dport: 80, payload: 300}, nil, false},
		{"vlan ipv6 modbus", frame{vlan: true, v6: true, sport: 502, dport: 50000, payload: 300}, nil, true},
		{"ipv4 options", frame{ipOptions: true, sport: 50000, dport: 502, payload: 300}, nil, true},
		{"later fragment", frame{fragOffset: 100, sport: 50000, dport: 502, payload: 300}, nil, false},
		{"arp", frame{}, arp, false},
	} {
		b := tc.raw
		if b == nil {
			b = tc.f.bytes(t)
		}
		n, err := vm.Run(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := min(len(b), ShortSnap)
		if tc.whole {
			want = len(b)
		}
		// The program returns the snap length; the kernel keeps at most
		// the packet.
		if got := min(n, len(b)); got != want {
			t.Errorf("%s: keeps %d of %d bytes, want %d", tc.name, got, len(b), want)
		}
	}
	// The program assembles for the kernel.
	if raw, err := Filter([]uint16{20000, 502}, FullSnap, ShortSnap); err != nil || len(raw) != len(prog) {
		t.Fatalf("Filter: %d instructions, %v", len(raw), err)
	}
}

func TestFilterErrors(t *testing.T) {
	many := make([]uint16, MaxFilterPorts+1)
	for i := range many {
		many[i] = uint16(1000 + i)
	}
	for _, tc := range []struct {
		ports       []uint16
		full, short uint32
		want        string
	}{
		{nil, FullSnap, ShortSnap, "no ports"},
		{many, FullSnap, ShortSnap, "at most"},
		{[]uint16{502}, 64, ShortSnap, "snap lengths"},
	} {
		if _, err := Filter(tc.ports, tc.full, tc.short); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want %q, got %v", tc.ports, tc.want, err)
		}
	}
	// The most ports allowed still assemble.
	if _, err := Filter(many[:MaxFilterPorts], FullSnap, ShortSnap); err != nil {
		t.Error(err)
	}
}
