package event

import (
	"testing"
	"time"
)

// TestSetHeader: each message's setter fills in the whole header, its own
// kind included.
func TestSetHeader(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := func(kind string) Header {
		return Header{V: V, Kind: kind, Sensor: "tap1", Site: "plant1", Seq: 7, TS: ts}
	}
	var (
		al Alert
		as Asset
		su Status
		st Stats
	)
	al.SetHeader("tap1", "plant1", 7, ts)
	as.SetHeader("tap1", "plant1", 7, ts)
	su.SetHeader("tap1", "plant1", 7, ts)
	st.SetHeader("tap1", "plant1", 7, ts)
	for _, c := range []struct {
		got  Header
		kind string
	}{
		{Header{al.V, al.Kind, al.Sensor, al.Site, al.Seq, al.TS}, KindAlert},
		{Header{as.V, as.Kind, as.Sensor, as.Site, as.Seq, as.TS}, KindAsset},
		{Header{su.V, su.Kind, su.Sensor, su.Site, su.Seq, su.TS}, KindStatus},
		{Header{st.V, st.Kind, st.Sensor, st.Site, st.Seq, st.TS}, KindStats},
	} {
		if c.got != want(c.kind) {
			t.Errorf("%s: header %+v, want %+v", c.kind, c.got, want(c.kind))
		}
	}
}
