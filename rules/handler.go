package rules

import (
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
)

// The protocol-neutral dpi.Handler call, passed on to the per-protocol
// methods until the rules take messages through per-protocol adapters.
// Each handler switches on the message's type itself: the engine sees
// every message, and a direct call costs less than a second dispatch.

// Message implements dpi.Handler; it ignores protocols it does not know.
func (e *Engine) Message(f *dpi.Flow, from dpi.Side, m any) {
	switch m := m.(type) {
	case *modbus.Message:
		e.Modbus(f, m)
	case *dnp3.Message:
		e.DNP3(f, from == dpi.FromServer, m)
	}
}

// Message implements dpi.Handler; it ignores protocols it does not know.
func (l *Learner) Message(f *dpi.Flow, from dpi.Side, m any) {
	switch m := m.(type) {
	case *modbus.Message:
		l.Modbus(f, m)
	case *dnp3.Message:
		l.DNP3(f, from == dpi.FromServer, m)
	}
}
