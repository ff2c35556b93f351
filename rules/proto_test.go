package rules

import (
	"testing"

	"github.com/tapwatch/tapwatch/dpi/proto"
)

// TestProtoIdentity: rules.Proto keeps the values and names of the one
// protocol identity, proto.ID, until it becomes an alias of it.
func TestProtoIdentity(t *testing.T) {
	for _, c := range []struct {
		p  Proto
		id proto.ID
	}{{ProtoModbus, proto.Modbus}, {ProtoDNP3, proto.DNP3}} {
		if uint8(c.p) != uint8(c.id) || c.p.String() != c.id.String() || c.p.title() != c.id.Title() {
			t.Errorf("rules %d %q %q, proto %d %q %q", c.p, c.p, c.p.title(), c.id, c.id, c.id.Title())
		}
	}
}
