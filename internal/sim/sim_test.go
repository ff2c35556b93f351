package sim_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/internal/sim"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/sensor"
)

func generate(t testing.TB, s sim.Scenario) ([]byte, *sim.Truth) {
	t.Helper()
	var buf bytes.Buffer
	truth, err := sim.Generate(&buf, s)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), truth
}

func truthJSON(t testing.TB, tr *sim.Truth) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tr.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	s := sim.Scenario{Seed: 7, Learn: 2 * time.Minute, Monitor: 21 * time.Minute}
	pcap1, tr1 := generate(t, s)
	pcap2, tr2 := generate(t, s)
	if !bytes.Equal(pcap1, pcap2) {
		t.Error("same seed, different captures")
	}
	if !bytes.Equal(truthJSON(t, tr1), truthJSON(t, tr2)) {
		t.Error("same seed, different truths")
	}
	s.Seed = 8
	pcap3, tr3 := generate(t, s)
	if bytes.Equal(pcap1, pcap3) {
		t.Error("different seeds, same capture")
	}
	if bytes.Equal(truthJSON(t, tr1), truthJSON(t, tr3)) {
		t.Error("different seeds, same truth")
	}
}

func TestTruthRoundTrip(t *testing.T) {
	_, tr := generate(t, sim.Scenario{Seed: 3, Learn: time.Minute, Monitor: 21 * time.Minute})
	data := truthJSON(t, tr)
	back, err := sim.ReadTruth(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(truthJSON(t, back), data) {
		t.Errorf("round trip changed the truth:\n%s\n%s", data, truthJSON(t, back))
	}
	if len(back.Attacks) != len(sim.Kinds()) {
		t.Errorf("%d attacks, want %d", len(back.Attacks), len(sim.Kinds()))
	}
	for _, bad := range []string{
		"",
		`{"type":"attack","kind":"new-asset"}`,
		`{"type":"scenario"}` + "\n" + `{"type":"attack","kind":"nope"}`,
		`{"type":"what"}`,
		`{"type":"scenario"}` + "\n" + `{"type":"scenario"}`,
		`not json`,
	} {
		if _, err := sim.ReadTruth(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadTruth(%q) succeeded", bad)
		}
	}
}

func TestScenarioErrors(t *testing.T) {
	for _, s := range []sim.Scenario{
		{Learn: 30 * time.Second},
		{Monitor: time.Minute},                               // too short for every attack
		{Monitor: time.Minute, Attacks: []sim.Kind{"bogus"}}, // unknown
		{Attacks: []sim.Kind{sim.NewAsset, sim.NewAsset}},    // twice
		{Density: 100},                                       // too dense
		{PLCs: 9},                                            // too many
		{Outstations: 1},                                     // too few
		{Link: pcapgen.Link(99), Attacks: []sim.Kind{}, Learn: time.Minute}, // bad link
		{Link: pcapgen.LinkRaw, Attacks: []sim.Kind{sim.ARPSpoof}},          // no ARP on the link
	} {
		if _, err := sim.Generate(io.Discard, s); err == nil {
			t.Errorf("Generate(%+v) succeeded", s)
		}
	}
}

// op is a decoded message, reduced to what the checks need.
type op struct {
	frame   uint64
	time    time.Time
	proto   string // "modbus" or "dnp3"
	src     netip.Addr
	dst     netip.Addr
	req     bool
	unit    uint8
	fc      uint8
	addr    uint16
	count   uint16
	values  []uint16
	sub     uint16
	mei     uint8
	exc     uint8
	linkDst uint16
	sbo     dnp3.SBOResult
	problem string // malformed, unanswered, orphan, garbage, truncated
}

type ops struct {
	byFrame map[uint64][]op
	all     []op // the problems
	writes  []op // Modbus write and DNP3 control requests
}

func (o *ops) add(x op) {
	o.byFrame[x.frame] = append(o.byFrame[x.frame], x)
	if x.problem != "" {
		o.all = append(o.all, x)
	}
	if x.req && x.problem == "" && (x.proto == "modbus" && (x.fc == 5 || x.fc == 6 || x.fc == 16) || x.proto == "dnp3" && (x.fc == 3 || x.fc == 4)) {
		o.writes = append(o.writes, x)
	}
}

func ends(f *dpi.Flow, fromServer bool) (src, dst netip.Addr) {
	if fromServer {
		return f.Server.Addr(), f.Client.Addr()
	}
	return f.Client.Addr(), f.Server.Addr()
}

func (o *ops) Message(f *dpi.Flow, from dpi.Side, msg any) {
	switch m := msg.(type) {
	case *modbus.Message:
		o.modbusOp(f, m)
	case *dnp3.Message:
		o.dnp3Op(f, from == dpi.FromServer, m)
	}
}

func (o *ops) modbusOp(f *dpi.Flow, m *modbus.Message) {
	x := op{frame: m.Frame, time: m.Time, proto: "modbus", req: m.Dir == modbus.Request, unit: m.Unit, fc: m.FC,
		addr: m.Addr, count: m.Count, values: slices.Clone(m.Values), sub: m.Sub, mei: m.MEI, exc: m.Exception}
	x.src, x.dst = ends(f, m.Dir == modbus.Response)
	switch {
	case m.Malformed != 0:
		x.problem = fmt.Sprintf("malformed %d", m.Malformed)
	case m.Outcome == modbus.OutcomeUnanswered:
		x.problem = "unanswered"
	case m.Outcome == modbus.OutcomeOrphan:
		x.problem = "orphan"
	}
	o.add(x)
}

func (o *ops) dnp3Op(f *dpi.Flow, fromServer bool, m *dnp3.Message) {
	x := op{frame: m.Frame, time: m.Time, proto: "dnp3", req: m.Dir == dnp3.Request, fc: m.FC, linkDst: m.Link.Dst, sbo: m.SBO}
	x.src, x.dst = ends(f, fromServer)
	switch {
	case m.Malformed != 0:
		x.problem = fmt.Sprintf("malformed %d", m.Malformed)
	case m.Kind == dnp3.KindGarbage:
		x.problem = "garbage"
	case m.Truncated:
		x.problem = "truncated"
	case m.Kind == dnp3.KindApplication && m.FC == pcapgen.DNP3Operate && m.SBO != dnp3.SBOMatched:
		x.problem = fmt.Sprintf("operate sbo %d", m.SBO)
	}
	o.add(x)
}

func replay(t *testing.T, data []byte) (*ops, sensor.Summary) {
	t.Helper()
	src, err := capture.NewFile(bytes.NewReader(data), "sim.pcap")
	if err != nil {
		t.Fatal(err)
	}
	o := &ops{byFrame: map[uint64][]op{}}
	sum, err := sensor.Replay(context.Background(), src, sensor.Options{Ops: o})
	if err != nil {
		t.Fatal(err)
	}
	return o, sum
}

// TestDecodes runs captures of several seeds and links through the real
// pipeline: the normal traffic decodes cleanly, and each attack's key frame
// carries the operation its label claims.
func TestDecodes(t *testing.T) {
	cases := []sim.Scenario{
		{Seed: 1},
		{Seed: 2, Link: pcapgen.LinkVLAN, Learn: 5 * time.Minute, Monitor: 21 * time.Minute, Density: 2},
		{Seed: 3, Link: pcapgen.LinkRaw, Learn: 3 * time.Minute, Monitor: 21 * time.Minute, PLCs: 6, Outstations: 4},
	}
	// More seeds, shorter.
	links := []pcapgen.Link{pcapgen.LinkEthernet, pcapgen.LinkQinQ, pcapgen.LinkSLL, pcapgen.LinkNull}
	for seed := int64(4); seed < 12; seed++ {
		cases = append(cases, sim.Scenario{Seed: seed, Link: links[seed%4], Learn: time.Duration(1+seed%3) * time.Minute, Monitor: 21 * time.Minute})
	}
	if testing.Short() {
		cases = cases[1:2]
	}
	for _, s := range cases {
		link := s.Link
		if link == 0 {
			link = pcapgen.LinkEthernet
		}
		t.Run(fmt.Sprintf("seed%d-%v", s.Seed, link), func(t *testing.T) {
			data, tr := generate(t, s)
			o, sum := replay(t, data)
			if sum.Packets != uint64(tr.Packets) {
				t.Errorf("replay saw %d packets, truth says %d", sum.Packets, tr.Packets)
			}
			c := sum.DPI
			if c.Undecodable+c.TCPMidStream+c.TCPOutOfOrder+c.TCPRetransmits+c.TCPGaps+c.TCPIgnoredRSTs+c.TCPBufferDrops != 0 {
				t.Errorf("transport anomalies: %+v", c)
			}
			attackFrames := map[uint64]bool{}
			for _, a := range tr.Attacks {
				for _, f := range a.Frames {
					attackFrames[uint64(f)] = true
				}
			}
			for _, x := range o.all {
				switch {
				case x.time.Before(tr.LearnEnd):
					t.Errorf("learning period: frame %d %s %v->%v fc %d: %s", x.frame, x.proto, x.src, x.dst, x.fc, x.problem)
				case !attackFrames[x.frame]:
					t.Errorf("normal traffic: frame %d %s %v->%v fc %d: %s", x.frame, x.proto, x.src, x.dst, x.fc, x.problem)
				}
			}
			checkLearning(t, tr, o, attackFrames)
			if want := len(sim.KindsFor(link)); len(tr.Attacks) != want {
				t.Errorf("%d attacks, want %d", len(tr.Attacks), want)
			}
			for i, a := range tr.Attacks {
				if a.KeyFrame < a.FirstFrame || a.KeyFrame > a.LastFrame || !a.Start.Before(a.End) || a.Start.Before(tr.LearnEnd) || a.End.After(tr.End) {
					t.Errorf("%s: bad bounds %+v", a.Kind, a)
				}
				if i > 0 && !tr.Attacks[i-1].End.Before(a.Start) {
					t.Errorf("%s overlaps %s", a.Kind, tr.Attacks[i-1].Kind)
				}
				if err := checkKey(a, o.byFrame[uint64(a.KeyFrame)], data); err != nil {
					t.Errorf("%s (key frame %d): %v", a.Kind, a.KeyFrame, err)
				}
			}
		})
	}
}

// checkLearning checks that the operator's writes and controls happen at
// least twice during learning, and that the written values after it stay
// within the learned range.
func checkLearning(t *testing.T, tr *sim.Truth, o *ops, attackFrames map[uint64]bool) {
	t.Helper()
	type key struct {
		proto string
		fc    uint8
		addr  uint16
	}
	learned := map[key][]uint16{}
	for _, x := range o.writes {
		k := key{x.proto, x.fc, x.addr}
		if x.time.Before(tr.LearnEnd) {
			learned[k] = append(learned[k], x.values...)
			if x.proto == "dnp3" {
				learned[k] = append(learned[k], 0)
			}
			continue
		}
		if attackFrames[x.frame] {
			continue
		}
		vs, ok := learned[k]
		if !ok {
			t.Errorf("frame %d: %s fc %d addr %d not seen during learning", x.frame, x.proto, x.fc, x.addr)
			continue
		}
		for _, v := range x.values {
			if v < slices.Min(vs) || v > slices.Max(vs) {
				t.Errorf("frame %d: %s fc %d addr %d value %d outside the learned %v", x.frame, x.proto, x.fc, x.addr, v, vs)
			}
		}
	}
	for _, k := range []key{{"modbus", 6, 5}, {"modbus", 5, 3}, {"dnp3", 3, 0}, {"dnp3", 4, 0}} {
		if n := len(learned[k]); n < 2 {
			t.Errorf("%v: %d times during learning, want 2", k, n)
		}
	}
}

// checkKey checks that the key frame of a decodes to what its kind says.
func checkKey(a sim.Attack, xs []op, data []byte) error {
	find := func(pred func(x op) bool) error {
		for _, x := range xs {
			if x.req && x.src == a.Src.Addr() && x.dst == a.Dst.Addr() && pred(x) {
				return nil
			}
		}
		return fmt.Errorf("no such request among %+v", xs)
	}
	mb := func(fc uint8, more func(x op) bool) error {
		return find(func(x op) bool { return x.proto == "modbus" && x.fc == fc && (more == nil || more(x)) })
	}
	dn := func(fc uint8, more func(x op) bool) error {
		return find(func(x op) bool { return x.proto == "dnp3" && x.fc == fc && (more == nil || more(x)) })
	}
	switch a.Kind {
	case sim.UnauthorizedWrite:
		return mb(16, func(x op) bool { return x.addr == 0 && x.count == 2 })
	case sim.SetpointOutOfRange:
		return mb(6, func(x op) bool { return x.addr == 5 && slices.Equal(x.values, []uint16{900}) })
	case sim.WriteNewAddress:
		return mb(6, func(x op) bool { return x.addr == 60 })
	case sim.NewFunction:
		return mb(16, func(x op) bool { return x.addr == 5 && x.count == 1 })
	case sim.ModbusDiagnostics:
		return mb(8, func(x op) bool { return x.sub == 4 })
	case sim.DeviceID:
		return mb(43, func(x op) bool { return x.mei == 14 })
	case sim.FunctionSweep:
		return mb(1, nil)
	case sim.UnitSweep:
		return mb(3, func(x op) bool { return x.unit == 1 })
	case sim.ExceptionStorm:
		return mb(3, func(x op) bool { return x.addr == 1000 })
	case sim.ModbusBroadcast:
		return mb(6, func(x op) bool { return x.unit == 0 && x.addr == 5 })
	case sim.RequestFlood, sim.NewAsset:
		return mb(3, nil)
	case sim.MalformedModbus:
		return find(func(x op) bool { return x.proto == "modbus" && strings.HasPrefix(x.problem, "malformed") })
	case sim.DNP3ColdRestart:
		return dn(13, nil)
	case sim.DNP3WarmRestart:
		return dn(14, nil)
	case sim.DNP3StopApplication:
		return dn(18, nil)
	case sim.DNP3DisableUnsolicited:
		return dn(21, nil)
	case sim.DNP3File:
		return dn(25, nil)
	case sim.DNP3OperateWithoutSelect:
		return dn(4, func(x op) bool { return x.sbo == dnp3.SBONoSelect })
	case sim.DNP3SelectMismatch:
		return dn(4, func(x op) bool { return x.sbo == dnp3.SBOMismatch })
	case sim.DNP3Broadcast:
		return dn(6, func(x op) bool { return x.linkDst == 0xffff })
	case sim.MalformedDNP3:
		return find(func(x op) bool { return x.proto == "dnp3" && strings.HasPrefix(x.problem, "malformed") })
	case sim.PublicAddress, sim.C2NewPort:
		return checkSYN(data, a)
	case sim.ARPSpoof:
		return checkFrame(data, a, func(p gopacket.Packet) bool {
			arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			if arp == nil || arp.Operation != layers.ARPReply {
				return false
			}
			claimed := netip.AddrFrom4([4]byte(arp.SourceProtAddress))
			return claimed != a.Src.Addr() && (claimed == a.Dst.Addr() || slices.Contains(a.Targets, claimed))
		})
	case sim.Scan:
		return checkFrame(data, a, func(p gopacket.Packet) bool {
			if arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP); arp != nil {
				return arp.Operation == layers.ARPRequest && netip.AddrFrom4([4]byte(arp.SourceProtAddress)) == a.Src.Addr() &&
					netip.AddrFrom4([4]byte(arp.DstProtAddress)) == a.Targets[0]
			}
			ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			return ip4 != nil && icmp != nil && icmp.TypeCode.Type() == layers.ICMPv4TypeEchoRequest &&
				netip.AddrFrom4([4]byte(ip4.SrcIP.To4())) == a.Src.Addr() && netip.AddrFrom4([4]byte(ip4.DstIP.To4())) == a.Targets[0]
		})
	case sim.SMBLateral:
		// An SMB2 NEGOTIATE request over NetBIOS session service.
		return checkFrame(data, a, func(p gopacket.Packet) bool {
			tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp == nil {
				return false
			}
			b := tcp.Payload
			return tcpEnds(p, tcp) == [2]netip.AddrPort{a.Src, a.Dst} && len(b) > 20 &&
				b[0] == 0 && int(b[1])<<16|int(b[2])<<8|int(b[3]) == len(b)-4 && string(b[4:8]) == "\xfeSMB" && b[16] == 0 && b[20]&1 == 0
		})
	}
	return fmt.Errorf("no check for kind %q", a.Kind)
}

// checkSYN checks that frame a.KeyFrame is a SYN from a.Src to a.Dst.
func checkSYN(data []byte, a sim.Attack) error {
	return checkFrame(data, a, func(p gopacket.Packet) bool {
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		return tcp != nil && tcp.SYN && !tcp.ACK && tcpEnds(p, tcp) == [2]netip.AddrPort{a.Src, a.Dst}
	})
}

// tcpEnds returns the source and destination of an IPv4 TCP segment.
func tcpEnds(p gopacket.Packet, tcp *layers.TCP) [2]netip.AddrPort {
	ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip4 == nil {
		return [2]netip.AddrPort{}
	}
	return [2]netip.AddrPort{
		netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip4.SrcIP.To4())), uint16(tcp.SrcPort)),
		netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip4.DstIP.To4())), uint16(tcp.DstPort)),
	}
}

// checkFrame checks that frame a.KeyFrame of the capture passes ok.
func checkFrame(data []byte, a sim.Attack, ok func(gopacket.Packet) bool) error {
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	for n := 1; ; n++ {
		frame, _, err := r.ReadPacketData()
		if err != nil {
			return err
		}
		if n != a.KeyFrame {
			continue
		}
		if p := gopacket.NewPacket(frame, r.LinkType(), gopacket.Default); !ok(p) {
			return fmt.Errorf("frame %d is not what %s's key frame should be (%v to %v): %v", n, a.Kind, a.Src, a.Dst, p)
		}
		return nil
	}
}

// TestClean: with no attacks, nothing in the whole capture is a problem.
func TestClean(t *testing.T) {
	data, tr := generate(t, sim.Scenario{Seed: 11, Attacks: []sim.Kind{}, Learn: 2 * time.Minute, Monitor: 20 * time.Minute})
	if len(tr.Attacks) != 0 {
		t.Fatalf("%d attacks", len(tr.Attacks))
	}
	o, sum := replay(t, data)
	for _, x := range o.all {
		t.Errorf("frame %d %s %v->%v fc %d: %s", x.frame, x.proto, x.src, x.dst, x.fc, x.problem)
	}
	if sum.Messages.Requests == 0 || sum.Messages.DNP3.Fragments == 0 {
		t.Errorf("no traffic: %+v", sum.Messages)
	}
}

// TestSomeAttacks: Attacks selects the kinds.
func TestSomeAttacks(t *testing.T) {
	kinds := []sim.Kind{sim.DNP3ColdRestart, sim.SetpointOutOfRange}
	_, tr := generate(t, sim.Scenario{Seed: 5, Attacks: kinds, Learn: time.Minute, Monitor: 2 * time.Minute})
	var got []sim.Kind
	for _, a := range tr.Attacks {
		got = append(got, a.Kind)
	}
	slices.Sort(got)
	slices.Sort(kinds)
	if !slices.Equal(got, kinds) {
		t.Errorf("attacks %v, want %v", got, kinds)
	}
}

// countingWriter samples the live heap every few megabytes written.
type countingWriter struct {
	n, next int
	samples []uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	if c.n >= c.next {
		c.next += 8 << 20
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c.samples = append(c.samples, ms.HeapAlloc)
	}
	return len(p), nil
}

// TestFlatMemory: the live heap does not grow with the duration.
func TestFlatMemory(t *testing.T) {
	testenv.Long(t, "6 hours of plant traffic")
	var c countingWriter
	if _, err := sim.Generate(&c, sim.Scenario{Seed: 1, Monitor: 6 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if len(c.samples) < 8 {
		t.Fatalf("only %d samples over %d bytes", len(c.samples), c.n)
	}
	early := slices.Max(c.samples[1:4])
	late := slices.Max(c.samples[len(c.samples)-3:])
	t.Logf("%d MB written, heap samples %v", c.n>>20, c.samples)
	if late > early+2<<20 {
		t.Errorf("heap grew from %d to %d bytes", early, late)
	}
}

func BenchmarkGenerate(b *testing.B) {
	var packets int
	for b.Loop() {
		tr, err := sim.Generate(io.Discard, sim.Scenario{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		packets += tr.Packets
	}
	b.ReportMetric(float64(packets)/b.Elapsed().Seconds(), "packets/s")
}

// TestNetworkAttacks checks what the network attacks put on the wire,
// frame by frame, and that their truth covers every address they reach.
func TestNetworkAttacks(t *testing.T) {
	kinds := []sim.Kind{sim.ARPSpoof, sim.Scan, sim.SMBLateral, sim.C2NewPort}
	data, tr := generate(t, sim.Scenario{Seed: 4, Attacks: kinds, Learn: time.Minute, Monitor: time.Duration(len(kinds)) * sim.MinAttackSlot})
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	pkts := []gopacket.Packet{nil} // frame numbers from 1
	for {
		b, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, gopacket.NewPacket(b, r.LinkType(), gopacket.Default))
	}
	addr4 := func(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b)) }
	if len(tr.Attacks) != len(kinds) {
		t.Fatalf("%d attacks, want %d", len(tr.Attacks), len(kinds))
	}
	for _, a := range tr.Attacks {
		// counts of what the attack's frames are
		n := map[string]int{}
		claimed := map[netip.Addr]bool{}
		ports := map[layers.TCPPort]bool{}
		for _, f := range a.Frames {
			p := pkts[f]
			if arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP); arp != nil {
				eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				sender := addr4(arp.SourceProtAddress)
				switch {
				case arp.Operation == layers.ARPRequest && sender == a.Src.Addr():
					n["arp request"]++
				case arp.Operation == layers.ARPReply && sender != a.Src.Addr() && bytes.Equal(eth.SrcMAC, arp.SourceHwAddress):
					n["arp reply"]++
					claimed[sender] = true
				}
				continue
			}
			tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp == nil {
				continue
			}
			src := tcpEnds(p, tcp)[0].Addr()
			switch {
			case tcp.SYN && !tcp.ACK && src == a.Src.Addr():
				n["syn"]++
				ports[tcp.DstPort] = true
			case tcp.SYN && tcp.ACK:
				n["syn-ack"]++
			case tcp.RST && src == a.Dst.Addr():
				n["rst from server"]++
			case tcp.RST:
				n["rst from client"]++
			case tcp.FIN:
				n["fin"]++
			}
			if len(tcp.Payload) > 0 && src == a.Src.Addr() {
				n["client bytes"] += len(tcp.Payload)
			} else if len(tcp.Payload) > 0 {
				n["server bytes"] += len(tcp.Payload)
			}
			if bytes.Contains(tcp.Payload, []byte("\xfeSMB")) {
				n["smb"]++
			}
		}
		mid := a.Start.Add(a.End.Sub(a.Start) / 2)
		switch a.Kind {
		case sim.ARPSpoof:
			// Two requests of the intruder; the two answers, 8 claims each
			// way and 3 restores each way, all from their sender's MAC.
			if n["arp request"] != 2 || n["arp reply"] != 2+16+6 || len(a.Targets) != 1 || !claimed[a.Dst.Addr()] || !claimed[a.Targets[0]] {
				t.Errorf("arp-spoof: %v, claimed %v, targets %v", n, claimed, a.Targets)
			}
		case sim.Scan:
			if n["arp request"] != 60 || n["syn"] != 104 || len(ports) != 104 || n["syn-ack"] != 2 || n["rst from client"] != 2 || n["rst from server"] != 102 {
				t.Errorf("scan: %v, %d ports", n, len(ports))
			}
			if len(a.Targets) != 60 || !a.Covers(mid, a.Targets[59], a.Src.Addr(), 0) || a.Covers(mid, a.Targets[0], a.Dst.Addr(), 0) {
				t.Errorf("scan: targets %v not covered as they should be", a.Targets)
			}
		case sim.SMBLateral:
			if a.Dst.Port() != 445 || n["smb"] != 10 || n["fin"] != 2 || n["client bytes"] < 6000 {
				t.Errorf("smb-lateral to %v: %v", a.Dst, n)
			}
		case sim.C2NewPort:
			if a.Dst.Port() != 4444 || n["client bytes"] < 800 || n["server bytes"] < 480 || a.End.Sub(a.Start) < 12*time.Second || n["fin"] != 2 {
				t.Errorf("c2-new-port to %v over %v: %v", a.Dst, a.End.Sub(a.Start), n)
			}
		}
		if !a.Covers(mid, a.Dst.Addr(), a.Src.Addr(), 0) {
			t.Errorf("%s does not cover its own ends", a.Kind)
		}
	}
	if k := sim.KindsFor(pcapgen.LinkRaw); slices.Contains(k, sim.ARPSpoof) || len(k) != len(sim.Kinds())-1 {
		t.Errorf("KindsFor(raw) = %v", k)
	}
	if k := sim.KindsFor(pcapgen.LinkVLAN); !slices.Equal(k, sim.Kinds()) {
		t.Errorf("KindsFor(vlan) = %v", k)
	}
}
