package dpi

import (
	"slices"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// gateway is a serial-to-Ethernet gateway's RTU over TCP port.
var gateway = pcapgen.Endpoint{MAC: plc.MAC, IP: plc.IP, Port: 4001}

func rtuReq(unit uint8) []byte { return pcapgen.RTU(unit, pcapgen.ReadHoldingRegisters(0, 4)) }
func rtuRsp(unit uint8) []byte {
	return pcapgen.RTU(unit, pcapgen.ReadHoldingRegistersResponse(1, 2, 3, 4))
}

// TestModbusRTUOverTCP: a configured RTU port is framed as RTU, with
// responses split across segments and a bad CRC; the Modbus/TCP port beside
// it is still MBAP; the flows say how they carry their messages.
func TestModbusRTUOverTCP(t *testing.T) {
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		rtu := s.conn(hmi, gateway, 100, 200)
		rtu.handshake()                              // 1-3
		rtu.client(rtuReq(7))                        // 4
		rtu.server(rtuRsp(7), pcapgen.SplitAt(3, 9)) // 5-7
		rtu.client(rtuReq(8))                        // 8
		bad := rtuRsp(8)
		bad[len(bad)-1] ^= 1
		rtu.server(bad) // 9
		tcp := s.conn(hmi, plc, 300, 400)
		tcp.handshake()        // 10-12
		tcp.client(readReq(5)) // 13
		tcp.server(readRsp(5)) // 14
		rtu.close()            // 15-17
	})
	e, r := replay(t, Config{ModbusRTUPorts: []uint16{4001}}, lt, pkts, true)
	m := func(x msg, unit uint8) msg { x.Unit = unit; return x }
	badCRC := msg{Frame: 9, Dir: modbus.Response, Unit: 8, FC: 3, Malformed: modbus.BadCRC, Flow: 1}
	checkMsgs(t, r.msgs, []msg{
		m(req(4, 0, 3), 7),
		m(rsp(7, 0, 3), 7),
		m(req(8, 0, 3), 8),
		badCRC,
		req(13, 5, 3).onFlow(2),
		rsp(14, 5, 3).onFlow(2),
		m(unanswered(8, 0, 3), 8), // at the close: the bad CRC answered nothing
	})
	for i, f := range r.flows {
		want := RTUOverTCP
		if f.Server.Port() == 502 {
			want = TCP
		}
		if f.Transport != want || f.App != AppModbus {
			t.Errorf("message %d: flow to %v carries %v %v, want %v modbus", i, f.Server, f.Transport, f.App, want)
		}
	}
	if got := e.Counters().FlowsClosed; got != 1 {
		t.Errorf("%d flows closed, want 1", got)
	}
	if RTUOverTCP.String() != "rtu_over_tcp" {
		t.Errorf("RTUOverTCP prints %q", RTUOverTCP)
	}
}

func (m msg) onFlow(id uint64) msg { m.Flow = id; return m }

// A gateway may use the Modbus port: listed as an RTU port, 502 is framed
// as RTU, although it is the default Modbus/TCP port. UDP on it is still
// Modbus/UDP: RTU is decoded over TCP only.
func TestModbusRTUOnPort502(t *testing.T) {
	lt, pkts := capture(t, pcapgen.Options{}, func(s script) {
		c := s.conn(hmi, plc, 100, 200)
		c.handshake()       // 1-3
		c.client(rtuReq(3)) // 4
		c.server(rtuRsp(3)) // 5
		u, err := pcapgen.NewUDP(s.w, hmi, plc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Send(readReq(9)); err != nil { // 6
			t.Fatal(err)
		}
	})
	_, r := replay(t, Config{ModbusRTUPorts: []uint16{502}}, lt, pkts, false)
	checkMsgs(t, r.msgs, []msg{
		{Frame: 4, Dir: modbus.Request, Unit: 3, FC: 3, Flow: 1},
		{Frame: 5, Dir: modbus.Response, Unit: 3, FC: 3, Outcome: modbus.OutcomeOK, Flow: 1},
		req(6, 9, 3).onFlow(2),
	})
	if len(r.flows) == 3 && (r.flows[0].Transport != RTUOverTCP || r.flows[2].Transport != UDP) {
		t.Errorf("transports %v and %v, want rtu_over_tcp and udp", r.flows[0].Transport, r.flows[2].Transport)
	}
}

func TestModbusRTUPortsValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // "" for valid
	}{
		{Config{ModbusRTUPorts: []uint16{4001, 502}}, ""},
		{Config{ModbusRTUPorts: []uint16{20000}}, ""},
		{Config{ModbusRTUPorts: []uint16{0}}, "modbus rtu port 0 is not a port"},
		{Config{ModbusPorts: []uint16{502, 4001}, ModbusRTUPorts: []uint16{4001}}, "port 4001 is given for both Modbus/TCP and Modbus RTU over TCP"},
		{Config{DNP3Ports: []uint16{4001}, ModbusRTUPorts: []uint16{4001}}, "port 4001 is given for both DNP3 and Modbus RTU over TCP"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestModbusRTUSteadyStateAllocs(t *testing.T) {
	lt, pkts := generate(t, pcapgen.Options{}, func(w *pcapgen.Writer) error {
		conn, err := pcapgen.NewTCPConn(w, hmi, gateway, 1, 2)
		if err != nil {
			return err
		}
		if _, err := conn.Handshake(); err != nil {
			return err
		}
		for i := range 800 {
			unit := uint8(1 + i%4)
			if _, err := conn.Client(rtuReq(unit)); err != nil {
				return err
			}
			// Every other response comes in two segments.
			if _, err := conn.Server(rtuRsp(unit), pcapgen.Split(1+i%2)); err != nil {
				return err
			}
		}
		return nil
	})
	var r recorder
	run(t, Config{ModbusRTUPorts: []uint16{4001}}, &r, lt, pkts)
	if len(r.msgs) != 1600 || slices.ContainsFunc(r.msgs, func(m msg) bool { return m.Malformed != 0 || m.Outcome == modbus.OutcomeOrphan }) {
		t.Fatalf("%d messages, or some malformed or orphaned", len(r.msgs))
	}
	checkSteadyStateAllocs(t, Config{ModbusRTUPorts: []uint16{4001}}, lt, pkts, &nopHandler{})
}
