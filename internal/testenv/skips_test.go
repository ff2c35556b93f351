package testenv

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNoDirectSkips: no Go file of the repository outside internal/testenv
// calls Skip, Skipf or SkipNow of a testing.T, B, F or TB itself. Such a
// skip would pass CI under TAPWATCH_REQUIRE_ALL=1; the helpers of this
// package fail instead, and name the remedy.
func TestNoDirectSkips(t *testing.T) {
	root := Root(t)
	self := filepath.Join(root, "internal", "testenv")
	var found []string
	err := filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		name := d.Name()
		if dir == self || dir != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir // what go build leaves out, and this package
		}
		fset := token.NewFileSet()
		files, err := parseGoFiles(fset, dir)
		if err != nil {
			return err
		}
		for _, s := range directSkips(fset, files) {
			rel, _ := filepath.Rel(root, s)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: skip through internal/testenv (Need, NeedRoot, Tool, Corpus, Long, HelperProcess), so that TAPWATCH_REQUIRE_ALL=1 fails instead and the remedy is named", f)
	}
}

// parseGoFiles parses every .go file of dir (whatever its build tags): the
// files of a package and its tests, which share the names of their
// testing variables and fields.
func parseGoFiles(fset *token.FileSet, dir string) ([]*ast.File, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, name := range names {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// directSkips returns "file:line: X.Skip" for each use of Skip, Skipf or
// SkipNow (a call or a method value) on a name that files declare with a
// testing type: a parameter, variable or struct field of type *testing.T,
// *testing.B, *testing.F or testing.TB. It goes by names, not types (a
// parser's p.Skip() is not a test's), which is enough for this
// repository's tests: t, tb, b, p.t.
func directSkips(fset *token.FileSet, files []*ast.File) []string {
	testingNames := map[string]bool{}
	for _, f := range files {
		pkgs := testingImports(f)
		if len(pkgs) == 0 {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var names []*ast.Ident
			var typ ast.Expr
			switch n := n.(type) {
			case *ast.Field:
				names, typ = n.Names, n.Type
			case *ast.ValueSpec:
				names, typ = n.Names, n.Type
			}
			if typ != nil && isTestingType(typ, pkgs) {
				for _, id := range names {
					testingNames[id.Name] = true
				}
			}
			return true
		})
	}
	var found []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || !slices.Contains([]string{"Skip", "Skipf", "SkipNow"}, sel.Sel.Name) {
				return true
			}
			var recv string
			switch x := sel.X.(type) {
			case *ast.Ident:
				recv = x.Name
			case *ast.SelectorExpr:
				recv = x.Sel.Name
			}
			if testingNames[recv] {
				p := fset.Position(sel.Pos())
				found = append(found, fmt.Sprintf("%s:%d: %s.%s", p.Filename, p.Line, recv, sel.Sel.Name))
			}
			return true
		})
	}
	return found
}

// testingImports are the names under which f imports "testing".
func testingImports(f *ast.File) []string {
	var names []string
	for _, imp := range f.Imports {
		if path, _ := strconv.Unquote(imp.Path.Value); path == "testing" {
			name := "testing"
			if imp.Name != nil {
				name = imp.Name.Name
			}
			names = append(names, name)
		}
	}
	return names
}

func isTestingType(typ ast.Expr, pkgs []string) bool {
	star := false
	if s, ok := typ.(*ast.StarExpr); ok {
		typ, star = s.X, true
	}
	sel, ok := typ.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	if id, ok := sel.X.(*ast.Ident); !ok || !slices.Contains(pkgs, id.Name) {
		return false
	}
	switch sel.Sel.Name {
	case "T", "B", "F":
		return star
	case "TB":
		return !star
	}
	return false
}

// TestDirectSkipsFound: the scanner of TestNoDirectSkips finds the skips
// planted in a package, and only those.
func TestDirectSkipsFound(t *testing.T) {
	dir := t.TempDir()
	src := map[string]string{
		"a_test.go": `package a

import (
	"testing"

	tst "testing"
)

type plant struct{ t *testing.T }

func (p *plant) need() { p.t.Skip("field") }

func TestA(t *testing.T) { t.Skip("param") }

func helper(tb testing.TB) { tb.Skipf("%d", 1) }

func BenchmarkA(b *testing.B) { b.SkipNow() }

func FuzzA(f *tst.F) {
	skip := f.Skip // a method value
	skip()
}

var global *testing.T

func init() { global.Skip() }
`,
		"b.go": `package a

// Not a test's: the reader of another file, whose p and c are not
// declared with a testing type in this package.
type reader struct{}

func (reader) Skip(n ...int) error { return nil }

func read() {
	var p, c reader
	p.Skip()
	c.Skip(1, 2)
}
`,
	}
	for name, s := range src {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fset := token.NewFileSet()
	files, err := parseGoFiles(fset, dir)
	if err != nil {
		t.Fatal(err)
	}
	got := directSkips(fset, files)
	for i := range got {
		got[i] = strings.TrimPrefix(got[i], dir+string(filepath.Separator))
	}
	want := []string{
		"a_test.go:11: t.Skip",
		"a_test.go:13: t.Skip",
		"a_test.go:15: tb.Skipf",
		"a_test.go:17: b.SkipNow",
		"a_test.go:20: f.Skip",
		"a_test.go:26: global.Skip",
	}
	if !slices.Equal(got, want) {
		t.Errorf("found\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
