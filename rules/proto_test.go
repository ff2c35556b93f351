package rules

import (
	"testing"

	"github.com/tapwatch/tapwatch/dpi/proto"
)

// TestProtoIdentity: the policy's protocols are the one protocol identity,
// with the names a policy file uses.
func TestProtoIdentity(t *testing.T) {
	var p Proto = proto.Modbus // the same type: no conversion
	if p != ProtoModbus || ProtoDNP3 != proto.DNP3 || ProtoModbus.String() != "modbus" || ProtoDNP3.Title() != "DNP3" {
		t.Errorf("modbus %q %q, dnp3 %q %q", ProtoModbus, ProtoModbus.Title(), ProtoDNP3, ProtoDNP3.Title())
	}
}
