package uplink

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
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

// TestReconnectEmbedded: alerts raised while the broker is down are
// spooled and delivered, in order, when it is back on the same port;
// stats are skipped, not spooled; a folded repeat keeps its alert's id.
func TestReconnectEmbedded(t *testing.T) {
	b, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(b.URL(), "tcp://")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(b.URL())
	p, _, err := New(cfg, t.TempDir(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	defer p.Close()
	p.Alert(testAlert(0), 7, true)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.Close()
	waitFor(t, func() bool { return !p.State().Connected }, "the publisher to notice the broker is gone")
	for i := 1; i <= 50; i++ {
		p.Alert(testAlert(i), uint64(100+i), true)
	}
	folded := testAlert(1)
	folded.Count = 5
	p.Alert(folded, 101, false) // a folded repeat of the alert of key 101
	p.Stats(&event.Stats{Packets: 1})
	waitFor(t, func() bool { return p.State().Spool.Depth == 51 }, "51 messages in the spool")
	if st := p.State(); st.StatsSkipped != 1 || st.LastError == nil {
		t.Fatalf("state while down: %+v", st)
	}

	b2, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	open := openLater(t, addr, strings.TrimPrefix(b2.URL(), "tcp://"))
	var out, rep testenv.Buffer
	res := make(chan []SensorReport, 1)
	go func() {
		r, _ := Tail(ctx, TailConfig{Brokers: []string{b2.URL()}, Kinds: []string{"alert"}, Count: 51}, &out, &rep)
		res <- r
	}()
	// Tail must subscribe before the publisher reconnects, or its clean
	// session misses what was published in between.
	waitFor(t, func() bool { return b2.Subscribed("tapwatch-tail-") }, "tail to subscribe")
	open()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reps := <-res
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 51 {
		t.Fatalf("%d alerts after the outage, want 51:\n%s\n%s", len(lines), out.String(), rep.String())
	}
	for i, l := range lines {
		var a event.Alert
		json.Unmarshal([]byte(l), &a)
		if a.Seq != uint64(i+2) {
			t.Fatalf("line %d has seq %d, want %d", i, a.Seq, i+2)
		}
		if i == 50 && (a.ID != 2 || a.Count != 5) {
			t.Errorf("folded repeat: id %d count %d, want the id of its first message, 2, and count 5", a.ID, a.Count)
		}
	}
	if len(reps) != 1 || reps[0].Missing != 0 || reps[0].Duplicates != 0 {
		t.Errorf("tail report %+v\n%s", reps, rep.String())
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := testConfig("tcp://127.0.0.1:1883")
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Brokers = nil }, "uplink.brokers: no broker"},
		{func(c *Config) { c.Brokers = []string{"tcp://10.0.0.5:1883"} }, "plaintext MQTT to another host"},
		{func(c *Config) { c.Brokers = []string{"http://10.0.0.5:1883"} }, `scheme "http"`},
		{func(c *Config) { c.Brokers = []string{"ssl://broker"} }, "scheme://host:port"},
		{func(c *Config) { c.Site = "a/b" }, "uplink.site"},
		{func(c *Config) { c.Sensor = "" }, "uplink.sensor: empty"},
		{func(c *Config) { c.TLS.Cert = "x.pem" }, "cert and key go together"},
		{func(c *Config) { c.PasswordFile = "pw" }, "password_file: needs a username"},
		{func(c *Config) { c.Spool.MaxBytes = 10; c.Spool.MaxMessages = 1 }, "spool.max_bytes"},
	} {
		c := testConfig("tcp://127.0.0.1:1883")
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
	c := testConfig("tcp://10.0.0.5:1883")
	c.Plaintext = true
	if err := c.Validate(); err != nil {
		t.Errorf("plaintext allowed: %v", err)
	}
	// Each spool limit has its own default.
	for _, lim := range []Limits{{MaxBytes: 1 << 20}, {MaxMessages: 500}} {
		c = testConfig("tcp://127.0.0.1:1883")
		c.Spool = lim
		if err := c.Validate(); err != nil {
			t.Errorf("only one spool limit set, %+v: %v", lim, err)
		}
		d := c.withDefaults().Spool
		if (lim.MaxBytes != 0 && d != Limits{MaxBytes: lim.MaxBytes, MaxMessages: DefaultLimits.MaxMessages}) ||
			(lim.MaxMessages != 0 && d != Limits{MaxBytes: DefaultLimits.MaxBytes, MaxMessages: lim.MaxMessages}) {
			t.Errorf("limits %+v filled as %+v", lim, d)
		}
	}
	c = testConfig("ssl://127.0.0.1:8883")
	c.TLS.CA = filepath.Join(t.TempDir(), "none.pem")
	if _, _, err := New(c, t.TempDir(), "test", nil); err == nil || !strings.Contains(err.Error(), "uplink.tls.ca") {
		t.Errorf("a missing CA file: %v", err)
	}
}

// TestBackoffCapped: with the defaults, however long the broker has been
// away, the next attempt comes within 5 s, and the waits are spread.
func TestBackoffCapped(t *testing.T) {
	c := Config{}.withDefaults()
	if c.BackoffMin != time.Second || c.BackoffMax != 5*time.Second {
		t.Fatalf("defaults %v, %v", c.BackoffMin, c.BackoffMax)
	}
	b := c.BackoffMin
	lo, hi := time.Hour, time.Duration(0)
	for i := range 1000 { // an outage of over an hour
		var w time.Duration
		w, b = retryWait(b, c.BackoffMax)
		if w > c.BackoffMax {
			t.Fatalf("attempt %d waits %v, above %v", i, w, c.BackoffMax)
		}
		if i > 10 {
			lo, hi = min(lo, w), max(hi, w)
		}
	}
	if lo < c.BackoffMax/2 || hi-lo < time.Second {
		t.Fatalf("waits from %v to %v: want 2.5-5 s, spread", lo, hi)
	}
	// A config that sets only backoff_min, above the default cap, stays
	// valid: the cap follows it.
	c = Config{BackoffMin: 10 * time.Second}.withDefaults()
	if c.BackoffMax != 10*time.Second {
		t.Fatalf("backoff_min 10s alone: backoff_max %v", c.BackoffMax)
	}
}

// TestStatsInterval: with a stats source, stats go out every
// StatsInterval while connected.
func TestStatsInterval(t *testing.T) {
	b, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, rep testenv.Buffer
	res := make(chan []SensorReport, 1)
	go func() {
		r, _ := Tail(ctx, TailConfig{Brokers: []string{b.URL()}, Kinds: []string{"stats"}, Count: 2}, &out, &rep)
		res <- r
	}()
	waitFor(t, func() bool { return b.Subscribed("tapwatch-tail-") }, "tail to subscribe")
	cfg := testConfig(b.URL())
	cfg.StatsInterval = time.Second
	p, _, err := New(cfg, t.TempDir(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(0)
	p.SetStatsSource(func() *event.Stats { n++; return &event.Stats{Packets: n * 10} })
	p.Start()
	defer p.Close()
	<-res
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"packets":10,`) || !strings.Contains(lines[1], `"packets":20,`) {
		t.Fatalf("stats:\n%s\n%s", out.String(), rep.String())
	}
}

// TestPublisherDiskFails: a state disk that fails (I/O errors, or turned
// read-only, as an SD card with errors does) makes the spool hold new
// alerts in memory and say so, in words that do not change with every
// file, so that the status is not sent again and again; they are
// delivered; writes resume when the disk works again.
func TestPublisherDiskFails(t *testing.T) {
	b, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var log testenv.Buffer
	fs := newMemFS(-1)
	p, _, err := newPublisher(testConfig(b.URL()).withDefaults(), "/state", "test", slog.New(slog.NewTextHandler(&log, nil)), fs)
	if err != nil {
		t.Fatal(err)
	}
	p.spool.retryEvery = 300 * time.Millisecond
	tl := startTail(t, TailConfig{Brokers: []string{b.URL()}, Kinds: []string{"alert"}})
	waitFor(t, func() bool { return b.Subscribed("tapwatch-tail-") }, "tail to subscribe")
	p.Start()
	defer p.Close()
	alerts := func(from, n int) {
		for i := range n {
			p.Alert(testAlert(from+i), uint64(from+i), true)
		}
		waitSpooled(t, p)
	}
	alerts(1, 10)
	fs.mu.Lock()
	fs.fail = func(op, name string) error {
		if op == "write" || op == "sync" || op == "allocate" {
			return syscall.EROFS
		}
		return nil
	}
	fs.mu.Unlock()
	alerts(11, 2000) // across many segments' worth
	_, _, e1 := p.Health()
	alerts(2011, 200)
	_, _, e2 := p.Health()
	if e1 == nil || e2 == nil || e1.Error() != e2.Error() || !strings.Contains(e1.Error(), "read-only file system") {
		t.Fatalf("the spool error on a read-only disk: %v, then %v; want the same, naming the failure", e1, e2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { d, _ := tl.seen("tap1"); return d == 2210 }, "tail to receive every alert")

	fs.mu.Lock()
	fs.fail = nil
	fs.mu.Unlock()
	time.Sleep(400 * time.Millisecond)
	alerts(2211, 10)
	if _, _, err := p.Health(); err != nil {
		t.Fatalf("the disk works again, the spool still says %v", err)
	}
	if !strings.Contains(log.String(), "the disk is written again") || strings.Count(log.String(), "cannot write to disk") != 1 {
		t.Fatalf("log:\n%s", log.String())
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { d, _ := tl.seen("tap1"); return d == 2220 }, "tail to receive every alert")
	if r := tl.stop(t, "tap1"); r.Missing != 0 {
		t.Fatalf("tail report %+v", r)
	}
}
