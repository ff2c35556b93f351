package rules

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/benchtool"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
)

// TestMemoLikeLookups: the flow memo is a shortcut only. The site plant's
// traffic, with every built-in detector on (request-flood and recon-sweep
// tuned to fire often) and the bench's policy of rules, raises the same
// alerts with the same counts with the memo as without it: with the
// memo's full size, and with four slots that flows keep taking from one
// another while the rate and sweep tables are small enough to evict the
// entries memos hold handles to.
func TestMemoLikeLookups(t *testing.T) {
	var capBuf bytes.Buffer
	w, err := pcapgen.NewWriter(&capBuf, pcapgen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pcapgen.SitePlant(w, 40000, 3); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	y, err := benchtool.Policy("site", 200)
	if err != nil {
		t.Fatal(err)
	}
	y = bytes.Replace(y, []byte("\nrules:\n"), []byte(`
detectors:
  request-flood: {rate: {max: 6, per: 1s}}
  recon-sweep: {rate: {max: 3, per: 10s}}
rules:
`), 1)
	pol, err := policy.Parse(y, "bench.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(memo, small bool) *recorder {
		rec := &recorder{}
		e, err := NewEngine(pol, rec, EngineOptions{seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !memo:
			e.memo = nil
		case small:
			e.memo = make([]flowMemo, 4)
		}
		if small {
			e.rate.Init(8, e.seed)
			e.bi.sweep.Init(8, e.seed)
		}
		src, err := capture.NewFile(bytes.NewReader(capBuf.Bytes()), "site.pcap")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sensor.Replay(context.Background(), src, sensor.Options{Rules: e}); err != nil {
			t.Fatal(err)
		}
		e.Flush()
		if small && e.rate.Evictions() == 0 {
			t.Error("no rate counter was evicted: the handles' check is not exercised")
		}
		return rec
	}
	summary := func(r *recorder) []string {
		var s []string
		for _, a := range r.alerts {
			s = append(s, fmt.Sprintf("%s %s ×%d %s", a.Rule, a.Title, a.Count, a.First.Format(time.RFC3339Nano)))
		}
		return s
	}
	for _, small := range []bool{false, true} {
		want := summary(run(false, small))
		got := summary(run(true, small))
		fired := map[string]int{}
		for _, a := range want {
			fired[a[:bytes.IndexByte([]byte(a), ' ')]]++
		}
		if fired["request-flood"] == 0 || fired["recon-sweep"] == 0 || fired["public-address"]+fired["new-asset"] == 0 {
			t.Errorf("small tables %v: alerts %v: the memo's checks are not all exercised", small, fired)
		}
		if len(got) != len(want) {
			t.Errorf("small tables %v: %d alerts with the memo, %d without", small, len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("small tables %v: alert %d:\n with the memo    %s\n without the memo %s", small, i, got[i], want[i])
				break
			}
		}
	}
}
