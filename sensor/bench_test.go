package sensor_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/sensor"
)

// plantCapture is the bench capture of internal/pcapgen, in memory.
func plantCapture(b *testing.B, packets int) []byte {
	b.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := pcapgen.Plant(w, packets, 1); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkReplay runs the whole replay pipeline (file reader, dpi, Modbus
// decoding and pairing, tallies) over an in-memory plant capture. Compare
// its packets/s with internal/benchtool's BenchmarkFloor in the same run.
func BenchmarkReplay(b *testing.B) {
	data := plantCapture(b, 20000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var packets uint64
	for b.Loop() {
		src, err := capture.NewFile(bytes.NewReader(data), "plant.pcap")
		if err != nil {
			b.Fatal(err)
		}
		sum, err := sensor.Replay(context.Background(), src, sensor.Options{})
		if err != nil {
			b.Fatal(err)
		}
		packets += sum.Packets
	}
	b.ReportMetric(float64(packets)/b.Elapsed().Seconds(), "packets/s")
}
