package sim_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/tapwatch/tapwatch/internal/sim"
)

// Generate a short capture with two attacks after a minute of learning,
// and print its ground truth.
func Example() {
	var pcap bytes.Buffer
	truth, err := sim.Generate(&pcap, sim.Scenario{
		Seed:    1,
		Learn:   time.Minute,
		Monitor: 2 * time.Minute,
		Attacks: []sim.Kind{sim.SetpointOutOfRange, sim.DNP3ColdRestart},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("learning until %s, %d frames\n", truth.LearnEnd.Format(time.TimeOnly), truth.Packets)
	for _, a := range truth.Attacks {
		fmt.Printf("%s at %s, frame %d, %v -> %v (%s)\n", a.Kind, a.Start.Format(time.TimeOnly), a.KeyFrame, a.Src.Addr(), a.Dst, a.Detectors[0])
	}
	// The truth as JSON lines, e.g. for a file next to the capture.
	var lines bytes.Buffer
	if err := truth.WriteJSON(&lines); err != nil {
		fmt.Println(err)
		return
	}
	back, err := sim.ReadTruth(&lines)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(back.Attacks), "attacks read back")
	// Output:
	// learning until 00:01:00, 12857 frames
	// setpoint-out-of-range at 00:01:10, frame 5078, 10.10.1.10 -> 10.10.1.20:502 (baseline-value-range)
	// dnp3-cold-restart at 00:02:09, frame 9264, 10.10.1.12 -> 10.10.1.40:20000 (dnp3-restart)
	// 2 attacks read back
}
