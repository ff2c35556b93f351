package event

import (
	"fmt"
	"strings"
)

// severityCount is one severity's count and name.
type severityCount struct {
	n    uint64
	name string
}

// byLevel is the counts, least severe first.
func (s Severities) byLevel() [5]severityCount {
	return [5]severityCount{{s.Info, "info"}, {s.Low, "low"}, {s.Medium, "medium"}, {s.High, "high"}, {s.Critical, "critical"}}
}

// String is the counts that are not 0, most severe first: "1 critical,
// 2 high"; "" when all are 0.
func (s Severities) String() string {
	var parts []string
	levels := s.byLevel()
	for i := len(levels) - 1; i >= 0; i-- {
		if c := levels[i]; c.n > 0 {
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

// AtOrAbove is the number of alerts of severity sev (its name) or more
// severe; 0 for an unknown name.
func (s Severities) AtOrAbove(sev string) uint64 {
	n, from := uint64(0), false
	for _, c := range s.byLevel() {
		from = from || c.name == sev
		if from {
			n += c.n
		}
	}
	return n
}
