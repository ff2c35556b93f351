package rules

import (
	"net/netip"

	"github.com/tapwatch/tapwatch/event"
)

// Event returns the alert as a wire message. The header (v, kind,
// sensor, site, seq, ts) and the wire id are the publisher's to fill in:
// the engine's ID is unique only within a run.
func (a *Alert) Event() *event.Alert {
	ev := &event.Alert{
		Rule: a.Rule, Severity: a.Severity.String(), Category: a.Category, Title: a.Title,
		Attack: append([]string(nil), a.Attack...), VLAN: a.VLAN,
		Expected: a.Expected, Count: a.Count, First: a.First.UTC(), Last: a.Last.UTC(), Frame: a.Frame,
	}
	if a.Transport != 0 {
		ev.Transport = a.Transport.String()
	}
	if a.Proto != 0 {
		ev.Proto = a.Proto.String()
		fc := a.FC
		ev.FC, ev.FCName = &fc, a.FCName
	}
	for _, fc := range a.FCs {
		ev.FCs = append(ev.FCs, uint16(fc))
	}
	ev.Src, ev.Dst = endpoint(a.Src, a.SrcMAC), endpoint(a.Dst, a.DstMAC)
	if ev.Src != nil {
		ev.Src.Asset = a.SrcAsset
	}
	if ev.Dst != nil {
		ev.Dst.Asset = a.DstAsset
	}
	if ad := a.adapter(); ad != nil {
		ad.Wire(ev, a)
	}
	if a.HasAddr {
		ev.Addr = &event.Range{Lo: a.AddrLo, Hi: a.AddrHi}
	}
	if len(a.Values) > 0 {
		ev.Values = append(event.Values(nil), a.Values...)
	}
	if len(a.Evidence) > 0 {
		ev.Evidence = append(event.Hex(nil), a.Evidence...)
	}
	return ev
}

func endpoint(ap netip.AddrPort, mac [6]byte) *event.Endpoint {
	if !ap.IsValid() {
		return nil
	}
	e := &event.Endpoint{IP: ap.Addr().String(), Port: ap.Port()}
	if mac != ([6]byte{}) {
		e.MAC = macString(mac)
	}
	return e
}

func macString(mac [6]byte) string {
	return string(appendMAC(nil, mac))
}

// adapter is the adapter of a's protocol: the engine's that raised it, or
// the default one for an alert made elsewhere.
func (a *Alert) adapter() Adapter {
	if a.ad != nil {
		return a.ad
	}
	return defaultAdapters[a.Proto]
}
