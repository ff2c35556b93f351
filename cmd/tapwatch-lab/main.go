// Command tapwatch-lab makes the traffic of the lab network that
// scripts/lab.sh builds: a Modbus/TCP PLC (plc), an HMI polling it (hmi),
// and a DNP3 capture for tcpreplay (dnp3-pcap). See `tapwatch-lab help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tapwatch/tapwatch/internal/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := lab.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
