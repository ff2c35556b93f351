package uplink

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
)

// Tail's output formats.
const (
	FormatJSON = "json" // one JSON object a line, the wire schema's field names (the default)
	FormatText = "text" // for people: an alert in up to three lines, the other kinds in one
)

// maxNamed bounds the assets a text tail remembers, to name the ends of
// alerts and to print an asset again only when its line changed: a plant
// has hundreds, not millions.
const maxNamed = 1 << 14

// textFormatter renders messages for people. An alert takes up to three
// lines: when, the severity, the rule and the title; who did what to
// which device, with the value against what was expected; the ATT&CK
// techniques. Status, asset and stats messages take one line each; a
// status only when the sensor's state, reason, links or uplink changed,
// or its alerts were acknowledged (a status follows every new alert, to
// count it as unacknowledged, which the alert line has said already); an
// asset only when what its line says changed (the sensor sends it again
// to refresh last_seen, which the line does not show, and after a
// restart). It remembers the roles of the assets it has seen, to say what
// the ends of an alert are.
type textFormatter struct {
	colour bool
	alerts bool // alerts are printed: a status that only counts one more unacknowledged is not
	now    func() time.Time
	hosts  map[string]hostSeen   // site/sensor/ip → its role, its line
	status map[string]statusSeen // site/sensor → the last status
}

type hostSeen struct {
	role string // "Modbus master"
	line string // the asset's line as last printed, after the time; "" if none was
}

type statusSeen struct {
	what    string // state, reason, links and uplink, as printed
	unacked bool
}

func newTextFormatter(colour, alerts bool) *textFormatter {
	return &textFormatter{colour: colour, alerts: alerts, now: time.Now, hosts: map[string]hostSeen{}, status: map[string]statusSeen{}}
}

// clean makes a string from the broker safe to print on a terminal:
// control characters (a newline, an escape sequence) become '?'.
func clean(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '?'
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 }

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

func cleanEndpoint(e *event.Endpoint) *event.Endpoint {
	if e == nil {
		return nil
	}
	c := *e
	c.IP, c.MAC = clean(c.IP), clean(c.MAC)
	return &c
}

// sanitized is a copy of a decoded message whose text fields are clean:
// whoever can publish to the broker cannot move the cursor or fake a line
// on the security center's terminal. (JSON escapes them anyway.)
func sanitized(v any) any {
	switch m := v.(type) {
	case *event.Alert:
		c := *m
		c.Site, c.Sensor, c.Rule, c.Severity, c.Title = clean(m.Site), clean(m.Sensor), clean(m.Rule), clean(m.Severity), clean(m.Title)
		c.Proto, c.FCName, c.Expected, c.Attack = clean(m.Proto), clean(m.FCName), clean(m.Expected), cleanAll(m.Attack)
		c.Src, c.Dst = cleanEndpoint(m.Src), cleanEndpoint(m.Dst)
		return &c
	case *event.Status:
		c := *m
		c.Site, c.Sensor, c.State, c.Reason, c.Uplink = clean(m.Site), clean(m.Sensor), clean(m.State), clean(m.Reason), clean(m.Uplink)
		c.Links = make([]event.Link, len(m.Links))
		for i, l := range m.Links {
			c.Links[i] = event.Link{Iface: clean(l.Iface), State: clean(l.State), Drops: l.Drops}
		}
		return &c
	case *event.Asset:
		c := *m
		c.Site, c.Sensor, c.IP, c.MAC = clean(m.Site), clean(m.Sensor), clean(m.IP), clean(m.MAC)
		c.Vendor, c.Product, c.Revision = clean(m.Vendor), clean(m.Product), clean(m.Revision)
		c.Roles, c.Protocols, c.Services = cleanAll(m.Roles), cleanAll(m.Protocols), cleanAll(m.Services)
		return &c
	case *event.Stats:
		c := *m
		c.Site, c.Sensor = clean(m.Site), clean(m.Sensor)
		return &c
	}
	return v
}

var severityColour = map[string]string{
	"critical": "\x1b[1;37;41m", "high": "\x1b[1;31m", "medium": "\x1b[1;33m", "low": "\x1b[36m", "info": "\x1b[2m",
}

func (f *textFormatter) format(v any, retained bool) []byte {
	var b strings.Builder
	switch m := sanitized(v).(type) {
	case *event.Alert:
		f.alert(&b, m)
	case *event.Status:
		var w strings.Builder
		w.WriteString(strings.ToUpper(m.State))
		if m.Reason != "" {
			w.WriteString(" (" + m.Reason + ")")
		}
		for _, l := range m.Links {
			fmt.Fprintf(&w, "; %s %s", l.Iface, l.State)
		}
		if m.Uplink != "" {
			w.WriteString("; uplink " + m.Uplink)
		}
		unacked := m.Unacked.String()
		k := m.Site + "/" + m.Sensor
		prev, seen := f.status[k]
		if seen || len(f.status) < maxNamed {
			f.status[k] = statusSeen{w.String(), unacked != ""}
		}
		acked := seen && prev.unacked && unacked == ""
		if seen && !retained && prev.what == w.String() && !acked && (f.alerts || prev.unacked == (unacked != "")) {
			return nil
		}
		ts := m.TS
		if !retained && m.State == event.StateOffline && m.Reason == "connection lost" {
			// The Last Will: composed when the sensor connected, sent by
			// the broker when the connection broke, which is now.
			ts = f.now()
		}
		f.head(&b, ts, "status", m.Site, m.Sensor, retained)
		b.WriteString(w.String())
		for _, l := range m.Links {
			if l.Drops > 0 {
				fmt.Fprintf(&b, "; %d dropped by the kernel on %s", l.Drops, l.Iface)
			}
		}
		if m.SpoolDepth > 0 {
			fmt.Fprintf(&b, "; %d spooled", m.SpoolDepth)
		}
		switch {
		case unacked != "":
			b.WriteString("; unacknowledged: " + unacked)
		case acked:
			b.WriteString("; alerts acknowledged at the box")
		}
	case *event.Asset:
		var w strings.Builder
		w.WriteString(m.IP + ": " + assetRole(m))
		if len(m.Protocols) > 0 {
			w.WriteString(", " + strings.Join(m.Protocols, " and "))
		}
		if len(m.ModbusUnits) > 0 {
			w.WriteString(", units " + joinInts(m.ModbusUnits))
		}
		if len(m.DNP3Addrs) > 0 {
			w.WriteString(", DNP3 addresses " + joinInts(m.DNP3Addrs))
		}
		if len(m.Services) > 0 {
			w.WriteString(", serves " + strings.Join(m.Services, ", "))
		}
		for _, kv := range [][2]string{{"vendor", m.Vendor}, {"product", m.Product}, {"revision", m.Revision}} {
			if kv[1] != "" {
				w.WriteString(", " + kv[0] + " " + kv[1])
			}
		}
		if m.MAC != "" {
			w.WriteString(", MAC " + m.MAC)
		}
		if f.hosts[hostKey(m)].line == w.String() {
			return nil
		}
		f.remember(m, w.String())
		f.head(&b, m.TS, "asset", m.Site, m.Sensor, retained)
		b.WriteString(w.String())
	case *event.Stats:
		f.head(&b, m.TS, "stats", m.Site, m.Sensor, retained)
		flows := fmt.Sprintf("%d flows (%d open now)", m.FlowsCreated, m.Flows)
		if m.FlowsCreated == 0 && m.Flows > 0 {
			flows = fmt.Sprintf("%d flows open now", m.Flows) // a sensor older than flows_created
		}
		fmt.Fprintf(&b, "%d packets, %d Modbus and %d DNP3 messages, %s; alerts: %s",
			m.Packets, m.Messages[proto.Modbus.String()], m.Messages[proto.DNP3.String()], flows, orElse(m.Alerts.String(), "none"))
		if n := m.DecodeErrors[proto.Modbus.String()] + m.DecodeErrors[proto.DNP3.String()]; n > 0 {
			fmt.Fprintf(&b, "; %d malformed", n)
		}
		if m.KernelDrops > 0 {
			fmt.Fprintf(&b, "; %d dropped by the kernel", m.KernelDrops)
		}
		if m.Suppressed > 0 {
			fmt.Fprintf(&b, "; %d suppressed by the alert budget", m.Suppressed)
		}
		if m.SpoolDrops > 0 {
			fmt.Fprintf(&b, "; %d dropped from a full spool", m.SpoolDrops)
		}
	}
	return []byte(b.String())
}

// head writes "15:04:05 kind site/sensor " (the date too when it is not
// today).
func (f *textFormatter) head(b *strings.Builder, ts time.Time, kind, site, sensor string, retained bool) {
	b.WriteString(f.when(ts) + " " + kind + " " + site + "/" + sensor + " ")
	if retained {
		b.WriteString("(retained) ")
	}
}

func (f *textFormatter) when(ts time.Time) string {
	ts = ts.Local()
	if y, m, d := ts.Date(); y == f.now().Year() && m == f.now().Month() && d == f.now().Day() {
		return ts.Format("15:04:05")
	}
	return ts.Format("2006-01-02 15:04:05")
}

func (f *textFormatter) alert(b *strings.Builder, a *event.Alert) {
	sev := strings.ToUpper(a.Severity)
	if c := severityColour[a.Severity]; f.colour && c != "" {
		sev = c + sev + "\x1b[0m"
	}
	fmt.Fprintf(b, "%s %s %s/%s %s: %s", f.when(a.TS), sev, a.Site, a.Sensor, a.Rule, a.Title)
	if a.Count > 1 {
		// The span of the repeats, not the time of the first: the first
		// and last are the packets' times, from the sensor's clock.
		if span := a.Last.Sub(a.First); span < time.Second {
			fmt.Fprintf(b, " (%d times within a second)", a.Count)
		} else {
			fmt.Fprintf(b, " (%d times in %s)", a.Count, span.Round(time.Second))
		}
	}
	// Who did what to which device.
	who := f.end(a, a.Src, a.DNP3Src, false)
	to := f.end(a, a.Dst, a.DNP3Dst, true)
	if who != "" || to != "" {
		b.WriteString("\n    " + orElse(who, "unknown") + " → " + orElse(to, "unknown"))
		if what := alertWhat(a); what != "" {
			b.WriteString(": " + what)
		}
		if a.Expected != "" {
			b.WriteString("; expected " + a.Expected)
		}
	}
	if len(a.Attack) > 0 {
		b.WriteString("\n    ATT&CK")
		for i, id := range a.Attack {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" " + id)
			if n := event.TechniqueName(id); n != "" {
				b.WriteString(" " + n)
			}
		}
	}
}

// end names one end of an alert: its address, the Modbus unit (for the
// device end) or the DNP3 link address, and its role when known.
func (f *textFormatter) end(a *event.Alert, e *event.Endpoint, link *uint16, device bool) string {
	if e == nil {
		return ""
	}
	s := e.IP
	if device && a.Unit != nil {
		s += " unit " + strconv.Itoa(int(*a.Unit))
	}
	if link != nil {
		s += " link " + strconv.Itoa(int(*link))
	}
	if r := f.hosts[a.Site+"/"+a.Sensor+"/"+e.IP].role; r != "" {
		s += " (" + r + ")"
	}
	return s
}

// note takes from a message that is not printed what later lines use: an
// asset's role.
func (f *textFormatter) note(v any) {
	if a, ok := v.(*event.Asset); ok {
		f.remember(sanitized(a).(*event.Asset), "")
	}
}

func hostKey(a *event.Asset) string { return a.Site + "/" + a.Sensor + "/" + a.IP }

// remember keeps an asset's role, and the line printed for it (if line
// is not empty).
func (f *textFormatter) remember(a *event.Asset, line string) {
	k := hostKey(a)
	h, ok := f.hosts[k]
	if !ok && len(f.hosts) >= maxNamed {
		return
	}
	h.role = assetRole(a)
	if line != "" {
		h.line = line
	}
	f.hosts[k] = h
}

// assetRole says what an asset is, from its roles: "Modbus master",
// "Modbus server and DNP3 outstation".
func assetRole(a *event.Asset) string {
	var out []string
	for _, r := range a.Roles {
		switch r {
		case "master":
			switch {
			case len(a.Protocols) == 1 && a.Protocols[0] == proto.Modbus.String():
				out = append(out, "Modbus master")
			case len(a.Protocols) == 1 && a.Protocols[0] == proto.DNP3.String():
				out = append(out, "DNP3 master")
			default:
				out = append(out, "master")
			}
		case "slave":
			out = append(out, "Modbus server")
		case "outstation":
			out = append(out, "DNP3 outstation")
		default:
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return "host"
	}
	return strings.Join(out, " and ")
}

// alertWhat is what the message that fired did: the function, the
// addresses or points, and the values written.
func alertWhat(a *event.Alert) string {
	var parts []string
	if a.FCName != "" && a.FCName != "unknown" { // unknown: a message too malformed to have one
		s := a.FCName
		if a.FC != nil {
			s += " (fc " + strconv.Itoa(int(*a.FC))
			for i, fc := range a.FCs { // a summary that folded other functions
				sep := ", "
				if i == 0 {
					sep = "; folded fc "
				}
				s += sep + strconv.Itoa(int(fc))
			}
			s += ")"
		}
		parts = append(parts, s)
	}
	if a.Addr != nil {
		what := "points "
		if a.Proto == proto.Modbus.String() || a.Unit != nil {
			what = modbusTable(a.FC) + " "
		}
		if a.Addr.Lo == a.Addr.Hi {
			parts = append(parts, what+strconv.FormatUint(uint64(a.Addr.Lo), 10))
		} else {
			parts = append(parts, fmt.Sprintf("%s%d-%d", what, a.Addr.Lo, a.Addr.Hi))
		}
	}
	if len(a.Values) > 0 {
		var vs []string
		for i, v := range a.Values {
			if i == 8 {
				vs = append(vs, fmt.Sprintf("… (%d values)", len(a.Values)))
				break
			}
			vs = append(vs, strconv.FormatFloat(v, 'g', -1, 64))
		}
		word := "value "
		if len(a.Values) > 1 {
			word = "values "
		}
		parts = append(parts, word+strings.Join(vs, " "))
	}
	return strings.Join(parts, ", ")
}

// modbusTable is the table a Modbus function code addresses.
func modbusTable(fc *uint8) string {
	if fc == nil {
		return "address"
	}
	switch *fc {
	case 1, 5, 15:
		return "coil"
	case 2:
		return "discrete input"
	case 4:
		return "input register"
	case 3, 6, 16, 22, 23, 24:
		return "holding register"
	}
	return "address"
}

// notice renders a line of Tail's own about a sensor's stats.
func (f *textFormatter) notice(n *statsNotice) []byte {
	every := duration(time.Duration(n.Interval * float64(time.Second)))
	silence := duration(time.Duration(n.Silence * float64(time.Second)))
	who := clean(n.Site) + "/" + clean(n.Sensor)
	if n.Kind == noticeStatsResumed {
		return []byte(fmt.Sprintf("%s RESUMED %s: stats again, after %s without", f.when(n.TS), who, silence))
	}
	word := "OVERDUE"
	if f.colour {
		word = severityColour["high"] + word + "\x1b[0m"
	}
	why := "the sensor may be hung, or cut off from the broker"
	if !n.willAt.IsZero() {
		why = "its connection broke at " + f.when(n.willAt) + " (its Last Will came then)"
	}
	return []byte(fmt.Sprintf("%s %s %s: no stats for %s, expected every %s: %s", f.when(n.TS), word, who, silence, every, why))
}

// duration says d to the second (to the tenth below 10 s), without the
// zeros of whole minutes and hours: "1m", "2m31s", "1h".
func duration(d time.Duration) string {
	if d >= 10*time.Second {
		d = d.Round(time.Second)
	} else {
		d = d.Round(100 * time.Millisecond)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// orElse is s, or def when s is empty.
func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinInts[T uint8 | uint16](xs []T) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, strconv.Itoa(int(x)))
	}
	return strings.Join(parts, ",")
}
