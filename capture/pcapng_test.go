package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/dpi/link"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// ngResult is how a pcapng file reads: the file header's error, or the
// file's link type, its records and the error that ended them (nil for a
// clean end).
type ngResult struct {
	hdr  error
	link link.Type
	recs []gotRecord
	end  error
}

// readPcapgo reads a pcapng file with pcapgo's NgReader, as capture did
// before it read pcapng files itself (mixed false), or with
// WantMixedLinkType, which hands out the packets of every interface with
// their own link type, as capture does now.
func readPcapgo(data []byte, mixed bool, limit int) ngResult {
	r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.NgReaderOptions{WantMixedLinkType: mixed})
	if err != nil {
		return ngResult{hdr: err, end: err}
	}
	res := ngResult{link: link.Type(r.LinkType())}
	for len(res.recs) < limit {
		d, ci, err := r.ZeroCopyReadPacketData()
		if err != nil {
			if err != io.EOF {
				res.end = err
			}
			return res
		}
		lt := res.link
		if mixed {
			lt = link.Type(ci.AncillaryData[0].(layers.LinkType))
		}
		res.recs = append(res.recs, gotRecord{info: Info{
			Timestamp: ci.Timestamp, CaptureLength: ci.CaptureLength, Length: ci.Length,
			LinkType: lt, Frame: uint64(len(res.recs) + 1),
		}, data: string(d)})
	}
	return res
}

// readOurs reads a pcapng file with capture, checking the errors' form:
// a *FileError naming the file, and the record after the last one read.
func readOurs(t *testing.T, f *File, err error, name string, limit int) ngResult {
	return readOursFrom(t, f, f, err, name, limit)
}

// readOursFrom is readOurs taking the packets of f from src (f itself, or
// a byBatch over it).
func readOursFrom(t *testing.T, f *File, src Source, err error, name string, limit int) ngResult {
	t.Helper()
	if err != nil {
		var fe *FileError
		if !errors.As(err, &fe) || fe.Record != 0 || fe.Path != name {
			t.Fatalf("file header: error %v, want a FileError for record 0 of %s", err, name)
		}
		return ngResult{hdr: fe.Err}
	}
	defer f.Close()
	res := ngResult{link: f.LinkType()}
	for len(res.recs) < limit {
		var ci Info
		data, err := src.ReadPacket(&ci)
		if err == io.EOF {
			return res
		}
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Record != uint64(len(res.recs)+1) || fe.Path != name {
				t.Fatalf("after %d records: error %v, want a FileError for record %d of %s", len(res.recs), err, len(res.recs)+1, name)
			}
			if _, err := src.ReadPacket(&ci); err != io.EOF {
				t.Fatalf("after the error %v: %v, want io.EOF", fe, err)
			}
			res.end = fe.Err
			return res
		}
		if len(data) != ci.CaptureLength || cap(data) != len(data) {
			t.Fatalf("record %d: %d bytes (capacity %d), capture length %d", ci.Frame, len(data), cap(data), ci.CaptureLength)
		}
		ci.Source = 0
		res.recs = append(res.recs, gotRecord{info: ci, data: string(data)})
	}
	return res
}

var noInterfaceErr = regexp.MustCompile(`^(Interface id \d+ not present in section \(have only 0 interfaces\)|At least one Interface is needed for a packet)$`)

// ngErr is the text of an error, with pcapgo's and capture's ways of
// saying the same thing made one: a file that ends inside a block is
// truncated, whatever block; a packet before its section's first
// interface is one with no interface, whether pcapgo looks for the
// interface first (as capture used it) or reads the packet first.
func ngErr(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	switch {
	case errors.Is(err, errTruncatedRecord), strings.HasSuffix(s, "unexpected EOF"):
		return "truncated"
	case noInterfaceErr.MatchString(s):
		return errNoInterface.Error()
	}
	return s
}

func sameRecord(g, w gotRecord) bool {
	return g.String() == w.String() && g.info.Timestamp.Equal(w.info.Timestamp) && g.info.Timestamp.Location() == w.info.Timestamp.Location()
}

// ngAgree says how capture's reading o of a file differs from pcapgo's,
// p as capture used it and m with mixed link types, or "" when it does
// not. capture must read the records m reads and, of them, those of the
// file's link type as p reads them, and end where m ends, or where p
// ends if m ends with an error, with the same error. The differences
// that pcapngFile's comment lists are allowed: a block that capture finds
// malformed ends the file there, whatever pcapgo makes of it.
func ngAgree(o, p, m ngResult) string {
	if p.hdr != nil || o.hdr != nil {
		switch {
		case errors.Is(o.hdr, errBadBlock):
		case p.hdr == nil:
			return fmt.Sprintf("file header: capture says %v, pcapgo reads the file", o.hdr)
		case o.hdr == nil:
			return fmt.Sprintf("file header: pcapgo says %v, capture reads the file", p.hdr)
		case ngErr(o.hdr) != ngErr(p.hdr):
			return fmt.Sprintf("file header: capture says %v, pcapgo %v", o.hdr, p.hdr)
		}
		return ""
	}
	if o.link != p.link {
		return fmt.Sprintf("link type %v, pcapgo %v", o.link, p.link)
	}
	for i := range min(len(o.recs), len(m.recs)) {
		if !sameRecord(o.recs[i], m.recs[i]) {
			return fmt.Sprintf("record %d:\n got %v\nwant %v", i+1, o.recs[i], m.recs[i])
		}
	}
	var first []gotRecord // the records of the file's link type, numbered as pcapgo numbers them
	for _, r := range o.recs {
		if r.info.LinkType == o.link {
			r.info.Frame = uint64(len(first) + 1)
			first = append(first, r)
		}
	}
	for i := range min(len(first), len(p.recs)) {
		if !sameRecord(first[i], p.recs[i]) {
			return fmt.Sprintf("record %d of link type %v:\n got %v\nwant %v", i+1, o.link, first[i], p.recs[i])
		}
	}
	bad := errors.Is(o.end, errBadBlock)
	ends := func(got []gotRecord, want ngResult) bool {
		if bad {
			return len(got) <= len(want.recs)
		}
		return len(got) == len(want.recs) && ngErr(o.end) == ngErr(want.end)
	}
	if ends(o.recs, m) || m.end != nil && ends(first, p) {
		return ""
	}
	return fmt.Sprintf("capture ends after %d records (%d of link type %v) with %v; pcapgo after %d with %v, and %d with %v without mixed link types",
		len(o.recs), len(first), o.link, o.end, len(m.recs), m.end, len(p.recs), p.end)
}

// comparePcapng checks that every way capture reads a pcapng file
// (NewFile on the caller's goroutine, with whole reads, one byte a read
// and a tiny batch, and OpenFile reading ahead) agrees with pcapgo. It
// returns the number of records read.
func comparePcapng(t *testing.T, data []byte, dir string) int {
	t.Helper()
	const limit = 1 << 20
	const name = "f.pcapng"
	p, m := readPcapgo(data, false, limit), readPcapgo(data, true, limit)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var n int
	for _, way := range []struct {
		name, path string // path: as errors name the file
		open       func() (*File, error)
	}{
		{"NewFile", name, func() (*File, error) { return NewFile(bytes.NewReader(data), name) }},
		{"NewFile, one byte a read", name, func() (*File, error) { return NewFile(iotest.OneByteReader(bytes.NewReader(data)), name) }},
		{"NewFile, a 64-byte batch", name, func() (*File, error) {
			f, err := NewFile(iotest.HalfReader(bytes.NewReader(data)), name)
			if err == nil {
				f.bs.b = batch{data: make([]byte, 0, 64), recs: make([]record, 0, 3)}
			}
			return f, err
		}},
		{"OpenFile", path, func() (*File, error) { return OpenFile(path) }},
		{"NewFile, by batch", name, func() (*File, error) { return NewFile(bytes.NewReader(data), name) }},
		{"OpenFile, by batch", path, func() (*File, error) { return OpenFile(path) }},
	} {
		f, err := way.open()
		var src Source = f
		if strings.HasSuffix(way.name, "by batch") && err == nil {
			src = &byBatch{src: f}
		}
		o := readOursFrom(t, f, src, err, way.path, limit)
		if d := ngAgree(o, p, m); d != "" {
			t.Fatalf("%s: %s", way.name, d)
		}
		n = len(o.recs)
	}
	return n
}

// ngFiles are the pcapng files of the shared corpus, pcapgo's own test
// files (made by pcapng-test-generator: both byte orders, several
// sections, every block type), and the corpus's classic pcap files made
// pcapng by Wireshark's editcap and mergecap, with comments on the file
// and on packets, cut packets, decryption secrets, several interfaces of
// several link types and several sections.
func ngFiles(t *testing.T) map[string][]byte {
	root := testenv.Corpus(t)
	files := map[string][]byte{}
	var classic []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		head := make([]byte, 4)
		if f, err := os.Open(p); err == nil {
			io.ReadFull(f, head)
			f.Close()
		}
		switch {
		case bytes.Equal(head, pcapngMagic):
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files["corpus/"+strings.TrimPrefix(p, root)] = data
		case matchAny(head, pcapMagics):
			classic = append(classic, p)
		}
		return nil
	})
	if len(classic) < 50 {
		t.Fatalf("only %d classic pcap files in %s", len(classic), root)
	}

	gp := gopacketDir(t)
	ngTests, _ := filepath.Glob(filepath.Join(gp, "pcapgo", "tests", "*", "*.pcapng"))
	if len(ngTests) < 50 {
		t.Fatalf("only %d pcapng test files in %s", len(ngTests), gp)
	}
	for _, p := range append(ngTests, filepath.Join(gp, "pcapgo", "tests", "epb.pcapng")) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files["pcapgo/"+strings.TrimPrefix(p, filepath.Join(gp, "pcapgo", "tests"))] = data
	}

	editcap := testenv.Tool(t, "editcap", "wireshark-common")
	mergecap := testenv.Tool(t, "mergecap", "wireshark-common")
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	os.WriteFile(keys, []byte("CLIENT_RANDOM 00112233 44556677\n"), 0o644)
	out := filepath.Join(dir, "out.pcapng")
	run := func(name string, args ...string) []byte {
		if msg, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, msg)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for i, p := range classic {
		key := "editcap/" + strings.TrimPrefix(p, root)
		if i%10 == 0 {
			files[key] = run(editcap, "-F", "pcapng", "-s", "60", "--capture-comment", "file "+filepath.Base(p),
				"-a", "1:first", "-a", "3:third, a longer comment", "--inject-secrets", "tls,"+keys, p, out)
		} else {
			files[key] = run(editcap, "-F", "pcapng", p, out)
		}
	}
	// The smallest files, about 1 MB of them, merged: one interface for
	// each, of several link types.
	bySize := slices.Clone(classic)
	size := func(p string) int64 { fi, _ := os.Stat(p); return fi.Size() }
	slices.SortFunc(bySize, func(a, b string) int { return int(size(a) - size(b)) })
	var total int64
	for i, p := range bySize {
		if total += size(p); total > 1<<20 {
			bySize = bySize[:i]
			break
		}
	}
	files["mergecap"] = run(mergecap, append([]string{"-F", "pcapng", "-w", out}, bySize...)...)
	// Sections one after the other: their link types differ.
	var sections []byte
	for _, p := range classic[:min(len(classic), 40)] {
		sections = append(sections, files["editcap/"+strings.TrimPrefix(p, root)]...)
	}
	files["sections"] = sections
	return files
}

// gopacketDir is the gopacket module's source, from the module cache.
func gopacketDir(t *testing.T) string {
	t.Helper()
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/gopacket/gopacket" {
				version = d.Version
			}
		}
	}
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			home, _ := os.UserHomeDir()
			gopath = filepath.Join(home, "go")
		}
		cache = filepath.Join(filepath.SplitList(gopath)[0], "pkg", "mod")
	}
	dir := filepath.Join(cache, "github.com", "gopacket", "gopacket@"+version)
	if _, err := os.Stat(dir); err == nil && version != "" {
		return dir
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/gopacket/gopacket").Output()
	testenv.Need(t, err == nil && len(bytes.TrimSpace(out)) > 0, "gopacket's source is not in the module cache ("+dir+"); run go mod download")
	return string(bytes.TrimSpace(out))
}

// TestPcapngLikePcapgo reads pcapng files of every kind there is at hand
// with capture and with pcapgo and compares each record.
func TestPcapngLikePcapgo(t *testing.T) {
	files := ngFiles(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	records := 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) { records += comparePcapng(t, files[name], t.TempDir()) })
	}
	lts := map[link.Type]bool{}
	for _, r := range readPcapgo(files["mergecap"], true, 1<<20).recs {
		lts[r.info.LinkType] = true
	}
	if len(lts) < 2 {
		t.Errorf("the merged file has packets of link types %v, want several", lts)
	}
	t.Logf("%d pcapng files, %d records read alike", len(files), records)
}

// ng builds pcapng files in one byte order.
type ng struct{ o binary.AppendByteOrder }

var (
	le = ng{binary.LittleEndian}
	be = ng{binary.BigEndian}
)

// block is a block of type typ: the body padded to 4 bytes, between the
// two lengths.
func (n ng) block(typ uint32, body ...[]byte) []byte {
	var all []byte
	for _, b := range body {
		all = append(all, b...)
	}
	all = append(all, make([]byte, (4-len(all)%4)%4)...)
	out := n.o.AppendUint32(nil, typ)
	out = n.o.AppendUint32(out, uint32(12+len(all)))
	out = append(out, all...)
	return n.o.AppendUint32(out, uint32(12+len(all)))
}

func (n ng) opt(code uint16, val []byte) []byte {
	out := n.o.AppendUint16(nil, code)
	out = n.o.AppendUint16(out, uint16(len(val)))
	return append(append(out, val...), make([]byte, (4-len(val)%4)%4)...)
}

func (n ng) shb(opts ...[]byte) []byte {
	b := n.o.AppendUint32(nil, ngByteOrder)
	b = n.o.AppendUint16(b, 1)
	b = n.o.AppendUint16(b, 0)
	b = n.o.AppendUint64(b, ^uint64(0))
	return n.block(ngSHB, append([][]byte{b}, opts...)...)
}

func (n ng) idb(lt link.Type, snap uint32, opts ...[]byte) []byte {
	b := n.o.AppendUint16(nil, uint16(lt))
	b = n.o.AppendUint16(b, 0)
	b = n.o.AppendUint32(b, snap)
	return n.block(ngIDB, append([][]byte{b}, opts...)...)
}

func (n ng) u64(v uint64) []byte { return n.o.AppendUint64(nil, v) }

// epb is an enhanced packet block of data, its wire length wire.
func (n ng) epb(iface uint32, ts uint64, wire uint32, data []byte, opts ...[]byte) []byte {
	b := n.o.AppendUint32(nil, iface)
	b = n.o.AppendUint32(b, uint32(ts>>32))
	b = n.o.AppendUint32(b, uint32(ts))
	b = n.o.AppendUint32(b, uint32(len(data)))
	b = n.o.AppendUint32(b, wire)
	b = append(b, data...)
	b = append(b, make([]byte, (4-len(data)%4)%4)...)
	return n.block(ngEPB, append([][]byte{b}, opts...)...)
}

// pb is an obsolete packet block.
func (n ng) pb(iface uint16, ts uint64, data []byte) []byte {
	b := n.o.AppendUint16(nil, iface)
	b = n.o.AppendUint16(b, 0)
	b = n.o.AppendUint32(b, uint32(ts>>32))
	b = n.o.AppendUint32(b, uint32(ts))
	b = n.o.AppendUint32(b, uint32(len(data)))
	b = n.o.AppendUint32(b, uint32(len(data)))
	return n.block(ngPB, b, data)
}

func (n ng) spb(wire uint32, data []byte) []byte {
	return n.block(ngSPB, n.o.AppendUint32(nil, wire), data)
}

func pkt(i, size int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ngSeeds are hand-made pcapng files, each with what it shows.
func ngSeeds() []struct {
	name string
	data []byte
} {
	const ts = 1_700_000_000_123_456 // microseconds
	eth, raw := link.Ethernet, link.Raw
	nrb := le.block(ngNRB, le.o.AppendUint16(nil, 1), le.o.AppendUint16(nil, 9), []byte{10, 0, 0, 1, 'p', 'l', 'c', 0, 0},
		make([]byte, 3), le.o.AppendUint16(nil, 2), le.o.AppendUint16(nil, 16), make([]byte, 16), le.o.AppendUint32(nil, 0))
	isb := le.block(ngISB, le.o.AppendUint32(nil, 0), le.u64(ts), le.opt(4, le.u64(100)), le.opt(0, nil))
	dsb := le.block(ngDSB, le.o.AppendUint32(nil, 0x544c534b), le.o.AppendUint32(nil, 5), []byte("keys\n"))
	good := cat(le.shb(le.opt(1, []byte("a comment")), le.opt(0, nil)), le.idb(eth, 65535, le.opt(2, []byte("eth0"))),
		le.epb(0, ts, 60, pkt(1, 60)), le.epb(0, ts+1, 1514, pkt(2, 61), le.opt(1, []byte("cut")), le.opt(0, nil)), le.epb(0, ts+2, 0, nil))
	type seed = struct {
		name string
		data []byte
	}
	seeds := []seed{
		{"little-endian", good},
		{"big-endian", cat(be.shb(), be.idb(eth, 0), be.epb(0, ts, 60, pkt(1, 60)), be.spb(62, pkt(2, 62)))},
		{"two sections, one link type", cat(good, be.shb(), be.idb(eth, 100), be.epb(0, ts, 70, pkt(3, 70)))},
		{"two sections, two link types", cat(good, be.shb(), be.idb(raw, 100), be.epb(0, ts, 70, pkt(3, 70)))},
		{"two interfaces, two link types", cat(le.shb(), le.idb(eth, 0), le.idb(raw, 0), le.epb(1, ts, 20, pkt(1, 20)), le.epb(0, ts, 60, pkt(2, 60)), le.epb(1, ts, 21, pkt(3, 21)))},
		{"tsresol 10^-9 and tsoffset", cat(le.shb(), le.idb(eth, 0, le.opt(9, []byte{9}), le.opt(14, le.u64(3600))), le.epb(0, 1_700_000_000_987_654_321, 60, pkt(1, 60)))},
		{"tsresol 10^-3", cat(le.shb(), le.idb(eth, 0, le.opt(9, []byte{3})), le.epb(0, 1_700_000_000_987, 60, pkt(1, 60)))},
		{"tsresol 2^-10", cat(le.shb(), le.idb(eth, 0, le.opt(9, []byte{0x80 | 10})), le.epb(0, 1_700_000_000<<10|1023, 60, pkt(1, 60)))},
		{"tsresol 2^-30", cat(le.shb(), le.idb(eth, 0, le.opt(9, []byte{0x80 | 30})), le.epb(0, 1_700_000_000<<30|(1<<30-1), 60, pkt(1, 60)))},
		{"tsresol 2^0, 10^0 and 10^-20", cat(le.shb(), le.idb(eth, 0, le.opt(9, []byte{0x80})), le.idb(eth, 0, le.opt(9, []byte{0})), le.idb(eth, 0, le.opt(9, []byte{20})),
			le.epb(0, 1_700_000_000, 60, pkt(1, 60)), le.epb(1, 1_700_000_000_123_456, 60, pkt(2, 60)), le.epb(2, ^uint64(0), 60, pkt(3, 60)))},
		{"tsresol 2^-64", cat(le.shb(), le.idb(eth, 0, le.opt(9, []byte{0x80 | 64})), le.epb(0, ts, 60, pkt(1, 60)))},
		{"tsresol 10^-64 in a later interface", cat(le.shb(), le.idb(eth, 0), le.epb(0, ts, 60, pkt(1, 60)), le.idb(eth, 0, le.opt(9, []byte{64})))},
		{"short tsresol and tsoffset", cat(le.shb(), le.idb(eth, 0, le.opt(9, nil), le.opt(14, []byte{1, 2, 3})), le.epb(0, ts, 60, pkt(1, 60)))},
		{"simple packet blocks, snap length", cat(le.shb(), le.idb(eth, 64), le.spb(60, pkt(1, 60)), le.spb(1500, pkt(2, 64)), le.spb(0, nil))},
		{"simple packet block, data past its end", cat(le.shb(), le.idb(eth, 0), le.spb(1500, pkt(2, 64)), le.spb(60, pkt(1, 60)))},
		{"simple packet block, data into the trailing length", cat(le.shb(), le.idb(eth, 0), le.spb(60, pkt(1, 60)), le.spb(64, pkt(2, 60)), le.spb(60, pkt(3, 60)))},
		{"obsolete packet blocks", cat(le.shb(), le.idb(eth, 0), le.idb(raw, 0), le.pb(0, ts, pkt(1, 60)), le.pb(1, ts, pkt(2, 21)))},
		{"other blocks", cat(le.shb(), dsb, nrb, le.block(0xbad, []byte("custom")), le.block(0x40000bad, make([]byte, 5)), le.block(0, nil),
			le.idb(eth, 0), isb, nrb, dsb, le.epb(0, ts, 60, pkt(1, 60)), le.block(0x12345678, make([]byte, 100)), isb)},
		{"name records run into the trailing length", cat(le.shb(), le.idb(eth, 0), le.block(ngNRB, le.o.AppendUint16(nil, 1), le.o.AppendUint16(nil, 4), []byte{1, 2, 3, 4}), le.epb(0, ts, 60, pkt(1, 60)))},
		{"name record too short", cat(le.shb(), le.idb(eth, 0), le.epb(0, ts, 60, pkt(1, 60)), le.block(ngNRB, le.o.AppendUint16(nil, 2), le.o.AppendUint16(nil, 4), []byte{1, 2, 3, 4}))},
		{"decryption secrets past the block", cat(le.shb(), le.block(ngDSB, le.o.AppendUint32(nil, 0x544c534b), le.o.AppendUint32(nil, 50), []byte("keys\n")), le.idb(eth, 0), le.epb(0, ts, 60, pkt(1, 60)))},
		{"statistics of an undescribed interface", cat(le.shb(), le.idb(eth, 0), le.epb(0, ts, 60, pkt(1, 60)), le.block(ngISB, le.o.AppendUint32(nil, 1), le.u64(0)))},
		{"packet on an undescribed interface", cat(good, le.epb(1, ts, 60, pkt(1, 60)))},
		{"packet before any interface", cat(le.shb(), le.epb(0, ts, 60, pkt(1, 60)), le.idb(eth, 0))},
		{"simple packet before any interface", cat(le.shb(), nrb, le.spb(60, pkt(1, 60)), le.idb(eth, 0))},
		{"packet before the second section's interface", cat(good, le.shb(), le.epb(0, ts, 60, pkt(1, 60)), le.idb(eth, 0))},
		{"section header only", le.shb()},
		{"an empty section, then one with a bad version", cat(le.shb(), be.shb()[:12], be.o.AppendUint16(nil, 2), be.shb()[14:], le.idb(eth, 0), le.epb(0, ts, 60, pkt(1, 60)))},
		{"a second section with a bad version", cat(good, be.shb()[:12], be.o.AppendUint16(nil, 2), be.shb()[14:], be.idb(eth, 0))},
		{"a second section with a bad byte-order magic", cat(good, le.shb()[:8], []byte{1, 2, 3, 4}, le.shb()[12:])},
		{"end of options with a length", cat(good, le.epb(0, ts, 60, pkt(1, 60), le.opt(0, []byte{1})))},
		{"options past the block", cat(good, le.epb(0, ts, 60, pkt(1, 60), le.o.AppendUint16(nil, 1), le.o.AppendUint16(nil, 100)))},
		{"a large packet", cat(le.shb(), le.idb(eth, 0), le.epb(0, ts, 300000, pkt(1, 300000)), le.epb(0, ts, 60, pkt(2, 60)))},
	}
	// Damaged copies of the good file: its last block is the empty packet's,
	// 32 bytes.
	last := len(good) - 32
	bad := func(name string, edit func(b []byte) []byte) {
		seeds = append(seeds, seed{name, edit(bytes.Clone(good))})
	}
	bad("a length not a multiple of 4", func(b []byte) []byte { b[last+4] = 33; return append(b, 0) })
	bad("a length under 12", func(b []byte) []byte { b[last+4] = 8; return b })
	bad("a trailing length that differs", func(b []byte) []byte { b[len(b)-4] = 36; return b })
	bad("a capture length past the block", func(b []byte) []byte { b[last+20] = 40; return b })
	bad("a capture length into the trailing length", func(b []byte) []byte { b[last+20] = 4; return b })
	bad("cut inside a block header", func(b []byte) []byte { return b[:last+5] })
	bad("cut inside a packet", func(b []byte) []byte { return b[:last-10] })
	bad("cut inside the trailing length", func(b []byte) []byte { return b[:len(b)-1] })
	bad("cut before the first interface", func(b []byte) []byte { return b[:len(le.shb(le.opt(1, []byte("a comment")), le.opt(0, nil)))+10] })
	bad("cut after the section header", func(b []byte) []byte { return b[:len(le.shb(le.opt(1, []byte("a comment")), le.opt(0, nil)))] })
	return seeds
}

func TestPcapngEdges(t *testing.T) {
	for _, s := range ngSeeds() {
		t.Run(s.name, func(t *testing.T) { comparePcapng(t, s.data, t.TempDir()) })
	}
}

// TestPcapngOwnWays checks what capture does where it reads pcapng files
// otherwise than pcapgo (see pcapngFile).
func TestPcapngOwnWays(t *testing.T) {
	seeds := map[string][]byte{}
	for _, s := range ngSeeds() {
		seeds[s.name] = s.data
	}
	read := func(name string) ngResult {
		f, err := NewFile(bytes.NewReader(seeds[name]), name)
		return readOurs(t, f, err, name, 100)
	}
	links := func(r ngResult) (lts []link.Type) {
		for _, rec := range r.recs {
			lts = append(lts, rec.info.LinkType)
		}
		return lts
	}

	r := read("two interfaces, two link types")
	if want := []link.Type{link.Raw, link.Ethernet, link.Raw}; r.link != link.Ethernet || !slices.Equal(links(r), want) || r.end != nil {
		t.Errorf("two interfaces: file link type %v, packets' %v, end %v; want Ethernet, %v, nil", r.link, links(r), r.end, want)
	}
	r = read("two sections, two link types")
	if want := []link.Type{link.Ethernet, link.Ethernet, link.Ethernet, link.Raw}; !slices.Equal(links(r), want) || r.end != nil {
		t.Errorf("two sections: packets' link types %v, end %v; want %v, nil", links(r), r.end, want)
	}
	if r.recs[3].info.Frame != 4 || r.recs[3].data != string(pkt(3, 70)) {
		t.Errorf("two sections: last packet %v", r.recs[3])
	}
	for _, name := range []string{"a length not a multiple of 4", "a length under 12", "a trailing length that differs",
		"a capture length past the block", "a capture length into the trailing length", "simple packet block, data past its end",
		"simple packet block, data into the trailing length",
		"options past the block", "decryption secrets past the block"} {
		r := read(name)
		if !errors.Is(r.end, errBadBlock) && !errors.Is(r.hdr, errBadBlock) {
			t.Errorf("%s: %d packets, end %v, file header %v; want a malformed block", name, len(r.recs), r.end, r.hdr)
		}
	}
	// Timestamps in the interfaces' resolutions, as pcapgo rounds them.
	for name, want := range map[string]time.Time{
		"tsresol 10^-9 and tsoffset": time.Unix(1_700_003_600, 987_654_321),
		"tsresol 10^-3":              time.Unix(1_700_000_000, 987_000_000),
		"tsresol 2^-10":              time.Unix(1_700_000_000, 1023*976562),
		"tsresol 2^-30":              time.Unix(1_700_000_000, 1<<30-1),
	} {
		if r := read(name); len(r.recs) != 1 || !r.recs[0].info.Timestamp.Equal(want) {
			t.Errorf("%s: %v, want %v", name, r.recs, want)
		}
	}
}

// FuzzPcapngFile compares capture's reading of pcapng files with pcapgo's
// on any bytes after a valid section header block.
func FuzzPcapngFile(f *testing.F) {
	for _, s := range ngSeeds() {
		big := s.data[8] == 0x1a // the byte-order magic, big-endian
		n := ng{le.o}
		if big {
			n = be
		}
		if len(s.data) >= 8 {
			f.Add(s.data[min(n.o.(binary.ByteOrder).Uint32(s.data[4:8]), uint32(len(s.data))):], big)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, rest []byte, big bool) {
		if len(rest) > 1<<20 {
			return
		}
		n := le
		if big {
			n = be
		}
		comparePcapng(t, cat(n.shb(), rest), dir)
	})
}

// TestGzipPcapngRefused: pcapgo reads gzip-compressed pcapng, but capture
// never handed it such a file (the magic is gzip's), nor does it now: it
// says what the file is and what to do.
func TestGzipPcapngRefused(t *testing.T) {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(writePcapng(t, layers.LinkTypeEthernet, 3))
	w.Close()
	if _, err := NewFile(bytes.NewReader(z.Bytes()), "x.pcapng.gz"); err == nil || !strings.Contains(err.Error(), "x.pcapng.gz: file header: not a pcap or pcapng file but one compressed with gzip (magic 1f 8b 08 00): decompress it first (gunzip -c x.pcapng.gz > capture.pcap)") {
		t.Fatalf("error %v, want not a pcap or pcapng file", err)
	}
}

// TestPcapngReadError checks that a read error after some packets ends
// the file with an error naming the next packet.
func TestPcapngReadError(t *testing.T) {
	data := writePcapng(t, layers.LinkTypeEthernet, 3)
	broken := errors.New("disk on fire")
	f, err := NewFile(io.MultiReader(bytes.NewReader(data[:len(data)-10]), iotest.ErrReader(broken)), "x.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	got := drain(f, 10)
	if len(got) != 3 || got[2].err != "x.pcapng: record 3: disk on fire" {
		t.Fatalf("got %v", got)
	}
}

// TestNgSplitLikeDivision checks the second kept by split against the
// division it stands for, on any processor, for the resolutions pcapng
// allows (those past 10^19 wrap, as NgReader's do): timestamps forward,
// back, in the same second, at its edges and anywhere.
func TestNgSplitLikeDivision(t *testing.T) {
	units := []uint64{1, 3, 1e3, 1e6, 1e9, 1e12, 1 << 20, 1 << 63}
	u := uint64(1)
	for range 63 {
		u *= 10
	}
	units = append(units, u) // 10^63, wrapped
	r := rand.New(rand.NewPCG(5, 6))
	for _, un := range units {
		in := ngInterface{units: un}
		check := func(ts uint64) {
			t.Helper()
			sec, rest := in.split(ts)
			if sec != ts/un || rest != ts%un {
				t.Fatalf("units %d: split(%d) = %d, %d; want %d, %d", un, ts, sec, rest, ts/un, ts%un)
			}
		}
		ts := uint64(1_700_000_000) * min(un, 1e9)
		for _, e := range []uint64{0, 1, un - 1, un, un + 1, ^uint64(0), ^uint64(0) - un} {
			check(e)
		}
		for range 20000 {
			switch r.IntN(8) {
			case 0:
				ts -= r.Uint64N(3 * un) // back
			case 1:
				ts = r.Uint64() // anywhere
			case 2:
				ts = ts/un*un + un - 1 // the second's last
			default:
				ts += r.Uint64N(un/100 + 1)
			}
			check(ts)
		}
	}
}
