package proto

import (
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, c := range []struct {
		id          ID
		name, title string
	}{{None, "none", "none"}, {Modbus, "modbus", "Modbus"}, {DNP3, "dnp3", "DNP3"}, {200, "invalid", "invalid"}} {
		if c.id.String() != c.name || c.id.Title() != c.title {
			t.Errorf("%d is %q, %q; want %q, %q", c.id, c.id.String(), c.id.Title(), c.name, c.title)
		}
	}
	for _, name := range []string{"modbus", "dnp3"} {
		if id, ok := Lookup(name); !ok || id.String() != name {
			t.Errorf("Lookup(%q) = %v, %v", name, id, ok)
		}
	}
	if _, ok := Lookup("none"); ok {
		t.Error(`Lookup("none") found a protocol`)
	}
}

func TestNew(t *testing.T) {
	a := New("iec104", "IEC 60870-5-104")
	if a <= DNP3 || a.String() != "iec104" || a.Title() != "IEC 60870-5-104" {
		t.Errorf("New gave %d %q %q", a, a.String(), a.Title())
	}
	if b := New("iec104", "other"); b != a {
		t.Errorf("a second New of the same name gave %d, want %d", b, a)
	}
	if b := New("modbus", "Modbus"); b != Modbus {
		t.Errorf("New(modbus) = %d, want the constant %d", b, Modbus)
	}
	if id, ok := Lookup("iec104"); !ok || id != a {
		t.Errorf("Lookup(iec104) = %d, %v", id, ok)
	}
}

// TestImportsStdOnly: every decoder package imports this one, and they
// promise to stay on the standard library without fmt.
func TestImportsStdOnly(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "proto.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if path == "fmt" || path == "reflect" || strings.Contains(path, ".") {
			t.Errorf("proto.go imports %s", path)
		}
	}
}
