package rules

import "bytes"

// alertJSON is the JSON of a's wire message (Event), which tapwatch
// replay prints, with the engine's id and without the header before it,
// which the engine does not fill in: {"id":…}.
func alertJSON(a *Alert) string {
	ev := a.Event()
	ev.ID = a.ID
	b := ev.AppendJSON(nil)
	return "{" + string(b[bytes.Index(b, []byte(`"id":`)):])
}
