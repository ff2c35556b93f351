package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// buildRTU writes a master polling slave 3 through a serial gateway on
// server: a read, a write of 900 to register 5, and a response whose CRC
// was spoiled on the serial line.
func buildRTU(server pcapgen.Endpoint) func(*pcapgen.Writer) error {
	return func(w *pcapgen.Writer) error {
		c, err := pcapgen.NewTCPConn(w, hmi, server, 1, 2)
		if err != nil {
			return err
		}
		bad := pcapgen.RTU(3, pcapgen.ReadHoldingRegistersResponse(7))
		bad[len(bad)-1] ^= 0xFF
		steps := []struct {
			client bool
			frame  []byte
		}{
			{true, pcapgen.RTU(3, pcapgen.ReadHoldingRegisters(0, 1))},
			{false, pcapgen.RTU(3, pcapgen.ReadHoldingRegistersResponse(7))},
			{true, pcapgen.RTU(3, pcapgen.WriteSingleRegister(5, 900))},
			{false, pcapgen.RTU(3, pcapgen.WriteSingleRegister(5, 900))},
			{true, pcapgen.RTU(3, pcapgen.ReadHoldingRegisters(0, 1))},
			{false, bad},
		}
		if _, err := c.Handshake(); err != nil {
			return err
		}
		for _, s := range steps {
			if s.client {
				_, err = c.Client(s.frame)
			} else {
				_, err = c.Server(s.frame)
			}
			if err != nil {
				return err
			}
		}
		_, err = c.Close()
		return err
	}
}

func TestReplayModbusRTUPorts(t *testing.T) {
	dir := t.TempDir()
	gw := plc
	gw.Port = 4001
	path := writeCapture(t, dir, "gateway.pcap", pcapgen.Options{}, buildRTU(gw))
	on502 := writeCapture(t, dir, "gateway502.pcap", pcapgen.Options{}, buildRTU(plc))

	// Without the flag the gateway's port is not decoded.
	if r := tapwatch("replay", "--ops", path); r.code != 0 || r.stdout != "" {
		t.Errorf("no --modbus-rtu-ports: want no messages, got %v", r)
	}
	r := tapwatch("replay", "--ops", "--modbus-rtu-ports", "4001", path)
	if r.code != 0 {
		t.Fatalf("replay --ops --modbus-rtu-ports 4001: %v", r)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		lines = append(lines, m)
	}
	want := []map[string]any{
		{"frame": 4, "dir": "request", "unit": 3, "fc": 3, "addr": 0, "count": 1},
		{"frame": 5, "dir": "response", "unit": 3, "fc": 3, "values": []int{7}, "request_frame": 4},
		{"frame": 6, "dir": "request", "unit": 3, "fc": 6, "addr": 5, "values": []int{900}},
		{"frame": 7, "dir": "response", "unit": 3, "fc": 6, "request_frame": 6},
		{"frame": 8, "dir": "request", "unit": 3, "fc": 3},
		{"frame": 9, "dir": "response", "unit": 3, "fc": 3, "fc_name": "read_holding_registers", "malformed": "bad_crc", "values": nil, "request_frame": nil},
		{"frame": 8, "dir": "request", "unanswered": true},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), r.stdout)
	}
	for i := range want {
		want[i]["transport"], want[i]["tid"] = "rtu_over_tcp", nil
		if d := match(lines[i], want[i]); d != nil {
			t.Errorf("line %d: %s", i+1, strings.Join(d, "; "))
		}
	}

	// The alerts say how the messages came, the bad CRC among them.
	r = tapwatch("replay", "--modbus-rtu-ports", "4001", path)
	if r.code != 0 || !strings.Contains(r.stdout, `"title":"Malformed Modbus message from 10.10.1.20 to 10.10.1.10: bad_crc","attack":["T0814"],"proto":"modbus","transport":"rtu_over_tcp"`) {
		t.Errorf("replay --modbus-rtu-ports 4001: want the bad_crc alert, over rtu_over_tcp:\n%v", r)
	}

	// A gateway on 502 needs only the RTU flag: 502 leaves the Modbus/TCP default.
	r = tapwatch("replay", "--ops", "--modbus-rtu-ports", "502", on502)
	if r.code != 0 || strings.Count(r.stdout, `"transport":"rtu_over_tcp"`) != len(want) {
		t.Errorf("replay --modbus-rtu-ports 502: %v", r)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--modbus-ports", "502", "--modbus-rtu-ports", "502"}, "port 502 is given for both Modbus/TCP and Modbus RTU over TCP"},
		{[]string{"--dnp3-ports", "4001", "--modbus-rtu-ports", "4001"}, "port 4001 is given for both DNP3 and Modbus RTU over TCP"},
		{[]string{"--modbus-rtu-ports", "0"}, `--modbus-rtu-ports: "0" is not a port number`},
		{[]string{"--modbus-rtu-ports", "4001,x"}, `--modbus-rtu-ports: "x" is not a port number`},
	} {
		r := tapwatch(append(append([]string{"replay"}, tc.args...), path)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("replay %q: want exit 2 saying %q, got %v", tc.args, tc.want, r)
		}
	}
}

// learn takes the gateway's slaves as assets too.
func TestLearnModbusRTUPorts(t *testing.T) {
	dir := t.TempDir()
	gw := plc
	gw.Port = 4001
	path := writeCapture(t, dir, "gateway.pcap", pcapgen.Options{}, buildRTU(gw))
	base := filepath.Join(dir, "baseline.yaml")
	if r := tapwatch("learn", "--modbus-rtu-ports", "4001", "-o", base, path); r.code != 0 {
		t.Fatalf("learn: %v", r)
	}
	p, err := policy.Load(base)
	if err != nil || p.Baseline == nil || len(p.Baseline.Conversations) != 1 {
		t.Fatalf("baseline %+v: %v", p, err)
	}
	// Enforced on the same capture, the write of 900 is normal.
	if r := tapwatch("replay", "--modbus-rtu-ports", "4001", "--baseline", base, "--fail-on", "high", path); r.code != 0 {
		t.Errorf("replay --baseline: %v", r)
	}
}
