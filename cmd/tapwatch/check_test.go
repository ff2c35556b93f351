package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/board"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`version: 1
assets:
  hmi:  {ip: 10.10.1.10}
  plc1: {ip: 10.10.1.20}
rules:
  - id: plc1-writes-only-from-hmi
    when: {proto: modbus, dst: plc1, op: write}
    unless: {src: hmi}
    severity: high
`), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`version: 1
rules:
  - id: no-restarts
    when: {proto: dnp3, fc: cold_restrat}
    severity: hihg
`), 0o644)

	r := tapwatch("check", "--policy", good)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("valid policy: %v", r)
	}
	// The effective policy loads again, with every detector listed.
	if _, err := policy.Parse([]byte(r.stdout), "effective"); err != nil {
		t.Errorf("the effective policy does not load: %v\n%s", err, r.stdout)
	}
	for _, d := range rules.Detectors {
		if !strings.Contains(r.stdout, d.ID) {
			t.Errorf("effective policy lacks detector %s", d.ID)
		}
	}

	r = tapwatch("check", "--policy", good, "--policy", bad)
	if r.code != 1 {
		t.Fatalf("invalid policy: %v", r)
	}
	for _, want := range []string{
		bad + ":4:29: rules[0].when.fc: \"cold_restrat\" is not a DNP3 function code (did you mean cold_restart?)",
		bad + ":5:15: rules[0].severity: \"hihg\" is not a severity (did you mean high?)",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if r := tapwatch("check", "--policy", good, "-q"); r.code != 0 || r.stdout != "" {
		t.Errorf("-q: %v", r)
	}
	if r := tapwatch("check"); r.code != 2 {
		t.Errorf("no policy: %v", r)
	}
	if r := tapwatch("check", "--policy", filepath.Join(dir, "missing.yaml")); r.code != 1 || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("missing file: %v", r)
	}
}

// TestCheckConfig: check -c validates the daemon's config, then the
// policy it names, and says what run would do.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	// Open to every user: where the package is installed, check run as
	// root checks these files for user tapwatch.
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755)
	}
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("rules:\n  - id: w\n    when: {proto: modbus, op: write}\n    severity: low\n"), 0o644)
	cfg := filepath.Join(dir, "tapwatch.yaml")
	os.WriteFile(cfg, []byte("interfaces: [eth1, eth2]\npolicy: policy.yaml\nmode: learn\nlearn: {duration: 48h}\n"), 0o644)
	r := tapwatch("check", "-c", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("valid config: %v", r)
	}
	for _, want := range []string{"capture on eth1 and eth2", "learn for 48h0m0s", "publish nothing (no uplink)", "effective policy of " + filepath.Join(dir, "policy.yaml"), "id: w"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	os.WriteFile(cfg, []byte("interfaces: [eth1]\nmode: lurn\npolicy: policy.yaml\n"), 0o644)
	r = tapwatch("check", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, cfg+`:2:7: mode: "lurn"; want monitor or learn`) {
		t.Errorf("bad config: %v", r)
	}
	// A file the config names that is not there: at the line naming it.
	os.WriteFile(cfg, []byte("interfaces: [eth1]\npolicy: missing.yaml\nbaseline: gone.yaml\n"), 0o644)
	r = tapwatch("check", "-c", cfg)
	for _, want := range []string{
		cfg + ":2:9: policy: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory",
		cfg + ":3:11: baseline: open " + filepath.Join(dir, "gone.yaml") + ": no such file or directory",
	} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("missing policy: %v\nwant %s", r, want)
		}
	}
}

// TestCheckBoards: check -c on every board profile prints the profile
// and its pins; a pin conflict is an error at its line; --board with a
// name no profile has is reported with the names there are.
func TestCheckBoards(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tapwatch.yaml")
	os.WriteFile(cfg, []byte("interfaces: [eth0]\nhardware:\n  relays: {alarm_severity: critical}\n"), 0o644)
	for _, p := range board.All() {
		r := tapwatch("check", "-c", cfg, "--board", p.Name)
		if r.code != 0 {
			t.Errorf("%s: %v", p.Name, r)
			continue
		}
		out := strings.Join(strings.Fields(r.stdout), " ")
		for _, want := range []string{"# board: " + p.Name + " (" + p.Title + "), named in the config or with --board",
			"usual capture port " + p.Capture} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", p.Name, want, r.stdout)
			}
		}
		if p.LEDs.Run != board.None {
			for _, want := range []string{"# RUN LED: " + p.LEDs.Run + " (profile)", "# ALERT LED: " + p.LEDs.Alert + " (profile)",
				"# button: " + p.Button + " (profile, active low", "# alarm relay: " + p.Relays.Alarm + " (profile, on unacknowledged critical or higher)",
				"# health relay: " + p.Relays.Health + " (profile)", "# board LED (mirrors RUN): led:ACT or led:led0", "# hardware watchdog: " + p.Watchdog} {
				if !strings.Contains(out, want) {
					t.Errorf("%s: output lacks %q:\n%s", p.Name, want, r.stdout)
				}
			}
		} else if !strings.Contains(out, "# RUN LED: not wired") {
			t.Errorf("%s: RUN wired:\n%s", p.Name, r.stdout)
		}
		if strings.Contains(out, "warning:") {
			t.Errorf("%s: warnings on the profile's own pins:\n%s", p.Name, r.stdout)
		}
	}

	os.WriteFile(cfg, []byte("interfaces: [eth0]\nhardware:\n  board: pi4\n  button: {pin: \"22\"}\n"), 0o644)
	r := tapwatch("check", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, cfg+`:4:17: hardware.button.pin: GPIO22: the UPLINK LED (the pi4 profile's GPIO22) and the button (hardware.button.pin: "22", line 4 column 17) are both on it`) {
		t.Errorf("conflict: %v", r)
	}
	r = tapwatch("check", "-c", cfg, "--board", "pi6")
	if r.code != 1 || !strings.Contains(r.stderr, `hardware.board: "pi6" is not a board profile`) || !strings.Contains(r.stderr, "pi-zero-2w") {
		t.Errorf("--board pi6: %v", r)
	}
}

// TestCheckFiles: check -c opens the uplink's CA, certificate, key and
// password file as the daemon does, and, run as root, finds the files
// the daemon's user cannot read (by the modes, owners and folders on the
// way), each at the field that names it.
func TestCheckFiles(t *testing.T) {
	testenv.Need(t, os.Geteuid() == 0, "checking files for another user needs root: run the tests as root")
	nobody, err := user.Lookup("nobody")
	testenv.Need(t, err == nil, "the test reads files as user nobody, which is not in /etc/passwd: add it (adduser --system nobody)")
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	group, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755)
	}
	tls := filepath.Join(dir, "tls")
	os.Mkdir(tls, 0o755)
	pki := testenv.NewPKI(t, tls)
	os.WriteFile(filepath.Join(tls, "mqtt.pass"), []byte("s3cret\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("rules: []\n"), 0o644)
	cfg := filepath.Join(dir, "tapwatch.yaml")
	os.WriteFile(cfg, []byte(`interfaces: [eth0]
state_dir: state
policy: policy.yaml
uplink:
  brokers: ["ssl://broker.example:8883"]
  username: box
  password_file: tls/mqtt.pass
  tls:
    ca: tls/ca.pem
    cert: tls/client.pem
    key: tls/client.key
`), 0o644)
	for _, f := range []string{pki.CA, pki.ClientCert} {
		os.Chmod(f, 0o644)
	}
	at := func(line, col int, field, file string) string {
		return fmt.Sprintf("%s:%d:%d: %s: %s: user nobody (groups %s) cannot ", cfg, line, col, field, filepath.Join(tls, file), group.Name)
	}

	// The key (0600) and the password file (0640) belong to root.
	r := tapwatch("check", "-c", cfg, "--user", "nobody")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 3 ||
		!strings.Contains(r.stderr, at(11, 10, "uplink.tls.key", "client.key")+"read it: mode 0600, owner root, group root (chgrp "+group.Name+" ") ||
		!strings.Contains(r.stderr, at(7, 18, "uplink.password_file", "mqtt.pass")+"read it: mode 0640") ||
		!strings.Contains(r.stderr, "the daemon could not use the files "+cfg+" names (2 problems)") {
		t.Errorf("files of root: %v", r)
	}

	// Given to the user's group, or to the user: readable.
	os.Chown(pki.ClientKey, uid, -1)
	os.Chown(filepath.Join(tls, "mqtt.pass"), -1, gid)
	defer func(h []struct{ dir, why string }) { serviceHidden = h }(serviceHidden)
	serviceHidden = append(serviceHidden, struct{ dir, why string }{tls, "the test hides it"})
	r = tapwatch("check", "-c", cfg, "--user", "nobody")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("readable files: %v", r)
	}
	for _, want := range []string{
		"#   verify the broker with the CA certificates of " + pki.CA,
		"#   present the certificate " + pki.ClientCert + " (CN=client,O=tapwatch tests, valid until ",
		"#   log in as box with the password in " + filepath.Join(tls, "mqtt.pass"),
		"#   read as user nobody (groups " + group.Name + "), as tapwatch.service runs it: policy, uplink.tls.ca, uplink.tls.cert, uplink.tls.key, uplink.password_file",
		"#   warning: uplink.tls.key: " + pki.ClientKey + " is in " + tls + ", which tapwatch.service hides from the daemon (the test hides it): put it in /etc/tapwatch",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}

	// A folder on the way closed to the user: every file behind it.
	os.Chmod(tls, 0o700)
	r = tapwatch("check", "-c", cfg, "--user", "nobody", "-q")
	if r.code != 1 || strings.Count(r.stderr, "cannot enter it: mode 0700, owner root, group root") != 4 ||
		!strings.Contains(r.stderr, fmt.Sprintf("%s:9:9: uplink.tls.ca: %s: user nobody", cfg, tls)) {
		t.Errorf("a closed folder: %v", r)
	}
	os.Chmod(tls, 0o755)

	// Broken files, as root and without the user check: a CA file without
	// a certificate, a key of another certificate, no password file; a key
	// every user can read is a warning.
	os.WriteFile(pki.CA, []byte("not PEM\n"), 0o644)
	_, otherKey := pki.Authority.Issue(t, tls, "other", false)
	os.Rename(otherKey, pki.ClientKey)
	os.Chmod(pki.ClientKey, 0o644)
	os.Remove(filepath.Join(tls, "mqtt.pass"))
	r = tapwatch("check", "-c", cfg, "--user=")
	for _, want := range []string{
		fmt.Sprintf("%s:9:9: uplink.tls.ca: %s holds no PEM certificate", cfg, pki.CA),
		fmt.Sprintf("%s:10:11: uplink.tls.cert: %s, %s: tls: private key does not match public key", cfg, pki.ClientCert, pki.ClientKey),
		fmt.Sprintf("%s:7:18: uplink.password_file: open %s: no such file or directory", cfg, filepath.Join(tls, "mqtt.pass")),
	} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %v", want, r)
		}
	}
	if !strings.Contains(r.stdout, "#   warning: uplink.tls.key: "+pki.ClientKey+" is readable by every user (mode 0644): chmod o-r ") ||
		strings.Contains(r.stdout, "read as user") {
		t.Errorf("broken files: %v", r)
	}

	// A key that is not there is the key's problem; a user that is not
	// there, named with --user, is a problem too.
	os.Remove(pki.ClientKey)
	r = tapwatch("check", "-c", cfg, "--user", "no-such-user-tapwatch")
	if !strings.Contains(r.stderr, fmt.Sprintf("%s:11:10: uplink.tls.key: %s, %s: open %s: no such file", cfg, pki.ClientCert, pki.ClientKey, pki.ClientKey)) ||
		!strings.Contains(r.stderr, "--user no-such-user-tapwatch: user: unknown user no-such-user-tapwatch") || r.code != 1 {
		t.Errorf("missing key and user: %v", r)
	}
}

// TestCheckKnowsTheUnit: what check assumes of the daemon's unit is what
// the package installs.
func TestCheckKnowsTheUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(testenv.Root(t), "board", "deb", "tapwatch.service"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(unit), "\n")
	want := []string{"User=" + serviceUser}
	for _, h := range serviceHidden {
		setting, _, _ := strings.Cut(h.why, ":")
		want = append(want, setting)
	}
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("tapwatch.service lacks the line %s", w)
		}
	}
}
