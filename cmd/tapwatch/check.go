package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/hw"
	"github.com/tapwatch/tapwatch/rules/policy"
)

const checkSynopsis = `tapwatch check [-c CONFIG] [--board NAME] [--user NAME] [--policy FILE...] [-q]

Validates policy files and prints the effective policy of each: every
asset, every built-in detector with its settings, every rule with its
defaults filled in. The output is itself a valid policy file.

With -c it validates the daemon's config file too (docs/config.md), then
the policy and baseline files it names, and prints what tapwatch run
would do with it, as comments, before the effective policy, including
the board profile in use and the pin of every LED, the button and the
relays. Two functions on one pin is an error; a pin the board reserves
(I2C, the serial console) or that is not on its header is a warning.
--board checks the config against another profile than the one it
names or this machine's.

With -c it also opens the files the daemon reads at start, with the
daemon's own code: the uplink's CA, certificate and key (which must
match) and password file. Run as root, it checks that the daemon's
user (--user, tapwatch as in tapwatch.service) can read them and the
policy and baseline: the mode, owner, group and ACL of each file and
of every folder on the way, without becoming that user. Each problem
names the file, the field that names it, and what stops the user.

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
	cfgPath := fs.String("c", "", "the daemon's config `FILE` to check, with the policy and baseline it names")
	boardName := fs.String("board", "", "check -c CONFIG on the board profile `NAME` (auto, none, pi-zero, pi4, ...)")
	user := fs.String("user", serviceUser, "with -c, run as root: the `NAME` (or uid) of the daemon's user, who must read its files; empty: not checked")
	rest, err := parseCommand(fs, args, stdout, checkSynopsis)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q (give policy files with --policy)", rest[0])
	}
	if len(policies) == 0 && *cfgPath == "" {
		return usageError("check needs -c CONFIG or at least one --policy FILE")
	}
	if *boardName != "" && *cfgPath == "" {
		return usageError("--board goes with -c CONFIG")
	}
	userGiven := false
	fs.Visit(func(f *flag.Flag) { userGiven = userGiven || f.Name == "user" })
	if userGiven && *cfgPath == "" {
		return usageError("--user goes with -c CONFIG")
	}
	var out bytes.Buffer
	var fileProblems int
	var named *config.Config // the config -c gave, if any
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			for _, line := range config.Errors(err) {
				fmt.Fprintln(stderr, line)
			}
			return fmt.Errorf("invalid configuration: %s", *cfgPath)
		}
		if *boardName != "" {
			cfg.Hardware.Board = *boardName
			if err := cfg.Validate(); err != nil {
				for _, line := range config.Errors(err) {
					fmt.Fprintln(stderr, line)
				}
				return fmt.Errorf("invalid --board %q", *boardName)
			}
		}
		plan, err := hardwarePlan(cfg)
		if err != nil {
			for _, line := range config.Errors(err) {
				fmt.Fprintln(stderr, line)
			}
			return fmt.Errorf("invalid configuration: %s", *cfgPath)
		}
		files := checkFiles(cfg, *user, userGiven)
		for _, p := range files.problems {
			fmt.Fprintln(stderr, p)
		}
		fileProblems = len(files.problems)
		if *quiet {
			for _, w := range append(plan.Warnings, files.warnings...) {
				fmt.Fprintf(stderr, "%s: warning: %s\n", cfg.File, w)
			}
		} else {
			describeConfig(&out, cfg, plan, files)
		}
		for _, f := range []string{cfg.Policy, cfg.Baseline} {
			if f != "" {
				policies = append(policies, f)
			}
		}
		named = cfg
	}
	var bad []string
	printed := 0
	for _, path := range policies {
		p, err := policy.Load(path)
		var pe *os.PathError
		if errors.As(err, &pe) && named != nil && (path == named.Policy || path == named.Baseline) {
			// A file the config names that cannot be read is the
			// config's error, at the line that names it.
			field := "policy"
			if path != named.Policy {
				field = "baseline"
			}
			err = named.FieldError(field, "%v", err)
		}
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
	var failed []string
	if fileProblems > 0 {
		failed = append(failed, fmt.Sprintf("the daemon could not use the files %s names (%d problems)", *cfgPath, fileProblems))
	}
	if len(bad) > 0 {
		failed = append(failed, "invalid policy: "+strings.Join(bad, ", "))
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// describeConfig says, as YAML comments, what tapwatch run would do.
func describeConfig(w *bytes.Buffer, c *config.Config, plan *hw.Plan, files fileCheck) {
	fmt.Fprintf(w, "# tapwatch run -c %s would:\n", c.File)
	fmt.Fprintf(w, "#   be sensor %q of site %q\n", c.Sensor, c.Site)
	blocks := capture.RingBlocks(c.Capture.RingBytes)
	fmt.Fprintf(w, "#   capture on %s (ring %d bytes each in %d blocks, block timeout %v: it holds %v of a quiet link's packets; promiscuous %v)\n",
		strings.Join(c.Interfaces, " and "), c.Capture.RingBytes, blocks, c.Capture.BlockTimeout,
		time.Duration(blocks)*c.Capture.BlockTimeout, *c.Capture.Promiscuous)
	fmt.Fprintf(w, "#   decode Modbus on ports %v and DNP3 on ports %v\n", c.Ports.Modbus, c.Ports.DNP3)
	if len(c.Ports.ModbusRTU) > 0 {
		fmt.Fprintf(w, "#   decode Modbus RTU over TCP (serial gateways) on ports %v\n", c.Ports.ModbusRTU)
	}
	switch {
	case c.Learning():
		fmt.Fprintf(w, "#   learn for %v (margin %v), then enforce %s\n", c.Learn.Duration, *c.Learn.Margin, c.StateDir+"/learned.yaml")
	case c.Baseline != "":
		fmt.Fprintf(w, "#   monitor, enforcing the baseline %s\n", c.Baseline)
	default:
		fmt.Fprintf(w, "#   monitor, without a baseline\n")
	}
	if c.Policy == "" {
		fmt.Fprintf(w, "#   run the built-in detectors at their defaults (no policy file)\n")
	}
	if c.Uplink != nil {
		fmt.Fprintf(w, "#   publish to %s, spooling in %s\n", strings.Join(c.Uplink.Brokers, ", "), c.StateDir)
	} else {
		fmt.Fprintf(w, "#   publish nothing (no uplink): alerts go to the log only\n")
	}
	for _, said := range files.said {
		fmt.Fprintf(w, "#   %s\n", said)
	}
	for _, warn := range files.warnings {
		fmt.Fprintf(w, "#   warning: %s\n", warn)
	}
	if c.OpsLog != "" {
		fmt.Fprintf(w, "#   write the operations log to %s\n", c.OpsLog)
	}
	fmt.Fprintf(w, "#   log at %s as %s\n", c.Log.Level, c.Log.Format)
	fmt.Fprintf(w, "#   show its state on this hardware:\n")
	var hwText bytes.Buffer
	plan.Describe(&hwText)
	for _, line := range strings.Split(strings.TrimRight(hwText.String(), "\n"), "\n") {
		fmt.Fprintf(w, "#   %s\n", line)
	}
}
