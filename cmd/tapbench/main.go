// Command tapbench is what `make bench` runs: it generates the plant
// capture, measures the gopacket decoding floor on it, and compares
// `tapwatch replay --json` with that floor. See `tapbench help`.
package main

import (
	"os"

	"github.com/tapwatch/tapwatch/internal/benchtool"
)

func main() {
	os.Exit(benchtool.Main(os.Args[1:], os.Stdout, os.Stderr))
}
