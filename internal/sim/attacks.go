package sim

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// Kind names a kind of attack. Where one built-in detector is meant to
// catch it, the kind is that detector's id.
type Kind string

// The attack kinds, in their canonical order.
const (
	// A rogue host, never seen before, connects to a PLC, reads its
	// holding registers and writes two of them with FC 16.
	UnauthorizedWrite Kind = "unauthorized-write"
	// The HMI writes 900 to holding register 5 of plc1, the pump speed
	// setpoint it otherwise keeps within 120-180 rpm (FC 6).
	SetpointOutOfRange Kind = "setpoint-out-of-range"
	// The HMI writes holding register 60 of a PLC, which nobody writes (or
	// reads) during learning (FC 6).
	WriteNewAddress Kind = "write-new-address"
	// The HMI writes the pump setpoint with FC 16, a function it never uses
	// (it writes with FC 6); address and value are the usual ones.
	NewFunction Kind = "new-function"
	// The engineering workstation forces a PLC into listen only mode (FC 8
	// sub-function 4, which gets no response), then restarts its
	// communications (sub-function 1) and clears its counters
	// (sub-function 10).
	ModbusDiagnostics Kind = "modbus-diagnostics"
	// The engineering workstation reads a PLC's device identification
	// (FC 43 MEI 14), basic then regular.
	DeviceID Kind = "recon-device-id"
	// The engineering workstation tries 16 function codes on a PLC; the
	// ones it does not support get illegal function exceptions.
	FunctionSweep Kind = "recon-sweep-function"
	// The engineering workstation reads from unit ids 1 to 20 of the
	// serial gateway; absent units get gateway exceptions (0x0B).
	UnitSweep Kind = "recon-sweep-unit"
	// The engineering workstation reads 40 unmapped addresses of a PLC in
	// 4 s, each answered with an illegal data address exception.
	ExceptionStorm Kind = "exception-storm"
	// The HMI writes the pump setpoint to unit 0 (broadcast) of plc1; no
	// response comes.
	ModbusBroadcast Kind = "modbus-broadcast-write"
	// The engineering workstation sends about 1300 reads to one PLC in 3 s.
	RequestFlood Kind = "request-flood"
	// The SCADA master sends COLD_RESTART (fc 13) to an outstation.
	DNP3ColdRestart Kind = "dnp3-cold-restart"
	// The SCADA master sends WARM_RESTART (fc 14) to an outstation.
	DNP3WarmRestart Kind = "dnp3-warm-restart"
	// The SCADA master sends STOP_APPLICATION (fc 18, g90v1).
	DNP3StopApplication Kind = "dnp3-stop-application"
	// The SCADA master sends DISABLE_UNSOLICITED (fc 21, g60v2-4); the
	// outstation stops reporting unsolicited.
	DNP3DisableUnsolicited Kind = "dnp3-disable-unsolicited"
	// The SCADA master opens a file on an outstation (OPEN_FILE, fc 25,
	// g70v3), then closes it (fc 26).
	DNP3File Kind = "dnp3-file"
	// The SCADA master sends OPERATE (fc 4) of rtu1's breaker with no
	// SELECT before it; the outstation answers NO_SELECT.
	DNP3OperateWithoutSelect Kind = "dnp3-operate-without-select"
	// The SCADA master selects a close of rtu1's breaker, then operates a
	// trip (the control code changed); the outstation answers NO_SELECT.
	DNP3SelectMismatch Kind = "dnp3-select-mismatch"
	// The SCADA master sends DIRECT_OPERATE_NO_ACK (fc 6) of a breaker
	// trip to link address 0xFFFF (all stations).
	DNP3Broadcast Kind = "dnp3-broadcast"
	// The HMI resolves a name and opens a TLS-like session to 203.0.113.7
	// on TCP 443, then beacons.
	PublicAddress Kind = "public-address"
	// A new host appears (ARP, where the link carries it) and polls a PLC
	// every 2 s for 30 s.
	NewAsset Kind = "new-asset"
	// The engineering workstation sends an ADU whose MBAP length (300)
	// cannot be right; the PLC resets the connection.
	MalformedModbus Kind = "malformed-modbus"
	// A DNP3 request of the SCADA master with a bad block CRC; the
	// outstation ignores it and the master polls again.
	MalformedDNP3 Kind = "malformed-dnp3"
	// A new host on the plant subnet ARPs for the HMI and a PLC from its
	// own address, then tells each that the other's address is at its own
	// MAC, about once a second for 8 s, while the polling goes on; it
	// puts the true bindings back as it leaves. Only on links that carry
	// ARP (KindsFor).
	ARPSpoof Kind = "arp-spoof"
	// A new host sweeps 60 addresses of the plant subnet (ARP, or ICMP
	// echo where the link carries no ARP), then SYN-scans 104 TCP ports
	// of a PLC: closed ports answer with a reset, open ones with a SYN-ACK
	// that the scanner resets.
	Scan Kind = "scan"
	// The engineering workstation opens an SMB2 session to the SCADA
	// master on TCP 445 (negotiate, session setup, a tree connect to
	// ADMIN$ and a 6 KB write), a pair that never speaks SMB.
	SMBLateral Kind = "smb-lateral"
	// The SCADA master connects to the engineering workstation on TCP
	// 4444 and exchanges a few hundred bytes of binary data each way,
	// eight times in about 18 s: a remote shell calling back.
	C2NewPort Kind = "c2-new-port"
)

type kindSpec struct {
	detectors []string
	run       func(m *sim, r *rec) error
}

var kindOrder = []Kind{
	UnauthorizedWrite, SetpointOutOfRange, WriteNewAddress, NewFunction,
	ModbusDiagnostics, DeviceID, FunctionSweep, UnitSweep, ExceptionStorm,
	ModbusBroadcast, RequestFlood,
	DNP3ColdRestart, DNP3WarmRestart, DNP3StopApplication, DNP3DisableUnsolicited,
	DNP3File, DNP3OperateWithoutSelect, DNP3SelectMismatch, DNP3Broadcast,
	PublicAddress, NewAsset, MalformedModbus, MalformedDNP3,
	ARPSpoof, Scan, SMBLateral, C2NewPort,
}

// needsARP are the kinds a capture can hold only on a link that carries
// ARP.
var needsARP = map[Kind]bool{ARPSpoof: true}

// kindInfo gives each kind the detector ids expected to fire on it (the
// first is the one it is built for; the others follow from how it is
// done, e.g. a sweep from a known master also uses new function codes)
// and how to generate it.
var kindInfo = map[Kind]kindSpec{
	UnauthorizedWrite:        {[]string{"baseline-new-master", "new-asset"}, (*sim).unauthorizedWrite},
	SetpointOutOfRange:       {[]string{"baseline-value-range"}, (*sim).setpointOutOfRange},
	WriteNewAddress:          {[]string{"baseline-new-address"}, (*sim).writeNewAddress},
	NewFunction:              {[]string{"baseline-new-function"}, (*sim).newFunction},
	ModbusDiagnostics:        {[]string{"modbus-diagnostics", "baseline-new-function"}, (*sim).modbusDiagnostics},
	DeviceID:                 {[]string{"recon-device-id", "baseline-new-function"}, (*sim).deviceID},
	FunctionSweep:            {[]string{"recon-sweep", "baseline-new-function", "baseline-new-address", "exception-storm"}, (*sim).functionSweep},
	UnitSweep:                {[]string{"recon-sweep", "exception-storm", "baseline-new-address"}, (*sim).unitSweep},
	ExceptionStorm:           {[]string{"exception-storm", "baseline-new-address"}, (*sim).exceptionStorm},
	ModbusBroadcast:          {[]string{"broadcast-write"}, (*sim).modbusBroadcast},
	RequestFlood:             {[]string{"request-flood"}, (*sim).requestFlood},
	DNP3ColdRestart:          {[]string{"dnp3-restart", "baseline-new-function"}, dnp3Restart(pcapgen.DNP3ColdRestart)},
	DNP3WarmRestart:          {[]string{"dnp3-restart", "baseline-new-function"}, dnp3Restart(fcWarmRestart)},
	DNP3StopApplication:      {[]string{"dnp3-application-control", "baseline-new-function"}, (*sim).dnp3StopApplication},
	DNP3DisableUnsolicited:   {[]string{"dnp3-disable-unsolicited", "baseline-new-function"}, (*sim).dnp3DisableUnsolicited},
	DNP3File:                 {[]string{"dnp3-file", "baseline-new-function"}, (*sim).dnp3File},
	DNP3OperateWithoutSelect: {[]string{"dnp3-operate-without-select"}, (*sim).dnp3OperateWithoutSelect},
	DNP3SelectMismatch:       {[]string{"dnp3-operate-without-select"}, (*sim).dnp3SelectMismatch},
	DNP3Broadcast:            {[]string{"broadcast-write", "baseline-new-function"}, (*sim).dnp3Broadcast},
	PublicAddress:            {[]string{"public-address"}, (*sim).publicAddress},
	NewAsset:                 {[]string{"new-asset", "baseline-new-master"}, (*sim).newAsset},
	MalformedModbus:          {[]string{"malformed"}, (*sim).malformedModbus},
	MalformedDNP3:            {[]string{"malformed"}, (*sim).malformedDNP3},
	ARPSpoof:                 {[]string{"arp-spoof", "baseline-new-host"}, (*sim).arpSpoof},
	Scan:                     {[]string{"scan-hosts", "scan-ports", "scan-rejects", "baseline-new-host"}, (*sim).scan},
	SMBLateral:               {[]string{"remote-access", "baseline-new-service"}, (*sim).smbLateral},
	C2NewPort:                {[]string{"baseline-new-service"}, (*sim).c2NewPort},
}

// Kinds returns every attack kind in canonical order.
func Kinds() []Kind { return slices.Clone(kindOrder) }

// KindsFor returns the attack kinds a capture on link l can hold, in
// canonical order: every kind, but ARPSpoof where l carries no ARP.
func KindsFor(l pcapgen.Link) []Kind {
	if l.CarriesARP() {
		return Kinds()
	}
	return slices.DeleteFunc(Kinds(), func(k Kind) bool { return needsARP[k] })
}

// Detectors returns the ids of the detectors expected to fire on an attack
// of kind k, the one it is built for first; nil for an unknown kind.
func (k Kind) Detectors() []string { return slices.Clone(kindInfo[k].detectors) }

// Public is the public address of PublicAddress (TEST-NET-3, which
// tapwatch must treat as public).
var Public = netip.MustParseAddr("203.0.113.7")

// rec collects the frames of one attack into its Attack. The key frame
// is the last of the frames sent with key set (the one that completes the
// message), or with keyFirst the first (the SYN of a handshake).
type rec struct {
	a        *Attack
	keyFirst bool
}

func (r *rec) add(t0, t1 time.Time, frames []int, key bool) {
	a := r.a
	if a.FirstFrame == 0 {
		a.FirstFrame, a.Start = frames[0], t0
	}
	if key && a.KeyFrame == 0 {
		a.KeyFrame = frames[len(frames)-1]
		if r.keyFirst {
			a.KeyFrame = frames[0]
		}
	}
	a.LastFrame, a.End = frames[len(frames)-1], t1
	a.Frames = append(a.Frames, frames...)
}

func (m *sim) scheduleAttacks() error {
	kinds := slices.Clone(m.sc.Attacks)
	m.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	if len(kinds) == 0 {
		return nil
	}
	slot := m.sc.Monitor / time.Duration(len(kinds))
	for i, k := range kinds {
		t := m.learn + slot*time.Duration(i) + slot/10 + time.Duration(m.rng.Int64N(int64(slot/5)))
		a := &Attack{Kind: k, Detectors: k.Detectors()}
		m.attacks = append(m.attacks, a)
		r := &rec{a: a}
		run := kindInfo[k].run
		m.at(t, func() error { return run(m, r) })
	}
	return nil
}

// fieldPLC picks a PLC that is not the gateway.
func (m *sim) fieldPLC() *plc { return m.plcs[m.rng.IntN(len(m.plcs)-1)] }

// attackConn opens a new Modbus connection for an attack and labels it.
func (m *sim) attackConn(h host, p *plc, r *rec, desc string) (*mbConn, []step, error) {
	c, hs, err := m.dial(h, p, r)
	if err != nil {
		return nil, nil, err
	}
	r.a.Src, r.a.Dst = c.client, netip.AddrPortFrom(p.ep.IP, p.ep.Port)
	r.a.Desc = desc
	return c, []step{hs}, nil
}

// closeConn appends the client's close of c.
func (m *sim) closeConn(st []step, c *mbConn, gap time.Duration, r *rec) []step {
	return append(st, step{gap, func() error { return m.send(r, false, c.conn.Close) }})
}

func (m *sim) unauthorizedWrite(r *rec) error {
	p := m.fieldPLC()
	c, st, err := m.attackConn(m.rogue, p, r, fmt.Sprintf("rogue host %v reads %s and writes holding registers 0-1 = [0 0] (FC 16)", m.rogue.addr(), p.name))
	if err != nil {
		return err
	}
	u := p.units[0].id
	st = m.tx(st, c, u, pcapgen.ReadHoldingRegisters(0, 10), m.ms(20, 30), 0, r, false)
	st = m.tx(st, c, u, pcapgen.WriteMultipleRegisters(0, 0, 0), m.ms(300, 500), 0, r, true)
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

func (m *sim) setpointOutOfRange(r *rec) error {
	p := m.plcs[0]
	c, st, err := m.attackConn(m.hmi, p, r, fmt.Sprintf("hmi writes 900 to holding register 5 of %s, the pump speed setpoint (learned %d-%d) (FC 6)", p.name, m.spMin, m.spMax))
	if err != nil {
		return err
	}
	st = m.tx(st, c, 1, pcapgen.WriteSingleRegister(5, 900), m.ms(5, 10), 0, r, true)
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	// The operator notices and puts the setpoint back.
	m.after(m.ms(20000, 20000), func() error {
		m.queueWrite(m.hmiConns[0], write{1, pcapgen.WriteSingleRegister(5, m.setpoint)})
		return nil
	})
	return nil
}

func (m *sim) writeNewAddress(r *rec) error {
	p := m.fieldPLC()
	c, st, err := m.attackConn(m.hmi, p, r, fmt.Sprintf("hmi writes 1 to holding register 60 of %s, never written during learning (FC 6)", p.name))
	if err != nil {
		return err
	}
	st = m.tx(st, c, p.units[0].id, pcapgen.WriteSingleRegister(60, 1), m.ms(5, 10), 0, r, true)
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

func (m *sim) newFunction(r *rec) error {
	p := m.plcs[0]
	c, st, err := m.attackConn(m.hmi, p, r, fmt.Sprintf("hmi writes the pump setpoint %d to holding register 5 of %s with FC 16 (it only ever uses FC 6)", m.setpoint, p.name))
	if err != nil {
		return err
	}
	st = m.tx(st, c, 1, pcapgen.WriteMultipleRegisters(5, m.setpoint), m.ms(5, 10), 0, r, true)
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

func diag(sub uint16) []byte { return []byte{8, byte(sub >> 8), byte(sub), 0, 0} }

func (m *sim) modbusDiagnostics(r *rec) error {
	p := m.fieldPLC()
	c, st, err := m.attackConn(m.ews, p, r, fmt.Sprintf("ews sends FC 8 force listen only mode (4), restart communications (1) and clear counters (10) to %s", p.name))
	if err != nil {
		return err
	}
	u := p.units[0].id
	st = m.tx(st, c, u, diag(4), m.ms(5, 10), 0, r, true)
	st = m.tx(st, c, u, diag(1), m.ms(300, 200), 0, r, false)
	st = m.tx(st, c, u, diag(10), m.ms(50, 50), 0, r, false)
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

func (m *sim) deviceID(r *rec) error {
	p := m.fieldPLC()
	c, st, err := m.attackConn(m.ews, p, r, fmt.Sprintf("ews reads the device identification of %s (FC 43/14, basic then regular)", p.name))
	if err != nil {
		return err
	}
	u := p.units[0].id
	st = m.tx(st, c, u, []byte{43, 14, 1, 0}, m.ms(5, 10), 0, r, true)
	st = m.tx(st, c, u, []byte{43, 14, 2, 0}, m.ms(100, 200), 0, r, false)
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

// sweepPDUs are the probes of FunctionSweep: reads, status and file
// functions, and user-defined codes.
var sweepPDUs = [][]byte{
	{1, 0, 0, 0, 1}, {2, 0, 0, 0, 1}, {3, 0, 0, 0, 1}, {4, 0, 0, 0, 1},
	{7}, {11}, {12}, {17}, {20, 7, 6, 0, 1, 0, 0, 0, 1}, {24, 0, 0},
	{65}, {66}, {67}, {68}, {100}, {101},
}

func (m *sim) functionSweep(r *rec) error {
	p := m.fieldPLC()
	c, st, err := m.attackConn(m.ews, p, r, fmt.Sprintf("ews tries %d function codes on %s", len(sweepPDUs), p.name))
	if err != nil {
		return err
	}
	for i, pdu := range sweepPDUs {
		st = m.tx(st, c, p.units[0].id, pdu, m.ms(30, 50), 0, r, i == 0)
	}
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

func (m *sim) unitSweep(r *rec) error {
	p := m.plcs[len(m.plcs)-1]
	c, st, err := m.attackConn(m.ews, p, r, fmt.Sprintf("ews reads holding register 0 from unit ids 1-20 of the gateway %s", p.name))
	if err != nil {
		return err
	}
	for id := range uint8(20) {
		st = m.tx(st, c, id+1, pcapgen.ReadHoldingRegisters(0, 1), m.ms(30, 40), 0, r, id == 0)
	}
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

func (m *sim) exceptionStorm(r *rec) error {
	p := m.fieldPLC()
	c, st, err := m.attackConn(m.ews, p, r, fmt.Sprintf("ews reads 40 unmapped holding register blocks (1000-1639) of %s in 4 s; each gets illegal data address", p.name))
	if err != nil {
		return err
	}
	for i := range 40 {
		st = m.tx(st, c, p.units[0].id, pcapgen.ReadHoldingRegisters(uint16(1000+16*i), 4), m.ms(90, 10), 0, r, i == 0)
	}
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

func (m *sim) modbusBroadcast(r *rec) error {
	p := m.plcs[0]
	c, st, err := m.attackConn(m.hmi, p, r, fmt.Sprintf("hmi writes %d to holding register 5 of unit 0 (broadcast) through %s (FC 6)", m.setpoint, p.name))
	if err != nil {
		return err
	}
	st = m.tx(st, c, 0, pcapgen.WriteSingleRegister(5, m.setpoint), m.ms(5, 10), 0, r, true)
	st = m.ack(st, c, r)
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(500, 500), r))
	return nil
}

func (m *sim) requestFlood(r *rec) error {
	p := m.fieldPLC()
	const n = 1300
	c, st, err := m.attackConn(m.ews, p, r, fmt.Sprintf("ews sends %d reads (FC 3, holding 100-119) to %s in about 3 s", n, p.name))
	if err != nil {
		return err
	}
	for i := range n {
		lat := time.Duration(600+m.rng.IntN(600)) * time.Microsecond
		gap := time.Duration(900+m.rng.IntN(500)) * time.Microsecond
		st = m.tx(st, c, p.units[0].id, pcapgen.ReadHoldingRegisters(100, 20), gap, lat, r, i == 0)
	}
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(50, 50), r))
	return nil
}

// onAssoc plays steps on association a's lane and labels them.
func (m *sim) onAssoc(a *assoc, r *rec, desc string, st []step) {
	r.a.Src, r.a.Dst = a.client, netip.AddrPortFrom(a.out.ep.IP, a.out.ep.Port)
	r.a.Desc = desc
	m.play(&a.lane, m.now(), m.dackMaster(st, a, r))
}

func (m *sim) randomAssoc() *assoc { return m.assocs[m.rng.IntN(len(m.assocs))] }

func dnp3Restart(fc uint8) func(*sim, *rec) error {
	name := map[uint8]string{pcapgen.DNP3ColdRestart: "COLD_RESTART (13)", fcWarmRestart: "WARM_RESTART (14)"}[fc]
	return func(m *sim, r *rec) error {
		a := m.randomAssoc()
		m.onAssoc(a, r, fmt.Sprintf("scada sends %s to %s", name, a.out.name), m.dtx(nil, a, 0, fc, nil, r, true))
		return nil
	}
}

func (m *sim) dnp3StopApplication(r *rec) error {
	a := m.randomAssoc()
	name := "protection"
	obj := append([]byte{90, 1, 0x5b, 1, byte(len(name)), 0}, name...)
	m.onAssoc(a, r, fmt.Sprintf("scada sends STOP_APPLICATION (18) of %q to %s", name, a.out.name), m.dtx(nil, a, 0, fcStopApplication, obj, r, true))
	return nil
}

func (m *sim) dnp3DisableUnsolicited(r *rec) error {
	a := m.randomAssoc()
	m.onAssoc(a, r, fmt.Sprintf("scada sends DISABLE_UNSOLICITED (21) for classes 1-3 to %s", a.out.name), m.dtx(nil, a, 0, pcapgen.DNP3DisableUnsolicited, unsolicitedObjs, r, true))
	return nil
}

// fileOpen returns a g70v3 file command object that opens name for
// reading.
func fileOpen(name string) []byte {
	const fixed = 26 // offset of the name: the fields before it
	size := fixed + len(name)
	b := []byte{70, 3, 0x5b, 1, byte(size), byte(size >> 8)}
	b = binary.LittleEndian.AppendUint16(b, fixed)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, 0, 0, 0, 0, 0, 0)                // time of creation
	b = binary.LittleEndian.AppendUint16(b, 0o644) // permissions
	b = binary.LittleEndian.AppendUint32(b, 0)     // authentication key
	b = binary.LittleEndian.AppendUint32(b, 0)     // file size
	b = binary.LittleEndian.AppendUint16(b, 1)     // mode: read
	b = binary.LittleEndian.AppendUint16(b, 1024)  // maximum block size
	b = binary.LittleEndian.AppendUint16(b, 1)     // request id
	return append(b, name...)
}

func (m *sim) dnp3File(r *rec) error {
	a := m.randomAssoc()
	name := "/config/settings.cfg"
	st := m.dtx(nil, a, 0, fcOpenFile, fileOpen(name), r, true)
	st = m.dtxWith(st, a, m.ms(100, 200), func(seq uint8) []byte {
		return pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, seq), fcCloseFile, fileStatus(a.out.fileHandle, 0, 0))
	}, new([]byte), r, false)
	m.onAssoc(a, r, fmt.Sprintf("scada opens %s on %s (OPEN_FILE 25, g70v3), then closes it (26)", name, a.out.name), st)
	return nil
}

func (m *sim) dnp3OperateWithoutSelect(r *rec) error {
	a := m.assocs[0]
	obj := pcapgen.CROB(breakerIndex, pcapgen.CROBTrip, 1, 100, 0, pcapgen.DNP3StatusSuccess)
	m.onAssoc(a, r, fmt.Sprintf("scada sends OPERATE (4) of a trip of the breaker (g12v1 index 0) of %s with no SELECT", a.out.name), m.dtx(nil, a, 0, pcapgen.DNP3Operate, obj, r, true))
	return nil
}

func (m *sim) dnp3SelectMismatch(r *rec) error {
	a := m.assocs[0]
	sel := pcapgen.CROB(breakerIndex, pcapgen.CROBClose, 1, 100, 0, pcapgen.DNP3StatusSuccess)
	op := pcapgen.CROB(breakerIndex, pcapgen.CROBTrip, 1, 100, 0, pcapgen.DNP3StatusSuccess)
	st := m.dtx(nil, a, 0, pcapgen.DNP3Select, sel, r, false)
	st = m.dtx(st, a, m.ms(200, 300), pcapgen.DNP3Operate, op, r, true)
	m.onAssoc(a, r, fmt.Sprintf("scada selects a close of the breaker of %s (code 0x41), then operates a trip (code 0x81)", a.out.name), st)
	return nil
}

func (m *sim) dnp3Broadcast(r *rec) error {
	a := m.randomAssoc()
	obj := pcapgen.CROB(breakerIndex, pcapgen.CROBTrip, 1, 100, 0, pcapgen.DNP3StatusSuccess)
	st := []step{{0, func() error {
		req := pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, a.nextSeq()), pcapgen.DNP3DirectOperateNR, obj)
		a.d.OutstationAddr = 0xffff
		err := m.send(r, true, func() ([]int, error) { return a.d.Master(req) })
		a.d.OutstationAddr = a.out.addr
		m.answer(a.out, req)
		a.out.broadcast = true
		return err
	}}}
	st = append(st, step{m.ms(30, 20), func() error {
		return m.send(r, false, func() ([]int, error) {
			f, err := a.d.TCP().Ack(pcapgen.FromOutstation)
			return []int{f}, err
		})
	}})
	m.play(&a.lane, m.now(), st)
	r.a.Src, r.a.Dst = a.client, netip.AddrPortFrom(a.out.ep.IP, a.out.ep.Port)
	r.a.Desc = fmt.Sprintf("scada sends DIRECT_OPERATE_NO_ACK (6) of a breaker trip to link address 0xFFFF (all stations) over its connection to %s", a.out.name)
	return nil
}

func (m *sim) malformedDNP3(r *rec) error {
	a := m.randomAssoc()
	st := []step{{0, func() error {
		req := pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, a.nextSeq()), pcapgen.DNP3Read, eventClasses)
		b, err := a.d.Frames(pcapgen.FromMaster, req)
		if err != nil {
			return err
		}
		b = append([]byte(nil), b...)
		b[len(b)-1] ^= 0x5a // the last block's CRC
		return m.send(r, true, func() ([]int, error) { return a.d.TCP().Client(b) })
	}}}
	st = append(st, step{m.ms(30, 20), func() error {
		return m.send(r, false, func() ([]int, error) {
			f, err := a.d.TCP().Ack(pcapgen.FromOutstation)
			return []int{f}, err
		})
	}})
	// The master times out and polls again.
	st = m.dtx(st, a, m.ms(1000, 500), pcapgen.DNP3Read, eventClasses, r, false)
	m.onAssoc(a, r, fmt.Sprintf("a read of scada to %s with a bad block CRC; the outstation ignores it and scada polls again", a.out.name), st)
	return nil
}

func (m *sim) malformedModbus(r *rec) error {
	p := m.fieldPLC()
	c, st, err := m.attackConn(m.ews, p, r, fmt.Sprintf("ews sends %s an ADU whose MBAP length is 300; the PLC resets the connection", p.name))
	if err != nil {
		return err
	}
	st = append(st, step{m.ms(5, 10), func() error {
		c.tid++
		adu := pcapgen.MBAP(c.tid, p.units[0].id, pcapgen.ReadHoldingRegisters(0, 10))
		binary.BigEndian.PutUint16(adu[4:], 300)
		return m.send(r, true, func() ([]int, error) { return c.conn.Client(adu) })
	}})
	st = append(st, step{m.ms(2, 5), func() error {
		return m.send(r, false, func() ([]int, error) {
			f, err := c.conn.Rst(pcapgen.FromServer)
			return []int{f}, err
		})
	}})
	m.play(&c.lane, m.now(), st)
	return nil
}

func (m *sim) publicAddress(r *rec) error {
	client := m.hmi.ep
	client.Port = m.port()
	server := pcapgen.Endpoint{MAC: m.router.ep.MAC, IP: Public, Port: 443}
	c, err := pcapgen.NewTCPConn(m.w, client, server, m.rng.Uint32(), m.rng.Uint32())
	if err != nil {
		return err
	}
	r.a.Src, r.a.Dst = netip.AddrPortFrom(client.IP, client.Port), netip.AddrPortFrom(Public, 443)
	r.keyFirst = true
	r.a.Desc = fmt.Sprintf("hmi resolves telemetry.example.net and opens a TLS-like session to %v:443, then beacons three times", Public)
	dnsc := m.hmi.ep
	dnsc.Port = m.port()
	u, err := pcapgen.NewUDP(m.w, dnsc, m.dns.ep)
	if err != nil {
		return err
	}
	id := uint16(m.rng.Uint32())
	const name = "telemetry.example.net"
	blob := func(n int, first byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(m.rng.Uint32())
		}
		b[0], b[1], b[2] = first, 3, 3
		return b
	}
	one := func(f int, err error) ([]int, error) { return []int{f}, err }
	st := []step{
		{0, func() error {
			return m.send(r, false, func() ([]int, error) { return one(u.Send(dnsMessage(id, name, nil))) })
		}},
		{m.ms(2, 5), func() error {
			return m.send(r, false, func() ([]int, error) { return one(u.Reply(dnsMessage(id, name, Public.AsSlice()))) })
		}},
		{m.ms(2, 5), func() error { return m.send(r, true, c.Handshake) }},
		{m.ms(1, 2), func() error { return m.send(r, false, func() ([]int, error) { return c.Client(blob(517, 0x16)) }) }},
		{m.ms(40, 40), func() error { return m.send(r, false, func() ([]int, error) { return c.Server(blob(1400, 0x16)) }) }},
		{m.ms(1, 2), func() error { return m.send(r, false, func() ([]int, error) { return c.Server(blob(900, 0x16)) }) }},
		{m.ms(2, 3), func() error { return m.send(r, false, func() ([]int, error) { return c.Client(blob(126, 0x14)) }) }},
	}
	for range 3 {
		st = append(st,
			step{m.ms(1500, 1000), func() error {
				return m.send(r, false, func() ([]int, error) { return c.Client(blob(180+m.rng.IntN(80), 0x17)) })
			}},
			step{m.ms(40, 40), func() error {
				return m.send(r, false, func() ([]int, error) { return c.Server(blob(60+m.rng.IntN(60), 0x17)) })
			}},
		)
	}
	st = append(st, step{m.ms(100, 100), func() error { return m.send(r, false, c.Close) }})
	m.play(nil, m.now(), st)
	return nil
}

func (m *sim) newAsset(r *rec) error {
	p := m.fieldPLC()
	c, hs, err := m.attackConn(m.newcomer, p, r, fmt.Sprintf("new host %v appears and polls %s (FC 3, holding 0-9) every 2 s for 30 s", m.newcomer.addr(), p.name))
	if err != nil {
		return err
	}
	var st []step
	if m.w.Link().CarriesARP() {
		st = append(st,
			step{0, func() error {
				return m.send(r, false, func() ([]int, error) {
					f, err := m.w.ARPRequest(m.newcomer.ep, p.ep.IP)
					return []int{f}, err
				})
			}},
			step{m.ms(1, 2), func() error {
				return m.send(r, false, func() ([]int, error) {
					f, err := m.w.ARPReply(p.ep, m.newcomer.ep)
					return []int{f}, err
				})
			}},
		)
		hs[0].d = m.ms(1, 3)
	}
	st = append(st, hs...)
	for i := range 15 {
		gap := 2 * time.Second
		if i == 0 {
			gap = m.ms(5, 10)
		}
		st = m.tx(st, c, p.units[0].id, pcapgen.ReadHoldingRegisters(0, 10), gap, 0, r, i == 0)
		st = m.ack(st, c, r)
	}
	m.play(&c.lane, m.now(), m.closeConn(st, c, m.ms(100, 100), r))
	return nil
}
