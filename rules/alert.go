package rules

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Bounds of what an alert copies from the message that fired it.
const (
	MaxAlertValues   = 16 // values carried by an alert
	MaxAlertEvidence = 64 // bytes of PDU or fragment carried by an alert
)

// Alert categories.
const (
	CategoryPolicy = "policy" // a rule of the policy file
	CategorySystem = "system" // about tapwatch itself: the alert budget
)

// BudgetRule is the rule id of the alert that reports alerts suppressed by
// the global budget.
const BudgetRule = "alert-budget"

// AlertSink receives alerts. The engine never changes an alert after
// handing it over, so a sink may keep it. Alert is called from the
// pipeline's goroutine and must not block it for long.
type AlertSink interface {
	Alert(a *Alert)
}

// Alert is one alert, with the fields of the wire schema (DESIGN.md).
//
// An alert is emitted when it first fires (Count 1). Repeats of the same
// rule between the same hosts about the same thing within the engine's
// window are folded: at the end of the window the engine emits the alert
// again, with the same ID, the total Count, the time of the Last
// occurrence and the function codes folded (FCs). A consumer that sees an
// ID again updates the alert it has. A repeat that does more than the
// occurrence the alert reports (a write after reads) is not folded: it
// ends the alert's window and becomes an alert of its own.
type Alert struct {
	ID       uint64          // unique within a run; a folded summary repeats the ID of its first occurrence
	Rule     string          // rule or detector id
	Severity policy.Severity //
	Category string          // "policy" for rules; detectors set theirs
	Title    string          // the rule's name
	Attack   []string        // ATT&CK for ICS technique ids

	Proto          proto.ID
	Transport      dpi.Transport  // how the message's flow carries it; 0 when the alert is about no flow
	Src, Dst       netip.AddrPort // sender and receiver of the message that fired
	SrcMAC, DstMAC [6]byte
	VLAN           uint16
	// The names the policy's assets give Src and Dst; empty when none.
	SrcAsset, DstAsset string

	Unit             uint8  // Modbus
	LinkSrc, LinkDst uint16 // DNP3
	FC               uint8
	FCName           string
	FCs              []uint8 // a summary's: the function codes of the occurrences it folded, FC among them; nil when they were all FC
	HasAddr          bool
	AddrLo, AddrHi   uint32    // Modbus address range, DNP3 point index range
	Values           []float64 // at most MaxAlertValues: the offending values of a value rule, otherwise the written values
	Expected         string    // what the rule allows, such as "100..200" or "at most 20 per 1s"

	Count       uint64 // occurrences folded into this alert
	Summary     bool   // this is the alert reported again with its repeats, not a new one
	First, Last time.Time
	Frame       uint64 // capture frame of the first occurrence
	Evidence    []byte // the first bytes (at most MaxAlertEvidence) of the PDU or fragment

	ad Adapter // Proto's adapter, for Event; nil: the default one
}

// appendMAC appends mac as six colon-separated hex pairs.
func appendMAC(b []byte, mac [6]byte) []byte {
	const digits = "0123456789abcdef"
	for i, c := range mac {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, digits[c>>4], digits[c&15])
	}
	return b
}

// formatBounds writes value bounds as min..max; an open side is left
// empty ("..200", "100..").
func formatBounds(bd *policy.Bounds) string {
	s := ""
	if !math.IsInf(bd.Min, -1) {
		s = policy.FormatFloat(bd.Min)
	}
	s += ".."
	if !math.IsInf(bd.Max, 1) {
		s += policy.FormatFloat(bd.Max)
	}
	return s
}

// formatRate writes a rate as the limit it sets.
func formatRate(r *policy.Rate) string {
	return "at most " + strconv.FormatUint(uint64(r.Max), 10) + " per " + policy.FormatDuration(r.Per)
}

// assetNames finds the name the policy's assets give an address: the
// asset with that one address, else the one with the narrowest network
// holding it (the first listed, between equals).
type assetNames struct {
	ips  map[netip.Addr]string
	nets []assetNet // narrowest first
}

type assetNet struct {
	pf   netip.Prefix
	name string
}

func newAssetNames(p *policy.Policy) assetNames {
	n := assetNames{ips: map[netip.Addr]string{}}
	for _, a := range p.Assets {
		for _, pf := range a.Prefixes {
			if pf.IsSingleIP() {
				if _, dup := n.ips[pf.Addr().Unmap()]; !dup {
					n.ips[pf.Addr().Unmap()] = a.Name
				}
			} else {
				n.nets = append(n.nets, assetNet{pf, a.Name})
			}
		}
	}
	slices.SortStableFunc(n.nets, func(x, y assetNet) int { return y.pf.Bits() - x.pf.Bits() })
	return n
}

// of is the name of a, or "".
func (n *assetNames) of(a netip.Addr) string {
	a = a.Unmap()
	if name, ok := n.ips[a]; ok {
		return name
	}
	for _, x := range n.nets {
		if x.pf.Contains(a) {
			return x.name
		}
	}
	return ""
}
