package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/uplink"
)

// TestDemo runs tapwatch demo, sped up, and checks what a newcomer is
// shown: the learned baseline, each attack caught by the alerts the tail
// received, the LEDs, the acknowledge, the offline status, the summary
// and the files, which replay to the same alerts; and that nothing is
// left running.
func TestDemo(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := filepath.Join(t.TempDir(), "demo")
	var stdout, stderr testenv.Buffer
	start := time.Now()
	// A capture of 8 minutes at 50x: the first high alerts (the ARP
	// spoofing) and the critical one some 5 s apart, to see ALERT blink
	// slow, then fast.
	if rc := run([]string{"demo", "--dir", dir, "--speed", "50"}, &stdout, &stderr); rc != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", rc, stdout.String(), stderr.String())
	}
	took := time.Since(start)
	out := stdout.String()
	if testing.Verbose() {
		t.Logf("demo took %s:\n%s", took, out)
	}
	if stderr.String() != "" {
		t.Errorf("demo wrote on standard error:\n%s", stderr.String())
	}
	for _, want := range []string{
		"1. MQTT broker: embedded in this process, at tcp://127.0.0.1:",
		"   masters: hmi 10.10.1.10, ews 10.10.1.11, scada 10.10.1.12\n",
		// The baseline's excerpt: the HMI's conversation with plc1 and the
		// learned range of the pump setpoint.
		"     - src: master-10-10-1-10\n       dst: plc-10-10-1-20\n",
		"         - {table: holding_registers, addr: 5, min: ",
		// The LEDs: healthy, then ALERT slow at high, fast at critical,
		// and off after the button.
		"LEDs: RUN on (heartbeat), LINK on, UPLINK on, ALERT off; alarm relay off, health relay on\n",
		"ALERT slow blink; alarm relay on, health relay on\n",
		"ALERT fast blink; alarm relay on, health relay on\n",
		"status demo-plant/tap1 MONITORING; tap0 up; uplink connected; alerts acknowledged at the box\n",
		"status demo-plant/tap1 OFFLINE (stopped)",
		// Who did what to which device, against the learned range.
		" HIGH demo-plant/tap1 baseline-value-range: Written value 900 out of learned range at holding_registers 5 of 10.10.1.20 from 10.10.1.10\n" +
			"    10.10.1.10 (Modbus master) → 10.10.1.20 unit 1 (Modbus server): write_single_register (fc 6), holding register 5, value 900; expected ",
		" CRITICAL demo-plant/tap1 pump-speed-limit: ",
		// The network attack: the intruder's MAC claims the HMI's address.
		" HIGH demo-plant/tap1 arp-spoof: ARP spoofing: 10.10.1.10 claimed by 02:00:5e:20:09:03 (10.10.1.88) while 02:00:5e:20:01:00 claims it\n" +
			"    10.10.1.88 (host) → 10.10.1.10 (Modbus master)\n",
		"    ATT&CK T0836 Modify Parameter, T0831 Manipulation of Control\n",
		"   attacks     7 of the 7 in the answer key caught; 0 alerts on normal traffic:\n",
		"none missing\n",
		"Nothing is left running",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`expected [0-9.]+\.\.[0-9.]+ \(learned (\d+)\.\.(\d+)\)`).FindStringSubmatch(out); m == nil {
		t.Error("the value-range alert does not give the learned range")
	}
	// The panel agrees with the status: UPLINK is off only once the box
	// has stopped (the status says connected from the first one on).
	for _, l := range regexp.MustCompile(`(?m)^LEDs: .*$`).FindAllString(out, -1) {
		if strings.Contains(l, "UPLINK off") && !strings.Contains(l, "RUN off") {
			t.Errorf("the panel shows UPLINK off while the box runs, with an uplink: %s", l)
		}
	}
	checkDemoCounts(t, dir, out)
	for _, k := range demoAttacks {
		if !regexp.MustCompile(`(?m)^     caught ` + regexp.QuoteMeta(string(k)) + ` +\S`).MatchString(out) {
			t.Errorf("the summary does not say %s was caught", k)
		}
	}
	// The summary's alert count is what alerts.jsonl holds.
	received := readAlerts(t, filepath.Join(dir, "alerts.jsonl"))
	firsts := 0
	for _, a := range received {
		if a["count"].(float64) <= 1 {
			firsts++
		}
	}
	if !regexp.MustCompile(`(?m)^   alerts      ` + strconv.Itoa(firsts) + ` \(1 critical, `).MatchString(out) {
		t.Errorf("the summary's alert count is not the %d first alerts of alerts.jsonl", firsts)
	}

	// Replaying the files, as the summary says, finds the same alerts.
	var rout, rerr bytes.Buffer
	if rc := run([]string{"replay", "--policy", filepath.Join(dir, "policy.yaml"), "--baseline", filepath.Join(dir, "baseline.yaml"),
		filepath.Join(dir, "plant.pcap")}, &rout, &rerr); rc != 0 {
		t.Fatalf("replay of the demo's files: exit %d: %s", rc, rerr.String())
	}
	var replayed []string
	for _, l := range strings.Split(strings.TrimSpace(rout.String()), "\n") {
		var a map[string]any
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatal(err)
		}
		if a["count"].(float64) <= 1 {
			replayed = append(replayed, alertKey(a))
		}
	}
	var live []string
	for _, a := range received {
		if a["count"].(float64) <= 1 {
			live = append(live, alertKey(a))
		}
	}
	slices.Sort(replayed)
	slices.Sort(live)
	if !slices.Equal(replayed, live) || len(live) == 0 {
		t.Errorf("replay of the files found\n%v\nthe demo's tail received\n%v", replayed, live)
	}
	for _, f := range []string{"plant.pcap", "truth.jsonl", "policy.yaml", "baseline.yaml"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}

	// A second run replaces the first one's files; a directory that is
	// not a demo's is refused, and nothing in it is touched.
	if err := (&demo{dir: dir}).prepareDir(); err != nil {
		t.Errorf("a second run in %s: %v", dir, err)
	}
	mine := t.TempDir()
	keep := filepath.Join(mine, "policy.yaml")
	os.WriteFile(keep, []byte("mine"), 0o644)
	var e bytes.Buffer
	if rc := run([]string{"demo", "--dir", mine}, &e, &e); rc != 1 || !strings.Contains(e.String(), "is not empty and not a tapwatch demo's") {
		t.Errorf("demo in a directory of someone's: exit %d: %s", rc, e.String())
	}
	if b, _ := os.ReadFile(keep); string(b) != "mine" {
		t.Errorf("the demo changed a file it did not make: %q", b)
	}

	// Nothing left running: the broker's port is closed, and the
	// goroutines are back to what they were.
	m := regexp.MustCompile(`tcp://(127\.0\.0\.1:\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no broker address in the output")
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("the broker at %s still accepts connections", m[1])
	}
	waitGoroutines(t, before)
}

// checkDemoCounts checks that the box's stats message, as the tail
// printed it, and the summary count what replay --summary counts in the
// same capture: the flows created, the malformed messages; and that the
// summary's alerts add up to the messages of alerts.jsonl.
func checkDemoCounts(t *testing.T, dir, out string) {
	t.Helper()
	var rout, rerr bytes.Buffer
	if rc := run([]string{"replay", "--json", filepath.Join(dir, "plant.pcap")}, &rout, &rerr); rc != 0 {
		t.Fatalf("replay --json of the demo's capture: exit %d: %s", rc, rerr.String())
	}
	var s struct {
		Packets uint64 `json:"packets"`
		DPI     struct {
			FlowsCreated uint64 `json:"flows_created"`
		} `json:"dpi"`
		Messages  uint64 `json:"messages"`
		Malformed uint64 `json:"malformed_messages"`
		DNP3      struct {
			Fragments  uint64 `json:"fragments"`
			LinkFrames uint64 `json:"link_frames"`
			Malformed  uint64 `json:"malformed_messages"`
		} `json:"dnp3"`
	}
	if err := json.Unmarshal(rout.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	malformed := s.Malformed + s.DNP3.Malformed
	if s.DPI.FlowsCreated == 0 || malformed == 0 {
		t.Fatalf("the demo's capture has %d flows and %d malformed messages: the check below would prove nothing", s.DPI.FlowsCreated, malformed)
	}
	stats := fmt.Sprintf(" stats demo-plant/tap1 %d packets, %d Modbus and %d DNP3 messages, %d flows (0 open now); alerts: ",
		s.Packets, s.Messages, s.DNP3.Fragments+s.DNP3.LinkFrames, s.DPI.FlowsCreated)
	if !strings.Contains(out, stats) || !strings.Contains(out, fmt.Sprintf("; %d malformed\n", malformed)) {
		t.Errorf("the tail's stats line is not %q ... \"; %d malformed\" (replay --summary's counts)", stats, malformed)
	}
	summary := fmt.Sprintf("   packets     %d in %d flows; %d Modbus and %d DNP3 messages decoded, %d malformed\n",
		s.Packets, s.DPI.FlowsCreated, s.Messages, s.DNP3.Fragments+s.DNP3.LinkFrames, malformed)
	if !strings.Contains(out, summary) {
		t.Errorf("the summary lacks %q (replay --summary's counts)", summary)
	}
	received := readAlerts(t, filepath.Join(dir, "alerts.jsonl"))
	repeats := 0
	for _, a := range received {
		if a["count"].(float64) > 1 {
			repeats++
		}
	}
	if repeats == 0 {
		t.Fatal("no folded repeats in alerts.jsonl: the check below would prove nothing")
	}
	if want := fmt.Sprintf(") and %d reports of folded repeats (%d messages)\n", repeats, len(received)); !strings.Contains(out, want) {
		t.Errorf("the summary's alerts line lacks %q", want)
	}
}

// With --keep-broker the broker stays up after the summary, until
// Ctrl-C; the tail line the summary gives works against it, and at
// Ctrl-C it stops and nothing is left running.
func TestDemoKeepBroker(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := filepath.Join(t.TempDir(), "demo")
	var stdout, stderr testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &demo{dir: dir, speed: 1000, seed: 7, keepBroker: true, stdout: &stdout, out: &stdout, errOut: &stderr}
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	tailLine := regexp.MustCompile(`(?m)^     \S+ (tail --broker (tcp://127\.0\.0\.1:\d+) --format text)$`)
	deadline := time.Now().Add(60 * time.Second)
	var m []string
	for m == nil {
		select {
		case err := <-done:
			t.Fatalf("the demo ended before Ctrl-C: %v\n%s\n%s", err, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tail line within 60s:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
		m = tailLine.FindStringSubmatch(stdout.String())
	}
	if !strings.Contains(stdout.String(), "The broker stays up at "+m[2]+" until Ctrl-C.") {
		t.Errorf("the summary does not say the broker stays up:\n%s", stdout.String())
	}
	// The summary's tail line, as a user would type it: the box's
	// retained offline status comes first. (A tail waits for ever for a
	// broker that is gone.)
	var tout, terr testenv.Buffer
	tailed := make(chan int, 1)
	go func() { tailed <- run(append(strings.Fields(m[1]), "--kinds", "status", "--count", "1"), &tout, &terr) }()
	select {
	case rc := <-tailed:
		if rc != 0 || !strings.Contains(tout.String(), "status demo-plant/tap1 (retained) OFFLINE (stopped)") {
			t.Errorf("%s against the kept broker: exit %d\n%s%s", m[1], rc, tout.String(), terr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing from the kept broker within 10s\n%s%s", m[1], tout.String(), terr.String())
	}
	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the demo ended with %v at Ctrl-C, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the kept broker did not stop within 10s of Ctrl-C")
	}
	if !strings.HasSuffix(stdout.String(), "The broker has stopped; nothing is left running.\n") {
		t.Errorf("the demo does not end saying the broker stopped:\n%s", stdout.String())
	}
	if stderr.String() != "" {
		t.Errorf("standard error:\n%s", stderr.String())
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(m[2], "tcp://"), time.Second); err == nil {
		c.Close()
		t.Errorf("the broker at %s still accepts connections after Ctrl-C", m[2])
	}
	waitGoroutines(t, before)
}

// The demo waits for its own tail to subscribe before the box publishes,
// not for any tail: one the user started first against --listen's broker
// does not stand for it.
func TestDemoWaitsForItsTail(t *testing.T) {
	broker, err := uplink.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	ctx, cancel := context.WithCancel(context.Background())
	users := make(chan struct{})
	go func() {
		defer close(users)
		uplink.Tail(ctx, uplink.TailConfig{Brokers: []string{broker.URL()}}, io.Discard, io.Discard)
	}()
	defer func() { cancel(); <-users }()
	deadline := time.Now().Add(10 * time.Second)
	for !broker.Subscribed("tapwatch-tail-") {
		if time.Now().After(deadline) {
			t.Fatal("the user's tail did not subscribe within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out testenv.Buffer
	d := &demo{dir: t.TempDir(), stdout: &out, out: &out, errOut: &out}
	if err := d.startTail(context.Background(), broker); err != nil {
		t.Fatal(err)
	}
	defer d.stopTail()
	if !broker.Subscribed(d.received.tailID) {
		t.Errorf("startTail returned before the demo's tail (%s) subscribed", d.received.tailID)
	}
}

// --listen takes a loopback address only: the broker has no TLS and no
// password.
func TestDemoListen(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:1883", "10.1.2.3:1883", ":1883", "example.net:1883", "127.0.0.1"} {
		var out, errb bytes.Buffer
		if rc := run([]string{"demo", "--listen", addr, "--dir", t.TempDir()}, &out, &errb); rc != 2 || !strings.Contains(errb.String(), "--listen: ") {
			t.Errorf("--listen %s: exit %d, %s", addr, rc, errb.String())
		}
	}
	for _, addr := range []string{"127.0.0.1:1883", "[::1]:0", "localhost:1883", "127.0.0.2:0"} {
		if err := checkLoopback(addr); err != nil {
			t.Errorf("--listen %s: %v", addr, err)
		}
	}
}

// A demo interrupted (Ctrl-C) stops at once and leaves nothing running.
func TestDemoInterrupted(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := filepath.Join(t.TempDir(), "demo")
	var stdout, stderr testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	d := &demo{dir: dir, speed: 1, seed: 7, stdout: &stdout, out: &stdout, errOut: &stderr}
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "LEDs: RUN on (heartbeat)") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not start monitoring within 30s:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("interrupted demo: %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not stop within 20s of the interrupt")
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the demo took %s to stop", took)
	}
	if !strings.Contains(stdout.String(), "status demo-plant/tap1 OFFLINE (stopped)") {
		t.Errorf("no offline status after the interrupt:\n%s", stdout.String())
	}
	waitGoroutines(t, before)
}

func readAlerts(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a map[string]any
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("%s: %v: %s", path, err, sc.Text())
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no alerts", path)
	}
	return out
}

// alertKey is an alert's rule and ends.
func alertKey(a map[string]any) string {
	ip := func(k string) string {
		e, _ := a[k].(map[string]any)
		s, _ := e["ip"].(string)
		return s
	}
	return a["rule"].(string) + " " + ip("src") + ">" + ip("dst")
}

// waitGoroutines waits for the goroutines to come back to n (a few more
// are the runtime's and the test framework's), and fails with their
// stacks if they do not.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left running (%d before):\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
