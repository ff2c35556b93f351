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
	if os.Geteuid() == 0 {
		if _, err := OpenLive(LiveConfig{Interface: "tw-nonexistent0", Ports: []uint16{502}}); err == nil || !strings.Contains(err.Error(), "tw-nonexistent0") {
			t.Errorf("missing interface: %v", err)
		}
	}
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
