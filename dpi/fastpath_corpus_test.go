package dpi_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/dpi/link"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// TestFastPathCorpus compares the fast path with gopacket on every
// Ethernet frame of the public corpus and reports the share it takes.
func TestFastPathCorpus(t *testing.T) {
	root := testenv.Corpus(t)
	e, err := dpi.New(dpi.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var frames, took int
	files := eachCorpusFrame(t, root, func(p string, ci *capture.Info, data []byte) {
		if ci.LinkType != link.Ethernet {
			return
		}
		frames++
		took1, err := dpi.FastFrameAgrees(e, data)
		if err != nil {
			t.Fatalf("%s, frame %d: %v", p, ci.Frame, err)
		}
		if took1 {
			took++
		}
	})
	if files < 100 || frames == 0 {
		t.Fatalf("%d files, %d Ethernet frames in %s", files, frames, root)
	}
	t.Logf("%d files: the fast path took %d of %d Ethernet frames (%.1f%%), each as the full decoder decodes it", files, took, frames, 100*float64(took)/float64(frames))
}

// TestDecodeLikeGopacket decodes every frame of the public corpus, of
// every link type dpi decodes, with dpi's own header decoder and with
// gopacket's, and compares what Packet reads from them.
func TestDecodeLikeGopacket(t *testing.T) {
	root := testenv.Corpus(t)
	compare := dpi.NewDecodeComparer()
	frames := 0
	links := map[link.Type]int{}
	files := eachCorpusFrame(t, root, func(p string, ci *capture.Info, data []byte) {
		frames++
		links[ci.LinkType]++
		if err := compare(ci.LinkType, data); err != nil {
			t.Fatalf("%s, frame %d: %v", p, ci.Frame, err)
		}
	})
	if files < 100 || frames < 100000 {
		t.Fatalf("%d files, %d frames in %s", files, frames, root)
	}
	t.Logf("%d files, %d frames decoded alike; frames by link type: %v", files, frames, links)
}

// eachCorpusFrame calls f with every frame of every capture under root
// and returns the number of captures read. A damaged file ends with its
// last good record.
func eachCorpusFrame(t *testing.T, root string, f func(path string, ci *capture.Info, data []byte)) int {
	t.Helper()
	files := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".pcap") || strings.HasSuffix(p, ".pcapng") || strings.HasSuffix(p, ".cap")) {
			return nil
		}
		src, err := capture.OpenFile(p)
		if err != nil {
			return nil
		}
		defer src.Close()
		files++
		for {
			var ci capture.Info
			data, err := src.ReadPacket(&ci)
			if err != nil {
				var fe *capture.FileError
				if err != io.EOF && !errors.As(err, &fe) {
					t.Fatalf("%s: %v", p, err)
				}
				return nil
			}
			f(p, &ci, data)
		}
	})
	return files
}
