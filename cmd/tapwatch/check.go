package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tapwatch/tapwatch/rules"
)

const checkSynopsis = `tapwatch check --policy FILE [--policy FILE...] [-q]

Validates policy files and prints the effective policy of each: every
asset, every built-in detector with its settings, every rule with its
defaults filled in. The output is itself a valid policy file.

Every problem is reported on stderr, one a line, as
FILE:LINE:COLUMN: FIELD: MESSAGE, and the exit status is 1.
See docs/policy.md for the format of the file.
`

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check")
	var policies stringList
	fs.Var(&policies, "policy", "policy `FILE` to check (repeatable)")
	quiet := fs.Bool("q", false, "print nothing when the files are valid")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, fs, checkSynopsis)
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q (give policy files with --policy)", rest[0])
	}
	if len(policies) == 0 {
		return usageError("check needs at least one --policy FILE")
	}
	var out bytes.Buffer
	var bad []string
	printed := 0
	for _, path := range policies {
		p, err := rules.Load(path)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(stderr, line)
			}
			bad = append(bad, path)
			continue
		}
		if *quiet {
			continue
		}
		if printed > 0 {
			out.WriteString("---\n")
		}
		printed++
		fmt.Fprintf(&out, "# effective policy of %s\n", path)
		p.Format(&out)
	}
	stdout.Write(out.Bytes())
	if len(bad) > 0 {
		return fmt.Errorf("invalid policy: %s", strings.Join(bad, ", "))
	}
	return nil
}
