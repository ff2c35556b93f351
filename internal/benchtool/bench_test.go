package benchtool

import (
	"bytes"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// BenchmarkFloor measures the floor over an in-memory plant capture of
// about 20,000 packets.
func BenchmarkFloor(b *testing.B) {
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := pcapgen.Plant(w, 20000, 1); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	capture := buf.Bytes()
	b.SetBytes(int64(len(capture)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	var packets int64
	b.ResetTimer()
	for b.Loop() {
		r, err := Floor(bytes.NewReader(capture))
		if err != nil {
			b.Fatal(err)
		}
		packets += r.Packets
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(packets)/elapsed.Seconds(), "packets/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(packets), "allocs/packet")
}
