package rules

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/benchtool"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// TestMemoLikeLookups: the flow memo is a shortcut only. The site plant's
// traffic, with every built-in detector on (request-flood and recon-sweep
// tuned to fire often) and the bench's policy of rules, raises the same
// alerts with the same counts with the memo as without it: with the
// memo's full size, and with four slots that flows keep taking from one
// another while the rate and sweep tables are small enough to evict the
// entries memos hold handles to.
func TestMemoLikeLookups(t *testing.T) {
	site := netCapture(t, func(w *pcapgen.Writer) error { return pcapgen.SitePlant(w, 40000, 3) })
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
		replayInto(t, site, e)
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

// TestMemoFlowOnce: new-asset judges a flow once, both directions
// together, as its own cache did before the memo. An unknown client
// whose address is evicted from the table of reported addresses between
// the flow's first request and its first response is not reported again
// by the response; a new flow from it is. public-address likewise folds
// both directions of a flow into one alert.
func TestMemoFlowOnce(t *testing.T) {
	e, rec := newEngineTuned(t, func(*policy.DetectorSettings) {})
	plc := netip.MustParseAddrPort("10.10.1.20:502")
	at := time.Duration(0)
	feed := func(id uint64, client netip.Addr, resp bool) {
		f := &dpi.Flow{ID: id, Transport: dpi.TCP, App: proto.Modbus, Client: netip.AddrPortFrom(client, 40000), Server: plc}
		m := &modbus.Message{Dir: modbus.Request, Unit: 1, FC: 3, HasAddr: true, Addr: 0, Count: 1, PDU: []byte{3}}
		from := dpi.FromClient
		if resp {
			m.Dir, from, m.Values = modbus.Response, dpi.FromServer, []uint16{7}
		}
		at += time.Millisecond
		m.Time = t0.Add(at)
		e.Message(f, from, m)
	}
	stranger := netip.MustParseAddr("10.10.1.99")
	reported := func() int {
		n := 0
		for _, a := range rec.alerts {
			if a.Rule == "new-asset" && strings.Contains(a.Title, "10.10.1.99:") {
				n += int(a.Count)
			}
		}
		return n
	}
	feed(100, stranger, false)
	for i := 1; e.bi.reported.has(stranger); i++ {
		feed(uint64(100+i), netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)}), false)
	}
	feed(100, stranger, true)
	e.Flush()
	if n := reported(); n != 1 {
		t.Fatalf("10.10.1.99 reported %d times over one flow, want once", n)
	}
	feed(5000, stranger, false) // a new flow: checked again, and its address forgotten
	e.Flush()
	if n := reported(); n != 2 {
		t.Errorf("10.10.1.99 reported %d times after a new flow, want twice", n)
	}
	// The two directions of one flow share its slot.
	f := &dpi.Flow{ID: 7, Client: netip.MustParseAddrPort("10.10.1.10:40000"), Server: plc}
	req := &Op{Flow: f, Proto: proto.Modbus, Src: f.Client, Dst: f.Server, Request: true}
	resp := &Op{Flow: f, Proto: proto.Modbus, Src: f.Server, Dst: f.Client}
	a, b := e.memoFor(req), e.memoFor(resp)
	if a.flow != b.flow || a == b || e.memoFor(req) != a {
		t.Errorf("directions: %p %p, slots %p %p", a, b, a.flow, b.flow)
	}
}
