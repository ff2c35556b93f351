//go:build linux

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace a test created; it is deleted when the
// test ends, with every interface in it.
type Netns struct {
	Name string
	t    testing.TB
}

// NewNetns creates a network namespace named prefix-PID-N with its
// loopback up. It needs root and iproute2, and skips (or, in CI, fails)
// with the remedy when they are missing.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	Need(t, os.Geteuid() == 0, "network namespaces need root; run the tests as root (CI does)")
	Tool(t, "ip", "iproute2")
	nsCount++
	n := &Netns{Name: fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nsCount), t: t}
	IP(t, "netns", "add", n.Name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.Name).Run() })
	n.IP("link", "set", "lo", "up")
	return n
}

var nsCount int

// IP runs ip with args and fails the test on an error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// IP runs ip with args inside the namespace.
func (n *Netns) IP(args ...string) {
	n.t.Helper()
	IP(n.t, append([]string{"-n", n.Name}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace: sockets fn
// opens belong to the namespace for good, and may be used from any
// goroutine afterwards.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is not unlocked: it is left in the namespace and
		// discarded when this goroutine ends.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + n.Name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Veth creates a veth pair, a in n and b in peer, both up.
func Veth(t testing.TB, n *Netns, a string, peer *Netns, b string) {
	t.Helper()
	n.IP("link", "add", a, "type", "veth", "peer", "name", b, "netns", peer.Name)
	n.IP("link", "set", a, "up")
	peer.IP("link", "set", b, "up")
}
