// Package proto is the contract between dpi and the protocol decoders: the
// one identity of an industrial protocol, and the descriptor each decoder
// package exports so that dpi can run it without knowing it.
//
// It imports nothing of tapwatch, so dpi, the decoder packages, rules,
// event and config can all use it without import cycles. dpi itself
// cannot hold these types: it imports the decoders to register them by
// default, and the decoders need the types to describe themselves.
package proto

import (
	"sync"
	"sync/atomic"
	"time"
)

// ID names an application protocol. Its String is the name used on the
// wire, in config and in the operations log. The zero value is no
// protocol.
type ID uint8

// The protocols tapwatch decodes. New ones get their ID from New.
const (
	None   ID = 0
	Modbus ID = 1
	DNP3   ID = 2
)

type names struct{ name, title string }

var (
	table = [256]names{
		None:   {"none", "none"},
		Modbus: {"modbus", "Modbus"},
		DNP3:   {"dnp3", "DNP3"},
	}
	count atomic.Uint32 // entries of table in use
	mu    sync.Mutex    // serialises New
)

func init() { count.Store(uint32(DNP3) + 1) }

// New returns a fresh ID for a protocol that has no constant above, or the
// ID already given to name. name is the lower-case name used on the wire
// and in config; title is how prose spells it. It panics when the 255
// IDs are used up. Call it from a package variable's initialiser.
func New(name, title string) ID {
	mu.Lock()
	defer mu.Unlock()
	if id, ok := Lookup(name); ok {
		return id
	}
	n := count.Load()
	if n >= uint32(len(table)) {
		panic("proto: too many protocols")
	}
	table[n] = names{name, title}
	count.Store(n + 1) // publishes the entry to readers
	return ID(n)
}

// Lookup returns the ID whose name is name.
func Lookup(name string) (ID, bool) {
	n := count.Load()
	for i := uint32(1); i < n; i++ {
		if table[i].name == name {
			return ID(i), true
		}
	}
	return None, false
}

// Names returns the names of every protocol with an ID, in ID order.
func Names() []string {
	n := count.Load()
	out := make([]string, 0, n-1)
	for i := uint32(1); i < n; i++ {
		out = append(out, table[i].name)
	}
	return out
}

// String is the protocol's name on the wire and in config: "modbus",
// "dnp3". An ID that New did not give is "invalid".
func (id ID) String() string {
	if uint32(id) < count.Load() {
		return table[id].name
	}
	return "invalid"
}

// Title is the protocol's name as prose spells it: "Modbus", "DNP3".
func (id ID) Title() string {
	if uint32(id) < count.Load() {
		return table[id].title
	}
	return "invalid"
}

// Side says which end of a flow sent bytes or a message: the client
// opened the connection (for TCP) or sent to the protocol's port (for
// UDP). The zero value is invalid.
type Side uint8

const (
	FromClient Side = 1
	FromServer Side = 2
)

// Meta is the packet context of the bytes handed to a Stream: the time
// and 1-based capture frame number of the packet that completed them.
type Meta struct {
	Time  time.Time
	Frame uint64
}

// Sink receives the messages a Stream decodes. m is a pointer to the
// decoder's reused message (a *modbus.Message, a *dnp3.Message...), valid
// only during the call; from says which end sent it. Passing a pointer in
// an interface allocates nothing.
type Sink interface {
	Message(from Side, m any)
}

// Stream is the decoder state of one flow, both directions. dpi keeps one
// per flow record and protocol, and reuses it with Reset. The meta a
// method is given points at dpi's own, valid only during the call: a
// stream copies what it keeps of it. (A pointer, because Feed runs for
// every segment: the four words were copied at each of three calls.)
type Stream interface {
	// Reset prepares the stream for a new flow. midStream says the capture
	// did not see it start, so framing must first resync.
	Reset(midStream bool)
	// Feed decodes contiguous stream bytes sent by from and returns how
	// many it consumed; dpi keeps data[n:] and presents them again,
	// followed by new bytes, on the next call.
	Feed(from Side, data []byte, meta *Meta, s Sink) (n int)
	// Gap says bytes sent by from were lost; pending is what dpi still
	// held before the hole.
	Gap(from Side, pending []byte, meta *Meta, s Sink)
	// Datagram decodes one UDP payload sent by from.
	Datagram(from Side, data []byte, meta *Meta, s Sink)
	// Close ends the flow: what is incomplete is reported.
	Close(meta *Meta, s Sink)
}

// Decoder is a protocol's decoder for one dpi engine: the scratch space
// its flows share. It is not safe for concurrent use.
type Decoder interface {
	// NewStream returns state for one flow, sharing the decoder's scratch.
	NewStream() Stream
}

// Protocol describes a decoder to dpi. A decoder package exports a
// function that returns one, taking the package's own config.
type Protocol struct {
	ID ID
	// Ports are the default TCP and UDP ports; dpi.Config may replace
	// them. The side on the port is the server.
	Ports []uint16
	// Serial says the protocol's ports carry serial-line frames in a TCP
	// stream (a serial-to-Ethernet gateway), a transport variant of the
	// protocol: TCP only, and its ports are tried before other
	// protocols'.
	Serial bool
	// Detect, if set, recognises the protocol by content on a port no
	// protocol claims: it reports whether payload, the first a flow
	// carries, is the protocol's, and whether its sender is the client.
	Detect func(payload []byte) (ok, fromClient bool)
	// NewDecoder returns the decoder for one engine.
	NewDecoder func() Decoder
}

// Loggable is implemented by a message type that the operations log can
// write without knowing its protocol: a line holds the fields every
// protocol shares, then the message's own.
type Loggable interface {
	// Packet is the context of the packet that completed the message.
	Packet() Meta
	// AppendFields appends the message's own fields to b, each as
	// `,"name":value` in JSON.
	AppendFields(b []byte) []byte
}
