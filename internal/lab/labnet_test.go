//go:build linux

package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// labNamespaces are the namespaces scripts/lab.sh creates with
// LAB_PREFIX=prefix (tw by default).
func labNamespaces(prefix string) []string {
	var names []string
	for _, n := range []string{"sw", "hmi", "plc", "rogue", "dnp3", "tap"} {
		names = append(names, prefix+"-"+n)
	}
	return names
}

func netnsList(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// TestLabNetwork brings a lab of its own up with scripts/lab.sh (a prefix
// unique to the run, so that the default lab, or another run's, may be up
// at the same time), captures on the tap for a few seconds with tshark,
// and checks that the tap receives the HMI's Modbus requests and the PLC's
// responses, mbpoll's, and a whole DNP3 replay, each frame exactly once;
// then it brings the lab down and checks that its namespaces are gone, and
// the default lab's, if it was up, are still there.
func TestLabNetwork(t *testing.T) {
	testenv.NeedRoot(t, "the lab's network namespaces")
	for _, tool := range [][2]string{{"ip", "iproute2"}, {"tc", "iproute2"}, {"tcpreplay", "tcpreplay"}, {"mbpoll", "mbpoll"}, {"tshark", "tshark"}} {
		testenv.Tool(t, tool[0], tool[1])
	}
	prefix := testenv.UniqueName("twlab")
	mine, defaults := labNamespaces(prefix), labNamespaces("tw")
	var defaultsUp []string // the default lab's, which must stay
	for _, ns := range netnsList(t) {
		if slices.Contains(defaults, ns) {
			defaultsUp = append(defaultsUp, ns)
		}
	}
	root := testenv.Root(t)
	run := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script := func(args ...string) string {
		t.Helper()
		// Not ctx: down runs in t.Cleanup, after ctx is cancelled.
		cmd := exec.Command(filepath.Join(root, "scripts", "lab.sh"), args...)
		cmd.WaitDelay = time.Minute
		cmd.Dir = root
		cmd.Env = append(os.Environ(),
			"LAB_PREFIX="+prefix, "LAB_RUN_DIR="+run,
			"LAB_HMI_INTERVAL=200ms", "LAB_HMI_WRITE_EVERY=5", // a write a second
			"LAB_MBPOLL_EVERY=1", "LAB_DNP3_EVERY=1",
			"GO="+goTool(t))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	t.Cleanup(func() {
		pids, _ := filepath.Glob(filepath.Join(run, "*.pid"))
		var started []string
		for _, f := range pids {
			if b, err := os.ReadFile(f); err == nil {
				started = append(started, strings.TrimSpace(string(b)))
			}
		}
		out := script("down")
		for _, pid := range started {
			// Gone, or a zombie that init has not reaped yet.
			if b, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !bytes.Contains(b, []byte(") Z ")) {
				t.Errorf("process %s still runs after lab.sh down: %s", pid, b)
			}
		}
		after := netnsList(t)
		for _, ns := range after {
			if slices.Contains(mine, ns) {
				t.Errorf("namespace %s is still there after lab.sh down:\n%s", ns, out)
			}
		}
		for _, ns := range defaultsUp {
			if !slices.Contains(after, ns) {
				t.Errorf("the default lab's namespace %s, up before the test, is gone after its lab.sh down:\n%s", ns, out)
			}
		}
		if t.Failed() {
			for _, name := range []string{"plc", "hmi", "mbpoll", "dnp3-replay"} {
				b, _ := os.ReadFile(filepath.Join(run, name+".log"))
				t.Logf("%s.log:\n%s", name, b)
			}
		}
	})
	if out := script("up"); !strings.Contains(out, "ip netns exec "+prefix+"-tap bin/tapwatch run -c scripts/lab/tapwatch.yaml") ||
		!strings.Contains(out, "LAB_PREFIX="+prefix+" scripts/lab.sh down") {
		t.Errorf("lab.sh up does not say how to run tapwatch and stop the lab:\n%s", out)
	}
	var made []string
	for _, ns := range netnsList(t) {
		if strings.HasPrefix(ns, prefix+"-") {
			made = append(made, ns)
		}
	}
	if slices.Sort(made); !slices.Equal(made, slices.Sorted(slices.Values(mine))) {
		t.Errorf("lab.sh up with LAB_PREFIX=%s made the namespaces %v, want %v", prefix, made, mine)
	}
	if out := script("up"); !strings.Contains(out, "plc already running") { // idempotent
		t.Errorf("lab.sh up, a second time:\n%s", out)
	}
	if out := script("status"); !strings.Contains(out, "4 of 4 switch ports mirrored") || !strings.Contains(out, "the lab is up") {
		t.Errorf("lab.sh status:\n%s", out)
	}

	// A DNP3 replay takes 3.3 s and starts again 1 s after the last one
	// ended: an 8 s capture holds at least one whole.
	file := filepath.Join(t.TempDir(), "tap.pcap")
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", prefix+"-tap",
		"tshark", "-n", "-q", "-i", "tap0", "-a", "duration:8", "-F", "pcap", "-w", file).CombinedOutput(); err != nil {
		t.Fatalf("tshark on %s-tap's tap0: %v\n%s", prefix, err, out)
	}

	// What tshark makes of it: one line per Modbus message.
	out, err := exec.CommandContext(ctx, "tshark", "-n", "-r", file, "-Y", "modbus", "-T", "fields", "-E", "separator=,",
		"-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "modbus.func_code", "-e", "modbus.word_cnt").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	var hmiReads, hmiWrites, plcResponses, mbpollReads int
	mbpollConns := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ",")
		if len(f) != 6 {
			continue
		}
		switch {
		case f[0] == "10.10.1.10" && f[1] == "10.10.1.20" && f[3] == "502" && f[4] == "3" && f[5] == "10":
			mbpollReads++ // mbpoll -r 1 -c 10; the HMI reads 8 registers
			mbpollConns[f[2]] = true
		case f[0] == "10.10.1.10" && f[1] == "10.10.1.20" && f[3] == "502" && f[4] == "6":
			hmiWrites++
		case f[0] == "10.10.1.10" && f[1] == "10.10.1.20" && f[3] == "502":
			hmiReads++
		case f[0] == "10.10.1.20" && f[1] == "10.10.1.10" && f[2] == "502":
			plcResponses++
		}
	}
	// A request at the end of the capture may miss its response, and one
	// at the start may have been sent before it.
	requests := hmiReads + hmiWrites + mbpollReads
	if hmiReads < 20 || hmiWrites < 2 || mbpollReads < 3 || len(mbpollConns) < 3 || plcResponses < requests-2 || plcResponses > requests+2 {
		t.Errorf("on the tap: %d HMI reads, %d HMI writes, %d mbpoll reads on %d connections, %d PLC responses\n%s",
			hmiReads, hmiWrites, mbpollReads, len(mbpollConns), plcResponses, out)
	}

	// Byte for byte: no frame arrives twice (a second copy would follow
	// within microseconds), and one replay of the DNP3 capture arrived
	// whole, in order, frame for frame.
	tap := readFrames(t, file)
	last := map[string]time.Time{}
	var dnp3 [][]byte
	for _, f := range tap {
		if prev, ok := last[string(f.data)]; ok && f.ts.Sub(prev) < 50*time.Millisecond {
			t.Errorf("a %d-byte frame arrived twice, %v apart", len(f.data), f.ts.Sub(prev))
		}
		last[string(f.data)] = f.ts
		if bytes.Contains(f.data[:min(len(f.data), 14)], LabMAC(DNP3Master)) {
			dnp3 = append(dnp3, f.data)
		}
	}
	want := readFrames(t, filepath.Join(run, "dnp3.pcap"))
	whole := false
	for i := 0; i+len(want) <= len(dnp3) && !whole; i++ {
		whole = true
		for j, w := range want {
			if !bytes.Equal(dnp3[i+j], w.data) {
				whole = false
				break
			}
		}
	}
	if !whole {
		t.Errorf("no whole replay of the %d DNP3 frames among the %d seen on the tap", len(want), len(dnp3))
	}
}

// TestLabSkipsAsUser: an ordinary user who runs the lab's test is told
// that it needs root (tc, which it also needs, is in /usr/sbin, out of
// the user's PATH: "install iproute2" would not help).
func TestLabSkipsAsUser(t *testing.T) {
	if msg := testenv.SkipsAsUser(t, "^TestLabNetwork$")["TestLabNetwork"]; !strings.Contains(msg, "needs root") {
		t.Errorf("TestLabNetwork, run by an ordinary user, skipped with %q", msg)
	}
}

// TestLabPrefix: lab.sh refuses a LAB_PREFIX that cannot start a
// namespace's name, before it does anything, and its usage and help say
// what LAB_PREFIX is.
func TestLabPrefix(t *testing.T) {
	lab := filepath.Join(testenv.Root(t), "scripts", "lab.sh")
	run := func(prefix string, args ...string) (string, error) {
		cmd := exec.Command(lab, args...)
		cmd.Env = append(os.Environ(), "LAB_PREFIX="+prefix, "LAB_RUN_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, bad := range []string{"a/b", "../x", "-x", "a b"} {
		if out, err := run(bad, "down"); err == nil || !strings.Contains(out, "LAB_PREFIX") || !strings.Contains(out, "letters, digits, - and _") {
			t.Errorf("LAB_PREFIX=%q lab.sh down: %v\n%s", bad, err, out)
		}
	}
	if out, err := run("", "nosuchcommand"); err == nil || !strings.Contains(out, "usage: [LAB_PREFIX=NAME]") {
		t.Errorf("lab.sh nosuchcommand: %v\n%s", err, out)
	}
	if out, err := run("", "--help"); err != nil || !strings.Contains(out, "LAB_PREFIX (tw: the namespaces' names") {
		t.Errorf("lab.sh --help: %v\n%s", err, out)
	}
}

type frame struct {
	ts   time.Time
	data []byte
}

func readFrames(t *testing.T, path string) []frame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var frames []frame
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return frames
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		frames = append(frames, frame{ci.Timestamp, data})
	}
}

// goTool is the go command lab.sh builds tapwatch-lab with.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	// go test puts its go first on PATH: only a test binary run by hand
	// may lack it.
	testenv.Need(t, err == nil, fmt.Sprintf("lab.sh builds bin/tapwatch-lab with go, which is not on PATH (%v): run the test with go test, or put go on PATH", err))
	return p
}
