package policy

import (
	"strings"
	"testing"
	"time"
)

// TestRegisterDetectors: the catalogue is what was registered, in that
// order; without it a detectors section names nothing; an id registered
// twice panics.
func TestRegisterDetectors(t *testing.T) {
	saved := detectors
	t.Cleanup(func() { detectors = saved })

	detectors = nil
	if p := New(); len(p.Detectors) != 0 {
		t.Errorf("New without a catalogue: %+v", p.Detectors)
	}
	_, err := Parse([]byte("detectors:\n  malformed: {enabled: false}\n"), "p.yaml")
	if err == nil || !strings.Contains(err.Error(), `"malformed" is not a built-in detector`) {
		t.Errorf("a detectors section without a catalogue: %v", err)
	}

	RegisterDetectors([]DetectorSpec{
		{ID: "toy-a", Name: "Toy A", Severity: SeverityLow, Attack: []string{"T0888"}, Description: "a", Category: "toy"},
		{ID: "toy-b", Name: "Toy B", Severity: SeverityHigh, Attack: []string{"T0888"}, Description: "b", Category: "toy", Rate: &Rate{Max: 3, Per: time.Second}},
	})
	if d := LookupDetector("toy-b"); d == nil || d.Name != "Toy B" {
		t.Errorf("LookupDetector(toy-b) = %+v", d)
	}
	p, err := Parse([]byte("detectors:\n  toy-b: {severity: critical, rate: {max: 5, per: 2s}}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Detectors) != 2 || p.Detectors[0].ID != "toy-a" || p.Detectors[1].Severity != SeverityCritical || p.Detectors[1].Rate.Max != 5 {
		t.Errorf("parsed detectors: %+v", p.Detectors)
	}

	defer func() {
		if recover() == nil {
			t.Error("registering toy-a twice did not panic")
		}
	}()
	RegisterDetectors([]DetectorSpec{{ID: "toy-a"}})
}
