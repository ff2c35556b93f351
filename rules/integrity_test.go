package rules

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/link"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// modbusConn opens a Modbus/TCP connection from c to s and runs n polls
// (read holding registers, answered).
func modbusConn(w *pcapgen.Writer, c, s pcapgen.Endpoint, cport uint16, isn uint32, n int) (*pcapgen.TCPConn, error) {
	c.Port, s.Port = cport, 502
	conn, err := pcapgen.NewTCPConn(w, c, s, isn, isn+50000)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Handshake(); err != nil {
		return nil, err
	}
	for i := range n {
		if err := poll(conn, uint16(i+1)); err != nil {
			return nil, err
		}
	}
	return conn, nil
}

// poll sends one read of holding registers and its answer.
func poll(conn *pcapgen.TCPConn, tid uint16) error {
	if _, err := conn.Client(pcapgen.MBAP(tid, 1, []byte{3, 0, 0, 0, 2})); err != nil {
		return err
	}
	_, err := conn.Server(pcapgen.MBAP(tid, 1, []byte{3, 4, 0, 1, 0, 2}))
	return err
}

// lostPoll is a read the tap missed (the answer acknowledges it), then
// one it saw.
func lostPoll(conn *pcapgen.TCPConn, tid uint16) error {
	conn.Skip(pcapgen.FromClient, len(pcapgen.MBAP(tid, 1, []byte{3, 0, 0, 0, 2})))
	if _, err := conn.Server(pcapgen.MBAP(tid, 1, []byte{3, 4, 0, 1, 0, 2})); err != nil {
		return err
	}
	return poll(conn, tid+1)
}

// dnp3Conn opens a DNP3 connection from master m to outstation o.
func dnp3Conn(w *pcapgen.Writer, m, o pcapgen.Endpoint) (*pcapgen.DNP3Conn, error) {
	m.Port, o.Port = 41000, 20000
	conn, err := pcapgen.NewTCPConn(w, m, o, 1000, 9000)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Handshake(); err != nil {
		return nil, err
	}
	return pcapgen.NewDNP3TCP(conn, 1, 10), nil
}

// unsol sends an unsolicited response with sequence number seq, internal
// indications iin and binary input 0's flags, and, when confirm is set,
// the master's confirm of it.
func unsol(d *pcapgen.DNP3Conn, seq uint8, iin uint16, flags uint8, confirm bool) error {
	ctl := pcapgen.AppControl(true, true, true, true, seq)
	if _, err := d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3UnsolicitedResponse, iin, pcapgen.BinaryInputs(0, flags))); err != nil {
		return err
	}
	if !confirm {
		return nil
	}
	_, err := d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, true, seq), pcapgen.DNP3Confirm))
	return err
}

// TestIntegrityDetectors feeds each integrity detector captures that must
// fire it and captures that must not, replayed with every built-in
// detector on; only the detector under test is looked at.
func TestIntegrityDetectors(t *testing.T) {
	plc, hmi, attacker := host(20), host(10), host(66)
	windows := hmi
	windows.TTL = 128
	forgedTTL := pcapgen.Endpoint{MAC: hmi.MAC, IP: hmi.IP, TTL: 128}
	cases := []detectorCase{
		{"ics-spoof: a write injected into a live connection with another TTL", "ics-spoof", true,
			"Modbus packets from 10.10.1.10 to 10.10.1.20 come from another machine: TTL 128, not 64", func(w *pcapgen.Writer) error {
				conn, err := modbusConn(w, hmi, plc, 40000, 100, 3)
				if err != nil {
					return err
				}
				if err := conn.Impersonate(pcapgen.FromClient, forgedTTL); err != nil {
					return err
				}
				if _, err := conn.Client(pcapgen.MBAP(9, 1, []byte{6, 0, 1, 0, 99})); err != nil {
					return err
				}
				if err := conn.Impersonate(pcapgen.FromClient, hmi); err != nil {
					return err
				}
				return poll(conn, 10)
			}},
		{"ics-spoof: a reset injected into a live connection from another machine", "ics-spoof", true,
			"MAC 02:00:00:00:00:42 and TTL 128, not 02:00:00:00:00:14 and 64", func(w *pcapgen.Writer) error {
				conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
				if err != nil {
					return err
				}
				if err := conn.Impersonate(pcapgen.FromServer, pcapgen.Endpoint{MAC: attacker.MAC, IP: plc.IP, TTL: 128}); err != nil {
					return err
				}
				_, err = conn.Rst(pcapgen.FromServer)
				return err
			}},
		{"ics-spoof: a new connection answered by another MAC for the PLC's address", "ics-spoof", true,
			"MAC 02:00:00:00:00:42, not 02:00:00:00:00:14", func(w *pcapgen.Writer) error {
				if _, err := modbusConn(w, hmi, plc, 40000, 100, 2); err != nil {
					return err
				}
				fake := plc
				fake.MAC = attacker.MAC
				_, err := modbusConn(w, hmi, fake, 40001, 700, 2)
				return err
			}},
		{"ics-spoof: the first packets of a connection differ from its later ones", "ics-spoof", true,
			"TTL 64, not 128", func(w *pcapgen.Writer) error {
				// The capture starts with the forged packets: the host's
				// real ones are the alert.
				conn, err := modbusConn(w, forgedTTL, plc, 40000, 100, 2)
				if err != nil {
					return err
				}
				if err := conn.Impersonate(pcapgen.FromClient, hmi); err != nil {
					return err
				}
				return poll(conn, 3)
			}},
		{"ics-spoof quiet: retransmissions, several connections and a host of another OS", "ics-spoof", false, "", func(w *pcapgen.Writer) error {
			conn, err := modbusConn(w, hmi, plc, 40000, 100, 3)
			if err != nil {
				return err
			}
			if _, err := conn.SendAt(pcapgen.FromClient, conn.NextSeq(pcapgen.FromClient)-12, pcapgen.MBAP(3, 1, []byte{3, 0, 0, 0, 2})); err != nil {
				return err
			}
			if _, err := modbusConn(w, hmi, plc, 40001, 900, 2); err != nil {
				return err
			}
			// Another master, with a TTL of its own.
			other := windows
			other.IP, other.MAC = host(11).IP, host(11).MAC
			_, err = modbusConn(w, other, plc, 40002, 1900, 2)
			return err
		}},
		{"ics-spoof quiet: another TTL outside ICS traffic", "ics-spoof", false, "", func(w *pcapgen.Writer) error {
			if _, err := modbusConn(w, hmi, plc, 40000, 100, 2); err != nil {
				return err
			}
			c, s := windows, plc
			c.Port, s.Port = 50000, 80
			conn, err := pcapgen.NewTCPConn(w, c, s, 5, 6)
			if err != nil {
				return err
			}
			if _, err := conn.Handshake(); err != nil {
				return err
			}
			_, err = conn.Client([]byte("GET / HTTP/1.1\r\nHost: plc\r\n\r\n"))
			return err
		}},
		{"stream-conflict: a delivered request retransmitted as a write", "stream-conflict", true,
			"Two versions of the stream from 10.10.1.10 to 10.10.1.20", func(w *pcapgen.Writer) error {
				conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
				if err != nil {
					return err
				}
				_, err = conn.SendAt(pcapgen.FromClient, conn.NextSeq(pcapgen.FromClient)-12, pcapgen.MBAP(2, 1, []byte{6, 0, 0, 0, 2}))
				return err
			}},
		{"stream-conflict: two versions of a segment held out of order", "stream-conflict", true,
			"bytes held before", func(w *pcapgen.Writer) error {
				conn, err := modbusConn(w, hmi, plc, 40000, 100, 1)
				if err != nil {
					return err
				}
				next := conn.NextSeq(pcapgen.FromClient)
				if _, err := conn.SendAt(pcapgen.FromClient, next+12, pcapgen.MBAP(3, 1, []byte{3, 0, 0, 0, 2})); err != nil {
					return err
				}
				if _, err := conn.SendAt(pcapgen.FromClient, next+12, pcapgen.MBAP(3, 1, []byte{6, 0, 0, 0, 9})); err != nil {
					return err
				}
				_, err = conn.SendAt(pcapgen.FromClient, next, pcapgen.MBAP(2, 1, []byte{3, 0, 0, 0, 2}))
				return err
			}},
		{"stream-conflict quiet: identical retransmissions, overlaps and a keep-alive", "stream-conflict", false, "", func(w *pcapgen.Writer) error {
			conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
			if err != nil {
				return err
			}
			next := conn.NextSeq(pcapgen.FromClient)
			req := pcapgen.MBAP(2, 1, []byte{3, 0, 0, 0, 2})
			if _, err := conn.SendAt(pcapgen.FromClient, next-12, req); err != nil {
				return err
			}
			if _, err := conn.SendAt(pcapgen.FromClient, next-6, req[6:]); err != nil {
				return err
			}
			// A keep-alive: one garbage byte just before the next.
			if _, err := conn.SendAt(pcapgen.FromClient, next-1, []byte{0}); err != nil {
				return err
			}
			return poll(conn, 3)
		}},
		{"stream-unseen: the PLC acknowledges bytes far outside the stream", "stream-unseen", true,
			"Gb/s while the sender was silent", func(w *pcapgen.Writer) error {
				conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
				if err != nil {
					return err
				}
				// A man in the middle whose two legs disagree by 2 GB.
				conn.Skip(pcapgen.FromClient, 0x7f000000)
				if _, err := conn.Ack(pcapgen.FromServer); err != nil {
					return err
				}
				return poll(conn, 3)
			}},
		{"stream-unseen: three requests the tap never saw within a few packets", "stream-unseen", true,
			"stretch 3 on this connection within a minute", func(w *pcapgen.Writer) error {
				conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
				if err != nil {
					return err
				}
				for i := range 3 {
					if err := lostPoll(conn, uint16(10+2*i)); err != nil {
						return err
					}
				}
				return nil
			}},
		{"stream-unseen quiet: the same three, through a tap that loses as much of every connection", "stream-unseen", false, "", func(w *pcapgen.Writer) error {
			conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
			if err != nil {
				return err
			}
			var others []*pcapgen.TCPConn
			for i := range 6 {
				c, err := modbusConn(w, host(byte(30+i)), plc, uint16(41000+i), uint32(10000*(i+1)), 1)
				if err != nil {
					return err
				}
				others = append(others, c)
			}
			for i := range 3 {
				if err := lostPoll(conn, uint16(10+2*i)); err != nil {
					return err
				}
				for _, c := range others {
					if err := lostPoll(c, uint16(10+2*i)); err != nil {
						return err
					}
				}
			}
			return nil
		}},
		{"stream-unseen quiet: a lost request every two minutes, and bytes that come late before gaps", "stream-unseen", false, "", func(w *pcapgen.Writer) error {
			conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
			if err != nil {
				return err
			}
			for i := range 4 {
				w.Advance(2 * time.Minute)
				if err := lostPoll(conn, uint16(10+2*i)); err != nil {
					return err
				}
			}
			// The answer is merged before its request: acknowledged
			// first, seen a moment later.
			for i := range 4 {
				next := conn.NextSeq(pcapgen.FromClient)
				req := pcapgen.MBAP(uint16(20+i), 1, []byte{3, 0, 0, 0, 2})
				conn.Skip(pcapgen.FromClient, len(req))
				if _, err := conn.Server(pcapgen.MBAP(uint16(20+i), 1, []byte{3, 4, 0, 1, 0, 2})); err != nil {
					return err
				}
				if _, err := conn.SendAt(pcapgen.FromClient, next, req); err != nil {
					return err
				}
				// Then a request lost, but acknowledged only with the
				// next one, already seen: a gap, with nothing unseen
				// waiting.
				conn.Skip(pcapgen.FromClient, len(req))
				if err := poll(conn, uint16(40+i)); err != nil {
					return err
				}
			}
			return poll(conn, 50)
		}},
		{"modbus-tid-reuse: a write under the id of a read still waiting", "modbus-tid-reuse", true,
			"reuses transaction id 1 of a request still waiting", func(w *pcapgen.Writer) error {
				conn, err := modbusConn(w, hmi, plc, 40000, 100, 0)
				if err != nil {
					return err
				}
				// Two reads wait for their answers; then a write comes
				// under the first one's id.
				for i, pdu := range [][]byte{{3, 0, 0, 0, 2}, {3, 0, 8, 0, 2}, {6, 0, 4, 0, 99}} {
					if _, err := conn.Client(pcapgen.MBAP(uint16(i%2+1), 1, pdu)); err != nil {
						return err
					}
				}
				return nil
			}},
		{"modbus-tid-reuse quiet: retries, writes under the current id, one id always", "modbus-tid-reuse", false, "", func(w *pcapgen.Writer) error {
			conn, err := modbusConn(w, hmi, plc, 40000, 100, 2)
			if err != nil {
				return err
			}
			for _, pdu := range [][]byte{{6, 0, 4, 0, 1}, {6, 0, 4, 0, 1}, {6, 0, 5, 0, 1}} {
				if _, err := conn.Client(pcapgen.MBAP(504, 1, pdu)); err != nil {
					return err
				}
			}
			one, err := modbusConn(w, host(11), plc, 40001, 900, 0)
			if err != nil {
				return err
			}
			for _, pdu := range [][]byte{{3, 0, 0, 0, 2}, {6, 0, 4, 0, 1}, {3, 0, 8, 0, 2}} {
				if _, err := one.Client(pcapgen.MBAP(0, 1, pdu)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"dnp3-counter-backwards: a running counter reported lower", "dnp3-counter-backwards", true,
			"reports counter 1 at 90 to 10.10.1.10, below the 100 it reported before", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				return class0(d, 0, counters(5, 100), counters(7, 90))
			}},
		{"dnp3-counter-backwards quiet: counting up, a wrap, a freeze-and-clear, a restart", "dnp3-counter-backwards", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			if err := class0(d, 0, counters(5, 100), counters(7, 0xFFFFFFF0)); err != nil {
				return err
			}
			if err := class0(d, 0, counters(8, 3)); err != nil { // point 1 wrapped
				return err
			}
			if _, err := d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, 9), 9, pcapgen.ClassData(0))); err != nil {
				return err
			}
			if err := class0(d, 0, counters(0, 0)); err != nil { // cleared
				return err
			}
			if err := class0(d, iinRestart, counters(0, 0)); err != nil {
				return err
			}
			return class0(d, 0, counters(0, 0))
		}},
		{"dnp3-silent-change: an input changed with no event", "dnp3-silent-change", true,
			"reports binary input 0 changed from 0 to 1 to 10.10.1.10 with no event", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				off := pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 0, Flags: 1, Time: 1})
				return allClasses(d, 0, objs(off, pcapgen.BinaryInputs(0, 0x01)), objs(pcapgen.BinaryInputs(0, 0x81)), objs(pcapgen.BinaryInputs(0, 0x81)))
			}},
		{"dnp3-silent-change quiet: changes with events, late events, no events ever, an overflow, class 0 reads", "dnp3-silent-change", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			ev := func(flags uint8, t uint64) []byte {
				return pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 0, Flags: flags, Time: t})
			}
			bi := func(f0, f1 uint8) []byte { return pcapgen.BinaryInputs(0, f0, f1) }
			if err := allClasses(d, 0,
				objs(ev(0x01, 1), bi(0x01, 0x01)),
				objs(ev(0x81, 2), bi(0x81, 0x01)), // changed, with its event
				objs(bi(0x01, 0x01)),              // changed back; its event comes next
				objs(ev(0x01, 3), bi(0x01, 0x01)),
				objs(bi(0x01, 0x81)), // point 1 never had an event: its changes say nothing
				objs(bi(0x01, 0x01)),
			); err != nil {
				return err
			}
			// The event buffer overflowed: point 0's event may be lost.
			if err := allClasses(d, iinOverflow, objs(bi(0x81, 0x01))); err != nil {
				return err
			}
			// Class 0 reads alone never show events: not judged.
			return class0(d, 0, bi(0x01, 0x01), bi(0x81, 0x01), bi(0x81, 0x01))
		}},
		{"dnp3-quality-change: a point goes offline", "dnp3-quality-change", true,
			"reports the quality of binary input 2 to 10.10.1.10 changed: online to offline", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				return class0(d, 0, pcapgen.BinaryInputs(0, 1, 1, 1), pcapgen.BinaryInputs(0, 1, 1, 0))
			}},
		{"dnp3-quality-change quiet: steady flags, a restart", "dnp3-quality-change", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			if err := class0(d, 0, pcapgen.BinaryInputs(0, 1, 1), pcapgen.BinaryInputs(0, 0x81, 1)); err != nil {
				return err
			}
			// Restarted: its points say so, and start afresh.
			if err := class0(d, iinRestart, pcapgen.BinaryInputs(0, 0x03, 0x03)); err != nil {
				return err
			}
			return class0(d, 0, pcapgen.BinaryInputs(0, 0x03, 0x03))
		}},
		{"dnp3-confirm-unmatched: a confirm of a report never sent", "dnp3-confirm-unmatched", true,
			"of an unsolicited response the outstation did not send: sequence number 5, but the last one it sent was 3", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				if err := unsol(d, 3, 0, 0x01, true); err != nil {
					return err
				}
				_, err = d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, true, 5), pcapgen.DNP3Confirm))
				return err
			}},
		{"dnp3-confirm-unmatched: a confirm of a solicited response never sent", "dnp3-confirm-unmatched", true,
			"of a response the outstation did not send: sequence number 6, but the last one it sent was 4", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				ctl := pcapgen.AppControl(true, true, true, false, 4)
				ev := pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 0, Flags: 0x81, Time: 9})
				if _, err := d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, 4), pcapgen.DNP3Read, pcapgen.ClassData(1))); err != nil {
					return err
				}
				if _, err := d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3Response, 0, ev)); err != nil {
					return err
				}
				for _, seq := range []uint8{4, 6} {
					if _, err := d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, seq), pcapgen.DNP3Confirm)); err != nil {
						return err
					}
				}
				return nil
			}},
		{"dnp3-confirm-unmatched quiet: solicited responses confirmed, one confirm before its response", "dnp3-confirm-unmatched", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			ev := pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 0, Flags: 0x81, Time: 9})
			for seq := range uint8(3) {
				if _, err := d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, seq), pcapgen.DNP3Read, pcapgen.ClassData(1))); err != nil {
					return err
				}
				resp := pcapgen.AppResponse(pcapgen.AppControl(true, true, true, false, seq), pcapgen.DNP3Response, 0, ev)
				conf := pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, seq), pcapgen.DNP3Confirm)
				first, second := d.Outstation, d.Master
				if seq == 2 { // the tap merged the two directions out of order
					if _, err := d.Master(conf); err != nil {
						return err
					}
					_, err = d.Outstation(resp)
				} else {
					if _, err = first(resp); err == nil {
						_, err = second(conf)
					}
				}
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"dnp3-confirm-unmatched: a second confirm", "dnp3-confirm-unmatched", true,
			"sequence number 3 again", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				if err := unsol(d, 3, 0, 0x01, true); err != nil {
					return err
				}
				_, err = d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, true, 3), pcapgen.DNP3Confirm))
				return err
			}},
		{"dnp3-confirm-unmatched quiet: a slow master confirms the report and its retry", "dnp3-confirm-unmatched", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			if err := unsol(d, 3, 0, 0x01, false); err != nil {
				return err
			}
			if err := unsol(d, 3, 0, 0x01, false); err != nil { // the retry
				return err
			}
			for range 2 {
				if _, err := d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, true, 3), pcapgen.DNP3Confirm)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"dnp3-unsolicited-repeat quiet: a retry that crossed the confirm", "dnp3-unsolicited-repeat", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			if _, err := d.Outstation(pcapgen.AppResponse(pcapgen.AppControl(true, true, true, true, 3), pcapgen.DNP3UnsolicitedResponse, 0, pcapgen.BinaryInputs(0, 0x01))); err != nil {
				return err
			}
			w.Advance(2 * time.Second) // the outstation's confirm timeout
			if _, err := d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, true, 3), pcapgen.DNP3Confirm)); err != nil {
				return err
			}
			return unsol(d, 3, 0, 0x01, false) // sent as the confirm was on its way
		}},
		{"dnp3-confirm-unmatched quiet: confirms of each report, one after a lost report", "dnp3-confirm-unmatched", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			for seq := range uint8(3) {
				if err := unsol(d, seq, 0, 0x01, true); err != nil {
					return err
				}
			}
			// The capture misses report 3 (its bytes are acknowledged);
			// the master confirms it.
			c := d.TCP()
			lostReport := pcapgen.AppResponse(pcapgen.AppControl(true, true, true, true, 3), pcapgen.DNP3UnsolicitedResponse, 0, pcapgen.BinaryInputs(0, 0x81))
			frames, err := d.Frames(pcapgen.FromServer, lostReport)
			if err != nil {
				return err
			}
			c.Skip(pcapgen.FromServer, len(frames))
			if _, err := c.Ack(pcapgen.FromClient); err != nil {
				return err
			}
			_, err = d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, true, 3), pcapgen.DNP3Confirm))
			return err
		}},
		{"dnp3-replay: time-stamped events sent again", "dnp3-replay", true,
			"DNP3 response from 10.10.1.20 to 10.10.1.10 (link 10 to 1) repeats, byte for byte, a time-stamped fragment", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				ctl := pcapgen.AppControl(true, true, false, false, 0)
				resp := pcapgen.AppResponse(ctl, pcapgen.DNP3Response, 0, pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 2, Flags: 0x81, Time: 1_470_000_000_000}))
				if _, err := d.Outstation(resp); err != nil {
					return err
				}
				if err := class0(d, 0, pcapgen.BinaryInputs(0, 1)); err != nil {
					return err
				}
				_, err = d.Outstation(resp) // recorded, and sent again
				return err
			}},
		{"dnp3-replay: a time write sent again", "dnp3-replay", true,
			"DNP3 write from 10.10.1.10 to 10.10.1.20", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				write := pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, 4), 2, pcapgen.TimeAndDate(1_470_000_000_000))
				for range 2 {
					if _, err := d.Master(write); err != nil {
						return err
					}
				}
				return nil
			}},
		{"dnp3-replay quiet: new events, an unconfirmed retry, polls without time", "dnp3-replay", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			// Reads that name time-stamped objects carry none: the same
			// read under the same sequence number every 16 polls.
			for i := range 40 {
				read := pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, uint8(i%16)), pcapgen.DNP3Read, []byte{2, 2, 6}, []byte{32, 3, 6}, []byte{50, 1, 7, 1})
				if _, err := d.Master(read); err != nil {
					return err
				}
			}
			for i := range uint64(3) {
				ev := pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 2, Flags: 0x81, Time: 1_470_000_000_000 + i})
				if err := class0(d, 0, ev, pcapgen.BinaryInputs(0, 1)); err != nil {
					return err
				}
			}
			// The same static answer, the same sequence number, again
			// and again.
			for range 20 {
				if err := class0(d, 0, pcapgen.BinaryInputs(0, 1)); err != nil {
					return err
				}
			}
			// An unsolicited report with time, unconfirmed, sent again.
			ctl := pcapgen.AppControl(true, true, true, true, 7)
			rep := pcapgen.AppResponse(ctl, pcapgen.DNP3UnsolicitedResponse, 0, pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 1, Flags: 1, Time: 1_470_000_000_500}))
			for range 2 {
				if _, err := d.Outstation(rep); err != nil {
					return err
				}
			}
			return nil
		}},
		{"dnp3-unsolicited-repeat: a second report with the sequence number of the last", "dnp3-unsolicited-repeat", true,
			"repeats sequence number 3 with other content", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				if err := unsol(d, 3, 0, 0x01, false); err != nil {
					return err
				}
				return unsol(d, 3, 0, 0x81, false)
			}},
		{"dnp3-unsolicited-repeat: a report repeated after its confirm", "dnp3-unsolicited-repeat", true,
			"with the same content after the master confirmed it", func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				if err := unsol(d, 3, 0, 0x01, true); err != nil {
					return err
				}
				w.Advance(2 * time.Second) // long after the confirm: no retry crossing it
				return unsol(d, 3, 0, 0x01, true)
			}},
		{"dnp3-unsolicited-repeat quiet: a retry of an unconfirmed report, the next one, a restart", "dnp3-unsolicited-repeat", false, "", func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			if err := unsol(d, 3, 0, 0x01, false); err != nil {
				return err
			}
			if err := unsol(d, 3, 0, 0x01, true); err != nil { // the retry, confirmed
				return err
			}
			if err := unsol(d, 4, 0, 0x81, true); err != nil {
				return err
			}
			// Restarted: the sequence starts anew, whatever it was.
			return unsol(d, 4, 0x80, 0x01, true)
		}},
	}
	fired := runDetectorCases(t, cases)
	for _, id := range []string{"ics-spoof", "stream-conflict", "dnp3-unsolicited-repeat", "modbus-tid-reuse", "dnp3-counter-backwards", "dnp3-silent-change", "dnp3-quality-change", "dnp3-confirm-unmatched", "dnp3-replay", "stream-unseen"} {
		if !fired[id] {
			t.Errorf("%s has no fixture that fires it", id)
		}
	}
}

// TestStreamConflictEvidence: the alert carries both versions, from the
// first byte that differs, the first version first.
func TestStreamConflictEvidence(t *testing.T) {
	plc, hmi := host(20), host(10)
	first := pcapgen.MBAP(2, 1, []byte{3, 0, 0, 0, 2})
	second := pcapgen.MBAP(2, 1, []byte{6, 0, 0, 0, 2})
	rec := replayNet(t, func(w *pcapgen.Writer) error {
		conn, err := modbusConn(w, hmi, plc, 40000, 100, 1)
		if err != nil {
			return err
		}
		if _, err := conn.Client(first); err != nil {
			return err
		}
		_, err = conn.SendAt(pcapgen.FromClient, conn.NextSeq(pcapgen.FromClient)-12, second)
		return err
	})
	var ev []byte
	for _, a := range rec.alerts {
		if a.Rule == "stream-conflict" {
			ev = a.Evidence
		}
	}
	want := append(bytes.Clone(first[7:]), second[7:]...)
	if !bytes.Equal(ev, want) {
		t.Errorf("evidence % x, want % x", ev, want)
	}
}

// TestSpoofSelfTalk: a host talking to itself (a capture on the host)
// has one address for both ends; their different MACs are no spoofing.
func TestSpoofSelfTalk(t *testing.T) {
	a := host(10)
	b := a
	b.MAC = net.HardwareAddr{6, 5, 4, 3, 2, 1}
	rec := replayNet(t, func(w *pcapgen.Writer) error {
		_, err := modbusConn(w, a, b, 40000, 100, 3)
		return err
	})
	for _, al := range rec.alerts {
		if al.Rule == "ics-spoof" {
			t.Errorf("alert: %s", al.Title)
		}
	}
}

// TestSpoofRelearn: a host whose packets look otherwise (a replaced
// device) raises one alert, and, once only the new look has been seen for
// printRelearn, that look is the host's: later connections pass, and the
// old look is the stranger.
func TestSpoofRelearn(t *testing.T) {
	plc, hmi := host(20), host(10)
	replaced := hmi
	replaced.TTL = 128
	rec := replayNet(t, func(w *pcapgen.Writer) error {
		if _, err := modbusConn(w, hmi, plc, 40000, 100, 2); err != nil {
			return err
		}
		w.Advance(time.Hour)
		if _, err := modbusConn(w, replaced, plc, 40001, 900, 1); err != nil { // alerts
			return err
		}
		w.Advance(printRelearn + time.Minute)
		if _, err := modbusConn(w, replaced, plc, 40002, 1900, 1); err != nil { // the host's now
			return err
		}
		w.Advance(time.Hour)
		_, err := modbusConn(w, hmi, plc, 40003, 2900, 1) // the old look alerts
		return err
	})
	var titles []string
	for _, a := range rec.alerts {
		if a.Rule == "ics-spoof" {
			titles = append(titles, a.Title)
		}
	}
	if len(titles) != 2 || !strings.Contains(titles[0], "TTL 128, not 64") || !strings.Contains(titles[1], "TTL 64, not 128") {
		t.Errorf("alerts %q, want one for TTL 128, then one for TTL 64", titles)
	}
}

// counters is a g20v5 object (32-bit counters without flags) for points
// 0 and 1.
func counters(a, b uint32) []byte {
	o := pcapgen.AppendRangeHeader(nil, 20, 5, 0, 0, 1)
	o = binary.LittleEndian.AppendUint32(o, a)
	return binary.LittleEndian.AppendUint32(o, b)
}

// class0 answers one class 0 read per response, each response with one
// of objs as its objects and internal indications iin.
func class0(d *pcapgen.DNP3Conn, iin uint16, objs ...[]byte) error {
	for i, o := range objs {
		ctl := pcapgen.AppControl(true, true, false, false, uint8(i))
		if _, err := d.Master(pcapgen.AppRequest(ctl, pcapgen.DNP3Read, pcapgen.ClassData(0))); err != nil {
			return err
		}
		if _, err := d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3Response, iin, o)); err != nil {
			return err
		}
	}
	return nil
}

// TestIntegrityNoAllocs: the integrity and plausibility detectors, fed by
// dpi on a plant capture (Modbus and DNP3 polling with retransmissions,
// unsolicited responses and confirms, events, counters), allocate nothing
// per packet in the steady state, and raise nothing.
func TestIntegrityNoAllocs(t *testing.T) {
	lt, pkts := plantPackets(t, 40000)
	rec := &recorder{}
	e, err := NewEngine(nil, rec, EngineOptions{seed: 1}) // a seed that evicts nothing here
	if err != nil {
		t.Fatal(err)
	}
	d, err := dpi.New(dpi.Config{}, e)
	if err != nil {
		t.Fatal(err)
	}
	warm := len(pkts) / 2
	for i, p := range pkts[:warm] {
		d.Packet(link.Type(lt), p.ts, uint64(i+1), p.data, 0)
	}
	i := warm
	allocs := testing.AllocsPerRun(len(pkts)-warm-1, func() {
		d.Packet(link.Type(lt), pkts[i].ts, uint64(i+1), pkts[i].data, 0)
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
	for _, a := range rec.alerts {
		for _, id := range []string{"ics-spoof", "stream-conflict", "dnp3-unsolicited-repeat", "modbus-tid-reuse", "dnp3-counter-backwards", "dnp3-silent-change", "dnp3-quality-change", "dnp3-confirm-unmatched", "dnp3-replay", "stream-unseen"} {
			if a.Rule == id {
				t.Errorf("%s: %s", a.Rule, a.Title)
			}
		}
	}
	if s := e.Stats(); s.PrintEvictions+s.UnsolicitedEvictions+s.PointEvictions+s.OutstationEvictions != 0 {
		t.Errorf("evictions %v", s.Evictions())
	}
}

// FuzzIntegrityState drives the integrity, replay and plausibility state
// with arbitrary DNP3 traffic on one connection: each record of data is
// a direction, a function code, a sequence number, IIN bits and raw
// object bytes. Nothing may panic, and a second engine fed the same
// traffic, checking every point one by one (skipSettled off), raises the
// same alerts (no state leaks between engines, no order depends on a
// map, skipping settled and quiet blocks changes nothing, not even the
// count of a folded alert).
func FuzzIntegrityState(f *testing.F) {
	read := []byte{4, 0, 0, 0, 12, 60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6} // a read of classes 1, 2, 3 and 0
	static := func(seq byte, v ...byte) []byte {                           // binary inputs 0-3 with flags
		return append([]byte{0x80, seq, 0, 0, byte(5 + len(v)), 1, 2, 0, 0, byte(len(v) - 1)}, v...)
	}
	event := []byte{0x80, 9, 0, 0, 6, 2, 1, 0x17, 1, 3, 0x81}    // binary input 3 changed to on
	offEvent := []byte{0x80, 9, 0, 0, 6, 2, 1, 0x17, 1, 3, 0x01} // and to off
	var seed []byte
	for _, r := range [][]byte{read, static(0, 1, 1, 0x81, 1), read, static(1, 1, 1, 0x81, 1), read, event, read,
		static(2, 1, 1, 0x81, 0x81), read, static(3, 1, 0x81, 0x81, 0x81), read, static(4, 1, 0x81, 0x81, 0x81),
		read, static(5, 1, 0x81, 0x81, 1), read, static(6, 1, 0x81, 0x81, 1), // 3 goes off with no event, twice: a silent change
		read, static(7, 1, 0x81, 0x81, 1), read, offEvent, read, static(8, 1, 0x81, 0x81, 1), // an event, the same values
		read, static(9, 1, 0x81, 0x81, 0x81), read, static(10, 1, 0x81, 0x81, 0x81)} { // 3 on with no event since
		seed = append(seed, r...)
	}
	f.Add(seed)
	// Analog inputs whose values change while their flags stay, then
	// one loses its link; double-bit inputs, then one goes offline.
	analog := func(seq, f1 byte, v byte) []byte {
		return []byte{0x80, seq, 0, 0, 15, 30, 1, 0, 0, 1, 1, v, 0, 0, 0, f1, v, 1, 0, 0}
	}
	double := func(seq, f2 byte) []byte { return []byte{0x80, seq, 0, 0, 7, 3, 2, 0, 0, 1, 0x81, f2} }
	seed = nil
	for _, r := range [][]byte{read, analog(0, 1, 5), read, analog(1, 1, 6), read, analog(2, 1, 7), read, analog(3, 5, 8), read, analog(4, 5, 9),
		read, double(5, 0x41), read, double(6, 0x41), read, double(7, 0x40), read, double(8, 0x40)} {
		seed = append(seed, r...)
	}
	f.Add(seed)
	f.Add([]byte{0x82, 3, 0, 0, 7, 20, 5, 0, 0, 0, 100, 0, 0, 0, 0x00, 0, 3})
	f.Add([]byte{0x82, 5, 0x80, 0, 6, 1, 2, 0, 0, 0, 0x81, 0x00, 0, 5, 0x80, 0, 6, 2, 2, 0x17, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		plc, hmi := host(20), host(10)
		write := func(w *pcapgen.Writer) error {
			d, err := dnp3Conn(w, hmi, plc)
			if err != nil {
				return err
			}
			data := data
			for len(data) >= 5 {
				hdr, seq, iin := data[0], data[1], uint16(data[2])|uint16(data[3])<<8
				n := min(int(data[4]), len(data)-5)
				objs := data[5 : 5+n]
				data = data[5+n:]
				ctl := pcapgen.AppControl(true, true, hdr&1 != 0, hdr&2 != 0, seq)
				switch {
				case hdr&0x80 == 0: // from the master
					_, err = d.Master(pcapgen.AppRequest(ctl, hdr>>2&0x1f, objs))
				case hdr&2 != 0:
					_, err = d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3UnsolicitedResponse, iin, objs))
				default:
					_, err = d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3Response, iin, objs))
				}
				if err != nil {
					return err
				}
			}
			return nil
		}
		// The second run checks every block's points one by one: the
		// skip of settled blocks must change nothing.
		a := replayNet(t, write)
		skipSettled = false
		b := func() *recorder {
			defer func() { skipSettled = true }()
			return replayNet(t, write)
		}()
		if len(a.alerts) != len(b.alerts) {
			t.Fatalf("%d alerts, then %d", len(a.alerts), len(b.alerts))
		}
		for i := range a.alerts {
			if a.alerts[i].Rule != b.alerts[i].Rule || a.alerts[i].Title != b.alerts[i].Title || a.alerts[i].Count != b.alerts[i].Count {
				t.Fatalf("alert %d: %s ×%d, then %s ×%d", i, a.alerts[i].Title, a.alerts[i].Count, b.alerts[i].Title, b.alerts[i].Count)
			}
		}
	})
}

func objs(o ...[]byte) [][]byte { return o }

// allClasses answers one read of classes 1, 2, 3 and 0 per response,
// each response with one of resps as its objects and internal
// indications iin.
func allClasses(d *pcapgen.DNP3Conn, iin uint16, resps ...[][]byte) error {
	for i, o := range resps {
		ctl := pcapgen.AppControl(true, true, false, false, uint8(i))
		req := pcapgen.AppRequest(ctl, pcapgen.DNP3Read, pcapgen.ClassData(1), pcapgen.ClassData(2), pcapgen.ClassData(3), pcapgen.ClassData(0))
		if _, err := d.Master(req); err != nil {
			return err
		}
		if _, err := d.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3Response, iin, o...)); err != nil {
			return err
		}
	}
	return nil
}

// TestTakeOverIntegrity: a reload keeps what the integrity detectors
// learned: a host's look learned before it is still the host's after.
func TestTakeOverIntegrity(t *testing.T) {
	f := &dpi.Flow{ID: 1, Transport: dpi.TCP, App: proto.Modbus,
		Client: netip.MustParseAddrPort("10.10.1.10:40000"), Server: netip.MustParseAddrPort("10.10.1.20:502")}
	report := func(e *Engine, at time.Duration, ttl uint8) {
		e.Integrity(f, &dpi.Integrity{Kind: dpi.Endpoint, Time: t0.Add(at), From: dpi.FromClient, Addr: f.Client.Addr(), MAC: [6]byte{2, 0, 0, 0, 0, 10}, TTL: ttl})
	}
	rec := &recorder{}
	old, err := NewEngine(nil, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	report(old, 0, 64)
	e, err := NewEngine(nil, rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.TakeOver(old)
	report(e, time.Second, 128)
	if got := rec.rules(); len(got) != 1 || got[0] != "ics-spoof" {
		t.Errorf("alerts %v, want ics-spoof from what the old engine learned", got)
	}
}

// TestTakeOverSettled: a reload keeps the settled blocks of DNP3 points
// valid: their digests are keyed with the old engine's seed, so the new
// one hashes with it too (else every block is checked point by point
// once more after a reload).
func TestTakeOverSettled(t *testing.T) {
	old, err := NewEngine(nil, &recorder{}, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(nil, &recorder{}, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll := []byte{0x81, 0x01, 0x81, 0x01}
	if maphash.Bytes(e.bi.plaus.seed, poll) == maphash.Bytes(old.bi.plaus.seed, poll) {
		t.Fatal("two engines key their digests alike before a reload")
	}
	e.TakeOver(old)
	if maphash.Bytes(e.bi.plaus.seed, poll) != maphash.Bytes(old.bi.plaus.seed, poll) {
		t.Error("after a reload the new engine keys its digests otherwise than the blocks it took over")
	}
}

// TestSharedChecks: a check that several detectors share runs once on a
// message while any of them is on, and not at all when none is.
func TestSharedChecks(t *testing.T) {
	shared := []struct {
		run func(*Engine, *Op)
		fc  uint8
		req int
		ids []detKind
	}{
		{(*Engine).checkDNP3Plausible, dnp3.FuncResponse, 0, []detKind{dCounterBackwards, dSilentChange, dQualityChange}},
		{(*Engine).checkDNP3Clear, dnp3.FuncRead, 1, []detKind{dCounterBackwards, dSilentChange}},
		{(*Engine).checkDNP3UnsolRepeat, dnp3.FuncUnsolicitedResponse, 0, []detKind{dDNP3UnsolRepeat, dConfirmUnmatched}},
		{(*Engine).checkDNP3UnsolConfirm, dnp3.FuncConfirm, 1, []detKind{dDNP3UnsolRepeat, dConfirmUnmatched}},
	}
	for _, c := range shared {
		for mask := range 1 << len(c.ids) {
			var b builtins
			want := 0
			for i, k := range c.ids {
				if mask&(1<<i) != 0 {
					b.on[k] = true
					want = 1
				}
			}
			b.initChecks(true)
			for cls := range 2 { // sound messages and anomalous ones alike
				got := 0
				for _, run := range b.lists[b.byFC[proto.DNP3][c.req][cls][c.fc]] {
					if sameFunc(run, c.run) {
						got++
					}
				}
				if got != want {
					t.Errorf("detectors %v on (mask %b), anomaly class %d: the check runs %d times, want %d", c.ids, mask, cls, got, want)
				}
			}
		}
	}
}

// FuzzUnseen feeds stream-unseen arbitrary reports over four
// connections: its per-connection runs never panic, a stretch alerts
// alone only when it is faster than any link, a run alerts only from
// its second stretch within the minute, and the Poisson tail stays a
// chance that falls as the count grows.
func FuzzUnseen(f *testing.F) {
	f.Add([]byte{0, 0, 10, 0, 0, 0, 200, 3, 232, 20, 0, 0, 0, 0, 20, 0, 0, 0, 200, 3, 232, 20, 0, 0, 0, 0, 20, 0, 0, 0, 200, 3, 232, 20, 0, 0})
	f.Add([]byte{1, 0, 0, 255, 255, 255, 255, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		rec := &recorder{}
		e, err := NewEngine(nil, rec, EngineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lambda := 0.01 + float64(len(data)%256)/8
		var flows [4]dpi.Flow
		for i := range flows {
			flows[i] = dpi.Flow{ID: uint64(i + 1), Transport: dpi.TCP, App: proto.DNP3,
				Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 10}), uint16(40000+i)),
				Server: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(20 + i)}), 20000)}
		}
		var (
			now        time.Duration
			gaps, segs uint64
			seen       [4][]time.Duration // report times of each connection
		)
		for ; len(data) >= 12; data = data[12:] {
			fl := &flows[data[0]%4]
			now += time.Duration(binary.BigEndian.Uint16(data[1:])) * time.Millisecond
			span := binary.BigEndian.Uint32(data[3:])
			silent := time.Duration(binary.BigEndian.Uint16(data[7:])) * time.Millisecond
			fl.Packets[0] += uint64(data[9])
			fl.Lost[0] += uint32(data[10] % 4)
			segs += uint64(data[9]) + uint64(data[11])
			gaps += uint64(data[10]%4) + uint64(data[11]%8)
			seq := uint32(now)
			i := data[0] % 4
			seen[i] = append(seen[i], now)
			before := len(rec.alerts)
			e.Integrity(fl, &dpi.Integrity{Kind: dpi.Unseen, Time: t0.Add(now), From: dpi.FromServer,
				Addr: fl.Server.Addr(), Seq: seq, Acked: seq + span, Silent: silent, Gaps: gaps, Segments: segs})
			for _, a := range rec.alerts[before:] {
				if a.Rule != "stream-unseen" {
					continue
				}
				fast := float64(span) > unseenLinkRate*max(silent.Seconds(), 1e-6)
				recent := 0
				for _, at := range seen[i] {
					if now-at <= unseenWindow {
						recent++
					}
				}
				if !fast && recent < 2 {
					t.Fatalf("alert on a lone stretch of %d bytes in %v: %s", span, silent, a.Title)
				}
			}
		}
		prev := 1.0
		for k := 0; k < 40; k++ {
			p := unseenTail(k, lambda)
			if p < 0 || p > 1 || p > prev*(1+1e-9) {
				t.Fatalf("unseenTail(%d, %g) = %g after %g", k, lambda, p, prev)
			}
			prev = p
		}
	})
}
