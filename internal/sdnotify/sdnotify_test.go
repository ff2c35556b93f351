package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen is systemd's end: a datagram socket that collects notifications.
func listen(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, name
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	k, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:k])
}

func TestNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		name := filepath.Join(t.TempDir(), "notify.sock")
		env := name
		if abstract {
			name = "\x00tapwatch-test-" + strconv.Itoa(os.Getpid())
			env = "@" + name[1:]
		}
		c, _ := listen(t, name)
		t.Setenv("NOTIFY_SOCKET", env)
		t.Setenv("WATCHDOG_USEC", "4000000")
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
		n, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if !n.Enabled() || n.Watchdog() != 4*time.Second {
			t.Fatalf("enabled %v watchdog %v", n.Enabled(), n.Watchdog())
		}
		if err := n.Ready("monitoring\non eth1"); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "READY=1\nSTATUS=monitoring on eth1" {
			t.Errorf("ready: %q", got)
		}
		n.Ping()
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Errorf("ping: %q", got)
		}
		n.Stopping()
		if got := recv(t, c); got != "STOPPING=1" {
			t.Errorf("stopping: %q", got)
		}
	}
}

func TestNotifyEnv(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := FromEnv()
	if err != nil || n.Enabled() || n.Send("READY=1") != nil {
		t.Errorf("unset: %v %v", n.Enabled(), err)
	}
	var nilN *Notifier
	if nilN.Enabled() || nilN.Watchdog() != 0 || nilN.Ping() != nil {
		t.Error("a nil notifier must do nothing")
	}
	t.Setenv("NOTIFY_SOCKET", "relative.sock")
	if _, err := FromEnv(); err == nil {
		t.Error("relative path accepted")
	}
	t.Setenv("NOTIFY_SOCKET", "/run/x.sock")
	t.Setenv("WATCHDOG_USEC", "soon")
	if _, err := FromEnv(); err == nil {
		t.Error("bad WATCHDOG_USEC accepted")
	}
	// The watchdog is for another process: not ours to ping.
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", "1")
	if n, _ := FromEnv(); n.Watchdog() != 0 {
		t.Error("watchdog of another pid taken")
	}
	// systemd's socket is gone: an error, not a hang.
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	n, _ = FromEnv()
	if err := n.Ready("x"); err == nil {
		t.Error("no error for a missing socket")
	}
}
