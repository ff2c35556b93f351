package rules

import (
	"encoding/hex"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tapwatch/tapwatch/dpi"
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
	ID       uint64   // unique within a run; a folded summary repeats the ID of its first occurrence
	Rule     string   // rule or detector id
	Severity Severity //
	Category string   // "policy" for rules; detectors set theirs
	Title    string   // the rule's name
	Attack   []string // ATT&CK for ICS technique ids

	Proto          Proto
	Transport      dpi.Transport  // how the message's flow carries it; 0 when the alert is about no flow
	Src, Dst       netip.AddrPort // sender and receiver of the message that fired
	SrcMAC, DstMAC [6]byte
	VLAN           uint16

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
}

// MarshalJSON encodes the alert as one JSON object with the field names of
// the wire schema.
func (a *Alert) MarshalJSON() ([]byte, error) { return a.AppendJSON(nil), nil }

// AppendJSON appends the alert as a JSON object (no newline) to b. Fields
// that do not apply are left out: unit for DNP3, dnp3_src and dnp3_dst for
// Modbus, vlan when untagged, addr, values, expected when empty. Times are
// RFC 3339 with nanoseconds in UTC, evidence is hex, MACs are
// colon-separated, and values that are not finite numbers are null.
func (a *Alert) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, a.ID, 10)
	b = append(b, `,"rule":`...)
	b = appendJSONString(b, a.Rule)
	b = append(b, `,"severity":"`...)
	b = append(b, a.Severity.String()...)
	b = append(b, `","category":`...)
	b = appendJSONString(b, a.Category)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, a.Title)
	b = append(b, `,"attack":[`...)
	for i, t := range a.Attack {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, t)
	}
	b = append(b, ']')
	if a.Proto != 0 {
		b = append(b, `,"proto":"`...)
		b = append(b, a.Proto.String()...)
		b = append(b, '"')
	}
	if a.Transport != 0 {
		b = append(b, `,"transport":"`...)
		b = append(b, a.Transport.String()...)
		b = append(b, '"')
	}
	if a.Src.IsValid() {
		b = appendEndpoint(append(b, `,"src":`...), a.Src, a.SrcMAC)
	}
	if a.Dst.IsValid() {
		b = appendEndpoint(append(b, `,"dst":`...), a.Dst, a.DstMAC)
	}
	if a.VLAN != 0 {
		b = append(b, `,"vlan":`...)
		b = strconv.AppendUint(b, uint64(a.VLAN), 10)
	}
	switch a.Proto {
	case ProtoModbus:
		b = append(b, `,"unit":`...)
		b = strconv.AppendUint(b, uint64(a.Unit), 10)
	case ProtoDNP3:
		b = append(b, `,"dnp3_src":`...)
		b = strconv.AppendUint(b, uint64(a.LinkSrc), 10)
		b = append(b, `,"dnp3_dst":`...)
		b = strconv.AppendUint(b, uint64(a.LinkDst), 10)
	}
	if a.Proto != 0 {
		b = append(b, `,"fc":`...)
		b = strconv.AppendUint(b, uint64(a.FC), 10)
		b = append(b, `,"fc_name":`...)
		b = appendJSONString(b, a.FCName)
	}
	if len(a.FCs) > 0 {
		b = append(b, `,"fcs":[`...)
		for i, fc := range a.FCs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(fc), 10)
		}
		b = append(b, ']')
	}
	if a.HasAddr {
		b = append(b, `,"addr":{"lo":`...)
		b = strconv.AppendUint(b, uint64(a.AddrLo), 10)
		b = append(b, `,"hi":`...)
		b = strconv.AppendUint(b, uint64(a.AddrHi), 10)
		b = append(b, '}')
	}
	if len(a.Values) > 0 {
		b = append(b, `,"values":[`...)
		for i, v := range a.Values {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNumber(b, v)
		}
		b = append(b, ']')
	}
	if a.Expected != "" {
		b = append(b, `,"expected":`...)
		b = appendJSONString(b, a.Expected)
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendUint(b, a.Count, 10)
	b = append(b, `,"first":"`...)
	b = a.First.UTC().AppendFormat(b, alertTimeLayout)
	b = append(b, `","last":"`...)
	b = a.Last.UTC().AppendFormat(b, alertTimeLayout)
	b = append(b, '"')
	if a.Frame != 0 {
		b = append(b, `,"frame":`...)
		b = strconv.AppendUint(b, a.Frame, 10)
	}
	if len(a.Evidence) > 0 {
		b = append(b, `,"evidence":"`...)
		b = hex.AppendEncode(b, a.Evidence)
		b = append(b, '"')
	}
	return append(b, '}')
}

// alertTimeLayout is that of the operations log: RFC 3339 with all nine
// digits of nanoseconds.
const alertTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func appendEndpoint(b []byte, ap netip.AddrPort, mac [6]byte) []byte {
	b = append(b, `{"ip":"`...)
	b = ap.Addr().AppendTo(b)
	b = append(b, `","port":`...)
	b = strconv.AppendUint(b, uint64(ap.Port()), 10)
	if mac != ([6]byte{}) {
		b = append(b, `,"mac":"`...)
		b = appendMAC(b, mac)
		b = append(b, '"')
	}
	return append(b, '}')
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

func appendNumber(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// formatBounds writes value bounds as min..max; an open side is left
// empty ("..200", "100..").
func formatBounds(bd *Bounds) string {
	s := ""
	if !math.IsInf(bd.Min, -1) {
		s = formatFloat(bd.Min)
	}
	s += ".."
	if !math.IsInf(bd.Max, 1) {
		s += formatFloat(bd.Max)
	}
	return s
}

// formatRate writes a rate as the limit it sets.
func formatRate(r *Rate) string {
	return "at most " + strconv.FormatUint(uint64(r.Max), 10) + " per " + formatDuration(r.Per)
}
