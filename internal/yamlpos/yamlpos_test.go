package yamlpos

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/goccy/go-yaml/ast"
)

// TestErrorText: the place and the path are left out when unknown.
func TestErrorText(t *testing.T) {
	want := map[Error]string{
		{File: "a.yaml", Line: 3, Column: 7, Path: "rules[0].id", Msg: "bad"}: "a.yaml:3:7: rules[0].id: bad",
		{File: "a.yaml", Path: "interfaces", Msg: "none"}:                     "a.yaml: interfaces: none",
		{File: "a.yaml", Line: 1, Column: 2, Msg: "syntax"}:                   "a.yaml:1:2: syntax",
	}
	for e, w := range want {
		if got := e.Error(); got != w {
			t.Errorf("got %q, want %q", got, w)
		}
	}
}

// TestJoin: errors come out in file order, those without a place first,
// ties in the order given; no error is nil.
func TestJoin(t *testing.T) {
	if err := Join(nil); err != nil {
		t.Errorf("Join(nil) = %v", err)
	}
	errs := []*Error{
		{File: "f", Line: 4, Column: 2, Msg: "d"},
		{File: "f", Line: 2, Column: 9, Msg: "b"},
		{File: "f", Msg: "a"},
		{File: "f", Line: 4, Column: 1, Msg: "c1"},
		{File: "f", Line: 4, Column: 1, Msg: "c2"},
	}
	err := Join(errs)
	want := "f: a\nf:2:9: b\nf:4:1: c1\nf:4:1: c2\nf:4:2: d"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Msg != "a" {
		t.Errorf("the first joined error is %v, want an *Error", e)
	}
}

func TestPositions(t *testing.T) {
	ps := Positions{}
	ps.Record("a", Pos{1, 1})
	ps.Record("a", Pos{9, 9}) // the first place is kept
	ps.Record("a.b[2]", Pos{3, 5})
	for path, want := range map[string]Pos{"a": {1, 1}, "a.b[2]": {3, 5}, "a.b[2].c": {3, 5}, "a.b[1]": {1, 1}, "a.x.y": {1, 1}} {
		if got, ok := ps.Lookup(path); !ok || got != want {
			t.Errorf("Lookup(%q) = %v, %v; want %v", path, got, ok, want)
		}
	}
	if _, ok := ps.Lookup("z"); ok {
		t.Error("Lookup(z) found a place")
	}
	if got := ps.Errorf("f", "a.b", "a.b[2]", "%d twice", 7).Error(); got != "f:3:5: a.b: 7 twice" {
		t.Errorf("Errorf placed at a key: %q", got)
	}
	if got := Positions(nil).Errorf("policy", "x", "x", "no place").Error(); got != "policy: x: no place" {
		t.Errorf("Errorf without positions: %q", got)
	}
}

func TestPaths(t *testing.T) {
	if Field("", "a") != "a" || Field("a", "b") != "a.b" || Elem("a.b", 3) != "a.b[3]" {
		t.Error("Field or Elem")
	}
	for in, want := range map[string]string{"a": "", "a.b": "a", "a.b[3]": "a.b", "a[1].c": "a[1]"} {
		if got := Parent(in); got != want {
			t.Errorf("Parent(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	d := NewDecoder("x.yaml")
	f, err := d.Parse([]byte("a: 1\nb: [x, {c: \"t\"}]\n"))
	if err != nil || len(f.Docs) != 1 {
		t.Fatalf("Parse: %v", err)
	}
	_, err = d.Parse([]byte("a: [1\n"))
	var e *Error
	if !errors.As(err, &e) || e.File != "x.yaml" || e.Line == 0 || !strings.HasPrefix(err.Error(), "x.yaml:") {
		t.Errorf("syntax error without its place: %v", err)
	}
}

// TestScalars: a scalar is described by its text as written, anything
// else by what it is.
func TestScalars(t *testing.T) {
	d := NewDecoder("x.yaml")
	f, err := d.Parse([]byte("s: text\ni: 0x10\nb: True\nf: .inf\nm: {a: 1}\nl: [1]\nn:\nlit: |\n  two\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s": `"text"`, "i": `"0x10"`, "b": `"True"`, "f": `".inf"`, "m": "a map", "l": "a list", "n": "nothing", "lit": `"two\n"`}
	got := map[string]string{}
	var line int
	for _, v := range mapValues(f.Docs[0].Body) {
		k, _ := ScalarText(v.Key)
		got[k] = Describe(v.Value)
		if p := PosOf(v.Key); p.Line <= line || p.Column != 1 {
			t.Errorf("key %s at %v", k, p)
		} else {
			line = p.Line
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("Describe(%s) = %s, want %s", k, got[k], w)
		}
	}
	if PosOf(nil) != (Pos{}) {
		t.Error("PosOf(nil)")
	}
}

func TestKnown(t *testing.T) {
	d := NewDecoder("x.yaml")
	allowed := []string{"interfaces", "ring_bytes", "block_timeout"}
	if !d.Known(Pos{1, 1}, "", "interfaces", allowed) || len(d.Errs) != 0 {
		t.Fatal("a known field is reported")
	}
	d.Known(Pos{2, 1}, "", "intrefaces", allowed)
	d.Known(Pos{3, 3}, "capture", "ring", allowed)
	want := "x.yaml:2:1: unknown field \"intrefaces\" (did you mean interfaces?)\n" +
		"x.yaml:3:3: capture: unknown field \"ring\" (expected interfaces, ring_bytes or block_timeout)"
	if err := d.Err(); err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestDidYouMean(t *testing.T) {
	for _, c := range []struct{ word, want string }{
		{"cold_restrat", "cold_restart"}, {"sevrity", "severity"}, {"High", "high"}, {"xyz", ""}, {"hmj", "hmi"},
	} {
		got := DidYouMean(c.word, []string{"cold_restart", "severity", "high", "hmi", "low"})
		if c.want == "" && got != "" || c.want != "" && got != " (did you mean "+c.want+"?)" {
			t.Errorf("DidYouMean(%q) = %q", c.word, got)
		}
	}
	if got := Choices("xyz", []string{"modbus", "dnp3"}); got != " (expected modbus or dnp3)" {
		t.Errorf("Choices = %q", got)
	}
	if got := Choices("modbsu", []string{"modbus", "dnp3"}); got != " (did you mean modbus?)" {
		t.Errorf("Choices = %q", got)
	}
	if ListOr(nil) != "" || ListOr([]string{"a"}) != "a" || ListOr([]string{"a", "b", "c"}) != "a, b or c" {
		t.Error("ListOr")
	}
}

func mapValues(n ast.Node) []*ast.MappingValueNode {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}
	}
	return nil
}

// TestReadFile: a file of the limit is read whole; one byte more is
// refused, naming the file and the limit.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	fit, big := filepath.Join(dir, "fit.yaml"), filepath.Join(dir, "big.yaml")
	os.WriteFile(fit, make([]byte, 1<<20), 0o600)
	os.WriteFile(big, make([]byte, 1<<20+1), 0o600)
	if data, err := ReadFile(fit, 1<<20); err != nil || len(data) != 1<<20 {
		t.Errorf("a file of the limit: %d bytes, %v", len(data), err)
	}
	if _, err := ReadFile(big, 1<<20); err == nil || err.Error() != big+": larger than 1 MiB" {
		t.Errorf("a file over the limit: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "none.yaml"), 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestIndex: the compact index places every path, and every path under
// one, as the map does, and knows no other.
func TestIndex(t *testing.T) {
	ps := Positions{}
	var b IndexBuilder
	record := func(path string, at Pos) { ps.Record(path, at); b.Record(path, at) }
	for i := range 5000 {
		record(Elem("baseline.conversations", i), Pos{Line: 10 + 30*i, Column: 7})
		record(Field(Elem("baseline.conversations", i), "src"), Pos{Line: 10 + 30*i, Column: 9})
	}
	record("baseline", Pos{Line: 3, Column: 1})
	x := b.Index()
	for _, path := range []string{"baseline", "baseline.conversations[0]", "baseline.conversations[4999].src",
		"baseline.conversations[17].values[3].min", "baseline.margin", "rules[2].id", "", "baseline.conversations[5000]"} {
		want, wok := ps.Lookup(path)
		got, gok := x.Lookup(path)
		if got != want || gok != wok {
			t.Errorf("Lookup(%q) = %v %v, want %v %v", path, got, gok, want, wok)
		}
	}
	if _, ok := x.At("baseline.conversations"); ok {
		t.Error("At found a path never recorded")
	}
	var none *Index
	if _, ok := none.Lookup("baseline"); ok {
		t.Error("a nil index placed a path")
	}
	if e := x.Errorf("f.yaml", "baseline.margin", "baseline.margin", "bad %d", 1); e.Error() != "f.yaml:3:1: baseline.margin: bad 1" {
		t.Errorf("Errorf: %s", e)
	}
}

// TestIndexBuilder: Record keeps the first place, Set the last, and a
// Set wins over any Record, as they do on Positions.
func TestIndexBuilder(t *testing.T) {
	var b IndexBuilder
	ps := Positions{}
	steps := []struct {
		set  bool
		path string
		at   Pos
	}{
		{false, "a", Pos{1, 1}}, {false, "a", Pos{2, 1}},
		{false, "b", Pos{3, 1}}, {true, "b", Pos{4, 1}}, {false, "b", Pos{5, 1}},
		{true, "c", Pos{6, 1}}, {true, "c", Pos{7, 1}}, {false, "c", Pos{8, 1}},
		{true, "d", Pos{9, 1}}, {false, "d", Pos{10, 1}},
	}
	for _, s := range steps {
		if s.set {
			b.Set(s.path, s.at)
			ps[s.path] = s.at
		} else {
			b.Record(s.path, s.at)
			ps.Record(s.path, s.at)
		}
	}
	x := b.Index()
	for _, path := range []string{"a", "b", "c", "d", "e"} {
		want, wok := ps.Lookup(path)
		if got, gok := x.At(path); got != want || gok != wok {
			t.Errorf("At(%q) = %v %v, want %v %v", path, got, gok, want, wok)
		}
	}
	var empty IndexBuilder
	if _, ok := empty.Index().At("a"); ok {
		t.Error("an empty builder placed a path")
	}
}

// TestIndexBuilderOrder: with many paths each given several times, Record
// and Set interleaved, the index keeps what Positions keeps: with few
// records, sorted by comparisons alone, and with enough to be dealt into
// buckets first (sortByHash); neither keeps the order given.
func TestIndexBuilderOrder(t *testing.T) {
	const few, many = 6000, 60000
	if few >= 4<<radixBits || many < 4<<radixBits {
		t.Fatal("the test no longer takes both of sortByHash's ways")
	}
	for _, n := range []int{few, many} {
		indexBuilderOrder(t, n, n/20)
	}
	if n := unsafe.Sizeof(indexRecord{}); n != 24 {
		t.Errorf("a record takes %d bytes, want 24: seq no longer fits in the padding", n)
	}
}

func indexBuilderOrder(t *testing.T, records, paths int) {
	var b IndexBuilder
	ps := Positions{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range records {
		path := Elem("rules", r.IntN(paths))
		at := Pos{Line: i + 1, Column: 1 + r.IntN(9)}
		if r.IntN(4) == 0 {
			b.Set(path, at)
			ps[path] = at
		} else {
			b.Record(path, at)
			ps.Record(path, at)
		}
	}
	x := b.Index()
	for i := range paths + 1 {
		path := Elem("rules", i)
		want, wok := ps[path]
		if got, gok := x.At(path); got != want || gok != wok {
			t.Errorf("%d records: At(%q) = %v %v, want %v %v", records, path, got, gok, want, wok)
		}
	}
	if !slices.IsSortedFunc(x.ents, func(a, b indexEntry) int { return cmp.Compare(a.h, b.h) }) {
		t.Errorf("%d records: the index is not in hash order", records)
	}
}

// TestIndexBuilderTruncate: places recorded after a Truncate's length
// are forgotten, those before kept; Places lists what the index keeps.
func TestIndexBuilderTruncate(t *testing.T) {
	var b IndexBuilder
	b.Record("a", Pos{1, 1})
	b.Record("b", Pos{2, 3})
	n := b.Len()
	b.Record("c", Pos{3, 1})
	b.Set("a", Pos{4, 1})
	if b.Len() != 4 {
		t.Fatalf("Len %d, want 4", b.Len())
	}
	b.Truncate(n)
	x := b.Index()
	if at, ok := x.At("a"); !ok || at != (Pos{1, 1}) {
		t.Errorf("a at %v %v, want 1:1", at, ok)
	}
	if _, ok := x.At("c"); ok {
		t.Error("c kept")
	}
	ps := x.Places()
	slices.SortFunc(ps, func(p, q Pos) int { return p.Line - q.Line })
	if !slices.Equal(ps, []Pos{{1, 1}, {2, 3}}) {
		t.Errorf("places %v", ps)
	}
	if (*Index)(nil).Places() != nil {
		t.Error("a nil index has places")
	}
}

// TestParseCRLF: with lines ending in CR LF, what follows a comment is
// at its own line, as with LF, and the values are the same.
func TestParseCRLF(t *testing.T) {
	lf := "# head\na: 1 # one\n# between\n\nb: |\n  x\n  y\nc: \"p\n  q\"\n"
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	d := NewDecoder("x.yaml")
	places := func(text string) string {
		f, err := d.Parse([]byte(text))
		if err != nil || len(f.Docs) != 1 {
			t.Fatalf("Parse %q: %v", text, err)
		}
		return describeMap(t, f)
	}
	want := places(lf)
	if !strings.Contains(want, "b@{5 1}") || !strings.Contains(want, "c@{8 1}") {
		t.Fatalf("LF: %s", want)
	}
	if got := places(crlf); got != want {
		t.Errorf("CR LF: %s\nLF:    %s", got, want)
	}
}

// describeMap lists the keys of the map that is f's one document, with
// their places and values.
func describeMap(t *testing.T, f *ast.File) string {
	t.Helper()
	m, ok := f.Docs[0].Body.(*ast.MappingNode)
	if !ok {
		t.Fatalf("%T, want a map", f.Docs[0].Body)
	}
	var b strings.Builder
	for _, v := range m.Values {
		k, _ := ScalarText(v.Key)
		val, _ := ScalarText(v.Value)
		fmt.Fprintf(&b, "%s@%v=%q ", k, PosOf(v.Key), val)
	}
	return b.String()
}

func TestLeadingZero(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"017", "17", true}, {"0100", "100", true}, {"00", "0", true}, {"-0042", "-42", true}, {"+010", "10", true},
		{"01_000", "1000", true}, {"08", "8", true}, {"0502", "502", true},
		{"0", "0", false}, {"17", "17", false}, {"0o17", "0o17", false}, {"0x1F", "0x1F", false}, {"0b101", "0b101", false},
		{"1_000", "1_000", false}, {"010.5", "010.5", false}, {"", "", false}, {"-", "-", false}, {"0a", "0a", false},
	} {
		if got, ok := LeadingZero(c.in); got != c.want || ok != c.ok {
			t.Errorf("LeadingZero(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestIndexRecordField: a field recorded by RecordField is found by its
// path, Field(path, key), as one recorded by Record is, for paths short
// and long (past maphash's 128-octet buffer) and at the top, where a
// field's path is its key; and Record and RecordField of one path are
// one path to the index.
func TestIndexRecordField(t *testing.T) {
	var b IndexBuilder
	long := strings.Repeat("baseline.conversations[102].", 6)
	type field struct{ path, key string }
	fs := []field{{"", "version"}, {"rules[3]", "when"}, {long, "min"}, {long[:127], "x"}, {long[:128], "yy"}, {"a", strings.Repeat("k", 300)}}
	for i, f := range fs {
		b.RecordField(f.path, f.key, Pos{Line: i + 1, Column: 1})
	}
	b.Record(Field("rules[3]", "when"), Pos{Line: 99, Column: 1}) // later: the first is kept
	x := b.Index()
	for i, f := range fs {
		if at, ok := x.At(Field(f.path, f.key)); !ok || at.Line != i+1 {
			t.Errorf("RecordField(%q, %q): At(%q) = %v %v, want line %d", f.path, f.key, Field(f.path, f.key), at, ok, i+1)
		}
	}
	if n := len(x.Places()); n != len(fs) {
		t.Errorf("%d places, want %d: Record and RecordField made two paths of one", n, len(fs))
	}
	if _, ok := x.At("rules[3]when"); ok {
		t.Error("a path without the dot found")
	}
}
