//go:build cpuprofile

package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
)

// With the cpuprofile tag (make pgo-profile builds with it), replay has
// --cpu-profile FILE: a CPU profile of the whole run, in pprof's format.
func init() {
	cpuProfileFlag = func(fs *flag.FlagSet) func() (func() error, error) {
		path := fs.String("cpu-profile", "", "write a CPU profile of the run (pprof) to `FILE` (a build with the cpuprofile tag only)")
		return func() (func() error, error) {
			if *path == "" {
				return nil, nil
			}
			f, err := os.Create(*path)
			if err != nil {
				return nil, fmt.Errorf("--cpu-profile: %w", err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return nil, fmt.Errorf("--cpu-profile %s: %w", *path, err)
			}
			return func() error {
				pprof.StopCPUProfile()
				return f.Close()
			}, nil
		}
	}
}
