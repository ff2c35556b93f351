package sim

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// The attacks on the network itself rather than on the ICS messages:
// ARP spoofing, a scan, SMB lateral movement and a remote shell on a new
// port.

// one sends the single frame f writes, and notes it in r.
func (m *sim) one(r *rec, key bool, f func() (int, error)) error {
	return m.send(r, key, func() ([]int, error) {
		n, err := f()
		if err != nil {
			return nil, err
		}
		return []int{n}, nil
	})
}

// live returns the plant's hosts by address: the ones that answer a
// sweep.
func (m *sim) live() map[netip.Addr]pcapgen.Endpoint {
	hosts := map[netip.Addr]pcapgen.Endpoint{}
	for _, h := range []host{m.router, m.dns, m.ntp, m.hmi, m.ews, m.scada} {
		hosts[h.addr()] = h.ep
	}
	for _, p := range m.plcs {
		hosts[p.ep.IP] = p.ep
	}
	for _, o := range m.outs {
		hosts[o.ep.IP] = o.ep
	}
	return hosts
}

// arpSpoof: the intruder resolves the HMI and a PLC as any host would,
// then poisons each one's cache with its own MAC for the other's address
// (as arpspoof -r does), and restores the true bindings when it stops.
func (m *sim) arpSpoof(r *rec) error {
	p, hmi, att := m.fieldPLC(), m.hmi.ep, m.intruder.ep
	r.a.Src, r.a.Dst = netip.AddrPortFrom(att.IP, 0), netip.AddrPortFrom(p.ep.IP, 0)
	r.a.Targets = []netip.Addr{hmi.IP}
	const rounds = 8
	r.a.Desc = fmt.Sprintf("new host %v (%v) ARPs for hmi and %s, then claims hmi's address to %s and %s's to hmi every second for %d s, and puts the true bindings back",
		att.IP, att.MAC, p.name, p.name, p.name, rounds)
	// claim is the intruder's reply telling to that ip is at its MAC.
	claim := func(ip netip.Addr, to pcapgen.Endpoint) func() (int, error) {
		return func() (int, error) { return m.w.ARPReply(pcapgen.Endpoint{MAC: att.MAC, IP: ip}, to) }
	}
	st := []step{
		{0, func() error { return m.one(r, false, func() (int, error) { return m.w.ARPRequest(att, hmi.IP) }) }},
		{m.ms(1, 2), func() error { return m.one(r, false, func() (int, error) { return m.w.ARPReply(hmi, att) }) }},
		{m.ms(5, 20), func() error { return m.one(r, false, func() (int, error) { return m.w.ARPRequest(att, p.ep.IP) }) }},
		{m.ms(1, 2), func() error { return m.one(r, false, func() (int, error) { return m.w.ARPReply(p.ep, att) }) }},
	}
	for i := range rounds {
		gap := time.Second + m.ms(0, 20)
		if i == 0 {
			gap = m.ms(200, 300)
		}
		st = append(st,
			step{gap, func() error { return m.one(r, true, claim(hmi.IP, p.ep)) }},
			step{m.ms(1, 2), func() error { return m.one(r, false, claim(p.ep.IP, hmi)) }},
		)
	}
	// The cleanup: the true bindings, from the true MACs, three times.
	for range 3 {
		st = append(st,
			step{time.Second + m.ms(0, 20), func() error { return m.one(r, false, func() (int, error) { return m.w.ARPReply(hmi, p.ep) }) }},
			step{m.ms(1, 2), func() error { return m.one(r, false, func() (int, error) { return m.w.ARPReply(p.ep, hmi) }) }},
		)
	}
	m.play(nil, m.now(), st)
	return nil
}

// sweepN is how many addresses Scan sweeps: 10.10.1.1 to 10.10.1.60.
const sweepN = 60

// scanPorts are the TCP ports Scan tries: nmap's 100 most common ones
// and four ICS ports.
var scanPorts = []uint16{
	7, 9, 13, 21, 22, 23, 25, 26, 37, 53, 79, 80, 81, 88, 106, 110, 111, 113, 119, 135,
	139, 143, 144, 179, 199, 389, 427, 443, 444, 445, 465, 513, 514, 515, 543, 544, 548, 554, 587, 631,
	646, 873, 990, 993, 995, 1025, 1026, 1027, 1028, 1029, 1110, 1433, 1720, 1723, 1755, 1900, 2000, 2001, 2049, 2121,
	2717, 3000, 3128, 3306, 3389, 3986, 4899, 5000, 5009, 5051, 5060, 5101, 5190, 5357, 5432, 5631, 5666, 5800, 5900, 6000,
	6001, 6646, 7070, 8000, 8008, 8009, 8080, 8081, 8443, 8888, 9100, 9999, 10000, 32768, 49152, 49153, 49154, 49155, 49156, 49157,
	102, 502, 20000, 44818,
}

// scanOpen are the ports of scanPorts a PLC listens on: its web server
// and Modbus.
var scanOpen = map[uint16]bool{80: true, 502: true}

// scan: the scanner sweeps the subnet, then SYN-scans one PLC from one
// source port, in a shuffled order, as nmap -sS does.
func (m *sim) scan(r *rec) error {
	p, sc := m.fieldPLC(), m.scanner.ep
	r.a.Src, r.a.Dst = netip.AddrPortFrom(sc.IP, 0), netip.AddrPortFrom(p.ep.IP, 0)
	r.keyFirst = true // the first probe, not a live host's answer
	arp := m.w.Link().CarriesARP()
	how := "ARP"
	if !arp {
		how = "ICMP echo"
	}
	r.a.Desc = fmt.Sprintf("new host %v sweeps %v-%v by %s, then SYN-scans %d TCP ports of %s",
		sc.IP, ip(1), ip(sweepN), how, len(scanPorts), p.name)
	live := m.live()
	var st []step
	for i := range sweepN {
		dst := ip(byte(i + 1))
		r.a.Targets = append(r.a.Targets, dst)
		h, up := live[dst]
		key := i == 0
		if arp {
			st = append(st, step{m.ms(10, 10), func() error { return m.one(r, key, func() (int, error) { return m.w.ARPRequest(sc, dst) }) }})
			if up {
				st = append(st, step{m.ms(1, 2), func() error { return m.one(r, false, func() (int, error) { return m.w.ARPReply(h, sc) }) }})
			}
			continue
		}
		seq := uint16(i)
		if up {
			st = append(st, step{m.ms(10, 10), func() error {
				return m.send(r, key, func() ([]int, error) { return m.w.Ping(sc, h, 0x3c2a, seq, nil) })
			}})
		} else {
			st = append(st, step{m.ms(10, 10), func() error {
				return m.one(r, key, func() (int, error) { return m.w.EchoRequest(sc, pcapgen.Endpoint{IP: dst}, 0x3c2a, seq, nil) })
			}})
		}
	}
	ports := append([]uint16(nil), scanPorts...)
	m.rng.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
	src := sc
	src.Port = m.port()
	for i, port := range ports {
		dst := p.ep
		dst.Port = port
		c, err := pcapgen.NewTCPConn(m.w, src, dst, m.rng.Uint32(), m.rng.Uint32())
		if err != nil {
			return err
		}
		gap := m.ms(5, 10)
		if i == 0 {
			gap = m.ms(1000, 1000)
		}
		st = append(st, step{gap, func() error { return m.one(r, false, c.Syn) }})
		if scanOpen[port] {
			st = append(st,
				step{m.ms(1, 2), func() error { return m.one(r, false, c.SynAck) }},
				step{m.ms(1, 2), func() error { return m.one(r, false, func() (int, error) { return c.Rst(pcapgen.FromClient) }) }},
			)
			continue
		}
		st = append(st, step{m.ms(1, 2), func() error { return m.one(r, false, func() (int, error) { return c.Rst(pcapgen.FromServer) }) }})
	}
	m.play(nil, m.now(), st)
	return nil
}

// SMB2 commands of smbLateral.
const (
	smbNegotiate    = 0
	smbSessionSetup = 1
	smbTreeConnect  = 3
	smbWrite        = 9
)

// smb2 returns an SMB2 message over NetBIOS session service: the 4-byte
// NBSS header (type 0, 24-bit length), the 64-byte SMB2 header and body.
func smb2(cmd uint16, response bool, msgID, session uint64, tree uint32, body []byte) []byte {
	b := make([]byte, 4, 4+64+len(body))
	b = append(b, 0xfe, 'S', 'M', 'B')
	b = binary.LittleEndian.AppendUint16(b, 64) // structure size
	b = binary.LittleEndian.AppendUint16(b, 1)  // credit charge
	b = binary.LittleEndian.AppendUint32(b, 0)  // status: success
	b = binary.LittleEndian.AppendUint16(b, cmd)
	b = binary.LittleEndian.AppendUint16(b, 1) // credits
	var flags uint32
	if response {
		flags = 1
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint32(b, 0) // next command
	b = binary.LittleEndian.AppendUint64(b, msgID)
	b = binary.LittleEndian.AppendUint32(b, 0) // reserved
	b = binary.LittleEndian.AppendUint32(b, tree)
	b = binary.LittleEndian.AppendUint64(b, session)
	b = append(b, make([]byte, 16)...) // signature
	b = append(b, body...)
	n := len(b) - 4
	b[1], b[2], b[3] = byte(n>>16), byte(n>>8), byte(n)
	return b
}

// blob returns n random bytes.
func (m *sim) blob(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(m.rng.Uint32())
	}
	return b
}

// sendAll sends payload from side in segments of at most 1448 bytes.
func sendAll(c *pcapgen.TCPConn, side pcapgen.Side, payload []byte) ([]int, error) {
	return c.Send(side, payload, pcapgen.Split((len(payload)+1447)/1448))
}

// attackTCP returns a new connection of an attack from a new ephemeral
// port of from to port of to, and labels it.
func (m *sim) attackTCP(from, to host, port uint16, r *rec) (*pcapgen.TCPConn, error) {
	client, server := from.ep, to.ep
	client.Port, server.Port = m.port(), port
	r.a.Src, r.a.Dst = netip.AddrPortFrom(client.IP, client.Port), netip.AddrPortFrom(server.IP, server.Port)
	return pcapgen.NewTCPConn(m.w, client, server, m.rng.Uint32(), m.rng.Uint32())
}

// smbLateral: the engineering workstation logs on to the SCADA master's
// SMB server, connects to ADMIN$ and writes a file there: a tool copied
// for lateral movement.
func (m *sim) smbLateral(r *rec) error {
	c, err := m.attackTCP(m.ews, m.scada, 445, r)
	if err != nil {
		return err
	}
	const size = 6000
	share := `\\` + m.scada.addr().String() + `\ADMIN$`
	r.a.Desc = fmt.Sprintf("ews opens an SMB2 session to scada (%v:445): negotiate, session setup, tree connect to %s, a %d-byte write", m.scada.addr(), share, size)
	session, tree := m.rng.Uint64(), uint32(1+m.rng.IntN(8))

	// NEGOTIATE: four dialects, then the server's choice of SMB 2.1.
	neg := binary.LittleEndian.AppendUint16(nil, 36)
	neg = binary.LittleEndian.AppendUint16(neg, 4) // dialect count
	neg = binary.LittleEndian.AppendUint16(neg, 1) // security mode: signing enabled
	neg = append(neg, 0, 0, 0x7f, 0, 0, 0)         // reserved, capabilities
	neg = append(neg, m.blob(16)...)               // client GUID
	neg = append(neg, make([]byte, 8)...)          // start time
	for _, d := range []uint16{0x0202, 0x0210, 0x0300, 0x0302} {
		neg = binary.LittleEndian.AppendUint16(neg, d)
	}
	negResp := binary.LittleEndian.AppendUint16(nil, 65)
	negResp = binary.LittleEndian.AppendUint16(negResp, 1)
	negResp = binary.LittleEndian.AppendUint16(negResp, 0x0210)
	negResp = append(negResp, 0, 0)
	negResp = append(negResp, m.blob(16)...) // server GUID
	for _, v := range []uint32{7, 1 << 16, 1 << 16, 1 << 16} {
		negResp = binary.LittleEndian.AppendUint32(negResp, v) // capabilities, max transact, read, write
	}
	negResp = append(negResp, make([]byte, 16)...)           // system and start time
	secBlob := m.blob(74)                                    // the SPNEGO token, opaque here
	negResp = binary.LittleEndian.AppendUint16(negResp, 128) // security buffer offset
	negResp = binary.LittleEndian.AppendUint16(negResp, uint16(len(secBlob)))
	negResp = append(negResp, 0, 0, 0, 0)
	negResp = append(negResp, secBlob...)

	// SESSION_SETUP: a security token each way.
	setup := func(token []byte) []byte {
		b := binary.LittleEndian.AppendUint16(nil, 25)
		b = append(b, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
		b = binary.LittleEndian.AppendUint16(b, 88)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(token)))
		b = append(b, make([]byte, 8)...)
		return append(b, token...)
	}
	setupResp := func(token []byte) []byte {
		b := binary.LittleEndian.AppendUint16(nil, 9)
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint16(b, 72)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(token)))
		return append(b, token...)
	}
	// TREE_CONNECT to the share, its name in UTF-16LE.
	var path []byte
	for _, ch := range share {
		path = binary.LittleEndian.AppendUint16(path, uint16(ch))
	}
	tc := binary.LittleEndian.AppendUint16(nil, 9)
	tc = append(tc, 0, 0)
	tc = binary.LittleEndian.AppendUint16(tc, 72)
	tc = binary.LittleEndian.AppendUint16(tc, uint16(len(path)))
	tc = append(tc, path...)
	tcResp := []byte{16, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x01, 0x1f, 0x00}
	// WRITE of the file's bytes at offset 0.
	data := m.blob(size)
	data[0], data[1] = 'M', 'Z'
	wr := binary.LittleEndian.AppendUint16(nil, 49)
	wr = binary.LittleEndian.AppendUint16(wr, 112) // data offset
	wr = binary.LittleEndian.AppendUint32(wr, uint32(len(data)))
	wr = binary.LittleEndian.AppendUint64(wr, 0) // file offset
	wr = append(wr, m.blob(16)...)               // file id
	wr = append(wr, make([]byte, 16)...)         // channel, remaining, write channel info, flags
	wr = append(wr, data...)
	wrResp := binary.LittleEndian.AppendUint16(nil, 17)
	wrResp = append(wrResp, 0, 0)
	wrResp = binary.LittleEndian.AppendUint32(wrResp, uint32(len(data)))
	wrResp = append(wrResp, make([]byte, 8)...)

	msgs := []struct {
		cmd      uint16
		req, rsp []byte
	}{
		{smbNegotiate, neg, negResp},
		{smbSessionSetup, setup(m.blob(40)), setupResp(m.blob(220))},
		{smbSessionSetup, setup(m.blob(340)), setupResp(m.blob(9))},
		{smbTreeConnect, tc, tcResp},
		{smbWrite, wr, wrResp},
	}
	st := []step{{0, func() error { return m.send(r, false, c.Handshake) }}}
	for i, msg := range msgs {
		id, sess, tid := uint64(i), session, tree
		if i == 0 {
			sess = 0
		}
		if msg.cmd != smbWrite {
			tid = 0
		}
		st = append(st,
			step{m.ms(1, 5), func() error {
				return m.send(r, i == 0, func() ([]int, error) {
					return sendAll(c, pcapgen.FromClient, smb2(msg.cmd, false, id, sess, tid, msg.req))
				})
			}},
			step{m.ms(1, 3), func() error {
				return m.send(r, false, func() ([]int, error) {
					return sendAll(c, pcapgen.FromServer, smb2(msg.cmd, true, id, sess, tid, msg.rsp))
				})
			}},
		)
	}
	st = append(st, step{m.ms(100, 200), func() error { return m.send(r, false, c.Close) }})
	m.play(nil, m.now(), st)
	return nil
}

// c2NewPort: the SCADA master, compromised, calls back to a listener on
// the engineering workstation's TCP 4444 and is driven from there: the
// listener sends a command, the shell answers.
func (m *sim) c2NewPort(r *rec) error {
	c, err := m.attackTCP(m.scada, m.ews, 4444, r)
	if err != nil {
		return err
	}
	const rounds = 8
	r.keyFirst = true
	r.a.Desc = fmt.Sprintf("scada connects to ews on TCP 4444 and exchanges binary data with it %d times in about 18 s", rounds)
	st := []step{{0, func() error { return m.send(r, true, c.Handshake) }}}
	for range rounds {
		st = append(st,
			step{m.ms(1800, 700), func() error {
				return m.send(r, false, func() ([]int, error) { return c.Server(m.blob(60 + m.rng.IntN(300))) })
			}},
			step{m.ms(20, 80), func() error {
				return m.send(r, false, func() ([]int, error) { return sendAll(c, pcapgen.FromClient, m.blob(100+m.rng.IntN(500))) })
			}},
			step{m.ms(30, 20), func() error { return m.one(r, false, func() (int, error) { return c.Ack(pcapgen.FromServer) }) }},
		)
	}
	st = append(st, step{m.ms(500, 500), func() error { return m.send(r, false, c.Close) }})
	m.play(nil, m.now(), st)
	return nil
}
