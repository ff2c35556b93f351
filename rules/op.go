package rules

import (
	"net/netip"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Op is one decoded operation as rules see it, whatever the protocol: a
// Modbus request or response, or a DNP3 application fragment. It points
// into the decoder's message, so it is valid only during the call that
// hands it over.
type Op struct {
	Time     time.Time
	Frame    uint64
	Proto    proto.ID
	Flow     *dpi.Flow
	Src, Dst netip.AddrPort // sender and receiver of this message
	Request  bool           // sent by the master (Modbus client, DNP3 master)
	Class    policy.OpClass // 0 for responses and for function codes outside every class
	FC       uint8

	// Modbus.
	Unit    uint8
	Table   policy.Table // 0 when the function addresses no table
	HasAddr bool
	Addr    uint16
	Count   uint16
	Values  []uint16 // written values (requests) or read values (responses; the dpi engine leaves a Modbus read response's undecoded: nil here, in Modbus.Values after Modbus.DecodeValues)

	// DNP3.
	LinkSrc, LinkDst uint16

	Modbus *modbus.Message // the decoded message, for detectors that need more
	DNP3   *dnp3.Message

	memo *memoDir // what the engine keeps about the flow, in this direction; nil without a flow, or outside Engine.Message
	nano int64    // Time.UnixNano(), which the detectors read many times a message; set by Engine.Message and Evaluate
}
