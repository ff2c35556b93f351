package event

import "time"

// The header setters fill in a message's header: the schema version and
// the kind, then who sent it, its seq and when it was made.

// SetHeader fills in the header of an alert.
func (a *Alert) SetHeader(sensor, site string, seq uint64, ts time.Time) {
	a.V, a.Kind, a.Sensor, a.Site, a.Seq, a.TS = V, KindAlert, sensor, site, seq, ts
}

// SetHeader fills in the header of an asset message.
func (a *Asset) SetHeader(sensor, site string, seq uint64, ts time.Time) {
	a.V, a.Kind, a.Sensor, a.Site, a.Seq, a.TS = V, KindAsset, sensor, site, seq, ts
}

// SetHeader fills in the header of a status message.
func (s *Status) SetHeader(sensor, site string, seq uint64, ts time.Time) {
	s.V, s.Kind, s.Sensor, s.Site, s.Seq, s.TS = V, KindStatus, sensor, site, seq, ts
}

// SetHeader fills in the header of a stats message.
func (s *Stats) SetHeader(sensor, site string, seq uint64, ts time.Time) {
	s.V, s.Kind, s.Sensor, s.Site, s.Seq, s.TS = V, KindStats, sensor, site, seq, ts
}
