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
	s := sim.Scenario{Seed: 7, Learn: 2 * time.Minute, Monitor: 20 * time.Minute}
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
	_, tr := generate(t, sim.Scenario{Seed: 3, Learn: time.Minute, Monitor: 18 * time.Minute})
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
		{Seed: 2, Link: pcapgen.LinkVLAN, Learn: 5 * time.Minute, Monitor: 20 * time.Minute, Density: 2},
		{Seed: 3, Link: pcapgen.LinkRaw, Learn: 3 * time.Minute, Monitor: 18 * time.Minute, PLCs: 6, Outstations: 4},
	}
	// More seeds, shorter.
	links := []pcapgen.Link{pcapgen.LinkEthernet, pcapgen.LinkQinQ, pcapgen.LinkSLL, pcapgen.LinkNull}
	for seed := int64(4); seed < 12; seed++ {
		cases = append(cases, sim.Scenario{Seed: seed, Link: links[seed%4], Learn: time.Duration(1+seed%3) * time.Minute, Monitor: 18 * time.Minute})
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
			if len(tr.Attacks) != len(sim.Kinds()) {
				t.Errorf("%d attacks, want %d", len(tr.Attacks), len(sim.Kinds()))
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
	case sim.PublicAddress:
		return checkSYN(data, a)
	}
	return fmt.Errorf("no check for kind %q", a.Kind)
}

// checkSYN checks that frame a.KeyFrame is a SYN from a.Src to a.Dst.
func checkSYN(data []byte, a sim.Attack) error {
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
		p := gopacket.NewPacket(frame, r.LinkType(), gopacket.Default)
		ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip4 == nil || tcp == nil || !tcp.SYN || tcp.ACK ||
			netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip4.SrcIP.To4())), uint16(tcp.SrcPort)) != a.Src ||
			netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip4.DstIP.To4())), uint16(tcp.DstPort)) != a.Dst {
			return fmt.Errorf("frame %d is not a SYN from %v to %v: %v", n, a.Src, a.Dst, p)
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
