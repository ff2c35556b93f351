package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/labelled"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor/pipeline"
)

// The two modes of TestLabelled.
const (
	detect  = iota // the built-in detectors, no policy, no baseline
	monitor        // a baseline learned from the capture's attack-free stretches, enforced
	modes
)

var modeNames = [modes]string{"detect", "learn+monitor"}

// The captures TestLabelled must find, so that it cannot pass on an
// empty folder: the nine QUT training days and the two Lemay captures of
// the labelled-attacks README.
const (
	minQUTCaptures   = 9
	minLemayCaptures = 2
)

// lemayAttacker is the attacking host of both Lemay captures (the
// labelled-attacks README).
var lemayAttacker = netip.MustParseAddr("192.168.1.101")

// minLemayLearnFrames is the fewest normal frames of a Lemay capture
// worth learning from: the master polls each RTU about every 10 s, so
// this is a few rounds of polling.
const minLemayLearnFrames = 100

// lemayIssueFalse is issue 17's bound on the false alerts of each Lemay
// capture.
const lemayIssueFalse = 2

// qutFloors are the QUT episodes of each attack type detected on
// 2026-12-05, in each mode: at the start of issue 17, then raised for
// the network detectors (every MITM episode through arp-spoof, every nmap
// one through scan-hosts). A type
// detected less often fails the test: a regression. Work that detects
// more raises its floor (the test logs where a floor is below today's
// figure), so that the gain is kept; issue 17 asks for every nmap,
// reconnaissance and MITM episode. A type not listed fails the test too.
//
// The learn+monitor figures come nearly all from baseline-new-master:
// the QUT captures were made on the attacker's machine, which sees the
// master's DNP3 only while an attack redirects it, so nothing of DNP3 is
// learned between the attacks and any DNP3 is new. They hold the
// mechanism to account; they do not say what a tap would see.
var qutFloors = map[string][modes]int{
	"MITM_forwarding":                               {6, 6},
	"MITM_hijack_injection":                         {11, 11},
	"MITM_modification_BinaryInputDataDelete":       {9, 9},
	"MITM_modification_BinaryInputPointDelete":      {11, 11},
	"MITM_modification_BinaryInputPointInsert":      {17, 17},
	"MITM_modification_BinaryStatus":                {13, 13},
	"MITM_modification_CountBinaryInputPointInsert": {5, 5},
	"MITM_modification_CounterStatus":               {8, 8},
	"MITM_modification_ImmedFreezeNR":               {18, 18},
	"injection_ColdRestart":                         {13, 13},
	"injection_FreezeObj":                           {20, 20},
	"injection_WarmRestart":                         {15, 15},
	"injection_push":                                {19, 19},
	"injection_replay":                              {14, 17},
	"injection_replay_updaterAck":                   {12, 12},
	"master_flooding":                               {4, 4},
	"master_flooding_freeze":                        {3, 3},
	"master_flooding_time":                          {3, 3},
	"master_hijacking_masquerading":                 {1, 1},
	"master_hijacking_replay":                       {1, 1},
	"master_hijacking_replay_flooding":              {4, 4},
	"master_masquerading":                           {1, 2},
	"master_replay":                                 {1, 2},
	"master_replay_flooding":                        {3, 4},
	"nmap":                                          {7, 7},
	"reconnaissance":                                {7, 7},
	"slave_masquerading_ObjectSpoofBinary":          {4, 4},
	"slave_masquerading_ObjectSpoofBinaryFuzz":      {3, 3},
	"slave_masquerading_ObjectSpoofCounter":         {3, 3},
	"slave_masquerading_ObjectSpoofCounterFuzz":     {4, 4},
	"slave_masquerading_flooding":                   {7, 7},
}

// lemayFloor is what must hold of a Lemay capture in a mode: whether
// the attack is detected, whether an alert on it names the attacker, and
// at most how many false alerts it raises.
type lemayFloor struct {
	detected, namesAttacker bool
	maxFalse                int
}

// lemayFloors are the Lemay results of 2026-12-05, as qutFloors, after
// the network detectors: both captures detected in both modes, the
// attacker named in learn+monitor, and the false alerts bounded by
// lemayIssueFalse (the test logs when a bound can be lowered).
var lemayFloors = map[string][modes]lemayFloor{
	"characterization_modbus_6RTU_with_operate": {{true, true, lemayIssueFalse}, {true, true, lemayIssueFalse}},
	"moving_two_files_modbus_6RTU":              {{true, false, lemayIssueFalse}, {true, true, lemayIssueFalse}},
}

// TestLabelled measures detection on attacks nobody on this project
// wrote: it replays every capture of ../shared/corpus/labelled-attacks
// through the real pipeline, the built-in detectors on and no policy,
// scores the alerts against the datasets' ground truth
// (internal/labelled) and prints one table, in two modes side by side:
//
//   - detect: nothing learned.
//   - learn+monitor: a baseline is learned (pipeline.Learn, as tapwatch
//     learn does, with the default margin) and enforced (as tapwatch
//     replay --baseline does) while the whole capture is replayed again.
//     A QUT capture is learned from its own packets outside every
//     episode's window widened by labelled.LearnMargin (the training
//     days hold attacks too). A Lemay capture is learned from its own
//     frames labelled normal: its attack runs from its first seconds
//     beside the normal polling, so it has no attack-free stretch.
//
// A QUT episode is detected when an alert overlaps [START-1s, END+5s],
// and an alert that overlaps no episode's window is false; a Lemay alert
// is scored by its first frame's label. The test fails when the QUT
// Control days raise any alert, when a type of attack is detected less
// often than its floor (qutFloors, lemayFloors), when a Lemay capture
// has more false alerts than its bound (lemayFloors; issue 17
// asks for at most lemayIssueFalse), and when it finds fewer
// captures than the datasets have. Run it with
//
//	go test ./sensor/pipeline -run TestLabelled -v
//
// The datasets, cited as their README asks:
//
//   - Antoine Lemay and José M. Fernandez, "Providing SCADA Network Data
//     Sets for Intrusion Detection Research", USENIX CSET 2016
//     (repository antoine-lemay/Modbus_dataset).
//   - Queensland University of Technology, 2017 DNP3 intrusion dataset
//     (repository qut-infosec/2017QUT_DNP3); only its training days.
func TestLabelled(t *testing.T) {
	dir, ds := loadLabelled(t)
	if len(ds.QUT) < minQUTCaptures || len(ds.Lemay) < minLemayCaptures {
		t.Fatalf("found %d QUT and %d Lemay captures in %s, want at least %d and %d", len(ds.QUT), len(ds.Lemay), dir, minQUTCaptures, minLemayCaptures)
	}
	start := time.Now()
	var r labelledResults
	for i := range ds.QUT {
		c := &ds.QUT[i]
		markOnWire(t, c)
		base, learned := learnBaseline(t, c.Pcap, func(ci *capture.Info) bool { return c.Quiet(ci.Timestamp, labelled.LearnMargin) })
		r.learnedQUT.add(learned)
		for m, pol := range [modes]*policy.Policy{nil, base} {
			alerts, packets := replayAlerts(t, c.Pcap, pol)
			s := labelled.ScoreEpisodes(c.Episodes, alerts, labelled.ScoreWindow)
			r.qut[m].Add(s)
			if c.Family == "Control" {
				r.control[m].Add(s)
			}
			if m == detect {
				r.qutPackets += packets
			}
		}
	}
	for _, c := range ds.Lemay {
		if c.Labels.Frames()-c.Labels.Count() <= minLemayLearnFrames {
			t.Fatalf("%s has %d normal frames to learn from, want more than %d", c.Name, c.Labels.Frames()-c.Labels.Count(), minLemayLearnFrames)
		}
		base, learned := learnBaseline(t, c.Pcap, func(ci *capture.Info) bool { return !c.Labels.Attack(ci.Frame) })
		r.learnedLemay.add(learned)
		var res [modes]labelled.FrameScore
		for m, pol := range [modes]*policy.Policy{nil, base} {
			alerts, packets := replayAlerts(t, c.Pcap, pol)
			if packets != uint64(c.Labels.Frames()) {
				t.Errorf("%s: %d packets replayed, %d frames labelled", c.Name, packets, c.Labels.Frames())
			}
			res[m] = labelled.ScoreFrames(c.Labels, alerts, lemayAttacker)
		}
		r.lemay = append(r.lemay, lemayResult{c.Name, c.Labels, res})
	}
	r.elapsed = time.Since(start)
	t.Log("\n" + r.table(len(ds.QUT)))
	r.check(t)
}

// learnBaseline learns a baseline from the packets of file that keep
// accepts, writes it as tapwatch learn does and loads it as tapwatch
// replay --baseline does, so that the file format is part of the test.
// It returns the policy to enforce and what it learned.
func learnBaseline(t *testing.T, file string, keep func(*capture.Info) bool) (*policy.Policy, learned) {
	t.Helper()
	src := capture.OpenFiles(file)
	defer src.Close()
	l, sum, err := pipeline.Learn(context.Background(), filtered{src, keep}, dpi.Config{})
	if err == nil && len(sum.Errors) > 0 {
		err = sum.Errors[0]
	}
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	l.Baseline(policy.DefaultMargin).Format(&b)
	path := filepath.Join(t.TempDir(), "baseline.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pol := load(t, pipeline.PolicyFiles{Baseline: path})
	return pol, learned{sum.Packets, len(pol.Baseline.Conversations)}
}

// filtered is a capture source that passes on only the packets keep
// accepts, with their capture time and frame number.
type filtered struct {
	src  capture.Source
	keep func(*capture.Info) bool
}

func (f filtered) ReadPacket(ci *capture.Info) ([]byte, error) {
	for {
		b, err := f.src.ReadPacket(ci)
		if err != nil || f.keep(ci) {
			return b, err
		}
	}
}

// replayAlerts replays file through a pipeline that enforces pol (nil:
// the built-in detectors with their defaults) and returns every report
// of every alert, and the number of packets.
func replayAlerts(t *testing.T, file string, pol *policy.Policy) ([]labelled.Alert, uint64) {
	t.Helper()
	var sink alertCollector
	asm := assemble(t, pipeline.Setup{Policy: pol, Sinks: pipeline.Sinks{Alerts: []pipeline.AlertSink{&sink}}})
	src := capture.OpenFiles(file)
	defer src.Close()
	sum, err := asm.Replay(context.Background(), src)
	if err == nil && len(sum.Errors) > 0 {
		err = sum.Errors[0]
	}
	if err != nil {
		t.Fatal(err)
	}
	return sink, sum.Packets
}

// markOnWire sets OnWire for the episodes of c that put something on
// the wire: a frame to or from one of the episode's targets (IPv4 or
// ARP) within its scoring window, or, for an episode that names no
// target, any frame but loopback. Some QUT episodes only ever sent to
// 127.0.0.1 on the attacker's machine.
func markOnWire(t *testing.T, c *labelled.QUTCapture) {
	t.Helper()
	src := capture.OpenFiles(c.Pcap)
	defer src.Close()
	var ci capture.Info
	for {
		b, err := src.ReadPacket(&ci)
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var a, z netip.Addr
		p := gopacket.NewPacket(b, layers.LinkType(ci.LinkType), gopacket.Lazy)
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			a, _ = netip.AddrFromSlice(ip.SrcIP.To4())
			z, _ = netip.AddrFromSlice(ip.DstIP.To4())
		} else if arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
			a, _ = netip.AddrFromSlice(arp.SourceProtAddress)
			z, _ = netip.AddrFromSlice(arp.DstProtAddress)
		}
		for i := range c.Episodes {
			e := &c.Episodes[i]
			if e.OnWire || !e.Overlaps(labelled.ScoreWindow, ci.Timestamp, ci.Timestamp) {
				continue
			}
			if len(e.Targets) == 0 {
				e.OnWire = !a.IsLoopback() && !z.IsLoopback()
				continue
			}
			e.OnWire = slices.Contains(e.Targets, a) || slices.Contains(e.Targets, z)
		}
	}
}

// integrityGoal is issue 18's bound: the share of the QUT injection and
// MITM episodes that reach the wire that must be detected.
const integrityGoal = 0.95

// integrityEpisodes counts the QUT injection and MITM episodes that put
// a frame on the wire, and those of them detected.
func integrityEpisodes(types map[string]*labelled.Tally) (detected, onWire int) {
	for typ, t := range types {
		if strings.HasPrefix(typ, "injection_") || strings.HasPrefix(typ, "MITM_") {
			detected += t.DetectedOnWire
			onWire += t.OnWire
		}
	}
	return detected, onWire
}

// learned is what a baseline was learned from, and what it holds.
type learned struct {
	packets       uint64
	conversations int
}

func (l *learned) add(o learned) {
	l.packets += o.packets
	l.conversations += o.conversations
}

// alertCollector is an alert sink that keeps what scoring needs.
type alertCollector []labelled.Alert

func (c *alertCollector) Alert(a *rules.Alert) {
	*c = append(*c, labelled.Alert{ID: a.ID, Rule: a.Rule, First: a.First, Last: a.Last,
		Frame: a.Frame, Src: a.Src.Addr(), Dst: a.Dst.Addr()})
}

type lemayResult struct {
	name   string
	labels labelled.Labels
	score  [modes]labelled.FrameScore
}

// labelledResults is what TestLabelled measured.
type labelledResults struct {
	qut, control [modes]labelled.EpisodeScore
	lemay        []lemayResult
	qutPackets   uint64  // in all the QUT captures
	learnedQUT   learned // from all the QUT captures
	learnedLemay learned
	elapsed      time.Duration
}

// check fails t on a regression: see TestLabelled.
func (r *labelledResults) check(t *testing.T) {
	t.Helper()
	for m := range modes {
		if n := r.control[m].False; n != 0 {
			t.Errorf("%s: %d false alerts on the QUT Control days %v, want none", modeNames[m], n, r.control[m].FalseByRule)
		}
	}
	for m := range modes {
		if d, n := integrityEpisodes(r.qut[m].Types); n == 0 || float64(d) < integrityGoal*float64(n) {
			t.Errorf("%s: %d of %d injection and MITM episodes on the wire detected, want at least %.0f%%", modeNames[m], d, n, 100*integrityGoal)
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(r.qut[detect].Types)) {
		floor, ok := qutFloors[typ]
		if !ok {
			t.Errorf("QUT attack type %s has no floor in qutFloors; add it", typ)
			continue
		}
		for m := range modes {
			got := r.qut[m].Types[typ]
			switch {
			case got.Detected < floor[m]:
				t.Errorf("%s: %s detected in %d of %d episodes, below its floor of %d: a regression", modeNames[m], typ, got.Detected, got.Episodes, floor[m])
			case got.Detected > floor[m]:
				t.Logf("%s: %s detected in %d of %d episodes, above its floor of %d: raise the floor in qutFloors", modeNames[m], typ, got.Detected, got.Episodes, floor[m])
			}
		}
	}
	for typ := range qutFloors {
		if r.qut[detect].Types[typ] == nil {
			t.Errorf("QUT attack type %s of qutFloors is in no attack log", typ)
		}
	}
	if len(r.lemay) != len(lemayFloors) {
		t.Errorf("%d Lemay captures, %d in lemayFloors", len(r.lemay), len(lemayFloors))
	}
	for _, l := range r.lemay {
		floor, ok := lemayFloors[l.name]
		if !ok {
			t.Errorf("Lemay capture %s has no floor in lemayFloors; add it", l.name)
			continue
		}
		for m := range modes {
			s := &l.score[m]
			if floor[m].detected && !s.Detected() || floor[m].namesAttacker && !s.NamesAttacker {
				t.Errorf("%s: %s: detected %v, attacker named %v; want at least %+v: a regression", modeNames[m], l.name, s.Detected(), s.NamesAttacker, floor[m])
			}
			if !floor[m].detected && s.Detected() || !floor[m].namesAttacker && s.NamesAttacker {
				t.Logf("%s: %s: detected %v, attacker named %v, above its floor %+v: raise it in lemayFloors", modeNames[m], l.name, s.Detected(), s.NamesAttacker, floor[m])
			}
			switch {
			case s.False > floor[m].maxFalse:
				t.Errorf("%s: %s: %d false alerts %v, want at most %d", modeNames[m], l.name, s.False, s.FalseByRule, floor[m].maxFalse)
			case s.False < floor[m].maxFalse && floor[m].maxFalse > lemayIssueFalse:
				t.Logf("%s: %s: %d false alerts, below its bound of %d: lower the bound in lemayFloors", modeNames[m], l.name, s.False, floor[m].maxFalse)
			}
		}
	}
}

// table is the report of TestLabelled: each measure in both modes.
func (r *labelledResults) table(qutCaptures int) string {
	var b strings.Builder
	row := func(name string, v [modes]string, more ...string) {
		line := fmt.Sprintf("%-48s %-14s %-14s %s", name, v[detect], v[monitor], strings.Join(more, " "))
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	both := func(f func(m int) string) [modes]string { return [modes]string{f(detect), f(monitor)} }
	count := func(f func(m int) int) [modes]string {
		return both(func(m int) string { return fmt.Sprint(f(m)) })
	}
	tally := func(t *labelled.Tally) string {
		if t.OnWire != t.Episodes {
			return fmt.Sprintf("%d/%d (%d/%d)", t.Detected, t.Episodes, t.DetectedOnWire, t.OnWire)
		}
		return fmt.Sprintf("%d/%d", t.Detected, t.Episodes)
	}

	episodes := 0
	for _, tl := range r.qut[detect].Types {
		episodes += tl.Episodes
	}
	fmt.Fprintf(&b, "QUT 2017 DNP3: %d captures, %d packets, %d episodes; detected: an alert within [START-1s, END+5s]\n", qutCaptures, r.qutPackets, episodes)
	fmt.Fprintf(&b, "learn+monitor learned %d conversations from %d packets, outside [START-%v, END+%v] of every episode\n",
		r.learnedQUT.conversations, r.learnedQUT.packets, labelled.LearnMargin.Before, labelled.LearnMargin.After)
	if r.learnedQUT.conversations == 0 {
		b.WriteString("  (no DNP3 request outside the windows: the captures were made on the attacker's machine, which\n" +
			"  sees DNP3 only while an attack redirects it, so learn+monitor flags any DNP3 as a new master;\n" +
			"  on a tap, which sees the normal polling, that would not carry over)\n")
	}
	row("attack type", [modes]string{"detect", "learn+monitor"}, "rules that detected (detect / learn+monitor)")
	b.WriteString("  (x/y (u/v): x of y episodes detected; u of the v that put a frame on the wire)\n")
	var all [modes]labelled.Tally
	for _, typ := range slices.Sorted(maps.Keys(r.qut[detect].Types)) {
		row("  "+typ, both(func(m int) string {
			t := r.qut[m].Types[typ]
			all[m].Detected += t.Detected
			all[m].Episodes += t.Episodes
			all[m].OnWire += t.OnWire
			all[m].DetectedOnWire += t.DetectedOnWire
			return tally(t)
		}), rulesText(r.qut[detect].Types[typ].ByRule), "/", rulesText(r.qut[monitor].Types[typ].ByRule))
	}
	row("  all", both(func(m int) string { return tally(&all[m]) }))
	row("  injection_* and MITM_* on the wire", both(func(m int) string {
		d, n := integrityEpisodes(r.qut[m].Types)
		return fmt.Sprintf("%d/%d", d, n)
	}), fmt.Sprintf("(issue 18 asks for %.0f%%)", 100*integrityGoal))
	row("alerts", count(func(m int) int { return r.qut[m].Alerts }))
	byRuleRows(row, "false alerts (outside every window)", count(func(m int) int { return r.qut[m].False }), r.qut[detect].FalseByRule, r.qut[monitor].FalseByRule)
	byRuleRows(row, "false alerts on the Control days", count(func(m int) int { return r.control[m].False }), r.control[detect].FalseByRule, r.control[monitor].FalseByRule)

	fmt.Fprintf(&b, "\nLemay CSET'16 Modbus: attacker %v; an alert is scored by its first frame's label\n", lemayAttacker)
	fmt.Fprintf(&b, "learn+monitor learned %d conversations in all from the %d frames labelled normal, each capture from its own\n",
		r.learnedLemay.conversations, r.learnedLemay.packets)
	for _, l := range r.lemay {
		fmt.Fprintf(&b, "%s (%d frames, %d of the attack)\n", l.name, l.labels.Frames(), l.labels.Count())
		row("  detected", both(func(m int) string { return fmt.Sprint(l.score[m].Detected()) }))
		row("  an alert on the attack names the attacker", both(func(m int) string { return fmt.Sprint(l.score[m].NamesAttacker) }))
		byRuleRows(row, "  alerts on attack frames", count(func(m int) int { return l.score[m].OnAttack }), l.score[detect].OnAttackByRule, l.score[monitor].OnAttackByRule)
		byRuleRows(row, "  false alerts", count(func(m int) int { return l.score[m].False }), l.score[detect].FalseByRule, l.score[monitor].FalseByRule)
	}
	fmt.Fprintf(&b, "\n%v for %d replays and %d learning passes\n", r.elapsed.Round(time.Millisecond), 2*(qutCaptures+len(r.lemay)), qutCaptures+1)
	return b.String()
}

// byRuleRows writes a row of a count, then one for each rule counted in
// either mode.
func byRuleRows(row func(string, [modes]string, ...string), name string, total [modes]string, byRule ...map[string]int) {
	row(name, total)
	indent := strings.Repeat(" ", len(name)-len(strings.TrimLeft(name, " "))+2)
	keys := map[string]bool{}
	for _, m := range byRule {
		for k := range m {
			keys[k] = true
		}
	}
	for _, rule := range slices.Sorted(maps.Keys(keys)) {
		row(indent+rule, [modes]string{fmt.Sprint(byRule[detect][rule]), fmt.Sprint(byRule[monitor][rule])})
	}
}

// rulesText lists counts by rule: "malformed 9, request-flood 2", or "-".
func rulesText(byRule map[string]int) string {
	var s []string
	for _, rule := range slices.Sorted(maps.Keys(byRule)) {
		s = append(s, fmt.Sprintf("%s %d", rule, byRule[rule]))
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

// TestLabelledWithout measures what the QUT detection owes to the
// detectors that see the attack tool's packets by their TTL and MAC
// (ics-spoof) and by their ARP (arp-spoof): it replays the QUT captures
// in detect mode with them turned off and logs the episodes detected by
// family, on the wire. docs/detection.md quotes it. Run it with
//
//	go test ./sensor/pipeline -run TestLabelledWithout -v
//
// It fails if turning detectors off raises a false alert.
func TestLabelledWithout(t *testing.T) {
	_, ds := loadLabelled(t)
	for i := range ds.QUT {
		markOnWire(t, &ds.QUT[i])
	}
	for _, off := range [][]string{nil, {"ics-spoof"}, {"ics-spoof", "arp-spoof"}} {
		var y strings.Builder
		y.WriteString("detectors:\n")
		for _, id := range off {
			y.WriteString("  " + id + ": {enabled: false}\n")
		}
		pol, err := policy.Parse([]byte(y.String()), "without.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var sc labelled.EpisodeScore
		for i := range ds.QUT {
			c := &ds.QUT[i]
			alerts, _ := replayAlerts(t, c.Pcap, pol)
			sc.Add(labelled.ScoreEpisodes(c.Episodes, alerts, labelled.ScoreWindow))
		}
		families := map[string]*labelled.Tally{}
		for typ, tl := range sc.Types {
			f := strings.SplitN(typ, "_", 2)[0]
			if families[f] == nil {
				families[f] = &labelled.Tally{}
			}
			families[f].DetectedOnWire += tl.DetectedOnWire
			families[f].OnWire += tl.OnWire
		}
		var line []string
		for _, f := range slices.Sorted(maps.Keys(families)) {
			line = append(line, fmt.Sprintf("%s %d/%d", f, families[f].DetectedOnWire, families[f].OnWire))
		}
		t.Logf("without %v: %s; false alerts %d", off, strings.Join(line, ", "), sc.False)
		if sc.False != 0 {
			t.Errorf("without %v: %d false alerts %v", off, sc.False, sc.FalseByRule)
		}
	}
}

// loadLabelled loads the labelled attack captures of the shared corpus,
// or skips (fails under TAPWATCH_REQUIRE_ALL) when they are not there.
func loadLabelled(t *testing.T) (string, *labelled.Dataset) {
	t.Helper()
	dir := filepath.Join(testenv.Corpus(t), "labelled-attacks")
	_, err := os.Stat(dir)
	testenv.Need(t, err == nil, "the labelled attack captures are not at "+dir+"; put the shared folder, with corpus/labelled-attacks, beside the repository or set TAPWATCH_CORPUS")
	ds, err := labelled.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, ds
}
