package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/hw"
	"github.com/tapwatch/tapwatch/internal/sdnotify"
	"github.com/tapwatch/tapwatch/internal/yamlpos"
	"github.com/tapwatch/tapwatch/sensor/daemon"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
	"github.com/tapwatch/tapwatch/uplink"
)

const runSynopsis = `tapwatch run [-c FILE] [--mqtt URL] [--site S] [--sensor ID] [--log-level L]

The daemon: captures from the configured interfaces (a tap or mirror
port; two for the two ports of a passive tap), decodes Modbus/TCP and
DNP3, runs the built-in detectors, the policy's rules and the baseline,
and publishes alerts, assets, status and stats over MQTT (see
docs/events.md). docs/config.md describes the config file.

In mode learn it learns what is normal for the configured period (a
restart resumes it), writes it to STATE_DIR/learned.yaml, and monitors
against it from then on.

It needs CAP_NET_RAW and CAP_NET_ADMIN (root, or the systemd unit's
capabilities). It never transmits on the capture interfaces.

Signals: SIGHUP reloads the policy and the baseline (a file with a
mistake is reported and the old policy stays active; the rules it leaves
unchanged keep their rate counts and the alerts they are folding, so a
reload neither misses a burst nor raises an alert again); SIGTERM and SIGINT
stop it gracefully: the capture is drained, the learning checkpoint
saved, the spool flushed to the broker and the offline status published.
Under systemd (Type=notify) it reports readiness and its status, and
pings the watchdog while the pipeline is alive.

It shows its state on the box's LEDs, relays and terminal panel
(hardware: in the config; docs/leds.md), acknowledges alerts on a press
of the button (the alerts not yet acknowledged are kept in
STATE_DIR/unacked.json, so a restart keeps ALERT lit and the alarm relay
pulled in), and pings the hardware watchdog (/dev/watchdog) while the
pipeline is alive (it is armed once the capture is open); a clean stop
disarms it, a crash or hang leaves it to reset the board.

Exit status: 0 after a clean stop, 1 when it cannot start (a bad config,
policy or baseline, a capture interface it cannot open) or the capture
fails, 2 on a usage error.
`

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run")
	path := fs.String("c", config.DefaultPath, "the config `FILE`")
	fs.StringVar(path, "config", config.DefaultPath, "the config `FILE` (same as -c)")
	broker := fs.String("mqtt", "", "publish to the broker at `URL`, in place of the config's uplink brokers (tcp://HOST:1883, ssl://HOST:8883)")
	site := fs.String("site", "", "the site `NAME`, in place of the config's")
	sensorID := fs.String("sensor", "", "the sensor `ID`, in place of the config's")
	level := fs.String("log-level", "", "log `LEVEL` (debug, info, warn, error), in place of the config's")
	pos, err := parseCommand(fs, args, stdout, runSynopsis)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("run takes no arguments, got %q (the config file goes with -c)", pos)
	}
	cfg, err := loadRunConfig(*path, *broker, *site, *sensorID, *level)
	if errors.Is(err, errUsage) {
		return err
	}
	if err != nil {
		for _, line := range config.Errors(err) {
			fmt.Fprintf(stderr, "tapwatch: %s\n", line)
		}
		return errors.New("invalid configuration")
	}
	plan, err := hardwarePlan(cfg)
	if err != nil {
		for _, line := range config.Errors(err) {
			fmt.Fprintf(stderr, "tapwatch: %s\n", line)
		}
		return errors.New("invalid configuration")
	}
	// The terminal panel, when there is one, is drawn on standard error
	// under the log lines.
	var panel *hw.Panel
	logTo := stderr
	if stderr == io.Writer(os.Stderr) {
		if panel = plan.Panel(os.Stderr); panel != nil {
			logTo = panel.Wrap(stderr)
		}
	}
	log := newLogger(logTo, cfg.Log)
	for _, w := range plan.Warnings {
		log.Warn("hardware: " + w)
	}
	notify, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("systemd notification disabled", "err", err)
	}
	opts := daemon.Options{Version: version, Log: log, Notify: notify}
	var pub *uplink.Publisher
	closePub := func() error { return nil }
	if cfg.Uplink != nil {
		if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		var quarantined error
		pub, quarantined, err = uplink.New(*cfg.Uplink, cfg.StateDir, version, log.With("part", "uplink"))
		if quarantined != nil {
			log.Error("spool damaged: quarantined, starting a new one", "err", quarantined)
		}
		if err != nil {
			return err
		}
		// Made here, so closed here, once the daemon is done with it.
		closePub = sync.OnceValue(pub.Close)
		defer closePub()
		publishTo(&opts, pub)
	}
	d, err := daemon.New(cfg, opts)
	if err != nil {
		for _, line := range config.Errors(err) {
			log.Error("cannot start", "err", line)
		}
		return errors.New("cannot start; see the log above")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	box := startHardware(plan, panel, d, log)
	if pub != nil {
		pub.Start()
	}
	err = d.Run(ctx, reload)
	closePub() // the offline status, before the LEDs go off
	box.stop(err == nil)
	return err
}

// publishTo makes pub the daemon's publisher: a sink of its alerts and
// asset messages, and where its status and stats go. The daemon neither
// starts nor closes it: its maker does.
func publishTo(o *daemon.Options, pub *uplink.Publisher) {
	o.Sinks.Alerts = append(o.Sinks.Alerts, pipeline.PublishAlerts(pub))
	o.Sinks.Assets = append(o.Sinks.Assets, pub)
	o.Status, o.Stats, o.Uplink = pub, pub, pub
}

// loadRunConfig loads the config and applies the command line's
// overrides, then validates the result.
func loadRunConfig(path, broker, site, sensorID, level string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if site == "" && sensorID == "" && broker == "" && level == "" {
		return cfg, nil
	}
	if site != "" {
		cfg.Site = site
	}
	if sensorID != "" {
		cfg.Sensor = sensorID
	}
	if broker != "" {
		if cfg.Uplink == nil {
			cfg.Uplink = &uplink.Config{}
		}
		cfg.Uplink.Brokers = []string{broker}
	}
	if level != "" {
		cfg.Log.Level = level
	}
	cfg.SetDefaults() // also hands site and sensor to the uplink
	return cfg, flagErrors(cfg.Validate(), map[string]string{"site": site, "sensor": sensorID, "uplink.brokers[0]": broker, "log.level": level})
}

// runFlags name the fields run's flags set in place of the config's.
var runFlags = map[string]string{"site": "--site", "sensor": "--sensor", "uplink.brokers[0]": "--mqtt", "log.level": "--log-level"}

// flagErrors turns what Validate found wrong with a value given on the
// command line (given: each field's value, "" when not given) into a
// usage error naming the flag, rather than the line of the config file
// whose value it replaced.
func flagErrors(err error, given map[string]string) error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var bad []string
	for _, e := range errs {
		var ye *yamlpos.Error
		if errors.As(e, &ye) && given[ye.Path] != "" {
			bad = append(bad, runFlags[ye.Path]+": "+ye.Msg)
		}
	}
	if len(bad) > 0 {
		return usageError("%s", strings.Join(bad, "; "))
	}
	return err
}

// newLogger logs to w in the config's format, at its level.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(l.Level))
	o := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
