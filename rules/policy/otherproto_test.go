package policy

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/dpi/proto"
)

// A protocol that is neither Modbus nor DNP3 is named in a policy and a
// baseline by the name its decoder registered; its function codes are
// numbers.
var policyProto = proto.New("toy-policy", "Toy")

func TestPolicyOtherProtocol(t *testing.T) {
	p, err := Parse([]byte(`version: 1
rules:
  - id: toy-writes
    when: {proto: toy-policy, fc: [2, 7-8]}
  - id: any-5
    when: {fc: [5]}
baseline:
  conversations:
    - {src: 10.0.0.1, dst: 10.0.0.2, proto: toy-policy, fc: [1, 2], writes_per_minute: 4}
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fc := p.Rules[0].When.FC
	if p.Rules[0].When.Proto != policyProto || !fc.Has(policyProto, 7) || fc.Has(policyProto, 5) || !fc.Modbus.Empty() || !fc.DNP3.Empty() {
		t.Errorf("rule toy-writes: proto %v, fc %+v", p.Rules[0].When.Proto, fc)
	}
	// A number without proto is the code of every protocol.
	if any := p.Rules[1].When.FC; !any.Has(policyProto, 5) || !any.Has(proto.Modbus, 5) || any.Has(policyProto, 6) {
		t.Errorf("rule any-5: fc %+v", any)
	}
	c := p.Baseline.Conversations[0]
	if c.Proto != policyProto || !c.FC.Has(2) || c.FC.Has(3) || c.WritesPerMinute != 4 {
		t.Errorf("conversation %+v", c)
	}
	var out bytes.Buffer
	p.Format(&out)
	for _, want := range []string{"when: {proto: toy-policy, fc: [2, 7, 8]}", "proto: toy-policy\n      fc: [1, 2]\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Format lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := Parse(out.Bytes(), "formatted.yaml"); err != nil {
		t.Errorf("the formatted policy does not parse again: %v", err)
	}
}

func TestPolicyOtherProtocolErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"rules:\n  - id: x\n    when: {proto: toy-polcy}\n", `"toy-polcy" is not a protocol (did you mean toy-policy?)`},
		{"rules:\n  - id: x\n    when: {proto: toy-policy, fc: [read_coils]}\n", `"read_coils": give Toy's function codes as numbers`},
		{"rules:\n  - id: x\n    when: {proto: toy-policy, unit: 1}\n", "unit is a Modbus field: it needs proto: modbus"},
		{"baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: toy-policy, unit: 3}\n", "unit is a Modbus field: it needs proto: modbus"},
		{"baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: toy-policy, values: [{group: 41, point: 1, min: 0, max: 1}]}\n", "values are learned for Modbus and DNP3 only"},
	} {
		_, err := Parse([]byte(c.yaml), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one with %q", c.yaml, err, c.want)
		}
	}
	// A policy built in Go is validated the same way.
	p := New()
	p.Baseline = &Baseline{RateFactor: 1, Conversations: []Conversation{{Proto: policyProto, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), LinkSrc: Ranges{{Lo: 1, Hi: 1}}}}}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "a toy-policy conversation has only fc, writes_per_minute and max_gap") {
		t.Errorf("Validate: %v", err)
	}
	p = New()
	r := Rule{ID: "x", Name: "x", Severity: SeverityMedium, Enabled: true, When: Match{Proto: policyProto}}
	r.When.FC.Modbus.Add(5)
	p.Rules = []Rule{r}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "has function codes of another protocol than proto toy-policy") {
		t.Errorf("Validate: %v", err)
	}
	p.Rules[0].When.FC = FuncCodes{}
	p.Rules[0].When.FC.Other.Add(5)
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
