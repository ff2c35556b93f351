//go:build !windows

package testenv

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a broker process with its own configuration, persistence
// directory and log in a test's temporary directory. Stop and Start keep
// the port, so that clients reconnect to the same URL and the persistent
// sessions and retained messages saved at the stop are loaded again.
type Mosquitto struct {
	t      testing.TB
	bin    string
	dir    string
	conf   string
	log    string
	port   int
	bind   string
	stderr Buffer // what mosquitto writes before its log is open

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartMosquitto starts mosquitto (the one on PATH, or Debian's in
// /usr/sbin) on a free loopback port; listener holds extra lines for the
// listener (TLS). It skips the test when mosquitto is not installed.
func StartMosquitto(t testing.TB, listener ...string) *Mosquitto {
	return StartMosquittoOn(t, "127.0.0.1", listener...)
}

// StartMosquittoOn is StartMosquitto listening on the address bind (of
// this host; the port is picked free on loopback), for clients in other
// network namespaces.
func StartMosquittoOn(t testing.TB, bind string, listener ...string) *Mosquitto {
	t.Helper()
	bin := Tool(t, "mosquitto", "mosquitto") // Debian's is in /usr/sbin
	dir := t.TempDir()
	m := &Mosquitto{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log"), port: FreePort(t), bind: bind}
	var c strings.Builder
	if os.Geteuid() == 0 {
		// As root mosquitto would switch to the user mosquitto, who
		// cannot write the test's directory.
		c.WriteString("user root\n")
	}
	fmt.Fprintf(&c, "persistence true\npersistence_location %s/\n", dir)
	// What docs/events.md advises a security center's broker: a snapshot
	// after every pass of the broker's loop that changed something, so
	// that a SIGKILL loses no session and no message acknowledged before
	// that pass. (By default the only snapshot before a clean stop comes
	// after 30 minutes.)
	c.WriteString("autosave_on_changes true\nautosave_interval 1\n")
	fmt.Fprintf(&c, "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_timestamp_format %%H:%%M:%%S\n", m.log)
	// mosquitto queues at most 1,000 messages (by default) for a client
	// of a persistent session while it is away, and drops the rest
	// ("Outgoing messages are being dropped for client ..."). After the
	// 30 s outage the publisher reconnects within a second, tail up to
	// 5 s later, so that 1,000 alerts and the status are queued for it:
	// over the default. A broker that serves tapwatch tail needs more.
	c.WriteString("max_queued_messages 100000\n")
	fmt.Fprintf(&c, "listener %d %s\nallow_anonymous true\n", m.port, bind)
	for _, l := range listener {
		c.WriteString(l + "\n")
	}
	if err := os.WriteFile(m.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered first, so run last: the log is complete.
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(m.log)
			t.Logf("mosquitto config:\n%s\nmosquitto stderr:\n%s\nmosquitto log:\n%s", c.String(), m.stderr.String(), b)
		}
	})
	t.Cleanup(func() {
		if m.Running() {
			m.Stop()
		}
	})
	m.Start()
	return m
}

// FreePort returns a loopback TCP port that is free now. It is picked
// below the kernel's range of ephemeral ports, so that no client's
// outgoing connection takes it while the broker is stopped (a connect to
// a port with no listener can even connect to itself when the kernel
// picks that same port as the local one).
func FreePort(t testing.TB) int {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	if lo > 11000 {
		for range 100 {
			p := 10000 + mrand.IntN(lo-10000)
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err == nil {
				ln.Close()
				return p
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// URL is the broker's address with scheme (tcp or ssl).
func (m *Mosquitto) URL(scheme string) string {
	return fmt.Sprintf("%s://%s:%d", scheme, m.host(), m.port)
}

// Port is the broker's port.
func (m *Mosquitto) Port() int { return m.port }

// LogFile is the broker's log.
func (m *Mosquitto) LogFile() string { return m.log }

func (m *Mosquitto) host() string {
	if m.bind == "0.0.0.0" || m.bind == "" {
		return "127.0.0.1"
	}
	return m.bind
}

func (m *Mosquitto) Running() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Start starts the broker and waits until its port accepts connections.
// A start that fails because the port is still taken is retried for a
// few seconds.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if m.Running() {
		m.t.Fatal("mosquitto is already running")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command(m.bin, "-c", m.conf)
		cmd.Stdout, cmd.Stderr = &m.stderr, &m.stderr
		if err := cmd.Start(); err != nil {
			m.t.Fatalf("starting mosquitto: %v", err)
		}
		done := make(chan struct{})
		go func() {
			cmd.Wait()
			close(done)
		}()
		m.cmd, m.done = cmd, done
		if m.accepting(done, deadline) {
			return
		}
		log, _ := os.ReadFile(m.log)
		if !strings.Contains(string(log)+m.stderr.String(), "in use") || time.Now().After(deadline) {
			m.t.Fatalf("mosquitto exited at start (%v)", cmd.ProcessState)
		}
		time.Sleep(100 * time.Millisecond) // the port is still taken: try again
	}
}

// accepting waits until the port accepts a connection (true) or the
// process has exited (false).
func (m *Mosquitto) accepting(exited <-chan struct{}, deadline time.Time) bool {
	m.t.Helper()
	addr := net.JoinHostPort(m.host(), strconv.Itoa(m.port))
	for {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto does not accept connections on %s after 10s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PersistenceFile is the broker's snapshot of its sessions, queued and
// retained messages.
func (m *Mosquitto) PersistenceFile() string { return filepath.Join(m.dir, "mosquitto.db") }

// Kill kills the broker with SIGKILL, as a crash or the OOM killer
// would: it saves nothing, and restarts from its last snapshot.
func (m *Mosquitto) Kill() {
	m.t.Helper()
	if !m.Running() {
		m.t.Fatal("mosquitto is not running")
	}
	m.cmd.Process.Kill()
	<-m.done
}

// Stop stops the broker with SIGTERM (it saves its persistence database)
// and waits until it has exited.
func (m *Mosquitto) Stop() {
	m.t.Helper()
	if !m.Running() {
		m.t.Fatal("mosquitto is not running")
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
		m.t.Fatal("mosquitto did not stop within 10s of SIGTERM")
	}
}
