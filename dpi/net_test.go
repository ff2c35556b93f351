package dpi

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/dpi/link"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// netRecorder records what a NetHandler hears, one line an event.
type netRecorder struct{ events, counts []string }

func (r *netRecorder) Message(*Flow, Side, any) {}

func (r *netRecorder) NewFlow(f *Flow, _ time.Time) {
	r.events = append(r.events, fmt.Sprintf("new %s %v>%v mid=%v", f.Transport, f.Client, f.Server, f.MidStream))
}

func (r *netRecorder) FlowData(f *Flow, _ time.Time) {
	r.events = append(r.events, fmt.Sprintf("data %v>%v %s", f.Client, f.Server, f.Service))
}

func (r *netRecorder) FlowCounts(f *Flow, _ time.Time) {
	r.counts = append(r.counts, fmt.Sprintf("%v>%v +%v +%v", f.Client, f.Server, f.NewPackets, f.NewBytes))
}

func (r *netRecorder) FlowEnd(f *Flow, _ time.Time) {
	r.events = append(r.events, fmt.Sprintf("end %s %v>%v %s pkts=%v", f.Transport, f.Client, f.Server, f.End, f.Packets))
}

func (r *netRecorder) ARP(a *ARP) {
	r.events = append(r.events, fmt.Sprintf("arp op=%d eth=%s sender=%s/%v target=%v grat=%v probe=%v",
		a.Op, net.HardwareAddr(a.EthSrc[:]), net.HardwareAddr(a.SenderMAC[:]), a.SenderIP, a.TargetIP, a.Gratuitous(), a.Probe()))
}

func (r *netRecorder) ICMP(m *ICMP) {
	s := fmt.Sprintf("icmp %v>%v type=%d code=%d echo=%v unreach=%v", m.Src, m.Dst, m.Type, m.Code, m.Echo(), m.Unreachable())
	if m.Inner {
		s += fmt.Sprintf(" about %v proto %d port %d", m.InnerDst, m.InnerProto, m.InnerPort)
	}
	r.events = append(r.events, s)
}

// TestNetHandler: a NetHandler hears every ARP frame, ICMP message, flow
// start and flow end, with the right client, server, counts and ending.
func TestNetHandler(t *testing.T) {
	scanner := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x66}, IP: netip.MustParseAddr("10.10.1.66"), Port: 41000}
	web := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x30}, IP: netip.MustParseAddr("10.10.1.30"), Port: 8080}
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		steps := []func() error{
			func() error { _, err := w.ARPRequest(hmi, plc.IP); return err },
			func() error { _, err := w.ARPReply(plc, hmi); return err },
			func() error { _, err := w.ARPRequest(plc, plc.IP); return err }, // gratuitous
			func() error { _, err := w.Ping(scanner, plc, 7, 1, []byte("hi")); return err },
			func() error { _, err := w.Unreachable(plc, scanner, 3, 161); return err },
			func() error {
				// A rejected SYN to a port no protocol claims; the client
				// has the lower port, so only the SYN says who it is.
				c, err := pcapgen.NewTCPConn(w, pcapgen.Endpoint{MAC: scanner.MAC, IP: scanner.IP, Port: 1000}, web, 1, 2)
				if err == nil {
					_, err = c.Syn()
				}
				if err == nil {
					_, err = c.Rst(pcapgen.FromServer)
				}
				return err
			},
			func() error {
				// A connection with data, closed with FINs.
				c, err := pcapgen.NewTCPConn(w, scanner, web, 100, 200)
				if err == nil {
					_, err = c.Handshake()
				}
				if err == nil {
					_, err = c.Client([]byte("GET / HTTP/1.0\r\n\r\n"))
				}
				if err == nil {
					_, err = c.Close()
				}
				return err
			},
			func() error {
				// An open port that the scanner resets after the SYN-ACK.
				c, err := pcapgen.NewTCPConn(w, scanner, plc, 300, 400)
				if err == nil {
					_, err = c.Handshake()
				}
				if err == nil {
					_, err = c.Rst(pcapgen.FromClient)
				}
				return err
			},
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
		return nil
	})
	rec := &netRecorder{}
	e := run(t, Config{}, rec, lt, pkts)
	e.Flush()
	want := []string{
		"arp op=1 eth=02:00:00:00:00:10 sender=02:00:00:00:00:10/10.10.1.10 target=10.10.1.20 grat=false probe=false",
		"arp op=2 eth=02:00:00:00:00:20 sender=02:00:00:00:00:20/10.10.1.20 target=10.10.1.10 grat=false probe=false",
		"arp op=1 eth=02:00:00:00:00:20 sender=02:00:00:00:00:20/10.10.1.20 target=10.10.1.20 grat=true probe=false",
		"icmp 10.10.1.66>10.10.1.20 type=8 code=0 echo=true unreach=false",
		"icmp 10.10.1.20>10.10.1.66 type=0 code=0 echo=false unreach=false",
		"icmp 10.10.1.20>10.10.1.66 type=3 code=3 echo=false unreach=true about 10.10.1.20 proto 17 port 161",
		"new tcp 10.10.1.66:1000>10.10.1.30:8080 mid=false",
		"end tcp 10.10.1.66:1000>10.10.1.30:8080 rejected pkts=[1 1]",
		"new tcp 10.10.1.66:41000>10.10.1.30:8080 mid=false",
		"data 10.10.1.66:41000>10.10.1.30:8080 http",
		"end tcp 10.10.1.66:41000>10.10.1.30:8080 closed pkts=[4 2]", // the last ACK comes after the flow ended,
		"new tcp 10.10.1.66:41000>10.10.1.20:502 mid=false",
		"end tcp 10.10.1.66:41000>10.10.1.20:502 reset pkts=[3 1]",
	}
	if got := strings.Join(rec.events, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	c := e.Counters()
	if c.ARP != 3 || c.ICMP != 3 || c.NonIP != 3 || c.FlowsClosed != 3 {
		t.Errorf("counters: arp %d icmp %d non-ip %d closed %d", c.ARP, c.ICMP, c.NonIP, c.FlowsClosed)
	}
}

// TestFlowEndReasons: flows that expire, are evicted or are still open at
// Flush say so.
func TestFlowEndReasons(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		for i := range 3 {
			c := hmi
			c.Port = uint16(50000 + i)
			conn, err := pcapgen.NewTCPConn(w, c, plc, 1, 2)
			if err != nil {
				return err
			}
			if _, err := conn.Handshake(); err != nil {
				return err
			}
			w.Advance(2 * time.Second)
		}
		return nil
	})
	rec := &netRecorder{}
	e := run(t, Config{MaxFlows: 16, FlowIdle: 3 * time.Second}, rec, lt, pkts)
	e.Flush()
	got := strings.Join(rec.events, "\n")
	if strings.Count(got, " expired ") != 1 || strings.Count(got, " flushed ") != 2 {
		t.Errorf("flow ends %q, want an expired one and flushed ones", got)
	}
}

// TestARPOther: ARP for other than IPv4 over Ethernet is counted and not
// handed on.
func TestARPOther(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		_, err := w.WriteARP(hmi.MAC, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, pcapgen.ARP{
			HardwareType: uint16(layers.LinkTypeEthernet), ProtocolType: uint16(layers.EthernetTypeIPv6), Operation: 1,
			SenderMAC: hmi.MAC, SenderIP: make([]byte, 16), TargetMAC: make([]byte, 6), TargetIP: make([]byte, 16)})
		return err
	})
	rec := &netRecorder{}
	e := run(t, Config{}, rec, lt, pkts)
	if c := e.Counters(); c.ARP != 1 || c.ARPOther != 1 || len(rec.events) != 0 {
		t.Errorf("arp %d, other %d, events %v", c.ARP, c.ARPOther, rec.events)
	}
}

// TestQuoted: the packet an ICMP error quotes, read from bytes cut short
// anywhere.
func TestQuoted(t *testing.T) {
	v4 := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0x01, 0xf6}
	if dst, p, port, ok := quoted(v4); !ok || dst != netip.MustParseAddr("10.0.0.2") || p != 6 || port != 502 {
		t.Errorf("v4: %v %d %d %v", dst, p, port, ok)
	}
	for n := range len(v4) {
		dst, _, port, ok := quoted(v4[:n])
		if n < 20 && ok || n >= 20 && n < 24 && (!ok || port != 0) || ok && dst != netip.MustParseAddr("10.0.0.2") {
			t.Errorf("cut at %d: %v %d %v", n, dst, port, ok)
		}
	}
	v6 := make([]byte, 44)
	v6[0], v6[6] = 0x60, 17
	v6[24], v6[39] = 0xfe, 1
	v6[42], v6[43] = 0x00, 0x35
	if dst, p, port, ok := quoted(v6); !ok || !dst.Is6() || p != 17 || port != 53 {
		t.Errorf("v6: %v %d %d %v", dst, p, port, ok)
	}
	if _, _, _, ok := quoted([]byte{0x50, 1, 2}); ok {
		t.Error("version 5 quoted")
	}
}

// TestFlowService: the service of a flow comes from its first payloads,
// the client's or the server's, else from the server port; a flow that
// only one side spoke on is decided when it ends.
func TestFlowService(t *testing.T) {
	c := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x66}, IP: netip.MustParseAddr("10.10.1.66"), Port: 41000}
	srv := func(port uint16) pcapgen.Endpoint {
		return pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x30}, IP: netip.MustParseAddr("10.10.1.30"), Port: port}
	}
	garbage := []byte{0x9a, 0x11, 0x42, 0x00, 0x17}
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		conv := func(port uint16, client, server []byte) error {
			conn, err := pcapgen.NewTCPConn(w, c, srv(port), 1, 2)
			if err == nil {
				_, err = conn.Handshake()
			}
			if err == nil && server != nil {
				_, err = conn.Server(server)
			}
			if err == nil && client != nil {
				_, err = conn.Client(client)
			}
			if err == nil {
				_, err = conn.Close()
			}
			c.Port++
			return err
		}
		for _, step := range []func() error{
			func() error { return conv(2222, []byte("SSH-2.0-client\r\n"), []byte("SSH-2.0-OpenSSH_9.2\r\n")) }, // the server speaks first
			func() error { return conv(4444, garbage, garbage) },                                                // nothing known: by port, unknown
			func() error { return conv(443, garbage, garbage) },                                                 // by port
			func() error { return conv(8443, garbage, nil) },                                                    // only the client spoke: decided at the end
			func() error {
				u, err := pcapgen.NewUDP(w, c, srv(123))
				if err == nil {
					_, err = u.Send(garbage)
				}
				return err
			},
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	rec := &netRecorder{}
	e := run(t, Config{}, rec, lt, pkts)
	e.Flush()
	var got []string
	for _, ev := range rec.events {
		if strings.HasPrefix(ev, "data ") {
			got = append(got, ev[strings.LastIndex(ev, " ")+1:])
		}
	}
	if want := "ssh unknown tls tls ntp"; strings.Join(got, " ") != want {
		t.Errorf("services %v, want %s\n%s", got, want, strings.Join(rec.events, "\n"))
	}
}

// TestNetSteadyStateAllocs: ARP frames and ICMP messages handed to a
// NetHandler allocate nothing per packet.
func TestNetSteadyStateAllocs(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		for i := range 200 {
			if _, err := w.ARPRequest(hmi, plc.IP); err != nil {
				return err
			}
			if _, err := w.ARPReply(plc, hmi); err != nil {
				return err
			}
			if _, err := w.Ping(hmi, plc, 1, uint16(i), nil); err != nil {
				return err
			}
			if _, err := w.Unreachable(plc, hmi, 3, 161); err != nil {
				return err
			}
		}
		return nil
	})
	h := &nopHandler{}
	checkSteadyStateAllocs(t, Config{}, lt, pkts, h)
	if h.net < len(pkts)-10 {
		t.Errorf("%d network events from %d packets", h.net, len(pkts))
	}
}

// TestFlowCounts: a NetHandler hears the counts of a live flow every
// FlowReport of packet time, and the rest at its end; the reports add up
// to the flow's totals.
func TestFlowCounts(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{Step: 200 * time.Millisecond}, polling(1, 30)) // one connection for 12 s
	rec := &netRecorder{}
	cfg := Config{FlowReport: 2 * time.Second}
	e := run(t, cfg, rec, lt, pkts)
	e.Flush()
	if len(rec.counts) < 4 {
		t.Fatalf("%d count reports, want several: %v", len(rec.counts), rec.counts)
	}
	var sum [2]uint64
	for _, c := range rec.counts {
		var p [2]uint64
		var b [2]uint64
		var cl string
		if _, err := fmt.Sscanf(c, "%s +[%d %d] +[%d %d]", &cl, &p[0], &p[1], &b[0], &b[1]); err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		sum[0] += p[0]
		sum[1] += p[1]
	}
	if int(sum[0]+sum[1]) != len(pkts) {
		t.Errorf("reported %v packets in all, the capture has %d: %v", sum, len(pkts), rec.counts)
	}
	if err := (Config{FlowReport: time.Millisecond}).Validate(); err == nil {
		t.Error("a flow report every millisecond was accepted")
	}
}

// macRecorder records the MACs the handlers hear of.
type macRecorder struct{ netRecorder }

func (r *macRecorder) ARP(a *ARP) {
	r.events = append(r.events, fmt.Sprintf("arp op=%d eth=%s>%s sender=%s", a.Op, net.HardwareAddr(a.EthSrc[:]), net.HardwareAddr(a.EthDst[:]), net.HardwareAddr(a.SenderMAC[:])))
}

func (r *macRecorder) NewFlow(f *Flow, _ time.Time) {
	r.events = append(r.events, fmt.Sprintf("new %v>%v mac=%s>%s", f.Client, f.Server, net.HardwareAddr(f.ClientMAC[:]), net.HardwareAddr(f.ServerMAC[:])))
}

func (r *macRecorder) FlowEnd(f *Flow, _ time.Time) {
	r.events = append(r.events, fmt.Sprintf("end %v>%v mac=%s>%s", f.Client, f.Server, net.HardwareAddr(f.ClientMAC[:]), net.HardwareAddr(f.ServerMAC[:])))
}

// cooked rewrites an Ethernet frame as Linux cooked capture (tcpdump -i
// any) writes it: SLL (version 1) or SLL2, of an interface of type
// hatype, with the sender's address and the packet type (1 when
// broadcast).
func cooked(frame []byte, v2 bool, hatype uint16) []byte {
	dst, src, et, rest := frame[0:6], frame[6:12], frame[12:14], frame[14:]
	pt := byte(0) // to us
	if bytes.Equal(dst, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		pt = 1
	}
	var h []byte
	if v2 {
		h = append(append([]byte{et[0], et[1], 0, 0, 0, 0, 0, 2, byte(hatype >> 8), byte(hatype), pt, 6}, src...), 0, 0)
	} else {
		h = append(append([]byte{0, pt, byte(hatype >> 8), byte(hatype), 0, 6}, src...), 0, 0, et[0], et[1])
	}
	return append(h, rest...)
}

// TestCookedMACs: in a Linux cooked capture of an Ethernet interface, ARP
// is handed on as in the Ethernet capture, with the sender's MAC and, of
// the destination, only a broadcast; flows get their client's and
// server's MACs from their packets the same way. Of another interface
// the MACs stay unknown, and ARP is still handed on.
func TestCookedMACs(t *testing.T) {
	_, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		if _, err := w.ARPRequest(hmi, plc.IP); err != nil {
			return err
		}
		if _, err := w.ARPReply(plc, hmi); err != nil {
			return err
		}
		c, err := pcapgen.NewTCPConn(w, hmi, plc, 1, 2)
		if err == nil {
			_, err = c.Handshake()
		}
		return err
	})
	record := func(lt link.Type, conv func([]byte) []byte) ([]string, Counters) {
		rec := &macRecorder{}
		e, err := New(Config{}, rec)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pkts {
			e.Packet(lt, p.ts, uint64(i+1), conv(p.data), 0)
		}
		e.Flush()
		return rec.events, e.Counters()
	}
	eth, ethCounts := record(link.Ethernet, func(b []byte) []byte { return b })
	want := []string{
		"arp op=1 eth=02:00:00:00:00:10>ff:ff:ff:ff:ff:ff sender=02:00:00:00:00:10",
		"arp op=2 eth=02:00:00:00:00:20>00:00:00:00:00:00 sender=02:00:00:00:00:20",   // the unicast destination is unknown
		"new 10.10.1.10:49152>10.10.1.20:502 mac=02:00:00:00:00:10>00:00:00:00:00:00", // the server's too, at first,
		"end 10.10.1.10:49152>10.10.1.20:502 mac=02:00:00:00:00:10>02:00:00:00:00:20", // then from its SYN-ACK
	}
	for _, v2 := range []bool{false, true} {
		lt := link.LinuxSLL
		if v2 {
			lt = link.LinuxSLL2
		}
		got, c := record(lt, func(b []byte) []byte { return cooked(b, v2, 1) })
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%v:\n%s\nwant\n%s\n(Ethernet:\n%s)", lt, strings.Join(got, "\n"), strings.Join(want, "\n"), strings.Join(eth, "\n"))
		}
		if c.ARP != ethCounts.ARP || c.ARP != 2 || c.NonIP != 2 || c.ARPOther != 0 {
			t.Errorf("%v: arp %d (Ethernet %d), non-IP %d, other %d", lt, c.ARP, ethCounts.ARP, c.NonIP, c.ARPOther)
		}
		// Not Ethernet (ARPHRD_IEEE1394, with its own addresses): no
		// MACs from the header.
		got, _ = record(lt, func(b []byte) []byte { return cooked(b, v2, 24) })
		if len(got) != 4 || !strings.HasPrefix(got[0], "arp op=1 eth=00:00:00:00:00:00>00:00:00:00:00:00 sender=02:00:00:00:00:10") ||
			!strings.HasSuffix(got[2], "mac=00:00:00:00:00:00>00:00:00:00:00:00") || !strings.HasSuffix(got[3], "mac=00:00:00:00:00:00>00:00:00:00:00:00") {
			t.Errorf("%v of another interface:\n%s", lt, strings.Join(got, "\n"))
		}
	}
}
