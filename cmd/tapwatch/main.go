// Command tapwatch is the passive ICS security monitor: it decodes
// Modbus/TCP and DNP3 from capture files or a network tap and reports what
// it sees.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `tapwatch — passive security monitor for Modbus/TCP and DNP3 industrial networks

Usage:
  tapwatch run [-c FILE]       the daemon: live capture from the tap, detection, MQTT uplink
                               (default config /etc/tapwatch/tapwatch.yaml; docs/config.md)
  tapwatch replay [--policy FILE] [--baseline FILE | --learn DURATION] [--fail-on SEVERITY]
                 [--ops | --summary | --json] [--site S] [--sensor N] [--mqtt URL]
                 [--modbus-ports LIST] [--dnp3-ports LIST] [--modbus-rtu-ports LIST] [--max-flows N] FILE...
                               decode capture files (pcap or pcapng), run the detectors and
                               print the alerts (one JSON object a line), or with --ops the
                               operations log, or a summary; with --mqtt publish them too
  tapwatch learn [--margin F] -o FILE CAPTURE...
                               learn a baseline policy from capture files
  tapwatch check [-c CONFIG] [--policy FILE...]
                               validate the daemon's config and policy files, and print
                               what would run and the effective policy
  tapwatch tail --broker URL [--site S] [--sensor N] [--kinds LIST]
                               print the events sensors publish, and check that none is missing
  tapwatch leds [-c CONFIG] [--board NAME] [--show LIST [--for DURATION]]
                               check the LED, button and relay wiring: a walk test, or
                               hold the given patterns
  tapwatch demo [--dir DIR]    see it work in under a minute: a generated plant, learning,
                               attacks, the LEDs, alerts at the security center's tail
  tapwatch version             print the version
  tapwatch help [COMMAND]      show help

Run 'tapwatch COMMAND --help' for the options of a command.
Exit status: 0 on success, 1 when something failed (a damaged capture file
included), 2 on a usage error, 3 when replay --fail-on SEVERITY saw an alert
at or above that severity, or tail found messages missing.
`

// errUsage marks errors that should exit with status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		err = cmdRun(rest, stdout, stderr)
	case "replay":
		err = cmdReplay(rest, stdout, stderr)
	case "check":
		err = cmdCheck(rest, stdout, stderr)
	case "learn":
		err = cmdLearn(rest, stdout, stderr)
	case "tail":
		err = cmdTail(rest, stdout, stderr)
	case "leds":
		err = cmdLeds(rest, stdout, stderr)
	case "demo":
		err = cmdDemo(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "tapwatch %s\n", version)
	case "help", "-h", "--help", "-help":
		// "help help" and "--help --help" print the usage instead of
		// recursing for ever.
		if len(rest) > 0 && !isHelp(rest[0]) {
			return run([]string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "tapwatch: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errAlerts), errors.Is(err, errMissing):
		fmt.Fprintf(stderr, "tapwatch: %v\n", err)
		return 3
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "tapwatch: %v\nRun 'tapwatch %s --help' for usage.\n", err, cmd)
		return 2
	default:
		fmt.Fprintf(stderr, "tapwatch: %v\n", err)
		return 1
	}
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseOnce is parseInterspersed that refuses a flag given twice, unless
// it collects its values (check --policy): otherwise the last would win
// silently, and replay --policy A --policy B would enforce B alone.
func parseOnce(fs *flag.FlagSet, args []string) ([]string, error) {
	var wrapped []*flag.Flag
	var orig []flag.Value
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(*stringList); ok {
			return
		}
		wrapped, orig = append(wrapped, f), append(orig, f.Value)
		f.Value = &onceValue{Value: f.Value, name: f.Name}
	})
	// The flags' own values again afterwards: --help names their types.
	defer func() {
		for i, f := range wrapped {
			f.Value = orig[i]
		}
	}()
	return parseInterspersed(fs, args)
}

// onceValue is a flag's value that may be set once.
type onceValue struct {
	flag.Value
	name string
	set  bool
}

func (v *onceValue) Set(s string) error {
	if v.set {
		return fmt.Errorf("given more than once; give it once")
	}
	v.set = true
	return v.Value.Set(s)
}

func (v *onceValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseCommand parses a command's flags and returns its positional
// arguments. On --help it prints the help to stdout and returns
// flag.ErrHelp (exit 0); a bad flag is a usage error (exit 2).
func parseCommand(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis string) ([]string, error) {
	pos, err := parseOnce(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, fs, synopsis)
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return pos, nil
}

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "--help", "-help":
		return true
	}
	return false
}

// newFlagSet returns a flag set that prints nothing while parsing: parse
// errors are returned (run reports them on stderr), and on flag.ErrHelp the
// command calls printHelp, so that help asked for goes to stdout.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// printHelp writes the synopsis and the options of fs to w.
func printHelp(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "Usage: %s\n\nOptions:\n", strings.TrimSpace(synopsis))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
