// Package testenv decides what tests may skip. A test that needs a tool,
// a privilege or the shared corpus skips with the remedy in its message,
// unless TAPWATCH_REQUIRE_ALL=1 is set (as CI sets it): then the same
// condition fails the test, so that CI never passes by skipping.
//
// Every skip in the repository goes through this package (Need, Tool,
// NeedRoot, Corpus, Long, HelperProcess); TestNoDirectSkips fails on a
// t.Skip, Skipf or SkipNow anywhere else.
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
// why names what is missing and the remedy that supplies it.
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

// NeedRoot skips t unless it runs as root, which what ("network
// namespaces") needs. Call it before Tool for a tool that only
// root may use (tc, ip netns), so that the remedy named is the true one.
func NeedRoot(t testing.TB, what string) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "this test needs root for "+what+"; run the tests as root (CI does)")
}

// Tool returns the path of a command, or skips when it is not installed;
// pkg is the Debian package that installs it.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := LookTool(name)
	Need(t, err == nil, name+" is not installed (not on PATH, nor in "+sbinDirs[0]+" or "+sbinDirs[1]+"); install it with: apt-get install "+pkg)
	return p
}

// sbinDirs hold tools an ordinary user's PATH leaves out (Debian's tc, a
// sudo without secure_path), although iproute2 is installed.
var sbinDirs = [...]string{"/usr/sbin", "/sbin"}

// LookTool is exec.LookPath, then the sbin directories.
func LookTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		if q, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return q, nil
		}
	}
	return "", err
}

// Long skips t under go test -short: t is long (why says how), not
// unrunnable here, so this is no gap in the environment. Under
// TAPWATCH_REQUIRE_ALL=1, which asks for every test, t runs even with
// -short.
func Long(t testing.TB, why string) {
	t.Helper()
	if testing.Short() && !RequireAll() {
		t.Skip("long (" + why + "): go test -short leaves it out")
	}
}

// HelperProcess returns the value of the environment variable env when
// the test binary runs as the helper process that the test parent
// started with env set, and otherwise skips t: run directly, t is no test
// at all, so even TAPWATCH_REQUIRE_ALL=1 lets it skip.
func HelperProcess(t testing.TB, env, parent string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Skip("the helper process of " + parent + "; it runs only when that test re-executes the test binary with " + env + " set")
	}
	return v
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
