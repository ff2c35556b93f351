package benchtool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// fakeEnv makes the test binary act as the children Run starts: tapbench
// itself ("floor FILE"), tapwatch ("replay --json [--policy FILE]
// FILE") or valgrind ("--tool=callgrind --callgrind-out-file=F PROGRAM
// ARGS..."), or fail.
const fakeEnv = "TAPBENCH_TEST_CHILD"

// fakeOff is the policy TestRun's stages turn its two detectors off with.
const fakeOff = "version: 1\ndetectors:\n  malformed: {enabled: false}\n  recon-sweep: {enabled: false}\n"

// The fake valgrind counts fakeStart instructions and fakeFloor (floor)
// or fakeReplay (replay) per packet.
const (
	fakeStart  = 1_000_000
	fakeFloor  = 1500
	fakeReplay = 4000
)

func TestMain(m *testing.M) {
	switch os.Getenv(fakeEnv) {
	case "":
		os.Exit(m.Run())
	case "fail":
		fmt.Fprintln(os.Stderr, "fake child: bad capture")
		os.Exit(3)
	}
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--tool=callgrind" {
		os.Exit(fakeValgrind(args))
	}
	if len(args) >= 3 && args[0] == "replay" && args[1] == "--json" {
		if len(args) == 5 && args[2] == "--policy" {
			if y, err := os.ReadFile(args[3]); err != nil || !bytes.HasPrefix(y, []byte("version: 1\n")) {
				fmt.Fprintf(os.Stderr, "fake tapwatch: policy %s: %v\n", args[3], err)
				os.Exit(1)
			} else if filepath.Base(args[3]) == "off.yaml" && string(y) != fakeOff {
				fmt.Fprintf(os.Stderr, "fake tapwatch: policy %s:\n%s", args[3], y)
				os.Exit(1)
			}
			args = append(args[:2], args[4])
		}
		if len(args) != 3 {
			fmt.Fprintf(os.Stderr, "fake tapwatch: arguments %q\n", args)
			os.Exit(2)
		}
		r, err := FloorFile(args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// Like tapwatch: other output first, the summary object last.
		fmt.Println(`{"alert":"not a summary"}`)
		fmt.Printf("{\"packets\": %d, \"seconds\": %g, \"alerts\": 0}\n", r.Packets, r.Seconds)
		os.Exit(0)
	}
	os.Exit(Main(args, os.Stdout, os.Stderr))
}

// fakeValgrind runs the program as valgrind would, checks callgrind's
// environment, and writes a callgrind output file whose total is
// fakeStart plus fakeFloor or fakeReplay a packet.
func fakeValgrind(args []string) int {
	out, ok := strings.CutPrefix(args[1], "--callgrind-out-file=")
	if !ok || len(args) < 4 {
		fmt.Fprintf(os.Stderr, "fake valgrind: arguments %q\n", args)
		return 2
	}
	if os.Getenv("GOMAXPROCS") != "1" || os.Getenv("GODEBUG") != CallgrindGODEBUG {
		fmt.Fprintf(os.Stderr, "fake valgrind: GOMAXPROCS=%q GODEBUG=%q\n", os.Getenv("GOMAXPROCS"), os.Getenv("GODEBUG"))
		return 2
	}
	stdout, err := exec.Command(args[2], args[3:]...).Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake valgrind: %v\n", err)
		return 1
	}
	r, err := ParseResult(stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake valgrind: %v\n", err)
		return 1
	}
	per := int64(fakeFloor)
	if args[3] == "replay" {
		per = fakeReplay
	}
	f := fmt.Sprintf("version: 1\ncreator: callgrind-3.19.0\ncmd: %s\nevents: Ir\nfl=(1) x.go\nfn=(1) main\n0 12\n\ntotals: %d\n", args[2], fakeStart+per*r.Packets)
	if err := os.WriteFile(out, []byte(f), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7, 7, 1, 100, 7}, 7},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("Median reordered its input to %v", in)
			}
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestParseResult(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      Result
		wantErr   bool
	}{
		{"floor", `{"packets":1000,"seconds":0.5,"pps":2000,"payload_bytes":77}` + "\n",
			Result{Packets: 1000, Seconds: 0.5, PPS: 2000, PayloadBytes: 77}, false},
		{"tapwatch with extra fields", `{"seconds":2,"packets":10,"alerts":{"high":1},"version":"1.0"}`,
			Result{Packets: 10, Seconds: 2, PPS: 5}, false},
		{"last summary wins over earlier lines", "starting\n{\"rule\":\"x\"}\n{\"packets\":4,\"seconds\":1}\n\n",
			Result{Packets: 4, Seconds: 1, PPS: 4}, false},
		{"packets written as a float", `{"packets":3e3,"seconds":1.5}`,
			Result{Packets: 3000, Seconds: 1.5, PPS: 2000}, false},
		{"zero seconds", `{"packets":0,"seconds":0}`, Result{}, false},
		{"no seconds", `{"packets":10}`, Result{}, true},
		{"not JSON", "10 packets in 1s\n", Result{}, true},
		{"empty", "", Result{}, true},
		{"negative", `{"packets":-1,"seconds":1}`, Result{}, true},
		{"string packets", `{"packets":"10","seconds":1}`, Result{}, true},
	} {
		got, err := ParseResult([]byte(tc.out))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: ParseResult = %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestFormat(t *testing.T) {
	for got, want := range map[string]string{
		FormatRate(6_840_000): "6.84M", FormatRate(12_345): "12.3k", FormatRate(12): "12", FormatRate(math.NaN()): "-",
		FormatBytes(0): "-", FormatBytes(2048): "2.0 KiB", FormatBytes(15 << 20): "15.0 MiB", FormatBytes(3 << 30): "3.00 GiB",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// callgrindOut is the end of a callgrind output file, as valgrind 3.19
// writes it.
const callgrindOut = `# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  /tmp/tw replay --json /tmp/site.pcap
part: 1

desc: I1 cache:
desc: Timerange: Basic block 0 - 95712345
desc: Trigger: Program termination

positions: line
events: Ir
summary: 588213309

ob=(1) /tmp/tw
fl=(1) ???
fn=(1) runtime.rt0_go
0 12
cfn=(2) runtime.check
calls=1 0
0 977

totals: 588213309
`

func TestParseCallgrind(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     uint64
		wantErr  bool
	}{
		{"valgrind 3.19", callgrindOut, 588213309, false},
		{"summary only", "events: Ir\nsummary: 1234\n", 1234, false},
		{"totals before an older summary", "totals: 99\nsummary: 98\n", 99, false},
		{"totals wins over summary", "summary: 98\nfn=x\ntotals: 99\n", 99, false},
		{"several events: the first", "events: Ir Dr Dw\ntotals: 7 3 2\n", 7, false},
		{"no total", "events: Ir\nfn=(1) main\n0 5\n", 0, true},
		{"no number", "totals:\n", 0, true},
		{"not a number", "totals: lots\n", 0, true},
	} {
		got, err := ParseCallgrind([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: ParseCallgrind = %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestFloor checks the floor's counts against a conversation of known size
// in every link type and format it reads.
func TestFloor(t *testing.T) {
	for _, link := range []pcapgen.Link{pcapgen.LinkEthernet, pcapgen.LinkVLAN, pcapgen.LinkQinQ, pcapgen.LinkNull, pcapgen.LinkSLL} {
		for _, ng := range []bool{false, true} {
			var buf bytes.Buffer
			w, err := pcapgen.NewWriter(&buf, pcapgen.Options{Link: link, PcapNG: ng})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := pcapgen.NewTCPConn(w, pcapgen.Endpoint{IP: mustAddr("10.0.0.1"), Port: 1}, pcapgen.Endpoint{IP: mustAddr("10.0.0.2"), Port: 502}, 0, 0)
			c6, _ := pcapgen.NewTCPConn(w, pcapgen.Endpoint{IP: mustAddr("fd00::1"), Port: 1}, pcapgen.Endpoint{IP: mustAddr("fd00::2"), Port: 502}, 0, 0)
			u, _ := pcapgen.NewUDP(w, pcapgen.Endpoint{IP: mustAddr("10.0.0.1"), Port: 1}, pcapgen.Endpoint{IP: mustAddr("10.0.0.2"), Port: 502})
			c.Handshake()                                 // 3 packets, no payload
			c.Client(make([]byte, 100), pcapgen.Split(4)) // 4 packets, 100 bytes
			c6.Server(make([]byte, 1000))                 // 1 packet, 1000 bytes
			u.Send(make([]byte, 50))                      // 1 packet, UDP payload is not counted
			c.Close()                                     // 3 packets
			w.Flush()
			r, err := Floor(&buf)
			if err != nil {
				t.Fatalf("%v pcapng=%v: %v", link, ng, err)
			}
			if r.Packets != 12 || r.PayloadBytes != 1100 || r.Seconds <= 0 || r.PPS <= 0 {
				t.Errorf("%v pcapng=%v: %+v; want 12 packets, 1100 payload bytes", link, ng, r)
			}
		}
	}
	var buf bytes.Buffer
	w, _ := pcapgen.NewWriter(&buf, pcapgen.Options{Link: pcapgen.LinkRaw})
	w.Flush()
	if _, err := Floor(&buf); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("Floor on a raw-IP capture: %v, want a not-supported error", err)
	}
	if _, err := Floor(strings.NewReader("not a capture")); err == nil {
		t.Error("Floor on garbage succeeded")
	}
}

// TestRun runs the whole benchmark with this test binary standing in for
// both tapbench and tapwatch, so the child-process path is exercised.
func TestRun(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeEnv, "1")
	tmp := t.TempDir()
	var log bytes.Buffer
	rep, err := Run(context.Background(), Config{Packets: 4000, Rounds: 2, Self: self, Tapwatch: self, TempDir: tmp, Log: &log,
		Rules: 50, Instr: 1000, Valgrind: self, Stages: true, Detectors: []string{"malformed", "recon-sweep"}})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if len(rep.Full.Floor) != 2 || len(rep.Full.Tapwatch) != 2 || len(rep.Quarter.Floor) != 1 || len(rep.Quarter.Tapwatch) != 1 {
		t.Fatalf("rounds: %+v", rep)
	}
	if len(rep.Full.DetectorsOff) != 2 || len(rep.Full.BuiltinOnly) != 2 || len(rep.Quarter.DetectorsOff) != 0 {
		t.Fatalf("stages: %+v", rep)
	}
	if !strings.Contains(log.String(), "round 2: tapwatch, detectors off,") || !strings.Contains(log.String(), "round 2: tapwatch, built-in detectors only,") {
		t.Errorf("log:\n%s", log.String())
	}
	if rep.Full.Packets < 4000 || rep.Quarter.Packets < 1000 || rep.Quarter.Packets > 2000 || rep.Full.Bytes <= 0 {
		t.Errorf("captures: full %d packets %d bytes, quarter %d packets", rep.Full.Packets, rep.Full.Bytes, rep.Quarter.Packets)
	}
	for _, m := range slices.Concat(rep.Full.Floor, rep.Full.Tapwatch, rep.Full.DetectorsOff, rep.Full.BuiltinOnly) {
		if m.Packets != int64(rep.Full.Packets) || m.Wall <= 0 || m.MaxRSS <= 0 {
			t.Errorf("measurement %+v: want %d packets, wall time and RSS", m, rep.Full.Packets)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("Run left %v in its temporary directory", entries)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	c := rep.Instr
	if c == nil || c.Floor == nil || c.Tapwatch == nil || c.Skipped != "" {
		t.Fatalf("instructions: %+v", c)
	}
	if c.Packets < 1000 || c.TinyPackets < TinyPackets || c.TinyPackets > 100 ||
		c.Floor.Big != fakeStart+fakeFloor*uint64(c.Packets) || c.Tapwatch.Tiny != fakeStart+fakeReplay*uint64(c.TinyPackets) ||
		c.Floor.PerPacket != fakeFloor || c.Tapwatch.PerPacket != fakeReplay || c.Ratio != float64(fakeReplay)/fakeFloor {
		t.Errorf("instructions: %+v, floor %+v, tapwatch %+v", c, c.Floor, c.Tapwatch)
	}
	if rep.Plant != PlantSite || rep.Rules != 50 {
		t.Errorf("report of plant %q with %d rules", rep.Plant, rep.Rules)
	}
	for _, want := range []string{"packets/s (wall time)", "tapwatch/floor", "  detectors off, no rules", "  built-in detectors only", fmt.Sprintf("peak RSS, %d packets", rep.Quarter.Packets), "full / quarter",
		"site plant", "a policy of 50 rules", "instructions/packet                  1500         4000             2.67", "GOMAXPROCS=1 GODEBUG=" + CallgrindGODEBUG} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if strings.Contains(table.String(), "warning") {
		t.Errorf("packet counts disagree:\n%s", table.String())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}

	// Floor only, the small plant, no valgrind on PATH.
	t.Setenv("PATH", t.TempDir())
	rep, err = Run(context.Background(), Config{Packets: 400, Rounds: 1, Self: self, TempDir: tmp, Plant: PlantSmall, Instr: 100})
	if err != nil || len(rep.Full.Tapwatch) != 0 || len(rep.Full.Floor) != 1 {
		t.Fatalf("floor only: %+v, %v", rep, err)
	}
	if rep.Instr == nil || rep.Instr.Floor != nil || !strings.Contains(rep.Instr.Skipped, "valgrind") {
		t.Errorf("instructions without valgrind: %+v", rep.Instr)
	}
	table.Reset()
	rep.WriteTable(&table)
	for _, want := range []string{"small plant", "no policy", "instructions/packet: not counted: valgrind is not installed"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("floor-only table lacks %q:\n%s", want, table.String())
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("Run left %v in its temporary directory", entries)
	}

	// A failing child is reported with its stderr.
	t.Setenv(fakeEnv, "fail")
	_, err = Run(context.Background(), Config{Packets: 400, Rounds: 1, Self: self, TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "bad capture") {
		t.Errorf("failing child: %v", err)
	}
}

func TestMainCommands(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plant.pcap")
	var out, errb bytes.Buffer
	if code := Main([]string{"gen", "-n", "500", "-o", file}, &out, &errb); code != 0 {
		t.Fatalf("gen: exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := Main([]string{"floor", file, file}, &out, &errb); code != 0 {
		t.Fatalf("floor: exit %d: %s", code, errb.String())
	}
	r, err := ParseResult(out.Bytes())
	if err != nil || r.Packets < 1000 || r.PayloadBytes <= 0 {
		t.Errorf("floor over two files: %+v, %v from %s", r, err, out.String())
	}
	out.Reset()
	if code := Main([]string{"gen", "-plant", "small", "-n", "500", "-o", file}, &out, &errb); code != 0 || !strings.Contains(out.String(), " packets, ") {
		t.Fatalf("gen -plant small: exit %d: %s%s", code, out.String(), errb.String())
	}
	pol := filepath.Join(dir, "policy.yaml")
	if code := Main([]string{"policy", "-n", "20", "-o", pol}, &out, &errb); code != 0 {
		t.Fatalf("policy: exit %d: %s", code, errb.String())
	}
	if y, err := os.ReadFile(pol); err != nil || strings.Count(string(y), "  - id: r") != 20 {
		t.Errorf("policy -n 20 wrote %d rules, %v", strings.Count(string(y), "  - id: r"), err)
	}
	out.Reset()
	if code := Main([]string{"policy", "-plant", "small", "-n", "3"}, &out, &errb); code != 0 || strings.Count(out.String(), "  - id: r") != 3 {
		t.Errorf("policy to stdout: exit %d: %s", code, out.String())
	}
	for _, args := range [][]string{{"gen", "-plant", "huge", "-o", file}, {"policy", "-plant", "huge"}, {"run", "-plant", "huge"}} {
		if code := Main(args, &out, &errb); code != 1 {
			t.Errorf("Main(%q) = %d, want 1", args, code)
		}
	}
	for _, args := range [][]string{nil, {"bogus"}, {"gen"}, {"floor"}, {"run", "-rounds", "x"}, {"run", "extra"}, {"policy", "x"}, {"policy", "-n", "-1"},
		{"pgo"}, {"pgo", "-o", pol}, {"pgo", "in.txt"}, {"pgo", "-o", pol, "a.txt", "b.txt"}} {
		if code := Main(args, &out, &errb); code != 2 {
			t.Errorf("Main(%q) = %d, want 2", args, code)
		}
	}
	if code := Main([]string{"floor", filepath.Join(dir, "missing.pcap")}, &out, &errb); code != 1 {
		t.Errorf("floor on a missing file: exit %d, want 1", code)
	}

	// pgo: the text form in, a pprof profile out (gzip or not, pprof
	// reads both; tapbench writes it plain); a bad line is named, and
	// nothing is written then.
	text := filepath.Join(dir, "pgo.txt")
	os.WriteFile(text, []byte("GO PREPROFILE V1\na.f\nb.g\n3 100\n"), 0o644)
	pp := filepath.Join(dir, "pgo.pprof")
	if code := Main([]string{"pgo", "-o", pp, text}, &out, &errb); code != 0 {
		t.Fatalf("pgo: exit %d: %s", code, errb.String())
	}
	if b, err := os.ReadFile(pp); err != nil || !bytes.Contains(b, []byte("b.g")) || !bytes.Contains(b, []byte("samples")) {
		t.Errorf("pgo wrote %q, %v", b, err)
	}
	os.WriteFile(text, []byte("GO PREPROFILE V1\na.f\nb.g\nthree 100\n"), 0o644)
	bad := filepath.Join(dir, "bad.pprof")
	errb.Reset()
	if code := Main([]string{"pgo", "-o", bad, text}, &out, &errb); code != 1 || !strings.Contains(errb.String(), text+": line 4: ") {
		t.Errorf("pgo of a bad profile: exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("pgo of a bad profile wrote a file")
	}
}
