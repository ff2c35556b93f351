package rules

import (
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/event"
)

// dnp3Adapter is the Adapter of DNP3.
type dnp3Adapter struct{}

func (dnp3Adapter) Proto() Proto { return ProtoDNP3 }

// Op: the built-in detectors see every message (link-only frames and
// garbage carry the CRC and framing anomalies); the rules only
// application fragments.
func (dnp3Adapter) Op(op *Op, f *dpi.Flow, from dpi.Side, m any) Use {
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

func (dnp3Adapter) HasFunction(op *Op) bool {
	return op.DNP3 == nil || op.DNP3.Kind == dnp3.KindApplication
}

func (dnp3Adapter) Classes(fc uint8) OpSet { return 1 << DNP3Class(fc) }

// Match: the link addresses.
func (dnp3Adapter) Match(m *Match, op *Op) bool {
	if len(m.LinkSrc) > 0 && !m.LinkSrc.Contains(uint32(op.LinkSrc)) {
		return false
	}
	return len(m.LinkDst) == 0 || m.LinkDst.Contains(uint32(op.LinkDst))
}

// MatchPayload: the object groups and point indexes, decoding the points
// only when a header names them by index.
func (dnp3Adapter) MatchPayload(m *Match, op *Op) bool {
	if len(m.Groups) > 0 || len(m.Points) > 0 {
		return objectsMatch(m, op.DNP3)
	}
	return true
}

// Endpoint: the endpoint's link addresses, of the source or the
// destination.
func (dnp3Adapter) Endpoint(ep *Endpoint, op *Op, isSrc bool) bool {
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
func (dnp3Adapter) Values(r *Rule, op *Op, v *Violations) {
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
func (a dnp3Adapter) Unclassed(op *Op) bool {
	return a.HasFunction(op) && op.FC != dnp3.FuncConfirm
}

func (dnp3Adapter) Device(op *Op) uint16 { return op.LinkDst }

// Alert: the link addresses, and the fragment as evidence, or the raw
// bytes of garbage and bad frames, for the detectors. A DNP3 alert has
// an address range only when a value rule found one.
func (dnp3Adapter) Alert(a *Alert, op *Op, addr bool) {
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

func (dnp3Adapter) Wire(ev *event.Alert, a *Alert) {
	s, d := a.LinkSrc, a.LinkDst
	ev.DNP3Src, ev.DNP3Dst = &s, &d
}

// FromDNP3 fills op from a decoded DNP3 message on flow f; fromServer says
// which end of f sent it.
func (op *Op) FromDNP3(f *dpi.Flow, fromServer bool, m *dnp3.Message) {
	*op = Op{
		Time: m.Time, Frame: m.Frame, Proto: ProtoDNP3, Flow: f,
		Src: f.Client, Dst: f.Server, Request: m.Dir == dnp3.Request,
		FC: m.FC, LinkSrc: m.Link.Src, LinkDst: m.Link.Dst,
		DNP3: m,
	}
	if fromServer {
		op.Src, op.Dst = f.Server, f.Client
	}
	if op.Request && m.Kind == dnp3.KindApplication {
		op.Class = DNP3Class(m.FC)
	}
}

// DNP3Class is the class of a DNP3 request function (IEEE 1815-2012
// table 4-1).
func DNP3Class(fc uint8) OpClass {
	switch fc {
	case dnp3.FuncRead:
		return OpRead
	case dnp3.FuncWrite:
		return OpWrite
	case dnp3.FuncSelect, dnp3.FuncOperate, dnp3.FuncDirectOperate, dnp3.FuncDirectOperateNR,
		dnp3.FuncImmedFreeze, dnp3.FuncImmedFreezeNR, dnp3.FuncFreezeClear, dnp3.FuncFreezeClearNR,
		dnp3.FuncFreezeAtTime, dnp3.FuncFreezeAtTimeNR:
		return OpControl
	case dnp3.FuncColdRestart, dnp3.FuncWarmRestart:
		return OpRestart
	case dnp3.FuncInitializeData, dnp3.FuncInitializeApplication, dnp3.FuncStartApplication,
		dnp3.FuncStopApplication, dnp3.FuncSaveConfiguration, dnp3.FuncEnableUnsolicited,
		dnp3.FuncDisableUnsolicited, dnp3.FuncAssignClass, dnp3.FuncRecordCurrentTime,
		dnp3.FuncActivateConfig:
		return OpConfig
	case dnp3.FuncDelayMeasure:
		return OpDiagnostic
	case dnp3.FuncOpenFile, dnp3.FuncCloseFile, dnp3.FuncDeleteFile, dnp3.FuncGetFileInfo,
		dnp3.FuncAuthenticateFile, dnp3.FuncAbortFile:
		return OpFile
	case dnp3.FuncAuthenticateRequest, dnp3.FuncAuthenticateError:
		return OpAuth
	}
	return 0
}
