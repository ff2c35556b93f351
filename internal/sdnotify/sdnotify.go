// Package sdnotify speaks systemd's notification protocol (sd_notify(3))
// in pure Go: datagrams of KEY=VALUE lines to the socket in NOTIFY_SOCKET,
// for Type=notify services (READY=1, STOPPING=1, STATUS=…) and their
// watchdog (WATCHDOG=1 at least every WATCHDOG_USEC).
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications; the zero value (and a Notifier made when
// NOTIFY_SOCKET is unset) does nothing.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// FromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. An
// abstract socket (starting with @) is supported. The watchdog interval is
// 0 unless systemd asked this process for one.
func FromEnv() (*Notifier, error) {
	n := &Notifier{}
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return n, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return n, fmt.Errorf("NOTIFY_SOCKET=%q: not a socket path", path)
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	if us := os.Getenv("WATCHDOG_USEC"); us != "" {
		v, err := strconv.ParseUint(us, 10, 63)
		if err != nil || v == 0 {
			return n, fmt.Errorf("WATCHDOG_USEC=%q: not a positive number", us)
		}
		pid := os.Getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(v) * time.Microsecond
		}
	}
	return n, nil
}

// Enabled reports whether there is a socket to notify.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Watchdog is the interval systemd expects WATCHDOG=1 within; 0: none.
// Ping at half of it.
func (n *Notifier) Watchdog() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Send sends one notification of KEY=VALUE lines; nothing when disabled.
func (n *Notifier) Send(lines ...string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready says the service is up.
func (n *Notifier) Ready(status string) error { return n.Send("READY=1", "STATUS="+oneLine(status)) }

// Status sets the one-line status systemctl status shows.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + oneLine(status)) }

// Stopping says the service is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Ping is the watchdog keep-alive.
func (n *Notifier) Ping() error { return n.Send("WATCHDOG=1") }

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
