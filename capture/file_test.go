package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/tapwatch/tapwatch/dpi/link"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var t0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

// writePcap returns a classic pcap file of n packets; packet i is i+1 bytes
// long, every byte equal to i.
func writePcap(t testing.TB, lt layers.LinkType, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	if err := w.WriteFileHeader(65535, lt); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		data := bytes.Repeat([]byte{byte(i)}, i+1)
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func writePcapng(t testing.TB, lt layers.LinkType, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, lt)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		data := bytes.Repeat([]byte{byte(i)}, i+1)
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readAll drains a source, checking every packet's content and numbering.
func readAll(t *testing.T, src Source) (n int, err error) {
	t.Helper()
	for {
		var ci Info
		data, err := src.ReadPacket(&ci)
		if err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
		if ci.Frame != uint64(n%5+1) && ci.Frame != uint64(n+1) {
			t.Fatalf("packet %d: frame %d", n, ci.Frame)
		}
		if len(data) != int(ci.Frame) || data[0] != byte(ci.Frame-1) {
			t.Fatalf("packet %d (frame %d): got %d bytes starting %x", n, ci.Frame, len(data), data[:1])
		}
		n++
	}
}

func TestFileFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		lt   layers.LinkType
	}{
		{"pcap ethernet", writePcap(t, layers.LinkTypeEthernet, 5), layers.LinkTypeEthernet},
		{"pcap null", writePcap(t, layers.LinkTypeNull, 5), layers.LinkTypeNull},
		{"pcap raw", writePcap(t, layers.LinkTypeRaw, 5), layers.LinkTypeRaw},
		{"pcap sll", writePcap(t, layers.LinkTypeLinuxSLL, 5), layers.LinkTypeLinuxSLL},
		{"pcapng ethernet", writePcapng(t, layers.LinkTypeEthernet, 5), layers.LinkTypeEthernet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFile(bytes.NewReader(tc.data), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if f.LinkType() != link.Type(tc.lt) {
				t.Errorf("link type %v, want %v", f.LinkType(), tc.lt)
			}
			n, err := readAll(t, f)
			if err != nil || n != 5 {
				t.Fatalf("read %d packets, err %v; want 5, nil", n, err)
			}
		})
	}
}

func TestTruncatedFile(t *testing.T) {
	full := writePcap(t, layers.LinkTypeEthernet, 5)
	// Cut inside the data of the 4th record: header 24, then records of 16+i+1 bytes.
	cut := 24 + (16 + 1) + (16 + 2) + (16 + 3) + 16 + 2
	f, err := NewFile(bytes.NewReader(full[:cut]), "cut.pcap")
	if err != nil {
		t.Fatal(err)
	}
	n, err := readAll(t, f)
	if n != 3 {
		t.Errorf("read %d packets before the damage, want 3", n)
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.Record != 4 || fe.Path != "cut.pcap" {
		t.Fatalf("error %v, want a FileError for record 4 of cut.pcap", err)
	}
	if !strings.Contains(err.Error(), "cut.pcap: record 4: ") || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("error text %q does not name the file, the record and the truncation", err)
	}
	if _, err := f.ReadPacket(new(Info)); err != io.EOF {
		t.Errorf("after the damage: %v, want io.EOF", err)
	}
}

func TestCorruptRecordLength(t *testing.T) {
	full := writePcap(t, layers.LinkTypeEthernet, 3)
	// The 2nd record's captured length (at 24+17+8) becomes absurd.
	off := 24 + 17 + 8
	copy(full[off:], []byte{0xff, 0xff, 0xff, 0x7f})
	f, err := NewFile(bytes.NewReader(full), "bad.pcap")
	if err != nil {
		t.Fatal(err)
	}
	n, err := readAll(t, f)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "bad.pcap: record 2: ") {
		t.Fatalf("read %d, err %v; want 1 packet then an error naming record 2", n, err)
	}
}

func TestNotACapture(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":  nil,
		"short":  {0xd4, 0xc3},
		"text":   []byte("hello, this is not a capture file\n"),
		"header": writePcap(t, layers.LinkTypeEthernet, 0)[:10],
	} {
		_, err := NewFile(bytes.NewReader(data), name+".pcap")
		var fe *FileError
		if !errors.As(err, &fe) || fe.Record != 0 || !strings.HasPrefix(err.Error(), name+".pcap: file header: ") {
			t.Errorf("%s: error %v, want a file header error naming the file", name, err)
		}
	}
}

func TestFilesInOrderPastDamage(t *testing.T) {
	dir := t.TempDir()
	good := writePcap(t, layers.LinkTypeEthernet, 5)
	paths := []string{filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap"), filepath.Join(dir, "missing.pcap"), filepath.Join(dir, "c.pcapng")}
	os.WriteFile(paths[0], good, 0o644)
	os.WriteFile(paths[1], good[:len(good)-3], 0o644) // last record cut
	os.WriteFile(paths[3], writePcapng(t, layers.LinkTypeEthernet, 5), 0o644)
	for _, batched := range []bool{false, true} {
		filesPastDamage(t, paths, batched)
	}
}

func filesPastDamage(t *testing.T, paths []string, batched bool) {
	files := OpenFiles(paths...)
	defer files.Close()
	var src Source = files
	if batched {
		src = &byBatch{src: files}
	}
	var (
		got    []int
		errs   []string
		frames int
	)
	for {
		var ci Info
		_, err := src.ReadPacket(&ci)
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		frames++
		got = append(got, ci.Source)
	}
	if frames != 5+4+5 {
		t.Errorf("batched %v: read %d packets, want 14", batched, frames)
	}
	if len(errs) != 2 || !strings.Contains(errs[0], "b.pcap: record 5") || !strings.Contains(errs[1], "missing.pcap") {
		t.Errorf("batched %v: errors %q, want b.pcap record 5 then missing.pcap", batched, errs)
	}
	want := []int{0, 0, 0, 0, 0, 1, 1, 1, 1, 3, 3, 3, 3, 3}
	if !slices.Equal(got, want) {
		t.Errorf("batched %v: source indexes %v, want %v", batched, got, want)
	}
}

func TestZeroCopyReadAllocs(t *testing.T) {
	for name, data := range map[string][]byte{
		"pcap":   writePcap(t, layers.LinkTypeEthernet, 2000),
		"pcapng": writePcapng(t, layers.LinkTypeEthernet, 2000),
	} {
		f, err := NewFile(bytes.NewReader(data), "x."+name)
		if err != nil {
			t.Fatal(err)
		}
		var ci Info
		f.ReadPacket(&ci)
		// 1000 packets: the batches (more than one) are reused.
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := f.ReadPacket(&ci); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", name, allocs)
		}
	}
}

// TestReadBatchAllocs: handing out a batch allocates nothing once the
// batches are made.
func TestReadBatchAllocs(t *testing.T) {
	for name, data := range map[string][]byte{
		"pcap":   writePcap(t, layers.LinkTypeEthernet, 12000),
		"pcapng": writePcapng(t, layers.LinkTypeEthernet, 12000),
	} {
		f, err := NewFile(bytes.NewReader(data), "x."+name)
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		if err := f.ReadBatch(&b); err != nil || b.Len() == 0 {
			t.Fatalf("%s: first batch: %d packets, %v", name, b.Len(), err)
		}
		allocs := testing.AllocsPerRun(5, func() {
			if err := f.ReadBatch(&b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per batch, want 0", name, allocs)
		}
	}
}

// FuzzFile feeds arbitrary bytes to the capture reader: it must return
// packets or a FileError, never panic or loop.
func FuzzFile(f *testing.F) {
	f.Add(writePcap(f, layers.LinkTypeEthernet, 3))               // a good pcap
	f.Add(writePcapng(f, layers.LinkTypeEthernet, 3))             // a good pcapng
	f.Add(writePcap(f, layers.LinkTypeNull, 2)[:40])              // cut in the 1st record
	f.Add(writePcapng(f, layers.LinkTypeEthernet, 2)[:50])        // cut pcapng block
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 0xff, 0xff, 0xff, 0xff}) // pcapng magic, absurd block length
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := NewFile(bytes.NewReader(data), "fuzz")
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FileError", err)
			}
			return
		}
		var src Source = c
		if len(data)%2 == 1 {
			src = &byBatch{src: c}
		}
		for i := 0; i < 1<<16; i++ {
			var ci Info
			pkt, err := src.ReadPacket(&ci)
			if err == io.EOF {
				return
			}
			if err != nil {
				var fe *FileError
				if !errors.As(err, &fe) || fe.Record != uint64(i+1) {
					t.Fatalf("packet %d: error %v is not a FileError for record %d", i, err, i+1)
				}
				return
			}
			if len(pkt) != ci.CaptureLength || ci.Frame != uint64(i+1) {
				t.Fatalf("packet %d: %d bytes, info %+v", i, len(pkt), ci)
			}
		}
		t.Fatal("more than 65536 packets from a fuzz input")
	})
}

func TestTruncatedPcapng(t *testing.T) {
	full := writePcapng(t, layers.LinkTypeEthernet, 5)
	f, err := NewFile(bytes.NewReader(full[:len(full)-10]), "cut.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	n, err := readAll(t, f)
	if n != 4 || err == nil || !strings.Contains(err.Error(), "cut.pcapng: record 5: ") {
		t.Fatalf("read %d, err %v; want 4 packets then an error naming record 5", n, err)
	}
}

func TestUnsupportedLinkType(t *testing.T) {
	data := writePcap(t, layers.LinkTypeIEEE802_11, 2)
	_, err := NewFile(bytes.NewReader(data), "wifi.pcap")
	if !errors.Is(err, ErrUnsupportedLinkType) || !strings.Contains(err.Error(), "wifi.pcap: file header: unsupported link type 105") {
		t.Fatalf("error %v, want an unsupported link type error naming the file and type 105", err)
	}
}

// TestPrefetchAcrossBatches reads a file of several prefetch batches
// through OpenFile: every packet, whole and in order, records straddling
// batch boundaries included, with no allocation per packet; then the same
// file cut short reports the damaged record.
func TestPrefetchAcrossBatches(t *testing.T) {
	t.Run("pcap", func(t *testing.T) {
		var b bytes.Buffer
		w := pcapgo.NewWriter(&b)
		if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		testPrefetchAcrossBatches(t, &b, w.WritePacket, func() error { return nil })
	})
	t.Run("pcapng", func(t *testing.T) {
		var b bytes.Buffer
		w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		testPrefetchAcrossBatches(t, &b, w.WritePacket, w.Flush)
	})
}

func testPrefetchAcrossBatches(t *testing.T, b *bytes.Buffer, write func(gopacket.CaptureInfo, []byte) error, flush func() error) {
	const n = 3000
	for i := 0; i < n; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 60+i%1400)
		binary.BigEndian.PutUint32(data, uint32(i))
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i)), CaptureLength: len(data), Length: len(data)}
		if err := write(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	if b.Len() < 2*prefetchBytes {
		t.Fatalf("test file is only %d bytes", b.Len())
	}
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ci Info
	check := func(i int) {
		data, err := f.ReadPacket(&ci)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if len(data) != 60+i%1400 || binary.BigEndian.Uint32(data) != uint32(i) || data[len(data)-1] != byte(i) || ci.Frame != uint64(i+1) {
			t.Fatalf("packet %d: %d bytes, frame %d, starts %x", i, len(data), ci.Frame, data[:4])
		}
	}
	for i := 0; i < 100; i++ {
		check(i)
	}
	i := 100
	if allocs := testing.AllocsPerRun(n-200, func() { check(i); i++ }); allocs != 0 {
		t.Errorf("%v allocations per packet, want 0", allocs)
	}
	for ; i < n; i++ {
		check(i)
	}
	if _, err := f.ReadPacket(&ci); err != io.EOF {
		t.Fatalf("after the last packet: %v", err)
	}

	// The same file cut inside its last record.
	os.WriteFile(path, b.Bytes()[:b.Len()-5], 0o644)
	f2, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	for i := 0; ; i++ {
		_, err := f2.ReadPacket(&ci)
		if err != nil {
			if i != n-1 || !strings.Contains(err.Error(), "record 3000:") {
				t.Fatalf("after %d packets: %v; want an error naming record 3000", i, err)
			}
			break
		}
	}
}

// TestPrefetchClose stops the prefetch goroutine of a file read only
// in part.
func TestPrefetchClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.pcap")
	os.WriteFile(path, writePcap(t, layers.LinkTypeEthernet, 5), 0o644)
	before := runtime.NumGoroutine()
	for i := 0; i < 100; i++ {
		f, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f.ReadPacket(new(Info))
		f.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left running after Close, %d before", n, before)
	}
}
