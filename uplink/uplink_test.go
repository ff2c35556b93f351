package uplink

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

func testAlert(i int) *event.Alert {
	u := uint8(1)
	fc := uint8(16)
	return &event.Alert{Rule: "pump3-setpoint", Severity: "critical", Category: "policy", Title: "Pump-3 setpoint",
		Attack: []string{"T0836"}, Proto: "modbus", Src: &event.Endpoint{IP: "10.10.1.99", Port: 51000}, Dst: &event.Endpoint{IP: "10.10.1.20", Port: 502},
		Unit: &u, FC: &fc, FCName: "write_multiple_registers", Addr: &event.Range{Lo: 5, Hi: 5}, Values: event.Values{float64(500 + i)},
		Expected: "100..200", Count: 1, First: time.Unix(1700000000, 0).UTC(), Last: time.Unix(1700000000, 0).UTC()}
}

func testConfig(url string) Config {
	return Config{Brokers: []string{url}, Site: "plant1", Sensor: "tap1", BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}
}

// TestPublishTail: alerts go through the embedded broker to Tail, in
// order, with consecutive seq numbers and the status retained.
func TestPublishTail(t *testing.T) {
	b, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out, rep testenv.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 200
	type result struct {
		reps []SensorReport
		err  error
	}
	res := make(chan result, 1)
	go func() {
		r, err := Tail(ctx, TailConfig{Brokers: []string{b.URL()}, Kinds: []string{"alert"}, Count: n}, &out, &rep)
		res <- result{r, err}
	}()
	time.Sleep(300 * time.Millisecond) // subscribed
	p, q, err := New(testConfig(b.URL()), t.TempDir(), "test", nil)
	if err != nil || q != nil {
		t.Fatal(err, q)
	}
	p.Start()
	for i := range n {
		p.Alert(testAlert(i), uint64(i+1), true)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d; report:\n%s", len(lines), n, rep.String())
	}
	for i, l := range lines {
		var a event.Alert
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatal(err)
		}
		if a.Seq != uint64(i+1) || a.ID != a.Seq || a.Values[0] != float64(500+i) || a.Sensor != "tap1" || a.Site != "plant1" || a.Kind != "alert" || a.V != 1 {
			t.Fatalf("line %d: %s", i, l)
		}
	}
	if len(r.reps) != 1 || !r.reps[0].Complete() || r.reps[0].Duplicates != 0 || r.reps[0].Max != n {
		t.Errorf("report %+v; %s", r.reps, rep.String())
	}
}
