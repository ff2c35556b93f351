package dpi

import (
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
)

// The application decoders behind a flow, chosen by port or, for DNP3, by
// content. Everything the TCP and UDP code hands on goes through here.

// modbusSink and dnp3Sink pass decoded messages on with the flow they came
// from. They are fields of the Engine, so passing their address as an
// interface allocates nothing.
type modbusSink struct{ e *Engine }

func (s *modbusSink) Message(m *modbus.Message) {
	if s.e.h != nil {
		s.e.h.Modbus(&s.e.cur.Flow, m)
	}
}

type dnp3Sink struct {
	e    *Engine
	side int // the side whose bytes are being decoded, for garbage
}

// Message passes m on, saying which end sent it: for frames, the link
// header's DIR bit names the master, and the flow knows which end that is.
func (s *dnp3Sink) Message(m *dnp3.Message) {
	if s.e.h == nil {
		return
	}
	f := s.e.cur
	from := s.side
	if m.Kind != dnp3.KindGarbage && f.masterKnown {
		from = f.master
		if !m.Link.DIR {
			from ^= 1
		}
	}
	s.e.h.DNP3(&f.Flow, from == f.server, m)
}

// learnMaster notes which end is the DNP3 master from the first link
// header a side sends (DIR set: the sender is the master).
func (f *flow) learnMaster(side int, data []byte) {
	if f.masterKnown || len(data) < 4 || data[0] != 0x05 || data[1] != 0x64 {
		return
	}
	f.masterKnown = true
	f.master = side
	if data[3]&0x80 == 0 {
		f.master ^= 1
	}
}

// appFor picks the application decoder for a conversation over transport
// t between ports a and b, which side is the server (0: a, 1: b), and
// whether it carries Modbus RTU frames. An RTU port comes first: it may be
// a default Modbus or DNP3 port (502, 20000) that a gateway uses.
func (e *Engine) appFor(t Transport, a, b uint16) (App, int, bool) {
	if t == TCP {
		switch {
		case e.isPort(&e.rtuPorts, b):
			return AppModbus, 1, true
		case e.isPort(&e.rtuPorts, a):
			return AppModbus, 0, true
		}
	}
	app, server := e.portApp(a, b)
	return app, server, false
}

// portApp picks the decoder of the Modbus and DNP3 ports.
func (e *Engine) portApp(a, b uint16) (App, int) {
	switch {
	case e.isPort(&e.modbusPorts, b):
		return AppModbus, 1
	case e.isPort(&e.modbusPorts, a):
		return AppModbus, 0
	case e.isPort(&e.dnp3Ports, b):
		return AppDNP3, 1
	case e.isPort(&e.dnp3Ports, a):
		return AppDNP3, 0
	}
	if a < b {
		return AppNone, 0
	}
	return AppNone, 1
}

// resetApp prepares a new flow's decoder state.
func (e *Engine) resetApp(f *flow) {
	switch f.App {
	case AppModbus:
		if f.Transport == RTUOverTCP {
			f.mb.ResetRTU(f.MidStream)
		} else {
			f.mb.Reset(f.MidStream)
		}
	case AppDNP3:
		if f.dnp == nil {
			f.dnp = new(dnp3.Conn) // kept with the flow record for reuse
		}
		f.dnp.Reset(f.MidStream)
	}
}

// sniff recognises DNP3 on a port nobody configured: a link header with a
// valid CRC at the start of a payload. side is the sender; the link
// header's DIR bit says whether it is the master, and the master is taken
// as the client.
func (e *Engine) sniff(f *flow, side int, payload []byte) bool {
	if len(payload) < 10 || payload[0] != 0x05 || payload[1] != 0x64 || !dnp3.Detect(payload) {
		return false
	}
	f.App = AppDNP3
	f.learnMaster(side, payload)
	fromMaster := payload[3]&0x80 != 0
	if fromMaster == (side == f.server) {
		// The sender is on the wrong side of the guess made from the
		// ports: swap the roles.
		f.server ^= 1
		f.Client, f.Server = f.Server, f.Client
		f.ClientMAC, f.ServerMAC = f.ServerMAC, f.ClientMAC
		f.master = f.server ^ 1
	}
	e.c.DNP3Sniffed++
	e.resetApp(f)
	return true
}

func (f *flow) dnp3Side(side int) dnp3.Side {
	if side == f.server {
		return dnp3.FromServer
	}
	return dnp3.FromClient
}

// feed hands contiguous stream bytes sent by side to the flow's decoder
// and returns how many it consumed.
func (e *Engine) feed(f *flow, side int, data []byte) int {
	switch f.App {
	case AppModbus:
		return e.mb.Feed(&f.mb, f.dirOf(side), data, e.meta, &e.mbSink)
	case AppDNP3:
		f.learnMaster(side, data)
		e.dnSink.side = side
		return e.dn.Feed(f.dnp, f.dnp3Side(side), data, dnp3.Meta(e.meta), &e.dnSink)
	}
	return len(data)
}

// appGap tells the decoder bytes sent by side were lost; pending is what
// was held before the hole.
func (e *Engine) appGap(f *flow, side int, pending []byte) {
	switch f.App {
	case AppModbus:
		e.mb.Gap(&f.mb, f.dirOf(side), pending, e.meta, &e.mbSink)
	case AppDNP3:
		e.dnSink.side = side
		e.dn.Gap(f.dnp, f.dnp3Side(side), pending, dnp3.Meta(e.meta), &e.dnSink)
	}
}

// appClose ends the decoder's conversation.
func (e *Engine) appClose(f *flow) {
	switch f.App {
	case AppModbus:
		e.mb.Close(&f.mb, e.meta, &e.mbSink)
	case AppDNP3:
		e.dn.Close(f.dnp, dnp3.Meta(e.meta), &e.dnSink)
	}
}

// appDatagram decodes one UDP payload.
func (e *Engine) appDatagram(f *flow, side int, payload []byte) {
	switch f.App {
	case AppModbus:
		e.mb.Datagram(&f.mb, f.dirOf(side), payload, e.meta, &e.mbSink)
	case AppDNP3:
		f.learnMaster(side, payload)
		e.dnSink.side = side
		e.dn.Datagram(f.dnp, f.dnp3Side(side), payload, dnp3.Meta(e.meta), &e.dnSink)
	}
}
