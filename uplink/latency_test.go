package uplink_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
	"github.com/tapwatch/tapwatch/uplink"
)

// BenchmarkAlertLatency measures the time from the packet that triggers
// an alert to the broker's PUBACK for it, through the whole path: the
// pipeline decodes the packet, the rule engine raises the alert, the
// publisher spools it (a segment append, fsync) and publishes it at QoS 1 to a local
// mosquitto (testenv's: persistence with a snapshot after every change,
// as docs/events.md advises), without and with set_tcp_nodelay. It
// reports p50 and p99 in milliseconds:
//
//   - low: 2,000 packets a second, an alert every 20 packets (100 a second);
//
//   - high: as fast as the pipeline goes, an alert every 1,000 packets.
//
//     go test ./uplink -run '^$' -bench AlertLatency -benchtime 1x
func BenchmarkAlertLatency(b *testing.B) {
	for _, broker := range []struct{ name, conf string }{
		{"mosquitto-default", ""},
		// Mosquitto leaves Nagle's algorithm on by default, which holds
		// a PUBACK back for a while when little else is sent.
		{"mosquitto-nodelay", "set_tcp_nodelay true"},
	} {
		b.Run(broker.name, func(b *testing.B) {
			var m *testenv.Mosquitto
			if broker.conf == "" {
				m = testenv.StartMosquitto(b)
			} else {
				m = testenv.StartMosquitto(b, broker.conf)
			}
			for _, tc := range []struct {
				name  string
				pps   float64 // 0: unpaced
				every int     // packets per alert
				n     int     // packets
			}{
				{"low", 2000, 20, 6000},
				{"high", 0, 1000, 300000},
			} {
				b.Run(tc.name, func(b *testing.B) {
					frames, infos := latencyCapture(b, tc.n, tc.every)
					var all []time.Duration
					for range b.N {
						all = append(all, latencyRun(b, m.URL("tcp"), frames, infos, tc.pps)...)
					}
					slices.Sort(all)
					q := func(p float64) float64 {
						return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
					}
					b.ReportMetric(q(0.50), "p50-ms")
					b.ReportMetric(q(0.99), "p99-ms")
					b.ReportMetric(float64(len(all))/float64(b.N), "alerts/run")
				})
			}
		})
	}
}

// latencyCapture builds n packets of an HMI polling a PLC, where every
// every-th exchange a rogue host writes a register (a new address each
// time, so that each write is a new alert), and returns them in memory.
func latencyCapture(b *testing.B, n, every int) ([][]byte, []capture.Info) {
	b.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ep := func(last byte, port uint16) pcapgen.Endpoint {
		return pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, last}, IP: netip.AddrFrom4([4]byte{10, 10, 1, last}), Port: port}
	}
	hmi, err := pcapgen.NewTCPConn(w, ep(10, 50000), ep(20, 502), 1000, 5000)
	if err != nil {
		b.Fatal(err)
	}
	rogue, err := pcapgen.NewTCPConn(w, ep(99, 51000), ep(20, 502), 2000, 6000)
	if err != nil {
		b.Fatal(err)
	}
	must := func(_ []int, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(hmi.Handshake())
	must(rogue.Handshake())
	for i := 0; w.Packets() < n; i++ {
		tid := uint16(i)
		if i%(every/2) == every/2-1 {
			must(rogue.Client(pcapgen.MBAP(tid, 1, pcapgen.WriteSingleRegister(uint16(i), 150))))
			must(rogue.Server(pcapgen.MBAP(tid, 1, pcapgen.WriteSingleRegister(uint16(i), 150))))
		} else {
			must(hmi.Client(pcapgen.MBAP(tid, 1, pcapgen.ReadHoldingRegisters(0, 10))))
			must(hmi.Server(pcapgen.MBAP(tid, 1, pcapgen.ReadHoldingRegistersResponse(make([]uint16, 10)...))))
		}
		w.Advance(time.Millisecond)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "latency.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	src, err := capture.OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var frames [][]byte
	var infos []capture.Info
	for {
		var ci capture.Info
		data, err := src.ReadPacket(&ci)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		frames = append(frames, append([]byte(nil), data...))
		infos = append(infos, ci)
	}
	return frames, infos
}

const latencyPolicy = `version: 1
assets:
  hmi: {ip: 10.10.1.10}
  plc: {ip: 10.10.1.20}
rules:
  - id: plc-writes-only-from-hmi
    when: {proto: modbus, dst: plc, op: write}
    unless: {src: hmi}
    severity: high
`

// latencySink hands alerts to the publisher and notes when.
type latencySink struct {
	pub    *uplink.Publisher
	mu     sync.Mutex
	handed []time.Time // by order, which is seq order (the spool is FIFO)
	start  time.Time   // of the packet being processed
}

func (s *latencySink) Alert(a *rules.Alert) {
	s.mu.Lock()
	s.handed = append(s.handed, s.start)
	s.mu.Unlock()
	s.pub.Alert(a.Event(), a.ID, a.Count <= 1)
}

func latencyRun(b *testing.B, url string, frames [][]byte, infos []capture.Info, pps float64) []time.Duration {
	b.Helper()
	pol, err := policy.Parse([]byte(latencyPolicy), "policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p, _, err := uplink.New(uplink.Config{Brokers: []string{url}, Site: "bench", Sensor: "latency"}, b.TempDir(), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[uint64]time.Time{}
	uplink.SetOnAck(p, func(seq uint64) {
		mu.Lock()
		acked[seq] = time.Now()
		mu.Unlock()
	})
	p.Start()
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !p.State().Connected {
		if ctx.Err() != nil {
			b.Fatal("no connection to mosquitto")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sink := &latencySink{pub: p}
	eng, err := rules.NewEngine(pol, sink, rules.EngineOptions{MaxAlertsPerMinute: -1})
	if err != nil {
		b.Fatal(err)
	}
	pipe, err := sensor.New(sensor.Options{Rules: eng})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t0 := time.Now()
	for i := range frames {
		if pps > 0 {
			if d := time.Until(t0.Add(time.Duration(float64(i) / pps * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		sink.start = time.Now()
		pipe.Packet(frames[i], &infos[i])
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	for k, at := range sink.handed {
		ack, ok := acked[uint64(k+1)]
		if !ok {
			b.Fatalf("no PUBACK for alert %d", k)
		}
		lat = append(lat, ack.Sub(at))
	}
	if len(lat) == 0 {
		b.Fatal("no alerts")
	}
	return lat
}
