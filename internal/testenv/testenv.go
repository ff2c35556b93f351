// Package testenv decides what tests may skip. A test that needs a tool,
// a privilege or the shared corpus skips with the remedy in its message,
// unless TAPWATCH_REQUIRE_ALL=1 is set (as CI sets it): then the same
// condition fails the test, so that CI never passes by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// RequireAll reports whether skips are failures.
func RequireAll() bool { return os.Getenv("TAPWATCH_REQUIRE_ALL") == "1" }

// Need skips t (or fails it under TAPWATCH_REQUIRE_ALL=1) when ok is false.
func Need(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if RequireAll() {
		t.Fatalf("required by TAPWATCH_REQUIRE_ALL=1: %s", why)
	}
	t.Skip(why)
}

// Tool returns the path of a command, or skips when it is not installed.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Need(t, err == nil, name+" is not installed; install it with: apt-get install "+pkg)
	return p
}

// Root returns the repository's top directory.
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the source of testenv")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Corpus returns the shared public capture corpus (../shared/corpus next to
// the repository, or $TAPWATCH_CORPUS), or skips when it is absent.
func Corpus(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("TAPWATCH_CORPUS")
	if dir == "" {
		dir = filepath.Join(Root(t), "..", "shared", "corpus")
	}
	_, err := os.Stat(filepath.Join(dir, "inventory.tsv"))
	Need(t, err == nil, "the public capture corpus is not at "+dir+"; put the shared folder beside the repository or set TAPWATCH_CORPUS")
	return dir
}
