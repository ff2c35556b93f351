package rules

import (
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
)

// The protocol-neutral dpi.Handler call, passed on to the per-protocol
// methods until the rules take messages through per-protocol adapters.

// perProto is a handler with a method per protocol.
type perProto interface {
	Modbus(f *dpi.Flow, m *modbus.Message)
	DNP3(f *dpi.Flow, fromServer bool, m *dnp3.Message)
}

// route passes m to h's method for its protocol, if h has one.
func route(h perProto, f *dpi.Flow, from dpi.Side, m any) {
	switch m := m.(type) {
	case *modbus.Message:
		h.Modbus(f, m)
	case *dnp3.Message:
		h.DNP3(f, from == dpi.FromServer, m)
	}
}

// Message implements dpi.Handler; it ignores protocols it does not know.
func (e *Engine) Message(f *dpi.Flow, from dpi.Side, m any) { route(e, f, from, m) }

// Message implements dpi.Handler; it ignores protocols it does not know.
func (l *Learner) Message(f *dpi.Flow, from dpi.Side, m any) { route(l, f, from, m) }
