package rules

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/event"
)

type assetRecorder struct{ got []*event.Asset }

func (r *assetRecorder) Asset(a *event.Asset) { r.got = append(r.got, a) }

var invT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mbExchange(inv *Inventory, client, server string, unit uint8, at time.Duration, resp *modbus.Message) {
	f := &dpi.Flow{Client: netip.MustParseAddrPort(client), Server: netip.MustParseAddrPort(server), ClientMAC: [6]byte{2, 0, 0, 0, 0, 1}}
	inv.Message(f, dpi.FromClient, &modbus.Message{Dir: modbus.Request, Unit: unit, FC: 3, Meta: modbus.Meta{Time: invT0.Add(at)}})
	if resp == nil {
		resp = &modbus.Message{FC: 3}
	}
	resp.Dir, resp.Unit, resp.Time = modbus.Response, unit, invT0.Add(at)
	inv.Message(f, dpi.FromClient, resp)
}

func TestInventory(t *testing.T) {
	rec := &assetRecorder{}
	inv := NewInventory(rec, 0, time.Hour)
	mbExchange(inv, "10.0.0.10:50000", "10.0.0.20:502", 1, 0, nil)
	// The master, and the slave once, with the unit id it answered for
	// (not a first message without it, then a second a round trip later).
	if len(rec.got) != 2 {
		t.Fatalf("%d asset messages for a new master and slave, want 2: %v", len(rec.got), assetIPs(rec.got))
	}
	hmi, plc := rec.got[0], rec.got[1]
	if hmi.IP != "10.0.0.10" || !reflect.DeepEqual(hmi.Roles, []string{"master"}) || hmi.MAC != "02:00:00:00:00:01" || !reflect.DeepEqual(hmi.Protocols, []string{"modbus"}) {
		t.Errorf("master %+v", hmi)
	}
	if plc.IP != "10.0.0.20" || !reflect.DeepEqual(plc.Roles, []string{"slave"}) || !reflect.DeepEqual(plc.ModbusUnits, []uint8{1}) {
		t.Errorf("slave %+v", plc)
	}
	// Polling again changes nothing: no message.
	for i := range 100 {
		mbExchange(inv, "10.0.0.10:50000", "10.0.0.20:502", 1, time.Duration(i)*time.Second, nil)
	}
	if len(rec.got) != 2 {
		t.Fatalf("repeated polls sent %d asset messages", len(rec.got)-2)
	}
	// A new unit, and the device identification: one message each.
	mbExchange(inv, "10.0.0.10:50000", "10.0.0.20:502", 2, 200*time.Second, nil)
	mbExchange(inv, "10.0.0.10:50000", "10.0.0.20:502", 1, 201*time.Second, &modbus.Message{FC: 43, MEI: 14,
		Objects: []modbus.DeviceObject{{ID: 0, Value: []byte("Acme\x00")}, {ID: 1, Value: []byte("PLC-9")}, {ID: 2, Value: []byte("v2.1")}}})
	if len(rec.got) != 4 {
		t.Fatalf("%d messages, want 4", len(rec.got))
	}
	if a := rec.got[3]; a.Vendor != "Acme" || a.Product != "PLC-9" || a.Revision != "v2.1" || !reflect.DeepEqual(a.ModbusUnits, []uint8{1, 2}) {
		t.Errorf("after identification: %+v", a)
	}
	// An exception does not add the unit.
	mbExchange(inv, "10.0.0.10:50000", "10.0.0.20:502", 9, 202*time.Second, &modbus.Message{FC: 3, Exception: 11})
	if len(rec.got) != 4 {
		t.Errorf("an exception response added unit 9")
	}
	// After the refresh interval an unchanged asset goes out again.
	mbExchange(inv, "10.0.0.10:50000", "10.0.0.20:502", 1, 2*time.Hour, nil)
	if len(rec.got) != 6 || !rec.got[5].LastSeen.Equal(invT0.Add(2*time.Hour)) {
		t.Errorf("refresh: %d messages", len(rec.got))
	}

	// DNP3: the master's and the outstation's link addresses.
	f := &dpi.Flow{Client: netip.MustParseAddrPort("10.0.1.1:40000"), Server: netip.MustParseAddrPort("10.0.1.2:20000")}
	inv.Message(f, dpi.FromClient, &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Request, Link: dnp3.LinkHeader{Src: 1, Dst: 10}, Meta: dnp3.Meta{Time: invT0}})
	inv.Message(f, dpi.FromServer, &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Response, Link: dnp3.LinkHeader{Src: 10, Dst: 1}, Meta: dnp3.Meta{Time: invT0}})
	inv.Message(f, dpi.FromClient, &dnp3.Message{Kind: dnp3.KindApplication, Dir: dnp3.Request, Link: dnp3.LinkHeader{Src: 1, Dst: 0xFFFF}, Meta: dnp3.Meta{Time: invT0}})
	var out *event.Asset
	for _, a := range inv.Assets() {
		if a.IP == "10.0.1.2" {
			out = a
		}
	}
	if out == nil || !reflect.DeepEqual(out.Roles, []string{"outstation"}) || !reflect.DeepEqual(out.DNP3Addrs, []uint16{10}) {
		t.Errorf("outstation %+v", out)
	}
	if inv.Len() != 4 {
		t.Errorf("%d assets, want 4", inv.Len())
	}
}

// A server that never answers is sent when its request is given up on,
// without units.
func TestInventoryUnanswered(t *testing.T) {
	rec := &assetRecorder{}
	inv := NewInventory(rec, 0, time.Hour)
	f := &dpi.Flow{Client: netip.MustParseAddrPort("10.0.0.10:50000"), Server: netip.MustParseAddrPort("10.0.0.30:502")}
	inv.Message(f, dpi.FromClient, &modbus.Message{Dir: modbus.Request, Unit: 1, FC: 3, Meta: modbus.Meta{Time: invT0}})
	if ips := assetIPs(rec.got); !reflect.DeepEqual(ips, []string{"10.0.0.10"}) {
		t.Fatalf("after the request: messages for %v, want the master's only", ips)
	}
	inv.Message(f, dpi.FromClient, &modbus.Message{Dir: modbus.Request, Unit: 1, FC: 3, Outcome: modbus.OutcomeUnanswered, Meta: modbus.Meta{Time: invT0}})
	if len(rec.got) != 2 || rec.got[1].IP != "10.0.0.30" || !reflect.DeepEqual(rec.got[1].Roles, []string{"slave"}) || rec.got[1].ModbusUnits != nil {
		t.Fatalf("after the request was given up on: %v, want the server's, without units", assetIPs(rec.got))
	}
	inv.Message(f, dpi.FromClient, &modbus.Message{Dir: modbus.Request, Unit: 1, FC: 3, Outcome: modbus.OutcomeUnanswered, Meta: modbus.Meta{Time: invT0}})
	if len(rec.got) != 2 {
		t.Errorf("a second unanswered request sent the server again")
	}
}

func assetIPs(as []*event.Asset) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.IP)
	}
	return out
}

func TestInventoryBounded(t *testing.T) {
	inv := NewInventory(nil, 3, 0)
	for i := range 10 {
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		f := &dpi.Flow{Client: netip.AddrPortFrom(ip, 5000), Server: netip.MustParseAddrPort("10.0.9.9:502")}
		inv.Message(f, dpi.FromClient, &modbus.Message{Dir: modbus.Request, FC: 3, Meta: modbus.Meta{Time: invT0.Add(time.Duration(i) * time.Second)}})
	}
	if inv.Len() != 3 || inv.Evicted != 8 {
		t.Errorf("len %d evicted %d", inv.Len(), inv.Evicted)
	}
}

// TestInventoryNoAllocs: a host seen again with nothing new costs no
// allocation.
func TestInventoryNoAllocs(t *testing.T) {
	inv := NewInventory(&assetRecorder{}, 0, time.Hour)
	f := &dpi.Flow{Client: netip.MustParseAddrPort("10.0.0.10:50000"), Server: netip.MustParseAddrPort("10.0.0.20:502")}
	req := &modbus.Message{Dir: modbus.Request, Unit: 1, FC: 3, Meta: modbus.Meta{Time: invT0}}
	resp := &modbus.Message{Dir: modbus.Response, Unit: 1, FC: 3, Meta: modbus.Meta{Time: invT0}}
	inv.Message(f, dpi.FromClient, req)
	inv.Message(f, dpi.FromClient, resp)
	if n := testing.AllocsPerRun(1000, func() {
		inv.Message(f, dpi.FromClient, req)
		inv.Message(f, dpi.FromClient, resp)
	}); n != 0 {
		t.Errorf("%v allocations per exchange", n)
	}
}

// TestInventoryNetwork: hosts of any protocol enter the inventory with the
// services they serve; the MAC is the one claimed in ARP, which a second
// MAC taking turns with it does not replace, and a MAC silent for long
// does.
func TestInventoryNetwork(t *testing.T) {
	rec := &assetRecorder{}
	inv := NewInventory(rec, 0, time.Hour)
	web := netip.MustParseAddrPort("10.10.1.30:443")
	f := &dpi.Flow{Transport: dpi.TCP, Client: netip.MustParseAddrPort("10.10.1.10:50000"), Server: web,
		ServerMAC: [6]byte{2, 0, 0, 0, 0, 0xfe}, Service: service.TLS}
	inv.FlowData(f, t0)
	g := *f
	g.Server, g.Service = netip.MustParseAddrPort("10.10.1.30:4444"), service.Unknown
	inv.FlowData(&g, t0.Add(time.Second))
	inv.FlowData(f, t0.Add(2*time.Second)) // nothing new
	arp := func(mac byte, at time.Duration) {
		inv.ARP(&dpi.ARP{Time: t0.Add(at), Op: 1, SenderIP: web.Addr(), SenderMAC: [6]byte{2, 0, 0, 0, 0, mac}})
	}
	arp(0x1e, 3*time.Second)
	arp(0x66, 4*time.Second) // a spoofer taking turns
	arp(0x1e, 5*time.Second)
	var got []string
	for _, a := range rec.got {
		if a.IP == "10.10.1.30" {
			got = append(got, a.MAC+" "+strings.Join(a.Services, ","))
		}
	}
	want := "02:00:00:00:00:fe tcp/443 tls|02:00:00:00:00:fe tcp/443 tls,tcp/4444 unknown|02:00:00:00:00:1e tcp/443 tls,tcp/4444 unknown"
	if strings.Join(got, "|") != want {
		t.Errorf("asset messages of 10.10.1.30:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.ReplaceAll(want, "|", "\n"))
	}
	arp(0x77, 20*time.Minute) // the old MAC silent for long: a replaced device
	if a := rec.got[len(rec.got)-1]; a.MAC != "02:00:00:00:00:77" {
		t.Errorf("after a long silence the MAC is %s", a.MAC)
	}
	// Broadcasts and the Internet are no hosts of the plant.
	n := inv.Len()
	b := *f
	b.Client, b.Server = netip.MustParseAddrPort("8.8.8.8:53"), netip.MustParseAddrPort("10.10.1.255:137")
	inv.FlowData(&b, t0)
	if inv.Len() != n {
		t.Errorf("%d hosts after a flow from the Internet to a broadcast, want %d", inv.Len(), n)
	}
}

// TestInventoryLinks: a client's asset lists its links with their flows
// and traffic; counts alone send nothing; links beyond the bound are
// counted as dropped.
func TestInventoryLinks(t *testing.T) {
	rec := &assetRecorder{}
	inv := NewInventory(rec, 0, time.Hour)
	f := &dpi.Flow{Transport: dpi.TCP, Client: netip.MustParseAddrPort("10.10.1.10:50000"), Server: netip.MustParseAddrPort("10.10.1.20:443"), Service: service.TLS}
	inv.FlowData(f, t0)
	sent := len(rec.got)
	f.NewPackets, f.NewBytes = [2]uint64{10, 8}, [2]uint64{1000, 6000}
	inv.FlowCounts(f, t0.Add(time.Minute))
	inv.FlowCounts(f, t0.Add(2*time.Minute))
	if len(rec.got) != sent {
		t.Errorf("counts alone sent %d asset messages", len(rec.got)-sent)
	}
	inv.FlowData(f, t0.Add(3*time.Minute)) // a second flow on the link
	for i := range 20 {
		g := *f
		g.Server = netip.AddrPortFrom(netip.MustParseAddr("10.10.1.20"), uint16(8000+i))
		inv.FlowData(&g, t0.Add(4*time.Minute))
	}
	var hmi *event.Asset
	for _, a := range inv.Assets() {
		if a.IP == "10.10.1.10" {
			hmi = a
		}
	}
	if hmi == nil || len(hmi.Links) != maxHostLinks {
		t.Fatalf("links %+v", hmi)
	}
	want := event.AssetLink{Dst: "10.10.1.20", Port: "tcp/443", Service: "tls", Flows: 2, SentPackets: 20, SentBytes: 2000, RecvPackets: 16, RecvBytes: 12000}
	if hmi.Links[0] != want {
		t.Errorf("link %+v, want %+v", hmi.Links[0], want)
	}
	if inv.DroppedLinks != 21-maxHostLinks {
		t.Errorf("%d links dropped, want %d", inv.DroppedLinks, 21-maxHostLinks)
	}
}
