package rules

import "github.com/tapwatch/tapwatch/dpi"

// Message implements dpi.Handler: it learns from the requests the adapter
// of f's protocol gives to the rules (UseRules), and ignores protocols
// without an adapter.
func (l *Learner) Message(f *dpi.Flow, from dpi.Side, m any) {
	if ad := l.ads[f.App]; ad != nil && ad.Op(&l.op, f, from, m) == UseRules {
		l.Observe(&l.op)
	}
}
