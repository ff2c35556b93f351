package benchtool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Defaults of the instruction count.
const (
	// DefaultInstrPackets is long enough that the flow table's growth
	// in the first packets, and the collections it brings, weigh little:
	// on the site plant 100,000 packets count about 10% more a packet
	// than 300,000 or a million, which are within 4% of each other.
	DefaultInstrPackets = 300_000
	// TinyPackets is the size of the capture whose count is subtracted:
	// what a program costs before and after its packets (start-up,
	// loading the policy, exit).
	TinyPackets = 10
)

// callgrindEnv makes a Go program's instruction count repeatable and
// lets it run under valgrind at all: one P, so that the scheduler does
// not spread the work; no asynchronous preemption signals, which
// callgrind trips on; and no RDTSCP, an instruction valgrind 3.19
// cannot decode (SIGILL) and that the runtime executes when a thread
// sleeps on a contended lock (runtime.cputicks), now and then.
var callgrindEnv = []string{"GOMAXPROCS=1", "GODEBUG=" + CallgrindGODEBUG}

// CallgrindGODEBUG is the GODEBUG of callgrind runs (callgrindEnv).
const CallgrindGODEBUG = "asyncpreemptoff=1,cpu.rdtscp=off"

// Instructions is the instruction count of one program on the two
// captures.
type Instructions struct {
	Big       uint64  `json:"big"`        // on the capture of Counts.Packets
	Tiny      uint64  `json:"tiny"`       // on the capture of Counts.TinyPackets
	PerPacket float64 `json:"per_packet"` // (Big - Tiny) / (Packets - TinyPackets)
}

// Counts is what `tapbench run -instr N` counts with callgrind: the
// instructions per packet of the floor and of tapwatch, the difference
// between an N-packet and a TinyPackets-packet capture divided by the
// difference in packets, so that start-up and exit cancel out.
type Counts struct {
	Packets     int           `json:"packets"`
	TinyPackets int           `json:"tiny_packets"`
	Floor       *Instructions `json:"floor,omitempty"`
	Tapwatch    *Instructions `json:"tapwatch,omitempty"`
	// Ratio is tapwatch's instructions per packet over the floor's.
	Ratio float64 `json:"ratio,omitempty"`
	// Skipped says why nothing was counted, when nothing was.
	Skipped string `json:"skipped,omitempty"`
}

// ParseCallgrind returns the total of the first event (Ir, instructions,
// unless callgrind was told otherwise) from a callgrind output file: its
// "totals:" line, or else its "summary:" line.
func ParseCallgrind(out []byte) (uint64, error) {
	var summary string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "totals:"); ok {
			return parseCount(v)
		}
		if v, ok := strings.CutPrefix(line, "summary:"); ok && summary == "" {
			summary = v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if summary == "" {
		return 0, errors.New(`no "totals:" or "summary:" line in the callgrind output`)
	}
	return parseCount(summary)
}

func parseCount(v string) (uint64, error) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0, errors.New("callgrind total without a number")
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("callgrind total %q: %w", f[0], err)
	}
	return n, nil
}

// Callgrind runs a program under valgrind's callgrind tool with
// callgrindEnv and returns the instructions it executed. out is the
// callgrind output file, removed afterwards.
func Callgrind(ctx context.Context, valgrind, out string, name string, args ...string) (uint64, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, valgrind, append([]string{"--tool=callgrind", "--callgrind-out-file=" + out, name}, args...)...)
	cmd.Env = append(os.Environ(), callgrindEnv...)
	cmd.Stderr = &stderr
	desc := "valgrind " + filepath.Base(name) + " " + strings.Join(args, " ")
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w%s", desc, err, tail(stderr.Bytes()))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", desc, err)
	}
	os.Remove(out)
	n, err := ParseCallgrind(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", desc, out, err)
	}
	return n, nil
}

// countInstructions generates a cfg.Instr-packet and a TinyPackets-packet
// capture in dir and counts the floor and tapwatch (with the policy, when
// there is one) on both under callgrind. Without valgrind it says so in
// Skipped.
func countInstructions(ctx context.Context, cfg Config, dir, policy string) (*Counts, error) {
	c := &Counts{}
	valgrind := cfg.Valgrind
	if valgrind == "" {
		p, err := exec.LookPath("valgrind")
		if err != nil {
			c.Skipped = "valgrind is not installed (apt-get install valgrind)"
			fmt.Fprintf(cfg.Log, "instructions not counted: %s\n", c.Skipped)
			return c, nil
		}
		valgrind = p
	}
	var (
		paths  [2]string
		frames [2]int
	)
	for i, n := range [2]int{cfg.Instr, TinyPackets} {
		paths[i] = filepath.Join(dir, fmt.Sprintf("instr-%d.pcap", i))
		var err error
		if frames[i], _, err = Generate(paths[i], cfg.Plant, n, cfg.Seed); err != nil {
			return c, err
		}
		defer os.Remove(paths[i])
	}
	c.Packets, c.TinyPackets = frames[0], frames[1]
	if c.Packets <= c.TinyPackets {
		return c, fmt.Errorf("-instr %d: need more than %d packets", cfg.Instr, c.TinyPackets)
	}
	count := func(name string, args func(capture string) []string) (*Instructions, error) {
		var n [2]uint64
		for i, p := range paths {
			fmt.Fprintf(cfg.Log, "callgrind: %s on %s\n", filepath.Base(name), filepath.Base(p))
			var err error
			if n[i], err = Callgrind(ctx, valgrind, filepath.Join(dir, "callgrind.out"), name, args(p)...); err != nil {
				return nil, err
			}
		}
		per := (float64(n[0]) - float64(n[1])) / float64(c.Packets-c.TinyPackets)
		return &Instructions{Big: n[0], Tiny: n[1], PerPacket: per}, nil
	}
	var err error
	if c.Floor, err = count(cfg.Self, func(p string) []string { return []string{"floor", p} }); err != nil {
		return c, err
	}
	if cfg.Tapwatch == "" {
		return c, nil
	}
	if c.Tapwatch, err = count(cfg.Tapwatch, func(p string) []string { return replayArgs(policy, p) }); err != nil {
		return c, err
	}
	if c.Floor.PerPacket > 0 {
		c.Ratio = c.Tapwatch.PerPacket / c.Floor.PerPacket
	}
	return c, nil
}

// replayArgs are the arguments of tapwatch replay on capture, with the
// policy when there is one.
func replayArgs(policy, capture string) []string {
	if policy == "" {
		return []string{"replay", "--json", capture}
	}
	return []string{"replay", "--json", "--policy", policy, capture}
}
