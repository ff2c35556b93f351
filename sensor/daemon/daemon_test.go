package daemon

// Unit tests of the daemon behind tapwatch run, without root or a
// network: the capture is a fake capture.LiveSource fed with Modbus/TCP
// frames built by internal/pcapgen, the link state comes from a fake, and
// the uplink is a fake that records what it is handed. The end-to-end
// tests with real interfaces, stacks and a broker are in cmd/tapwatch.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tapwatch/tapwatch/dpi/link"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/hw"
	"github.com/tapwatch/tapwatch/internal/lab"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

var (
	hmiIP   = netip.MustParseAddr("10.10.1.10")
	plcIP   = netip.MustParseAddr("10.10.1.20")
	rogueIP = netip.MustParseAddr("10.10.1.66")
)

// ---- traffic ----

// traffic builds Modbus/TCP frames (Ethernet, IPv4, TCP) between masters
// and the PLC at 10.10.1.20:502, one connection per master, each opened
// with a handshake. It is used from one goroutine.
type traffic struct {
	t     testing.TB
	buf   bytes.Buffer
	head  []byte // the pcap file header, to read each batch of frames back
	w     *pcapgen.Writer
	conns map[netip.Addr]*mbConn
	port  uint16
}

type mbConn struct {
	c   *pcapgen.TCPConn
	tid uint16
}

func newTraffic(t testing.TB) *traffic {
	t.Helper()
	g := &traffic{t: t, conns: map[netip.Addr]*mbConn{}, port: 50000}
	w, err := pcapgen.NewWriter(&g.buf, pcapgen.Options{Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	g.w, g.head = w, bytes.Clone(g.buf.Bytes())
	g.buf.Reset()
	return g
}

func mac(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{2, 0, b[0], b[1], b[2], b[3]}
}

func (g *traffic) conn(master netip.Addr) *mbConn {
	g.t.Helper()
	if c := g.conns[master]; c != nil {
		return c
	}
	g.port++
	client := pcapgen.Endpoint{MAC: mac(master), IP: master, Port: g.port}
	server := pcapgen.Endpoint{MAC: mac(plcIP), IP: plcIP, Port: 502}
	c, err := pcapgen.NewTCPConn(g.w, client, server, uint32(g.port)<<12, 7<<20)
	if err != nil {
		g.t.Fatal(err)
	}
	if _, err := c.Handshake(); err != nil {
		g.t.Fatal(err)
	}
	mc := &mbConn{c: c}
	g.conns[master] = mc
	return mc
}

func (g *traffic) exchange(master netip.Addr, req, resp []byte) *traffic {
	g.t.Helper()
	c := g.conn(master)
	c.tid++
	if _, err := c.c.Client(pcapgen.MBAP(c.tid, 1, req)); err != nil {
		g.t.Fatal(err)
	}
	if _, err := c.c.Server(pcapgen.MBAP(c.tid, 1, resp)); err != nil {
		g.t.Fatal(err)
	}
	return g
}

// read: master reads qty holding registers from addr, and the PLC answers.
func (g *traffic) read(master netip.Addr, addr, qty uint16) *traffic {
	vals := make([]uint16, qty)
	for i := range vals {
		vals[i] = 100 + uint16(i)
	}
	return g.exchange(master, pcapgen.ReadHoldingRegisters(addr, qty), pcapgen.ReadHoldingRegistersResponse(vals...))
}

// write: master writes value to holding register addr (FC 6), and the
// PLC echoes it.
func (g *traffic) write(master netip.Addr, addr, value uint16) *traffic {
	pdu := pcapgen.WriteSingleRegister(addr, value)
	return g.exchange(master, pdu, pdu)
}

// frames returns the frames built since the last call.
func (g *traffic) frames() [][]byte {
	g.t.Helper()
	if err := g.w.Flush(); err != nil {
		g.t.Fatal(err)
	}
	f, err := capture.NewFile(io.MultiReader(bytes.NewReader(g.head), &g.buf), "pcapgen")
	if err != nil {
		g.t.Fatal(err)
	}
	var out [][]byte
	var ci capture.Info
	for {
		data, err := f.ReadPacket(&ci)
		if err == io.EOF {
			break
		}
		if err != nil {
			g.t.Fatal(err)
		}
		out = append(out, bytes.Clone(data))
	}
	g.buf.Reset()
	return out
}

// ---- fakes ----

// fakeSource is a live capture fed by a channel: each frame is stamped
// with the time it is read; with nothing queued ReadPacket returns
// capture.ErrIdle after idle, and io.EOF once stopped. It can be made to
// stall: ReadPacket then blocks until resumed or stopped.
type fakeSource struct {
	frames   chan []byte
	stopped  chan struct{}
	stopOnce sync.Once
	parked   chan struct{} // signalled when ReadPacket blocks on a stall

	// Set before Run; then the reader's.
	idle       time.Duration
	stallAfter int // > 0: stall once this many packets were read
	delivered  int
	frame      uint64

	idles atomic.Int64 // capture.ErrIdle returned

	mu   sync.Mutex
	gate chan struct{} // non-nil: stalled until closed
}

var _ capture.LiveSource = (*fakeSource)(nil)

func newFakeSource() *fakeSource {
	return &fakeSource{frames: make(chan []byte, 1<<14), stopped: make(chan struct{}), parked: make(chan struct{}, 1),
		idle: 20 * time.Millisecond}
}

func (s *fakeSource) feed(frames ...[]byte) {
	for _, f := range frames {
		s.frames <- f
	}
}

// drained reports whether the reader has taken every frame queued (and
// so will have analysed them before its next read returns io.EOF).
func (s *fakeSource) drained() bool { return len(s.frames) == 0 }

// waitServiced waits until the reader has come back for a read after an
// idle one: the daemon runs what its control goroutine queued for the
// packet goroutine on every idle read, so all that was queued before the
// call has run.
func (s *fakeSource) waitServiced(t *testing.T) {
	t.Helper()
	n := s.idles.Load()
	waitFor(t, "two idle reads", 5*time.Second, func() bool { return s.idles.Load() >= n+2 })
}

func (s *fakeSource) stall() {
	s.mu.Lock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
	s.mu.Unlock()
}

func (s *fakeSource) resume() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

func (s *fakeSource) ReadPacket(ci *capture.Info) ([]byte, error) {
	if s.stallAfter > 0 && s.delivered >= s.stallAfter {
		s.stallAfter = 0
		s.stall()
	}
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case s.parked <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-s.stopped:
			return nil, io.EOF
		}
	}
	select {
	case <-s.stopped:
		return nil, io.EOF
	default:
	}
	idle := time.NewTimer(s.idle)
	defer idle.Stop()
	select {
	case data := <-s.frames:
		s.delivered++
		s.frame++
		*ci = capture.Info{Timestamp: time.Now(), CaptureLength: len(data), Length: len(data),
			LinkType: link.Ethernet, Frame: s.frame}
		return data, nil
	case <-s.stopped:
		return nil, io.EOF
	case <-idle.C:
		s.idles.Add(1)
		return nil, capture.ErrIdle
	}
}

func (s *fakeSource) Stop() { s.stopOnce.Do(func() { close(s.stopped) }) }

// fakeLinks is the kernel's view of the capture interfaces: all up, or
// all down (no carrier).
type fakeLinks struct{ down atomic.Bool }

func (f *fakeLinks) read(names ...string) ([]capture.LinkInfo, error) {
	out := make([]capture.LinkInfo, len(names))
	for i, n := range names {
		out[i] = capture.LinkInfo{Name: n, Exists: true, AdminUp: true, Carrier: true, OperState: "up"}
		if f.down.Load() {
			out[i].Carrier, out[i].OperState = false, "down"
		}
	}
	return out, nil
}

type sentAlert struct {
	a     *event.Alert
	first bool
}

// fakeUplink records what the daemon publishes; safe for concurrent use.
type fakeUplink struct {
	mu       sync.Mutex
	started  int
	closed   int
	flushed  int
	alerts   []sentAlert
	statuses []event.Status
	assets   int
	stats    []*event.Stats
	source   func() *event.Stats

	unreachable atomic.Bool // Health says not connected
}

var (
	_ Uplink             = (*fakeUplink)(nil)
	_ StatusSink         = (*fakeUplink)(nil)
	_ StatsSink          = (*fakeUplink)(nil)
	_ pipeline.AssetSink = (*fakeUplink)(nil)
)

// publishTo makes u the daemon's publisher, as cmd/tapwatch wires an
// uplink.Publisher.
func (u *fakeUplink) publishTo(o *Options) {
	o.Sinks.Alerts = append(o.Sinks.Alerts, pipeline.PublishAlerts(u))
	o.Sinks.Assets = append(o.Sinks.Assets, u)
	o.Status, o.Stats, o.Uplink = u, u, u
}

func (u *fakeUplink) Start() { u.mu.Lock(); u.started++; u.mu.Unlock() }
func (u *fakeUplink) Alert(a *event.Alert, key uint64, first bool) {
	u.mu.Lock()
	u.alerts = append(u.alerts, sentAlert{a, first})
	u.mu.Unlock()
}
func (u *fakeUplink) Asset(*event.Asset) { u.mu.Lock(); u.assets++; u.mu.Unlock() }
func (u *fakeUplink) SetStatus(s event.Status) {
	u.mu.Lock()
	s.Links = append([]event.Link(nil), s.Links...)
	u.statuses = append(u.statuses, s)
	u.mu.Unlock()
}
func (u *fakeUplink) Stats(s *event.Stats) { u.mu.Lock(); u.stats = append(u.stats, s); u.mu.Unlock() }
func (u *fakeUplink) SetStatsSource(fn func() *event.Stats) {
	u.mu.Lock()
	u.source = fn
	u.mu.Unlock()
}
func (u *fakeUplink) Health() (bool, float64, error) { return !u.unreachable.Load(), 0, nil }
func (u *fakeUplink) Flush(context.Context) error {
	u.mu.Lock()
	u.flushed++
	u.mu.Unlock()
	return nil
}
func (u *fakeUplink) Close() error { u.mu.Lock(); u.closed++; u.mu.Unlock(); return nil }

// alertsOf returns the alerts of rule handed over so far.
func (u *fakeUplink) alertsOf(rule string) []sentAlert {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []sentAlert
	for _, a := range u.alerts {
		if a.a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

// findAlert returns the first alert of rule from src whose only value is
// value.
func (u *fakeUplink) findAlert(rule string, src netip.Addr, value float64) *event.Alert {
	for _, a := range u.alertsOf(rule) {
		if a.a.Src != nil && a.a.Src.IP == src.String() && len(a.a.Values) == 1 && a.a.Values[0] == value {
			return a.a
		}
	}
	return nil
}

func (u *fakeUplink) lastStatus() (event.Status, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.statuses) == 0 {
		return event.Status{}, false
	}
	return u.statuses[len(u.statuses)-1], true
}

func (u *fakeUplink) describe() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var b strings.Builder
	for _, a := range u.alerts {
		fmt.Fprintf(&b, "alert %s %v->%v values %v first %v\n", a.a.Rule, a.a.Src, a.a.Dst, a.a.Values, a.first)
	}
	for _, s := range u.statuses {
		fmt.Fprintf(&b, "status %s (%s) links %v\n", s.State, s.Reason, s.Links)
	}
	return b.String()
}

// logBuffer is the daemon's log, written by its goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// line returns the first line that holds every one of parts, or "".
func (l *logBuffer) line(parts ...string) string {
next:
	for _, line := range strings.Split(l.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return line
	}
	return ""
}

// ---- the daemon under test ----

type running struct {
	t       *testing.T
	d       *Daemon
	src     *fakeSource
	up      *fakeUplink
	links   *fakeLinks
	log     *logBuffer
	reload  chan struct{}
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// testConfig parses the config of the tests (one interface, tap0) with
// extra appended, its state in dir.
func testConfig(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("sensor: unit\nsite: lab\ninterfaces: [tap0]\n"+extra), "tapwatch.yaml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.StateDir = dir
	return cfg
}

// startDaemon builds a daemon on cfg with src (nil: a new fake) and links
// (nil: always up) and runs it until the test stops it or ends.
func startDaemon(t *testing.T, cfg *config.Config, src *fakeSource, links *fakeLinks) *running {
	t.Helper()
	if src == nil {
		src = newFakeSource()
	}
	if links == nil {
		links = &fakeLinks{}
	}
	r := &running{t: t, src: src, up: &fakeUplink{}, links: links, log: &logBuffer{},
		reload: make(chan struct{}, 1), done: make(chan error, 1)}
	opens := 0
	opts := Options{
		Version: "test",
		Log:     slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Open: func(c *config.Config) ([]capture.LiveSource, error) {
			if opens++; opens > 1 {
				return nil, errors.New("opened twice")
			}
			return []capture.LiveSource{src}, nil
		},
		Links: links.read,
	}
	r.up.publishTo(&opts)
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v\nlog:\n%s", err, r.log)
	}
	r.d = d
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- d.Run(ctx, r.reload) }()
	t.Cleanup(func() {
		if err := r.halt(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s\nuplink:\n%s", r.log, r.up.describe())
		}
	})
	return r
}

// stop stops the daemon gracefully (ctx cancelled) and checks that Run
// returned nil and flushed the uplink, and neither started nor closed it:
// its maker does.
func (r *running) stop() {
	r.t.Helper()
	if err := r.halt(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *running) halt() error {
	if r.stopped {
		return nil
	}
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("Run returned %v after a graceful stop", err)
		}
	case <-time.After(20 * time.Second):
		return errors.New("Run did not return within 20s of the stop")
	}
	r.up.mu.Lock()
	defer r.up.mu.Unlock()
	if r.up.started != 0 || r.up.closed != 0 || r.up.flushed != 1 {
		return fmt.Errorf("uplink started %d, flushed %d, closed %d times; want flushed once, the rest never", r.up.started, r.up.flushed, r.up.closed)
	}
	if r.log.line("msg=stopped") == "" {
		return errors.New("no stopped line in the log")
	}
	return nil
}

// waitLog waits for a log line holding every one of parts.
func (r *running) waitLog(within time.Duration, parts ...string) string {
	r.t.Helper()
	var line string
	waitFor(r.t, fmt.Sprintf("a log line with %q", parts), within, func() bool {
		line = r.log.line(parts...)
		return line != ""
	})
	return line
}

// waitState waits until Health().State is state.
func (r *running) waitState(state string, within time.Duration) Health {
	r.t.Helper()
	var h Health
	waitFor(r.t, "state "+state, within, func() bool {
		h = r.d.Health()
		return h.State == state
	})
	return h
}

// waitDrained waits until the daemon has taken every frame fed to it.
func (r *running) waitDrained() {
	r.t.Helper()
	waitFor(r.t, "the capture drained", 5*time.Second, r.src.drained)
}

func (r *running) waitAlert(rule string, src netip.Addr, value float64) *event.Alert {
	r.t.Helper()
	var a *event.Alert
	waitFor(r.t, fmt.Sprintf("alert %s from %s with value %v", rule, src, value), 5*time.Second, func() bool {
		a = r.up.findAlert(rule, src, value)
		return a != nil
	})
	return a
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- state files ----

// stateFile is learning.json as documented (read without the daemon's
// own type).
type stateFile struct {
	Started  time.Time  `json:"started"`
	Duration string     `json:"duration"`
	Finished *time.Time `json:"finished"`
}

func readState(t *testing.T, dir string) (stateFile, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "learning.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s stateFile
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("learning.json: %v\n%s", err, b)
	}
	return s, b
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// conversation returns the Modbus conversation src → dst of p's baseline.
func conversation(p *policy.Policy, src, dst netip.Addr) *policy.Conversation {
	if p == nil || p.Baseline == nil {
		return nil
	}
	for i := range p.Baseline.Conversations {
		c := &p.Baseline.Conversations[i]
		if c.Proto == proto.Modbus && c.Src == src && c.Dst == dst {
			return c
		}
	}
	return nil
}

// holdingValues returns the value range learned for holding register addr.
func holdingValues(c *policy.Conversation, addr uint32) *policy.ValueRange {
	if c == nil {
		return nil
	}
	for i := range c.Values {
		if v := &c.Values[i]; v.Table == policy.TableHoldingRegisters && v.At == addr {
			return v
		}
	}
	return nil
}

func loadPolicy(dir, name string) (*policy.Policy, error) {
	return policy.Load(filepath.Join(dir, name))
}

// normalTraffic is the HMI reading holding registers 0-9 and writing
// register 5 with 120, 130 … 180.
func normalTraffic(g *traffic) [][]byte {
	for v := uint16(120); v <= 180; v += 10 {
		g.read(hmiIP, 0, 10).write(hmiIP, 5, v)
	}
	return g.frames()
}

// ---- tests ----

// TestLearningSurvivesRestart: the learning period's start and what was
// learned so far are saved (periodically and at stop), and a second
// daemon on the same state directory resumes the period, with the same
// start, from the checkpoint, and goes on learning.
func TestLearningSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := newFakeSource()
	src.feed(normalTraffic(newTraffic(t))...)
	r := startDaemon(t, testConfig(t, dir, "mode: learn\nlearn:\n  duration: 1h\n  checkpoint: 1s\n"), src, nil)
	r.waitState(event.StateLearning, 5*time.Second)
	r.waitLog(time.Second, `msg="learning started"`)

	// The periodic checkpoint, before any stop.
	waitFor(t, "a checkpoint with the HMI's writes of 120 to 180", 5*time.Second, func() bool {
		p, err := loadPolicy(dir, checkpointFile)
		v := holdingValues(conversation(p, hmiIP, plcIP), 5)
		return err == nil && v != nil && v.Min == 120 && v.Max == 180
	})
	st, _ := readState(t, dir)
	if st.Finished != nil || st.Duration != "1h0m0s" || time.Since(st.Started) > time.Minute || time.Until(st.Started) > time.Second {
		t.Fatalf("learning.json after the start: %+v", st)
	}
	r.stop()
	if exists(dir, learnedFile) {
		t.Errorf("%s written an hour before the end of the period", learnedFile)
	}
	cp, err := loadPolicy(dir, checkpointFile)
	if err != nil {
		t.Fatalf("checkpoint after the stop: %v", err)
	}
	c := conversation(cp, hmiIP, plcIP)
	if c == nil || !c.Read[policy.TableHoldingRegisters].Contains(0) || !c.Read[policy.TableHoldingRegisters].Contains(9) ||
		!c.Write[policy.TableHoldingRegisters].Contains(5) {
		t.Fatalf("checkpoint after the stop, conversation HMI → PLC: %+v", c)
	}
	if cp.Baseline.Margin != 0 {
		t.Errorf("checkpoint margin %v, want 0 (it is resumed from)", cp.Baseline.Margin)
	}

	// The second daemon: the checkpoint only at stop this time, so that
	// what it writes shows what the resumed learner knows.
	src2 := newFakeSource()
	src2.feed(newTraffic(t).read(hmiIP, 20, 10).write(hmiIP, 5, 190).frames()...)
	r2 := startDaemon(t, testConfig(t, dir, "mode: learn\nlearn:\n  duration: 1h\n  checkpoint: 1h\n"), src2, nil)
	line := r2.waitLog(5*time.Second, `msg="learning resumed"`)
	if !strings.Contains(line, "checkpoint=true") || !strings.Contains(line, "started="+st.Started.Format(time.RFC3339)) ||
		!strings.Contains(line, "until="+st.Started.Add(time.Hour).Format(time.RFC3339)) {
		t.Errorf("resume: %s; want checkpoint=true, started=%s, until an hour later", line, st.Started.Format(time.RFC3339))
	}
	if l := r2.log.line(`msg="learning started"`); l != "" {
		t.Errorf("the second daemon started a new period: %s", l)
	}
	r2.waitState(event.StateLearning, 5*time.Second)
	r2.waitDrained()
	r2.stop()

	st2, _ := readState(t, dir)
	if !st2.Started.Equal(st.Started) || st2.Finished != nil {
		t.Errorf("learning.json after the restart: %+v; want started %v, not finished", st2, st.Started)
	}
	cp2, err := loadPolicy(dir, checkpointFile)
	if err != nil {
		t.Fatal(err)
	}
	// The same period: the same start, the same end.
	period := fmt.Sprintf("Learning started %s and ends %s.", st.Started.Format(time.RFC3339), st.Started.Add(time.Hour).Format(time.RFC3339))
	if head := readFile(t, dir, checkpointFile); !bytes.Contains(head, []byte(period)) {
		t.Errorf("checkpoint after the restart does not say %q:\n%s", period, head)
	}
	c2 := conversation(cp2, hmiIP, plcIP)
	v := holdingValues(c2, 5)
	if v == nil || v.Min != 120 || v.Max != 190 {
		t.Errorf("register 5 after the restart: %+v; want 120 (first run) to 190 (second run)", v)
	}
	if c2 == nil || !c2.Read[policy.TableHoldingRegisters].Contains(0) || !c2.Read[policy.TableHoldingRegisters].Contains(29) ||
		c2.Read[policy.TableHoldingRegisters].Contains(15) {
		t.Errorf("reads after the restart: %+v; want 0-9 (first run) and 20-29 (second run)", c2)
	}
}

// TestLearningEndsAndIsEnforced: at the end of the period what was
// learned is written to learned.yaml and enforced at once, and after a
// restart it is enforced without learning again.
func TestLearningEndsAndIsEnforced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const conf = "mode: learn\nlearn:\n  duration: 2s\n  checkpoint: 1s\n"
	g := newTraffic(t)
	src := newFakeSource()
	src.feed(normalTraffic(g)...)
	r := startDaemon(t, testConfig(t, dir, conf), src, nil)
	r.waitState(event.StateLearning, 5*time.Second)

	waitFor(t, learnedFile, 6*time.Second, func() bool { return exists(dir, learnedFile) })
	waitFor(t, "learning.json finished", 5*time.Second, func() bool {
		st, _ := readState(t, dir)
		return st.Finished != nil
	})
	r.waitState(event.StateMonitoring, 5*time.Second)
	r.waitLog(time.Second, `msg="learning finished; monitoring what was learned"`)
	if exists(dir, checkpointFile) {
		t.Errorf("%s left behind after the period", checkpointFile)
	}
	learned, err := loadPolicy(dir, learnedFile)
	if err != nil {
		t.Fatal(err)
	}
	if v := holdingValues(conversation(learned, hmiIP, plcIP), 5); v == nil || v.Min != 120 || v.Max != 180 {
		t.Fatalf("learned register 5: %+v; want 120 to 180", v)
	}
	if learned.Baseline.Margin != policy.DefaultMargin {
		t.Errorf("learned margin %v, want the default %v", learned.Baseline.Margin, policy.DefaultMargin)
	}
	if s, ok := r.up.lastStatus(); !ok || s.State != event.StateMonitoring || s.Mode != config.ModeLearn {
		t.Errorf("last status %+v; want monitoring in mode learn", s)
	}

	// Enforced: an out-of-range value, and a new master; a value within
	// the range (widened by the margin) is fine.
	src.feed(g.write(hmiIP, 5, 150).write(hmiIP, 5, 900).write(rogueIP, 5, 150).frames()...)
	a := r.waitAlert("baseline-value-range", hmiIP, 900)
	if a.Dst == nil || a.Dst.IP != plcIP.String() || a.Severity != "high" {
		t.Errorf("value-range alert: %+v", a)
	}
	waitFor(t, "alert baseline-new-master from the rogue host", 5*time.Second, func() bool {
		for _, a := range r.up.alertsOf("baseline-new-master") {
			if a.a.Src != nil && a.a.Src.IP == rogueIP.String() {
				return true
			}
		}
		return false
	})
	r.waitDrained()
	if a := r.up.findAlert("baseline-value-range", hmiIP, 150); a != nil {
		t.Errorf("alert for a value within the learned range: %+v", a)
	}
	r.stop()
	learnedBytes, stateBytes := readFile(t, dir, learnedFile), readFile(t, dir, learnStateFile)

	// A restart: what was learned is enforced, nothing is learned again.
	src2 := newFakeSource()
	src2.feed(newTraffic(t).read(hmiIP, 0, 10).write(hmiIP, 5, 900).frames()...)
	r2 := startDaemon(t, testConfig(t, dir, conf), src2, nil)
	r2.waitLog(5*time.Second, `msg="learning finished earlier; enforcing what was learned"`)
	r2.waitState(event.StateMonitoring, 5*time.Second)
	r2.waitAlert("baseline-value-range", hmiIP, 900)
	r2.stop()
	for _, msg := range []string{`msg="learning started"`, `msg="learning resumed"`, `msg="learning finished;`} {
		if l := r2.log.line(msg); l != "" {
			t.Errorf("after the restart: %s", l)
		}
	}
	if !bytes.Equal(readFile(t, dir, learnedFile), learnedBytes) || !bytes.Equal(readFile(t, dir, learnStateFile), stateBytes) {
		t.Errorf("the restart rewrote %s or %s", learnedFile, learnStateFile)
	}
	if exists(dir, checkpointFile) {
		t.Errorf("the restart wrote a checkpoint")
	}
}

// TestDamagedStateQuarantined: a damaged state file does not stop the
// daemon: it is renamed NAME.corrupt-TIME, the error is logged, and
// learning goes on from what is left.
func TestDamagedStateQuarantined(t *testing.T) {
	t.Parallel()
	earlier := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	inProgress := fmt.Sprintf(`{"started": %q, "duration": "1h0m0s"}`, earlier.Format(time.RFC3339))
	finished := fmt.Sprintf(`{"started": %q, "duration": "1h0m0s", "finished": %q}`,
		earlier.Format(time.RFC3339), earlier.Add(5*time.Minute).Format(time.RFC3339))
	const garbage = "\x00\x01 not: [a baseline\n"
	for _, tc := range []struct {
		name    string
		files   map[string]string
		bad     string // the file quarantined
		logs    []string
		resumed bool // the period goes on (rather than a new one)
	}{
		{name: "learning.json", files: map[string]string{learnStateFile: garbage},
			bad: learnStateFile, logs: []string{`msg="learning started"`}},
		{name: "learning.json without start", files: map[string]string{learnStateFile: `{"duration": "1h0m0s"}`},
			bad: learnStateFile, logs: []string{"no start time", `msg="learning started"`}},
		{name: "learned.yaml", files: map[string]string{learnStateFile: finished, learnedFile: garbage},
			bad: learnedFile, logs: []string{`msg="the learned baseline is unusable: learning again"`, `msg="learning started"`}},
		{name: "learned.yaml without baseline", files: map[string]string{learnStateFile: finished, learnedFile: "rules: []\n"},
			bad: learnedFile, logs: []string{"has no baseline section", `msg="learning started"`}},
		{name: "learning.yaml", files: map[string]string{learnStateFile: inProgress, checkpointFile: garbage},
			bad: checkpointFile, logs: []string{`msg="learning resumed"`, "checkpoint=false"}, resumed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			r := startDaemon(t, testConfig(t, dir, "mode: learn\nlearn:\n  duration: 1h\n"), nil, nil)
			r.waitState(event.StateLearning, 5*time.Second)
			r.stop()

			moved, err := filepath.Glob(filepath.Join(dir, tc.bad+".corrupt-*"))
			if err != nil || len(moved) != 1 {
				t.Fatalf("quarantined copies of %s: %v %v", tc.bad, moved, err)
			}
			if b, _ := os.ReadFile(moved[0]); string(b) != tc.files[tc.bad] {
				t.Errorf("%s holds %q, want the damaged file", moved[0], b)
			}
			if l := r.log.line("level=ERROR", `msg="damaged state file quarantined"`, "file="+filepath.Join(dir, tc.bad)); l == "" ||
				!strings.Contains(l, "moved_to="+moved[0]) || !strings.Contains(l, "err=") {
				t.Errorf("no error logged for the quarantine of %s (%q)", tc.bad, l)
			}
			for _, want := range tc.logs {
				if r.log.line(want) == "" {
					t.Errorf("no log line with %s", want)
				}
			}
			st, _ := readState(t, dir)
			switch {
			case st.Finished != nil:
				t.Errorf("learning.json: %+v; want a period in progress", st)
			case tc.resumed && !st.Started.Equal(earlier):
				t.Errorf("learning.json started %v; want the period of %v resumed", st.Started, earlier)
			case !tc.resumed && time.Since(st.Started) > time.Minute:
				t.Errorf("learning.json started %v; want a new period", st.Started)
			}
			if tc.bad != checkpointFile && exists(dir, checkpointFile) {
				// Written at the stop: it must be a good one.
				if _, err := loadPolicy(dir, checkpointFile); err != nil {
					t.Errorf("checkpoint written at stop: %v", err)
				}
			}
		})
	}
}

// TestHealth: a link down degrades the state and shows in the status;
// back up with traffic, the state is monitoring; with no ICS traffic for
// link_idle the link is idle and the state degraded again.
func TestHealth(t *testing.T) {
	t.Parallel()
	links := &fakeLinks{}
	links.down.Store(true)
	src := newFakeSource()
	r := startDaemon(t, testConfig(t, t.TempDir(), "link_idle: 1s\n"), src, links)

	h := r.waitState(event.StateDegraded, 5*time.Second)
	if !strings.Contains(h.Reason, "link tap0 down") || len(h.Links) != 1 || h.Links[0].Iface != "tap0" || h.Links[0].State != LinkDown {
		t.Fatalf("link down: health %+v", h)
	}
	if !h.Fresh || h.Uplink != event.UplinkConnected {
		t.Errorf("link down: health %+v; want a fresh heartbeat and the uplink connected", h)
	}
	waitFor(t, "status with the link down", 2*time.Second, func() bool {
		s, ok := r.up.lastStatus()
		return ok && s.State == event.StateDegraded && len(s.Links) == 1 && s.Links[0].State == LinkDown &&
			strings.Contains(s.Reason, "link tap0 down") && s.Mode == config.ModeMonitor
	})
	r.waitLog(time.Second, "level=WARN", "msg=degraded", "link tap0 down")

	// Back up, with a read every 50ms.
	g := newTraffic(t)
	var batches [][][]byte
	for range 300 {
		batches = append(batches, g.read(hmiIP, 0, 4).frames())
	}
	stopFeed := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for _, b := range batches {
			select {
			case <-stopFeed:
				return
			case <-time.After(50 * time.Millisecond):
			}
			src.feed(b...)
		}
	}()
	stopFeeding := sync.OnceFunc(func() { close(stopFeed); <-fed })
	t.Cleanup(stopFeeding)
	links.down.Store(false)
	h = r.waitState(event.StateMonitoring, 5*time.Second)
	if h.Reason != "" || len(h.Links) != 1 || h.Links[0].State != LinkUp || !h.Fresh {
		t.Errorf("link up with traffic: health %+v", h)
	}
	waitFor(t, "status monitoring with the link up", 2*time.Second, func() bool {
		s, ok := r.up.lastStatus()
		return ok && s.State == event.StateMonitoring && len(s.Links) == 1 && s.Links[0].State == LinkUp && s.Reason == ""
	})
	r.up.mu.Lock()
	stats := r.up.source
	r.up.mu.Unlock()
	if stats == nil {
		t.Fatal("no stats source given to the uplink")
	}
	if s := stats(); s.Packets == 0 || s.Messages["modbus"] == 0 {
		t.Errorf("stats with traffic flowing: %+v", s)
	}

	// The traffic stops: the link is idle after a second.
	stopFeeding()
	h = r.waitState(event.StateDegraded, 5*time.Second)
	if len(h.Links) != 1 || h.Links[0].State != LinkIdle || !strings.Contains(h.Reason, "no ICS traffic on tap0") {
		t.Errorf("no traffic: health %+v", h)
	}
	waitFor(t, "status with the link idle", 2*time.Second, func() bool {
		s, ok := r.up.lastStatus()
		return ok && s.State == event.StateDegraded && len(s.Links) == 1 && s.Links[0].State == LinkIdle
	})
	r.stop()
}

// TestHealthUplinkNow: the health gives the uplink as the publisher has
// it now, from the start (before the first tick) on, so that the LEDs
// agree with the status the publisher sends as soon as it connects.
func TestHealthUplinkNow(t *testing.T) {
	t.Parallel()
	up := &fakeUplink{}
	d, err := New(testConfig(t, t.TempDir(), ""), Options{Uplink: up})
	if err != nil {
		t.Fatal(err)
	}
	if h := d.Health(); h.State != event.StateStarting || h.Uplink != event.UplinkConnected {
		t.Errorf("starting, the publisher connected: state %s, uplink %s; want starting, connected", h.State, h.Uplink)
	}
	up.unreachable.Store(true)
	if h := d.Health(); h.Uplink != event.UplinkDisconnected {
		t.Errorf("the publisher not connected: uplink %s, want disconnected", h.Uplink)
	}
}

// TestReloadKeepsOldPolicyOnError: a reload with a broken policy logs the
// problem and keeps the old rules; a reload with a good one applies it.
func TestReloadKeepsOldPolicyOnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(lab.WritesOnlyFromHMI), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newTraffic(t)
	src := newFakeSource()
	r := startDaemon(t, testConfig(t, filepath.Join(dir, "state"), "policy: "+policy+"\n"), src, nil)
	r.waitLog(5*time.Second, `msg="policy loaded"`, "rules=1", "policy="+policy)
	const oldRule, newRule = "plc-writes-only-from-hmi", "plc-writes-v2"

	// Each write to another register: repeats of an alert fold into it.
	src.feed(g.write(hmiIP, 5, 150).write(rogueIP, 5, 151).frames()...)
	a := r.waitAlert(oldRule, rogueIP, 151)
	if a.Severity != "high" || a.Dst == nil || a.Dst.IP != plcIP.String() {
		t.Errorf("alert: %+v", a)
	}

	// A broken policy: the error is logged with the file and line, and the
	// old rule stays.
	if err := os.WriteFile(policy, []byte("rules:\n  - id: x\n    when: {proto: modbus, op: wrte}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	line := r.waitLog(5*time.Second, `msg="reload failed; the old policy stays active"`)
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "policy.yaml:3:") {
		t.Errorf("reload error without the file and line: %s", line)
	}
	src.feed(g.write(rogueIP, 1, 152).frames()...)
	r.waitAlert(oldRule, rogueIP, 152)

	// A good one: applied.
	if err := os.WriteFile(policy, []byte(strings.ReplaceAll(lab.WritesOnlyFromHMI, oldRule, newRule)), 0o644); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	r.waitLog(5*time.Second, `msg="policy reloaded"`, "rules=1")
	src.feed(g.write(rogueIP, 2, 153).write(hmiIP, 2, 154).frames()...)
	r.waitAlert(newRule, rogueIP, 153)
	r.waitDrained()
	r.stop()
	if a := r.up.findAlert(oldRule, rogueIP, 153); a != nil {
		t.Errorf("the old rule still fired after the reload: %+v", a)
	}
	for _, rule := range []string{oldRule, newRule} {
		for _, a := range r.up.alertsOf(rule) {
			if a.a.Src != nil && a.a.Src.IP == hmiIP.String() {
				t.Errorf("alert %s for the HMI's own write: %+v", rule, a.a)
			}
		}
	}
}

// TestStallDetected: a capture that stops returning (the packet goroutine
// stuck) makes the heartbeat stale: the hardware watchdog is no longer
// pinged and the state is degraded, "pipeline stalled"; when the capture
// comes back, so do the state and the pings. The heartbeat
// goes stale after 5s, and the tick that sees it first waits 2s for the
// stuck goroutine to take a snapshot: this test takes about 8s.
func TestStallDetected(t *testing.T) {
	testenv.Long(t, "about 8s")
	t.Parallel()
	src := newFakeSource()
	src.stallAfter = 1
	src.feed(newTraffic(t).read(hmiIP, 0, 4).frames()...)
	r := startDaemon(t, testConfig(t, t.TempDir(), ""), src, nil)
	start := time.Now()
	// The hardware watchdog, pinged as tapwatch run pings it.
	dog := &hw.FakeWatchdog{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&hw.Watchdog{Dev: dog}).Run(ctx, 50*time.Millisecond, func() bool {
		h := r.d.Health()
		return h.State == event.StateStarting || h.Fresh
	})
	r.waitState(event.StateMonitoring, 5*time.Second)
	var h Health
	waitFor(t, "a stale heartbeat", 12*time.Second, func() bool {
		h = r.d.Health()
		return !h.Fresh
	})
	// The watchdog is not pinged any more.
	stalled := dog.Pings()
	if stalled < 10 {
		t.Errorf("%d watchdog pings while the pipeline was alive", stalled)
	}
	time.Sleep(300 * time.Millisecond)
	if n := dog.Pings(); n != stalled {
		t.Errorf("the watchdog was pinged %d times on a stalled pipeline", n-stalled)
	}
	waitFor(t, "state degraded", 5*time.Second, func() bool {
		h = r.d.Health()
		return h.State == event.StateDegraded
	})
	t.Logf("stall reported %v after the start", time.Since(start).Round(100*time.Millisecond))
	if h.State != event.StateDegraded || !strings.Contains(h.Reason, "pipeline stalled") || time.Since(h.Beat) < stallAfter {
		t.Errorf("stalled: health %+v", h)
	}
	waitFor(t, "status degraded, pipeline stalled", 2*time.Second, func() bool {
		s, ok := r.up.lastStatus()
		return ok && s.State == event.StateDegraded && strings.Contains(s.Reason, "pipeline stalled")
	})
	r.waitLog(time.Second, "level=WARN", "msg=degraded", "pipeline stalled")

	// The capture comes back. (Stopping a stalled daemon takes a random
	// number of 2s ticks; see the report of these tests.)
	src.resume()
	h = r.waitState(event.StateMonitoring, 5*time.Second)
	if !h.Fresh || h.Reason != "" {
		t.Errorf("after the stall: health %+v", h)
	}
	resumed := dog.Pings()
	waitFor(t, "watchdog pings again", 2*time.Second, func() bool { return dog.Pings() >= resumed+3 })
	r.stop()
}

// ---- known bugs ----

// These reproduce bugs found while writing the tests above; they fail on
// the daemon as it is, so they run only with TAPWATCH_DAEMON_BUGS=1.

// TestHeartbeatSteadyTraffic: traffic that never leaves the capture idle
// for its poll timeout, but is slow (here 20 packets a second), keeps
// the heartbeat fresh: a working pipeline never looks stalled.
func TestHeartbeatSteadyTraffic(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	src.idle = 200 * time.Millisecond // as a live capture's poll timeout
	g := newTraffic(t)
	var batches [][][]byte
	for range 200 {
		batches = append(batches, g.read(hmiIP, 0, 4).frames())
	}
	stopFeed, fed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(fed)
		for _, b := range batches {
			for _, f := range b {
				select {
				case <-stopFeed:
					return
				case <-time.After(50 * time.Millisecond):
				}
				src.feed(f)
			}
		}
	}()
	defer func() { close(stopFeed); <-fed }()
	r := startDaemon(t, testConfig(t, t.TempDir(), ""), src, nil)
	r.waitState(event.StateMonitoring, 5*time.Second)
	deadline := time.Now().Add(7 * time.Second)
	for time.Now().Before(deadline) {
		if h := r.d.Health(); !h.Fresh || h.State != event.StateMonitoring {
			t.Fatalf("with packets flowing every 50ms: health %+v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadNotAppliedAfterReportedFailure: a reload that times out
// waiting for a busy packet goroutine is logged as failed ("the old
// policy stays active"), and the swap it queued is not applied when the
// goroutine comes back.
func TestReloadNotAppliedAfterReportedFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(lab.WritesOnlyFromHMI), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newTraffic(t)
	src := newFakeSource()
	r := startDaemon(t, testConfig(t, filepath.Join(dir, "state"), "policy: "+policy+"\n"), src, nil)
	src.feed(g.write(rogueIP, 5, 151).frames()...)
	r.waitAlert("plc-writes-only-from-hmi", rogueIP, 151)

	src.stall()
	select {
	case <-src.parked:
	case <-time.After(5 * time.Second):
		t.Fatal("the capture did not stall")
	}
	if err := os.WriteFile(policy, []byte(strings.ReplaceAll(lab.WritesOnlyFromHMI, "plc-writes-only-from-hmi", "plc-writes-v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	r.waitLog(10*time.Second, `msg="reload failed; the old policy stays active"`, "did not answer")
	src.resume()
	src.waitServiced(t)
	src.feed(g.write(rogueIP, 3, 154).frames()...)
	waitFor(t, "an alert for the write after the failed reload", 5*time.Second, func() bool {
		return r.up.findAlert("plc-writes-only-from-hmi", rogueIP, 154) != nil || r.up.findAlert("plc-writes-v2", rogueIP, 154) != nil
	})
	if a := r.up.findAlert("plc-writes-v2", rogueIP, 154); a != nil {
		t.Errorf("the reload reported as failed was applied after all: alert %s", a.Rule)
	}
}

// ---- unacknowledged alerts ----

// policyDaemon starts a daemon enforcing lab.WritesOnlyFromHMI, its state
// in dir.
func policyDaemon(t *testing.T, dir string, src *fakeSource) *running {
	t.Helper()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(lab.WritesOnlyFromHMI), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, testConfig(t, filepath.Join(dir, "state"), "policy: "+policy+"\n"), src, nil)
}

// waitUnacked waits until the unacknowledged high alerts are high.
func (r *running) waitUnacked(high uint64) {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("%d unacknowledged high alerts", high), 5*time.Second, func() bool { return r.d.Health().Unacked.High == high })
}

// savedUnacked reads state_dir/unacked.json as documented.
func savedUnacked(t *testing.T, stateDir string) event.Severities {
	t.Helper()
	var st struct {
		Unacked *event.Severities `json:"unacked"`
	}
	b := readFile(t, stateDir, "unacked.json")
	if err := json.Unmarshal(b, &st); err != nil || st.Unacked == nil {
		t.Fatalf("unacked.json: %v\n%s", err, b)
	}
	return *st.Unacked
}

// TestAcknowledgeThenActivityRelights: the button clears ALERT; the rogue
// master writing again after the press lights it again at once, although
// its writes fold into an alert raised before the press. Repeats that all
// came before the press do not.
func TestAcknowledgeThenActivityRelights(t *testing.T) {
	t.Parallel()
	g := newTraffic(t)
	src := newFakeSource()
	r := policyDaemon(t, t.TempDir(), src)
	const rule = "plc-writes-only-from-hmi"

	src.feed(g.write(rogueIP, 5, 151).write(rogueIP, 5, 151).frames()...)
	r.waitAlert(rule, rogueIP, 151)
	r.waitDrained()
	r.waitUnacked(1)
	r.d.Acknowledge()
	if u := r.d.Health().Unacked; u != (event.Severities{}) {
		t.Fatalf("after the button: unacknowledged %+v", u)
	}
	src.waitServiced(t)

	// The same write again, well within the minute the first one folds.
	src.feed(g.write(rogueIP, 5, 151).frames()...)
	r.waitDrained()
	waitFor(t, "ALERT lit again by the write after the button", 5*time.Second, func() bool {
		return r.d.Health().Unacked.High == 1
	})
	sent := r.up.alertsOf(rule)
	if len(sent) != 3 || !sent[0].first || sent[1].first || sent[1].a.Count != 2 || !sent[2].first || sent[2].a.Count != 1 {
		t.Errorf("want the alert, its summary of the 2 writes before the button, and a new alert:\n%s", r.up.describe())
	}

	// Pressed again, and the capture ends: the new alert's summary
	// (nothing after the press) leaves ALERT off.
	src.feed(g.write(rogueIP, 5, 151).frames()...)
	r.waitDrained()
	src.waitServiced(t)
	r.d.Acknowledge()
	src.waitServiced(t)
	r.stop()
	if n := len(r.up.alertsOf(rule)); n != 4 {
		t.Errorf("%d alerts of %s, want the summary of the new one too:\n%s", n, rule, r.up.describe())
	}
	if u := r.d.Health().Unacked; u != (event.Severities{}) {
		t.Errorf("a summary of repeats before the button lit ALERT: unacknowledged %+v", u)
	}
}

// TestBudgetAlertUnacknowledged: the budget's alert, which counts the
// alerts suppressed, is a new alert and lights ALERT, however large its
// count.
func TestBudgetAlertUnacknowledged(t *testing.T) {
	t.Parallel()
	d, err := New(testConfig(t, t.TempDir(), ""), Options{Open: func(*config.Config) ([]capture.LiveSource, error) { return nil, errors.New("unused") }})
	if err != nil {
		t.Fatal(err)
	}
	d.Alert(&rules.Alert{ID: 9, Rule: rules.BudgetRule, Severity: policy.SeverityHigh, Count: 7})
	if u := d.Health().Unacked; u.High != 1 {
		t.Errorf("after the budget alert: unacknowledged %+v, want 1 high", u)
	}
	d.Alert(&rules.Alert{ID: 3, Rule: "w", Severity: policy.SeverityCritical, Count: 2, Summary: true})
	if u := d.Health().Unacked; u.Critical != 0 {
		t.Errorf("a summary counted as a new alert: unacknowledged %+v", u)
	}
}

// TestUnackedSurvivesRestart: unacknowledged alerts are saved in the
// state directory, so a restart keeps ALERT lit (and the alarm relay
// pulled in); the button clears them, saved at once.
func TestUnackedSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	g := newTraffic(t)
	src := newFakeSource()
	r := policyDaemon(t, dir, src)
	src.feed(g.write(rogueIP, 5, 151).frames()...)
	r.waitAlert("plc-writes-only-from-hmi", rogueIP, 151)
	r.waitUnacked(1)
	waitFor(t, "unacked.json saved by a tick", 5*time.Second, func() bool {
		return exists(state, "unacked.json") && savedUnacked(t, state).High == 1
	})
	r.stop()
	want := r.d.Health().Unacked // new-asset's medium alert too
	if got := savedUnacked(t, state); got != want || want.High != 1 || want.Medium != 1 {
		t.Fatalf("saved at stop %+v, want %+v (1 high, 1 medium)", got, want)
	}

	r = policyDaemon(t, dir, nil)
	if u := r.d.Health().Unacked; u != want {
		t.Fatalf("after a restart: unacknowledged %+v, want %+v", u, want)
	}
	waitFor(t, "a status with the alerts unacknowledged", 5*time.Second, func() bool {
		s, ok := r.up.lastStatus()
		return ok && s.Unacked == want
	})
	if lit := hw.Show(hw.Status{State: event.StateMonitoring, Fresh: true, Unacked: r.d.Health().Unacked}, hw.LevelHigh); lit.LEDs[hw.Alert] != hw.Slow || !lit.Alarm {
		t.Errorf("after a restart: lights %+v, want ALERT slow and the alarm relay on", lit)
	}
	r.waitLog(time.Second, "level=WARN", "unacknowledged alerts of the last run restored", "high=1")
	r.d.Acknowledge()
	if got := savedUnacked(t, state); got != (event.Severities{}) {
		t.Errorf("saved right after the button: %+v, want none", got)
	}
	r.stop()

	r = policyDaemon(t, dir, nil)
	if u := r.d.Health().Unacked; u != (event.Severities{}) {
		t.Errorf("after the button and a restart: unacknowledged %+v", u)
	}
	r.stop()
}

// TestUnackedFileFaults: a damaged unacked.json is quarantined and
// reported; a write that fails (a full disk) is logged once, not on every
// tick, the daemon runs on, and the write is retried until it succeeds.
func TestUnackedFileFaults(t *testing.T) {
	t.Parallel()
	t.Run("damaged", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		if err := os.MkdirAll(state, 0o750); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"{\"unacked\": {\"high\": ", `{"other": 1}`} {
			if err := os.WriteFile(filepath.Join(state, "unacked.json"), []byte(bad), 0o640); err != nil {
				t.Fatal(err)
			}
			r := policyDaemon(t, dir, nil)
			r.waitLog(time.Second, "level=ERROR", `msg="damaged state file quarantined"`, "unacked.json")
			r.waitLog(time.Second, "level=ERROR", "unacknowledged alerts of the last run lost")
			if u := r.d.Health().Unacked; u != (event.Severities{}) {
				t.Errorf("%q: unacknowledged %+v", bad, u)
			}
			r.stop()
			moved, _ := filepath.Glob(filepath.Join(state, "unacked.json.corrupt-*"))
			if len(moved) != 1 {
				t.Fatalf("%q: quarantined copies %v", bad, moved)
			}
			if b, _ := os.ReadFile(moved[0]); string(b) != bad {
				t.Errorf("%s holds %q, want the damaged file", moved[0], b)
			}
			os.Remove(moved[0])
		}
	})
	t.Run("write fails", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		// A folder where the file goes: every write fails, as on a full
		// disk.
		obstacle := filepath.Join(state, "unacked.json")
		if err := os.MkdirAll(obstacle, 0o750); err != nil {
			t.Fatal(err)
		}
		g := newTraffic(t)
		src := newFakeSource()
		r := policyDaemon(t, dir, src)
		src.feed(g.write(rogueIP, 5, 151).frames()...)
		r.waitUnacked(1)
		r.waitLog(5*time.Second, "level=ERROR", `msg="unacknowledged alerts not saved`)
		time.Sleep(2500 * time.Millisecond) // two more ticks
		if n := strings.Count(r.log.String(), "unacknowledged alerts not saved"); n != 1 {
			t.Errorf("the failed write logged %d times, want once", n)
		}
		src.feed(g.write(hmiIP, 5, 150).frames()...)
		r.waitDrained()
		if h := r.d.Health(); h.State != event.StateMonitoring || h.Unacked.High != 1 {
			t.Errorf("with the writes failing: health %+v", h)
		}
		if err := os.Remove(obstacle); err != nil {
			t.Fatal(err)
		}
		r.waitLog(5*time.Second, "level=INFO", `msg="unacknowledged alerts saved again"`)
		if got := savedUnacked(t, state); got.High != 1 {
			t.Errorf("saved once the disk works: %+v", got)
		}
		r.stop()
	})
}

// TestReloadKeepsState: a reload does not reset the rate counters nor
// raise again the alerts being folded: writes straddling it add up to a
// burst, and the rogue master's write after it folds into the alert it
// had before.
func TestReloadKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	const burst = `
  - id: write-burst
    when: {proto: modbus, dst: plc, op: write}
    rate: {max: 3, per: 10s}
    severity: medium
`
	if err := os.WriteFile(policy, []byte(lab.WritesOnlyFromHMI+burst), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newTraffic(t)
	src := newFakeSource()
	r := startDaemon(t, testConfig(t, filepath.Join(dir, "state"), "policy: "+policy+"\n"), src, nil)
	const rule = "plc-writes-only-from-hmi"
	src.feed(g.write(rogueIP, 5, 151).write(hmiIP, 0, 150).write(hmiIP, 1, 152).write(hmiIP, 2, 153).frames()...)
	r.waitAlert(rule, rogueIP, 151)
	r.waitDrained()

	// Three writes from the HMI within 10s: no burst yet. Reloaded with
	// one more rule, the old ones unchanged.
	const extra = `
  - id: no-broadcast
    when: {proto: modbus, unit: 0, op: write}
`
	if err := os.WriteFile(policy, []byte(lab.WritesOnlyFromHMI+burst+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	r.waitLog(5*time.Second, `msg="policy reloaded"`, "rules=3")
	src.feed(g.write(hmiIP, 3, 154).write(rogueIP, 5, 151).frames()...)
	r.waitAlert("write-burst", hmiIP, 154)
	r.waitDrained()
	r.stop()
	sent := r.up.alertsOf(rule)
	if len(sent) != 2 || !sent[0].first || sent[1].first || sent[1].a.Count != 2 {
		t.Errorf("the rogue's writes before and after the reload: want one alert and its summary of 2:\n%s", r.up.describe())
	}
}
