package benchtool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// fakeEnv makes the test binary act as the children Run starts: tapbench
// itself ("floor FILE") or tapwatch ("replay --json FILE"), or fail.
const fakeEnv = "TAPBENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeEnv) {
	case "":
		os.Exit(m.Run())
	case "fail":
		fmt.Fprintln(os.Stderr, "fake child: bad capture")
		os.Exit(3)
	}
	args := os.Args[1:]
	if len(args) == 3 && args[0] == "replay" && args[1] == "--json" {
		r, err := FloorFile(args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// Like tapwatch: other output first, the summary object last.
		fmt.Println(`{"alert":"not a summary"}`)
		fmt.Printf("{\"packets\": %d, \"seconds\": %g, \"alerts\": 0}\n", r.Packets, r.Seconds)
		os.Exit(0)
	}
	os.Exit(Main(args, os.Stdout, os.Stderr))
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7, 7, 1, 100, 7}, 7},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("Median reordered its input to %v", in)
			}
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestParseResult(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      Result
		wantErr   bool
	}{
		{"floor", `{"packets":1000,"seconds":0.5,"pps":2000,"payload_bytes":77}` + "\n",
			Result{Packets: 1000, Seconds: 0.5, PPS: 2000, PayloadBytes: 77}, false},
		{"tapwatch with extra fields", `{"seconds":2,"packets":10,"alerts":{"high":1},"version":"1.0"}`,
			Result{Packets: 10, Seconds: 2, PPS: 5}, false},
		{"last summary wins over earlier lines", "starting\n{\"rule\":\"x\"}\n{\"packets\":4,\"seconds\":1}\n\n",
			Result{Packets: 4, Seconds: 1, PPS: 4}, false},
		{"packets written as a float", `{"packets":3e3,"seconds":1.5}`,
			Result{Packets: 3000, Seconds: 1.5, PPS: 2000}, false},
		{"zero seconds", `{"packets":0,"seconds":0}`, Result{}, false},
		{"no seconds", `{"packets":10}`, Result{}, true},
		{"not JSON", "10 packets in 1s\n", Result{}, true},
		{"empty", "", Result{}, true},
		{"negative", `{"packets":-1,"seconds":1}`, Result{}, true},
		{"string packets", `{"packets":"10","seconds":1}`, Result{}, true},
	} {
		got, err := ParseResult([]byte(tc.out))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: ParseResult = %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestFormat(t *testing.T) {
	for got, want := range map[string]string{
		FormatRate(6_840_000): "6.84M", FormatRate(12_345): "12.3k", FormatRate(12): "12", FormatRate(math.NaN()): "-",
		FormatBytes(0): "-", FormatBytes(2048): "2.0 KiB", FormatBytes(15 << 20): "15.0 MiB", FormatBytes(3 << 30): "3.00 GiB",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestFloor checks the floor's counts against a conversation of known size
// in every link type and format it reads.
func TestFloor(t *testing.T) {
	for _, link := range []pcapgen.Link{pcapgen.LinkEthernet, pcapgen.LinkVLAN, pcapgen.LinkQinQ, pcapgen.LinkNull, pcapgen.LinkSLL} {
		for _, ng := range []bool{false, true} {
			var buf bytes.Buffer
			w, err := pcapgen.NewWriter(&buf, pcapgen.Options{Link: link, PcapNG: ng})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := pcapgen.NewTCPConn(w, pcapgen.Endpoint{IP: mustAddr("10.0.0.1"), Port: 1}, pcapgen.Endpoint{IP: mustAddr("10.0.0.2"), Port: 502}, 0, 0)
			c6, _ := pcapgen.NewTCPConn(w, pcapgen.Endpoint{IP: mustAddr("fd00::1"), Port: 1}, pcapgen.Endpoint{IP: mustAddr("fd00::2"), Port: 502}, 0, 0)
			u, _ := pcapgen.NewUDP(w, pcapgen.Endpoint{IP: mustAddr("10.0.0.1"), Port: 1}, pcapgen.Endpoint{IP: mustAddr("10.0.0.2"), Port: 502})
			c.Handshake()                                 // 3 packets, no payload
			c.Client(make([]byte, 100), pcapgen.Split(4)) // 4 packets, 100 bytes
			c6.Server(make([]byte, 1000))                 // 1 packet, 1000 bytes
			u.Send(make([]byte, 50))                      // 1 packet, UDP payload is not counted
			c.Close()                                     // 3 packets
			w.Flush()
			r, err := Floor(&buf)
			if err != nil {
				t.Fatalf("%v pcapng=%v: %v", link, ng, err)
			}
			if r.Packets != 12 || r.PayloadBytes != 1100 || r.Seconds <= 0 || r.PPS <= 0 {
				t.Errorf("%v pcapng=%v: %+v; want 12 packets, 1100 payload bytes", link, ng, r)
			}
		}
	}
	var buf bytes.Buffer
	w, _ := pcapgen.NewWriter(&buf, pcapgen.Options{Link: pcapgen.LinkRaw})
	w.Flush()
	if _, err := Floor(&buf); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("Floor on a raw-IP capture: %v, want a not-supported error", err)
	}
	if _, err := Floor(strings.NewReader("not a capture")); err == nil {
		t.Error("Floor on garbage succeeded")
	}
}

// TestRun runs the whole benchmark with this test binary standing in for
// both tapbench and tapwatch, so the child-process path is exercised.
func TestRun(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeEnv, "1")
	tmp := t.TempDir()
	var log bytes.Buffer
	rep, err := Run(context.Background(), Config{Packets: 4000, Rounds: 2, Self: self, Tapwatch: self, TempDir: tmp, Log: &log})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if len(rep.Full.Floor) != 2 || len(rep.Full.Tapwatch) != 2 || len(rep.Quarter.Floor) != 1 || len(rep.Quarter.Tapwatch) != 1 {
		t.Fatalf("rounds: %+v", rep)
	}
	if rep.Full.Packets < 4000 || rep.Quarter.Packets < 1000 || rep.Quarter.Packets > 2000 || rep.Full.Bytes <= 0 {
		t.Errorf("captures: full %d packets %d bytes, quarter %d packets", rep.Full.Packets, rep.Full.Bytes, rep.Quarter.Packets)
	}
	for _, m := range append(rep.Full.Floor, rep.Full.Tapwatch...) {
		if m.Packets != int64(rep.Full.Packets) || m.Wall <= 0 || m.MaxRSS <= 0 {
			t.Errorf("measurement %+v: want %d packets, wall time and RSS", m, rep.Full.Packets)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("Run left %v in its temporary directory", entries)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"packets/s (wall time)", "tapwatch/floor", fmt.Sprintf("peak RSS, %d packets", rep.Quarter.Packets), "full / quarter"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if strings.Contains(table.String(), "warning") {
		t.Errorf("packet counts disagree:\n%s", table.String())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}

	// Floor only.
	rep, err = Run(context.Background(), Config{Packets: 400, Rounds: 1, Self: self, TempDir: tmp})
	if err != nil || len(rep.Full.Tapwatch) != 0 || len(rep.Full.Floor) != 1 {
		t.Fatalf("floor only: %+v, %v", rep, err)
	}
	table.Reset()
	rep.WriteTable(&table)
	if !strings.Contains(table.String(), "-") {
		t.Errorf("floor-only table:\n%s", table.String())
	}

	// A failing child is reported with its stderr.
	t.Setenv(fakeEnv, "fail")
	_, err = Run(context.Background(), Config{Packets: 400, Rounds: 1, Self: self, TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "bad capture") {
		t.Errorf("failing child: %v", err)
	}
}

func TestMainCommands(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plant.pcap")
	var out, errb bytes.Buffer
	if code := Main([]string{"gen", "-n", "500", "-o", file}, &out, &errb); code != 0 {
		t.Fatalf("gen: exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := Main([]string{"floor", file, file}, &out, &errb); code != 0 {
		t.Fatalf("floor: exit %d: %s", code, errb.String())
	}
	r, err := ParseResult(out.Bytes())
	if err != nil || r.Packets < 1000 || r.PayloadBytes <= 0 {
		t.Errorf("floor over two files: %+v, %v from %s", r, err, out.String())
	}
	for _, args := range [][]string{nil, {"bogus"}, {"gen"}, {"floor"}, {"run", "-rounds", "x"}, {"run", "extra"}} {
		if code := Main(args, &out, &errb); code != 2 {
			t.Errorf("Main(%q) = %d, want 2", args, code)
		}
	}
	if code := Main([]string{"floor", filepath.Join(dir, "missing.pcap")}, &out, &errb); code != 1 {
		t.Errorf("floor on a missing file: exit %d, want 1", code)
	}
}
