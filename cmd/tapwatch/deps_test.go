package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// TestNoGopacket: the tapwatch binary decodes frames and reads capture
// files with tapwatch's own code; gopacket, which its layers package
// alone made 1.5 MB of the binary and 1 MB of its memory, is only the
// tests' oracle and tapbench's floor (docs/performance.md).
func TestNoGopacket(t *testing.T) {
	goTool := testenv.Tool(t, "go", "golang-go")
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if d == "github.com/gopacket/gopacket" || strings.HasPrefix(d, "github.com/gopacket/gopacket/") {
			t.Errorf("cmd/tapwatch imports %s", d)
		}
		// runtime/pprof adds about 80 KB of code, data and tables to the
		// arm64 binary (the file grows by 128 KiB, in the sections'
		// alignment steps): only a build with the cpuprofile tag has it
		// (cpuprofile.go).
		if d == "runtime/pprof" {
			t.Errorf("cmd/tapwatch imports %s without the cpuprofile tag", d)
		}
	}
}
