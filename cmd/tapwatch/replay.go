package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/learn"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
	"github.com/tapwatch/tapwatch/uplink"
)

const replaySynopsis = `tapwatch replay [--policy FILE] [--baseline FILE | --learn DURATION [--margin F]] [--fail-on SEVERITY] [--ops | --summary | --json] [--site S] [--sensor N] [--mqtt URL [--state-dir DIR] [MQTT options]] [--modbus-ports LIST] [--dnp3-ports LIST] [--modbus-rtu-ports LIST] [--max-flows N] FILE...

Decodes pcap and pcapng capture files, in the order given, as one stream
(flows continue across files; a file named twice is refused), runs the built-in detectors and the rules
of the policy on every message, and prints the alerts, one JSON object a
line: the alert message of the wire schema (see docs/events.md), header
included, as 'tapwatch tail' prints it. In the header, sensor and site
are --sensor and --site, seq numbers the lines from 1, and ts, when the
sensor made the message, is the capture time of the alert's last packet
(its "last"), so that a replay of the same files prints the same lines.
The id is the alert's number within the replay. An alert that repeats is
folded: it is printed when it first fires, with count 1, and again with
the same id, "repeat":true after the id, and its total count at the end
of its folding window. When it is done it writes a one-line tally to
standard error: packets, messages, alerts by severity, and the reports
of folded repeats, with the lines printed in all.

The built-in detectors are always on; a policy file tunes or disables
them by id. With --policy its rules are checked too. With --baseline the
baseline a 'tapwatch learn' wrote is enforced as well: new masters,
conversations, function codes, addresses and points, written values out
of their learned range and write rates far above normal raise the
baseline-* alerts. With --learn the first DURATION of capture time is
learned instead, and the rest monitored against it, in one pass; when
the capture ends first, a warning on standard error says so.

Instead of the alerts, --ops prints the operations log: one JSON object
a line for every Modbus request and response and every DNP3 fragment and
link-only frame (see docs/ops-log.md); --summary prints a summary:
packets, flows, messages by function code, anomalies (malformed
messages, and DNP3 messages that break select-before-operate or flood,
which may be well formed), alerts by severity and the time taken; --json
prints that summary as one JSON object.

With --mqtt the alerts are also published to an MQTT broker, as the
daemon publishes them (see docs/events.md): spooled on disk in
--state-dir first, sent at QoS 1 and removed from the spool when the
broker acknowledges them, with the asset inventory, the status and a
final stats message. What is published has the seq, ts (the time it was
spooled) and id of the publisher, not those printed. Replay waits up to
--mqtt-wait at the end for the broker's acknowledgements; what is still
unacknowledged stays in the spool for the next run with the same
--sensor and --state-dir, and the exit status is 1. Plaintext tcp:// is
allowed to this host only, unless --mqtt-plaintext is given; ssl://
verifies the broker's certificate.

A FILE of - is standard input (tcpdump -w - | tapwatch replay -); it can
be named once. Each other file is opened and its header read before
anything is printed: one that cannot be (missing, unreadable, not a pcap
or pcapng file) is reported with its name, and nothing else is done. A
file damaged further on is reported with its name and the record that
could not be read; the records before it are still decoded, the other
files too, and the exit status is 1.

Exit status: 0 on success, 1 when something failed (a damaged capture
file or an invalid policy), 2 on a usage error, 3 when an alert at or
above the --fail-on severity fired (and nothing failed).
`

// cpuProfileFlag registers --cpu-profile on replay's flags in a build
// with the cpuprofile tag (cpuprofile.go), for make pgo-profile and
// performance work; the shipped build leaves runtime/pprof out. It returns
// what starts the profile, if the flag was given, and then stops it.
var cpuProfileFlag func(fs *flag.FlagSet) (start func() (stop func() error, err error))

// errAlerts marks the exit status 3: alerts at or above --fail-on.
var errAlerts = errors.New("--fail-on")

// alertWriter is replay's alert sink: it prints alerts as JSON lines and
// counts them.
type alertWriter struct {
	w            io.Writer // nil: count only
	sensor, site string    // of the header of the lines printed
	seq          uint64    // of the last line printed
	buf          []byte
	err          error
	counts       event.Severities // alerts, their first reports
	repeats      uint64           // reports of folded repeats of an alert already reported
}

func (a *alertWriter) Alert(al *rules.Alert) {
	if al.Count <= 1 {
		a.counts.Add(al.Severity.String())
	} else {
		a.repeats++
	}
	if a.w == nil || a.err != nil {
		return
	}
	a.seq++
	ev := al.Event()
	// The header a replay can give: its seq numbers the lines, and its
	// ts, when the sensor made the message, is the capture time of the
	// alert's last packet, so that a replay prints the same every time.
	ev.SetHeader(a.sensor, a.site, a.seq, al.Last.UTC())
	ev.ID = al.ID
	a.buf = appendAlertLine(a.buf[:0], ev, al.Count > 1)
	_, a.err = a.w.Write(a.buf)
}

// appendAlertLine appends ev as a JSON line, the JSON tapwatch tail
// prints for an alert. A report of folded repeats says "repeat":true
// after its id, so that it is not taken for one more alert: its id was
// printed before, with count 1.
func appendAlertLine(b []byte, ev *event.Alert, repeat bool) []byte {
	start := len(b)
	b = ev.AppendJSON(b)
	if repeat {
		// The first ,"id": is the key: a string's quotes are escaped, and
		// only the header, which nests nothing, comes before it. The id
		// is a number, which the next comma ends.
		key := []byte(`,"id":`)
		if i := bytes.Index(b[start:], key); i > 0 {
			at := start + i + len(key)
			if j := bytes.IndexByte(b[at:], ','); j > 0 {
				b = slices.Insert(b, at+j, []byte(`,"repeat":true`)...)
			}
		}
	}
	return append(b, '\n')
}

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay")
	ops := fs.Bool("ops", false, "print the operations log (JSON lines) instead of the alerts")
	summary := fs.Bool("summary", false, "print a summary of what was decoded and detected instead of the alerts")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object instead of the alerts")
	ports := fs.String("modbus-ports", "502", "comma-separated TCP/UDP ports that carry Modbus")
	dnpPorts := fs.String("dnp3-ports", "20000", "comma-separated TCP/UDP ports that carry DNP3 (DNP3 is also recognised on other ports by its link header)")
	rtuPorts := rtuPortsFlag(fs)
	maxFlows := fs.Int("max-flows", dpi.DefaultMaxFlows, "flow table size; the least recently used flow is evicted when full")
	policyPath := fs.String("policy", "", "check the rules of policy `FILE` too, with its settings of the built-in detectors")
	failOn := fs.String("fail-on", "", "exit with status 3 when an alert of `SEVERITY` (info, low, medium, high, critical) or above fired")
	baselinePath := fs.String("baseline", "", "enforce the learned baseline of `FILE` (written by tapwatch learn)")
	learnFor := fs.Duration("learn", 0, "learn a baseline over the first `DURATION` of capture time, then enforce it")
	margin := fs.Float64("margin", policy.DefaultMargin, "with --learn: widen learned value ranges by this fraction of their width (at least 1)")
	var mq mqttFlags
	fs.StringVar(&mq.brokers, "mqtt", "", "publish alerts, assets, status and stats to the broker at `URL` (tcp://HOST:1883, ssl://HOST:8883; several, comma-separated, are tried in order)")
	mq.register(fs, "mqtt-")
	site := fs.String("site", "default", "the site `NAME` in the alerts' header and, with --mqtt, in the topics")
	sensorID := fs.String("sensor", defaultSensor(), "the sensor `ID` in the alerts' header and, with --mqtt, in the topics and the MQTT client id")
	stateDir := fs.String("state-dir", defaultStateDir(), "with --mqtt: the `DIR` of the spool and sequence numbers")
	mqttWait := fs.Duration("mqtt-wait", 30*time.Second, "with --mqtt: how long to wait at the end for the broker to acknowledge everything")
	var startProfile func() (func() error, error)
	if cpuProfileFlag != nil {
		startProfile = cpuProfileFlag(fs)
	}
	files, err := parseCommand(fs, args, stdout, replaySynopsis)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError("replay needs at least one capture file")
	}
	if err := checkCaptures(files, stderr); err != nil {
		return err
	}
	if n := countTrue(*ops, *summary, *asJSON); n > 1 {
		return usageError("--ops, --summary and --json each choose what is printed; give one of them")
	}
	if *maxFlows == 0 {
		// dpi.Config reads 0 as "the default"; given on the command line it
		// is a mistake.
		return usageError("--max-flows: 0 is not a flow table size")
	}
	cfg := dpi.Config{MaxFlows: *maxFlows}
	if cfg.ModbusPorts, err = parsePorts(*ports); err != nil {
		return usageError("--modbus-ports: %v", err)
	}
	if cfg.DNP3Ports, err = parsePorts(*dnpPorts); err != nil {
		return usageError("--dnp3-ports: %v", err)
	}
	if err := setRTUPorts(fs, *rtuPorts, &cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError("%v", err)
	}
	var failSeverity policy.Severity
	if *failOn != "" {
		if failSeverity, err = policy.ParseSeverity(*failOn); err != nil {
			return usageError("--fail-on: %v", err)
		}
	}
	if *learnFor < 0 {
		return usageError("--learn: %v is not a duration of capture time", *learnFor)
	}
	if *learnFor > 0 && *baselinePath != "" {
		return usageError("--learn and --baseline both give a baseline; give one of them")
	}
	if !(*margin >= 0) || math.IsInf(*margin, 1) {
		return usageError("--margin: %v is not a number 0 or more", *margin)
	}
	if startProfile != nil {
		stop, err := startProfile()
		if err != nil {
			return err
		}
		if stop != nil {
			defer func() {
				if err := stop(); err != nil {
					fmt.Fprintf(stderr, "tapwatch: --cpu-profile: %v\n", err)
				}
			}()
		}
	}
	// The built-in detectors with their defaults, the policy's settings
	// and rules, and the baseline.
	policy, err := pipeline.PolicyFiles{Policy: *policyPath, Baseline: *baselinePath}.Load()
	if err != nil {
		var fe *pipeline.FileError
		if !errors.As(err, &fe) {
			return err
		}
		for _, line := range strings.Split(fe.Err.Error(), "\n") {
			fmt.Fprintln(stderr, line)
		}
		return fmt.Errorf("invalid %s: %s", fe.What, fe.Path)
	}

	var pub *uplink.Publisher
	if mq.brokers != "" {
		stderr = &syncWriter{w: stderr}
		ucfg := uplink.Config{Brokers: mq.brokerList(), Site: *site, Sensor: *sensorID, TLS: mq.tls(),
			Username: mq.username, PasswordFile: mq.passwordFile, Plaintext: mq.plaintext}
		if err := ucfg.Validate(); err != nil {
			return usageError("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		var quarantined error
		pub, quarantined, err = uplink.New(ucfg, filepath.Join(*stateDir, *sensorID), version, log)
		if quarantined != nil {
			fmt.Fprintf(stderr, "tapwatch: %v\n", quarantined)
		}
		if err != nil {
			return err
		}
		pub.Start()
		defer pub.Close()
		pub.SetStatus(event.Status{State: event.StateMonitoring, Mode: "replay"})
	}

	out := bufio.NewWriterSize(stdout, 1<<16)
	defer out.Flush()
	aw := &alertWriter{sensor: *sensorID, site: *site}
	if !*ops && !*summary && !*asJSON {
		aw.w = out
	}
	sinks := pipeline.Sinks{Alerts: []pipeline.AlertSink{aw}}
	var ow *sensor.OpsWriter
	if *ops {
		ow = sensor.NewOpsWriter(out)
		sinks.Ops = append(sinks.Ops, ow)
	}
	if pub != nil {
		sinks.Alerts = append(sinks.Alerts, pipeline.PublishAlerts(pub))
		sinks.Assets = append(sinks.Assets, pub)
	}
	eo := rules.EngineOptions{Learn: *learnFor, LearnMargin: *margin}
	if *learnFor > 0 {
		eo.Learner = learn.New(learn.Options{})
	}
	if *margin == 0 {
		eo.LearnMargin = -1 // none; 0 would mean the default
	}
	asm, err := pipeline.Assemble(pipeline.Setup{DPI: cfg, Policy: policy, Engine: eo, Sinks: sinks})
	if err != nil {
		return err
	}
	// Collect what loading and building left behind now: a collection
	// that the building started would otherwise run on beside the first
	// packets, in some runs and not in others (docs/performance.md,
	// "Later (10)").
	runtime.GC()
	engine := asm.Engine
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	src := capture.OpenFiles(files...)
	defer src.Close()
	sum, err := asm.Replay(ctx, src)
	sum.Files = len(files)
	if err != nil {
		return err
	}
	if ow != nil && ow.Err() != nil {
		return ow.Err()
	}
	if aw.err != nil {
		return aw.err
	}
	if engine.Learning() {
		fmt.Fprintf(stderr, "tapwatch: warning: the capture ended before --learn %v did: it was all learned, and no baseline was enforced; give a shorter --learn\n", *learnFor)
	}
	switch {
	case *asJSON:
		writeSummaryJSON(out, sum, aw, engine)
	case *summary:
		writeSummary(out, sum, aw, engine)
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if aw.w != nil {
		writeTally(stderr, sum, aw, engine)
	}
	if pub != nil {
		wctx, cancel := context.WithTimeout(ctx, *mqttWait)
		err := pub.Flush(wctx)
		cancel()
		pub.Stats(replayStats(sum, aw, engine)) // after the spooled ones: its seq covers them
		if err != nil {
			st := pub.State()
			why := ""
			if st.LastError != nil {
				why = fmt.Sprintf(" (%v)", st.LastError)
			}
			return fmt.Errorf("--mqtt: %v%s; they stay in the spool in %s and go out on the next run with this --sensor and --state-dir", err, why, filepath.Join(*stateDir, *sensorID))
		}
	}
	if len(sum.Errors) > 0 {
		for _, e := range sum.Errors {
			fmt.Fprintf(stderr, "tapwatch: %v\n", e)
		}
		return fmt.Errorf("%d of %d capture files could not be read to the end", len(sum.Errors), len(files))
	}
	if failSeverity != 0 {
		if st := engine.Stats(); st.MaxSeverity >= failSeverity {
			n := aw.counts.AtOrAbove(failSeverity.String())
			return fmt.Errorf("%w: %d alerts at or above %s (%d suppressed by the alert budget)", errAlerts, n, failSeverity, st.Suppressed)
		}
	}
	return nil
}

// checkCaptures opens each capture file and reads its header, so that a
// file that cannot be read is reported, one line each, before anything
// is printed, published or written. Pipes and devices are only looked
// up: what was read from them would be lost. A file named twice is a
// usage error: its packets would be decoded twice, the second time as a
// replay of the first (dnp3-replay), which no plant did.
func checkCaptures(files []string, stderr io.Writer) error {
	if err := checkTwice(files); err != nil {
		return err
	}
	var bad []error
	for _, name := range files {
		if err := checkCapture(name); err != nil {
			bad = append(bad, err)
		}
	}
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return bad[0]
	}
	for _, err := range bad {
		fmt.Fprintf(stderr, "tapwatch: %v\n", err)
	}
	return fmt.Errorf("%d of %d capture files cannot be read", len(bad), len(files))
}

// checkTwice finds a regular file named twice, by the same path or
// another (a link, ./a and a, two shell patterns that both match it).
func checkTwice(files []string) error {
	var seen []os.FileInfo
	var names []string
	stdin := 0
	for _, name := range files {
		var st os.FileInfo
		var err error
		if name == capture.Stdin {
			if stdin++; stdin > 1 {
				return usageError("- (standard input) is named twice: it can be read once; name it once")
			}
			st, err = os.Stdin.Stat() // a file redirected in may be named as well
		} else {
			st, err = os.Stat(name)
		}
		if err != nil || !st.Mode().IsRegular() {
			continue // checkCapture says what is wrong
		}
		for i, o := range seen {
			if os.SameFile(o, st) {
				if names[i] == name {
					return usageError("%s is named twice: its packets would be read twice; name it once", name)
				}
				return usageError("%s and %s are the same file: its packets would be read twice; name it once", names[i], name)
			}
		}
		seen, names = append(seen, st), append(names, name)
	}
	return nil
}

func checkCapture(name string) error {
	if name == capture.Stdin {
		return nil // read once, as it is decoded; its errors come then
	}
	st, err := os.Stat(name)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %w", name, pe.Err)
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s: is a directory, not a capture file", name)
	case !st.Mode().IsRegular():
		return nil
	}
	f, err := capture.OpenFile(name)
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", name, pe.Err)
	}
	if err != nil {
		return err
	}
	return f.Close()
}

func parsePorts(s string) ([]uint16, error) {
	var ports []uint16
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a port number (1-65535)", f)
		}
		ports = append(ports, uint16(n))
	}
	if len(ports) == 0 {
		return nil, errors.New("no ports given")
	}
	return ports, nil
}

type fcCount struct {
	FC    uint8  `json:"fc"`
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// fcCounts lists the function codes seen, with their names.
func fcCounts(byFC []uint64, name func(uint8) string) []fcCount {
	var out []fcCount
	for fc, n := range byFC {
		if n > 0 {
			out = append(out, fcCount{uint8(fc), name(uint8(fc)), n})
		}
	}
	return out
}

// reasonCounts maps anomaly names to how often they were seen.
func reasonCounts[R ~uint8](byReason []uint64, name func(R) string) map[string]uint64 {
	out := map[string]uint64{}
	for r, n := range byReason {
		if n > 0 {
			out[name(R(r))] = n
		}
	}
	return out
}

func writeCounts(w io.Writer, counts map[string]uint64) {
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  %-40s %d\n", k, counts[k])
	}
}

// replayStats is the stats message sent at the end of a replay.
func replayStats(s sensor.Summary, aw *alertWriter, engine *rules.Engine) *event.Stats {
	st := sensor.NewStats(s.DPI, &s.Messages, aw.counts, engine.Suppressed(), engine.Stats().Evictions())
	st.Uptime = s.Elapsed.Seconds()
	return st
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// alertText says how many alerts of each severity fired, how many
// reports of their folded repeats followed (with lines: how many lines
// that made), and how many the alert budget suppressed:
// "3 alerts (1 critical, 2 medium) and 1 report of folded repeats (4 lines)".
func alertText(aw *alertWriter, engine *rules.Engine, lines bool) string {
	n := aw.counts.Total()
	s := plural(n, "alert", "alerts")
	if by := aw.counts.String(); by != "" {
		s += " (" + by + ")"
	}
	if aw.repeats > 0 {
		s += " and " + plural(aw.repeats, "report", "reports") + " of folded repeats"
		if lines {
			s += fmt.Sprintf(" (%d lines)", n+aw.repeats)
		}
	}
	if sup := engine.Suppressed(); sup > 0 {
		s += fmt.Sprintf(", %d suppressed by the alert budget", sup)
	}
	return s
}

// plural is "1 alert" or "2 alerts".
func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// writeTally writes the line that ends a replay printing alerts.
func writeTally(w io.Writer, s sensor.Summary, aw *alertWriter, engine *rules.Engine) {
	fmt.Fprintf(w, "tapwatch: %d packets, %d Modbus messages, %d DNP3 fragments, %s\n",
		s.Packets, s.Messages.Messages, s.Messages.DNP3.Fragments, alertText(aw, engine, true))
}

func writeSummary(w io.Writer, s sensor.Summary, aw *alertWriter, engine *rules.Engine) {
	c, t := s.DPI, s.Messages
	pps := 0.0
	if sec := s.Elapsed.Seconds(); sec > 0 {
		pps = float64(s.Packets) / sec
	}
	fmt.Fprintf(w, "files      %d\n", s.Files)
	fmt.Fprintf(w, "packets    %d (%d bytes; IPv4 %d, IPv6 %d, TCP %d, UDP %d, not IP %d, VLAN-tagged %d)\n",
		c.Packets, c.Bytes, c.IPv4, c.IPv6, c.TCP, c.UDP, c.NonIP, c.VLANTagged)
	fmt.Fprintf(w, "flows      %d created, %d closed, %d expired, %d evicted, %d mid-stream\n",
		c.FlowsCreated, c.FlowsClosed, c.FlowsExpired, c.FlowsEvicted, c.TCPMidStream)
	fmt.Fprintf(w, "tcp        %d out of order, %d retransmitted, %d overlapping (%d conflicting), %d gaps (%d bytes lost), %d dropped at memory caps, %d resets ignored, peak %d bytes buffered\n",
		c.TCPOutOfOrder, c.TCPRetransmits, c.TCPOverlaps, c.TCPConflicts, c.TCPGaps, c.TCPGapBytes, c.TCPBufferDrops, c.TCPIgnoredRSTs, c.BufferedPeak)
	fmt.Fprintf(w, "modbus     %d messages: %d requests, %d responses, %d exceptions, %d unanswered, %d without request\n",
		t.Messages, t.Requests, t.Responses, t.Exceptions, t.Unanswered, t.Orphans)
	for _, fc := range fcCounts(t.ByFC[:], modbus.FunctionName) {
		fmt.Fprintf(w, "  fc %3d  %-32s %d\n", fc.FC, fc.Name, fc.Count)
	}
	d := &t.DNP3
	fmt.Fprintf(w, "dnp3       %d fragments (%d unsolicited, %d truncated), %d link-only frames, %d runs of garbage, %d flows found on other ports\n",
		d.Fragments, d.Unsolicited, d.Truncated, d.LinkFrames, d.Garbage, c.DNP3Sniffed)
	for _, fc := range fcCounts(d.ByFC[:], dnp3.FunctionName) {
		fmt.Fprintf(w, "  fc %3d  %-32s %d\n", fc.FC, fc.Name, fc.Count)
	}
	fmt.Fprintf(w, "anomalies  %d malformed messages (%d Modbus, %d DNP3), %d IPv4 fragments, %d truncated packets, %d undecodable packets, %d bad IP lengths\n",
		t.Malformed+d.Malformed, t.Malformed, d.Malformed, c.IPv4Fragments, c.Truncated, c.Undecodable+c.UnsupportedL2, c.BadIPLength)
	if t.Malformed > 0 {
		fmt.Fprintf(w, "  modbus: %s\n", plural(t.Malformed, "malformed message", "malformed messages"))
		writeCounts(w, reasonCounts(t.ByReason[:], modbus.Reason.String))
	}
	if d.Anomalous > 0 {
		// A select-before-operate broken or a flood is an anomaly of a
		// message that may be well formed.
		fmt.Fprintf(w, "  dnp3: %s, %d malformed\n", plural(d.Anomalous, "message with anomalies", "messages with anomalies"), d.Malformed)
		writeCounts(w, reasonCounts(d.ByReason[:], dnp3.Reason.String))
	}
	fmt.Fprintf(w, "alerts     %s\n", alertText(aw, engine, false))
	fmt.Fprintf(w, "time       %.3fs (%.0f packets/s)\n", s.Elapsed.Seconds(), pps)
}

type dnp3Summary struct {
	Fragments         uint64            `json:"fragments"`
	LinkFrames        uint64            `json:"link_frames"`
	Garbage           uint64            `json:"garbage"`
	Unsolicited       uint64            `json:"unsolicited"`
	Truncated         uint64            `json:"truncated"`
	ByFC              []fcCount         `json:"by_fc"`
	MalformedMessages uint64            `json:"malformed_messages"`
	AnomalousMessages uint64            `json:"anomalous_messages"` // malformed or misused
	Malformed         map[string]uint64 `json:"malformed"`          // anomalies by reason, misuse included
}

// alertCounts is the alerts object of the JSON summary: the counts by
// severity, then these.
type alertCounts struct {
	event.Severities
	Repeats    uint64 `json:"repeats"` // reports of folded repeats, not counted above
	Suppressed uint64 `json:"suppressed"`
}

func writeSummaryJSON(w io.Writer, s sensor.Summary, aw *alertWriter, engine *rules.Engine) {
	out := struct {
		Files             int               `json:"files"`
		Packets           uint64            `json:"packets"`
		Seconds           float64           `json:"seconds"`
		DPI               dpi.Counters      `json:"dpi"`
		Messages          uint64            `json:"messages"`
		ByFC              []fcCount         `json:"by_fc"`
		MalformedMessages uint64            `json:"malformed_messages"`
		Malformed         map[string]uint64 `json:"malformed"`
		DNP3              dnp3Summary       `json:"dnp3"`
		Alerts            alertCounts       `json:"alerts"`
		Errors            []string          `json:"errors,omitempty"`
	}{
		Files: s.Files, Packets: s.Packets, Seconds: s.Elapsed.Seconds(), DPI: s.DPI,
		Messages: s.Messages.Messages, ByFC: fcCounts(s.Messages.ByFC[:], modbus.FunctionName),
		MalformedMessages: s.Messages.Malformed, Malformed: reasonCounts(s.Messages.ByReason[:], modbus.Reason.String),
	}
	d := &s.Messages.DNP3
	out.DNP3 = dnp3Summary{Fragments: d.Fragments, LinkFrames: d.LinkFrames, Garbage: d.Garbage,
		Unsolicited: d.Unsolicited, Truncated: d.Truncated, ByFC: fcCounts(d.ByFC[:], dnp3.FunctionName),
		MalformedMessages: d.Malformed, AnomalousMessages: d.Anomalous, Malformed: reasonCounts(d.ByReason[:], dnp3.Reason.String)}
	out.Alerts = alertCounts{Severities: aw.counts, Repeats: aw.repeats, Suppressed: engine.Suppressed()}
	for _, e := range s.Errors {
		out.Errors = append(out.Errors, e.Error())
	}
	enc := json.NewEncoder(w)
	enc.Encode(out)
}
