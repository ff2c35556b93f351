//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/lab"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/uplink"
)

// TestSystemMutualTLS: the whole box, as installed. tapwatch run learns
// the plant for a short period, then monitors it; its uplink and the
// security center's tapwatch tail both reach mosquitto over mutual TLS.
// An out-of-range setpoint written by a rogue host and then by the HMI
// raises alerts that reach tail, light the ALERT LED and the alarm relay
// of the (simulated) GPIO until the button is pressed, and a killed
// daemon shows as offline through its Last Will.
func TestSystemMutualTLS(t *testing.T) {
	p := newPlant(t, false)
	dir := t.TempDir()
	pki := testenv.NewPKI(t, dir, p.mgmt)
	socCert, socKey := pki.Authority.Issue(t, dir, "soc", false)
	// The lab's broker, replaced by one that takes only clients with a
	// certificate of the CA.
	p.broker.Stop()
	p.broker = testenv.StartMosquittoOn(t, p.mgmt, pki.MosquittoTLS()...)
	p.uplinkTLS = &uplink.TLSConfig{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}

	soc := p.tailTLS("--ca", pki.CA, "--cert", socCert, "--key", socKey)
	nocert := p.tailTLS("--ca", pki.CA)
	box := newSimBox(t)
	// Long enough for the HMI's polls and writes below on a loaded machine.
	const learnFor = 15 * time.Second
	d := p.startDaemon("# no rules: the learned baseline is enforced\n",
		box.config()+"mode: learn\nlearn: {duration: "+learnFor.String()+"}\n")
	// Also proves soc's subscription is in place before any alert.
	soc.wait(t, "learning status over TLS", 15*time.Second, func(m map[string]any) bool {
		return m["kind"] == "status" && m["state"] == "learning" && m["mode"] == "learn" && m["uplink"] == "connected"
	})

	// Learning: the HMI polls and writes each of lab.Setpoints (120-180
	// rpm) at least once, with room for a failed poll.
	if st := p.hmiPolls(40, 5); st.Writes < len(lab.Setpoints) {
		t.Fatalf("the HMI wrote %d setpoints while learning: %+v", st.Writes, st)
	}
	if strings.Contains(d.log.String(), "learning finished") {
		t.Fatalf("learning ended before the HMI was done: lengthen learnFor (%v)", learnFor)
	}
	d.waitLog("learning finished; monitoring what was learned", learnFor+15*time.Second)
	learned, err := os.ReadFile(filepath.Join(d.dir, "state", "learned.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(learned), "{table: holding_registers, addr: 5, min: 120, max: 180}") {
		t.Fatalf("learned.yaml has not the setpoint range 120-180:\n%s", learned)
	}
	soc.wait(t, "monitoring status", 10*time.Second, func(m map[string]any) bool {
		return m["kind"] == "status" && m["state"] == "monitoring"
	})
	for _, m := range soc.messages() {
		if m["kind"] == "alert" {
			t.Errorf("alert for the plant's normal traffic: %v", m)
		}
	}
	refusedWithoutCert(t, p, nocert)

	// Within the PLC's limits (100-200 rpm), so the write succeeds, but
	// far from anything the HMI wrote: only the baseline can tell.
	const setpoint = 195
	p.mbpoll(p.rogue, []string{"-t", "4", "-r", "5"}, strconv.Itoa(setpoint))
	// A rogue host is stopped at the first check, a new master: the value
	// is carried in the alert but not checked against the HMI's range.
	checkAlert(t, soc.wait(t, "new master alert", 15*time.Second, func(m map[string]any) bool {
		return m["kind"] == "alert" && m["rule"] == "baseline-new-master"
	}), "10.10.1.66", setpoint, "only the learned masters send requests")
	// The learned master writing it: the value range is checked.
	p.mbpoll(p.hmi, []string{"-t", "4", "-r", "5"}, strconv.Itoa(setpoint))
	checkAlert(t, soc.wait(t, "value range alert", 15*time.Second, func(m map[string]any) bool {
		return m["kind"] == "alert" && m["rule"] == "baseline-value-range"
	}), "10.10.1.10", setpoint, "114..186 (learned 120..180)")
	soc.wait(t, "status with the high alerts unacknowledged", 10*time.Second, func(m map[string]any) bool {
		u, _ := m["unacked"].(map[string]any)
		return m["kind"] == "status" && num(u["high"]) >= 2
	})

	// The box: ALERT blinks slowly (high), the alarm relay pulls in; the
	// button clears both, and they stay off.
	box.waitBlink(t, "alert", 350*time.Millisecond, 750*time.Millisecond)
	box.waitLevels(t, "alarm relay", 2*time.Second, map[string]bool{"alarm": true, "health": true})
	n := len(soc.messages())
	box.press(t, 500*time.Millisecond)
	d.waitLog("button: alerts acknowledged", 5*time.Second)
	box.waitLevels(t, "acknowledged", 2*time.Second, map[string]bool{"alert": false, "alarm": false})
	box.still(t, "alert", time.Second)
	box.still(t, "alarm", time.Second)
	soc.waitFrom(t, n, "status with nothing unacknowledged", 10*time.Second, func(m map[string]any) bool {
		u, _ := m["unacked"].(map[string]any)
		return m["kind"] == "status" && m["state"] == "monitoring" && u != nil && num(u["high"])+num(u["medium"])+num(u["critical"]) == 0
	})

	// A crash, not a stop: no DISCONNECT, so the broker publishes the
	// Last Will as soon as the socket closes (1.5 × keepalive at worst).
	n = len(soc.messages())
	d.signal(syscall.SIGKILL)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("tapwatch run still runs 10s after SIGKILL")
	}
	soc.waitFrom(t, n, "offline status (Last Will)", 60*time.Second, func(m map[string]any) bool {
		return m["kind"] == "status" && m["state"] == "offline" && m["reason"] == "connection lost"
	})
	// The watchdog is left armed (no magic close): the board would reset.
	if dog, _ := os.ReadFile(box.dog); strings.Contains(string(dog), "V") || len(dog) == 0 {
		t.Errorf("watchdog after SIGKILL got %q: want pings and no V", dog)
	}
}

// checkAlert checks an alert for the write of value to the pump
// setpoint (holding register 5 of the PLC, FC 6) from src.
func checkAlert(t *testing.T, a map[string]any, src string, value float64, expected string) {
	t.Helper()
	s, _ := a["src"].(map[string]any)
	d, _ := a["dst"].(map[string]any)
	addr, _ := a["addr"].(map[string]any)
	vs, _ := a["values"].([]any)
	if s["ip"] != src || d["ip"] != "10.10.1.20" || num(d["port"]) != 502 || a["severity"] != "high" ||
		a["category"] != "baseline" || num(a["fc"]) != 6 || num(a["unit"]) != 1 || num(addr["lo"]) != 5 ||
		len(vs) != 1 || num(vs[0]) != value || a["expected"] != expected {
		t.Errorf("alert %s: want from %s to 10.10.1.20:502, high, baseline, fc 6, unit 1, addr 5, values [%v], expected %q; got %v",
			a["rule"], src, value, expected, a)
	}
}

// tailProc is tapwatch tail run as its own process.
type tailProc struct {
	tail
	stderr testenv.Buffer
	cmd    *exec.Cmd
	done   chan struct{}
}

// tailTLS runs tapwatch tail on this host, as the security center does,
// for the lab's sensor on the broker's TLS listener, with the TLS options
// args.
func (p *plant) tailTLS(args ...string) *tailProc {
	p.t.Helper()
	tp := &tailProc{}
	p.t.Cleanup(func() {
		if p.t.Failed() {
			p.t.Logf("tapwatch tail %s wrote on stderr:\n%s", strings.Join(args, " "), tp.stderr.String())
		}
	})
	tp.cmd, tp.done = startTapwatch(p.t, nil, &tp.out, &tp.stderr,
		append([]string{"tail", "--broker", p.broker.URL("ssl"), "--sensor", "e2e"}, args...)...)
	return tp
}

// refusedWithoutCert checks that the broker refuses a tail without a
// client certificate: tail exits 1 with the connect error, having
// received nothing, and the broker's log says why.
func refusedWithoutCert(t *testing.T, p *plant, tp *tailProc) {
	t.Helper()
	select {
	case <-tp.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("tail without a client certificate still runs after 30s:\n%s", tp.stderr.String())
	}
	if out := tp.out.String(); out != "" {
		t.Errorf("tail without a client certificate received:\n%s", out)
	}
	if code := tp.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(tp.stderr.String(), "tapwatch: connect to") {
		t.Errorf("tail without a client certificate: exit %d, want 1 with the connect error; stderr:\n%s", code, tp.stderr.String())
	}
	if log, _ := os.ReadFile(p.broker.LogFile()); !strings.Contains(string(log), "peer did not return a certificate") {
		t.Errorf("the broker's log does not show a client refused for want of a certificate:\n%s", log)
	}
}
