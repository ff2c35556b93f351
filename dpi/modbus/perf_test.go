package modbus

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The package must stay free of fmt (and of reflect), like dnsmessage.
func TestNoFmtImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/tapwatch/tapwatch/dpi/proto" {
				continue // the decoder contract, itself standard library only
			}
			switch path {
			case "fmt", "reflect", "unsafe":
				t.Errorf("%s imports %s", name, path)
			}
			if strings.Contains(path, ".") {
				t.Errorf("%s imports %s, outside the standard library", name, path)
			}
		}
	}
}

type countHandler struct{ n, values int }

func (h *countHandler) Message(m *Message) {
	h.n++
	h.values += len(m.Values)
}

// trafficPairs is a steady poll: read 10 holding registers, write 4.
func trafficPairs() (req, resp []byte) {
	req = cat(
		adu(1, 1, 0x03, 0x00, 0x64, 0x00, 0x0A),
		adu(2, 1, 0x10, 0x00, 0xC8, 0x00, 0x04, 0x08, 0, 1, 0, 2, 0, 3, 0, 4),
	)
	resp = cat(
		adu(1, 1, 0x03, 0x14, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9, 0, 10),
		adu(2, 1, 0x10, 0x00, 0xC8, 0x00, 0x04),
	)
	return req, resp
}

func TestFeedAllocs(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	h := &countHandler{}
	req, resp := trafficPairs()
	meta := at(1, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		meta.Frame++
		meta.Time = meta.Time.Add(time.Millisecond)
		if n := d.Feed(&c, Request, req, meta, h); n != len(req) {
			t.Fatalf("consumed %d of %d", n, len(req))
		}
		meta.Frame++
		if n := d.Feed(&c, Response, resp, meta, h); n != len(resp) {
			t.Fatalf("consumed %d of %d", n, len(resp))
		}
	})
	if allocs != 0 {
		t.Errorf("Feed allocates %v times per request/response pair, want 0", allocs)
	}
	if h.n == 0 || c.Pending() != 0 {
		t.Errorf("messages %d, pending %d", h.n, c.Pending())
	}
}

func BenchmarkFeed(b *testing.B) {
	d := NewDecoder(Config{})
	var c Conn
	h := &countHandler{}
	req, resp := trafficPairs()
	meta := at(1, 0)
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		meta.Frame++
		d.Feed(&c, Request, req, meta, h)
		d.Feed(&c, Response, resp, meta, h)
	}
}

// BenchmarkFeedResync measures the worst case: scanning garbage.
func BenchmarkFeedResync(b *testing.B) {
	d := NewDecoder(Config{})
	var c Conn
	h := &countHandler{}
	junk := []byte(strings.Repeat("\x00\x00\x00\x00\x00\x00 no header here ", 64))
	b.SetBytes(int64(len(junk)))
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(&c, Request, junk, Meta{}, h)
	}
}
