package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	gmodbus "github.com/goburrow/modbus"
)

// HMIConfig is what RunHMI polls.
type HMIConfig struct {
	PLC        string        // host:port
	Unit       uint8         // default 1
	Interval   time.Duration // between polls; default 1s
	WriteEvery int           // write a setpoint every N polls; 0 never
	Polls      int           // stop after this many polls; 0 runs until ctx ends
	Timeout    time.Duration // of each request; default min(Interval, 3s), at least 500ms
	Verbose    bool          // log every poll
	Log        io.Writer     // default io.Discard
}

// HMIStats counts what RunHMI did.
type HMIStats struct {
	Polls    int // poll cycles completed without an error
	Failures int // poll cycles that ended with an error
	Writes   int // setpoint writes the PLC accepted
	Requests int // Modbus requests sent
	// Last is what the last good poll read: holding registers 0-7 and
	// input registers 0-5.
	Holding [8]uint16
	Input   [6]uint16
	Coils   [8]bool
}

// Setpoints are the pump speed setpoints the HMI writes in turn, all
// within the plant's limits of 100-200 rpm.
var Setpoints = []uint16{165, 180, 160, 135, 120, 150}

// RunHMI polls the PLC every Interval: holding registers 0-7 (FC 3), input
// registers 0-5 (FC 4) and coils 0-7 (FC 1), on one connection that it
// reopens after an error; every WriteEvery polls it writes the next of
// Setpoints to holding register 5 (FC 6). It runs until ctx is cancelled
// (or Polls are done) and returns nil then; it logs connection changes,
// and every poll with Verbose.
func RunHMI(ctx context.Context, cfg HMIConfig) (HMIStats, error) {
	var st HMIStats
	if cfg.Unit == 0 {
		cfg.Unit = 1
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(max(cfg.Interval, 500*time.Millisecond), 3*time.Second)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if _, _, err := net.SplitHostPort(cfg.PLC); err != nil {
		return st, fmt.Errorf("--plc %q: want ADDR:PORT: %w", cfg.PLC, err)
	}
	logger := log.New(cfg.Log, "hmi: ", log.LstdFlags|log.Lmsgprefix)

	h := gmodbus.NewTCPClientHandler(cfg.PLC)
	h.SlaveId = cfg.Unit
	h.Timeout = cfg.Timeout
	h.IdleTimeout = 0 // one long-lived connection, as an HMI keeps
	defer h.Close()
	client := gmodbus.NewClient(h)

	logger.Printf("polling %s unit %d every %v; a setpoint write every %d polls", cfg.PLC, cfg.Unit, cfg.Interval, cfg.WriteEvery)
	var lastErr string
	connected := false
	next := 0 // index into Setpoints
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
loop:
	for n := 1; ctx.Err() == nil; n++ {
		write := cfg.WriteEvery > 0 && n%cfg.WriteEvery == 0
		err := poll(client, &st, write, Setpoints[next%len(Setpoints)])
		switch {
		case err != nil:
			st.Failures++
			// goburrow keeps a connection after a timeout, with a response
			// perhaps still on its way: start again on a new one.
			h.Close()
			if msg := err.Error(); connected || msg != lastErr {
				logger.Printf("poll %d: %v", n, err)
				lastErr = msg
			}
			connected = false
		default:
			st.Polls++
			if write {
				st.Writes++
				next++
			}
			if !connected {
				logger.Printf("connected to %s: pump speed %d rpm (setpoint %d), tank level %d‰",
					cfg.PLC, st.Input[InPumpSpeed], st.Holding[RegPumpSetpoint], st.Input[InLevel])
				connected, lastErr = true, ""
			}
			if cfg.Verbose {
				wrote := ""
				if write {
					wrote = " (written)"
				}
				logger.Printf("poll %d: setpoint %d rpm%s, speed %d rpm, level %d‰, valve %d%%, flow %d l/min, pump run %v",
					n, st.Holding[RegPumpSetpoint], wrote, st.Input[InPumpSpeed], st.Input[InLevel], st.Input[InValve],
					st.Input[InFlow], st.Coils[CoilPumpRun])
			}
		}
		if cfg.Polls > 0 && n >= cfg.Polls {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
	}
	logger.Printf("stopped after %d polls (%d failed), %d setpoint writes", st.Polls+st.Failures, st.Failures, st.Writes)
	return st, nil
}

// poll runs one poll cycle, with the setpoint write first when write is
// set.
func poll(c gmodbus.Client, st *HMIStats, write bool, setpoint uint16) error {
	if write {
		st.Requests++
		if _, err := c.WriteSingleRegister(RegPumpSetpoint, setpoint); err != nil {
			return fmt.Errorf("write holding register %d = %d: %w", RegPumpSetpoint, setpoint, err)
		}
	}
	st.Requests++
	b, err := c.ReadHoldingRegisters(0, uint16(len(st.Holding)))
	if err != nil {
		return fmt.Errorf("read holding registers: %w", err)
	}
	if err := words(st.Holding[:], b); err != nil {
		return fmt.Errorf("read holding registers: %w", err)
	}
	st.Requests++
	if b, err = c.ReadInputRegisters(0, uint16(len(st.Input))); err != nil {
		return fmt.Errorf("read input registers: %w", err)
	}
	if err := words(st.Input[:], b); err != nil {
		return fmt.Errorf("read input registers: %w", err)
	}
	st.Requests++
	if b, err = c.ReadCoils(0, uint16(len(st.Coils))); err != nil {
		return fmt.Errorf("read coils: %w", err)
	}
	if len(b) < (len(st.Coils)+7)/8 {
		return fmt.Errorf("read coils: %d bytes for %d coils", len(b), len(st.Coils))
	}
	for i := range st.Coils {
		st.Coils[i] = b[i/8]&(1<<(i%8)) != 0
	}
	return nil
}

func words(dst []uint16, b []byte) error {
	if len(b) != 2*len(dst) {
		return fmt.Errorf("%d bytes for %d registers", len(b), len(dst))
	}
	for i := range dst {
		dst[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return nil
}

func cmdHMI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("hmi", "--plc ADDR:PORT [--interval 1s] [--write-every N] [--unit N] [-v]",
		`A Modbus/TCP master (github.com/goburrow/modbus), as an HMI: every interval
it reads holding registers 0-7 (FC 3), input registers 0-5 (FC 4) and
coils 0-7 (FC 1) on one long-lived connection, and every N polls it writes
a valid pump speed setpoint (100-200 rpm) to holding register 5 (FC 6).
It logs connection changes (and every poll with -v), reconnects after an
error, and runs until SIGINT or SIGTERM.
`, stdout, stderr)
	plc := c.fs.String("plc", "", "the PLC's address and port, e.g. 10.10.1.20:502 (required)")
	interval := c.fs.Duration("interval", time.Second, "time between polls")
	writeEvery := c.fs.Int("write-every", 10, "write a setpoint every N polls (0: never)")
	unit := c.fs.Uint("unit", 1, "Modbus unit id (1-247)")
	polls := c.fs.Int("polls", 0, "stop after N polls (0: run until stopped)")
	verbose := c.fs.Bool("v", false, "log every poll")
	if err := c.parse(args); err != nil {
		return err
	}
	switch {
	case *plc == "":
		return c.usageError("--plc is required")
	case *interval <= 0:
		return c.usageError(fmt.Sprintf("--interval %v: want a positive duration", *interval))
	case *writeEvery < 0:
		return c.usageError(fmt.Sprintf("--write-every %d: want 0 or more", *writeEvery))
	case *polls < 0:
		return c.usageError(fmt.Sprintf("--polls %d: want 0 or more", *polls))
	case *unit < 1 || *unit > 247:
		return c.usageError(fmt.Sprintf("--unit %d: want 1-247", *unit))
	}
	if _, _, err := net.SplitHostPort(*plc); err != nil {
		return c.usageError(fmt.Sprintf("--plc %q: want ADDR:PORT", *plc))
	}
	_, err := RunHMI(ctx, HMIConfig{PLC: *plc, Unit: uint8(*unit), Interval: *interval, WriteEvery: *writeEvery,
		Polls: *polls, Verbose: *verbose, Log: stderr})
	return err
}
