package dpi

import "github.com/tapwatch/tapwatch/dpi/proto"

// The application decoders behind a flow, chosen by port or by content
// from the engine's registry (Config.Protocols). Everything the TCP and
// UDP code hands on goes through here.

// registered is one protocol of an engine's registry.
type registered struct {
	proto.Protocol
	dec   proto.Decoder
	ports portSet
}

// sniffer is a registered protocol (index + 1) with a content detector.
type sniffer struct {
	app    int
	detect func(payload []byte) (ok, fromClient bool)
}

// sink passes decoded messages on with the flow they came from. It is a
// field of the Engine, so passing its address as an interface allocates
// nothing.
type sink struct{ e *Engine }

func (s *sink) Message(from proto.Side, m any) {
	if s.e.h != nil {
		s.e.h.Message(&s.e.cur.Flow, from, m)
	}
}

// appFor picks the registered protocol (index + 1; 0 for none) for a
// conversation over transport t between ports a and b, and which side is
// the server (0: a, 1: b). Protocols are tried in registry order, serial
// ones first, so a serial gateway may use a default port (502, 20000).
func (e *Engine) appFor(t Transport, a, b uint16) (int, int) {
	for i := range e.protos {
		p := &e.protos[i]
		if p.Serial && t != TCP {
			continue
		}
		switch {
		case e.isPort(&p.ports, b):
			return i + 1, 1
		case e.isPort(&p.ports, a):
			return i + 1, 0
		}
	}
	if serverPort(a, b) {
		return 0, 0
	}
	return 0, 1
}

// serverPort guesses, for a conversation no protocol claims and whose
// opening the capture did not see, whether port a rather than b is the
// server's: a port below 1024 is, and a port in a common ephemeral range
// (1024-5000, older Windows and BSD; 32768 and up, Linux and newer
// systems) is not, when the other port is outside it; else the lower one.
func serverPort(a, b uint16) bool {
	if (a < 1024) != (b < 1024) {
		return a < 1024
	}
	if ea, eb := ephemeral(a), ephemeral(b); ea != eb {
		return eb
	}
	return a < b
}

func ephemeral(p uint16) bool { return p >= 1024 && p <= 5000 || p >= 32768 }

// setApp makes registered protocol i (index + 1) the flow's decoder.
func (e *Engine) setApp(f *flow, i int) {
	p := &e.protos[i-1]
	f.dec = i
	f.App = p.ID
	if p.Serial {
		f.Transport = RTUOverTCP
	}
}

// resetApp prepares a new flow's decoder state. Each flow record keeps the
// state it made for each protocol, for reuse.
func (e *Engine) resetApp(f *flow) {
	if f.dec == 0 {
		return
	}
	if f.streams == nil {
		f.streams = make([]proto.Stream, len(e.protos))
	}
	st := f.streams[f.dec-1]
	if st == nil {
		st = e.protos[f.dec-1].dec.NewStream()
		f.streams[f.dec-1] = st
	}
	f.st = st
	st.Reset(f.MidStream)
}

// sniff recognises a protocol by content on a port nobody configured, at
// the start of a payload sent by side. The detector says whether the
// sender is the client; if that contradicts the guess made from the
// ports, the roles are swapped.
func (e *Engine) sniff(f *flow, side int, payload []byte) bool {
	for _, s := range e.sniffers {
		ok, fromClient := s.detect(payload)
		if !ok {
			continue
		}
		e.setApp(f, s.app)
		if fromClient == (side == f.server) {
			f.server ^= 1
			f.Client, f.Server = f.Server, f.Client
			f.ClientMAC, f.ServerMAC = f.ServerMAC, f.ClientMAC
			f.Packets[0], f.Packets[1] = f.Packets[1], f.Packets[0]
			f.Bytes[0], f.Bytes[1] = f.Bytes[1], f.Bytes[0]
		}
		e.c.DNP3Sniffed++
		e.resetApp(f)
		return true
	}
	return false
}

// sideOf maps the side (0 or 1) a packet came from to the end of the flow
// that sent it.
func (f *flow) sideOf(side int) proto.Side {
	if side == f.server {
		return proto.FromServer
	}
	return proto.FromClient
}

// by maps the side (0 or 1) a packet came from to the index of the
// Flow's per-end counts: 0 the client, 1 the server.
func (f *flow) by(side int) int {
	if side == f.server {
		return 1
	}
	return 0
}

// feed hands contiguous stream bytes sent by side to the flow's decoder
// and returns how many it consumed.
func (e *Engine) feed(f *flow, side int, data []byte) int {
	if f.dec == 0 {
		return len(data)
	}
	return f.st.Feed(f.sideOf(side), data, &e.meta, &e.sink)
}

// appGap tells the decoder bytes sent by side were lost; pending is what
// was held before the hole.
func (e *Engine) appGap(f *flow, side int, pending []byte) {
	if f.dec != 0 {
		f.st.Gap(f.sideOf(side), pending, &e.meta, &e.sink)
	}
}

// appClose ends the decoder's conversation.
func (e *Engine) appClose(f *flow) {
	if f.dec != 0 {
		f.st.Close(&e.meta, &e.sink)
	}
}

// appDatagram decodes one UDP payload.
func (e *Engine) appDatagram(f *flow, side int, payload []byte) {
	f.st.Datagram(f.sideOf(side), payload, &e.meta, &e.sink)
}
