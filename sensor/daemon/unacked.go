package daemon

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"

	"github.com/tapwatch/tapwatch/event"
)

// Unacknowledged alerts light ALERT and hold the alarm relay until the
// button is pressed, and a restart must not release them: their counts by
// severity are kept in state_dir/unacked.json, written (atomically) by the
// control goroutine's tick when they changed, at stop, and at once when
// the button clears them. A damaged file is quarantined like the learning
// state, and the counts start from none.

const unackedFile = "unacked.json"

// unackedState is unacked.json.
type unackedState struct {
	Unacked *event.Severities `json:"unacked"`
}

// loadUnacked restores the counts saved by an earlier run.
func (d *Daemon) loadUnacked() {
	path := statePath(d.cfg, unackedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		d.log.Error("unacknowledged alerts of the last run not read; ALERT starts off", "file", path, "err", err)
		return
	}
	var st unackedState
	if err := json.Unmarshal(b, &st); err != nil || st.Unacked == nil {
		if err == nil {
			err = errors.New("no unacked counts")
		}
		quarantine(path, err, d.log)
		d.log.Error("unacknowledged alerts of the last run lost; ALERT starts off", "file", path)
		return
	}
	u := st.Unacked
	d.unacked = *u
	if *u != (event.Severities{}) {
		d.log.Warn("unacknowledged alerts of the last run restored; press the button to acknowledge them",
			"critical", u.Critical, "high", u.High, "medium", u.Medium, "low", u.Low, "info", u.Info)
	}
}

// saveUnacked writes the counts if they changed since the last write. A
// write that fails (a full disk) is logged once, retried on the next call,
// and its success logged again; the daemon runs on either way.
func (d *Daemon) saveUnacked() {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	if !d.unsaved {
		d.mu.Unlock()
		return
	}
	u := d.unacked
	d.unsaved = false
	d.mu.Unlock()
	path := statePath(d.cfg, unackedFile)
	err := os.MkdirAll(d.cfg.StateDir, 0o750)
	if err == nil {
		err = writeJSON(path, unackedState{Unacked: &u})
	}
	if err != nil {
		d.mu.Lock()
		d.unsaved = true
		d.mu.Unlock()
		if !d.unackedFailing {
			d.unackedFailing = true
			d.log.Error("unacknowledged alerts not saved: a restart now would clear ALERT; trying again every second", "file", path, "err", err)
		}
		return
	}
	if d.unackedFailing {
		d.unackedFailing = false
		d.log.Info("unacknowledged alerts saved again", "file", path)
	}
}
