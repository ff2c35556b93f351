package sim

import (
	"encoding/binary"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// The operator's writes and the IT traffic.

func (m *sim) queueWrite(c *mbConn, w write) {
	m.pending[c] = append(m.pending[c], w)
}

// setpointWrite has the HMI write a new pump speed setpoint (FC 6, holding
// register 5 of plc1): once low and once high during learning, then a
// random walk that stays within what was written during learning.
func (m *sim) setpointWrite() error {
	var v int
	switch m.setpointWrites {
	case 0:
		v = 122 + m.rng.IntN(10)
	case 1:
		v = 168 + m.rng.IntN(10)
	default:
		d := 3 + m.rng.IntN(12)
		if m.rng.IntN(2) == 0 {
			d = -d
		}
		v = min(max(int(m.setpoint)+d, int(m.spMin)), int(m.spMax))
	}
	m.setpointWrites++
	if m.now() < m.learn {
		m.spMin, m.spMax = min(m.spMin, uint16(v)), max(m.spMax, uint16(v))
	}
	m.setpoint = uint16(v)
	m.queueWrite(m.hmiConns[0], write{1, pcapgen.WriteSingleRegister(5, uint16(v))})
	return nil
}

// valveWrite has the HMI open or close the valve on coil 3 of plc2 (FC 5).
func (m *sim) valveWrite() error {
	m.valve = !m.valve
	m.queueWrite(m.hmiConns[1], write{1, writeCoil(3, m.valve)})
	return nil
}

func writeCoil(addr uint16, on bool) []byte {
	v := byte(0)
	if on {
		v = 0xff
	}
	return []byte{pcapgen.FCWriteSingleCoil, byte(addr >> 8), byte(addr), v, 0}
}

func (m *sim) dnsQuery(h host) error {
	client := h.ep
	client.Port = m.port()
	u, err := pcapgen.NewUDP(m.w, client, m.dns.ep)
	if err != nil {
		return err
	}
	id := uint16(m.rng.Uint32())
	name := m.dnsNames[m.rng.IntN(len(m.dnsNames))]
	answer := []byte{10, 10, 1, byte(200 + len(name)%50)}
	if _, err := u.Send(dnsMessage(id, name, nil)); err != nil {
		return err
	}
	m.after(m.ms(1, 3), func() error {
		_, err := u.Reply(dnsMessage(id, name, answer))
		return err
	})
	return nil
}

// dnsMessage builds a query for name's A record or, with answer, the
// response carrying that address.
func dnsMessage(id uint16, name string, answer []byte) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 64), id)
	if answer == nil {
		b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD, one question
	} else {
		b = append(b, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0) // QR RD RA, one answer
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, name[start:i]...)
			start = i + 1
		}
	}
	b = append(b, 0, 0, 1, 0, 1) // root, A, IN
	if answer != nil {
		b = append(b, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4) // name pointer, A, IN, TTL 3600
		b = append(b, answer...)
	}
	return b
}

func (m *sim) ntpQuery(h host) error {
	client := h.ep
	client.Port = 123
	u, err := pcapgen.NewUDP(m.w, client, m.ntp.ep)
	if err != nil {
		return err
	}
	var msg [48]byte
	msg[0] = 0x23 // version 4, client
	binary.BigEndian.PutUint64(msg[40:], ntpTime(m.w.Now()))
	if _, err := u.Send(msg[:]); err != nil {
		return err
	}
	m.after(m.ms(1, 2), func() error {
		msg[0], msg[1], msg[2], msg[3] = 0x24, 2, 6, 0xe9 // version 4, server, stratum 2
		copy(msg[24:32], msg[40:48])
		binary.BigEndian.PutUint64(msg[32:], ntpTime(m.w.Now()))
		binary.BigEndian.PutUint64(msg[40:], ntpTime(m.w.Now()))
		_, err := u.Reply(msg[:])
		return err
	})
	return nil
}

func ntpTime(t time.Time) uint64 {
	const epoch = 2208988800 // 1900 to 1970
	secs := uint64(t.Unix() + epoch)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// arp has asker refresh its ARP entry of owner.
func (m *sim) arp(asker host, owner pcapgen.Endpoint) error {
	if _, err := m.w.ARPRequest(asker.ep, owner.IP); err != nil {
		return err
	}
	m.after(m.ms(1, 2), func() error {
		_, err := m.w.ARPReply(owner, asker.ep)
		return err
	})
	return nil
}
