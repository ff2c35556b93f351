package policy

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/tapwatch/tapwatch/internal/yamlpos"
)

// A large policy or baseline is parsed a few entries at a time.
//
// The YAML parser keeps every token of what it parses, with its
// position, and the syntax tree over them: about 70 bytes of heap for
// each byte of YAML, 5 MB for a 500-rule policy of 74 KB, all live at
// once. On a box that runs in 20 MiB that set the peak of the process.
// parseChunked cuts a file at the entries of its top-level sections and
// parses the pieces one after the other, each dropped once converted to
// nodes, so that only one piece's tokens are live at a time.
//
// Every top-level entry is parsed on its own; a large block under a
// top-level key alone on its line is parsed a few of its entries at a
// time (an entry itself is never cut: one conversation of a baseline
// is one piece, however many value ranges it holds). It cuts only where
// the cut cannot change the meaning, and gives up (the caller then
// parses the file whole, which also reports its errors) at anything it
// cannot vouch for: a piece that does not parse, or parses to another
// kind of node than expected, a key given twice or holding a "'", any
// problem the conversion of the tree reports (not those of a baseline's
// conversations converted as they come: they are kept aside and
// reported where the whole parse reports them), document markers,
// directives, a byte-order mark, a lone CR, tabs in an indentation or
// on a piece's first line, an empty item at column 1. FuzzChunkedLikeWhole
// checks that whatever it returns is what the whole parse gives.
//
// Each piece is read by fastTree (fast.go) when it can, and by the parser
// when it cannot; the cuts, and the rules for giving up, are the same.

// chunkMin is the size from which a file is parsed in pieces; chunkSize
// is about how much YAML a piece holds. Tests lower them to cut small
// files often.
var (
	chunkMin  = 16 << 10
	chunkSize = 4 << 10
)

// pieceEnd is the entry the parser sees after a piece.
const pieceEnd = "tapwatch-piece-end"

// line is one line of a file: data[start:end] without its newline; no
// is its 1-based number.
type line struct {
	start, end int
	no         int
}

// parseChunked returns the file's tree and true, or false when the
// file must be parsed whole; it leaves d's errors as it found them.
func (d *decoder) parseChunked(data []byte) (*node, bool) {
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) || bytes.Count(data, []byte("\r")) != bytes.Count(data, []byte("\r\n")) {
		return nil, false // a byte-order mark, or lines that end in a lone CR
	}
	lines := splitLines(data)
	nerrs, nrecs := len(d.Errs), d.pos.Len()
	root, ok := d.chunkedRoot(data, lines)
	if !ok || len(d.Errs) != nerrs {
		clear(d.Errs[nerrs:])
		d.Errs = d.Errs[:nerrs]
		d.pos.Truncate(nrecs) // the places of the conversations converted so far
		d.conv = nil
		return nil, false
	}
	return root, true
}

// A learned baseline is mostly its conversations, and they are mostly
// the value ranges learned for each register or point: a plant's
// baseline of a few MB would make a tree of some 30 MB, all live until
// it is converted. So when Parse cuts a file into pieces (d.stream),
// the conversations of baseline.conversations are converted piece by
// piece, as baselineSection would convert them, and their nodes
// dropped. Only their ends wait: an asset name needs the assets
// section, which policy converts first. baselineSection then takes the
// conversations, resolves their ends and adds their errors; the errors
// are sorted by place in the end (yamlpos.Join), so the file reads the
// same whether cut or parsed whole (FuzzChunkedLikeWhole).
const convPath = "baseline.conversations"

type convStream struct {
	list  *node // the list in the tree, left without its items
	convs []Conversation
	ends  []convEnd
	errs  []*yamlpos.Error // what converting them reported
	busy  bool             // converting a piece
}

// convEnd is a conversation's src or dst, resolved once the assets are
// known.
type convEnd struct {
	n    *node
	path string
	conv int
	dst  bool
}

// A Collector hears how a parse in pieces goes, so that its caller can
// collect each piece's garbage between the pieces rather than have the
// collector's pacing run beside the parse: the collections then come at
// the same points of every load of a file, and the load's cost and
// memory are the same from run to run. Package pipeline gives one.
type Collector interface {
	// Pieces(true) is called when a file starts to be parsed in pieces,
	// and Pieces(false) when that ends, before the file is parsed whole
	// if the pieces did not do.
	Pieces(on bool)
	// Piece is called after each piece, once its tree is garbage.
	Piece()
}

// pieceDone tells the collector, if any, that a piece is done.
func (d *decoder) pieceDone() {
	if d.collect != nil {
		d.collect.Piece()
	}
}

// convertPiece converts the conversations the last piece added to
// s.list, and drops them.
func (d *decoder) convertPiece(s *convStream) {
	errs := d.Errs
	d.Errs, s.busy = s.errs, true
	for _, it := range s.list.items {
		ip := yamlpos.Elem(convPath, len(s.convs))
		d.record(ip, it)
		s.convs = append(s.convs, d.conversation(it, ip))
	}
	s.errs, s.busy = d.Errs, false
	d.Errs = errs
	clear(s.list.items)
	s.list.items = s.list.items[:0]
}

// endpoint reads a conversation's src or dst (hostAddr); while the
// conversations are converted piece by piece, it keeps the node for
// baselineSection to read.
func (d *decoder) endpoint(n *node, path string, dst bool) netip.Addr {
	if s := d.conv; s != nil && s.busy {
		s.ends = append(s.ends, convEnd{n: n, path: path, conv: len(s.convs), dst: dst})
		return netip.Addr{}
	}
	return d.hostAddr(n, path)
}

// streamed gives b the conversations converted while parsing, when list
// is the list they came from, and reports whether it did.
func (d *decoder) streamed(b *Baseline, list *node) bool {
	s := d.conv
	if s == nil || s.list != list {
		return false
	}
	d.conv = nil
	d.Errs = append(d.Errs, s.errs...)
	for _, e := range s.ends {
		a := d.hostAddr(e.n, e.path)
		if e.dst {
			s.convs[e.conv].Dst = a
		} else {
			s.convs[e.conv].Src = a
		}
	}
	b.Conversations = s.convs
	return true
}

func splitLines(data []byte) []line {
	var out []line
	for start, no := 0, 1; start < len(data); no++ {
		end := bytes.IndexByte(data[start:], '\n')
		if end < 0 {
			out = append(out, line{start, len(data), no})
			break
		}
		out = append(out, line{start, start + end, no})
		start += end + 1
	}
	return out
}

// text is l's text without a carriage return at its end.
func (l line) text(data []byte) []byte {
	return bytes.TrimSuffix(data[l.start:l.end], []byte("\r"))
}

// indent is the number of spaces l starts with, and false when its
// indentation holds a tab.
func (l line) indent(data []byte) (int, bool) {
	t := l.text(data)
	n := 0
	for n < len(t) && t[n] == ' ' {
		n++
	}
	return n, n == len(t) || t[n] != '\t'
}

// blank reports whether l holds nothing but spaces and perhaps a
// comment.
func (l line) blank(data []byte) bool {
	t := bytes.TrimLeft(l.text(data), " ")
	return len(t) == 0 || t[0] == '#'
}

func (d *decoder) chunkedRoot(data []byte, lines []line) (*node, bool) {
	// The top-level entries start at column 1; what is before the
	// first may only be blank lines and comments.
	var starts []int
	for i, l := range lines {
		t := l.text(data)
		if _, ok := l.indent(data); !ok {
			return nil, false
		}
		if bytes.HasPrefix(t, []byte("---")) || bytes.HasPrefix(t, []byte("...")) || bytes.HasPrefix(t, []byte("%")) {
			return nil, false
		}
		if emptyItem(t) {
			return nil, false // an empty item at column 1 takes a key after it in
		}
		if len(t) == 0 || t[0] == ' ' || t[0] == '#' || t[0] == '-' {
			if len(starts) == 0 && !l.blank(data) {
				return nil, false
			}
			continue
		}
		starts = append(starts, i)
	}
	if len(starts) == 0 {
		return nil, false
	}
	root := &node{kind: kindMap}
	seen := map[string]bool{}
	for j, s := range starts {
		end := len(lines)
		if j+1 < len(starts) {
			end = starts[j+1]
		}
		nkeys := len(root.keys)
		var ok bool
		if key, block := blockHeader(lines[s].text(data)); block && lines[end-1].end-lines[s].end > chunkSize {
			ok = d.chunkSection(root, key, key, yamlpos.Pos{Line: lines[s].no, Column: 1}, data, lines[s+1:end], 1, end == len(lines))
		} else {
			ok = d.chunkPiece(root, data, lines[s:end], 0, kindMap, 0, end == len(lines))
			d.pieceDone()
		}
		if !ok || len(root.keys) != nkeys+1 {
			return nil, false // a piece is one top-level entry
		}
		k := root.keys[nkeys].key
		if seen[k] {
			return nil, false
		}
		seen[k] = true
	}
	root.pos = root.keys[0].pos
	return root, true
}

// blockHeader reports whether t is a top-level key alone on its line,
// "name:" perhaps followed by spaces and a comment, whose value is the
// block below it, and returns the key.
func blockHeader(t []byte) (string, bool) {
	n := 0
	for n < len(t) && (t[n] >= 'a' && t[n] <= 'z' || t[n] >= 'A' && t[n] <= 'Z' || t[n] == '_' || n > 0 && (t[n] >= '0' && t[n] <= '9' || t[n] == '-')) {
		n++
	}
	if n == 0 || n == len(t) || t[n] != ':' {
		return "", false
	}
	rest := bytes.TrimLeft(t[n+1:], " ")
	if len(rest) > 0 && (rest[0] != '#' || len(rest) == len(t[n+1:])) {
		return "", false // a value on the line, or "#" not after a space
	}
	return string(t[:n]), true
}

// chunkPiece parses lines as one document that must be of kind want (a
// map or a list of entries indented indent spaces), converts it at
// depth and adds its keys or items to out. Unless the lines are the
// file's last, the parser sees one more entry after them, as it does in
// the whole file: what it makes of a value at the very end of the text
// is not always what it makes of it elsewhere (the place of an empty or
// a multi-line value). That entry is then left out.
func (d *decoder) chunkPiece(out *node, data []byte, lines []line, depth int, want nodeKind, indent int, last bool) bool {
	if bytes.IndexByte(lines[0].text(data), '\t') >= 0 {
		return false // goccy reads a tab by the column of the last ':' or '-' before it, which a piece does not see
	}
	end := lines[len(lines)-1].end
	if end < len(data) {
		end++ // the newline: a block scalar's last one is part of its value
	}
	text := data[lines[0].start:end]
	if !last {
		text = append(text[:len(text):len(text)], strings.Repeat(" ", indent)...)
		if want == kindSeq {
			text = append(text, "- "+pieceEnd+"\n"...)
		} else {
			text = append(text, pieceEnd+": 0\n"...)
		}
	}
	d.maxPiece = max(d.maxPiece, len(text))
	d.lineOff = lines[0].no - 1
	n, ok := d.fastTree(text, depth)
	d.lineOff = 0
	if !ok {
		if n, ok = d.parsePiece(text, lines[0].no-1, depth, want); !ok {
			return false
		}
	}
	if n.kind != want || n.flow || quotedKey(n) {
		return false
	}
	if !last {
		sentinel := lines[len(lines)-1].no + 1
		switch {
		case want == kindSeq && len(n.items) > 0 && n.items[len(n.items)-1].text == pieceEnd && n.items[len(n.items)-1].pos.Line == sentinel:
			n.items = n.items[:len(n.items)-1]
		case want == kindMap && len(n.keys) > 0 && n.keys[len(n.keys)-1].key == pieceEnd && n.keys[len(n.keys)-1].pos.Line == sentinel:
			n.keys = n.keys[:len(n.keys)-1]
		default:
			return false
		}
	}
	if out.kind == kindNull { // the first piece of a list
		*out = *n
		return true
	}
	out.keys = append(out.keys, n.keys...)
	out.items = append(out.items, n.items...)
	return true
}

// parsePiece is chunkPiece's tree of text, whose first line is line
// off+1 of the file, as the parser reads it; false when it does not
// parse to one block map or list.
func (d *decoder) parsePiece(text []byte, off, depth int, want nodeKind) (*node, bool) {
	d.parsed++
	f, err := d.Parse(text)
	if err != nil || len(f.Docs) != 1 || f.Docs[0] == nil {
		return nil, false
	}
	body := f.Docs[0].Body
	switch b := body.(type) {
	case *ast.MappingNode:
		if want != kindMap || b.IsFlowStyle {
			return nil, false
		}
	case *ast.MappingValueNode:
		if want != kindMap {
			return nil, false
		}
	case *ast.SequenceNode:
		if want != kindSeq || b.IsFlowStyle {
			return nil, false
		}
	default:
		return nil, false
	}
	d.lineOff = off
	n := d.convert(body, depth)
	d.lineOff = 0
	return n, true
}

// chunkSection adds key, found at at, whose value is the block of the
// lines body (those after the key's line), to out, a map, parsing the
// block a few entries at a time; depth is the value's depth and path
// its dotted path. An entry of the block that is itself a large block
// under a key alone on its line (a baseline's conversations) is parsed
// the same way.
func (d *decoder) chunkSection(out *node, key, path string, at yamlpos.Pos, data []byte, body []line, depth int, last bool) bool {
	first := -1
	for i, l := range body {
		if !l.blank(data) {
			first = i
			break
		}
	}
	if first < 0 {
		return false
	}
	k, _ := body[first].indent(data)
	want := kindMap
	if t := body[first].text(data)[k:]; t[0] == '-' {
		want = kindSeq
	}
	// Every line as far left as the entries starts one, but for a list
	// that is the value of a key of a map's entry ("key:" then "- x" at
	// the key's indentation); anything else there, or further left, the
	// whole parse must judge.
	for _, l := range body[first:] {
		if l.blank(data) {
			continue
		}
		t := l.text(data)
		switch ind, _ := l.indent(data); {
		case ind < k:
			return false
		case ind == k && !entryStart(t, k, want) && (want == kindSeq || !entryStart(t, k, kindSeq)):
			return false
		}
	}
	val := &node{kind: kindNull}
	if want == kindMap {
		val.kind = kindMap
	}
	var conv *convStream
	if d.stream && want == kindSeq && path == convPath {
		if d.conv != nil {
			return false // a second list of conversations: a key given twice, which the whole parse reports
		}
		conv = &convStream{list: val}
		d.conv = conv
	}
	from := first
	flush := func(to int, last bool) bool {
		if from < to && !d.chunkPiece(val, data, body[from:to], depth, want, k, last) {
			return false
		}
		from = to
		if conv != nil {
			d.convertPiece(conv)
		}
		d.pieceDone()
		return true
	}
	for i := first; i < len(body); {
		j := i + 1 // the end of the entry that starts at i
		for j < len(body) && !entryStart(body[j].text(data), k, want) {
			j++
		}
		if want == kindMap {
			if name, block := blockHeader(body[i].text(data)[k:]); block && body[j-1].end-body[i].end > chunkSize {
				if !flush(i, false) || !d.chunkSection(val, name, path+"."+name, yamlpos.Pos{Line: body[i].no, Column: k + 1}, data, body[i+1:j], depth+1, last && j == len(body)) {
					return false
				}
				from, i = j, j
				continue
			}
		}
		if i > from && body[i].start-body[from].start >= chunkSize && !flush(i, false) {
			return false
		}
		i = j
	}
	if !flush(len(body), last) {
		return false
	}
	if want == kindMap {
		if len(val.keys) == 0 {
			return false // the conversion took every key out, and said why
		}
		seen := make(map[string]bool, len(val.keys))
		for _, e := range val.keys {
			if seen[e.key] {
				return false
			}
			seen[e.key] = true
		}
		val.pos = val.keys[0].pos // a block map is where its first key is
	}
	out.keys = append(out.keys, entry{key: key, pos: at, val: val})
	return true
}

// entryStart reports whether t, a line of a section's block indented k
// spaces, starts an entry of it: a list item, or a plain key.
func entryStart(t []byte, k int, want nodeKind) bool {
	if len(t) <= k {
		return false
	}
	for _, c := range t[:k] {
		if c != ' ' {
			return false
		}
	}
	c := t[k]
	if want == kindSeq {
		return c == '-' && (len(t) == k+1 || t[k+1] == ' ')
	}
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// emptyItem reports whether t is a list item with nothing on its line:
// "-" then only spaces or tabs, perhaps a comment.
func emptyItem(t []byte) bool {
	if len(t) == 0 || t[0] != '-' {
		return false
	}
	r := bytes.TrimLeft(t[1:], " \t")
	return len(r) == 0 || r[0] == '#' && len(r) < len(t)-1
}

// quotedKey reports whether a key in n holds a "'". goccy finds a key
// given twice by its path: the keys joined with ".", those holding any
// of $*.[] put between single quotes. With a "'" in a key, keys under
// different parents can have the same path ("a.b'.c" at the top, and
// "c'" under "a.b"), and the whole parse reports one that pieces parsed
// apart do not.
func quotedKey(n *node) bool {
	for _, e := range n.keys {
		if strings.Contains(e.key, "'") || quotedKey(e.val) {
			return true
		}
	}
	for _, it := range n.items {
		if quotedKey(it) {
			return true
		}
	}
	return false
}
