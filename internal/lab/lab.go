// Package lab is the traffic of the lab network (scripts/lab.sh): a
// Modbus/TCP PLC with a small simulated plant, an HMI that polls it, and a
// DNP3 capture to replay with tcpreplay. cmd/tapwatch-lab is its command
// line; Main is all of it.
package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

const usage = `usage: tapwatch-lab COMMAND [FLAGS]

Traffic for the tapwatch lab network (scripts/lab.sh).

commands:
  plc --listen ADDR:PORT [--unit N] [-v]
        a Modbus/TCP server (simonvetter/modbus) with a small simulated plant:
        holding register 5 is the pump speed setpoint (100-200 rpm), input
        registers 0-5 change over time; see "tapwatch-lab plc --help"
  hmi --plc ADDR:PORT [--interval 1s] [--write-every N] [--unit N] [-v]
        a Modbus/TCP master (goburrow/modbus) that polls the PLC's holding and
        input registers and coils every interval, and writes a valid pump
        speed setpoint every N polls
  dnp3-pcap -o FILE [--master IP] [--outstation IP]
        writes a pcap of a DNP3/TCP master polling an outstation on port
        20000 (class polls, an analog output select/operate, integrity
        polls), for tcpreplay

plc and hmi run until SIGINT or SIGTERM and then exit 0.
"tapwatch-lab COMMAND --help" describes a command's flags.
`

// Main runs the command line args (without the program name) until ctx is
// cancelled (the caller cancels it on SIGINT and SIGTERM), and returns the
// exit code: 0 on success and after a clean stop, 1 on a failure, 2 on a
// usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "plc":
		err = cmdPLC(ctx, rest, stdout, stderr)
	case "hmi":
		err = cmdHMI(ctx, rest, stdout, stderr)
	case "dnp3-pcap":
		err = cmdDNP3Pcap(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tapwatch-lab: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "tapwatch-lab: %v\n", err)
	return 1
}

// errUsage means the usage error was already printed.
var errUsage = errors.New("usage")

// command is one subcommand's flag set and its help text.
type command struct {
	fs       *flag.FlagSet
	name     string
	synopsis string // the usage line after "tapwatch-lab NAME"
	about    string // what the command does, for --help
	stdout   io.Writer
	stderr   io.Writer
}

func newCommand(name, synopsis, about string, stdout, stderr io.Writer) *command {
	fs := flag.NewFlagSet("tapwatch-lab "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by parse
	return &command{fs: fs, name: name, synopsis: synopsis, about: about, stdout: stdout, stderr: stderr}
}

// help writes the command's usage and flags to w.
func (c *command) help(w io.Writer) {
	fmt.Fprintf(w, "usage: tapwatch-lab %s %s\n\n%s\nflags:\n", c.name, c.synopsis, c.about)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// parse parses args: --help prints the help on stdout and returns
// flag.ErrHelp; a bad flag or a stray argument prints the error and the
// help on stderr and returns errUsage.
func (c *command) parse(args []string) error {
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.help(c.stdout)
		return err
	}
	if err == nil && c.fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", strings.Join(c.fs.Args(), " "))
	}
	if err != nil {
		return c.usageError(err.Error())
	}
	return nil
}

// usageError prints msg and the help on stderr and returns errUsage.
func (c *command) usageError(msg string) error {
	fmt.Fprintf(c.stderr, "tapwatch-lab %s: %s\n\n", c.name, msg)
	c.help(c.stderr)
	return errUsage
}
