// Package modbus frames and decodes Modbus/TCP application data units
// (MODBUS Application Protocol Specification V1.1b3; MODBUS Messaging on
// TCP/IP Implementation Guide V1.0b), and Modbus RTU frames carried over
// TCP by serial gateways (MODBUS over Serial Line V1.02; see ResetRTU).
//
// The decoder works on the reassembled byte stream of one TCP connection (or
// on one UDP datagram), never on single segments. It does not import fmt and
// never panics: malformed input becomes a Message with Malformed set.
//
// Framing follows the MBAP length, except that when the length disagrees
// with the length the PDU implies and a header starts where the PDU ends,
// the PDU wins (the message is flagged LengthMismatch), so that a lying
// length does not swallow the next ADU. After a gap, at a mid-stream start
// or after garbage, framing resyncs on a plausible header; each run of
// skipped bytes is reported once as NotModbus (with AfterLoss set when it
// follows lost bytes and so is most likely the tail of a cut ADU).
//
// Responses are paired with requests by transaction id, unit and function,
// falling back to the oldest pending request of the same unit and function.
// Requests left unanswered past Config.RequestTimeout (in packet time), or
// pushed out of the fixed pending table, are reported with
// OutcomeUnanswered.
//
// Slices in a Message (Values, PDU, Data, Objects, Records and the byte
// slices inside them) alias the caller's input or the Decoder's scratch space
// and are valid only during the Handler call.
package modbus

import (
	"errors"
	"time"

	"github.com/tapwatch/tapwatch/dpi/proto"
)

// Direction says who sent an ADU. The zero value is invalid.
type Direction uint8

const (
	Request  Direction = 1 // client (master) to server (slave)
	Response Direction = 2 // server to client
)

// Meta is the packet context of the bytes handed to Feed or Datagram: the
// time and 1-based capture frame number of the packet that completed them.
type Meta = proto.Meta

// Handler receives decoded messages. m and everything it points to is reused
// after the call returns.
type Handler interface {
	Message(m *Message)
}

// Pairing limits.
const (
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxPending     = 16
	// MaxPendingLimit bounds Config.MaxPending: the pending requests live in
	// a fixed array inside Conn, which is embedded in every flow record.
	MaxPendingLimit = 16
)

// Config tunes pairing. The zero value means defaults.
type Config struct {
	RequestTimeout time.Duration // a request with no response after this is unanswered; default 5s
	MaxPending     int           // outstanding requests remembered per connection; default 16, at most MaxPendingLimit
	// LazyValues leaves the values of read responses (FC 1-4, 23)
	// undecoded until the Handler calls Message.DecodeValues: the
	// response is still checked whole, but a pipeline that wants no
	// values read skips unpacking them. Requests' values are decoded.
	LazyValues bool
}

var (
	errNegativeTimeout = errors.New("modbus: request timeout must not be negative")
	errMaxPending      = errors.New("modbus: max pending requests must be between 0 (default) and 16")
)

// Validate reports settings that NewDecoder would silently replace.
func (c Config) Validate() error {
	if c.RequestTimeout < 0 {
		return errNegativeTimeout
	}
	if c.MaxPending < 0 || c.MaxPending > MaxPendingLimit {
		return errMaxPending
	}
	return nil
}

// Scratch sizes. The largest value list a valid PDU carries is 2000 coils
// (FC 1/2 response); a 253-byte PDU cannot hold more than 126 objects or
// file sub-records.
const (
	maxValues  = 2000
	maxObjects = 128
	maxRecords = 128
)

// Decoder holds scratch space shared by all connections of one pipeline. It
// is not safe for concurrent use.
type Decoder struct {
	timeout    time.Duration
	maxPending int
	lazy       bool   // Config.LazyValues
	lazyData   []byte // the values of the message being reported, left undecoded
	lazyN      int    // coils in lazyData, or -1: registers

	rtuWork int     // CRC steps resyncing may still spend on RTU frames of unknown length in this call
	msg     Message // the ADU being reported
	aux     Message // unanswered requests reported while msg is in use
	values  [maxValues]uint16
	objects [maxObjects]DeviceObject
	records [maxRecords]FileRecord
}

// NewDecoder returns a decoder. Zero or out-of-range settings are replaced
// by their defaults (MaxPending above MaxPendingLimit by the limit); use
// Config.Validate to reject them instead.
func NewDecoder(cfg Config) *Decoder {
	d := &Decoder{timeout: cfg.RequestTimeout, maxPending: cfg.MaxPending, lazy: cfg.LazyValues}
	if d.timeout <= 0 {
		d.timeout = DefaultRequestTimeout
	}
	if d.maxPending <= 0 {
		d.maxPending = DefaultMaxPending
	}
	if d.maxPending > MaxPendingLimit {
		d.maxPending = MaxPendingLimit
	}
	return d
}

// Conn is the state of one Modbus/TCP or Modbus RTU over TCP connection
// (both directions). It is meant to be embedded by value in a flow record
// and reused with Reset or ResetRTU. The zero value is a Modbus/TCP
// connection seen from its start.
type Conn struct {
	streams  [2]stream // indexed by Direction-1
	rtu      bool
	npending uint8
	pending  [MaxPendingLimit]pendingRequest
	// The transaction ids of the requests: the last one, and whether the
	// master numbers its transactions (tidNumbered: two requests had
	// different ids) or sends one id always (tidOne).
	lastTID  uint16
	tidState uint8
	// The ids of the last reuseWithin requests, a ring.
	recent  [reuseWithin]uint16
	nrecent uint8
}

// Reset prepares c for a new Modbus/TCP connection. midStream says the
// capture did not see the connection open, so framing must first resync on
// a valid header.
func (c *Conn) Reset(midStream bool) {
	*c = Conn{}
	if midStream {
		for i := range c.streams {
			c.streams[i].lost()
		}
	}
}

// ResetRTU prepares c for a new connection that carries Modbus RTU frames
// (slave address, PDU, CRC) instead of MBAP ADUs: a serial-to-Ethernet
// gateway's port. Its messages have no transaction id (TID 0), and a
// response is paired with the one request before it, as on a serial line:
// a request that comes while another waits leaves that one unanswered, and
// a broadcast (unit 0) waits for no response. Datagram takes whole frames.
func (c *Conn) ResetRTU(midStream bool) {
	c.Reset(midStream)
	c.rtu = true
}

// Pending returns how many requests are waiting for a response.
func (c *Conn) Pending() int { return int(c.npending) }

// Message is one decoded ADU.
type Message struct {
	Meta                // of the packet that completed this ADU
	Dir       Direction // Request or Response
	TID       uint16
	Unit      uint8
	FC        uint8 // without the exception bit; 0 when not Modbus at all
	Exception uint8 // exception code; 0 when not an exception response

	// HasAddr says Addr and Count are meaningful. Read responses (FC 1–4,
	// 23, 24) take them from the paired request; FC 23 requests carry the
	// write part here and the read part in ReadAddr and ReadCount; FC 24
	// carries the FIFO pointer address and, in responses, the FIFO count.
	HasAddr bool
	Addr    uint16 // starting address
	Count   uint16 // quantity of registers or coils; 1 for FC 5, 6, 22

	// Values are register values, or coils as 0 and 1 (the count of a coil
	// response comes from its request; an orphan shows every bit sent).
	// FC 5 gives the raw value when it is neither on nor off; FC 8 gives
	// its data as words. A read response's are nil until DecodeValues
	// when the Decoder has Config.LazyValues.
	Values []uint16

	// FC 23: the read part of the request. Responses carry it in Addr,
	// Count and Values (the registers read) and also here.
	ReadAddr  uint16
	ReadCount uint16

	// FC 22 mask write register.
	AndMask uint16
	OrMask  uint16

	// FC 7: the exception status byte; FC 11 and 12: the status word.
	Status       uint16
	EventCount   uint16 // FC 11, 12
	MessageCount uint16 // FC 12

	Sub uint16 // FC 8 sub-function; meaningful when FC == 8
	MEI uint8  // FC 43 MEI type; meaningful when FC == 43

	// FC 43 MEI 14 read device identification.
	DeviceIDCode uint8 // 1 basic, 2 regular, 3 extended, 4 one object
	ObjectID     uint8 // requested object; responses: from the paired request
	Conformity   uint8 // responses
	MoreFollows  bool  // responses: 0xFF in the more-follows field
	NextObjectID uint8 // responses
	NumObjects   uint8 // responses: the number-of-objects field
	Objects      []DeviceObject

	Records []FileRecord // FC 20, 21 sub-requests and sub-responses

	// Opaque payload: FC 8 data, FC 12 events, FC 17 server id, run
	// indicator and additional data, FC 43 MEI 13 data.
	Data []byte

	Malformed Reason // 0 when well formed

	// AfterLoss marks NotModbus bytes skipped after a gap or at a
	// mid-stream start, before any ADU was framed: most likely the tail
	// of an ADU cut by the loss rather than another protocol.
	AfterLoss bool

	// Reused marks a request that reuses the transaction id (and unit)
	// of a request still waiting for its response, with another function,
	// address, quantity or sub-function, on a connection whose master
	// numbers its transactions and has moved past that id, one of its
	// last four: two senders on one connection, or a master that lost
	// count. ReusedFrame is the
	// waiting request's frame. A repeat of the same request (an
	// application-level retry), more requests under the master's current
	// id, and a master that sends one transaction id always are not
	// marked.
	Reused      bool
	ReusedFrame uint64

	// Pairing.
	Outcome      Outcome
	Latency      time.Duration // responses paired with a request
	RequestFrame uint64        // frame of the paired request

	// PDU is the function code and data, aliasing the input. For NotModbus
	// it holds the first skipped bytes (at most 260); for BadCRC the whole
	// RTU frame, address and CRC included.
	PDU []byte

	lazy *Decoder // holds the undecoded Values (Config.LazyValues)
}

// DecodeValues decodes the values of a read response that the Decoder,
// configured with LazyValues, left undecoded: it fills Values. It does
// nothing when they are decoded already, or there are none. Call it from
// the Handler only: the Decoder reuses its buffers for the next message.
func (m *Message) DecodeValues() {
	d := m.lazy
	if d == nil {
		return
	}
	m.lazy = nil
	m.Values = d.unpack(d.lazyData, d.lazyN)
}

// DeviceObject is one object of a read device identification response.
type DeviceObject struct {
	ID    uint8
	Value []byte
}

// FileRecord is one sub-request or sub-response of FC 20 or 21. Read
// responses carry only RefType, Length and Data.
type FileRecord struct {
	RefType uint8  // always 6 when well formed
	File    uint16 // file number
	Record  uint16 // starting record number
	Length  uint16 // record length in registers
	Data    []byte // record data (FC 21, FC 20 responses)
}

// Reason says why a message is malformed. The zero value means not malformed.
type Reason uint8

// Outcome of pairing.
type Outcome uint8

const (
	OutcomeNone       Outcome = iota // requests when decoded
	OutcomeOK                        // response paired with its request
	OutcomeException                 // exception response paired with its request
	OutcomeOrphan                    // response with no request
	OutcomeUnanswered                // request given up on (Expire or Close)
)

// HasFunction reports whether FC is meaningful: false for skipped bytes
// (NotModbus), for headers whose length made the PDU unreadable, and for
// RTU frames with a wrong CRC (BadCRC: Unit and FC say what the frame
// claims, but its slave would have dropped it).
func (m *Message) HasFunction() bool {
	if m.Outcome == OutcomeUnanswered {
		return true // repeats a request that had one
	}
	return m.Malformed != NotModbus && m.Malformed != BadCRC && len(m.PDU) > 0
}
