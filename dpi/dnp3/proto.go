package dnp3

import "github.com/tapwatch/tapwatch/dpi/proto"

// DefaultPort is the DNP3 port.
const DefaultPort = 20000

// Protocol describes DNP3 to dpi: port 20000, TCP and UDP, and recognised
// on any other port by a link header with a valid CRC.
func Protocol(cfg Config) proto.Protocol {
	return proto.Protocol{
		ID:         proto.DNP3,
		Ports:      []uint16{DefaultPort},
		Detect:     detectMaster,
		NewDecoder: func() proto.Decoder { return &connMaker{d: NewDecoder(cfg)} },
	}
}

// detectMaster recognises DNP3 by its link header. The master, told by
// the header's DIR bit, is taken as the client.
func detectMaster(b []byte) (ok, fromClient bool) {
	if !detect(b) {
		return false, false
	}
	return true, b[3]&0x80 != 0
}

// connMaker makes the per-flow state of one engine's DNP3 decoder.
type connMaker struct{ d *Decoder }

func (s *connMaker) NewStream() proto.Stream { return &flowConn{d: s.d} }

// flowConn adapts a Conn to proto.Stream. It is also the Handler the Decoder
// reports to, so passing it allocates nothing.
type flowConn struct {
	d    *Decoder
	c    Conn
	out  proto.Sink
	side proto.Side // the sender of the bytes being decoded, for garbage
	// The master's side, from the first link header a side sends.
	masterKnown bool
	master      proto.Side
}

// Message passes m on, saying which end sent it: for frames, the link
// header's DIR bit names the master, and the flowConn knows which end that
// is.
func (s *flowConn) Message(m *Message) {
	from := s.side
	if m.Kind != KindGarbage && s.masterKnown {
		from = s.master
		if !m.Link.DIR {
			from = other(from)
		}
	}
	s.out.Message(from, m)
}

func other(s proto.Side) proto.Side { return proto.FromClient + proto.FromServer - s }

// learnMaster notes which end is the master from the first link header a
// side sends (DIR set: the sender is the master).
func (s *flowConn) learnMaster(from proto.Side, data []byte) {
	if s.masterKnown || len(data) < 4 || data[0] != linkStart0 || data[1] != linkStart1 {
		return
	}
	s.masterKnown = true
	s.master = from
	if data[3]&0x80 == 0 {
		s.master = other(from)
	}
}

func (s *flowConn) Reset(midStream bool) {
	s.c.Reset(midStream)
	s.masterKnown = false
}

func (s *flowConn) Feed(from proto.Side, data []byte, meta *proto.Meta, out proto.Sink) int {
	s.learnMaster(from, data)
	s.out, s.side = out, from
	return s.d.feed(&s.c, from, data, meta, s)
}

func (s *flowConn) Gap(from proto.Side, pending []byte, meta *proto.Meta, out proto.Sink) {
	s.out, s.side = out, from
	s.d.gap(&s.c, from, pending, meta, s)
}

func (s *flowConn) Datagram(from proto.Side, data []byte, meta *proto.Meta, out proto.Sink) {
	s.learnMaster(from, data)
	s.out, s.side = out, from
	s.d.datagram(&s.c, from, data, meta, s)
}

func (s *flowConn) Close(meta *proto.Meta, out proto.Sink) {
	s.out = out
	s.d.close(&s.c, meta, s)
}
