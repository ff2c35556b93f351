package benchtool

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

const usage = `usage:
  tapbench gen [-n PACKETS] [-seed N] -o FILE.pcap
  tapbench floor FILE...
  tapbench run [-n PACKETS] [-rounds N] [-seed N] [-tapwatch PATH] [-tmp DIR] [-json]

gen writes the plant capture: about PACKETS frames of Modbus/TCP polling
and office traffic. floor decodes captures the cheapest way gopacket allows
and prints {"packets","seconds","pps","payload_bytes"} as one JSON line.
run generates a capture, alternates rounds of floor and "tapwatch replay
--json" on it, and prints packets/s and peak RSS with tapwatch/floor ratios.
`

// Main is tapbench's command line; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "gen":
		err = cmdGen(rest, stdout, stderr)
	case "floor":
		err = cmdFloor(rest, stdout, stderr)
	case "run":
		err = cmdRun(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tapbench: unknown command %q\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "tapbench: %v\n", err)
	return 1
}

// errUsage means the flag package or the command already explained.
var errUsage = errors.New("usage")

func flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tapbench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func cmdGen(args []string, stdout, stderr io.Writer) error {
	fs := flags("gen", stderr)
	n := fs.Int("n", DefaultPackets, "number of packets")
	seed := fs.Int64("seed", DefaultSeed, "random seed; the same seed gives the same file")
	out := fs.String("o", "", "output pcap file (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 || *n < 1 {
		fmt.Fprintln(stderr, "tapbench gen: need -o FILE, a positive -n and no arguments")
		return errUsage
	}
	frames, size, err := Generate(*out, *n, *seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d packets, %d bytes\n", *out, frames, size)
	return nil
}

func cmdFloor(args []string, stdout, stderr io.Writer) error {
	fs := flags("floor", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "tapbench floor: need at least one capture file")
		return errUsage
	}
	var total Result
	for _, path := range fs.Args() {
		r, err := FloorFile(path)
		if err != nil {
			return err
		}
		total.Packets += r.Packets
		total.Seconds += r.Seconds
		total.PayloadBytes += r.PayloadBytes
	}
	if total.Seconds > 0 {
		total.PPS = float64(total.Packets) / total.Seconds
	}
	return json.NewEncoder(stdout).Encode(total)
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flags("run", stderr)
	var cfg Config
	fs.IntVar(&cfg.Packets, "n", DefaultPackets, "packets in the main capture (a second one has a quarter of them)")
	fs.IntVar(&cfg.Rounds, "rounds", DefaultRounds, "alternating rounds of floor and tapwatch")
	fs.Int64Var(&cfg.Seed, "seed", DefaultSeed, "random seed of the capture")
	fs.StringVar(&cfg.Tapwatch, "tapwatch", "", `tapwatch binary to measure; "" measures the floor only`)
	fs.StringVar(&cfg.TempDir, "tmp", "", "directory for the temporary captures (default: the system's)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "tapbench run: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	cfg.Log = stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	return rep.WriteTable(stdout)
}
