package config

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/tapwatch/tapwatch/internal/yamlpos"
)

// decoder fills a struct from a YAML tree by its yaml tags, reporting
// every problem with its position and field path.
type decoder struct {
	*yamlpos.Decoder
}

var durationType = reflect.TypeOf(time.Duration(0))

const maxDepth = 16

func (d *decoder) errorf(n ast.Node, field, format string, a ...any) {
	d.Errorf(yamlpos.PosOf(n), field, format, a...)
}

// intText is the text of the integer n for strconv with base 0, and
// whether n is an integer: a leading zero is decimal, as in YAML 1.2
// (yamlpos.LeadingZero), also in 08 and 09, which the parser takes for
// text; 0o17, 0x1F and 0b101 say their base; underscores are dropped.
func intText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		if d, ok := yamlpos.LeadingZero(x.Token.Value); ok {
			return d, true
		}
		return strings.ReplaceAll(x.Token.Value, "_", ""), true
	case *ast.StringNode:
		if x.Token.Type == token.StringType { // written plain, not quoted
			return yamlpos.LeadingZero(x.Value)
		}
	}
	return "", false
}

// parse decodes data into out (a pointer to a struct).
func (d *decoder) parse(data []byte, out any) error {
	f, err := d.Parse(data)
	if err != nil {
		return err
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
		d.Pos.Record(path, yamlpos.PosOf(n))
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
		s, ok := yamlpos.ScalarText(n)
		dur, err := time.ParseDuration(s)
		if !ok || err != nil {
			d.errorf(n, path, "%s is not a duration (like 50ms, 30s, 10m, 24h)", yamlpos.Describe(n))
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
			d.value(n, v.Index(0), yamlpos.Elem(path, 0), depth+1)
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values)))
		for i, it := range seq.Values {
			d.value(it, v.Index(i), yamlpos.Elem(path, i), depth+1)
		}
	case reflect.String:
		s, ok := yamlpos.ScalarText(n)
		if !ok {
			d.errorf(n, path, "expected text, found %s", yamlpos.Describe(n))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(n, path, "expected true or false, found %s", yamlpos.Describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, isInt := intText(n)
		i, err := strconv.ParseInt(s, 0, 64)
		if !isInt || err != nil || v.OverflowInt(i) {
			d.errorf(n, path, "%s is not a whole number in range", yamlpos.Describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		s, isInt := intText(n)
		u, err := strconv.ParseUint(s, 0, 64)
		if !isInt || err != nil || v.OverflowUint(u) {
			max := uint64(math.MaxUint64) >> (64 - v.Type().Bits())
			d.errorf(n, path, "%s is not a whole number from 0 to %d", yamlpos.Describe(n), max)
			return
		}
		v.SetUint(u)
	case reflect.Float64, reflect.Float32:
		var f float64
		if x, ok := n.(*ast.FloatNode); ok {
			f = x.Value
		} else if s, ok := intText(n); ok { // as an integer field reads it: 08, 0x10, 1_000
			if i, err := strconv.ParseInt(s, 0, 64); err == nil {
				f = float64(i)
			} else if f, err = strconv.ParseFloat(s, 64); err != nil {
				d.errorf(n, path, "%s is not a number", yamlpos.Describe(n))
				return
			}
		} else {
			d.errorf(n, path, "%s is not a number", yamlpos.Describe(n))
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
		d.errorf(n, path, "expected a map of %s, found %s", strings.Join(fieldNames(v.Type()), ", "), yamlpos.Describe(n))
		return
	}
	seen := map[string]bool{}
	for _, mv := range values {
		key, ok := yamlpos.ScalarText(mv.Key)
		if !ok {
			d.errorf(mv.Key, path, "a key must be a plain name")
			continue
		}
		field := yamlpos.Field(path, key)
		if seen[key] {
			d.errorf(mv.Key, field, "given twice")
			continue
		}
		seen[key] = true
		if !d.Known(yamlpos.PosOf(mv.Key), path, key, fieldNames(v.Type())) {
			continue
		}
		i := fieldIndex(v.Type(), key)
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
