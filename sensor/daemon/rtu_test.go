package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// TestModbusRTUPorts: the daemon decodes the gateway ports of
// ports.modbus_rtu, and its alerts say the messages came as RTU over TCP.
func TestModbusRTUPorts(t *testing.T) {
	t.Parallel()
	src := newFakeSource()
	r := startDaemon(t, testConfig(t, t.TempDir(), "ports: {modbus_rtu: [4001]}\n"), src, nil)

	g := newTraffic(t)
	c, err := pcapgen.NewTCPConn(g.w, pcapgen.Endpoint{MAC: mac(hmiIP), IP: hmiIP, Port: 49152},
		pcapgen.Endpoint{MAC: mac(plcIP), IP: plcIP, Port: 4001}, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	bad := pcapgen.RTU(3, pcapgen.ReadHoldingRegistersResponse(7))
	bad[len(bad)-1] ^= 0xFF // noise on the serial line
	for _, step := range []func() ([]int, error){
		c.Handshake,
		func() ([]int, error) { return c.Client(pcapgen.RTU(3, pcapgen.ReadHoldingRegisters(0, 1))) },
		func() ([]int, error) { return c.Server(bad) },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	src.feed(g.frames()...)

	waitFor(t, "the bad CRC alert", 5*time.Second, func() bool { return len(r.up.alertsOf("malformed")) > 0 })
	a := r.up.alertsOf("malformed")[0].a
	if a.Transport != "rtu_over_tcp" || a.Unit == nil || *a.Unit != 3 || a.FCName != "read_holding_registers" ||
		!strings.HasSuffix(a.Title, ": bad_crc") || a.Dst == nil || a.Dst.Port != 49152 {
		t.Errorf("alert %+v", a)
	}
	r.stop()
}
