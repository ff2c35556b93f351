// Package dnp3 frames and decodes DNP3 (IEEE Std 1815-2012): the data link
// layer (FT3 frames with CRC-16/DNP per header and per 16-byte block), the
// transport function (fragment reassembly by FIR, FIN and sequence), and the
// application layer (control, function code, internal indications, object
// headers with every qualifier, and the point values of the groups rules
// need). It runs over a reassembled TCP stream or UDP datagrams.
//
// The package imports no fmt and never panics: malformed input becomes a
// typed Reason on the Message. Slices in a Message alias the caller's input
// or the Decoder's scratch space and are valid only during the Handler call.
package dnp3

import (
	"time"

	"github.com/tapwatch/tapwatch/dpi/proto"
)

// The package's API: the types and the entry points, which forward to the
// implementations in link.go, transport.go, app.go and sbo.go. dpi runs
// the decoder through Protocol (proto.go); the entry points below serve
// other callers: tests, fuzzers, examples and tools that decode bytes
// without dpi.

// Side says which end of the connection sent bytes: the client opened the
// connection (for TCP) or sent to the DNP3 port (for UDP). It keeps framing
// state apart per direction; who is master is read from the link layer's
// DIR bit, not from Side. The zero value is invalid.
type Side = proto.Side

const (
	FromClient = proto.FromClient
	FromServer = proto.FromServer
)

// Meta is the packet context of the bytes handed to Feed or Datagram: the
// time and 1-based capture frame number of the packet that completed them.
type Meta = proto.Meta

// Handler receives decoded messages. m and everything it points to is reused
// after the call returns.
type Handler interface {
	Message(m *Message)
}

// Config tunes the decoder. The zero value of each field means its default.
type Config struct {
	MaxFragment   int           // longest application fragment reassembled; default 2048
	SelectTimeout time.Duration // an OPERATE later than this after its SELECT is late; default 10s
	MaxObjects    int           // object headers decoded per fragment; default 64 (more is an anomaly)
	MaxPoints     int           // point values decoded per fragment; default 512 (more are counted, not decoded)
	FloodRequests int           // requests waiting for a response, on one connection, before RequestFlood; default 32
	// LazyPoints leaves point values undecoded until the Handler calls
	// Message.DecodePoints: object headers are still walked and checked,
	// but a pipeline that needs no values skips the work.
	LazyPoints bool
}

// Decoder holds scratch space shared by all connections of one pipeline:
// the Message, object headers, points. It is not safe for concurrent use.
type Decoder struct {
	cfg  Config
	msg  Message
	link linkScratch // owned by link.go / transport.go
	app  appScratch  // owned by app.go
}

// Conn is the state of one DNP3 conversation (one TCP connection or UDP
// flow): link framing per direction, transport reassembly per (link
// source, link destination, direction), and select-before-operate
// tracking. It is allocated once per flow record and reused with Reset.
type Conn struct {
	link linkState // owned by link.go / transport.go
	sbo  sboState  // owned by sbo.go

	waiting uint16 // requests since the last response
	flooded bool   // RequestFlood was reported for this run of requests
}

// NewDecoder returns a decoder; cfg must have passed Validate.
func NewDecoder(cfg Config) *Decoder { return newDecoder(cfg) }

// Validate checks cfg after defaults are applied; errors name the field and
// the bad value.
func (c Config) Validate() error { return c.validate() }

// Reset prepares c for a new conversation. midStream says the capture did
// not see it start: framing first resyncs on a valid header and the first
// fragments may lack their FIR.
func (c *Conn) Reset(midStream bool) { c.reset(midStream) }

// Feed frames and decodes contiguous stream bytes sent by side. It returns
// how many bytes were consumed; the caller keeps data[n:] and presents them
// again, followed by new bytes, on the next call. Unconsumed bytes never
// exceed one link frame (292 bytes).
func (d *Decoder) Feed(c *Conn, side Side, data []byte, meta Meta, h Handler) (n int) {
	return d.feed(c, side, data, &meta, h)
}

// Gap tells c that bytes sent by side were lost. pending is what the caller
// still held before the hole; transport reassembly in that direction is
// abandoned and framing resyncs on the next valid header.
func (d *Decoder) Gap(c *Conn, side Side, pending []byte, meta Meta, h Handler) {
	d.gap(c, side, pending, &meta, h)
}

// Datagram decodes one UDP datagram, which holds one or more link frames.
func (d *Decoder) Datagram(c *Conn, side Side, data []byte, meta Meta, h Handler) {
	d.datagram(c, side, data, &meta, h)
}

// Close ends the conversation: incomplete fragments are reported as
// truncated.
func (d *Decoder) Close(c *Conn, meta Meta, h Handler) { d.close(c, &meta, h) }

// Detect reports whether b starts with a DNP3 link header whose CRC is
// valid: enough to recognise DNP3 on any port.
func Detect(b []byte) bool { return detect(b) }

// Kind says what a Message is. The zero value is invalid.
type Kind uint8

const (
	KindApplication Kind = 1 // a complete (or truncated) application fragment
	KindLink        Kind = 2 // a link-only frame: reset link, test link, link status, ack/nack...
	KindGarbage     Kind = 3 // bytes skipped while resyncing, or a frame that could not be used
)

// Direction of an application fragment or link frame. The zero value is invalid.
type Direction uint8

const (
	Request     Direction = 1 // master to outstation (application fc 0–33; link PRM=1)
	Response    Direction = 2 // solicited response (129), authentication response (131); link PRM=0
	Unsolicited Direction = 3 // unsolicited response (130)
)

// LinkHeader is the decoded link header of a frame (of the last frame of
// an application fragment).
type LinkHeader struct {
	Length  uint8  // the LENGTH field
	Control uint8  // the raw control octet
	Dst     uint16 // destination address
	Src     uint16 // source address
	DIR     bool   // set: sent by the master
	PRM     bool   // set: primary (initiating) frame
	FCB     bool   // frame count bit (primary frames)
	FCV     bool   // frame count valid (primary) / DFC (secondary)
	Func    uint8  // link function code (4 bits)
}

// ObjectHeader is one object header of an application fragment.
type ObjectHeader struct {
	Group     uint8
	Variation uint8
	Qualifier uint8 // raw qualifier octet
	Prefix    uint8 // object prefix code (qualifier bits 4–6)
	Range     uint8 // range specifier code (qualifier bits 0–3)
	HasRange  bool  // Start and Stop are meaningful (range codes 0–5)
	Start     uint32
	Stop      uint32
	Count     uint32 // number of objects (range codes 7–9, 0x0B; or Stop-Start+1)
	Size      int    // bytes of object data after the header; -1 when unknown
	Offset    int    // where the object data starts in the message's Fragment
	// Points[FirstPoint : FirstPoint+NumPoints] of the Message are this
	// header's decoded point values.
	FirstPoint int
	NumPoints  int
}

// Point is one decoded object (point) value. Which fields are meaningful
// depends on the group: see the package documentation of points.go.
type Point struct {
	Index    uint32  // point index (from the range or the prefix)
	Value    float64 // state (0/1), double-bit state (0–3), counter, analog value, time delay
	Flags    uint8   // the flags octet, when the variation has one
	HasFlags bool
	Time     uint64 // DNP3 time: milliseconds since 1970-01-01 UTC (48 bits)
	HasTime  bool
	// Control relay output block (group 12) and analog output commands
	// (group 41): control code, count, on and off times, status.
	Code    uint8
	Count   uint8
	OnTime  uint32
	OffTime uint32
	Status  uint8
	Octets  []byte // octet strings (groups 110, 111), file data; aliases the fragment
}

// SBOResult is what select-before-operate tracking concluded for an
// OPERATE request (fc 4). The zero value means not applicable.
type SBOResult uint8

const (
	SBONone     SBOResult = iota // not an OPERATE
	SBOMatched                   // a SELECT with the same objects came first, in time
	SBONoSelect                  // no SELECT before this OPERATE
	SBOMismatch                  // the SELECT had other objects or parameters
	SBOLate                      // the SELECT was older than the select timeout
)

// Message is one application fragment, link-only frame, or run of
// garbage.
type Message struct {
	Meta
	Kind Kind
	Link LinkHeader
	Dir  Direction

	// Transport: how the fragment was assembled.
	Segments int   // transport segments in the fragment
	FirstSeq uint8 // transport sequence of the first segment
	// Truncated: for a fragment, it never saw its FIN (stream ended, gap,
	// or limit); for garbage, the bytes follow a loss (a gap, or the start
	// of a capture that joined mid-stream), so they are most likely the
	// rest of a frame the capture never saw whole.
	Truncated bool

	// Application layer (Kind == KindApplication).
	AppControl uint8 // raw application control octet
	FIR, FIN   bool
	CON, UNS   bool
	Seq        uint8  // application sequence (4 bits)
	FC         uint8  // application function code
	IIN        uint16 // internal indications, responses only: first octet in bits 0–7, second in 8–15
	HasIIN     bool
	Objects    []ObjectHeader
	Points     []Point
	MorePoints int // points present but not decoded (over MaxPoints)

	SBO SBOResult // OPERATE requests

	// Malformed is the first anomaly found; Anomalies has every one (a
	// bit per Reason).
	Malformed Reason
	Anomalies uint64

	Fragment []byte // the application fragment, aliases scratch space
	Raw      []byte // for KindGarbage: the skipped bytes (at most 292)

	lazy *appScratch // set while points wait for DecodePoints
}

// Reason is a typed anomaly. The zero value means none.
type Reason uint8

// Anomalies. Names (String) are snake_case.
const (
	BadHeaderCRC         Reason = 1 + iota // link header CRC does not match
	BadBlockCRC                            // a user-data block CRC does not match
	LinkTooShort                           // LENGTH below 5
	NotDNP3                                // bytes between frames that are no link frame
	BadLinkFunction                        // reserved link function code for the PRM bit, or user data on a function that carries none
	MissingFIR                             // a transport segment without FIR and no fragment in progress
	SequenceOutOfOrder                     // transport sequence not the previous + 1 (mod 64)
	FragmentTooLong                        // reassembly longer than MaxFragment
	FragmentTruncated                      // fragment ended without FIN (gap, stream end)
	AppTooShort                            // application header shorter than its function needs
	UnknownFunction                        // application function code not assigned
	BadQualifier                           // reserved prefix or range code
	UnknownObject                          // group/variation whose size cannot be known: decoding stopped
	ObjectTooShort                         // object data shorter than the header says
	TooManyObjects                         // more object headers than MaxObjects
	BadRange                               // stop before start, or a count that cannot fit
	ObjectsNotAllowed                      // objects where the function takes none
	SelectMismatch                         // OPERATE objects differ from the SELECT's
	OperateWithoutSelect                   // OPERATE with no SELECT before it
	OperateLate                            // OPERATE after the select timeout
	RequestFlood                           // more than FloodRequests requests without a response on the connection
	numReasons
)

// Misuse are the anomalies (bits of Message.Anomalies) of a message that
// may be well formed but comes out of turn: a broken select-before-operate
// or a flood of requests. Any other anomaly makes the message malformed.
const Misuse uint64 = 1<<SelectMismatch | 1<<OperateWithoutSelect | 1<<OperateLate | 1<<RequestFlood
