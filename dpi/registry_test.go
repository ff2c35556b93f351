package dpi

import (
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
)

func TestValidateProtocols(t *testing.T) {
	for _, p := range []proto.Protocol{
		{ID: proto.None, NewDecoder: modbus.Protocol(modbus.Config{}).NewDecoder},
		{ID: proto.Modbus},
	} {
		err := Config{Protocols: []proto.Protocol{p}}.Validate()
		if err == nil || !strings.Contains(err.Error(), "no ID or no decoder") {
			t.Errorf("%+v: error %v", p, err)
		}
	}
	if err := (Config{Protocols: DefaultProtocols(Config{})}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestRegistryOrder: serial protocols' ports are tried first, whatever
// their place in the registry, and only for TCP; then the others in order.
func TestRegistryOrder(t *testing.T) {
	mb, rtu := modbus.Protocol(modbus.Config{}), modbus.RTUProtocol(modbus.Config{})
	rtu.Ports = []uint16{502, 4001}
	other := mb
	other.ID = proto.DNP3 // any other protocol on the same port, listed later
	e, err := New(Config{Protocols: []proto.Protocol{mb, other, rtu}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t          Transport
		a, b       uint16
		dec, srv   int
		serial     bool
		wantString string
	}{
		{TCP, 50000, 502, 1, 1, true, "modbus"},  // the serial entry, moved first
		{UDP, 50000, 502, 2, 1, false, "modbus"}, // not serial over UDP
		{TCP, 4001, 50000, 1, 0, true, "modbus"},
		{TCP, 50000, 50001, 0, 0, false, "none"},
	} {
		dec, srv := e.appFor(c.t, c.a, c.b)
		got := "none"
		if dec != 0 {
			got = e.protos[dec-1].ID.String()
			if e.protos[dec-1].Serial != c.serial {
				t.Errorf("%v %d-%d: serial %v", c.t, c.a, c.b, !c.serial)
			}
		}
		if dec != c.dec || srv != c.srv || got != c.wantString {
			t.Errorf("%v %d-%d: protocol %d (%s) server %d, want %d (%s) %d", c.t, c.a, c.b, dec, got, srv, c.dec, c.wantString, c.srv)
		}
	}
}
