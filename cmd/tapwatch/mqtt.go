package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/hw"
	"github.com/tapwatch/tapwatch/uplink"
)

// mqttFlags are the broker options shared by replay (prefixed mqtt-) and
// tail.
type mqttFlags struct {
	brokers      string
	ca           string
	cert, key    string
	serverName   string
	insecure     bool
	username     string
	passwordFile string
	plaintext    bool
}

func (m *mqttFlags) register(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&m.ca, prefix+"ca", "", "PEM `FILE` of the CA that signed the broker's certificate (default: the system's)")
	fs.StringVar(&m.cert, prefix+"cert", "", "PEM `FILE` of the client certificate, for mutual TLS")
	fs.StringVar(&m.key, prefix+"key", "", "PEM `FILE` of the client certificate's private key")
	fs.StringVar(&m.serverName, prefix+"server-name", "", "the `NAME` the broker's certificate must carry (default: the URL's host)")
	fs.BoolVar(&m.insecure, prefix+"insecure-skip-verify", false, "do not verify the broker's certificate (a lab only)")
	fs.StringVar(&m.username, prefix+"username", "", "MQTT user `NAME`")
	fs.StringVar(&m.passwordFile, prefix+"password-file", "", "`FILE` whose first line is the MQTT password")
	fs.BoolVar(&m.plaintext, prefix+"plaintext", false, "allow tcp:// to a broker on another host (without it only TLS leaves this host)")
}

func (m *mqttFlags) brokerList() []string {
	var out []string
	for _, b := range strings.Split(m.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (m *mqttFlags) tls() uplink.TLSConfig {
	return uplink.TLSConfig{CA: m.ca, Cert: m.cert, Key: m.key, ServerName: m.serverName, Insecure: m.insecure}
}

// syncWriter serializes writes: the publisher logs from its goroutines
// to the stderr the command writes to.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// defaultStateDir is where replay keeps its spool: $XDG_STATE_HOME/tapwatch
// or ~/.local/state/tapwatch.
func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tapwatch")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "tapwatch")
	}
	return filepath.Join(os.TempDir(), "tapwatch-state")
}

func defaultSensor() string { return config.Hostname() }

// colourTerminal reports whether w is a terminal that takes colour.
func colourTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && hw.IsTerminal(f) && hw.ColourTerm()
}

const tailSynopsis = `tapwatch tail --broker URL [--site S] [--sensor N] [--kinds LIST] [--format json|text] [--client-id ID] [--count N] [TLS options]

Subscribes to the events of tapwatch sensors and prints each message as
one JSON object a line, with the field names of the wire schema (the same
as replay's alerts; see docs/events.md). With --format text it prints
them for people instead: an alert as its time, severity, sensor, rule and
title; then who did what to which device (the sender, the receiver and its
Modbus unit or DNP3 address, the function, the addresses and the values
written, against what was expected, such as the learned range); then the
ATT&CK for ICS techniques by id and name. Status, asset and stats
messages take a line each; a status only when the sensor's state, links
or uplink change or its alerts are acknowledged (with alerts printed, not
for each one it counts as unacknowledged); an asset only when its line
changes. With --kinds naming alerts or assets, tail subscribes to both,
since they share the sequence numbers it checks, and prints only the
kinds named.

Whatever --kinds, tail watches each sensor's stats, which say how often
they come (every 60 s by default). When a sensor that has sent stats sends
none for 2.5 times that, tail prints a line of its own (OVERDUE in text,
"kind":"stats_overdue" in JSON), and another when they come again
(RESUMED, "stats_resumed"): a sensor hung with its connection up shows no
other way. One whose connection breaks is said offline by its status too:
its Last Will comes at once when its process ends, within 45 s (1.5
keep-alives) when the box or the network fails. A clean stop ends the
watch of a sensor until its stats come again.

It checks each sensor's sequence numbers: alerts and assets are numbered
one by one, so a number skipped is a message lost, and a number seen twice
a duplicate (delivery is at least once). Gaps and duplicates are reported
on standard error as they happen, and per sensor at the end (Ctrl-C, or
--count messages). Status and stats messages carry the last number the
sensor handed out, so the end report also says when messages the sensor
announced never arrived.

With --client-id the session is persistent: the broker keeps the
subscription and queues messages while tail is away, so that tail run
again with the same id receives what it missed.

A broker that cannot be reached is said once on standard error and tried
again until it answers (a security center's tail may start before its
broker). A refusal ends tail at once: a certificate the broker refuses or
tail does not trust, or credentials or a client id refused.

Exit status: 0 when nothing was missing, 1 on an error (a refusal, or
stopped before it ever connected), 2 on a usage error, 3 when messages
were missing.
`

// errMissing marks the exit status 3 of tail.
var errMissing = errors.New("missing")

func cmdTail(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tail")
	var m mqttFlags
	fs.StringVar(&m.brokers, "broker", "", "broker `URL`: tcp://HOST:1883 or ssl://HOST:8883; several, comma-separated, are tried in order")
	m.register(fs, "")
	site := fs.String("site", "", "only the sensors of `SITE` (default: every site)")
	sensor := fs.String("sensor", "", "only sensor `ID` (default: every sensor)")
	kinds := fs.String("kinds", "", "comma-separated `LIST` of kinds: alert, status, asset, stats (default: all)")
	clientID := fs.String("client-id", "", "a persistent session under this MQTT client `ID` (default: a clean session)")
	count := fs.Int("count", 0, "stop after `N` messages (default: run until interrupted)")
	format := fs.String("format", uplink.FormatJSON, "`FORMAT` of the messages printed: json (one object a line) or text (for people)")
	pos, err := parseCommand(fs, args, stdout, tailSynopsis)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("tail takes no arguments, got %q", pos)
	}
	if m.brokers == "" {
		return usageError("tail needs --broker URL")
	}
	if *count < 0 {
		return usageError("--count: %d is not 0 or more", *count)
	}
	tc := uplink.TailConfig{Brokers: m.brokerList(), TLS: m.tls(), Username: m.username, PasswordFile: m.passwordFile,
		Plaintext: m.plaintext, Site: *site, Sensor: *sensor, ClientID: *clientID, Count: *count,
		Format: *format, Colour: colourTerminal(stdout)}
	if *kinds != "" {
		for _, k := range strings.Split(*kinds, ",") {
			tc.Kinds = append(tc.Kinds, strings.TrimSpace(k))
		}
	}
	if err := tc.Validate(); err != nil {
		return usageError("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reps, err := uplink.Tail(ctx, tc, stdout, stderr)
	if err != nil {
		return err
	}
	missing := uint64(0)
	for _, r := range reps {
		if r.Received == 0 && r.Announced == 0 {
			continue
		}
		line := fmt.Sprintf("tapwatch tail: %s/%s: %d received", r.Site, r.Sensor, r.Received)
		if r.Received > 0 {
			line += fmt.Sprintf(" (seq %d-%d)", r.First, r.Max)
		}
		line += fmt.Sprintf(", %d missing, %d duplicates, %d late", r.Missing, r.Duplicates, r.Late)
		if n := r.Unreceived(); n > 0 {
			line += fmt.Sprintf("; the sensor announced seq %d: %d not received", r.Announced, n)
		}
		fmt.Fprintln(stderr, line)
		missing += r.Missing + r.Unreceived()
	}
	if missing > 0 {
		return fmt.Errorf("%w: %d messages", errMissing, missing)
	}
	return nil
}
