package sensor

import (
	"math"
	"strconv"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/proto"
)

// writeDNP3 writes one line for an application fragment, a link-only frame, or
// a run of bytes that were no DNP3.
func (o *OpsWriter) writeDNP3(f *dpi.Flow, fromServer bool, m *dnp3.Message) {
	b := o.head(o.buf[:0], m.Time, m.Frame, proto.DNP3.String(), f, fromServer)
	if m.Kind != dnp3.KindGarbage {
		l := &m.Link
		b = append(b, `,"link_src":`...)
		b = strconv.AppendUint(b, uint64(l.Src), 10)
		b = append(b, `,"link_dst":`...)
		b = strconv.AppendUint(b, uint64(l.Dst), 10)
		b = append(b, `,"link_fc":`...)
		b = strconv.AppendUint(b, uint64(l.Func), 10)
		b = append(b, `,"link_fc_name":"`...)
		b = append(b, dnp3.LinkFunctionName(l.PRM, l.Func)...)
		b = append(b, '"')
	}
	switch m.Dir {
	case dnp3.Request:
		b = append(b, `,"dir":"request"`...)
	case dnp3.Response:
		b = append(b, `,"dir":"response"`...)
	case dnp3.Unsolicited:
		b = append(b, `,"dir":"unsolicited"`...)
	}
	switch m.Kind {
	case dnp3.KindLink:
		b = append(b, `,"kind":"link"`...)
	case dnp3.KindGarbage:
		b = append(b, `,"kind":"garbage"`...)
		if m.Truncated {
			b = append(b, `,"after_loss":true`...)
		}
	case dnp3.KindApplication:
		b = o.dnp3App(b, m)
	}
	if m.SBO != dnp3.SBONone {
		b = append(b, `,"sbo":"`...)
		b = append(b, sboNames[m.SBO]...)
		b = append(b, '"')
	}
	if m.Malformed != 0 {
		b = append(b, `,"malformed":"`...)
		b = append(b, m.Malformed.String()...)
		b = append(b, '"')
		if m.Anomalies&^(1<<m.Malformed) != 0 {
			b = append(b, `,"anomalies":[`...)
			first := true
			for r := dnp3.Reason(1); r < 64; r++ {
				if m.Anomalies&(1<<r) == 0 {
					continue
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = append(b, '"')
				b = append(b, r.String()...)
				b = append(b, '"')
			}
			b = append(b, ']')
		}
	}
	o.end(b)
}

var sboNames = [...]string{
	dnp3.SBOMatched:  "matched",
	dnp3.SBONoSelect: "no_select",
	dnp3.SBOMismatch: "mismatch",
	dnp3.SBOLate:     "late",
}

func (o *OpsWriter) dnp3App(b []byte, m *dnp3.Message) []byte {
	b = append(b, `,"fc":`...)
	b = strconv.AppendUint(b, uint64(m.FC), 10)
	b = append(b, `,"fc_name":"`...)
	b = append(b, dnp3.FunctionName(m.FC)...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, uint64(m.Seq), 10)
	if m.Segments > 1 {
		b = append(b, `,"segments":`...)
		b = strconv.AppendUint(b, uint64(m.Segments), 10)
	}
	if m.CON {
		b = append(b, `,"con":true`...)
	}
	if m.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	if m.HasIIN {
		b = append(b, `,"iin":[`...)
		first := true
		for bit := uint(0); bit < 16; bit++ {
			if m.IIN&(1<<bit) == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, dnp3.IINName(bit)...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if len(m.Objects) == 0 {
		return b
	}
	m.DecodePoints()
	b = append(b, `,"objects":[`...)
	for i := range m.Objects {
		h := &m.Objects[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"g":`...)
		b = strconv.AppendUint(b, uint64(h.Group), 10)
		b = append(b, `,"v":`...)
		b = strconv.AppendUint(b, uint64(h.Variation), 10)
		b = append(b, `,"q":`...)
		b = strconv.AppendUint(b, uint64(h.Qualifier), 10)
		if h.HasRange {
			b = append(b, `,"start":`...)
			b = strconv.AppendUint(b, uint64(h.Start), 10)
			b = append(b, `,"stop":`...)
			b = strconv.AppendUint(b, uint64(h.Stop), 10)
		}
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, uint64(h.Count), 10)
		if h.NumPoints > 0 && h.FirstPoint >= 0 && h.FirstPoint+h.NumPoints <= len(m.Points) {
			b = append(b, `,"points":[`...)
			for j, p := range m.Points[h.FirstPoint : h.FirstPoint+h.NumPoints] {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendPoint(b, h.Group, &p)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if m.MorePoints > 0 {
		b = append(b, `,"more_points":`...)
		b = strconv.AppendInt(b, int64(m.MorePoints), 10)
	}
	return b
}

// appendPoint writes one point. Which fields appear depends on the group:
// commands (12, 13, 41, 43) carry their control fields, octet strings and
// file objects (70, 110, 111) their bytes in hex, the rest a value.
func appendPoint(b []byte, group uint8, p *dnp3.Point) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, uint64(p.Index), 10)
	switch group {
	case 70, 110, 111, 120:
		b = append(b, `,"octets":"`...)
		for _, c := range p.Octets {
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		}
		b = append(b, '"')
	case 12, 13:
		b = append(b, `,"code":`...)
		b = strconv.AppendUint(b, uint64(p.Code), 10)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, uint64(p.Count), 10)
		b = append(b, `,"on_ms":`...)
		b = strconv.AppendUint(b, uint64(p.OnTime), 10)
		b = append(b, `,"off_ms":`...)
		b = strconv.AppendUint(b, uint64(p.OffTime), 10)
		b = append(b, `,"status":`...)
		b = strconv.AppendUint(b, uint64(p.Status), 10)
	default:
		b = append(b, `,"value":`...)
		b = appendNumber(b, p.Value)
		if group == 41 || group == 43 {
			b = append(b, `,"status":`...)
			b = strconv.AppendUint(b, uint64(p.Status), 10)
		}
	}
	if p.HasFlags {
		b = append(b, `,"flags":`...)
		b = strconv.AppendUint(b, uint64(p.Flags), 10)
	}
	if p.HasTime {
		b = append(b, `,"time":"`...)
		b = time.UnixMilli(int64(p.Time)).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendNumber writes v as a JSON number; JSON has no NaN or infinities,
// so those become null.
func appendNumber(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
