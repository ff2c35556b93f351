//go:build linux

package capture

import (
	"errors"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// TestLinkState reads the link state of a veth end in a namespace the
// test creates, as the peer goes down and comes back, and as the end
// itself is set down; and checks that a live capture with ReturnIdle on
// the quiet link says ErrIdle rather than waiting.
func TestLinkState(t *testing.T) {
	a, b := testenv.NewNetns(t, "twla"), testenv.NewNetns(t, "twlb")
	testenv.Veth(t, a, "twl0", b, "twl1")

	state := func() LinkInfo {
		t.Helper()
		var ls []LinkInfo
		if err := b.Do(func() (err error) { ls, err = Links("twl1", "twl-missing"); return err }); err != nil {
			t.Fatal(err)
		}
		if len(ls) != 2 || ls[1].Exists || ls[1].Up() || ls[1].String() != "down (no such interface)" {
			t.Fatalf("missing interface: %+v", ls)
		}
		return ls[0]
	}
	// The kernel updates the operational state a moment after the
	// carrier (its link watch runs about once a second).
	settled := func(ok func(LinkInfo) bool) LinkInfo {
		t.Helper()
		l := state()
		for end := time.Now().Add(5 * time.Second); !ok(l) && time.Now().Before(end); l = state() {
			time.Sleep(50 * time.Millisecond)
		}
		return l
	}
	if l := settled(LinkInfo.Up); !l.Up() || l.String() != "up" || l.OperState != "up" {
		t.Fatalf("both ends up: %+v (%s)", l, l)
	}

	var live *Live
	if err := b.Do(func() (err error) {
		live, err = OpenLive(LiveConfig{Interface: "twl1", Ports: []uint16{502}, RingBytes: 1 << 20, ReturnIdle: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	// A fresh link may carry IPv6 neighbour discovery for a moment.
	var err error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		var ci Info
		if _, err = live.ReadPacket(&ci); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrIdle) {
		t.Errorf("quiet link with ReturnIdle: %v, want ErrIdle", err)
	}

	a.IP("link", "set", "twl0", "down")
	if l := settled(func(l LinkInfo) bool { return !l.Carrier }); l.Up() || l.Carrier || !l.AdminUp || l.String() != "down (no carrier)" {
		t.Errorf("peer down: %+v (%s)", l, l)
	}
	a.IP("link", "set", "twl0", "up")
	if l := settled(LinkInfo.Up); !l.Up() {
		t.Errorf("peer up again: %+v (%s)", l, l)
	}
	b.IP("link", "set", "twl1", "down")
	if l := settled(func(l LinkInfo) bool { return !l.AdminUp }); l.Up() || l.AdminUp || l.String() != "down (administratively)" {
		t.Errorf("set down: %+v (%s)", l, l)
	}
}
