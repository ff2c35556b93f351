package pgotext

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// The committed profile, converted to pprof, is what the go command's
// preprofile makes of it: the same text, byte for byte. So the builds get
// exactly the edges and weights the profile holds.
func TestCommittedProfileRoundTrip(t *testing.T) {
	text, err := os.ReadFile("../../cmd/tapwatch/pgo.txt")
	if err != nil {
		t.Fatal(err)
	}
	edges, err := Parse(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("cmd/tapwatch/pgo.txt: %v", err)
	}
	if len(edges) < 100 {
		t.Fatalf("cmd/tapwatch/pgo.txt holds %d edges; a profile of a replay has hundreds (make pgo-profile)", len(edges))
	}
	var again bytes.Buffer
	if err := format(&again, edges); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), text) {
		t.Fatal("format(Parse(pgo.txt)) differs from pgo.txt")
	}
	got := preprofile(t, edges)
	if !bytes.Equal(got, text) {
		t.Fatalf("go tool preprofile of the pprof differs from pgo.txt:\n%s", firstDiff(got, text))
	}
}

// preprofile writes edges as pprof and returns what go tool preprofile
// makes of it.
func preprofile(t *testing.T, edges []Edge) []byte {
	t.Helper()
	goCmd := testenv.Tool(t, "go", "golang-go")
	dir := t.TempDir()
	var pp bytes.Buffer
	if err := WritePprof(&pp, edges); err != nil {
		t.Fatal(err)
	}
	in, out := filepath.Join(dir, "p.pprof"), filepath.Join(dir, "p.txt")
	if err := os.WriteFile(in, pp.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(goCmd, "tool", "preprofile", "-i", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("go tool preprofile: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// format writes edges in the text form, as go tool preprofile does.
func format(w io.Writer, edges []Edge) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(header + "\n")
	for _, e := range edges {
		fmt.Fprintf(bw, "%s\n%s\n%d %d\n", e.Caller, e.Callee, e.Offset, e.Weight)
	}
	return bw.Flush()
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths differ: %d and %d lines", len(al), len(bl))
}

// Edges of every shape the compiler's reader must keep apart: a function
// calling two callees from one site, one callee from two sites,
// recursive calls at a non-zero offset and at offset 0, a negative offset
// (a call inlined above its caller's first line), a weight of 2^60.
func TestShapesRoundTrip(t *testing.T) {
	edges := []Edge{ // in preprofile's order: by weight, the heaviest first
		{"e.big", "c.h", 1, 1 << 60},
		{"a.(*T).m", "b.f", 3, 900},
		{"a.(*T).m", "b.g", 3, 500},
		{"b.f", "c.h", 7, 400},
		{"b.g", "c.h", 2, 300},
		{"b.g", "c.h", 9, 300},
		{"c.h", "c.h", 4, 20},
		{"c.h", "c.h", 0, 15},
		{"c.h", "d.k", -2, 10},
		{"d.k", "a.(*T).m", 0, 1},
	}
	var want bytes.Buffer
	if err := format(&want, edges); err != nil {
		t.Fatal(err)
	}
	if got := preprofile(t, edges); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("preprofile gave\n%s\nwant\n%s", got, want.Bytes())
	}
}

func TestWritePprofRefuses(t *testing.T) {
	for _, edges := range [][]Edge{
		{{"a.f", "b.g", 1, 0}},
		{{"a.f", "b.g", 1, -5}},
	} {
		if err := WritePprof(&bytes.Buffer{}, edges); err == nil {
			t.Errorf("WritePprof(%v): no error", edges)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "line 1: not a profile"},
		{"GO PREPROFILE V2\n", "line 1: not a profile"},
		{header + "\na.f\n", "line 2: an edge needs three lines"},
		{header + "\na.f\nb.g\n", "line 3: an edge needs three lines"},
		{header + "\na.f\nb.g\n1\n", `line 4: "1" is not an offset and a weight`},
		{header + "\na.f\nb.g\n1 x\n", `line 4: "1 x" is not`},
		{header + "\na.f\nb.g\n1 0\n", `line 4: "1 0" is not`},
		{header + "\na.f\nb.g\n1 2 3\n", `line 4: "1 2 3" is not`},
		{header + "\na.f\nb.g\n1 2\n\nc.h\n3 4\n", "line 5: an empty function name"},
		{header + "\na.f\n\n1 2\n", "line 3: an empty function name"},
		{header + "\na.f\nb.g\n1 2\nc.h\nd.k\n3 -4\n", `line 7: "3 -4" is not`},
	} {
		_, err := Parse(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
	long := header + "\na.f\n" + strings.Repeat("x", 2<<20) + "\n1 2\n"
	if _, err := Parse(strings.NewReader(long)); err == nil || !strings.HasPrefix(err.Error(), "line 3: ") {
		t.Errorf("a line of 2 MiB: %v, want an error naming line 3", err)
	}
	edges, err := Parse(strings.NewReader(header + "\n"))
	if err != nil || len(edges) != 0 {
		t.Errorf("a profile of no edges: %v, %v", edges, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(header + "\na.f\nb.g\n1 2\n"))
	f.Add([]byte(header + "\na.(*T).m\nb.f\n-3 900\nb.f\nc.h\n7 400\n"))
	f.Add([]byte(header + "\n"))
	f.Add([]byte("GO PREPROFILE V1\r\na\nb\n1 1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		edges, err := Parse(bytes.NewReader(in))
		if err != nil {
			return
		}
		var text bytes.Buffer
		if err := format(&text, edges); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(&text)
		if err != nil {
			t.Fatalf("Parse(format(edges)): %v", err)
		}
		if len(edges) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(again, edges) {
			t.Fatalf("Parse(format(%v)) = %v", edges, again)
		}
		_ = WritePprof(&bytes.Buffer{}, edges)
	})
}
