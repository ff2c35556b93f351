package sensor_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/sensor"
)

// frameFC is one decoded Modbus message as the oracle sees it.
type frameFC struct {
	frame uint64
	fc    uint8
}

// fcCollector records (frame, fc) for every message tapwatch decodes, the
// way the operations log would print it. Unanswered-request reports repeat
// a request already counted, and garbage has no function code.
type fcCollector struct{ got []frameFC }

func (c *fcCollector) Modbus(_ *dpi.Flow, m *modbus.Message) {
	if m.Outcome == modbus.OutcomeUnanswered || !m.HasFunction() {
		return
	}
	c.got = append(c.got, frameFC{m.Frame, m.FC})
}

// readOracle returns the (frame, modbus.func_code) pairs of a tshark dump.
func readOracle(t *testing.T, path string) []frameFC {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var frameCol, fcCol = -1, -1
	var out []frameFC
	for line := 0; sc.Scan(); line++ {
		cols := strings.Split(sc.Text(), "\t")
		if line == 0 {
			for i, c := range cols {
				switch c {
				case "frame.number":
					frameCol = i
				case "modbus.func_code":
					fcCol = i
				}
			}
			if frameCol < 0 || fcCol < 0 {
				t.Fatalf("%s: header lacks frame.number or modbus.func_code", path)
			}
			continue
		}
		if fcCol >= len(cols) || cols[fcCol] == "" {
			continue
		}
		frame, err := strconv.ParseUint(cols[frameCol], 10, 64)
		if err != nil {
			t.Fatalf("%s:%d: frame %q: %v", path, line+1, cols[frameCol], err)
		}
		for _, v := range strings.Split(cols[fcCol], "|") {
			fc, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				t.Fatalf("%s:%d: func_code %q: %v", path, line+1, v, err)
			}
			out = append(out, frameFC{frame, uint8(fc)})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// allowEntry is one justified difference from tshark.
type allowEntry struct {
	capture string
	frame   uint64
	fc      uint8
	kind    string // "missing" (tshark has it, tapwatch not) or "extra"
	reason  string
}

func (a allowEntry) key() string {
	return fmt.Sprintf("%s\t%d\t%d\t%s", a.capture, a.frame, a.fc, a.kind)
}

func readAllowList(t *testing.T) map[string]allowEntry {
	t.Helper()
	f, err := os.Open("testdata/corpus-allow.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]allowEntry{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.SplitN(line, "\t", 5)
		if len(cols) != 5 || cols[4] == "" {
			t.Fatalf("testdata/corpus-allow.tsv:%d: want capture, frame, fc, kind and a reason, tab-separated", n)
		}
		frame, err1 := strconv.ParseUint(cols[1], 10, 64)
		fc, err2 := strconv.ParseUint(cols[2], 10, 8)
		if err1 != nil || err2 != nil || (cols[3] != "missing" && cols[3] != "extra") {
			t.Fatalf("testdata/corpus-allow.tsv:%d: bad frame, fc or kind in %q", n, line)
		}
		e := allowEntry{cols[0], frame, uint8(fc), cols[3], cols[4]}
		out[e.key()] = e
	}
	return out
}

// diff compares two multisets of (frame, fc).
func diff(want, got []frameFC) (matched int, missing, extra []frameFC) {
	count := map[frameFC]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		if count[g] > 0 {
			count[g]--
			matched++
		} else {
			extra = append(extra, g)
		}
	}
	for k, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, k)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].frame < missing[j].frame })
	return matched, missing, extra
}

// TestCorpusAgainstTshark replays every public capture and compares the
// multiset of (frame, function code) with Wireshark's dissection. Every
// difference must be justified in testdata/corpus-allow.tsv, and the
// agreement over all captures together must be at least 99.5%.
func TestCorpusAgainstTshark(t *testing.T) {
	corpus := testenv.Corpus(t)
	oracles, err := filepath.Glob(filepath.Join(corpus, "_tshark_oracle", "*", "*.tsv.gz"))
	if err != nil || len(oracles) == 0 {
		t.Fatalf("no tshark oracle dumps under %s", corpus)
	}
	allow := readAllowList(t)
	used := map[string]bool{}
	var total, matched, captures int
	for _, oracle := range oracles {
		rel, _ := filepath.Rel(filepath.Join(corpus, "_tshark_oracle"), oracle)
		name := strings.TrimSuffix(rel, ".tsv.gz")
		pcap := filepath.Join(corpus, name)
		if _, err := os.Stat(pcap); err != nil {
			continue
		}
		want := readOracle(t, oracle)
		var c fcCollector
		sum, err := sensor.Replay(context.Background(), capture.OpenFiles(pcap), sensor.Options{Ops: &c})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, e := range sum.Errors {
			t.Logf("%s: %v (the records before it were decoded)", name, e)
		}
		if len(want) == 0 && len(c.got) == 0 {
			continue
		}
		captures++
		m, missing, extra := diff(want, c.got)
		matched += m
		total += m + len(missing) + len(extra)
		for _, d := range []struct {
			kind string
			set  []frameFC
		}{{"missing", missing}, {"extra", extra}} {
			for _, x := range d.set {
				e := allowEntry{capture: name, frame: x.frame, fc: x.fc, kind: d.kind}
				if _, ok := allow[e.key()]; ok {
					used[e.key()] = true
					continue
				}
				t.Errorf("%s frame %d fc %d: %s (tshark has %d messages in that frame, tapwatch %d); justify it in testdata/corpus-allow.tsv or fix the decoder",
					name, x.frame, x.fc, d.kind, countFrame(want, x.frame), countFrame(c.got, x.frame))
			}
		}
	}
	for k := range allow {
		if !used[k] {
			t.Errorf("testdata/corpus-allow.tsv: %q no longer differs; remove it", k)
		}
	}
	if total == 0 {
		t.Fatal("no Modbus messages in the corpus: wrong corpus folder?")
	}
	agree := float64(matched) / float64(total)
	t.Logf("corpus: %d captures with Modbus, %d of %d messages agree with tshark (%.3f%%)", captures, matched, total, 100*agree)
	if agree < 0.995 {
		t.Errorf("agreement %.3f%% is below 99.5%%", 100*agree)
	}
}

func countFrame(s []frameFC, frame uint64) int {
	n := 0
	for _, x := range s {
		if x.frame == frame {
			n++
		}
	}
	return n
}
