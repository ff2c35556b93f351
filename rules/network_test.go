package rules

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
)

// host is a host of the network fixtures: 10.10.1.n with MAC 02:00:00:00:00:n.
func host(n byte) pcapgen.Endpoint {
	return pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, n}, IP: netip.AddrFrom4([4]byte{10, 10, 1, n})}
}

// replayNet writes the frames write makes into a capture (frames 10 ms
// apart), replays it with every built-in detector at its defaults, and
// returns the alerts.
func replayNet(t *testing.T, write func(w *pcapgen.Writer) error) *recorder {
	t.Helper()
	return replayPolicy(t, write, nil)
}

// replayPolicy is replayNet with an engine that enforces p (nil: the
// built-in detectors at their defaults).
func replayPolicy(t *testing.T, write func(w *pcapgen.Writer) error, p *policy.Policy) *recorder {
	t.Helper()
	rec := &recorder{}
	e, err := NewEngine(p, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replayInto(t, netCapture(t, write), e)
	return rec
}

// netCapture is the capture of the frames write makes, 10 ms apart.
func netCapture(t *testing.T, write func(w *pcapgen.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{Step: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := write(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// replayInto replays the capture pcap through e.
func replayInto(t *testing.T, pcap []byte, e *Engine) {
	t.Helper()
	src, err := capture.NewFile(bytes.NewReader(pcap), "net.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sensor.Replay(context.Background(), src, sensor.Options{Rules: e}); err != nil {
		t.Fatal(err)
	}
}

// arpRaw writes an ARP frame with every field given.
func arpRaw(w *pcapgen.Writer, op uint16, ethSrc, ethDst net.HardwareAddr, senderMAC net.HardwareAddr, senderIP netip.Addr, targetMAC net.HardwareAddr, targetIP netip.Addr) error {
	_, err := w.WriteARP(ethSrc, ethDst, pcapgen.ARP{
		HardwareType: uint16(layers.LinkTypeEthernet), ProtocolType: uint16(layers.EthernetTypeIPv4), Operation: op,
		SenderMAC: senderMAC, SenderIP: senderIP.AsSlice(), TargetMAC: targetMAC, TargetIP: targetIP.AsSlice()})
	return err
}

// synScan writes a SYN from c to each port of s, each answered by a reset
// when rejected.
func synScan(w *pcapgen.Writer, c, s pcapgen.Endpoint, ports []uint16, rejected bool) error {
	for i, p := range ports {
		c.Port, s.Port = uint16(40000+i), p
		conn, err := pcapgen.NewTCPConn(w, c, s, uint32(1000*i), 5000)
		if err != nil {
			return err
		}
		if _, err := conn.Syn(); err != nil {
			return err
		}
		if rejected {
			if _, err := conn.Rst(pcapgen.FromServer); err != nil {
				return err
			}
		}
	}
	return nil
}

func ports(from, n int) []uint16 {
	ps := make([]uint16, n)
	for i := range ps {
		ps[i] = uint16(from + i)
	}
	return ps
}

// detectorCase is a fixture of a detector: a capture that must fire it,
// or not.
type detectorCase struct {
	name  string
	id    string
	fires bool
	title string // a part of the first alert's title
	write func(w *pcapgen.Writer) error
}

// runDetectorCases replays each case with every built-in detector on and
// checks whether its detector fired, and how its first alert reads; it
// returns the detectors that some case fired.
func runDetectorCases(t *testing.T, cases []detectorCase) map[string]bool {
	t.Helper()
	fired := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := replayNet(t, c.write)
			var got []*Alert
			for _, a := range rec.alerts {
				if a.Rule == c.id {
					got = append(got, a)
				}
			}
			if c.fires != (len(got) > 0) {
				var titles []string
				for _, a := range rec.alerts {
					titles = append(titles, a.Rule+": "+a.Title)
				}
				t.Fatalf("%s fired %d times, want fires=%v (all alerts: %q)", c.id, len(got), c.fires, titles)
			}
			if !c.fires {
				return
			}
			fired[c.id] = true
			a := got[0]
			if !strings.Contains(a.Title, c.title) {
				t.Errorf("title %q lacks %q", a.Title, c.title)
			}
			if a.Category == "" || len(a.Attack) == 0 || a.Severity == 0 {
				t.Errorf("alert %+v", a)
			}
			if ev := a.Event(); ev.Src == nil || ev.Dst == nil {
				t.Errorf("wire alert without src or dst: %+v", ev)
			}
		})
	}
	return fired
}

// TestNetworkDetectors feeds each network detector captures that must fire
// it and captures that must not, each replayed with every built-in
// detector on; only the detector under test is looked at.
func TestNetworkDetectors(t *testing.T) {
	plc, hmi, attacker := host(20), host(10), host(66)
	spoofMAC := attacker.MAC
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	cases := []detectorCase{
		{"arp: a second MAC claims an address in use", "arp-spoof", true,
			"ARP spoofing: 10.10.1.20 claimed by 02:00:00:00:00:42 (10.10.1.66) while 02:00:00:00:00:14 claims it",
			func(w *pcapgen.Writer) error {
				if _, err := w.ARPRequest(plc, hmi.IP); err != nil {
					return err
				}
				if _, err := w.ARPRequest(attacker, hmi.IP); err != nil {
					return err
				}
				// The attacker tells the HMI that the PLC's address is at its MAC.
				return arpRaw(w, layers.ARPReply, spoofMAC, hmi.MAC, spoofMAC, plc.IP, hmi.MAC, hmi.IP)
			}},
		{"arp: a reply whose sender MAC is not its Ethernet source", "arp-spoof", true,
			"ARP reply for 10.10.1.20 names MAC 02:00:00:00:00:14 but comes from 02:00:00:00:00:42",
			func(w *pcapgen.Writer) error {
				return arpRaw(w, layers.ARPReply, spoofMAC, hmi.MAC, plc.MAC, plc.IP, hmi.MAC, hmi.IP)
			}},
		{"arp: the same MAC claims its address again and again", "arp-spoof", false, "",
			func(w *pcapgen.Writer) error {
				for range 20 {
					if _, err := w.ARPRequest(plc, hmi.IP); err != nil {
						return err
					}
					if _, err := w.ARPReply(hmi, plc); err != nil {
						return err
					}
					w.Advance(time.Second)
				}
				return nil
			}},
		{"arp: a replaced device takes over an address long unclaimed", "arp-spoof", false, "",
			func(w *pcapgen.Writer) error {
				if _, err := w.ARPRequest(plc, hmi.IP); err != nil {
					return err
				}
				w.Advance(11 * time.Minute)
				repl := plc
				repl.MAC = net.HardwareAddr{2, 0, 0, 0, 1, 20}
				_, err := w.ARPRequest(repl, hmi.IP)
				return err
			}},
		{"arp: an address-conflict probe teaches nothing", "arp-spoof", false, "",
			func(w *pcapgen.Writer) error {
				if _, err := w.ARPRequest(plc, hmi.IP); err != nil {
					return err
				}
				return arpRaw(w, layers.ARPRequest, spoofMAC, bcast, spoofMAC, netip.IPv4Unspecified(), zero, plc.IP)
			}},
		{"arp: a storm of gratuitous announcements", "arp-storm", true, "Gratuitous ARP storm from 02:00:00:00:00:42",
			func(w *pcapgen.Writer) error {
				for range 15 {
					if _, err := w.ARPRequest(attacker, attacker.IP); err != nil {
						return err
					}
					w.Advance(300 * time.Millisecond)
				}
				return nil
			}},
		{"arp: a device announcing itself at boot", "arp-storm", false, "",
			func(w *pcapgen.Writer) error {
				for range 3 {
					if _, err := w.ARPRequest(plc, plc.IP); err != nil {
						return err
					}
					w.Advance(time.Second)
				}
				return nil
			}},
		{"scan: an ARP sweep of a /24", "scan-hosts", true, "Host scan from 10.10.1.66: about",
			func(w *pcapgen.Writer) error {
				for i := range 100 {
					if _, err := w.ARPRequest(attacker, netip.AddrFrom4([4]byte{10, 10, 1, byte(i + 100)})); err != nil {
						return err
					}
				}
				return nil
			}},
		{"scan: a ping sweep", "scan-hosts", true, "probed by ICMP echo",
			func(w *pcapgen.Writer) error {
				for i := range 60 {
					d := host(byte(100 + i))
					if _, err := w.Ping(attacker, d, 1, uint16(i), nil); err != nil {
						return err
					}
				}
				return nil
			}},
		{"scan: SYNs to many hosts", "scan-hosts", true, "probed by tcp",
			func(w *pcapgen.Writer) error {
				for i := range 60 {
					if err := synScan(w, attacker, host(byte(100+i)), []uint16{502}, false); err != nil {
						return err
					}
				}
				return nil
			}},
		{"scan: a master polling its devices and asking ARP for them", "scan-hosts", false, "",
			func(w *pcapgen.Writer) error {
				for round := range 5 {
					for i := range 8 {
						d := host(byte(20 + i))
						if _, err := w.ARPRequest(hmi, d.IP); err != nil {
							return err
						}
						if err := synScan(w, hmi, d, []uint16{502}, false); err != nil {
							return err
						}
					}
					w.Advance(time.Duration(round+1) * 3 * time.Second)
				}
				return nil
			}},
		{"scan: a browser reaching many Internet hosts", "scan-hosts", false, "",
			func(w *pcapgen.Writer) error {
				for i := range 60 {
					web := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})}
					if err := synScan(w, host(80), web, []uint16{443}, false); err != nil {
						return err
					}
				}
				return nil
			}},
		{"scan: a DCOM client's session ports on one server", "scan-ports", false, "",
			func(w *pcapgen.Writer) error { return synScan(w, hmi, plc, ports(49800, 40), false) }},
		{"scan: SYNs to many ports of one host", "scan-ports", true, "Port scan from 10.10.1.66 to 10.10.1.20: about",
			func(w *pcapgen.Writer) error { return synScan(w, attacker, plc, ports(1, 100), false) }},
		{"scan: an engineering station using a few services of a host", "scan-ports", false, "",
			func(w *pcapgen.Writer) error {
				return synScan(w, hmi, plc, []uint16{22, 80, 443, 502, 102, 44818, 20000, 4840}, false)
			}},
		{"scan: a storm of rejected SYNs", "scan-rejects", true, "Rejected connections to 10.10.1.66 (TCP resets)",
			func(w *pcapgen.Writer) error { return synScan(w, attacker, plc, ports(1000, 30), true) }},
		{"scan: a storm of ICMP port unreachables", "scan-rejects", true, "Rejected connections to 10.10.1.66 (ICMP unreachables)",
			func(w *pcapgen.Writer) error {
				a := attacker
				a.Port = 5353
				for i := range 30 {
					if _, err := w.Unreachable(plc, a, 3, uint16(1000+i)); err != nil {
						return err
					}
				}
				return nil
			}},
		{"scan: a master retrying a closed port of a device that is down", "scan-rejects", false, "",
			func(w *pcapgen.Writer) error {
				for range 40 {
					if err := synScan(w, hmi, plc, []uint16{502}, true); err != nil {
						return err
					}
					w.Advance(200 * time.Millisecond)
				}
				return nil
			}},
	}
	fired := runDetectorCases(t, cases)
	for k := dARPSpoof; k < dRemote; k++ { // remote-access: TestRemoteAccess
		if !fired[Detectors[k].ID] {
			t.Errorf("%s has no fixture that fires it", Detectors[k].ID)
		}
	}
}

// TestNetworkDetectorsOff: disabled, the network detectors keep no state
// and fire nothing.
func TestNetworkDetectorsOff(t *testing.T) {
	e, rec := newEngineTuned(t, func(s *policy.DetectorSettings) {
		for k := dARPSpoof; k < numBuiltin; k++ {
			if s.ID == Detectors[k].ID {
				s.Enabled = false
			}
		}
	})
	a := &dpi.ARP{Time: t0, Op: 2, EthSrc: [6]byte{2, 0, 0, 0, 0, 0x42}, SenderMAC: [6]byte{2, 0, 0, 0, 0, 1}, SenderIP: netip.MustParseAddr("10.10.1.20")}
	for i := range 50 {
		a.Time = t0.Add(time.Duration(i) * time.Millisecond)
		a.TargetIP = netip.AddrFrom4([4]byte{10, 10, 2, byte(i)})
		e.ARP(a)
	}
	if len(rec.alerts) != 0 || e.bi.net.binds.Len() != 0 || e.bi.net.probes.Len() != 0 {
		t.Errorf("alerts %v, %d bindings, %d probe sets", rec.rules(), e.bi.net.binds.Len(), e.bi.net.probes.Len())
	}
}

// TestNetworkNoAllocs: ARP frames, ICMP messages and flows that fire
// nothing allocate nothing.
func TestNetworkNoAllocs(t *testing.T) {
	rec := &recorder{}
	e, err := NewEngine(nil, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &dpi.ARP{Op: 1, EthSrc: [6]byte{2, 0, 0, 0, 0, 10}, SenderMAC: [6]byte{2, 0, 0, 0, 0, 10},
		SenderIP: netip.MustParseAddr("10.10.1.10"), TargetIP: netip.MustParseAddr("10.10.1.20")}
	m := &dpi.ICMP{Type: layers.ICMPv4TypeEchoRequest, Src: a.SenderIP, Dst: a.TargetIP}
	f := &dpi.Flow{ID: 5, Transport: dpi.TCP, Client: netip.MustParseAddrPort("10.10.1.10:40000"), Server: netip.MustParseAddrPort("10.10.1.20:502"), End: dpi.EndRejected}
	var i int
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		now := t0.Add(time.Duration(i) * time.Second)
		a.Time, m.Time = now, now
		e.ARP(a)
		e.ICMP(m)
		e.NewFlow(f, now)
		e.FlowEnd(f, now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round", allocs)
	}
	if len(rec.alerts) != 0 {
		t.Errorf("fired %v", rec.rules())
	}
}

// TestDistinct: the sketch's estimate is close to the truth over the range
// the thresholds use.
func TestDistinct(t *testing.T) {
	var e Engine
	e.bi.net.probes.Init(16, 1)
	r := Detectors[dScanHosts].Rate
	big := *r
	big.Max = 1 << 20
	var ests []string
	for _, n := range []int{10, 24, 50, 100} {
		e.bi.net.probes.Reset(uint64(n))
		est := 0
		for i := range n {
			_, got := e.probe(probeKey{kind: probeHosts}, hashAddr(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})), 0, &big)
			if got > 0 {
				est = got
			}
		}
		ests = append(ests, fmt.Sprintf("%d→%d", n, est))
		if d := est - n; d < -n/5-2 || d > n/5+2 {
			t.Errorf("%d distinct items estimated as %d", n, est)
		}
	}
	sort.Strings(ests)
	t.Logf("estimates: %v", ests)
}

// smbNegotiate is the start of an SMB2 NEGOTIATE request over NBSS.
var smbNegotiate = append([]byte{0, 0, 0, 0x44, 0xfe, 'S', 'M', 'B', 64, 0}, make([]byte, 0x40-6)...)

// session writes a TCP connection from c to s with a request and an
// answer.
func session(w *pcapgen.Writer, c, s pcapgen.Endpoint, req, resp []byte) error {
	conn, err := pcapgen.NewTCPConn(w, c, s, 1, 2)
	if err == nil {
		_, err = conn.Handshake()
	}
	if err == nil {
		_, err = conn.Client(req)
	}
	if err == nil && resp != nil {
		_, err = conn.Server(resp)
	}
	if err == nil {
		_, err = conn.Close()
	}
	return err
}

// modbusPoll writes a Modbus read from c to s, which makes both OT hosts.
func modbusPoll(w *pcapgen.Writer, c, s pcapgen.Endpoint) error {
	c.Port, s.Port = 50100, 502
	return session(w, c, s, []byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1}, []byte{0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 7})
}

// TestRemoteAccess: SMB between two hosts seen speaking Modbus fires
// remote-access; between an OT host and an office host, or before either
// spoke Modbus, it does not.
func TestRemoteAccess(t *testing.T) {
	hmi, plc, office := host(10), host(20), host(80)
	smb := func(w *pcapgen.Writer, c, s pcapgen.Endpoint) error {
		c.Port, s.Port = 49500, 445
		return session(w, c, s, smbNegotiate, smbNegotiate)
	}
	for _, c := range []struct {
		name  string
		fires bool
		write func(w *pcapgen.Writer) error
	}{
		{"smb between OT hosts", true, func(w *pcapgen.Writer) error {
			if err := modbusPoll(w, hmi, plc); err != nil {
				return err
			}
			return smb(w, plc, hmi)
		}},
		{"smb from an OT host to an office host", false, func(w *pcapgen.Writer) error {
			if err := modbusPoll(w, hmi, plc); err != nil {
				return err
			}
			return smb(w, hmi, office)
		}},
		{"smb between hosts that never spoke ICS", false, func(w *pcapgen.Writer) error { return smb(w, office, host(81)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := replayNet(t, c.write)
			got := strings.Join(rec.rules(), ",")
			if strings.Contains(got, "remote-access") != c.fires {
				t.Fatalf("alerts %q, want remote-access %v", got, c.fires)
			}
			if c.fires {
				if a := rec.alerts[len(rec.alerts)-1]; !strings.Contains(a.Title, "(smb) from 10.10.1.20 to 10.10.1.10 port 445") {
					t.Errorf("title %q", a.Title)
				}
			}
		})
	}
}

// networkBaseline is a baseline with a network section: the HMI polls the
// PLC over Modbus and reads its web page; the PLC's MAC is learned.
const networkBaseline = `
assets:
  hmi: {ip: 10.10.1.10}
  plc: {ip: 10.10.1.20}
  eng: {ip: 10.10.1.30}
baseline:
  conversations:
    - {src: hmi, dst: plc, proto: modbus, unit: 1, fc: [read_holding_registers], read: {holding_registers: 0}}
  network:
    hosts:
      - {host: plc, mac: "02:00:00:00:00:14"}
    links:
      - {src: hmi, dst: plc, port: tcp/502, service: modbus}
      - {src: hmi, dst: plc, port: tcp/80, service: http}
      - {src: eng, dst: plc, port: tcp/443, service: tls}
      - {src: plc, dst: 10.10.1.255, port: udp/137, service: netbios}
`

// replayBaseline replays what write makes against networkBaseline with
// only the baseline detectors on.
func replayBaseline(t *testing.T, write func(w *pcapgen.Writer) error) *recorder {
	t.Helper()
	p, err := policy.Parse([]byte(networkBaseline), "net.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Detectors {
		p.Detectors[i].Enabled = strings.HasPrefix(p.Detectors[i].ID, "baseline-")
	}
	return replayPolicy(t, write, p)
}

// TestNetworkBaseline: each network baseline detector fires on what the
// baseline lacks, and stays quiet on what it has and on background
// chatter.
func TestNetworkBaseline(t *testing.T) {
	hmi, plc, eng := host(10), host(20), host(30)
	at := func(e pcapgen.Endpoint, port uint16) pcapgen.Endpoint { e.Port = port; return e }
	get := []byte("GET / HTTP/1.1\r\nHost: plc\r\n\r\n")
	cases := []struct {
		name  string
		want  string // detector ids fired, in order
		title string
		write func(w *pcapgen.Writer) error
	}{
		{"learned links, the learned MAC, chatter", "", "", func(w *pcapgen.Writer) error {
			if err := modbusPoll(w, hmi, plc); err != nil {
				return err
			}
			if err := session(w, at(hmi, 50200), at(plc, 80), get, nil); err != nil {
				return err
			}
			if _, err := w.ARPRequest(plc, hmi.IP); err != nil {
				return err
			}
			// NetBIOS name queries and mDNS from known hosts: chatter.
			u, err := pcapgen.NewUDP(w, at(hmi, 137), pcapgen.Endpoint{MAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, IP: netip.MustParseAddr("10.10.1.255"), Port: 137})
			if err == nil {
				_, err = u.Send(make([]byte, 50))
			}
			return err
		}},
		{"a new host", "baseline-new-host", "New host 10.10.1.66 (MAC 02:00:00:00:00:42) on the tap", func(w *pcapgen.Writer) error {
			_, err := w.ARPRequest(host(66), plc.IP)
			return err
		}},
		{"a new MAC for a learned host", "baseline-new-host", "New MAC 02:00:00:00:01:14 for host 10.10.1.20", func(w *pcapgen.Writer) error {
			p := plc
			p.MAC = net.HardwareAddr{2, 0, 0, 0, 1, 0x14}
			_, err := w.ARPRequest(p, hmi.IP)
			return err
		}},
		{"a new client of a learned service", "baseline-new-link", "New link: 10.10.1.30 to 10.10.1.20 tcp/80 (http)", func(w *pcapgen.Writer) error {
			return session(w, at(eng, 50300), at(plc, 80), get, nil)
		}},
		{"a new service on a host", "baseline-new-service", "New service tcp/4444 (unknown) on 10.10.1.20, used by 10.10.1.10", func(w *pcapgen.Writer) error {
			return session(w, at(hmi, 50400), at(plc, 4444), []byte{0x9a, 1, 2, 3}, []byte{0x55, 4, 5})
		}},
		{"a session port of the dynamic range carrying nothing named", "", "", func(w *pcapgen.Writer) error {
			return session(w, at(hmi, 50600), at(plc, 49731), []byte{0x9a, 1, 2, 3}, []byte{0x55, 4, 5})
		}},
		{"a new protocol on a learned link", "baseline-new-protocol", "New protocol on a known link: 10.10.1.30 to 10.10.1.20 tcp/443 (ssh)", func(w *pcapgen.Writer) error {
			return session(w, at(eng, 50500), at(plc, 443), []byte("SSH-2.0-x\r\n"), []byte("SSH-2.0-y\r\n"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := replayBaseline(t, c.write)
			if got := strings.Join(rec.rules(), ","); got != c.want {
				t.Fatalf("fired %q, want %q", got, c.want)
			}
			if c.want != "" && !strings.Contains(rec.alerts[0].Title, c.title) {
				t.Errorf("title %q lacks %q", rec.alerts[0].Title, c.title)
			}
		})
	}
	// A baseline without a network section knows nothing of the network.
	p, err := policy.Parse([]byte("baseline: {conversations: []}"), "old.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(p, &recorder{}, EngineOptions{})
	if err != nil || e.base == nil || e.base.net != nil {
		t.Errorf("engine on a baseline without a network section: %v, %+v", err, e.base)
	}
}

// TestNetworkTablesBounded: a flood of ARP senders and probes keeps the
// network tables at their size, and the evictions are counted.
func TestNetworkTablesBounded(t *testing.T) {
	rec := &recorder{}
	e, err := NewEngine(nil, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e.ARP(&dpi.ARP{Time: t0.Add(time.Duration(i) * time.Millisecond), Op: 1, SenderMAC: [6]byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)},
			EthSrc: [6]byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, SenderIP: ip, TargetIP: netip.MustParseAddr("10.255.0.1")})
	}
	st := e.Stats()
	if e.bi.net.binds.Len() > bindingSlots || st.BindingEvictions == 0 || st.OwnerEvictions == 0 || st.ProbeEvictions == 0 {
		t.Errorf("%d bindings; stats %+v", e.bi.net.binds.Len(), st)
	}
	if ev := st.Evictions(); ev["arp_bindings"] != st.BindingEvictions || ev["probes"] != st.ProbeEvictions {
		t.Errorf("evictions %v", ev)
	}
	if _, listed := (EngineStats{}).Evictions()["rate"]; listed {
		t.Error("a table that never evicted is listed")
	}
}

// TestLinkRulesFire: rules about links fire once per flow that matches
// them, and not on flows their unless exempts or that do not match.
func TestLinkRulesFire(t *testing.T) {
	hmi, eng, plc, rogue := host(10), host(30), host(20), host(66)
	at := func(e pcapgen.Endpoint, port uint16) pcapgen.Endpoint { e.Port = port; return e }
	const pol = `
assets:
  hmi: {ip: 10.10.1.10}
  eng: {ip: 10.10.1.30}
  plcs: {cidr: 10.10.1.16/28}
rules:
  - id: only-hmi-and-eng-to-plcs
    when: {dst: plcs, service: any}
    unless: {src: [hmi, eng]}
    severity: high
  - id: no-smb-to-plcs
    when: {dst: plcs, service: [smb, netbios_ssn]}
`
	p, err := policy.Parse([]byte(pol), "links.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec := replayPolicy(t, func(w *pcapgen.Writer) error {
		for _, step := range []func() error{
			func() error { return modbusPoll(w, hmi, plc) },                                                          // allowed
			func() error { return session(w, at(eng, 50001), at(plc, 445), smbNegotiate, nil) },                      // no-smb-to-plcs
			func() error { return session(w, at(rogue, 50002), at(plc, 80), []byte("GET / HTTP/1.0\r\n\r\n"), nil) }, // only-hmi…
			func() error {
				return session(w, at(rogue, 50003), at(host(80), 80), []byte("GET / HTTP/1.0\r\n\r\n"), nil)
			}, // not to a PLC
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	}, p)
	var got []string
	for _, a := range rec.alerts {
		if a.Category == "policy" {
			got = append(got, a.Rule+" "+a.Src.Addr().String()+">"+a.Dst.String())
		}
	}
	if want := "no-smb-to-plcs 10.10.1.30>10.10.1.20:445,only-hmi-and-eng-to-plcs 10.10.1.66>10.10.1.20:80"; strings.Join(got, ",") != want {
		t.Errorf("rule alerts %v, want %s (all: %v)", got, want, rec.rules())
	}
}

// TestNetworkBaselineNoAllocs: a flow the network baseline and the link
// rules allow allocates nothing.
func TestNetworkBaselineNoAllocs(t *testing.T) {
	p, err := policy.Parse([]byte(networkBaseline+`
rules:
  - id: no-smb-to-plc
    when: {dst: plc, service: smb}
`), "net.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e, err := NewEngine(p, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &dpi.Flow{ID: 9, Transport: dpi.TCP, Client: netip.MustParseAddrPort("10.10.1.10:50000"), Server: netip.MustParseAddrPort("10.10.1.20:502"),
		App: dpi.AppModbus, Service: service.Modbus}
	a := &dpi.ARP{Op: 1, SenderMAC: [6]byte{2, 0, 0, 0, 0, 0x14}, SenderIP: netip.MustParseAddr("10.10.1.20"), TargetIP: netip.MustParseAddr("10.10.1.10")}
	var i int
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		now := t0.Add(time.Duration(i) * time.Second)
		a.Time = now
		e.FlowData(f, now)
		e.ARP(a)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per allowed flow and ARP frame", allocs)
	}
	if len(rec.alerts) != 0 {
		t.Errorf("fired %v", rec.rules())
	}
}

// TestPlantAddr: the plant's own addresses, and the ones a host on the
// tap may have.
func TestPlantAddr(t *testing.T) {
	for _, c := range []struct {
		addr         string
		plant, onNet bool
	}{
		{"10.10.1.20", true, true}, {"100.64.3.4", true, true}, {"169.254.1.1", true, true},
		{"10.10.1.255", true, false}, {"fe80::1", true, false}, {"fd00::1", true, true},
		{"203.0.113.7", false, false}, {"100.128.0.1", false, false}, {"239.255.255.250", false, false},
	} {
		a := netip.MustParseAddr(c.addr)
		if PlantAddr(a) != c.plant || onNet(a) != c.onNet {
			t.Errorf("%s: plant %v, on the net %v; want %v, %v", c.addr, PlantAddr(a), onNet(a), c.plant, c.onNet)
		}
	}
}
