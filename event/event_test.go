package event

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Times with nanoseconds, so that a decoder that rounds shows.
var (
	t0 = time.Date(2025, 3, 14, 9, 26, 53, 123456789, time.UTC)
	t1 = t0.Add(-90*time.Second + 1)        // nanoseconds 123456790
	t2 = t0.Add(-2*time.Second - 123456789) // whole seconds
)

func ptr[T any](v T) *T { return &v }

func sampleAlert() *Alert {
	return &Alert{
		V: V, Kind: KindAlert, Sensor: "tap1", Site: "plant1", Seq: 41, TS: t0,
		ID: 37, Rule: "pump3-setpoint", Severity: "critical", Category: "policy", Title: "Pump-3 setpoint out of range",
		Attack:    []string{"T0836", "T0855"},
		Proto:     "modbus",
		Transport: "rtu_over_tcp",
		Src:       &Endpoint{IP: "10.10.1.99", Port: 51000, MAC: "02:00:0a:0a:01:63"},
		Dst:       &Endpoint{IP: "10.10.1.20", Port: 502},
		VLAN:      20,
		Unit:      ptr(uint8(1)), FC: ptr(uint8(16)), FCName: "write_multiple_registers",
		Addr:     &Range{Lo: 5, Hi: 6},
		Values:   Values{500, -1.5},
		Expected: "100..200",
		Count:    3, First: t1, Last: t0, Frame: 1234,
		Evidence: Hex{0x01, 0x10, 0x00, 0x05, 0x00, 0x02, 0x04, 0x01, 0xf4, 0xff, 0xfe},
	}
}

func sampleDNP3Alert() *Alert {
	return &Alert{
		V: V, Kind: KindAlert, Sensor: "tap1", Site: "plant1", Seq: 42, TS: t0,
		ID: 42, Rule: "dnp3-restart", Severity: "high", Category: "dangerous-function", Title: "DNP3 cold restart",
		Attack:  []string{"T0816"},
		Proto:   "dnp3",
		Src:     &Endpoint{IP: "10.10.2.5", Port: 40122},
		Dst:     &Endpoint{IP: "10.10.2.20", Port: 20000},
		DNP3Src: ptr(uint16(1)), DNP3Dst: ptr(uint16(10)),
		FC: ptr(uint8(13)), FCName: "cold_restart",
		Count: 1, First: t0, Last: t0,
		Evidence: Hex{0xc3, 0x0d},
	}
}

func sampleStatus() *Status {
	return &Status{
		V: V, Kind: KindStatus, Sensor: "tap1", Site: "plant1", Seq: 42, TS: t0,
		State: StateDegraded, Version: "0.9.0", Uptime: 86400.25, Mode: "replay",
		Links:  []Link{{Iface: "eth1", State: "up", Drops: 12}, {Iface: "eth2", State: "down"}},
		Uplink: UplinkConnected, Reason: "eth2: link down",
		SpoolDepth: 3, SpoolBytes: 1536, SpoolDrops: 0,
		Unacked: Severities{Info: 1, Medium: 2, High: 1, Critical: 1},
	}
}

func sampleAsset() *Asset {
	return &Asset{
		V: V, Kind: KindAsset, Sensor: "tap1", Site: "plant1", Seq: 40, TS: t0,
		IP: "10.10.1.20", MAC: "02:00:0a:0a:01:14",
		Roles: []string{"slave"}, Protocols: []string{"modbus"},
		ModbusUnits: []uint8{0, 1, 2, 255},
		FirstSeen:   t2, LastSeen: t0,
		Vendor: "Schneider Electric", Product: "BMX P34 2020", Revision: "v3.20",
	}
}

func sampleDNP3Asset() *Asset {
	return &Asset{
		V: V, Kind: KindAsset, Sensor: "tap1", Site: "plant1", Seq: 43, TS: t0,
		IP: "fd00::20", Roles: []string{"outstation"}, Protocols: []string{"dnp3"},
		DNP3Addrs: []uint16{10, 11, 65519}, FirstSeen: t1, LastSeen: t0,
	}
}

func sampleStats() *Stats {
	return &Stats{
		V: V, Kind: KindStats, Sensor: "tap1", Site: "plant1", Seq: 42, TS: t0,
		Uptime: 3600.5, Packets: 1 << 33, Bytes: 1 << 40, KernelDrops: 7,
		DecodeErrors: map[string]uint64{"modbus": 2, "dnp3": 0},
		Messages:     map[string]uint64{"modbus": 123456, "dnp3": 789},
		Flows:        12, FlowsCreated: 40, FlowsEvicted: 1, Reassembly: 4096,
		Alerts:     Severities{Info: 5, Low: 4, Medium: 3, High: 2, Critical: 1},
		Suppressed: 9, SpoolDepth: 3, SpoolDrops: 1, MemBytes: 24 << 20,
		CPUTemp: ptr(51.5), Interval: 60,
	}
}

// message is what every message type implements.
type message interface {
	msgp.Marshaler
	msgp.Unmarshaler
}

// samples returns a fresh set of every kind of message, and an empty
// value of each for decoding into.
func samples() []struct {
	name      string
	msg, zero message
} {
	return []struct {
		name      string
		msg, zero message
	}{
		{"alert/modbus", sampleAlert(), new(Alert)},
		{"alert/dnp3", sampleDNP3Alert(), new(Alert)},
		{"alert/minimal", &Alert{V: V, Kind: KindAlert, Sensor: "s", Site: "x", Seq: 1, TS: t0, ID: 1, Rule: "r",
			Severity: "info", Category: "policy", Title: "t", Count: 1, First: t0, Last: t0}, new(Alert)},
		{"status", sampleStatus(), new(Status)},
		{"status/offline", &Status{V: V, Kind: KindStatus, Sensor: "s", Site: "x", TS: t0, State: StateOffline,
			Reason: "connection lost", Uplink: UplinkDisconnected}, new(Status)},
		{"asset/modbus", sampleAsset(), new(Asset)},
		{"asset/dnp3", sampleDNP3Asset(), new(Asset)},
		{"stats", sampleStats(), new(Stats)},
		{"stats/no-cpu-temp", &Stats{V: V, Kind: KindStats, Sensor: "s", Site: "x", TS: t0,
			DecodeErrors: map[string]uint64{}, Messages: map[string]uint64{}}, new(Stats)},
	}
}

// timeFields returns pointers to the time.Time fields of the struct p
// points to, by msgpack name.
func timeFields(p any) map[string]*time.Time {
	out := map[string]*time.Time{}
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Type() == reflect.TypeFor[time.Time]() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("msg"), ",")
			out[name] = f.Addr().Interface().(*time.Time)
		}
	}
	return out
}

// sameTimes checks that the times of got are those of want to the
// nanosecond, then sets them to want's, so that the rest can be compared
// with reflect.DeepEqual whatever the location of the decoded times.
func sameTimes(t *testing.T, got, want any) {
	t.Helper()
	g, w := timeFields(got), timeFields(want)
	if len(w) == 0 {
		t.Fatalf("%T has no time fields", want)
	}
	for name, wt := range w {
		gt := g[name]
		if !gt.Equal(*wt) || gt.Nanosecond() != wt.Nanosecond() {
			t.Errorf("%s: got %s, want %s", name, gt.Format(time.RFC3339Nano), wt.Format(time.RFC3339Nano))
		}
		*gt = *wt
	}
}

// TestRoundTrip: every kind decodes to what was encoded, times to the
// nanosecond, and nothing is left over.
func TestRoundTrip(t *testing.T) {
	for _, c := range samples() {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.msg.MarshalMsg(nil)
			if err != nil {
				t.Fatal(err)
			}
			rest, err := c.zero.UnmarshalMsg(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(rest) != 0 {
				t.Errorf("%d bytes left over", len(rest))
			}
			sameTimes(t, c.zero, c.msg)
			if !reflect.DeepEqual(c.zero, c.msg) {
				t.Errorf("decoded\n%+v\nwant\n%+v", c.zero, c.msg)
			}
		})
	}
}

// TestTimesDecodeAsUTC: decoded times are in UTC, as they were written
// (the encoder writes UTC; the decoder must not move them to the local
// zone, or tapwatch tail prints local offsets).
func TestTimesDecodeAsUTC(t *testing.T) {
	for _, c := range samples() {
		b, err := c.msg.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.zero.UnmarshalMsg(b); err != nil {
			t.Fatal(err)
		}
		var h Header
		if _, err := h.UnmarshalMsg(b); err != nil {
			t.Fatal(err)
		}
		fields := timeFields(c.zero)
		fields["header ts"] = &h.TS
		for name, tm := range fields {
			if tm.Location() != time.UTC {
				t.Fatalf("%s: %s decodes in location %q, want UTC (event.go needs //msgp:timezone utc)", c.name, name, tm.Location())
			}
		}
	}
}

// TestTimestampFormats: the three msgpack timestamp sizes (32, 64 and 96
// bits) and times before 1970 round-trip to the nanosecond.
func TestTimestampFormats(t *testing.T) {
	for _, ts := range []time.Time{
		time.Unix(1700000000, 0).UTC(),           // timestamp 32
		time.Unix(1700000000, 999999999).UTC(),   // timestamp 64
		time.Unix(1<<34, 1).UTC(),                // timestamp 96: seconds beyond 34 bits
		time.Unix(-1, 999999999).UTC(),           // timestamp 96: before 1970
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), // the zero time
	} {
		h := Header{V: V, Kind: KindStats, Sensor: "s", Site: "x", TS: ts}
		b, err := h.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got Header
		if _, err := got.UnmarshalMsg(b); err != nil {
			t.Fatalf("%s: %v", ts.Format(time.RFC3339Nano), err)
		}
		if !got.TS.Equal(ts) || got.TS.Nanosecond() != ts.Nanosecond() {
			t.Errorf("got %s, want %s", got.TS.Format(time.RFC3339Nano), ts.Format(time.RFC3339Nano))
		}
		// Python's msgpack and @msgpack/msgpack decode extension -1 as
		// a time; anything else would reach them as raw bytes.
		if _, err := msgp.ReadExtensionBytes(b[len(b)-timeExtLen(ts):], &msgp.RawExtension{Type: -1}); err != nil {
			t.Errorf("%s: not a timestamp extension (-1): %v", ts.Format(time.RFC3339Nano), err)
		}
	}
}

// timeExtLen is the encoded size of t as a msgpack timestamp.
func timeExtLen(t time.Time) int { return len(msgp.AppendTimeExt(nil, t)) }

// TestNonFiniteValues: msgpack keeps NaN and infinities as floats.
func TestNonFiniteValues(t *testing.T) {
	a := sampleAlert()
	a.Values = Values{math.NaN(), math.Inf(1), math.Inf(-1), 0}
	b, err := a.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got Alert
	if _, err := got.UnmarshalMsg(b); err != nil {
		t.Fatal(err)
	}
	v := got.Values
	if len(v) != 4 || !math.IsNaN(v[0]) || !math.IsInf(v[1], 1) || !math.IsInf(v[2], -1) || v[3] != 0 {
		t.Errorf("values %v", v)
	}
}

// TestPointerZero: a pointer to zero is sent (unit 0 is Modbus
// broadcast), a nil pointer is not.
func TestPointerZero(t *testing.T) {
	a := sampleAlert()
	a.Unit = ptr(uint8(0))
	b, err := a.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if keys := mapKeys(t, b); !slices.Contains(keys, "unit") || slices.Contains(keys, "dnp3_src") {
		t.Errorf("keys %v: want unit and no dnp3_src", keys)
	}
	var got Alert
	if _, err := got.UnmarshalMsg(b); err != nil {
		t.Fatal(err)
	}
	if got.Unit == nil || *got.Unit != 0 || got.DNP3Src != nil {
		t.Errorf("unit %v, dnp3_src %v", got.Unit, got.DNP3Src)
	}
}

// mapKeys returns the keys of the msgpack map b, in order.
func mapKeys(t *testing.T, b []byte) []string {
	t.Helper()
	n, b, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for range n {
		var k string
		if k, b, err = msgp.ReadStringBytes(b); err != nil {
			t.Fatal(err)
		}
		if b, err = msgp.Skip(b); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// newerAlert builds, by hand, the alert a newer sensor might send: every
// field this package knows (those of sampleAlert) with unknown fields of
// every msgpack type before, between and after them, and inside the
// nested maps.
func newerAlert() []byte {
	a := sampleAlert()
	var n uint32
	var body []byte
	field := func(name string) { n++; body = msgp.AppendString(body, name) }
	unknown := func(i int) {
		switch i % 12 {
		case 0:
			field("zone")
			body = msgp.AppendString(body, "north-pumphouse")
		case 1:
			field("context") // a nested map with a nested map and an array
			body = msgp.AppendMapHeader(body, 3)
			body = msgp.AppendString(body, "n")
			body = msgp.AppendInt64(body, -7)
			body = msgp.AppendString(body, "inner")
			body = msgp.AppendMapHeader(body, 1)
			body = msgp.AppendString(body, "ok")
			body = msgp.AppendBool(body, true)
			body = msgp.AppendString(body, "list")
			body = msgp.AppendArrayHeader(body, 2)
			body = msgp.AppendUint8(body, 1)
			body = msgp.AppendString(body, "two")
		case 2:
			field("tags") // an array of mixed types
			body = msgp.AppendArrayHeader(body, 5)
			body = msgp.AppendString(body, "x")
			body = msgp.AppendInt(body, 1)
			body = msgp.AppendNil(body)
			body = msgp.AppendFloat64(body, 2.5)
			body = msgp.AppendArrayHeader(body, 0)
		case 3:
			field("acked_at") // a timestamp extension
			body = msgp.AppendTimeExt(body, t0.Add(time.Hour))
		case 4:
			field("blob")
			body = msgp.AppendBytes(body, []byte{0, 1, 2, 0xff})
		case 5:
			field("note")
			body = msgp.AppendNil(body)
		case 6:
			field("score")
			body = msgp.AppendFloat32(body, 0.75)
		case 7:
			field("flag")
			body = msgp.AppendBool(body, false)
		case 8:
			field("offset")
			body = msgp.AppendInt64(body, math.MinInt64)
		case 9:
			field("big")
			body = msgp.AppendUint64(body, math.MaxUint64)
		case 10:
			field("custom") // an extension of another type
			var err error
			body, err = msgp.AppendExtension(body, &msgp.RawExtension{Type: 42, Data: []byte("opaque")})
			if err != nil {
				panic(err)
			}
		case 11:
			field("long") // a str 16
			body = msgp.AppendString(body, strings.Repeat("y", 300))
			field("series") // an array 16
			body = msgp.AppendArrayHeader(body, 20)
			for range 20 {
				body = msgp.AppendInt(body, 0)
			}
		}
	}
	endpoint := func(e *Endpoint) {
		body = msgp.AppendMapHeader(body, 5)
		body = msgp.AppendString(body, "vendor_oui") // unknown, first
		body = msgp.AppendString(body, "02:00:0a")
		body = msgp.AppendString(body, "ip")
		body = msgp.AppendString(body, e.IP)
		body = msgp.AppendString(body, "port")
		body = msgp.AppendUint16(body, e.Port)
		body = msgp.AppendString(body, "mac")
		body = msgp.AppendString(body, e.MAC)
		body = msgp.AppendString(body, "hostname") // unknown, last
		body = msgp.AppendMapHeader(body, 1)
		body = msgp.AppendString(body, "dns")
		body = msgp.AppendArrayHeader(body, 1)
		body = msgp.AppendString(body, "hmi-2.plant1")
	}
	known := []func(){
		func() { field("v"); body = msgp.AppendUint8(body, a.V) },
		func() { field("kind"); body = msgp.AppendString(body, a.Kind) },
		func() { field("sensor"); body = msgp.AppendString(body, a.Sensor) },
		func() { field("site"); body = msgp.AppendString(body, a.Site) },
		func() { field("seq"); body = msgp.AppendUint64(body, a.Seq) },
		func() { field("ts"); body = msgp.AppendTimeExt(body, a.TS) },
		func() { field("id"); body = msgp.AppendUint64(body, a.ID) },
		func() { field("rule"); body = msgp.AppendString(body, a.Rule) },
		func() { field("severity"); body = msgp.AppendString(body, a.Severity) },
		func() { field("category"); body = msgp.AppendString(body, a.Category) },
		func() { field("title"); body = msgp.AppendString(body, a.Title) },
		func() {
			field("attack")
			body = msgp.AppendArrayHeader(body, uint32(len(a.Attack)))
			for _, s := range a.Attack {
				body = msgp.AppendString(body, s)
			}
		},
		func() { field("proto"); body = msgp.AppendString(body, a.Proto) },
		func() { field("transport"); body = msgp.AppendString(body, a.Transport) },
		func() { field("src"); endpoint(a.Src) },
		func() {
			field("dst")
			body = msgp.AppendMapHeader(body, 2)
			body = msgp.AppendString(body, "port")
			body = msgp.AppendUint16(body, a.Dst.Port)
			body = msgp.AppendString(body, "ip")
			body = msgp.AppendString(body, a.Dst.IP)
		},
		func() { field("vlan"); body = msgp.AppendUint16(body, a.VLAN) },
		func() { field("unit"); body = msgp.AppendUint8(body, *a.Unit) },
		func() { field("fc"); body = msgp.AppendUint8(body, *a.FC) },
		func() { field("fc_name"); body = msgp.AppendString(body, a.FCName) },
		func() {
			field("addr")
			body = msgp.AppendMapHeader(body, 3)
			body = msgp.AppendString(body, "lo")
			body = msgp.AppendUint32(body, a.Addr.Lo)
			body = msgp.AppendString(body, "table") // unknown, between
			body = msgp.AppendString(body, "holding_registers")
			body = msgp.AppendString(body, "hi")
			body = msgp.AppendUint32(body, a.Addr.Hi)
		},
		func() {
			field("values")
			body = msgp.AppendArrayHeader(body, uint32(len(a.Values)))
			for _, v := range a.Values {
				body = msgp.AppendFloat64(body, v)
			}
		},
		func() { field("expected"); body = msgp.AppendString(body, a.Expected) },
		func() { field("count"); body = msgp.AppendUint64(body, a.Count) },
		func() { field("first"); body = msgp.AppendTimeExt(body, a.First) },
		func() { field("last"); body = msgp.AppendTimeExt(body, a.Last) },
		func() { field("frame"); body = msgp.AppendUint64(body, a.Frame) },
		func() { field("evidence"); body = msgp.AppendBytes(body, a.Evidence) },
	}
	// Two unknown fields first, one between each pair of known fields,
	// and the rest after the last.
	u := 0
	unknown(u)
	u++
	unknown(u)
	u++
	for _, k := range known {
		k()
		unknown(u)
		u++
	}
	for u < 40 {
		unknown(u)
		u++
	}
	return append(msgp.AppendMapHeader(nil, n), body...)
}

// TestOldReaderSkipsNewFields: a decoder of this version reads every
// field it knows from a message that also has fields it does not, of
// every type and wherever they are.
func TestOldReaderSkipsNewFields(t *testing.T) {
	b := newerAlert()
	keys := mapKeys(t, b)
	want := sampleAlert()
	for _, k := range []string{"v", "seq", "ts", "id", "unit", "evidence", "zone", "context", "acked_at", "custom"} {
		if !slices.Contains(keys, k) {
			t.Fatalf("the hand-built message lacks %q: %v", k, keys)
		}
	}
	if keys[0] == "v" || keys[len(keys)-1] == "evidence" {
		t.Fatalf("unknown fields must come first and last: %v", keys)
	}
	// The known fields, and the same field count, as sampleAlert encodes.
	enc, err := want.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, k := range keys {
		if slices.Contains(mapKeys(t, enc), k) {
			known = append(known, k)
		}
	}
	if !slices.Equal(known, mapKeys(t, enc)) {
		t.Fatalf("known fields %v, want those of Alert %v", known, mapKeys(t, enc))
	}

	var got Alert
	rest, err := got.UnmarshalMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes left over", len(rest))
	}
	sameTimes(t, &got, want)
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", &got, want)
	}

	var h Header
	if _, err := h.UnmarshalMsg(b); err != nil {
		t.Fatal(err)
	}
	if h.Seq != want.Seq || h.Kind != KindAlert || !h.TS.Equal(want.TS) {
		t.Errorf("header %+v", h)
	}
	// The generic decoder (tapwatch tail's fallback for unknown kinds)
	// takes it too.
	var sb strings.Builder
	if _, err := msgp.UnmarshalAsJSON(&sb, b); err != nil {
		t.Errorf("as JSON: %v", err)
	}
}

// TestHeader: Header decodes the head of every kind, and consumes the
// whole message.
func TestHeader(t *testing.T) {
	kinds := map[string]bool{}
	for _, c := range samples() {
		b, err := c.msg.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		var h Header
		rest, err := h.UnmarshalMsg(b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(rest) != 0 {
			t.Errorf("%s: %d bytes left over", c.name, len(rest))
		}
		// The header fields of the message, by reflection: every
		// message repeats them under the same names.
		m := reflect.ValueOf(c.msg).Elem()
		want := Header{
			V: uint8(m.FieldByName("V").Uint()), Kind: m.FieldByName("Kind").String(),
			Sensor: m.FieldByName("Sensor").String(), Site: m.FieldByName("Site").String(),
			Seq: m.FieldByName("Seq").Uint(), TS: m.FieldByName("TS").Interface().(time.Time),
		}
		sameTimes(t, &h, &want)
		if h != want {
			t.Errorf("%s: header %+v, want %+v", c.name, h, want)
		}
		kinds[h.Kind] = true
	}
	for _, k := range Kinds {
		if !kinds[k] {
			t.Errorf("kind %s not tested", k)
		}
	}
	// Every message type has the header's fields first, with the same
	// names and types.
	ht := reflect.TypeFor[Header]()
	for _, typ := range []reflect.Type{reflect.TypeFor[Alert](), reflect.TypeFor[Status](), reflect.TypeFor[Asset](), reflect.TypeFor[Stats]()} {
		for i := range ht.NumField() {
			hf, f := ht.Field(i), typ.Field(i)
			if hf.Name != f.Name || hf.Type != f.Type || hf.Tag != f.Tag {
				t.Errorf("%s field %d is %s %s `%s`, want the header's %s %s `%s`", typ.Name(), i, f.Name, f.Type, f.Tag, hf.Name, hf.Type, hf.Tag)
			}
		}
	}
}

// TestJSONNames: every field's JSON name is its msgpack name, so that
// tapwatch tail prints the wire schema.
func TestJSONNames(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Header](), reflect.TypeFor[Alert](), reflect.TypeFor[Status](), reflect.TypeFor[Asset](),
		reflect.TypeFor[Stats](), reflect.TypeFor[Endpoint](), reflect.TypeFor[Range](), reflect.TypeFor[Link](),
		reflect.TypeFor[Severities](),
	} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Tag.Get("msg") != f.Tag.Get("json") {
				t.Errorf("%s.%s: msg:%q but json:%q", typ.Name(), f.Name, f.Tag.Get("msg"), f.Tag.Get("json"))
			}
		}
	}
}

// TestAlertJSON: the JSON of an alert has the keys of its msgpack map;
// values that are not finite are null, evidence is hex, times are RFC
// 3339 with all nine digits of nanoseconds, and fields left empty are
// left out.
func TestAlertJSON(t *testing.T) {
	a := sampleAlert()
	a.Values = Values{1.5, math.NaN(), math.Inf(1), math.Inf(-1), 200, 1e21}
	j, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatalf("%v\n%s", err, j)
	}
	b, err := a.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := mapKeys(t, b)
	var jkeys []string
	for k := range m {
		jkeys = append(jkeys, k)
	}
	sort.Strings(keys)
	sort.Strings(jkeys)
	if !slices.Equal(keys, jkeys) {
		t.Errorf("JSON keys %v\nmsgpack keys %v", jkeys, keys)
	}
	for k, want := range map[string]string{
		"values":   `[1.5,null,null,null,200,1e+21]`,
		"evidence": `"0110000500020401f4fffe"`,
		"ts":       `"2025-03-14T09:26:53.123456789Z"`,
		"first":    `"2025-03-14T09:25:23.123456790Z"`,
		"unit":     `1`,
		"attack":   `["T0836","T0855"]`,
		"src":      `{"ip":"10.10.1.99","port":51000,"mac":"02:00:0a:0a:01:63"}`,
		"dst":      `{"ip":"10.10.1.20","port":502}`,
		"addr":     `{"lo":5,"hi":6}`,
	} {
		if got := string(m[k]); got != want {
			t.Errorf("%s: %s, want %s", k, got, want)
		}
	}

	// The same alert with only what every alert has.
	bare := &Alert{V: V, Kind: KindAlert, Sensor: "tap1", Site: "plant1", Seq: 7, TS: t0, ID: 7, Rule: "recon-sweep",
		Severity: "medium", Category: "reconnaissance", Title: "Scan", Attack: nil, Count: 1, First: t0, Last: t0,
		Values: Values{}, Evidence: Hex{}}
	j, err = json.Marshal(bare)
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"proto", "src", "dst", "vlan", "unit", "dnp3_src", "dnp3_dst", "fc", "fc_name", "addr", "values", "expected", "frame", "evidence"} {
		if v, ok := m[k]; ok {
			t.Errorf("%s: %s, want it left out", k, v)
		}
	}
	for _, k := range []string{"v", "kind", "sensor", "site", "seq", "ts", "id", "rule", "severity", "category", "title", "attack", "count", "first", "last"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing from %s", k, j)
		}
	}
	b, err = bare.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	// msgpack leaves out the same fields, except values and evidence:
	// msgp omits only nil slices, JSON empty ones too.
	keys = mapKeys(t, b)
	for _, k := range []string{"proto", "src", "dst", "vlan", "unit", "dnp3_src", "dnp3_dst", "fc", "fc_name", "addr", "expected", "frame"} {
		if slices.Contains(keys, k) {
			t.Errorf("msgpack has %s, want it left out", k)
		}
	}
}

// TestStatsJSON: the optional cpu_temp is left out when the board has no
// sensor, and present at 0 °C.
func TestStatsJSON(t *testing.T) {
	s := sampleStats()
	s.CPUTemp = nil
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(j), "cpu_temp") {
		t.Errorf("%s", j)
	}
	s.CPUTemp = ptr(0.0)
	if j, _ = json.Marshal(s); !strings.Contains(string(j), `"cpu_temp":0`) {
		t.Errorf("%s", j)
	}
}

// declared returns, for every array, map and bin field, a message that
// declares n elements in that field and holds none of them, with a value
// of the type to decode it into.
func declared(n uint32) map[string]struct {
	b    []byte
	zero msgp.Unmarshaler
} {
	msg := func(zero msgp.Unmarshaler, name string, lead byte) struct {
		b    []byte
		zero msgp.Unmarshaler
	} {
		b := msgp.AppendMapHeader(nil, 1)
		b = msgp.AppendString(b, name)
		b = append(b, lead, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		return struct {
			b    []byte
			zero msgp.Unmarshaler
		}{b, zero}
	}
	const arr, mp, bin = 0xdd, 0xdf, 0xc6 // array 32, map 32, bin 32
	out := map[string]struct {
		b    []byte
		zero msgp.Unmarshaler
	}{}
	for _, f := range []struct {
		zero msgp.Unmarshaler
		name string
		lead byte
	}{
		{new(Alert), "attack", arr}, {new(Alert), "values", arr}, {new(Alert), "evidence", bin},
		{new(Alert), "src", mp}, {new(Status), "links", arr}, {new(Status), "unacked", mp},
		{new(Asset), "roles", arr}, {new(Asset), "protocols", arr}, {new(Asset), "modbus_units", arr},
		{new(Asset), "dnp3_addrs", arr}, {new(Stats), "decode_errors", mp}, {new(Stats), "messages", mp},
	} {
		out[fmt.Sprintf("%T.%s", f.zero, f.name)] = msg(f.zero, f.name, f.lead)
	}
	return out
}

// TestDeclaredLengths: a message that declares more elements than it
// holds is refused without allocating room for them. Where that check is
// missing, a 13-byte message that declares 2^32-1 elements makes the
// decoder allocate tens of gigabytes, and a Go program that runs out of
// memory cannot recover: tapwatch tail, or any Go consumer, dies. 2^20
// elements are declared here, which costs at most some 50 MB where the
// check is missing (//msgp:limit in event.go).
func TestDeclaredLengths(t *testing.T) {
	for name, m := range declared(1 << 20) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := m.zero.UnmarshalMsg(m.b)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: a %d-byte message declaring 2^20 elements decodes", name, len(m.b))
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: decoding a %d-byte message that declares 2^20 elements allocates %d bytes (%v); event.go needs a //msgp:limit",
				name, len(m.b), n, err)
		}
	}
}

// FuzzDecode: no input makes a decoder panic, and what decodes encodes
// and decodes again.
func FuzzDecode(f *testing.F) {
	for _, c := range samples() {
		b, err := c.msg.MarshalMsg(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add(newerAlert())
	f.Add([]byte{})
	f.Add([]byte{0x80})                            // an empty map
	f.Add([]byte{0xc0})                            // nil
	f.Add([]byte{0x81, 0xa2, 't', 's', 0xc0})      // ts: nil
	f.Add([]byte{0x81, 0xa1, 'v', 0xcd, 1, 0})     // v: 256
	f.Add([]byte{0x81, 0xa3, 's', 'r', 'c', 0x91}) // src: an array
	for _, m := range declared(1 << 20) {
		f.Add(m.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []message{new(Alert), new(Status), new(Asset), new(Stats), new(Header)} {
			if _, err := v.UnmarshalMsg(b); err != nil {
				continue
			}
			enc, err := v.MarshalMsg(nil)
			if err != nil {
				t.Fatalf("%T decoded but does not encode: %v", v, err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface().(message)
			if _, err := again.UnmarshalMsg(enc); err != nil {
				t.Fatalf("%T decoded, encoded, and does not decode again: %v", v, err)
			}
			if a, ok := v.(*Alert); ok {
				j := a.AppendJSON(nil)
				if m, err := json.Marshal(a); !json.Valid(j) || err != nil || string(m) != string(j) {
					t.Fatalf("alert JSON %s\njson.Marshal %s, %v", j, m, err)
				}
			}
		}
	})
}

// TestAssetJSON: modbus_units is an array of numbers in JSON, as
// docs/events.md says, not base64.
func TestAssetJSON(t *testing.T) {
	a := Asset{V: V, Kind: KindAsset, IP: "10.10.1.20", ModbusUnits: []uint8{1, 247}, Roles: []string{"slave"}, Protocols: []string{"modbus"}}
	for _, v := range []any{a, &a} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		u, ok := m["modbus_units"].([]any)
		if !ok || len(u) != 2 || u[0] != 1.0 || u[1] != 247.0 || m["ip"] != "10.10.1.20" || m["kind"] != "asset" {
			t.Errorf("JSON %s", b)
		}
	}
	b, _ := json.Marshal(Asset{IP: "10.10.1.10"})
	if strings.Contains(string(b), "modbus_units") {
		t.Errorf("no units: %s", b)
	}
}
