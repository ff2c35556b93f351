package rules

import (
	"bytes"
	"fmt"
	"github.com/tapwatch/tapwatch/dpi/link"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules/policy"
)

type benchPacket struct {
	ts   time.Time
	data []byte
}

// plantPackets generates the plant capture of internal/pcapgen and reads
// it into memory, so that the benchmark measures decoding and rules only.
func plantPackets(b testing.TB, n int) (layers.LinkType, []benchPacket) {
	b.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := pcapgen.Plant(w, n, 1); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		b.Fatal(err)
	}
	var pkts []benchPacket
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, benchPacket{ci.Timestamp, data})
	}
	return r.LinkType(), pkts
}

// benchPolicy writes a policy of n rules over 250 assets, as a plant might
// have: the plant's masters, PLCs and outstations and 227 other devices
// and networks; for each device, writes only from the masters, setpoint
// bounds, forbidden function codes, write rates, read ranges, DNP3
// restarts and breaker controls; and rules on networks and sources,
// which cannot be indexed by destination. None fires on the plant's
// normal traffic.
func benchPolicy(b *testing.B, n int) *policy.Policy {
	b.Helper()
	var y strings.Builder
	y.WriteString("version: 1\nassets:\n")
	var modbusDevs, dnp3Devs []string
	for i, a := range pcapgen.PlantMasters {
		fmt.Fprintf(&y, "  m%d: {ip: %s}\n", i, a)
	}
	for i, a := range pcapgen.PlantPLCs {
		fmt.Fprintf(&y, "  plc%d: {ip: %s}\n", i, a)
		modbusDevs = append(modbusDevs, fmt.Sprintf("plc%d", i))
	}
	for i, a := range pcapgen.PlantOutstations {
		fmt.Fprintf(&y, "  rtu%d: {ip: %s, dnp3: %d}\n", i, a, 10+i)
		dnp3Devs = append(dnp3Devs, fmt.Sprintf("rtu%d", i))
	}
	assets := len(pcapgen.PlantMasters) + len(pcapgen.PlantPLCs) + len(pcapgen.PlantOutstations)
	for i := 0; assets < 250; i++ {
		switch {
		case i%10 == 9:
			fmt.Fprintf(&y, "  net%d: {cidr: 10.30.%d.0/24}\n", i, i)
		case i%3 == 0:
			fmt.Fprintf(&y, "  dev%d: {ip: 10.20.%d.%d, dnp3: %d}\n", i, i/200, i%200+1, 100+i)
			dnp3Devs = append(dnp3Devs, fmt.Sprintf("dev%d", i))
		default:
			fmt.Fprintf(&y, "  dev%d: {ip: 10.20.%d.%d, modbus_units: [1, %d]}\n", i, i/200, i%200+1, 2+i%200)
			modbusDevs = append(modbusDevs, fmt.Sprintf("dev%d", i))
		}
		assets++
	}
	// The bench plant runs its outstations' events compressed in time:
	// more unsolicited responses in 10 s than a real outstation sends.
	// The detector stays on, with room for them, so that the benchmark
	// still pays for its check.
	y.WriteString("detectors:\n  dnp3-unsolicited-storm: {rate: {max: 1000, per: 10s}}\n")
	y.WriteString("rules:\n")
	masters := "[m0, m1, m2]"
	for i := range n {
		mdev := modbusDevs[i%len(modbusDevs)]
		ddev := dnp3Devs[i%len(dnp3Devs)]
		fmt.Fprintf(&y, "  - id: r%d\n", i)
		switch i % 10 {
		case 0, 1:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, op: write}\n    unless: {src: %s}\n    severity: high\n", mdev, masters)
		case 2:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, op: write, table: holding, addr: \"%d-%d\"}\n    value: {min: 0, max: 65535}\n", mdev, i%100, i%100+20)
		case 3:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, fc: [diagnostics, 43, read_file_record, write_file_record]}\n", mdev)
		case 4:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, op: write}\n    rate: {max: 100000, per: 1s}\n", mdev)
		case 5:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, op: read, addr: \"30000-39999\"}\n", mdev)
		case 6:
			fmt.Fprintf(&y, "    when: {proto: dnp3, dst: %s, fc: [cold_restart, warm_restart, stop_application]}\n    severity: critical\n", ddev)
		case 7:
			fmt.Fprintf(&y, "    when: {proto: dnp3, dst: %s, op: control, group: 12, points: \"0-15\"}\n    unless: {src: [m0, m1]}\n", ddev)
		case 8:
			fmt.Fprintf(&y, "    when: {proto: dnp3, dst: %s, op: [file, auth]}\n", ddev)
		case 9:
			// Not indexable by destination: a network, or no destination.
			if i%20 == 9 {
				fmt.Fprintf(&y, "    when: {proto: modbus, dst: 10.30.%d.0/24, op: write}\n", i%200)
			} else {
				fmt.Fprintf(&y, "    when: {proto: modbus, src: 10.99.%d.0/24}\n", i%200)
			}
		}
	}
	p, err := policy.Parse([]byte(y.String()), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Rules) != n || len(p.Assets) != 250 {
		b.Fatalf("%d rules, %d assets", len(p.Rules), len(p.Assets))
	}
	return p
}

type countSink struct{ n int }

func (c *countSink) Alert(*Alert) { c.n++ }

// replayPlant decodes the packets with a fresh dpi engine that hands every
// message to h.
func replayPlant(b *testing.B, lt layers.LinkType, pkts []benchPacket, h dpi.Handler) {
	d, err := dpi.New(dpi.Config{}, h)
	if err != nil {
		b.Fatal(err)
	}
	for i, p := range pkts {
		d.Packet(link.Type(lt), p.ts, uint64(i+1), p.data, 0)
	}
	d.Flush()
}

// BenchmarkEngine decodes the plant capture through dpi into the engine,
// with no rules and with 500, and reports ns per packet. The figure that
// matters is the ratio of the two in the same run: see
// BenchmarkEngineRatio.
func BenchmarkEngine(b *testing.B) {
	lt, pkts := plantPackets(b, 20000)
	for _, n := range []int{0, 500} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			sink := &countSink{}
			e, err := NewEngine(benchPolicy(b, n), sink, EngineOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				replayPlant(b, lt, pkts, e)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
			if sink.n > 0 {
				b.Errorf("%d alerts on normal traffic", sink.n)
			}
		})
	}
}

// BenchmarkEngineRatio alternates rounds with no rules and with 500 rules
// and reports the throughput with 500 rules as a fraction of that with
// none (ratio; the goal is at least 0.8). Alternating in one benchmark
// keeps the two measurements under the same machine load.
func BenchmarkEngineRatio(b *testing.B) {
	lt, pkts := plantPackets(b, 20000)
	sink := &countSink{}
	e0, err := NewEngine(benchPolicy(b, 0), sink, EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	e500, err := NewEngine(benchPolicy(b, 500), sink, EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var t0, t500 time.Duration
	for b.Loop() {
		start := time.Now()
		replayPlant(b, lt, pkts, e0)
		mid := time.Now()
		replayPlant(b, lt, pkts, e500)
		t0 += mid.Sub(start)
		t500 += time.Since(mid)
	}
	b.ReportMetric(float64(t0)/float64(t500), "ratio")
	b.ReportMetric(float64(t0.Nanoseconds())/float64(b.N*len(pkts)), "ns/packet-0")
	b.ReportMetric(float64(t500.Nanoseconds())/float64(b.N*len(pkts)), "ns/packet-500")
	if sink.n > 0 {
		b.Errorf("%d alerts on normal traffic", sink.n)
	}
}
