//go:build linux

package capture

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// TestLiveVeth captures from a real AF_PACKET socket on a veth pair
// between two network namespaces the test creates: TCP to port 502 is
// captured whole, other traffic cut to its headers by the kernel filter;
// the kernel counts the packets; Stop ends ReadPacket from another
// goroutine.
func TestLiveVeth(t *testing.T) {
	cli, srv := testenv.NewNetns(t, "twcli"), testenv.NewNetns(t, "twsrv")
	testenv.Veth(t, cli, "twc0", srv, "tws0")
	cli.IP("addr", "add", "10.99.0.1/24", "dev", "twc0")
	srv.IP("addr", "add", "10.99.0.2/24", "dev", "tws0")

	var live *Live
	if err := srv.Do(func() (err error) {
		live, err = OpenLive(LiveConfig{Interface: "tws0", Ports: []uint16{502, 20000}, RingBytes: 2 << 20})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	// A server on 502 in srv, reading what comes.
	var ln net.Listener
	if err := srv.Do(func() (err error) { ln, err = net.Listen("tcp", "10.99.0.2:502"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	// From cli: a Modbus request of 300 bytes, and a UDP datagram of
	// 1,000 bytes to another port.
	var conn net.Conn
	var udp net.Conn
	if err := cli.Do(func() (err error) {
		if conn, err = net.Dial("tcp", "10.99.0.2:502"); err != nil {
			return err
		}
		udp, err = net.Dial("udp", "10.99.0.2:5353")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer udp.Close()
	req := append([]byte{0, 1, 0, 0, 1, 0x2a, 1, 16, 0, 0, 0, 144, 36}, make([]byte, 288)...)
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	if _, err := udp.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}

	var sawModbus, sawUDP bool
	deadline := time.Now().Add(10 * time.Second)
	for !(sawModbus && sawUDP) && time.Now().Before(deadline) {
		var ci Info
		data, err := live.ReadPacket(&ci)
		if err != nil {
			t.Fatal(err)
		}
		if ci.Frame == 0 || ci.Timestamp.IsZero() || len(data) != ci.CaptureLength {
			t.Fatalf("info %+v for %d bytes", ci, len(data))
		}
		switch {
		case ci.Length == 14+20+32+len(req) || ci.Length == 14+20+20+len(req):
			sawModbus = true
			if ci.CaptureLength != ci.Length {
				t.Errorf("the Modbus request was cut: %d of %d bytes", ci.CaptureLength, ci.Length)
			}
		case ci.Length == 14+20+8+1000:
			sawUDP = true
			if ci.CaptureLength != ShortSnap {
				t.Errorf("UDP to 5353 kept %d of %d bytes, want %d", ci.CaptureLength, ci.Length, ShortSnap)
			}
		}
	}
	if !sawModbus || !sawUDP {
		t.Fatalf("captured the Modbus request %v, the UDP datagram %v", sawModbus, sawUDP)
	}
	st, err := live.Stats()
	if err != nil || st.Packets == 0 || st.Drops != 0 {
		t.Errorf("stats %+v, %v", st, err)
	}

	// Stop from another goroutine ends a ReadPacket that waits.
	go func() {
		time.Sleep(100 * time.Millisecond)
		live.Stop()
	}()
	for {
		var ci Info
		if _, err := live.ReadPacket(&ci); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after Stop: %v", err)
			}
			break
		}
	}
	if _, err := live.Stats(); err == nil {
		t.Error("Stats after the capture closed")
	}
}

func TestLiveErrors(t *testing.T) {
	if _, err := OpenLive(LiveConfig{}); err == nil || !strings.Contains(err.Error(), "no interface") {
		t.Errorf("no interface: %v", err)
	}
	t.Run("missing interface", func(t *testing.T) {
		testenv.NeedRoot(t, "a packet socket") // a user's fails before the interface is looked up
		if _, err := OpenLive(LiveConfig{Interface: "tw-nonexistent0", Ports: []uint16{502}}); err == nil || !strings.Contains(err.Error(), "tw-nonexistent0") {
			t.Errorf("missing interface: %v", err)
		}
	})
}

// TestNeverTransmits: the capture package has no code that sends.
func TestNeverTransmits(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []string{"WritePacketData", "Sendto", "Sendmsg", ".Write("} {
			if strings.Contains(string(b), call) {
				t.Errorf("%s calls %s: the capture must never transmit", f, call)
			}
		}
	}
}

// TestLiveMerge captures on two interfaces at once, as on the two ports
// of a passive tap, and checks that the merged stream has every packet in
// the order they were sent, alternating between the interfaces.
func TestLiveMerge(t *testing.T) {
	cli, tap := testenv.NewNetns(t, "twmc"), testenv.NewNetns(t, "twmt")
	testenv.Veth(t, cli, "twa0", tap, "twa1")
	testenv.Veth(t, cli, "twb0", tap, "twb1")
	cli.IP("addr", "add", "10.98.1.1/24", "dev", "twa0")
	cli.IP("addr", "add", "10.98.2.1/24", "dev", "twb0")
	tap.IP("addr", "add", "10.98.1.2/24", "dev", "twa1")
	tap.IP("addr", "add", "10.98.2.2/24", "dev", "twb1")

	var lives []LiveSource
	for _, ifc := range []string{"twa1", "twb1"} {
		if err := tap.Do(func() error {
			l, err := OpenLive(LiveConfig{Interface: ifc, Ports: []uint16{20000}, RingBytes: 2 << 20})
			if err == nil {
				lives = append(lives, l)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	m := NewMerged(MergeConfig{}, lives...)
	defer m.Stop()

	// One unconnected socket: the port unreachable answers do not fail
	// its writes.
	var pc net.PacketConn
	if err := cli.Do(func() (err error) { pc, err = net.ListenPacket("udp4", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dsts := [2]*net.UDPAddr{{IP: net.IPv4(10, 98, 1, 2), Port: 20000}, {IP: net.IPv4(10, 98, 2, 2), Port: 20000}}
	const n = 40
	for i := range n {
		payload := append(make([]byte, 99), byte(i))
		if _, err := pc.WriteTo(payload, dsts[i%2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	var got []int
	var last time.Time
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		var ci Info
		data, err := m.ReadPacket(&ci)
		if err != nil {
			t.Fatal(err)
		}
		if ci.Timestamp.Before(last) {
			t.Errorf("packet at %v after one at %v", ci.Timestamp, last)
		}
		last = ci.Timestamp
		if len(data) == 14+20+8+100 && data[23] == 17 { // IPv4 UDP with our payload
			i := int(data[len(data)-1])
			if ci.Source != i%2 {
				t.Errorf("packet %d from interface %d", i, ci.Source)
			}
			got = append(got, i)
		}
	}
	for i := range n {
		if i >= len(got) || got[i] != i {
			t.Fatalf("merged order %v, want 0..%d", got, n-1)
		}
	}
}
