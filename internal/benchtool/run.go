package benchtool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// Defaults of Config.
const (
	DefaultPackets = 1_000_000
	DefaultRounds  = 3
	DefaultSeed    = 1
)

// The plants tapbench generates: pcapgen.SitePlant, the default, and
// pcapgen.Plant.
const (
	PlantSite  = "site"
	PlantSmall = "small"
)

// plants maps a plant's name to its generator.
var plants = map[string]func(*pcapgen.Writer, int, int64) error{
	PlantSite:  pcapgen.SitePlant,
	PlantSmall: pcapgen.Plant,
}

func checkPlant(name string) error {
	if plants[name] == nil {
		return fmt.Errorf("-plant %q: want %s or %s", name, PlantSite, PlantSmall)
	}
	return nil
}

// Generate writes the capture of the named plant (PlantSite or
// PlantSmall) of about packets frames to path, and returns the number of
// frames and bytes written.
func Generate(path, plant string, packets int, seed int64) (frames int, size int64, err error) {
	if err := checkPlant(plant); err != nil {
		return 0, 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	w, err := pcapgen.NewWriter(f, pcapgen.Options{})
	if err != nil {
		return 0, 0, err
	}
	if err := plants[plant](w, packets, seed); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return w.Packets(), st.Size(), nil
}

// ParseResult finds the result in a child's standard output: the last line
// that is a JSON object with numeric "packets" and "seconds". Other lines and
// other fields are ignored.
func ParseResult(stdout []byte) (Result, error) {
	lines := bytes.Split(stdout, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		line := bytes.TrimSpace(lines[i])
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var v struct {
			Packets      *float64 `json:"packets"`
			Seconds      *float64 `json:"seconds"`
			PayloadBytes float64  `json:"payload_bytes"`
		}
		if json.Unmarshal(line, &v) != nil || v.Packets == nil || v.Seconds == nil {
			continue
		}
		if *v.Packets < 0 || *v.Seconds < 0 || math.IsNaN(*v.Seconds) {
			return Result{}, fmt.Errorf("negative or invalid figures in %s", line)
		}
		r := Result{Packets: int64(*v.Packets), Seconds: *v.Seconds, PayloadBytes: int64(v.PayloadBytes)}
		if r.Seconds > 0 {
			r.PPS = float64(r.Packets) / r.Seconds
		}
		return r, nil
	}
	return Result{}, errors.New(`no JSON line with "packets" and "seconds" in the output`)
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Measurement is one run of a child process.
type Measurement struct {
	Result               // as the child reported it
	Wall   time.Duration // from start to exit
	MaxRSS int64         // peak resident set size in bytes; 0 where the OS does not say
}

// WallPPS is packets per second over the child's whole life.
func (m Measurement) WallPPS() float64 {
	if m.Wall <= 0 {
		return 0
	}
	return float64(m.Packets) / m.Wall.Seconds()
}

// Measure runs a program, parses its result line and takes its wall time and
// peak RSS: on Linux the last VmHWM polled from /proc (see watchPeakRSS),
// elsewhere ru_maxrss.
func Measure(ctx context.Context, name string, args ...string) (Measurement, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	desc := filepath.Base(name)
	for _, a := range args {
		desc += " " + a
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", desc, err)
	}
	stopWatch := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	wall := time.Since(start)
	peak := stopWatch()
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w%s", desc, err, tail(stderr.Bytes()))
	}
	res, err := ParseResult(stdout.Bytes())
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w%s", desc, err, tail(stderr.Bytes()))
	}
	if peak == 0 {
		peak = maxRSS(cmd.ProcessState)
	}
	return Measurement{Result: res, Wall: wall, MaxRSS: peak}, nil
}

// tail quotes the last lines of a child's stderr for an error message.
func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	return "\n" + string(b)
}

// Series is the measurements of one program over the rounds.
type Series []Measurement

// MedianWallPPS is the median of WallPPS.
func (s Series) MedianWallPPS() float64 {
	return Median(s.each(Measurement.WallPPS))
}

// MedianReportedPPS is the median of the packets per second the program
// reported for its own processing time.
func (s Series) MedianReportedPPS() float64 {
	return Median(s.each(func(m Measurement) float64 { return m.PPS }))
}

// PeakRSS is the largest MaxRSS over the rounds.
func (s Series) PeakRSS() int64 {
	var p int64
	for _, m := range s {
		p = max(p, m.MaxRSS)
	}
	return p
}

func (s Series) each(f func(Measurement) float64) []float64 {
	xs := make([]float64, len(s))
	for i, m := range s {
		xs[i] = f(m)
	}
	return xs
}

// Config is what `tapbench run` measures.
type Config struct {
	Packets int    // frames in the main capture; default DefaultPackets
	Rounds  int    // alternating rounds of floor and tapwatch; default DefaultRounds
	Seed    int64  // Plant seed; default DefaultSeed
	Plant   string // PlantSite or PlantSmall; default PlantSite
	// Rules is the size of the policy (see Policy) tapwatch replay runs
	// with; 0 runs it with none, the built-in detectors only.
	Rules    int
	Tapwatch string // tapwatch binary; empty measures the floor only
	Self     string // tapbench binary, run as `Self floor FILE`; default os.Executable()
	TempDir  string // where the captures are written (and removed); default os.TempDir()
	// Instr, when more than 0, counts instructions per packet with
	// callgrind on an Instr-packet capture (see Counts).
	Instr int
	// Valgrind is the valgrind binary; default the one on PATH, and
	// without one the count is skipped.
	Valgrind string
	// Stages, with Tapwatch, also runs tapwatch in each round of the full
	// capture with every built-in detector off and no rules (the decoding
	// alone: reading, flows, reassembly, the protocols' decoders, the
	// tallies), and with the built-in detectors alone, to show what each
	// stage costs. Detectors lists the ids to turn off (DetectorIDs by
	// default).
	Stages    bool
	Detectors []string
	Log       io.Writer
}

// DetectorIDs are the built-in detectors' ids, which Stages turns off.
// cmd/tapbench sets them from the rules package, which this one cannot
// import: the policy package's tests import this one.
var DetectorIDs []string

// Validate fills in defaults and checks the figures.
func (c *Config) Validate() error {
	if c.Packets == 0 {
		c.Packets = DefaultPackets
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.Plant == "" {
		c.Plant = PlantSite
	}
	if err := checkPlant(c.Plant); err != nil {
		return err
	}
	if c.Packets < 4 {
		return fmt.Errorf("-n %d: need at least 4 packets", c.Packets)
	}
	if c.Rules < 0 {
		return fmt.Errorf("-rules %d: negative rule count", c.Rules)
	}
	if c.Instr < 0 {
		return fmt.Errorf("-instr %d: negative packet count", c.Instr)
	}
	if c.Rounds < 1 {
		return fmt.Errorf("-rounds %d: need at least 1 round", c.Rounds)
	}
	if c.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding tapbench's own binary: %w", err)
		}
		c.Self = self
	}
	if c.Tapwatch != "" {
		if _, err := exec.LookPath(c.Tapwatch); err != nil {
			return fmt.Errorf("-tapwatch %s: %w", c.Tapwatch, err)
		}
	}
	if c.Stages {
		if c.Detectors == nil {
			c.Detectors = DetectorIDs
		}
		if len(c.Detectors) == 0 {
			return errors.New("-stages: no detector ids to turn off")
		}
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// offPolicy is a policy that turns every detector in ids off.
func offPolicy(ids []string) []byte {
	var b strings.Builder
	b.WriteString("version: 1\ndetectors:\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "  %s: {enabled: false}\n", id)
	}
	return []byte(b.String())
}

// Capture describes one generated capture and what was measured on it.
type Capture struct {
	Packets  int    `json:"packets"`
	Bytes    int64  `json:"bytes"`
	Floor    Series `json:"floor"`
	Tapwatch Series `json:"tapwatch,omitempty"`
	// With Config.Stages: tapwatch with every detector off and no
	// rules, and with the built-in detectors alone.
	DetectorsOff Series `json:"detectors_off,omitempty"`
	BuiltinOnly  Series `json:"builtin_only,omitempty"`
}

// Report is the outcome of Run: the full capture and the quarter-size one,
// and the instruction counts.
type Report struct {
	Plant   string  `json:"plant"`
	Seed    int64   `json:"seed"`
	Rules   int     `json:"rules"` // of the policy tapwatch ran with
	Rounds  int     `json:"rounds"`
	Full    Capture `json:"full"`
	Quarter Capture `json:"quarter"`
	Instr   *Counts `json:"instructions,omitempty"`
}

// Run generates the captures, and the policy of cfg.Rules rules, into a
// temporary directory (removed afterwards), alternates rounds of the
// floor and tapwatch replay with that policy on the full capture, then
// runs each once on a quarter-size capture to show whether peak RSS grows
// with capture length, and last counts instructions when cfg.Instr asks.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "tapbench-")
	if err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(dir)

	rep := Report{Plant: cfg.Plant, Seed: cfg.Seed, Rules: cfg.Rules, Rounds: cfg.Rounds}
	policy := ""
	if cfg.Rules > 0 {
		y, err := Policy(cfg.Plant, cfg.Rules)
		if err != nil {
			return rep, err
		}
		policy = filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(policy, y, 0o644); err != nil {
			return rep, err
		}
	}
	off := ""
	if cfg.Stages && cfg.Tapwatch != "" {
		off = filepath.Join(dir, "off.yaml")
		if err := os.WriteFile(off, offPolicy(cfg.Detectors), 0o644); err != nil {
			return rep, err
		}
	}
	for _, c := range []struct {
		cap    *Capture
		n      int
		rounds int
		name   string
		stages bool
	}{
		{&rep.Full, cfg.Packets, cfg.Rounds, "full.pcap", off != ""},
		{&rep.Quarter, cfg.Packets / 4, 1, "quarter.pcap", false},
	} {
		path := filepath.Join(dir, c.name)
		fmt.Fprintf(cfg.Log, "generating %d packets into %s\n", c.n, path)
		c.cap.Packets, c.cap.Bytes, err = Generate(path, cfg.Plant, c.n, cfg.Seed)
		if err != nil {
			return rep, err
		}
		for round := 1; round <= c.rounds; round++ {
			m, err := Measure(ctx, cfg.Self, "floor", path)
			if err != nil {
				return rep, err
			}
			fmt.Fprintf(cfg.Log, "%s round %d: floor %.0f packets/s, %s\n", c.name, round, m.WallPPS(), FormatBytes(m.MaxRSS))
			c.cap.Floor = append(c.cap.Floor, m)
			if cfg.Tapwatch == "" {
				continue
			}
			if m, err = Measure(ctx, cfg.Tapwatch, replayArgs(policy, path)...); err != nil {
				return rep, err
			}
			fmt.Fprintf(cfg.Log, "%s round %d: tapwatch %.0f packets/s, %s\n", c.name, round, m.WallPPS(), FormatBytes(m.MaxRSS))
			c.cap.Tapwatch = append(c.cap.Tapwatch, m)
			if !c.stages {
				continue
			}
			for _, st := range []struct {
				s      *Series
				policy string
				name   string
			}{{&c.cap.DetectorsOff, off, "detectors off"}, {&c.cap.BuiltinOnly, "", "built-in detectors only"}} {
				if m, err = Measure(ctx, cfg.Tapwatch, replayArgs(st.policy, path)...); err != nil {
					return rep, err
				}
				fmt.Fprintf(cfg.Log, "%s round %d: tapwatch, %s, %.0f packets/s, %s\n", c.name, round, st.name, m.WallPPS(), FormatBytes(m.MaxRSS))
				*st.s = append(*st.s, m)
			}
		}
		if err := os.Remove(path); err != nil {
			return rep, err
		}
	}
	if cfg.Instr > 0 {
		if rep.Instr, err = countInstructions(ctx, cfg, dir, policy); err != nil {
			return rep, err
		}
	}
	for _, p := range []string{policy, off} {
		if p == "" {
			continue
		}
		if err := os.Remove(p); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// WriteTable prints the report for people.
func (r Report) WriteTable(out io.Writer) error {
	w := bufio.NewWriter(out)
	f, q := r.Full, r.Quarter
	policy := "no policy"
	if r.Rules > 0 {
		policy = fmt.Sprintf("a policy of %d rules", r.Rules)
	}
	fmt.Fprintf(w, "capture: %d packets, %s (%s plant, seed %d); tapwatch with every built-in detector and %s; median of %d rounds\n\n",
		f.Packets, FormatBytes(f.Bytes), r.Plant, r.Seed, policy, r.Rounds)
	have := len(f.Tapwatch) > 0
	fmt.Fprintf(w, "%-28s %12s %12s %16s\n", "", "floor", "tapwatch", "tapwatch/floor")
	row := func(name string, floor, tw float64, format func(float64) string) {
		if !have {
			fmt.Fprintf(w, "%-28s %12s %12s %16s\n", name, format(floor), "-", "-")
			return
		}
		fmt.Fprintf(w, "%-28s %12s %12s %16.2f\n", name, format(floor), format(tw), tw/floor)
	}
	row("packets/s (wall time)", f.Floor.MedianWallPPS(), f.Tapwatch.MedianWallPPS(), FormatRate)
	if have && len(f.DetectorsOff) > 0 {
		row("  detectors off, no rules", f.Floor.MedianWallPPS(), f.DetectorsOff.MedianWallPPS(), FormatRate)
		row("  built-in detectors only", f.Floor.MedianWallPPS(), f.BuiltinOnly.MedianWallPPS(), FormatRate)
	}
	row("packets/s (self-reported)", f.Floor.MedianReportedPPS(), f.Tapwatch.MedianReportedPPS(), FormatRate)
	rss := func(b float64) string { return FormatBytes(int64(b)) }
	row("peak RSS (max of rounds)", float64(f.Floor.PeakRSS()), float64(f.Tapwatch.PeakRSS()), rss)
	row(fmt.Sprintf("peak RSS, %d packets", q.Packets), float64(q.Floor.PeakRSS()), float64(q.Tapwatch.PeakRSS()), rss)
	if c := r.Instr; c != nil && c.Floor != nil {
		tw := math.NaN()
		if c.Tapwatch != nil {
			tw = c.Tapwatch.PerPacket
		}
		row("instructions/packet", c.Floor.PerPacket, tw, func(x float64) string {
			if math.IsNaN(x) {
				return "-"
			}
			return fmt.Sprintf("%.0f", x)
		})
	}
	switch c := r.Instr; {
	case c == nil:
	case c.Skipped != "":
		fmt.Fprintf(w, "\ninstructions/packet: not counted: %s\n", c.Skipped)
	case c.Floor != nil:
		fmt.Fprintf(w, "\ninstructions/packet: callgrind (%s), (%d-packet capture - %d-packet capture) / %d packets\n",
			strings.Join(callgrindEnv, " "), c.Packets, c.TinyPackets, c.Packets-c.TinyPackets)
	}
	if have {
		if gf, gq := f.Tapwatch.PeakRSS(), q.Tapwatch.PeakRSS(); gq > 0 {
			fmt.Fprintf(w, "\ntapwatch peak RSS, full / quarter capture: %.2f (1.00 = does not grow with capture length)\n", float64(gf)/float64(gq))
		}
		for _, s := range []struct {
			c    Capture
			name string
		}{{f, "full"}, {q, "quarter"}} {
			for i := range s.c.Tapwatch {
				if fp, tp := s.c.Floor[i].Packets, s.c.Tapwatch[i].Packets; fp != tp {
					fmt.Fprintf(w, "warning: %s capture round %d: floor read %d packets, tapwatch %d\n", s.name, i+1, fp, tp)
				}
			}
		}
	}
	return w.Flush()
}

// FormatRate renders a rate with a k or M suffix.
func FormatRate(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

// FormatBytes renders a size in KiB, MiB or GiB.
func FormatBytes(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
