package hw

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mdlayher/watchdog"
)

// WatchdogDevice is a hardware watchdog: Ping restarts its countdown,
// Close disarms it (the kernel's magic close). Closing the file any
// other way, or the process dying, leaves it armed: the board resets
// when the countdown ends.
type WatchdogDevice interface {
	Ping() error
	Close() error
}

// DefaultWatchdog is the usual device; it is opened with
// mdlayher/watchdog.
const DefaultWatchdog = "/dev/watchdog"

// WatchdogEvery is how often a healthy box pings the watchdog (a Pi's
// countdown is 15 s).
const WatchdogEvery = time.Second

// OpenWatchdog opens and arms the watchdog at path: /dev/watchdog with
// mdlayher/watchdog (ioctl keepalive), any other path (another
// /dev/watchdogN, or a fixture in tests) with the kernel API's basic
// mode, where a write is a keepalive and "V" before the close disarms.
func OpenWatchdog(path string) (WatchdogDevice, error) {
	if path == DefaultWatchdog {
		d, err := watchdog.Open()
		if err != nil {
			return nil, fmt.Errorf("watchdog %s: %w", path, err)
		}
		return d, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog %s: %w", path, err)
	}
	return &fileWatchdog{f: f}, nil
}

// fileWatchdog is the kernel watchdog API's basic mode on a file.
type fileWatchdog struct{ f *os.File }

// Ping writes a keepalive; any byte but "V" (which would arm the magic
// close).
func (w *fileWatchdog) Ping() error {
	_, err := w.f.Write([]byte{'\n'})
	return err
}

// Close disarms: "V", then the close.
func (w *fileWatchdog) Close() error {
	if _, err := w.f.Write([]byte("V")); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}

// Watchdog pings a device while the box is alive.
type Watchdog struct {
	Dev  WatchdogDevice
	Path string
	Log  *slog.Logger
}

// Run pings every interval while alive reports true, and stops pinging
// (logging it once) while it reports false, so a hung pipeline resets
// the board. It returns when ctx ends, leaving the device armed: Disarm
// on a clean stop only.
func (w *Watchdog) Run(ctx context.Context, every time.Duration, alive func() bool) {
	log := w.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	pinging, failing := true, false
	for {
		ok := alive()
		switch {
		case ok && !pinging:
			log.Warn("the pipeline is alive again: pinging the hardware watchdog", "device", w.Path)
		case !ok && pinging:
			log.Error("the pipeline is not alive: no more pings to the hardware watchdog; the board resets when it expires unless the pipeline recovers", "device", w.Path)
		}
		pinging = ok
		if ok {
			err := w.Dev.Ping()
			if err != nil && !failing {
				log.Error("hardware watchdog ping", "device", w.Path, "err", err)
			}
			failing = err != nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Disarm stops the watchdog: for a clean stop only.
func (w *Watchdog) Disarm() error { return w.Dev.Close() }
