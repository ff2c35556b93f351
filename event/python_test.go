package event

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// debianPython is Debian's interpreter, the one python3-msgpack installs
// msgpack for.
const debianPython = "/usr/bin/python3"

// pythonWithMsgpack returns a python3 that can import msgpack. Debian's
// /usr/bin/python3 comes first: the python3 first on PATH may be another
// one (pyenv's, a virtualenv's) that lacks Debian's python3-msgpack.
func pythonWithMsgpack(t *testing.T) string {
	t.Helper()
	hasMsgpack := func(py string) bool { return exec.Command(py, "-c", "import msgpack").Run() == nil }
	if hasMsgpack(debianPython) {
		return debianPython
	}
	py := testenv.Tool(t, "python3", "python3")
	if py != debianPython && hasMsgpack(py) {
		return py
	}
	why := py + " cannot import msgpack"
	if _, err := os.Stat(debianPython); err == nil && py != debianPython {
		why = "neither " + debianPython + " nor " + py + " can import msgpack"
	}
	testenv.Need(t, false, why+"; install it with: apt-get install python3-msgpack")
	return ""
}

// TestPythonConsumer: the example consumer (testdata/consume.py, shown in
// docs/events.md) decodes every kind of message with Debian's
// python3-msgpack, with the field names and types the documentation
// gives: times as datetime, numbers as int or float, evidence as bytes.
func TestPythonConsumer(t *testing.T) {
	py := pythonWithMsgpack(t)
	dir := t.TempDir()
	msgs := []struct {
		file string
		msg  message
		want map[string]string // field → Python type name
	}{
		{"alert-modbus.msgpack", sampleAlert(), map[string]string{
			"v": "int", "kind": "str", "sensor": "str", "site": "str", "seq": "int", "ts": "datetime",
			"id": "int", "rule": "str", "severity": "str", "category": "str", "title": "str",
			"attack": "list", "attack[]": "str", "proto": "str", "transport": "str",
			"src": "dict", "src.ip": "str", "src.port": "int", "src.mac": "str",
			"dst": "dict", "dst.ip": "str", "dst.port": "int", "vlan": "int",
			"unit": "int", "fc": "int", "fc_name": "str", "addr": "dict", "addr.lo": "int", "addr.hi": "int",
			"values": "list", "values[]": "float", "expected": "str",
			"count": "int", "first": "datetime", "last": "datetime", "frame": "int", "evidence": "bytes",
		}},
		{"alert-dnp3.msgpack", sampleDNP3Alert(), map[string]string{
			"v": "int", "kind": "str", "sensor": "str", "site": "str", "seq": "int", "ts": "datetime",
			"id": "int", "rule": "str", "severity": "str", "category": "str", "title": "str",
			"attack": "list", "attack[]": "str", "proto": "str",
			"src": "dict", "src.ip": "str", "src.port": "int", "dst": "dict", "dst.ip": "str", "dst.port": "int",
			"dnp3_src": "int", "dnp3_dst": "int", "fc": "int", "fc_name": "str",
			"count": "int", "first": "datetime", "last": "datetime", "evidence": "bytes",
		}},
		{"status.msgpack", sampleStatus(), map[string]string{
			"v": "int", "kind": "str", "sensor": "str", "site": "str", "seq": "int", "ts": "datetime",
			"state": "str", "version": "str", "uptime": "float", "mode": "str",
			"links": "list", "links[]": "dict", "links[].iface": "str", "links[].state": "str", "links[].drops": "int",
			"uplink": "str", "reason": "str", "spool_depth": "int", "spool_bytes": "int", "spool_drops": "int",
			"unacked": "dict", "unacked.info": "int", "unacked.low": "int", "unacked.medium": "int",
			"unacked.high": "int", "unacked.critical": "int",
		}},
		{"asset.msgpack", sampleAsset(), map[string]string{
			"v": "int", "kind": "str", "sensor": "str", "site": "str", "seq": "int", "ts": "datetime",
			"ip": "str", "mac": "str", "roles": "list", "roles[]": "str", "protocols": "list", "protocols[]": "str",
			"modbus_units": "list", "modbus_units[]": "int", "first_seen": "datetime", "last_seen": "datetime",
			"vendor": "str", "product": "str", "revision": "str",
		}},
		{"stats.msgpack", sampleStats(), map[string]string{
			"v": "int", "kind": "str", "sensor": "str", "site": "str", "seq": "int", "ts": "datetime",
			"uptime": "float", "packets": "int", "bytes": "int", "kernel_drops": "int",
			"decode_errors": "dict", "decode_errors.modbus": "int", "decode_errors.dnp3": "int",
			"messages": "dict", "messages.modbus": "int", "messages.dnp3": "int",
			"flows": "int", "flows_created": "int", "flows_evicted": "int", "reassembly_bytes": "int",
			"alerts": "dict", "alerts.info": "int", "alerts.low": "int", "alerts.medium": "int",
			"alerts.high": "int", "alerts.critical": "int",
			"suppressed": "int", "spool_depth": "int", "spool_drops": "int", "mem_bytes": "int", "cpu_temp": "float", "interval": "float",
		}},
	}
	// The same Modbus alert from a newer sensor, with fields this
	// version does not know (of every msgpack type, an extension among
	// them): the known fields decode the same, the others are extra.
	newer := map[string]string{}
	maps.Copy(newer, msgs[0].want)
	for k, v := range map[string]string{
		"zone": "str", "context": "dict", "context.n": "int", "context.inner": "dict", "context.inner.ok": "bool",
		"context.list": "list", "context.list[]": "int|str", "tags": "list", "tags[]": "NoneType|float|int|list|str",
		"acked_at": "datetime", "blob": "bytes", "note": "NoneType", "score": "float", "flag": "bool",
		"offset": "int", "big": "int", "custom": "ExtType", "long": "str", "series": "list", "series[]": "int",
		"src.vendor_oui": "str", "src.hostname": "dict", "src.hostname.dns": "list", "src.hostname.dns[]": "str",
		"addr.table": "str",
	} {
		newer[k] = v
	}
	msgs = append(msgs, struct {
		file string
		msg  message
		want map[string]string
	}{"alert-newer.msgpack", nil, newer})

	var files []string
	for _, m := range msgs {
		var b []byte
		var err error
		if m.msg != nil {
			b, err = m.msg.MarshalMsg(nil)
		} else {
			b = newerAlert()
		}
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, m.file)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	script := filepath.Join("testdata", "consume.py")
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(py, append([]string{script}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("%s %s: %v\n%s", py, script, err, stderr.String())
		}
		return out
	}

	// Field names and types.
	out := run(append([]string{"--types"}, files...)...)
	sc := bufio.NewScanner(bytes.NewReader(out))
	i := 0
	for sc.Scan() {
		var line struct {
			File   string            `json:"file"`
			Fields map[string]string `json:"fields"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		if i >= len(msgs) {
			t.Fatalf("more lines than messages: %s", sc.Bytes())
		}
		m := msgs[i]
		i++
		if filepath.Base(line.File) != m.file {
			t.Errorf("line %d is about %s, want %s", i, line.File, m.file)
		}
		for _, k := range slices.Sorted(maps.Keys(m.want)) {
			if got, ok := line.Fields[k]; !ok {
				t.Errorf("%s: %s missing", m.file, k)
			} else if got != m.want[k] {
				t.Errorf("%s: %s is a Python %s, want %s", m.file, k, got, m.want[k])
			}
		}
		for _, k := range slices.Sorted(maps.Keys(line.Fields)) {
			if _, ok := m.want[k]; !ok {
				t.Errorf("%s: unexpected field %s (%s)", m.file, k, line.Fields[k])
			}
		}
	}
	if i != len(msgs) {
		t.Errorf("%d lines for %d messages:\n%s", i, len(msgs), out)
	}

	// Values, as the example prints them.
	out = run(files[0], files[3], files[5])
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines:\n%s", out)
	}
	var alert, asset map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &alert); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &asset); err != nil {
		t.Fatal(err)
	}
	a := sampleAlert()
	for k, want := range map[string]any{
		"seq": float64(a.Seq), "id": float64(a.ID), "unit": float64(*a.Unit), "severity": a.Severity,
		"ts":       "2025-03-14T09:26:53.123456+00:00", // microseconds: Python's datetime cuts the nanoseconds
		"first":    "2025-03-14T09:25:23.123456+00:00",
		"evidence": "0110000500020401f4fffe",
	} {
		if alert[k] != want {
			t.Errorf("alert %s: %v, want %v", k, alert[k], want)
		}
	}
	if v, ok := alert["values"].([]any); !ok || len(v) != 2 || v[0] != 500.0 || v[1] != -1.5 {
		t.Errorf("alert values: %v", alert["values"])
	}
	if src, ok := alert["src"].(map[string]any); !ok || src["ip"] != "10.10.1.99" || src["port"] != 51000.0 {
		t.Errorf("alert src: %v", alert["src"])
	}
	var fromNewer map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &fromNewer); err != nil {
		t.Fatal(err)
	}
	for k, v := range alert {
		if !reflect.DeepEqual(fromNewer[k], v) && k != "src" && k != "addr" {
			t.Errorf("newer alert %s: %v, want %v", k, fromNewer[k], v)
		}
	}
	if c := fromNewer["custom"]; !reflect.DeepEqual(c, map[string]any{"ext": 42.0, "data": "6f7061717565"}) {
		t.Errorf("newer alert custom: %v", c)
	}
	if asset["vendor"] != "Schneider Electric" || asset["last_seen"] != "2025-03-14T09:26:53.123456+00:00" {
		t.Errorf("asset: %v", asset)
	}
}
