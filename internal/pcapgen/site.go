package pcapgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// SitePlant's address plan, for tests and for policies written for it.
// Every host has its own MAC address; the Windows hosts (Modbus masters,
// office hosts, the jump host) send with TTL 128, the others with 64.
var (
	// SiteMasters are the Modbus masters: two SCADA servers (0 and 1)
	// that poll every PLC, five HMIs (2 to 6) that each poll two of five
	// process areas, and the engineering workstation (7), which polls
	// every fourth PLC. All of them write.
	SiteMasters = addrRange(netip.MustParseAddr("10.1.10.10"), siteMasters)
	// SitePLCs are the Modbus servers on port 502; every fourth is a
	// gateway to serial devices, addressed by unit id.
	SitePLCs = addrRange(netip.MustParseAddr("10.1.20.10"), sitePLCs)
	// SiteDNP3Masters are the SCADA front ends that speak DNP3, link
	// addresses 1 to 3; the first two select and operate.
	SiteDNP3Masters = addrRange(netip.MustParseAddr("10.1.30.10"), siteDNP3Masters)
	// SiteOutstations are the DNP3 outstations (RTUs) on port 20000, link
	// addresses 10 to 33. Outstation o is polled by DNP3 master o mod 3,
	// the first three by the next master too, and the last four are
	// reached over UDP.
	SiteOutstations = addrRange(netip.MustParseAddr("10.1.40.10"), siteOutstations)
	// SiteOffice are the office hosts, which browse, resolve names and
	// open RDP sessions to the jump host; each has an IPv6 address too
	// (fd00:1:1:100::10 and on).
	SiteOffice = addrRange(netip.MustParseAddr("10.1.100.10"), siteOffice)
	// SiteServers are the gateway (a firewall, also on fd00:1:1:1::1),
	// the DNS, NTP and syslog servers, the SNMP manager and the jump host,
	// in that order.
	SiteServers = addrRange(netip.MustParseAddr("10.1.1.1"), 6)
	// SiteSwitches are the managed switches the SNMP manager polls and
	// pings.
	SiteSwitches = addrRange(netip.MustParseAddr("10.1.1.240"), siteSwitches)
	// SiteRogue is a laptop plugged into the PLC network: now and then
	// it writes holding registers of a few PLCs with values no master
	// writes, and sweeps a PLC's TCP ports.
	SiteRogue = netip.MustParseAddr("10.1.20.250")
)

const (
	siteMasters     = 8
	sitePLCs        = 48
	siteAreas       = 5 // process areas; an HMI polls two
	siteDNP3Masters = 3
	siteOutstations = 24
	siteOffice      = 16
	siteSwitches    = 12
	siteRDP         = 4 // concurrent RDP sessions
	siteRogueTarget = 3 // PLCs the rogue host writes to
	siteEngineering = 7 // the engineering workstation among SiteMasters

	// An event (the rogue host, a restart) every siteEventGap packets
	// or up to siteEventJitter more; the first after siteFirstEvent or
	// up to siteEventJitter more.
	siteFirstEvent  = 4000
	siteEventGap    = 25000
	siteEventJitter = 20000
)

var siteConfig = plantConfig{
	modbusPercent: 60, dnp3Percent: 30,
	bulkFlows: 4, writers: siteMasters, operators: 2,
	dnp3Masters: siteDNP3Masters, dualPolled: 3, udpOutstations: 4,
	unsolicitedFrom: 180, tlsHello: true, stepMicros: 400,
}

// SitePlant writes a deterministic capture of about packets frames (at
// least packets, at most a few more) of a larger plant than Plant's,
// with tens of hosts and hundreds of flows: ~60 % Modbus/TCP from 8
// masters (SCADA servers, HMIs and an engineering workstation) to 48
// PLCs on port 502, each master polling its share of them over about 200
// long-lived connections that are already open when the capture starts;
// ~30 % DNP3 from 3 masters to 24 outstations on port 20000, the last
// four over UDP; and ~10 % IT traffic: HTTPS (with a TLS ClientHello that
// names the server) and HTTP transfers, some over IPv6, RDP sessions of
// small packets from office hosts to a jump host and from it to the
// engineering workstation, DNS, NTP, syslog (UDP 514), SNMP v2c get and
// response (UDP 161) from a manager to the switches, ARP, and ICMP and
// ICMPv6 echoes. The same seed gives the same bytes.
//
// The Modbus and DNP3 traffic is Plant's, with all it varies: every
// master writes (FC 6 and 16, values up to 4095 at addresses below 500),
// the first two DNP3 masters select and operate, and the same state
// rules keep the outstations' reports consistent.
//
// A few hosts raise alerts, rarely (well under 1 % of the packets): a
// rogue host (SiteRogue) that connects to one of three PLCs and writes
// holding registers (FC 6 or 16) with values from 40000 up, and that
// sweeps 25 TCP ports of a PLC (one open, the others answered with
// resets); and a DNP3 master that sends an outstation a cold or warm
// restart, which the outstation answers with its time delay (g52v2) and
// then reports with IIN1.7 until the master has run the integrity poll,
// cleared the restart bit and set the time. The first such event comes
// within the first 8,000 packets, the next ones every 25,000 to 45,000.
//
// All of it is well formed. SitePlant keeps a fixed amount of state, so
// its memory does not grow with packets.
func SitePlant(w *Writer, packets int, seed int64) error {
	if packets < 0 {
		return fmt.Errorf("pcapgen: negative packet count %d", packets)
	}
	s, err := newSite(w, seed)
	if err != nil {
		return err
	}
	return s.run(packets)
}

// site is a plant with the hosts and traffic only SitePlant has.
type site struct {
	*plant
	collector, nms, jump Endpoint
	gateway6             Endpoint
	switches             []Endpoint
	syslogSenders        []Endpoint
	senderNames          []string
	rogue                Endpoint
	rogueTargets         [siteRogueTarget]int // indexes into plcs
	rdp                  [siteRDP]*TCPConn
	events               int // events so far
	snmpID               int32
	buf                  []byte // scratch for syslog and SNMP messages
	rec                  []byte // scratch for TLS records
}

func siteMAC(kind, i byte) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x00, 0x5e, 0x20, kind, i}
}

func newSite(w *Writer, seed int64) (*site, error) {
	p := newPlantBase(w, seed, &siteConfig, SiteServers[0], siteMAC)
	s := &site{plant: p}
	p.other, p.event = s.otherStep, s.eventStep
	for i, a := range SiteMasters {
		p.masters = append(p.masters, Endpoint{MAC: siteMAC(1, byte(i)), IP: a, TTL: 128})
		p.writer = append(p.writer, i < p.cfg.writers)
	}
	for i, a := range SitePLCs {
		p.plcs = append(p.plcs, Endpoint{MAC: siteMAC(2, byte(i)), IP: a, Port: 502})
	}
	v6 := addrRange(netip.MustParseAddr("fd00:1:1:100::10"), siteOffice)
	for i, a := range SiteOffice {
		p.office = append(p.office, Endpoint{MAC: siteMAC(3, byte(i)), IP: a, TTL: 128})
		p.office6 = append(p.office6, Endpoint{MAC: siteMAC(3, byte(i)), IP: v6[i], TTL: 128})
	}
	for i, a := range SiteOutstations {
		p.outstations = append(p.outstations, Endpoint{MAC: siteMAC(4, byte(i)), IP: a, Port: DNP3Port})
	}
	for i, a := range SiteDNP3Masters {
		p.dnp3Masters = append(p.dnp3Masters, Endpoint{MAC: siteMAC(5, byte(i)), IP: a})
	}
	for i, a := range SiteSwitches {
		s.switches = append(s.switches, Endpoint{MAC: siteMAC(6, byte(i)), IP: a})
	}
	s.gateway6 = Endpoint{MAC: p.gateway.MAC, IP: netip.MustParseAddr("fd00:1:1:1::1")}
	s.collector = Endpoint{MAC: siteMAC(0, 4), IP: SiteServers[3], Port: 514}
	s.nms = Endpoint{MAC: siteMAC(0, 5), IP: SiteServers[4], Port: 40161}
	s.jump = Endpoint{MAC: siteMAC(0, 6), IP: SiteServers[5], TTL: 128}
	s.rogue = Endpoint{MAC: siteMAC(7, 1), IP: SiteRogue}

	// Syslog comes from the masters, the DNP3 masters, the switches, the
	// firewall and the jump host.
	add := func(name string, eps ...Endpoint) {
		for i, e := range eps {
			e.Port = 514
			s.syslogSenders = append(s.syslogSenders, e)
			s.senderNames = append(s.senderNames, fmt.Sprintf("%s%02d", name, i+1))
		}
	}
	add("scada", p.masters[:2]...)
	add("hmi", p.masters[2:siteEngineering]...)
	add("eng", p.masters[siteEngineering])
	add("fep", p.dnp3Masters...)
	add("sw", s.switches...)
	add("fw", p.gateway)
	add("jump", s.jump)

	for m := range p.masters {
		for plc := range p.plcs {
			if !sitePolls(m, plc) {
				continue
			}
			unit := uint8(1)
			if plc%4 == 3 {
				unit = uint8(1 + p.rng.IntN(247)) // gateways to serial lines
			}
			pc := &pollConn{master: m, plc: plc, unit: unit, tid: uint16(p.rng.Uint32())}
			// The connection is open when the capture starts: its first
			// packet is the master's next request.
			client := p.masters[m]
			client.Port = p.port()
			c, err := NewTCPConn(p.w, client, p.plcs[plc], p.rng.Uint32(), p.rng.Uint32())
			if err != nil {
				return nil, err
			}
			pc.conn, pc.open = c, true
			p.polls = append(p.polls, pc)
		}
	}
	if err := p.newAssocs(); err != nil {
		return nil, err
	}
	perm := p.rng.Perm(sitePLCs)
	copy(s.rogueTargets[:], perm)
	p.nextEvent = siteFirstEvent + p.rng.IntN(siteEventJitter/5)
	return s, nil
}

// sitePolls says whether master m polls PLC plc: the SCADA servers poll
// them all, each HMI two neighbouring areas, the engineering workstation
// every fourth.
func sitePolls(m, plc int) bool {
	switch {
	case m < 2:
		return true
	case m == siteEngineering:
		return plc%4 == 0
	}
	area, hmi := plc*siteAreas/sitePLCs, m-2
	return area == hmi || area == (hmi+1)%siteAreas
}

// otherStep writes IT traffic.
func (s *site) otherStep() error {
	switch r := s.rng.IntN(100); {
	case r < 40:
		return s.bulkStep()
	case r < 58:
		return s.rdpStep()
	case r < 70:
		return s.dnsStep()
	case r < 76:
		return s.ntpStep()
	case r < 85:
		return s.syslogStep()
	case r < 93:
		return s.snmpStep()
	case r < 96 && s.w.Link().CarriesARP():
		return s.siteARP()
	default:
		return s.sitePing()
	}
}

var tlsNames = [...]string{"update.vendor.example", "login.corp.example", "cdn.vendor.example", "telemetry.vendor.example"}

// clientHello returns a TLS 1.3 ClientHello record naming name (SNI); the
// slice is valid until the next call.
func (p *plant) clientHello(name string) []byte {
	off := p.rng.IntN(len(p.blob) - 64)
	b := append(p.hello[:0], 0x16, 0x03, 0x01, 0, 0) // handshake record; length below
	b = append(b, 0x01, 0, 0, 0)                     // ClientHello; length below
	b = append(b, 0x03, 0x03)                        // legacy version TLS 1.2
	b = append(b, p.blob[off:off+32]...)             // random
	b = append(b, 32)
	b = append(b, p.blob[off+32:off+64]...) // legacy session id
	suites := []byte{0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30}
	b = binary.BigEndian.AppendUint16(b, uint16(len(suites)))
	b = append(b, suites...)
	b = append(b, 1, 0) // compression: null
	ext := len(b)
	b = append(b, 0, 0)
	// server_name: list of one host_name.
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(5+len(name)))
	b = binary.BigEndian.AppendUint16(b, uint16(3+len(name)))
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	// supported_groups x25519, secp256r1; supported_versions TLS 1.3, 1.2.
	b = append(b, 0x00, 0x0a, 0, 6, 0, 4, 0x00, 0x1d, 0x00, 0x17)
	b = append(b, 0x00, 0x2b, 0, 5, 4, 0x03, 0x04, 0x03, 0x03)
	binary.BigEndian.PutUint16(b[ext:], uint16(len(b)-ext-2))
	binary.BigEndian.PutUint16(b[3:], uint16(len(b)-5))
	hs := len(b) - 9
	b[6], b[7], b[8] = byte(hs>>16), byte(hs>>8), byte(hs)
	p.hello = b
	return b
}

// appRecords returns n TLS application data records of size bytes each
// (header included, at least 6) from the bulk payload; the slice is valid
// until the next call.
func (s *site) appRecords(n, size int) []byte {
	b := s.rec[:0]
	for range n {
		off := s.rng.IntN(len(s.blob) - size)
		b = append(b, 0x17, 0x03, 0x03)
		b = binary.BigEndian.AppendUint16(b, uint16(size-5))
		b = append(b, s.blob[off:off+size-5]...)
	}
	s.rec = b
	return b
}

// rdpStep opens an RDP session or runs one exchange of it: the client's
// input events, the server's screen updates, an acknowledgement. Sessions
// 0 to 2 go from an office host to the jump host, session 3 from the
// jump host to the engineering workstation.
func (s *site) rdpStep() error {
	i := s.rng.IntN(len(s.rdp))
	c := s.rdp[i]
	if c == nil {
		return s.openRDP(i)
	}
	if s.rng.IntN(400) == 0 {
		s.rdp[i] = nil
		_, err := c.Close()
		return err
	}
	for range 1 + s.rng.IntN(2) {
		if _, err := c.Client(s.appRecords(1+s.rng.IntN(2), 30+s.rng.IntN(60))); err != nil {
			return err
		}
	}
	for range 1 + s.rng.IntN(4) {
		if _, err := c.Server(s.appRecords(1, 60+s.rng.IntN(1300))); err != nil {
			return err
		}
	}
	_, err := c.Ack(FromClient)
	return err
}

// x224Request is an RDP connection request: TPKT, X.224 Connection
// Request with a cookie, and an RDP negotiation request for TLS and
// CredSSP.
var x224Request = func() []byte {
	cookie := "Cookie: mstshash=operator\r\n"
	li := 6 + len(cookie) + 8
	b := []byte{3, 0, 0, byte(5 + li), byte(li), 0xe0, 0, 0, 0, 0, 0}
	b = append(b, cookie...)
	return append(b, 0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00)
}()

// x224Confirm is the server's X.224 Connection Confirm with an RDP
// negotiation response choosing CredSSP.
var x224Confirm = []byte{3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00}

func (s *site) openRDP(i int) error {
	client, server := s.office[s.rng.IntN(len(s.office))], s.jump
	if i == len(s.rdp)-1 {
		client, server = s.jump, s.masters[siteEngineering]
	}
	client.Port, server.Port = s.port(), 3389
	c, err := NewTCPConn(s.w, client, server, s.rng.Uint32(), s.rng.Uint32())
	if err != nil {
		return err
	}
	if _, err := c.Handshake(); err != nil {
		return err
	}
	if _, err := c.Client(x224Request); err != nil {
		return err
	}
	if _, err := c.Server(x224Confirm); err != nil {
		return err
	}
	if _, err := c.Client(s.clientHello(server.IP.String())); err != nil {
		return err
	}
	if _, err := c.Server(s.appRecords(1, 1200)); err != nil {
		return err
	}
	s.rdp[i] = c
	return nil
}

var syslogLines = [...]string{
	"sshd[812]: Accepted publickey for admin from 10.1.1.6 port 50122",
	"kernel: eth0: link up, 1000 Mbps, full duplex",
	"app[2201]: poll cycle complete, 0 errors",
	"app[2201]: historian buffer flushed",
	"CRON[3310]: (root) CMD (/usr/local/bin/backup-config)",
	"%LINK-3-UPDOWN: Interface GigabitEthernet1/0/7, changed state to up",
	"%SYS-5-CONFIG_I: Configured from console by admin",
	"ntpd[501]: synchronized to 10.1.1.3, stratum 2",
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// syslogStep sends one to three RFC 3164 messages from a host to the
// collector.
func (s *site) syslogStep() error {
	i := s.rng.IntN(len(s.syslogSenders))
	u, err := NewUDP(s.w, s.syslogSenders[i], s.collector)
	if err != nil {
		return err
	}
	for range 1 + s.rng.IntN(3) {
		t := s.w.Now()
		pri := 8*(16+s.rng.IntN(8)) + 3 + s.rng.IntN(4) // local0-7, error to info
		s.buf = fmt.Appendf(s.buf[:0], "<%d>%s %2d %02d:%02d:%02d %s %s", pri, months[t.Month()-1], t.Day(), t.Hour(), t.Minute(), t.Second(),
			s.senderNames[i], syslogLines[s.rng.IntN(len(syslogLines))])
		if _, err := u.Send(s.buf); err != nil {
			return err
		}
	}
	return nil
}

// snmpStep polls a switch or the firewall: an SNMPv2c GetRequest for
// sysUpTime.0 and an interface's counters and status, and the response.
func (s *site) snmpStep() error {
	agent := s.gateway
	if k := s.rng.IntN(len(s.switches) + 1); k < len(s.switches) {
		agent = s.switches[k]
	}
	agent.Port = 161
	u, err := NewUDP(s.w, s.nms, agent)
	if err != nil {
		return err
	}
	s.snmpID++
	ifIndex := byte(1 + s.rng.IntN(48))
	oids := [4][]byte{
		{0x2b, 6, 1, 2, 1, 1, 3, 0},                  // sysUpTime.0
		{0x2b, 6, 1, 2, 1, 31, 1, 1, 1, 6, ifIndex},  // ifHCInOctets
		{0x2b, 6, 1, 2, 1, 31, 1, 1, 1, 10, ifIndex}, // ifHCOutOctets
		{0x2b, 6, 1, 2, 1, 2, 2, 1, 8, ifIndex},      // ifOperStatus
	}
	n := 1 + s.rng.IntN(len(oids))
	var vals [4][]byte
	for i := range n {
		vals[i] = []byte{0x05, 0} // NULL
	}
	if _, err := u.Send(s.snmp(0xa0, oids[:n], vals[:n])); err != nil {
		return err
	}
	s.w.Advance(time.Duration(1+s.rng.IntN(3)) * time.Millisecond)
	vals[0] = berUint(0x43, uint64(s.w.Now().Sub(DefaultStart)/(10*time.Millisecond))+360000) // TimeTicks
	for i := 1; i < n; i++ {
		switch i {
		case 3:
			vals[i] = berUint(0x02, 1) // up
		default:
			vals[i] = berUint(0x46, s.rng.Uint64()>>20) // Counter64
		}
	}
	_, err = u.Reply(s.snmp(0xa2, oids[:n], vals[:n]))
	return err
}

// snmp returns an SNMPv2c message with community "public" and a PDU of
// type pdu (0xa0 GetRequest, 0xa2 Response) binding each OID to its
// encoded value; the slice is valid until the next call.
func (s *site) snmp(pdu byte, oids, vals [][]byte) []byte {
	var binds []byte
	for i, o := range oids {
		vb := appendTLV(nil, 0x06, o)
		vb = append(vb, vals[i]...)
		binds = appendTLV(binds, 0x30, vb)
	}
	body := berUint(0x02, uint64(s.snmpID))
	body = append(body, 0x02, 1, 0, 0x02, 1, 0) // error status and index
	body = appendTLV(body, 0x30, binds)
	msg := berUint(0x02, 1) // version 2c
	msg = appendTLV(msg, 0x04, []byte("public"))
	msg = appendTLV(msg, pdu, body)
	s.buf = appendTLV(s.buf[:0], 0x30, msg)
	return s.buf
}

// appendTLV appends a BER tag, the definite length of v and v.
func appendTLV(b []byte, tag byte, v []byte) []byte {
	b = append(b, tag)
	switch n := len(v); {
	case n < 0x80:
		b = append(b, byte(n))
	case n < 0x100:
		b = append(b, 0x81, byte(n))
	default:
		b = append(b, 0x82, byte(n>>8), byte(n))
	}
	return append(b, v...)
}

// berUint encodes v as a BER INTEGER-like value of the given tag
// (INTEGER, TimeTicks, Counter64): big-endian, minimal, with a leading 0
// when the top bit is set.
func berUint(tag byte, v uint64) []byte {
	var c []byte
	for i := 7; i >= 0; i-- {
		x := byte(v >> (8 * i))
		if len(c) == 0 && x == 0 && i > 0 {
			continue
		}
		if len(c) == 0 && x&0x80 != 0 {
			c = append(c, 0)
		}
		c = append(c, x)
	}
	return appendTLV(nil, tag, c)
}

// siteARP refreshes an ARP entry: a PLC's for one of its masters, a
// master's for one of its PLCs, or an office host's for the gateway. No
// host asks for many addresses in a short time.
func (s *site) siteARP() error {
	pc := s.polls[s.rng.IntN(len(s.polls))]
	asker, owner := s.plcs[pc.plc], s.masters[pc.master]
	switch s.rng.IntN(3) {
	case 0:
		asker, owner = owner, asker
	case 1:
		asker, owner = s.office[s.rng.IntN(len(s.office))], s.gateway
	}
	if _, err := s.w.ARPRequest(asker, owner.IP); err != nil {
		return err
	}
	_, err := s.w.ARPReply(owner, asker)
	return err
}

// sitePing is the SNMP manager pinging a switch or the firewall, or an
// office host pinging the gateway over IPv4 or IPv6.
func (s *site) sitePing() error {
	src, dst := s.nms, s.gateway
	switch r := s.rng.IntN(10); {
	case r < 6:
		if k := s.rng.IntN(len(s.switches) + 1); k < len(s.switches) {
			dst = s.switches[k]
		}
	case r < 8:
		src = s.office[s.rng.IntN(len(s.office))]
	default:
		src, dst = s.office6[s.rng.IntN(len(s.office6))], s.gateway6
	}
	off := s.rng.IntN(len(s.blob) - 56)
	_, err := s.w.Ping(src, dst, uint16(s.rng.Uint32()), uint16(s.rng.IntN(1000)), s.blob[off:off+56])
	return err
}

// eventStep runs the next event, in a cycle of five: the rogue host's
// writes, a DNP3 restart, the rogue host's port sweep, writes, writes.
func (s *site) eventStep() error {
	k := s.events
	s.events++
	s.nextEvent = s.w.Packets() + siteEventGap + s.rng.IntN(siteEventJitter)
	switch k % 5 {
	case 1:
		return s.restart()
	case 2:
		return s.sweep()
	default:
		return s.rogueWrite()
	}
}

// rogueWrite connects the rogue host to one of its target PLCs, writes
// one to three holding registers or blocks of them with values no master
// writes, and closes.
func (s *site) rogueWrite() error {
	plc := s.rogueTargets[s.rng.IntN(len(s.rogueTargets))]
	client := s.rogue
	client.Port = s.port()
	c, err := NewTCPConn(s.w, client, s.plcs[plc], s.rng.Uint32(), s.rng.Uint32())
	if err != nil {
		return err
	}
	if _, err := c.Handshake(); err != nil {
		return err
	}
	unit := uint8(1)
	if plc%4 == 3 {
		unit = uint8(1 + s.rng.IntN(247))
	}
	tid := uint16(s.rng.IntN(16))
	for range 1 + s.rng.IntN(3) {
		tid++
		addr := uint16(s.rng.IntN(40)) * 10
		var req, resp []byte
		if s.rng.IntN(2) == 0 {
			req = WriteSingleRegister(addr, uint16(40000+s.rng.IntN(25000)))
			resp = req
		} else {
			vals := make([]uint16, 2+s.rng.IntN(3))
			for i := range vals {
				vals[i] = uint16(40000 + s.rng.IntN(25000))
			}
			req, resp = WriteMultipleRegisters(addr, vals...), WriteMultipleRegistersResponse(addr, uint16(len(vals)))
		}
		if _, err := c.Client(MBAP(tid, unit, req)); err != nil {
			return err
		}
		s.w.Advance(time.Duration(2+s.rng.IntN(10)) * time.Millisecond)
		if _, err := c.Server(MBAP(tid, unit, resp)); err != nil {
			return err
		}
		s.w.Advance(time.Duration(100+s.rng.IntN(400)) * time.Millisecond)
	}
	_, err = c.Close()
	return err
}

// sweepPorts are the TCP ports the rogue host tries; a PLC has only 502
// open.
var sweepPorts = [...]uint16{21, 22, 23, 25, 53, 80, 102, 110, 135, 139, 143, 443, 445, 502, 1433, 1883, 2404, 3306, 3389, 4840, 5900, 8080, 8443, 20000, 44818}

// sweep is the rogue host trying sweepPorts on a PLC from one source
// port: a reset answers each SYN but the one to 502, whose SYN-ACK the
// rogue host resets.
func (s *site) sweep() error {
	plc := s.plcs[s.rng.IntN(len(s.plcs))]
	client := s.rogue
	client.Port = s.port()
	for _, port := range sweepPorts {
		server := plc
		server.Port = port
		c, err := NewTCPConn(s.w, client, server, s.rng.Uint32(), s.rng.Uint32())
		if err != nil {
			return err
		}
		if _, err := c.Syn(); err != nil {
			return err
		}
		if port != 502 {
			if _, err := c.Rst(FromServer); err != nil {
				return err
			}
			continue
		}
		if _, err := c.SynAck(); err != nil {
			return err
		}
		if _, err := c.Rst(FromClient); err != nil {
			return err
		}
	}
	return nil
}

// restart has an operating DNP3 master send a cold or warm restart to an
// outstation it polls over TCP, when one is open and settled; the
// outstation answers with the time it needs and then reports the
// restart.
func (s *site) restart() error {
	start := s.rng.IntN(len(s.assocs))
	for k := range s.assocs {
		a := s.assocs[(start+k)%len(s.assocs)]
		if a.udp || !a.open || a.master >= s.cfg.operators || a.integrityDue || a.restart || a.needTime {
			continue
		}
		fc, delay := uint8(DNP3ColdRestart), uint16(5000+s.rng.IntN(10000))
		if s.rng.IntN(2) == 0 {
			fc, delay = DNP3WarmRestart, uint16(500+s.rng.IntN(2000))
		}
		seq := a.nextSeq()
		req := AppRequest(AppControl(true, true, false, false, seq), fc)
		resp := AppResponse(AppControl(true, true, false, false, seq), DNP3Response, a.iin(0), TimeDelayFine(delay))
		if err := s.dnp3Exchange(a, req, resp); err != nil {
			return err
		}
		a.integrityDue, a.restart, a.needTime = true, true, true
		return nil
	}
	return nil
}
