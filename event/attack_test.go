package event_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/tapwatch/tapwatch/event"
)

// Every technique id a built-in detector reports has a name.
func TestTechniqueNames(t *testing.T) {
	files, err := filepath.Glob("../rules/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("rules sources: %v %v", files, err)
	}
	id := regexp.MustCompile(`"(T0\d{3})"`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range id.FindAllStringSubmatch(string(b), -1) {
			seen++
			if event.TechniqueName(m[1]) == "" {
				t.Errorf("%s: technique %s has no name in event/attack.go", filepath.Base(f), m[1])
			}
		}
	}
	if seen < 10 {
		t.Errorf("found only %d technique ids in rules/", seen)
	}
	if event.TechniqueName("T0999") != "" {
		t.Error("an unknown id has a name")
	}
}

func TestSeverities(t *testing.T) {
	var s event.Severities
	if s.String() != "" || s.Total() != 0 {
		t.Errorf("zero: %q %d", s.String(), s.Total())
	}
	for _, sev := range []string{"high", "critical", "high", "info", "bogus"} {
		s.Add(sev)
	}
	if got := s.String(); got != "1 critical, 2 high, 1 info" || s.Total() != 4 {
		t.Errorf("got %q, total %d", got, s.Total())
	}
	for sev, want := range map[string]uint64{"info": 4, "low": 3, "medium": 3, "high": 3, "critical": 1, "bogus": 0} {
		if got := s.AtOrAbove(sev); got != want {
			t.Errorf("AtOrAbove(%s) = %d, want %d", sev, got, want)
		}
	}
}
