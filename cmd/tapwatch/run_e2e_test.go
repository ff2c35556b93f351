//go:build linux

package main

// End-to-end tests of tapwatch run: a plant built from network
// namespaces (an HMI, a PLC and a rogue host on a bridge in a switch
// namespace, whose ports are mirrored with tc to the tap namespace where
// the daemon listens), real Modbus stacks (simonvetter server, goburrow
// client, mbpoll), the daemon as a real process with its signals, and a
// real mosquitto reached over a management veth, as on the box.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/lab"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/uplink"
)

// When the test binary is started with this variable set it is tapwatch
// itself: the daemon runs as its own process, in the tap namespace.
const asTapwatch = "TAPWATCH_E2E_AS_TAPWATCH"

func TestMain(m *testing.M) {
	if os.Getenv(asTapwatch) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type plant struct {
	t                        *testing.T
	tcCmd                    string // tc's path: it is in /usr/sbin
	sw, hmi, plc, rogue, tap *testenv.Netns
	mgmt                     string // the host's address on the management link
	broker                   *testenv.Mosquitto
	uplinkTLS                *uplink.TLSConfig // set: the daemon uses ssl:// with this certificate
	ifaces                   []string
	ctx                      context.Context
	stopTraffic              context.CancelFunc
	wg                       sync.WaitGroup
}

// newPlant builds the plant. With split the tap has two interfaces, as a
// passive tap: tapA carries what the HMI and the rogue host send, tapB
// what the PLC sends. Otherwise tap0 carries both directions.
func newPlant(t *testing.T, split bool) *plant {
	testenv.NeedRoot(t, "network namespaces and tc")
	p := &plant{t: t, tcCmd: testenv.Tool(t, "tc", "iproute2"),
		sw: testenv.NewNetns(t, "twesw"), hmi: testenv.NewNetns(t, "twehmi"), plc: testenv.NewNetns(t, "tweplc"),
		rogue: testenv.NewNetns(t, "twerog"), tap: testenv.NewNetns(t, "twetap")}
	p.sw.IP("link", "add", "br0", "type", "bridge")
	p.sw.IP("link", "set", "br0", "up")
	hosts := []struct {
		ns   *testenv.Netns
		port string
		ip   string
	}{{p.hmi, "swhmi", "10.10.1.10"}, {p.plc, "swplc", "10.10.1.20"}, {p.rogue, "swrog", "10.10.1.66"}}
	for _, h := range hosts {
		testenv.Veth(t, h.ns, "eth0", p.sw, h.port)
		p.sw.IP("link", "set", h.port, "master", "br0")
		h.ns.IP("addr", "add", h.ip+"/24", "dev", "eth0")
	}
	mirror := map[string]string{"swhmi": "mir0", "swplc": "mir0", "swrog": "mir0"}
	p.ifaces = []string{"tap0"}
	if split {
		mirror = map[string]string{"swhmi": "mirA", "swrog": "mirA", "swplc": "mirB"}
		p.ifaces = []string{"tapA", "tapB"}
		testenv.Veth(t, p.sw, "mirA", p.tap, "tapA")
		testenv.Veth(t, p.sw, "mirB", p.tap, "tapB")
	} else {
		testenv.Veth(t, p.sw, "mir0", p.tap, "tap0")
	}
	// Every frame entering the switch from a host is copied, once, to
	// the tap: the ingress of each port, mirrored.
	for port, to := range mirror {
		p.tc("qdisc", "add", "dev", port, "clsact")
		p.tc("filter", "add", "dev", port, "ingress", "protocol", "all", "prio", "1", "u32", "match", "u32", "0", "0",
			"action", "mirred", "egress", "mirror", "dev", to)
	}
	// The management link: the daemon reaches the broker on this host.
	host, _ := testenv.HostLink(t, p.tap, "mgmt0")
	p.mgmt = host.String()
	p.broker = testenv.StartMosquittoOn(t, p.mgmt)

	ctx, cancel := context.WithCancel(context.Background())
	p.ctx, p.stopTraffic = ctx, cancel
	t.Cleanup(func() { cancel(); p.wg.Wait() })
	ready := make(chan string, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.plc.Do(func() error {
			return lab.RunPLC(ctx, lab.PLCConfig{Listen: "10.10.1.20:502", Ready: func(a string) { ready <- a }}, nil)
		})
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the PLC did not start")
	}
	return p
}

// TestPlantSkipsAsUser: an ordinary user (no root, no /usr/sbin on PATH,
// where Debian's tc is) who runs the plant's tests is told that they need
// root, the remedy that works, and not to install iproute2, which is
// installed.
func TestPlantSkipsAsUser(t *testing.T) {
	plantTests := []string{"TestRunLive", "TestRunTapPorts", "TestRunLinkDown", "TestRunReload", "TestSystemMutualTLS"}
	skips := testenv.SkipsAsUser(t, "^("+strings.Join(plantTests, "|")+")$")
	for _, name := range plantTests {
		if msg := skips[name]; !strings.Contains(msg, "needs root") {
			t.Errorf("%s, run by an ordinary user, skipped with %q", name, msg)
		}
	}
}

func (p *plant) tc(args ...string) {
	p.t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns", "exec", p.sw.Name, p.tcCmd}, args...)...).CombinedOutput(); err != nil {
		p.t.Fatalf("tc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// hmiPolls runs the goburrow HMI in its namespace: polls and writes.
func (p *plant) hmiPolls(polls, writeEvery int) lab.HMIStats {
	p.t.Helper()
	var st lab.HMIStats
	err := p.hmi.Do(func() (err error) {
		st, err = lab.RunHMI(p.ctx, lab.HMIConfig{PLC: "10.10.1.20:502", Interval: 50 * time.Millisecond, WriteEvery: writeEvery, Polls: polls})
		return err
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

// mbpoll runs mbpoll once in ns with opts against the PLC, writing
// values when given.
func (p *plant) mbpoll(ns *testenv.Netns, opts []string, values ...string) string {
	p.t.Helper()
	testenv.Tool(p.t, "mbpoll", "mbpoll")
	args := append([]string{"netns", "exec", ns.Name, "mbpoll", "-m", "tcp", "-a", "1", "-0", "-1", "-o", "2"}, opts...)
	args = append(append(args, "10.10.1.20"), values...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("mbpoll %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runner is tapwatch run, in the tap namespace.
type runner struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    testenv.Buffer
	done   chan struct{}
	dir    string
	policy string
	ops    string
}

// startDaemon writes a config (extra is appended to it) and starts the
// daemon; it waits until the daemon says it started.
func (p *plant) startDaemon(policy, extra string) *runner {
	p.t.Helper()
	d := &runner{t: p.t, dir: p.t.TempDir()}
	d.policy = filepath.Join(d.dir, "policy.yaml")
	d.ops = filepath.Join(d.dir, "ops.jsonl")
	if err := os.WriteFile(d.policy, []byte(policy), 0o644); err != nil {
		p.t.Fatal(err)
	}
	broker := fmt.Sprintf("brokers: [%s]\n  plaintext: true", p.broker.URL("tcp"))
	if c := p.uplinkTLS; c != nil {
		broker = fmt.Sprintf("brokers: [%s]\n  tls: {ca: %s, cert: %s, key: %s}", p.broker.URL("ssl"), c.CA, c.Cert, c.Key)
	}
	cfg := fmt.Sprintf(`sensor: e2e
site: lab
interfaces: [%s]
policy: policy.yaml
state_dir: state
ops_log: ops.jsonl
link_idle: 1h
uplink:
  %s
  stats_interval: 1s
  backoff_min: 100ms
  backoff_max: 1s
%s`, strings.Join(p.ifaces, ", "), broker, extra)
	conf := filepath.Join(d.dir, "tapwatch.yaml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		p.t.Fatal(err)
	}
	// Registered before the process's own cleanup, so run after it: the
	// log is complete.
	p.t.Cleanup(func() {
		if p.t.Failed() {
			p.t.Logf("tapwatch run log:\n%s", d.log.String())
		}
	})
	d.cmd, d.done = startTapwatch(p.t, p.tap, &d.log, &d.log, "run", "-c", conf)
	d.waitLog(`msg=started`, 15*time.Second)
	return d
}

// startTapwatch starts tapwatch with args as its own process, in the
// namespace ns (nil: this host's); done is closed when it has exited. The
// test's cleanup kills it if it still runs.
func startTapwatch(t *testing.T, ns *testenv.Netns, stdout, stderr io.Writer, args ...string) (cmd *exec.Cmd, done chan struct{}) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(exe, args...)
	if ns != nil {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Name, exe}, args...)...)
	}
	cmd.Env = append(os.Environ(), asTapwatch+"=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, done
}

// waitLog waits until the daemon's log has a line containing s.
func (d *runner) waitLog(s string, within time.Duration) string {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range strings.Split(d.log.String(), "\n") {
			if strings.Contains(l, s) {
				return l
			}
		}
		select {
		case <-d.done:
			d.t.Fatalf("tapwatch run exited (%v) before logging %q", d.cmd.ProcessState, s)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("tapwatch run did not log %q within %v", s, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *runner) signal(s syscall.Signal) {
	d.t.Helper()
	// ip netns exec execs the daemon: the pid is the daemon's.
	if err := d.cmd.Process.Signal(s); err != nil {
		d.t.Fatal(err)
	}
}

// stop sends SIGTERM and checks a clean exit.
func (d *runner) stop() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.t.Fatal("tapwatch run did not stop within 30s of SIGTERM")
	}
	if !d.cmd.ProcessState.Success() {
		d.t.Fatalf("tapwatch run exited with %v", d.cmd.ProcessState)
	}
}

// opsLines reads the ops log (the daemon flushes it every second).
func (d *runner) opsLines() []map[string]any {
	d.t.Helper()
	f, err := os.Open(d.ops)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			d.t.Fatalf("ops log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// waitOps waits until the ops log has a line for which ok holds.
func (d *runner) waitOps(what string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range d.opsLines() {
			if ok(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no %s in the ops log within %v", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tail subscribes to the sensor's messages of kinds and collects them.
type tail struct {
	out    testenv.Buffer
	cancel context.CancelFunc
}

func (p *plant) tail(kinds ...string) *tail {
	tl := &tail{}
	ctx, cancel := context.WithCancel(context.Background())
	tl.cancel = cancel
	var rep testenv.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		uplink.Tail(ctx, uplink.TailConfig{Brokers: []string{p.broker.URL("tcp")}, Plaintext: true, Sensor: "e2e", Kinds: kinds}, &tl.out, &rep)
	}()
	p.t.Cleanup(func() { cancel(); <-done })
	return tl
}

func (tl *tail) messages() []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(tl.out.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// wait waits for a message for which ok holds.
func (tl *tail) wait(t *testing.T, what string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	return tl.waitFrom(t, 0, what, within, ok)
}

// waitFrom is wait among the messages from index from on: with from the
// count of messages before a step, a message caused by the step.
func (tl *tail) waitFrom(t *testing.T, from int, what string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ms := tl.messages()
		for _, m := range ms[min(from, len(ms)):] {
			if ok(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s over MQTT within %v; got:\n%s", what, within, tl.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// TestRunLive: Modbus between the real server and client libraries and
// from mbpoll, seen on the tap, is in the operations log with its
// addresses and values; a write from the rogue namespace raises the
// policy's alert, which reaches mosquitto; SIGTERM stops the daemon
// cleanly, with the offline status retained.
func TestRunLive(t *testing.T) {
	p := newPlant(t, false)
	tl := p.tail()
	box := newSimBox(t)
	d := p.startDaemon(lab.WritesOnlyFromHMI, box.config())
	box.waitLevels(t, "healthy, flowing, connected, no alert", 10*time.Second,
		map[string]bool{"link": true, "uplink": true, "alert": false, "alarm": false, "health": true})

	st := p.hmiPolls(20, 5)
	if st.Polls < 20 || st.Writes < 4 {
		t.Fatalf("the HMI polled %d times and wrote %d times: %+v", st.Polls, st.Writes, st)
	}
	// The goburrow client's writes of the setpoints to holding register 5.
	w := d.waitOps("HMI setpoint write", 10*time.Second, func(m map[string]any) bool {
		return m["src"] == "10.10.1.10" && m["dst"] == "10.10.1.20" && num(m["fc"]) == 6 && m["dir"] == "request" && num(m["addr"]) == 5
	})
	if vs, _ := w["values"].([]any); len(vs) != 1 || !containsValue(lab.Setpoints, num(vs[0])) {
		t.Errorf("setpoint write values %v, want one of %v", w["values"], lab.Setpoints)
	}
	// The PLC's answer to a read of holding registers 0-7, with 8 values.
	d.waitOps("PLC response to the HMI's read", 10*time.Second, func(m map[string]any) bool {
		vs, _ := m["values"].([]any)
		return m["src"] == "10.10.1.20" && m["dst"] == "10.10.1.10" && num(m["fc"]) == 3 && m["dir"] == "response" && len(vs) == 8
	})
	// mbpoll, a client written by others: input registers 3-5.
	p.mbpoll(p.hmi, []string{"-t", "3", "-r", "3", "-c", "3"})
	d.waitOps("mbpoll's read of input registers 3-5", 10*time.Second, func(m map[string]any) bool {
		vs, _ := m["values"].([]any)
		return m["src"] == "10.10.1.20" && num(m["fc"]) == 4 && m["dir"] == "response" && num(m["addr"]) == 3 && len(vs) == 3
	})

	// The rogue host writes the pump setpoint.
	p.mbpoll(p.rogue, []string{"-t", "4", "-r", "5"}, "150")
	al := tl.wait(t, "alert for the rogue write", 15*time.Second, func(m map[string]any) bool {
		return m["kind"] == "alert" && m["rule"] == "plc-writes-only-from-hmi"
	})
	src, _ := al["src"].(map[string]any)
	dst, _ := al["dst"].(map[string]any)
	if src["ip"] != "10.10.1.66" || dst["ip"] != "10.10.1.20" || al["severity"] != "high" || num(al["fc"]) != 6 {
		t.Errorf("alert: %v", al)
	}
	if v, _ := al["values"].([]any); len(v) != 1 || num(v[0]) != 150 {
		t.Errorf("alert values %v, want [150]", al["values"])
	}
	// The box: the ALERT LED blinks slowly (a high alert) and the alarm
	// relay (at high) is energized; a press of the button clears both.
	box.waitBlink(t, "alert", 350*time.Millisecond, 750*time.Millisecond)
	box.waitLevels(t, "alarm relay", 2*time.Second, map[string]bool{"alarm": true, "health": true})
	n := len(tl.messages()) // the status must come after the press, not from before the alert
	box.press(t, 200*time.Millisecond)
	d.waitLog("button: alerts acknowledged", 2*time.Second)
	box.waitLevels(t, "acknowledged", 2*time.Second, map[string]bool{"alert": false, "alarm": false})
	box.still(t, "alert", time.Second)
	tl.waitFrom(t, n, "status with nothing unacknowledged", 5*time.Second, func(m map[string]any) bool {
		u, _ := m["unacked"].(map[string]any)
		return m["kind"] == "status" && u != nil && num(u["high"]) == 0
	})
	box.waitBlink(t, "run", 0, 0) // the heartbeat: on, with short dark blinks
	// No alert for the HMI's own writes.
	for _, m := range tl.messages() {
		if m["kind"] == "alert" {
			if s, _ := m["src"].(map[string]any); s["ip"] == "10.10.1.10" {
				t.Errorf("alert for the HMI's write: %v", m)
			}
		}
	}
	tl.wait(t, "status monitoring", 10*time.Second, func(m map[string]any) bool {
		links, _ := m["links"].([]any)
		return m["kind"] == "status" && m["state"] == "monitoring" && len(links) == 1
	})
	tl.wait(t, "stats", 10*time.Second, func(m map[string]any) bool {
		return m["kind"] == "stats" && num(m["packets"]) > 0
	})
	tl.wait(t, "PLC asset", 10*time.Second, func(m map[string]any) bool {
		return m["kind"] == "asset" && m["ip"] == "10.10.1.20"
	})

	d.stop()
	line := d.waitLog("msg=stopped", time.Second)
	if !strings.Contains(line, "kernel_drops=0") || strings.Contains(line, "packets=0 ") {
		t.Errorf("last line: %s", line)
	}
	tl.wait(t, "offline status", 10*time.Second, func(m map[string]any) bool {
		return m["kind"] == "status" && m["state"] == "offline" && m["reason"] == "stopped"
	})
	if strings.Contains(d.log.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", d.log.String())
	}
	// A clean stop: every LED off, the relays released, the board LED's
	// trigger given back, the watchdog pinged and then disarmed.
	box.waitLevels(t, "all off after the stop", time.Second,
		map[string]bool{"run": false, "link": false, "uplink": false, "alert": false, "alarm": false, "health": false})
	box.checkStopped(t)
	d.waitLog("hardware watchdog disarmed", time.Second)
}

func containsValue(vs []uint16, x float64) bool {
	for _, v := range vs {
		if float64(v) == x {
			return true
		}
	}
	return false
}

// TestRunTapPorts: the two ports of a passive tap, one per direction,
// merge into complete request/response pairs.
func TestRunTapPorts(t *testing.T) {
	p := newPlant(t, true)
	tl := p.tail("status")
	d := p.startDaemon(lab.WritesOnlyFromHMI, "")
	st := p.hmiPolls(30, 0)
	if st.Polls < 30 {
		t.Fatalf("HMI: %+v", st)
	}
	// Each poll is three requests (FC 3, 4, 1); every one answered.
	var reqs, resps, orphans int
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs, resps, orphans = 0, 0, 0
		for _, m := range d.opsLines() {
			if m["proto"] != "modbus" {
				continue
			}
			switch {
			case m["outcome"] == "orphan" || m["outcome"] == "unanswered":
				orphans++
			case m["dir"] == "request":
				reqs++
			case m["dir"] == "response":
				resps++
			}
		}
		if reqs >= 90 && resps >= 90 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if reqs < 90 || resps != reqs || orphans != 0 {
		t.Errorf("%d requests, %d responses, %d orphaned or unanswered; want 90 or more, all paired", reqs, resps, orphans)
	}
	tl.wait(t, "status with both tap ports up", 10*time.Second, func(m map[string]any) bool {
		links, _ := m["links"].([]any)
		if m["state"] != "monitoring" || len(links) != 2 {
			return false
		}
		for _, l := range links {
			if l.(map[string]any)["state"] != "up" {
				return false
			}
		}
		return true
	})
	d.stop()
}

// TestRunLinkDown: the tap port losing its link shows in the status, and
// so does its return.
func TestRunLinkDown(t *testing.T) {
	p := newPlant(t, false)
	tl := p.tail("status")
	d := p.startDaemon(lab.WritesOnlyFromHMI, "")
	linkState := func(m map[string]any) string {
		links, _ := m["links"].([]any)
		if m["kind"] != "status" || len(links) != 1 {
			return ""
		}
		return links[0].(map[string]any)["state"].(string)
	}
	tl.wait(t, "status with the link up", 10*time.Second, func(m map[string]any) bool { return linkState(m) == "up" })
	p.sw.IP("link", "set", "mir0", "down") // the cable to the tap port, pulled
	down := tl.wait(t, "status with the link down", 10*time.Second, func(m map[string]any) bool { return linkState(m) == "down" })
	if down["state"] != "degraded" || !strings.Contains(down["reason"].(string), "link tap0 down") {
		t.Errorf("link down: %v", down)
	}
	d.waitLog("level=WARN msg=degraded", 5*time.Second)
	n := len(tl.messages())
	p.sw.IP("link", "set", "mir0", "up")
	tl.wait(t, "status with the link up again", 15*time.Second, func(m map[string]any) bool {
		return linkState(m) == "up" && m["state"] == "monitoring" && len(tl.messages()) > n
	})
	d.stop()
}

// TestRunReload: SIGHUP with a broken policy keeps the old one; with a
// good one it applies it.
func TestRunReload(t *testing.T) {
	p := newPlant(t, false)
	tl := p.tail("alert")
	d := p.startDaemon(lab.WritesOnlyFromHMI, "")
	// Each to another register: repeats of an alert (same rule, hosts,
	// function and address) fold into it for a while.
	rogueWrite := func(reg, v string) {
		p.mbpoll(p.rogue, []string{"-t", "4", "-r", reg}, v)
	}
	alertFor := func(rule string, value float64) func(map[string]any) bool {
		return func(m map[string]any) bool {
			v, _ := m["values"].([]any)
			return m["rule"] == rule && len(v) == 1 && num(v[0]) == value
		}
	}
	rogueWrite("5", "151")
	tl.wait(t, "alert of the first policy", 15*time.Second, alertFor("plc-writes-only-from-hmi", 151))

	// A broken policy: reported with its line, the old one stays.
	os.WriteFile(d.policy, []byte("rules:\n  - id: x\n    when: {proto: modbus, op: wrte}\n"), 0o644)
	d.signal(syscall.SIGHUP)
	line := d.waitLog("reload failed", 10*time.Second)
	if !strings.Contains(line, "policy.yaml:3:") {
		t.Errorf("reload error without the file and line: %s", line)
	}
	rogueWrite("1", "152")
	tl.wait(t, "alert of the old policy after the failed reload", 15*time.Second, alertFor("plc-writes-only-from-hmi", 152))

	// A good one: applied.
	os.WriteFile(d.policy, []byte(strings.ReplaceAll(lab.WritesOnlyFromHMI, "plc-writes-only-from-hmi", "plc-writes-v2")), 0o644)
	d.signal(syscall.SIGHUP)
	d.waitLog("msg=\"policy reloaded\"", 10*time.Second)
	rogueWrite("2", "153")
	tl.wait(t, "alert of the new policy", 15*time.Second, alertFor("plc-writes-v2", 153))
	for _, m := range tl.messages() {
		if alertFor("plc-writes-only-from-hmi", 153)(m) {
			t.Errorf("the old policy still fired after the reload: %v", m)
		}
	}
	d.stop()
}
