package event

import (
	"fmt"
	"strings"
)

// String is the counts that are not 0, most severe first: "1 critical,
// 2 high"; "" when all are 0.
func (s Severities) String() string {
	var parts []string
	for _, c := range []struct {
		n    uint64
		name string
	}{{s.Critical, "critical"}, {s.High, "high"}, {s.Medium, "medium"}, {s.Low, "low"}, {s.Info, "info"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.name))
		}
	}
	return strings.Join(parts, ", ")
}

// Add counts one alert of severity sev (its name); an unknown one is not
// counted.
func (s *Severities) Add(sev string) {
	switch sev {
	case "critical":
		s.Critical++
	case "high":
		s.High++
	case "medium":
		s.Medium++
	case "low":
		s.Low++
	case "info":
		s.Info++
	}
}

// Total is the number of alerts counted.
func (s Severities) Total() uint64 { return s.Critical + s.High + s.Medium + s.Low + s.Info }
