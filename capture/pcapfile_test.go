package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/tapwatch/tapwatch/dpi/link"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// gotRecord is one record or the error that ended a file, as read.
type gotRecord struct {
	info Info
	data string
	err  string
}

func (g gotRecord) String() string {
	if g.err != "" {
		return "error " + g.err
	}
	return fmt.Sprintf("frame %d ts %s cap %d len %d link %d data %x", g.info.Frame, g.info.Timestamp.Format("2006-01-02T15:04:05.999999999"),
		g.info.CaptureLength, g.info.Length, g.info.LinkType, g.data)
}

// drain reads src to its end: its records, then what ended it ("" for a
// clean end).
func drain(src Source, limit int) []gotRecord {
	var out []gotRecord
	for len(out) < limit {
		var ci Info
		data, err := src.ReadPacket(&ci)
		if err != nil {
			if err != io.EOF {
				out = append(out, gotRecord{err: err.Error()})
			}
			return out
		}
		ci.Source = 0
		out = append(out, gotRecord{info: ci, data: string(data)})
	}
	return out
}

// byBatch reads a BatchSource with ReadBatch, and every other time with
// ReadPacket, as the two may be mixed, and hands its packets out one at a
// time.
type byBatch struct {
	src   BatchSource
	b     Batch
	i     int
	calls int
}

func (s *byBatch) ReadPacket(ci *Info) ([]byte, error) {
	if s.i < s.b.Len() {
		data, info := s.b.Packet(s.i)
		s.i++
		*ci = *info
		return data, nil
	}
	if s.calls++; s.calls%2 == 0 {
		return s.src.ReadPacket(ci)
	}
	err := s.src.ReadBatch(&s.b)
	s.i = 0
	if err != nil {
		if s.b.Len() != 0 {
			panic("ReadBatch returned packets with an error")
		}
		return nil, err
	}
	if s.b.Len() == 0 {
		panic("ReadBatch returned no packets and no error")
	}
	return s.ReadPacket(ci)
}

// pcapgoRecords reads a classic pcap file with pcapgo's Reader, as
// capture did before it read pcap files itself, errors included.
func pcapgoRecords(data []byte, name string, limit int) ([]gotRecord, error) {
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []gotRecord
	for len(out) < limit {
		d, ci, err := r.ZeroCopyReadPacketData()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			if err == io.ErrUnexpectedEOF {
				err = errTruncatedRecord
			}
			fe := &FileError{Path: name, Record: uint64(len(out) + 1), Err: err}
			return append(out, gotRecord{err: fe.Error()}), nil
		}
		out = append(out, gotRecord{info: Info{
			Timestamp: ci.Timestamp, CaptureLength: ci.CaptureLength, Length: ci.Length,
			LinkType: link.Type(r.LinkType()), Frame: uint64(len(out) + 1),
		}, data: string(d)})
	}
	return out, nil
}

// comparePcap checks that every way capture reads a classic pcap file
// (NewFile on the caller's goroutine with the normal and with a tiny
// batch, and OpenFile reading ahead) gives what pcapgo gives.
func comparePcap(t *testing.T, data []byte, dir string) {
	t.Helper()
	const limit = 1 << 20
	const name = "f.pcap"
	want, werr := pcapgoRecords(data, name, limit)
	_, err := NewFile(bytes.NewReader(data), name)
	if werr == nil && errors.Is(err, ErrUnsupportedLinkType) {
		return // capture refuses what dpi cannot decode
	}
	if werr != nil || err != nil {
		if (werr == nil) != (err == nil) {
			t.Fatalf("file header: capture says %v, pcapgo %v", err, werr)
		}
		return
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	opened := func() Source {
		f, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	for _, way := range []struct {
		name string
		src  func() Source
	}{
		{"NewFile", func() Source { f, _ := NewFile(bytes.NewReader(data), name); return f }},
		{"NewFile, one byte a read", func() Source { f, _ := NewFile(iotest.OneByteReader(bytes.NewReader(data)), name); return f }},
		{"NewFile, a 64-byte batch", func() Source {
			f, _ := NewFile(iotest.HalfReader(bytes.NewReader(data)), name)
			f.bs.b = batch{data: make([]byte, 0, 64), recs: make([]record, 0, 3)}
			return f
		}},
		{"OpenFile", opened},
		{"NewFile, by batch", func() Source { f, _ := NewFile(bytes.NewReader(data), name); return &byBatch{src: f} }},
		{"OpenFile, by batch", func() Source { return &byBatch{src: opened().(*File)} }},
	} {
		got := drain(way.src(), limit)
		for i := range got {
			got[i].err = strings.ReplaceAll(got[i].err, path, name)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d records, pcapgo %d", way.name, len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			g, w := got[i], want[i]
			if g.String() != w.String() || !g.info.Timestamp.Equal(w.info.Timestamp) || g.info.Timestamp.Location() != w.info.Timestamp.Location() {
				t.Fatalf("%s: record %d:\n got %v\nwant %v", way.name, i+1, g, w)
			}
		}
	}
}

// TestPcapFileLikePcapgo reads every classic pcap file of the public
// corpus with capture and with pcapgo and compares each record.
func TestPcapFileLikePcapgo(t *testing.T) {
	root := testenv.Corpus(t)
	var paths []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".pcap") || strings.HasSuffix(p, ".cap")) {
			paths = append(paths, p)
		}
		return nil
	})
	checked := 0
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 4 || !matchAny(data[:4], pcapMagics) || len(data) > 8<<20 {
			continue
		}
		checked++
		t.Run(strings.TrimPrefix(p, root), func(t *testing.T) { comparePcap(t, data, t.TempDir()) })
	}
	if checked < 50 {
		t.Fatalf("only %d classic pcap files in %s", checked, root)
	}
	t.Logf("%d classic pcap files read alike", checked)
}

// pcapBytes is a classic pcap file: the 24-byte header (magic as written,
// little- or big-endian fields) and records of the given lengths.
func pcapBytes(big bool, magic uint32, snap uint32, recs ...[3]uint32) []byte {
	var order binary.AppendByteOrder = binary.LittleEndian
	if big {
		order = binary.BigEndian
	}
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, snap)
	b = order.AppendUint32(b, uint32(layers.LinkTypeEthernet))
	for i, r := range recs { // caplen, wire length, bytes present
		b = order.AppendUint32(b, 1_700_000_000+uint32(i))
		b = order.AppendUint32(b, 999_999+uint32(i)*7)
		b = order.AppendUint32(b, r[0])
		b = order.AppendUint32(b, r[1])
		b = append(b, bytes.Repeat([]byte{byte(i)}, int(r[2]))...)
	}
	return b
}

func pcapSeeds() [][]byte {
	return [][]byte{
		pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{60, 60, 60}, [3]uint32{0, 0, 0}, [3]uint32{100, 1500, 100}),
		pcapBytes(true, 0xa1b2c3d4, 65535, [3]uint32{60, 60, 60}, [3]uint32{70, 80, 70}),
		pcapBytes(false, 0xa1b23c4d, 96, [3]uint32{96, 1500, 96}, [3]uint32{200, 1500, 200}),     // longer than the snap length, taken
		pcapBytes(true, 0xa1b23c4d, 1<<20, [3]uint32{300000, 300000, 300000}),                    // longer than a batch
		pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{60, 60, 60}, [3]uint32{300000, 300000, 0}), // over libpcap's maximum
		pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{61, 60, 61}),                               // capture longer than the wire
		pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{60, 60, 60}, [3]uint32{60, 60, 0}),         // header, no bytes
		pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{60, 60, 60}, [3]uint32{60, 60, 30}),        // cut inside
		pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{60, 60, 60})[:24+76+7],                     // cut inside a header
		pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{0, 0, 0}, [3]uint32{0, 5, 0}),
		pcapBytes(false, 0xa1b2c3d4, 1<<31, [3]uint32{1 << 31, 1 << 31, 10}), // a huge snap length, a damaged record
		pcapBytes(false, 0xa1b2c3d4, 65535)[:20],
	}
}

func TestPcapFileEdges(t *testing.T) {
	for i, seed := range pcapSeeds() {
		t.Run(fmt.Sprint(i), func(t *testing.T) { comparePcap(t, seed, t.TempDir()) })
	}
}

// FuzzPcapFile compares capture's reading of classic pcap files with
// pcapgo's on any bytes after a valid magic.
func FuzzPcapFile(f *testing.F) {
	for _, s := range pcapSeeds() {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		comparePcap(t, data, dir)
	})
}

// TestPcapFileReadError checks that a read error after some records ends
// the file with an error naming the next record.
func TestPcapFileReadError(t *testing.T) {
	data := pcapBytes(false, 0xa1b2c3d4, 65535, [3]uint32{60, 60, 60}, [3]uint32{60, 60, 60})
	broken := errors.New("disk on fire")
	f, err := NewFile(io.MultiReader(bytes.NewReader(data[:24+76+10]), iotest.ErrReader(broken)), "x.pcap")
	if err != nil {
		t.Fatal(err)
	}
	got := drain(f, 10)
	if len(got) != 2 || got[1].err != "x.pcap: record 2: disk on fire" {
		t.Fatalf("got %v", got)
	}
	if _, err := f.ReadPacket(new(Info)); err != io.EOF {
		t.Fatalf("after the error: %v, want io.EOF", err)
	}
}
