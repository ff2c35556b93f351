// Package sim generates a deterministic capture of a small plant network
// with labelled attacks, for the detection tests, make bench and the demo.
//
// The network has an HMI and an engineering workstation polling four to six
// Modbus/TCP PLCs (one of them a serial gateway with two units behind it), a
// SCADA master polling three or four DNP3 outstations over TCP, and ordinary
// IT traffic (DNS to an internal resolver, NTP, ARP). The devices are
// modelled, not replayed: a PLC answers any request from its register map
// (exceptions for unmapped addresses, unsupported functions and absent
// units), and an outstation keeps its select-before-operate state, its
// restart and time indications and whether unsolicited reporting is on.
//
// The capture has a learning period of normal traffic only, then a
// monitoring period with normal traffic and one labelled attack of each
// requested Kind, at a time and from a source the Truth records: attacks
// on Modbus and DNP3, and on the network itself (ARP spoofing, a scan,
// SMB between plant hosts, a shell on a new port). Every
// behaviour of the normal traffic, including the rare ones (the HMI's
// setpoint and valve writes, the SCADA master's select and operate of a
// breaker), happens at least twice during learning, and written values
// after learning stay within the range written during it, so that a
// baseline learned from the first period flags nothing in the normal
// traffic of the second.
//
// The same Scenario gives the same bytes. Memory does not grow with the
// duration: the simulation keeps one pending event per actor.
package sim

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// Defaults of Scenario.
const (
	DefaultLearn   = 10 * time.Minute
	DefaultMonitor = 30 * time.Minute
)

// MinAttackSlot is the monitoring time each attack needs: Monitor must be at
// least this times the number of attacks.
const MinAttackSlot = 45 * time.Second

// Scenario configures a capture. The zero value is the default scenario:
// seed 0, 10 minutes of learning, 30 minutes of monitoring with every
// attack, Ethernet.
type Scenario struct {
	Seed    int64
	Start   time.Time     // time of the first frame (Generate only); default pcapgen.DefaultStart
	Learn   time.Duration // learning period, normal traffic only; default DefaultLearn, at least 1 minute
	Monitor time.Duration // monitoring period; default DefaultMonitor
	// Attacks are the kinds of attack to include, one of each, in an order
	// the seed shuffles. nil means every kind the link can carry
	// (KindsFor); an empty non-nil slice means none: a clean capture.
	Attacks []Kind
	Link    pcapgen.Link // Generate only; default pcapgen.LinkEthernet
	PcapNG  bool         // Generate only: write pcapng
	// Density multiplies every polling rate: 2 polls twice as often. The
	// default is 1 (the HMI polls each PLC every second, the SCADA master
	// each outstation every 2 s); it must be between 0.25 and 10.
	Density float64
	// PLCs (4–6) and Outstations (3–4): 0 lets the seed choose.
	PLCs        int
	Outstations int
}

func (s *Scenario) setDefaults(link pcapgen.Link) error {
	if s.Learn == 0 {
		s.Learn = DefaultLearn
	}
	if s.Monitor == 0 {
		s.Monitor = DefaultMonitor
	}
	if s.Density == 0 {
		s.Density = 1
	}
	if s.Attacks == nil {
		s.Attacks = KindsFor(link)
	}
	switch {
	case s.Learn < time.Minute:
		return fmt.Errorf("sim: learning period %v is shorter than 1m", s.Learn)
	case s.Monitor < 0:
		return fmt.Errorf("sim: negative monitoring period %v", s.Monitor)
	case s.Density < 0.25 || s.Density > 10 || math.IsNaN(s.Density):
		return fmt.Errorf("sim: density %v outside 0.25-10", s.Density)
	case s.PLCs != 0 && (s.PLCs < 4 || s.PLCs > 6):
		return fmt.Errorf("sim: %d PLCs, want 4-6", s.PLCs)
	case s.Outstations != 0 && (s.Outstations < 3 || s.Outstations > 4):
		return fmt.Errorf("sim: %d outstations, want 3-4", s.Outstations)
	}
	seen := map[Kind]bool{}
	for _, k := range s.Attacks {
		if _, ok := kindInfo[k]; !ok {
			return fmt.Errorf("sim: unknown attack kind %q", k)
		}
		if seen[k] {
			return fmt.Errorf("sim: attack kind %q listed twice", k)
		}
		if needsARP[k] && !link.CarriesARP() {
			return fmt.Errorf("sim: attack kind %q needs a link that carries ARP, not %v", k, link)
		}
		seen[k] = true
	}
	if need := time.Duration(len(s.Attacks)) * MinAttackSlot; s.Monitor < need {
		return fmt.Errorf("sim: monitoring period %v too short for %d attacks (need %v)", s.Monitor, len(s.Attacks), need)
	}
	return nil
}

// Generate writes the scenario's capture to out (pcap, or pcapng with
// s.PcapNG) and returns its ground truth.
func Generate(out io.Writer, s Scenario) (*Truth, error) {
	w, err := pcapgen.NewWriter(out, pcapgen.Options{Link: s.Link, Start: s.Start, PcapNG: s.PcapNG})
	if err != nil {
		return nil, err
	}
	t, err := Write(w, s)
	if err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return t, nil
}

// Write writes the scenario's frames to w, starting at w's clock, and
// returns the ground truth. s.Start, s.Link and s.PcapNG are ignored: they
// are w's. It does not flush w.
func Write(w *pcapgen.Writer, s Scenario) (*Truth, error) {
	if err := s.setDefaults(w.Link()); err != nil {
		return nil, err
	}
	m, err := newSim(w, s)
	if err != nil {
		return nil, err
	}
	if err := m.run(); err != nil {
		return nil, err
	}
	for _, a := range m.attacks {
		m.truth.Attacks = append(m.truth.Attacks, *a)
	}
	m.truth.End = w.Now()
	m.truth.Packets = w.Packets() - m.firstFrame + 1
	return m.truth, nil
}

// ---- the event loop ----

// step is one action of a script; d is the delay after the previous one.
type step struct {
	d  time.Duration
	fn func() error
}

type event struct {
	at time.Duration // since the start
	id uint64
	fn func() error
}

type sim struct {
	w          *pcapgen.Writer
	rng        *rand.Rand
	sc         Scenario
	start      time.Time
	learn, end time.Duration // learning end and monitoring end, since start
	firstFrame int
	q          []event
	nextID     uint64
	nextPort   uint16
	truth      *Truth

	router, dns, ntp    host
	hmi, ews, scada     host
	rogue, newcomer     host
	intruder, scanner   host // the attackers of ARPSpoof and Scan
	plcs                []*plc
	outs                []*outstation
	hmiConns            []*mbConn
	assocs              []*assoc
	setpoint            uint16 // the pump's speed setpoint, holding register 5 of plc1
	spMin, spMax        uint16 // written during learning
	valve               bool   // coil 3 of plc2
	breakerWrites       int
	setpointWrites      int
	pending             map[*mbConn][]write
	attacks             []*Attack
	dnsNames            []string
	latencyLo, latencyN int // Modbus response latency in µs: lo + rng(N)
}

type host struct {
	name string
	ep   pcapgen.Endpoint
}

func (h host) addr() netip.Addr { return h.ep.IP }

func (m *sim) now() time.Duration { return m.w.Now().Sub(m.start) }

// at schedules fn at t since the start.
func (m *sim) at(t time.Duration, fn func() error) {
	m.nextID++
	m.q = append(m.q, event{at: t, id: m.nextID, fn: fn})
	// sift up
	i := len(m.q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !m.q[i].less(&m.q[p]) {
			break
		}
		m.q[i], m.q[p] = m.q[p], m.q[i]
		i = p
	}
}

func (e *event) less(o *event) bool {
	return e.at < o.at || e.at == o.at && e.id < o.id
}

func (m *sim) after(d time.Duration, fn func() error) { m.at(m.now()+d, fn) }

func (m *sim) pop() event {
	e := m.q[0]
	n := len(m.q) - 1
	m.q[0] = m.q[n]
	m.q[n] = event{}
	m.q = m.q[:n]
	for i := 0; ; {
		l, r, s := 2*i+1, 2*i+2, i
		if l < n && m.q[l].less(&m.q[s]) {
			s = l
		}
		if r < n && m.q[r].less(&m.q[s]) {
			s = r
		}
		if s == i {
			break
		}
		m.q[i], m.q[s] = m.q[s], m.q[i]
		i = s
	}
	return e
}

func (m *sim) run() error {
	for len(m.q) > 0 {
		e := m.pop()
		if d := e.at - m.now(); d > 0 {
			m.w.Advance(d)
		}
		if err := e.fn(); err != nil {
			return err
		}
	}
	return nil
}

// every runs fn at first and then every period (with up to jitter of
// random delay per run, which does not accumulate) until the end of the
// monitoring period.
func (m *sim) every(first, period, jitter time.Duration, fn func() error) {
	var tick func() error
	next := first
	if first >= m.end {
		return
	}
	tick = func() error {
		if err := fn(); err != nil {
			return err
		}
		next += period
		if next >= m.end {
			return nil
		}
		j := time.Duration(0)
		if jitter = min(jitter, period/2); jitter > 0 {
			j = time.Duration(m.rng.Int64N(int64(jitter)))
		}
		m.at(next+j, tick)
		return nil
	}
	m.at(first, tick)
}

// rare schedules an operator action: twice during learning (between 20 and
// 40 % and between 55 and 80 % of it), then every min to max after.
func (m *sim) rare(min, max time.Duration, fn func() error) {
	ts := []time.Duration{
		m.frac(0.20, 0.40),
		m.frac(0.55, 0.80),
	}
	t := m.learn
	for {
		t += min + time.Duration(m.rng.Int64N(int64(max-min)))
		if t >= m.end {
			break
		}
		ts = append(ts, t)
	}
	var i int
	var tick func() error
	tick = func() error {
		i++
		if i < len(ts) {
			m.at(ts[i], tick)
		}
		return fn()
	}
	m.at(ts[0], tick)
}

func (m *sim) frac(lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*m.rng.Float64()) * float64(m.learn))
}

// play runs steps as a script: the first at t, each next after its delay.
// With a lane, the script waits until no other script holds it, and holds
// it until its last step.
func (m *sim) play(lane *bool, t time.Duration, steps []step) {
	i := 0
	var next func() error
	next = func() error {
		if i == 0 && lane != nil {
			if *lane {
				m.after(3*time.Millisecond, next)
				return nil
			}
			*lane = true
		}
		st := steps[i]
		i++
		if err := st.fn(); err != nil {
			return err
		}
		if i == len(steps) {
			if lane != nil {
				*lane = false
			}
			return nil
		}
		m.after(steps[i].d, next)
		return nil
	}
	m.at(t, next)
}

func (m *sim) ms(lo, n int) time.Duration {
	return time.Duration(lo+m.rng.IntN(n)) * time.Millisecond
}

func (m *sim) port() uint16 {
	m.nextPort++
	if m.nextPort < 49152 {
		m.nextPort = 49152
	}
	return m.nextPort
}

func (m *sim) period(base time.Duration) time.Duration {
	return time.Duration(float64(base) / m.sc.Density)
}

// ---- the network ----

func mac(kind, i byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0x00, 0x5e, 0x20, kind, i} }

func ip(last byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 10, 1, last}) }

func newSim(w *pcapgen.Writer, s Scenario) (*sim, error) {
	m := &sim{
		w:          w,
		rng:        rand.New(rand.NewPCG(uint64(s.Seed), 0x73696d2d74617077)),
		sc:         s,
		start:      w.Now(),
		learn:      s.Learn,
		end:        s.Learn + s.Monitor,
		firstFrame: w.Packets() + 1,
		router:     host{"router", pcapgen.Endpoint{MAC: mac(0, 1), IP: ip(1)}},
		dns:        host{"dns", pcapgen.Endpoint{MAC: mac(0, 2), IP: ip(2), Port: 53}},
		ntp:        host{"ntp", pcapgen.Endpoint{MAC: mac(0, 3), IP: ip(3), Port: 123}},
		hmi:        host{"hmi", pcapgen.Endpoint{MAC: mac(1, 0), IP: ip(10)}},
		ews:        host{"ews", pcapgen.Endpoint{MAC: mac(1, 1), IP: ip(11)}},
		scada:      host{"scada", pcapgen.Endpoint{MAC: mac(1, 2), IP: ip(12)}},
		rogue:      host{"rogue", pcapgen.Endpoint{MAC: mac(9, 1), IP: ip(66)}},
		newcomer:   host{"newcomer", pcapgen.Endpoint{MAC: mac(9, 2), IP: ip(77)}},
		intruder:   host{"intruder", pcapgen.Endpoint{MAC: mac(9, 3), IP: ip(88)}},
		scanner:    host{"scanner", pcapgen.Endpoint{MAC: mac(9, 4), IP: ip(99)}},
		setpoint:   150,
		spMin:      math.MaxUint16,
		latencyLo:  2000,
		latencyN:   6000,
		dnsNames:   []string{"historian.plant.example", "ntp.plant.example", "scada.plant.example", "licence.plant.example"},
	}
	m.nextPort = 49152 + uint16(m.rng.IntN(8000))
	nplc, nout := s.PLCs, s.Outstations
	if nplc == 0 {
		nplc = 4 + m.rng.IntN(3)
	}
	if nout == 0 {
		nout = 3 + m.rng.IntN(2)
	}
	m.truth = &Truth{
		Seed:     s.Seed,
		Link:     w.Link().String(),
		Start:    m.start,
		LearnEnd: m.start.Add(s.Learn),
	}
	for _, h := range []struct {
		h    host
		role string
	}{{m.router, "router"}, {m.dns, "dns"}, {m.ntp, "ntp"}, {m.hmi, "hmi"}, {m.ews, "ews"}, {m.scada, "scada"}} {
		m.truth.Hosts = append(m.truth.Hosts, Host{Name: h.h.name, Addr: h.h.addr(), Role: h.role})
	}
	for i := range nplc {
		p := m.newPLC(i, i == nplc-1)
		m.plcs = append(m.plcs, p)
		role := "plc"
		if p.gateway {
			role = "modbus-gateway"
		}
		m.truth.Hosts = append(m.truth.Hosts, Host{Name: p.name, Addr: p.ep.IP, Role: role})
	}
	for i := range nout {
		o := m.newOutstation(i)
		m.outs = append(m.outs, o)
		m.truth.Hosts = append(m.truth.Hosts, Host{Name: o.name, Addr: o.ep.IP, Role: "outstation"})
	}
	if err := m.startNormal(); err != nil {
		return nil, err
	}
	if err := m.scheduleAttacks(); err != nil {
		return nil, err
	}
	return m, nil
}

// ---- Modbus devices ----

const (
	holdN  = 128 // holding registers 0-127 are mapped
	inputN = 64
	bitsN  = 64
)

// unit is one Modbus server: a PLC, or a slave behind a gateway.
type unit struct {
	id    uint8
	hold  [holdN]uint16
	input [inputN]uint16
	coils [bitsN]bool
	disc  [bitsN]bool
	waves [8]wave // input registers 0-7
	pump  bool    // holding 5 is the pump's speed setpoint, input 1 its speed
	speed float64
	last  time.Duration
}

// wave is a process value: base + amp·sin(2πt/period + phase) + noise.
type wave struct {
	base, amp, noise float64
	period           time.Duration
	phase            float64
}

type plc struct {
	name    string
	ep      pcapgen.Endpoint
	gateway bool
	units   []*unit
}

func (m *sim) newPLC(i int, gateway bool) *plc {
	p := &plc{name: fmt.Sprintf("plc%d", i+1), ep: pcapgen.Endpoint{MAC: mac(2, byte(i)), IP: ip(byte(20 + i)), Port: 502}, gateway: gateway}
	ids := []uint8{1}
	switch {
	case gateway:
		p.name = fmt.Sprintf("gw%d", i+1)
		ids = []uint8{3, 7}
	case i == 2:
		ids = []uint8{255} // some devices answer only to 255
	}
	for _, id := range ids {
		u := &unit{id: id, pump: i == 0 && !gateway}
		for r := range u.hold {
			u.hold[r] = uint16(m.rng.IntN(100))
		}
		u.hold[0] = 1                              // mode: auto
		u.hold[100] = 0x0231                       // firmware 2.49
		u.hold[101] = uint16(m.rng.IntN(60000))    // serial number
		u.hold[102] = uint16(8 + m.rng.IntN(4))    // scan time, ms
		u.hold[103] = uint16(m.rng.IntN(5))        // comm errors
		u.hold[110] = uint16(1000 + m.rng.IntN(8)) // configuration checksum
		if u.pump {
			u.hold[5] = m.setpoint
			u.speed = float64(m.setpoint)
		}
		for k := range u.waves {
			u.waves[k] = wave{
				base:   float64(200 + m.rng.IntN(600)),
				amp:    float64(20 + m.rng.IntN(200)),
				noise:  float64(1 + m.rng.IntN(4)),
				period: time.Duration(5+m.rng.IntN(55)) * time.Minute,
				phase:  2 * math.Pi * m.rng.Float64(),
			}
		}
		for k := range 16 {
			u.coils[k] = m.rng.IntN(2) == 0
			u.disc[k] = m.rng.IntN(3) == 0
		}
		if u.pump {
			u.coils[0] = true // pump running
		}
		if i == 1 {
			u.coils[3] = false // the valve the HMI opens and closes
		}
		p.units = append(p.units, u)
	}
	return p
}

func (p *plc) unit(id uint8) *unit {
	for _, u := range p.units {
		if u.id == id {
			return u
		}
	}
	return nil
}

// update moves the process values to time t.
func (u *unit) update(m *sim, t time.Duration) {
	secs := t.Seconds()
	for k := range u.waves {
		w := &u.waves[k]
		v := w.base + w.amp*math.Sin(2*math.Pi*secs/w.period.Seconds()+w.phase) + w.noise*(2*m.rng.Float64()-1)
		u.input[k] = uint16(max(0, math.Round(v)))
	}
	if u.pump {
		dt := (t - u.last).Seconds()
		sp := float64(u.hold[5])
		u.speed += (sp - u.speed) * min(1, dt/8)
		u.input[1] = uint16(max(0, math.Round(u.speed+(2*m.rng.Float64()-1))))
		u.disc[0] = u.input[0] > 700 // high level switch
		u.disc[1] = u.input[0] < 250 // low level switch
	}
	u.input[32] = uint16(t / time.Second)       // uptime, low word
	u.input[33] = uint16(t / time.Second >> 16) // uptime, high word
	u.input[34] = u.hold[102]*10 + uint16(m.rng.IntN(10))
	u.last = t
}

// respond is the PLC's answer to request pdu for unit id, or nil when it
// sends none (a broadcast, force listen only mode).
func (m *sim) respond(p *plc, id uint8, pdu []byte) []byte {
	if id == 0 { // broadcast: act, do not answer
		if u := p.units[0]; len(pdu) == 5 && pdu[0] == pcapgen.FCWriteSingleRegister {
			if a := binary.BigEndian.Uint16(pdu[1:]); a < holdN {
				u.hold[a] = binary.BigEndian.Uint16(pdu[3:])
			}
		}
		return nil
	}
	u := p.unit(id)
	if u == nil {
		if p.gateway {
			return pcapgen.ExceptionResponse(pdu[0], 0x0b) // gateway target device failed to respond
		}
		u = p.units[0] // a plain device answers whatever its unit id
	}
	u.update(m, m.now())
	fc := pdu[0]
	be := binary.BigEndian.Uint16
	switch fc {
	case 1, 2, 3, 4:
		addr, qty := be(pdu[1:]), be(pdu[3:])
		limit := holdN
		switch fc {
		case 1, 2:
			limit = bitsN
		case 4:
			limit = inputN
		}
		if qty == 0 || int(addr)+int(qty) > limit {
			return pcapgen.ExceptionResponse(fc, pcapgen.ExIllegalDataAddress)
		}
		switch fc {
		case 1:
			return pcapgen.BitsResponse(fc, u.coils[addr:addr+qty]...)
		case 2:
			return pcapgen.BitsResponse(fc, u.disc[addr:addr+qty]...)
		case 3:
			return pcapgen.RegistersResponse(fc, u.hold[addr:addr+qty]...)
		default:
			return pcapgen.RegistersResponse(fc, u.input[addr:addr+qty]...)
		}
	case 5:
		addr := be(pdu[1:])
		if addr >= bitsN {
			return pcapgen.ExceptionResponse(fc, pcapgen.ExIllegalDataAddress)
		}
		u.coils[addr] = pdu[3] == 0xff
		return pdu
	case 6:
		addr := be(pdu[1:])
		if addr >= holdN {
			return pcapgen.ExceptionResponse(fc, pcapgen.ExIllegalDataAddress)
		}
		u.hold[addr] = be(pdu[3:])
		return pdu
	case 16:
		addr, qty := be(pdu[1:]), be(pdu[3:])
		if int(addr)+int(qty) > holdN {
			return pcapgen.ExceptionResponse(fc, pcapgen.ExIllegalDataAddress)
		}
		for k := range int(qty) {
			u.hold[int(addr)+k] = be(pdu[6+2*k:])
		}
		return pcapgen.WriteMultipleRegistersResponse(addr, qty)
	case 8:
		switch be(pdu[1:]) {
		case 4: // force listen only mode: no response
			return nil
		default: // restart communications, clear counters...: echo
			return pdu
		}
	case 43:
		if len(pdu) == 4 && pdu[1] == 14 {
			return deviceID(pdu[2])
		}
		return pcapgen.ExceptionResponse(fc, pcapgen.ExIllegalFunction)
	}
	return pcapgen.ExceptionResponse(fc, pcapgen.ExIllegalFunction)
}

var deviceObjects = [...]string{"Acme Automation", "AC-340", "V2.49", "http://acme.example", "Acme PLC", "AC-340-16DI", "pumpstation"}

// deviceID answers a read device identification request: the basic
// objects (code 1) or the basic and regular ones (code 2).
func deviceID(code uint8) []byte {
	n := 3
	if code >= 2 {
		n = len(deviceObjects)
	}
	p := []byte{43, 14, code, 0x82, 0, 0, byte(n)}
	for i := range n {
		p = append(p, byte(i), byte(len(deviceObjects[i])))
		p = append(p, deviceObjects[i]...)
	}
	return p
}

// ---- Modbus connections ----

type mbConn struct {
	master host
	plc    *plc
	conn   *pcapgen.TCPConn
	client netip.AddrPort
	lane   bool
	tid    uint16
}

// dial opens a connection from h (a new ephemeral port) to p; the steps of
// the handshake are appended to st.
func (m *sim) dial(h host, p *plc, r *rec) (*mbConn, step, error) {
	client := h.ep
	client.Port = m.port()
	c, err := pcapgen.NewTCPConn(m.w, client, p.ep, m.rng.Uint32(), m.rng.Uint32())
	if err != nil {
		return nil, step{}, err
	}
	mc := &mbConn{master: h, plc: p, conn: c, client: netip.AddrPortFrom(client.IP, client.Port), tid: uint16(m.rng.Uint32())}
	return mc, step{0, func() error { return m.send(r, false, c.Handshake) }}, nil
}

// send runs f, which writes frames, and notes them in r.
func (m *sim) send(r *rec, key bool, f func() ([]int, error)) error {
	t0 := m.w.Now()
	frames, err := f()
	if r != nil && len(frames) > 0 {
		r.add(t0, m.w.Now(), frames, key)
	}
	return err
}

// tx appends one transaction to st: the request after gap, the device's
// response (if any) after its latency.
func (m *sim) tx(st []step, c *mbConn, id uint8, pdu []byte, gap, lat time.Duration, r *rec, key bool) []step {
	var tid uint16
	st = append(st, step{gap, func() error {
		c.tid++
		tid = c.tid
		return m.send(r, key, func() ([]int, error) { return c.conn.Client(pcapgen.MBAP(tid, id, pdu)) })
	}})
	if lat == 0 {
		lat = time.Duration(m.latencyLo+m.rng.IntN(m.latencyN)) * time.Microsecond
	}
	st = append(st, step{lat, func() error {
		resp := m.respond(c.plc, id, pdu)
		if resp == nil {
			return nil
		}
		return m.send(r, false, func() ([]int, error) { return c.conn.Server(pcapgen.MBAP(tid, id, resp)) })
	}})
	return st
}

// ack appends the client's delayed ACK.
func (m *sim) ack(st []step, c *mbConn, r *rec) []step {
	return append(st, step{m.ms(30, 20), func() error {
		return m.send(r, false, func() ([]int, error) {
			f, err := c.conn.Ack(pcapgen.FromClient)
			return []int{f}, err
		})
	}})
}

// pending operator writes of the HMI, sent at the start of its next poll
// cycle of the PLC.
type write struct {
	unit uint8
	pdu  []byte
}

// block is a register block a master polls.
type block struct {
	fc        uint8
	addr, qty uint16
}

var (
	hmiBlocks = []block{{3, 0, 10}, {4, 0, 8}, {1, 0, 16}, {2, 0, 16}}
	ewsBlocks = []block{{3, 100, 20}, {4, 32, 8}}
)

func (m *sim) startNormal() error {
	// Modbus: the HMI polls every unit of every PLC each second, the
	// engineering workstation the diagnostics of each PLC every 20 s.
	m.pending = map[*mbConn][]write{}
	for _, p := range m.plcs {
		for _, h := range []host{m.hmi, m.ews} {
			c, hs, err := m.dial(h, p, nil)
			if err != nil {
				return err
			}
			t := time.Duration(m.rng.Int64N(int64(500 * time.Millisecond)))
			m.play(&c.lane, t, []step{hs})
			period, blocks := m.period(time.Second), hmiBlocks
			if h.name == m.ews.name {
				period, blocks = min(m.period(20*time.Second), time.Minute), ewsBlocks
			} else {
				m.hmiConns = append(m.hmiConns, c)
			}
			first := t + 50*time.Millisecond + time.Duration(m.rng.Int64N(int64(min(period, 20*time.Second))))
			m.every(first, period, 20*time.Millisecond, func() error {
				if c.lane {
					return nil // the last cycle overran: skip this one
				}
				st := m.takeWrites(c, nil)
				for _, u := range p.units {
					for _, b := range blocks {
						st = m.tx(st, c, u.id, pcapgen.ReadRequest(b.fc, b.addr, b.qty), m.ms(1, 3), 0, nil, false)
					}
				}
				m.play(&c.lane, m.now(), m.ack(st, c, nil))
				return nil
			})
		}
	}
	// The operator changes the pump's setpoint and opens or closes a valve
	// now and then.
	m.rare(3*time.Minute, 9*time.Minute, func() error { return m.setpointWrite() })
	m.rare(4*time.Minute, 12*time.Minute, func() error { return m.valveWrite() })

	// DNP3.
	for _, o := range m.outs {
		if err := m.startAssoc(o); err != nil {
			return err
		}
	}
	m.rare(4*time.Minute, 10*time.Minute, func() error { return m.breakerOperate() })

	// IT: each master resolves names and asks the time now and then, and
	// refreshes the ARP entry of each device it talks to; all of it starts
	// within the first minute, so that learning sees every conversation.
	for _, h := range []host{m.hmi, m.ews, m.scada} {
		m.every(m.ms(100, 40000), m.period(2*time.Minute), 20*time.Second, func() error { return m.dnsQuery(h) })
		m.every(m.ms(200, 5000), 64*time.Second, 2*time.Second, func() error { return m.ntpQuery(h) })
	}
	if m.w.Link().CarriesARP() {
		for _, p := range m.plcs {
			for _, h := range []host{m.hmi, m.ews} {
				m.every(m.ms(1000, 50000), 10*time.Minute, 30*time.Second, func() error { return m.arp(h, p.ep) })
			}
		}
		for _, o := range m.outs {
			m.every(m.ms(1000, 50000), 10*time.Minute, 30*time.Second, func() error { return m.arp(m.scada, o.ep) })
		}
	}
	return nil
}

// takeWrites returns the steps of the operator writes waiting for c.
func (m *sim) takeWrites(c *mbConn, st []step) []step {
	for _, w := range m.pending[c] {
		st = m.tx(st, c, w.unit, w.pdu, m.ms(1, 3), 0, nil, false)
	}
	delete(m.pending, c)
	return st
}
