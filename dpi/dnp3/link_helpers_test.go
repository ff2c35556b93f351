package dnp3

import (
	"testing"
	"time"
)

// Test fixtures are built by this file's own code: frames are written
// field by field and withCRCs inserts the CRCs.

// withCRCs turns an 8-octet link header followed by user data into a frame:
// the header CRC after the header, and a CRC after each 16-octet block.
// Fewer than 8 octets are returned as they are.
func withCRCs(b ...byte) []byte {
	if len(b) < linkHeaderData {
		return b
	}
	out := appendCRC(append([]byte(nil), b[:linkHeaderData]...), b[:linkHeaderData])
	for user := b[linkHeaderData:]; len(user) > 0; {
		k := min(linkBlockLen, len(user))
		out = appendCRC(append(out, user[:k]...), user[:k])
		user = user[k:]
	}
	return out
}

func appendCRC(out, over []byte) []byte {
	c := crc16(over)
	return append(out, byte(c), byte(c>>8))
}

// linkFrame builds a frame from its fields; LENGTH is computed.
func linkFrame(control byte, dst, src uint16, user []byte) []byte {
	b := []byte{
		linkStart0, linkStart1,
		byte(linkMinLength + len(user)),
		control,
		byte(dst), byte(dst >> 8),
		byte(src), byte(src >> 8),
	}
	return withCRCs(append(b, user...)...)
}

// Control octets of the frames that carry segments.
const (
	ctlMasterData     = linkDIR | linkPRM | lfUnconfirmedData // 0xC4
	ctlOutstationData = linkPRM | lfUnconfirmedData           // 0x44
)

// segFrame builds an unconfirmed user data frame holding one transport
// segment.
func segFrame(control byte, dst, src uint16, fir, fin bool, seq uint8, app []byte) []byte {
	th := seq & tpSeqMask
	if fir {
		th |= tpFIR
	}
	if fin {
		th |= tpFIN
	}
	return linkFrame(control, dst, src, append([]byte{th}, app...))
}

// segments splits app into as many full segments as needed, starting at
// sequence seq.
func segments(control byte, dst, src uint16, seq uint8, app []byte) []byte {
	var out []byte
	for first := true; first || len(app) > 0; first = false {
		k := min(maxSegmentData, len(app))
		out = append(out, segFrame(control, dst, src, first, k == len(app), seq, app[:k])...)
		app = app[k:]
		seq = (seq + 1) & tpSeqMask
	}
	return out
}

// readClass1 is a whole, valid request: READ class 1 data.
var readClass1 = []byte{
	0xC0,             // application control: FIR, FIN, sequence 0
	0x01,             // READ
	0x3C, 0x02, 0x06, // group 60 variation 2, all objects
}

// analogResponse is a valid response of n analog inputs (group 30
// variation 1: flags and a 32-bit value), 8 + 5n octets long.
func analogResponse(n int) []byte {
	b := []byte{
		0xC0,       // application control: FIR, FIN, sequence 0
		0x81,       // RESPONSE
		0x00, 0x00, // IIN
		0x1E, 0x01, // group 30 variation 1
		0x01,       // qualifier: 2-octet start and stop
		0x00, 0x00, // start 0
		byte(n - 1), byte((n - 1) >> 8), // stop
	}
	for i := range n {
		b = append(b, 0x01, byte(i), 0, 0, 0) // online, value i
	}
	return b
}

// ownReasons are the anomalies link.go, transport.go and sbo.go raise;
// tests compare only these, so that they hold whatever the application
// layer adds.
const ownReasons = 1<<BadHeaderCRC | 1<<BadBlockCRC | 1<<LinkTooShort | 1<<NotDNP3 |
	1<<BadLinkFunction | 1<<MissingFIR | 1<<SequenceOutOfOrder | 1<<FragmentTooLong |
	1<<FragmentTruncated | 1<<SelectMismatch | 1<<OperateWithoutSelect | 1<<OperateLate

// seen is what a test compares of a Message.
type seen struct {
	Kind      Kind
	Dir       Direction // link-only and garbage messages: this package's guess
	PRM       bool
	Func      uint8 // link function
	Src, Dst  uint16
	Segments  int
	FirstSeq  uint8
	Truncated bool
	SBO       SBOResult
	Malformed Reason // when it is one of ownReasons
	Anomalies uint64 // masked by ownReasons
	Fragment  string
	Raw       string
	Frame     uint64
}

func see(m *Message) seen {
	s := seen{
		Kind:      m.Kind,
		PRM:       m.Link.PRM,
		Func:      m.Link.Func,
		Src:       m.Link.Src,
		Dst:       m.Link.Dst,
		Segments:  m.Segments,
		FirstSeq:  m.FirstSeq,
		Truncated: m.Truncated,
		SBO:       m.SBO,
		Anomalies: m.Anomalies & ownReasons,
		Fragment:  string(m.Fragment),
		Raw:       string(m.Raw),
		Frame:     m.Frame,
	}
	if m.Kind != KindApplication {
		s.Dir = m.Dir
	}
	if 1<<m.Malformed&ownReasons != 0 {
		s.Malformed = m.Malformed
	}
	return s
}

// recorder keeps what it is handed.
type recorder struct{ got []seen }

func (r *recorder) Message(m *Message) { r.got = append(r.got, see(m)) }

// feeder plays the caller of Feed: it keeps what was not consumed and
// presents it again with the next bytes.
type feeder struct {
	t    testing.TB
	d    *Decoder
	c    *Conn
	h    Handler
	held [2][]byte
}

func (f *feeder) feed(side Side, b []byte, meta Meta) {
	buf := append(f.held[side-1], b...)
	n := f.d.Feed(f.c, side, buf, meta, f.h)
	if n < 0 || n > len(buf) {
		f.t.Fatalf("Feed consumed %d of %d bytes", n, len(buf))
	}
	if len(buf)-n > MaxFrameLen {
		f.t.Fatalf("Feed left %d bytes unconsumed", len(buf)-n)
	}
	f.held[side-1] = append(buf[:0], buf[n:]...)
}

func (f *feeder) gap(side Side, meta Meta) {
	f.d.Gap(f.c, side, f.held[side-1], meta, f.h)
	f.held[side-1] = f.held[side-1][:0]
}

func newFeeder(t testing.TB, cfg Config, midStream bool) (*feeder, *recorder) {
	r := &recorder{}
	c := &Conn{}
	c.Reset(midStream)
	return &feeder{t: t, d: NewDecoder(cfg), c: c, h: r}, r
}

// at is a packet time t seconds into a capture.
func at(t float64) Meta {
	return Meta{Time: time.Unix(1700000000, 0).Add(time.Duration(t * float64(time.Second)))}
}

func joinBytes(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}
