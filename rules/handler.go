package rules

import (
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
)

// The protocol-neutral dpi.Handler call, passed on to the per-protocol
// methods until the rules take messages through per-protocol adapters.
// Each handler calls its own methods, directly: the engine sees every
// message, and a second dispatch through an interface costs more.

// split is m as the message of its protocol; both are nil for a protocol
// the rules do not know.
func split(m any) (*modbus.Message, *dnp3.Message) {
	switch m := m.(type) {
	case *modbus.Message:
		return m, nil
	case *dnp3.Message:
		return nil, m
	}
	return nil, nil
}

// Message implements dpi.Handler; it ignores protocols it does not know.
func (e *Engine) Message(f *dpi.Flow, from dpi.Side, m any) {
	if mb, dn := split(m); mb != nil {
		e.Modbus(f, mb)
	} else if dn != nil {
		e.DNP3(f, from == dpi.FromServer, dn)
	}
}

// Message implements dpi.Handler; it ignores protocols it does not know.
func (l *Learner) Message(f *dpi.Flow, from dpi.Side, m any) {
	if mb, dn := split(m); mb != nil {
		l.Modbus(f, mb)
	} else if dn != nil {
		l.DNP3(f, from == dpi.FromServer, dn)
	}
}
