package rules_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
)

// TestCorpusDetections replays public captures of attacks and of ordinary
// traffic (../shared/corpus) through the built-in detectors — policy
// policy.New(), no assets (so new-asset stays off), no baseline — and
// compares the set of detector ids that fire with what the capture holds:
//
//   - corpusDetections: the Digital Bond QuickDraw test captures and the
//     captures of the Modbus/DNP3 suricata-verify tests. Each expected
//     detector carries the QuickDraw signature or Suricata alert it stands
//     for. Other detectors may fire only when listed under allow, with the
//     reason; an allowance that no longer fires fails the test too.
//   - corpusClean: ordinary polling and control that must raise no alert at
//     all, except what is listed under allow.
//   - corpusGaps: QuickDraw/Suricata detections that tapwatch does not (or
//     not correctly) make today. Each check reports whether the gap is
//     still there; when one is closed the test fails, so that the gap is
//     moved into the expectations.
//
// QuickDraw signatures that need the site's variables ($MODBUS_CLIENT,
// $DNP3_CLIENT: "unauthorized read/write request to a PLC") have no
// built-in equivalent: they are policy rules or baseline detectors, and are
// not expected here. Likewise Suricata's keyword rules that merely select
// traffic (modbus: function 1, access read, unit 10, dnp3_obj, dnp3_data,
// dnp3.ind) are not detections; only the alerts that mark an attack or an
// anomaly are mapped.
func TestCorpusDetections(t *testing.T) {
	corpus := testenv.Corpus(t)
	start := time.Now()
	var captures, expected, found, unexpected, allowed int
	check := func(t *testing.T, file string, cfg dpi.Config, want, allow map[string]string) {
		alerts := corpusReplay(t, filepath.Join(corpus, file), cfg)
		fired := map[string]int{}
		for _, a := range alerts {
			fired[a.Rule]++
		}
		captures++
		for id, why := range want {
			expected++
			if fired[id] == 0 {
				t.Errorf("%s: %s did not fire (expected: %s)", file, id, why)
				continue
			}
			found++
		}
		for id, why := range allow {
			if fired[id] == 0 {
				t.Errorf("%s: allowed extra %s no longer fires (%s); remove the allowance", file, id, why)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(fired)) {
			if _, ok := want[id]; ok {
				continue
			}
			if _, ok := allow[id]; ok {
				allowed++
				continue
			}
			unexpected++
			for _, a := range alerts {
				if a.Rule == id {
					t.Errorf("%s: unexpected %s (%d alerts), first: %s", file, id, fired[id], a.Title)
					break
				}
			}
		}
	}
	t.Run("detections", func(t *testing.T) {
		for _, c := range corpusDetections {
			t.Run(filepath.Base(c.capture), func(t *testing.T) {
				check(t, c.capture, corpusConfig(t, corpus, c.svConfig), c.want, c.allow)
			})
		}
	})
	t.Run("clean", func(t *testing.T) {
		for _, c := range corpusClean {
			t.Run(filepath.Base(c.capture), func(t *testing.T) {
				check(t, c.capture, dpi.Config{}, nil, c.allow)
			})
		}
	})
	var open int
	t.Run("gaps", func(t *testing.T) {
		for _, g := range corpusGaps {
			t.Run(g.name, func(t *testing.T) {
				alerts := corpusReplay(t, filepath.Join(corpus, g.capture), dpi.Config{})
				if !g.stillThere(alerts) {
					t.Errorf("known gap %q is closed (%s): move it into corpusDetections and remove it from corpusGaps", g.name, g.reason)
					return
				}
				open++
				t.Logf("known gap %s: %s", g.name, g.reason)
			})
		}
	})
	t.Logf("corpus detections: %d captures checked, %d of %d expected detections found, %d unexpected detector ids, %d allowed extras, %d known gaps open; %v",
		captures, found, expected, unexpected, allowed, open, time.Since(start).Round(time.Millisecond))
}

type corpusCase struct {
	capture  string            // path under the corpus
	svConfig string            // suricata-verify suricata.yaml whose limits apply, if any
	want     map[string]string // detector id → the QuickDraw signature / Suricata alert it stands for
	allow    map[string]string // detector id → why it may fire as well
}

const (
	qd = "iti-ics-security-tools/pcaps__quickdraw__"
	sv = "suricata-verify/"
)

var corpusDetections = []corpusCase{
	{capture: qd + "modbus_test_data_part1.pcap",
		want: map[string]string{
			"modbus-diagnostics": `QuickDraw "Modbus TCP - Force Listen Only Mode", "Restart Communications Option", "Clear Counters and Diagnostic Registers" (FC 8 sub-functions 4, 1, 10 to 10.0.0.3 unit 10)`,
			"recon-device-id":    `QuickDraw "Modbus TCP - Read Device Identification" (FC 43/14 to 10.0.0.8) and "Report Server Information" (FC 17, frames 40-44)`,
			"malformed":          `QuickDraw "Modbus TCP - Illegal Packet Size / Incorrect Packet Length, Possible DOS Attack" (MBAP length over 254 from 10.0.0.57, PDUs with extra bytes) and "Non-Modbus Communication on TCP Port 502" (not_modbus from 10.0.0.8:502)`,
			"modbus-busy-delay":  `QuickDraw "Modbus TCP - Slave Device Busy Exception Code Delay" and "Acknowledge Exception Code Delay" (5 server busy exceptions in 7 s, frames 91-99, then 5 acknowledge exceptions in 7 s, frames 101-109, from 10.0.0.8)`,
		}},
	{capture: qd + "modbus_test_data_part2.pcap",
		want: map[string]string{
			"recon-sweep":     `QuickDraw "Modbus TCP - Function Code Scan": 192.168.66.235 tries every function code 0-127 on 166.161.16.230`,
			"exception-storm": `QuickDraw "Modbus TCP - Illegal Function / exception" cases: the scanned device answers with 104 illegal-function and 8 illegal-address exceptions within seconds`,
			"malformed":       `QuickDraw "Modbus TCP - Illegal/undefined function code": the sweep sends function codes the specification leaves unassigned (0, 111, ...)`,
			"recon-device-id": `QuickDraw "Modbus TCP - Report Server Information": the scan includes FC 17`,
		},
		allow: map[string]string{
			"public-address": "the scanned device 166.161.16.230 really has a public address in this capture",
		}},
	{capture: qd + "dnp3_test_data_part1.pcap",
		want: map[string]string{
			"dnp3-restart":             `QuickDraw "DNP3 - Cold Restart" (FC 13, frames 70, 76) and "DNP3 - Warm Restart" (FC 14, frames 143, 146)`,
			"dnp3-application-control": `QuickDraw "DNP3 - Stop Application" (FC 18, frames 163-176)`,
			"dnp3-disable-unsolicited": `QuickDraw "DNP3 - Disable Unsolicited Responses" (FC 21, frames 11-156)`,
			"malformed":                `QuickDraw "DNP3 - Non-DNP3 Communication on a DNP3 Port" (not_dnp3 on the 10.0.0.8:2803 conversation); also the reserved qualifiers 0x6D / g1v7 headers of the crafted FC 21 and FC 18 requests`,
			"broadcast-write":          `the crafted disable-unsolicited and stop-application requests go to link address 0xFFFF (frames 154, 156, 174, 176)`,
			"dnp3-unsolicited-storm":   `QuickDraw "DNP3 - Unsolicited Response Storm" (10.0.0.3 sends 9 unsolicited responses in 16 s to 10.0.0.8, frames 40-67)`,
		}},
	{capture: qd + "dnp3_test_data_part2.pcap",
		// SELECTs of a CROB answered with parameter_error and READs of the
		// undefined group 255 answered with object_unknown: 10 error
		// responses over 88 s, below exception-storm's 10 per 10 s. The
		// QuickDraw cases here are "unauthorized select/read" ones, which
		// need $DNP3_CLIENT (a policy rule), so nothing is expected.
		want: nil},

	// suricata-verify: captures of the Modbus and DNP3 tests, with the
	// limits of the test's suricata.yaml.
	{capture: sv + "tests__modbus__modbus.pcap",
		want: map[string]string{
			"modbus-diagnostics": `suricata-verify modbus sid 7 "modbus: function 8" (8 alerts) / modbus-keywords sid 5 "modbus.subfunction:4" (force listen-only)`,
			"recon-device-id":    `suricata-verify modbus sid 4 with function_code MEI (2 alerts): FC 43/14 read device identification`,
			"modbus-busy-delay":  `the QuickDraw busy exception delay of the part 1 data this capture was edited from (5 server busy exceptions from 10.0.0.8 in 7 s)`,
		},
		allow: map[string]string{
			"malformed": "edited from ITI modbus.pcap (the QuickDraw part 1 data): the MEI request and read-coils responses carry a byte more than their PDU and one MBAP length exceeds 254 — really malformed",
		}},
	{capture: sv + "tests__dnp3__dnp3-flood__input.pcap", svConfig: "tests__dnp3__dnp3-flood__suricata.yaml",
		want: map[string]string{
			"request-flood": "suricata-verify dnp3-flood sid 2270000 dnp3.flooded (33 requests, no response)",
		}},
	{capture: sv + "tests__dnp3__dnp3-max-objects__input.pcap", svConfig: "tests__dnp3__dnp3-max-objects__suricata.yaml",
		want: map[string]string{
			"malformed":                "suricata-verify dnp3-max-objects sid 2270006 dnp3.too_many_objects (max-objects: 7 from the test's suricata.yaml)",
			"dnp3-disable-unsolicited": "the OpenDNP3 master's start-up DISABLE UNSOLICITED (FC 21), as in dnp3-dnp3_func-alert sid 1",
		},
		allow: map[string]string{
			"dnp3-unsolicited-storm": "the OpenDNP3 outstation reports events unsolicited about once a second (17 in 28 s, 9 within 9.5 s): denser than QuickDraw's storm capture, so by QuickDraw's threshold, tapwatch's default, a storm as well; a plant that reports this often raises rate.max (docs/policy.md)",
		}},
	{capture: sv + "tests__dnp3__dnp3-too-long-reassembly-request__input.pcap", svConfig: "tests__dnp3__dnp3-too-long-reassembly-request__suricata.yaml",
		want: map[string]string{
			"malformed": "suricata-verify dnp3-too-long-reassembly-request sid 2270007 dnp3.too_long_reassembly (65 max-sized transport segments)",
		}},
	{capture: sv + "tests__dnp3__dnp3-eve__input.pcap", svConfig: "tests__dnp3__dnp3-eve__suricata.yaml",
		want: map[string]string{
			"dnp3-disable-unsolicited": `suricata-verify dnp3-dnp3_func-alert sid 1/2 "dnp3_func:21" (1 alert) and dnp3-lua sid 4`,
		},
		allow: map[string]string{
			"dnp3-unsolicited-storm": "the OpenDNP3 outstation reports events unsolicited about once a second (17 in 28 s, 9 within 9.5 s): denser than QuickDraw's storm capture, so by QuickDraw's threshold, tapwatch's default, a storm as well; a plant that reports this often raises rate.max (docs/policy.md)",
		}},
	{capture: sv + "tests__dnp3__dnp3-file-read__input.pcap", svConfig: "tests__dnp3__dnp3-file-read__suricata.yaml",
		want: map[string]string{
			"dnp3-file": `suricata-verify dnp3-file-read: OPEN FILE (25) / CLOSE FILE (26) requests — QuickDraw "DNP3 - File Transfer"`,
		}},
	{capture: sv + "tests__dnp3__dnp3-file-write__input.pcap", svConfig: "tests__dnp3__dnp3-file-write__suricata.yaml",
		want: map[string]string{
			"dnp3-file": `suricata-verify dnp3-file-write: OPEN FILE, WRITE of g70v5 file data, CLOSE FILE — QuickDraw "DNP3 - File Transfer"`,
		}},
	// Decode-only suricata-verify tests of ordinary requests: no alert.
	{capture: sv + "tests__dnp3__dnp3-select-operate__input.pcap", svConfig: "tests__dnp3__dnp3-select-operate__suricata.yaml"}, // SELECT then matching OPERATE: no operate-without-select
	{capture: sv + "tests__dnp3__dnp3-write__input.pcap", svConfig: "tests__dnp3__dnp3-write__suricata.yaml"},
	{capture: sv + "tests__dnp3__dnp3-del-measure__input.pcap", svConfig: "tests__dnp3__dnp3-del-measure__suricata.yaml"},
	{capture: sv + "tests__dnp3__dnp3-en-spon__input.pcap", svConfig: "tests__dnp3__dnp3-en-spon__suricata.yaml"},
}

const (
	zk  = "zeek/testing__btest__Traces__"
	iti = "iti-ics-security-tools/pcaps__"
)

// corpusClean are captures of ordinary traffic: polling, time sync,
// selects with operates, unsolicited reporting.
var corpusClean = []corpusCase{
	{capture: zk + "modbus__modbusSmall.pcap"},
	{capture: zk + "modbus__modbusBig.pcap"},
	{capture: "gopacket/layers__testdata__modbus.pcap"},
	{capture: iti + "ModbusTCP__Modbus__modbus_test.pcap"},
	{capture: iti + "modicon__modicon_test.pcap", allow: map[string]string{
		"malformed": "a Schneider UMAS (FC 90) engineering session: the specification reserves FC 90 and malformed fires on reserved function codes, as docs/policy.md says (see the report: arguably not an anomaly)",
	}},
	{capture: zk + "dnp3__dnp3_read.pcap"},
	{capture: zk + "dnp3__dnp3_rec_time.pcap"},
	{capture: zk + "dnp3__dnp3_write.pcap"},
	{capture: zk + "dnp3__dnp3_select_operate.pcap"},
	{capture: zk + "dnp3__dnp3_link_only.pcap"},
	{capture: zk + "dnp3__dnp3_udp_read.pcap"},
	{capture: zk + "dnp3__dnp3_udp_write.pcap"},
	{capture: iti + "dnp3__read_and_response.pcap"},
	{capture: iti + "dnp3__unsolcited_response_and_confirm.pcap"},
	{capture: iti + "dnp3__select_operate_and_responses.pcap"},
	{capture: iti + "dnp3__directoperate_and_response.pcap"},
	{capture: iti + "dnp3__direct_operate_analog_output.pcap"},
	{capture: iti + "dnp3__write_binary_output.pcap"},
	{capture: iti + "dnp3__write_iin_and_response.pcap"},
	{capture: iti + "dnp3__lan_time_sync.pcap"},
	{capture: iti + "dnp3__serial_time_sync.pcap"},
	{capture: iti + "dnp3__dataset_exchange.pcap"},
	{capture: iti + "dnp3__enable_unsolicited_and_response.pcap"},
	{capture: iti + "dnp3__auth_control_challenge_response.pcap"},
	{capture: "cisagov-icsnpp-dnp3/testing__traces__dnp3_example.pcap"},
}

// corpusGap is a detection that tapwatch misses or gets wrong today.
// stillThere reports whether the alerts of the capture still show it.
type corpusGap struct {
	name, capture, reason string
	stillThere            func(alerts []rules.Alert) bool
}

var corpusGaps = []corpusGap{}

// corpusRecorder keeps every alert.
type corpusRecorder struct{ alerts []rules.Alert }

func (r *corpusRecorder) Alert(a *rules.Alert) { r.alerts = append(r.alerts, *a) }

// corpusReplay replays file through a rules.Engine with the built-in
// detectors only and no alert budget.
func corpusReplay(t *testing.T, file string, cfg dpi.Config) []rules.Alert {
	t.Helper()
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("capture missing from the corpus: %v", err)
	}
	rec := &corpusRecorder{}
	e, err := rules.NewEngine(policy.New(), rec, rules.EngineOptions{MaxAlertsPerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sensor.Replay(context.Background(), capture.OpenFiles(file), sensor.Options{DPI: cfg, Rules: e})
	if err != nil {
		t.Fatalf("replay %s: %v", file, err)
	}
	for _, ferr := range sum.Errors {
		t.Errorf("replay %s: %v", file, ferr)
	}
	return rec.alerts
}

// corpusConfig is the decoder configuration of a suricata-verify test, as
// TestSuricataDNP3 builds it; without a suricata.yaml, the default one.
func corpusConfig(t *testing.T, corpus, svYAML string) dpi.Config {
	t.Helper()
	if svYAML == "" {
		return dpi.Config{}
	}
	return testenv.SuricataConfig(t, filepath.Join(corpus, "suricata-verify", "_oracle", svYAML))
}

// integrityIDs are the detectors of forged and modified messages: those
// of the integrity category, and baseline-new-point.
var integrityIDs = append(rules.IntegrityIDs(), "baseline-new-point")

// integrityExpected are the corpus captures on which integrity detectors
// may fire, and why: something there is wrong.
var integrityExpected = map[string]string{
	"zeek/testing__btest__Traces__modbus__fuzz-72.pcap":       "bit-flipped by a fuzzer: MACs, TTLs and segment bytes differ from packet to packet",
	"iti-ics-security-tools/pcaps__bro__modbus__fuzz-72.pcap": "the same capture",
	// OpenDNP3's conformance tests of unsolicited confirms: the test
	// master confirms an unsolicited response with the wrong sequence
	// number on purpose (frame 20: 2 for the outstation's 1), to check
	// that the outstation ignores it and retries.
	"iti-ics-security-tools/pcaps__dnp3__opendnp3-3__conformance__8.11.2.2__dump.pcap": "a confirm with the wrong sequence number, sent on purpose",
	"iti-ics-security-tools/pcaps__dnp3__opendnp3-3__conformance__8.11.2.3__dump.pcap": "the same test, with counter events",
	// The same for a solicited response: the test master confirms
	// sequence number 9 for the outstation's 2 (frame 66), then 2.
	"iti-ics-security-tools/pcaps__dnp3__opendnp3-3__conformance__8.9.2.2__dump.pcap": "a confirm of a response with the wrong sequence number, sent on purpose",
}

// TestCorpusIntegrityQuiet replays every capture of the public corpus
// (but the labelled attacks), real retransmissions, OpenDNP3 conformance
// dumps and all: the integrity detectors fire only where the capture is
// known to be corrupt (integrityExpected).
func TestCorpusIntegrityQuiet(t *testing.T) {
	corpus := testenv.Corpus(t)
	var files []string
	err := filepath.WalkDir(corpus, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "labelled-attacks" || d.Name() == "_oracle" || d.Name() == "_tshark_oracle") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".pcap") || strings.HasSuffix(path, ".pcapng")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 200 {
		t.Fatalf("%d captures in %s, want the corpus's 203", len(files), corpus)
	}
	fired := map[string]bool{}
	for _, f := range files {
		rel, _ := filepath.Rel(corpus, f)
		for _, a := range corpusReplay(t, f, dpi.Config{}) {
			if !slices.Contains(integrityIDs, a.Rule) {
				continue
			}
			fired[rel] = true
			if _, ok := integrityExpected[rel]; !ok {
				t.Errorf("%s: %s: %s", rel, a.Rule, a.Title)
			}
		}
	}
	for rel, why := range integrityExpected {
		if !fired[rel] {
			t.Errorf("%s no longer raises an integrity alert (%s); remove it from integrityExpected", rel, why)
		}
	}
	t.Logf("%d captures; integrity alerts only on the %d known corrupt ones", len(files), len(integrityExpected))
}
