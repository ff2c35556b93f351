package rules

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// A toy protocol, defined only here, reaches the engine through its
// adapter alone: a message is a line of text; "SET" lines are write
// requests, anything else a read request, and "!" lines are not evaluated
// at all.

var toyProto = proto.New("toy-rules", "Toy")

type toyMsg struct {
	t    time.Time
	line string
}

type toyAdapter struct{ ops *int }

func (toyAdapter) Proto() proto.ID { return toyProto }

func (a toyAdapter) Op(op *Op, f *dpi.Flow, from dpi.Side, m any) Use {
	tm, ok := m.(*toyMsg)
	if !ok {
		return UseNone
	}
	*a.ops++
	*op = Op{Time: tm.t, Proto: toyProto, Flow: f, Src: f.Client, Dst: f.Server, Request: from == dpi.FromClient, FC: 1, Class: policy.OpRead}
	if len(tm.line) >= 3 && tm.line[:3] == "SET" {
		op.FC, op.Class = 2, policy.OpWrite
	}
	if tm.line == "!" {
		return UseTime
	}
	return UseRules
}

func (toyAdapter) Classes(fc uint8) policy.OpSet {
	if fc == 2 {
		return 1 << policy.OpWrite
	}
	return 1 << policy.OpRead
}
func (toyAdapter) Match(*policy.Match, *Op) bool                { return true }
func (toyAdapter) MatchPayload(*policy.Match, *Op) bool         { return true }
func (toyAdapter) Endpoint(*policy.Endpoint, *Op, bool) bool    { return true }
func (toyAdapter) Values(r *policy.Rule, op *Op, v *Violations) {}
func (toyAdapter) HasFunction(*Op) bool                         { return true }
func (toyAdapter) Unclassed(*Op) bool                           { return true }
func (toyAdapter) Device(*Op) uint16                            { return 0 }
func (toyAdapter) Learn(*Op, Learned)                           {}
func (toyAdapter) Alert(a *Alert, op *Op, _ bool)               { a.FCName = "toy" }
func (toyAdapter) Wire(ev *event.Alert, a *Alert) {
	u := uint8(99)
	ev.Unit = &u // a field the toy borrows, to show its Wire runs
}

func toyFlow() *dpi.Flow {
	return &dpi.Flow{ID: 77, Transport: dpi.TCP, App: toyProto,
		Client: netip.MustParseAddrPort("10.10.1.10:40000"), Server: netip.MustParseAddrPort("10.10.1.20:7777")}
}

// TestAdapterDispatch: the engine hands a message to the
// adapter of its flow's protocol, and ignore a protocol without one.
func TestAdapterDispatch(t *testing.T) {
	var ops int
	rec := &recorder{}
	e, err := NewEngine(nil, rec, EngineOptions{Adapters: []Adapter{toyAdapter{&ops}}})
	if err != nil {
		t.Fatal(err)
	}
	f := toyFlow()
	e.Message(f, dpi.FromClient, &toyMsg{t: t0, line: "GET"})
	if ops != 1 {
		t.Fatalf("the toy adapter saw %d messages, want 1", ops)
	}

	// Without the adapter, the engine does not look at the message.
	plain, _ := NewEngine(nil, rec, EngineOptions{})
	plain.Message(f, dpi.FromClient, &toyMsg{t: t0, line: "GET"})
	if ops != 1 || plain.clock != 0 {
		t.Errorf("an engine without the toy adapter took its message (adapter calls %d, clock %d)", ops, plain.clock)
	}
	// The default registry is shared, not copied, by engines without
	// extra adapters, and an extra adapter leaves it alone.
	if plain.ads != &defaultAdapters || defaultAdapters[toyProto] != nil || e.ads[toyProto] == nil {
		t.Error("extra adapters changed the default registry")
	}
	if e.ads[proto.Modbus] == nil || e.ads[proto.DNP3] == nil {
		t.Error("extra adapters dropped a default one")
	}
}

// TestAdapterPolicyRule: a policy rule that names no protocol applies to
// the toy protocol through its adapter, and the alert it raises carries
// the adapter's fields on the wire.
func TestAdapterPolicyRule(t *testing.T) {
	var ops int
	e, rec := newTestEngine(t, `
  - id: no-writes-to-plc1
    when: {dst: plc1, op: write}
`, EngineOptions{Adapters: []Adapter{toyAdapter{&ops}}})
	f := toyFlow()
	e.Message(f, dpi.FromClient, &toyMsg{t: t0, line: "GET x"})
	e.Message(f, dpi.FromClient, &toyMsg{t: t0.Add(time.Second), line: "SET x 1"})
	if got := rec.rules(); len(got) != 1 || got[0] != "no-writes-to-plc1" {
		t.Fatalf("alerts %v, want one of no-writes-to-plc1", got)
	}
	a := rec.alerts[0]
	if a.Proto != toyProto || a.FC != 2 || a.FCName != "toy" || a.Src != f.Client || a.Dst != f.Server {
		t.Errorf("alert %+v", a)
	}
	ev := a.Event()
	if ev.Proto != "toy-rules" || ev.Unit == nil || *ev.Unit != 99 || ev.FCName != "toy" {
		t.Errorf("wire alert: proto %q, unit %v, fc name %q", ev.Proto, ev.Unit, ev.FCName)
	}
}
