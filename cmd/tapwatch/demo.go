package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/hw"
	"github.com/tapwatch/tapwatch/internal/sim"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor/daemon"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
	"github.com/tapwatch/tapwatch/uplink"
)

const demoSynopsis = `tapwatch demo [--dir DIR] [--speed N] [--seed N] [--listen HOST:PORT] [--keep-broker]

Shows what tapwatch does, on this computer, in under a minute, without a
broker, a Raspberry Pi or root:

 1. starts an MQTT broker inside this process, on a free port of 127.0.0.1
    (or at --listen);
 2. generates a capture of a small plant (an HMI, an engineering
    workstation and a SCADA master; Modbus PLCs and DNP3 outstations):
    two minutes of normal traffic, then attacks among the normal traffic;
 3. learns what normal looks like from the first two minutes, writes the
    baseline and prints an excerpt, with a rule of a plant engineer's own;
 4. monitors the rest with the daemon's own code (tapwatch run's, fed from
    the capture N times faster than the plant ran instead of from a tap),
    drawing the box's four LEDs in the terminal as the alerts arrive;
 5. runs tapwatch tail against the broker, as the security center would,
    printing each alert as it is published; then presses the box's button
    to acknowledge them;
 6. ends with a summary: packets, messages, alerts by severity, which of
    the attacks the capture holds were caught, and where the files are.

Nothing is left running, unless --keep-broker is given: then the broker
stays up after the summary, until Ctrl-C, for tapwatch tail and tapwatch
replay --mqtt to try against it; the summary prints their command lines.
--listen gives the broker a fixed address on this host (it has no TLS and
no password, so it listens on a loopback address only), for a tail in
another terminal: tapwatch tail --broker tcp://HOST:PORT --format text.

The files stay in DIR (default ./tapwatch-demo): the capture, the answer
key of its attacks, the policy, the baseline and the alerts the security
center received, to replay with tapwatch replay. A new run replaces them.
DIR must be new, empty, or a demo's earlier one: the demo never deletes
what it did not make.
`

// The demo's plant: its learning period and the attacks in it. The
// generator needs sim.MinAttackSlot of monitoring per attack.
const (
	demoLearn   = 2 * time.Minute
	demoSite    = "demo-plant"
	demoSensor  = "tap1"
	demoIface   = "tap0"
	demoSpeedup = 10
)

// The order of the list is the seed's to shuffle: with the default seed,
// the ARP spoofing (high) comes first and the setpoint write (critical)
// sixth, so that ALERT blinks slow before it blinks fast.
var demoAttacks = []sim.Kind{sim.DeviceID, sim.UnauthorizedWrite, sim.DNP3OperateWithoutSelect,
	sim.DNP3ColdRestart, sim.MalformedModbus, sim.ARPSpoof, sim.SetpointOutOfRange}

// demoPolicy is a plant engineer's own rule, next to what is learned: the
// pump of plc1 is rated to 400 rpm, whatever the HMI was seen to write.
const demoPolicy = `# A plant engineer's policy for the demo plant (docs/policy.md).
version: 1
assets:
  hmi:  {ip: 10.10.1.10, description: Control room HMI}
  plc1: {ip: 10.10.1.20, modbus_units: 1, description: Pump station PLC}
rules:
  - id: pump-speed-limit
    name: Pump speed setpoint outside the pump's rating (0-400 rpm)
    when: {proto: modbus, dst: plc1, op: write, table: holding, addr: 5}
    value: {min: 0, max: 400}
    severity: critical
    attack: [T0836, T0831]
`

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo")
	dir := fs.String("dir", "tapwatch-demo", "the `DIR` for the demo's files: new, empty, or an earlier demo's")
	speed := fs.Float64("speed", demoSpeedup, "play the monitored part `N` times faster than the plant ran")
	seed := fs.Int64("seed", 7, "the `SEED` of the generated plant and the order of its attacks")
	listen := fs.String("listen", "", "the broker's `HOST:PORT`, on a loopback address (default: a free port of 127.0.0.1)")
	keepBroker := fs.Bool("keep-broker", false, "keep the broker running after the summary, until Ctrl-C")
	pos, err := parseCommand(fs, args, stdout, demoSynopsis)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("demo takes no arguments, got %q", pos)
	}
	if !(*speed >= 1 && *speed <= 1000) {
		return usageError("--speed: %v is not between 1 and 1000", *speed)
	}
	if *listen != "" {
		if err := checkLoopback(*listen); err != nil {
			return usageError("--listen: %v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C, during the clean stop, kills at once
	}()
	d := &demo{dir: *dir, speed: *speed, seed: *seed, listen: *listen, keepBroker: *keepBroker, stdout: stdout, out: stdout, errOut: stderr}
	err = d.run(ctx)
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return err
}

// checkLoopback refuses a broker address off this host: the demo's
// broker has no TLS and no password.
func checkLoopback(hostPort string) error {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address (127.0.0.1, ::1 or localhost): the demo's broker has no TLS and no password, so it stays on this host", host)
	}
	return nil
}

type demo struct {
	dir        string
	speed      float64
	seed       int64
	listen     string // the broker's address; "": a free port of 127.0.0.1
	keepBroker bool   // after the summary, until ctx ends
	stdout     io.Writer
	out        io.Writer // stdout, or the panel's wrapper of it while the panel is up
	errOut     io.Writer

	truth    *sim.Truth
	pcap     string
	policy   *policy.Policy
	panel    *hw.Panel
	received demoTally
}

// demoTally is what the security center's tail received.
type demoTally struct {
	mu       sync.Mutex
	alerts   []*event.Alert
	bySev    event.Severities // first messages of alerts, not their folded repeats
	stats    *event.Stats
	acked    bool          // a status with nothing unacknowledged after an alert
	offline  chan struct{} // closed at the offline status
	file     *bufio.Writer // alerts.jsonl
	fileErr  error
	reports  []uplink.SensorReport
	tailID   string // the tail's MQTT client id
	tailDone chan struct{}
	tailErr  error
	cancel   context.CancelFunc // ends the tail
}

func (d *demo) path(name string) string { return filepath.Join(d.dir, name) }

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

func (d *demo) run(ctx context.Context) error {
	start := time.Now()
	// 1. The broker, first: an address in use is said before any file of
	// an earlier run is removed.
	if d.listen == "" {
		d.listen = "127.0.0.1:0"
	}
	broker, err := uplink.StartEmbedded(d.listen)
	if err != nil {
		return err
	}
	closeBroker := sync.OnceValue(broker.Close)
	defer closeBroker()
	if err := d.prepareDir(); err != nil {
		return err
	}
	d.say("tapwatch demo: a plant network, a tapwatch box on its tap, and a security center. Files go to %s/.\n", d.dir)
	d.say("1. MQTT broker: embedded in this process, at %s (the box publishes to it, the security center subscribes).", broker.URL())

	// 2. The plant.
	if err := d.generate(); err != nil {
		return err
	}

	// 3. Learning.
	if err := d.learn(); err != nil {
		return err
	}

	// 4 and 5. Monitoring, the security center's tail, the button.
	if err := d.monitor(ctx, broker); err != nil {
		return err
	}
	if ctx.Err() != nil {
		d.say("\nInterrupted: the daemon, the tail and the broker have stopped; the files so far are in %s/.", d.dir)
		return ctx.Err()
	}

	// 6. The summary.
	d.summary(time.Since(start), broker.URL())
	if !d.keepBroker {
		return nil
	}
	<-ctx.Done()
	if err := closeBroker(); err != nil {
		return err
	}
	d.say("\nThe broker has stopped; nothing is left running.")
	return nil
}

// demoMarker marks a directory as a demo's: a new run may replace what
// is in it.
const demoMarker = ".tapwatch-demo"

// prepareDir makes dir ready for a new run: new, empty, or an earlier
// demo's (marked), whose files are removed so that the run starts from
// nothing, the spool and sequence numbers included. Any other directory
// is refused: the demo never deletes what it did not make.
func (d *demo) prepareDir() error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(d.path(demoMarker)); len(entries) > 0 && err != nil {
		return fmt.Errorf("%s is not empty and not a tapwatch demo's (it has no %s): give a new --dir", d.dir, demoMarker)
	}
	for _, e := range entries {
		if err := os.RemoveAll(d.path(e.Name())); err != nil {
			return err
		}
	}
	if err := os.WriteFile(d.path(demoMarker), []byte("made by tapwatch demo; a new run replaces what is here\n"), 0o644); err != nil {
		return err
	}
	for _, sub := range []string{"state", "sim"} {
		if err := os.Mkdir(d.path(sub), 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(d.path("policy.yaml"), []byte(demoPolicy), 0o644)
}

// generate writes the plant's capture and its answer key. The plant's
// clock starts now, so that the daemon sees packets as fresh as a tap's.
func (d *demo) generate() error {
	d.pcap = d.path("plant.pcap")
	f, err := os.Create(d.pcap)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	sc := sim.Scenario{Seed: d.seed, Start: time.Now().Truncate(time.Second), Learn: demoLearn,
		Monitor: time.Duration(len(demoAttacks)) * (sim.MinAttackSlot + 5*time.Second), Attacks: demoAttacks}
	truth, err := sim.Generate(w, sc)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("generating the plant: %w", err)
	}
	d.truth = truth
	var key bytes.Buffer
	if err := truth.WriteJSON(&key); err != nil {
		return err
	}
	if err := os.WriteFile(d.path("truth.jsonl"), key.Bytes(), 0o644); err != nil {
		return err
	}
	var masters, modbusDevs, dnp3Devs []string
	for _, h := range truth.Hosts {
		name := h.Name + " " + h.Addr.String()
		switch h.Role {
		case "hmi", "ews", "scada":
			masters = append(masters, name)
		case "plc", "modbus-gateway":
			modbusDevs = append(modbusDevs, name)
		case "outstation":
			dnp3Devs = append(dnp3Devs, name)
		}
	}
	d.say("2. The plant: %s, %d packets: %s of normal traffic, then %s with %d attacks hidden in it.",
		d.pcap, truth.Packets, demoLearn, truth.End.Sub(truth.LearnEnd).Round(time.Second), len(truth.Attacks))
	d.say("   masters: %s", strings.Join(masters, ", "))
	d.say("   Modbus devices: %s", strings.Join(modbusDevs, ", "))
	d.say("   DNP3 outstations: %s", strings.Join(dnp3Devs, ", "))
	d.say("   (the answer key, what each attack is and when: %s)", d.path("truth.jsonl"))
	return nil
}

// learn learns the first part of the capture, as tapwatch learn would
// from a capture of it, writes the baseline and prints an excerpt.
func (d *demo) learn() error {
	src := capture.OpenFiles(d.pcap)
	defer src.Close()
	l, _, err := pipeline.Learn(context.Background(), untilSource{src, d.truth.LearnEnd}, dpi.Config{})
	if err != nil {
		return err
	}
	b, text, err := formatBaseline(l, policy.DefaultMargin, fmt.Sprintf("%s, its first %s", d.pcap, demoLearn))
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.path("baseline.yaml"), text, 0o644); err != nil {
		return err
	}
	d.say("\n3. Learning what normal looks like from the first %s: %d requests, %d assets, %d conversations -> %s",
		demoLearn, l.Stats().Requests, len(b.Assets), len(b.Baseline.Conversations), d.path("baseline.yaml"))
	d.say("   The HMI's conversation with the pump station PLC, as learned (a value written outside min-max,")
	d.say("   widened by %g%% of its width, will raise an alert):", policy.DefaultMargin*100)
	for _, line := range baselineExcerpt(text) {
		d.say("     %s", line)
	}
	d.say("   And a rule of the plant engineer's own, in %s: the pump is rated to 400 rpm.", d.path("policy.yaml"))
	d.policy, err = pipeline.PolicyFiles{Policy: d.path("policy.yaml"), Learned: b, LearnedFile: d.path("baseline.yaml")}.Load()
	return err
}

// baselineExcerpt is the first conversation of a formatted baseline.
func baselineExcerpt(text []byte) []string {
	var out []string
	in := false
	for _, line := range strings.Split(string(text), "\n") {
		switch {
		case strings.HasPrefix(line, "    - src:") && in:
			return out
		case strings.HasPrefix(line, "    - src:"):
			in = true
		}
		if in && strings.TrimSpace(line) != "" {
			out = append(out, strings.TrimPrefix(line, "    "))
		}
	}
	return out
}

// untilSource ends a capture at a time.
type untilSource struct {
	src capture.Source
	end time.Time
}

func (u untilSource) ReadPacket(ci *capture.Info) ([]byte, error) {
	data, err := u.src.ReadPacket(ci)
	if err == nil && !ci.Timestamp.Before(u.end) {
		return nil, io.EOF
	}
	return data, err
}

// monitor runs the daemon on the capture with the panel, the tail and the
// button, and stops them all.
func (d *demo) monitor(ctx context.Context, broker *uplink.Embedded) error {
	cfg, err := d.config(broker.URL())
	if err != nil {
		return err
	}
	plan, err := hardwarePlan(cfg)
	if err != nil {
		return err
	}
	// The panel is drawn on standard output, under the tail's lines; on a
	// terminal, the log (standard error, warnings only) scrolls above it.
	f, tty := d.stdout.(*os.File)
	tty = tty && hw.IsTerminal(f)
	if tty {
		d.panel = hw.TerminalPanel(f)
	} else {
		d.panel = hw.NewPanel(d.stdout, false, false)
	}
	d.out = d.panel.Wrap(d.stdout)
	defer func() { d.out = d.stdout }()
	errOut := d.errOut
	if ef, ok := errOut.(*os.File); ok && tty && hw.IsTerminal(ef) {
		d.errOut = d.panel.Wrap(errOut)
	}
	defer func() { d.errOut = errOut }()
	log := slog.New(slog.NewTextHandler(d.errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))

	d.say("\n4. Monitoring the rest with the daemon's code, fed from the capture %gx faster than the plant ran.", d.speed)
	d.say("   The box's LEDs: RUN green, LINK amber, UPLINK blue, ALERT red (docs/leds.md); the alarm relay pulls in at high.")
	d.say("5. The security center's tapwatch tail, subscribed to the box's topics under %s/%s/%s/,", uplink.DefaultTopicPrefix, demoSite, demoSensor)
	d.say("   printing its alerts, status and stats (the assets only name the devices):\n")

	if err := d.startTail(ctx, broker); err != nil {
		return err
	}
	defer d.stopTail() // on the way out of an error; the normal end stops it first
	pub, quarantined, err := uplink.New(*cfg.Uplink, cfg.StateDir, version, log.With("part", "uplink"))
	if quarantined != nil {
		log.Warn("spool damaged: quarantined", "err", quarantined)
	}
	if err != nil {
		return err
	}
	closePub := sync.OnceValue(pub.Close) // made here, so closed here, after the daemon
	defer closePub()
	paced := newPacedSource(d.pcap, d.truth.LearnEnd, d.speed)
	opts := daemon.Options{Version: version, Log: log,
		Open: func(*config.Config) ([]capture.LiveSource, error) { return []capture.LiveSource{paced}, nil },
		Links: func(names ...string) ([]capture.LinkInfo, error) {
			out := make([]capture.LinkInfo, len(names))
			for i, n := range names {
				out[i] = capture.LinkInfo{Name: n, Exists: true, AdminUp: true, Carrier: true, OperState: "up"}
			}
			return out, nil
		}}
	publishTo(&opts, pub)
	dm, err := daemon.New(cfg, opts)
	if err != nil {
		return err
	}
	box := startHardware(plan, d.panel, dm, log)
	pub.Start()
	runCtx, stopDaemon := context.WithCancel(context.Background())
	defer stopDaemon()
	ran := make(chan error, 1)
	go func() { ran <- dm.Run(runCtx, nil) }()

	// The capture plays; then a technician presses the button.
	select {
	case <-paced.finished:
		if paced.err != io.EOF {
			log.Error("capture", "err", paced.err)
		}
	case <-ctx.Done():
	case err := <-ran:
		closePub()
		box.stop(false)
		return fmt.Errorf("the daemon stopped: %w", err)
	}
	if ctx.Err() == nil {
		d.say("\n   The capture has played. A technician sees ALERT blinking and presses the box's button:")
		d.press()
		waitUntil(ctx, 3*time.Second, func() bool {
			d.received.mu.Lock()
			defer d.received.mu.Unlock()
			return d.received.acked
		})
		sleepCtx(ctx, 1500*time.Millisecond) // time to see the panel with ALERT off
	}
	stopDaemon()
	err = <-ran
	closePub()
	box.stop(err == nil)
	// The offline status comes last; everything the box sent is in by
	// then. Interrupted too, the tail shows the box going offline.
	select {
	case <-d.received.offline:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(d.errOut, "tapwatch demo: the tail did not see the box's offline status within 10s")
	}
	d.stopTail()
	return errors.Join(err, d.received.tailErr, d.received.fileErr)
}

// config is the daemon's config: the fake tap, the policy and baseline,
// the embedded broker, the terminal panel and a simulated button.
func (d *demo) config(broker string) (*config.Config, error) {
	abs, err := filepath.Abs(d.dir)
	if err != nil {
		return nil, err
	}
	y := fmt.Sprintf(`site: %s
sensor: %s
interfaces: [%s]
policy: %s
baseline: %s
state_dir: %s
uplink:
  brokers: [%s]
  stats_interval: 10m
hardware:
  board: none
  button: {pin: "sim:button"}
  watchdog: none
  panel: on
  sim_dir: %s
`, demoSite, demoSensor, demoIface, filepath.Join(abs, "policy.yaml"), filepath.Join(abs, "baseline.yaml"),
		filepath.Join(abs, "state"), broker, filepath.Join(abs, "sim"))
	cfg, err := config.Parse([]byte(y), "demo config")
	if err != nil {
		return nil, fmt.Errorf("%s\n%s", strings.Join(config.Errors(err), "\n"), y)
	}
	return cfg, nil
}

// press presses and releases the simulated button (active low: 0 is
// pressed), long enough for the controller's debouncing.
func (d *demo) press() {
	path := d.path(filepath.Join("sim", "button"))
	err := os.WriteFile(path, []byte("0\n"), 0o644)
	time.Sleep(250 * time.Millisecond)
	if err == nil {
		err = os.WriteFile(path, []byte("1\n"), 0o644)
	}
	if err != nil {
		fmt.Fprintf(d.errOut, "tapwatch demo: pressing the simulated button: %v\n", err)
	}
}

// startTail subscribes the security center's tail: text on the terminal,
// the alerts as JSON lines in alerts.jsonl, the tally in d.received.
func (d *demo) startTail(ctx context.Context, broker *uplink.Embedded) error {
	f, err := os.Create(d.path("alerts.jsonl"))
	if err != nil {
		return err
	}
	r := &d.received
	r.file, r.offline, r.tailDone = bufio.NewWriter(f), make(chan struct{}), make(chan struct{})
	sawAlert := false
	observe := func(msg any, retained bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch m := msg.(type) {
		case *event.Alert:
			r.alerts = append(r.alerts, m)
			if m.Count <= 1 {
				r.bySev.Add(m.Severity)
			}
			sawAlert = true
			line, err := json.Marshal(m)
			if err == nil {
				_, err = r.file.Write(append(line, '\n'))
			}
			if err != nil && r.fileErr == nil {
				r.fileErr = fmt.Errorf("%s: %w", d.path("alerts.jsonl"), err)
			}
		case *event.Stats:
			r.stats = m
		case *event.Status:
			if sawAlert && m.Unacked == (event.Severities{}) {
				r.acked = true
			}
			if m.State == event.StateOffline && !retained {
				select {
				case <-r.offline:
				default:
					close(r.offline)
				}
			}
		}
	}
	// Assets are subscribed to (they share the alerts' seq numbers, and
	// name the ends of the alerts) but not printed. The tail's own client
	// id tells its subscription from that of a tail the user runs against
	// the demo's broker (--listen).
	r.tailID = fmt.Sprintf("tapwatch-demo-tail-%d", time.Now().UnixNano())
	tc := uplink.TailConfig{Brokers: []string{broker.URL()}, Site: demoSite, Sensor: demoSensor, ClientID: r.tailID,
		Kinds:  []string{event.KindAlert, event.KindStatus, event.KindStats},
		Format: uplink.FormatText, Colour: colourTerminal(d.stdout), Observe: observe}
	tailCtx, cancel := context.WithCancel(context.Background()) // stopped by stopTail, after the box's offline status
	r.cancel = cancel
	go func() {
		defer close(r.tailDone)
		reps, err := uplink.Tail(tailCtx, tc, d.out, d.errOut)
		r.mu.Lock()
		r.reports, r.tailErr = reps, err
		if err := r.file.Flush(); err != nil && r.fileErr == nil {
			r.fileErr = err
		}
		if err := f.Close(); err != nil && r.fileErr == nil {
			r.fileErr = err
		}
		r.mu.Unlock()
	}()
	if !waitUntil(ctx, 10*time.Second, func() bool { return broker.Subscribed(r.tailID) }) {
		cancel()
		<-r.tailDone
		return errors.Join(errors.New("the tail did not subscribe to the embedded broker within 10s"), ctx.Err(), r.tailErr)
	}
	return nil
}

// stopTail ends the tail and waits for it (again: a no-op).
func (d *demo) stopTail() {
	d.received.cancel()
	<-d.received.tailDone
}

// summary prints what happened and where the files are.
// The summary's figures are the box's last stats message's, which are
// what tapwatch replay --summary counts in the same capture: flows
// created, not those open at the end (none, after a clean stop), and
// malformed messages, not the DNP3 messages only out of turn (an operate
// without select), which are alerts.
func (d *demo) summary(took time.Duration, brokerURL string) {
	r := &d.received
	r.mu.Lock()
	defer r.mu.Unlock()
	d.say("\n6. Summary (the demo took %s)", took.Round(100*time.Millisecond))
	if s := r.stats; s != nil {
		d.say("   packets     %d in %d flows; %d Modbus and %d DNP3 messages decoded, %d malformed",
			s.Packets, s.FlowsCreated, s.Messages[proto.Modbus.String()], s.Messages[proto.DNP3.String()], s.DecodeErrors[proto.Modbus.String()]+s.DecodeErrors[proto.DNP3.String()])
	} else {
		d.say("   packets     %d in the capture (the box's stats message did not arrive)", d.truth.Packets)
	}
	var repeats uint64
	for _, a := range r.alerts {
		if a.Count > 1 {
			repeats++
		}
	}
	line := fmt.Sprintf("   alerts      %d (%s)", r.bySev.Total(), r.bySev)
	if repeats > 0 {
		line += fmt.Sprintf(" and %s of folded repeats (%d messages)", plural(repeats, "report", "reports"), len(r.alerts))
	}
	d.say("%s", line)
	for _, rep := range r.reports {
		if rep.Complete() {
			d.say("   delivery    the security center received every message the box numbered (seq %d-%d), none missing", rep.First, rep.Max)
		} else {
			d.say("   delivery    %d missing, %d duplicates: see the lines above", rep.Missing+rep.Unreceived(), rep.Duplicates)
		}
	}
	// Which attacks were caught: an alert whose first message falls in
	// the attack's time, between its two ends. The capture keeps
	// microseconds, the answer key nanoseconds.
	caught := map[int][]string{}
	normal := 0
	for _, a := range r.alerts {
		if a.Count > 1 {
			continue
		}
		var src, dst netip.Addr
		if a.Src != nil {
			src, _ = netip.ParseAddr(a.Src.IP)
		}
		if a.Dst != nil {
			dst, _ = netip.ParseAddr(a.Dst.IP)
		}
		i := -1
		for j := range d.truth.Attacks {
			if d.truth.Attacks[j].Covers(a.First.Add(time.Microsecond), src, dst, 10*time.Second) {
				i = j
				break
			}
		}
		if i < 0 {
			normal++
			continue
		}
		if by := a.Rule + " (" + a.Severity + ")"; !slices.Contains(caught[i], by) {
			caught[i] = append(caught[i], by)
		}
	}
	d.say("   attacks     %d of the %d in the answer key caught; %d alerts on normal traffic:", len(caught), len(d.truth.Attacks), normal)
	for i, at := range d.truth.Attacks {
		mark, by := "missed", "no alert"
		if rs, ok := caught[i]; ok {
			mark, by = "caught", strings.Join(rs, ", ")
		}
		d.say("     %-6s %-28s %s", mark, at.Kind, by)
	}
	bin := "tapwatch"
	if strings.Contains(os.Args[0], "/") {
		bin = os.Args[0]
	}
	d.say("   files")
	d.say("     %-28s the plant's traffic (pcap; open it in Wireshark too)", d.path("plant.pcap"))
	d.say("     %-28s the answer key: each attack, its frames and time", d.path("truth.jsonl"))
	d.say("     %-28s the rule of the plant engineer's own", d.path("policy.yaml"))
	d.say("     %-28s what was learned, to read and diff", d.path("baseline.yaml"))
	d.say("     %-28s the alerts as the security center received them (JSON lines)", d.path("alerts.jsonl"))
	d.say("   replay them, and read the operations log:")
	d.say("     %s replay --policy %s --baseline %s %s", bin, d.path("policy.yaml"), d.path("baseline.yaml"), d.path("plant.pcap"))
	d.say("     %s replay --ops %s | head", bin, d.path("plant.pcap"))
	if !d.keepBroker {
		d.say("   Nothing is left running: the broker, the daemon and the tail have stopped.")
		return
	}
	d.say("   The daemon and the tail have stopped. The broker stays up at %s until Ctrl-C. In another terminal,", brokerURL)
	d.say("   the security center's tail (the box's retained status and assets at once, then what comes):")
	d.say("     %s tail --broker %s --format text", bin, brokerURL)
	d.say("   and in a third, the capture's alerts published again, as a box named replay1 would:")
	d.say("     %s replay --mqtt %s --site %s --sensor replay1 --state-dir %s --policy %s --baseline %s %s",
		bin, brokerURL, demoSite, d.path("replay-state"), d.path("policy.yaml"), d.path("baseline.yaml"), d.path("plant.pcap"))
}

// waitUntil polls cond every 50ms until it holds (true), ctx ends or the
// time is up (false).
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// pacedSource plays a capture file as a live capture would deliver it:
// the packets before from at once, the rest at their own pace sped up.
// Between packets, and once the file is played, it returns capture.ErrIdle
// (as a quiet tap does) until it is stopped. The timestamps are the
// file's.
type pacedSource struct {
	files    *capture.Files
	from     time.Time
	speed    float64
	finished chan struct{} // closed when the file has played
	stopped  chan struct{}
	stopOnce sync.Once

	// The reader's.
	start   time.Time // when the paced part began
	pending []byte    // a packet read but not yet due
	pendCI  capture.Info
	err     error // the file's end or error, once reached; others may read it once finished is closed
}

func newPacedSource(path string, from time.Time, speed float64) *pacedSource {
	return &pacedSource{files: capture.OpenFiles(path), from: from, speed: speed,
		finished: make(chan struct{}), stopped: make(chan struct{})}
}

const pacedIdle = 200 * time.Millisecond

func (p *pacedSource) ReadPacket(ci *capture.Info) ([]byte, error) {
	select {
	case <-p.stopped:
		if p.err == nil {
			p.err = io.EOF
			p.files.Close()
		}
		return nil, io.EOF
	default:
	}
	if p.err != nil {
		return nil, p.idle(pacedIdle)
	}
	if p.pending == nil {
		data, err := p.files.ReadPacket(&p.pendCI)
		if err != nil {
			p.files.Close()
			if err != io.EOF {
				err = fmt.Errorf("demo capture: %w", err)
			}
			p.err = err
			close(p.finished)
			return nil, p.idle(0)
		}
		p.pending = data
	}
	if p.pendCI.Timestamp.After(p.from) {
		if p.start.IsZero() {
			p.start = time.Now()
		}
		due := p.start.Add(time.Duration(float64(p.pendCI.Timestamp.Sub(p.from)) / p.speed))
		if wait := time.Until(due); wait > 0 {
			if wait > pacedIdle {
				return nil, p.idle(pacedIdle)
			}
			if err := p.idle(wait); err == io.EOF {
				return nil, err
			}
		}
	}
	data := p.pending
	p.pending = nil
	*ci = p.pendCI
	return data, nil
}

// idle waits d, or until stopped: capture.ErrIdle, or io.EOF once stopped.
func (p *pacedSource) idle(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return capture.ErrIdle
	case <-p.stopped:
		return io.EOF
	}
}

func (p *pacedSource) Stop() { p.stopOnce.Do(func() { close(p.stopped) }) }
