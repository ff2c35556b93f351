package policy

import (
	"os"
	"runtime"
	"testing"

	"github.com/tapwatch/tapwatch/internal/benchtool"
)

// BenchmarkParseFile loads the policy or baseline named by
// TAPWATCH_POLICY_FILE (by default the bench's 500-rule policy) and
// reports, beside the time of a load, the heap the loaded policy keeps
// live (live-KiB). It calls only Parse, so that the file can be copied
// into an older tree to measure that one too (docs/performance.md).
func BenchmarkParseFile(b *testing.B) {
	name := os.Getenv("TAPWATCH_POLICY_FILE")
	var data []byte
	var err error
	if name == "" {
		name = "site500.yaml"
		data, err = benchtool.Policy("site", 500)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		b.Fatal(err)
	}
	// A first load makes what the package makes once (tables, compiled
	// patterns), which is not the policy's.
	if _, err := Parse(data, name); err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, _ := Parse(data, name)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(p)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, name); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024, "live-KiB")
}
