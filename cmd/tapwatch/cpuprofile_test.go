package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// TestReplayCPUProfile: a build with the cpuprofile tag, as make
// pgo-profile makes, has replay --cpu-profile: it writes a pprof profile
// (gzipped protocol buffers) and changes nothing else; a file it cannot
// create is a failure that names it. The shipped build has no such flag.
func TestReplayCPUProfile(t *testing.T) {
	dir := t.TempDir()
	path := writeCapture(t, dir, "ops.pcap", pcapgen.Options{}, buildOps)
	if cpuProfileFlag == nil { // this test binary is a build without the tag
		if r := tapwatch("replay", "--cpu-profile", filepath.Join(dir, "x"), path); r.code != 2 {
			t.Errorf("replay --cpu-profile without the cpuprofile tag: %v", r)
		}
	}
	goTool := testenv.Tool(t, "go", "golang-go")
	bin := filepath.Join(dir, "tapwatch")
	if out, err := exec.Command(goTool, "build", "-tags", "cpuprofile", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags cpuprofile: %v\n%s", err, out)
	}
	run := func(args ...string) (code int, stdout, stderr string) {
		cmd := exec.Command(bin, args...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, o.String(), e.String()
	}
	_, plainOut, plainErr := run("replay", path)
	prof := filepath.Join(dir, "cpu.pprof")
	if code, o, e := run("replay", "--cpu-profile", prof, path); code != 0 || o != plainOut || e != plainErr {
		t.Fatalf("replay --cpu-profile: exit %d\n%s%s\nwithout it:\n%s%s", code, o, e, plainOut, plainErr)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("the profile is no gzipped pprof: % x", b[:min(len(b), 8)])
	}
	bad := filepath.Join(dir, "missing", "cpu.pprof")
	if code, o, e := run("replay", "--cpu-profile", bad, path); code != 1 || o != "" || !strings.Contains(e, "--cpu-profile") || !strings.Contains(e, bad) {
		t.Fatalf("replay --cpu-profile into a missing directory: exit %d\n%s%s", code, o, e)
	}
}
