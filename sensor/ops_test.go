package sensor

import (
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
)

var testFlow = dpi.Flow{
	Transport: dpi.TCP,
	Client:    netip.MustParseAddrPort("10.10.1.10:49152"),
	Server:    netip.MustParseAddrPort("[fd00::20]:502"),
	VLAN:      7,
}

func TestOpsLineIsJSON(t *testing.T) {
	ts := time.Date(2026, 11, 21, 8, 0, 0, 123456789, time.UTC)
	rtuFlow := testFlow
	rtuFlow.Transport = dpi.RTUOverTCP
	for _, tc := range []struct {
		name string
		flow *dpi.Flow // default testFlow
		m    modbus.Message
		want map[string]any
	}{
		{
			name: "read response",
			m: modbus.Message{Meta: modbus.Meta{Time: ts, Frame: 9}, Dir: modbus.Response, TID: 1, Unit: 2, FC: 3,
				HasAddr: true, Addr: 100, Count: 2, Values: []uint16{7, 65535}, Outcome: modbus.OutcomeOK,
				RequestFrame: 8, Latency: 1500 * time.Microsecond, PDU: []byte{3, 4, 0, 7, 0xff, 0xff}},
			want: map[string]any{"ts": "2026-11-21T08:00:00.123456789Z", "frame": 9.0, "src": "fd00::20", "sport": 502.0,
				"dst": "10.10.1.10", "dport": 49152.0, "vlan": 7.0, "dir": "response", "fc": 3.0, "fc_name": "read_holding_registers",
				"values": []any{7.0, 65535.0}, "request_frame": 8.0, "latency_us": 1500.0},
		},
		{
			name: "device identification with hostile strings",
			m: modbus.Message{Meta: modbus.Meta{Time: ts, Frame: 3}, Dir: modbus.Response, FC: 43, MEI: 14,
				Objects: []modbus.DeviceObject{{ID: 0, Value: []byte("Acme \"PLC\"\n\\")}, {ID: 1, Value: []byte{0xff, 'x'}}},
				PDU:     []byte{43, 14}},
			want: map[string]any{"mei": 14.0, "objects": []any{
				map[string]any{"id": 0.0, "name": "VendorName", "value": "Acme \"PLC\"\n\\"},
				map[string]any{"id": 1.0, "name": "ProductCode", "value": "\ufffdx"},
			}},
		},
		{
			name: "garbage",
			m:    modbus.Message{Meta: modbus.Meta{Time: ts, Frame: 1}, Dir: modbus.Request, Malformed: modbus.NotModbus, AfterLoss: true, PDU: []byte("GET /")},
			want: map[string]any{"malformed": "not_modbus", "after_loss": true, "fc": nil},
		},
		{
			name: "rtu over tcp",
			flow: &rtuFlow,
			m: modbus.Message{Meta: modbus.Meta{Time: ts, Frame: 4}, Dir: modbus.Request, Unit: 17, FC: 6,
				HasAddr: true, Addr: 1, Count: 1, Values: []uint16{3}, PDU: []byte{6, 0, 1, 0, 3}},
			want: map[string]any{"transport": "rtu_over_tcp", "tid": nil, "unit": 17.0, "fc": 6.0, "addr": 1.0, "values": []any{3.0}},
		},
		{
			name: "bad crc",
			flow: &rtuFlow,
			m: modbus.Message{Meta: modbus.Meta{Time: ts, Frame: 5}, Dir: modbus.Request, Unit: 17, FC: 6,
				Malformed: modbus.BadCRC, PDU: []byte{17, 6, 0, 1, 0, 3, 0x9A, 0x9C}},
			want: map[string]any{"transport": "rtu_over_tcp", "tid": nil, "unit": 17.0, "fc": 6.0, "fc_name": "write_single_register",
				"malformed": "bad_crc", "addr": nil, "values": nil},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sb strings.Builder
			w := NewOpsWriter(&sb)
			f := tc.flow
			if f == nil {
				f = &testFlow
			}
			w.Message(f, dpi.FromClient, &tc.m)
			var got map[string]any
			if err := json.Unmarshal([]byte(sb.String()), &got); err != nil {
				t.Fatalf("%v in %s", err, sb.String())
			}
			if !strings.HasSuffix(sb.String(), "}\n") || strings.Count(sb.String(), "\n") != 1 {
				t.Errorf("not one line: %q", sb.String())
			}
			for k, v := range tc.want {
				if !jsonEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestOpsWriterAllocs(t *testing.T) {
	w := NewOpsWriter(io.Discard)
	m := modbus.Message{Meta: modbus.Meta{Time: time.Now(), Frame: 9}, Dir: modbus.Request, FC: 16,
		HasAddr: true, Addr: 1, Count: 3, Values: []uint16{1, 2, 3}, PDU: []byte{16}}
	w.Message(&testFlow, dpi.FromClient, &m)
	if n := testing.AllocsPerRun(100, func() { w.Message(&testFlow, dpi.FromClient, &m) }); n != 0 {
		t.Errorf("%v allocations per line, want 0", n)
	}
}
