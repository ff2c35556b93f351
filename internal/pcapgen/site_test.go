package pcapgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func siteCapture(t testing.TB, packets int, seed int64) []byte {
	return genCapture(t, SitePlant, generators[1].slack, packets, seed)
}

var syslogRE = regexp.MustCompile(`^<(\d{1,3})>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d [a-z]+\d\d \S.*$`)

// TestSitePlant decodes a site capture and checks its Modbus and DNP3
// streams as TestPlant does (connections open before the capture
// started included), the shares, the numbers of hosts and flows, that
// every kind of IT traffic is there and well formed, and that the
// alerting hosts do what the doc says, rarely.
func TestSitePlant(t *testing.T) {
	const packets = 100000
	_, pkts := readBack(t, siteCapture(t, packets, 7))

	ics := newICSWalk(t, SiteOutstations, true)
	var (
		arp, icmp, icmp6, dns, ntp, syslog, snmp, v6, tls, http, rdp int
		hosts                                                        = map[netip.Addr]bool{}
		flows                                                        = map[string]bool{}
		modbusConns                                                  = map[string]bool{}
		rogue, rogueSyns                                             int
		sweptPorts                                                   = map[layers.TCPPort]bool{}
		snmpIDs                                                      = map[uint32]bool{}
		rdpOpen                                                      = map[string]bool{}
		serverNames                                                  = map[string]bool{}
	)
	lan := netip.MustParsePrefix("10.1.0.0/16")
	lan6 := netip.MustParsePrefix("fd00:1:1::/48")
	for i, p := range pkts {
		frame := i + 1
		if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
			arp++
			hosts[netip.AddrFrom4([4]byte(a.SourceProtAddress))] = true
			continue
		}
		nf := p.NetworkLayer().NetworkFlow()
		src, dst := netip.MustParseAddr(nf.Src().String()), netip.MustParseAddr(nf.Dst().String())
		for _, a := range []netip.Addr{src, dst} {
			if lan.Contains(a) || lan6.Contains(a) {
				hosts[a] = true
			}
		}
		if src == SiteRogue || dst == SiteRogue {
			rogue++
		}
		if p.Layer(layers.LayerTypeIPv6) != nil {
			v6++
		}
		if p.Layer(layers.LayerTypeICMPv4) != nil {
			icmp++
			continue
		}
		if p.Layer(layers.LayerTypeICMPv6) != nil {
			icmp6++
			continue
		}
		if tl := p.TransportLayer(); tl != nil {
			tf := tl.TransportFlow()
			a, b := fmt.Sprint(nf.Src(), ":", tf.Src()), fmt.Sprint(nf.Dst(), ":", tf.Dst())
			if b < a {
				a, b = b, a
			}
			flows[fmt.Sprint(tl.LayerType(), " ", a, " ", b)] = true
		}
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp != nil && src == SiteRogue && tcp.SYN {
			rogueSyns++
			sweptPorts[tcp.DstPort] = true
		}
		if tcp != nil && tcp.DstPort == 502 {
			modbusConns[fmt.Sprint(src, tcp.SrcPort, dst)] = true
		}
		if ics.packet(frame, p) {
			continue
		}
		if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			switch {
			case udp.DstPort == 53 || udp.SrcPort == 53:
				dns++
			case udp.DstPort == 123:
				ntp++
			case udp.DstPort == 514:
				syslog++
				m := syslogRE.FindSubmatch(udp.Payload)
				if m == nil {
					t.Fatalf("frame %d: syslog message %q", frame, udp.Payload)
				}
			case udp.DstPort == 161 || udp.SrcPort == 161:
				snmp++
				id, pdu := checkSNMP(t, frame, udp.Payload)
				switch pdu {
				case 0xa0:
					snmpIDs[id] = true
				case 0xa2:
					if !snmpIDs[id] {
						t.Fatalf("frame %d: SNMP response to request %d never sent", frame, id)
					}
				}
			default:
				t.Fatalf("frame %d: UDP %v -> %v", frame, udp.SrcPort, udp.DstPort)
			}
			continue
		}
		if tcp == nil {
			t.Fatalf("frame %d: %v", frame, p)
		}
		switch {
		case tcp.DstPort == 443 || tcp.SrcPort == 443:
			tls++
			if tcp.DstPort == 443 && len(tcp.Payload) > 0 && tcp.Payload[0] == 0x16 {
				serverNames[checkClientHello(t, frame, tcp.Payload)] = true
			}
		case tcp.DstPort == 80 || tcp.SrcPort == 80:
			http++
		case tcp.DstPort == 3389 || tcp.SrcPort == 3389:
			rdp++
			conn := fmt.Sprint(src, tcp.SrcPort)
			if tcp.DstPort == 3389 && len(tcp.Payload) > 0 && !rdpOpen[conn] {
				rdpOpen[conn] = true
				if !bytes.Equal(tcp.Payload, x224Request) {
					t.Fatalf("frame %d: RDP session opens with % x", frame, tcp.Payload)
				}
			}
			if len(tcp.Payload) > 1460 {
				t.Fatalf("frame %d: RDP segment of %d bytes", frame, len(tcp.Payload))
			}
		case src == SiteRogue || dst == SiteRogue:
			// the sweep
		default:
			t.Fatalf("frame %d: TCP %v -> %v", frame, tcp.SrcPort, tcp.DstPort)
		}
	}
	n := float64(len(pkts))
	dnp3 := ics.dnp3
	ics.log(len(pkts))
	t.Logf("other: arp %d icmp %d icmpv6 %d dns %d ntp %d syslog %d snmp %d tls %d http %d rdp %d ipv6 %d; TLS server names %v",
		arp, icmp, icmp6, dns, ntp, syslog, snmp, tls, http, rdp, v6, slices.Sorted(maps.Keys(serverNames)))
	t.Logf("%d hosts, %d flows, %d Modbus connections; rogue host: %d packets, %d SYNs, writes %d (max value %d)",
		len(hosts), len(flows), len(modbusConns), rogue, rogueSyns, ics.writers[SiteRogue], ics.maxWrite[SiteRogue])

	modbusShare, dnp3Share := float64(ics.modbus)/n, float64(dnp3.tcp+dnp3.udp)/n
	for _, s := range []struct {
		name      string
		got, want float64
	}{{"Modbus", modbusShare, 0.6}, {"DNP3", dnp3Share, 0.3}, {"other", 1 - modbusShare - dnp3Share, 0.1}} {
		if s.got < s.want-0.02 || s.got > s.want+0.02 {
			t.Errorf("%s share %.3f, want %.2f", s.name, s.got, s.want)
		}
	}
	if u := float64(dnp3.udp) / n; u < 0.005 || u > 0.05 {
		t.Errorf("DNP3/UDP share %.3f, want a few percent", u)
	}
	dnp3.finish()
	ics.expect(len(pkts), map[string]int{
		"reconnects": ics.syns, "DNP3 connections": dnp3.syns,
		"ARP": arp, "ICMP": icmp, "ICMPv6": icmp6, "DNS": dns, "NTP": ntp, "syslog": syslog, "SNMP": snmp,
		"IPv6": v6, "TLS": tls, "HTTP": http, "RDP": rdp,
		"DNP3 restarts": dnp3.fcs[DNP3ColdRestart] + dnp3.fcs[DNP3WarmRestart],
	})

	// Tens of hosts, hundreds of flows.
	wantHosts := siteMasters + sitePLCs + siteDNP3Masters + siteOutstations + siteOffice + len(SiteServers) + siteSwitches + 1
	if len(hosts) < wantHosts {
		t.Errorf("%d hosts on the plant's networks, want at least %d", len(hosts), wantHosts)
	}
	if len(modbusConns) < 200 || len(modbusConns) > 300 {
		t.Errorf("%d Modbus connections, want 200 to 300", len(modbusConns))
	}
	if len(flows) < 500 {
		t.Errorf("%d flows, want hundreds", len(flows))
	}

	// Only the masters and the rogue host write; the masters within
	// 0-4095, the rogue host from 40000.
	for a, k := range ics.writers {
		switch {
		case a == SiteRogue:
			if ics.maxWrite[a] < 40000 {
				t.Errorf("the rogue host wrote at most %d", ics.maxWrite[a])
			}
		case !slices.Contains(SiteMasters, a):
			t.Errorf("%v, not a master, wrote %d times", a, k)
		case ics.maxWrite[a] > 4095:
			t.Errorf("master %v wrote %d", a, ics.maxWrite[a])
		}
	}
	if ics.writers[SiteRogue] == 0 || len(sweptPorts) < 20 {
		t.Errorf("the rogue host wrote %d times and tried %d ports", ics.writers[SiteRogue], len(sweptPorts))
	}
	if float64(rogue)/n > 0.005 {
		t.Errorf("the rogue host's %d packets are more than 0.5%% of %d", rogue, len(pkts))
	}
}

// checkSNMP parses an SNMPv2c message that must fill b: version 1,
// community "public", a GetRequest or Response whose variable bindings
// fill it. It returns the request id and the PDU type.
func checkSNMP(t *testing.T, frame int, b []byte) (uint32, byte) {
	t.Helper()
	tlv := func(b []byte) (tag byte, v, rest []byte) {
		if len(b) < 2 {
			t.Fatalf("frame %d: SNMP: short TLV % x", frame, b)
		}
		tag, n, off := b[0], int(b[1]), 2
		switch b[1] {
		case 0x81:
			n, off = int(b[2]), 3
		case 0x82:
			n, off = int(binary.BigEndian.Uint16(b[2:])), 4
		}
		if off+n > len(b) {
			t.Fatalf("frame %d: SNMP: TLV of %d bytes, %d left", frame, n, len(b)-off)
		}
		return tag, b[off : off+n], b[off+n:]
	}
	tag, msg, rest := tlv(b)
	if tag != 0x30 || len(rest) != 0 {
		t.Fatalf("frame %d: SNMP message % x", frame, b)
	}
	tag, ver, msg := tlv(msg)
	_, comm, msg := tlv(msg)
	if tag != 0x02 || !bytes.Equal(ver, []byte{1}) || string(comm) != "public" {
		t.Fatalf("frame %d: SNMP version % x community %q", frame, ver, comm)
	}
	pdu, body, rest := tlv(msg)
	if (pdu != 0xa0 && pdu != 0xa2) || len(rest) != 0 {
		t.Fatalf("frame %d: SNMP PDU %#x", frame, pdu)
	}
	_, idb, body := tlv(body)
	_, _, body = tlv(body)
	_, _, body = tlv(body)
	tag, binds, rest := tlv(body)
	if tag != 0x30 || len(rest) != 0 {
		t.Fatalf("frame %d: SNMP bindings % x", frame, body)
	}
	for len(binds) > 0 {
		var vb []byte
		tag, vb, binds = tlv(binds)
		_, oid, vb := tlv(vb)
		_, _, vb = tlv(vb)
		if tag != 0x30 || len(oid) < 8 || len(vb) != 0 {
			t.Fatalf("frame %d: SNMP binding", frame)
		}
	}
	var id uint32
	for _, x := range idb {
		id = id<<8 | uint32(x)
	}
	return id, pdu
}

// checkClientHello checks a TLS handshake record holding a ClientHello
// that fills it and returns the server name it carries.
func checkClientHello(t *testing.T, frame int, b []byte) string {
	t.Helper()
	if len(b) < 9 || b[0] != 0x16 || b[1] != 3 || int(binary.BigEndian.Uint16(b[3:]))+5 != len(b) || b[5] != 1 ||
		int(b[6])<<16|int(b[7])<<8|int(b[8]) != len(b)-9 {
		t.Fatalf("frame %d: TLS record % x", frame, b[:min(len(b), 16)])
	}
	h := b[9+2+32:]
	h = h[1+int(h[0]):]                       // session id
	h = h[2+int(binary.BigEndian.Uint16(h)):] // cipher suites
	h = h[1+int(h[0]):]                       // compression
	if int(binary.BigEndian.Uint16(h)) != len(h)-2 || len(h) < 11 || h[2] != 0 || h[3] != 0 {
		t.Fatalf("frame %d: ClientHello extensions % x", frame, h)
	}
	n := int(binary.BigEndian.Uint16(h[9:]))
	return string(h[11 : 11+n])
}

// TestSitePlantLinks writes a short site capture in every link type and
// format and reads it back: no frame fails to decode or has a bad
// checksum, and links without ARP get none.
func TestSitePlantLinks(t *testing.T) {
	for link := LinkEthernet; link <= LinkSLL; link++ {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Options{Link: link, PcapNG: link%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		if err := SitePlant(w, 3000, 5); err != nil {
			t.Fatalf("%v: %v", link, err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		lt, pkts := readBack(t, buf.Bytes())
		if lt != link.LinkType() || len(pkts) < 3000 {
			t.Errorf("%v: link type %v, %d packets", link, lt, len(pkts))
		}
	}
}
