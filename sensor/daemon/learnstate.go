package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/internal/atomicfile"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// The learning period of mode learn survives restarts. In the state
// directory:
//
//   - learning.json: when learning started, and when it finished;
//   - learning.yaml: the checkpoint, what was learned so far (a baseline
//     with margin 0), saved every learn.checkpoint and at stop;
//   - learned.yaml: what was learned, once the period is over, with the
//     configured margin: the baseline the daemon then enforces, and the
//     file the plant engineer reviews.
//
// A restart during the period resumes it from the checkpoint, with the
// same end. A damaged file is renamed NAME.corrupt-TIME and reported.

// learnState is learning.json.
type learnState struct {
	Started  time.Time  `json:"started"`
	Duration string     `json:"duration"` // as configured when it started, for the reader
	Finished *time.Time `json:"finished,omitempty"`
}

// deadline is when the period ends: the configured duration counts from
// the first start.
func (ls *learnState) deadline(cfg *config.Config) time.Time {
	return ls.Started.Add(cfg.Learn.Duration)
}

func statePath(cfg *config.Config, name string) string { return filepath.Join(cfg.StateDir, name) }

// openLearning reads the learning state: a new period, one to resume
// (with its checkpoint) or one finished (with what was learned).
func openLearning(cfg *config.Config, log *slog.Logger) (*learnState, *policy.Policy, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("state_dir: %w", err)
	}
	fresh := func() (*learnState, *policy.Policy, error) {
		ls := &learnState{Started: time.Now().UTC().Truncate(time.Second), Duration: cfg.Learn.Duration.String()}
		if err := writeJSON(statePath(cfg, learnStateFile), ls); err != nil {
			return nil, nil, err
		}
		os.Remove(statePath(cfg, checkpointFile))
		log.Info("learning started", "until", ls.deadline(cfg).Format(time.RFC3339))
		return ls, nil, nil
	}
	b, err := os.ReadFile(statePath(cfg, learnStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fresh()
	}
	if err != nil {
		return nil, nil, err
	}
	ls := &learnState{}
	if err := json.Unmarshal(b, ls); err != nil || ls.Started.IsZero() {
		if err == nil {
			err = errors.New("no start time")
		}
		quarantine(statePath(cfg, learnStateFile), err, log)
		return fresh()
	}
	if ls.Finished != nil {
		p, err := policy.Load(statePath(cfg, learnedFile))
		if err == nil && p.Baseline == nil {
			err = errors.New("has no baseline section")
		}
		if err != nil {
			quarantine(statePath(cfg, learnedFile), err, log)
			os.Remove(statePath(cfg, learnStateFile))
			log.Error("the learned baseline is unusable: learning again")
			return fresh()
		}
		log.Info("learning finished earlier; enforcing what was learned", "file", statePath(cfg, learnedFile), "finished", ls.Finished.Format(time.RFC3339))
		return ls, p, nil
	}
	cp, err := policy.Load(statePath(cfg, checkpointFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cp = nil
	case err != nil:
		quarantine(statePath(cfg, checkpointFile), err, log)
		cp = nil
	}
	log.Info("learning resumed", "started", ls.Started.Format(time.RFC3339), "until", ls.deadline(cfg).Format(time.RFC3339), "checkpoint", cp != nil)
	return ls, cp, nil
}

// quarantine renames a damaged state file out of the way and says so.
func quarantine(path string, why error, log *slog.Logger) {
	to := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(path, to); err != nil {
		log.Error("damaged state file could not be moved aside", "file", path, "err", err)
		return
	}
	log.Error("damaged state file quarantined", "file", path, "moved_to", to, "err", why)
}

// checkpoint saves what was learned so far (taken on the packet
// goroutine).
func (d *Daemon) checkpoint() {
	var p *policy.Policy
	if !d.do(func() {
		if d.asm.Learner != nil {
			p = d.asm.Learner.Baseline(0)
		}
	}, snapshotWait) || p == nil {
		d.log.Warn("learning checkpoint skipped: the pipeline did not answer")
		return
	}
	d.saveCheckpoint(p)
}

func (d *Daemon) saveCheckpoint(p *policy.Policy) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# tapwatch learning checkpoint: what was learned so far (margin 0).\n# Learning started %s and ends %s.\n",
		d.learn.Started.Format(time.RFC3339), d.learn.deadline(d.cfg).Format(time.RFC3339))
	p.Format(&b)
	if err := atomicfile.Write(statePath(d.cfg, checkpointFile), b.Bytes(), 0o640); err != nil {
		d.log.Error("learning checkpoint", "err", err)
		return
	}
	d.log.Debug("learning checkpoint saved", "conversations", len(p.Baseline.Conversations))
}

// finishLearning ends the learning period: what was learned is written
// to learned.yaml and enforced from now on.
func (d *Daemon) finishLearning() {
	var learned *policy.Policy
	margin := *d.cfg.Learn.Margin
	if !d.do(func() {
		if d.asm.Learner != nil {
			learned = d.asm.Learner.Baseline(margin)
		}
	}, snapshotWait) || learned == nil {
		d.log.Warn("learning: the pipeline did not answer; ending the period on the next tick")
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Learned by tapwatch sensor %s (site %s) from %s to %s.\n# Review it, then enforce it with baseline: in tapwatch.yaml and mode: monitor.\n",
		d.cfg.Sensor, d.cfg.Site, d.learn.Started.Format(time.RFC3339), now.Format(time.RFC3339))
	learned.Format(&b)
	if err := atomicfile.Write(statePath(d.cfg, learnedFile), b.Bytes(), 0o640); err != nil {
		d.log.Error("learning: writing what was learned; still learning, will try again", "err", err)
		return
	}
	engine, policy, err := d.asm.Rebuild(d.policyFiles(learned))
	if err != nil {
		d.log.Error("learning: the learned baseline does not combine with the policy; still learning", "err", err)
		return
	}
	if !d.do(func() {
		d.setEngine(engine, policy)
		d.asm.StopLearning()
	}, snapshotWait) {
		d.log.Warn("learning: the pipeline did not answer; ending the period on the next tick")
		return
	}
	d.learn.Finished = &now
	if err := writeJSON(statePath(d.cfg, learnStateFile), d.learn); err != nil {
		d.log.Error("learning state", "err", err)
	}
	os.Remove(statePath(d.cfg, checkpointFile))
	d.learn = nil
	d.log.Info("learning finished; monitoring what was learned", "file", statePath(d.cfg, learnedFile),
		"conversations", len(learned.Baseline.Conversations))
	d.logPolicy("policy loaded", policy)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o640)
}
