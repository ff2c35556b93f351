package rules

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tapwatch/tapwatch/rules/policy"
)

// alertJSON is the JSON of a's wire message (Event), which tapwatch
// replay prints, with the engine's id and without the header before it,
// which the engine does not fill in: {"id":…}.
func alertJSON(a *Alert) string {
	ev := a.Event()
	ev.ID = a.ID
	b := ev.AppendJSON(nil)
	return "{" + string(b[bytes.Index(b, []byte(`"id":`)):])
}

// TestAssetNames: an address is named by the asset with that one
// address, else by the narrowest network holding it.
func TestAssetNames(t *testing.T) {
	p, err := policy.Parse([]byte(`assets:
  plant: {cidr: 10.10.0.0/16}
  cell1: {cidr: 10.10.1.0/24}
  plc1: {ip: 10.10.1.20}
`), "n.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := newAssetNames(p)
	for addr, want := range map[string]string{"10.10.1.20": "plc1", "10.10.1.21": "cell1", "10.10.9.9": "plant", "192.168.1.1": "", "::ffff:10.10.1.20": "plc1"} {
		if got := n.of(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s is %q, want %q", addr, got, want)
		}
	}
}
