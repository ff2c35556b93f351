package sensor_test

import (
	"testing"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/sensor"
)

// TestNewStats: the stats message carries the counts it is given.
func TestNewStats(t *testing.T) {
	c := dpi.Counters{Packets: 10, Bytes: 1000, FlowsActive: 2, FlowsCreated: 3, FlowsEvicted: 1, BufferedBytes: 64}
	tally := sensor.Tally{Messages: 6, Malformed: 1}
	tally.DNP3.Fragments, tally.DNP3.LinkFrames, tally.DNP3.Malformed = 4, 2, 3
	alerts := event.Severities{High: 2, Info: 1}
	s := sensor.NewStats(c, &tally, alerts, 9, map[string]uint64{"probes": 4})
	if s.Packets != 10 || s.Bytes != 1000 || s.Flows != 2 || s.FlowsCreated != 3 || s.FlowsEvicted != 1 || s.Reassembly != 64 ||
		s.Messages["modbus"] != 6 || s.Messages["dnp3"] != 6 || s.DecodeErrors["modbus"] != 1 || s.DecodeErrors["dnp3"] != 3 ||
		s.Alerts != alerts || s.Suppressed != 9 || s.Evictions["probes"] != 4 {
		t.Errorf("stats %+v", s)
	}
}
