package testenv

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeT records what a helper does to its test: a skip or a failure ends
// the call, as on a real test.
type fakeT struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (f *fakeT) Helper() {}

func (f *fakeT) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	panic(stopped{})
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// call runs fn on a fakeT.
func call(t *testing.T, fn func(testing.TB)) (f *fakeT) {
	f = &fakeT{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	fn(f)
	return f
}

func TestNeed(t *testing.T) {
	t.Setenv("TAPWATCH_REQUIRE_ALL", "")
	if f := call(t, func(tb testing.TB) { Need(tb, true, "x") }); f.skipped != "" || f.failed != "" {
		t.Errorf("met: skipped %q, failed %q", f.skipped, f.failed)
	}
	if f := call(t, func(tb testing.TB) { Need(tb, false, "no x; install x") }); f.skipped != "no x; install x" || f.failed != "" {
		t.Errorf("unmet: skipped %q, failed %q", f.skipped, f.failed)
	}
	t.Setenv("TAPWATCH_REQUIRE_ALL", "1")
	if f := call(t, func(tb testing.TB) { Need(tb, false, "no x; install x") }); f.failed != "required by TAPWATCH_REQUIRE_ALL=1: no x; install x" || f.skipped != "" {
		t.Errorf("unmet under TAPWATCH_REQUIRE_ALL=1: skipped %q, failed %q", f.skipped, f.failed)
	}
}

// TestToolInSbin: a tool in /usr/sbin or /sbin is found although PATH
// does not have them (an ordinary user's, as tc's in Debian); one that is
// nowhere skips with its package.
func TestToolInSbin(t *testing.T) {
	t.Setenv("TAPWATCH_REQUIRE_ALL", "")
	sbin := t.TempDir()
	old := sbinDirs
	sbinDirs = [...]string{filepath.Join(sbin, "usr-sbin"), sbin}
	t.Cleanup(func() { sbinDirs = old })
	if err := os.WriteFile(filepath.Join(sbin, "tc"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	var got string
	if f := call(t, func(tb testing.TB) { got = Tool(tb, "tc", "iproute2") }); f.skipped != "" || got != filepath.Join(sbin, "tc") {
		t.Errorf("Tool(tc) = %q, skipped %q; want %s", got, f.skipped, filepath.Join(sbin, "tc"))
	}
	f := call(t, func(tb testing.TB) { Tool(tb, "nosuchtool", "nosuchpackage") })
	if !strings.Contains(f.skipped, "nosuchtool is not installed") || !strings.Contains(f.skipped, sbin) || !strings.HasSuffix(f.skipped, "apt-get install nosuchpackage") {
		t.Errorf("Tool(nosuchtool) skipped %q", f.skipped)
	}
}

func TestNeedRoot(t *testing.T) {
	t.Setenv("TAPWATCH_REQUIRE_ALL", "")
	f := call(t, func(tb testing.TB) { NeedRoot(tb, "network namespaces") })
	if os.Geteuid() == 0 {
		if f.skipped != "" {
			t.Errorf("as root: skipped %q", f.skipped)
		}
		return
	}
	if f.skipped != "this test needs root for network namespaces; run the tests as root (CI does)" {
		t.Errorf("as a user: skipped %q", f.skipped)
	}
}

// TestLong: a long test skips under -short, and runs under -short when
// TAPWATCH_REQUIRE_ALL=1 asks for every test.
func TestLong(t *testing.T) {
	short := flag.Lookup("test.short")
	was := short.Value.String()
	t.Cleanup(func() { short.Value.Set(was) })
	for _, c := range []struct {
		short, requireAll string
		skip              bool
	}{{"false", "", false}, {"true", "", true}, {"true", "1", false}, {"false", "1", false}} {
		short.Value.Set(c.short)
		t.Setenv("TAPWATCH_REQUIRE_ALL", c.requireAll)
		f := call(t, func(tb testing.TB) { Long(tb, "takes about 8s") })
		if want := "long (takes about 8s): go test -short leaves it out"; c.skip && f.skipped != want || !c.skip && f.skipped != "" || f.failed != "" {
			t.Errorf("-short=%s TAPWATCH_REQUIRE_ALL=%q: skipped %q, failed %q", c.short, c.requireAll, f.skipped, f.failed)
		}
	}
}

// TestHelperProcess: a helper process's test runs only when its parent
// sets the variable, and skips otherwise even under
// TAPWATCH_REQUIRE_ALL=1 (it is no test).
func TestHelperProcess(t *testing.T) {
	const env = "TESTENV_HELPER_PROCESS_TEST"
	t.Setenv("TAPWATCH_REQUIRE_ALL", "1")
	t.Setenv(env, "")
	f := call(t, func(tb testing.TB) { HelperProcess(tb, env, "TestParent") })
	if !strings.Contains(f.skipped, "the helper process of TestParent") || f.failed != "" {
		t.Errorf("run directly: skipped %q, failed %q", f.skipped, f.failed)
	}
	t.Setenv(env, "/state")
	var got string
	if f := call(t, func(tb testing.TB) { got = HelperProcess(tb, env, "TestParent") }); f.skipped != "" || got != "/state" {
		t.Errorf("as the helper: %q, skipped %q", got, f.skipped)
	}
}
