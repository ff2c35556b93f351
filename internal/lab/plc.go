package lab

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"time"

	smodbus "github.com/simonvetter/modbus"
)

// PLCConfig is what RunPLC serves.
type PLCConfig struct {
	Listen  string        // host:port
	Unit    uint8         // default 1
	Tick    time.Duration // process simulation step; default 100ms
	Verbose bool          // log every accepted write
	Log     io.Writer     // default io.Discard
	// Ready, when set, is called with the listening address once the
	// server accepts connections.
	Ready func(addr string)
}

// RunPLC serves the plant over Modbus/TCP until ctx is cancelled, and
// returns nil after a clean stop. It logs its start and stop, the server
// library's warnings (refused connections, failed writes) and, with
// Verbose, every accepted write; nothing per request otherwise.
func RunPLC(ctx context.Context, cfg PLCConfig, plant *Plant) error {
	if cfg.Unit == 0 {
		cfg.Unit = 1
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return fmt.Errorf("--listen %q: want ADDR:PORT: %w", cfg.Listen, err)
	}
	logger := log.New(cfg.Log, "plc: ", log.LstdFlags|log.Lmsgprefix)
	if plant == nil {
		plant = NewPlant(cfg.Unit)
	}
	if cfg.Verbose {
		plant.OnWrite = func(client, table string, addr uint16, values []uint16) {
			logger.Printf("write from %s: %s %d = %v", client, table, addr, values)
		}
	}
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{
		URL:        "tcp://" + cfg.Listen,
		Timeout:    5 * time.Minute, // idle sessions are closed after this
		MaxClients: 32,
		Logger:     log.New(cfg.Log, "", log.LstdFlags),
	}, plant)
	if err != nil {
		return fmt.Errorf("modbus server on %s: %w", cfg.Listen, err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("modbus server on %s: %w", cfg.Listen, err)
	}
	logger.Printf("listening on %s, unit %d; pump speed setpoint (holding register 5) %d rpm",
		cfg.Listen, plant.Unit, plant.Holding()[RegPumpSetpoint])
	if cfg.Ready != nil {
		cfg.Ready(cfg.Listen)
	}

	tick := time.NewTicker(cfg.Tick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			err := srv.Stop()
			in := plant.Input()
			logger.Printf("stopped; pump speed %d rpm, tank level %d‰", in[InPumpSpeed], in[InLevel])
			if err != nil {
				return fmt.Errorf("stopping the modbus server: %w", err)
			}
			return nil
		case now := <-tick.C:
			plant.Step(now.Sub(last))
			last = now
		}
	}
}

func cmdPLC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("plc", "--listen ADDR:PORT [--unit N] [-v]",
		`A Modbus/TCP server (github.com/simonvetter/modbus) with a simulated tank
and pump. Holding registers 0-19 (5: pump 3 speed setpoint, 100-200 rpm;
writes out of a register's limits get exception 3), input registers 0-9
(0: pump speed, 1: tank level, 2: valve, 3: flow, 4: motor temperature,
5: uptime; they change over time), coils 0-15 (0: pump run, 1: valve
enable), discrete inputs 0-15. It answers unit --unit, 0 and 255.
It logs nothing per request unless -v; it runs until SIGINT or SIGTERM.
`, stdout, stderr)
	listen := c.fs.String("listen", "", "address and port to listen on, e.g. 10.10.1.20:502 (required)")
	unit := c.fs.Uint("unit", 1, "Modbus unit id (1-247)")
	verbose := c.fs.Bool("v", false, "log every accepted write")
	if err := c.parse(args); err != nil {
		return err
	}
	if *listen == "" {
		return c.usageError("--listen is required")
	}
	if *unit < 1 || *unit > 247 {
		return c.usageError(fmt.Sprintf("--unit %d: want 1-247", *unit))
	}
	if _, port, err := net.SplitHostPort(*listen); err != nil || strings.TrimSpace(port) == "" {
		return c.usageError(fmt.Sprintf("--listen %q: want ADDR:PORT", *listen))
	}
	return RunPLC(ctx, PLCConfig{Listen: *listen, Unit: uint8(*unit), Verbose: *verbose, Log: stderr}, nil)
}
