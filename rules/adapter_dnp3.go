package rules

import (
	"slices"
	"strconv"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// dnp3Adapter is the Adapter of DNP3.
type dnp3Adapter struct{}

func init() { registerAdapter(&dnp3Adapter{}) }

func (*dnp3Adapter) Proto() proto.ID { return proto.DNP3 }

// Op: the built-in detectors see every message (link-only frames and
// garbage carry the CRC and framing anomalies); the rules only
// application fragments.
func (*dnp3Adapter) Op(op *Op, f *dpi.Flow, from dpi.Side, m any) Use {
	dn, ok := m.(*dnp3.Message)
	if !ok {
		return UseNone
	}
	op.FromDNP3(f, from == dpi.FromServer, dn)
	if dn.Kind == dnp3.KindApplication {
		return UseRules
	}
	return UseDetect
}

func (*dnp3Adapter) HasFunction(op *Op) bool {
	return op.DNP3 == nil || op.DNP3.Kind == dnp3.KindApplication
}

func (*dnp3Adapter) Classes(fc uint8) policy.OpSet { return 1 << DNP3Class(fc) }

// Match: the link addresses.
func (*dnp3Adapter) Match(m *policy.Match, op *Op) bool {
	if len(m.LinkSrc) > 0 && !m.LinkSrc.Contains(uint32(op.LinkSrc)) {
		return false
	}
	return len(m.LinkDst) == 0 || m.LinkDst.Contains(uint32(op.LinkDst))
}

// MatchPayload: the object groups and point indexes, decoding the points
// only when a header names them by index.
func (*dnp3Adapter) MatchPayload(m *policy.Match, op *Op) bool {
	if len(m.Groups) > 0 || len(m.Points) > 0 {
		return objectsMatch(m, op.DNP3)
	}
	return true
}

// Endpoint: the endpoint's link addresses, of the source or the
// destination.
func (*dnp3Adapter) Endpoint(ep *policy.Endpoint, op *Op, isSrc bool) bool {
	if len(ep.DNP3) == 0 {
		return true
	}
	la := op.LinkDst
	if isSrc {
		la = op.LinkSrc
	}
	return ep.DNP3.Contains(uint32(la))
}

// Values: analog output commands (group 41) of the groups and points of
// the match.
func (*dnp3Adapter) Values(r *policy.Rule, op *Op, v *Violations) {
	m := op.DNP3
	if m == nil {
		return
	}
	for i := range m.Objects {
		h := &m.Objects[i]
		if h.Group != 41 || len(r.When.Groups) > 0 && !groupsMatch(r.When.Groups, h) {
			continue
		}
		m.DecodePoints()
		for _, pt := range headerPoints(m, i) {
			if len(r.When.Points) > 0 && !r.When.Points.Contains(pt.Index) {
				continue
			}
			if !r.Value.Contains(pt.Value) {
				v.Add(pt.Index, pt.Value)
			}
		}
	}
}

// Unclassed: a confirm changes nothing.
func (a *dnp3Adapter) Unclassed(op *Op) bool {
	return a.HasFunction(op) && op.FC != dnp3.FuncConfirm
}

func (*dnp3Adapter) Device(op *Op) uint16 { return op.LinkDst }

// Learn: the link addresses, the objects and points named, and the
// values of analog outputs (group 41) written or operated.
func (*dnp3Adapter) Learn(op *Op, to Learned) {
	m := op.DNP3
	if !op.Request {
		if m == nil || !dnp3Reports(m) {
			return
		}
		for i := range m.Objects {
			h := &m.Objects[i]
			if !staticGroup(h.Group) {
				continue // events of a point come and go; its static object says it exists
			}
			gv := policy.GroupVar{Group: h.Group, Var: h.Variation}
			to.Reported(gv, false, 0, 0)
			headerIndexes(m, i, func(lo, hi uint32) bool {
				to.Reported(gv, true, lo, hi)
				return true
			})
		}
		return
	}
	to.Link(op.LinkSrc, op.LinkDst)
	if m == nil {
		return
	}
	for i := range m.Objects {
		h := &m.Objects[i]
		gv := policy.GroupVar{Group: h.Group, Var: h.Variation}
		to.Points(gv, false, 0, 0)
		headerIndexes(m, i, func(lo, hi uint32) bool {
			to.Points(gv, true, lo, hi)
			return true
		})
		if h.Group == 41 && (op.Class == policy.OpWrite || op.Class == policy.OpControl) {
			m.DecodePoints()
			for _, pt := range headerPoints(m, i) {
				to.Value(0, 41, pt.Index, pt.Value)
			}
		}
	}
}

// Alert: the link addresses, and the fragment as evidence, or the raw
// bytes of garbage and bad frames, for the detectors. A DNP3 alert has
// an address range only when a value rule found one.
func (*dnp3Adapter) Alert(a *Alert, op *Op, addr bool) {
	a.LinkSrc, a.LinkDst = op.LinkSrc, op.LinkDst
	a.FCName = dnp3.FunctionName(op.FC)
	if m := op.DNP3; m != nil {
		if len(m.Fragment) > 0 {
			setEvidence(a, m.Fragment)
		} else {
			setEvidence(a, m.Raw)
		}
	}
}

func (*dnp3Adapter) Wire(ev *event.Alert, a *Alert) {
	s, d := a.LinkSrc, a.LinkDst
	ev.DNP3Src, ev.DNP3Dst = &s, &d
}

// FromDNP3 fills op from a decoded DNP3 message on flow f; fromServer says
// which end of f sent it.
// Like FromModbus, it writes every field one by one.
func (op *Op) FromDNP3(f *dpi.Flow, fromServer bool, m *dnp3.Message) {
	op.Time, op.Frame, op.Proto, op.Flow = m.Time, m.Frame, proto.DNP3, f
	op.nano = 0 // Engine.Message and Evaluate set it, where it is read
	if fromServer {
		op.Src, op.Dst = f.Server, f.Client
	} else {
		op.Src, op.Dst = f.Client, f.Server
	}
	op.Request = m.Dir == dnp3.Request
	op.Class = 0
	if op.Request && m.Kind == dnp3.KindApplication {
		op.Class = DNP3Class(m.FC)
	}
	op.FC, op.Unit, op.Table = m.FC, 0, 0
	op.HasAddr, op.Addr, op.Count, op.Values = false, 0, 0, nil
	op.LinkSrc, op.LinkDst = m.Link.Src, m.Link.Dst
	op.Modbus, op.DNP3, op.memo = nil, m, nil
}

// DNP3Class is the class of a DNP3 request function (IEEE 1815-2012
// table 4-1).
func DNP3Class(fc uint8) policy.OpClass {
	switch fc {
	case dnp3.FuncRead:
		return policy.OpRead
	case dnp3.FuncWrite:
		return policy.OpWrite
	case dnp3.FuncSelect, dnp3.FuncOperate, dnp3.FuncDirectOperate, dnp3.FuncDirectOperateNR,
		dnp3.FuncImmedFreeze, dnp3.FuncImmedFreezeNR, dnp3.FuncFreezeClear, dnp3.FuncFreezeClearNR,
		dnp3.FuncFreezeAtTime, dnp3.FuncFreezeAtTimeNR:
		return policy.OpControl
	case dnp3.FuncColdRestart, dnp3.FuncWarmRestart:
		return policy.OpRestart
	case dnp3.FuncInitializeData, dnp3.FuncInitializeApplication, dnp3.FuncStartApplication,
		dnp3.FuncStopApplication, dnp3.FuncSaveConfiguration, dnp3.FuncEnableUnsolicited,
		dnp3.FuncDisableUnsolicited, dnp3.FuncAssignClass, dnp3.FuncRecordCurrentTime,
		dnp3.FuncActivateConfig:
		return policy.OpConfig
	case dnp3.FuncDelayMeasure:
		return policy.OpDiagnostic
	case dnp3.FuncOpenFile, dnp3.FuncCloseFile, dnp3.FuncDeleteFile, dnp3.FuncGetFileInfo,
		dnp3.FuncAuthenticateFile, dnp3.FuncAbortFile:
		return policy.OpFile
	case dnp3.FuncAuthenticateRequest, dnp3.FuncAuthenticateError:
		return policy.OpAuth
	}
	return 0
}

// checkBaseline: the link addresses, the objects and points, and the
// values of analog outputs.
func (*dnp3Adapter) checkBaseline(e *Engine, op *Op, pr *pairRun) {
	r := e.base
	c := pr.c
	m := op.DNP3
	pr.class0 = m != nil && op.FC == dnp3.FuncRead && readsClass0(m)
	src, dst := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	if r.on[bNewAddress] && (!c.LinkDst.Contains(uint32(op.LinkDst)) || !c.LinkSrc.Contains(uint32(op.LinkSrc))) {
		r.title = "New DNP3 link addresses " + strconv.Itoa(int(op.LinkSrc)) + " to " + strconv.Itoa(int(op.LinkDst)) + " from " + src.String() + " to " + dst.String()
		r.expected = "link_src " + rangesText(c.LinkSrc) + ", link_dst " + rangesText(c.LinkDst)
		e.fireBase(bNewAddress, op, aggKey{src: src, dst: dst, addr: keyBaseUnit + uint32(op.LinkDst)}, false)
		return
	}
	if m == nil {
		return
	}
	var first *policy.ValueRange
	e.viol.n = 0
	for i := range m.Objects {
		h := &m.Objects[i]
		var obj *policy.ObjectPoints
		for j := range c.Objects {
			if c.Objects[j].Group == h.Group && c.Objects[j].Var == h.Variation {
				obj = &c.Objects[j]
				break
			}
		}
		if obj == nil {
			if r.on[bNewAddress] {
				r.title = "New DNP3 object " + policy.GroupVarText(policy.GroupVar{Group: h.Group, Var: h.Variation}) + " in " + dnp3.FunctionName(op.FC) + " from " + src.String() + " to " + dst.String()
				r.expected = "objects " + objectsText(c.Objects)
				e.fireBase(bNewAddress, op, aggKey{src: src, dst: dst, fc: op.FC, dev: op.LinkDst, addr: keyBaseObject + uint32(h.Group)<<8 | uint32(h.Variation)}, false)
			}
			continue
		}
		if r.on[bNewAddress] {
			bad, badLo := false, uint32(0)
			headerIndexes(m, i, func(lo, hi uint32) bool {
				if !obj.Points.Covers(lo, hi) {
					bad, badLo = true, lo
					return false
				}
				return true
			})
			if bad {
				r.title = "New DNP3 point " + strconv.FormatUint(uint64(badLo), 10) + " of object " + policy.GroupVarText(obj.GroupVar) + " in " + dnp3.FunctionName(op.FC) + " from " + src.String() + " to " + dst.String()
				r.expected = "points " + rangesText(obj.Points)
				e.fireBase(bNewAddress, op, aggKey{src: src, dst: dst, fc: op.FC, dev: op.LinkDst, addr: badLo}, false)
				continue
			}
		}
		if h.Group == 41 && r.on[bValueRange] && len(pr.values) > 0 && (op.Class == policy.OpWrite || op.Class == policy.OpControl) {
			m.DecodePoints()
			for _, pt := range headerPoints(m, i) {
				j, ok := pr.values[valueKey{0x80 | 41, pt.Index}]
				if !ok {
					continue
				}
				if bd := r.b.Widen(&c.Values[j]); !bd.Contains(pt.Value) {
					if first == nil {
						first = &c.Values[j]
					}
					e.viol.Add(pt.Index, pt.Value)
				}
			}
		}
	}
	if first != nil {
		e.valueAlert(op, first)
	}
}

// dnp3Reports reports whether m is a response or an unsolicited response
// whose objects the outstation reports: sound, with its FIR and FIN.
func dnp3Reports(m *dnp3.Message) bool {
	return m.Kind == dnp3.KindApplication && m.Dir != dnp3.Request && m.Malformed == 0 && len(m.Objects) > 0
}

// readsClass0 reports whether a read request asks for class 0, all the
// static points (object 60/1).
func readsClass0(m *dnp3.Message) bool {
	for i := range m.Objects {
		if h := &m.Objects[i]; h.Group == 60 && h.Variation == 1 {
			return true
		}
	}
	return false
}

// staticGroup reports whether g is a group of static (current value)
// objects, which a class 0 read returns.
func staticGroup(g uint8) bool {
	switch g {
	case 1, 3, 10, 20, 21, 30, 31, 40:
		return true
	}
	return false
}

// checkResponse: baseline-new-point, for a conversation that learned
// what its outstation reported, and baseline-new-address for a response
// between link addresses that do not fit the conversation.
//
// Static objects (what a class 0 read returns) are checked point by
// point: an index never reported appears; a class 0 answer in one
// fragment whose headers of an object, together, cover fewer of the
// learned points than were learned has lost some. An event's index is
// checked against the static points of its group, when those were
// learned: events come and go, and a quiet week teaches none.
func (*dnp3Adapter) checkResponse(e *Engine, op *Op, pr *pairRun) {
	c, m := pr.c, op.DNP3
	r := e.base
	device, master := op.Src.Addr().Unmap(), op.Dst.Addr().Unmap()
	if m != nil && m.Kind == dnp3.KindApplication && r.on[bNewAddress] && len(c.LinkSrc) > 0 && len(c.LinkDst) > 0 &&
		(!c.LinkDst.Contains(uint32(op.LinkSrc)) || !c.LinkSrc.Contains(uint32(op.LinkDst))) {
		// A response between link addresses that do not fit the IP
		// pair: the master's requests went between others.
		r.title = "DNP3 response from link address " + strconv.Itoa(int(op.LinkSrc)) + " to " + strconv.Itoa(int(op.LinkDst)) + " from " + device.String() + " to " + master.String() + ": its requests use others"
		r.expected = "link_src " + rangesText(c.LinkDst) + ", link_dst " + rangesText(c.LinkSrc) + " (the conversation's, reversed)"
		e.fireBase(bNewAddress, op, aggKey{src: device, dst: master, addr: keyBaseUnit + uint32(op.LinkSrc)}, false)
	}
	if !r.on[bNewPoint] || len(c.Reported) == 0 || m == nil || !dnp3Reports(m) {
		return
	}
	fire := func(h *dnp3.ObjectHeader, gone bool, title string) {
		r.title = "DNP3 outstation " + device.String() + linkText(op) + " " + title
		r.expected = "reported " + objectsText(c.Reported)
		k := aggKey{src: device, dst: master, dev: op.LinkSrc, addr: keyBasePoint + uint32(h.Group)<<8 | uint32(h.Variation)}
		if gone {
			k.addr += keyBaseGone - keyBasePoint
		}
		e.fireBase(bNewPoint, op, k, false)
	}
	whole := pr.class0 && m.Dir == dnp3.Response && m.FIR && m.FIN
	for i := range m.Objects {
		h := &m.Objects[i]
		gv := policy.GroupVar{Group: h.Group, Var: h.Variation}
		if sg := staticOf(h.Group); sg != 0 && sg != h.Group {
			// An event: its index must be a learned static point.
			learned, ok := groupPoints(c.Reported, sg)
			if !ok {
				continue
			}
			headerIndexes(m, i, func(lo, hi uint32) bool {
				if learned(lo, hi) {
					return true
				}
				fire(h, false, "reports an event of point "+rangeText(lo, hi)+" ("+policy.GroupVarText(gv)+") to "+master.String()+": no such point of group "+strconv.Itoa(int(sg))+" while learning")
				return false
			})
			continue
		}
		if !staticGroup(h.Group) {
			continue
		}
		j := slices.IndexFunc(c.Reported, func(o policy.ObjectPoints) bool { return o.GroupVar == gv })
		if j < 0 {
			fire(h, false, "reports object "+policy.GroupVarText(gv)+" to "+master.String()+": it never reported it while learning")
			continue
		}
		learned := c.Reported[j].Points
		if len(learned) == 0 {
			continue
		}
		headerIndexes(m, i, func(lo, hi uint32) bool {
			if learned.Covers(lo, hi) {
				return true
			}
			fire(h, false, "reports points "+rangeText(lo, hi)+" of "+policy.GroupVarText(gv)+" to "+master.String()+": it never reported those while learning")
			return false
		})
		if whole && firstHeaderOf(m, i) {
			if got, want := coveredPoints(m, gv, learned), totalPoints(learned); got < want {
				fire(h, true, "answers a class 0 read from "+master.String()+" with "+strconv.FormatUint(got, 10)+" of the "+strconv.FormatUint(want, 10)+
					" points of "+policy.GroupVarText(gv)+" it reported while learning ("+rangesText(learned)+")")
			}
		}
	}
}

// staticOf is the static group of an event group (2 of 1, 4 of 3, 22 of
// 20, 32 of 30...), the group itself for a static one, 0 for others.
func staticOf(g uint8) uint8 {
	switch g {
	case 2, 4, 11:
		return g - 1
	case 22, 23:
		return g - 2
	case 32, 33, 42:
		return g - 2
	}
	if staticGroup(g) {
		return g
	}
	return 0
}

// groupPoints gives a test of whether points lo..hi are among the
// learned points of any variation of group g, and whether any were.
func groupPoints(os []policy.ObjectPoints, g uint8) (func(lo, hi uint32) bool, bool) {
	any := false
	for _, o := range os {
		if o.Group == g && len(o.Points) > 0 {
			any = true
		}
	}
	return func(lo, hi uint32) bool {
		for x := lo; ; x++ {
			in := false
			for _, o := range os {
				if o.Group == g && o.Points.Contains(x) {
					in = true
					break
				}
			}
			if !in {
				return false
			}
			if x == hi {
				return true
			}
		}
	}, any
}

// firstHeaderOf reports whether header i is the first of its object in m.
func firstHeaderOf(m *dnp3.Message, i int) bool {
	h := &m.Objects[i]
	for j := range i {
		if o := &m.Objects[j]; o.Group == h.Group && o.Variation == h.Variation {
			return false
		}
	}
	return true
}

// coveredPoints counts the learned points that m's range headers of
// object gv name.
func coveredPoints(m *dnp3.Message, gv policy.GroupVar, learned policy.Ranges) uint64 {
	var n uint64
	for i := range m.Objects {
		h := &m.Objects[i]
		if h.Group != gv.Group || h.Variation != gv.Var || !h.HasRange || h.Prefix != 0 {
			continue
		}
		for _, r := range learned {
			lo, hi := max(r.Lo, h.Start), min(r.Hi, h.Stop)
			if lo <= hi {
				n += uint64(hi-lo) + 1
			}
		}
	}
	return n
}

func totalPoints(rs policy.Ranges) uint64 {
	var n uint64
	for _, r := range rs {
		n += uint64(r.Hi-r.Lo) + 1
	}
	return n
}
