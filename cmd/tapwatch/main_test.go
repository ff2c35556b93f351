package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// result is what one run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// tapwatch runs the command line in-process.
func tapwatch(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// The hosts of the generated captures.
var (
	plc   = pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x20}, IP: netip.MustParseAddr("10.10.1.20"), Port: 502}
	hmi   = pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, IP: netip.MustParseAddr("10.10.1.10"), Port: 50000}
	scada = pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x30}, IP: netip.MustParseAddr("10.10.1.30"), Port: 40000}
)

// writeCapture writes a capture built by build to dir/name and returns its
// path.
func writeCapture(t *testing.T, dir, name string, opts pcapgen.Options, build func(*pcapgen.Writer) error) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgen.NewWriter(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := build(w); err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// step keeps the first error of a capture script's calls, so that a script
// can be written as a list of calls and checked once at the end.
type step struct{ err error }

func (s *step) frames(_ []int, err error) {
	if s.err == nil {
		s.err = err
	}
}

func (s *step) frame(_ int, err error) {
	if s.err == nil {
		s.err = err
	}
}

// Hand-built PDUs for the functions pcapgen has no builder for (MODBUS
// Application Protocol Specification V1.1b3).
var (
	// FC 8 Diagnostics, sub-function 0x0000 Return Query Data with the
	// data word 0xA537; the normal response echoes the request (§6.8.1).
	diagReturnQueryData = []byte{0x08, 0x00, 0x00, 0xA5, 0x37}

	// FC 43 Encapsulated Interface Transport, MEI type 0x0E Read Device
	// Identification (§6.21): read device id code 0x01 (basic stream),
	// object id 0x00 (VendorName).
	readDeviceIDRequest = []byte{0x2B, 0x0E, 0x01, 0x00}

	// Its response: MEI 0x0E, read device id code 0x01, conformity level
	// 0x01 (basic identification, stream access only), more follows 0x00,
	// next object id 0x00, number of objects 3, then each object as id,
	// length, value: VendorName "Tapwatch", ProductCode "TW-1",
	// MajorMinorRevision "1.0".
	readDeviceIDResponse = []byte{
		0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x03,
		0x00, 0x08, 'T', 'a', 'p', 'w', 'a', 't', 'c', 'h',
		0x01, 0x04, 'T', 'W', '-', '1',
		0x02, 0x03, '1', '.', '0',
	}
)

// buildOps writes the capture of the operations-log test. Frames:
//
//	1-3   TCP handshake hmi → plc:502
//	4/5   FC 3 read 2 holding registers at 0 → 10, 20 (1.5 ms later)
//	6/7   FC 16 write 1, 2, 3 at 100 → address 100, quantity 3
//	8/9   FC 3 read at 9000 → exception 2 illegal data address
//	10/11 FC 8 diagnostics return query data 0xA537 → echo
//	12/13 FC 43/14 read device identification → 3 objects
//	14/15 FC 3 read of 0 registers (malformed: bad quantity) → exception 3
//	16-18 FIN, FIN, ACK
//	19/20 Modbus over UDP: scada → plc:502 FC 4 read 1 input register at 7 → 1234
func buildOps(w *pcapgen.Writer) error {
	c, err := pcapgen.NewTCPConn(w, hmi, plc, 1000, 5000)
	if err != nil {
		return err
	}
	s := &step{}
	s.frames(c.Handshake())
	s.frames(c.Client(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegisters(0, 2))))
	w.Advance(1500 * time.Microsecond)
	s.frames(c.Server(pcapgen.MBAP(1, 1, pcapgen.ReadHoldingRegistersResponse(10, 20))))
	s.frames(c.Client(pcapgen.MBAP(2, 1, pcapgen.WriteMultipleRegisters(100, 1, 2, 3))))
	s.frames(c.Server(pcapgen.MBAP(2, 1, pcapgen.WriteMultipleRegistersResponse(100, 3))))
	s.frames(c.Client(pcapgen.MBAP(3, 1, pcapgen.ReadHoldingRegisters(9000, 1))))
	s.frames(c.Server(pcapgen.MBAP(3, 1, pcapgen.ExceptionResponse(pcapgen.FCReadHoldingRegisters, pcapgen.ExIllegalDataAddress))))
	s.frames(c.Client(pcapgen.MBAP(4, 1, diagReturnQueryData)))
	s.frames(c.Server(pcapgen.MBAP(4, 1, diagReturnQueryData)))
	s.frames(c.Client(pcapgen.MBAP(5, 1, readDeviceIDRequest)))
	s.frames(c.Server(pcapgen.MBAP(5, 1, readDeviceIDResponse)))
	s.frames(c.Client(pcapgen.MBAP(6, 1, pcapgen.ReadHoldingRegisters(0, 0))))
	s.frames(c.Server(pcapgen.MBAP(6, 1, pcapgen.ExceptionResponse(pcapgen.FCReadHoldingRegisters, pcapgen.ExIllegalDataValue))))
	s.frames(c.Close())
	if s.err != nil {
		return s.err
	}
	u, err := pcapgen.NewUDP(w, scada, plc)
	if err != nil {
		return err
	}
	s.frame(u.Send(pcapgen.MBAP(7, 2, pcapgen.ReadInputRegisters(7, 1))))
	s.frame(u.Reply(pcapgen.MBAP(7, 2, pcapgen.RegistersResponse(pcapgen.FCReadInputRegisters, 1234))))
	return s.err
}

// buildPoll writes one short connection from client port port: handshake
// (frames 1-3), an FC 6 write and its echo (4, 5), an FC 3 read and its
// response (6, 7), and the close (8-10).
func buildPoll(port uint16) func(*pcapgen.Writer) error {
	return func(w *pcapgen.Writer) error {
		client := hmi
		client.Port = port
		c, err := pcapgen.NewTCPConn(w, client, plc, uint32(port)<<8, 7000)
		if err != nil {
			return err
		}
		s := &step{}
		s.frames(c.Handshake())
		s.frames(c.Client(pcapgen.MBAP(port, 1, pcapgen.WriteSingleRegister(40, port))))
		s.frames(c.Server(pcapgen.MBAP(port, 1, pcapgen.WriteSingleRegister(40, port))))
		s.frames(c.Client(pcapgen.MBAP(port+1, 1, pcapgen.ReadHoldingRegisters(40, 1))))
		s.frames(c.Server(pcapgen.MBAP(port+1, 1, pcapgen.ReadHoldingRegistersResponse(port))))
		s.frames(c.Close())
		return s.err
	}
}

// frameTimes reads a pcap file back with pcapgo and returns the timestamp
// of every frame, index 0 for frame 1.
func frameTimes(t *testing.T, path string) []time.Time {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var ts []time.Time
	for {
		_, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return ts
		}
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, ci.Timestamp)
	}
}

// fieldKind is the JSON type docs/ops-log.md gives a field.
type fieldKind int

const (
	kString  fieldKind = iota
	kUint              // a non-negative integer
	kInt               // an integer
	kTrue              // the literal true
	kValues            // an array of integers 0-65535
	kRecords           // an array of {file, record, length}
	kObjects           // an array of {id, name, value}
)

// opsFields is the field table of docs/ops-log.md.
var opsFields = map[string]fieldKind{
	"ts": kString, "frame": kUint, "proto": kString, "transport": kString,
	"src": kString, "sport": kUint, "dst": kString, "dport": kUint,
	"vlan": kUint, "dir": kString, "tid": kUint, "unit": kUint,
	"fc": kUint, "fc_name": kString, "exception": kUint, "exception_name": kString,
	"addr": kUint, "count": kUint, "values": kValues,
	"read_addr": kUint, "read_count": kUint, "and_mask": kUint, "or_mask": kUint,
	"records": kRecords, "sub": kUint, "sub_name": kString,
	"mei": kUint, "objects": kObjects, "request_frame": kUint, "latency_us": kInt,
	"orphan": kTrue, "unanswered": kTrue, "malformed": kString, "after_loss": kTrue,
}

// Fields that come together.
var opsPairs = [][2]string{
	{"exception", "exception_name"}, {"addr", "count"}, {"read_addr", "read_count"},
	{"and_mask", "or_mask"}, {"sub", "sub_name"}, {"request_frame", "latency_us"},
	{"fc", "fc_name"}, {"fc", "tid"}, {"fc", "unit"},
}

var malformedReasons = map[string]bool{
	"bad_protocol_id": true, "length_too_short": true, "length_too_long": true,
	"length_mismatch": true, "reserved_function": true, "unknown_function": true,
	"byte_count_mismatch": true, "bad_quantity": true, "bad_coil_value": true,
	"unknown_sub_function": true, "unknown_mei": true, "bad_exception_code": true,
	"truncated": true, "not_modbus": true,
}

// parseOps parses every line of an operations log and checks it against
// docs/ops-log.md. times holds the frame timestamps of the capture, or is
// nil when the log spans several files.
func parseOps(t *testing.T, out string, times []time.Time) []map[string]any {
	t.Helper()
	if out == "" {
		t.Fatal("empty operations log")
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("the operations log does not end with a newline")
	}
	var lines []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		n := i + 1
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", n, err, line)
		}
		if dec.More() {
			t.Fatalf("line %d holds more than one JSON value:\n%s", n, line)
		}
		checkOpsLine(t, n, line, m, times)
		lines = append(lines, m)
	}
	return lines
}

func checkOpsLine(t *testing.T, n int, line string, m map[string]any, times []time.Time) {
	t.Helper()
	bad := func(format string, a ...any) {
		t.Helper()
		t.Errorf("line %d: %s\n%s", n, fmt.Sprintf(format, a...), line)
	}
	for k, v := range m {
		kind, ok := opsFields[k]
		if !ok {
			bad("field %q is not in docs/ops-log.md", k)
			continue
		}
		switch kind {
		case kString:
			if _, ok := v.(string); !ok {
				bad("%s is %T, not a string", k, v)
			}
		case kUint, kInt:
			i, ok := asInt(v)
			switch {
			case !ok:
				bad("%s is %v (%T), not an integer", k, v, v)
			case kind == kUint && i < 0:
				bad("%s is negative", k)
			}
		case kTrue:
			if v != true {
				bad("%s is %v, only true is documented", k, v)
			}
		case kValues:
			a, ok := v.([]any)
			if !ok {
				bad("%s is %T, not an array", k, v)
				break
			}
			for _, e := range a {
				if i, ok := asInt(e); !ok || i < 0 || i > 65535 {
					bad("%s holds %v, not a number 0-65535", k, e)
				}
			}
		case kRecords, kObjects:
			keys := map[string]fieldKind{"file": kUint, "record": kUint, "length": kUint}
			if kind == kObjects {
				keys = map[string]fieldKind{"id": kUint, "name": kString, "value": kString}
			}
			a, ok := v.([]any)
			if !ok || len(a) == 0 {
				bad("%s is %v, not a non-empty array", k, v)
				break
			}
			for _, e := range a {
				o, ok := e.(map[string]any)
				if !ok || len(o) != len(keys) {
					bad("%s holds %v, want an object with %d fields", k, e, len(keys))
					continue
				}
				for ek, kind := range keys {
					if _, isStr := o[ek].(string); isStr != (kind == kString) {
						bad("%s holds %v: %s has the wrong type", k, e, ek)
					} else if i, ok := asInt(o[ek]); kind == kUint && (!ok || i < 0) {
						bad("%s holds %v: %s is not a non-negative integer", k, e, ek)
					}
				}
			}
		}
	}
	for _, k := range []string{"ts", "frame", "proto", "transport", "src", "sport", "dst", "dport", "dir"} {
		if _, ok := m[k]; !ok {
			bad("the always-present field %q is missing", k)
		}
	}
	for _, p := range opsPairs {
		if _, a := m[p[0]]; a != (m[p[1]] != nil) {
			bad("%q and %q must come together", p[0], p[1])
		}
	}
	if m["proto"] != "modbus" {
		bad("proto %v", m["proto"])
	}
	if tr := m["transport"]; tr != "tcp" && tr != "udp" {
		bad("transport %v", tr)
	}
	dir := m["dir"]
	if dir != "request" && dir != "response" {
		bad("dir %v", dir)
	}
	for _, k := range []string{"src", "dst"} {
		if s, _ := m[k].(string); !validAddr(s) {
			bad("%s %q is not an IP address", k, s)
		}
	}
	for _, k := range []string{"sport", "dport", "tid"} {
		if i, ok := asInt(m[k]); ok && i > 65535 {
			bad("%s %d is not 16 bits", k, i)
		}
	}
	if i, ok := asInt(m["unit"]); ok && i > 255 {
		bad("unit %d is not 8 bits", i)
	}
	// The Modbus port is the request's destination and the response's source.
	if p, _ := asInt(m["dport"]); dir == "request" && p != 502 {
		bad("request to port %d", p)
	}
	if p, _ := asInt(m["sport"]); dir == "response" && p != 502 {
		bad("response from port %d", p)
	}
	if fc, ok := asInt(m["fc"]); ok && fc > 127 {
		bad("fc %d has the exception bit", fc)
	}
	if r, ok := m["malformed"]; ok && !malformedReasons[r.(string)] {
		bad("malformed %q is not a documented reason", r)
	}
	if _, ok := m["after_loss"]; ok && m["malformed"] == nil {
		bad("after_loss on a message that is not malformed")
	}
	if _, ok := m["request_frame"]; ok && dir != "response" {
		bad("request_frame on a %v", dir)
	}
	if _, ok := m["orphan"]; ok && dir != "response" {
		bad("orphan on a %v", dir)
	}
	if _, ok := m["unanswered"]; ok && dir != "request" {
		bad("unanswered on a %v", dir)
	}
	_, exc := m["exception"]
	_, mal := m["malformed"]
	if fc, _ := asInt(m["fc"]); fc == 8 && !exc && !mal && m["sub"] == nil {
		bad("FC 8 without sub")
	}
	if fc, _ := asInt(m["fc"]); fc == 43 && !exc && !mal && m["mei"] == nil {
		bad("FC 43 without mei")
	}

	s, _ := m["ts"].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		bad("ts: %v", err)
		return
	}
	if !strings.HasSuffix(s, "Z") {
		bad("ts %q is not UTC", s)
	}
	if len(s) != len("2006-01-02T15:04:05.000000000Z") {
		bad("ts %q does not have nine digits of nanoseconds", s)
	}
	if times == nil {
		return
	}
	frame, _ := asInt(m["frame"])
	if frame < 1 || int(frame) > len(times) {
		bad("frame %d is not in the capture (%d frames)", frame, len(times))
		return
	}
	if want := times[frame-1]; !ts.Equal(want) {
		bad("ts %v is not the time of frame %d, %v", ts, frame, want)
	}
	if rf, ok := asInt(m["request_frame"]); ok {
		if rf < 1 || rf >= frame {
			bad("request_frame %d does not come before frame %d", rf, frame)
			return
		}
		lat, _ := asInt(m["latency_us"])
		if want := times[frame-1].Sub(times[rf-1]).Microseconds(); lat != want {
			bad("latency_us %d, want %d (frame %d - frame %d)", lat, want, frame, rf)
		}
	}
}

func validAddr(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.String() == s
}

// asInt converts a json.Number holding an integer.
func asInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// match reports the fields of want that line lacks or holds another value
// in; a nil in want means the field must be absent. Values are compared as
// JSON.
func match(line map[string]any, want map[string]any) []string {
	var diffs []string
	for k, w := range want {
		got, ok := line[k]
		if w == nil {
			if ok {
				diffs = append(diffs, fmt.Sprintf("%s: got %v, want none", k, got))
			}
			continue
		}
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %v", k, w))
			continue
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", k, gj, wj))
		}
	}
	return diffs
}

func TestNoArguments(t *testing.T) {
	r := tapwatch()
	if r.code != 2 || !strings.Contains(r.stderr, "Usage:") || r.stdout != "" {
		t.Errorf("want exit 2 and the usage on stderr, got %v", r)
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"--frobnicate"}, {"help", "frobnicate"}} {
		r := tapwatch(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "frobnicate") {
			t.Errorf("%q: want exit 2 naming the command on stderr, got %v", args, r)
		}
	}
}

// replayFlags are the flags of replay; every help must name them.
var replayFlags = []string{"--ops", "--json", "--modbus-ports", "--dnp3-ports", "--max-flows"}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"help"}, {"--help"}, {"-h"}, {"help", "help"}, {"--help", "--help"},
		{"help", "replay"}, {"replay", "--help"}, {"replay", "-h"}, {"replay", "f.pcap", "--help"},
	} {
		r := tapwatch(args...)
		if r.code != 0 {
			t.Errorf("%q: exit %d, want 0\n%v", args, r.code, r)
			continue
		}
		if r.stderr != "" {
			t.Errorf("%q: help asked for went to stderr:\n%s", args, r.stderr)
		}
		for _, f := range replayFlags {
			// The top-level usage writes --flag, the flag package's list -flag.
			if !strings.Contains(r.stdout, f) && !strings.Contains(r.stdout, " "+f[1:]+" ") {
				t.Errorf("%q: the help does not name %s:\n%s", args, f, r.stdout)
			}
		}
	}
	r := tapwatch("replay", "--help")
	for _, want := range []string{"Usage: tapwatch replay", "Options:", "-max-flows int", "(default 4096)", `(default "502")`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("replay --help lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		r := tapwatch(arg)
		if r.code != 0 || r.stdout != "tapwatch "+version+"\n" || r.stderr != "" {
			t.Errorf("%s: got %v", arg, r)
		}
	}
}

func TestReplayUsageErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeCapture(t, dir, "good.pcap", pcapgen.Options{}, buildPoll(50001))
	for _, tc := range []struct {
		args []string
		want []string // on stderr
	}{
		{[]string{"replay"}, []string{"at least one capture file"}},
		{[]string{"replay", "--ops"}, []string{"at least one capture file"}},
		{[]string{"replay", "--modbus-ports", "0", good}, []string{"--modbus-ports", `"0"`}},
		{[]string{"replay", "--modbus-ports", "70000", good}, []string{"--modbus-ports", `"70000"`}},
		{[]string{"replay", "--modbus-ports", "abc", good}, []string{"--modbus-ports", `"abc"`}},
		{[]string{"replay", "--modbus-ports=502,abc", good}, []string{"--modbus-ports", `"abc"`}},
		{[]string{"replay", good, "--modbus-ports", "-1"}, []string{"--modbus-ports", `"-1"`}},
		{[]string{"replay", "--modbus-ports", ",", good}, []string{"--modbus-ports", "no ports"}},
		{[]string{"replay", "--max-flows", "0", good}, []string{"--max-flows", "0"}},
		{[]string{"replay", "--max-flows", "3", good}, []string{"max flows", "3"}},
		{[]string{"replay", "--max-flows", "many", good}, []string{"-max-flows", "many"}},
		{[]string{"replay", "--no-such-flag", good}, []string{"no-such-flag"}},
		{[]string{"replay", good, "--ops="}, []string{"ops"}},
		// A flag given twice would keep only its last value.
		{[]string{"replay", "--policy", "a.yaml", "--policy", "b.yaml", good}, []string{"-policy", "given more than once"}},
		{[]string{"replay", "--json", good, "--json"}, []string{"json", "given more than once"}},
		{[]string{"replay", "--baseline=a.yaml", "--baseline=a.yaml", good}, []string{"-baseline", "given more than once"}},
		// A file named twice would be read twice.
		{[]string{"replay", good, good}, []string{good + " is named twice"}},
		{[]string{"replay", good, dir + "/./good.pcap"}, []string{"are the same file"}},
		{[]string{"replay", "--learn", "1m", "--margin", "Inf", good}, []string{"--margin", "+Inf"}},
		{[]string{"learn", "--margin", "Inf", "-o", filepath.Join(dir, "b.yaml"), good}, []string{"--margin", "+Inf"}},
		{[]string{"learn", "-o", "a.yaml", "-o", "b.yaml", good}, []string{"-o", "given more than once"}},
	} {
		r := tapwatch(tc.args...)
		if r.code != 2 {
			t.Errorf("%q: exit %d, want 2\n%v", tc.args, r.code, r)
			continue
		}
		if r.stdout != "" {
			t.Errorf("%q: output on a usage error:\n%s", tc.args, r.stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%q: stderr does not name %s:\n%s", tc.args, w, r.stderr)
			}
		}
		if !strings.Contains(r.stderr, "tapwatch "+tc.args[0]+" --help") {
			t.Errorf("%q: stderr does not point to the help:\n%s", tc.args, r.stderr)
		}
	}
}

func TestReplayModbusPorts(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	// Without 502 among the Modbus ports nothing is decoded.
	if r := tapwatch("replay", "--ops", "--modbus-ports", "5020", path); r.code != 0 || r.stdout != "" {
		t.Errorf("--modbus-ports 5020: want no messages, got %v", r)
	}
	all := tapwatch("replay", "--ops", path)
	if r := tapwatch("replay", "--ops", "--modbus-ports", " 5020, 502 ", path); r.code != 0 || r.stdout != all.stdout {
		t.Errorf("--modbus-ports ' 5020, 502 ' decodes differently from the default:\n%v", r)
	}
}

func TestReplayFlagsAfterFiles(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	before := tapwatch("replay", "--ops", path)
	if before.code != 0 || before.stdout == "" {
		t.Fatalf("replay --ops f.pcap: %v", before)
	}
	for _, args := range [][]string{
		{"replay", path, "--ops"},
		{"replay", path, "--ops", "--modbus-ports", "502"},
		{"replay", "--modbus-ports=502", path, "-ops"},
		{"replay", "--ops", "--", path},
	} {
		r := tapwatch(args...)
		if r.code != 0 || r.stdout != before.stdout || r.stderr != "" {
			t.Errorf("%q differs from replay --ops f.pcap:\n%v", args, r)
		}
	}
	// After "--" everything is a file, even what looks like a flag.
	r := tapwatch("replay", "--ops", "--", "--json")
	if r.code != 1 || !strings.Contains(r.stderr, "--json") {
		t.Errorf(`replay --ops -- --json: want exit 1 naming the file "--json", got %v`, r)
	}
}

// TestReplayOps checks the operations log of a generated capture against
// docs/ops-log.md, line by line, and compares it with testdata/ops.golden.
func TestReplayOps(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	r := tapwatch("replay", "--ops", path)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("replay --ops: %v", r)
	}
	lines := parseOps(t, r.stdout, frameTimes(t, path))

	tcp := map[string]any{"transport": "tcp", "unit": 1}
	req := map[string]any{"dir": "request", "src": "10.10.1.10", "sport": 50000, "dst": "10.10.1.20", "dport": 502}
	resp := map[string]any{"dir": "response", "src": "10.10.1.20", "sport": 502, "dst": "10.10.1.10", "dport": 50000}
	none := map[string]any{"exception": nil, "malformed": nil, "orphan": nil, "unanswered": nil, "vlan": nil}
	want := []map[string]any{
		join(tcp, req, none, map[string]any{"frame": 4, "tid": 1, "fc": 3, "fc_name": "read_holding_registers",
			"addr": 0, "count": 2, "values": nil, "request_frame": nil}),
		join(tcp, resp, none, map[string]any{"frame": 5, "tid": 1, "fc": 3, "fc_name": "read_holding_registers",
			"addr": 0, "count": 2, "values": []int{10, 20}, "request_frame": 4, "latency_us": 1600,
			"ts": "2024-01-01T00:00:00.001900000Z"}),
		join(tcp, req, none, map[string]any{"frame": 6, "tid": 2, "fc": 16, "fc_name": "write_multiple_registers",
			"addr": 100, "count": 3, "values": []int{1, 2, 3}}),
		join(tcp, resp, none, map[string]any{"frame": 7, "tid": 2, "fc": 16, "addr": 100, "count": 3, "request_frame": 6, "latency_us": 100}),
		join(tcp, req, none, map[string]any{"frame": 8, "tid": 3, "fc": 3, "addr": 9000, "count": 1}),
		join(tcp, resp, map[string]any{"frame": 9, "tid": 3, "fc": 3, "fc_name": "read_holding_registers",
			"exception": 2, "exception_name": "illegal_data_address", "values": nil, "request_frame": 8, "malformed": nil}),
		join(tcp, req, none, map[string]any{"frame": 10, "tid": 4, "fc": 8, "fc_name": "diagnostics",
			"sub": 0, "sub_name": "return_query_data", "addr": nil}),
		join(tcp, resp, none, map[string]any{"frame": 11, "tid": 4, "fc": 8, "sub": 0, "sub_name": "return_query_data", "request_frame": 10}),
		join(tcp, req, none, map[string]any{"frame": 12, "tid": 5, "fc": 43, "fc_name": "encapsulated_interface_transport", "mei": 14, "objects": nil}),
		join(tcp, resp, none, map[string]any{"frame": 13, "tid": 5, "fc": 43, "mei": 14, "request_frame": 12,
			"objects": []map[string]any{
				{"id": 0, "name": "VendorName", "value": "Tapwatch"},
				{"id": 1, "name": "ProductCode", "value": "TW-1"},
				{"id": 2, "name": "MajorMinorRevision", "value": "1.0"},
			}}),
		join(tcp, req, map[string]any{"frame": 14, "tid": 6, "fc": 3, "addr": 0, "count": 0, "malformed": "bad_quantity"}),
		join(tcp, resp, map[string]any{"frame": 15, "tid": 6, "fc": 3, "exception": 3, "exception_name": "illegal_data_value", "request_frame": 14}),
		join(none, map[string]any{"frame": 19, "transport": "udp", "dir": "request", "src": "10.10.1.30", "sport": 40000,
			"dst": "10.10.1.20", "dport": 502, "tid": 7, "unit": 2, "fc": 4, "fc_name": "read_input_registers", "addr": 7, "count": 1}),
		join(none, map[string]any{"frame": 20, "transport": "udp", "dir": "response", "src": "10.10.1.20", "sport": 502,
			"dst": "10.10.1.30", "dport": 40000, "tid": 7, "unit": 2, "fc": 4, "addr": 7, "count": 1, "values": []int{1234}, "request_frame": 19, "latency_us": 100}),
	}
	for i := range max(len(lines), len(want)) {
		switch {
		case i >= len(lines):
			t.Errorf("line %d missing, want %v", i+1, want[i])
		case i >= len(want):
			t.Errorf("line %d not expected: %v", i+1, lines[i])
		default:
			if d := match(lines[i], want[i]); d != nil {
				t.Errorf("line %d (frame %v): %s", i+1, lines[i]["frame"], strings.Join(d, "; "))
			}
		}
	}

	// The same capture gives the same bytes, run after run, in pcapng too.
	if again := tapwatch("replay", "--ops", path); again.stdout != r.stdout {
		t.Errorf("a second run gives another log:\n%s", again.stdout)
	}
	ng := writeCapture(t, dir, "ops.pcapng", pcapgen.Options{PcapNG: true}, buildOps)
	if rng := tapwatch("replay", "--ops", ng); rng.stdout != r.stdout {
		t.Errorf("the pcapng capture gives another log:\n%s", rng.stdout)
	}

	golden(t, "ops.golden", r.stdout)
}

// TestReplayOpsVLAN checks the vlan field on 802.1Q-tagged traffic.
func TestReplayOpsVLAN(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "vlan.pcap", pcapgen.Options{Link: pcapgen.LinkVLAN, VLAN: 42}, buildOps)
	r := tapwatch("replay", "--ops", path)
	if r.code != 0 {
		t.Fatalf("replay --ops: %v", r)
	}
	for i, l := range parseOps(t, r.stdout, frameTimes(t, path)) {
		if d := match(l, map[string]any{"vlan": 42}); d != nil {
			t.Errorf("line %d: %s", i+1, strings.Join(d, "; "))
		}
	}
}

func join(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run 'go test ./cmd/tapwatch -run %s -update' to create it)", err, t.Name())
	}
	if got == string(want) {
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("output differs from %s at line %d (run with -update if the change is intended):\ngot:  %s\nwant: %s", path, i+1, g, w)
			return
		}
	}
}

func TestReplaySummary(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	r := tapwatch("replay", "--summary", path)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("replay --summary: %v", r)
	}
	for _, want := range []string{
		"files      1\n",
		"packets    20 (",
		"TCP 18, UDP 2",
		"flows      2 created, 1 closed",
		"modbus     14 messages: 7 requests, 7 responses, 2 exceptions, 0 unanswered, 0 without request\n",
		"fc   3  read_holding_registers",
		"fc   4  read_input_registers",
		"fc   8  diagnostics",
		"fc  16  write_multiple_registers",
		"fc  43  encapsulated_interface_transport",
		"anomalies  1 malformed messages (1 Modbus, 0 DNP3), 0 IPv4 fragments, 0 truncated packets, 0 undecodable packets, 0 bad IP lengths\n",
		"  modbus: 1 malformed message\n  bad_quantity ",
		"alerts     2 alerts (1 medium, 1 low)\n", // malformed once for the conversation; the device identification read
		"time       ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, r.stdout)
		}
	}
	// Counts by function code: 6 FC 3 messages (3 requests, 3 responses).
	for _, want := range [][2]string{{"3", "6"}, {"4", "2"}, {"8", "2"}, {"16", "2"}, {"43", "2"}} {
		line := fmt.Sprintf("fc %3s  %-32s %s\n", want[0], fcName(want[0]), want[1])
		if !strings.Contains(r.stdout, line) {
			t.Errorf("the summary lacks %q:\n%s", line, r.stdout)
		}
	}
}

// TestReplayBuiltins: without a policy, replay runs the built-in
// detectors and prints their alerts; --fail-on works without one.
func TestReplayBuiltins(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	r := tapwatch("replay", path)
	if r.code != 0 || r.stderr != "tapwatch: 20 packets, 14 Modbus messages, 0 DNP3 fragments, 2 alerts (1 medium, 1 low)\n" {
		t.Fatalf("replay: %v", r)
	}
	var rulesFired []string
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var a struct {
			Rule   string   `json:"rule"`
			Attack []string `json:"attack"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil || len(a.Attack) == 0 {
			t.Fatalf("not an alert: %q: %v", line, err)
		}
		rulesFired = append(rulesFired, a.Rule)
	}
	sort.Strings(rulesFired)
	if want := []string{"malformed", "recon-device-id"}; !reflect.DeepEqual(rulesFired, want) {
		t.Errorf("alerts of %v, want %v:\n%s", rulesFired, want, r.stdout)
	}
	if r := tapwatch("replay", "--fail-on", "low", path); r.code != 3 || !strings.Contains(r.stderr, "2 alerts at or above low") {
		t.Errorf("--fail-on low: %v", r)
	}
	if r := tapwatch("replay", "--fail-on", "high", path); r.code != 0 {
		t.Errorf("--fail-on high: %v", r)
	}
}

func fcName(fc string) string {
	return map[string]string{"3": "read_holding_registers", "4": "read_input_registers", "8": "diagnostics",
		"16": "write_multiple_registers", "43": "encapsulated_interface_transport"}[fc]
}

func TestReplayJSON(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	r := tapwatch("replay", "--json", path)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("replay --json: %v", r)
	}
	if strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("want one line, got:\n%s", r.stdout)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, r.stdout)
	}
	var s struct {
		Files     int               `json:"files"`
		Packets   float64           `json:"packets"`
		Seconds   float64           `json:"seconds"`
		DPI       map[string]any    `json:"dpi"`
		Messages  int               `json:"messages"`
		ByFC      []fcCount         `json:"by_fc"`
		Malformed map[string]uint64 `json:"malformed"`
	}
	for _, k := range []string{"packets", "seconds", "dpi", "by_fc"} {
		if raw[k] == nil {
			t.Errorf("no %q in %s", k, r.stdout)
		}
	}
	for _, k := range []string{"packets", "seconds"} {
		var n float64
		if err := json.Unmarshal(raw[k], &n); err != nil {
			t.Errorf("%q is not a number: %s", k, raw[k])
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Files != 1 || s.Packets != 20 || s.Seconds < 0 || s.Messages != 14 {
		t.Errorf("files %d, packets %v, seconds %v, messages %d; want 1, 20, >= 0, 14", s.Files, s.Packets, s.Seconds, s.Messages)
	}
	if s.DPI["packets"] != 20.0 || s.DPI["tcp"] != 18.0 || s.DPI["udp"] != 2.0 {
		t.Errorf("dpi: %v", s.DPI)
	}
	wantFC := []fcCount{
		{3, "read_holding_registers", 6}, {4, "read_input_registers", 2}, {8, "diagnostics", 2},
		{16, "write_multiple_registers", 2}, {43, "encapsulated_interface_transport", 2},
	}
	if !reflect.DeepEqual(s.ByFC, wantFC) {
		t.Errorf("by_fc %+v, want %+v", s.ByFC, wantFC)
	}
	if !reflect.DeepEqual(s.Malformed, map[string]uint64{"bad_quantity": 1}) {
		t.Errorf("malformed %v", s.Malformed)
	}
	if raw["errors"] != nil {
		t.Errorf("errors on a good capture: %s", raw["errors"])
	}
}

// pcapRecordOffset returns the file offset of record n (1-based) of a pcap
// file written by pcapgo (little-endian, 24-byte file header, 16-byte
// record headers).
func pcapRecordOffset(t *testing.T, data []byte, n int) int {
	t.Helper()
	if !bytes.HasPrefix(data, []byte{0xd4, 0xc3, 0xb2, 0xa1}) {
		t.Fatalf("not a little-endian microsecond pcap: % x", data[:4])
	}
	off := 24
	for i := 1; i < n; i++ {
		if off+16 > len(data) {
			t.Fatalf("the file has fewer than %d records", n)
		}
		off += 16 + int(binary.LittleEndian.Uint32(data[off+8:]))
	}
	return off
}

// truncateInRecord cuts the file in the middle of record n's data.
func truncateInRecord(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := pcapRecordOffset(t, data, n) + 16 + 20
	if off >= len(data) {
		t.Fatalf("record %d is the end of the file", n)
	}
	if err := os.WriteFile(path, data[:off], 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReplayDamagedFile(t *testing.T) {
	dir := t.TempDir()
	good := writeCapture(t, dir, "good.pcap", pcapgen.Options{}, buildPoll(50001))
	cut := writeCapture(t, dir, "cut.pcap", pcapgen.Options{Start: pcapgen.DefaultStart.Add(time.Minute)}, buildPoll(50002))
	good2 := writeCapture(t, dir, "good2.pcap", pcapgen.Options{Start: pcapgen.DefaultStart.Add(2 * time.Minute)}, buildPoll(50003))
	// Record 7 is the response of the FC 3 read: the FC 6 write and its
	// response and the FC 3 request come before the damage.
	truncateInRecord(t, cut, 7)

	r := tapwatch("replay", "--ops", good, cut, good2)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%v", r.code, r)
	}
	if !strings.Contains(r.stderr, cut+": record 7:") {
		t.Errorf("stderr does not name %s and record 7:\n%s", cut, r.stderr)
	}
	if strings.Contains(r.stderr, good+":") || strings.Contains(r.stderr, good2+":") {
		t.Errorf("stderr blames a good file:\n%s", r.stderr)
	}
	// Every message before the damage, in file order; the read whose
	// response was lost in the damage is given up on at the end.
	var got []string
	for _, l := range parseOps(t, r.stdout, nil) {
		port := l["sport"]
		if l["dir"] == "response" {
			port = l["dport"]
		}
		got = append(got, fmt.Sprintf("%v frame %v %v fc %v unanswered=%v", port, l["frame"], l["dir"], l["fc"], l["unanswered"] == true))
	}
	var want []string
	for _, port := range []int{50001, 50002, 50003} {
		want = append(want,
			fmt.Sprintf("%d frame 4 request fc 6 unanswered=false", port),
			fmt.Sprintf("%d frame 5 response fc 6 unanswered=false", port),
			fmt.Sprintf("%d frame 6 request fc 3 unanswered=false", port))
		if port != 50002 {
			want = append(want, fmt.Sprintf("%d frame 7 response fc 3 unanswered=false", port))
		}
	}
	want = append(want, "50002 frame 6 request fc 3 unanswered=true")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The summary of the same run reports the damage too.
	r = tapwatch("replay", "--json", good, cut, good2)
	if r.code != 1 || !strings.Contains(r.stderr, "record 7") {
		t.Errorf("replay --json: %v", r)
	}
	var s struct {
		Files  int      `json:"files"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("replay --json: %v\n%s", err, r.stdout)
	}
	if s.Files != 3 || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], cut) {
		t.Errorf("replay --json: files %d, errors %q", s.Files, s.Errors)
	}
}

func TestReplayUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeCapture(t, dir, "good.pcap", pcapgen.Options{}, buildPoll(50001))
	missing := filepath.Join(dir, "missing.pcap")
	text := filepath.Join(dir, "notes.pcap")
	if err := os.WriteFile(text, []byte("this is not a capture file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pcap")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, why string
	}{
		{"missing", missing, "no such file"},
		{"not a capture", text, "not a pcap or pcapng file"},
		{"empty", empty, "empty"},
		{"directory", dir, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One line naming the file, before anything else: no tally,
			// no summary, no baseline written, however many good files
			// come with it.
			out := filepath.Join(t.TempDir(), "baseline.yaml")
			for _, args := range [][]string{
				{"replay", tc.path},
				{"replay", "--ops", tc.path},
				{"replay", "--json", tc.path},
				{"replay", "--summary", good, tc.path},
				{"replay", tc.path, good},
				{"learn", "-o", out, tc.path, good},
			} {
				r := tapwatch(args...)
				if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
					!strings.HasPrefix(r.stderr, "tapwatch: "+tc.path+": ") || !strings.Contains(r.stderr, tc.why) {
					t.Errorf("%q: want exit 1 and one line naming the file (%s) on stderr, got %v", args, tc.why, r)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("learn wrote %s from a file it cannot read", out)
			}
		})
	}
	// Several: a line each, and how many.
	r := tapwatch("replay", missing, good, empty)
	if want := "tapwatch: " + missing + ": no such file or directory\ntapwatch: " + empty + ": file header: file is empty or shorter than a capture header\ntapwatch: 2 of 3 capture files cannot be read\n"; r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("two unreadable files of three: %v\nwant stderr:\n%s", r, want)
	}
}

// A capture from a pipe is not read ahead by the check of the files:
// its first bytes would be lost.
func TestReplayFromPipe(t *testing.T) {
	dir := t.TempDir()
	good := writeCapture(t, dir, "good.pcap", pcapgen.Options{}, buildPoll(50001))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.Write(data)
		f.Close()
	}()
	if r := tapwatch("replay", "--ops", fifo); r.code != 0 || len(parseOps(t, r.stdout, nil)) != 4 {
		t.Errorf("replay of a pipe: %v", r)
	}
}

// rogue is a host that has no business writing to the PLC.
var rogue = pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x99}, IP: netip.MustParseAddr("10.10.1.99"), Port: 51000}

// alertPolicy: only the HMI writes to the PLC, and the pump-3 setpoint
// (holding register 5) stays within 100..200.
const alertPolicy = `version: 1
assets:
  hmi: {ip: 10.10.1.10}
  plc: {ip: 10.10.1.20, modbus_units: 1}
detectors:
  # The rogue host is a new asset too; this test is about the rules.
  new-asset: {enabled: false}
rules:
  - id: plc-writes-only-from-hmi
    name: Only the HMI writes to the PLC
    when: {proto: modbus, dst: plc, op: write}
    unless: {src: hmi}
    severity: high
    attack: [T0855]
  - id: pump3-setpoint
    name: Pump-3 speed setpoint
    when: {proto: modbus, dst: plc, op: write, table: holding, addr: 5}
    value: {min: 100, max: 200}
    severity: critical
    attack: [T0836]
`

// buildAlerts writes a capture in which the HMI writes 150 to register 5
// (allowed) and then a rogue host writes 500 to registers 4-6 (twice)
// and 150 to register 5.
func buildAlerts(w *pcapgen.Writer) error {
	s := &step{}
	c, err := pcapgen.NewTCPConn(w, hmi, plc, 1000, 5000)
	if err != nil {
		return err
	}
	s.frames(c.Handshake())
	s.frames(c.Client(pcapgen.MBAP(1, 1, pcapgen.WriteSingleRegister(5, 150))))
	s.frames(c.Server(pcapgen.MBAP(1, 1, pcapgen.WriteSingleRegister(5, 150))))
	r, err := pcapgen.NewTCPConn(w, rogue, plc, 2000, 6000)
	if err != nil {
		return err
	}
	s.frames(r.Handshake())
	for i := range 2 {
		w.Advance(time.Second)
		s.frames(r.Client(pcapgen.MBAP(uint16(10+i), 1, pcapgen.WriteMultipleRegisters(4, 7, 500, 8))))
		s.frames(r.Server(pcapgen.MBAP(uint16(10+i), 1, pcapgen.WriteMultipleRegistersResponse(4, 3))))
	}
	s.frames(r.Client(pcapgen.MBAP(12, 1, pcapgen.WriteSingleRegister(5, 150))))
	s.frames(r.Server(pcapgen.MBAP(12, 1, pcapgen.WriteSingleRegister(5, 150))))
	return s.err
}

func TestReplayPolicy(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "alerts.pcap", pcapgen.Options{}, buildAlerts)
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(alertPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	r := tapwatch("replay", "--policy", pol, path)
	// The tally counts the lines printed: three alerts, and two reports
	// of their folded repeats.
	if r.code != 0 || r.stderr != "tapwatch: 14 packets, 8 Modbus messages, 0 DNP3 fragments, 3 alerts (1 critical, 2 high) and 2 reports of folded repeats (5 lines)\n" {
		t.Fatalf("without --fail-on: %v", r)
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		got = append(got, m)
	}
	// The first rogue write fires both rules at once; the second is folded
	// into them (same rule, hosts and address) and reported with its count
	// at the end of the capture; the write of 150 fires only the first rule,
	// at another address.
	want := []map[string]any{
		{"id": 1.0, "rule": "plc-writes-only-from-hmi", "severity": "high", "category": "policy", "title": "Only the HMI writes to the PLC",
			"attack": []any{"T0855"}, "proto": "modbus", "unit": 1.0, "fc": 16.0, "fc_name": "write_multiple_registers",
			"addr": map[string]any{"lo": 4.0, "hi": 6.0}, "values": []any{7.0, 500.0, 8.0}, "count": 1.0,
			"src":      map[string]any{"ip": "10.10.1.99", "port": 51000.0, "mac": "02:00:00:00:00:99"},
			"dst":      map[string]any{"ip": "10.10.1.20", "port": 502.0, "mac": "02:00:00:00:00:20", "asset": "plc"},
			"evidence": "100004000306000701f40008"},
		{"id": 2.0, "rule": "pump3-setpoint", "severity": "critical", "attack": []any{"T0836"},
			"addr": map[string]any{"lo": 5.0, "hi": 5.0}, "values": []any{500.0}, "expected": "100..200", "count": 1.0},
		{"id": 3.0, "rule": "plc-writes-only-from-hmi", "fc": 6.0, "addr": map[string]any{"lo": 5.0, "hi": 5.0}, "values": []any{150.0}, "count": 1.0},
		{"id": 1.0, "repeat": true, "rule": "plc-writes-only-from-hmi", "count": 2.0},
		{"id": 2.0, "repeat": true, "rule": "pump3-setpoint", "count": 2.0},
	}
	if len(got) != len(want) {
		t.Fatalf("%d alerts, want %d:\n%s", len(got), len(want), r.stdout)
	}
	for i := range 3 {
		if _, ok := got[i]["repeat"]; ok {
			t.Errorf("alert %d, a first report, says repeat: %v", i, got[i])
		}
	}
	// A repeat says so at once, after its id.
	if line := strings.Split(r.stdout, "\n")[3]; !strings.Contains(line, `,"id":1,"repeat":true,"rule":`) {
		t.Errorf("the report of folded repeats does not say repeat after its id: %s", line)
	}
	// Each line is the wire schema's alert, header included, as tapwatch
	// tail prints it (but for repeat): seq numbers the lines, and ts is
	// the capture time of the alert's last packet.
	for i, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var ev event.Alert
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.V != event.V || ev.Kind != event.KindAlert || ev.Sensor != defaultSensor() || ev.Site != "default" ||
			ev.Seq != uint64(i+1) || !ev.TS.Equal(ev.Last) || ev.TS.IsZero() {
			t.Errorf("line %d: header %d %q %q %q seq %d ts %v (last %v)", i, ev.V, ev.Kind, ev.Sensor, ev.Site, ev.Seq, ev.TS, ev.Last)
		}
		tail, _ := json.Marshal(&ev)
		if want := strings.Replace(line, `,"repeat":true`, "", 1); string(tail) != want {
			t.Errorf("line %d is not what tail prints:\n%s\n%s", i, line, tail)
		}
	}
	if r := tapwatch("replay", "--policy", pol, "--sensor", "tap1", "--site", "plant1", path); r.code != 0 ||
		!strings.HasPrefix(r.stdout, `{"v":1,"kind":"alert","sensor":"tap1","site":"plant1","seq":1,"ts":"2024-01-01T00:00:01.000800000Z","id":1,"rule":`) {
		t.Errorf("--sensor tap1 --site plant1: %v", r)
	}
	for i := range want {
		if d := match(got[i], want[i]); len(d) > 0 {
			t.Errorf("alert %d: %s\n%s", i, strings.Join(d, "; "), r.stdout)
		}
	}
	if got[3]["first"] == got[3]["last"] {
		t.Errorf("the folded alert has first == last: %v", got[3])
	}

	for _, tc := range []struct {
		severity string
		code     int
	}{{"critical", 3}, {"high", 3}, {"info", 3}} {
		r := tapwatch("replay", "--policy", pol, "--fail-on", tc.severity, path)
		if r.code != tc.code || !strings.Contains(r.stderr, "at or above "+tc.severity) {
			t.Errorf("--fail-on %s: %v", tc.severity, r)
		}
	}
	// The HMI's own connection alone fires nothing.
	clean := writeCapture(t, dir, "clean.pcap", pcapgen.Options{}, buildPoll(50001))
	if r := tapwatch("replay", "--policy", pol, "--fail-on", "info", clean); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, " 0 alerts\n") {
		t.Errorf("clean capture: %v", r)
	}
	// --json counts the alerts; --ops prints the operations only, and the
	// exit status still follows --fail-on.
	r = tapwatch("replay", "--policy", pol, "--json", path)
	var sum struct {
		Alerts map[string]float64 `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.code != 0 {
		t.Fatalf("--json: %v %v", err, r)
	}
	if w := map[string]float64{"info": 0, "low": 0, "medium": 0, "high": 2, "critical": 1, "repeats": 2, "suppressed": 0}; !reflect.DeepEqual(sum.Alerts, w) {
		t.Errorf("--json alerts %v, want %v", sum.Alerts, w)
	}
	// Without a policy the built-in detectors still run: the rogue writes
	// break no built-in rule.
	if r := tapwatch("replay", "--json", path); !strings.Contains(r.stdout, `"alerts":{"info":0,"low":0,"medium":0,"high":0,"critical":0,"repeats":0,"suppressed":0}`) {
		t.Errorf("--json without --policy: %s", r.stdout)
	}
	ops := tapwatch("replay", "--ops", path)
	r = tapwatch("replay", "--policy", pol, "--ops", "--fail-on", "critical", path)
	if r.code != 3 || r.stdout != ops.stdout {
		t.Errorf("--ops with --policy: exit %d, output differs from --ops: %v", r.code, r.stdout != ops.stdout)
	}
}

func TestReplayPolicyErrors(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "clean.pcap", pcapgen.Options{}, buildPoll(50001))
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - id: x\n    when: {proto: modbus}\n    severity: hihg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(alertPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay", "--summary", "--ops", path}, 2, "give one of them"},
		{[]string{"replay", "--json", "--summary", path}, 2, "give one of them"},
		{[]string{"replay", "--policy", good, "--fail-on", "hihg", path}, 2, "did you mean high"},
		{[]string{"replay", "--policy", bad, path}, 1, "bad.yaml:4:15: rules[0].severity"},
		{[]string{"replay", "--policy", filepath.Join(dir, "none.yaml"), path}, 1, "none.yaml"},
	} {
		r := tapwatch(tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%q: want exit %d and %q on stderr, got %v", tc.args, tc.code, tc.want, r)
		}
	}
	r := tapwatch("replay", "--help")
	for _, w := range []string{"--policy", "-fail-on SEVERITY", "3 when an alert"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("replay --help lacks %q", w)
		}
	}
}

// TestRunFlagErrors: a bad value given to run on the command line is a
// usage error naming the flag, not an error of the config line whose
// value it replaces; a bad value in the file is still the file's.
func TestRunFlagErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tw.yaml")
	if err := os.WriteFile(good, []byte("sensor: tap1\ninterfaces: [eth1]\nlog:\n  level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "verbose"}, `tapwatch: usage: --log-level: "verbose"; want debug, info, warn or error`},
		{[]string{"--sensor", "hall 2/tap"}, `tapwatch: usage: --sensor: "hall 2/tap": an MQTT topic level`},
		{[]string{"--mqtt", "ftp://x", "--sensor", "a/b"}, `tapwatch: usage: --mqtt: "ftp://x": scheme "ftp"; want tcp://, mqtt://, ssl://, tls:// or mqtts://; --sensor: "a/b"`},
	} {
		r := tapwatch(append([]string{"run", "-c", good}, tc.args...)...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, tc.want) || strings.Contains(r.stderr, "tw.yaml") {
			t.Errorf("%q: %v, want exit 2 and %q", tc.args, r, tc.want)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sensor: tap/1\ninterfaces: [eth1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := tapwatch("run", "-c", bad, "--log-level", "debug"); r.code != 1 || !strings.Contains(r.stderr, bad+`:1:9: sensor: "tap/1"`) {
		t.Errorf("bad file: %v", r)
	}
}

// withStdin runs f with os.Stdin reading data through a pipe, as from
// tcpdump -w - | tapwatch replay -.
func withStdin(t *testing.T, data []byte, f func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.Write(data)
		w.Close()
	}()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	f()
}

// TestReplayStdin: a FILE of - is standard input, decoded as the file
// would be; it can be named once, and a damaged one is named "stdin".
func TestReplayStdin(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := tapwatch("replay", "--ops", path)
	if want.code != 0 || want.stdout == "" {
		t.Fatalf("from the file: %v", want)
	}
	var got, twice, learned result
	withStdin(t, data, func() { got = tapwatch("replay", "--ops", "-") })
	if got.code != 0 || got.stdout != want.stdout {
		t.Errorf("from standard input:\n%v\nwant the file's:\n%v", got, want)
	}
	withStdin(t, data, func() { twice = tapwatch("replay", "-", "-") })
	if twice.code != 2 || !strings.Contains(twice.stderr, "- (standard input) is named twice") {
		t.Errorf("- twice: %v", twice)
	}
	base := filepath.Join(dir, "base.yaml")
	withStdin(t, data, func() { learned = tapwatch("learn", "-o", base, "-") })
	if b, err := os.ReadFile(base); learned.code != 0 || err != nil || !bytes.Contains(b, []byte("baseline:")) {
		t.Errorf("learn from standard input: %v (%v)", learned, err)
	}
	var bad result
	withStdin(t, []byte("not a capture at all"), func() { bad = tapwatch("replay", "-") })
	if bad.code != 1 || !strings.Contains(bad.stderr, "stdin: file header: not a pcap or pcapng file") {
		t.Errorf("garbage on standard input: %v", bad)
	}
	// Standard input redirected from a file that is named too.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	same := tapwatch("replay", path, "-")
	os.Stdin = old
	if same.code != 2 || !strings.Contains(same.stderr, "are the same file") {
		t.Errorf("a file and standard input redirected from it: %v", same)
	}
}
