package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/rules/learn"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

const learnSynopsis = `tapwatch learn [--margin F] [--modbus-ports LIST] [--dnp3-ports LIST] [--modbus-rtu-ports LIST] -o FILE CAPTURE...

Learns the normal behaviour of the plant from capture files and writes it
as a policy file with a baseline section: the assets seen (named by role
and address, like plc-10-10-1-20), and for each master and device the
function codes, Modbus addresses, DNP3 objects and points, written value
ranges and the usual write rate; and the network: each host's MACs from
ARP, and each link (client, server, port) with the service it carried,
whatever the protocol. Enforce it with
'tapwatch replay --baseline FILE'. The file is YAML: read, diff and edit it.
-o refuses to overwrite a capture file, one of those named or any other.
A CAPTURE of - is standard input.
`

func cmdLearn(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("learn")
	out := fs.String("o", "", "write the baseline to `FILE` (- for standard output)")
	margin := fs.Float64("margin", policy.DefaultMargin, "widen learned value ranges by this fraction of their width (at least 1) on each side")
	ports := fs.String("modbus-ports", "502", "comma-separated TCP/UDP ports that carry Modbus")
	dnpPorts := fs.String("dnp3-ports", "20000", "comma-separated TCP/UDP ports that carry DNP3")
	rtuPorts := rtuPortsFlag(fs)
	files, err := parseCommand(fs, args, stdout, learnSynopsis)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError("learn needs at least one capture file")
	}
	if *out == "" {
		return usageError("learn needs -o FILE")
	}
	if err := checkCaptures(files, stderr); err != nil {
		return err
	}
	if err := checkLearnOutput(*out, files); err != nil {
		return err
	}
	if !(*margin >= 0) || math.IsInf(*margin, 1) {
		return usageError("--margin: %v is not a number 0 or more", *margin)
	}
	cfg := dpi.Config{}
	if cfg.ModbusPorts, err = parsePorts(*ports); err != nil {
		return usageError("--modbus-ports: %v", err)
	}
	if cfg.DNP3Ports, err = parsePorts(*dnpPorts); err != nil {
		return usageError("--dnp3-ports: %v", err)
	}
	if err := setRTUPorts(fs, *rtuPorts, &cfg); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	src := capture.OpenFiles(files...)
	defer src.Close()
	l, sum, err := pipeline.Learn(ctx, src, cfg)
	if err != nil {
		return err
	}
	p, text, err := formatBaseline(l, *margin, strings.Join(files, ", "))
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = stdout.Write(text)
	} else {
		err = os.WriteFile(*out, text, 0o644)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "tapwatch: learned %d assets, %d conversations from %d requests, and %d links\n", len(p.Assets), len(p.Baseline.Conversations), l.Stats().Requests, len(p.Baseline.Links))
	if len(sum.Errors) > 0 {
		for _, e := range sum.Errors {
			fmt.Fprintf(stderr, "tapwatch: %v\n", e)
		}
		return fmt.Errorf("%d of %d capture files could not be read to the end", len(sum.Errors), len(files))
	}
	return nil
}

// checkLearnOutput refuses an output file that would overwrite a capture:
// one of the files to learn from (a shell glob after -o swallows the
// output's name: learn -o week*.pcap), or any other pcap or pcapng file.
// Captures are evidence, and often cannot be recorded again.
func checkLearnOutput(out string, files []string) error {
	if out == "-" {
		return nil
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil // a new file; what else is wrong the write will say
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && os.SameFile(st, fi) {
			return usageError("-o %s is one of the capture files to learn from: give the baseline a name of its own (-o baseline.yaml)", out)
		}
	}
	if capture.IsCaptureFile(out) {
		return usageError("-o %s is a capture file: refusing to overwrite it with the baseline; give the baseline a name of its own", out)
	}
	return nil
}

// formatBaseline is what l learned, widened by margin, as the policy file
// tapwatch learn writes: a comment saying where it was learned from and
// what was left out at the learner's memory bounds, then the policy.
func formatBaseline(l *learn.Learner, margin float64, from string) (*policy.Policy, []byte, error) {
	p := l.Baseline(margin)
	if err := p.Validate(); err != nil {
		return nil, nil, fmt.Errorf("the learned baseline is invalid (a bug): %v", err)
	}
	var b bytes.Buffer
	st := l.Stats()
	fmt.Fprintf(&b, "# Baseline learned by tapwatch learn from %s\n", from)
	if st.Requests > 0 {
		fmt.Fprintf(&b, "# %d requests from %s to %s\n", st.Requests, st.First.UTC().Format("2006-01-02T15:04:05Z"), st.Last.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if st.DroppedHosts+st.DroppedPairs+st.DroppedValues+st.MergedRanges > 0 {
		fmt.Fprintf(&b, "# memory bounds: %d requests of hosts and %d of conversations not kept, %d values not kept, %d ranges merged\n",
			st.DroppedHosts, st.DroppedPairs, st.DroppedValues, st.MergedRanges)
	}
	if st.DroppedNetHosts+st.DroppedLinks+st.DroppedMACs > 0 {
		fmt.Fprintf(&b, "# network bounds: %d hosts, %d links and %d MACs not kept\n", st.DroppedNetHosts, st.DroppedLinks, st.DroppedMACs)
	}
	p.Format(&b)
	return p, b.Bytes(), nil
}
