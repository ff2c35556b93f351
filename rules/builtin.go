package rules

import (
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/lru"
)

// The built-in detectors that run on decoded messages (the catalogue is
// Detectors, in detectors.go; the baseline-* ones belong to learning).
// Each has a synthetic rule and a compiled entry with a negative rule
// number, so that its alerts take the same path as those of the policy's
// rules (raise: folding, then the budget) and never share a key with one.
//
// State is bounded: the sweep table and the tables of new-asset are fixed
// at NewEngine and evict their least recently used entry; counts live in
// the engine's rate table. Everything is driven by packet time. A
// disabled detector allocates no state and costs one test per message.

type detKind uint8

const (
	dMalformed detKind = iota
	dModbusDiag
	dDeviceID
	dSweep
	dExceptionStorm
	dBusyDelay
	dDNP3Restart
	dDNP3AppControl
	dDNP3DisableUnsol
	dDNP3File
	dDNP3OperateNoSelect
	dDNP3UnsolStorm
	dBroadcast
	dFlood
	dPublic
	dNewAsset
	numBuiltin
)

// builtinIDs are the catalogue ids of the detectors implemented here.
var builtinIDs = [numBuiltin]string{
	"malformed", "modbus-diagnostics", "recon-device-id", "recon-sweep", "exception-storm",
	"modbus-busy-delay", "dnp3-restart", "dnp3-application-control", "dnp3-disable-unsolicited", "dnp3-file",
	"dnp3-operate-without-select", "dnp3-unsolicited-storm", "broadcast-write", "request-flood", "public-address", "new-asset",
}

// Alert categories of the built-in detectors.
const (
	CategoryProtocolAnomaly   = "protocol-anomaly"
	CategoryDiagnostics       = "diagnostics"
	CategoryReconnaissance    = "reconnaissance"
	CategoryDangerousFunction = "dangerous-function"
	CategoryBroadcast         = "broadcast"
	CategoryFlood             = "flood"
	CategoryNetwork           = "network"
	CategoryInventory         = "inventory"
)

var builtinCategory = [numBuiltin]string{
	CategoryProtocolAnomaly, CategoryDiagnostics, CategoryReconnaissance, CategoryReconnaissance, CategoryReconnaissance,
	CategoryFlood, CategoryDangerousFunction, CategoryDangerousFunction, CategoryDangerousFunction, CategoryDangerousFunction,
	CategoryDangerousFunction, CategoryFlood, CategoryBroadcast, CategoryFlood, CategoryNetwork, CategoryInventory,
}

// BuiltinIDs returns the ids of the built-in detectors the engine runs on
// decoded messages (the baseline detectors are not among them).
func BuiltinIDs() []string { return append([]string(nil), builtinIDs[:]...) }

// Table sizes of the detectors.
const (
	sweepSlots    = 512  // (source, destination, protocol, kind) sets of codes
	knownSlots    = 1024 // flows whose endpoints new-asset has checked (direct mapped)
	reportedSlots = 1024 // new addresses already reported
)

// aggregation key addresses (aggKey.addr) that keep the alerts of one
// detector about different things apart.
const (
	keySweepFunctions = 1
	keySweepUnits     = 2 // Modbus unit ids, DNP3 link addresses
	keyNewSrc         = 1
	keyNewDst         = 2
)

type builtinDet struct {
	c      compiled
	rule   Rule
	window int64 // ns; 0: the engine's
}

type builtins struct {
	active bool // any detector enabled
	on     [numBuiltin]bool
	det    [numBuiltin]builtinDet

	sweep sweepTable

	// new-asset.
	assetIPs  map[netip.Addr]struct{}
	assetNets []netip.Prefix
	known     []knownFlow // nil when new-asset is off
	reported  addrTable
	ot        addrTable // hosts seen in Modbus or DNP3 conversations, for public-address

	// What the alert being raised is about, for describe; set just
	// before raise.
	reason     string     // malformed: the anomaly
	count      int        // sweeps: distinct codes
	sweepUnits bool       // sweeps: of unit ids or link addresses, not function codes
	newAddr    netip.Addr // new-asset
	newIsSrc   bool
}

func (b *builtins) init(p *Policy, seed uint64) {
	for k := range numBuiltin {
		s, ok := p.Detector(builtinIDs[k])
		cat := LookupDetector(builtinIDs[k])
		if !ok || cat == nil || !s.Enabled {
			continue
		}
		if k == dNewAsset && len(p.Assets) == 0 {
			// Nothing to compare with: new-asset needs the assets
			// section (or, later, a learned baseline).
			continue
		}
		d := &b.det[k]
		d.rule = Rule{ID: s.ID, Name: cat.Name, Severity: s.Severity, Attack: cat.Attack, Rate: s.Rate, Enabled: true}
		d.c = compiled{rule: &d.rule, idx: -1 - int32(k)}
		d.window = int64(s.Window)
		if s.Rate != nil {
			d.c.expected = formatRate(s.Rate)
		}
		b.on[k] = true
		b.active = true
	}
	if b.on[dSweep] || b.on[dExceptionStorm] {
		b.sweep.Init(sweepSlots, seed)
	}
	if b.on[dNewAsset] {
		b.assetIPs = map[netip.Addr]struct{}{}
		for _, a := range p.Assets {
			for _, pf := range a.Prefixes {
				if pf.IsSingleIP() {
					b.assetIPs[pf.Addr().Unmap()] = struct{}{}
				} else {
					b.assetNets = append(b.assetNets, pf)
				}
			}
		}
		b.known = make([]knownFlow, knownSlots)
		b.reported.init(reportedSlots)
	}
	if b.on[dPublic] {
		b.ot.init(reportedSlots)
	}
}

// window is the aggregation window of detector idx (a negative rule
// number): its own when it has one, otherwise 0, meaning the engine's.
func (b *builtins) window(idx int32) int64 {
	return b.det[-1-idx].window
}

// fireBuiltin raises an alert of detector k about op with aggregation
// key key (its rule number is filled in).
func (e *Engine) fireBuiltin(k detKind, op *Op, key aggKey) bool {
	c := &e.bi.det[k].c
	key.rule = c.idx
	return e.raise(c, op, key, false)
}

// fireOp raises an alert of detector k with the usual key of op.
func (e *Engine) fireOp(k detKind, op *Op) bool {
	return e.raise(&e.bi.det[k].c, op, opKey(&e.bi.det[k].c, op), false)
}

// detect runs the enabled detectors on op.
func (e *Engine) detect(op *Op) {
	switch op.Proto {
	case ProtoModbus:
		if op.Modbus != nil {
			e.detectModbus(op, op.Modbus)
		}
	case ProtoDNP3:
		if op.DNP3 != nil {
			e.detectDNP3(op, op.DNP3)
		}
	}
	b := &e.bi
	if b.on[dPublic] {
		e.detectPublic(op)
	}
	if b.on[dNewAsset] {
		e.detectNewAsset(op)
	}
}

// ---- Modbus ----

func (e *Engine) detectModbus(op *Op, m *modbus.Message) {
	b := &e.bi
	if m.Malformed != 0 && b.on[dMalformed] && modbusMalformedCounts(op, m) {
		b.reason = m.Malformed.String()
		e.fireBuiltin(dMalformed, op, flowKey(op))
	}
	if !m.HasFunction() {
		return
	}
	if !op.Request {
		if m.Exception != 0 && b.on[dExceptionStorm] {
			e.modbusException(op, m)
		}
		if (m.Exception == 5 || m.Exception == 6) && b.on[dBusyDelay] {
			e.countPair(dBusyDelay, op)
		}
		return
	}
	switch {
	case m.FC == 8 && b.on[dModbusDiag] && diagAbuse(m.Sub):
		k := opKey(&b.det[dModbusDiag].c, op)
		k.addr = uint32(m.Sub) // each sub-function its own alert
		e.fireBuiltin(dModbusDiag, op, k)
	case (m.FC == 43 && m.MEI == modbus.MEIReadDeviceID || m.FC == 17) && b.on[dDeviceID]:
		// Device identification and report server id both hand out
		// vendor, model and run state.
		e.fireOp(dDeviceID, op)
	}
	if b.on[dBroadcast] && m.Unit == 0 && modbusChanges(op) {
		e.fireOp(dBroadcast, op)
	}
	if b.on[dSweep] {
		e.sweepRequest(op, m.FC, m.Unit)
	}
	if b.on[dFlood] {
		e.countFlood(op)
	}
}

// modbusMalformedCounts says whether a malformed Modbus message is an
// attack signal: bytes skipped after a capture gap (or at a mid-stream
// start) and ADUs cut by lost TCP bytes are the capture's fault, not the
// sender's.
func modbusMalformedCounts(op *Op, m *modbus.Message) bool {
	switch m.Malformed {
	case modbus.NotModbus:
		return !m.AfterLoss
	case modbus.Truncated:
		return op.Flow != nil && op.Flow.Transport == dpi.UDP
	}
	return true
}

// diagAbuse reports whether an FC 8 sub-function takes a device off the
// bus or wipes its counters: restart communications (1), force listen
// only (4), clear counters and diagnostic register (10), clear overrun
// counter and flag (20).
func diagAbuse(sub uint16) bool {
	switch sub {
	case modbus.SubRestartCommunicationsOption, modbus.SubForceListenOnlyMode,
		modbus.SubClearCountersAndDiagnosticRegister, modbus.SubClearOverrunCounterAndFlag:
		return true
	}
	return false
}

func diagName(sub uint16) string {
	switch sub {
	case modbus.SubRestartCommunicationsOption:
		return "restart communications"
	case modbus.SubForceListenOnlyMode:
		return "force listen-only"
	case modbus.SubClearCountersAndDiagnosticRegister:
		return "clear counters and diagnostic register"
	case modbus.SubClearOverrunCounterAndFlag:
		return "clear overrun counter and flag"
	}
	return modbus.SubFunctionName(sub)
}

// modbusChanges reports whether a Modbus request changes something: a
// write, restart communications, force listen only, or a file record
// write. Reads to unit 0 are common (devices addressed directly over TCP)
// and are not broadcasts worth an alert.
func modbusChanges(op *Op) bool {
	switch op.Class {
	case OpWrite, OpRestart, OpConfig:
		return true
	}
	return op.FC == 21
}

// modbusException counts an exception response towards exception-storm:
// illegal function (1) and illegal data address (2), which probing draws,
// and acknowledge (5) and server busy (6), which a device swamped by
// requests answers, always; the gateway
// exceptions (10, 11), which a unit id sweep through a gateway draws, only
// for a unit id not seen failing within the window, so that one dead
// serial device polled every second is not a storm.
func (e *Engine) modbusException(op *Op, m *modbus.Message) {
	switch m.Exception {
	case 1, 2, 5, 6:
	case 10, 11:
		if !e.sweepAdd(op, sweepGateway, m.Unit, false) {
			return
		}
	default:
		return
	}
	e.countExceptions(op)
}

// ---- DNP3 ----

// dnp3Ignored are the anomalies that are no sign of a malformed message:
// select-before-operate and flooding have their own detectors, and a
// fragment truncated by a gap or by the end of the conversation is the
// capture's doing.
const dnp3Ignored = 1<<dnp3.SelectMismatch | 1<<dnp3.OperateWithoutSelect | 1<<dnp3.OperateLate |
	1<<dnp3.RequestFlood | 1<<dnp3.FragmentTruncated

// dnp3ExceptionIIN are the IIN bits of a response that say the request
// asked for something the outstation does not have.
const dnp3ExceptionIIN = dnp3.IINNoFuncCodeSupport | dnp3.IINObjectUnknown | dnp3.IINParameterError

func (e *Engine) detectDNP3(op *Op, m *dnp3.Message) {
	b := &e.bi
	if m.Anomalies != 0 {
		bad := m.Anomalies &^ dnp3Ignored
		if m.Kind == dnp3.KindGarbage && m.Truncated {
			bad &^= 1 << dnp3.NotDNP3 // the rest of a frame cut by a loss
		}
		if bad != 0 && b.on[dMalformed] {
			b.reason = dnp3.Reason(bits.TrailingZeros64(bad)).String()
			e.fireBuiltin(dMalformed, op, flowKey(op))
		}
		if m.Anomalies&(1<<dnp3.RequestFlood) != 0 && b.on[dFlood] {
			e.fireBuiltin(dFlood, op, aggKey{dst: op.Dst.Addr(), addr: 1})
		}
	}
	if m.Kind != dnp3.KindApplication {
		return
	}
	if m.Dir != dnp3.Request {
		if m.Dir == dnp3.Unsolicited && b.on[dDNP3UnsolStorm] {
			e.countPair(dDNP3UnsolStorm, op)
		}
		if m.Dir == dnp3.Response && m.IIN&dnp3ExceptionIIN != 0 && b.on[dExceptionStorm] {
			e.countExceptions(op)
		}
		return
	}
	var k detKind = numBuiltin
	switch m.FC {
	case dnp3.FuncColdRestart, dnp3.FuncWarmRestart:
		k = dDNP3Restart
	case dnp3.FuncInitializeData, dnp3.FuncInitializeApplication, dnp3.FuncStartApplication, dnp3.FuncStopApplication:
		k = dDNP3AppControl
	case dnp3.FuncDisableUnsolicited:
		k = dDNP3DisableUnsol
	case dnp3.FuncOpenFile, dnp3.FuncCloseFile, dnp3.FuncDeleteFile, dnp3.FuncGetFileInfo, dnp3.FuncAuthenticateFile, dnp3.FuncAbortFile:
		k = dDNP3File
	case dnp3.FuncWrite:
		for i := range m.Objects {
			if m.Objects[i].Group == 70 {
				k = dDNP3File
				break
			}
		}
	case dnp3.FuncOperate:
		switch m.SBO {
		case dnp3.SBONoSelect, dnp3.SBOMismatch, dnp3.SBOLate:
			k = dDNP3OperateNoSelect
		}
	}
	if k < numBuiltin && b.on[k] {
		e.fireOp(k, op)
	}
	if b.on[dBroadcast] && m.Link.Dst >= 0xFFFD && dnp3Changes(op.Class) {
		e.fireOp(dBroadcast, op)
	}
	if b.on[dSweep] {
		// Link addresses fold to 8 bits; a sweep of consecutive
		// addresses stays distinct.
		e.sweepRequest(op, m.FC, uint8(m.Link.Dst)^uint8(m.Link.Dst>>8))
	}
	if b.on[dFlood] {
		e.countFlood(op)
	}
}

// dnp3Changes reports whether a DNP3 request class changes something.
func dnp3Changes(c OpClass) bool {
	switch c {
	case OpWrite, OpControl, OpRestart, OpConfig, OpFile:
		return true
	}
	return false
}

// ---- counting detectors ----

// countFlood counts a request towards request-flood: all masters together
// against one device.
func (e *Engine) countFlood(op *Op) {
	d := &e.bi.det[dFlood]
	if e.countRate(d.rule.Rate, rateKey{dst: op.Dst.Addr(), rule: d.c.idx}, op.Time.UnixNano()) {
		e.fireBuiltin(dFlood, op, aggKey{dst: op.Dst.Addr()})
	}
}

// countPair counts op towards the rate of detector k for its sender and
// receiver (a device answering a master: exception-storm,
// modbus-busy-delay, dnp3-unsolicited-storm), and fires k when the rate
// is exceeded.
func (e *Engine) countPair(k detKind, op *Op) {
	d := &e.bi.det[k]
	if e.countRate(d.rule.Rate, rateKey{src: op.Src.Addr(), dst: op.Dst.Addr(), rule: d.c.idx}, op.Time.UnixNano()) {
		e.fireBuiltin(k, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr()})
	}
}

// countExceptions counts an exception response (op goes from the device
// to the master) towards exception-storm.
func (e *Engine) countExceptions(op *Op) {
	if e.bi.on[dExceptionStorm] {
		e.countPair(dExceptionStorm, op)
	}
}

// sweepRequest notes the function code and unit id (DNP3: folded link
// address) of a request for recon-sweep, and fires when either set has
// grown past rate.max within rate.per.
func (e *Engine) sweepRequest(op *Op, fc, unit uint8) {
	b := &e.bi
	if e.sweepAdd(op, sweepFunctions, fc, true) {
		b.count, b.sweepUnits = b.sweep.last, false
		e.fireBuiltin(dSweep, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), addr: keySweepFunctions})
	}
	if e.sweepAdd(op, sweepUnits, unit, true) {
		b.count, b.sweepUnits = b.sweep.last, true
		e.fireBuiltin(dSweep, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), addr: keySweepUnits})
	}
}

// flowKey folds every message of one conversation (both directions, any
// port) into one alert.
func flowKey(op *Op) aggKey {
	k := aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), fc: uint8(op.Proto)}
	if f := op.Flow; f != nil {
		k.src, k.dst = f.Client.Addr(), f.Server.Addr()
	}
	return k
}

// ---- sweep table ----

// Kinds of code sets in the sweep table.
const (
	sweepFunctions uint8 = iota // function codes a source sends a device
	sweepUnits                  // unit ids (DNP3: link addresses) it sends to
	sweepGateway                // unit ids for which a gateway answered with a gateway exception
)

// sweepKey is what the sweep table keeps codes for: one source at one
// destination, per protocol and kind of code.
type sweepKey struct {
	src, dst netip.Addr
	proto    Proto
	kind     uint8
}

// sweepCodes is the set of codes one source used at one destination in
// the current fixed window of rate.per and in the one before; the
// distinct count is that of their union, so it spans between one and two
// windows. The entry's Last is the packet time of the last use.
type sweepCodes struct {
	epoch     uint32 // the engine's epoch when last used
	win       int64
	cur, prev CodeSet
}

// sweepTable holds the code sets of recon-sweep and exception-storm.
type sweepTable struct {
	lru.Table[sweepKey, sweepCodes]
	last int // the distinct count sweepAdd found last
}

// sweepAdd adds code to the set of kind for op's source and destination.
// With threshold it reports whether the code was new and the distinct
// count now exceeds recon-sweep's rate.max; without, whether the code was
// new in the window.
func (e *Engine) sweepAdd(op *Op, kind, code uint8, threshold bool) bool {
	t := &e.bi.sweep
	k := sweepKey{src: op.Src.Addr(), dst: op.Dst.Addr(), proto: op.Proto, kind: kind}
	now := op.Time.UnixNano()
	per := int64(DefaultWindow)
	if r := e.bi.det[dSweep].rule.Rate; r != nil {
		per = int64(r.Per)
	}
	if kind == sweepGateway {
		per = int64(e.bi.det[dExceptionStorm].rule.Rate.Per)
	}
	w := now / per
	ent, found := t.Get(&k, hashAddr(k.src)^bits.RotateLeft64(hashAddr(k.dst), 29)^uint64(kind)<<8^uint64(k.proto), now)
	c := &ent.Value
	if !found {
		*c = sweepCodes{win: w, epoch: e.epoch}
	}
	switch {
	case c.epoch != e.epoch:
		c.prev, c.cur = CodeSet{}, CodeSet{}
		c.win, c.epoch = w, e.epoch
	case w == c.win+1:
		c.prev, c.cur = c.cur, CodeSet{}
		c.win = w
	case w > c.win+1 || w < c.win-1:
		// Silence for more than a window, or packet time went back by
		// more than one (a new capture file): start afresh.
		c.prev, c.cur = CodeSet{}, CodeSet{}
		c.win = w
	}
	// w is c.win or the one before (packets slightly out of time
	// order): count it in the current window.
	if c.cur.Has(code) || kind == sweepGateway && c.prev.Has(code) {
		return false
	}
	c.cur.Add(code)
	if !threshold {
		return true
	}
	if c.prev.Has(code) {
		return false // not new within the span
	}
	n := 0
	for i := range c.cur {
		n += bits.OnesCount64(c.cur[i] | c.prev[i])
	}
	t.last = n
	return n > int(e.bi.det[dSweep].rule.Rate.Max)
}

// ---- public-address ----

// NewFlow implements dpi.FlowHandler: every conversation, ICS or not, is
// checked for an OT host (one seen in a Modbus or DNP3 conversation, or a
// policy asset) talking to a public address. Modbus and DNP3 flows are
// also checked message by message (detectPublic).
func (e *Engine) NewFlow(f *dpi.Flow, t time.Time) {
	b := &e.bi
	if !b.on[dPublic] {
		return
	}
	c, s := f.Client.Addr().Unmap(), f.Server.Addr().Unmap()
	if f.App != dpi.AppNone {
		b.ot.add(c, t.UnixNano())
		b.ot.add(s, t.UnixNano())
		return
	}
	var ot, pub netip.Addr
	switch {
	case isPrivate(c) && isPublic(s):
		ot, pub = c, s
	case isPublic(c) && isPrivate(s):
		ot, pub = s, c
	default:
		return
	}
	if !b.ot.has(ot) && !b.isAsset(ot) {
		return // an office host, not an OT one
	}
	op := &e.flowOp
	*op = Op{Time: t, Flow: f, Src: f.Client, Dst: f.Server}
	e.fireBuiltin(dPublic, op, aggKey{src: ot, dst: pub})
}

func (e *Engine) detectPublic(op *Op) {
	s, d := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	switch {
	case isPrivate(s) && isPublic(d):
		e.fireBuiltin(dPublic, op, aggKey{src: s, dst: d})
	case isPublic(s) && isPrivate(d):
		e.fireBuiltin(dPublic, op, aggKey{src: d, dst: s})
	}
}

// isPrivate: RFC 1918, RFC 4193, link-local and loopback addresses.
func isPrivate(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
}

// isPublic: a global unicast address that is not private. The
// documentation ranges count as public (they are not ours either); the
// shared address space of carrier-grade NAT (100.64.0.0/10) does not.
func isPublic(a netip.Addr) bool {
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	if a.Is4() {
		b := a.As4()
		if b[0] == 100 && b[1]&0xC0 == 64 || b[0] == 0 {
			return false
		}
	}
	return true
}

// ---- new-asset ----

// knownFlow is a flow whose endpoints new-asset has checked.
type knownFlow struct {
	id       uint64
	src, dst netip.Addr
}

func (e *Engine) detectNewAsset(op *Op) {
	b := &e.bi
	src, dst := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	var kf *knownFlow
	if f := op.Flow; f != nil {
		kf = &b.known[(f.ID^f.ID>>10)&(knownSlots-1)]
		if kf.id == f.ID && kf.src == src && kf.dst == dst || kf.id == f.ID && kf.src == dst && kf.dst == src {
			return
		}
	}
	for i, a := range [2]netip.Addr{src, dst} {
		if !a.IsValid() || b.isAsset(a) || !b.reported.add(a, op.Time.UnixNano()) {
			continue
		}
		b.newAddr, b.newIsSrc = a, i == 0
		k := aggKey{src: a, addr: keyNewSrc}
		if i == 1 {
			k.addr = keyNewDst
		}
		e.fireBuiltin(dNewAsset, op, k)
	}
	if kf != nil {
		*kf = knownFlow{id: op.Flow.ID, src: src, dst: dst}
	}
}

func (b *builtins) isAsset(a netip.Addr) bool {
	if _, ok := b.assetIPs[a]; ok {
		return true
	}
	for _, pf := range b.assetNets {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

// addrTable remembers addresses, in a fixed table: when a set is full
// the least recently seen one is forgotten (new-asset would report it
// again). Its seed is fixed, so that a reload can take the table over.
type addrTable struct {
	lru.Table[netip.Addr, struct{}]
}

const addrSeed = 0x6e65772d61737365

func (t *addrTable) init(n int) { t.Init(n, addrSeed) }

// has reports whether a is in the table.
func (t *addrTable) has(a netip.Addr) bool { return t.Find(&a, hashAddr(a)) != nil }

// add records a at time now and reports whether it is new.
func (t *addrTable) add(a netip.Addr, now int64) bool {
	_, found := t.Get(&a, hashAddr(a), now)
	return !found
}

// ---- titles ----

// describe gives the category and title of an alert of detector idx about
// op. It runs only when a new alert is made, so it may allocate.
func (b *builtins) describe(idx int32, op *Op) (string, string) {
	k := detKind(-1 - idx)
	src, dst := op.Src.Addr().String(), op.Dst.Addr().String()
	proto := op.Proto.title()
	var t string
	switch k {
	case dMalformed:
		t = "Malformed " + proto + " message from " + src + " to " + dst + ": " + b.reason
	case dModbusDiag:
		t = "FC 8 " + diagName(op.Modbus.Sub) + " from " + src + " to " + dst + unitText(op)
	case dDeviceID:
		if op.FC == 17 {
			t = "Server id read (FC 17) from " + src + " to " + dst + unitText(op)
		} else {
			t = "Device identification read (FC 43/14) from " + src + " to " + dst + unitText(op)
		}
	case dSweep:
		what := "function codes"
		if b.sweepUnits {
			what = "unit ids"
			if op.Proto == ProtoDNP3 {
				what = "link addresses"
			}
		}
		t = proto + " sweep from " + src + " to " + dst + ": " + strconv.Itoa(b.count) + " " + what + " within " + formatDuration(b.det[dSweep].rule.Rate.Per)
	case dExceptionStorm:
		t = "Exception storm from " + src + " to " + dst + ": " + b.det[dExceptionStorm].c.expected + " exceeded"
	case dBusyDelay:
		t = "Modbus " + exceptionName(op) + " exceptions from " + src + " to " + dst + unitText(op) + ": " + b.det[dBusyDelay].c.expected + " exceeded"
	case dDNP3Restart, dDNP3AppControl, dDNP3DisableUnsol, dDNP3File:
		t = "DNP3 " + dnp3.FunctionName(op.FC) + " from " + src + " to " + dst + linkText(op)
	case dDNP3OperateNoSelect:
		t = "DNP3 operate " + sboText(op) + " from " + src + " to " + dst + linkText(op)
	case dDNP3UnsolStorm:
		t = "DNP3 unsolicited response storm from " + src + " to " + dst + linkText(op) + ": " + b.det[dDNP3UnsolStorm].c.expected + " exceeded"
	case dBroadcast:
		if op.Proto == ProtoModbus {
			t = "Modbus broadcast " + modbus.FunctionName(op.FC) + " (unit 0) from " + src + " via " + dst
		} else {
			t = "DNP3 broadcast " + dnp3.FunctionName(op.FC) + " to link address 0x" + strconv.FormatUint(uint64(op.LinkDst), 16) + " from " + src + " via " + dst
		}
	case dFlood:
		if op.Proto == ProtoDNP3 && op.DNP3 != nil && op.DNP3.Anomalies&(1<<dnp3.RequestFlood) != 0 {
			t = "DNP3 request flood from " + src + " to " + dst + ": requests pile up without responses"
		} else {
			t = "Request flood to " + dst + " (last from " + src + "): " + b.det[dFlood].c.expected + " exceeded"
		}
	case dPublic:
		if op.Proto == 0 && op.Flow != nil {
			// A conversation that is neither Modbus nor DNP3.
			proto = strings.ToUpper(op.Flow.Transport.String()) + " port " + strconv.Itoa(int(op.Dst.Port()))
		}
		if isPublic(op.Dst.Addr().Unmap()) {
			t = proto + " between " + src + " and public address " + dst
		} else {
			t = proto + " between " + dst + " and public address " + src
		}
	case dNewAsset:
		role := "device"
		if op.Request == b.newIsSrc {
			role = "master"
		}
		other := dst
		if !b.newIsSrc {
			other = src
		}
		t = "New asset " + b.newAddr.String() + ": " + proto + " " + role + " talking to " + other
	}
	return builtinCategory[k], t
}

// exceptionName names the busy and acknowledge exceptions.
func exceptionName(op *Op) string {
	if op.Modbus != nil && op.Modbus.Exception == 5 {
		return "acknowledge"
	}
	return "server busy"
}

func unitText(op *Op) string { return " unit " + strconv.Itoa(int(op.Unit)) }

func linkText(op *Op) string {
	return " (link " + strconv.Itoa(int(op.LinkSrc)) + " to " + strconv.Itoa(int(op.LinkDst)) + ")"
}

func sboText(op *Op) string {
	if op.DNP3 != nil {
		switch op.DNP3.SBO {
		case dnp3.SBOMismatch:
			return "not matching its select"
		case dnp3.SBOLate:
			return "after the select timed out"
		}
	}
	return "without select"
}
