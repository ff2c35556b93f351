package rules

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Rules about links: a match with service or port is about a client (src)
// talking to a port of a server (dst), and is checked once per flow, at
// its first payload, when the flow's service is named (dpi.NetHandler's
// FlowData). "No SMB between the cells" or "only the HMI and the
// engineering station talk to the PLCs" are such rules.

// checkLinks runs the rules about links on flow f.
func (e *Engine) checkLinks(f *dpi.Flow, t time.Time) {
	c, s := f.Client.Addr().Unmap(), f.Server.Addr().Unmap()
	for _, r := range e.links {
		if !linkMatches(&r.rule.When, f, c, s) {
			continue
		}
		exempt := false
		for i := range r.rule.Unless {
			if linkMatches(&r.rule.Unless[i], f, c, s) {
				exempt = true
				break
			}
		}
		if exempt {
			continue
		}
		e.tick(t)
		op := &e.flowOp
		*op = Op{Time: t, Frame: f.Frame, Flow: f, Src: f.Client, Dst: f.Server}
		e.raise(r, op, aggKey{rule: r.idx, src: c, dst: s, addr: uint32(f.Server.Port())}, false)
	}
}

// linkMatches reports whether flow f, from client c to server s,
// satisfies every field of m. An unless with only src or dst matches
// links too.
func linkMatches(m *policy.Match, f *dpi.Flow, c, s netip.Addr) bool {
	if len(m.Src) > 0 && !inEndpoints(m.Src, c) || len(m.Dst) > 0 && !inEndpoints(m.Dst, s) {
		return false
	}
	if len(m.Services) > 0 && !slices.Contains(m.Services, f.Service) {
		return false
	}
	if len(m.Ports) > 0 && !slices.Contains(m.Ports, policy.Port{UDP: f.Transport == dpi.UDP, Port: f.Server.Port()}) {
		return false
	}
	return true
}

// inEndpoints reports whether a lies in one of eps' prefixes.
func inEndpoints(eps []policy.Endpoint, a netip.Addr) bool {
	for i := range eps {
		if prefixesContain(eps[i].Prefixes, a) {
			return true
		}
	}
	return false
}
