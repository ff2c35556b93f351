package sensor_test

// Real stacks: Modbus/TCP traffic produced by implementations written by
// other people (a Go server, a Go client and mbpoll, which is built on
// libmodbus), captured by dumpcap from the loopback interface, then replayed
// through the pipeline. Every decoded operation is checked against what the
// clients did.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"
	smodbus "github.com/simonvetter/modbus"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/sensor"
)

const (
	rsUnit = 17   // unit id every client addresses
	rsSize = 1000 // the server holds registers and coils 0..999; beyond is an exception 2
)

// rsDevice is the server's data model: holding registers and coils.
type rsDevice struct {
	mu    sync.Mutex
	regs  [rsSize]uint16
	coils [rsSize]bool
}

func rsInRange(addr, qty uint16) bool { return int(addr)+int(qty) <= rsSize }

func (d *rsDevice) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	if !rsInRange(req.Addr, req.Quantity) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.IsWrite {
		copy(d.coils[req.Addr:], req.Args)
		return nil, nil
	}
	return slices.Clone(d.coils[req.Addr : req.Addr+req.Quantity]), nil
}

func (d *rsDevice) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	if !rsInRange(req.Addr, req.Quantity) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.IsWrite {
		copy(d.regs[req.Addr:], req.Args)
		return nil, nil
	}
	return slices.Clone(d.regs[req.Addr : req.Addr+req.Quantity]), nil
}

func (d *rsDevice) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (d *rsDevice) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}

// startRSServer starts the server on 127.0.0.1 and a free port, and stops
// it when the test ends.
func startRSServer(t *testing.T) (*rsDevice, uint16) {
	t.Helper()
	dev := &rsDevice{}
	logs := &testenv.Buffer{}
	var lastErr error
	for range 5 { // the port is free when picked; another process may take it before Start
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{
			URL:        fmt.Sprintf("tcp://127.0.0.1:%d", port),
			Timeout:    30 * time.Second,
			MaxClients: 4,
			Logger:     log.New(logs, "", log.Lmicroseconds),
		}, dev)
		if err != nil {
			t.Fatal(err)
		}
		if lastErr = srv.Start(); lastErr != nil {
			continue
		}
		t.Cleanup(func() {
			srv.Stop()
			if t.Failed() {
				t.Logf("server log:\n%s", logs.String())
			}
		})
		return dev, uint16(port)
	}
	t.Fatalf("start the Modbus server: %v", lastErr)
	return nil, 0
}

// rsCapture is a running dumpcap.
type rsCapture struct {
	cmd    *exec.Cmd
	path   string
	stderr bytes.Buffer // read only after done
	done   chan struct{}
	err    error // of Wait, set before done is closed
	once   sync.Once
}

// startRSCapture starts dumpcap on lo for the TCP ports and returns once it
// has written the file's header. dumpcap opens the interface and sets the
// filter before it opens the output file, so from then on every packet is
// kept.
func startRSCapture(t *testing.T, ctx context.Context, dumpcap string, ports ...uint16) *rsCapture {
	t.Helper()
	c := &rsCapture{path: filepath.Join(t.TempDir(), "realstack.pcapng"), done: make(chan struct{})}
	var filter []string
	for _, p := range ports {
		filter = append(filter, fmt.Sprintf("tcp port %d", p))
	}
	c.cmd = exec.CommandContext(ctx, dumpcap, "-i", "lo", "-f", strings.Join(filter, " or "), "-w", c.path, "-q")
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start dumpcap: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() { c.stop() })

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		if fi, err := os.Stat(c.path); err == nil && fi.Size() > 0 {
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("dumpcap exited before capturing: %v\n%s", c.err, c.stderr.String())
		case <-deadline.C:
			c.stop()
			t.Fatalf("dumpcap did not start capturing within 20s\n%s", c.stderr.String())
		case <-tick.C:
		}
	}
}

// stop interrupts dumpcap, so that it writes out what it holds and closes
// the file, and waits for it to exit (killing it after 10s).
func (c *rsCapture) stop() error {
	c.once.Do(func() {
		c.cmd.Process.Signal(os.Interrupt)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c.err
}

// rsOp is a decoded message, copied out of the sink call.
type rsOp struct {
	flow dpi.Flow
	m    modbus.Message
}

type rsSink struct{ ops []rsOp }

func (s *rsSink) Message(f *dpi.Flow, _ dpi.Side, msg any) {
	m, ok := msg.(*modbus.Message)
	if !ok {
		return
	}
	m.DecodeValues()
	c := *m
	c.Values = slices.Clone(m.Values)
	c.PDU, c.Data, c.Objects, c.Records = nil, nil, nil, nil
	s.ops = append(s.ops, rsOp{flow: *f, m: c})
}

// String is a digest without the frame number, which depends on how the
// kernel acknowledged.
func (o rsOp) String() string {
	m := &o.m
	var s strings.Builder
	fmt.Fprintf(&s, "%s tid=%d unit=%d fc=%d", m.Dir, m.TID, m.Unit, m.FC)
	writeFields(&s, m)
	if m.Dir == modbus.Response || m.Outcome != modbus.OutcomeNone {
		fmt.Fprintf(&s, " %s", m.Outcome)
	}
	return s.String()
}

func replayRS(ctx context.Context, path string, port uint16) (*rsSink, sensor.Summary, error) {
	return replayRSConfig(ctx, path, dpi.Config{ModbusPorts: []uint16{port}})
}

func replayRSConfig(ctx context.Context, path string, cfg dpi.Config) (*rsSink, sensor.Summary, error) {
	var sink rsSink
	sum, err := sensor.Replay(ctx, capture.OpenFiles(path), sensor.Options{DPI: cfg, Ops: &sink})
	return &sink, sum, err
}

// mbpoll runs mbpoll against the server and returns its output.
func runMbpoll(t *testing.T, ctx context.Context, mbpoll string, port uint16, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// -m tcp: Modbus/TCP; -a: unit id; -p: port; -1: one poll and exit;
	// -o 5: wait up to 5s for each response (the default is 1s).
	full := append([]string{"-m", "tcp", "-a", strconv.Itoa(rsUnit), "-p", strconv.Itoa(int(port)), "-o", "5", "-1"}, args...)
	cmd := exec.CommandContext(ctx, mbpoll, full...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mbpoll %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

// TestRealStack drives real Modbus stacks against each other over loopback,
// captures the traffic with dumpcap and checks every decoded operation.
func TestRealStack(t *testing.T) {
	testenv.NeedRoot(t, "capturing on lo")
	dumpcap := testenv.Tool(t, "dumpcap", "tshark")
	mbpoll := testenv.Tool(t, "mbpoll", "mbpoll")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dev, port := startRSServer(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	capt := startRSCapture(t, ctx, dumpcap, port)

	// goburrow/modbus: one connection, transaction ids 1 to 5.
	h := gmodbus.NewTCPClientHandler(addr.String())
	h.Timeout = 10 * time.Second
	h.IdleTimeout = 0 // no idle timer left behind
	h.SlaveId = rsUnit
	if err := h.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c := gmodbus.NewClient(h)
	if _, err := c.WriteMultipleRegisters(100, 3, []byte{0x04, 0x57, 0x08, 0xAE, 0xBE, 0xEF}); err != nil { // 1111, 2222, 48879
		t.Fatalf("write multiple registers: %v", err)
	}
	if got, err := c.ReadHoldingRegisters(100, 3); err != nil || !bytes.Equal(got, []byte{0x04, 0x57, 0x08, 0xAE, 0xBE, 0xEF}) {
		t.Fatalf("read holding registers: % x, %v", got, err)
	}
	if _, err := c.WriteSingleCoil(20, 0xFF00); err != nil {
		t.Fatalf("write single coil: %v", err)
	}
	if got, err := c.ReadCoils(18, 5); err != nil || !bytes.Equal(got, []byte{0b00100}) {
		t.Fatalf("read coils: % x, %v", got, err)
	}
	_, err := c.ReadHoldingRegisters(2000, 2)
	var mbErr *gmodbus.ModbusError
	if !errors.As(err, &mbErr) || mbErr.FunctionCode != 0x83 || mbErr.ExceptionCode != 2 {
		t.Fatalf("read of a rejected address: %v, want exception 0x83/2", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	// mbpoll (libmodbus): one connection per run. Its -r is a 1-based
	// reference by default (-r 10 is PDU address 9); with -0 it is the PDU
	// address itself. Both forms are used on the same registers.
	runMbpoll(t, ctx, mbpoll, port, "-t", "4", "-r", "10", "127.0.0.1", "1234", "5678")
	if out := runMbpoll(t, ctx, mbpoll, port, "-t", "4", "-0", "-r", "9", "-c", "2", "127.0.0.1"); !strings.Contains(out, "[9]: \t1234") || !strings.Contains(out, "[10]: \t5678") {
		t.Errorf("mbpoll read registers 9 and 10:\n%s", out)
	}
	runMbpoll(t, ctx, mbpoll, port, "-t", "0", "-r", "23", "127.0.0.1", "1")
	if out := runMbpoll(t, ctx, mbpoll, port, "-t", "0", "-0", "-r", "18", "-c", "6", "127.0.0.1"); !strings.Contains(out, "[20]: \t1") || !strings.Contains(out, "[22]: \t1") {
		t.Errorf("mbpoll read coils 18 to 23:\n%s", out)
	}

	want := []string{
		// goburrow/modbus
		"request tid=1 unit=17 fc=16 addr=100 count=3 values=[1111 2222 48879]",
		"response tid=1 unit=17 fc=16 addr=100 count=3 ok",
		"request tid=2 unit=17 fc=3 addr=100 count=3",
		"response tid=2 unit=17 fc=3 addr=100 count=3 values=[1111 2222 48879] ok",
		"request tid=3 unit=17 fc=5 addr=20 count=1 values=[1]",
		"response tid=3 unit=17 fc=5 addr=20 count=1 values=[1] ok",
		"request tid=4 unit=17 fc=1 addr=18 count=5",
		"response tid=4 unit=17 fc=1 addr=18 count=5 values=[0 0 1 0 0] ok",
		"request tid=5 unit=17 fc=3 addr=2000 count=2",
		"response tid=5 unit=17 fc=3 exc=2 addr=2000 count=2 exception", // the refused address, from the request
		// mbpoll -t 4 -r 10 1234 5678
		"request tid=1 unit=17 fc=16 addr=9 count=2 values=[1234 5678]",
		"response tid=1 unit=17 fc=16 addr=9 count=2 ok",
		// mbpoll -t 4 -0 -r 9 -c 2
		"request tid=1 unit=17 fc=3 addr=9 count=2",
		"response tid=1 unit=17 fc=3 addr=9 count=2 values=[1234 5678] ok",
		// mbpoll -t 0 -r 23 1
		"request tid=1 unit=17 fc=5 addr=22 count=1 values=[1]",
		"response tid=1 unit=17 fc=5 addr=22 count=1 values=[1] ok",
		// mbpoll -t 0 -0 -r 18 -c 6
		"request tid=1 unit=17 fc=1 addr=18 count=6",
		"response tid=1 unit=17 fc=1 addr=18 count=6 values=[0 0 1 0 1 0] ok",
	}

	// The server's own view agrees with what the clients wrote.
	dev.mu.Lock()
	if got := dev.regs[9:11]; got[0] != 1234 || got[1] != 5678 {
		t.Errorf("server registers 9, 10 = %v", got)
	}
	if !dev.coils[20] || !dev.coils[22] {
		t.Errorf("server coils 20, 22 = %v, %v", dev.coils[20], dev.coils[22])
	}
	dev.mu.Unlock()

	// Let dumpcap write out every message before stopping it: the kernel
	// hands packets over in blocks, and dumpcap flushes its file
	// periodically, so the last response may not be in the file yet.
	waitStart := time.Now()
	for {
		sink, _, err := replayRS(ctx, capt.path, port)
		if err == nil && len(sink.ops) >= len(want) {
			break
		}
		if time.Since(waitStart) > 20*time.Second {
			t.Logf("only %d of %d messages in the file after 20s", len(sink.ops), len(want))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := capt.stop(); err != nil {
		t.Fatalf("dumpcap: %v\n%s", err, capt.stderr.String())
	}

	sink, sum, err := replayRS(ctx, capt.path, port)
	if err != nil || len(sum.Errors) > 0 {
		t.Fatalf("replay: %v %v", err, sum.Errors)
	}
	got := make([]string, len(sink.ops))
	for i, o := range sink.ops {
		got[i] = o.String()
	}
	if !slices.Equal(got, want) {
		t.Fatalf("decoded:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// Every response is paired with the request just before it, on the
	// same connection, from 127.0.0.1 to the server's port.
	flows := map[uint64]bool{}
	for i, o := range sink.ops {
		if o.flow.Transport != dpi.TCP || o.flow.Client.Addr() != addr.Addr() || o.flow.Server != addr || o.flow.MidStream {
			t.Errorf("message %d (%s): flow %+v, want a TCP flow to %v seen from its start", i, o, o.flow, addr)
		}
		flows[o.flow.ID] = true
		if o.m.Dir != modbus.Response {
			continue
		}
		req := sink.ops[i-1]
		if req.m.Dir != modbus.Request || req.flow.ID != o.flow.ID || o.m.RequestFrame != req.m.Frame || o.m.Frame <= req.m.Frame {
			t.Errorf("response %d (frame %d) paired with frame %d; the request before it is frame %d", i, o.m.Frame, o.m.RequestFrame, req.m.Frame)
		}
		if o.m.Latency < 0 || o.m.Latency > 20*time.Second {
			t.Errorf("response %d: latency %v", i, o.m.Latency)
		}
	}
	if len(flows) != 5 {
		t.Errorf("%d flows carry Modbus, want 5 (goburrow and four mbpoll runs)", len(flows))
	}

	// Read responses show what the decoded writes before them put there.
	regs, coils := map[uint16]uint16{}, map[uint16]uint16{}
	for _, o := range sink.ops {
		m := &o.m
		switch {
		case m.Dir == modbus.Request && (m.FC == 16 || m.FC == 6):
			for j, v := range m.Values {
				regs[m.Addr+uint16(j)] = v
			}
		case m.Dir == modbus.Request && (m.FC == 15 || m.FC == 5):
			for j, v := range m.Values {
				coils[m.Addr+uint16(j)] = v
			}
		case m.Dir == modbus.Response && m.Outcome == modbus.OutcomeOK && (m.FC == 3 || m.FC == 1):
			model := regs
			if m.FC == 1 {
				model = coils
			}
			if len(m.Values) != int(m.Count) {
				t.Errorf("%s: %d values for count %d", o, len(m.Values), m.Count)
			}
			for j, v := range m.Values {
				if w := model[m.Addr+uint16(j)]; v != w {
					t.Errorf("%s: address %d reads %d, last written %d", o, m.Addr+uint16(j), v, w)
				}
			}
		}
	}

	tl := sum.Messages
	if tl.Requests != 9 || tl.Responses != 9 || tl.Exceptions != 1 || tl.Malformed != 0 || tl.Orphans != 0 || tl.Unanswered != 0 {
		t.Errorf("tally %+v, want 9 requests, 9 responses, 1 exception, nothing malformed, orphaned or unanswered", tl)
	}
	if d := sum.DPI; d.TCPGaps != 0 || d.TCPMidStream != 0 {
		t.Errorf("dpi counters %+v: gaps or mid-stream flows on loopback", d)
	}
	t.Logf("%d packets, %d messages; waited %v for dumpcap to write them", sum.Packets, tl.Messages, time.Since(waitStart).Round(time.Millisecond))
}
