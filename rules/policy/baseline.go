package policy

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/internal/yamlpos"
)

// A baseline is the baseline section of a policy file: what a learner saw
// while the plant ran normally (see learn.Learner). The engine turns it into
// the baseline-* detectors of the catalogue:
//
//	baseline:
//	  margin: 0.1       # value ranges are widened by 10% of their width (at least 1) on each side
//	  rate_factor: 3    # write rates above 3× the learned maximum alert
//	  conversations:
//	    - src: master-10-10-1-10
//	      dst: plc-10-10-1-20
//	      proto: modbus
//	      unit: 1
//	      fc: [read_holding_registers, write_single_register]
//	      read: {holding_registers: "0-19"}
//	      write: {holding_registers: 5}
//	      values:
//	        - {table: holding_registers, addr: 5, min: 120, max: 180}
//	      writes_per_minute: 2
//	  network:
//	    hosts:
//	      - {host: plc-10-10-1-20, mac: "02:00:00:00:00:14"}
//	    links:
//	      - {src: master-10-10-1-10, dst: plc-10-10-1-20, port: tcp/502, service: modbus}
//	      - {src: hmi-10-10-1-10, dst: 10.10.1.255, port: udp/137, service: netbios}
//
// The masters are the sources of the conversations. The network section
// is what crossed the tap whatever its protocol: the MACs each host
// claimed its address with in ARP, and the links, each a client talking
// to a server's port, with the service they carried.

// Defaults of a baseline.
const (
	DefaultMargin     = 0.1
	DefaultRateFactor = 3.0
)

// Baseline is the learned behaviour of a plant.
type Baseline struct {
	Margin        float64 // a learned value range min..max is widened by Margin×(max-min), at least 1, on each side
	RateFactor    float64 // writes per minute above RateFactor × the learned maximum alert
	Conversations []Conversation
	// Network says the baseline has a network section: Hosts and Links
	// were learned, so a host, MAC or link outside them is new. A
	// baseline without one (learned before tapwatch learned the network)
	// raises no net-* alert.
	Network bool
	Hosts   []NetHost
	Links   []NetLink
}

// NetHost is a host of the network section: the MACs it claimed its
// address with in ARP.
type NetHost struct {
	Addr netip.Addr
	MACs []MAC
}

// MAC is an Ethernet address.
type MAC [6]byte

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// NetLink is a client talking to a port of a server, and the service
// that carried (service.Unknown when nothing named it).
type NetLink struct {
	Src, Dst netip.Addr // client and server
	UDP      bool       // UDP, not TCP
	Port     uint16     // the server's
	Service  service.ID
}

// LinkKey is what names a link: a baseline has at most one link per key.
type LinkKey struct {
	Src, Dst netip.Addr
	UDP      bool
	Port     uint16
}

// Key is the link's key.
func (l *NetLink) Key() LinkKey { return LinkKey{Src: l.Src, Dst: l.Dst, UDP: l.UDP, Port: l.Port} }

// PortText writes a transport and port as the network section does:
// tcp/502, udp/123.
func PortText(udp bool, port uint16) string {
	if udp {
		return "udp/" + strconv.Itoa(int(port))
	}
	return "tcp/" + strconv.Itoa(int(port))
}

// Conversation is what one master did with one device over one protocol.
type Conversation struct {
	Proto    proto.ID
	Src, Dst netip.Addr // master and device
	Units    CodeSet    // Modbus unit ids addressed
	LinkSrc  Ranges     // DNP3 link addresses of the master
	LinkDst  Ranges     // DNP3 link addresses of the outstation
	FC       CodeSet    // request function codes
	// Modbus addresses read and written, by table.
	Read, Write [TableHoldingRegisters + 1]Ranges
	Objects     []ObjectPoints // DNP3 objects of requests
	Values      []ValueRange   // written values
	// What the device answered, learned from its responses: the Modbus
	// addresses whose reads it answered with data, by table, and the
	// DNP3 objects and points it reported (responses and unsolicited
	// responses). Empty when none was learned (a baseline written before
	// they were): then nothing is checked against them.
	Answered [TableHoldingRegisters + 1]Ranges
	Reported []ObjectPoints
	// WritesPerMinute is the most write and control requests seen in one
	// minute; 0: none.
	WritesPerMinute uint32
	// MaxGap is the longest time between two requests of a conversation
	// that polls (MinPollRequests or more while learning); 0: not a
	// polling conversation, never reported silent.
	MaxGap time.Duration
}

// tableField is a conversation's field of Modbus address ranges by
// table, with its key in the file; objectField one of DNP3 objects.
type tableField struct {
	k  string
	rs *[TableHoldingRegisters + 1]Ranges
}

type objectField struct {
	k  string
	os *[]ObjectPoints
}

// tableFields and objectFields are c's fields of each kind, in the order
// the file writes them.
func (c *Conversation) tableFields() []tableField {
	return []tableField{{"read", &c.Read}, {"write", &c.Write}, {"answered", &c.Answered}}
}

func (c *Conversation) objectFields() []objectField {
	return []objectField{{"objects", &c.Objects}, {"reported", &c.Reported}}
}

// MinPollRequests is how many requests learning must see of a
// conversation to take its longest gap as its polling rhythm.
const MinPollRequests = 10

// PairKey is what names a conversation: its master, its device and its
// protocol. A baseline has at most one conversation per key.
type PairKey struct {
	Src, Dst netip.Addr
	Proto    proto.ID
}

// ObjectPoints is a DNP3 object group and variation with the point
// indexes requests named; no points: the requests named none (class
// reads, "all points").
type ObjectPoints struct {
	GroupVar
	Points Ranges
}

// ValueRange is the range of values written to one Modbus address
// (Table set) or one DNP3 point of a group (Group set).
type ValueRange struct {
	Table    Table
	Group    uint8
	At       uint32 // address or point index
	Min, Max float64
}

// Widen applies the margin to a learned range: the bounds a written value
// must keep.
func (b *Baseline) Widen(v *ValueRange) Bounds {
	m := math.Max((v.Max-v.Min)*b.Margin, 1)
	return Bounds{Min: v.Min - m, Max: v.Max + m}
}

// ---- decoding ----

var convFields = []string{"src", "dst", "proto", "unit", "link_src", "link_dst", "fc", "read", "write", "objects", "values", "writes_per_minute", "max_gap", "answered", "reported"}

func (d *decoder) baselineSection(p *Policy, n *node) {
	b := &Baseline{Margin: DefaultMargin, RateFactor: DefaultRateFactor}
	p.Baseline = b
	f := d.fields(n, "baseline", "margin", "rate_factor", "conversations", "network")
	if f == nil {
		return
	}
	if e, ok := f["margin"]; ok {
		b.Margin = d.float(e.val, "baseline.margin")
	}
	if e, ok := f["rate_factor"]; ok {
		b.RateFactor = d.float(e.val, "baseline.rate_factor")
	}
	if e, ok := f["conversations"]; ok && e.val.kind != kindNull && !d.streamed(b, e.val) {
		d.each(e.val, "baseline.conversations", "conversations", func(it *node, path string) {
			b.Conversations = append(b.Conversations, d.conversation(it, path))
		})
	}
	if e, ok := f["network"]; ok {
		b.Network = true
		d.network(b, e.val)
	}
}

func (d *decoder) network(b *Baseline, n *node) {
	if n.kind == kindNull {
		return
	}
	f := d.fields(n, "baseline.network", "hosts", "links")
	if f == nil {
		return
	}
	if e, ok := f["hosts"]; ok && e.val.kind != kindNull {
		d.each(e.val, "baseline.network.hosts", "{host, mac}", func(it *node, path string) {
			hf := d.fields(it, path, "host", "mac")
			if hf == nil {
				return
			}
			var h NetHost
			if x, ok := d.need(hf, it, path, "host", "give the host: an asset name or an IP address"); ok {
				h.Addr = d.hostAddr(x.val, path+".host")
			}
			if x, ok := d.need(hf, it, path, "mac", `give the MACs it claimed its address with, like "02:00:00:00:00:14"`); ok {
				for i, m := range d.list(x.val, path+".mac", "a MAC address") {
					h.MACs = append(h.MACs, d.mac(m, yamlpos.Elem(path+".mac", i)))
				}
			}
			b.Hosts = append(b.Hosts, h)
		})
	}
	if e, ok := f["links"]; ok && e.val.kind != kindNull {
		d.each(e.val, "baseline.network.links", "{src, dst, port, service}", func(it *node, path string) {
			lf := d.fields(it, path, "src", "dst", "port", "service")
			if lf == nil {
				return
			}
			var l NetLink
			const ends = "a link needs src (the client), dst (the server) and port"
			if x, ok := d.need(lf, it, path, "src", ends); ok {
				l.Src = d.hostAddr(x.val, path+".src")
			}
			if x, ok := d.need(lf, it, path, "dst", ends); ok {
				l.Dst = d.hostAddr(x.val, path+".dst")
			}
			if x, ok := d.need(lf, it, path, "port", ends); ok {
				l.UDP, l.Port = d.port(x.val, path+".port")
			}
			if x, ok := lf["service"]; ok {
				if s, ok := d.scalar(x.val, path+".service", "a service name"); ok {
					id, known := service.Lookup(strings.TrimSpace(s))
					if !known {
						d.errorf(x.val.pos, path+".service", "%q is not a service%s", s, yamlpos.Choices(s, service.Names()))
					}
					l.Service = id
				}
			}
			b.Links = append(b.Links, l)
		})
	}
}

func (d *decoder) mac(n *node, path string) MAC {
	s, ok := d.scalar(n, path, "a MAC address")
	if !ok {
		return MAC{}
	}
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		d.errorf(n.pos, path, "%q is not a MAC address, like 02:00:00:00:00:14", s)
		return MAC{}
	}
	return MAC(hw)
}

// port reads a transport and port: tcp/502, udp/123.
func (d *decoder) port(n *node, path string) (bool, uint16) {
	s, ok := d.scalar(n, path, "a port like tcp/502 or udp/123")
	if !ok {
		return false, 0
	}
	t, p, found := strings.Cut(strings.TrimSpace(s), "/")
	v, err := strconv.ParseUint(p, 10, 16)
	if !found || (t != "tcp" && t != "udp") || err != nil || v == 0 {
		d.errorf(n.pos, path, "%q is not a port like tcp/502 or udp/123", s)
		return false, 0
	}
	return t == "udp", uint16(v)
}

func (d *decoder) float(n *node, path string) float64 {
	if n.kind == kindScalar && n.isFloat {
		return n.num
	}
	s, ok := d.scalar(n, path, "a number")
	if !ok {
		return 0
	}
	v, err := parseBound(strings.TrimSpace(n.numeric()))
	if err != nil {
		d.errorf(n.pos, path, "%q is not a number", s)
	}
	return v
}

// The ...At forms of scalar, number and float read field key of the map
// at path, and make its path only to report an error: a learned
// baseline's value ranges are a hundred thousand maps of four fields
// (docs/performance.md, "Later (14)").

func (d *decoder) scalarAt(n *node, path, key, what string) (string, bool) {
	if n.kind == kindScalar {
		return n.text, true
	}
	return d.scalar(n, yamlpos.Field(path, key), what)
}

func (d *decoder) numberAt(n *node, path, key, what string, limit uint64) (uint64, bool) {
	if n.kind == kindScalar {
		if v, err := parseUint(n.numeric(), limit); err == nil {
			return v, true
		}
	}
	return d.number(n, yamlpos.Field(path, key), what, limit)
}

func (d *decoder) floatAt(n *node, path, key string) float64 {
	if n.kind == kindScalar && n.isFloat {
		return n.num
	}
	return d.float(n, yamlpos.Field(path, key))
}

// hostAddr reads an asset name (of an asset with one address) or an
// address.
func (d *decoder) hostAddr(n *node, path string) netip.Addr {
	s, ok := d.scalar(n, path, "an asset name or an IP address")
	if !ok {
		return netip.Addr{}
	}
	s = strings.TrimSpace(s)
	if a, ok := d.assets[s]; ok {
		if len(a.Prefixes) != 1 || !a.Prefixes[0].IsSingleIP() {
			d.errorf(n.pos, path, "asset %s must have exactly one ip to be a baseline endpoint", s)
			return netip.Addr{}
		}
		return a.Prefixes[0].Addr()
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		d.errorf(n.pos, path, "%q is not an asset or an IP address", s)
		return netip.Addr{}
	}
	return ip.Unmap()
}

func (d *decoder) conversation(n *node, path string) Conversation {
	var c Conversation
	f := d.fields(n, path, convFields...)
	if f == nil {
		return c
	}
	if e, ok := d.need(f, n, path, "proto", "give proto: modbus or proto: dnp3"); ok {
		c.Proto = d.proto(e.val, path+".proto")
	}
	const ends = "a conversation needs src (the master) and dst (the device)"
	if e, ok := d.need(f, n, path, "src", ends); ok {
		c.Src = d.endpoint(e.val, path+".src", false)
	}
	if e, ok := d.need(f, n, path, "dst", ends); ok {
		c.Dst = d.endpoint(e.val, path+".dst", true)
	}
	modbusOnly := func(k string) bool {
		if c.Proto != proto.Modbus {
			d.errorf(f[k].pos, path+"."+k, "%s is a Modbus field: it needs proto: modbus", k)
			return false
		}
		return true
	}
	dnp3Only := func(k string) bool {
		if c.Proto != proto.DNP3 {
			d.errorf(f[k].pos, path+"."+k, "%s is a DNP3 field: it needs proto: dnp3", k)
			return false
		}
		return true
	}
	if e, ok := f["unit"]; ok && modbusOnly("unit") {
		c.Units = d.codes(e.val, path+".unit", "a Modbus unit id", 0)
	}
	if e, ok := f["link_src"]; ok && dnp3Only("link_src") {
		c.LinkSrc = d.ranges(e.val, path+".link_src", "a DNP3 link address", 0xFFFF)
	}
	if e, ok := f["link_dst"]; ok && dnp3Only("link_dst") {
		c.LinkDst = d.ranges(e.val, path+".link_dst", "a DNP3 link address", 0xFFFF)
	}
	if e, ok := f["fc"]; ok && c.Proto != 0 {
		fc := d.funcCodes(e.val, path+".fc", c.Proto)
		c.FC = *fc.Set(c.Proto)
	}
	for _, side := range c.tableFields() {
		e, ok := f[side.k]
		if !ok || !modbusOnly(side.k) {
			continue
		}
		tf := d.fields(e.val, path+"."+side.k, tableNames...)
		for ti, name := range tableNames {
			if x, ok := tf[name]; ok {
				side.rs[ti+1] = d.ranges(x.val, path+"."+side.k+"."+name, "a Modbus address", 0xFFFF)
			}
		}
	}
	for _, side := range c.objectFields() {
		if e, ok := f[side.k]; ok && dnp3Only(side.k) {
			*side.os = d.objectPoints(e.val, path+"."+side.k)
		}
	}
	if e, ok := f["values"]; ok && c.Proto != 0 && c.Proto != proto.Modbus && c.Proto != proto.DNP3 {
		d.errorf(e.pos, path+".values", "values are learned for Modbus and DNP3 only")
	} else if ok && c.Proto != 0 {
		d.each(e.val, path+".values", "value ranges", func(it *node, vp string) {
			c.Values = append(c.Values, d.valueRange(it, vp, c.Proto))
		})
	}
	if e, ok := f["writes_per_minute"]; ok {
		if v, ok := d.number(e.val, path+".writes_per_minute", "a count", math.MaxUint32); ok {
			c.WritesPerMinute = uint32(v)
		}
	}
	if e, ok := f["max_gap"]; ok {
		if v, ok := d.duration(e.val, path+".max_gap"); ok {
			c.MaxGap = v
		}
	}
	return c
}

// objectPoints decodes a list of DNP3 objects with their points:
// {group, points} entries.
func (d *decoder) objectPoints(n *node, path string) []ObjectPoints {
	var out []ObjectPoints
	d.each(n, path, "{group, points}", func(it *node, op string) {
		of := d.fields(it, op, "group", "points")
		if of == nil {
			return
		}
		var o ObjectPoints
		if g, ok := d.need(of, it, op, "group", "give the group, like 12/1"); ok {
			gs := d.groups(g.val, op+".group")
			if len(gs) == 1 {
				o.GroupVar = gs[0]
			} else if len(gs) > 1 {
				d.errorf(g.val.pos, op+".group", "give one group per entry")
			}
		}
		if p, ok := of["points"]; ok {
			o.Points = d.ranges(p.val, op+".points", "a DNP3 point index", math.MaxUint32)
		}
		out = append(out, o)
	})
	return out
}

func (d *decoder) valueRange(n *node, path string, p proto.ID) ValueRange {
	var v ValueRange
	var f map[string]entry
	if p == proto.Modbus {
		f = d.fields(n, path, "table", "addr", "min", "max")
	} else {
		f = d.fields(n, path, "group", "point", "min", "max")
	}
	if f == nil {
		return v
	}
	if e, ok := f["table"]; ok {
		if s, ok := d.scalarAt(e.val, path, "table", "a Modbus table"); ok {
			t, ok := tableAliases[s]
			if !ok {
				t = Table(index(tableNames, s) + 1)
			}
			if t == 0 {
				d.errorf(e.val.pos, path+".table", "%q is not a Modbus table%s", s, yamlpos.Choices(s, tableNames))
			}
			v.Table = t
		}
	}
	if e, ok := f["group"]; ok {
		if g, ok := d.numberAt(e.val, path, "group", "a DNP3 object group", 255); ok {
			v.Group = uint8(g)
		}
	}
	for _, k := range []string{"addr", "point"} {
		if e, ok := f[k]; ok {
			limit := uint64(0xFFFF)
			if k == "point" {
				limit = math.MaxUint32
			}
			if a, ok := d.numberAt(e.val, path, k, "an address", limit); ok {
				v.At = uint32(a)
			}
		}
	}
	const bounds = "a value range needs min and max"
	if e, ok := d.need(f, n, path, "min", bounds); ok {
		v.Min = d.floatAt(e.val, path, "min")
	}
	if e, ok := d.need(f, n, path, "max", bounds); ok {
		v.Max = d.floatAt(e.val, path, "max")
	}
	return v
}

// ---- validation ----

func (v *validator) baseline(b *Baseline) {
	if b.Margin < 0 || math.IsNaN(b.Margin) || math.IsInf(b.Margin, 0) {
		v.errorf("baseline.margin", "baseline.margin", "%s is not a margin (a fraction of the learned range, 0 or more, like 0.1)", FormatFloat(b.Margin))
	}
	if !(b.RateFactor >= 1) || math.IsInf(b.RateFactor, 0) {
		v.errorf("baseline.rate_factor", "baseline.rate_factor", "%s is not a rate factor (1 or more, like 3)", FormatFloat(b.RateFactor))
	}
	v.network(b)
	seen := map[PairKey]int{}
	for i := range b.Conversations {
		c := &b.Conversations[i]
		path := yamlpos.Elem("baseline.conversations", i)
		if c.Proto == 0 {
			v.errorf(path+".proto", path+".proto", "give proto: modbus or proto: dnp3")
		}
		if c.Proto != proto.Modbus && c.Proto != proto.DNP3 && (!c.Units.Empty() || len(c.LinkSrc) > 0 || len(c.LinkDst) > 0 || len(c.Objects) > 0 || len(c.Values) > 0 || len(c.Reported) > 0) {
			v.errorf(path, path, "a %s conversation has only fc, writes_per_minute and max_gap", c.Proto)
		}
		if !c.Src.IsValid() {
			v.errorf(path+".src", path+".src", "needs the master's address")
		}
		if !c.Dst.IsValid() {
			v.errorf(path+".dst", path+".dst", "needs the device's address")
		}
		k := PairKey{Src: c.Src, Dst: c.Dst, Proto: c.Proto}
		if j, dup := seen[k]; dup && c.Src.IsValid() && c.Dst.IsValid() {
			v.errorf(path, path, "the same conversation as baseline.conversations[%d]; merge them", j)
		} else {
			seen[k] = i
		}
		if c.Proto == proto.Modbus && (len(c.LinkSrc) > 0 || len(c.LinkDst) > 0 || len(c.Objects) > 0 || len(c.Reported) > 0) {
			v.errorf(path, path, "a Modbus conversation has no DNP3 fields (link_src, link_dst, objects, reported)")
		}
		if c.MaxGap < 0 {
			v.errorf(path+".max_gap", path+".max_gap", "%s is not a gap: give a positive duration, like 10s", FormatDuration(c.MaxGap))
		}
		if c.Proto == proto.DNP3 && !c.Units.Empty() {
			v.errorf(path+".unit", path+".unit", "unit is a Modbus field")
		}
		for t := TableCoils; t <= TableHoldingRegisters; t++ {
			if c.Proto != proto.Modbus && (len(c.Read[t]) > 0 || len(c.Write[t]) > 0 || len(c.Answered[t]) > 0) {
				v.errorf(path, path, "only a Modbus conversation has Modbus tables (read, write, answered)")
				break
			}
			v.ranges(path+".read."+t.String(), c.Read[t], 0xFFFF)
			v.ranges(path+".write."+t.String(), c.Write[t], 0xFFFF)
			v.ranges(path+".answered."+t.String(), c.Answered[t], 0xFFFF)
		}
		v.ranges(path+".link_src", c.LinkSrc, 0xFFFF)
		v.ranges(path+".link_dst", c.LinkDst, 0xFFFF)
		for _, side := range c.objectFields() {
			for j, o := range *side.os {
				op := yamlpos.Elem(path+"."+side.k, j)
				v.ranges(op+".points", o.Points, math.MaxUint32)
				for _, p := range (*side.os)[:j] {
					if p.GroupVar == o.GroupVar {
						v.errorf(op, op, "object %s is listed twice", GroupVarText(o.GroupVar))
					}
				}
			}
		}
		for j, x := range c.Values {
			vp := yamlpos.Elem(path+".values", j)
			switch {
			case c.Proto == proto.Modbus && (x.Table < TableCoils || x.Table > TableHoldingRegisters):
				v.errorf(vp+".table", vp, "needs a Modbus table")
			case c.Proto == proto.Modbus && x.At > 0xFFFF:
				v.errorf(vp+".addr", vp, "%d is not a Modbus address", x.At)
			case c.Proto == proto.DNP3 && (x.Table != 0 || x.Group == 0):
				v.errorf(vp+".group", vp, "needs a DNP3 object group")
			case math.IsNaN(x.Min) || math.IsNaN(x.Max):
				v.errorf(vp, vp, "NaN is not a bound")
			case x.Min > x.Max:
				v.errorf(vp+".min", vp+".min", "min %s is above max %s", FormatFloat(x.Min), FormatFloat(x.Max))
			}
		}
	}
}

func (v *validator) network(b *Baseline) {
	hosts := map[netip.Addr]int{}
	for i, h := range b.Hosts {
		path := yamlpos.Elem("baseline.network.hosts", i)
		if !h.Addr.IsValid() {
			v.errorf(path+".host", path+".host", "needs the host's address")
		} else if j, dup := hosts[h.Addr]; dup {
			v.errorf(path, path, "the same host as baseline.network.hosts[%d]; merge them", j)
		} else {
			hosts[h.Addr] = i
		}
		for j, m := range h.MACs {
			if m == (MAC{}) {
				v.errorf(yamlpos.Elem(path+".mac", j), path+".mac", "00:00:00:00:00:00 is no host's MAC")
			}
		}
	}
	links := map[LinkKey]int{}
	for i := range b.Links {
		l := &b.Links[i]
		path := yamlpos.Elem("baseline.network.links", i)
		if !l.Src.IsValid() || !l.Dst.IsValid() {
			v.errorf(path, path, "needs the client's and the server's addresses")
			continue
		}
		if l.Port == 0 {
			v.errorf(path+".port", path+".port", "needs the server's port")
		}
		if j, dup := links[l.Key()]; dup {
			v.errorf(path, path, "the same link as baseline.network.links[%d]; keep one", j)
		} else {
			links[l.Key()] = i
		}
	}
}

// GroupVarText writes a group and variation as a policy does: 12, 12/1.
func GroupVarText(g GroupVar) string {
	if g.Var == 0 {
		return strconv.Itoa(int(g.Group))
	}
	return fmt.Sprintf("%d/%d", g.Group, g.Var)
}

// ---- formatting ----

func (p *Policy) formatBaseline(b *bytes.Buffer) {
	bl := p.Baseline
	if bl == nil {
		return
	}
	names := map[netip.Addr]string{}
	for _, a := range p.Assets {
		if len(a.Prefixes) == 1 && a.Prefixes[0].IsSingleIP() {
			if _, dup := names[a.Prefixes[0].Addr()]; !dup {
				names[a.Prefixes[0].Addr()] = a.Name
			}
		}
	}
	host := func(a netip.Addr) string {
		if n, ok := names[a]; ok {
			return quote(n)
		}
		return quote(a.String())
	}
	b.WriteString("\n# What was learned: anything else raises a baseline-* alert.\nbaseline:\n")
	fmt.Fprintf(b, "  margin: %s\n  rate_factor: %s\n  conversations:", FormatFloat(bl.Margin), FormatFloat(bl.RateFactor))
	if len(bl.Conversations) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for i := range bl.Conversations {
		c := &bl.Conversations[i]
		fmt.Fprintf(b, "    - src: %s\n      dst: %s\n      proto: %s\n", host(c.Src), host(c.Dst), c.Proto)
		if !c.Units.Empty() {
			fmt.Fprintf(b, "      unit: %s\n", flowList(CodeTerms(&c.Units)))
		}
		if len(c.LinkSrc) > 0 {
			fmt.Fprintf(b, "      link_src: %s\n", flowList(RangeTerms(c.LinkSrc)))
		}
		if len(c.LinkDst) > 0 {
			fmt.Fprintf(b, "      link_dst: %s\n", flowList(RangeTerms(c.LinkDst)))
		}
		if !c.FC.Empty() {
			m := Match{Proto: c.Proto}
			*m.FC.Set(c.Proto) = c.FC
			fmt.Fprintf(b, "      fc: %s\n", flowList(FCTerms(&m)))
		}
		for _, side := range c.tableFields() {
			var f []string
			for t := TableCoils; t <= TableHoldingRegisters; t++ {
				if len(side.rs[t]) > 0 {
					f = append(f, t.String()+": "+flowList(RangeTerms(side.rs[t])))
				}
			}
			if len(f) > 0 {
				fmt.Fprintf(b, "      %s: {%s}\n", side.k, strings.Join(f, ", "))
			}
		}
		for _, side := range c.objectFields() {
			if len(*side.os) == 0 {
				continue
			}
			fmt.Fprintf(b, "      %s:\n", side.k)
			for _, o := range *side.os {
				g := GroupVarText(o.GroupVar)
				if o.Var != 0 {
					g = strconv.Quote(g)
				}
				if len(o.Points) > 0 {
					fmt.Fprintf(b, "        - {group: %s, points: %s}", g, flowList(RangeTerms(o.Points)))
				} else {
					fmt.Fprintf(b, "        - {group: %s}", g)
				}
				if n := dnp3.GroupName(o.Group); n != "" {
					fmt.Fprintf(b, "  # %s", n)
				}
				b.WriteString("\n")
			}
		}
		if len(c.Values) > 0 {
			b.WriteString("      values:\n")
			for _, x := range c.Values {
				if c.Proto == proto.Modbus {
					fmt.Fprintf(b, "        - {table: %s, addr: %d, min: %s, max: %s}\n", x.Table, x.At, FormatFloat(x.Min), FormatFloat(x.Max))
				} else {
					fmt.Fprintf(b, "        - {group: %d, point: %d, min: %s, max: %s}\n", x.Group, x.At, FormatFloat(x.Min), FormatFloat(x.Max))
				}
			}
		}
		if c.WritesPerMinute > 0 {
			fmt.Fprintf(b, "      writes_per_minute: %d\n", c.WritesPerMinute)
		}
		if c.MaxGap > 0 {
			fmt.Fprintf(b, "      max_gap: %s\n", FormatDuration(c.MaxGap))
		}
	}
	if !bl.Network {
		return
	}
	b.WriteString("  network:\n    hosts:")
	if len(bl.Hosts) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for _, h := range bl.Hosts {
		macs := make([]string, len(h.MACs))
		for i, m := range h.MACs {
			macs[i] = strconv.Quote(m.String())
		}
		mac := strings.Join(macs, ", ")
		if len(macs) != 1 {
			mac = "[" + mac + "]"
		}
		fmt.Fprintf(b, "      - {host: %s, mac: %s}\n", host(h.Addr), mac)
	}
	b.WriteString("    links:")
	if len(bl.Links) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for _, l := range bl.Links {
		fmt.Fprintf(b, "      - {src: %s, dst: %s, port: %s", host(l.Src), host(l.Dst), PortText(l.UDP, l.Port))
		if l.Service != service.Unknown {
			fmt.Fprintf(b, ", service: %s", l.Service)
		}
		b.WriteString("}\n")
	}
}

// MergeBaseline returns p with the baseline of b, and the assets b names
// that p lacks; p nil: b. p is not changed.
func MergeBaseline(p, b *Policy) (*Policy, error) {
	if b.Baseline == nil {
		return nil, errors.New("has no baseline section")
	}
	if p == nil {
		return b, nil
	}
	out := *p
	out.Assets = append([]Asset(nil), p.Assets...)
	for _, a := range b.Assets {
		if out.Asset(a.Name) == nil {
			out.Assets = append(out.Assets, a)
		}
	}
	out.Baseline = b.Baseline
	return &out, out.Validate()
}
