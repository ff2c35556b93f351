package policy

import (
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/tapwatch/tapwatch/internal/yamlpos"
)

// The YAML most files hold, read without the YAML parser.
//
// goccy/go-yaml builds a token, with its position, for every scalar and
// indicator, and a syntax tree over them, before convert reduces the
// tree to nodes: two thirds of the instructions of loading a 500-rule
// policy, and with the garbage collections its allocations bring, most
// of loading a learned baseline of a few MB (docs/performance.md). The
// files tapwatch writes, and most that people write, use a small part of
// YAML: block maps and lists, one-line flow maps and lists, plain
// scalars on one line, quoted scalars without escapes, comments.
// fastTree reads that part straight into nodes, and gives up at anything
// else (the caller then asks the parser, which also reports any error):
// an empty value, a scalar over several lines, a block scalar (| or >),
// an escape, an anchor, alias, tag or merge key, a quoted or complex
// key, a key given twice in one map, a ":" in a plain scalar of a flow
// collection, a tab, a carriage return, a control character, text beyond
// ASCII outside a comment's own line, a document marker or directive,
// and whatever it does not recognise. The scalars it is not sure of it types as the parser does,
// with the parser's own token.New and ast constructors.
// FuzzFastLikeParser checks that whatever it returns is the tree the
// parser and convert give, positions included.

// fastYAML turns fastTree on; tests turn it off to compare with the
// parser.
var fastYAML = true

// fastParser is one fastTree: the text and the line it is at. It reads
// the lines one after the other and keeps none, so that no file, however
// many lines it has, costs memory by its lines.
type fastParser struct {
	d    *decoder
	text []byte
	l    fastLine          // the current line
	no   int               // its index, from 0
	eof  bool              // past the last line
	bad  bool              // a line holds what the reader does not handle: the text is the parser's
	seen map[string]string // keys and short scalars, each allocated once
}

// fastLine is a line of the text: text[start:end], no newline; ind is
// its indentation in spaces; content is false for a line of nothing but
// spaces and perhaps a comment.
type fastLine struct {
	start, end int
	ind        int
	content    bool
}

// fastTree reads text (a whole file, or a piece of one, whose first line
// is line d.lineOff+1 of the file) as one block map or list at depth,
// and returns its tree, or false when the parser must read it.
func (d *decoder) fastTree(text []byte, depth int) (*node, bool) {
	if !fastYAML {
		return nil, false
	}
	p := fastParser{d: d, text: text}
	p.load(0)
	p.skip()
	if p.eof {
		return nil, false // nothing but comments: the parser says what that is
	}
	n, ok := p.block(p.l.ind, p.l.start+p.l.ind, depth)
	if !ok {
		return nil, false
	}
	if p.skip(); !p.eof || p.bad {
		return nil, false // a line further left than the first, or one the parser must read
	}
	return n, true
}

// load makes the line that starts at offset start the current one. A
// line that holds a byte the fast reader does not handle, or starts a
// document or a directive, ends the text for the reader, and marks it
// as the parser's.
func (p *fastParser) load(start int) {
	text := p.text
	end, other := start, false
	for end < len(text) && text[end] != '\n' {
		if c := text[end]; c < 0x20 || c == 0x7f {
			p.eof, p.bad = true, true // a tab, a CR or a control
			return
		} else if c > 0x7f {
			other = true
		}
		end++
	}
	ind := 0
	for start+ind < end && text[start+ind] == ' ' {
		ind++
	}
	l := fastLine{start: start, end: end, ind: ind}
	l.content = start+ind < end && text[start+ind] != '#'
	if other && l.content {
		// Beyond ASCII a column counts characters, not octets; a
		// comment's line is the one place such text may be.
		p.eof, p.bad = true, true
		return
	}
	if l.content && ind == 0 {
		if t := text[start:end]; t[0] == '%' || len(t) >= 3 && (string(t[:3]) == "---" || string(t[:3]) == "...") {
			p.eof, p.bad = true, true
			return
		}
	}
	p.l = l
}

// next moves to the next line.
func (p *fastParser) next() {
	if p.eof {
		return
	}
	if p.l.end == len(p.text) {
		p.eof = true
		return
	}
	p.no++
	p.load(p.l.end + 1)
}

// skip moves to the next line with content, from the current one.
func (p *fastParser) skip() {
	for !p.eof && !p.l.content {
		p.next()
	}
}

// pos is the place of offset at in the current line.
func (p *fastParser) pos(at int) yamlpos.Pos {
	return yamlpos.Pos{Line: p.d.lineOff + p.no + 1, Column: at - p.l.start + 1}
}

// block reads the block map or list whose entries are indented ind
// spaces; the first starts at offset at of the current line (after a
// list's "- " when the map is an item's).
func (p *fastParser) block(ind, at, depth int) (*node, bool) {
	if p.text[at] == '-' {
		return p.list(ind, at, depth)
	}
	return p.mapping(ind, at, depth)
}

// list reads a block list whose "-" are indented ind spaces, the first
// at offset at of the current line.
func (p *fastParser) list(ind, at, depth int) (*node, bool) {
	if depth > maxDepth {
		return nil, false // convert reports it
	}
	out := &node{kind: kindSeq, pos: p.pos(at)}
	for {
		l := p.l
		if at+1 < l.end && p.text[at+1] != ' ' {
			return nil, false // "-x" is a scalar, not an item
		}
		v := at + 1
		for v < l.end && p.text[v] == ' ' {
			v++
		}
		if v == l.end || p.text[v] == '#' || p.text[v] == '-' {
			return nil, false // an empty item, or an item that is a list
		}
		var it *node
		var ok bool
		if _, _, isKey := p.key(v, l.end); isKey {
			it, ok = p.mapping(v-l.start, v, depth+1)
		} else {
			it, ok = p.inlineLast(v, depth+1, ind)
		}
		if !ok {
			return nil, false
		}
		out.items = append(out.items, it)
		p.skip()
		if p.eof {
			return out, true
		}
		switch l := p.l; {
		case l.ind > ind:
			return nil, false
		case l.ind < ind || p.text[l.start+l.ind] != '-':
			return out, true // the list's end; the caller judges the line
		default:
			at = l.start + l.ind
		}
	}
}

// mapping reads a block map whose keys are indented ind spaces, the
// first at offset at of the current line.
func (p *fastParser) mapping(ind, at, depth int) (*node, bool) {
	if depth > maxDepth {
		return nil, false
	}
	out := &node{kind: kindMap}
	var set map[string]struct{}
	for {
		l := p.l
		key, colon, ok := p.key(at, l.end)
		if !ok {
			return nil, false
		}
		if !fresh(out.keys, key, &set) {
			return nil, false // a key given twice: the parser reports it
		}
		kpos := p.pos(at)
		v := colon + 1
		for v < l.end && p.text[v] == ' ' {
			v++
		}
		var val *node
		if v == l.end || p.text[v] == '#' {
			// The value is the block below: further right, or a list
			// at the key's own indentation.
			p.next()
			p.skip()
			if p.eof {
				return nil, false // an empty value
			}
			n := p.l
			first := n.start + n.ind
			switch {
			case n.ind > ind:
			case n.ind == ind && p.text[first] == '-':
			default:
				return nil, false // an empty value
			}
			if p.text[first] != '-' {
				if _, _, isKey := p.key(first, n.end); !isKey {
					return nil, false // a scalar on a line of its own
				}
			}
			val, ok = p.block(n.ind, first, depth+1)
		} else {
			val, ok = p.inlineLast(v, depth+1, ind)
		}
		if !ok {
			return nil, false
		}
		out.keys = append(out.keys, entry{key: key, pos: kpos, val: val})
		p.skip()
		if p.eof {
			break
		}
		n := p.l
		if n.ind > ind {
			return nil, false
		}
		if n.ind < ind || p.text[n.start+n.ind] == '-' {
			break // the map's end; the caller judges the line
		}
		at = n.start + n.ind
	}
	out.pos = out.keys[0].pos
	return out, true
}

// key reads a plain key at offset at, up to end, and returns it and the
// offset of its colon, which a space or the line's end follows; false
// when there is none, or the key is not a plain name.
func (p *fastParser) key(at, end int) (string, int, bool) {
	i := at
	for i < end && keyByte(p.text[i]) {
		i++
	}
	if i == at || i == end || p.text[i] != ':' || i+1 < end && p.text[i+1] != ' ' {
		return "", 0, false
	}
	b := p.text[at:i]
	if !letter(b[0]) {
		return "", 0, false // numbers, booleans and the like as keys: the parser's
	}
	if _, reserved := fastReserved[string(b)]; reserved {
		return "", 0, false
	}
	return p.str(b), i, true
}

// inlineLast reads the value at offset at of the current line, which
// must end the line (a comment may follow), at depth; ind is the
// indentation of the entry that holds it. It moves to the next line,
// and refuses a value that goes on over lines further right.
func (p *fastParser) inlineLast(at, depth, ind int) (*node, bool) {
	l := p.l
	n, end, ok := p.inline(at, l.end, depth, false)
	if !ok {
		return nil, false
	}
	if end < l.end {
		if p.text[end] != '#' || p.text[end-1] != ' ' {
			return nil, false
		}
	}
	p.next()
	p.skip()
	if !p.eof && p.l.ind > ind {
		return nil, false // a scalar over several lines, or a block after a value
	}
	return n, true
}

// inline reads the scalar or flow collection at offset at, before end,
// and returns it and the offset after it and any spaces that follow.
func (p *fastParser) inline(at, end, depth int, flow bool) (*node, int, bool) {
	if depth > maxDepth {
		return nil, 0, false
	}
	switch p.text[at] {
	case '{':
		return p.flowMap(at, end, depth)
	case '[':
		return p.flowList(at, end, depth)
	case '"', '\'':
		return p.quoted(at, end)
	}
	return p.plain(at, end, flow)
}

func (p *fastParser) spaces(i, end int) int {
	for i < end && p.text[i] == ' ' {
		i++
	}
	return i
}

// flowMap reads {key: value, ...} on one line.
func (p *fastParser) flowMap(at, end, depth int) (*node, int, bool) {
	out := &node{kind: kindMap, flow: true, pos: p.pos(at)}
	var set map[string]struct{}
	i := p.spaces(at+1, end)
	if i < end && p.text[i] == '}' {
		return out, p.spaces(i+1, end), true
	}
	for {
		key, colon, ok := p.key(i, end)
		if !ok || !fresh(out.keys, key, &set) {
			return nil, 0, false
		}
		kpos := p.pos(i)
		if i = p.spaces(colon+1, end); i == end {
			return nil, 0, false
		}
		val, next, ok := p.inline(i, end, depth+1, true)
		if !ok {
			return nil, 0, false
		}
		out.keys = append(out.keys, entry{key: key, pos: kpos, val: val})
		var closed bool
		if i, closed, ok = p.separator(next, end, '}'); !ok {
			return nil, 0, false
		}
		if closed {
			return out, i, true
		}
	}
}

// separator reads what follows an entry of a flow collection at offset
// i: a "," and the next entry's offset, or the closing character and
// the offset after it and its spaces (closed); false for anything else,
// the line's end included (a collection over several lines), and for a
// trailing ",".
func (p *fastParser) separator(i, end int, closing byte) (int, bool, bool) {
	switch {
	case i == end:
		return 0, false, false
	case p.text[i] == closing:
		return p.spaces(i+1, end), true, true
	case p.text[i] != ',':
		return 0, false, false
	}
	i = p.spaces(i+1, end)
	if i == end || p.text[i] == closing {
		return 0, false, false
	}
	return i, false, true
}

// flowList reads [value, ...] on one line.
func (p *fastParser) flowList(at, end, depth int) (*node, int, bool) {
	out := &node{kind: kindSeq, flow: true, pos: p.pos(at)}
	i := p.spaces(at+1, end)
	if i < end && p.text[i] == ']' {
		return out, p.spaces(i+1, end), true
	}
	for {
		if i == end {
			return nil, 0, false
		}
		it, next, ok := p.inline(i, end, depth+1, true)
		if !ok {
			return nil, 0, false
		}
		out.items = append(out.items, it)
		var closed bool
		if i, closed, ok = p.separator(next, end, ']'); !ok {
			return nil, 0, false
		}
		if closed {
			return out, i, true
		}
	}
}

// quoted reads a quoted scalar on one line: '...' with a quote doubled
// for one, or "..." without a backslash.
func (p *fastParser) quoted(at, end int) (*node, int, bool) {
	q := p.text[at]
	var buf []byte
	for i := at + 1; i < end; i++ {
		c := p.text[i]
		switch {
		case c == '\\' && q == '"':
			return nil, 0, false
		case c == q && q == '\'' && i+1 < end && p.text[i+1] == '\'':
			if buf == nil {
				buf = append([]byte{}, p.text[at+1:i]...)
			}
			buf = append(buf, '\'')
			i++
		case c == q:
			var s string
			if buf != nil {
				s = string(buf)
			} else {
				s = p.str(p.text[at+1 : i])
			}
			return &node{kind: kindScalar, pos: p.pos(at), text: s, str: true}, p.spaces(i+1, end), true
		default:
			if buf != nil {
				buf = append(buf, c)
			}
		}
	}
	return nil, 0, false // on to the next line
}

// plain reads a plain scalar of one line: in a block value up to a
// comment or the line's end; in a flow collection up to a ",", "]" or
// "}".
func (p *fastParser) plain(at, end int, flow bool) (*node, int, bool) {
	c := p.text[at]
	if !(letter(c) || c >= '0' && c <= '9' || c == '.' || c == '~' || (c == '-' || c == '+') && at+1 < end && (p.text[at+1] >= '0' && p.text[at+1] <= '9' || p.text[at+1] == '.')) {
		return nil, 0, false // an indicator, or a character the parser may read as one
	}
	i, last := at+1, at+1 // last: after the last byte that is not a space
	for ; i < end; i++ {
		c := p.text[i]
		switch {
		case c == ' ':
			continue
		case c == '#' && p.text[i-1] == ' ':
			return p.scalar(at, last, i)
		case c == ':':
			if flow || i+1 == end || p.text[i+1] == ' ' {
				return nil, 0, false // a key, or goccy's reading of a ":" in a flow collection
			}
		case flow && (c == ',' || c == ']' || c == '}'):
			return p.scalar(at, last, i)
		case flow && !plainByte(c):
			return nil, 0, false
		}
		last = i + 1
	}
	if last < end {
		// Spaces after a plain scalar at the end of a line: goccy
		// places the scalar as many columns further right.
		return nil, 0, false
	}
	return p.scalar(at, last, i)
}

// scalar is the plain scalar text[at:end], typed as the parser types
// it; next is the offset after it and its spaces.
func (p *fastParser) scalar(at, end, next int) (*node, int, bool) {
	b := p.text[at:end]
	pos := p.pos(at)
	if letter(b[0]) {
		if _, reserved := fastReserved[string(b)]; !reserved {
			return &node{kind: kindScalar, pos: pos, text: p.str(b), str: true}, next, true
		}
	} else if decimal(b) {
		return &node{kind: kindScalar, pos: pos, text: p.str(b)}, next, true
	}
	// Anything else as the parser would type it: a number in another
	// form, a bool, null, .inf, .nan, or text that starts with a digit.
	tk := token.New(string(b), string(b), &token.Position{Line: pos.Line - p.d.lineOff, Column: pos.Column})
	var an ast.Node
	switch tk.Type {
	case token.NullType:
		an = ast.Null(tk)
	case token.BoolType:
		an = ast.Bool(tk)
	case token.IntegerType, token.BinaryIntegerType, token.OctetIntegerType, token.HexIntegerType:
		an = ast.Integer(tk)
	case token.FloatType:
		an = ast.Float(tk)
	case token.InfinityType:
		an = ast.Infinity(tk)
	case token.NanType:
		an = ast.Nan(tk)
	case token.StringType:
		return &node{kind: kindScalar, pos: pos, text: p.str(b), str: true}, next, true
	default:
		return nil, 0, false
	}
	nerrs := len(p.d.Errs)
	n := p.d.convert(an, 0)
	if len(p.d.Errs) != nerrs {
		p.d.Errs = p.d.Errs[:nerrs]
		return nil, 0, false
	}
	return n, next, true
}

// fresh reports whether key is not one of keys, a map's keys so far.
// Past a few keys it keeps them in *set as well (and key, when fresh),
// so that a map of many keys is not read in quadratic time.
func fresh(keys []entry, key string, set *map[string]struct{}) bool {
	if len(keys) < 16 {
		for _, e := range keys {
			if e.key == key {
				return false
			}
		}
		return true
	}
	if *set == nil {
		*set = make(map[string]struct{}, 2*len(keys))
		for _, e := range keys {
			(*set)[e.key] = struct{}{}
		}
	}
	if _, ok := (*set)[key]; ok {
		return false
	}
	(*set)[key] = struct{}{}
	return true
}

// str is b as a string; a key or a short scalar seen before is the
// same string, not another copy.
func (p *fastParser) str(b []byte) string {
	if len(b) > 24 {
		return string(b)
	}
	if s, ok := p.seen[string(b)]; ok {
		return s
	}
	s := string(b)
	if p.seen == nil {
		p.seen = make(map[string]string, 64)
	}
	if len(p.seen) < 4096 {
		p.seen[s] = s
	}
	return s
}

// fastReserved are the plain words the parser reads as other than text:
// null, the booleans, and those of .inf and .nan that start with a
// letter (none).
var fastReserved = map[string]struct{}{
	"null": {}, "Null": {}, "NULL": {},
	"true": {}, "True": {}, "TRUE": {},
	"false": {}, "False": {}, "FALSE": {},
}

func letter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// keyByte reports whether c may be in a plain key the fast reader takes.
func keyByte(c byte) bool {
	return letter(c) || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// plainByte reports whether c may be in a plain scalar of a flow
// collection the fast reader takes, besides spaces (in a block value, any
// printable character may be, and plain handles ':' and '#').
func plainByte(c byte) bool {
	return keyByte(c) || c == '.' || c == '/' || c == '+'
}

// decimal reports whether b is a decimal number the parser reads as an
// integer and convert writes as it is: digits, no leading zero, and
// small enough for any integer.
func decimal(b []byte) bool {
	if len(b) == 0 || len(b) > 18 || b[0] == '0' && len(b) > 1 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
