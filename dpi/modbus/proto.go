package modbus

import "github.com/tapwatch/tapwatch/dpi/proto"

// DefaultPort is the Modbus/TCP port.
const DefaultPort = 502

// Protocol describes Modbus/TCP to dpi: port 502, TCP and UDP.
func Protocol(cfg Config) proto.Protocol {
	return proto.Protocol{
		ID:         proto.Modbus,
		Ports:      []uint16{DefaultPort},
		NewDecoder: func() proto.Decoder { return &connMaker{d: NewDecoder(cfg)} },
	}
}

// RTUProtocol describes Modbus RTU over TCP to dpi: the same protocol,
// framed as on a serial line (see Conn.ResetRTU), on the ports of
// serial-to-Ethernet gateways. It has no default port.
func RTUProtocol(cfg Config) proto.Protocol {
	return proto.Protocol{
		ID:         proto.Modbus,
		Serial:     true,
		NewDecoder: func() proto.Decoder { return &connMaker{d: NewDecoder(cfg), rtu: true} },
	}
}

// connMaker makes the per-flow state of one engine's Modbus decoder.
type connMaker struct {
	d   *Decoder
	rtu bool
}

func (s *connMaker) NewStream() proto.Stream { return &flowConn{d: s.d, rtu: s.rtu} }

// flowConn adapts a Conn to proto.Stream. It is also the Handler the Decoder
// reports to, so passing it allocates nothing.
type flowConn struct {
	d   *Decoder
	c   Conn
	rtu bool
	out proto.Sink
}

// Message passes m on; a response was sent by the server.
func (s *flowConn) Message(m *Message) {
	from := proto.FromClient
	if m.Dir == Response {
		from = proto.FromServer
	}
	s.out.Message(from, m)
}

func (s *flowConn) Reset(midStream bool) {
	if s.rtu {
		s.c.ResetRTU(midStream)
	} else {
		s.c.Reset(midStream)
	}
}

// dir maps the sending side to a direction: the client sends requests.
func dir(from proto.Side) Direction {
	if from == proto.FromServer {
		return Response
	}
	return Request
}

func (s *flowConn) Feed(from proto.Side, data []byte, meta *proto.Meta, out proto.Sink) int {
	s.out = out
	return s.d.feed(&s.c, dir(from), data, meta, s)
}

func (s *flowConn) Gap(from proto.Side, pending []byte, meta *proto.Meta, out proto.Sink) {
	s.out = out
	s.d.Gap(&s.c, dir(from), pending, *meta, s)
}

func (s *flowConn) Datagram(from proto.Side, data []byte, meta *proto.Meta, out proto.Sink) {
	s.out = out
	s.d.datagram(&s.c, dir(from), data, meta, s)
}

func (s *flowConn) Close(meta *proto.Meta, out proto.Sink) {
	s.out = out
	s.d.Close(&s.c, *meta, s)
}
