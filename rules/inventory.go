package rules

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// The asset inventory: every host seen speaking Modbus, DNP3 or another
// decoded protocol, with its roles, protocols, Modbus unit ids, DNP3 link addresses and, from a
// Modbus read device identification (43/14) response, vendor, product and
// revision. An Asset message goes to the sink when a host first appears
// and whenever what is known of it grows (a Modbus server's when its
// first answer, or the lack of one, is seen); a host seen again with nothing
// new is only a map lookup (no allocation), and its last_seen is
// refreshed on the wire at most once per refresh interval.

// AssetSink receives asset messages. The inventory does not touch a
// message after handing it over.
type AssetSink interface {
	Asset(a *event.Asset)
}

// Asset roles.
const (
	RoleMaster     = "master"     // sends Modbus requests or DNP3 requests
	RoleSlave      = "slave"      // a Modbus server
	RoleOutstation = "outstation" // a DNP3 outstation
	RoleServer     = "server"     // the server of another protocol
)

const (
	roleMaster uint8 = 1 << iota
	roleSlave
	roleOutstation
	roleServer
)

// DefaultInventorySize is how many hosts the inventory tracks; when full,
// the one seen least recently is forgotten (and counted).
const DefaultInventorySize = 4096

// DefaultAssetRefresh is how often an unchanged asset is sent again with
// its new last_seen.
const DefaultAssetRefresh = time.Hour

type invAsset struct {
	ip        netip.Addr
	mac       [6]byte
	roles     uint8
	protos    policy.CodeSet // the protocols it spoke, by ID
	units     policy.CodeSet // Modbus unit ids
	dnp3      []uint16       // sorted
	first     time.Time
	last      time.Time
	sent      time.Time // when last sent
	vendor    string
	product   string
	revision  string
	services  []svcPort  // served, in order of first sight
	links     []*invLink // as a client, in order of first sight
	arpMAC    bool       // mac came from ARP: a flow's frames do not change it
	macSeen   time.Time  // when mac last claimed the address in ARP
	needsSend bool
}

// svcPort is a service a host serves: its transport, port and name.
type svcPort struct {
	udp  bool
	port uint16
	svc  service.ID
}

// maxServices bounds the services an asset lists.
const maxServices = 32

// invLink is a link of a client: a port of a server, its service, and the
// traffic counted on it.
type invLink struct {
	dst     netip.Addr
	udp     bool
	port    uint16
	svc     service.ID
	flows   uint64
	packets [2]uint64 // sent by the client [0], by the server [1]
	bytes   [2]uint64
}

// Bounds of the links the inventory counts: per client, and in all; a
// link beyond them is not counted (Inventory.DroppedLinks).
const (
	maxHostLinks          = 16
	DefaultInventoryLinks = 8192
)

// Inventory tracks assets. It implements the pipeline's message sink
// (Modbus, DNP3). It is not safe for concurrent use.
type Inventory struct {
	sink    AssetSink
	max     int
	refresh time.Duration
	m       map[netip.Addr]*invAsset
	Evicted uint64 // hosts forgotten because the inventory was full
	// links counts the links held by all hosts; DroppedLinks the flows of
	// links not counted, for the bounds.
	links        int
	DroppedLinks uint64
}

// NewInventory returns an inventory of at most max hosts (0: the default)
// that sends to sink; refresh 0 is DefaultAssetRefresh.
func NewInventory(sink AssetSink, max int, refresh time.Duration) *Inventory {
	if max <= 0 {
		max = DefaultInventorySize
	}
	if refresh <= 0 {
		refresh = DefaultAssetRefresh
	}
	return &Inventory{sink: sink, max: max, refresh: refresh, m: make(map[netip.Addr]*invAsset)}
}

// Len is the number of hosts known.
func (inv *Inventory) Len() int { return len(inv.m) }

// Assets returns a message for every host known, sorted by address.
func (inv *Inventory) Assets() []*event.Asset {
	as := make([]*invAsset, 0, len(inv.m))
	for _, a := range inv.m {
		as = append(as, a)
	}
	slices.SortFunc(as, func(x, y *invAsset) int { return x.ip.Compare(y.ip) })
	out := make([]*event.Asset, len(as))
	for i, a := range as {
		out[i] = a.message()
	}
	return out
}

func (inv *Inventory) get(ip netip.Addr, mac [6]byte, t time.Time) *invAsset {
	ip = ip.Unmap()
	a := inv.m[ip]
	if a == nil {
		if len(inv.m) >= inv.max {
			inv.evictOldest()
		}
		a = &invAsset{ip: ip, mac: mac, first: t, needsSend: true}
		inv.m[ip] = a
	} else if a.mac != mac && mac != ([6]byte{}) && !a.arpMAC {
		a.mac, a.needsSend = mac, true
	}
	if t.After(a.last) {
		a.last = t
	}
	return a
}

func (inv *Inventory) evictOldest() {
	var old *invAsset
	for _, a := range inv.m {
		if old == nil || a.last.Before(old.last) {
			old = a
		}
	}
	if old != nil {
		delete(inv.m, old.ip)
		inv.links -= len(old.links)
		inv.Evicted++
	}
}

func (inv *Inventory) done(a *invAsset) {
	if !a.needsSend && a.last.Sub(a.sent) < inv.refresh {
		return
	}
	a.needsSend, a.sent = false, a.last
	if inv.sink != nil {
		inv.sink.Asset(a.message())
	}
}

func (a *invAsset) add(role uint8, p proto.ID) {
	if a.roles&role == 0 || !a.protos.Has(uint8(p)) {
		a.roles |= role
		a.protos.Add(uint8(p))
		a.needsSend = true
	}
}

// Message implements dpi.Handler: the pipeline's message sink. A message
// of a protocol other than Modbus and DNP3 (one that is proto.Loggable,
// for its time) makes its flow's client a master and its server a server
// of the flow's protocol.
func (inv *Inventory) Message(f *dpi.Flow, from dpi.Side, m any) {
	switch m := m.(type) {
	case *modbus.Message:
		inv.modbusMsg(f, m)
	case *dnp3.Message:
		inv.dnp3Msg(f, from == dpi.FromServer, m)
	case proto.Loggable:
		if f.App == 0 || f.App == proto.Modbus || f.App == proto.DNP3 {
			return
		}
		t := m.Packet().Time
		client := inv.get(f.Client.Addr(), f.ClientMAC, t)
		client.add(roleMaster, f.App)
		inv.done(client)
		server := inv.get(f.Server.Addr(), f.ServerMAC, t)
		server.add(roleServer, f.App)
		inv.done(server)
	}
}

func (inv *Inventory) modbusMsg(f *dpi.Flow, m *modbus.Message) {
	if m.Malformed == modbus.NotModbus {
		return
	}
	if m.Outcome == modbus.OutcomeUnanswered {
		// The server's message waited for this answer, which will not
		// come: send what is known.
		if slave := inv.m[f.Server.Addr().Unmap()]; slave != nil {
			inv.done(slave)
		}
		return
	}
	t := m.Time
	master := inv.get(f.Client.Addr(), f.ClientMAC, t)
	master.add(roleMaster, proto.Modbus)
	inv.done(master)
	slave := inv.get(f.Server.Addr(), f.ServerMAC, t)
	slave.add(roleSlave, proto.Modbus)
	if m.Dir == modbus.Request {
		// The answer, a round trip later, tells the unit ids the server
		// answers for: its message waits for it, so that a new server is
		// one message, not a half-known one followed by the full one.
		return
	}
	if m.Exception == 0 && m.Malformed == 0 {
		// A unit id counts once the device answered for it.
		if w, b := m.Unit>>6, uint64(1)<<(m.Unit&63); slave.units[w]&b == 0 {
			slave.units[w] |= b
			slave.needsSend = true
		}
		if m.FC == 43 && m.MEI == 14 {
			for _, o := range m.Objects {
				var dst *string
				switch o.ID {
				case 0:
					dst = &slave.vendor
				case 1:
					dst = &slave.product
				case 2:
					dst = &slave.revision
				default:
					continue
				}
				if v := printable(o.Value); v != "" && v != *dst {
					*dst, slave.needsSend = v, true
				}
			}
		}
	}
	inv.done(slave)
}

func (inv *Inventory) dnp3Msg(f *dpi.Flow, fromServer bool, m *dnp3.Message) {
	if m.Kind != dnp3.KindApplication {
		return
	}
	srcAP, dstAP, srcMAC, dstMAC := f.Client, f.Server, f.ClientMAC, f.ServerMAC
	if fromServer {
		srcAP, dstAP, srcMAC, dstMAC = f.Server, f.Client, f.ServerMAC, f.ClientMAC
	}
	t := m.Time
	src := inv.get(srcAP.Addr(), srcMAC, t)
	dst := inv.get(dstAP.Addr(), dstMAC, t)
	if m.Dir == dnp3.Request {
		src.add(roleMaster, proto.DNP3)
		dst.add(roleOutstation, proto.DNP3)
		src.addDNP3(m.Link.Src)
		if m.Link.Dst < 0xFFF0 { // not a broadcast or reserved address
			dst.addDNP3(m.Link.Dst)
		}
	} else {
		src.add(roleOutstation, proto.DNP3)
		dst.add(roleMaster, proto.DNP3)
		src.addDNP3(m.Link.Src)
		dst.addDNP3(m.Link.Dst)
	}
	inv.done(src)
	inv.done(dst)
}

func (a *invAsset) addDNP3(addr uint16) {
	i, found := slices.BinarySearch(a.dnp3, addr)
	if found || len(a.dnp3) >= 64 {
		return
	}
	a.dnp3 = slices.Insert(a.dnp3, i, addr)
	a.needsSend = true
}

// printable keeps the printable ASCII of a device identification string,
// at most 64 bytes of it.
func printable(b []byte) string {
	out := make([]byte, 0, min(len(b), 64))
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && len(out) < 64 {
			out = append(out, c)
		}
	}
	return string(out)
}

func (a *invAsset) message() *event.Asset {
	ev := &event.Asset{IP: a.ip.String(), FirstSeen: a.first.UTC(), LastSeen: a.last.UTC(),
		Vendor: a.vendor, Product: a.product, Revision: a.revision}
	if a.mac != ([6]byte{}) {
		ev.MAC = macString(a.mac)
	}
	for _, r := range []struct {
		bit  uint8
		name string
	}{{roleMaster, RoleMaster}, {roleSlave, RoleSlave}, {roleOutstation, RoleOutstation}, {roleServer, RoleServer}} {
		if a.roles&r.bit != 0 {
			ev.Roles = append(ev.Roles, r.name)
		}
	}
	for _, p := range a.protos.Codes() {
		ev.Protocols = append(ev.Protocols, proto.ID(p).String())
	}
	for _, s := range a.services {
		ev.Services = append(ev.Services, policy.PortText(s.udp, s.port)+" "+s.svc.String())
	}
	if ev.Roles == nil {
		ev.Roles = []string{} // always a list, for a host of IT traffic too
	}
	if ev.Protocols == nil {
		ev.Protocols = []string{}
	}
	for _, l := range a.links {
		ev.Links = append(ev.Links, event.AssetLink{Dst: l.dst.String(), Port: policy.PortText(l.udp, l.port), Service: l.svc.String(), Flows: l.flows,
			SentPackets: l.packets[0], SentBytes: l.bytes[0], RecvPackets: l.packets[1], RecvBytes: l.bytes[1]})
	}
	ev.ModbusUnits = a.units.Codes()
	ev.DNP3Addrs = append([]uint16(nil), a.dnp3...)
	return ev
}

// The network view: every host of the plant's own addresses on the tap
// enters the inventory, not only those that speak Modbus or DNP3, with
// the MAC it claims in ARP and the services it serves.

var _ dpi.NetHandler = (*Inventory)(nil)

// NewFlow implements dpi.NetHandler.
func (inv *Inventory) NewFlow(*dpi.Flow, time.Time) {}

// FlowEnd implements dpi.NetHandler.
func (inv *Inventory) FlowEnd(*dpi.Flow, time.Time) {}

// link returns the client's link of f, new (with its first flow counted)
// if need be; nil beyond the bounds (counted).
func (inv *Inventory) link(a *invAsset, f *dpi.Flow) *invLink {
	dst, udp, port := f.Server.Addr().Unmap(), f.Transport == dpi.UDP, f.Server.Port()
	for _, l := range a.links {
		if l.dst == dst && l.udp == udp && l.port == port {
			return l
		}
	}
	if len(a.links) >= maxHostLinks || inv.links >= DefaultInventoryLinks {
		inv.DroppedLinks++
		return nil
	}
	l := &invLink{dst: dst, udp: udp, port: port, svc: f.Service}
	a.links = append(a.links, l)
	inv.links++
	a.needsSend = true
	return l
}

// FlowCounts implements dpi.NetHandler: the traffic of a client's link.
// Counts alone do not send the asset: they go with its next change or
// refresh.
func (inv *Inventory) FlowCounts(f *dpi.Flow, t time.Time) {
	c := f.Client.Addr().Unmap()
	if !onNet(c) {
		return
	}
	a := inv.get(c, f.ClientMAC, t)
	l := inv.link(a, f)
	if l == nil {
		return
	}
	for i := range l.packets {
		l.packets[i] += f.NewPackets[i]
		l.bytes[i] += f.NewBytes[i]
	}
	inv.done(a)
}

// ICMP implements dpi.NetHandler.
func (inv *Inventory) ICMP(*dpi.ICMP) {}

// FlowData implements dpi.NetHandler: the two ends of a flow are hosts,
// and its server serves its service. On a flow of a decoded protocol the
// first message comes next and sends what changed, with its roles.
func (inv *Inventory) FlowData(f *dpi.Flow, t time.Time) {
	send := f.App == proto.None
	c, s := f.Client.Addr().Unmap(), f.Server.Addr().Unmap()
	if onNet(c) {
		a := inv.get(c, f.ClientMAC, t)
		if l := inv.link(a, f); l != nil {
			l.flows++
			if l.svc == service.Unknown {
				l.svc = f.Service
			}
		}
		if send {
			inv.done(a)
		}
	}
	if !onNet(s) {
		return
	}
	a := inv.get(s, f.ServerMAC, t)
	sp := svcPort{udp: f.Transport == dpi.UDP, port: f.Server.Port(), svc: f.Service}
	if i := slices.IndexFunc(a.services, func(x svcPort) bool { return x.udp == sp.udp && x.port == sp.port }); i >= 0 {
		if a.services[i].svc == service.Unknown && sp.svc != service.Unknown {
			a.services[i].svc, a.needsSend = sp.svc, true
		}
	} else if len(a.services) < maxServices {
		a.services = append(a.services, sp)
		a.needsSend = true
	}
	if send {
		inv.done(a)
	}
}

// ARP implements dpi.NetHandler: the sender claims its address with its
// MAC, which is the host's (a flow's frames may carry a router's). Another
// MAC takes over only once the host's has not claimed the address for
// macTakeover: while two MACs take turns (spoofing, which arp-spoof
// reports), the asset keeps the first.
func (inv *Inventory) ARP(a *dpi.ARP) {
	if !onNet(a.SenderIP) || a.SenderMAC == ([6]byte{}) {
		return
	}
	x := inv.get(a.SenderIP, [6]byte{}, a.Time)
	switch {
	case x.mac == a.SenderMAC:
		x.macSeen = a.Time
	case !x.arpMAC || a.Time.Sub(x.macSeen) > macTakeover:
		x.mac, x.macSeen, x.needsSend = a.SenderMAC, a.Time, true
	}
	x.arpMAC = true
	inv.done(x)
}

// macTakeover is how long a host's MAC must be silent in ARP before
// another MAC claiming its address replaces it in the asset.
const macTakeover = 10 * time.Minute
