//go:build linux

package testenv

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace a test created; it is deleted when the
// test ends, with every interface in it.
type Netns struct {
	Name string
	t    testing.TB
}

// netnsDir is where ip netns keeps the namespaces it names.
const netnsDir = "/run/netns"

// NewNetns creates a network namespace with a name of UniqueName(prefix)
// and its loopback up. It needs root and iproute2, and skips (or, in CI,
// fails) with the remedy when they are missing.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	NeedRoot(t, "network namespaces")
	Tool(t, "ip", "iproute2")
	n := &Netns{t: t}
	for {
		// A namespace with the name already is a leftover of a dead
		// process that had this PID: not ours to delete.
		n.Name = UniqueName(prefix)
		if _, err := os.Lstat(filepath.Join(netnsDir, n.Name)); os.IsNotExist(err) {
			break
		}
	}
	IP(t, "netns", "add", n.Name)
	t.Cleanup(func() { exec.Command(ipCmd(), "netns", "del", n.Name).Run() })
	n.IP("link", "set", "lo", "up")
	return n
}

var nameSeq atomic.Int64

// UniqueName is prefix-PID-N, N counting the names this process made:
// unique among every test process running on the machine, for names the
// kernel keeps machine-wide (network namespaces), so that two runs of the
// tests, or a test and scripts/lab.sh, never collide.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameSeq.Add(1))
}

// UniqueIfName is UniqueName in hexadecimal, for an interface of the
// host's own namespace: Linux limits interface names to 15 bytes, and a
// PID takes at most 6 hex digits (pid_max is at most 2^22).
func UniqueIfName(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s%x-%x", prefix, os.Getpid(), nameSeq.Add(1))
	if len(name) >= unix.IFNAMSIZ {
		t.Fatalf("interface name %s is longer than Linux's %d bytes: shorten the prefix %q", name, unix.IFNAMSIZ-1, prefix)
	}
	return name
}

// ipCmd is ip's path: iproute2 installs it in /usr/sbin as well as /bin.
var ipCmd = sync.OnceValue(func() string {
	if p, err := LookTool("ip"); err == nil {
		return p
	}
	return "ip"
})

// IP runs ip with args and fails the test on an error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(ipCmd(), args...).CombinedOutput(); err != nil {
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
		f, err := os.Open(filepath.Join(netnsDir, n.Name))
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

// HostLink joins n to the host's own namespace with a veth pair: an
// interface with a unique name on the host, and peer in n, both up, on a
// /30 of 10.77.0.0/16 that no interface of the host is on, so that two
// test runs never route each other's traffic. It returns the host's
// address and n's; the host's interface is deleted when the test ends.
func HostLink(t testing.TB, n *Netns, peer string) (host, inNS netip.Addr) {
	t.Helper()
	subnet := freeSubnet(t)
	host, inNS = subnet.Addr().Next(), subnet.Addr().Next().Next()
	dev := UniqueIfName(t, "twh")
	IP(t, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", n.Name)
	t.Cleanup(func() {
		exec.Command(ipCmd(), "link", "del", dev).Run()
		releaseSubnet(subnet)
	})
	IP(t, "addr", "add", netip.PrefixFrom(host, subnet.Bits()).String(), "dev", dev)
	IP(t, "link", "set", dev, "up")
	n.IP("addr", "add", netip.PrefixFrom(inNS, subnet.Bits()).String(), "dev", peer)
	n.IP("link", "set", peer, "up")
	return host, inNS
}

var (
	subnetsMu    sync.Mutex
	subnetsTaken = map[netip.Prefix]bool{} // by this process, not yet on an interface
)

// freeSubnet picks a /30 of 10.77.0.0/16 that holds no address of the
// host's interfaces (a wider network of the host around it does no harm:
// the /30 is the more specific route). The search starts at a place that
// depends on the PID, so that two processes picking at the same moment
// start apart.
func freeSubnet(t testing.TB) netip.Prefix {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var used []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			used = append(used, p.Addr())
		}
	}
	subnetsMu.Lock()
	defer subnetsMu.Unlock()
	const n = 1 << 14 // /30s in a /16
	start := int(uint32(os.Getpid()) * 2654435761 >> 18)
	for i := range n {
		k := (start + i) % n
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(k >> 6), byte(k&63) << 2}), 30)
		if !subnetsTaken[p] && !slices.ContainsFunc(used, p.Contains) {
			subnetsTaken[p] = true
			return p
		}
	}
	t.Fatal("every /30 of 10.77.0.0/16 holds an address of this host")
	return netip.Prefix{}
}

func releaseSubnet(p netip.Prefix) {
	subnetsMu.Lock()
	defer subnetsMu.Unlock()
	delete(subnetsTaken, p)
}
