package main

import (
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/event"
)

// TestAppendAlertLine: "repeat":true goes after the alert's id, whatever
// the sensor and site names hold, and only in a report of folded repeats.
func TestAppendAlertLine(t *testing.T) {
	ev := &event.Alert{V: event.V, Kind: event.KindAlert, Sensor: `a,"id":7,"b`, Site: `,"id":`, Seq: 3, ID: 12, Rule: "r", Count: 2}
	head := `{"v":1,"kind":"alert","sensor":"a,\"id\":7,\"b","site":",\"id\":","seq":3,"ts":"0001-01-01T00:00:00.000000000Z","id":12`
	got := string(appendAlertLine([]byte("x"), ev, true))
	if want := "x" + head + `,"repeat":true,"rule":"r",`; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "}\n") || strings.Count(got, "repeat") != 1 {
		t.Errorf("repeat:\n got %s\nwant %s…", got, want)
	}
	got = string(appendAlertLine(nil, ev, false))
	if want := head + `,"rule":"r",`; !strings.HasPrefix(got, want) || strings.Contains(got, "repeat") {
		t.Errorf("first report:\n got %s\nwant %s…", got, want)
	}
}
