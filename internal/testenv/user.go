//go:build linux

package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// userPATH is the PATH Debian gives an ordinary user: no sbin.
const userPATH = "/usr/local/bin:/usr/bin:/bin"

var (
	runLine    = regexp.MustCompile(`^=== (?:RUN|CONT|NAME)\s+(\S+)`)
	resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) `)
)

// SkipsAsUser runs the tests of this test binary that match run as the
// user nobody, with an ordinary user's PATH and without
// TAPWATCH_REQUIRE_ALL: what a new user sees who runs the tests without
// root. It returns, for each test that ran, what its skip said ("" when
// it did not skip). It needs root, to switch to nobody.
func SkipsAsUser(t testing.TB, run string) map[string]string {
	t.Helper()
	NeedRoot(t, "running tests as another user")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test's binary is in a directory only root may enter.
	dir, err := os.MkdirTemp("", "testenv-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, filepath.Base(self))
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run="+run, "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + userPATH, "HOME=" + dir, "TMPDIR=" + os.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", cmd, err, out)
	}
	// -test.v prints what a test logs (its skip message too) between its
	// "=== RUN" (or "=== CONT") line and its result.
	logs, skips := map[string]string{}, map[string]string{}
	var current string
	for _, l := range strings.Split(string(out), "\n") {
		if m := runLine.FindStringSubmatch(l); m != nil {
			current = m[1]
		} else if m := resultLine.FindStringSubmatch(l); m != nil {
			skips[m[2]] = ""
			if m[1] == "SKIP" {
				skips[m[2]] = logs[m[2]]
			}
		} else if strings.HasPrefix(l, "    ") && current != "" {
			logs[current] += strings.TrimSpace(l) + "\n"
		}
	}
	if len(skips) == 0 {
		t.Fatalf("no test matching %s ran as nobody:\n%s", run, out)
	}
	return skips
}
