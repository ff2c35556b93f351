// Package yamlpos is what the policy and config loaders share to read
// YAML with positions: one error type naming the file, line, column and
// field path; one way to join several errors; one "did you mean" form;
// parsing, node positions, scalar text and unknown-field checks.
package yamlpos

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/tapwatch/tapwatch/internal/suggest"
)

// Error is one problem in a file: where it is (Line and Column are 0
// when unknown: a default, a missing field, a value built in Go) and the
// field's path, such as rules[2].when.fc.
type Error struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int
	Path   string // field path; "" for YAML syntax errors
	Msg    string
}

// Error reads "file:line:column: path: message", leaving out what is
// unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Join sorts errs by position, in file order (errors without a position
// first, otherwise in the order given), and joins them with errors.Join;
// nil when there are none.
func Join(errs []*Error) error {
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

// ReadFile reads the file at path, refusing one larger than limit bytes
// (a whole number of MiB) before reading it all.
func ReadFile(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, limit>>20)
	}
	return data, nil
}

// Pos is a place in a file; the zero value means unknown.
type Pos struct{ Line, Column int }

// PosOf is where node n starts.
func PosOf(n ast.Node) Pos {
	if n == nil {
		return Pos{}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return Pos{}
	}
	return Pos{tk.Position.Line, tk.Position.Column}
}

// Positions maps field paths to where they start in the file.
type Positions map[string]Pos

// Record keeps the first place given for path.
func (ps Positions) Record(path string, at Pos) {
	if _, ok := ps[path]; !ok {
		ps[path] = at
	}
}

// Lookup is where path, or the nearest field that holds it, starts.
func (ps Positions) Lookup(path string) (Pos, bool) {
	for k := path; k != ""; k = Parent(k) {
		if at, ok := ps[k]; ok {
			return at, true
		}
	}
	return Pos{}, false
}

// Index is field places made small to keep (IndexBuilder makes one): a
// sorted table of the paths' 64-bit hashes and their places, about 16
// bytes a path against some 80 in a Positions map. A learned baseline records a hundred thousand paths or
// more, and a loaded policy keeps its positions for the error messages
// of later checks. Two paths of one file with the same hash (about one
// chance in 10^9 for 100,000 paths) would give one of them the other's
// place in a message. The zero or nil Index knows no path.
type Index struct {
	seed maphash.Seed
	ents []indexEntry
}

type indexEntry struct {
	h         uint64
	line, col int32
}

// IndexBuilder records places as Positions does, straight into the
// compact form, so that a large file's paths are never all kept as
// strings. The zero value is ready to use.
type IndexBuilder struct {
	seed maphash.Seed
	recs []indexRecord
}

type indexRecord struct {
	indexEntry
	set bool   // Set, not Record: the last one counts
	seq uint32 // the order given, by which Index picks a path's record (in the padding after set: no bigger)
}

func (b *IndexBuilder) add(path string, at Pos, set bool) {
	b.addHash(maphash.String(b.seeded(), path), at, set)
}

// seeded is b's seed, made with its first record.
func (b *IndexBuilder) seeded() maphash.Seed {
	if b.recs == nil {
		b.seed = maphash.MakeSeed()
	}
	return b.seed
}

func (b *IndexBuilder) addHash(h uint64, at Pos, set bool) {
	b.recs = append(b.recs, indexRecord{indexEntry{h, int32(min(at.Line, math.MaxInt32)), int32(min(at.Column, math.MaxInt32))}, set, uint32(len(b.recs))})
}

// Record keeps the first place given for path, unless Set gives one.
func (b *IndexBuilder) Record(path string, at Pos) { b.add(path, at, false) }

// RecordField is Record(Field(path, key), at) without making the path:
// the hash of the two written one after the other is that of their
// concatenation. A learned baseline records half a million fields.
func (b *IndexBuilder) RecordField(path, key string, at Pos) {
	var h maphash.Hash
	h.SetSeed(b.seeded())
	if path != "" {
		h.WriteString(path)
		h.WriteByte('.')
	}
	h.WriteString(key)
	b.addHash(h.Sum64(), at, false)
}

// Set gives path its place, whatever was recorded for it before or after.
func (b *IndexBuilder) Set(path string, at Pos) { b.add(path, at, true) }

// Len is the number of places recorded.
func (b *IndexBuilder) Len() int { return len(b.recs) }

// Truncate forgets all but the first n places recorded.
func (b *IndexBuilder) Truncate(n int) { b.recs = b.recs[:n] }

// Index is what b recorded, compact; b is empty afterwards.
func (b *IndexBuilder) Index() *Index {
	recs := b.recs
	sortByHash(recs)
	ents := make([]indexEntry, 0, len(recs))
	for i := 0; i < len(recs); {
		// Of a path's records, in whatever order the sort left them:
		// the last Set given, or with none, the first Record.
		j, pick := i+1, i
		for ; j < len(recs) && recs[j].h == recs[i].h; j++ {
			p, q := &recs[pick], &recs[j]
			if q.set && (!p.set || q.seq > p.seq) || !q.set && !p.set && q.seq < p.seq {
				pick = j
			}
		}
		ents = append(ents, recs[pick].indexEntry)
		i = j
	}
	x := &Index{seed: b.seed, ents: ents}
	if len(ents) < cap(ents)*7/8 { // paths recorded more than once
		x.ents = slices.Clone(ents)
	}
	*b = IndexBuilder{}
	return x
}

// radixBits is how many of a hash's top bits choose its bucket in
// sortByHash.
const radixBits = 11

// sortByHash orders recs by hash, in place, not stably (Index picks a
// path's record by seq). A learned baseline records half a million
// paths or more, and sorting them by comparisons took a tenth of its
// load (docs/performance.md, "Later (14)"): the hashes, evenly spread,
// are first dealt into 2,048 buckets by their top bits, in place (an
// American flag sort), and each bucket, a few hundred records, is then
// sorted by comparisons: about 8 comparisons a record instead of 19.
func sortByHash(recs []indexRecord) {
	byHash := func(a, b indexRecord) int { return cmp.Compare(a.h, b.h) }
	const buckets = 1 << radixBits
	if len(recs) < 4*buckets {
		slices.SortFunc(recs, byHash)
		return
	}
	bucket := func(r *indexRecord) int { return int(r.h >> (64 - radixBits)) }
	next, end := make([]int, buckets), make([]int, buckets)
	for i := range recs {
		end[bucket(&recs[i])]++
	}
	sum := 0
	for k := range buckets {
		next[k] = sum
		sum += end[k]
		end[k] = sum
	}
	for k := range buckets {
		for next[k] < end[k] {
			r := recs[next[k]]
			// Carry r to its bucket, taking the record it displaces
			// on, until one that belongs in k comes back.
			for d := bucket(&r); d != k; d = bucket(&r) {
				r, recs[next[d]] = recs[next[d]], r
				next[d]++
			}
			recs[next[k]] = r
			next[k]++
		}
	}
	lo := 0 // bucket k is recs[lo:end[k]]
	for k := range buckets {
		slices.SortFunc(recs[lo:end[k]], byHash)
		lo = end[k]
	}
}

// At is where path starts, when recorded.
func (x *Index) At(path string) (Pos, bool) {
	if x == nil || len(x.ents) == 0 {
		return Pos{}, false
	}
	h := maphash.String(x.seed, path)
	i, ok := slices.BinarySearchFunc(x.ents, h, func(e indexEntry, h uint64) int { return cmp.Compare(e.h, h) })
	if !ok {
		return Pos{}, false
	}
	return Pos{int(x.ents[i].line), int(x.ents[i].col)}, true
}

// Places is every place x keeps, in no particular order: two indexes
// of one file, made with different seeds, compare by them.
func (x *Index) Places() []Pos {
	if x == nil {
		return nil
	}
	out := make([]Pos, len(x.ents))
	for i, e := range x.ents {
		out[i] = Pos{int(e.line), int(e.col)}
	}
	return out
}

// Lookup is where path, or the nearest field that holds it, starts.
func (x *Index) Lookup(path string) (Pos, bool) {
	for k := path; k != ""; k = Parent(k) {
		if at, ok := x.At(k); ok {
			return at, true
		}
	}
	return Pos{}, false
}

// Errorf is Positions.Errorf with the places of x.
func (x *Index) Errorf(file, path, key, format string, a ...any) *Error {
	e := &Error{File: file, Path: path, Msg: fmt.Sprintf(format, a...)}
	if at, ok := x.Lookup(key); ok {
		e.Line, e.Column = at.Line, at.Column
	}
	return e
}

// Field is the path of field key in the map at path.
func Field(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Elem is the path of element i of the list at path. A learned
// baseline makes one for each of a hundred thousand elements or more:
// a concatenation, not fmt.Sprintf, which took ten times as long and
// a tenth of such a load (docs/performance.md, "Later (14)").
func Elem(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Parent is the path of the map or list that holds path; "" at the top.
func Parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// Decoder collects the problems found in one file, in any order; Err
// sorts and joins them.
type Decoder struct {
	File string
	Errs []*Error
	Pos  Positions // where each field path starts, when recorded
}

// NewDecoder is a decoder of the file named file.
func NewDecoder(file string) *Decoder {
	return &Decoder{File: file, Pos: Positions{}}
}

// Errorf reports a problem of field path (which may be "") at at.
func (d *Decoder) Errorf(at Pos, path, format string, a ...any) {
	d.Errs = append(d.Errs, &Error{File: d.File, Line: at.Line, Column: at.Column, Path: path, Msg: fmt.Sprintf(format, a...)})
}

// Err is every problem reported, joined (see Join); nil when none.
func (d *Decoder) Err() error { return Join(d.Errs) }

var crlf = []byte("\r\n")

// Text is the package's Text, with an error that names the file.
func (d *Decoder) Text(data []byte) ([]byte, error) {
	text, err := Text(data)
	if err != nil {
		return nil, &Error{File: d.File, Msg: err.Error()}
	}
	return text, nil
}

// Parse parses data into a YAML syntax tree. A syntax error is an *Error
// at its place; a panic of the parser, which is not ours, is an *Error
// too rather than a crash. Lines may end in LF or CR LF; the file may be
// in UTF-8, with or without a byte order mark, UTF-16 or UTF-32 (Text).
func (d *Decoder) Parse(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, &Error{File: d.File, Msg: fmt.Sprintf("the YAML parser failed: %v", r)}
		}
	}()
	if data, err = d.Text(data); err != nil {
		return nil, err
	}
	if bytes.Contains(data, crlf) {
		// goccy/go-yaml counts a comment's line twice when it ends in
		// CR LF, so every line after a comment would be misnumbered.
		// YAML reads CR LF as one line break, in scalars too, so the
		// parser is given LF alone and the values do not change.
		data = bytes.ReplaceAll(data, crlf, crlf[1:])
	}
	f, err = parser.ParseBytes(data, 0)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			p := ye.GetToken().Position
			return nil, &Error{File: d.File, Line: p.Line, Column: p.Column, Msg: syntaxMessage(ye.GetMessage())}
		}
		return nil, &Error{File: d.File, Msg: err.Error()}
	}
	return f, nil
}

// syntaxMessage is the parser's message, with a tab it quotes named: the
// character is invisible in a terminal, and YAML indents with spaces.
func syntaxMessage(msg string) string {
	msg = strings.ReplaceAll(msg, "found character '\t' that cannot start any token", "found a tab: YAML indents with spaces, not tabs")
	return strings.ReplaceAll(msg, "'\t'", "a tab")
}

// Known reports whether key is one of allowed; when it is not, it
// reports an unknown field of the map at path, with a suggestion.
func (d *Decoder) Known(at Pos, path, key string, allowed []string) bool {
	for _, a := range allowed {
		if a == key {
			return true
		}
	}
	d.Errorf(at, path, "unknown field %q%s", key, Choices(key, allowed))
	return false
}

// ScalarText is the text of a scalar node as written; false for maps,
// lists and anything else that is not a scalar.
func ScalarText(n ast.Node) (string, bool) {
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

// LeadingZero reports whether s, an integer scalar's text, is a decimal
// number written with leading zeros (017, -0042, 01_000), and returns it
// without them (and without YAML 1.1's underscores). YAML 1.2's core
// schema reads such a number in decimal: 017 is seventeen. YAML 1.1, the
// parser and Go's strconv with base 0 read it in octal, fifteen, which is
// not what a register number padded with zeros in a spreadsheet means.
// 0o17, 0x1F and 0b101 say their base and are not this.
func LeadingZero(s string) (string, bool) {
	sign, digits := "", strings.ReplaceAll(s, "_", "")
	if digits != "" && (digits[0] == '-' || digits[0] == '+') {
		sign, digits = digits[:1], digits[1:]
	}
	if len(digits) < 2 || digits[0] != '0' {
		return s, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return s, false
		}
	}
	if digits = strings.TrimLeft(digits, "0"); digits == "" {
		digits = "0"
	}
	if sign == "+" {
		sign = ""
	}
	return sign + digits, true
}

// Describe names what n is for an error: a map, a list, a scalar's text
// quoted, or nothing.
func Describe(n ast.Node) string {
	switch x := n.(type) {
	case *ast.MappingNode:
		if len(x.Values) == 1 {
			return Describe(x.Values[0])
		}
		return "a map"
	case *ast.MappingValueNode:
		k, kok := ScalarText(x.Key)
		v, vok := ScalarText(x.Value)
		if kok && vok {
			return MapOf(k, PosOf(x.Key), v, PosOf(x.Value))
		}
		return "a map"
	case *ast.SequenceNode:
		return "a list"
	}
	if s, ok := ScalarText(n); ok {
		return strconv.Quote(s)
	}
	return "nothing"
}

// MapOf describes a map of one key and a scalar value, for an error where
// text was expected. When the value follows the colon with no space, the
// user most likely wrote text with a colon in it (a URL, an IPv6 address)
// inside [...] in {...}, which the parser (goccy/go-yaml) cuts at its last
// colon where YAML would not: the description says to quote it.
func MapOf(key string, keyAt Pos, val string, valAt Pos) string {
	if keyAt.Line > 0 && keyAt.Line == valAt.Line && valAt.Column == keyAt.Column+utf8.RuneCountInString(key)+1 {
		return fmt.Sprintf("a map (to give %s as text, quote it)", strconv.Quote(key+":"+val))
	}
	return "a map"
}

// DidYouMean suggests the candidate closest to a misspelt word (see
// suggest.Closest) as " (did you mean x?)"; "" when none is close.
func DidYouMean(word string, candidates []string) string {
	if best := suggest.Closest(word, candidates); best != "" {
		return " (did you mean " + best + "?)"
	}
	return ""
}

// Choices is DidYouMean, or when no candidate is close, the list of
// them: " (expected a, b or c)".
func Choices(word string, candidates []string) string {
	if s := DidYouMean(word, candidates); s != "" {
		return s
	}
	return " (expected " + ListOr(candidates) + ")"
}

// ListOr lists names as "a, b or c".
func ListOr(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Errorf is an error about field path of file, placed where key (path
// or one of its elements) starts, or else the nearest field holding it;
// without a place when none was recorded.
func (ps Positions) Errorf(file, path, key, format string, a ...any) *Error {
	e := &Error{File: file, Path: path, Msg: fmt.Sprintf(format, a...)}
	if at, ok := ps.Lookup(key); ok {
		e.Line, e.Column = at.Line, at.Column
	}
	return e
}
