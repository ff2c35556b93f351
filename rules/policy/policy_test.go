package policy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/yamlpos"
)

var update = flag.Bool("update", false, "rewrite the expected error.txt and effective.yaml of testdata/cases")

// TestCases walks testdata/cases/<name>/: each folder holds a policy.yaml
// written by hand, and either error.txt, the exact error text, or
// effective.yaml, the exact Format output (which must load again to the
// same policy).
func TestCases(t *testing.T) {
	dirs, err := filepath.Glob("testdata/cases/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, "policy.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			errFile, effFile := filepath.Join(dir, "error.txt"), filepath.Join(dir, "effective.yaml")
			_, statErr := os.Stat(errFile)
			wantErr := statErr == nil
			p, err := Parse(data, "policy.yaml")
			if wantErr {
				if err == nil {
					t.Fatalf("policy loaded, want the error of error.txt")
				}
				checkGolden(t, errFile, err.Error()+"\n")
				for _, e := range unjoin(err) {
					var pe *yamlpos.Error
					if !errors.As(e, &pe) || pe.Line == 0 || pe.File != "policy.yaml" {
						t.Errorf("error without a position: %v", e)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var out bytes.Buffer
			p.Format(&out)
			checkGolden(t, effFile, out.String())
			again, err := Parse(out.Bytes(), "effective.yaml")
			if err != nil {
				t.Fatalf("Format output does not load again: %v\n%s", err, out.String())
			}
			if !samePolicy(p, again) {
				t.Errorf("round trip changed the policy:\n got %+v\nwant %+v", again, p)
			}
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// samePolicy compares policies, leaving out where they were read from.
func samePolicy(a, b *Policy) bool {
	x, y := *a, *b
	x.src, y.src = nil, nil
	return reflect.DeepEqual(&x, &y)
}

func TestSketchResolved(t *testing.T) {
	p, err := Load("testdata/cases/sketch/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 5 || len(p.Assets) != 4 || len(p.Detectors) != len(detectors) {
		t.Fatalf("got %d rules, %d assets, %d detectors", len(p.Rules), len(p.Assets), len(p.Detectors))
	}
	r := p.Rules[0]
	if r.When.Proto != proto.Modbus || !r.When.Ops.Has(OpWrite) || r.When.Ops.Has(OpRead) || r.Severity != SeverityHigh || !r.Enabled {
		t.Errorf("rule 0: %+v", r)
	}
	dst := r.When.Dst[0]
	if dst.Asset != "plc1" || dst.Prefixes[0] != netip.MustParsePrefix("10.10.1.20/32") || !dst.Units.Has(1) || !dst.Units.Has(2) || dst.Units.Has(3) {
		t.Errorf("dst: %+v", dst)
	}
	if len(r.Unless) != 1 || r.Unless[0].Src[0].Asset != "hmi" {
		t.Errorf("unless: %+v", r.Unless)
	}
	sp := p.Rules[1]
	if !sp.When.Tables.Has(TableHoldingRegisters) || sp.When.Tables.Has(TableCoils) || !sp.When.Addr.Contains(5) || sp.When.Addr.Contains(6) ||
		!sp.When.Units.Has(1) || sp.When.Units.Has(2) || *sp.Value != (Bounds{100, 200}) || sp.Severity != SeverityCritical {
		t.Errorf("rule 1: %+v", sp)
	}
	rs := p.Rules[2]
	for fc, want := range map[uint8]bool{13: true, 14: true, 18: true, 17: false, 5: false} {
		if got := rs.When.FC.Has(proto.DNP3, fc); got != want {
			t.Errorf("rule 2: DNP3 fc %d matches %v, want %v", fc, got, want)
		}
	}
	if !rs.When.FC.Modbus.Empty() {
		t.Errorf("rule 2 holds Modbus function codes")
	}
	bc := p.Rules[3]
	if bc.When.Groups[0] != (GroupVar{12, 0}) || !bc.When.Groups[0].Matches(12, 1) || !bc.When.Points.Overlaps(15, 20) || bc.When.Points.Overlaps(16, 20) ||
		bc.Severity != SeverityMedium || bc.Name != "breaker-controls" || !bc.When.Dst[0].DNP3.Contains(10) {
		t.Errorf("rule 3: %+v", bc)
	}
	if wr := p.Rules[4]; *wr.Rate != (Rate{Max: 20, Per: time.Second}) {
		t.Errorf("rule 4 rate: %+v", wr.Rate)
	}
	if s, _ := p.Detector("recon-sweep"); s.Enabled {
		t.Errorf("recon-sweep enabled")
	}
	if s, _ := p.Detector("request-flood"); s.Severity != SeverityCritical || *s.Rate != (Rate{200, time.Second}) {
		t.Errorf("request-flood: %+v", s)
	}
	if s, _ := p.Detector("malformed"); !s.Enabled || s.Window != time.Minute {
		t.Errorf("malformed: %+v", s)
	}
}

func TestFuncCodesWithoutProto(t *testing.T) {
	p, err := Parse([]byte("rules:\n  - id: x\n    when: {fc: [5, cold_restart, write_single_register]}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fc := p.Rules[0].When.FC
	for _, c := range []struct {
		p    proto.ID
		fc   uint8
		want bool
	}{{proto.Modbus, 5, true}, {proto.DNP3, 5, true}, {proto.DNP3, 13, true}, {proto.Modbus, 13, false}, {proto.Modbus, 6, true}, {proto.DNP3, 6, false}} {
		if got := fc.Has(c.p, c.fc); got != c.want {
			t.Errorf("%v fc %d: %v, want %v", c.p, c.fc, got, c.want)
		}
	}
	var out bytes.Buffer
	p.Format(&out)
	if !strings.Contains(out.String(), "fc: [5, write_single_register, cold_restart]") {
		t.Errorf("Format:\n%s", out.String())
	}
}

func TestEnums(t *testing.T) {
	for s := SeverityInfo; s <= SeverityCritical; s++ {
		if got, err := ParseSeverity(s.String()); err != nil || got != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", s, got, err)
		}
	}
	for o := OpRead; o <= OpAuth; o++ {
		if got, err := ParseOpClass(o.String()); err != nil || got != o {
			t.Errorf("ParseOpClass(%q) = %v, %v", o, got, err)
		}
	}
	if Severity(0).String() != "invalid" || OpClass(0).String() != "invalid" || Table(0).String() != "invalid" {
		t.Error("zero values must be invalid")
	}
	if _, err := ParseOpClass("wirte"); err == nil || !strings.Contains(err.Error(), "did you mean write?") {
		t.Errorf("ParseOpClass(wirte): %v", err)
	}
}

func TestDetectorCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range detectors {
		if seen[d.ID] || !ruleIDPattern.MatchString(d.ID) {
			t.Errorf("detector id %q duplicate or malformed", d.ID)
		}
		seen[d.ID] = true
		if d.Name == "" || d.Description == "" || len(d.Attack) == 0 || d.Severity < SeverityInfo || d.Severity > SeverityCritical {
			t.Errorf("detector %s incomplete", d.ID)
		}
		for _, a := range d.Attack {
			if !techniquePattern.MatchString(a) {
				t.Errorf("detector %s: technique %q", d.ID, a)
			}
		}
	}
	for _, id := range []string{"malformed", "modbus-diagnostics", "recon-device-id", "recon-sweep", "exception-storm",
		"dnp3-restart", "dnp3-application-control", "dnp3-disable-unsolicited", "dnp3-file", "dnp3-operate-without-select",
		"broadcast-write", "request-flood", "public-address", "new-asset", "baseline-new-master", "baseline-new-conversation",
		"baseline-new-function", "baseline-new-address", "baseline-value-range", "baseline-write-rate"} {
		if !seen[id] {
			t.Errorf("detector %s missing", id)
		}
	}
	if err := New().Validate(); err != nil {
		t.Errorf("New().Validate: %v", err)
	}
}

// TestDocsListDetectors keeps docs/policy.md in step with the catalogue.
func TestDocsListDetectors(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range detectors {
		row := "| `" + d.ID + "` | " + d.Severity.String() + " | " + strings.Join(d.Attack, ", ") + " |"
		if !bytes.Contains(doc, []byte(row)) {
			t.Errorf("docs/policy.md lacks the row %q", row)
		}
	}
}

// TestValidateBuiltInGo checks a policy built in Go, as the learner does.
func TestValidateBuiltInGo(t *testing.T) {
	p := New()
	p.Assets = []Asset{{Name: "plc1", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}}}
	p.Rules = []Rule{{
		ID: "learned-1", Name: "learned", Severity: SeverityMedium, Enabled: true,
		When:  Match{Proto: proto.Modbus, Dst: []Endpoint{{Asset: "plc1", Prefixes: p.Assets[0].Prefixes}}, Ops: 1 << OpWrite, Addr: Ranges{{0, 9}}},
		Value: &Bounds{Min: 0, Max: math.Inf(1)},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p.Format(&out)
	again, err := Parse(out.Bytes(), "p.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !samePolicy(p, again) {
		t.Errorf("round trip:\n%s", out.String())
	}
	p.Rules[0].Severity = 0
	p.Rules[0].When.Dst[0].Asset = "plc2"
	err = p.Validate()
	if err == nil || !strings.Contains(err.Error(), `policy: rules[0].severity: invalid severity 0`) || !strings.Contains(err.Error(), `"plc2" is not an asset`) {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestRanges(t *testing.T) {
	rs := Normalize(Ranges{{10, 20}, {0, 3}, {21, 25}, {4, 4}, {40, 50}})
	want := Ranges{{0, 4}, {10, 25}, {40, 50}}
	if !reflect.DeepEqual(rs, want) {
		t.Fatalf("Normalize = %v, want %v", rs, want)
	}
	for v, in := range map[uint32]bool{0: true, 4: true, 5: false, 9: false, 10: true, 25: true, 26: false, 50: true, 51: false} {
		if rs.Contains(v) != in {
			t.Errorf("Contains(%d) = %v", v, !in)
		}
	}
	if !rs.Overlaps(5, 10) || rs.Overlaps(26, 39) || !rs.Overlaps(0, math.MaxUint32) {
		t.Error("Overlaps")
	}
}

// TestLeadingZeros: a number padded with zeros (a register number from a
// spreadsheet) is read in decimal everywhere, as YAML 1.2 reads it, not
// in octal where the parser saw an integer and in decimal where it saw
// text; hex bounds are numbers too.
func TestLeadingZeros(t *testing.T) {
	const text = `version: 1
assets:
  plc1: {ip: 10.1.1.1, modbus_units: [%s, %s]}
  master: {ip: 10.1.1.2}
  rtu: {ip: 10.1.1.3, dnp3: %s}
rules:
  - id: r1
    when: {proto: modbus, dst: plc1, op: write, addr: [%s, %s, %s-%s], unit: %s, fc: %s}
    severity: high
  - id: r2
    when: {proto: modbus, dst: plc1, op: write, addr: %s}
    value: {min: %s, max: %s}
    severity: high
  - id: r3
    when: {proto: modbus, dst: plc1, op: write, addr: %s}
    rate: {max: %s, per: 1m}
    severity: high
  - id: r4
    when: {proto: dnp3, dst: rtu, link_dst: %s, points: %s}
    severity: high
baseline:
  conversations:
    - src: master
      dst: plc1
      proto: modbus
      unit: %s
      fc: [%s, %s]
      values:
        - {table: holding_registers, addr: %s, min: %s, max: %s}
`
	padded := fmt.Sprintf(text, "010", "011", "010", "010", "020", "030", "040", "010", "016", "0100", "0x10", "0200",
		"08", "010", "0100", "010", "01", "03", "06", "010", "0124", "0176")
	plain := fmt.Sprintf(text, "10", "11", "10", "10", "20", "30", "40", "10", "16", "100", "16", "200",
		"8", "10", "100", "10", "1", "3", "6", "10", "124", "176")
	format := func(text string) string {
		p, err := Parse([]byte(text), "p.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		p.Format(&b)
		return b.String()
	}
	if got, want := format(padded), format(plain); got != want {
		t.Errorf("padded:\n%s\nplain:\n%s", got, want)
	}
	// Hex, octal and binary, YAML 1.2's prefixes, read alike wherever a
	// whole number goes: alone, in a range "a-b" and, quoted, as a bound.
	radixed := fmt.Sprintf(text, "0xa", "0b1011", "0o12", "0xA", "0b10100", "0o36", "0x28", "0o12", "0x10", "0x64", `"0x10"`, `"0b11001000"`,
		"0b1000", "0o12", "0x64", "0b1010", "0x1", "0o3", "0b110", "0xa", `"0x7c"`, `"0o260"`)
	if got, want := format(radixed), format(plain); got != want {
		t.Errorf("hex, octal, binary:\n%s\nplain:\n%s", got, want)
	}
	for _, bound := range []string{`"-0x10"`, `"+0x10"`, `"0x1p4"`, `0x1p4`, `"1e1"`} {
		if _, err := Parse([]byte(strings.Replace(radixed, `"0x10"`, bound, 1)), "p.yaml"); err != nil {
			t.Errorf("bound %s: %v", bound, err)
		}
	}
	for _, bad := range []string{`"0x"`, `"0o8"`, `"0b2"`, `"0x+1"`} {
		_, err := Parse([]byte(strings.Replace(radixed, `"0x10"`, bad, 1)), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), "is not a number") {
			t.Errorf("bound %s: %v, want it refused as not a number", bad, err)
		}
	}
}

// TestColonInFlowList: text with a colon inside [...] in {...}, which the
// parser reads as a map, is refused with a hint to quote it; a map written
// as one is refused without.
func TestColonInFlowList(t *testing.T) {
	_, err := Parse([]byte("version: 1\nassets:\n  hmi: {ip: [fd00::10]}\n  plc: {ip: [a: b]}\n"), "p.yaml")
	for _, want := range []string{
		`p.yaml:3:14: assets.hmi.ip: expected an IP address, found a map (to give "fd00::10" as text, quote it)`,
		`p.yaml:4:14: assets.plc.ip: expected an IP address, found a map` + "\n",
	} {
		if err == nil || !strings.Contains(err.Error()+"\n", want) {
			t.Errorf("%v\nwant %s", err, want)
		}
	}
}
