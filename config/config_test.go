package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/yamlpos"
	"github.com/tapwatch/tapwatch/rules/policy"
)

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("sensor", c.Sensor, "hall2-tap")
	check("site", c.Site, "plant-a")
	check("interfaces", strings.Join(c.Interfaces, ","), "eth1,eth2")
	check("modbus ports", len(c.Ports.Modbus), 2)
	check("modbus port 2", c.Ports.Modbus[1], uint16(5020))
	check("modbus rtu ports", fmt.Sprint(c.Ports.ModbusRTU), "[4001]")
	check("capture filter ports", fmt.Sprint(c.Ports.All()), "[502 5020 20000 4001]")
	check("ring", c.Capture.RingBytes, 4<<20)
	check("block timeout", c.Capture.BlockTimeout, 20*time.Millisecond)
	check("promiscuous", *c.Capture.Promiscuous, false)
	check("link idle", c.LinkIdle, 15*time.Minute)
	check("max flows", c.MaxFlows, 2048)
	check("policy", c.Policy, filepath.Join("testdata", "policy.yaml"))
	check("baseline", c.Baseline, "/etc/tapwatch/baseline.yaml")
	check("learn", c.Learn.Duration, 72*time.Hour)
	check("margin", *c.Learn.Margin, 0.25)
	check("checkpoint", c.Learn.Checkpoint, time.Minute)
	check("state dir", c.StateDir, filepath.Join("testdata", "state"))
	check("status every", c.StatusEvery, 30*time.Second)
	check("uplink site", c.Uplink.Site, "plant-a")
	check("uplink sensor", c.Uplink.Sensor, "hall2-tap")
	check("broker", c.Uplink.Brokers[0], "ssl://soc.example.net:8883")
	check("password file", c.Uplink.PasswordFile, filepath.Join("testdata", "secrets/mqtt.pass"))
	check("ca", c.Uplink.TLS.CA, filepath.Join("testdata", "pki/ca.pem"))
	check("stats", c.Uplink.StatsInterval, 2*time.Minute)
	check("spool", c.Uplink.Spool.MaxMessages, 5000)
	check("log", c.Log.Level+"/"+c.Log.Format, "warn/json")
}

// TestDefaults: a file with only the interface gets every documented
// default (docs/config.md lists the same values).
func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("interfaces: eth1\n"), "min.yaml")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	if c.Sensor != host || c.Site != "default" {
		t.Errorf("sensor %q site %q", c.Sensor, c.Site)
	}
	if len(c.Interfaces) != 1 || c.Interfaces[0] != "eth1" {
		t.Errorf("one interface as a scalar: %v", c.Interfaces)
	}
	if len(c.Ports.Modbus) != 1 || c.Ports.Modbus[0] != 502 || len(c.Ports.DNP3) != 1 || c.Ports.DNP3[0] != 20000 || c.Ports.ModbusRTU != nil {
		t.Errorf("ports %+v", c.Ports)
	}
	if c.Capture.RingBytes != capture.DefaultRingBytes || c.Capture.BlockTimeout != capture.DefaultBlockTimeout || !*c.Capture.Promiscuous {
		t.Errorf("capture %+v", c.Capture)
	}
	if c.LinkIdle != 10*time.Minute || c.MaxFlows != dpi.DefaultMaxFlows || c.Mode != "monitor" {
		t.Errorf("link idle %v flows %d mode %s", c.LinkIdle, c.MaxFlows, c.Mode)
	}
	if c.Learn.Duration != 7*24*time.Hour || *c.Learn.Margin != policy.DefaultMargin || c.Learn.Checkpoint != 5*time.Minute {
		t.Errorf("learn %+v", c.Learn)
	}
	if c.StateDir != "/var/lib/tapwatch" || c.StatusEvery != time.Minute || c.Uplink != nil {
		t.Errorf("state %s status %v uplink %v", c.StateDir, c.StatusEvery, c.Uplink)
	}
	if c.Log.Level != "info" || c.Log.Format != "text" {
		t.Errorf("log %+v", c.Log)
	}
	h := c.Hardware
	if h.Board != "auto" || h.LEDs != (HardwareLEDs{}) || h.Button.Pin != "" || !*h.Button.ActiveLow || h.Relays != (Relays{AlarmSeverity: "high"}) ||
		h.Watchdog != "" || h.Panel != "auto" || h.SysRoot != "/sys" || h.DevRoot != "/dev" || h.ProcRoot != "/proc" || h.SimDir != "" {
		t.Errorf("hardware %+v", h)
	}
}

// TestRTUOnDefaultPorts: a gateway on 502 or 20000 takes the port from
// the protocol that has it by default, not from one it was given for.
// TestLeadingZeros: a number padded with zeros is read in decimal, as
// YAML 1.2 reads it, not in octal: 0502 is port 502.
func TestLeadingZeros(t *testing.T) {
	c, err := Parse([]byte("interfaces: eth1\nports: {modbus: [0502, 05020], dnp3: [020000], modbus_rtu: [04001, 08, 0x0F, 0o21, 1_000]}\nmax_flows: 01_024\n"), "z.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Ports.Modbus, []uint16{502, 5020}) || !slices.Equal(c.Ports.DNP3, []uint16{20000}) ||
		!slices.Equal(c.Ports.ModbusRTU, []uint16{4001, 8, 15, 17, 1000}) || c.MaxFlows != 1024 {
		t.Errorf("ports %+v, max_flows %d", c.Ports, c.MaxFlows)
	}
	// A number field reads a whole number as a whole-number field does.
	for text, want := range map[string]float64{"01": 1, "0x1": 1, "0b10": 2, "1_0": 10, "0.5": 0.5, "0": 0} {
		c, err := Parse([]byte("interfaces: eth1\nlearn: {margin: "+text+"}\n"), "z.yaml")
		if err != nil || c.Learn.Margin == nil || *c.Learn.Margin != want {
			t.Errorf("margin: %s: %v, want %v", text, err, want)
		}
	}
	// Quoted, it is text, as before.
	if _, err := Parse([]byte("interfaces: eth1\nmax_flows: \"08\"\n"), "z.yaml"); err == nil || !strings.Contains(err.Error(), `max_flows: "08" is not a whole number`) {
		t.Errorf("quoted: %v", err)
	}
}

func TestRTUOnDefaultPorts(t *testing.T) {
	c, err := Parse([]byte("interfaces: eth1\nports: {modbus_rtu: [502, 20000]}\n"), "gw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ports.Modbus) != 0 || len(c.Ports.DNP3) != 0 || fmt.Sprint(c.Ports.All()) != "[502 20000]" {
		t.Errorf("ports %+v", c.Ports)
	}
	// What the daemon hands the decoder is valid.
	if err := (dpi.Config{ModbusPorts: c.Ports.Modbus, DNP3Ports: c.Ports.DNP3, ModbusRTUPorts: c.Ports.ModbusRTU}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestErrors: each mistake is reported with the file, line, column and
// field, all of them at once, in file order.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "interfaces: [eth1]\nintrefaces: [eth2]\n",
			[]string{`bad.yaml:2:1: unknown field "intrefaces" (did you mean interfaces?)`}},
		{"nested unknown", "interfaces: [eth1]\ncapture:\n  ring: 5\n",
			[]string{`bad.yaml:3:3: capture: unknown field "ring" (expected ring_bytes, block_timeout or promiscuous)`}},
		{"no interface", "site: a\n",
			[]string{`bad.yaml: interfaces: no capture interface given`}},
		{"bad duration", "interfaces: [eth1]\nlink_idle: ten minutes\n",
			[]string{`bad.yaml:2:12: link_idle: "ten minutes" is not a duration`}},
		{"port range", "interfaces: [eth1]\nports:\n  modbus: [502, 70000]\n",
			[]string{`bad.yaml:3:17: ports.modbus[1]: "70000" is not a whole number from 0 to 65535`}},
		{"port twice", "interfaces: [eth1]\nports:\n  modbus: [502]\n  dnp3: [502]\n",
			[]string{`bad.yaml:4:10: ports.dnp3[0]: port 502 is already in ports.modbus`}},
		{"rtu port also modbus", "interfaces: [eth1]\nports:\n  modbus: [502]\n  modbus_rtu: [4001, 502]\n",
			[]string{`bad.yaml:4:22: ports.modbus_rtu[1]: port 502 is already in ports.modbus`}},
		{"rtu port 0", "interfaces: [eth1]\nports:\n  modbus_rtu: [0]\n",
			[]string{`bad.yaml:3:16: ports.modbus_rtu[0]: 0 is not a port`}},
		{"mode", "interfaces: [eth1]\nmode: learning\n",
			[]string{`bad.yaml:2:7: mode: "learning"; want monitor or learn`}},
		{"learn with baseline", "interfaces: [eth1]\nmode: learn\nbaseline: b.yaml\n",
			[]string{`bad.yaml:3:11: baseline: set in mode learn`}},
		{"interface twice and bad", "interfaces: [eth1, eth1, \"a/b\"]\n",
			[]string{`bad.yaml:1:20: interfaces[1]: "eth1" is listed twice`, `bad.yaml:1:26: interfaces[2]: "a/b" is not an interface name`}},
		{"plaintext uplink", "interfaces: [eth1]\nuplink:\n  brokers: [tcp://soc.example.net:1883]\n",
			[]string{`bad.yaml:3:13: uplink.brokers[0]: "tcp://soc.example.net:1883" is plaintext MQTT to another host`}},
		{"uplink site", "interfaces: [eth1]\nuplink:\n  brokers: [tcp://127.0.0.1:1883]\n  site: x\n",
			[]string{`bad.yaml:4:9: uplink.site: set site at the top level`}},
		{"uplink field type", "interfaces: [eth1]\nuplink:\n  brokers: [tcp://127.0.0.1:1883]\n  window: many\n",
			[]string{`bad.yaml:4:11: uplink.window: "many" is not a whole number in range`}},
		{"bool", "interfaces: [eth1]\ncapture: {promiscuous: yes please}\n",
			[]string{`bad.yaml:2:24: capture.promiscuous: expected true or false, found "yes please"`}},
		{"map for list", "interfaces: {a: b}\n",
			[]string{`bad.yaml:1:13: interfaces: expected a list, found a map`}},
		{"list for map", "interfaces: [eth1]\nlog: [info]\n",
			[]string{`bad.yaml:2:6: log: expected a map of level, format, found a list`}},
		{"several", "interfaces: [eth1]\nlog:\n  level: loud\n  format: xml\nsensor: a/b\n",
			[]string{`bad.yaml:3:10: log.level: "loud"`, `bad.yaml:4:11: log.format: "xml"`, `bad.yaml:5:9: sensor: "a/b"`}},
		{"syntax", "interfaces: [eth1\n", []string{`bad.yaml:1:`}},
		{"twice", "interfaces: [eth1]\nsite: a\nsite: b\n", []string{`bad.yaml:3:1: mapping key "site" already defined at [2:1]`}},
		{"alias", "interfaces: &i [eth1]\nsite: *i\n", []string{`bad.yaml:1:13: interfaces: anchors`, `bad.yaml:2:7: site: anchors`}},
		{"hardware", "interfaces: [eth1]\nhardware:\n  board: pi44\n  leds: {run: \"GPIO 17\", board: \"led:\"}\n  button: {pin: sim:b}\n" +
			"  relays: {alarm_severity: severe}\n  watchdog: watchdog0\n  panel: colour\n  sys_root: sys\n",
			[]string{`bad.yaml:3:10: hardware.board: "pi44" is not a board profile; want auto, none or one of pi-zero, pi-zero-2w, pi3, pi4, pi5, cm4, generic-arm64, x86-lab (did you mean pi4?)`,
				`bad.yaml:4:15: hardware.leds.run: "GPIO 17" is not a pin: want a GPIO line name (GPIO17), led:NAME`, `bad.yaml:4:33: hardware.leds.board: "led:" is not a pin`,
				`bad.yaml:5:17: hardware.button.pin: "sim:b": a sim pin needs hardware.sim_dir`,
				`bad.yaml:6:28: hardware.relays.alarm_severity: "severe"`, `bad.yaml:7:13: hardware.watchdog: "watchdog0": want a device path`,
				`bad.yaml:8:10: hardware.panel: "colour"; want auto, on or off`, `bad.yaml:9:13: hardware.sys_root: "sys": want an absolute path`}},
		{"hardware field", "interfaces: [eth1]\nhardware:\n  ledz: {}\n", []string{`bad.yaml:3:3: hardware: unknown field "ledz" (did you mean leds?)`}},
		{"CR LF after comments", "# box 7\r\ninterfaces: [eth1] # the tap\r\n# logging\r\nlog:\r\n  level: loud\r\n",
			[]string{`bad.yaml:5:10: log.level: "loud"`}},
		{"UTF-8 with a byte order mark", "\ufeffinterfaces: [eth1]\r\nlog:\r\n  level: loud\r\n",
			[]string{`bad.yaml:3:10: log.level: "loud"`}},
		{"UTF-16 with a byte order mark", string([]byte{0xff, 0xfe, 'l', 0, 'o', 0, 'g', 0, ':', 0, ' ', 0, '7', 0, '\n', 0}),
			[]string{`bad.yaml:1:6: log: expected a map`}},
		{"a tab", "interfaces: [eth1]\nlog:\n\tlevel: debug\n",
			[]string{`bad.yaml:3:1: found a tab: YAML indents with spaces, not tabs`}},
		{"a URL in [...] in {...}", "interfaces: [eth1]\nuplink: {brokers: [tcp://127.0.0.1:1883]}\n",
			[]string{`bad.yaml:2:35: uplink.brokers[0]: expected text, found a map (to give "tcp://127.0.0.1:1883" as text, quote it)`}},
		{"a map meant", "interfaces: [eth1]\nuplink: {brokers: [a: b]}\n",
			[]string{`bad.yaml:2:21: uplink.brokers[0]: expected text, found a map`}},
		{"UTF-16 cut short", string([]byte{0xfe, 0xff, 0, 'l', 0}),
			[]string{`bad.yaml: line 1 (octet 5): not valid UTF-16BE: the file ends inside a character`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "bad.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, e := range unjoin(err) {
				if pe, ok := e.(*yamlpos.Error); !ok || pe.File != "bad.yaml" {
					t.Errorf("not a *yamlpos.Error of bad.yaml: %#v", e)
				}
			}
			lines := Errors(err)
			if len(lines) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%s", len(lines), len(tc.want), strings.Join(lines, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, lines[i], w)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("testdata/missing.yaml"); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(big, make([]byte, MaxConfigSize+1), 0o600)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

// TestValidateInCode: a config built in code is checked the same way,
// without positions.
func TestValidateInCode(t *testing.T) {
	c := &Config{Interfaces: []string{"eth1"}, Mode: "watch"}
	c.SetDefaults()
	err := c.Validate()
	if err == nil || err.Error() != `config: mode: "watch"; want monitor or learn` {
		t.Errorf("got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/full.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("interfaces: eth1\nmode: learn\nlearn: {duration: 1h}\n"))
	f.Add([]byte("interfaces: [a, b]\nuplink: {brokers: [tcp://127.0.0.1:1]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			for _, e := range unjoin(err) {
				if _, ok := e.(*yamlpos.Error); !ok {
					t.Fatalf("not a *yamlpos.Error: %#v", e)
				}
			}
			for _, line := range Errors(err) {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("error without the file name: %q", line)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted, then invalid: %v", err)
		}
	})
}

// unjoin is the errors joined in err, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
