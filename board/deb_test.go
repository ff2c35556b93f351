package board_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/internal/testenv"
	_ "github.com/tapwatch/tapwatch/rules" // the built-in detectors, which the shipped policy may tune
	"github.com/tapwatch/tapwatch/rules/policy"
)

const nfpmInstall = "go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2"

// nfpmConfig is the part of board/deb/nfpm.yaml that names files.
type nfpmConfig struct {
	Contents []struct {
		Src    string `yaml:"src"`
		Dst    string `yaml:"dst"`
		Type   string `yaml:"type"`
		Expand bool   `yaml:"expand"`
	} `yaml:"contents"`
	Scripts map[string]string `yaml:"scripts"`
}

// TestDebFiles checks that every file nfpm.yaml names exists (nfpm would
// only find out when packaging) and that every file in board/deb is
// packaged.
func TestDebFiles(t *testing.T) {
	root := testenv.Root(t)
	data, err := os.ReadFile(filepath.Join(root, "board", "deb", "nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c nfpmConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("board/deb/nfpm.yaml: %v", err)
	}
	if len(c.Contents) == 0 || len(c.Scripts) == 0 {
		t.Fatalf("board/deb/nfpm.yaml: no contents or no scripts: %+v", c)
	}
	var srcs []string
	for _, f := range c.Contents {
		srcs = append(srcs, f.Src)
	}
	for _, s := range c.Scripts {
		srcs = append(srcs, s)
	}
	used := map[string]bool{}
	for _, src := range srcs {
		if strings.Contains(src, "${") {
			continue // set by scripts/deb.sh
		}
		matches, err := filepath.Glob(filepath.Join(root, src))
		if err != nil || len(matches) == 0 {
			t.Errorf("board/deb/nfpm.yaml names %s, which does not exist", src)
		}
		for _, m := range matches {
			used[m] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "board", "deb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(root, "board", "deb", e.Name())
		if e.Name() != "nfpm.yaml" && !used[p] {
			t.Errorf("board/deb/%s is not in the package (board/deb/nfpm.yaml)", e.Name())
		}
	}
}

// TestDeb builds the arm64 package with scripts/deb.sh and checks what
// dpkg reads in it. make deb builds all three architectures in CI.
func TestDeb(t *testing.T) {
	root := testenv.Root(t)
	nfpm := nfpmPath(t)
	dpkgDeb := testenv.Tool(t, "dpkg-deb", "dpkg")

	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "scripts", "deb.sh"), "arm64", out)
	cmd.Env = append(os.Environ(), "NFPM="+nfpm)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/deb.sh arm64: %v\n%s", err, stderr.Bytes())
	}
	pkg := strings.TrimSpace(string(stdout))
	if filepath.Dir(pkg) != out || !strings.HasPrefix(filepath.Base(pkg), "tapwatch_") || !strings.HasSuffix(pkg, "_arm64.deb") {
		t.Fatalf("scripts/deb.sh printed %q, want %s/tapwatch_VERSION_arm64.deb", pkg, out)
	}
	if _, err := os.Stat(pkg); err != nil {
		t.Fatal(err)
	}
	dpkg := func(args ...string) string {
		t.Helper()
		b, err := exec.Command(dpkgDeb, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}

	// The control file, and the maintainer scripts.
	info := dpkg("-I", pkg)
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(pkg), "tapwatch_"), "_arm64.deb")
	for _, want := range []string{
		"Package: tapwatch",
		"Architecture: arm64",
		"Version: " + version,
		"Maintainer: tapwatch developers <dev@tapwatch.invalid>",
		"Homepage: https://github.com/tapwatch/tapwatch",
	} {
		if !hasLine(info, want) {
			t.Errorf("dpkg-deb -I: no line %q in\n%s", want, info)
		}
	}
	if !regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`).MatchString(version) {
		t.Errorf("version %q is not a Debian upstream version", version)
	}
	if regexp.MustCompile(`(?m)^\s*(Pre-)?Depends:`).MatchString(info) {
		t.Errorf("the package depends on something; a static binary needs nothing:\n%s", info)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if !regexp.MustCompile(`(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+` + s + `\s`).MatchString(info) {
			t.Errorf("dpkg-deb -I: no executable %s in\n%s", s, info)
		}
	}

	// The files, with their modes.
	want := map[string]string{
		"./usr/bin/tapwatch":                    "-rwxr-xr-x",
		"./etc/tapwatch/tapwatch.yaml":          "-rw-r--r--",
		"./etc/tapwatch/policy.yaml":            "-rw-r--r--",
		"./lib/systemd/system/tapwatch.service": "-rw-r--r--",
		"./lib/udev/rules.d/60-tapwatch.rules":  "-rw-r--r--",
		"./usr/share/doc/tapwatch/README.md":    "-rw-r--r--",
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if len(docs) == 0 {
		t.Fatal("no docs/*.md")
	}
	for _, d := range docs {
		want["./usr/share/doc/tapwatch/"+filepath.Base(d)] = "-rw-r--r--"
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(dpkg("-c", pkg)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c: cannot read %q", sc.Text())
		}
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s, want root/root", f[5], f[1])
		}
		if !strings.HasPrefix(f[0], "d") {
			got[f[5]] = f[0]
		}
	}
	for p, mode := range want {
		switch g, ok := got[p]; {
		case !ok:
			t.Errorf("the package has no %s", p)
		case g != mode:
			t.Errorf("%s has mode %s, want %s", p, g, mode)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("the package has %s, which the test does not expect", p)
		}
	}

	files := filepath.Join(t.TempDir(), "files")
	control := filepath.Join(t.TempDir(), "control")
	dpkg("-x", pkg, files)
	dpkg("-e", pkg, control)

	// Conffiles: exactly the two files of /etc/tapwatch.
	conffiles, err := os.ReadFile(filepath.Join(control, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	cf := strings.Fields(string(conffiles))
	slices.Sort(cf)
	if !slices.Equal(cf, []string{"/etc/tapwatch/policy.yaml", "/etc/tapwatch/tapwatch.yaml"}) {
		t.Errorf("conffiles = %q, want /etc/tapwatch/tapwatch.yaml and /etc/tapwatch/policy.yaml", cf)
	}

	// The maintainer scripts are valid sh, and postinst neither enables
	// nor starts the service (the tap interface must be set first).
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if b, err := exec.Command("sh", "-n", filepath.Join(control, s)).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, b)
		}
	}
	postinst, _ := os.ReadFile(filepath.Join(control, "postinst"))
	if m := regexp.MustCompile(`(?m)^\s*systemctl\s+(?:--\S+\s+)*(?:enable|start|restart|reenable)\b.*$`).Find(postinst); m != nil {
		t.Errorf("postinst enables or starts the service: %s", m)
	}

	// The unit: the daemon's contract with systemd, and its hardening.
	unit, err := os.ReadFile(filepath.Join(files, "lib/systemd/system/tapwatch.service"))
	if err != nil {
		t.Fatal(err)
	}
	directives := map[string]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, ";") {
			directives[k] = v
		}
	}
	for k, v := range map[string]string{
		"Type":                  "notify",
		"NotifyAccess":          "main",
		"ExecStart":             "/usr/bin/tapwatch run -c /etc/tapwatch/tapwatch.yaml",
		"ExecReload":            "/bin/kill -HUP $MAINPID",
		"User":                  "tapwatch",
		"Group":                 "tapwatch",
		"AmbientCapabilities":   "CAP_NET_RAW CAP_NET_ADMIN",
		"CapabilityBoundingSet": "CAP_NET_RAW CAP_NET_ADMIN",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"StateDirectory":        "tapwatch",
		"Restart":               "always",
		"WantedBy":              "multi-user.target",
	} {
		if directives[k] != v {
			t.Errorf("tapwatch.service: %s=%q, want %q", k, directives[k], v)
		}
	}
	if directives["WatchdogSec"] == "" {
		t.Error("tapwatch.service: no WatchdogSec=")
	}
	// These would take /sys/class/leds, /dev/gpiochip* and /dev/watchdog away.
	for _, k := range []string{"ProtectKernelTunables", "PrivateDevices", "DynamicUser"} {
		if v, ok := directives[k]; ok {
			t.Errorf("tapwatch.service sets %s=%s", k, v)
		}
	}

	// The udev rules open the GPIO chips, the LEDs and the watchdog to groups.
	udev, err := os.ReadFile(filepath.Join(files, "lib/udev/rules.d/60-tapwatch.rules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`KERNEL=="gpiochip*", GROUP="gpio"`, `SUBSYSTEM=="leds"`, `KERNEL=="watchdog", GROUP="tapwatch"`, `KERNEL=="watchdog[0-9]*", GROUP="tapwatch"`} {
		if !bytes.Contains(udev, []byte(want)) {
			t.Errorf("60-tapwatch.rules has no %s", want)
		}
	}

	// The binary: a static ARM64 ELF.
	bin, err := elf.Open(filepath.Join(files, "usr/bin/tapwatch"))
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	if bin.Machine != elf.EM_AARCH64 || bin.Class != elf.ELFCLASS64 {
		t.Errorf("/usr/bin/tapwatch is %v %v, want EM_AARCH64 ELFCLASS64", bin.Machine, bin.Class)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("/usr/bin/tapwatch is not static: it has %v", p.Type)
		}
	}

	// The conffiles load as the daemon and tapwatch check load them.
	cfg, err := config.Load(filepath.Join(files, "etc/tapwatch/tapwatch.yaml"))
	if err != nil {
		t.Errorf("the packaged /etc/tapwatch/tapwatch.yaml:\n%v", err)
	} else {
		if cfg.Policy != "/etc/tapwatch/policy.yaml" {
			t.Errorf("tapwatch.yaml: policy %q, want the packaged /etc/tapwatch/policy.yaml", cfg.Policy)
		}
		if cfg.StateDir != "/var/lib/tapwatch" {
			t.Errorf("tapwatch.yaml: state_dir %q, want /var/lib/tapwatch (the unit's StateDirectory=tapwatch)", cfg.StateDir)
		}
	}
	if _, err := policy.Load(filepath.Join(files, "etc/tapwatch/policy.yaml")); err != nil {
		t.Errorf("the packaged /etc/tapwatch/policy.yaml:\n%v", err)
	}
}

// nfpmPath finds nfpm in PATH or where go install puts it.
func nfpmPath(t *testing.T) string {
	if p, err := exec.LookPath("nfpm"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		if l := strings.Split(string(out), "\n"); len(l) >= 2 {
			for _, dir := range []string{l[0], filepath.Join(l[1], "bin")} {
				if dir == "" {
					continue
				}
				p := filepath.Join(dir, "nfpm")
				if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
					return p
				}
			}
		}
	}
	// A user's go install puts nfpm in the user's GOPATH, which root's go
	// env does not name.
	testenv.Need(t, false, "nfpm is not on PATH, nor in go env GOBIN or GOPATH/bin; install it with: "+nfpmInstall+
		"; installed as yourself for tests run as root, pass your PATH: sudo env PATH=\"$PATH:$(go env GOPATH)/bin\" ...")
	return ""
}

// hasLine reports whether text has a line that is line once trimmed.
func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
