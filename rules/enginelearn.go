package rules

import (
	"time"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Learner learns what is normal from the operations the rules see, and
// writes it as a policy with a baseline section. learn.Learner is the
// one tapwatch uses; an Engine with EngineOptions.Learn feeds one, and
// passes it the network events too when it is a dpi.NetHandler.
type Learner interface {
	// Observe learns from op; only requests teach anything.
	Observe(op *Op)
	// Baseline returns what was learned, with the baseline's margin
	// (negative: policy.DefaultMargin).
	Baseline(margin float64) *policy.Policy
}

// engineLearn is the learning period of an Engine with
// EngineOptions.Learn.
type engineLearn struct {
	l      Learner
	net    dpi.NetHandler // l, when it learns the network too (learn.Learner does)
	period time.Duration
	end    int64 // packet time (unix ns) the period ends; 0 before the first operation
	margin float64
	policy *policy.Policy // what was learned, once the period ended
}

// learnOp feeds op to the learner during the learning period, and at its
// end installs the learned baseline.
func (e *Engine) learnOp(op *Op) {
	el := e.learn
	now := op.nano
	if el.end == 0 {
		el.end = now + int64(el.period)
	}
	if now < el.end {
		el.l.Observe(op)
		return
	}
	e.finishLearning()
}

func (e *Engine) finishLearning() {
	el := e.learn
	if el == nil {
		return
	}
	margin := el.margin
	switch {
	case margin == 0:
		margin = policy.DefaultMargin
	case margin < 0:
		margin = 0
	}
	el.policy = el.l.Baseline(margin)
	// The engine's own detector settings apply to the learned baseline.
	tuned := *el.policy
	tuned.Detectors = e.policy.Detectors
	e.base = newBaseRun(&tuned, el.policy.Baseline)
	e.learn = nil
	e.learned = el
}

// Learned returns the baseline the engine learned with
// EngineOptions.Learn once the learning period is over, or nil.
func (e *Engine) Learned() *policy.Policy {
	if e.learned == nil {
		return nil
	}
	return e.learned.policy
}

// Learning reports whether the engine is still in its learning period.
func (e *Engine) Learning() bool { return e.learn != nil }

// learnNet is the learner of the learning period, when it learns the
// network; nil otherwise.
func (e *Engine) learnNet() dpi.NetHandler {
	if e.learn == nil {
		return nil
	}
	return e.learn.net
}
