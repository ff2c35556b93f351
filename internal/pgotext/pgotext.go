// Package pgotext turns the text form of a profile-guided optimization
// (PGO) profile back into the pprof profile that "go build -pgo" reads.
//
// The text form is what "go tool preprofile" writes: the profile's call
// edges, each a caller, a callee, the call's line offset from the start
// of the caller and its weight. It is all the compiler uses of a CPU
// profile, it can be read and diffed, and it is what the repository keeps
// (cmd/tapwatch/pgo.txt), so that a build is reproducible without a
// binary profile in the tree. The go command accepts only pprof for
// -pgo, so the build converts it first (tapbench pgo).
//
// Each edge becomes one sample of two frames, the caller at its call
// site above the callee, weighted by the edge's weight; every function
// starts at line 1. The compiler counts the last two frames of each
// sample as its call edge, so it gets the same edges, weights and total
// back: "go tool preprofile" of the pprof written here gives the text
// form again, byte for byte.
package pgotext

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// header is the first line of the text form.
const header = "GO PREPROFILE V1"

// Edge is a weighted call edge.
type Edge struct {
	Caller, Callee string
	Offset         int64 // the call's line, relative to the caller's first line
	Weight         int64
}

// Parse reads the text form. An error names the line.
func Parse(r io.Reader) ([]Edge, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	if h, ok := next(); !ok || h != header {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("line 1: %w", err)
		}
		return nil, fmt.Errorf("line 1: not a profile in text form: the first line must be %q", header)
	}
	var edges []Edge
	for {
		caller, ok := next()
		if !ok {
			break
		}
		// After a failed Scan (a line too long), the next one may
		// succeed with part of that line: stop at the first failure.
		callee, ok := next()
		var nums string
		if ok {
			nums, ok = next()
		}
		if !ok {
			if err := sc.Err(); err != nil {
				return nil, fmt.Errorf("line %d: %w", line+1, err)
			}
			return nil, fmt.Errorf("line %d: an edge needs three lines (caller, callee, offset and weight); the file ends after %d", line, line)
		}
		if caller == "" {
			return nil, fmt.Errorf("line %d: an empty function name", line-2)
		}
		if callee == "" {
			return nil, fmt.Errorf("line %d: an empty function name", line-1)
		}
		e := Edge{Caller: caller, Callee: callee}
		f := strings.Fields(nums)
		var err1, err2 error
		if len(f) == 2 {
			e.Offset, err1 = strconv.ParseInt(f[0], 10, 64)
			e.Weight, err2 = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) != 2 || err1 != nil || err2 != nil || e.Weight <= 0 {
			return nil, fmt.Errorf("line %d: %q is not an offset and a weight above 0", line, nums)
		}
		edges = append(edges, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return edges, nil
}

// WritePprof writes edges as an uncompressed pprof profile with one
// sample type, samples/count.
func WritePprof(w io.Writer, edges []Edge) error {
	var p pb
	// The string table: "" first, as pprof wants, then every string in
	// the order it is first used.
	var strs ids[string]
	str := func(s string) int64 { return int64(strs.id(s)) - 1 }
	str("")
	// sample_type (1): samples/count
	var vt pb
	vt.int(1, str("samples"))
	vt.int(2, str("count"))
	p.msg(1, &vt)

	type loc struct {
		fn   uint64
		line int64
	}
	var funcs ids[string]
	var locs ids[loc]
	for _, e := range edges {
		if e.Weight <= 0 {
			return fmt.Errorf("edge %s -> %s: weight %d is not above 0", e.Caller, e.Callee, e.Weight)
		}
		// The callee's frame is at line 1, where its line does not
		// matter (a frame gives the call edges of the frames it calls,
		// and it calls none here), but for a function that calls itself
		// from its first line: the two frames would be one node, and the
		// edge lost.
		leafLine := int64(1)
		if e.Caller == e.Callee && e.Offset == 0 {
			leafLine = 2
		}
		leaf := locs.id(loc{funcs.id(e.Callee), leafLine})
		site := locs.id(loc{funcs.id(e.Caller), 1 + e.Offset})
		// sample (2): location_id (1, leaf first), value (2)
		var s pb
		s.uint(1, leaf)
		s.uint(1, site)
		s.int(2, e.Weight)
		p.msg(2, &s)
	}
	for i, l := range locs.order {
		// location (4): id (1), line (4): function_id (1), line (2)
		var ln, lo pb
		ln.uint(1, l.fn)
		ln.int(2, l.line)
		lo.uint(1, uint64(i+1))
		lo.msg(4, &ln)
		p.msg(4, &lo)
	}
	for i, name := range funcs.order {
		// function (5): id (1), name (2), system_name (3), start_line (5)
		var f pb
		f.uint(1, uint64(i+1))
		f.int(2, str(name))
		f.int(3, str(name))
		f.int(5, 1)
		p.msg(5, &f)
	}
	// period_type (11) and period (12), as a CPU profile has them
	var pt pb
	pt.int(1, str("cpu"))
	pt.int(2, str("nanoseconds"))
	p.msg(11, &pt)
	p.int(12, 1)
	// string_table (6)
	for _, s := range strs.order {
		p.bytes(6, []byte(s))
	}
	_, err := w.Write(p.b)
	return err
}

// ids numbers keys from 1 in the order they are first seen, as pprof's
// ids of functions and locations are.
type ids[K comparable] struct {
	of    map[K]uint64
	order []K
}

func (t *ids[K]) id(k K) uint64 {
	if id, ok := t.of[k]; ok {
		return id
	}
	if t.of == nil {
		t.of = map[K]uint64{}
	}
	t.order = append(t.order, k)
	t.of[k] = uint64(len(t.order))
	return t.of[k]
}

// pb is a protocol buffer being written.
type pb struct{ b []byte }

func (p *pb) varint(v uint64) {
	for v >= 0x80 {
		p.b = append(p.b, byte(v)|0x80)
		v >>= 7
	}
	p.b = append(p.b, byte(v))
}

func (p *pb) key(field, wire int) { p.varint(uint64(field<<3 | wire)) }

func (p *pb) uint(field int, v uint64) {
	p.key(field, 0)
	p.varint(v)
}

func (p *pb) int(field int, v int64) { p.uint(field, uint64(v)) }

func (p *pb) bytes(field int, b []byte) {
	p.key(field, 2)
	p.varint(uint64(len(b)))
	p.b = append(p.b, b...)
}

func (p *pb) msg(field int, m *pb) { p.bytes(field, m.b) }
