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
	} {
		_, err := Parse([]byte(c.yaml), "b.yaml")
		if err == nil || err.Error() != c.want {
			t.Errorf("got\n%v\nwant\n%s", err, c.want)
		}
	}
}
