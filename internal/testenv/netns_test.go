//go:build linux

package testenv

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestHostLink: a host link is on a /30 that no interface of the host is
// on, here the one it would have picked first, taken by another run's
// link; two links of one run differ; and the namespace reaches the host
// over it.
func TestHostLink(t *testing.T) {
	ns, other := NewNetns(t, "twhl"), NewNetns(t, "twho")
	first := freeSubnet(t)
	releaseSubnet(first)
	dev := UniqueIfName(t, "twho")
	IP(t, "link", "add", dev, "type", "veth", "peer", "name", "mgmt0", "netns", other.Name)
	t.Cleanup(func() { exec.Command(ipCmd(), "link", "del", dev).Run() })
	IP(t, "addr", "add", netip.PrefixFrom(first.Addr().Next(), first.Bits()).String(), "dev", dev)

	host, inNS := HostLink(t, ns, "mgmt0")
	host2, _ := HostLink(t, ns, "mgmt1")
	if first.Contains(host) || first.Contains(host2) {
		t.Errorf("host links on %s and %s: %s is another run's", host, host2, first)
	}
	if p := netip.PrefixFrom(host, 30).Masked(); p.Contains(host2) || !p.Contains(inNS) || host == inNS {
		t.Errorf("host links: %s (%s in the namespace), %s", host, inNS, host2)
	}

	ln, err := net.Listen("tcp", netip.AddrPortFrom(host, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	err = ns.Do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: inNS.AsSlice()}, Timeout: 5 * time.Second}
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Errorf("from %s in the namespace to %s on the host: %v", inNS, ln.Addr(), err)
	}
}

// TestNewNetnsLeftover: a namespace left by a dead process that had this
// PID, with the name NewNetns would make next, is neither reused nor
// deleted: NewNetns takes the next name.
func TestNewNetnsLeftover(t *testing.T) {
	NeedRoot(t, "network namespaces")
	leftover := fmt.Sprintf("twlo-%d-%d", os.Getpid(), nameSeq.Load()+1)
	IP(t, "netns", "add", leftover)
	t.Cleanup(func() { exec.Command(ipCmd(), "netns", "del", leftover).Run() })
	ns := NewNetns(t, "twlo")
	if ns.Name == leftover {
		t.Errorf("NewNetns took %s, which existed", leftover)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, leftover)); err != nil {
		t.Errorf("the leftover namespace: %v", err)
	}
}
