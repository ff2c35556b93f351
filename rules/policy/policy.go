// Package policy is the policy file's language: its types (assets, rules,
// tuning of the built-in detectors, a learned baseline), their decoding
// with positions, validation and formatting. The engine that enforces a
// policy, and the built-in detectors with their checks, are package rules,
// which registers the detectors here (see RegisterDetectors). Technique
// ids are those of MITRE ATT&CK for ICS.
package policy

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/internal/yamlpos"
)

// Limits of the policy file.
const (
	// PolicyVersion is the only version of the file format so far.
	PolicyVersion = 1
	// MaxPolicySize bounds what Load reads: a learned baseline of a large
	// plant stays far below it.
	MaxPolicySize = 32 << 20
	// MinRatePer and MaxRatePer bound rate.per and detector windows.
	MinRatePer = time.Millisecond
	MaxRatePer = 24 * time.Hour
	maxIDLen   = 64
	maxNameLen = 200
	maxDepth   = 32
)

// Severity ranks alerts. The zero value is invalid.
type Severity uint8

const (
	SeverityInfo Severity = 1 + iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s >= SeverityInfo && s <= SeverityCritical {
		return severityNames[s-1]
	}
	return "invalid"
}

// ParseSeverity reads a severity name: info, low, medium, high or critical.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if s == n {
			return Severity(i + 1), nil
		}
	}
	return 0, fmt.Errorf("%q is not a severity%s", s, yamlpos.Choices(s, severityNames))
}

// OpClass says what an operation does to a device, whatever the protocol.
// The zero value is invalid.
type OpClass uint8

const (
	OpRead       OpClass = 1 + iota // read data
	OpWrite                         // write registers, coils, objects
	OpControl                       // select/operate, direct operate, freeze
	OpDiagnostic                    // Modbus FC 8 and the like, DNP3 delay measure
	OpRestart                       // cold/warm restart, restart communications
	OpFile                          // file records and DNP3 file transfer
	OpConfig                        // application control, unsolicited settings, assign class, time
	OpAuth                          // DNP3 secure authentication
)

var opNames = []string{"read", "write", "control", "diagnostic", "restart", "file", "config", "auth"}

func (o OpClass) String() string {
	if o >= OpRead && o <= OpAuth {
		return opNames[o-1]
	}
	return "invalid"
}

// ParseOpClass reads an operation class name: read, write, control,
// diagnostic, restart, file, config or auth.
func ParseOpClass(s string) (OpClass, error) {
	for i, n := range opNames {
		if s == n {
			return OpClass(i + 1), nil
		}
	}
	return 0, fmt.Errorf("%q is not an operation class%s", s, yamlpos.Choices(s, opNames))
}

// OpSet is a set of operation classes; empty means any.
type OpSet uint16

// Has reports whether o is in the set.
func (s OpSet) Has(o OpClass) bool { return s&(1<<o) != 0 }

// Add puts o in the set.
func (s *OpSet) Add(o OpClass) { *s |= 1 << o }

// Table is a Modbus data table. The zero value is invalid.
type Table uint8

const (
	TableCoils Table = 1 + iota
	TableDiscreteInputs
	TableInputRegisters
	TableHoldingRegisters
)

var tableNames = []string{"coils", "discrete_inputs", "input_registers", "holding_registers"}

// tableAliases are the short names a person is likely to write.
var tableAliases = map[string]Table{
	"coil": TableCoils, "discrete": TableDiscreteInputs, "input": TableInputRegisters,
	"inputs": TableInputRegisters, "holding": TableHoldingRegisters,
}

func (t Table) String() string {
	if t >= TableCoils && t <= TableHoldingRegisters {
		return tableNames[t-1]
	}
	return "invalid"
}

// TableSet is a set of Modbus tables; empty means any.
type TableSet uint8

// Has reports whether t is in the set.
func (s TableSet) Has(t Table) bool { return s&(1<<t) != 0 }

// Add puts t in the set.
func (s *TableSet) Add(t Table) { *s |= 1 << t }

// CodeSet is a set of 8-bit codes (function codes, unit ids).
type CodeSet [4]uint64

// Has reports whether c is in the set.
func (s *CodeSet) Has(c uint8) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// Add puts c in the set.
func (s *CodeSet) Add(c uint8) { s[c>>6] |= 1 << (c & 63) }

// Union adds the codes of o.
func (s *CodeSet) Union(o *CodeSet) {
	for i := range s {
		s[i] |= o[i]
	}
}

// Empty reports whether the set has no member.
func (s *CodeSet) Empty() bool { return s[0]|s[1]|s[2]|s[3] == 0 }

// Len is the number of members.
func (s *CodeSet) Len() int {
	return bits.OnesCount64(s[0]) + bits.OnesCount64(s[1]) + bits.OnesCount64(s[2]) + bits.OnesCount64(s[3])
}

// Codes lists the members in ascending order; nil when there are none.
func (s *CodeSet) Codes() []uint8 {
	var out []uint8
	for c := range 256 {
		if s.Has(uint8(c)) {
			out = append(out, uint8(c))
		}
	}
	return out
}

// Range is an inclusive range of addresses, indexes or codes.
type Range struct{ Lo, Hi uint32 }

// Contains reports whether v lies in r.
func (r Range) Contains(v uint32) bool { return v >= r.Lo && v <= r.Hi }

// Ranges is a sorted list of disjoint, non-adjacent ranges; empty means any.
type Ranges []Range

// Contains reports whether v lies in one of the ranges.
func (rs Ranges) Contains(v uint32) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Hi >= v })
	return i < len(rs) && rs[i].Lo <= v
}

// Overlaps reports whether any of lo..hi (inclusive) lies in the ranges.
func (rs Ranges) Overlaps(lo, hi uint32) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Hi >= lo })
	return i < len(rs) && rs[i].Lo <= hi
}

// Covers reports whether every one of lo..hi (inclusive) lies in the
// ranges. It allocates nothing.
func (rs Ranges) Covers(lo, hi uint32) bool {
	for v := uint64(lo); v <= uint64(hi); {
		i := rs.search(uint32(v))
		if i >= len(rs) || rs[i].Lo > uint32(v) {
			return false
		}
		v = uint64(rs[i].Hi) + 1
	}
	return true
}

// search returns the first range that ends at v or after.
func (rs Ranges) search(v uint32) int {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].Hi < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Normalize sorts and merges overlapping and adjacent ranges, in place.
func Normalize(rs Ranges) Ranges {
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Lo < rs[j].Lo })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint64(r.Lo) <= uint64(last.Hi)+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// FuncCodes is a resolved fc match, one set per protocol, because code 5
// is write_single_coil in Modbus and direct_operate in DNP3. Other holds
// the codes, given as numbers, of every other protocol. All empty means
// any function.
type FuncCodes struct {
	Modbus, DNP3, Other CodeSet
}

// Any reports whether the match accepts every function code.
func (f *FuncCodes) Any() bool { return f.Modbus.Empty() && f.DNP3.Empty() && f.Other.Empty() }

// Set returns the set that holds the codes of protocol p.
func (f *FuncCodes) Set(p proto.ID) *CodeSet {
	switch p {
	case proto.Modbus:
		return &f.Modbus
	case proto.DNP3:
		return &f.DNP3
	}
	return &f.Other
}

// only reports whether f holds no codes but those of protocol p.
func (f *FuncCodes) only(p proto.ID) bool {
	mine := f.Set(p)
	for _, s := range []*CodeSet{&f.Modbus, &f.DNP3, &f.Other} {
		if s != mine && !s.Empty() {
			return false
		}
	}
	return true
}

// Has reports whether function code fc of protocol p matches.
func (f *FuncCodes) Has(p proto.ID, fc uint8) bool {
	return f.Set(p).Has(fc) || f.Any() // a code listed, the usual answer, before the twelve words of Any
}

// GroupVar is a DNP3 object group and variation; Var 0 means any
// variation.
type GroupVar struct{ Group, Var uint8 }

// Matches reports whether object g/v is covered.
func (gv GroupVar) Matches(g, v uint8) bool { return gv.Group == g && (gv.Var == 0 || gv.Var == v) }

// Endpoint is one resolved term of a src or dst match: an asset, an IP
// address or a network. An operation matches an endpoint when its address
// lies in Prefixes and, for an asset that lists them, its Modbus unit id
// is in Units (the unit always names the device, whichever way the message
// goes) or its DNP3 link address on that side (link_src for src, link_dst
// for dst) is in DNP3.
type Endpoint struct {
	Asset    string // the asset's name; "" for an address or network written as such
	Prefixes []netip.Prefix
	Units    CodeSet // the asset's Modbus unit ids; empty: any
	DNP3     Ranges  // the asset's DNP3 link addresses; empty: any
}

// Match is one when or unless clause, resolved: every field that is set
// must match, and an empty field matches anything.
type Match struct {
	Proto   proto.ID // 0: any protocol
	Src     []Endpoint
	Dst     []Endpoint
	Units   CodeSet // Modbus unit ids
	LinkSrc Ranges  // DNP3 link source addresses
	LinkDst Ranges  // DNP3 link destination addresses
	Ops     OpSet
	FC      FuncCodes
	Tables  TableSet   // Modbus
	Addr    Ranges     // Modbus addresses, 0-based as on the wire
	Groups  []GroupVar // DNP3 object groups
	Points  Ranges     // DNP3 point indexes
	// A match with services or ports is about links, not messages: a
	// client (src) talking to a port of a server (dst), at the first
	// payload of each flow. AnyService (service: any) matches every link.
	Services   []service.ID
	AnyService bool
	Ports      []Port
}

// Port is a transport and port of a link match: tcp/445, udp/161.
type Port struct {
	UDP  bool
	Port uint16
}

// Link reports whether m is about links (service or port) rather than
// messages.
func (m *Match) Link() bool { return len(m.Services) > 0 || m.AnyService || len(m.Ports) > 0 }

// messageFields names the fields set that only messages have.
func (m *Match) messageFields() []string {
	var f []string
	if m.Proto != 0 {
		f = append(f, "proto")
	}
	if m.Ops != 0 {
		f = append(f, "op")
	}
	if !m.FC.Any() {
		f = append(f, "fc")
	}
	return append(append(f, m.modbusOnly()...), m.dnp3Only()...)
}

// Empty reports whether the match has no condition at all.
func (m *Match) Empty() bool {
	return m.Proto == 0 && len(m.Src) == 0 && len(m.Dst) == 0 && m.Units.Empty() &&
		len(m.LinkSrc) == 0 && len(m.LinkDst) == 0 && m.Ops == 0 && m.FC.Any() &&
		m.Tables == 0 && len(m.Addr) == 0 && len(m.Groups) == 0 && len(m.Points) == 0 && !m.Link()
}

// modbusOnly and dnp3Only name the fields set that belong to one protocol.
func (m *Match) modbusOnly() []string {
	var f []string
	if !m.Units.Empty() {
		f = append(f, "unit")
	}
	if m.Tables != 0 {
		f = append(f, "table")
	}
	if len(m.Addr) > 0 {
		f = append(f, "addr")
	}
	return f
}

func (m *Match) dnp3Only() []string {
	var f []string
	if len(m.LinkSrc) > 0 {
		f = append(f, "link_src")
	}
	if len(m.LinkDst) > 0 {
		f = append(f, "link_dst")
	}
	if len(m.Groups) > 0 {
		f = append(f, "group")
	}
	if len(m.Points) > 0 {
		f = append(f, "points")
	}
	return f
}

// Bounds limits written values; an absent side is infinite.
type Bounds struct{ Min, Max float64 }

// Contains reports whether v is within the bounds.
func (b Bounds) Contains(v float64) bool { return v >= b.Min && v <= b.Max }

// Rate is a threshold: more than Max events within Per.
type Rate struct {
	Max uint32
	Per time.Duration
}

// Asset is a named host or network of the plant.
type Asset struct {
	Name        string
	Description string
	Prefixes    []netip.Prefix // from ip (single addresses) and cidr
	Units       CodeSet        // Modbus unit ids served at this address; empty: any
	DNP3        Ranges         // DNP3 link addresses; empty: any
}

// Rule is one rule of the policy, with its defaults filled in.
type Rule struct {
	ID       string
	Name     string
	When     Match
	Unless   []Match // an operation that matches any of them is exempt
	Value    *Bounds // alert on written values outside; nil: no bounds
	Rate     *Rate   // alert when matches exceed the rate; nil: alert on every match
	Severity Severity
	Attack   []string
	Enabled  bool
}

// DetectorSettings are the effective settings of a built-in detector.
type DetectorSettings struct {
	ID       string
	Enabled  bool
	Severity Severity
	Rate     *Rate         // nil for detectors without a rate
	Window   time.Duration // 0 for detectors without a window
}

// Policy is a loaded policy file.
type Policy struct {
	Version   int
	Assets    []Asset            // in file order
	Detectors []DetectorSettings // every built-in detector, in catalogue order
	Rules     []Rule             // in file order
	Baseline  *Baseline          // learned behaviour (baseline.go); nil: none

	src *source // where fields came from, for error messages; nil when built in Go
}

// source remembers the file name and where each field path starts.
type source struct {
	name string
	pos  *yamlpos.Index
}

// LookupDetector returns the built-in detector with that id, or nil.
func LookupDetector(id string) *DetectorSpec {
	for i := range detectors {
		if detectors[i].ID == id {
			return &detectors[i]
		}
	}
	return nil
}

// DefaultDetectors returns the settings of every built-in detector as
// shipped.
func DefaultDetectors() []DetectorSettings {
	ds := make([]DetectorSettings, len(detectors))
	for i, d := range detectors {
		ds[i] = DetectorSettings{ID: d.ID, Enabled: true, Severity: d.Severity, Window: d.Window}
		if d.Rate != nil {
			r := *d.Rate
			ds[i].Rate = &r
		}
	}
	return ds
}

// New returns an empty policy of the current version with every built-in
// detector at its defaults.
func New() *Policy {
	return &Policy{Version: PolicyVersion, Detectors: DefaultDetectors()}
}

// Detector returns the effective settings of built-in detector id: those
// of the policy, or the defaults when the policy has none for it.
func (p *Policy) Detector(id string) (DetectorSettings, bool) {
	for _, d := range p.Detectors {
		if d.ID == id {
			return d, true
		}
	}
	for _, d := range DefaultDetectors() {
		if d.ID == id {
			return d, true
		}
	}
	return DetectorSettings{}, false
}

// Asset returns the asset with that name, or nil.
func (p *Policy) Asset(name string) *Asset {
	for i := range p.Assets {
		if p.Assets[i].Name == name {
			return &p.Assets[i]
		}
	}
	return nil
}

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) { return LoadCollecting(path, nil) }

// LoadCollecting is Load, telling c (when not nil) how a parse in pieces
// goes.
func LoadCollecting(path string, c Collector) (*Policy, error) {
	data, err := yamlpos.ReadFile(path, MaxPolicySize)
	if err != nil {
		return nil, err
	}
	return ParseCollecting(data, path, c)
}

// Parse decodes a policy file; name is used in error messages. Every
// problem found is reported (joined with errors.Join, each a
// *yamlpos.Error, sorted by position), not only the first.
func Parse(data []byte, name string) (*Policy, error) { return ParseCollecting(data, name, nil) }

// ParseCollecting is Parse, telling c (when not nil) how a parse in
// pieces goes.
func ParseCollecting(data []byte, name string, c Collector) (*Policy, error) {
	if name == "" {
		name = "policy"
	}
	d := &decoder{Decoder: yamlpos.NewDecoder(name), stream: true, collect: c}
	root, err := d.parseYAML(data)
	if err != nil {
		return nil, err
	}
	p := d.policy(root)
	p.src = &source{name: name, pos: d.pos.Index()}
	d.Errs = append(d.Errs, p.validate(d.Errs)...)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

// ---- YAML to a plain tree ----

type nodeKind uint8

const (
	kindNull nodeKind = iota
	kindScalar
	kindMap
	kindSeq
)

// node is a YAML node reduced to what the policy needs, with positions.
type node struct {
	// The flags first, together: a learned baseline makes hundreds of
	// thousands of nodes, and the order keeps each at 112 bytes.
	kind    nodeKind
	str     bool // scalars: written as a string (quoted or plain text)
	isBool  bool // scalars: true or false
	boolean bool // the value of a bool
	isFloat bool // scalars: a float literal, value in num
	flow    bool // maps and sequences written in flow style
	pos     yamlpos.Pos
	text    string  // scalars: the value as a string, integers as written
	canon   string  // integers: the value in decimal, when not as written
	num     float64 // floats, including .inf and .nan
	keys    []entry // maps, in file order
	items   []*node // sequences
}

type entry struct {
	key string
	pos yamlpos.Pos
	val *node
}

func (n *node) describe() string {
	switch n.kind {
	case kindNull:
		return "nothing"
	case kindMap:
		if len(n.keys) == 1 && n.keys[0].val.kind == kindScalar {
			e := n.keys[0]
			return yamlpos.MapOf(e.key, e.pos, e.val.text, e.val.pos)
		}
		return "a map"
	case kindSeq:
		return "a list"
	}
	return strconv.Quote(n.text)
}

type decoder struct {
	*yamlpos.Decoder
	assets   map[string]*Asset
	lineOff  int                  // added to the lines of what is parsed: where a piece of the file starts (parseChunked)
	maxPiece int                  // the most YAML parseChunked parsed at once
	parsed   int                  // pieces, or whole files, the YAML parser read (fastTree did not)
	pos      yamlpos.IndexBuilder // where each field path starts (the embedded Decoder's Pos stays empty)
	stream   bool                 // convert a cut file's conversations as they are parsed (chunk.go)
	conv     *convStream          // those converted, until baselineSection takes them
	collect  Collector            // told of the pieces of a file parsed in pieces; may be nil
}

// posOf is where n starts in the file.
func (d *decoder) posOf(n ast.Node) yamlpos.Pos {
	at := yamlpos.PosOf(n)
	if at.Line > 0 {
		at.Line += d.lineOff
	}
	return at
}

func (d *decoder) errorf(at yamlpos.Pos, path, format string, a ...any) {
	d.Errorf(at, path, format, a...)
}

func (d *decoder) record(path string, n *node) { d.pos.Record(path, n.pos) }

// parsePieces is parseChunked with the collector told, whatever happens
// in it.
func (d *decoder) parsePieces(data []byte) (*node, bool) {
	if d.collect != nil {
		d.collect.Pieces(true)
		defer d.collect.Pieces(false)
	}
	return d.parseChunked(data)
}

func (d *decoder) parseYAML(data []byte) (*node, error) {
	// In UTF-8 before the file is cut into pieces (chunk.go), which finds
	// its lines by their octets.
	data, err := d.Text(data)
	if err != nil {
		return nil, err
	}
	if len(data) >= chunkMin {
		if root, ok := d.parsePieces(data); ok {
			return root, nil
		}
		// Not cut: nearly always for what fastTree refuses too, and
		// a large file's tree is not built twice.
	} else if root, ok := d.fastTree(data, 0); ok {
		return root, nil
	}
	d.parsed++
	f, err := d.Parse(data)
	if err != nil {
		return nil, err
	}
	var body ast.Node
	for i, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if _, ok := doc.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		if body != nil {
			at := yamlpos.PosOf(doc.Body)
			return nil, &yamlpos.Error{File: d.File, Line: at.Line, Column: at.Column,
				Msg: fmt.Sprintf("a policy file holds one YAML document; this is document %d", i+1)}
		}
		body = doc.Body
	}
	root := d.convert(body, 0)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return root, nil
}

func (d *decoder) convert(n ast.Node, depth int) *node {
	if n == nil {
		return &node{kind: kindNull}
	}
	at := d.posOf(n)
	if depth > maxDepth {
		d.errorf(at, "", "nested more than %d levels deep", maxDepth)
		return &node{kind: kindNull, pos: at}
	}
	switch v := n.(type) {
	case *ast.NullNode:
		return &node{kind: kindNull, pos: at}
	case *ast.CommentGroupNode:
		return &node{kind: kindNull, pos: at}
	case *ast.StringNode:
		return &node{kind: kindScalar, pos: at, text: v.Value, str: true}
	case *ast.LiteralNode:
		s := ""
		if v.Value != nil {
			s = v.Value.Value
		}
		return &node{kind: kindScalar, pos: at, text: s, str: true}
	case *ast.IntegerNode:
		n := &node{kind: kindScalar, pos: at, text: v.Token.Value}
		if c := intValue(v); c != n.text {
			n.canon = c
		}
		return n
	case *ast.FloatNode:
		return &node{kind: kindScalar, pos: at, text: v.Token.Value, isFloat: true, num: v.Value}
	case *ast.InfinityNode:
		return &node{kind: kindScalar, pos: at, text: v.Token.Value, isFloat: true, num: v.Value}
	case *ast.NanNode:
		return &node{kind: kindScalar, pos: at, text: v.Token.Value, isFloat: true, num: math.NaN()}
	case *ast.BoolNode:
		return &node{kind: kindScalar, pos: at, text: strconv.FormatBool(v.Value), isBool: true, boolean: v.Value}
	case *ast.MappingNode:
		out := &node{kind: kindMap, pos: at, flow: v.IsFlowStyle}
		for _, mv := range v.Values {
			d.mapEntry(out, mv, depth)
		}
		if !v.IsFlowStyle && len(out.keys) > 0 {
			out.pos = out.keys[0].pos
		}
		return out
	case *ast.MappingValueNode:
		out := &node{kind: kindMap, pos: at}
		d.mapEntry(out, v, depth)
		if len(out.keys) > 0 {
			out.pos = out.keys[0].pos
		}
		return out
	case *ast.SequenceNode:
		out := &node{kind: kindSeq, pos: at, flow: v.IsFlowStyle}
		for _, it := range v.Values {
			out.items = append(out.items, d.convert(it, depth+1))
		}
		return out
	case *ast.AnchorNode, *ast.AliasNode:
		d.errorf(at, "", "anchors (&name) and aliases (*name) are not supported in policy files; write the value out")
	case *ast.TagNode:
		d.errorf(at, "", "tags (%s) are not supported in policy files", v.Start.Value)
	case *ast.MergeKeyNode:
		d.errorf(at, "", "merge keys (<<) are not supported in policy files")
	default:
		d.errorf(at, "", "unsupported YAML construct (%s)", n.Type())
	}
	return &node{kind: kindNull, pos: at}
}

// intValue is an integer's value in decimal, as YAML 1.2 reads it: a
// leading zero does not make it octal (yamlpos.LeadingZero); 0o17, 0x1F,
// 0b101 and 1_000 as the parser reads them.
func intValue(v *ast.IntegerNode) string {
	if d, ok := yamlpos.LeadingZero(v.Token.Value); ok {
		return d
	}
	return fmt.Sprint(v.Value)
}

func (d *decoder) mapEntry(out *node, mv *ast.MappingValueNode, depth int) {
	if mv == nil {
		return
	}
	at := d.posOf(mv.Key)
	var key string
	switch k := mv.Key.(type) {
	case *ast.StringNode:
		key = k.Value
	case *ast.IntegerNode:
		key = intValue(k)
	case *ast.FloatNode, *ast.BoolNode, *ast.NullNode:
		key = k.GetToken().Value
	case *ast.MergeKeyNode:
		d.errorf(at, "", "merge keys (<<) are not supported in policy files")
		return
	default:
		d.errorf(at, "", "a key must be a plain name")
		return
	}
	out.keys = append(out.keys, entry{key: key, pos: at, val: d.convert(mv.Value, depth+1)})
}

// ---- typed access with errors ----

// fields checks that n is a map with only the allowed keys and returns its
// entries by key; nil when n is not a map.
func (d *decoder) fields(n *node, path string, allowed ...string) map[string]entry {
	if n.kind != kindMap {
		if n.kind == kindNull {
			return map[string]entry{}
		}
		d.errorf(n.pos, path, "expected a map of %s, found %s", yamlpos.ListOr(allowed), n.describe())
		return nil
	}
	out := make(map[string]entry, len(n.keys))
	for _, e := range n.keys {
		if !d.Known(e.pos, path, e.key, allowed) {
			continue
		}
		out[e.key] = e
		d.pos.RecordField(path, e.key, e.val.pos)
	}
	return out
}

// need returns field key of map n (at path), reporting it missing, at
// the map, when it is not there; why says what to give.
func (d *decoder) need(f map[string]entry, n *node, path, key, why string) (entry, bool) {
	e, ok := f[key]
	if !ok {
		d.errorf(n.pos, yamlpos.Field(path, key), "missing: %s", why)
	}
	return e, ok
}

// scalar returns the text of a scalar, reporting anything else.
func (d *decoder) scalar(n *node, path, what string) (string, bool) {
	if n.kind != kindScalar {
		d.errorf(n.pos, path, "expected %s, found %s", what, n.describe())
		return "", false
	}
	return n.text, true
}

func (d *decoder) str(n *node, path, what string) (string, bool) {
	s, ok := d.scalar(n, path, what)
	if ok && !utf8.ValidString(s) {
		d.errorf(n.pos, path, "not valid UTF-8")
		return "", false
	}
	return s, ok
}

func (d *decoder) boolean(n *node, path string) (bool, bool) {
	if n.kind != kindScalar || !n.isBool {
		d.errorf(n.pos, path, "expected true or false, found %s", n.describe())
		return false, false
	}
	return n.boolean, true
}

// list returns the elements of a list, or the node itself when a single
// scalar was written; each element's position is recorded as path[i].
func (d *decoder) list(n *node, path, what string) []*node {
	switch n.kind {
	case kindSeq:
		if len(n.items) == 0 {
			d.errorf(n.pos, path, "empty list: give at least one %s, or leave the field out", what)
		}
		for i, it := range n.items {
			if it.kind != kindScalar {
				d.errorf(it.pos, path, "expected %s, found %s", what, it.describe())
				return nil
			}
			d.record(yamlpos.Elem(path, i), it)
		}
		return n.items
	case kindScalar:
		d.record(path+"[0]", n)
		return []*node{n}
	}
	d.errorf(n.pos, path, "expected %s or a list of them, found %s", what, n.describe())
	return nil
}

// each calls fn for every element of list n with its path, path[i],
// recorded; anything else is reported as not a list of what.
func (d *decoder) each(n *node, path, what string, fn func(it *node, path string)) {
	if n.kind != kindSeq {
		d.errorf(n.pos, path, "expected a list of %s, found %s", what, n.describe())
		return
	}
	for i, it := range n.items {
		ip := yamlpos.Elem(path, i)
		d.record(ip, it)
		fn(it, ip)
	}
}

// numeric is the text to read a number from.
func (n *node) numeric() string {
	if n.canon != "" {
		return n.canon
	}
	return n.text
}

func (d *decoder) number(n *node, path, what string, limit uint64) (uint64, bool) {
	if _, ok := d.scalar(n, path, what); !ok {
		return 0, false
	}
	s := n.numeric()
	v, err := parseUint(s, limit)
	if err != nil {
		d.errorf(n.pos, path, "%s %s", strconv.Quote(s), err)
		return 0, false
	}
	return v, true
}

func parseUint(s string, limit uint64) (uint64, error) {
	t := strings.TrimSpace(s)
	var v uint64
	var err error
	if base, digits := radix(t); base != 10 {
		v, err = strconv.ParseUint(digits, base, 64)
	} else if t != "" && t[0] != '+' {
		v, err = strconv.ParseUint(t, 10, 64)
	} else {
		err = strconv.ErrSyntax
	}
	if err != nil {
		if _, ferr := strconv.ParseFloat(t, 64); ferr == nil || strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("is not a whole number from 0 to %d", limit)
		}
		return 0, fmt.Errorf("is not a number")
	}
	if v > limit {
		return 0, fmt.Errorf("is out of range (0-%d)", limit)
	}
	return v, nil
}

// radix tells a hex (0x), octal (0o) or binary (0b) number, as YAML 1.2
// writes them, by its prefix: the base and the digits after it. Anything
// else is base 10, digits s.
func radix(s string) (int, string) {
	if len(s) > 2 && s[0] == '0' && s[2] != '+' && s[2] != '-' {
		switch s[1] {
		case 'x', 'X':
			return 16, s[2:]
		case 'o', 'O':
			return 8, s[2:]
		case 'b', 'B':
			return 2, s[2:]
		}
	}
	return 10, s
}

// parseBound reads a value bound: a number as strconv.ParseFloat reads
// it (hex floats like 0x1p4 too), or a whole one in hex, octal or binary
// as where addresses are read, with a sign if it has one.
func parseBound(t string) (float64, error) {
	body, neg := strings.CutPrefix(t, "-")
	if !neg {
		body = strings.TrimPrefix(body, "+")
	}
	if base, digits := radix(body); base != 10 {
		if u, err := strconv.ParseUint(digits, base, 64); err == nil {
			if neg {
				return -float64(u), nil
			}
			return float64(u), nil
		}
	}
	return strconv.ParseFloat(t, 64)
}

// ranges reads a number, "a-b", or a list of both.
func (d *decoder) ranges(n *node, path, what string, limit uint64) Ranges {
	var rs Ranges
	for _, it := range d.list(n, path, what) {
		s := it.numeric()
		lo, hi, err := parseRange(s, limit)
		if err != nil {
			d.errorf(it.pos, path, "%s %s", strconv.Quote(s), err)
			continue
		}
		rs = append(rs, Range{uint32(lo), uint32(hi)})
	}
	return Normalize(rs)
}

func parseRange(s string, limit uint64) (lo, hi uint64, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if isRange && strings.TrimSpace(a) == "" {
		return 0, 0, fmt.Errorf("is not a number or a range like 10-19 (negative numbers are not allowed)")
	}
	lo, err = parseUint(a, limit)
	if err != nil {
		if isRange {
			return 0, 0, fmt.Errorf("is not a range like 10-19: the start %s", err)
		}
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	hi, err = parseUint(b, limit)
	if err != nil {
		return 0, 0, fmt.Errorf("is not a range like 10-19: the end %s", err)
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("is an empty range: %d is above %d", lo, hi)
	}
	return lo, hi, nil
}

func (d *decoder) codes(n *node, path, what string, lo uint64) CodeSet {
	var set CodeSet
	for _, r := range d.ranges(n, path, what, 255) {
		if uint64(r.Lo) < lo {
			d.errorf(n.pos, path, "%d is the broadcast address, not a device", r.Lo)
		}
		for c := r.Lo; c <= r.Hi; c++ {
			set.Add(uint8(c))
		}
	}
	return set
}

func (d *decoder) duration(n *node, path string) (time.Duration, bool) {
	s, ok := d.scalar(n, path, "a duration like 1s or 500ms")
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			d.errorf(n.pos, path, "%s needs a unit, like 1s, 500ms or 5m", strconv.Quote(s))
		} else {
			d.errorf(n.pos, path, "%s is not a duration like 1s, 500ms or 5m", strconv.Quote(s))
		}
		return 0, false
	}
	return v, true
}

func (d *decoder) severity(n *node, path string) Severity {
	s, ok := d.scalar(n, path, "a severity")
	if !ok {
		return 0
	}
	sev, err := ParseSeverity(s)
	if err != nil {
		d.errorf(n.pos, path, "%v", err)
	}
	return sev
}

func (d *decoder) rate(n *node, path string, base *Rate) *Rate {
	f := d.fields(n, path, "max", "per")
	if f == nil {
		return base
	}
	r := &Rate{}
	if base != nil {
		*r = *base
	}
	if e, ok := f["max"]; ok {
		if v, ok := d.number(e.val, yamlpos.Field(path, "max"), "a count", math.MaxUint32); ok {
			r.Max = uint32(v)
		}
	} else if base == nil {
		d.errorf(n.pos, path, "give max, the number of messages allowed per interval")
	}
	if e, ok := f["per"]; ok {
		if v, ok := d.duration(e.val, yamlpos.Field(path, "per")); ok {
			r.Per = v
		}
	} else if base == nil {
		d.errorf(n.pos, path, "give per, the interval, like per: 1s")
	}
	return r
}

// ---- the policy ----

func (d *decoder) policy(root *node) *Policy {
	p := &Policy{Version: PolicyVersion, Detectors: DefaultDetectors()}
	f := d.fields(root, "", "version", "assets", "detectors", "rules", "baseline")
	if f == nil {
		return p
	}
	if e, ok := f["version"]; ok {
		if v, ok := d.number(e.val, "version", "a version number", math.MaxInt32); ok {
			p.Version = int(v)
		}
	}
	if e, ok := f["assets"]; ok {
		d.assetsSection(p, e.val)
	}
	if e, ok := f["detectors"]; ok {
		d.detectorsSection(p, e.val)
	}
	if e, ok := f["rules"]; ok {
		d.rulesSection(p, e.val)
	}
	if e, ok := f["baseline"]; ok {
		d.baselineSection(p, e.val)
	}
	return p
}

func (d *decoder) assetsSection(p *Policy, n *node) {
	d.assets = map[string]*Asset{}
	if n.kind == kindNull {
		return
	}
	if n.kind != kindMap {
		d.errorf(n.pos, "assets", "expected a map of asset names to {ip, cidr, modbus_units, dnp3, description}, found %s", n.describe())
		return
	}
	for _, e := range n.keys {
		path := "assets." + e.key
		d.pos.Set(path, e.pos)
		a := Asset{Name: e.key}
		f := d.fields(e.val, path, "ip", "cidr", "modbus_units", "dnp3", "description")
		if f == nil {
			p.Assets = append(p.Assets, a)
			continue
		}
		if x, ok := f["ip"]; ok {
			for _, it := range d.list(x.val, path+".ip", "an IP address") {
				if ip, err := netip.ParseAddr(strings.TrimSpace(it.text)); err != nil || ip.Zone() != "" {
					d.errorf(it.pos, path+".ip", "%q is not an IP address%s", it.text, cidrHint(it.text))
				} else {
					ip = ip.Unmap()
					a.Prefixes = append(a.Prefixes, netip.PrefixFrom(ip, ip.BitLen()))
				}
			}
		}
		if x, ok := f["cidr"]; ok {
			for _, it := range d.list(x.val, path+".cidr", "a network like 10.10.3.0/24") {
				if pf, ok := d.prefix(it, path+".cidr"); ok {
					a.Prefixes = append(a.Prefixes, pf)
				}
			}
		}
		if x, ok := f["modbus_units"]; ok {
			a.Units = d.codes(x.val, path+".modbus_units", "a Modbus unit id", 1)
		}
		if x, ok := f["dnp3"]; ok {
			a.DNP3 = d.ranges(x.val, path+".dnp3", "a DNP3 link address", 0xFFFF)
			for _, r := range a.DNP3 {
				if r.Hi >= 0xFFF0 {
					d.errorf(x.val.pos, path+".dnp3", "%d is not a device address (0xFFF0-0xFFFF are reserved and broadcast addresses)", max(r.Lo, 0xFFF0))
					break
				}
			}
		}
		if x, ok := f["description"]; ok {
			a.Description, _ = d.str(x.val, path+".description", "a text")
		}
		p.Assets = append(p.Assets, a)
	}
	for i := range p.Assets {
		d.assets[p.Assets[i].Name] = &p.Assets[i]
	}
}

func cidrHint(s string) string {
	if strings.Contains(s, "/") {
		return " (a network goes in cidr)"
	}
	return ""
}

func (d *decoder) prefix(it *node, path string) (netip.Prefix, bool) {
	s := strings.TrimSpace(it.text)
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			d.errorf(it.pos, path, "%q is an address, not a network: write it as ip, or add the prefix length like %s/24", it.text, s)
		} else {
			d.errorf(it.pos, path, "%q is not a network like 10.10.3.0/24", it.text)
		}
		return netip.Prefix{}, false
	}
	if pf.Addr().Is4In6() {
		pf = netip.PrefixFrom(pf.Addr().Unmap(), max(pf.Bits()-96, 0))
	}
	if m := pf.Masked(); m != pf {
		d.errorf(it.pos, path, "%q has host bits set (did you mean %s?)", it.text, m)
		return netip.Prefix{}, false
	}
	return pf, true
}

func (d *decoder) detectorsSection(p *Policy, n *node) {
	if n.kind == kindNull {
		return
	}
	if n.kind != kindMap {
		d.errorf(n.pos, "detectors", "expected a map of detector ids to settings, found %s", n.describe())
		return
	}
	ids := make([]string, len(detectors))
	for i, det := range detectors {
		ids[i] = det.ID
	}
	for _, e := range n.keys {
		path := "detectors." + e.key
		d.pos.Set(path, e.pos)
		i := index(ids, e.key)
		if i < 0 {
			d.errorf(e.pos, "detectors", "%q is not a built-in detector%s", e.key, yamlpos.DidYouMean(e.key, ids))
			continue
		}
		s := &p.Detectors[i]
		f := d.fields(e.val, path, "enabled", "severity", "rate", "window")
		if f == nil {
			continue
		}
		if x, ok := f["enabled"]; ok {
			if v, ok := d.boolean(x.val, path+".enabled"); ok {
				s.Enabled = v
			}
		}
		if x, ok := f["severity"]; ok {
			if v := d.severity(x.val, path+".severity"); v != 0 {
				s.Severity = v
			}
		}
		if x, ok := f["rate"]; ok {
			if s.Rate == nil {
				d.errorf(x.val.pos, path+".rate", "detector %s has no rate to set", e.key)
			} else {
				s.Rate = d.rate(x.val, path+".rate", s.Rate)
			}
		}
		if x, ok := f["window"]; ok {
			if v, ok := d.duration(x.val, path+".window"); ok {
				if s.Window == 0 {
					d.errorf(x.val.pos, path+".window", "detector %s has no window to set", e.key)
				} else {
					s.Window = v
				}
			}
		}
	}
}

func (d *decoder) rulesSection(p *Policy, n *node) {
	if n.kind == kindNull {
		return
	}
	d.each(n, "rules", `rules (each starting with "- id: ...")`, func(it *node, path string) {
		p.Rules = append(p.Rules, d.rule(it, path))
	})
}

func (d *decoder) rule(n *node, path string) Rule {
	r := Rule{Severity: SeverityMedium, Enabled: true}
	f := d.fields(n, path, "id", "name", "when", "unless", "value", "rate", "severity", "attack", "enabled")
	if f == nil {
		return r
	}
	if e, ok := f["id"]; ok {
		r.ID, _ = d.str(e.val, path+".id", "an id")
	}
	if e, ok := f["name"]; ok {
		r.Name, _ = d.str(e.val, path+".name", "a text")
	}
	if r.Name == "" {
		r.Name = r.ID
	}
	if e, ok := d.need(f, n, path, "when", "every rule needs a when (at least a proto)"); ok {
		if e.val.kind == kindNull {
			d.errorf(e.val.pos, path+".when", "empty: a rule must say which messages it is about")
		} else {
			r.When = d.match(e.val, path+".when")
		}
	}
	if e, ok := f["unless"]; ok {
		switch e.val.kind {
		case kindSeq:
			if len(e.val.items) == 0 {
				d.errorf(e.val.pos, path+".unless", "empty list: give at least one condition, or leave the field out")
			}
			for k, it := range e.val.items {
				up := yamlpos.Elem(path+".unless", k)
				if len(e.val.items) == 1 {
					up = path + ".unless"
				}
				d.record(up, it)
				r.Unless = append(r.Unless, d.match(it, up))
			}
		case kindNull:
			d.errorf(e.val.pos, path+".unless", "empty: give a condition, or leave the field out")
		default:
			r.Unless = append(r.Unless, d.match(e.val, path+".unless"))
		}
	}
	if e, ok := f["value"]; ok {
		r.Value = d.bounds(e.val, path+".value")
	}
	if e, ok := f["rate"]; ok {
		r.Rate = d.rate(e.val, path+".rate", nil)
		if r.Rate == nil {
			r.Rate = &Rate{}
		}
	}
	if e, ok := f["severity"]; ok {
		r.Severity = d.severity(e.val, path+".severity")
	}
	if e, ok := f["attack"]; ok {
		for _, it := range d.list(e.val, path+".attack", "an ATT&CK for ICS technique id") {
			r.Attack = append(r.Attack, it.text)
		}
	}
	if e, ok := f["enabled"]; ok {
		if v, ok := d.boolean(e.val, path+".enabled"); ok {
			r.Enabled = v
		}
	}
	return r
}

func (d *decoder) bounds(n *node, path string) *Bounds {
	b := &Bounds{Min: math.Inf(-1), Max: math.Inf(1)}
	f := d.fields(n, path, "min", "max")
	if f == nil {
		return b
	}
	if len(f) == 0 {
		d.errorf(n.pos, path, "give min, max or both")
	}
	for _, k := range []string{"min", "max"} {
		e, ok := f[k]
		if !ok {
			continue
		}
		var v float64
		if e.val.kind == kindScalar && e.val.isFloat {
			v = e.val.num
		} else {
			s, ok := d.scalar(e.val, path+"."+k, "a number")
			if !ok {
				continue
			}
			var err error
			if v, err = parseBound(strings.TrimSpace(e.val.numeric())); err != nil {
				d.errorf(e.val.pos, path+"."+k, "%q is not a number", s)
				continue
			}
		}
		if math.IsNaN(v) {
			d.errorf(e.val.pos, path+"."+k, "NaN is not a bound")
			continue
		}
		if k == "min" {
			b.Min = v
		} else {
			b.Max = v
		}
	}
	return b
}

var matchFields = []string{"proto", "src", "dst", "link_src", "link_dst", "unit", "op", "fc", "table", "addr", "group", "points", "service", "port"}

// proto reads a protocol name: modbus, dnp3, or the name of another
// protocol a decoder registered (proto.New).
func (d *decoder) proto(n *node, path string) proto.ID {
	s, ok := d.scalar(n, path, "modbus or dnp3")
	if !ok {
		return 0
	}
	if id, ok := proto.Lookup(s); ok {
		return id
	}
	d.errorf(n.pos, path, "%q is not a protocol%s", s, yamlpos.Choices(s, proto.Names()))
	return 0
}

func (d *decoder) match(n *node, path string) Match {
	var m Match
	f := d.fields(n, path, matchFields...)
	if f == nil {
		return m
	}
	if e, ok := f["proto"]; ok {
		m.Proto = d.proto(e.val, path+".proto")
	}
	for _, k := range []string{"src", "dst"} {
		if e, ok := f[k]; ok {
			eps := d.endpoints(e.val, path+"."+k)
			if k == "src" {
				m.Src = eps
			} else {
				m.Dst = eps
			}
		}
	}
	if e, ok := f["link_src"]; ok {
		m.LinkSrc = d.ranges(e.val, path+".link_src", "a DNP3 link address", 0xFFFF)
	}
	if e, ok := f["link_dst"]; ok {
		m.LinkDst = d.ranges(e.val, path+".link_dst", "a DNP3 link address", 0xFFFF)
	}
	if e, ok := f["unit"]; ok {
		m.Units = d.codes(e.val, path+".unit", "a Modbus unit id", 0)
	}
	if e, ok := f["op"]; ok {
		for _, it := range d.list(e.val, path+".op", "an operation class") {
			o, err := ParseOpClass(it.text)
			if err != nil {
				d.errorf(it.pos, path+".op", "%v", err)
				continue
			}
			m.Ops.Add(o)
		}
	}
	if e, ok := f["table"]; ok {
		for _, it := range d.list(e.val, path+".table", "a Modbus table") {
			t, ok := tableAliases[it.text]
			if !ok {
				t = Table(index(tableNames, it.text) + 1)
			}
			if t == 0 {
				d.errorf(it.pos, path+".table", "%q is not a Modbus table%s", it.text, yamlpos.Choices(it.text, tableNames))
				continue
			}
			m.Tables.Add(t)
		}
	}
	if e, ok := f["addr"]; ok {
		m.Addr = d.ranges(e.val, path+".addr", "a Modbus address", 0xFFFF)
	}
	if e, ok := f["group"]; ok {
		m.Groups = d.groups(e.val, path+".group")
	}
	if e, ok := f["points"]; ok {
		m.Points = d.ranges(e.val, path+".points", "a DNP3 point index", math.MaxUint32)
	}
	if e, ok := f["service"]; ok {
		for _, it := range d.list(e.val, path+".service", "a service name") {
			s := strings.TrimSpace(it.text)
			if s == "any" {
				m.AnyService = true
				continue
			}
			id, ok := service.Lookup(s)
			if !ok {
				d.errorf(it.pos, path+".service", "%q is not a service%s", s, yamlpos.Choices(s, append(service.Names(), "any")))
				continue
			}
			m.Services = append(m.Services, id)
		}
	}
	if e, ok := f["port"]; ok {
		for i, it := range d.list(e.val, path+".port", "a port like tcp/445") {
			udp, p := d.port(it, yamlpos.Elem(path+".port", i))
			if p != 0 {
				m.Ports = append(m.Ports, Port{UDP: udp, Port: p})
			}
		}
	}
	if m.Link() {
		for _, k := range matchFields {
			if e, ok := f[k]; ok && k != "src" && k != "dst" && k != "service" && k != "port" {
				d.errorf(e.pos, yamlpos.Field(path, k), "%s is a field of messages, but service and port make this a match of links, which have src, dst, service and port only", k)
				break
			}
		}
		return m
	}
	// Fields of one protocol imply it, so that the engine indexes the rule
	// under it and Format says so.
	mb, dn := m.modbusOnly(), m.dnp3Only()
	switch {
	case len(mb) > 0 && len(dn) > 0:
		d.errorf(n.pos, path, "mixes Modbus fields (%s) and DNP3 fields (%s); write one rule per protocol", strings.Join(mb, ", "), strings.Join(dn, ", "))
	case m.Proto == proto.DNP3 && len(mb) > 0:
		d.errorf(f[mb[0]].pos, yamlpos.Field(path, mb[0]), "%s is a Modbus field, but proto is dnp3", mb[0])
	case m.Proto == proto.Modbus && len(dn) > 0:
		d.errorf(f[dn[0]].pos, yamlpos.Field(path, dn[0]), "%s is a DNP3 field, but proto is modbus", dn[0])
	case m.Proto == 0 && len(mb) > 0:
		m.Proto = proto.Modbus
	case m.Proto == 0 && len(dn) > 0:
		m.Proto = proto.DNP3
	}
	if e, ok := f["fc"]; ok {
		m.FC = d.funcCodes(e.val, path+".fc", m.Proto)
	}
	return m
}

func (d *decoder) endpoints(n *node, path string) []Endpoint {
	var eps []Endpoint
	for _, it := range d.list(n, path, "an asset name, an IP address or a network") {
		s := strings.TrimSpace(it.text)
		if a, ok := d.assets[s]; ok {
			eps = append(eps, Endpoint{Asset: a.Name, Prefixes: a.Prefixes, Units: a.Units, DNP3: a.DNP3})
			continue
		}
		if strings.Contains(s, "/") {
			if pf, ok := d.prefix(it, path); ok {
				eps = append(eps, Endpoint{Prefixes: []netip.Prefix{pf}})
			}
			continue
		}
		if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
			ip = ip.Unmap()
			eps = append(eps, Endpoint{Prefixes: []netip.Prefix{netip.PrefixFrom(ip, ip.BitLen())}})
			continue
		}
		names := make([]string, 0, len(d.assets))
		for name := range d.assets {
			names = append(names, name)
		}
		sort.Strings(names)
		d.errorf(it.pos, path, "%q is not an asset, an IP address or a network%s", it.text, yamlpos.DidYouMean(s, names))
	}
	return eps
}

func (d *decoder) groups(n *node, path string) []GroupVar {
	var gs []GroupVar
	for _, it := range d.list(n, path, "a DNP3 object group") {
		s := strings.TrimSpace(it.numeric())
		if g, ok := groupByName[s]; ok {
			gs = append(gs, GroupVar{Group: g})
			continue
		}
		gtext, vtext, hasVar := strings.Cut(s, "/")
		g, err := parseUint(gtext, 255)
		if err != nil {
			if hasVar || isDigits(gtext) {
				d.errorf(it.pos, path, "%q is not a DNP3 object group like 12 or 12/1: the group %s", it.text, err)
			} else {
				d.errorf(it.pos, path, "%q is not a DNP3 object group (a number like 12, group/variation like 12/1, or a name like control_relay_output_block)%s", it.text, yamlpos.DidYouMean(s, groupNames))
			}
			continue
		}
		var v uint64
		if hasVar {
			if v, err = parseUint(vtext, 255); err != nil {
				d.errorf(it.pos, path, "%q is not a DNP3 object group like 12/1: the variation %s", it.text, err)
				continue
			}
		}
		gv := GroupVar{Group: uint8(g), Var: uint8(v)}
		if !slices.Contains(gs, gv) {
			gs = append(gs, gv)
		}
	}
	return gs
}

func isDigits(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (d *decoder) funcCodes(n *node, path string, p proto.ID) FuncCodes {
	var fc FuncCodes
	for _, it := range d.list(n, path, "a function code") {
		s := strings.TrimSpace(it.numeric())
		if lo, hi, err := parseRange(s, 255); err == nil {
			if p == proto.Modbus && hi > 127 {
				d.errorf(it.pos, path, "%s is not a Modbus function code (1-127; exception responses are matched by their request's code)", strconv.Quote(s))
				continue
			}
			for c := lo; c <= hi; c++ {
				if p == 0 {
					// No protocol: the code of every protocol.
					fc.Modbus.Add(uint8(c))
					fc.DNP3.Add(uint8(c))
					fc.Other.Add(uint8(c))
				} else {
					fc.Set(p).Add(uint8(c))
				}
			}
			continue
		} else if isDigits(s) || strings.ContainsAny(s[:min(1, len(s))], "0123456789") {
			d.errorf(it.pos, path, "%s %s", strconv.Quote(s), err)
			continue
		}
		mc, inModbus := modbusFuncs[s]
		dc, inDNP3 := dnp3Funcs[s]
		switch p {
		case proto.Modbus:
			if !inModbus {
				d.errorf(it.pos, path, "%q is not a Modbus function code%s", s, fcHint(s, modbusFuncNames, inDNP3, "DNP3"))
				continue
			}
			fc.Modbus.Add(mc)
		case proto.DNP3:
			if !inDNP3 {
				d.errorf(it.pos, path, "%q is not a DNP3 function code%s", s, fcHint(s, dnp3FuncNames, inModbus, "Modbus"))
				continue
			}
			fc.DNP3.Add(dc)
		default:
			switch {
			case p != 0:
				d.errorf(it.pos, path, "%q: give %s's function codes as numbers", s, p.Title())
			case inModbus && inDNP3:
				d.errorf(it.pos, path, "%q names a function in both Modbus and DNP3; set proto", s)
			case inModbus:
				fc.Modbus.Add(mc)
			case inDNP3:
				fc.DNP3.Add(dc)
			case contains(opNames, s):
				d.errorf(it.pos, path, "%q is not a function code but an operation class: write op: %s", s, s)
			default:
				d.errorf(it.pos, path, "%q is neither a Modbus nor a DNP3 function code%s", s, yamlpos.DidYouMean(s, allFuncNames))
			}
		}
	}
	return fc
}

func fcHint(s string, names []string, inOther bool, other string) string {
	if inOther {
		return " (it is a " + other + " function; check proto)"
	}
	return yamlpos.DidYouMean(s, names)
}

// Function and group names, built from the decoders' own tables so that
// rules and the operations log spell them alike.
var (
	modbusFuncs, dnp3Funcs                       = map[string]uint8{}, map[string]uint8{}
	modbusFuncNames, dnp3FuncNames, allFuncNames []string
	groupByName                                  = map[string]uint8{}
	groupNames                                   []string
)

func init() {
	for c := 0; c < 256; c++ {
		switch n := modbus.FunctionName(uint8(c)); n {
		case "user_defined", "reserved", "unknown":
		default:
			if c < 128 {
				modbusFuncs[n] = uint8(c)
				modbusFuncNames = append(modbusFuncNames, n)
			}
		}
		if n := dnp3.FunctionName(uint8(c)); n != "unknown" {
			dnp3Funcs[n] = uint8(c)
			dnp3FuncNames = append(dnp3FuncNames, n)
		}
		if n := dnp3.GroupName(uint8(c)); n != "" {
			groupByName[n] = uint8(c)
			groupNames = append(groupNames, n)
		}
	}
	allFuncNames = append(append(allFuncNames, modbusFuncNames...), dnp3FuncNames...)
}

// ---- validation ----

var (
	ruleIDPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	assetNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)
	techniquePattern = regexp.MustCompile(`^T0[0-9]{3}$`)
)

// Validate checks a policy, built in Go or decoded, and returns every
// problem found (see Parse). Parse calls it.
func (p *Policy) Validate() error {
	return yamlpos.Join(p.validate(nil))
}

type validator struct {
	p     *Policy
	prior []*yamlpos.Error // errors the decoder found; their fields are not judged again
	errs  []*yamlpos.Error
}

// errorf reports a problem of field path, shown at the position recorded
// for key (path, or one of its list elements).
func (v *validator) errorf(path, key, format string, a ...any) {
	for _, e := range v.prior {
		if related(e.Path, path) {
			return
		}
	}
	file, pos := "policy", (*yamlpos.Index)(nil)
	if src := v.p.src; src != nil {
		file, pos = src.name, src.pos
	}
	v.errs = append(v.errs, pos.Errorf(file, path, key, format, a...))
}

// related reports whether one path is the other or contains it.
func related(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return a == b || under(a, b) || under(b, a)
}

func under(child, par string) bool {
	return strings.HasPrefix(child, par) && len(child) > len(par) && (child[len(par)] == '.' || child[len(par)] == '[')
}

func (p *Policy) validate(prior []*yamlpos.Error) []*yamlpos.Error {
	v := &validator{p: p, prior: prior}
	if p.Version != PolicyVersion {
		v.errorf("version", "version", "%d is not a supported version (this tapwatch reads version %d)", p.Version, PolicyVersion)
	}
	seenAsset := map[string]bool{}
	for i := range p.Assets {
		a := &p.Assets[i]
		path := "assets." + a.Name
		switch {
		case !assetNamePattern.MatchString(a.Name) || len(a.Name) > maxIDLen:
			v.errorf(path, path, "%q is not a valid asset name (a letter, then letters, digits, '.', '_' or '-'; at most %d)", a.Name, maxIDLen)
		case seenAsset[a.Name]:
			v.errorf(path, path, "asset %q is defined twice", a.Name)
		}
		seenAsset[a.Name] = true
		if len(a.Prefixes) == 0 {
			v.errorf(path, path, "asset %s needs an ip or a cidr", a.Name)
		}
		for _, pf := range a.Prefixes {
			if !pf.IsValid() || pf.Masked() != pf {
				v.errorf(path, path, "%s is not a valid network", pf)
			}
		}
		v.text(path+".description", a.Description)
		v.dnp3Addrs(path+".dnp3", a.DNP3)
		if a.Units.Has(0) {
			v.errorf(path+".modbus_units", path+".modbus_units", "0 is the broadcast address, not a device")
		}
	}
	seenDet := map[string]bool{}
	for _, s := range p.Detectors {
		path := "detectors." + s.ID
		det := LookupDetector(s.ID)
		if det == nil {
			v.errorf("detectors", path, "%q is not a built-in detector", s.ID)
			continue
		}
		if seenDet[s.ID] {
			v.errorf(path, path, "detector %s is set twice", s.ID)
		}
		seenDet[s.ID] = true
		v.severity(path+".severity", s.Severity)
		switch {
		case s.Rate != nil && det.Rate == nil:
			v.errorf(path+".rate", path+".rate", "detector %s has no rate to set", s.ID)
		case s.Rate == nil && det.Rate != nil:
			v.errorf(path+".rate", path+".rate", "detector %s needs a rate", s.ID)
		case s.Rate != nil:
			v.rate(path+".rate", s.Rate)
		}
		switch {
		case s.Window != 0 && det.Window == 0:
			v.errorf(path+".window", path+".window", "detector %s has no window to set", s.ID)
		case s.Window == 0 && det.Window != 0:
			v.errorf(path+".window", path+".window", "detector %s needs a window", s.ID)
		case s.Window != 0:
			v.duration(path+".window", s.Window)
		}
	}
	ruleAt := map[string]int{}
	for i := range p.Rules {
		v.rule(i, &p.Rules[i], ruleAt)
	}
	if p.Baseline != nil {
		v.baseline(p.Baseline)
	}
	return v.errs
}

func (v *validator) rule(i int, r *Rule, ruleAt map[string]int) {
	path := yamlpos.Elem("rules", i)
	switch {
	case r.ID == "":
		v.errorf(path+".id", path, "every rule needs an id (lowercase letters, digits and '-')")
	case !ruleIDPattern.MatchString(r.ID) || len(r.ID) > maxIDLen:
		v.errorf(path+".id", path+".id", "%q is not a valid rule id (lowercase letters, digits and '-', starting with a letter or digit; at most %d)", r.ID, maxIDLen)
	case LookupDetector(r.ID) != nil:
		v.errorf(path+".id", path+".id", "%q is the id of a built-in detector; alerts would be ambiguous", r.ID)
	default:
		if j, dup := ruleAt[r.ID]; dup {
			where := yamlpos.Elem("rules", j)
			if src := v.p.src; src != nil {
				if at, ok := src.pos.At(where); ok {
					where += fmt.Sprintf(" (line %d)", at.Line)
				}
			}
			v.errorf(path+".id", path+".id", "%q is already the id of %s", r.ID, where)
		} else {
			ruleAt[r.ID] = i
		}
	}
	if len(r.Name) > maxNameLen {
		v.errorf(path+".name", path+".name", "longer than %d characters", maxNameLen)
	}
	v.text(path+".name", r.Name)
	if r.When.Empty() {
		v.errorf(path+".when", path+".when", "empty: a rule must say which messages it is about (at least a proto)")
	} else {
		v.match(path+".when", &r.When)
	}
	for k := range r.Unless {
		up := yamlpos.Elem(path+".unless", k)
		if len(r.Unless) == 1 {
			up = path + ".unless"
		}
		u := &r.Unless[k]
		if u.Empty() {
			v.errorf(up, up, "empty: it would exempt every message")
			continue
		}
		v.match(up, u)
		if u.Link() != r.When.Link() && (u.Link() || len(u.messageFields()) > 0) {
			v.errorf(up, up, "matches %s, but the rule's when matches %s: it can never apply", linkOrMessages(u), linkOrMessages(&r.When))
		}
		if u.Proto != 0 && r.When.Proto != 0 && u.Proto != r.When.Proto {
			v.errorf(up, up, "is about %s, but the rule is about %s: it can never apply", u.Proto.Title(), r.When.Proto.Title())
		}
	}
	if r.Value != nil {
		b := r.Value
		switch {
		case r.When.Ops == 0 || r.When.Ops&^(1<<OpWrite|1<<OpControl) != 0:
			v.errorf(path+".value", path+".value", "value bounds need when.op to be write or control (or both), and nothing else")
		case math.IsNaN(b.Min) || math.IsNaN(b.Max):
			v.errorf(path+".value", path+".value", "NaN is not a bound")
		case math.IsInf(b.Min, -1) && math.IsInf(b.Max, 1):
			v.errorf(path+".value", path+".value", "give min, max or both")
		case b.Min > b.Max:
			v.errorf(path+".value", path+".value.min", "min %s is above max %s", FormatFloat(b.Min), FormatFloat(b.Max))
		}
		if r.Rate != nil {
			v.errorf(path+".rate", path+".rate", "a rule has value bounds or a rate, not both; write two rules")
		}
	}
	if r.Rate != nil {
		v.rate(path+".rate", r.Rate)
	}
	if r.When.Link() && (r.Rate != nil || r.Value != nil) {
		v.errorf(path, path, "a rule about links (service, port) fires once per flow: it takes no rate or value")
	}
	v.severity(path+".severity", r.Severity)
	for j, t := range r.Attack {
		if !techniquePattern.MatchString(t) {
			v.errorf(path+".attack", yamlpos.Elem(path+".attack", j), "%q is not an ATT&CK for ICS technique id (T0 and three digits, like T0855)", t)
		}
	}
}

// linkOrMessages says what a match is about.
func linkOrMessages(m *Match) string {
	if m.Link() {
		return "links (service, port)"
	}
	return "messages"
}

func (v *validator) match(path string, m *Match) {
	for _, side := range []struct {
		name string
		eps  []Endpoint
	}{{"src", m.Src}, {"dst", m.Dst}} {
		for j, ep := range side.eps {
			key := yamlpos.Elem(path+"."+side.name, j)
			switch {
			case ep.Asset != "" && v.p.Asset(ep.Asset) == nil:
				v.errorf(path+"."+side.name, key, "%q is not an asset", ep.Asset)
			case ep.Asset == "" && len(ep.Prefixes) != 1:
				v.errorf(path+"."+side.name, key, "an address term needs exactly one prefix")
			}
		}
	}
	mb, dn := m.modbusOnly(), m.dnp3Only()
	switch {
	case len(mb) > 0 && m.Proto != proto.Modbus:
		v.errorf(path+"."+mb[0], path+"."+mb[0], "%s is a Modbus field: it needs proto: modbus", mb[0])
	case len(dn) > 0 && m.Proto != proto.DNP3:
		v.errorf(path+"."+dn[0], path+"."+dn[0], "%s is a DNP3 field: it needs proto: dnp3", dn[0])
	}
	if m.Ops&^(1<<(OpAuth+1)-2) != 0 {
		v.errorf(path+".op", path+".op", "holds an invalid operation class")
	}
	if m.Tables&^(1<<(TableHoldingRegisters+1)-2) != 0 {
		v.errorf(path+".table", path+".table", "holds an invalid table")
	}
	if m.Proto != 0 && !m.FC.only(m.Proto) {
		v.errorf(path+".fc", path+".fc", "has function codes of another protocol than proto %s", m.Proto)
	}
	v.ranges(path+".addr", m.Addr, 0xFFFF)
	v.ranges(path+".link_src", m.LinkSrc, 0xFFFF)
	v.ranges(path+".link_dst", m.LinkDst, 0xFFFF)
	v.ranges(path+".points", m.Points, math.MaxUint32)
}

func (v *validator) ranges(path string, rs Ranges, limit uint32) {
	for i, r := range rs {
		if r.Lo > r.Hi || r.Hi > limit || i > 0 && uint64(rs[i-1].Hi)+1 >= uint64(r.Lo) {
			v.errorf(path, path, "ranges must be sorted, disjoint and within 0-%d", limit)
			return
		}
	}
}

func (v *validator) dnp3Addrs(path string, rs Ranges) {
	v.ranges(path, rs, 0xFFFF)
	if len(rs) > 0 && rs[len(rs)-1].Hi >= 0xFFF0 {
		v.errorf(path, path, "0xFFF0-0xFFFF are reserved and broadcast addresses, not devices")
	}
}

func (v *validator) text(path, s string) {
	if !utf8.ValidString(s) {
		v.errorf(path, path, "not valid UTF-8")
		return
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			v.errorf(path, path, "%q holds a control character; keep it to one line of text", s)
			return
		}
	}
}

func (v *validator) severity(path string, s Severity) {
	if s < SeverityInfo || s > SeverityCritical {
		v.errorf(path, path, "invalid severity %d (%s)", s, strings.Join(severityNames, ", "))
	}
}

func (v *validator) rate(path string, r *Rate) {
	if r.Max == 0 {
		v.errorf(path+".max", path+".max", "give a max of at least 1 (a rule that allows nothing needs no rate)")
	}
	v.duration(path+".per", r.Per)
}

func (v *validator) duration(path string, t time.Duration) {
	if t < MinRatePer || t > MaxRatePer {
		v.errorf(path, path, "%s is out of range (%s to %s)", FormatDuration(t), FormatDuration(MinRatePer), FormatDuration(MaxRatePer))
	}
}

// ---- effective policy as YAML ----

// Format writes the effective policy as YAML: every asset, every built-in
// detector with its settings, every rule with its defaults filled in. The
// output parses back to the same policy.
func (p *Policy) Format(w io.Writer) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "version: %d\n", p.Version)

	b.WriteString("\nassets:")
	if len(p.Assets) == 0 {
		b.WriteString(" {}")
	}
	b.WriteString("\n")
	for _, a := range p.Assets {
		var f []string
		var ips, nets []string
		for _, pf := range a.Prefixes {
			if pf.IsSingleIP() {
				ips = append(ips, quote(pf.Addr().String()))
			} else {
				nets = append(nets, quote(pf.String()))
			}
		}
		if len(ips) > 0 {
			f = append(f, "ip: "+flowList(ips))
		}
		if len(nets) > 0 {
			f = append(f, "cidr: "+flowList(nets))
		}
		if !a.Units.Empty() {
			f = append(f, "modbus_units: "+flowList(CodeTerms(&a.Units)))
		}
		if len(a.DNP3) > 0 {
			f = append(f, "dnp3: "+flowList(RangeTerms(a.DNP3)))
		}
		if a.Description != "" {
			f = append(f, "description: "+quote(a.Description))
		}
		fmt.Fprintf(&b, "  %s: {%s}\n", quote(a.Name), strings.Join(f, ", "))
	}

	b.WriteString("\ndetectors:\n")
	for _, det := range detectors {
		s, _ := p.Detector(det.ID)
		f := []string{"enabled: " + strconv.FormatBool(s.Enabled), "severity: " + s.Severity.String()}
		if s.Rate != nil {
			f = append(f, fmt.Sprintf("rate: {max: %d, per: %s}", s.Rate.Max, FormatDuration(s.Rate.Per)))
		}
		if s.Window != 0 {
			f = append(f, "window: "+FormatDuration(s.Window))
		}
		fmt.Fprintf(&b, "  # %s (%s)\n  %s: {%s}\n", det.Name, strings.Join(det.Attack, ", "), det.ID, strings.Join(f, ", "))
	}

	b.WriteString("\nrules:")
	if len(p.Rules) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for i, r := range p.Rules {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "  - id: %s\n", quote(r.ID))
		name := r.Name
		if name == "" {
			name = r.ID
		}
		fmt.Fprintf(&b, "    name: %s\n", quote(name))
		fmt.Fprintf(&b, "    when: %s\n", formatMatch(&r.When))
		switch len(r.Unless) {
		case 0:
		case 1:
			fmt.Fprintf(&b, "    unless: %s\n", formatMatch(&r.Unless[0]))
		default:
			b.WriteString("    unless:\n")
			for k := range r.Unless {
				fmt.Fprintf(&b, "      - %s\n", formatMatch(&r.Unless[k]))
			}
		}
		if r.Value != nil {
			var f []string
			if !math.IsInf(r.Value.Min, -1) {
				f = append(f, "min: "+FormatFloat(r.Value.Min))
			}
			if !math.IsInf(r.Value.Max, 1) {
				f = append(f, "max: "+FormatFloat(r.Value.Max))
			}
			fmt.Fprintf(&b, "    value: {%s}\n", strings.Join(f, ", "))
		}
		if r.Rate != nil {
			fmt.Fprintf(&b, "    rate: {max: %d, per: %s}\n", r.Rate.Max, FormatDuration(r.Rate.Per))
		}
		fmt.Fprintf(&b, "    severity: %s\n", r.Severity)
		if len(r.Attack) > 0 {
			qs := make([]string, len(r.Attack))
			for j, t := range r.Attack {
				qs[j] = quote(t)
			}
			fmt.Fprintf(&b, "    attack: [%s]\n", strings.Join(qs, ", "))
		}
		fmt.Fprintf(&b, "    enabled: %t\n", r.Enabled)
	}
	p.formatBaseline(&b)
	w.Write(b.Bytes())
}

func formatMatch(m *Match) string {
	var f []string
	if m.Proto != 0 {
		f = append(f, "proto: "+m.Proto.String())
	}
	for _, side := range []struct {
		name string
		eps  []Endpoint
	}{{"src", m.Src}, {"dst", m.Dst}} {
		if len(side.eps) == 0 {
			continue
		}
		terms := make([]string, len(side.eps))
		for i, ep := range side.eps {
			switch {
			case ep.Asset != "":
				terms[i] = quote(ep.Asset)
			case len(ep.Prefixes) > 0 && ep.Prefixes[0].IsSingleIP():
				terms[i] = quote(ep.Prefixes[0].Addr().String())
			case len(ep.Prefixes) > 0:
				terms[i] = quote(ep.Prefixes[0].String())
			}
		}
		f = append(f, side.name+": "+flowList(terms))
	}
	if len(m.LinkSrc) > 0 {
		f = append(f, "link_src: "+flowList(RangeTerms(m.LinkSrc)))
	}
	if len(m.LinkDst) > 0 {
		f = append(f, "link_dst: "+flowList(RangeTerms(m.LinkDst)))
	}
	if !m.Units.Empty() {
		f = append(f, "unit: "+flowList(CodeTerms(&m.Units)))
	}
	if m.Ops != 0 {
		var ops []string
		for o := OpRead; o <= OpAuth; o++ {
			if m.Ops.Has(o) {
				ops = append(ops, o.String())
			}
		}
		f = append(f, "op: "+flowList(ops))
	}
	if !m.FC.Any() {
		f = append(f, "fc: "+flowList(FCTerms(m)))
	}
	if m.Tables != 0 {
		var ts []string
		for t := TableCoils; t <= TableHoldingRegisters; t++ {
			if m.Tables.Has(t) {
				ts = append(ts, t.String())
			}
		}
		f = append(f, "table: "+flowList(ts))
	}
	if len(m.Addr) > 0 {
		f = append(f, "addr: "+flowList(RangeTerms(m.Addr)))
	}
	if len(m.Groups) > 0 {
		gs := make([]string, len(m.Groups))
		for i, g := range m.Groups {
			if g.Var == 0 {
				gs[i] = strconv.Itoa(int(g.Group))
			} else {
				gs[i] = fmt.Sprintf("%q", fmt.Sprintf("%d/%d", g.Group, g.Var))
			}
		}
		f = append(f, "group: "+flowList(gs))
	}
	if len(m.Points) > 0 {
		f = append(f, "points: "+flowList(RangeTerms(m.Points)))
	}
	if m.AnyService || len(m.Services) > 0 {
		var ss []string
		if m.AnyService {
			ss = append(ss, "any")
		}
		for _, s := range m.Services {
			ss = append(ss, s.String())
		}
		f = append(f, "service: "+flowList(ss))
	}
	if len(m.Ports) > 0 {
		ps := make([]string, len(m.Ports))
		for i, p := range m.Ports {
			ps[i] = PortText(p.UDP, p.Port)
		}
		f = append(f, "port: "+flowList(ps))
	}
	return "{" + strings.Join(f, ", ") + "}"
}

// FCTerms spells a function code set as it loads back: names where the
// code was given for one protocol, numbers (and ranges of unnamed codes)
// otherwise.
func FCTerms(m *Match) []string {
	var out []string
	var run Ranges // consecutive codes written as numbers
	flush := func() {
		out = append(out, RangeTerms(run)...)
		run = nil
	}
	for c := 0; c < 256; c++ {
		inM, inD := m.FC.Modbus.Has(uint8(c)), m.FC.DNP3.Has(uint8(c))
		name := ""
		switch {
		case !inM && !inD && !m.FC.Other.Has(uint8(c)):
			continue
		case !inM && !inD:
			// Another protocol's code: a number.
		case inM && !inD:
			name = modbus.FunctionName(uint8(c))
			if _, ok := modbusFuncs[name]; !ok {
				name = ""
			}
			if _, both := dnp3Funcs[name]; both && m.Proto != proto.Modbus {
				name = ""
			}
		case inD && !inM:
			name = dnp3.FunctionName(uint8(c))
			if _, ok := dnp3Funcs[name]; !ok {
				name = ""
			}
			if _, both := modbusFuncs[name]; both && m.Proto != proto.DNP3 {
				name = ""
			}
		}
		if name == "" {
			if n := len(run); n > 0 && run[n-1].Hi+1 == uint32(c) {
				run[n-1].Hi++
			} else {
				run = append(run, Range{uint32(c), uint32(c)})
			}
			continue
		}
		flush()
		out = append(out, name)
	}
	flush()
	return out
}

// RangeTerms spells ranges as they load back: 5, "0-19"; two adjacent
// values as two terms.
func RangeTerms(rs Ranges) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		if r.Lo == r.Hi {
			out[i] = strconv.FormatUint(uint64(r.Lo), 10)
		} else if r.Hi == r.Lo+1 {
			out[i] = fmt.Sprintf("%d, %d", r.Lo, r.Hi)
		} else {
			out[i] = fmt.Sprintf("\"%d-%d\"", r.Lo, r.Hi)
		}
	}
	return out
}

// CodeTerms spells a code set as RangeTerms does.
func CodeTerms(s *CodeSet) []string {
	var rs Ranges
	for c := 0; c < 256; c++ {
		if s.Has(uint8(c)) {
			rs = append(rs, Range{uint32(c), uint32(c)})
		}
	}
	return RangeTerms(Normalize(rs))
}

func flowList(items []string) string {
	if len(items) == 1 && !strings.Contains(items[0], ", ") {
		return items[0]
	}
	return "[" + strings.Join(items, ", ") + "]"
}

var plainPattern = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9_.-]*|[0-9]+(?:\.[0-9]+){3}(?:/[0-9]+)?)$`)

// quote leaves a string plain when YAML reads it back as the same string,
// and double-quotes it otherwise.
func quote(s string) string {
	if plainPattern.MatchString(s) {
		switch strings.ToLower(s) {
		case "true", "false", "yes", "no", "on", "off", "y", "n", "null":
		default:
			return s
		}
	}
	return strconv.Quote(s)
}

// FormatFloat writes a number as it loads back, in its shortest form.
func FormatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if strings.ContainsAny(s, "e") && !strings.Contains(s, ".") {
		// YAML needs a dot to read 1e+21 as a number; Parse reads it
		// either way, this is for other readers.
		s = strconv.FormatFloat(f, 'e', -1, 64)
		if !strings.Contains(s, ".") {
			s = strings.Replace(s, "e", ".0e", 1)
		}
	}
	return s
}

// FormatDuration writes a duration in its largest exact unit: 1s, 90s,
// 5m, 250ms.
func FormatDuration(t time.Duration) string {
	if t == 0 {
		return "0s"
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}} {
		if t%u.d == 0 {
			return strconv.FormatInt(int64(t/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(t), 10) + "ns"
}

// ---- small helpers ----

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool { return index(list, s) >= 0 }
