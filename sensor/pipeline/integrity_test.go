package pipeline_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/sim"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

// integrityIDs are the detectors of forged, replayed and modified
// messages (issue 18).
var integrityIDs = rules.IntegrityIDs()

type frame struct {
	ci   gopacket.CaptureInfo
	data []byte
}

// impair loses, reorders and retransmits some of frames, as a lossy tap
// on a busy network would show them: each frame is dropped with
// probability loss, swapped with the next with probability reorder, and
// sent again one to three frames later with probability dup, with the
// clock kept in order.
func impair(frames []frame, seed uint64, loss, reorder, dup float64) []frame {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []frame
	var later []struct {
		at int
		f  frame
	}
	for i := 0; i < len(frames); i++ {
		f := frames[i]
		switch p := rng.Float64(); {
		case p < loss:
			continue
		case p < loss+reorder && i+1 < len(frames):
			out = append(out, frames[i+1])
			i++
		case p < loss+reorder+dup:
			later = append(later, struct {
				at int
				f  frame
			}{i + 1 + rng.IntN(3), f})
		}
		out = append(out, f)
		for j := 0; j < len(later); {
			if later[j].at <= i {
				out = append(out, later[j].f)
				later = slices.Delete(later, j, j+1)
				continue
			}
			j++
		}
	}
	for i := 1; i < len(out); i++ { // a capture's clock never goes back
		if out[i].ci.Timestamp.Before(out[i-1].ci.Timestamp) {
			out[i].ci.Timestamp = out[i-1].ci.Timestamp
		}
	}
	return out
}

// TestIntegrityQuietOnImpairedPlant: the simulated plant, with no attack,
// seen through a tap that loses, reorders and duplicates frames, raises
// none of the integrity detectors: loss and retransmissions are not
// forgery.
func TestIntegrityQuietOnImpairedPlant(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		var buf bytes.Buffer
		if _, err := sim.Generate(&buf, sim.Scenario{Seed: seed, Learn: time.Minute, Monitor: 10 * time.Minute, Attacks: []sim.Kind{}}); err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		var frames []frame
		for {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				break
			}
			frames = append(frames, frame{ci, data})
		}
		impaired := impair(frames, uint64(seed), 0.01, 0.03, 0.03)
		path := filepath.Join(t.TempDir(), "impaired.pcap")
		out, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := pcapgo.NewWriter(out)
		if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		for _, f := range impaired {
			if err := w.WritePacket(f.ci, f.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		var sink alertCollector
		asm := assemble(t, pipeline.Setup{Sinks: pipeline.Sinks{Alerts: []pipeline.AlertSink{&sink}}})
		src := capture.OpenFiles(path)
		sum, err := asm.Replay(context.Background(), src)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		c := sum.DPI
		if c.TCPRetransmits == 0 || c.TCPOutOfOrder == 0 || c.TCPGaps == 0 {
			t.Errorf("seed %d: the impairments did not show: %d retransmissions, %d out of order, %d gaps", seed, c.TCPRetransmits, c.TCPOutOfOrder, c.TCPGaps)
		}
		rules := map[string]int{}
		for _, a := range sink {
			rules[a.Rule]++
			if slices.Contains(integrityIDs, a.Rule) {
				t.Errorf("seed %d: %s at frame %d", seed, a.Rule, a.Frame)
			}
		}
		t.Logf("seed %d: %d of %d frames, %d retransmissions, %d out of order, %d gaps; alerts by rule %v",
			seed, len(impaired), len(frames), c.TCPRetransmits, c.TCPOutOfOrder, c.TCPGaps, rules)
	}
}
