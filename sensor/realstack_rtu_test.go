package sensor_test

// Modbus RTU over TCP from a real stack: simonvetter/modbus's rtuovertcp://
// client polls, through a gateway written here, the same library's
// Modbus/TCP server. The gateway does what a Modbus RTU-to-TCP converter
// does: it passes each RTU frame's PDU on with an MBAP header, and sends
// the answer back as an RTU frame. The client checks the CRC of every
// response it gets, so the gateway's frames are checked by a third party
// too. tapwatch must decode the RTU leg to the same messages as the
// Modbus/TCP leg, but for the transaction id.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	smodbus "github.com/simonvetter/modbus"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// rtuChunk is what one side of a leg wrote in one call.
type rtuChunk struct {
	dir modbus.Direction
	b   []byte
}

// rtuGateway takes RTU frames over TCP from one master at a time and
// passes them to a Modbus/TCP server. It records the bytes of both legs.
type rtuGateway struct {
	ln     net.Listener
	server string
	mu     sync.Mutex
	rtu    []rtuChunk // master <-> gateway
	tcp    []rtuChunk // gateway <-> server
	err    error
	done   chan struct{}
}

func startRTUGateway(t *testing.T, server string) *rtuGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &rtuGateway{ln: ln, server: server, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if err := g.serve(c); err != nil && !errors.Is(err, io.EOF) {
				g.mu.Lock()
				g.err = err
				g.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-g.done })
	return g
}

func (g *rtuGateway) port() uint16 { return uint16(g.ln.Addr().(*net.TCPAddr).Port) }

func (g *rtuGateway) record(leg *[]rtuChunk, dir modbus.Direction, b []byte) {
	g.mu.Lock()
	*leg = append(*leg, rtuChunk{dir, slices.Clone(b)})
	g.mu.Unlock()
}

func (g *rtuGateway) serve(master net.Conn) error {
	defer master.Close()
	srv, err := net.Dial("tcp", g.server)
	if err != nil {
		return err
	}
	defer srv.Close()
	var tid uint16
	buf := make([]byte, 0, 512)
	chunk := make([]byte, 512)
	for {
		// A request ends where its CRC matches: the residue of a frame
		// and its CRC is 0.
		buf = buf[:0]
		for len(buf) < 4 || pcapgen.CRC16Modbus(buf) != 0 {
			n, err := master.Read(chunk)
			if err != nil {
				return err
			}
			g.record(&g.rtu, modbus.Request, chunk[:n])
			buf = append(buf, chunk[:n]...)
			if len(buf) > 256 {
				return fmt.Errorf("no frame in % x", buf)
			}
		}
		tid++
		req := pcapgen.MBAP(tid, buf[0], buf[1:len(buf)-2])
		g.record(&g.tcp, modbus.Request, req)
		if _, err := srv.Write(req); err != nil {
			return err
		}
		hdr := make([]byte, pcapgen.MBAPLen)
		if _, err := io.ReadFull(srv, hdr); err != nil {
			return err
		}
		pdu := make([]byte, int(binary.BigEndian.Uint16(hdr[4:]))-1)
		if _, err := io.ReadFull(srv, pdu); err != nil {
			return err
		}
		g.record(&g.tcp, modbus.Response, append(hdr, pdu...))
		resp := pcapgen.RTU(hdr[6], pdu)
		g.record(&g.rtu, modbus.Response, resp)
		if _, err := master.Write(resp); err != nil {
			return err
		}
	}
}

// pollThroughGateway drives the rtuovertcp client through the gateway and
// returns once every exchange is done.
func pollThroughGateway(t *testing.T, gw uint16) {
	t.Helper()
	c, err := smodbus.NewClient(&smodbus.ClientConfiguration{
		URL:     fmt.Sprintf("rtuovertcp://127.0.0.1:%d", gw),
		Speed:   115200, // the inter-frame delay it keeps: 1.75 ms
		Timeout: 5 * time.Second,
		Logger:  log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetUnitId(rsUnit); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRegisters(100, []uint16{1111, 2222, 48879}); err != nil {
		t.Fatalf("write multiple registers: %v", err)
	}
	if got, err := c.ReadRegisters(100, 3, smodbus.HOLDING_REGISTER); err != nil || !slices.Equal(got, []uint16{1111, 2222, 48879}) {
		t.Fatalf("read holding registers: %v, %v", got, err)
	}
	if err := c.WriteRegister(9, 1234); err != nil {
		t.Fatalf("write single register: %v", err)
	}
	if err := c.WriteCoil(20, true); err != nil {
		t.Fatalf("write single coil: %v", err)
	}
	if got, err := c.ReadCoils(18, 5); err != nil || !slices.Equal(got, []bool{false, false, true, false, false}) {
		t.Fatalf("read coils: %v, %v", got, err)
	}
	if err := c.WriteCoils(30, []bool{true, false, true}); err != nil {
		t.Fatalf("write multiple coils: %v", err)
	}
	if _, err := c.ReadRegisters(2000, 2, smodbus.HOLDING_REGISTER); !errors.Is(err, smodbus.ErrIllegalDataAddress) {
		t.Fatalf("read of a rejected address: %v, want illegal data address", err)
	}
	if _, err := c.ReadRegisters(0, 1, smodbus.INPUT_REGISTER); !errors.Is(err, smodbus.ErrIllegalFunction) {
		t.Fatalf("read input registers: %v, want illegal function", err)
	}
}

// rtuRealWant is what the client did, as tapwatch must decode it.
var rtuRealWant = []string{
	"request tid=0 unit=17 fc=16 addr=100 count=3 values=[1111 2222 48879]",
	"response tid=0 unit=17 fc=16 addr=100 count=3 ok",
	"request tid=0 unit=17 fc=3 addr=100 count=3",
	"response tid=0 unit=17 fc=3 addr=100 count=3 values=[1111 2222 48879] ok",
	"request tid=0 unit=17 fc=6 addr=9 count=1 values=[1234]",
	"response tid=0 unit=17 fc=6 addr=9 count=1 values=[1234] ok",
	"request tid=0 unit=17 fc=5 addr=20 count=1 values=[1]",
	"response tid=0 unit=17 fc=5 addr=20 count=1 values=[1] ok",
	"request tid=0 unit=17 fc=1 addr=18 count=5",
	"response tid=0 unit=17 fc=1 addr=18 count=5 values=[0 0 1 0 0] ok",
	"request tid=0 unit=17 fc=15 addr=30 count=3 values=[1 0 1]",
	"response tid=0 unit=17 fc=15 addr=30 count=3 ok",
	"request tid=0 unit=17 fc=3 addr=2000 count=2",
	"response tid=0 unit=17 fc=3 exc=2 addr=2000 count=2 exception",
	"request tid=0 unit=17 fc=4 addr=0 count=1",
	"response tid=0 unit=17 fc=4 exc=1 addr=0 count=1 exception",
}

// decodeLeg feeds a leg's chunks to a decoder in the order they were
// written, keeping what Feed leaves as package dpi does.
func decodeLeg(chunks []rtuChunk, rtu bool) []rsOp {
	d := modbus.NewDecoder(modbus.Config{})
	var c modbus.Conn
	if rtu {
		c.ResetRTU(false)
	} else {
		c.Reset(false)
	}
	var sink rsSink
	f := &dpi.Flow{}
	var held [2][]byte
	for i, ch := range chunks {
		h := &held[ch.dir-1]
		*h = append(*h, ch.b...)
		n := d.Feed(&c, ch.dir, *h, modbus.Meta{Frame: uint64(i + 1)}, modbusSink{f, &sink})
		*h = (*h)[n:]
	}
	return sink.ops
}

// modbusSink hands a bare decoder's messages to an rsSink.
type modbusSink struct {
	f *dpi.Flow
	s *rsSink
}

func (m modbusSink) Message(msg *modbus.Message) { m.s.Message(m.f, dpi.FromClient, msg) }

func compareRTULegs(t *testing.T, rtuOps, tcpOps []rsOp) {
	t.Helper()
	got := make([]string, len(rtuOps))
	for i, o := range rtuOps {
		got[i] = o.String()
	}
	if !slices.Equal(got, rtuRealWant) {
		t.Errorf("RTU leg decoded:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(rtuRealWant, "\n  "))
	}
	if len(tcpOps) != len(rtuOps) {
		t.Fatalf("%d messages on the Modbus/TCP leg, %d on the RTU leg", len(tcpOps), len(rtuOps))
	}
	for i := range rtuOps {
		r, m := rtuOps[i].m, tcpOps[i].m
		if m.TID == 0 {
			t.Errorf("message %d: the Modbus/TCP leg has no transaction id", i)
		}
		m.TID = 0
		// Frames and times differ between the legs.
		r.Meta, m.Meta, r.RequestFrame, m.RequestFrame, r.Latency, m.Latency = modbus.Meta{}, modbus.Meta{}, 0, 0, 0, 0
		if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", m) {
			t.Errorf("message %d differs between the legs:\n RTU %+v\n TCP %+v", i, r, m)
		}
	}
}

// TestRealStackRTU decodes the bytes each side wrote on the loopback, as
// a capture of them would deliver them.
func TestRealStackRTU(t *testing.T) {
	_, srv := startRSServer(t)
	gw := startRTUGateway(t, fmt.Sprintf("127.0.0.1:%d", srv))
	pollThroughGateway(t, gw.port())
	gw.ln.Close()
	<-gw.done
	if gw.err != nil {
		t.Fatalf("gateway: %v", gw.err)
	}
	compareRTULegs(t, decodeLeg(gw.rtu, true), decodeLeg(gw.tcp, false))
}

// TestRealStackRTUCapture captures the same traffic with dumpcap and
// replays it through the whole pipeline, with the gateway's port as an RTU
// port and the server's as a Modbus/TCP one.
func TestRealStackRTUCapture(t *testing.T) {
	testenv.Need(t, os.Geteuid() == 0, "capturing on lo needs root; run as root (CI does)")
	dumpcap := testenv.Tool(t, "dumpcap", "tshark")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, srv := startRSServer(t)
	gw := startRTUGateway(t, fmt.Sprintf("127.0.0.1:%d", srv))
	capt := startRSCapture(t, ctx, dumpcap, gw.port(), srv)
	pollThroughGateway(t, gw.port())

	cfg := dpi.Config{ModbusPorts: []uint16{srv}, ModbusRTUPorts: []uint16{gw.port()}}
	var sink *rsSink
	deadline := time.Now().Add(20 * time.Second)
	for { // until dumpcap has written every message
		var err error
		sink, _, err = replayRSConfig(ctx, capt.path, cfg)
		if err == nil && len(sink.ops) >= 2*len(rtuRealWant) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := capt.stop(); err != nil {
		t.Fatalf("dumpcap: %v\n%s", err, capt.stderr.String())
	}
	sink, sum, err := replayRSConfig(ctx, capt.path, cfg)
	if err != nil || len(sum.Errors) > 0 {
		t.Fatalf("replay: %v %v", err, sum.Errors)
	}
	var rtuOps, tcpOps []rsOp
	for _, o := range sink.ops {
		switch o.flow.Server.Port() {
		case gw.port():
			if o.flow.Transport != dpi.RTUOverTCP {
				t.Fatalf("%s: transport %v", o, o.flow.Transport)
			}
			rtuOps = append(rtuOps, o)
		case srv:
			if o.flow.Transport != dpi.TCP {
				t.Fatalf("%s: transport %v", o, o.flow.Transport)
			}
			tcpOps = append(tcpOps, o)
		}
	}
	compareRTULegs(t, rtuOps, tcpOps)
	if tl := sum.Messages; tl.Malformed != 0 || tl.Orphans != 0 || tl.Unanswered != 0 {
		t.Errorf("tally %+v: something malformed, orphaned or unanswered", tl)
	}
}
