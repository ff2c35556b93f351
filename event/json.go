package event

import (
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeLayout is how the JSON of an alert writes its times: RFC 3339 in
// UTC with all nine digits of nanoseconds, as the operations log does.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// MarshalJSON writes the alert as AppendJSON does, so that encoding/json
// (tapwatch tail) and tapwatch replay print the same bytes.
func (a Alert) MarshalJSON() ([]byte, error) { return a.AppendJSON(nil), nil }

// AppendJSON appends the alert as one JSON object (no newline) to b, with
// the keys of its msgpack map in the order of the struct. Fields that are
// left out in msgpack are left out here, and so are empty values and
// evidence; attack is [] when there is none. Times are in TimeLayout,
// evidence is hex, and values that are not finite numbers are null.
// Strings are escaped as encoding/json escapes them, <, > and & included,
// so that json.Marshal, which escapes those in what MarshalJSON returns,
// prints these bytes unchanged.
func (a *Alert) AppendJSON(b []byte) []byte {
	b = strconv.AppendUint(append(b, `{"v":`...), uint64(a.V), 10)
	b = appendString(appendKey(b, "kind"), a.Kind)
	b = appendString(appendKey(b, "sensor"), a.Sensor)
	b = appendString(appendKey(b, "site"), a.Site)
	b = strconv.AppendUint(appendKey(b, "seq"), a.Seq, 10)
	b = appendTime(appendKey(b, "ts"), a.TS)
	b = strconv.AppendUint(appendKey(b, "id"), a.ID, 10)
	b = appendString(appendKey(b, "rule"), a.Rule)
	b = appendString(appendKey(b, "severity"), a.Severity)
	b = appendString(appendKey(b, "category"), a.Category)
	b = appendString(appendKey(b, "title"), a.Title)
	b = append(appendKey(b, "attack"), '[')
	for i, t := range a.Attack {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, t)
	}
	b = append(b, ']')
	if a.Proto != "" {
		b = appendString(appendKey(b, "proto"), a.Proto)
	}
	if a.Transport != "" {
		b = appendString(appendKey(b, "transport"), a.Transport)
	}
	if a.Src != nil {
		b = a.Src.appendJSON(appendKey(b, "src"))
	}
	if a.Dst != nil {
		b = a.Dst.appendJSON(appendKey(b, "dst"))
	}
	if a.VLAN != 0 {
		b = strconv.AppendUint(appendKey(b, "vlan"), uint64(a.VLAN), 10)
	}
	if a.Unit != nil {
		b = strconv.AppendUint(appendKey(b, "unit"), uint64(*a.Unit), 10)
	}
	if a.DNP3Src != nil {
		b = strconv.AppendUint(appendKey(b, "dnp3_src"), uint64(*a.DNP3Src), 10)
	}
	if a.DNP3Dst != nil {
		b = strconv.AppendUint(appendKey(b, "dnp3_dst"), uint64(*a.DNP3Dst), 10)
	}
	if a.FC != nil {
		b = strconv.AppendUint(appendKey(b, "fc"), uint64(*a.FC), 10)
	}
	if a.FCName != "" {
		b = appendString(appendKey(b, "fc_name"), a.FCName)
	}
	if len(a.FCs) > 0 {
		b = append(appendKey(b, "fcs"), '[')
		for i, fc := range a.FCs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(fc), 10)
		}
		b = append(b, ']')
	}
	if a.Addr != nil {
		b = append(appendKey(b, "addr"), `{"lo":`...)
		b = strconv.AppendUint(b, uint64(a.Addr.Lo), 10)
		b = append(b, `,"hi":`...)
		b = strconv.AppendUint(b, uint64(a.Addr.Hi), 10)
		b = append(b, '}')
	}
	if len(a.Values) > 0 {
		b = a.Values.appendJSON(appendKey(b, "values"))
	}
	if a.Expected != "" {
		b = appendString(appendKey(b, "expected"), a.Expected)
	}
	b = strconv.AppendUint(appendKey(b, "count"), a.Count, 10)
	b = appendTime(appendKey(b, "first"), a.First)
	b = appendTime(appendKey(b, "last"), a.Last)
	if a.Frame != 0 {
		b = strconv.AppendUint(appendKey(b, "frame"), a.Frame, 10)
	}
	if len(a.Evidence) > 0 {
		b = a.Evidence.appendJSON(appendKey(b, "evidence"))
	}
	return append(b, '}')
}

func (e *Endpoint) appendJSON(b []byte) []byte {
	b = append(b, `{"ip":`...)
	b = appendString(b, e.IP)
	b = append(b, `,"port":`...)
	b = strconv.AppendUint(b, uint64(e.Port), 10)
	if e.MAC != "" {
		b = appendString(appendKey(b, "mac"), e.MAC)
	}
	if e.Asset != "" {
		b = appendString(appendKey(b, "asset"), e.Asset)
	}
	return append(b, '}')
}

// appendJSON appends the bytes as a hex string.
func (h Hex) appendJSON(b []byte) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, h)
	return append(b, '"')
}

// appendJSON appends the values as an array, with null for NaN and
// infinities.
func (vs Values) appendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
	}
	return append(b, ']')
}

// appendKey appends a comma and "key":. The keys are ours and need no
// escaping.
func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// control characters, DEL, <, >, &, U+2028 and U+2029 are written as
// \u escapes.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, "\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&15])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
