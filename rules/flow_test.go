package rules

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// TestPublicAddressOnAnyFlow: a host seen in a Modbus conversation that
// opens any conversation with a public address is reported once; an office
// host doing the same is not; nor is a conversation between private hosts.
func TestPublicAddressOnAnyFlow(t *testing.T) {
	rec := &recorder{}
	e, err := NewEngine(policy.New(), rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	flow := func(app dpi.App, client, server string) *dpi.Flow {
		return &dpi.Flow{Transport: dpi.TCP, App: app, Client: netip.MustParseAddrPort(client), Server: netip.MustParseAddrPort(server)}
	}
	e.NewFlow(flow(dpi.AppModbus, "10.10.1.10:50000", "10.10.1.20:502"), t0)                   // the HMI is an OT host
	e.NewFlow(flow(dpi.AppNone, "10.10.9.50:50001", "198.51.100.9:443"), t0.Add(time.Second))  // an office PC: not ours to report
	e.NewFlow(flow(dpi.AppNone, "10.10.1.10:50002", "10.10.9.1:53"), t0.Add(2*time.Second))    // private to private
	e.NewFlow(flow(dpi.AppNone, "10.10.1.10:50003", "203.0.113.7:443"), t0.Add(3*time.Second)) // the HMI to the Internet
	e.NewFlow(flow(dpi.AppNone, "10.10.1.10:50004", "203.0.113.7:443"), t0.Add(4*time.Second)) // again: folded
	e.Flush()
	var got []string
	for _, a := range rec.alerts {
		if a.Rule == "public-address" && a.Count == 1 {
			got = append(got, a.Title)
		}
	}
	if len(got) != 1 || got[0] != "TCP port 443 between 10.10.1.10 and public address 203.0.113.7" {
		t.Errorf("public-address alerts %q", got)
	}
}

// TestPublicAddressTitle: the title names the private host whichever end
// sent the message.
func TestPublicAddressTitle(t *testing.T) {
	rec := &recorder{}
	e, err := NewEngine(policy.New(), rec, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &dpi.Flow{Transport: dpi.TCP, App: dpi.AppModbus,
		Client: netip.MustParseAddrPort("166.161.16.230:40000"), Server: netip.MustParseAddrPort("192.168.66.235:502")}
	op := &Op{Time: time.Unix(1700000000, 0), Proto: proto.Modbus, Flow: f, Src: f.Client, Dst: f.Server, Request: true, FC: 3}
	e.Evaluate(op)
	for _, a := range rec.alerts {
		if a.Rule == "public-address" && a.Title != "Modbus between 192.168.66.235 and public address 166.161.16.230" {
			t.Errorf("title %q", a.Title)
		}
	}
	if len(rec.alerts) == 0 {
		t.Error("no public-address alert")
	}
}
