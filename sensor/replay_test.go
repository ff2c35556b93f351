package sensor_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/sensor"
)

// everyMessage notes each decoded message's kind, frame and flow.
type everyMessage []string

func (e *everyMessage) Message(f *dpi.Flow, _ dpi.Side, m any) {
	switch m := m.(type) {
	case *modbus.Message:
		*e = append(*e, fmt.Sprintf("modbus %d %d fc=%d", m.Frame, f.ID, m.FC))
	case *dnp3.Message:
		*e = append(*e, fmt.Sprintf("dnp3 %d %d kind=%d", m.Frame, f.ID, m.Kind))
	default:
		*e = append(*e, fmt.Sprintf("%T %d", m, f.ID))
	}
}

// packetsOnly hides that a source hands out batches.
type packetsOnly struct{ capture.Source }

// TestReplayBatchesLikePackets: a replay that reads its files a batch at
// a time (capture.BatchSource) decodes the same messages, counts the same
// and reports the same damage as one that reads a packet at a time.
func TestReplayBatchesLikePackets(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, n := range []int{9000, 5000} {
		var buf bytes.Buffer
		w, err := pcapgen.NewWriter(&buf, pcapgen.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := pcapgen.SitePlant(w, n, int64(i+1)); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		if i == 1 {
			data = data[:len(data)-7] // the last record cut short
		}
		p := filepath.Join(dir, fmt.Sprintf("%d.pcap", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	paths = append(paths, filepath.Join(dir, "missing.pcap"))
	run := func(src capture.Source) (sensor.Summary, everyMessage) {
		var got everyMessage
		sum, err := sensor.Replay(context.Background(), src, sensor.Options{Ops: &got})
		if err != nil {
			t.Fatal(err)
		}
		return sum, got
	}
	batched := capture.OpenFiles(paths...)
	if _, ok := any(batched).(capture.BatchSource); !ok {
		t.Fatal("capture.Files is not a BatchSource")
	}
	bs, bm := run(batched)
	ps, pm := run(packetsOnly{capture.OpenFiles(paths...)})
	if bs.Packets < 13000 || len(bm) < 10000 {
		t.Fatalf("batched: %d packets, %d messages", bs.Packets, len(bm))
	}
	if !slices.Equal(bm, pm) {
		t.Errorf("batched: %d messages, a packet at a time %d; they differ", len(bm), len(pm))
	}
	if bs.Packets != ps.Packets || !reflect.DeepEqual(bs.DPI, ps.DPI) || !reflect.DeepEqual(bs.Messages, ps.Messages) {
		t.Errorf("batched summary %+v\npacket at a time %+v", bs, ps)
	}
	if fmt.Sprint(bs.Errors) != fmt.Sprint(ps.Errors) || len(bs.Errors) != 2 {
		t.Errorf("errors: batched %v, a packet at a time %v; want the cut record and the missing file", bs.Errors, ps.Errors)
	}
}

// TestReplayCancelled: a cancelled replay stops and says why, batched or not.
func TestReplayCancelled(t *testing.T) {
	var buf bytes.Buffer
	w, _ := pcapgen.NewWriter(&buf, pcapgen.Options{})
	if err := pcapgen.SitePlant(w, 3000, 1); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	p := filepath.Join(t.TempDir(), "a.pcap")
	os.WriteFile(p, buf.Bytes(), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, src := range []capture.Source{capture.OpenFiles(p), packetsOnly{capture.OpenFiles(p)}} {
		sum, err := sensor.Replay(ctx, src, sensor.Options{})
		if err != context.Canceled || sum.Packets != 0 {
			t.Errorf("%T: %d packets, error %v; want none and context.Canceled", src, sum.Packets, err)
		}
	}
}
