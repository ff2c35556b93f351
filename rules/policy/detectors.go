package policy

import "time"

// DetectorSpec is a built-in detector as shipped: its id, its defaults and
// the ATT&CK for ICS techniques it points at. A policy tunes or disables
// it by id in its detectors section (see DetectorSettings).
type DetectorSpec struct {
	ID          string
	Name        string // short human title, used in alerts
	Severity    Severity
	Attack      []string // ATT&CK for ICS technique ids
	Description string
	// Rate is the default threshold of detectors that count something;
	// nil for the others, which then accept no rate in a policy.
	Rate *Rate
	// Window is the default window of detectors that report at most once
	// per window or measure over one; 0 for the others.
	Window time.Duration
	// Baseline detectors run only in monitor mode with a learned baseline.
	Baseline bool
	// Category is the category of the detector's alerts.
	Category string
}

// detectors is the catalogue of built-in detectors, in registration order.
var detectors []DetectorSpec

// RegisterDetectors adds built-in detectors to the catalogue that
// validation, the defaults (New, DefaultDetectors, Policy.Detector),
// LookupDetector and Format read. The detectors themselves, with their
// checks, are the engine's (package rules), which registers them from an
// init function: a program that parses policies must import package rules,
// or the catalogue is empty and every detectors section is rejected.
// RegisterDetectors is meant for init functions; it panics if an id is
// registered twice.
func RegisterDetectors(specs []DetectorSpec) {
	for _, s := range specs {
		if LookupDetector(s.ID) != nil {
			panic("policy: detector " + s.ID + " registered twice")
		}
		detectors = append(detectors, s)
	}
}
