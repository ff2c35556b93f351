package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/uplink"
)

// TestReplayMQTT: replay --mqtt publishes what it prints, and tail
// prints the same alerts with the wire header and finds nothing missing.
func TestReplayMQTT(t *testing.T) {
	b, err := uplink.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	path := writeCapture(t, dir, "alerts.pcap", pcapgen.Options{}, buildAlerts)
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(alertPolicy), 0o644); err != nil {
		t.Fatal(err)
	}

	// 5 alert messages (3 alerts, 2 folded repeats), 3 assets (the HMI,
	// the rogue, the PLC: once, with the unit it answered for), the
	// status twice (connect, clean stop) and the stats: 11 messages, of
	// which 8 spooled.
	tailOut := make(chan result, 1)
	var tailStdout, tailStderr testenv.Buffer
	go func() {
		code := run([]string{"tail", "--broker", b.URL(), "--site", "plant1", "--count", "11"}, &tailStdout, &tailStderr)
		tailOut <- result{code, tailStdout.String(), tailStderr.String()}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !b.Subscribed("tapwatch-tail-") {
		if time.Now().After(deadline) {
			t.Fatal("tail did not subscribe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := tapwatch("replay", "--policy", pol, "--mqtt", b.URL(), "--site", "plant1", "--sensor", "tap1", "--state-dir", filepath.Join(dir, "state"), path)
	if r.code != 0 {
		t.Fatalf("replay --mqtt: %v", r)
	}
	var tr result
	select {
	case tr = <-tailOut:
	case <-time.After(20 * time.Second):
		t.Fatalf("tail did not get 11 messages:\n%s\n%s", tailStdout.String(), tailStderr.String())
	}
	if tr.code != 0 || !strings.Contains(tr.stderr, "plant1/tap1: 8 received (seq 1-8), 0 missing, 0 duplicates, 0 late") {
		t.Fatalf("tail: %v", tr)
	}
	kinds := map[string]int{}
	var alerts []map[string]any
	var alertLines []string
	for _, line := range strings.Split(strings.TrimSpace(tr.stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %s", line)
		}
		kinds[m["kind"].(string)]++
		if m["kind"] == "alert" {
			alerts = append(alerts, m)
			alertLines = append(alertLines, line)
		}
		if m["sensor"] != "tap1" || m["site"] != "plant1" || m["v"] != 1.0 {
			t.Errorf("header: %s", line)
		}
	}
	if kinds["alert"] != 5 || kinds["asset"] != 3 || kinds["status"] != 2 || kinds["stats"] != 1 {
		t.Errorf("kinds %v", kinds)
	}
	// The alerts are replay's, field for field, plus the header, and
	// their ids are wire ids (the seq of the first message).
	var printed []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		json.Unmarshal([]byte(line), &m)
		printed = append(printed, m)
	}
	if len(printed) != len(alerts) {
		t.Fatalf("replay printed %d alerts, tail %d", len(printed), len(alerts))
	}
	for i := range printed {
		for _, k := range []string{"rule", "severity", "category", "title", "attack", "proto", "src", "dst", "unit", "fc", "fc_name", "addr", "values", "expected", "count", "frame", "evidence"} {
			g, w := alerts[i][k], printed[i][k]
			if gj, _ := json.Marshal(g); string(gj) != mustJSON(w) {
				t.Errorf("alert %d field %s: tail %s, replay %s", i, k, gj, mustJSON(w))
			}
		}
	}
	// Byte for byte, but for what the publisher numbers and times (seq,
	// ts, id) and replay's "repeat".
	wireOwn := regexp.MustCompile(`"seq":\d+,"ts":"[^"]*","id":\d+(,"repeat":true)?`)
	for i, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		g, w := wireOwn.ReplaceAllString(alertLines[i], "…"), wireOwn.ReplaceAllString(line, "…")
		if g != w || !strings.Contains(g, `,"kind":"alert","sensor":"tap1","site":"plant1",…,"rule":`) {
			t.Errorf("alert %d:\ntail   %s\nreplay %s", i, alertLines[i], line)
		}
	}
	if alerts[3]["id"] != alerts[0]["id"] || alerts[3]["count"] != 2.0 {
		t.Errorf("the folded repeat does not carry its alert's id: %v %v", alerts[0]["id"], alerts[3]["id"])
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestReplayMQTTErrors(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "alerts.pcap", pcapgen.Options{}, buildAlerts)
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--mqtt", "tcp://10.9.9.9:1883"}, 2, "plaintext MQTT to another host"},
		{[]string{"--mqtt", "ftp://127.0.0.1:1883"}, 2, `scheme "ftp"`},
		{[]string{"--mqtt", "tcp://127.0.0.1:1883", "--sensor", "a/b"}, 2, "uplink.sensor"},
		{[]string{"--mqtt", "ssl://127.0.0.1:8883", "--mqtt-ca", filepath.Join(dir, "none.pem")}, 1, "none.pem"},
	} {
		r := tapwatch(append(append([]string{"replay", "--state-dir", state}, tc.args...), path)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: want exit %d and %q, got %v", tc.args, tc.code, tc.want, r)
		}
	}
	// Nobody listens: the alerts stay in the spool, and the exit status
	// says so.
	b, err := uplink.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := b.URL()
	b.Close()
	r := tapwatch("replay", "--state-dir", state, "--sensor", "s1", "--mqtt", url, "--mqtt-wait", "300ms", path)
	if r.code != 1 || !strings.Contains(r.stderr, "stay in the spool") || !strings.Contains(r.stderr, filepath.Join(state, "s1")) {
		t.Errorf("unreachable broker: %v", r)
	}
}
