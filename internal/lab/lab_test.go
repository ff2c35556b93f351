package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	smodbus "github.com/simonvetter/modbus"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/sensor"
)

func TestPlantRegisters(t *testing.T) {
	p := NewPlant(1)
	write := func(unit uint8, addr uint16, v ...uint16) error {
		_, err := p.HandleHoldingRegisters(&smodbus.HoldingRegistersRequest{UnitId: unit, Addr: addr, Quantity: uint16(len(v)), IsWrite: true, Args: v})
		return err
	}
	if got := p.Holding()[RegPumpSetpoint]; got != 150 {
		t.Fatalf("initial setpoint %d, want 150", got)
	}
	for _, c := range []struct {
		name  string
		unit  uint8
		addr  uint16
		vals  []uint16
		err   error
		after uint16 // holding register 5 afterwards
	}{
		{"setpoint in range", 1, RegPumpSetpoint, []uint16{180}, nil, 180},
		{"lowest setpoint", 1, RegPumpSetpoint, []uint16{PumpSetpointMin}, nil, PumpSetpointMin},
		{"highest setpoint, unit 255", 255, RegPumpSetpoint, []uint16{PumpSetpointMax}, nil, PumpSetpointMax},
		{"setpoint too high", 1, RegPumpSetpoint, []uint16{201}, smodbus.ErrIllegalDataValue, PumpSetpointMax},
		{"setpoint too low", 1, RegPumpSetpoint, []uint16{99}, smodbus.ErrIllegalDataValue, PumpSetpointMax},
		{"a block with one bad value changes nothing", 1, 4, []uint16{60, 500, 10}, smodbus.ErrIllegalDataValue, PumpSetpointMax},
		{"a block of good values", 1, 4, []uint16{60, 120, 10}, nil, 120},
		{"spare registers take anything", 1, 10, []uint16{65535, 0}, nil, 120},
		{"past the last register", 1, HoldingRegisters - 1, []uint16{1, 2}, smodbus.ErrIllegalDataAddress, 120},
		{"another unit", 2, RegPumpSetpoint, []uint16{150}, smodbus.ErrGWTargetFailedToRespond, 120},
		{"broadcast", 0, RegPumpSetpoint, []uint16{130}, nil, 130},
	} {
		if err := write(c.unit, c.addr, c.vals...); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
		if got := p.Holding()[RegPumpSetpoint]; got != c.after {
			t.Errorf("%s: setpoint %d afterwards, want %d", c.name, got, c.after)
		}
	}
	if h := p.Holding(); h[4] != 60 || h[6] != 10 || h[10] != 65535 {
		t.Errorf("holding registers %v", h)
	}

	// Reads, of every table, and their bounds.
	got, err := p.HandleHoldingRegisters(&smodbus.HoldingRegistersRequest{UnitId: 1, Addr: 0, Quantity: 10})
	if err != nil || len(got) != 10 || got[RegPumpSetpoint] != 130 {
		t.Errorf("read holding 0-9: %v, %v", got, err)
	}
	if _, err := p.HandleHoldingRegisters(&smodbus.HoldingRegistersRequest{UnitId: 1, Addr: 0, Quantity: 0}); !errors.Is(err, smodbus.ErrIllegalDataAddress) {
		t.Errorf("read of no registers: %v", err)
	}
	in, err := p.HandleInputRegisters(&smodbus.InputRegistersRequest{UnitId: 1, Addr: 0, Quantity: InputRegisters})
	if err != nil || len(in) != InputRegisters || in[InPumpSpeed] != 150 || in[InLevel] != 600 {
		t.Errorf("read inputs: %v, %v", in, err)
	}
	if _, err := p.HandleInputRegisters(&smodbus.InputRegistersRequest{UnitId: 1, Addr: InputRegisters, Quantity: 1}); !errors.Is(err, smodbus.ErrIllegalDataAddress) {
		t.Errorf("read past the inputs: %v", err)
	}
	coils, err := p.HandleCoils(&smodbus.CoilsRequest{UnitId: 1, Addr: 0, Quantity: 3})
	if err != nil || !coils[CoilPumpRun] || !coils[CoilValve] || coils[CoilAlarmReset] {
		t.Errorf("read coils: %v, %v", coils, err)
	}
	if _, err := p.HandleCoils(&smodbus.CoilsRequest{UnitId: 1, Addr: CoilPumpRun, Quantity: 1, IsWrite: true, Args: []bool{false}}); err != nil {
		t.Errorf("stop the pump: %v", err)
	}
	di, err := p.HandleDiscreteInputs(&smodbus.DiscreteInputsRequest{UnitId: 1, Addr: 0, Quantity: DiscreteInputs})
	if err != nil || len(di) != DiscreteInputs || !di[DiscPumpRunning] {
		t.Errorf("read discrete inputs: %v, %v", di, err)
	}
	if _, err := p.HandleDiscreteInputs(&smodbus.DiscreteInputsRequest{UnitId: 9, Addr: 0, Quantity: 1}); !errors.Is(err, smodbus.ErrGWTargetFailedToRespond) {
		t.Errorf("read discrete inputs of unit 9: %v", err)
	}
}

// TestPlantProcess: the pump ramps to its setpoint and stops, and the
// input registers keep changing.
func TestPlantProcess(t *testing.T) {
	p := NewPlant(1)
	var writes []string
	p.OnWrite = func(client, table string, addr uint16, values []uint16) {
		writes = append(writes, fmt.Sprintf("%s %d %v", table, addr, values))
	}
	if _, err := p.HandleHoldingRegisters(&smodbus.HoldingRegistersRequest{UnitId: 1, Addr: RegPumpSetpoint, Quantity: 1, IsWrite: true, Args: []uint16{200}}); err != nil {
		t.Fatal(err)
	}
	p.Step(2 * time.Second) // at 10 rpm/s
	if got := p.Input()[InPumpSpeed]; got != 170 {
		t.Errorf("speed after 2 s: %d rpm, want 170", got)
	}
	seen := map[[InputRegisters]uint16]bool{}
	for range 60 {
		p.Step(time.Second)
		seen[p.Input()] = true
	}
	in := p.Input()
	if in[InPumpSpeed] != 200 || in[InFlow] != 480 || in[InUptime] != 62 {
		t.Errorf("after a minute: %v", in)
	}
	if len(seen) != 60 {
		t.Errorf("the input registers changed %d times in 60 steps", len(seen))
	}
	if in[InLevel] < 100 || in[InLevel] > 900 {
		t.Errorf("the level controller let the tank reach %d‰", in[InLevel])
	}
	if _, err := p.HandleCoils(&smodbus.CoilsRequest{UnitId: 1, Addr: CoilPumpRun, Quantity: 1, IsWrite: true, Args: []bool{false}}); err != nil {
		t.Fatal(err)
	}
	p.Step(30 * time.Second)
	if got := p.Input()[InPumpSpeed]; got != 0 || p.Coil(CoilPumpRun) {
		t.Errorf("speed 30 s after a stop: %d rpm", got)
	}
	if want := []string{"holding 5 [200]", "coils 0 [0]"}; fmt.Sprint(writes) != fmt.Sprint(want) {
		t.Errorf("OnWrite saw %q, want %q", writes, want)
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPLC runs RunPLC on a free loopback port until the test ends.
func startPLC(t *testing.T, plant *Plant) string {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	logs := &testenv.Buffer{}
	go func() {
		done <- RunPLC(ctx, PLCConfig{Listen: addr, Tick: 10 * time.Millisecond, Log: logs, Ready: func(string) { close(ready) }}, plant)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("plc: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		t.Fatal("the PLC did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("plc stopped with %v", err)
		}
		if out := logs.String(); !strings.Contains(out, "plc: listening on "+addr) || !strings.Contains(out, "plc: stopped") || strings.Count(out, "\n") != 2 {
			t.Errorf("the PLC's log at default verbosity, want only its start and stop:\n%s", out)
		}
	})
	return addr
}

// TestHMIPollsPLC runs the HMI against the PLC over loopback: its polls
// read the plant, its writes set the setpoint, and the PLC logs nothing per
// request.
func TestHMIPollsPLC(t *testing.T) {
	plant := NewPlant(1)
	addr := startPLC(t, plant)
	logs := &testenv.Buffer{}
	st, err := RunHMI(context.Background(), HMIConfig{PLC: addr, Interval: 20 * time.Millisecond, WriteEvery: 2, Polls: 7, Log: logs})
	if err != nil {
		t.Fatal(err)
	}
	if st.Polls != 7 || st.Failures != 0 || st.Writes != 3 || st.Requests != 7*3+3 {
		t.Errorf("stats %+v\n%s", st, logs)
	}
	if got, want := plant.Holding()[RegPumpSetpoint], Setpoints[2]; got != want || st.Holding[RegPumpSetpoint] != want {
		t.Errorf("setpoint %d in the PLC, %d read by the HMI, want %d", got, st.Holding[RegPumpSetpoint], want)
	}
	if st.Input[InLevel] == 0 || st.Input[InFlow] == 0 || !st.Coils[CoilPumpRun] || !st.Coils[CoilValve] {
		t.Errorf("the HMI read %+v", st)
	}
	out := logs.String()
	if !strings.Contains(out, "hmi: connected to "+addr) || !strings.Contains(out, "stopped after 7 polls (0 failed), 3 setpoint writes") {
		t.Errorf("HMI log:\n%s", out)
	}
}

// TestHMIReconnects: an HMI started before its PLC logs the failure once,
// then connects when the PLC comes up, and stops when its context ends.
func TestHMIReconnects(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testenv.Buffer{}
	type result struct {
		st  HMIStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := RunHMI(ctx, HMIConfig{PLC: addr, Interval: 20 * time.Millisecond, Timeout: time.Second, Log: logs})
		done <- result{st, err}
	}()
	time.Sleep(200 * time.Millisecond)
	plant := NewPlant(1)
	ctxPLC, stopPLC := context.WithCancel(context.Background())
	plcDone := make(chan error, 1)
	go func() { plcDone <- RunPLC(ctxPLC, PLCConfig{Listen: addr}, plant) }()
	defer func() { stopPLC(); <-plcDone }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "connected to") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	r := <-done
	if r.err != nil || r.st.Polls == 0 || r.st.Failures == 0 {
		t.Errorf("stats %+v, %v\n%s", r.st, r.err, logs)
	}
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("the refused connection was logged %d times, want once:\n%s", n, logs)
	}
}

func TestDNP3Capture(t *testing.T) {
	var buf bytes.Buffer
	n, err := WriteDNP3(&buf, DNP3Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v", r.LinkType())
	}
	master, outstation := LabMAC(DNP3Master), LabMAC(DNP3Outstation)
	if master.String() != "02:00:0a:0a:01:1e" || outstation.String() != "02:00:0a:0a:01:28" {
		t.Errorf("MACs %v, %v", master, outstation)
	}
	var first, last time.Time
	frames := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		frames++
		if first.IsZero() {
			first = ci.Timestamp
		}
		last = ci.Timestamp
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if eth == nil || ip == nil || tcp == nil || p.ErrorLayer() != nil {
			t.Fatalf("frame %d is not Ethernet/IPv4/TCP: %v", frames, p)
		}
		switch {
		case ip.SrcIP.String() == "10.10.1.30" && tcp.DstPort == 20000:
			if eth.SrcMAC.String() != master.String() || eth.DstMAC.String() != outstation.String() {
				t.Errorf("frame %d from the master: %v -> %v", frames, eth.SrcMAC, eth.DstMAC)
			}
		case ip.SrcIP.String() == "10.10.1.40" && tcp.SrcPort == 20000:
			if eth.SrcMAC.String() != outstation.String() || eth.DstMAC.String() != master.String() {
				t.Errorf("frame %d from the outstation: %v -> %v", frames, eth.SrcMAC, eth.DstMAC)
			}
		default:
			t.Errorf("frame %d: %v:%d -> %v:%d", frames, ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort)
		}
		// Checksums as a receiving host checks them: the one's complement
		// sum over the pseudo-header and the segment, checksum included,
		// folds to 0.
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		if v, err := tcp.ComputeChecksum(); err != nil || v != 0 {
			t.Errorf("frame %d: TCP checksum %#04x does not verify (%#04x, %v)", frames, tcp.Checksum, v, err)
		}
	}
	if frames != n || n < 30 || n > 80 {
		t.Errorf("%d frames read, %d written; want a few dozen", frames, n)
	}
	if d := last.Sub(first); d < time.Second || d > 5*time.Second {
		t.Errorf("the capture lasts %v", d)
	}

	// tapwatch's own decoder finds every exchange, well formed.
	src, err := capture.NewFile(bytes.NewReader(buf.Bytes()), "dnp3.pcap")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sensor.Replay(context.Background(), src, sensor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := sum.Messages.DNP3
	want := map[int]uint64{0: 2, 1: 6, 2: 2, 3: 1, 4: 1, 129: 10} // confirm, read, write, select, operate, response
	for fc, c := range want {
		if d.ByFC[fc] != c {
			t.Errorf("%d DNP3 fragments with function code %d, want %d", d.ByFC[fc], fc, c)
		}
	}
	if d.Fragments != 22 || d.LinkFrames != 2 || d.Malformed != 0 || d.Garbage != 0 || d.Truncated != 0 {
		t.Errorf("DNP3 tally %+v", d)
	}

	// Other stations.
	buf.Reset()
	if _, err := WriteDNP3(&buf, DNP3Options{Master: DNP3Outstation, Outstation: DNP3Master}); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDNP3(&buf, DNP3Options{Master: DNP3Master, Outstation: netip.MustParseAddr("fd00::1")}); err == nil {
		t.Error("an IPv6 outstation was accepted")
	}
}

// TestCommandLine runs the command line: help, usage errors, dnp3-pcap, and plc
// and hmi until their context ends.
func TestCommandLine(t *testing.T) {
	run := func(ctx context.Context, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	ctx := context.Background()
	for _, c := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 2, "", "usage: tapwatch-lab COMMAND"},
		{[]string{"--help"}, 0, "usage: tapwatch-lab COMMAND", ""},
		{[]string{"help"}, 0, "dnp3-pcap -o FILE", ""},
		{[]string{"bogus"}, 2, "", `unknown command "bogus"`},
		{[]string{"plc", "--help"}, 0, "Holding registers 0-19", ""},
		{[]string{"plc", "-h"}, 0, "-listen string", ""},
		{[]string{"plc"}, 2, "", "--listen is required"},
		{[]string{"plc", "--listen", "10.10.1.20"}, 2, "", `--listen "10.10.1.20": want ADDR:PORT`},
		{[]string{"plc", "--listen", "127.0.0.1:502", "--unit", "300"}, 2, "", "--unit 300"},
		{[]string{"plc", "--listen", "127.0.0.1:502", "extra"}, 2, "", `unexpected arguments "extra"`},
		{[]string{"plc", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"hmi", "--help"}, 0, "--write-every N", ""},
		{[]string{"hmi"}, 2, "", "--plc is required"},
		{[]string{"hmi", "--plc", "127.0.0.1:502", "--interval", "0s"}, 2, "", "--interval 0s"},
		{[]string{"hmi", "--plc", "127.0.0.1:502", "--write-every", "-1"}, 2, "", "--write-every -1"},
		{[]string{"dnp3-pcap", "--help"}, 0, "tcpreplay -i IFACE FILE", ""},
		{[]string{"dnp3-pcap"}, 2, "", "-o FILE is required"},
		{[]string{"dnp3-pcap", "-o", "x.pcap", "--master", "fd00::1"}, 2, "", `--master "fd00::1"`},
		{[]string{"dnp3-pcap", "-o", filepath.Join(t.TempDir(), "no", "such", "dir.pcap")}, 1, "", "no such file or directory"},
	} {
		code, out, errs := run(ctx, c.args...)
		if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errs, c.stderr) || (c.stdout == "" && out != "") {
			t.Errorf("tapwatch-lab %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.args, code, out, errs, c.code, c.stdout, c.stderr)
		}
	}

	file := filepath.Join(t.TempDir(), "dnp3.pcap")
	if code, _, errs := run(ctx, "dnp3-pcap", "-o", file); code != 0 || !strings.Contains(errs, "38 packets of DNP3/TCP") {
		t.Errorf("dnp3-pcap: exit %d, %s", code, errs)
	}
	if st, err := os.Stat(file); err != nil || st.Size() < 1000 {
		t.Errorf("dnp3-pcap wrote %v, %v", st, err)
	}
	if code, out, _ := run(ctx, "dnp3-pcap", "-o", "-"); code != 0 || !strings.HasPrefix(out, "\xd4\xc3\xb2\xa1") {
		t.Errorf("dnp3-pcap -o -: exit %d, %d bytes", code, len(out))
	}

	// plc and hmi run until their context is cancelled, then exit 0.
	addr := freeAddr(t)
	plcCtx, stopPLC := context.WithCancel(ctx)
	plcDone := make(chan [3]string, 1)
	go func() {
		code, out, errs := run(plcCtx, "plc", "--listen", addr)
		plcDone <- [3]string{fmt.Sprint(code), out, errs}
	}()
	hmiCtx, stopHMI := context.WithTimeout(ctx, 10*time.Second)
	defer stopHMI()
	hmiDone := make(chan [3]string, 1)
	go func() {
		code, out, errs := run(hmiCtx, "hmi", "--plc", addr, "--interval", "20ms", "--write-every", "3")
		hmiDone <- [3]string{fmt.Sprint(code), out, errs}
	}()
	time.Sleep(500 * time.Millisecond)
	stopHMI()
	h := <-hmiDone
	stopPLC()
	p := <-plcDone
	if h[0] != "0" || !strings.Contains(h[2], "hmi: connected to "+addr) || !strings.Contains(h[2], "hmi: stopped after") {
		t.Errorf("hmi: exit %s, stderr:\n%s", h[0], h[2])
	}
	if p[0] != "0" || !strings.Contains(p[2], "plc: stopped") {
		t.Errorf("plc: exit %s, stderr:\n%s", p[0], p[2])
	}
}
