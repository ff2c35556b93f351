package hw

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// forbiddenDeps are what the LED package must not pull in: the config
// and the rules (cmd/tapwatch translates them into a Config), the uplink
// and the decoders, and the capture, MQTT and spool libraries behind them.
var forbiddenDeps = []string{
	"github.com/tapwatch/tapwatch/config",
	"github.com/tapwatch/tapwatch/rules",
	"github.com/tapwatch/tapwatch/uplink",
	"github.com/tapwatch/tapwatch/dpi",
	"github.com/eclipse/paho.mqtt.golang",
	"github.com/mochi-mqtt/server",
	"github.com/gopacket/gopacket",
	"go.etcd.io/bbolt",
}

// TestDeps: hw's imports, direct or not, hold none of forbiddenDeps.
func TestDeps(t *testing.T) {
	goTool := testenv.Tool(t, "go", "golang-go")
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	if bad := forbidden(strings.Fields(string(out))); len(bad) > 0 {
		t.Errorf("hw imports %s; give hw what it needs in its Config instead", strings.Join(bad, ", "))
	}
}

// forbidden returns the packages of deps that are, or are under, one of
// forbiddenDeps.
func forbidden(deps []string) []string {
	var bad []string
	for _, d := range deps {
		for _, f := range forbiddenDeps {
			if d == f || strings.HasPrefix(d, f+"/") {
				bad = append(bad, d)
				break
			}
		}
	}
	return bad
}

// TestForbidden: the check finds a forbidden package and those under it,
// and nothing else.
func TestForbidden(t *testing.T) {
	got := forbidden([]string{"fmt", "github.com/tapwatch/tapwatch/board", "github.com/tapwatch/tapwatch/config",
		"github.com/tapwatch/tapwatch/dpi/modbus", "github.com/tapwatch/tapwatch/dpix", "go.etcd.io/bbolt"})
	want := "github.com/tapwatch/tapwatch/config github.com/tapwatch/tapwatch/dpi/modbus go.etcd.io/bbolt"
	if strings.Join(got, " ") != want {
		t.Errorf("forbidden: %q, want %s", got, want)
	}
}
