package rules

import (
	"math/bits"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/lru"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// The built-in detectors that run on decoded messages. Each is declared
// once, in Detectors (detectors.go): its id, category, techniques,
// defaults, checks and title. Each has a synthetic rule and a compiled
// entry with a negative rule number, so that its alerts take the same path
// as those of the policy's rules (raise: folding, then the budget) and
// never share a key with one.
//
// State is bounded: the sweep table and the tables of new-asset are fixed
// at NewEngine and evict their least recently used entry; counts live in
// the engine's rate table. Everything is driven by packet time. A
// disabled detector allocates no state and costs nothing per message.

// detKind numbers the detectors on decoded messages: the index of their
// entry in Detectors.
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
	dDNP3UnsolRepeat
	dConfirmUnmatched
	dDNP3Replay
	dModbusTIDReuse
	dCounterBackwards
	dSilentChange
	dQualityChange
	dBroadcast
	dFlood
	dPublic
	dNewAsset
	dARPSpoof
	dARPStorm
	dScanHosts
	dScanPorts
	dScanRejects
	dRemote
	dSpoof
	dStreamConflict
	dStreamUnseen
	numBuiltin
)

// stage orders the checks that run on one message, and so the alerts one
// message raises: by stage, then in the order of Detectors.
type stage uint8

const (
	stageMessage  stage = iota // is the message itself sound
	stageFunction              // what it asks for or answers
	stageCount                 // what counts over many messages: sweeps, floods, addresses
	numStages
)

// check is one check of a detector: while the detector is on, it looks at
// the decoded messages that on names whose function code fcs accepts, and
// only those, so that a message costs only the checks that concern it; it
// raises the detector's alerts (fireBuiltin, fireOp). fcs only spares
// calls: run still tests what it looks for.
type check struct {
	stage stage
	on    messages
	run   func(e *Engine, op *Op)
	fcs   func(fc uint8) bool
}

// sameFunc reports whether a and b are the same function.
func sameFunc(a, b func(e *Engine, op *Op)) bool {
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}

// anyFC accepts every function code.
func anyFC(uint8) bool { return true }

// fcIn accepts the function codes given.
func fcIn(codes ...uint8) func(uint8) bool {
	return func(fc uint8) bool { return slices.Contains(codes, fc) }
}

// messages says which messages a check looks at. Answers are the messages
// that are not requests: responses, DNP3 unsolicited responses, and
// frames too damaged to tell.
type messages uint8

const (
	allMessages messages = iota
	modbusMessages
	modbusRequests
	modbusAnswers
	dnp3Messages
	dnp3Requests
	dnp3Answers
	// modbusAnomalous and dnp3Anomalous are the messages with something
	// wrong (anomalous): a Modbus message that is malformed, an exception
	// response, or a request marked Reused (another request under the
	// transaction id of one still awaited, modbus-tid-reuse); a DNP3
	// message with an anomaly, or whose IIN say the request asked for what
	// the outstation does not have. Checks that can only act on such
	// messages are not called for the others, most of the traffic.
	modbusAnomalous
	dnp3Anomalous
	numMessages
)

// numCheckProtos bounds the protocols with checks of their own; checks of
// all messages run on the others too.
const numCheckProtos = proto.DNP3 + 1

// covers reports whether the messages include those of protocol p that
// are requests (or not) and anomalous (or not, or unknown).
func (w messages) covers(p proto.ID, request, anomalous bool) bool {
	switch w {
	case allMessages:
		return true
	case modbusAnomalous:
		return p == proto.Modbus && anomalous
	case dnp3Anomalous:
		return p == proto.DNP3 && anomalous
	case modbusMessages, modbusRequests, modbusAnswers:
		return p == proto.Modbus && (w == modbusMessages || request == (w == modbusRequests))
	case dnp3Messages, dnp3Requests, dnp3Answers:
		return p == proto.DNP3 && (w == dnp3Messages || request == (w == dnp3Requests))
	}
	return false
}

// finding is what a check found that the title of its alert needs, beyond
// the operation: it is passed along with the alert, not kept.
type finding struct {
	reason string     // malformed: the anomaly
	count  int        // recon-sweep: distinct codes
	units  bool       // recon-sweep: of unit ids or link addresses, not function codes
	addr   netip.Addr // new-asset: the new address
	isSrc  bool       // new-asset: addr is the operation's source
	mac    [6]byte    // arp-*: the MAC that claims the address
	mac2   [6]byte    // arp-spoof: the other MAC; ics-spoof: the host's own
	ttl    uint8      // ics-spoof: the packet's TTL
	ttl2   uint8      // ics-spoof: the host's own
	seq    uint32     // stream-conflict: the sequence number of the first differing byte; stream-unseen: of the first unseen byte
	ack    uint32     // stream-unseen: the acknowledgement number
	rate   float64    // stream-unseen: the bytes a second the unseen bytes needed, when more than a link carries; else 0
	chance float64    // stream-unseen: else, how likely so many stretches were under the capture's loss
	frame  uint64     // modbus-tid-reuse: the frame of the waiting request
	prev   uint32     // dnp3-counter-backwards, -silent-change, -quality-change: the point's last value or flags; dnp3-confirm-unmatched: the last response's sequence number
	kind   uint8      // the same: the kind of point
	index  uint32     // the same: its index
	// stream-conflict: whether the first version was delivered (else
	// held out of order)
	delivered bool
	// dnp3-confirm-unmatched: the confirm repeats the last sequence
	// number (again), of a solicited response (else unsolicited)
	again, solicited bool
	evidence         []byte // the alert's evidence, when its op has no message
}

// BuiltinIDs returns the ids of the built-in detectors the engine runs on
// decoded messages (the baseline detectors are not among them).
func BuiltinIDs() []string {
	ids := make([]string, numBuiltin)
	for k := range ids {
		ids[k] = Detectors[k].ID
	}
	return ids
}

// Table sizes of the detectors.
const (
	sweepSlots    = 512  // (source, destination, protocol, kind) sets of codes
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
	rule   policy.Rule
	window int64     // ns; 0: the engine's
	spec   *Detector // its entry in Detectors
}

type builtins struct {
	active bool // any detector enabled
	on     [numBuiltin]bool
	det    [numBuiltin]builtinDet
	// checks are those of the enabled detectors that run on a message,
	// in the order they run:
	// lists[byFC[protocol][request][anomalyClass][function code]].
	// Messages with the same checks share a list.
	lists [][]func(e *Engine, op *Op)
	byFC  [numCheckProtos][2][2][256]uint8
	// settled[i] is list i without the checks that judge a flow's two
	// ends once (endsOnce): the list of a message whose flow memo says
	// they have nothing left to do (flowMemo.settled).
	settled []uint8

	sweep sweepTable

	// new-asset.
	assetIPs  map[netip.Addr]struct{}
	assetNets []netip.Prefix
	reported  addrTable
	ot        addrTable // hosts seen in Modbus or DNP3 conversations, for public-address and remote-access
	otOn      bool      // ot is kept

	net    network   // the network detectors (network.go)
	integ  integrity // the integrity detectors (integrity.go)
	plaus  plausible // the plausibility detectors (plausible.go)
	replay replay    // dnp3-replay (replay.go)
}

func (b *builtins) init(p *policy.Policy, seed uint64) {
	for k := range numBuiltin {
		spec := &Detectors[k]
		s, ok := p.Detector(spec.ID)
		if !ok || !s.Enabled {
			continue
		}
		if k == dNewAsset && len(p.Assets) == 0 {
			// Nothing to compare with: new-asset needs the assets
			// section (or, later, a learned baseline).
			continue
		}
		d := &b.det[k]
		d.spec = spec
		d.rule = policy.Rule{ID: s.ID, Name: spec.Name, Severity: s.Severity, Attack: spec.Attack, Rate: s.Rate, Enabled: true}
		d.c = compiled{rule: &d.rule, idx: -1 - int32(k)}
		d.window = int64(s.Window)
		if s.Rate != nil {
			d.c.expected = formatRate(s.Rate)
		}
		b.on[k] = true
		b.active = true
	}
	b.initChecks(true)
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
		b.reported.init(reportedSlots)
	}
	if b.on[dPublic] || b.on[dRemote] {
		b.ot.init(reportedSlots)
		b.otOn = true
	}
	b.net.init(b, seed)
	b.integ.init(b, seed)
	b.plaus.init(b, seed)
	b.replay.init(b, seed)
}

// initChecks fills lists and byFC with the checks of the enabled
// detectors; without filter, each check runs whatever the function code
// and the anomaly class (tests compare the two).
func (b *builtins) initChecks(filter bool) {
	type cand struct {
		run func(e *Engine, op *Op)
		fcs policy.CodeSet
	}
	type listKey struct {
		p        proto.ID
		req, cls int
		mask     uint64 // of the candidates
	}
	b.lists = nil
	var seen []listKey // the key of each list
	for p := range numCheckProtos {
		for req := range 2 {
			for cls := range 2 {
				anomalous := cls == 1 || !filter
				var cands []cand // in the order they run
				for st := range numStages {
					for k := range numBuiltin {
						if !b.on[k] {
							continue
						}
						for _, c := range Detectors[k].checks {
							if c.stage == st && c.on.covers(p, req == 1, anomalous) {
								x := cand{run: c.run}
								for fc := range 256 {
									if !filter || c.fcs(uint8(fc)) {
										x.fcs.Add(uint8(fc))
									}
								}
								// A check several detectors share (one pass
								// over a message serves them all) runs once,
								// where the first of them that is on puts it.
								if i := slices.IndexFunc(cands, func(o cand) bool { return sameFunc(o.run, x.run) }); i >= 0 {
									cands[i].fcs.Union(&x.fcs)
									continue
								}
								cands = append(cands, x)
							}
						}
					}
				}
				for fc := range 256 {
					k := listKey{p: p, req: req, cls: cls}
					for i := range cands {
						if cands[i].fcs.Has(uint8(fc)) {
							k.mask |= 1 << i
						}
					}
					n := slices.Index(seen, k)
					if n < 0 {
						var list []func(e *Engine, op *Op)
						for i := range cands {
							if k.mask&(1<<i) != 0 {
								list = append(list, cands[i].run)
							}
						}
						n = len(b.lists) // a few dozen lists at most
						if n > 255 {
							panic("rules: more lists of checks than byFC can index")
						}
						seen = append(seen, k)
						b.lists = append(b.lists, list)
					}
					b.byFC[p][req][cls][fc] = uint8(n)
				}
			}
		}
	}
	b.settled = make([]uint8, len(b.lists))
	for i, list := range b.lists {
		b.settled[i] = uint8(i)
		if !filter {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(list), endsOnce)
		if len(rest) == len(list) {
			continue
		}
		n := slices.IndexFunc(b.lists, func(l []func(e *Engine, op *Op)) bool {
			return slices.EqualFunc(l, rest, sameFunc)
		})
		if n < 0 {
			n = len(b.lists)
			if n > 255 {
				panic("rules: more lists of checks than byFC can index")
			}
			b.lists = append(b.lists, rest)
			b.settled = append(b.settled, uint8(n)) // nothing more to take out
		}
		b.settled[i] = uint8(n)
	}
}

// endsOnce reports whether run is a check that judges a flow's two ends
// once, public-address's or new-asset's: on a flow whose memo has them
// judged (flowMemo.settled), it does nothing, and detect leaves it out.
func endsOnce(run func(e *Engine, op *Op)) bool {
	return sameFunc(run, (*Engine).checkPublic) || sameFunc(run, (*Engine).checkNewAsset)
}

// window is the aggregation window of detector idx (a negative rule
// number): its own when it has one, otherwise 0, meaning the engine's.
func (b *builtins) window(idx int32) int64 {
	return b.det[-1-idx].window
}

// describe gives the category and title of an alert of detector idx about
// op, in which its check found f. It runs only when a new alert is made,
// so it may allocate.
func (b *builtins) describe(idx int32, op *Op, f finding) (string, string) {
	d := &b.det[-1-idx]
	return d.spec.Category, d.spec.title(op, d, f)
}

// fireBuiltin raises an alert of detector k about op with aggregation
// key key (its rule number is filled in); f is what the title needs.
func (e *Engine) fireBuiltin(k detKind, op *Op, key aggKey, f finding) bool {
	c := &e.bi.det[k].c
	key.rule = c.idx
	return e.raiseFinding(c, op, key, false, f)
}

// fireOp raises an alert of detector k with the usual key of op.
func (e *Engine) fireOp(k detKind, op *Op) bool {
	c := &e.bi.det[k].c
	return e.raiseFinding(c, op, e.opKey(c, op), false, finding{})
}

// detect runs the checks of the enabled detectors on op.
func (e *Engine) detect(op *Op) {
	p, req := op.Proto, 0
	if p >= numCheckProtos {
		p = 0
	}
	if op.Request {
		req = 1
	}
	l := e.bi.byFC[p][req][anomalyClass(op)][op.FC]
	if m := op.memo; m != nil && m.flow.settled(&e.bi) {
		l = e.bi.settled[l]
	}
	for _, run := range e.bi.lists[l] {
		run(e, op)
	}
}

// anomalyClass is 0 for a Modbus or DNP3 message known to be sound (see
// modbusAnomalous), 1 for any other: the checks of anomalous messages run
// on it.
func anomalyClass(op *Op) int {
	switch op.Proto {
	case proto.Modbus:
		if m := op.Modbus; m != nil && m.Malformed == 0 && m.Exception == 0 && !m.Reused {
			return 0
		}
	case proto.DNP3:
		if m := op.DNP3; m != nil && m.Anomalies == 0 && m.IIN&dnp3ExceptionIIN == 0 {
			return 0
		}
	}
	return 1
}

// modbusOf is op's Modbus message with a function code, or nil.
func modbusOf(op *Op) *modbus.Message {
	if op.Proto != proto.Modbus || op.Modbus == nil || !op.Modbus.HasFunction() {
		return nil
	}
	return op.Modbus
}

// dnp3Of is op's DNP3 application message, or nil.
func dnp3Of(op *Op) *dnp3.Message {
	if op.Proto != proto.DNP3 || op.DNP3 == nil || op.DNP3.Kind != dnp3.KindApplication {
		return nil
	}
	return op.DNP3
}

// ---- malformed ----

// dnp3Ignored are the anomalies that are no sign of a malformed message:
// select-before-operate and flooding have their own detectors, and a
// fragment truncated by a gap or by the end of the conversation is the
// capture's doing.
const dnp3Ignored = 1<<dnp3.SelectMismatch | 1<<dnp3.OperateWithoutSelect | 1<<dnp3.OperateLate |
	1<<dnp3.RequestFlood | 1<<dnp3.FragmentTruncated

func (e *Engine) checkModbusMalformed(op *Op) {
	if m := op.Modbus; m != nil && m.Malformed != 0 && modbusMalformedCounts(op, m) {
		e.fireBuiltin(dMalformed, op, flowKey(op), finding{reason: m.Malformed.String()})
	}
}

func (e *Engine) checkDNP3Malformed(op *Op) {
	m := op.DNP3
	if m == nil || m.Anomalies == 0 {
		return
	}
	bad := m.Anomalies &^ dnp3Ignored
	if m.Kind == dnp3.KindGarbage && m.Truncated {
		bad &^= 1 << dnp3.NotDNP3 // the rest of a frame cut by a loss
	}
	if bad != 0 {
		e.fireBuiltin(dMalformed, op, flowKey(op), finding{reason: dnp3.Reason(bits.TrailingZeros64(bad)).String()})
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

func titleMalformed(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	return "Malformed " + op.Proto.Title() + " message from " + src + " to " + dst + ": " + f.reason
}

// ---- Modbus functions ----

// checkModbusDiag: FC 8 sub-functions that take a device off the bus or
// wipe its counters, each sub-function its own alert.
func (e *Engine) checkModbusDiag(op *Op) {
	if m := modbusOf(op); m != nil && op.Request && m.FC == 8 && diagAbuse(m.Sub) {
		k := e.opKey(&e.bi.det[dModbusDiag].c, op)
		k.addr = uint32(m.Sub)
		e.fireBuiltin(dModbusDiag, op, k, finding{})
	}
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

func titleModbusDiag(op *Op, _ *builtinDet, _ finding) string {
	src, dst := ends(op)
	return "FC 8 " + diagName(op.Modbus.Sub) + " from " + src + " to " + dst + unitText(op)
}

// checkDeviceID: device identification and report server id both hand
// out vendor, model and run state.
func (e *Engine) checkDeviceID(op *Op) {
	if m := modbusOf(op); m != nil && op.Request && (m.FC == 43 && m.MEI == modbus.MEIReadDeviceID || m.FC == 17) {
		e.fireOp(dDeviceID, op)
	}
}

func titleDeviceID(op *Op, _ *builtinDet, _ finding) string {
	src, dst := ends(op)
	if op.FC == 17 {
		return "Server id read (FC 17) from " + src + " to " + dst + unitText(op)
	}
	return "Device identification read (FC 43/14) from " + src + " to " + dst + unitText(op)
}

// checkBusyDelay counts server busy and acknowledge exceptions.
func (e *Engine) checkBusyDelay(op *Op) {
	if m := modbusOf(op); m != nil && !op.Request && (m.Exception == 5 || m.Exception == 6) {
		e.countPair(dBusyDelay, op)
	}
}

func titleBusyDelay(op *Op, d *builtinDet, _ finding) string {
	src, dst := ends(op)
	return "Modbus " + exceptionName(op) + " exceptions from " + src + " to " + dst + unitText(op) + ": " + d.c.expected + " exceeded"
}

// exceptionName names the busy and acknowledge exceptions.
func exceptionName(op *Op) string {
	if op.Modbus != nil && op.Modbus.Exception == 5 {
		return "acknowledge"
	}
	return "server busy"
}

// ---- exception-storm ----

// dnp3ExceptionIIN are the IIN bits of a response that say the request
// asked for something the outstation does not have.
const dnp3ExceptionIIN = dnp3.IINNoFuncCodeSupport | dnp3.IINObjectUnknown | dnp3.IINParameterError

// checkDNP3Exceptions counts responses whose IIN say the request asked for
// something the outstation does not have (op goes from the device to the
// master).
func (e *Engine) checkDNP3Exceptions(op *Op) {
	if m := dnp3Of(op); m != nil && m.Dir == dnp3.Response && m.IIN&dnp3ExceptionIIN != 0 {
		e.countPair(dExceptionStorm, op)
	}
}

// checkModbusExceptions counts an exception response towards exception-storm:
// illegal function (1) and illegal data address (2), which probing draws,
// and acknowledge (5) and server busy (6), which a device swamped by
// requests answers, always; the gateway
// exceptions (10, 11), which a unit id sweep through a gateway draws, only
// for a unit id not seen failing within the window, so that one dead
// serial device polled every second is not a storm.
func (e *Engine) checkModbusExceptions(op *Op) {
	m := modbusOf(op)
	if m == nil || op.Request {
		return
	}
	switch m.Exception {
	case 1, 2, 5, 6:
	case 10, 11:
		if isNew, _ := e.sweepAdd(e.sweepCodes(op, sweepGateway), 0, m.Unit, false); !isNew {
			return
		}
	default:
		return
	}
	e.countPair(dExceptionStorm, op)
}

func titleExceptionStorm(op *Op, d *builtinDet, _ finding) string {
	src, dst := ends(op)
	return "Exception storm from " + src + " to " + dst + ": " + d.c.expected + " exceeded"
}

// ---- DNP3 functions ----

// dnp3Request is op's DNP3 request, or nil.
func dnp3Request(op *Op) *dnp3.Message {
	if m := dnp3Of(op); m != nil && m.Dir == dnp3.Request {
		return m
	}
	return nil
}

func (e *Engine) checkDNP3Restart(op *Op) {
	if m := dnp3Request(op); m != nil && (m.FC == dnp3.FuncColdRestart || m.FC == dnp3.FuncWarmRestart) {
		e.fireOp(dDNP3Restart, op)
	}
}

func (e *Engine) checkDNP3AppControl(op *Op) {
	if m := dnp3Request(op); m != nil {
		switch m.FC {
		case dnp3.FuncInitializeData, dnp3.FuncInitializeApplication, dnp3.FuncStartApplication, dnp3.FuncStopApplication:
			e.fireOp(dDNP3AppControl, op)
		}
	}
}

func (e *Engine) checkDNP3DisableUnsol(op *Op) {
	if m := dnp3Request(op); m != nil && m.FC == dnp3.FuncDisableUnsolicited {
		e.fireOp(dDNP3DisableUnsol, op)
	}
}

// checkDNP3File: the file functions, and group 70 (file control) objects
// in a write.
func (e *Engine) checkDNP3File(op *Op) {
	m := dnp3Request(op)
	if m == nil {
		return
	}
	switch m.FC {
	case dnp3.FuncOpenFile, dnp3.FuncCloseFile, dnp3.FuncDeleteFile, dnp3.FuncGetFileInfo, dnp3.FuncAuthenticateFile, dnp3.FuncAbortFile:
		e.fireOp(dDNP3File, op)
	case dnp3.FuncWrite:
		for i := range m.Objects {
			if m.Objects[i].Group == 70 {
				e.fireOp(dDNP3File, op)
				return
			}
		}
	}
}

func titleDNP3Function(op *Op, _ *builtinDet, _ finding) string {
	src, dst := ends(op)
	return "DNP3 " + dnp3.FunctionName(op.FC) + " from " + src + " to " + dst + linkText(op)
}

func (e *Engine) checkDNP3OperateNoSelect(op *Op) {
	if m := dnp3Request(op); m != nil && m.FC == dnp3.FuncOperate {
		switch m.SBO {
		case dnp3.SBONoSelect, dnp3.SBOMismatch, dnp3.SBOLate:
			e.fireOp(dDNP3OperateNoSelect, op)
		}
	}
}

func titleDNP3OperateNoSelect(op *Op, _ *builtinDet, _ finding) string {
	src, dst := ends(op)
	return "DNP3 operate " + sboText(op) + " from " + src + " to " + dst + linkText(op)
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

func (e *Engine) checkDNP3UnsolStorm(op *Op) {
	if m := dnp3Of(op); m != nil && m.Dir == dnp3.Unsolicited {
		e.countPair(dDNP3UnsolStorm, op)
	}
}

func titleDNP3UnsolStorm(op *Op, d *builtinDet, _ finding) string {
	src, dst := ends(op)
	return "DNP3 unsolicited response storm from " + src + " to " + dst + linkText(op) + ": " + d.c.expected + " exceeded"
}

// ---- broadcast-write ----

func (e *Engine) checkModbusBroadcast(op *Op) {
	if m := modbusOf(op); m != nil && op.Request && m.Unit == 0 && modbusChanges(op) {
		e.fireOp(dBroadcast, op)
	}
}

func (e *Engine) checkDNP3Broadcast(op *Op) {
	if m := dnp3Request(op); m != nil && m.Link.Dst >= 0xFFFD && dnp3Changes(op.Class) {
		e.fireOp(dBroadcast, op)
	}
}

// modbusChanges reports whether a Modbus request changes something: a
// write, restart communications, force listen only, or a file record
// write. Reads to unit 0 are common (devices addressed directly over TCP)
// and are not broadcasts worth an alert.
func modbusChanges(op *Op) bool { return modbusClassChanges(op.FC, op.Class) }

// modbusClassChanges reports whether a request of function fc and class c
// changes something.
func modbusClassChanges(fc uint8, c policy.OpClass) bool {
	switch c {
	case policy.OpWrite, policy.OpRestart, policy.OpConfig:
		return true
	}
	return fc == 21
}

// modbusMayChange reports whether a request of function fc changes
// something with some sub-function: only FC 8's class depends on it.
func modbusMayChange(fc uint8) bool {
	return fc == 8 || modbusClassChanges(fc, ModbusClass(fc, 0))
}

// dnp3MayChange reports whether a DNP3 request of function fc changes
// something.
func dnp3MayChange(fc uint8) bool { return dnp3Changes(DNP3Class(fc)) }

// dnp3Changes reports whether a DNP3 request class changes something.
func dnp3Changes(c policy.OpClass) bool {
	switch c {
	case policy.OpWrite, policy.OpControl, policy.OpRestart, policy.OpConfig, policy.OpFile:
		return true
	}
	return false
}

func titleBroadcast(op *Op, _ *builtinDet, _ finding) string {
	src, dst := ends(op)
	if op.Proto == proto.Modbus {
		return "Modbus broadcast " + modbus.FunctionName(op.FC) + " (unit 0) from " + src + " via " + dst
	}
	return "DNP3 broadcast " + dnp3.FunctionName(op.FC) + " to link address 0x" + strconv.FormatUint(uint64(op.LinkDst), 16) + " from " + src + " via " + dst
}

// ---- counting detectors ----

// checkModbusSweep and checkDNP3Sweep note the function code and unit id
// (DNP3: folded link address) of a request for recon-sweep.
func (e *Engine) checkModbusSweep(op *Op) {
	if m := modbusOf(op); m != nil && op.Request {
		e.sweepRequest(op, m.FC, m.Unit)
	}
}

func (e *Engine) checkDNP3Sweep(op *Op) {
	if m := dnp3Request(op); m != nil {
		// Link addresses fold to 8 bits; a sweep of consecutive
		// addresses stays distinct.
		e.sweepRequest(op, m.FC, uint8(m.Link.Dst)^uint8(m.Link.Dst>>8))
	}
}

// sweepRequest fires recon-sweep when the set of function codes or of
// unit ids a request adds to has grown past rate.max within rate.per.
func (e *Engine) sweepRequest(op *Op, fc, unit uint8) {
	c := e.sweepCodes(op, sweepRequests)
	// Nearly every request repeats a code and a unit of its window: that
	// test is here, before the calls, since sweepAdd does nothing more
	// for them (a requests entry is never a gateway's).
	if !c.cur[sweepFunctions].Has(fc) {
		if over, n := e.sweepAdd(c, sweepFunctions, fc, true); over {
			e.fireBuiltin(dSweep, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), addr: keySweepFunctions}, finding{count: n})
		}
	}
	if !c.cur[sweepUnits].Has(unit) {
		if over, n := e.sweepAdd(c, sweepUnits, unit, true); over {
			e.fireBuiltin(dSweep, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr(), addr: keySweepUnits}, finding{count: n, units: true})
		}
	}
}

func titleSweep(op *Op, d *builtinDet, f finding) string {
	src, dst := ends(op)
	what := "function codes"
	if f.units {
		what = "unit ids"
		if op.Proto == proto.DNP3 {
			what = "link addresses"
		}
	}
	return op.Proto.Title() + " sweep from " + src + " to " + dst + ": " + strconv.Itoa(f.count) + " " + what + " within " + policy.FormatDuration(d.rule.Rate.Per)
}

// checkDNP3FloodAnomaly: the DNP3 decoder's flood anomaly, requests piling
// up without responses on one connection.
func (e *Engine) checkDNP3FloodAnomaly(op *Op) {
	if op.Proto == proto.DNP3 && op.DNP3 != nil && op.DNP3.Anomalies&(1<<dnp3.RequestFlood) != 0 {
		e.fireBuiltin(dFlood, op, aggKey{dst: op.Dst.Addr(), addr: 1}, finding{})
	}
}

// checkFlood counts a Modbus or DNP3 request towards request-flood: all
// masters together against one device.
func (e *Engine) checkFlood(op *Op) {
	if m := modbusOf(op); (m == nil || !op.Request) && dnp3Request(op) == nil {
		return
	}
	d := &e.bi.det[dFlood]
	now := op.nano
	// The counter is the receiver's: a flow's memo keeps a handle to it.
	var ent *rateEntry
	found := true
	m := op.memo
	if m != nil {
		ent = m.flood.Get(now)
	}
	if ent == nil {
		k := rateKey{dst: op.Dst.Addr(), rule: d.c.idx}
		ent, found = e.rate.Get(&k, rateHash(&k), now)
		if m != nil {
			m.flood = ent.Handle()
		}
	}
	if e.countIn(d.rule.Rate, ent, found, now) {
		e.fireBuiltin(dFlood, op, aggKey{dst: op.Dst.Addr()}, finding{})
	}
}

func titleFlood(op *Op, d *builtinDet, _ finding) string {
	src, dst := ends(op)
	if op.Proto == proto.DNP3 && op.DNP3 != nil && op.DNP3.Anomalies&(1<<dnp3.RequestFlood) != 0 {
		return "DNP3 request flood from " + src + " to " + dst + ": requests pile up without responses"
	}
	return "Request flood to " + dst + " (last from " + src + "): " + d.c.expected + " exceeded"
}

// countPair counts op towards the rate of detector k for its sender and
// receiver (a device answering a master: exception-storm,
// modbus-busy-delay, dnp3-unsolicited-storm), and fires k when the rate
// is exceeded.
func (e *Engine) countPair(k detKind, op *Op) {
	d := &e.bi.det[k]
	if e.countRate(d.rule.Rate, rateKey{src: op.Src.Addr(), dst: op.Dst.Addr(), rule: d.c.idx}, op.nano) {
		e.fireBuiltin(k, op, aggKey{src: op.Src.Addr(), dst: op.Dst.Addr()}, finding{})
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

// Kinds of entries in the sweep table.
const (
	sweepRequests uint8 = iota // what a source sends a device: sets sweepFunctions and sweepUnits
	sweepGateway               // unit ids for which a gateway answered with a gateway exception: set 0
)

// The code sets of a sweepRequests entry: one lookup a request finds
// both.
const (
	sweepFunctions = 0 // function codes
	sweepUnits     = 1 // unit ids (DNP3: link addresses)
)

// sweepKey is what the sweep table keeps codes for: one source at one
// destination, per protocol and kind of code.
type sweepKey struct {
	src   netip.Addr
	proto proto.ID
	kind  uint8
	dst   netip.Addr // after padding, as in rateKey
}

// sweepCodes is the sets of codes one source used at one destination in
// the current fixed window of rate.per and in the one before; the
// distinct count is that of their union, so it spans between one and two
// windows. The entry's Last is the packet time of the last use.
type sweepCodes struct {
	epoch     uint32 // the engine's epoch when last used
	gateway   bool   // a sweepGateway entry
	win       int64
	cur, prev [2]policy.CodeSet
}

// sweepTable holds the code sets of recon-sweep and exception-storm.
type sweepTable = lru.Table[sweepKey, sweepCodes]

// sweepCodes is the entry of kind for op's source and destination, its
// windows moved on to op's time.
func (e *Engine) sweepCodes(op *Op, kind uint8) *sweepCodes {
	now := op.nano
	per := int64(DefaultWindow)
	if r := e.bi.det[dSweep].rule.Rate; r != nil {
		per = int64(r.Per)
	}
	if kind == sweepGateway {
		per = int64(e.bi.det[dExceptionStorm].rule.Rate.Per)
	}
	w := e.windows.index(now, per)
	// A flow's memo keeps a handle to the entry of its requests.
	var ent *lru.Entry[sweepKey, sweepCodes]
	found := true
	m := op.memo
	if m != nil && kind == sweepRequests {
		ent = m.sweep.Get(now)
	}
	if ent == nil {
		k := sweepKey{src: op.Src.Addr(), dst: op.Dst.Addr(), proto: op.Proto, kind: kind}
		ent, found = e.bi.sweep.Get(&k, hashAddr(k.src)^bits.RotateLeft64(hashAddr(k.dst), 29)^uint64(kind)<<8^uint64(k.proto), now)
		if m != nil && kind == sweepRequests {
			m.sweep = ent.Handle()
		}
	}
	c := &ent.Value
	if !found {
		*c = sweepCodes{win: w, epoch: e.epoch, gateway: kind == sweepGateway}
	}
	switch {
	case c.epoch != e.epoch:
		c.prev, c.cur = [2]policy.CodeSet{}, [2]policy.CodeSet{}
		c.win, c.epoch = w, e.epoch
	case w == c.win+1:
		c.prev, c.cur = c.cur, [2]policy.CodeSet{}
		c.win = w
	case w > c.win+1 || w < c.win-1:
		// Silence for more than a window, or packet time went back by
		// more than one (a new capture file): start afresh.
		c.prev, c.cur = [2]policy.CodeSet{}, [2]policy.CodeSet{}
		c.win = w
	}
	return c
}

// sweepAdd adds code to set i of c. With threshold it reports whether
// the code was new and the distinct count now exceeds recon-sweep's
// rate.max, and that count; without, whether the code was new in the
// window (a gateway entry: in either window).
func (e *Engine) sweepAdd(c *sweepCodes, i int, code uint8, threshold bool) (bool, int) {
	cur, prev := &c.cur[i], &c.prev[i]
	// The packet's window is c.win or the one before (packets slightly
	// out of time order): count it in the current window.
	if cur.Has(code) || c.gateway && prev.Has(code) {
		return false, 0
	}
	cur.Add(code)
	if !threshold {
		return true, 0
	}
	if prev.Has(code) {
		return false, 0 // not new within the span
	}
	n := 0
	for j := range cur {
		n += bits.OnesCount64(cur[j] | prev[j])
	}
	return n > int(e.bi.det[dSweep].rule.Rate.Max), n
}

// ---- public-address ----

// NewFlow implements dpi.FlowHandler: every conversation, ICS or not, is
// checked for an OT host (one seen in a Modbus or DNP3 conversation, or a
// policy asset) talking to a public address. Modbus and DNP3 flows are
// also checked message by message (detectPublic).
func (e *Engine) NewFlow(f *dpi.Flow, t time.Time) {
	if n := e.learnNet(); n != nil {
		n.NewFlow(f, t)
	}
	b := &e.bi
	if b.on[dScanHosts] || b.on[dScanPorts] {
		e.newFlowProbe(f, t)
	}
	if !b.otOn {
		return
	}
	c, s := f.Client.Addr().Unmap(), f.Server.Addr().Unmap()
	if f.App != dpi.AppNone {
		b.ot.add(c, t.UnixNano())
		b.ot.add(s, t.UnixNano())
		return
	}
	if !b.on[dPublic] {
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
	*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
	e.fireBuiltin(dPublic, op, aggKey{src: ot, dst: pub}, finding{})
}

// checkPublic checks the two ends of a Modbus or DNP3 message. A flow's
// ends do not change: they are judged once a flow, in the flow's memo.
func (e *Engine) checkPublic(op *Op) {
	var v publicVerdict
	if m := op.memo; m != nil {
		f := m.flow
		if !f.judged {
			f.public, f.judged = judgePublic(f.a.Unmap(), f.b.Unmap()), true
		}
		v = f.public
		if m == &f.dir[1] { // the message goes from b to a
			v = v.reversed()
		}
	} else {
		v = judgePublic(op.Src.Addr().Unmap(), op.Dst.Addr().Unmap())
	}
	switch v {
	case publicDst:
		e.fireBuiltin(dPublic, op, aggKey{src: op.Src.Addr().Unmap(), dst: op.Dst.Addr().Unmap()}, finding{})
	case publicSrc:
		e.fireBuiltin(dPublic, op, aggKey{src: op.Dst.Addr().Unmap(), dst: op.Src.Addr().Unmap()}, finding{})
	}
}

// publicVerdict says which end of a message, if either, is a public
// address talking to a private one.
type publicVerdict uint8

const (
	publicNone publicVerdict = iota
	publicDst
	publicSrc
)

// reversed is the verdict on the same two ends the other way round.
func (v publicVerdict) reversed() publicVerdict {
	switch v {
	case publicDst:
		return publicSrc
	case publicSrc:
		return publicDst
	}
	return publicNone
}

func judgePublic(s, d netip.Addr) publicVerdict {
	// A private address is not public: when s is private, only d can be.
	// Most messages are between two private hosts, so isPublic asks the
	// cheapest question first.
	if isPrivate(s) {
		if isPublic(d) {
			return publicDst
		}
	} else if isPublic(s) && isPrivate(d) {
		return publicSrc
	}
	return publicNone
}

func titlePublic(op *Op, _ *builtinDet, _ finding) string {
	src, dst := ends(op)
	proto := op.Proto.Title()
	if op.Proto == 0 && op.Flow != nil {
		// A conversation that is neither Modbus nor DNP3.
		proto = strings.ToUpper(op.Flow.Transport.String()) + " port " + strconv.Itoa(int(op.Dst.Port()))
	}
	if isPublic(op.Dst.Addr().Unmap()) {
		return proto + " between " + src + " and public address " + dst
	}
	return proto + " between " + dst + " and public address " + src
}

// isPrivate: RFC 1918, RFC 4193, link-local and loopback addresses.
func isPrivate(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
}

// isPublic: a global unicast address that is not private. The
// documentation ranges count as public (they are not ours either); the
// shared address space of carrier-grade NAT (100.64.0.0/10) does not.
func isPublic(a netip.Addr) bool {
	if a.IsPrivate() || !a.IsGlobalUnicast() {
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

// checkNewAsset checks the two ends of a message against the assets, once
// a flow (the flow's memo says when it has).
func (e *Engine) checkNewAsset(op *Op) {
	b := &e.bi
	var f *flowMemo
	if m := op.memo; m != nil {
		if f = m.flow; f.known {
			return
		}
	}
	for i, a := range [2]netip.Addr{op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()} {
		if !a.IsValid() || b.isAsset(a) || !b.reported.add(a, op.nano) {
			continue
		}
		k := aggKey{src: a, addr: keyNewSrc}
		if i == 1 {
			k.addr = keyNewDst
		}
		e.fireBuiltin(dNewAsset, op, k, finding{addr: a, isSrc: i == 0})
	}
	if f != nil {
		f.known = true
	}
}

func titleNewAsset(op *Op, _ *builtinDet, f finding) string {
	src, dst := ends(op)
	role := "device"
	if op.Request == f.isSrc {
		role = "master"
	}
	other := dst
	if !f.isSrc {
		other = src
	}
	return "New asset " + f.addr.String() + ": " + op.Proto.Title() + " " + role + " talking to " + other
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

// addrTable remembers addresses, in a fixed table: when both sets a new
// address may take are full, the least recently seen of them is
// forgotten (new-asset would report it again). Its seed is fixed, so
// that a reload can take the table over.
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

// ends are op's source and destination addresses, as titles give them.
func ends(op *Op) (string, string) {
	return op.Src.Addr().String(), op.Dst.Addr().String()
}

func unitText(op *Op) string { return " unit " + strconv.Itoa(int(op.Unit)) }

func linkText(op *Op) string {
	return " (link " + strconv.Itoa(int(op.LinkSrc)) + " to " + strconv.Itoa(int(op.LinkDst)) + ")"
}
