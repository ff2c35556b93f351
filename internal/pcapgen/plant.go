package pcapgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// Plant's address plan, for tests that look for its hosts.
var (
	PlantMasters = addrRange(netip.MustParseAddr("10.10.1.10"), plantMasters) // HMIs and SCADA servers
	PlantPLCs    = addrRange(netip.MustParseAddr("10.10.1.20"), plantPLCs)    // Modbus servers on port 502
	// DNP3 outstations (RTUs) on port 20000, polled by the first two
	// PlantMasters (link addresses 1 and 2; outstations have 10 to 17); the
	// last one over UDP.
	PlantOutstations = addrRange(netip.MustParseAddr("10.10.1.40"), plantOutstations)
)

const (
	plantMasters     = 3
	plantPLCs        = 12
	plantOffice      = 4 // engineering workstations and historians that reach the outside
	plantOutstations = 8
	plantMSS         = 1448

	dnp3MasterAddr = 1  // link address of the first DNP3 master; the next ones follow
	dnp3OutAddr    = 10 // link address of the first outstation
)

// plantConfig is what differs between Plant and SitePlant beyond their
// address plans: the traffic shares, how many of some hosts and flows
// there are, and who may write and operate.
type plantConfig struct {
	modbusPercent, dnp3Percent int // shares of the packets; the rest is other traffic
	bulkFlows                  int // concurrent HTTPS/HTTP transfers
	writers                    int // the first writers Modbus masters write; the others only read
	operators                  int // the first operators DNP3 masters select and operate
	dnp3Masters                int
	dualPolled                 int // the first dualPolled outstations have a second master
	udpOutstations             int // the last udpOutstations outstations are reached over UDP
	// udpEvery, when set, gives the one UDP association (the last) one
	// DNP3 step in udpEvery and the others the rest, as Plant does; when
	// 0 every association is as likely.
	udpEvery int
	// unsolicitedFrom sets how often an outstation reports on its own: a
	// DNP3 step of an established association that is not a link status,
	// time write or select is an unsolicited response when its draw r
	// (0 to 999) is from unsolicitedFrom to 199. With 0 (Plant) that is
	// 11 % of them, and 20 % for associations whose master does not
	// operate; 180 makes it 2 % of every association's.
	unsolicitedFrom int
	// tlsHello makes HTTPS transfers open with a TLS ClientHello record
	// that names the server, instead of random bytes of its size.
	tlsHello bool
	// stepMicros bounds the random time between two steps.
	stepMicros int
}

// smallPlant is Plant's configuration.
var smallPlant = plantConfig{
	modbusPercent: 40, dnp3Percent: 30,
	bulkFlows: 4, writers: 1, operators: 1,
	dnp3Masters: 2, dualPolled: 2, udpOutstations: 1, udpEvery: 20,
	stepMicros: 400,
}

// Plant writes a deterministic capture of about packets frames (at least
// packets, at most a few more) of an industrial network: ~40 % Modbus/TCP
// polling from 3 masters to 12 PLCs on port 502; ~30 % DNP3 from 2 of those
// masters to 8 outstations on port 20000, mostly over TCP, a little over
// UDP; the rest HTTPS and HTTP bulk transfers (some over IPv6), DNS, NTP,
// ARP and ICMP. The same seed gives the same bytes.
//
// The Modbus traffic has real handshakes, long-lived connections with
// occasional closes, resets and reconnects, FC 1-4 reads and FC 6 and 16
// writes, pipelined requests, ADUs split across segments and several ADUs
// in one segment, exception responses and retransmitted requests.
//
// The DNP3 traffic has integrity polls (class 1, 2, 3 and 0 reads) answered
// with g1v2 and g30v5 static data in fragments of several transport
// segments; class 1-3 event polls answered with g2v2 and g32v1 events that
// the master confirms, or with no data; unsolicited responses with their
// confirms; select-before-operate of g12v1 CROBs (and now and then a g41v1
// analog output); writes of g80v1 (clearing the restart IIN after a
// reconnect) and g50v1 time; link status keepalives; one to four link
// frames per TCP segment and now and then a link frame split across two.
// Transport sequence numbers run on and wrap from 63 to 0.
//
// All of it is well formed. Plant keeps a fixed amount of state, so its
// memory does not grow with packets.
func Plant(w *Writer, packets int, seed int64) error {
	if packets < 0 {
		return fmt.Errorf("pcapgen: negative packet count %d", packets)
	}
	p, err := newPlant(w, seed)
	if err != nil {
		return err
	}
	return p.run(packets)
}

// run writes steps until the Writer holds at least packets frames: an
// event when one is due, else Modbus or DNP3 while their share is short,
// else other traffic.
func (p *plant) run(packets int) error {
	w := p.w
	for w.Packets() < packets {
		before := w.Packets()
		var err error
		switch {
		case p.event != nil && before >= p.nextEvent:
			err = p.event()
		case p.modbusPackets*100 <= p.cfg.modbusPercent*before:
			err = p.modbusStep()
			p.modbusPackets += w.Packets() - before
		case p.dnp3Packets*100 <= p.cfg.dnp3Percent*before:
			err = p.dnp3Step()
			p.dnp3Packets += w.Packets() - before
		default:
			err = p.other()
		}
		if err != nil {
			return err
		}
		w.Advance(time.Duration(p.rng.IntN(p.cfg.stepMicros)) * time.Microsecond)
	}
	return nil
}

type plant struct {
	w             *Writer
	cfg           *plantConfig
	rng           *rand.Rand
	masters       []Endpoint
	writer        []bool // by master: whether it writes
	dnp3Masters   []Endpoint
	plcs          []Endpoint
	outstations   []Endpoint
	office        []Endpoint
	office6       []Endpoint
	gateway       Endpoint
	dns, ntp      Endpoint
	polls         []*pollConn
	assocs        []*dnp3Assoc
	bulks         []*bulkFlow
	nextPort      uint16
	other         func() error // writes a step of the traffic that is neither Modbus nor DNP3
	event         func() error // when not nil, run instead of a step once nextEvent packets are written
	nextEvent     int
	modbusPackets int
	dnp3Packets   int
	blob          []byte  // pseudo-random bulk payload, sliced per segment
	adu           []byte  // scratch for coalesced ADUs
	hello         []byte  // scratch for TLS ClientHellos
	bits          []uint8 // scratch for DNP3 binary points
	// binState is each outstation's binary inputs (flags octets): they
	// change only with the events that report the change.
	binState [][]uint8
	floats   []float32 // scratch for DNP3 analog points
	bevents  []BinaryEvent
	aevents  []AnalogEvent
}

type pollConn struct {
	conn   *TCPConn
	master int
	plc    int
	unit   uint8
	tid    uint16
	open   bool
}

type bulkFlow struct {
	conn      *TCPConn
	remaining int
	sent      int
}

func addrRange(first netip.Addr, n int) []netip.Addr {
	a := make([]netip.Addr, n)
	for i := range a {
		a[i] = first
		first = first.Next()
	}
	return a
}

func plantMAC(kind, i byte) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, kind, i}
}

// newPlantBase returns a plant with its random source, its bulk payload,
// and a gateway, a DNS server and an NTP server at gateway and the next two
// addresses; mac makes the MAC addresses of each kind of host.
func newPlantBase(w *Writer, seed int64, cfg *plantConfig, gateway netip.Addr, mac func(kind, i byte) net.HardwareAddr) *plant {
	p := &plant{
		w:        w,
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x7461707761746368)),
		nextPort: 49152,
		gateway:  Endpoint{MAC: mac(0, 1), IP: gateway},
		dns:      Endpoint{MAC: mac(0, 2), IP: gateway.Next(), Port: 53},
		ntp:      Endpoint{MAC: mac(0, 3), IP: gateway.Next().Next(), Port: 123},
		bulks:    make([]*bulkFlow, cfg.bulkFlows),
		blob:     make([]byte, 1<<16),
	}
	for i := range p.blob {
		p.blob[i] = byte(p.rng.Uint32())
	}
	return p
}

func newPlant(w *Writer, seed int64) (*plant, error) {
	p := newPlantBase(w, seed, &smallPlant, netip.MustParseAddr("10.10.1.1"), plantMAC)
	p.other = p.otherStep
	for i, a := range PlantMasters {
		p.masters = append(p.masters, Endpoint{MAC: plantMAC(1, byte(i)), IP: a})
		p.writer = append(p.writer, i < p.cfg.writers)
	}
	p.dnp3Masters = p.masters[:p.cfg.dnp3Masters]
	for i, a := range PlantPLCs {
		p.plcs = append(p.plcs, Endpoint{MAC: plantMAC(2, byte(i)), IP: a, Port: 502})
	}
	v4 := addrRange(netip.MustParseAddr("10.10.1.100"), plantOffice)
	v6 := addrRange(netip.MustParseAddr("fd00:10:10:1::100"), plantOffice)
	for i := range plantOffice {
		p.office = append(p.office, Endpoint{MAC: plantMAC(3, byte(i)), IP: v4[i]})
		p.office6 = append(p.office6, Endpoint{MAC: plantMAC(3, byte(i)), IP: v6[i]})
	}
	for i, a := range PlantOutstations {
		p.outstations = append(p.outstations, Endpoint{MAC: plantMAC(4, byte(i)), IP: a, Port: DNP3Port})
	}
	for m := range p.masters {
		for s := range p.plcs {
			unit := uint8(1)
			if s%4 == 3 {
				unit = uint8(1 + p.rng.IntN(247)) // gateways to serial lines
			}
			p.polls = append(p.polls, &pollConn{master: m, plc: s, unit: unit, tid: uint16(p.rng.Uint32())})
		}
	}
	if err := p.newAssocs(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *plant) port() uint16 {
	p.nextPort++
	if p.nextPort == 0 {
		p.nextPort = 49152
	}
	return p.nextPort
}

// modbusStep opens a connection or runs one polling exchange on it.
func (p *plant) modbusStep() error {
	pc := p.polls[p.rng.IntN(len(p.polls))]
	if !pc.open {
		client := p.masters[pc.master]
		client.Port = p.port()
		c, err := NewTCPConn(p.w, client, p.plcs[pc.plc], p.rng.Uint32(), p.rng.Uint32())
		if err != nil {
			return err
		}
		pc.conn, pc.open = c, true
		_, err = c.Handshake()
		return err
	}
	c := pc.conn
	r := p.rng.IntN(1000)
	switch {
	case r < 2: // the master gives up on the connection
		pc.open = false
		if r == 0 {
			_, err := c.Rst(FromClient)
			return err
		}
		_, err := c.Close()
		return err
	case r < 12: // the request is lost on the far side and retransmitted
		req, resp := p.transaction(pc)
		f, err := c.Client(req)
		if err != nil {
			return err
		}
		p.w.Advance(200 * time.Millisecond)
		if _, err := c.Retransmit(f[0]); err != nil {
			return err
		}
		_, err = c.Server(resp)
		return err
	case r < 22: // exception response
		req, _ := p.transaction(pc)
		if _, err := c.Client(req); err != nil {
			return err
		}
		code := uint8(ExIllegalDataAddress)
		if r%3 == 0 {
			code = ExServerDeviceBusy
		}
		resp := MBAP(binary.BigEndian.Uint16(req), pc.unit, ExceptionResponse(req[MBAPLen], code))
		_, err := c.Server(resp)
		return err
	case r < 100: // pipelined: several requests before the first response
		return p.pipelined(pc, 2+p.rng.IntN(3), r%2 == 0)
	case r < 150: // several ADUs in one segment each way
		return p.coalesced(pc, 2+p.rng.IntN(2))
	case r < 220: // an ADU split across segments
		req, resp := p.transaction(pc)
		if r < 185 {
			if _, err := c.Client(req, SplitAt(1+p.rng.IntN(len(req)-1))); err != nil {
				return err
			}
			_, err := c.Server(resp)
			return err
		}
		if _, err := c.Client(req); err != nil {
			return err
		}
		_, err := c.Server(resp, Split(min(2+p.rng.IntN(2), len(resp))))
		return err
	default: // plain request and response, sometimes a delayed ACK
		req, resp := p.transaction(pc)
		if _, err := c.Client(req); err != nil {
			return err
		}
		if _, err := c.Server(resp); err != nil {
			return err
		}
		if r%3 == 0 {
			p.w.Advance(40 * time.Millisecond)
			_, err := c.Ack(FromClient)
			return err
		}
		return nil
	}
}

func (p *plant) pipelined(pc *pollConn, n int, oneResponseSegment bool) error {
	var resps [4][]byte
	for i := range n {
		req, resp := p.transaction(pc)
		resps[i] = resp
		if _, err := pc.conn.Client(req); err != nil {
			return err
		}
	}
	if oneResponseSegment {
		p.adu = p.adu[:0]
		for _, r := range resps[:n] {
			p.adu = append(p.adu, r...)
		}
		_, err := pc.conn.Server(p.adu)
		return err
	}
	for _, r := range resps[:n] {
		if _, err := pc.conn.Server(r); err != nil {
			return err
		}
	}
	return nil
}

func (p *plant) coalesced(pc *pollConn, n int) error {
	var resps [3][]byte
	p.adu = p.adu[:0]
	for i := range n {
		req, resp := p.transaction(pc)
		resps[i] = resp
		p.adu = append(p.adu, req...)
	}
	if _, err := pc.conn.Client(p.adu); err != nil {
		return err
	}
	p.adu = p.adu[:0]
	for _, r := range resps[:n] {
		p.adu = append(p.adu, r...)
	}
	_, err := pc.conn.Server(p.adu)
	return err
}

// transaction returns a request ADU and its normal response ADU.
func (p *plant) transaction(pc *pollConn) (req, resp []byte) {
	pc.tid++
	addr := uint16(p.rng.IntN(40)) * 10
	var reqPDU, respPDU []byte
	switch r := p.rng.IntN(100); {
	case r < 45, r >= 90 && !p.writer[pc.master]: // only the writers write
		qty := p.quantity(125)
		reqPDU = ReadHoldingRegisters(addr, qty)
		respPDU = RegistersResponse(FCReadHoldingRegisters, p.registers(int(qty))...)
	case r < 65:
		qty := p.quantity(125)
		reqPDU = ReadInputRegisters(addr, qty)
		respPDU = RegistersResponse(FCReadInputRegisters, p.registers(int(qty))...)
	case r < 90:
		fc := uint8(FCReadCoils)
		if r >= 80 {
			fc = FCReadDiscreteInputs
		}
		qty := p.quantity(2000)
		reqPDU = ReadRequest(fc, addr, qty)
		bits := make([]bool, qty)
		for i := range bits {
			bits[i] = p.rng.IntN(4) == 0
		}
		respPDU = BitsResponse(fc, bits...)
	case r < 95:
		v := uint16(p.rng.IntN(2000))
		reqPDU = WriteSingleRegister(addr, v)
		respPDU = reqPDU
	default:
		vals := p.registers(1 + p.rng.IntN(8))
		reqPDU = WriteMultipleRegisters(addr, vals...)
		respPDU = WriteMultipleRegistersResponse(addr, uint16(len(vals)))
	}
	return MBAP(pc.tid, pc.unit, reqPDU), MBAP(pc.tid, pc.unit, respPDU)
}

// quantity is mostly small, sometimes up to limit.
func (p *plant) quantity(limit int) uint16 {
	if p.rng.IntN(10) == 0 {
		return uint16(1 + p.rng.IntN(limit))
	}
	return uint16(1 + p.rng.IntN(min(limit, 16)))
}

func (p *plant) registers(n int) []uint16 {
	v := make([]uint16, n)
	for i := range v {
		v[i] = uint16(p.rng.IntN(4096))
	}
	return v
}

// otherStep writes non-Modbus traffic.
func (p *plant) otherStep() error {
	switch r := p.rng.IntN(100); {
	case r < 60:
		return p.bulkStep()
	case r < 78:
		return p.dnsStep()
	case r < 88:
		return p.ntpStep()
	case r < 94 && p.w.Link().CarriesARP():
		return p.arpStep()
	default:
		return p.pingStep()
	}
}

func (p *plant) bulkStep() error {
	i := p.rng.IntN(len(p.bulks))
	b := p.bulks[i]
	if b == nil {
		return p.openBulk(i)
	}
	burst := 1 + p.rng.IntN(8)
	for range burst {
		if b.remaining == 0 {
			p.bulks[i] = nil
			_, err := b.conn.Close()
			return err
		}
		n := min(b.remaining, plantMSS)
		off := p.rng.IntN(len(p.blob) - plantMSS)
		if _, err := b.conn.Server(p.blob[off : off+n]); err != nil {
			return err
		}
		b.remaining -= n
		b.sent++
		if b.sent%2 == 0 {
			if _, err := b.conn.Ack(FromClient); err != nil {
				return err
			}
		}
	}
	return nil
}

var httpRequest = []byte("GET /firmware/v2.bin HTTP/1.1\r\nHost: update.vendor.example\r\nUser-Agent: updater/1.0\r\nAccept: */*\r\n\r\n")

var httpResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n")

func (p *plant) openBulk(i int) error {
	k := p.rng.IntN(len(p.office))
	client := p.office[k]
	server := Endpoint{MAC: p.gateway.MAC, IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + p.rng.IntN(200))}), Port: 443}
	if p.rng.IntN(5) == 0 {
		client = p.office6[k]
		server.IP = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(1 + p.rng.IntN(200))})
	}
	http := p.rng.IntN(4) == 0
	if http {
		server.Port = 80
	}
	client.Port = p.port()
	c, err := NewTCPConn(p.w, client, server, p.rng.Uint32(), p.rng.Uint32())
	if err != nil {
		return err
	}
	if _, err := c.Handshake(); err != nil {
		return err
	}
	switch {
	case http:
		_, err = c.Client(httpRequest)
	case p.cfg.tlsHello:
		_, err = c.Client(p.clientHello(tlsNames[p.rng.IntN(len(tlsNames))]))
	default:
		off := p.rng.IntN(len(p.blob) - 600)
		_, err = c.Client(p.blob[off : off+200+p.rng.IntN(400)]) // a TLS ClientHello's size
	}
	if err != nil {
		return err
	}
	if http {
		if _, err := c.Server(httpResponse); err != nil {
			return err
		}
	}
	p.bulks[i] = &bulkFlow{conn: c, remaining: 16 << 10 << p.rng.IntN(7)} // 16 KiB to 1 MiB
	return nil
}

var dnsNames = [...]string{"historian.plant.example", "ntp.plant.example", "update.vendor.example", "mail.corp.example"}

func (p *plant) dnsStep() error {
	client := p.office[p.rng.IntN(len(p.office))]
	client.Port = p.port()
	u, err := NewUDP(p.w, client, p.dns)
	if err != nil {
		return err
	}
	id := uint16(p.rng.Uint32())
	name := dnsNames[p.rng.IntN(len(dnsNames))]
	q := dnsMessage(id, name, nil)
	if _, err := u.Send(q); err != nil {
		return err
	}
	p.w.Advance(time.Millisecond)
	lan := p.gateway.IP.As4() // the answer is on the gateway's /24
	_, err = u.Reply(dnsMessage(id, name, []byte{lan[0], lan[1], lan[2], byte(200 + p.rng.IntN(50))}))
	return err
}

// dnsMessage builds a query for name's A record, or with answer set the
// response carrying that address.
func dnsMessage(id uint16, name string, answer []byte) []byte {
	m := binary.BigEndian.AppendUint16(nil, id)
	if answer == nil {
		m = append(m, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	} else {
		m = append(m, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0) // QR RD RA; one answer
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			m = append(m, byte(i-start))
			m = append(m, name[start:i]...)
			start = i + 1
		}
	}
	m = append(m, 0, 0, 1, 0, 1) // root, type A, class IN
	if answer != nil {
		m = append(m, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4) // pointer to the name, A, IN, TTL 3600
		m = append(m, answer...)
	}
	return m
}

func (p *plant) ntpStep() error {
	client := p.office[p.rng.IntN(len(p.office))]
	if p.rng.IntN(2) == 0 {
		client = p.masters[p.rng.IntN(len(p.masters))]
	}
	client.Port = 123
	u, err := NewUDP(p.w, client, p.ntp)
	if err != nil {
		return err
	}
	var msg [48]byte
	msg[0] = 0x23 // version 4, client
	binary.BigEndian.PutUint64(msg[40:], p.rng.Uint64())
	if _, err := u.Send(msg[:]); err != nil {
		return err
	}
	msg[0], msg[1], msg[2], msg[3] = 0x24, 2, 6, 0xe9 // version 4, server, stratum 2
	copy(msg[24:32], msg[40:48])                      // origin = client's transmit time
	binary.BigEndian.PutUint64(msg[32:], p.rng.Uint64())
	binary.BigEndian.PutUint64(msg[40:], p.rng.Uint64())
	_, err = u.Reply(msg[:])
	return err
}

func (p *plant) arpStep() error {
	asker := p.masters[p.rng.IntN(len(p.masters))]
	owner := p.plcs[p.rng.IntN(len(p.plcs))]
	if _, err := p.w.ARPRequest(asker, owner.IP); err != nil {
		return err
	}
	_, err := p.w.ARPReply(owner, asker)
	return err
}

func (p *plant) pingStep() error {
	src, dst := p.office[p.rng.IntN(len(p.office))], p.gateway
	if p.rng.IntN(3) == 0 {
		dst = p.plcs[p.rng.IntN(len(p.plcs))]
	}
	off := p.rng.IntN(len(p.blob) - 56)
	_, err := p.w.Ping(src, dst, uint16(p.rng.Uint32()), uint16(p.rng.IntN(1000)), p.blob[off:off+56])
	return err
}

// dnp3Assoc is a master's association with one outstation.
type dnp3Assoc struct {
	d      *DNP3Conn
	master int // index into p.masters
	out    int // index into p.outstations
	udp    bool
	open   bool
	seq    uint8 // application sequence number of the master's next request
	unsSeq uint8 // of the outstation's next unsolicited response

	// A (re)started outstation reports IIN1.7 and IIN1.4: the master runs an
	// integrity poll, clears the restart bit and sets the time.
	integrityDue, restart, needTime bool

	binaries, analogs int // the outstation's static points
}

// newAssocs creates the DNP3 associations: outstation o has master o
// modulo the number of masters (in Plant, the first for even outstations,
// the second for odd ones), the first cfg.dualPolled are also polled by the
// next master, and the last cfg.udpOutstations are reached over UDP.
func (p *plant) newAssocs() error {
	n := len(p.dnp3Masters)
	for o := range p.outstations {
		binaries, analogs := 32+p.rng.IntN(225), 16+p.rng.IntN(285)
		masters := []int{o % n}
		if o < p.cfg.dualPolled {
			masters = append(masters, (o+1)%n)
		}
		for _, m := range masters {
			a := &dnp3Assoc{master: m, out: o, udp: o >= len(p.outstations)-p.cfg.udpOutstations, binaries: binaries, analogs: analogs,
				seq: uint8(p.rng.IntN(16)), unsSeq: uint8(p.rng.IntN(16))}
			if a.udp {
				client := p.dnp3Masters[m]
				client.Port = DNP3Port
				u, err := NewUDP(p.w, client, p.outstations[o])
				if err != nil {
					return err
				}
				a.d = NewDNP3UDP(u, dnp3MasterAddr+uint16(m), dnp3OutAddr+uint16(o))
				a.d.MasterSeq, a.d.OutstationSeq = uint8(p.rng.IntN(64)), uint8(p.rng.IntN(64))
				a.open, a.integrityDue, a.restart, a.needTime = true, true, true, true
			}
			p.assocs = append(p.assocs, a)
		}
	}
	return nil
}

// dnp3Step opens an association's connection or runs one exchange on it.
func (p *plant) dnp3Step() error {
	a := p.pickAssoc()
	if !a.open {
		client := p.dnp3Masters[a.master]
		client.Port = p.port()
		c, err := NewTCPConn(p.w, client, p.outstations[a.out], p.rng.Uint32(), p.rng.Uint32())
		if err != nil {
			return err
		}
		a.d = NewDNP3TCP(c, dnp3MasterAddr+uint16(a.master), dnp3OutAddr+uint16(a.out))
		a.d.MasterSeq, a.d.OutstationSeq = uint8(p.rng.IntN(64)), uint8(p.rng.IntN(64))
		a.open, a.integrityDue, a.restart, a.needTime = true, true, true, true
		_, err = c.Handshake()
		return err
	}
	r := p.rng.IntN(1000)
	switch {
	case r < 2 && !a.udp: // the master drops the connection
		a.open = false
		c := a.d.TCP()
		if r == 0 {
			_, err := c.Rst(FromClient)
			return err
		}
		_, err := c.Close()
		return err
	case a.integrityDue:
		a.integrityDue = false
		return p.integrityPoll(a)
	case a.restart:
		a.restart = false
		return p.dnp3Write(a, ClearRestart())
	case a.needTime:
		a.needTime = false
		return p.dnp3Write(a, TimeAndDate(uint64(p.w.Now().UnixMilli())))
	case r < 40:
		_, err := a.d.LinkStatus()
		return err
	case r < 50:
		return p.dnp3Write(a, TimeAndDate(uint64(p.w.Now().UnixMilli())))
	case r < 90 && a.master < p.cfg.operators: // only the operators operate
		return p.selectOperate(a)
	case r < 200 && r >= p.cfg.unsolicitedFrom:
		return p.unsolicited(a)
	case r < 380:
		return p.integrityPoll(a)
	default:
		return p.eventPoll(a)
	}
}

// pickAssoc chooses the association of the next DNP3 step.
func (p *plant) pickAssoc() *dnp3Assoc {
	if p.cfg.udpEvery == 0 {
		return p.assocs[p.rng.IntN(len(p.assocs))]
	}
	// The UDP association, the last, gets a small share: about 1 step in
	// udpEvery.
	a := p.assocs[p.rng.IntN(len(p.assocs)-1)]
	if p.rng.IntN(p.cfg.udpEvery) == 0 {
		a = p.assocs[len(p.assocs)-1]
	}
	return a
}

// nextSeq returns the application sequence number of a's next request.
func (a *dnp3Assoc) nextSeq() uint8 {
	s := a.seq
	a.seq = (a.seq + 1) & 0x0f
	return s
}

// iin is the outstation's internal indications now, with class data
// available bits from r.
func (a *dnp3Assoc) iin(r int) uint16 {
	v := uint16(r&7) << 1 & (IINClass1Events | IINClass2Events | IINClass3Events)
	if a.restart {
		v |= IINDeviceRestart
	}
	if a.needTime {
		v |= IINNeedTime
	}
	return v
}

// dnp3Exchange sends a request and its response. A response with CON set
// is confirmed by the master.
func (p *plant) dnp3Exchange(a *dnp3Assoc, req, resp []byte) error {
	if _, err := a.d.Master(req); err != nil {
		return err
	}
	p.w.Advance(time.Duration(1+p.rng.IntN(20)) * time.Millisecond)
	if err := p.dnp3Respond(a, resp); err != nil {
		return err
	}
	if resp[0]&0x20 != 0 { // CON
		return p.dnp3Confirm(a, resp[0])
	}
	return nil
}

// dnp3Respond sends a fragment from the outstation, cutting its frames into
// TCP segments in one of the ways real stacks do.
func (p *plant) dnp3Respond(a *dnp3Assoc, frag []byte) error {
	a.d.FramesPerSegment = 1 + p.rng.IntN(4) // at most 4 × 292 octets: within the MSS
	if a.udp {
		_, err := a.d.Outstation(frag)
		return err
	}
	if len(frag) > 2*DNP3MaxSegment && p.rng.IntN(16) == 0 {
		// A link frame split across two segments, as a stack writing its
		// buffer in pieces of a fixed size would.
		b, err := a.d.Frames(FromOutstation, frag)
		if err != nil {
			return err
		}
		c := a.d.TCP()
		cut := 300 + p.rng.IntN(plantMSS-300)
		for len(b) > 0 {
			n := min(cut, len(b))
			if _, err := c.Server(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		_, err = c.Ack(FromClient)
		return err
	}
	f, err := a.d.Outstation(frag)
	if err == nil && len(f) > 2 {
		_, err = a.d.TCP().Ack(FromClient)
	}
	return err
}

// dnp3Confirm sends the master's application confirm of a response or
// unsolicited response whose control octet was ctl.
func (p *plant) dnp3Confirm(a *dnp3Assoc, ctl uint8) error {
	_, err := a.d.Master(AppRequest(AppControl(true, true, false, ctl&0x10 != 0, ctl), DNP3Confirm))
	return err
}

// integrityPoll reads class 1, 2, 3 and 0 data; the response carries all
// the static points and sometimes events.
func (p *plant) integrityPoll(a *dnp3Assoc) error {
	seq := a.nextSeq()
	req := AppRequest(AppControl(true, true, false, false, seq), DNP3Read, ClassData(1), ClassData(2), ClassData(3), ClassData(0))
	p.bits = append(p.bits[:0], p.binaries(a)...)
	p.floats = p.floats[:0]
	for range a.analogs {
		p.floats = append(p.floats, float32(p.rng.IntN(100000))/100)
	}
	events := p.rng.IntN(3) == 0
	r := p.rng.IntN(8)
	if events {
		objs := [2][]byte{p.binaryEvents(a), p.analogEvents(a)}
		// The static values are read after the events changed them.
		p.bits = append(p.bits[:0], p.binaries(a)...)
		return p.dnp3Exchange(a, req, AppResponse(AppControl(true, true, true, false, seq), DNP3Response, a.iin(r), objs[0], objs[1],
			BinaryInputs(0, p.bits...), AnalogInputsFloat(0, DNP3FlagOnline, p.floats...)))
	}
	objs := [4][]byte{BinaryInputs(0, p.bits...), AnalogInputsFloat(0, DNP3FlagOnline, p.floats...)}
	resp := AppResponse(AppControl(true, true, events, false, seq), DNP3Response, a.iin(r), objs[2], objs[3], objs[0], objs[1])
	return p.dnp3Exchange(a, req, resp)
}

// eventPoll reads class 1, 2 and 3 data: often there is none.
func (p *plant) eventPoll(a *dnp3Assoc) error {
	seq := a.nextSeq()
	req := AppRequest(AppControl(true, true, false, false, seq), DNP3Read, ClassData(1), ClassData(2), ClassData(3))
	var resp []byte
	if p.rng.IntN(2) == 0 {
		resp = AppResponse(AppControl(true, true, false, false, seq), DNP3Response, a.iin(0))
	} else {
		resp = AppResponse(AppControl(true, true, true, false, seq), DNP3Response, a.iin(0), p.binaryEvents(a), p.analogEvents(a))
	}
	return p.dnp3Exchange(a, req, resp)
}

// unsolicited sends events the outstation reports on its own, and the
// master's confirm.
func (p *plant) unsolicited(a *dnp3Assoc) error {
	ctl := AppControl(true, true, true, true, a.unsSeq)
	a.unsSeq = (a.unsSeq + 1) & 0x0f
	var objs [2][]byte
	switch p.rng.IntN(3) {
	case 0:
		objs[0] = p.binaryEvents(a)
	case 1:
		objs[0] = p.analogEvents(a)
	default:
		objs[0], objs[1] = p.binaryEvents(a), p.analogEvents(a)
	}
	if err := p.dnp3Respond(a, AppResponse(ctl, DNP3UnsolicitedResponse, a.iin(0), objs[0], objs[1])); err != nil {
		return err
	}
	p.w.Advance(time.Duration(1+p.rng.IntN(10)) * time.Millisecond)
	return p.dnp3Confirm(a, ctl)
}

// selectOperate runs select-before-operate of a CROB or, one time in four,
// of an analog output. The outstation now and then refuses the select
// because it is in local control, and no operate follows.
func (p *plant) selectOperate(a *dnp3Assoc) error {
	index := uint16(p.rng.IntN(16))
	var obj func(status uint8) []byte
	if p.rng.IntN(4) == 0 {
		value := int32(p.rng.IntN(4000))
		obj = func(status uint8) []byte { return AnalogOutput(index, value, status) }
	} else {
		code := [...]uint8{CROBLatchOn, CROBLatchOff, CROBPulseOn, CROBClose, CROBTrip}[p.rng.IntN(5)]
		on := uint32(0)
		if code&0x0f == CROBPulseOn {
			on = 500
		}
		obj = func(status uint8) []byte { return CROB(index, code, 1, on, 0, status) }
	}
	seq := a.nextSeq()
	sel := AppRequest(AppControl(true, true, false, false, seq), DNP3Select, obj(DNP3StatusSuccess))
	if p.rng.IntN(10) == 0 {
		resp := AppResponse(AppControl(true, true, false, false, seq), DNP3Response, a.iin(0)|IINLocalControl, obj(DNP3StatusLocal))
		return p.dnp3Exchange(a, sel, resp)
	}
	if err := p.dnp3Exchange(a, sel, AppResponse(AppControl(true, true, false, false, seq), DNP3Response, a.iin(0), obj(DNP3StatusSuccess))); err != nil {
		return err
	}
	seq = a.nextSeq()
	op := AppRequest(AppControl(true, true, false, false, seq), DNP3Operate, obj(DNP3StatusSuccess))
	return p.dnp3Exchange(a, op, AppResponse(AppControl(true, true, false, false, seq), DNP3Response, a.iin(0), obj(DNP3StatusSuccess)))
}

// dnp3Write writes one object and gets the null response.
func (p *plant) dnp3Write(a *dnp3Assoc, obj []byte) error {
	seq := a.nextSeq()
	req := AppRequest(AppControl(true, true, false, false, seq), DNP3Write, obj)
	return p.dnp3Exchange(a, req, AppResponse(AppControl(true, true, false, false, seq), DNP3Response, a.iin(0)))
}

// binaries is the outstation's binary inputs: online, a third of them
// on at first.
func (p *plant) binaries(a *dnp3Assoc) []uint8 {
	for len(p.binState) <= a.out {
		p.binState = append(p.binState, nil)
	}
	st := p.binState[a.out]
	for len(st) < a.binaries {
		f := uint8(DNP3FlagOnline)
		if p.rng.IntN(3) == 0 {
			f |= DNP3BinaryState
		}
		st = append(st, f)
	}
	p.binState[a.out] = st
	return st
}

// binaryEvents changes one to five of the outstation's binary inputs
// and reports each change as an event.
func (p *plant) binaryEvents(a *dnp3Assoc) []byte {
	now := uint64(p.w.Now().UnixMilli())
	st := p.binaries(a)
	p.bevents = p.bevents[:0]
	for range 1 + p.rng.IntN(5) {
		i := p.rng.IntN(a.binaries)
		st[i] ^= DNP3BinaryState
		p.bevents = append(p.bevents, BinaryEvent{Index: uint16(i), Flags: st[i], Time: now - uint64(p.rng.IntN(5000))})
	}
	return BinaryInputEvents(p.bevents...)
}

func (p *plant) analogEvents(a *dnp3Assoc) []byte {
	p.aevents = p.aevents[:0]
	for range 1 + p.rng.IntN(5) {
		p.aevents = append(p.aevents, AnalogEvent{Index: uint16(p.rng.IntN(a.analogs)), Flags: DNP3FlagOnline, Value: int32(p.rng.IntN(200000) - 100000)})
	}
	return AnalogInputEvents(p.aevents...)
}
