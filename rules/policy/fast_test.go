package policy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/benchtool"
)

// fastOnly is fastTree's tree of data, read as a whole file.
func fastOnly(data []byte) (*node, bool) {
	d := &decoder{Decoder: newTestDecoder()}
	n, ok := d.fastTree(data, 0)
	if len(d.Errs) != 0 {
		panic(fmt.Sprintf("fastTree left errors: %v", errStrings(d)))
	}
	return n, ok
}

// sameNode reports whether a and b are the same tree, places and flags
// included (a NaN equal to a NaN; an empty list or map to none).
func sameNode(a, b *node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.kind != b.kind || a.str != b.str || a.isBool != b.isBool || a.boolean != b.boolean || a.isFloat != b.isFloat ||
		a.flow != b.flow || a.pos != b.pos || a.text != b.text || a.canon != b.canon ||
		a.num != b.num && !(math.IsNaN(a.num) && math.IsNaN(b.num)) ||
		len(a.keys) != len(b.keys) || len(a.items) != len(b.items) {
		return false
	}
	for i, e := range a.keys {
		f := b.keys[i]
		if e.key != f.key || e.pos != f.pos || !sameNode(e.val, f.val) {
			return false
		}
	}
	for i, it := range a.items {
		if !sameNode(it, b.items[i]) {
			return false
		}
	}
	return true
}

// checkFastLikeParser fails when fastTree reads data to a tree the
// parser and convert do not give, or reads what the parser rejects; it
// reports whether fastTree read it.
func checkFastLikeParser(t *testing.T, data []byte) bool {
	t.Helper()
	got, ok := fastOnly(data)
	if !ok {
		return false
	}
	want, errs := wholeTree(data)
	if len(errs) > 0 {
		t.Fatalf("fastTree read a file the parser rejects (%v):\n%s", errs, data)
	}
	if !sameNode(got, want) {
		t.Fatalf("fastTree reads another tree than the parser:\n%s\nfast:   %s\nparser: %s", data, dumpNode(got), dumpNode(want))
	}
	return true
}

// fastCases are YAML that fastTree reads (true) or leaves to the parser
// (false).
var fastCases = []struct {
	yaml string
	fast bool
}{
	{"a: 1\n", true},
	{"a: b\nc: d\n", true},
	{"# c\nversion: 1 # one\n\nassets:\n  m: {ip: 10.1.10.1}\n  p: {ip: 10.1.20.1, modbus_units: [1, 3]}\n", true},
	{"rules:\n  - id: a\n    when: {proto: modbus, fc: [write_single_register, 16]}\n    severity: high\n  - id: b\n", true},
	{"rules:\n- id: a\n- id: b\nother: x\n", true},
	{"a:\n  b:\n    c: [1, [2, 3], {d: e}]\n", true},
	{"a: {}\nb: []\nc: ''\nd: \"\"\n", true},
	{"a: 'it''s'\nb: \"x y\"\nc: 'x # y'\n", true},
	{"a: 10.1.1.1\nb: 10.1.0.0/16\nc: 0-1985\nd: 0x10\ne: 017\nf: 1.5\ng: -3\nh: +4\ni: 1_000\n", true},
	{"a: true\nb: False\nc: null\nd: ~\ne: .inf\nf: -.inf\ng: .nan\nh: yes\ni: off\n", true},
	{"a: Pump station 3\nb: tcp/502\nc: x:y\nd: http://h/p\n", true},
	{"a: 99999999999999999999\nb: 1e3\nc: 1.2.3\n", true},
	{"- a\n- b\n", true},
	{"-  a: 1\n   b: 2\n- c: 3\n", true},
	{"a:\n  - x\n  -   y\n", true},
	{"a: [x, y]   # c\n", true},
	{"  a: 1\n  b: 2\n", true},
	{"a: b\n#c\n   # d\nc: d", true},
	{"tapwatch-piece-end: 0\n", true},
	{"- a:\n  - x\n  b: 1\n", true},
	{"a:\n- x\n- y\nb: 2\n", true},
	{"- a:\n    b: 1\n  c: 2\n- d: 3\n", true},
	{"a: # c\n  # d\n  b: 1\n\n  c: 2\n", true},
	{"a:\n  - b:\n    - c: [1]\n", true},

	{"", false},
	{"# only a comment\n", false},
	{"a:\n", false},
	{"a:\nb: 1\n", false},
	{"a: 1\na: 2\n", false},
	{"a: b\n  c\n", false},
	{"a: |\n  x\n", false},
	{"a: >\n  x\n", false},
	{"a: &x 1\nb: *x\n", false},
	{"a: !!str 1\n", false},
	{"<<: {a: 1}\n", false},
	{"'a': 1\n", false},
	{"\"a\": 1\n", false},
	{"1: a\n", false},
	{"true: a\n", false},
	{"? a\n: b\n", false},
	{"a: \"x\\ty\"\n", false},
	{"a: 'x\n  y'\n", false},
	{"a: {b: 1,\n  c: 2}\n", false},
	{"a: [1, 2,]\n", false},
	{"a: [x:y]\n", false},
	{"a: {b:c}\n", false},
	{"a:\tb\n", false},
	{"a: b\r\n", false},
	{"a: é\n", false},
	{"a: 1\nb: 2\n# Pumpe Süd\n  # é\n", true},
	{"a: 1 # é\n", false},
	{"a: 1\n# \x7f\n", false},
	{"a:\n  b: 1\n\tc: 2\n", false},
	{"---\na: 1\n", false},
	{"a: 1\n...\n", false},
	{"%YAML 1.2\n---\na: 1\n", false},
	{"-\n  a: 1\n", false},
	{"- - a\n", false},
	{"-a: 1\n", false},
	{"a: b: c\n", false},
	{"a: b:\n", false},
	{"a:b\n", false},
	{"a: x#y\n", true},
	{"a: 0 \n", false},    // goccy places the 0 a column right: left to it
	{"a: b c  \n", false}, // and "b c" two columns
	{"a: b  # c\n", true},
	{"a: 'x'#y\n", false},
	{"a:\n    b: 1\n  c: 2\n", false},
	{"a:\n  b: 1\n   c: 2\n", false},
	{"a: @x\n", false},
	{"a: `x\n", false},
	{"a: %x\n", false},
	{"a: x\n- b\n", false},
	{"a:\n  b\n", false},
	{"a: [b, {c: [d]}, e\n", false},
}

func TestFastLikeParser(t *testing.T) {
	for _, c := range fastCases {
		if got := checkFastLikeParser(t, []byte(c.yaml)); got != c.fast {
			t.Errorf("fastTree read %q: %v, want %v", c.yaml, got, c.fast)
		}
	}
	// Every printable punctuation character in plain scalars, in block
	// values and in flow collections: read as the parser reads it, or
	// left to it.
	for _, c := range "[]{},'\"!&*|>%@`?-=()<;\\$^~+./:#" {
		for _, form := range []string{"a: x%cy\n", "a: x%c\n", "- x%cy\n", "a: x %c y\n", "a: 1%c\n", "a: [x%cy]\n", "a: {b: x%c}\n", "a: [x %c y, z]\n"} {
			checkFastLikeParser(t, []byte(fmt.Sprintf(form, c)))
		}
	}
	for _, s := range []string{"a: [ x ]\n", "a: [x ,y]\n", "a: [x y]\n", "a: {b: x y}\n", "a: {b: 1 , c: 2}\n", "a: [x] \n", "a: {b: 1}  # c\n", "a:  b\n", "-   a: 1\n    b: 2\n"} {
		checkFastLikeParser(t, []byte(s))
	}
	// Maps of more keys than fresh compares one by one: read, or left
	// to the parser when a key comes twice.
	for _, dup := range []bool{false, true} {
		var flow, block strings.Builder
		flow.WriteString("a: {")
		for i := range 40 {
			k := i
			if dup && i == 39 {
				k = 3
			}
			if i > 0 {
				flow.WriteString(", ")
			}
			fmt.Fprintf(&flow, "k%d: %d", k, i)
			fmt.Fprintf(&block, "k%d: %d\n", k, i)
		}
		flow.WriteString("}\n")
		for _, text := range []string{flow.String(), block.String()} {
			if got := checkFastLikeParser(t, []byte(text)); got == dup {
				t.Errorf("fastTree read %q: %v, want %v", text, got, !dup)
			}
		}
	}
	// Nested deeper than convert allows: left to the parser, which
	// reports it.
	deep := strings.Repeat("[", maxDepth+2) + "1" + strings.Repeat("]", maxDepth+2)
	if checkFastLikeParser(t, []byte("a: "+deep+"\n")) {
		t.Errorf("fastTree read a value nested %d deep", maxDepth+2)
	}
	var b strings.Builder
	for i := range maxDepth + 2 {
		fmt.Fprintf(&b, "%sk%d:\n", strings.Repeat(" ", i), i)
	}
	fmt.Fprintf(&b, "%sv: 1\n", strings.Repeat(" ", maxDepth+2))
	if checkFastLikeParser(t, []byte(b.String())) {
		t.Errorf("fastTree read maps nested %d deep", maxDepth+2)
	}
}

// TestFastReadsWhatTapwatchWrites: the bench's policies and a learned
// baseline are read by fastTree alone, whole and in pieces, to the
// tree the parser gives; so are the hand-written cases it reads.
func TestFastReadsWhatTapwatchWrites(t *testing.T) {
	files := map[string][]byte{"learned": learnedLike(40)}
	for _, kind := range []string{"small", "site"} {
		data, err := benchtool.Policy(kind, 100)
		if err != nil {
			t.Fatal(err)
		}
		files[kind] = data
	}
	for name, data := range files {
		if !checkFastLikeParser(t, data) {
			t.Errorf("%s: fastTree did not read it", name)
		}
		d := &decoder{Decoder: newTestDecoder()}
		if _, ok := d.parsePieces(data); !ok {
			t.Fatalf("%s: not parsed in pieces", name)
		}
		if d.parsed != 0 {
			t.Errorf("%s: the parser read %d pieces, want none", name, d.parsed)
		}
		checkLikeWhole(t, data, 300)
	}
	cases, _ := filepath.Glob("testdata/cases/*/policy.yaml")
	read := 0
	for _, name := range cases {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if checkFastLikeParser(t, data) {
			read++
		}
	}
	t.Logf("fastTree read %d of %d hand-written cases", read, len(cases))
}

// FuzzFastLikeParser: whatever fastTree reads is the tree the parser and
// convert give, places included, and the parser finds nothing wrong in
// it.
func FuzzFastLikeParser(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(c.yaml))
	}
	addCaseSeeds(f)
	if data, err := benchtool.Policy("small", 10); err == nil {
		f.Add(data)
	}
	f.Add(learnedLike(2))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastLikeParser(t, data)
	})
}

// BenchmarkFastWideMap: a map of 20,000 keys on one line (flow) and on
// 20,000 lines (block), read by fastTree and by the parser with convert;
// fastTree's time grows with the keys, not their square (a key given
// twice is found through a set past a few keys).
func BenchmarkFastWideMap(b *testing.B) {
	var flow, block strings.Builder
	flow.WriteString("a: {")
	for i := range 20000 {
		if i > 0 {
			flow.WriteString(", ")
		}
		fmt.Fprintf(&flow, "k%d: %d", i, i)
		fmt.Fprintf(&block, "k%d: %d\n", i, i)
	}
	flow.WriteString("}\n")
	for _, c := range []struct {
		shape string
		text  []byte
	}{{"flow", []byte(flow.String())}, {"block", []byte(block.String())}} {
		b.Run(c.shape+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := fastOnly(c.text); !ok {
					b.Fatal("fastTree did not read it")
				}
			}
		})
		b.Run(c.shape+"/parser", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, errs := wholeTree(c.text); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}
