package policy

import (
	"strings"
	"testing"
)

func TestBaselineErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"baseline: {margin: -1}", "b.yaml:1:20: baseline.margin"},
		{"baseline: {conversations: [{src: 10.0.0.1, dst: 10.0.0.2}]}", "proto"},
		{"baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: nowhere, proto: modbus}", "b.yaml:3:28: baseline.conversations[0].dst: \"nowhere\" is not an asset"},
		{"baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: dnp3, unit: 1}", "unit is a Modbus field"},
		{"baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: modbus, values: [{table: holding, addr: 1, min: 5, max: 1}]}", "min 5 is above max 1"},
		{"baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: modbus}\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: modbus}", "the same conversation"},
		{"baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: modbus, fc: colde_restart}", "not a Modbus function code"},
	} {
		_, err := Parse([]byte(c.yaml), "b.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.yaml, err, c.want)
		}
	}
}

// TestBaselineMissing: a missing field of a conversation, a value range
// or an object is reported at its map, each in its own words.
func TestBaselineMissing(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"baseline:\n  conversations:\n    - {unit: 1}\n",
			"b.yaml:3:7: baseline.conversations[0].proto: missing: give proto: modbus or proto: dnp3\n" +
				"b.yaml:3:7: baseline.conversations[0].src: missing: a conversation needs src (the master) and dst (the device)\n" +
				"b.yaml:3:7: baseline.conversations[0].dst: missing: a conversation needs src (the master) and dst (the device)\n" +
				"b.yaml:3:8: baseline.conversations[0].unit: unit is a Modbus field: it needs proto: modbus"},
		{"baseline:\n  conversations:\n    - src: 10.0.0.1\n      dst: 10.0.0.2\n      proto: modbus\n      values:\n        - {table: coils, addr: 1}\n",
			"b.yaml:7:11: baseline.conversations[0].values[0].min: missing: a value range needs min and max\n" +
				"b.yaml:7:11: baseline.conversations[0].values[0].max: missing: a value range needs min and max"},
		{"baseline:\n  conversations:\n    - src: 10.0.0.1\n      dst: 10.0.0.2\n      proto: dnp3\n      objects:\n        - {points: 1}\n",
			"b.yaml:7:11: baseline.conversations[0].objects[0].group: missing: give the group, like 12/1"},
		// What a device answered is written in its protocol's terms.
		{"baseline:\n  conversations:\n    - src: 10.0.0.1\n      dst: 10.0.0.2\n      proto: dnp3\n      answered: {coils: 1}\n      reported:\n        - {points: 1}\n",
			"b.yaml:6:7: baseline.conversations[0].answered: answered is a Modbus field: it needs proto: modbus\n" +
				"b.yaml:8:11: baseline.conversations[0].reported[0].group: missing: give the group, like 12/1"},
		{"baseline:\n  conversations:\n    - src: 10.0.0.1\n      dst: 10.0.0.2\n      proto: modbus\n      answered: {coils: \"9-1\"}\n      reported: [{group: 1}]\n",
			"b.yaml:6:25: baseline.conversations[0].answered.coils: \"9-1\" is an empty range: 9 is above 1\n" +
				"b.yaml:7:7: baseline.conversations[0].reported: reported is a DNP3 field: it needs proto: dnp3"},
	} {
		_, err := Parse([]byte(c.yaml), "b.yaml")
		if err == nil || err.Error() != c.want {
			t.Errorf("got\n%v\nwant\n%s", err, c.want)
		}
	}
}

// TestBaselineValueFields: each field of a value range that is wrong is
// reported at its value, under its own path, whether or not its path
// was made before the error (scalarAt, numberAt, floatAt).
func TestBaselineValueFields(t *testing.T) {
	const in = `version: 1
baseline:
  conversations:
    - src: 10.0.0.1
      dst: 10.0.0.2
      proto: modbus
      values:
        - {table: [coils], addr: 1, min: 0, max: 1}
        - {table: registers, addr: 1, min: 0, max: 1}
        - {table: coils, addr: 70000, min: 0, max: 1}
        - {table: coils, addr: -1, min: 0, max: 1}
        - {table: coils, addr: {a: 1}, min: 0, max: 1}
        - {table: coils, addr: 0x10, min: x, max: [1]}
        - {table: coils, addr: 1.5, min: 1e400, max: 0x1p3}
    - src: 10.0.0.1
      dst: 10.0.0.3
      proto: dnp3
      values:
        - {group: 300, point: 5000000000, min: 0, max: 1}
        - {group: ab, point: [1], min: 0, max: 1}
        - {group: 30, point: 1, min: .inf, max: -5}
`
	want := strings.Join([]string{
		"b.yaml:8:19: baseline.conversations[0].values[0].table: expected a Modbus table, found a list",
		"b.yaml:9:19: baseline.conversations[0].values[1].table: \"registers\" is not a Modbus table (expected coils, discrete_inputs, input_registers or holding_registers)",
		"b.yaml:10:32: baseline.conversations[0].values[2].addr: \"70000\" is out of range (0-65535)",
		"b.yaml:11:32: baseline.conversations[0].values[3].addr: \"-1\" is not a whole number from 0 to 65535",
		"b.yaml:12:32: baseline.conversations[0].values[4].addr: expected an address, found a map",
		"b.yaml:13:43: baseline.conversations[0].values[5].min: \"x\" is not a number",
		"b.yaml:13:51: baseline.conversations[0].values[5].max: expected a number, found a list",
		"b.yaml:14:32: baseline.conversations[0].values[6].addr: \"1.5\" is not a whole number from 0 to 65535",
		"b.yaml:14:42: baseline.conversations[0].values[6].min: \"1e400\" is not a number",
		"b.yaml:19:19: baseline.conversations[1].values[0].group: \"300\" is out of range (0-255)",
		"b.yaml:19:31: baseline.conversations[1].values[0].point: \"5000000000\" is out of range (0-4294967295)",
		"b.yaml:20:19: baseline.conversations[1].values[1].group: \"ab\" is not a number",
		"b.yaml:20:30: baseline.conversations[1].values[1].point: expected an address, found a list",
		"b.yaml:21:38: baseline.conversations[1].values[2].min: min +Inf is above max -5",
	}, "\n")
	_, err := Parse([]byte(in), "b.yaml")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

// TestNetworkSection: the network section reads back as written, names
// hosts by their assets, and reports each bad field where it is.
func TestNetworkSection(t *testing.T) {
	const in = `assets:
  plc1: {ip: 10.10.1.20}
  hmi: {ip: 10.10.1.10}
baseline:
  conversations: []
  network:
    hosts:
      - {host: plc1, mac: "02:00:00:00:00:14"}
      - {host: 10.10.1.30, mac: ["02:00:00:00:00:1e", "02:00:00:00:01:1e"]}
    links:
      - {src: hmi, dst: plc1, port: tcp/502, service: modbus}
      - {src: hmi, dst: 10.10.1.255, port: udp/137, service: netbios}
      - {src: hmi, dst: plc1, port: tcp/4444}
`
	p, err := Parse([]byte(in), "n.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := p.Baseline
	if !b.Network || len(b.Hosts) != 2 || len(b.Hosts[1].MACs) != 2 || len(b.Links) != 3 {
		t.Fatalf("network %v, hosts %+v, links %+v", b.Network, b.Hosts, b.Links)
	}
	if l := b.Links[1]; !l.UDP || l.Port != 137 || l.Service.String() != "netbios" || l.Dst.String() != "10.10.1.255" {
		t.Errorf("link %+v", l)
	}
	var out strings.Builder
	p.Format(&out)
	for _, w := range []string{
		`      - {host: plc1, mac: "02:00:00:00:00:14"}`,
		`      - {host: 10.10.1.30, mac: ["02:00:00:00:00:1e", "02:00:00:00:01:1e"]}`,
		`      - {src: hmi, dst: plc1, port: tcp/502, service: modbus}`,
		`      - {src: hmi, dst: plc1, port: tcp/4444}`,
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("formatted policy lacks %q:\n%s", w, out.String())
		}
	}
	q, err := Parse([]byte(out.String()), "again.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var again strings.Builder
	q.Format(&again)
	if again.String() != out.String() {
		t.Errorf("not stable:\n%s\n---\n%s", out.String(), again.String())
	}
	// No network key: nothing was learned of the network.
	if p, err := Parse([]byte("baseline: {conversations: []}"), "old.yaml"); err != nil || p.Baseline.Network {
		t.Errorf("a baseline without a network section: %v, network %v", err, p.Baseline.Network)
	}

	for _, c := range []struct{ yaml, want string }{
		{"baseline:\n  network:\n    links:\n      - {src: 10.0.0.1, dst: 10.0.0.2, port: 502}\n", `n.yaml:4:46: baseline.network.links[0].port: "502" is not a port like tcp/502 or udp/123`},
		{"baseline:\n  network:\n    links:\n      - {src: 10.0.0.1, dst: 10.0.0.2, port: tcp/502, service: modbsu}\n", `baseline.network.links[0].service: "modbsu" is not a service (did you mean modbus?)`},
		{"baseline:\n  network:\n    links:\n      - {src: 10.0.0.1, port: tcp/502}\n", "baseline.network.links[0].dst: missing: a link needs src (the client), dst (the server) and port"},
		{"baseline:\n  network:\n    links:\n      - {src: 10.0.0.1, dst: 10.0.0.2, port: tcp/502}\n      - {src: 10.0.0.1, dst: 10.0.0.2, port: tcp/502, service: modbus}\n", "the same link as baseline.network.links[0]"},
		{"baseline:\n  network:\n    hosts:\n      - {host: 10.0.0.1, mac: 02:00:00:00:00}\n", `baseline.network.hosts[0].mac[0]: "02:00:00:00:00" is not a MAC address`},
		{"baseline:\n  network:\n    hosts:\n      - {host: 10.0.0.1}\n", "baseline.network.hosts[0].mac: missing"},
		{"baseline:\n  network:\n    hosts:\n      - {host: 10.0.0.1, mac: \"02:00:00:00:00:01\"}\n      - {host: 10.0.0.1, mac: \"02:00:00:00:00:02\"}\n", "the same host as baseline.network.hosts[0]"},
		{"baseline:\n  network:\n    gateways: []\n", `baseline.network: unknown field "gateways" (expected hosts or links)`},
	} {
		_, err := Parse([]byte(c.yaml), "n.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.yaml, err, c.want)
		}
	}
}

// TestLinkRules: a rule with service or port is about links; it reads and
// formats back, and fields of messages, rates and values are refused
// with it.
func TestLinkRules(t *testing.T) {
	const in = `assets:
  hmi: {ip: 10.10.1.10}
  eng: {ip: 10.10.1.30}
  plcs: {cidr: 10.10.2.0/24}
rules:
  - id: only-hmi-and-eng-to-plcs
    when: {dst: plcs, service: any}
    unless: {src: [hmi, eng]}
  - id: no-smb-to-plcs
    when: {dst: plcs, service: [smb, netbios_ssn], port: [tcp/445, tcp/139]}
`
	p, err := Parse([]byte(in), "l.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if w := p.Rules[0].When; !w.Link() || !w.AnyService || p.Rules[0].Unless[0].Link() {
		t.Errorf("rule 0: %+v", p.Rules[0])
	}
	if w := p.Rules[1].When; len(w.Services) != 2 || len(w.Ports) != 2 || w.Ports[1] != (Port{Port: 139}) {
		t.Errorf("rule 1: %+v", w)
	}
	var out strings.Builder
	p.Format(&out)
	for _, w := range []string{"when: {dst: plcs, service: any}", "when: {dst: plcs, service: [smb, netbios_ssn], port: [tcp/445, tcp/139]}"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("formatted policy lacks %q:\n%s", w, out.String())
		}
	}
	if _, err := Parse([]byte(out.String()), "again.yaml"); err != nil {
		t.Errorf("does not read back: %v", err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"rules:\n  - id: x\n    when: {service: smb, fc: 5}\n", "fc is a field of messages, but service and port make this a match of links"},
		{"rules:\n  - id: x\n    when: {service: smbb}\n", `"smbb" is not a service (did you mean smb?)`},
		{"rules:\n  - id: x\n    when: {port: 445}\n", `"445" is not a port like tcp/502 or udp/123`},
		{"rules:\n  - id: x\n    when: {service: rdp}\n    rate: {max: 1, per: 1s}\n", "a rule about links (service, port) fires once per flow: it takes no rate or value"},
		{"rules:\n  - id: x\n    when: {service: rdp}\n    unless: {proto: modbus}\n", "matches messages, but the rule's when matches links (service, port): it can never apply"},
		{"rules:\n  - id: x\n    when: {proto: modbus}\n    unless: {service: rdp}\n", "matches links (service, port), but the rule's when matches messages: it can never apply"},
	} {
		_, err := Parse([]byte(c.yaml), "l.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.yaml, err, c.want)
		}
	}
}
