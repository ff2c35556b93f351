package labelled

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// qutLog is a small attack log in the QUT layout: an episode without
// targets, one with one target, and two of different types open at once,
// one line ending in CRLF, and a blank line.
const qutLog = `2016-10-10 17:54:45.659427 nmap START
2016-10-10 17:54:48.039687 nmap END
2016-10-10 17:54:58.056444 reconnaissance 192.168.10.222 START

2016-10-10 17:55:02.128405 reconnaissance 192.168.10.222 END` + "\r" + `
2016-10-10 23:59:59.5 MITM_forwarding 192.168.10.221 192.168.10.222 START
2016-10-11 00:00:01 injection_push 192.168.10.222 START
2016-10-11 00:00:30.000001 injection_push 192.168.10.222 END
2016-10-11 00:01:00 MITM_forwarding 192.168.10.221 192.168.10.222 END
`

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.999999999", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseAttackLog(t *testing.T) {
	eps, err := ParseAttackLog(strings.NewReader(qutLog), "x.attack-log.txt")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := netip.MustParseAddr("192.168.10.221"), netip.MustParseAddr("192.168.10.222"), []netip.Addr(nil)
	want := []Episode{
		// The log is UTC+10: 17:54 there is 07:54 UTC.
		{Type: "nmap", Targets: c, Start: utc("2016-10-10 07:54:45.659427"), End: utc("2016-10-10 07:54:48.039687"), Line: 1},
		{Type: "reconnaissance", Targets: []netip.Addr{b}, Start: utc("2016-10-10 07:54:58.056444"), End: utc("2016-10-10 07:55:02.128405"), Line: 3},
		{Type: "MITM_forwarding", Targets: []netip.Addr{a, b}, Start: utc("2016-10-10 13:59:59.5"), End: utc("2016-10-10 14:01:00"), Line: 6},
		{Type: "injection_push", Targets: []netip.Addr{b}, Start: utc("2016-10-10 14:00:01"), End: utc("2016-10-10 14:00:30.000001"), Line: 7},
	}
	if len(eps) != len(want) {
		t.Fatalf("got %d episodes, want %d: %+v", len(eps), len(want), eps)
	}
	for i := range want {
		g, w := eps[i], want[i]
		if g.Type != w.Type || !slices.Equal(g.Targets, w.Targets) || !g.Start.Equal(w.Start) || !g.End.Equal(w.End) || g.Line != w.Line {
			t.Errorf("episode %d:\n got %+v\nwant %+v", i, g, w)
		}
		if g.Start.Location() != time.UTC {
			t.Errorf("episode %d: start in %v, want UTC", i, g.Start.Location())
		}
	}
	if eps, err := ParseAttackLog(strings.NewReader(""), "control"); err != nil || len(eps) != 0 {
		t.Errorf("empty log: %v, %v; want no episode", eps, err)
	}
}

func TestParseAttackLogErrors(t *testing.T) {
	const start = "2016-10-10 17:54:45.659427 nmap START\n"
	for _, tc := range []struct {
		name, log string
		line      int
		want      string
	}{
		{"too few fields", "2016-10-10 17:54:45 START\n", 1, "want a date, a time, an attack type"},
		{"bad date", "2016-13-10 17:54:45 nmap START\n", 1, `"2016-13-10 17:54:45" is not a date and time`},
		{"no time", "2016-10-10 nmap x START\n", 1, "is not a date and time"},
		{"address as type", "2016-10-10 17:54:45 192.168.10.1 START\n", 1, `"192.168.10.1" is not an attack type`},
		{"bad type", "2016-10-10 17:54:45 n;map START\n", 1, `"n;map" is not an attack type`},
		{"bad target", "2016-10-10 17:54:45 mitm 192.168.10.300 START\n", 1, `target "192.168.10.300" is not an IP address`},
		{"bad mark", "\n2016-10-10 17:54:45 nmap BEGIN\n", 2, `ends with "BEGIN", not START or END`},
		{"end without start", start + "2016-10-10 17:54:46 nmap 192.168.10.1 END\n", 2, "END of nmap 192.168.10.1, which has not started"},
		{"start twice", start + "2016-10-10 17:54:46 nmap START\n", 2, "nmap starts again before the END of its START on line 1"},
		{"end before start", start + "2016-10-10 17:54:44 nmap END\n", 2, "nmap ends at 2016-10-10 17:54:44, before its START on line 1"},
		{"no end", "\n" + start + "2016-10-10 17:54:46 x START\n2016-10-10 17:54:47 x END\n", 2, "nmap has no END"},
		{"line too long", start + strings.Repeat("x", 70000) + "\n", 2, "token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAttackLog(strings.NewReader(tc.log), "d/a.attack-log.txt")
			checkParseError(t, err, "d/a.attack-log.txt", tc.line, tc.want)
		})
	}
}

func checkParseError(t *testing.T, err error, file string, line int, want string) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a *ParseError", err)
	}
	if pe.File != file || pe.Line != line || !strings.Contains(err.Error(), want) {
		t.Errorf("got %q (file %q, line %d), want %s:%d: ...%s...", err, pe.File, pe.Line, file, line, want)
	}
	if !strings.HasPrefix(err.Error(), file+":"+strconv.Itoa(line)+": ") {
		t.Errorf("%q does not begin with the file and line", err)
	}
}

func TestParseLabels(t *testing.T) {
	// CRLF as in the dataset, the last line with LF only, a blank line at
	// the end.
	l, err := ParseLabels(strings.NewReader("1;0\r\n2;0\r\n3;1\r\n4;0\r\n5;1\n\r\n"), "x_labeled.csv")
	if err != nil {
		t.Fatal(err)
	}
	if l.Frames() != 5 || l.Count() != 2 || l.First() != 3 {
		t.Errorf("got %d frames, %d attack frames, first %d; want 5, 2, 3", l.Frames(), l.Count(), l.First())
	}
	var attack []uint64
	for f := uint64(0); f <= 7; f++ {
		if l.Attack(f) {
			attack = append(attack, f)
		}
	}
	if !slices.Equal(attack, []uint64{3, 5}) {
		t.Errorf("attack frames %v, want [3 5]", attack)
	}
	if l, err := ParseLabels(strings.NewReader("1;0\r\n"), "x"); err != nil || l.First() != 0 || l.Count() != 0 {
		t.Errorf("no attack: first %d, count %d, %v; want 0, 0", l.First(), l.Count(), err)
	}
}

func TestParseLabelsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, labels string
		line         int
		want         string
	}{
		{"no separator", "1;0\r\n2,0\r\n", 2, `want frame_number;label, got "2,0"`},
		{"header", "frame;label\r\n1;0\r\n", 1, `"frame" is not a frame number`},
		{"gap", "1;0\r\n2;0\r\n\r\n4;1\r\n", 4, "frame 4 where frame 3 was expected"},
		{"from zero", "0;0\r\n", 1, "frame 0 where frame 1 was expected"},
		{"bad label", "1;0\r\n2;2\r\n", 2, `label "2" of frame 2 is not 0 or 1`},
		{"label with space", "1; 1\r\n", 1, `label " 1" of frame 1 is not 0 or 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLabels(strings.NewReader(tc.labels), "d/x_labeled.csv")
			checkParseError(t, err, "d/x_labeled.csv", tc.line, tc.want)
		})
	}
}

// writeFiles makes dir/name for each name, with its content.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, QUTDir), map[string]string{
		"MITM_x.attack-log.txt":    qutLog,
		"MITM_x.ip-arp.pcap":       "",
		"Control_y.attack-log.txt": "",
		"Control_y.ip-arp.pcap":    "",
		"README.md":                "",
	})
	writeFiles(t, filepath.Join(dir, LemayDir), map[string]string{
		"moving_labeled.csv": "1;0\r\n2;1\r\n",
		"moving.pcap":        "",
		"README.upstream.md": "",
	})
	ds, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ds.QUT {
		got = append(got, c.Name+" "+c.Family+" "+filepath.Base(c.Pcap)+" "+filepath.Base(c.Log)+" "+strconv.Itoa(len(c.Episodes)))
	}
	for _, c := range ds.Lemay {
		got = append(got, c.Name+" "+filepath.Base(c.Pcap)+" "+strconv.Itoa(c.Labels.Frames()))
	}
	want := []string{
		"Control_y Control Control_y.ip-arp.pcap Control_y.attack-log.txt 0",
		"MITM_x MITM MITM_x.ip-arp.pcap MITM_x.attack-log.txt 4",
		"moving moving.pcap 2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"log without capture", map[string]string{"A_a.attack-log.txt": ""}, "A_a.attack-log.txt: no capture A_a.ip-arp.pcap beside it"},
		{"capture without log", map[string]string{"A_a.ip-arp.pcap": ""}, "A_a.ip-arp.pcap: no labels A_a.attack-log.txt beside it"},
		{"bad log", map[string]string{"A_a.attack-log.txt": "\nx\n", "A_a.ip-arp.pcap": ""}, "A_a.attack-log.txt:2: want a date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), QUTDir)
			writeFiles(t, dir, tc.files)
			_, err := LoadQUT(dir)
			if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, tc.want)) {
				t.Errorf("got %v, want %s", err, filepath.Join(dir, tc.want))
			}
		})
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"m_labeled.csv": "1;0\r\n", "n.pcap": ""})
	_, err := LoadLemay(dir)
	for _, want := range []string{"m_labeled.csv: no capture m.pcap beside it", "n.pcap: no labels n_labeled.csv beside it"} {
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, want)) {
			t.Errorf("got %v, want %s", err, want)
		}
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty folder: got %v, want a missing %s", err, QUTDir)
	}
}

func TestQuiet(t *testing.T) {
	eps, err := ParseAttackLog(strings.NewReader(qutLog), "x")
	if err != nil {
		t.Fatal(err)
	}
	c := QUTCapture{Episodes: eps}
	w := Window{Before: 10 * time.Second, After: 30 * time.Second}
	for _, tc := range []struct {
		at    string
		quiet bool
	}{
		{"2016-10-10 07:54:35.659426", true},  // 10 s and 1 µs before nmap
		{"2016-10-10 07:54:35.659427", false}, // 10 s before nmap
		{"2016-10-10 07:55:18.039687", false}, // 30 s after nmap, during reconnaissance's margin
		{"2016-10-10 07:55:32.128405", false}, // 30 s after reconnaissance
		{"2016-10-10 07:55:32.128406", true},
		{"2016-10-10 14:00:45", false}, // inside MITM_forwarding, after injection_push
	} {
		if got := c.Quiet(utc(tc.at), w); got != tc.quiet {
			t.Errorf("Quiet(%s) = %v, want %v", tc.at, got, tc.quiet)
		}
	}
}

func TestScoreEpisodes(t *testing.T) {
	eps := []Episode{
		{Type: "nmap", Start: utc("2016-10-10 07:00:00"), End: utc("2016-10-10 07:00:10")},
		{Type: "nmap", Start: utc("2016-10-10 08:00:00"), End: utc("2016-10-10 08:00:10")},
		{Type: "mitm", Start: utc("2016-10-10 09:00:00"), End: utc("2016-10-10 09:01:00")},
		{Type: "mitm", Start: utc("2016-10-10 10:00:00"), End: utc("2016-10-10 10:01:00")},
	}
	at := func(s string) time.Time { return utc("2016-10-10 " + s) }
	alerts := []Alert{
		// 1 s before the first nmap: it counts.
		{ID: 1, Rule: "scan", First: at("06:59:59"), Last: at("06:59:59")},
		// 5 s and 1 ns after the second nmap: false...
		{ID: 2, Rule: "scan", First: at("08:00:15.000000001"), Last: at("08:00:15.000000001")},
		// ... and one that began 2 s before it, reported again with its
		// folded repeats inside it: one alert, which counts.
		{ID: 3, Rule: "arp", First: at("07:59:58"), Last: at("07:59:58")},
		{ID: 3, Rule: "arp", First: at("07:59:58"), Last: at("08:00:01"), Frame: 9},
		// Two rules in the first mitm, one twice.
		{ID: 4, Rule: "arp", First: at("09:00:30"), Last: at("09:00:30")},
		{ID: 5, Rule: "arp", First: at("09:00:31"), Last: at("09:00:31")},
		{ID: 6, Rule: "dnp3", First: at("09:00:32"), Last: at("09:00:32")},
		// Alerts without an ID are alerts of their own.
		{Rule: "other", First: at("11:00:00"), Last: at("11:00:00")},
		{Rule: "other", First: at("11:00:00"), Last: at("11:00:00")},
	}
	s := ScoreEpisodes(eps, alerts, ScoreWindow)
	check := func(s EpisodeScore, n int) {
		t.Helper()
		if s.Alerts != 8*n || s.False != 3*n || s.FalseByRule["scan"] != n || s.FalseByRule["other"] != 2*n || len(s.FalseByRule) != 2 {
			t.Errorf("got %d alerts, %d false %v; want %d, %d, map[other:%d scan:%d]", s.Alerts, s.False, s.FalseByRule, 8*n, 3*n, 2*n, n)
		}
		nmap, mitm := s.Types["nmap"], s.Types["mitm"]
		if len(s.Types) != 2 || nmap.Detected != 2*n || nmap.Episodes != 2*n || mitm.Detected != n || mitm.Episodes != 2*n {
			t.Errorf("got nmap %+v, mitm %+v; want 2/2 and 1/2 (times %d)", nmap, mitm, n)
		}
		if nmap.ByRule["scan"] != n || nmap.ByRule["arp"] != n || mitm.ByRule["arp"] != n || mitm.ByRule["dnp3"] != n {
			t.Errorf("by rule: nmap %v, mitm %v", nmap.ByRule, mitm.ByRule)
		}
	}
	check(s, 1)
	var sum EpisodeScore
	sum.Add(s)
	sum.Add(s)
	check(sum, 2)
	check(s, 1) // Add copied, it did not share
}

func TestScoreFrames(t *testing.T) {
	l, err := ParseLabels(strings.NewReader("1;0\r\n2;1\r\n3;1\r\n4;0\r\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	attacker, victim, master := netip.MustParseAddr("192.168.1.101"), netip.MustParseAddr("192.168.1.105"), netip.MustParseAddr("192.168.1.100")
	alerts := []Alert{
		{ID: 1, Rule: "exc", Frame: 2, Src: victim, Dst: master},
		{ID: 1, Rule: "exc", Frame: 3, Src: attacker}, // a report of alert 1's repeats: the first frame counts
		{ID: 2, Rule: "new", Frame: 3, Src: victim, Dst: master},
		{ID: 3, Rule: "exc", Frame: 4, Src: attacker}, // names the attacker, but on a normal frame
		{ID: 4, Rule: "silent", Frame: 0},             // no frame
		{ID: 5, Rule: "late", Frame: 9},               // past the labels
	}
	s := ScoreFrames(l, alerts, attacker)
	if !s.Detected() || s.Alerts != 5 || s.OnAttack != 2 || s.False != 3 || s.NamesAttacker {
		t.Errorf("got %+v; want detected, 5 alerts, 2 on attack frames, 3 false, the attacker not named", s)
	}
	if s.OnAttackByRule["exc"] != 1 || s.OnAttackByRule["new"] != 1 || s.FalseByRule["exc"] != 1 || s.FalseByRule["silent"] != 1 || s.FalseByRule["late"] != 1 {
		t.Errorf("by rule: on attack %v, false %v", s.OnAttackByRule, s.FalseByRule)
	}
	alerts = append(alerts, Alert{ID: 6, Rule: "new-link", Frame: 2, Src: attacker, Dst: victim})
	if s := ScoreFrames(l, alerts, attacker); !s.NamesAttacker || s.OnAttack != 3 {
		t.Errorf("got %+v; want the attacker named, 3 alerts on attack frames", s)
	}
	if s := ScoreFrames(l, alerts[:1], attacker); s.Detected() != true || s.NamesAttacker {
		t.Errorf("got %+v; want detected without naming the attacker", s)
	}
	if s := ScoreFrames(l, nil, attacker); s.Detected() || s.Alerts != 0 {
		t.Errorf("no alerts: got %+v", s)
	}
}

// FuzzParseAttackLog checks that the attack-log parser never panics, and
// that what it accepts is consistent: every episode ended, not before it
// started, on a line of the input.
func FuzzParseAttackLog(f *testing.F) {
	f.Add(qutLog)
	f.Add("")                                                                 // a Control day
	f.Add("2016-10-10 17:54:45 nmap START\r\n")                               // no END
	f.Add("2016-10-10 17:54:45 nmap START\n2016-10-10 17:54:45 nmap END\n")   // ends when it starts
	f.Add("2016-10-10 17:54:45 x ::1 START\n2016-10-11 01:00:00 x ::1 END\n") // IPv6 target, over midnight
	f.Add("2016-10-10 17:54:45.1234567891 x END\n")                           // more digits than nanoseconds
	f.Fuzz(func(t *testing.T, log string) {
		eps, err := ParseAttackLog(strings.NewReader(log), "f")
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		lines := strings.Count(log, "\n") + 1
		for _, e := range eps {
			if e.End.Before(e.Start) || e.Start.IsZero() || e.Line < 1 || e.Line > lines || !isName(e.Type) {
				t.Fatalf("inconsistent episode %+v", e)
			}
		}
	})
}

// checkFuzzError fails t unless err is a ParseError of the file "f" at
// a line.
func checkFuzzError(t *testing.T, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != "f" || pe.Line < 1 {
		t.Fatalf("error %v is not a ParseError naming the file and a line", err)
	}
}

// FuzzParseLabels checks that the label parser never panics, and that
// what it accepts is consistent: the first attack frame is labelled
// attack, and no frame before it is.
func FuzzParseLabels(f *testing.F) {
	f.Add("1;0\r\n2;1\r\n3;0\r\n")  // CRLF, as in the dataset
	f.Add("1;1\n")                  // LF only, first frame an attack
	f.Add("")                       // no frame
	f.Add("1;0\r\n3;1\r\n")         // a gap
	f.Add("18446744073709551616;0") // past uint64
	f.Fuzz(func(t *testing.T, labels string) {
		l, err := ParseLabels(strings.NewReader(labels), "f")
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		n := 0
		for f := uint64(1); f <= uint64(l.Frames()); f++ {
			if l.Attack(f) {
				n++
				if n == 1 && f != l.First() {
					t.Fatalf("first attack frame %d, First() says %d", f, l.First())
				}
			}
		}
		if n != l.Count() || (n == 0) != (l.First() == 0) || l.Frames() > strings.Count(labels, "\n")+1 {
			t.Fatalf("%d attack frames counted, Count %d, First %d, Frames %d", n, l.Count(), l.First(), l.Frames())
		}
	})
}
