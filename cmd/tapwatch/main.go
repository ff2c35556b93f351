// Command tapwatch is the passive ICS security monitor: it decodes
// Modbus/TCP from capture files or a network tap and reports what it sees.
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

const usage = `tapwatch — passive security monitor for Modbus/TCP industrial networks

Usage:
  tapwatch replay [--ops] [--json] [--modbus-ports LIST] FILE...
                               decode capture files (pcap or pcapng), print a summary,
                               or with --ops the operations log (one JSON object a line)
  tapwatch version             print the version
  tapwatch help [COMMAND]      show help

Run 'tapwatch COMMAND --help' for the options of a command.
Exit status: 0 on success, 1 when something failed (a damaged capture file
included), 2 on a usage error.
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
	switch cmd, rest := args[0], args[1:]; cmd {
	case "replay":
		err = cmdReplay(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "tapwatch %s\n", version)
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 {
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
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "tapwatch: %v\n", err)
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

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nOptions:\n", strings.TrimSpace(synopsis))
		fs.PrintDefaults()
	}
	return fs
}
