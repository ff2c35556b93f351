// Command tapbench is what `make bench` runs: it generates a plant
// capture and a policy for it, measures the gopacket decoding floor on
// the capture, and compares `tapwatch replay --json --policy FILE` with
// that floor, in packets per second, peak RSS and, under callgrind,
// instructions per packet. See `tapbench help`.
package main

import (
	"os"

	"github.com/tapwatch/tapwatch/internal/benchtool"
	"github.com/tapwatch/tapwatch/rules"
)

func main() {
	for _, d := range rules.Detectors {
		benchtool.DetectorIDs = append(benchtool.DetectorIDs, d.ID)
	}
	os.Exit(benchtool.Main(os.Args[1:], os.Stdout, os.Stderr))
}
