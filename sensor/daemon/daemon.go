// Package daemon is tapwatch run: the sensor pipeline on live capture,
// with its lifecycle (start, reload on SIGHUP, graceful stop), its health
// (heartbeat, link state, kernel drops, uplink) and status, systemd
// notifications, and the learning period that survives restarts.
package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/sdnotify"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

// The daemon (tapwatch run) is the pipeline on live capture, with its
// lifecycle around it. Two goroutines matter:
//
//   - the packet goroutine owns the pipeline, the rule engine, the
//     learner and the inventory. It reads the capture, decodes, and runs
//     the functions the control goroutine hands it between two packets
//     (a quiet capture returns capture.ErrIdle every 200ms, so they never
//     wait long). Every so often it stamps the heartbeat.
//   - the control goroutine (Run) ticks once a second: it reads the
//     kernel's counters and the links' state, works out the health and
//     the status, pings systemd's watchdog while the heartbeat is fresh,
//     saves the learning checkpoint, ends the learning period, and
//     handles reload (SIGHUP) and stop.

// Daemon timings.
const (
	tickEvery      = time.Second
	stallAfter     = 5 * time.Second        // a heartbeat older than this: the pipeline is stalled
	controlStall   = 10 * time.Second       // a control tick older than this: the control loop is stuck (a tick may wait 2 s, twice)
	snapshotWait   = 2 * time.Second        // how long the control goroutine waits for the packet goroutine
	drainWait      = 10 * time.Second       // how long a stop waits for the capture to drain
	flushWait      = 5 * time.Second        // how long a stop waits for the broker's acknowledgements
	errorLogEvery  = time.Minute            // capture errors are logged at most this often
	dropsRecent    = 10 * time.Second       // kernel drops this recent keep the state degraded
	beatEvery      = 100 * time.Millisecond // packet time between heartbeats on a busy link
	learnStateFile = "learning.json"
	checkpointFile = "learning.yaml"
	learnedFile    = "learned.yaml"
)

// Link states in Status.
const (
	LinkDown = "down" // no carrier, or the interface is down or gone
	LinkIdle = "idle" // up, but no ICS traffic for link_idle (a wrong tap port?)
	LinkUp   = "up"   // up, ICS traffic flowing
)

// The daemon's publisher (an *uplink.Publisher) is made, started and
// closed by the daemon's caller. The daemon hands it the alerts and
// assets as sinks (Options.Sinks), and needs of it only the small
// interfaces below, none of which blocks for long.

// StatusSink takes the daemon's status (the retained status message).
type StatusSink interface {
	SetStatus(s event.Status)
}

// StatsSink takes the stats: from fn every so often, set before the
// sink starts, and the last ones at a stop.
type StatsSink interface {
	SetStatsSource(fn func() *event.Stats)
	Stats(s *event.Stats)
}

// Uplink is the publisher's delivery: its health, and a wait at a stop
// for the broker to acknowledge what was handed over.
type Uplink interface {
	Health() (connected bool, spoolFull float64, spoolErr error)
	Flush(ctx context.Context) error
}

// Options are what the daemon needs besides its config.
type Options struct {
	Version string
	Log     *slog.Logger // nil: discard
	// Sinks get the alerts, after the daemon's own count of them, the
	// asset messages (with an asset sink the daemon keeps an inventory)
	// and the decoded messages, before the ops_log. The daemon does not
	// close them: whoever made them does, after Run.
	Sinks pipeline.Sinks
	// Status, Stats and Uplink are the publisher's; nil: none (the
	// uplink is disabled).
	Status StatusSink
	Stats  StatsSink
	Uplink Uplink
	// Open opens the capture sources, one per interface of the config;
	// nil: live AF_PACKET capture. Tests give fakes.
	Open func(cfg *config.Config) ([]capture.LiveSource, error)
	// Links reads the state of the capture interfaces; nil:
	// capture.Links.
	Links func(names ...string) ([]capture.LinkInfo, error)
	// Notify is systemd's notification socket; nil: none.
	Notify *sdnotify.Notifier
}

// Health is the daemon's state for the status message, the LEDs and the
// watchdog.
type Health struct {
	State     string       // starting, learning, monitoring, degraded
	Reason    string       // why degraded
	Learning  bool         // in the learning period (also when degraded)
	Links     []event.Link // per capture interface
	Dropping  bool         // the kernel dropped packets on a link in the last 10 s
	Uplink    string       // connected, disconnected, disabled
	SpoolFull float64      // fraction of the spool's message limit in use
	SpoolErr  bool         // the spool cannot write
	Beat      time.Time    // the pipeline's last sign of life
	// Fresh: the pipeline's heartbeat and the control goroutine's tick
	// are both recent; the daemon is alive. Health works it out when
	// called, so a hang shows at once.
	Fresh    bool
	Stopping bool             // a clean stop is under way (draining, saving, flushing)
	Unacked  event.Severities // alerts not acknowledged, up to now
}

// Daemon is a running sensor.
type Daemon struct {
	cfg    *config.Config
	opts   Options
	log    *slog.Logger
	notify *sdnotify.Notifier

	// Owned by the packet goroutine (or by Run before it starts).
	pipe    *sensor.Pipeline // asm.Pipe
	asm     *pipeline.Assembly
	ops     *sensor.OpsWriter // nil: no ops_log
	opsBuf  *bufio.Writer     // flushed every tick
	opsFile *sensor.RotatingFile
	errLast time.Time

	ctl  chan func()
	beat atomic.Int64 // unix ns
	// acked: the button was pressed, and the engine not yet told.
	acked atomic.Bool

	mu       sync.Mutex // what the packet goroutine counts, read by the others; and health
	alerts   event.Severities
	unacked  event.Severities
	unsaved  bool // unacked changed since it was last saved
	snap     snapshot
	health   Health
	tickAt   time.Time // when the control goroutine last finished a tick
	stopping bool
	statusAt time.Time

	// Control goroutine.
	started  time.Time
	lives    []*capture.Live
	kernel   []capture.LiveStats // last counters read, per interface
	drops    []uint64            // kernel drops per interface, at the last tick
	dropAt   []time.Time         // when each interface's kernel drops last grew
	lastICS  []time.Time         // when each interface last carried ICS messages
	lastMsgs []uint64
	learn    *learnState // nil: not learning
	nextCP   time.Time

	// saveMu orders the writes of unacked.json (the control goroutine's
	// and the button's); unackedFailing: the last one failed.
	saveMu         sync.Mutex
	unackedFailing bool
}

// snapshot is the packet goroutine's counters, copied for the others.
type snapshot struct {
	dpi           dpi.Counters
	tally         sensor.Tally
	engine        rules.EngineStats
	bySource      [sensor.MaxSources]uint64
	assetsEvicted uint64 // hosts the inventory forgot, being full
	linksDropped  uint64 // flows of links the inventory could not count, being full
}

// New checks the policy and baseline, opens the uplink's spool and
// the learning state, and builds the pipeline. Nothing is captured until
// Run.
func New(cfg *config.Config, opts Options) (*Daemon, error) {
	d := &Daemon{cfg: cfg, opts: opts, log: opts.Log, notify: opts.Notify, ctl: make(chan func(), 16)}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.opts.Links == nil {
		d.opts.Links = capture.Links
	}
	setup := pipeline.Setup{
		DPI:   dpi.Config{ModbusPorts: cfg.Ports.Modbus, DNP3Ports: cfg.Ports.DNP3, ModbusRTUPorts: cfg.Ports.ModbusRTU, MaxFlows: cfg.MaxFlows},
		Sinks: pipeline.Sinks{Alerts: append([]pipeline.AlertSink{d}, opts.Sinks.Alerts...), Assets: opts.Sinks.Assets, Ops: opts.Sinks.Ops},
	}
	var learned *policy.Policy
	if cfg.Learning() {
		ls, l, err := openLearning(cfg, d.log)
		if err != nil {
			return nil, err
		}
		if ls.Finished != nil {
			learned = l
		} else {
			d.learn = ls
			setup.Learn, setup.Resume = true, l
		}
	} else if cfg.Baseline == "" {
		if _, err := os.Stat(statePath(cfg, learnedFile)); err == nil {
			d.log.Info("a learned baseline is waiting for review; set baseline: to enforce it", "file", statePath(cfg, learnedFile))
		}
	}
	var err error
	if setup.Policy, err = d.policyFiles(learned).Load(); err != nil {
		return nil, err
	}
	if d.asm, err = pipeline.Assemble(setup); err != nil {
		return nil, err
	}
	d.pipe = d.asm.Pipe
	d.loadUnacked()
	d.logPolicy("policy loaded", d.asm.Policy)
	if opts.Stats != nil {
		opts.Stats.SetStatsSource(d.stats)
	}
	if cfg.OpsLog != "" {
		if d.opsFile, err = sensor.OpenRotating(cfg.OpsLog, cfg.OpsLogMaxBytes); err != nil {
			return nil, fmt.Errorf("ops_log: %w", err)
		}
		d.opsBuf = bufio.NewWriterSize(d.opsFile, 64<<10)
		d.ops = sensor.NewOpsWriter(d.opsBuf)
		d.asm.AddOps(d.ops)
	}
	n := len(cfg.Interfaces)
	d.kernel, d.drops, d.dropAt = make([]capture.LiveStats, n), make([]uint64, n), make([]time.Time, n)
	d.lastICS, d.lastMsgs = make([]time.Time, n), make([]uint64, n)
	d.health = Health{State: event.StateStarting, Uplink: event.UplinkDisabled, Unacked: d.unacked}
	return d, nil
}

// policyFiles are the config's policy and baseline; learned, what the
// learning period learned, is the baseline when the config names none.
func (d *Daemon) policyFiles(learned *policy.Policy) pipeline.PolicyFiles {
	return pipeline.PolicyFiles{Policy: d.cfg.Policy, Baseline: d.cfg.Baseline, Learned: learned, LearnedFile: statePath(d.cfg, learnedFile)}
}

func (d *Daemon) logPolicy(msg string, p *policy.Policy) {
	attrs := []any{"rules", len(p.Rules)}
	if d.cfg.Policy != "" {
		attrs = append(attrs, "policy", d.cfg.Policy)
	}
	if p.Baseline != nil {
		attrs = append(attrs, "baseline_conversations", len(p.Baseline.Conversations))
	}
	d.log.Info(msg, attrs...)
}

// Alert implements pipeline.AlertSink, the first of the daemon's alert
// sinks: it counts and logs the alerts, and tracks those not yet
// acknowledged for the ALERT LED and the alarm relay. It runs on the
// packet goroutine. Every new alert is unacknowledged until the button
// is pressed; a summary is not, since the engine makes a repeat after the
// press a new alert (see Acknowledge).
func (d *Daemon) Alert(a *rules.Alert) {
	if a.Summary {
		return
	}
	sev := a.Severity.String()
	d.mu.Lock()
	d.alerts.Add(sev)
	d.unacked.Add(sev)
	d.unsaved = true
	d.mu.Unlock()
	d.log.Info("alert", "severity", sev, "rule", a.Rule, "title", a.Title, "src", a.Src.String(), "dst", a.Dst.String())
}

// Acknowledge clears the unacknowledged alerts (the box's button) and
// saves that at once. The engine is told too, on the packet goroutine,
// so that a repeat of an alert acknowledged is not folded out of sight
// but raised as a new alert, which lights ALERT again. Should the
// packet goroutine be busy, the next tick tells it.
func (d *Daemon) Acknowledge() {
	d.mu.Lock()
	d.unacked = event.Severities{}
	d.unsaved = true
	d.health.Unacked = event.Severities{}
	d.mu.Unlock()
	d.acked.Store(true)
	select {
	case d.ctl <- d.acknowledgeEngine:
	default:
	}
	d.saveUnacked()
	d.publishStatus(true)
}

// acknowledgeEngine hands a press of the button to the engine (on the
// packet goroutine).
func (d *Daemon) acknowledgeEngine() {
	if d.acked.Swap(false) {
		d.asm.Engine.Acknowledge()
	}
}

// Health returns the daemon's health now; safe from any goroutine.
func (d *Daemon) Health() Health {
	d.mu.Lock()
	h := d.health
	h.Links = append([]event.Link(nil), h.Links...)
	h.Unacked = d.unacked
	tickAt := d.tickAt
	h.Stopping = d.stopping
	d.mu.Unlock()
	// The uplink as it is now, not at the last tick: the publisher's
	// status says connected as soon as it is, even while starting, and the
	// LEDs must not say otherwise.
	var spoolErr error
	h.Uplink, h.SpoolFull, spoolErr = d.uplinkHealth()
	h.SpoolErr = spoolErr != nil
	now := time.Now()
	if h.State != event.StateStarting {
		h.Beat = time.Unix(0, d.beat.Load())
		h.Fresh = now.Sub(h.Beat) < stallAfter && now.Sub(tickAt) < controlStall
	}
	return h
}

// Run captures and analyses until ctx ends, then stops gracefully: the
// capture is drained, the learning checkpoint saved, the uplink flushed
// and the last stats handed over (the publisher's maker then closes it,
// which publishes the offline status). A value on reload reloads the policy
// and the baseline. It returns an error when the capture cannot be
// opened or fails for good.
func (d *Daemon) Run(ctx context.Context, reload <-chan struct{}) error {
	d.started = time.Now()
	d.publishStatus(true)
	srcs, err := d.open()
	if err != nil {
		d.log.Error("capture", "err", err)
		return err
	}
	var src capture.LiveSource = srcs[0]
	if len(srcs) > 1 {
		src = capture.NewMerged(capture.MergeConfig{Hold: 2 * d.cfg.Capture.BlockTimeout, Idle: 200 * time.Millisecond}, srcs...)
	}
	d.beat.Store(time.Now().UnixNano())
	done := make(chan error, 1)
	go func() { done <- d.packets(src) }()
	if d.learn != nil {
		d.nextCP = time.Now().Add(d.cfg.Learn.Checkpoint)
	}
	d.log.Info("started", "interfaces", strings.Join(d.cfg.Interfaces, ","), "mode", d.cfg.Mode, "version", d.opts.Version, "uplink", d.opts.Uplink != nil)
	d.tick()
	if err := d.notify.Ready(d.statusLine()); err != nil {
		d.log.Warn("systemd notification", "err", err)
	}
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		// A stop first: a tick on a stalled pipeline blocks for a while,
		// and select picks at random among ready cases.
		if ctx.Err() != nil {
			return d.stop(src, done)
		}
		select {
		case <-ctx.Done():
			return d.stop(src, done)
		case <-reload:
			d.reload()
		case <-t.C:
			d.tick()
		case err := <-done:
			// The capture ended on its own: nothing left to watch.
			d.log.Error("capture ended", "err", err)
			d.finish()
			if err == nil {
				err = errors.New("capture ended")
			}
			return err
		}
	}
}

// open opens one capture per interface.
func (d *Daemon) open() ([]capture.LiveSource, error) {
	if d.opts.Open != nil {
		return d.opts.Open(d.cfg)
	}
	var out []capture.LiveSource
	for _, ifc := range d.cfg.Interfaces {
		l, err := capture.OpenLive(capture.LiveConfig{Interface: ifc, Ports: d.cfg.Ports.All(),
			RingBytes: d.cfg.Capture.RingBytes, BlockTimeout: d.cfg.Capture.BlockTimeout,
			NoPromiscuous: !*d.cfg.Capture.Promiscuous, ReturnIdle: true})
		if err != nil {
			for _, o := range d.lives {
				o.Close()
			}
			d.lives = nil
			return nil, err
		}
		d.lives = append(d.lives, l)
		out = append(out, l)
	}
	return out, nil
}

// packets is the packet goroutine. It returns nil when the source ends
// after Stop, and the error when it fails otherwise.
func (d *Daemon) packets(src capture.LiveSource) error {
	var ci capture.Info
	var lastBeat int64
	for {
		data, err := src.ReadPacket(&ci)
		if err != nil {
			switch {
			case err == capture.ErrIdle:
				d.beat.Store(time.Now().UnixNano())
				d.runControl()
				continue
			case err == io.EOF:
				d.pipe.Flush()
				d.runControl()
				return nil
			}
			// An interface that went away, or a ring error: logged, not
			// fatal; the link state tells the rest.
			if now := time.Now(); now.Sub(d.errLast) >= errorLogEvery {
				d.errLast = now
				d.log.Warn("capture", "err", err)
			}
			d.beat.Store(time.Now().UnixNano())
			d.runControl()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		d.pipe.Packet(data, &ci)
		// The heartbeat from the packets' own (kernel) timestamps: no
		// clock read per packet, and a trickle of traffic that never lets
		// the capture say idle still counts as alive.
		if ts := ci.Timestamp.UnixNano(); ts-lastBeat >= int64(beatEvery) || ts < lastBeat {
			lastBeat = ts
			d.beat.Store(ts)
		}
		if len(d.ctl) > 0 {
			d.runControl()
		}
	}
}

func (d *Daemon) runControl() {
	for {
		select {
		case fn := <-d.ctl:
			fn()
		default:
			return
		}
	}
}

// do runs fn on the packet goroutine and waits for it, at most wait;
// false when it did not run in time (the pipeline is stalled).
//
// A function that has not started when the wait ends is abandoned: it
// will not run later, so that what the caller reports (a reload failed,
// the old policy stays) is what happens. One that has started is waited
// for.
func (d *Daemon) do(fn func(), wait time.Duration) bool {
	const (
		pending = iota
		started
		abandoned
	)
	var state atomic.Int32
	ran := make(chan struct{})
	select {
	case d.ctl <- func() {
		defer close(ran)
		if state.CompareAndSwap(pending, started) {
			fn()
		}
	}:
	default:
		return false
	}
	select {
	case <-ran:
		return state.Load() == started
	case <-time.After(wait):
		if state.CompareAndSwap(pending, abandoned) {
			return false
		}
		<-ran
		return true
	}
}

// sourceMessages copies the pipeline's per-interface message counts.
func (d *Daemon) sourceMessages() (out [sensor.MaxSources]uint64) {
	for i := range out {
		out[i] = d.pipe.SourceMessages(i)
	}
	return out
}

// snapshotNow copies the packet goroutine's counters (on it, or once it
// has ended).
func (d *Daemon) snapshotNow() snapshot {
	s := snapshot{dpi: d.pipe.Counters(), tally: d.pipe.Tally(), engine: d.asm.Engine.Stats(), bySource: d.sourceMessages()}
	if d.asm.Inventory != nil {
		s.assetsEvicted, s.linksDropped = d.asm.Inventory.Evicted, d.asm.Inventory.DroppedLinks
	}
	return s
}

// takeSnapshot copies the packet goroutine's counters (on it).
func (d *Daemon) takeSnapshot() (snapshot, bool) {
	var s snapshot
	ok := d.do(func() {
		d.acknowledgeEngine()
		s = d.snapshotNow()
		d.flushOps()
	}, snapshotWait)
	if ok {
		d.mu.Lock()
		d.snap = s
		d.mu.Unlock()
	}
	return s, ok
}

// flushOps writes out the buffered ops log (on the packet goroutine);
// a write error is logged once a minute at most.
func (d *Daemon) flushOps() {
	if d.opsBuf == nil {
		return
	}
	err := d.opsBuf.Flush()
	if err == nil {
		err = d.ops.Err()
	}
	if err != nil && time.Since(d.errLast) >= errorLogEvery {
		d.errLast = time.Now()
		d.log.Error("ops_log", "err", err)
	}
}

// tick is the control goroutine's once-a-second work.
func (d *Daemon) tick() {
	now := time.Now()
	snap, _ := d.takeSnapshot()
	links := d.linkStates(now, snap)
	beat := time.Unix(0, d.beat.Load())
	fresh := now.Sub(beat) < stallAfter

	var reasons []string
	dropping, spoolErr := false, false
	if !fresh {
		reasons = append(reasons, fmt.Sprintf("pipeline stalled (no heartbeat for %s)", now.Sub(beat).Round(time.Second)))
	}
	for i, l := range links {
		switch {
		case l.State == LinkDown:
			reasons = append(reasons, "link "+l.Iface+" down")
		case l.State == LinkIdle:
			reasons = append(reasons, fmt.Sprintf("no ICS traffic on %s for %s", l.Iface, now.Sub(d.lastICS[i]).Round(time.Second)))
		}
		if l.Drops > d.drops[i] {
			d.dropAt[i] = now
		}
		if !d.dropAt[i].IsZero() && now.Sub(d.dropAt[i]) < dropsRecent {
			dropping = true
			reasons = append(reasons, fmt.Sprintf("kernel dropping packets on %s (%d in all)", l.Iface, l.Drops))
		}
		d.drops[i] = l.Drops
	}
	uplinkState, spoolFull, err := d.uplinkHealth()
	if err != nil {
		spoolErr = true
		reasons = append(reasons, "spool: "+err.Error())
	}
	if d.learn != nil {
		switch {
		case !now.Before(d.learn.deadline(d.cfg)):
			d.finishLearning()
		case !now.Before(d.nextCP):
			d.checkpoint()
			d.nextCP = now.Add(d.cfg.Learn.Checkpoint)
		}
	}
	state := event.StateMonitoring
	if d.learn != nil {
		state = event.StateLearning
	}
	if len(reasons) > 0 {
		state = event.StateDegraded
	}
	d.mu.Lock()
	prev := d.health
	d.health = Health{State: state, Reason: strings.Join(reasons, "; "), Learning: d.learn != nil, Links: links, Dropping: dropping,
		Uplink: uplinkState, SpoolFull: spoolFull, SpoolErr: spoolErr, Beat: beat, Fresh: fresh, Unacked: d.unacked}
	d.tickAt = now
	changed := prev.State != state || prev.Reason != d.health.Reason || !sameLinks(prev.Links, links) || prev.Unacked != d.health.Unacked
	d.mu.Unlock()
	if prev.State != state || prev.Reason != d.health.Reason {
		if state == event.StateDegraded {
			d.log.Warn("degraded", "reason", d.health.Reason)
		} else {
			d.log.Info(state)
		}
	}
	d.publishStatus(changed)
	d.saveUnacked()
	d.mu.Lock()
	d.tickAt = time.Now()
	d.mu.Unlock()
	if fresh && d.notify.Watchdog() > 0 {
		if err := d.notify.Ping(); err != nil {
			d.log.Warn("systemd watchdog", "err", err)
		}
	}
}

// uplinkHealth is the uplink's state, how full its spool is and its
// spool's error; safe from any goroutine.
func (d *Daemon) uplinkHealth() (state string, spoolFull float64, spoolErr error) {
	if d.opts.Uplink == nil {
		return event.UplinkDisabled, 0, nil
	}
	connected, full, err := d.opts.Uplink.Health()
	if connected {
		return event.UplinkConnected, full, err
	}
	return event.UplinkDisconnected, full, err
}

// linkStates reads the kernel's counters and the links' state.
func (d *Daemon) linkStates(now time.Time, snap snapshot) []event.Link {
	names := d.cfg.Interfaces
	infos, err := d.opts.Links(names...)
	if err != nil {
		d.log.Debug("link state", "err", err)
	}
	out := make([]event.Link, len(names))
	for i, name := range names {
		l := event.Link{Iface: name, State: LinkUp}
		if i < len(d.lives) {
			if st, err := d.lives[i].Stats(); err == nil {
				d.kernel[i] = st
			}
			l.Drops = d.kernel[i].Drops
		}
		msgs := snap.bySource[min(i, sensor.MaxSources-1)]
		if d.lastICS[i].IsZero() || msgs > d.lastMsgs[i] {
			d.lastICS[i], d.lastMsgs[i] = now, msgs
		}
		switch {
		case err == nil && i < len(infos) && !infos[i].Up():
			l.State = LinkDown
			d.lastICS[i] = now // idle counts from when the link came back
		case now.Sub(d.lastICS[i]) >= d.cfg.LinkIdle:
			l.State = LinkIdle
		}
		out[i] = l
	}
	return out
}

func sameLinks(a, b []event.Link) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Iface != b[i].Iface || a[i].State != b[i].State {
			return false
		}
	}
	return true
}

// publishStatus hands the status to the uplink when it changed or is due,
// and tells systemd.
func (d *Daemon) publishStatus(changed bool) {
	d.mu.Lock()
	due := changed || time.Since(d.statusAt) >= d.cfg.StatusEvery
	if due {
		d.statusAt = time.Now()
	}
	h := d.health
	d.mu.Unlock()
	if !due {
		return
	}
	if d.opts.Status != nil {
		d.opts.Status.SetStatus(event.Status{State: h.State, Mode: d.cfg.Mode, Links: h.Links, Reason: h.Reason, Unacked: h.Unacked})
	}
	if changed {
		if err := d.notify.Status(d.statusLine()); err != nil {
			d.log.Debug("systemd notification", "err", err)
		}
	}
}

// statusLine is the one line systemctl status shows.
func (d *Daemon) statusLine() string {
	h := d.Health()
	var b strings.Builder
	b.WriteString(h.State)
	if h.Reason != "" {
		b.WriteString(" (" + h.Reason + ")")
	}
	for _, l := range h.Links {
		fmt.Fprintf(&b, "; %s %s", l.Iface, l.State)
	}
	b.WriteString("; uplink " + h.Uplink)
	return b.String()
}

// stats is the stats message; the publisher calls it on its goroutine.
func (d *Daemon) stats() *event.Stats {
	d.mu.Lock()
	s := d.snap
	alerts := d.alerts
	d.mu.Unlock()
	return d.statsOf(s, alerts)
}

func (d *Daemon) statsOf(s snapshot, alerts event.Severities) *event.Stats {
	var drops uint64
	for _, k := range d.kernelStats() {
		drops += k.Drops
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ev := s.engine.Evictions()
	if s.assetsEvicted > 0 {
		ev["assets"] = s.assetsEvicted
	}
	if s.linksDropped > 0 {
		ev["links"] = s.linksDropped
	}
	st := sensor.NewStats(s.dpi, &s.tally, alerts, s.engine.Suppressed, ev)
	st.Uptime, st.KernelDrops, st.MemBytes = time.Since(d.started).Seconds(), drops, ms.Sys
	return st
}

// kernelStats is a copy of the last kernel counters read; safe from any
// goroutine.
func (d *Daemon) kernelStats() []capture.LiveStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]capture.LiveStats, len(d.health.Links))
	for i, l := range d.health.Links {
		out[i].Drops = l.Drops
	}
	return out
}

// reload loads the policy and the baseline again and swaps the engine;
// on any error the old ones stay.
func (d *Daemon) reload() {
	var learned *policy.Policy
	if d.learn == nil && d.cfg.Learning() {
		p, err := policy.Load(statePath(d.cfg, learnedFile))
		if err != nil {
			d.reloadFailed(err)
			return
		}
		learned = p
	}
	engine, policy, err := d.asm.Rebuild(d.policyFiles(learned))
	if err != nil {
		d.reloadFailed(err)
		return
	}
	if !d.swapEngine(engine, policy) {
		d.reloadFailed(errors.New("the pipeline did not answer; try again"))
		return
	}
	d.logPolicy("policy reloaded", policy)
}

func (d *Daemon) reloadFailed(err error) {
	lines := config.Errors(err)
	d.log.Error("reload failed; the old policy stays active", "err", lines[0], "problems", len(lines))
	for _, l := range lines[1:] {
		d.log.Error("reload failed", "err", l)
	}
}

// swapEngine puts engine in the pipeline's place (setEngine).
func (d *Daemon) swapEngine(engine *rules.Engine, p *policy.Policy) bool {
	return d.do(func() { d.setEngine(engine, p) }, snapshotWait)
}

// setEngine puts engine in the pipeline's place, on the packet
// goroutine (pipeline.Assembly.SetEngine): it takes over what the old one
// counted, folded and remembered that is still valid under its policy;
// the old one reports the rest.
func (d *Daemon) setEngine(engine *rules.Engine, p *policy.Policy) {
	d.acknowledgeEngine() // a press not yet handed over is about the old one's alerts
	d.asm.SetEngine(engine, p)
}

// stop drains the capture and shuts down; it is Run's end.
func (d *Daemon) stop(src capture.LiveSource, done chan error) error {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	d.notify.Stopping()
	d.log.Info("stopping")
	src.Stop()
	select {
	case err := <-done:
		if err != nil {
			d.log.Error("capture", "err", err)
		}
	case <-time.After(drainWait):
		d.log.Error("the capture did not drain in time", "waited", drainWait)
	}
	d.finish()
	return nil
}

// finish saves what must survive and flushes the uplink, after the packet
// goroutine has ended.
func (d *Daemon) finish() {
	// The packet goroutine is gone: its state is ours now.
	if d.learn != nil && d.asm.Learner != nil {
		d.saveCheckpoint(d.asm.Learner.Baseline(0))
	}
	if d.opsFile != nil {
		d.flushOps()
		d.opsFile.Close()
	}
	d.saveUnacked()
	s := d.snapshotNow()
	for i := range d.lives {
		if st, err := d.lives[i].Stats(); err == nil {
			d.kernel[i] = st
		}
	}
	d.mu.Lock()
	d.snap = s
	alerts := d.alerts
	d.mu.Unlock()
	var drops uint64
	for _, k := range d.kernel {
		drops += k.Drops
	}
	total := alerts.Total()
	var st *event.Stats // as of the stop, not of the end of the wait below
	if d.opts.Stats != nil {
		st = d.statsOf(s, alerts)
		st.KernelDrops = drops
	}
	if d.opts.Uplink != nil {
		ctx, cancel := context.WithTimeout(context.Background(), flushWait)
		if err := d.opts.Uplink.Flush(ctx); err != nil {
			d.log.Warn("uplink: not everything was acknowledged before the stop", "err", err)
		}
		cancel()
	}
	if st != nil {
		d.opts.Stats.Stats(st)
	}
	d.log.Info("stopped", "packets", s.dpi.Packets, "bytes", s.dpi.Bytes, "kernel_drops", drops,
		"messages", s.tally.Messages+s.tally.DNP3.Fragments+s.tally.DNP3.LinkFrames, "alerts", total, "uptime", time.Since(d.started).Round(time.Second).String())
}
