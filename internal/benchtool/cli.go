package benchtool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/tapwatch/tapwatch/internal/atomicfile"
	"github.com/tapwatch/tapwatch/internal/pgotext"
)

const usage = `usage:
  tapbench gen [-plant site|small] [-n PACKETS] [-seed N] -o FILE.pcap
  tapbench policy [-plant site|small] [-n RULES] [-o FILE.yaml]
  tapbench floor FILE...
  tapbench pgo -o FILE.pprof PROFILE.txt
  tapbench run [-plant site|small] [-n PACKETS] [-rounds N] [-seed N] [-rules N]
               [-instr PACKETS] [-tapwatch PATH] [-stages] [-tmp DIR] [-json]

gen writes a plant capture: by default the site plant (pcapgen.SitePlant:
8 Modbus masters and 48 PLCs, 3 DNP3 masters and 24 outstations, 60 %
Modbus/TCP, 30 % DNP3, 10 % IT traffic, a rogue host and DNP3 restarts
now and then), with -plant small the small one (pcapgen.Plant). policy
writes the bench policy for that plant's addresses: RULES rules (500 by
default) over 250 assets, none of which fires on normal traffic. floor
decodes captures the cheapest way gopacket allows and prints
{"packets","seconds","pps","payload_bytes"} as one JSON line.

run generates a capture and the policy, alternates rounds of floor and
"tapwatch replay --json --policy FILE" (every built-in detector on, and
the policy's rules; -rules 0 for none) on it, and prints packets/s and
peak RSS with tapwatch/floor ratios. With -stages each round also runs
tapwatch with every built-in detector off and no rules (the decoding
alone), and with the built-in detectors only, so that the table shows
what each stage costs. Then, with -instr PACKETS (300000
by default; 0 skips it) and valgrind on PATH, it counts instructions per
packet of both with callgrind, under GOMAXPROCS=1
GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off, as the difference between a PACKETS-packet and a 10-packet capture
divided by the difference in packets; without valgrind it says so and
goes on.

pgo converts the text form of a PGO profile (what "go tool preprofile"
writes; cmd/tapwatch/pgo.txt is the one the builds use) into the pprof
profile "go build -pgo FILE" reads. make build, make cross and
scripts/deb.sh run it; make pgo-profile remakes cmd/tapwatch/pgo.txt.
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
	case "policy":
		err = cmdPolicy(rest, stdout, stderr)
	case "run":
		err = cmdRun(rest, stdout, stderr)
	case "pgo":
		err = cmdPGO(rest, stderr)
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
	plant := fs.String("plant", PlantSite, "the plant: site (pcapgen.SitePlant) or small (pcapgen.Plant)")
	out := fs.String("o", "", "output pcap file (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 || *n < 1 {
		fmt.Fprintln(stderr, "tapbench gen: need -o FILE, a positive -n and no arguments")
		return errUsage
	}
	frames, size, err := Generate(*out, *plant, *n, *seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d packets, %d bytes\n", *out, frames, size)
	return nil
}

func cmdPolicy(args []string, stdout, stderr io.Writer) error {
	fs := flags("policy", stderr)
	n := fs.Int("n", DefaultRules, "number of rules")
	plant := fs.String("plant", PlantSite, "the plant whose addresses the policy names: site or small")
	out := fs.String("o", "", `output policy file; "" or "-" writes to standard output`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *n < 0 {
		fmt.Fprintln(stderr, "tapbench policy: need a rule count of 0 or more and no arguments")
		return errUsage
	}
	y, err := Policy(*plant, *n)
	if err != nil {
		return err
	}
	if *out == "" || *out == "-" {
		_, err = stdout.Write(y)
		return err
	}
	return os.WriteFile(*out, y, 0o644)
}

func cmdPGO(args []string, stderr io.Writer) error {
	fs := flags("pgo", stderr)
	out := fs.String("o", "", "output pprof file (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "tapbench pgo: need -o FILE and one profile in text form")
		return errUsage
	}
	in := fs.Arg(0)
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	edges, err := pgotext.Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	var b bytes.Buffer
	if err := pgotext.WritePprof(&b, edges); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	return atomicfile.Write(*out, b.Bytes(), 0o644)
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
	fs.StringVar(&cfg.Plant, "plant", PlantSite, "the plant: site (pcapgen.SitePlant) or small (pcapgen.Plant)")
	fs.IntVar(&cfg.Rules, "rules", DefaultRules, "rules in the policy tapwatch runs with; 0 for none")
	fs.IntVar(&cfg.Instr, "instr", DefaultInstrPackets, "packets of the capture whose instructions callgrind counts; 0 skips the count")
	fs.StringVar(&cfg.Tapwatch, "tapwatch", "", `tapwatch binary to measure; "" measures the floor only`)
	fs.StringVar(&cfg.TempDir, "tmp", "", "directory for the temporary captures (default: the system's)")
	fs.BoolVar(&cfg.Stages, "stages", false, "also run tapwatch with every detector off and no rules, and with the built-in detectors only, in each round")
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
