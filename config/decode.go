package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/tapwatch/tapwatch/internal/suggest"
	"github.com/tapwatch/tapwatch/rules"
)

// Error is one problem in a config file: where it is (Line and Column
// are 0 when the field is not in the file: a default, or missing) and the
// field's path, in Path. It is the policy loader's error type, so both
// read the same.
type Error = rules.Error

// decoder fills a struct from a YAML tree by its yaml tags, reporting
// every problem with its position and field path.
type decoder struct {
	file string
	errs []*Error
	pos  map[string][2]int // field path → line, column
}

var durationType = reflect.TypeOf(time.Duration(0))

const maxDepth = 16

func (d *decoder) errorf(n ast.Node, field, format string, a ...any) {
	line, col := nodePos(n)
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Path: field, Msg: fmt.Sprintf(format, a...)})
}

func nodePos(n ast.Node) (int, int) {
	if n == nil {
		return 0, 0
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// parse decodes data into out (a pointer to a struct).
func (d *decoder) parse(data []byte, out any) (err error) {
	defer func() {
		// The parser is not ours; a bug in it must not take the sensor down.
		if r := recover(); r != nil {
			err = &Error{File: d.file, Msg: fmt.Sprintf("the YAML parser failed: %v", r)}
		}
	}()
	f, perr := parser.ParseBytes(data, 0)
	if perr != nil {
		var ye yaml.Error
		if errors.As(perr, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			p := ye.GetToken().Position
			return &Error{File: d.file, Line: p.Line, Column: p.Column, Msg: ye.GetMessage()}
		}
		return &Error{File: d.file, Msg: perr.Error()}
	}
	if len(f.Docs) > 1 {
		d.errorf(f.Docs[1], "", "one YAML document expected, found %d", len(f.Docs))
	}
	if len(f.Docs) > 0 && f.Docs[0].Body != nil {
		d.value(f.Docs[0].Body, reflect.ValueOf(out).Elem(), "", 0)
	}
	return nil
}

// value decodes n into v.
func (d *decoder) value(n ast.Node, v reflect.Value, path string, depth int) {
	if depth > maxDepth {
		d.errorf(n, path, "nested more than %d levels deep", maxDepth)
		return
	}
	switch x := n.(type) {
	case *ast.CommentGroupNode:
		return
	case *ast.AnchorNode, *ast.AliasNode, *ast.MergeKeyNode:
		d.errorf(n, path, "anchors, aliases and merge keys are not supported here; write the value out")
		return
	case *ast.TagNode:
		d.errorf(n, path, "tags (%s) are not supported here", x.Start.Value)
		return
	}
	if path != "" {
		if _, ok := d.pos[path]; !ok {
			l, c := nodePos(n)
			d.pos[path] = [2]int{l, c}
		}
	}
	if _, null := n.(*ast.NullNode); null {
		return // an empty value: the default
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path, depth)
		return
	}
	if v.Type() == durationType {
		s, ok := scalarText(n)
		dur, err := time.ParseDuration(s)
		if !ok || err != nil {
			d.errorf(n, path, "%s is not a duration (like 50ms, 30s, 10m, 24h)", describe(n))
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path, depth)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			// One value where a list is expected: a list of one.
			if _, isMap := n.(*ast.MappingNode); isMap {
				d.errorf(n, path, "expected a list, found a map")
				return
			}
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			d.value(n, v.Index(0), path+"[0]", depth+1)
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values)))
		for i, it := range seq.Values {
			d.value(it, v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	case reflect.String:
		s, ok := scalarText(n)
		if !ok {
			d.errorf(n, path, "expected text, found %s", describe(n))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(n, path, "expected true or false, found %s", describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, ok := scalarText(n)
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if _, isInt := n.(*ast.IntegerNode); !ok || !isInt || err != nil || v.OverflowInt(i) {
			d.errorf(n, path, "%s is not a whole number in range", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		s, ok := scalarText(n)
		u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 64)
		if _, isInt := n.(*ast.IntegerNode); !ok || !isInt || err != nil || v.OverflowUint(u) {
			max := uint64(math.MaxUint64) >> (64 - v.Type().Bits())
			d.errorf(n, path, "%s is not a whole number from 0 to %d", describe(n), max)
			return
		}
		v.SetUint(u)
	case reflect.Float64, reflect.Float32:
		var f float64
		switch x := n.(type) {
		case *ast.FloatNode:
			f = x.Value
		case *ast.IntegerNode:
			s, _ := scalarText(n)
			var err error
			if f, err = strconv.ParseFloat(s, 64); err != nil {
				d.errorf(n, path, "%s is not a number", describe(n))
				return
			}
		default:
			d.errorf(n, path, "%s is not a number", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, path, "cannot be set from a config file")
	}
}

func (d *decoder) structure(n ast.Node, v reflect.Value, path string, depth int) {
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		d.errorf(n, path, "expected a map of %s, found %s", strings.Join(fieldNames(v.Type()), ", "), describe(n))
		return
	}
	seen := map[string]bool{}
	for _, mv := range values {
		key, ok := scalarText(mv.Key)
		if !ok {
			d.errorf(mv.Key, path, "a key must be a plain name")
			continue
		}
		field := key
		if path != "" {
			field = path + "." + key
		}
		if seen[key] {
			d.errorf(mv.Key, field, "given twice")
			continue
		}
		seen[key] = true
		i := fieldIndex(v.Type(), key)
		if i < 0 {
			d.errorf(mv.Key, path, "unknown field %q%s", key, didYouMean(key, fieldNames(v.Type())))
			continue
		}
		if mv.Value == nil {
			continue
		}
		d.value(mv.Value, v.Field(i), field, depth+1)
	}
}

func fieldName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

func fieldIndex(t reflect.Type, key string) int {
	for i := range t.NumField() {
		if fieldName(t.Field(i)) == key {
			return i
		}
	}
	return -1
}

func fieldNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if n := fieldName(t.Field(i)); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// scalarText is the text of a scalar node as written.
func scalarText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		if x.Value == nil {
			return "", true
		}
		return x.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a map"
	case *ast.SequenceNode:
		return "a list"
	}
	if s, ok := scalarText(n); ok {
		return strconv.Quote(s)
	}
	return "nothing"
}

// didYouMean suggests the closest of names to s, when one is close.
func didYouMean(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if len(s) >= 3 && strings.HasPrefix(n, s) {
			return fmt.Sprintf("; did you mean %q?", n)
		}
		if d := suggest.Distance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return "; the fields here are " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// join sorts errors by position and joins them.
func join(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Line != errs[j].Line {
			return errs[i].Line < errs[j].Line
		}
		return errs[i].Column < errs[j].Column
	})
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}
