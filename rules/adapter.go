package rules

import (
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Adapter is what the rules know of one protocol. It turns the messages of
// the protocol's decoder into an Op, and answers the questions whose
// answer differs by protocol. Modbus and DNP3 have theirs
// (adapter_modbus.go, adapter_dnp3.go, each registering itself from
// init); EngineOptions.Adapters and learn.Options.Adapters add more.
//
// The engine calls an adapter for every message, so its methods must
// allocate nothing, except Alert, which runs only when an alert fires.
type Adapter interface {
	// Proto is the protocol the adapter serves: messages on flows whose
	// App is Proto come to it.
	Proto() proto.ID
	// Op fills op from m, a message of the protocol's decoder that from
	// sent on flow f, and says what the engine does with it.
	Op(op *Op, f *dpi.Flow, from dpi.Side, m any) Use
	// HasFunction reports whether op's FC is a function code, not the
	// byte where one would be in a message too damaged to have one.
	HasFunction(op *Op) bool
	// Classes is the set of classes a request with function code fc may
	// have: one, or none (the bit of class 0), or more when the class
	// depends on more than the function code.
	Classes(fc uint8) policy.OpSet
	// Match reports whether op satisfies the fields of m that only this
	// protocol has and that are cheap to test; MatchPayload tests those
	// that need the message decoded further, after the addresses.
	Match(m *policy.Match, op *Op) bool
	MatchPayload(m *policy.Match, op *Op) bool
	// Endpoint reports whether op satisfies the protocol's fields of ep, an
	// endpoint whose address matched op's source (isSrc) or destination.
	Endpoint(ep *policy.Endpoint, op *Op, isSrc bool) bool
	// Values adds to v the values op writes that r selects and that lie
	// outside r.Value (r is a value rule).
	Values(r *policy.Rule, op *Op, v *Violations)
	// Unclassed reports whether op, a request whose function has no
	// class, may change anything: it then folds with writes.
	Unclassed(op *Op) bool
	// Learn tells to what a request teaches beyond its conversation
	// (master, device, protocol), its function code and its rate of
	// writes, which the learner takes from every protocol's Op itself;
	// and, for a response (op.Request false) in a conversation learned
	// from its requests, what the device answered (Learned.Answered,
	// Learned.Reported). It runs only while learning.
	Learn(op *Op, to Learned)
	// Device is what op addresses within its destination host (a Modbus
	// unit, a DNP3 link address); alerts about different devices are not
	// folded together.
	Device(op *Op) uint16
	// Alert fills the fields of an alert about op that depend on the
	// protocol: device, function name and evidence, and, when addr is
	// true, the address range and values op carries.
	Alert(a *Alert, op *Op, addr bool)
	// Wire fills the fields of ev, a's wire message, that only this
	// protocol has.
	Wire(ev *event.Alert, a *Alert)
}

// Learned is where an adapter's Learn puts what a request teaches, in
// the terms of the baseline file (Conversation, Asset). A protocol with
// none of these fields learns only its conversations.
type Learned interface {
	// Unit: the request addressed Modbus unit u; device says u names the
	// device (unit 0 is a broadcast).
	Unit(u uint8, device bool)
	// Link: the request went from DNP3 link address src to dst; the
	// master's and the device's own addresses are those below 0xFFF0.
	Link(src, dst uint16)
	// Addresses: the request read (write false) or wrote lo..hi of Modbus
	// table t.
	Addresses(t policy.Table, write bool, lo, hi uint32)
	// Points: the request named DNP3 object gv, and points lo..hi of it
	// when some is true.
	Points(gv policy.GroupVar, some bool, lo, hi uint32)
	// Value: the request wrote x at address at of Modbus table t, or of
	// DNP3 object group g when t is 0.
	Value(t policy.Table, g uint8, at uint32, x float64)
	// Answered (responses): the device answered a read of lo..hi of
	// Modbus table t with data.
	Answered(t policy.Table, lo, hi uint32)
	// Reported (responses): the device reported DNP3 object gv, and
	// points lo..hi of it when some is true.
	Reported(gv policy.GroupVar, some bool, lo, hi uint32)
}

// Use is what the engine does with an Op.
type Use uint8

const (
	UseNone   Use = iota // not a message of the adapter's protocol: op is left as it was
	UseTime              // only the engine's clock moves to op.Time; nothing else sees it
	UseDetect            // the built-in detectors see it, the rules do not
	UseRules             // the detectors and the rules see it, and the learner learns from it
)

// Adapters is a registry of adapters, indexed by protocol.
type Adapters [256]Adapter

// defaultAdapters are the adapters of the protocols tapwatch ships; each
// adapter file registers its own (registerAdapter).
var defaultAdapters Adapters

// registerAdapter adds a to the default registry; adapter files call it
// from init.
func registerAdapter(a Adapter) {
	if defaultAdapters[a.Proto()] != nil {
		panic("rules: two adapters for protocol " + a.Proto().String())
	}
	defaultAdapters[a.Proto()] = a
}

// NewAdapters returns the default registry with extra added; an extra
// adapter replaces a default one of the same protocol. Without extra it
// returns the default registry itself, which callers must not change.
func NewAdapters(extra ...Adapter) *Adapters {
	if len(extra) == 0 {
		return &defaultAdapters
	}
	r := defaultAdapters
	for _, a := range extra {
		r[a.Proto()] = a
	}
	return &r
}

// span is one more than the highest protocol with an adapter.
func (r *Adapters) span() int {
	for p := len(r) - 1; p > 0; p-- {
		if r[p] != nil {
			return p + 1
		}
	}
	return 1
}

// setEvidence copies the first MaxAlertEvidence bytes of b into a.
func setEvidence(a *Alert, b []byte) {
	if len(b) > 0 {
		a.Evidence = append([]byte(nil), b[:min(len(b), MaxAlertEvidence)]...)
	}
}
