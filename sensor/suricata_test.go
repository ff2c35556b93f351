package sensor_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/internal/testenv"
	"github.com/tapwatch/tapwatch/sensor"
)

// TestSuricataDNP3 replays the captures of every DNP3 suricata-verify test
// in the corpus (suricata-verify/_oracle/tests__dnp3*__test.yaml) and
// checks tapwatch against the EVE records and alert counts Suricata must
// produce for them.
//
// How Suricata's output lines up with tapwatch's:
//
//   - pcap_cnt. Suricata (IDS mode) parses TCP application data when the
//     other side acknowledges it, so a DNP3 record carries the number of
//     the packet whose ACK first covers the data — not the packet that
//     carried it, which is what Message.Frame holds. The test computes,
//     from the capture's TCP headers, the acknowledging frame of every
//     data frame and matches pcap_cnt against that (ackFrame below).
//     A record's candidates are tapwatch's application messages acked in
//     frame pcap_cnt and sent in the record's direction (dnp3.type request
//     is client to server, response and unsolicited_response server to
//     client).
//   - Confirms. Suricata logs no record for application confirms (fc 0):
//     app-layer-dnp3.c ignores them ("Ignore confirms - for now"). Counts
//     of event_type dnp3 are therefore compared with tapwatch's
//     application messages other than confirms.
//   - Completeness. A filter's match is a complete EVE record (minus
//     timestamp and flow id), so tapwatch must have exactly the objects,
//     points per object and IIN indicators the record lists.
//
// Fields compared (Suricata EVE key → tapwatch):
//
//	dnp3.type                             Message.Dir (request, response, unsolicited_response)
//	dnp3.src, dnp3.dst                    Link.Src, Link.Dst
//	dnp3.control.function_code            Link.Func
//	dnp3.control.dir, pri, fcb, fcv       Link.DIR, PRM, FCB, FCV
//	dnp3.application.complete             !Truncated
//	dnp3.application.function_code        FC
//	dnp3.application.control.fir, fin,
//	  con, uns, sequence                  FIR, FIN, CON, UNS, Seq
//	dnp3.iin.indicators[k]                IIN, see svIINOrder
//	dnp3.application.objects[i].group, variation, qualifier, prefix_code,
//	  range_code, start, stop, count      ObjectHeader fields of the same names
//	                                      (Prefix, Range; Start/Stop are 0 without a range)
//	...objects[i].points[j].*             svPointField
//	src_ip, src_port, dest_ip, dest_port  dpi.Flow Client and Server (Suricata's
//	                                      dnp3 records use the flow's direction)
//	proto                                 dpi.Flow.Transport
//
// Point fields (svPointField): index → Index; state → Value (binary 0/1,
// double-bit 0–3, packed bits), except where Suricata decodes the flags
// octet as one 8-bit state (group 2 variation 1: 0x81 for online and on),
// where it is Flags; value → Value; count → Count for the CROB
// (group 12), Value for counters; delay_ms → Value (group 52);
// timestamp → Time; the flags octet (Flags, HasFlags): online bit 0,
// restart 1, comm_lost 2, remote_forced 3, local_forced 4,
// chatter_filter / rollover / over_range 5, discontinuity / reference_err
// 6, and Suricata's reserved, reserved0, reserved1 are the bits of the
// flags octet that the point's other fields leave unnamed, lowest first;
// CROB (group 12): op_type Code bits 0–3, qu bit 4, cr bit 5, tcc bits 6–7,
// ontime OnTime, offtime OffTime, status_code Status bits 0–6, reserved
// Status bit 7; prefix → Index for index prefixes (prefix codes 1–3), 0
// without a prefix, len(Octets) for object-size prefixes (4–6); size
// (free-format objects) → len(Octets).
//
// Deliberately not compared, because tapwatch keeps them opaque or does
// not model them: the contents of file-control objects (group 70:
// filename, filename_offset, filename_size, file_handle, file_size,
// created, permissions, authentication_key, operational_mode,
// maximum_block_size, request_id, optional_text, block_number, file_data,
// status_code — all inside Point.Octets); flow and TCP bookkeeping in
// event_type flow records; timestamps of the EVE record itself.
//
// Alert checks: rule keywords are evaluated over tapwatch's decoded
// messages by the small predicates in svRules (dnp3_func, dnp3_obj,
// dnp3_data, dnp3.ind); Suricata's engine events map to dnp3.Reason
// (svEventReasons), with the test's suricata.yaml limits carried over to
// dnp3.Config.
func TestSuricataDNP3(t *testing.T) {
	corpus := testenv.Corpus(t)
	dir := filepath.Join(corpus, "suricata-verify")
	tests, err := filepath.Glob(filepath.Join(dir, "_oracle", "tests__dnp3*__test.yaml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no DNP3 suricata-verify tests under %s", dir)
	}
	used := map[string]bool{}
	notCompared := map[string]int{}
	var compared, filters int
	for _, file := range tests {
		prefix := strings.TrimSuffix(filepath.Base(file), "__test.yaml")
		name := prefix[strings.LastIndex(prefix, "__")+2:]
		t.Run(name, func(t *testing.T) {
			st := readSVTest(t, file)
			pcap := svPcap(t, dir, prefix, st.Pcap)
			cfg := testenv.SuricataConfig(t, filepath.Join(dir, "_oracle", prefix+"__suricata.yaml"))
			c := replaySV(t, pcap, cfg)
			r := &svRun{t: t, test: name, c: c, used: used, notCompared: notCompared}
			for i, ch := range st.Checks {
				if ch.Filter == nil {
					t.Logf("check %d is not a filter: not compared", i)
					continue
				}
				filters++
				r.filter(ch.Filter)
			}
			compared += r.compared
		})
	}
	for k, reason := range svAllow {
		if !used[k] {
			t.Errorf("svAllow %q (%s) no longer differs; remove it", k, reason)
		}
	}
	keys := make([]string, 0, len(notCompared))
	for k := range notCompared {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("suricata-verify: %d tests, %d filters, %d field values compared; not compared: %s",
		len(tests), filters, compared, strings.Join(keys, ", "))
}

// svAllow lists justified differences from Suricata, keyed by
// "test pcap_cnt key" (pcap_cnt 0 for filters without one), with the
// reason. Entries that no longer differ fail the test.
var svAllow = map[string]string{}

// svIINOrder is the order in which Suricata's EVE output lists IIN
// indicators (DNP3IndicatorsMap in detect-dnp3.c; Suricata holds the IIN
// as first octet << 8 | second octet). The names are the same as
// dnp3.IINName's, so no renaming is needed; only the bit numbering
// differs: Suricata's 0x0100 << b is tapwatch's bit b of the first octet,
// 1 << b is bit 8+b.
var svIINOrder = []uint16{
	dnp3.IINDeviceRestart, dnp3.IINDeviceTrouble, dnp3.IINLocalControl, dnp3.IINNeedTime,
	dnp3.IINClass3Events, dnp3.IINClass2Events, dnp3.IINClass1Events, dnp3.IINAllStations,
	dnp3.IINReserved1, dnp3.IINReserved2, dnp3.IINConfigCorrupt, dnp3.IINAlreadyExecuting,
	dnp3.IINEventBufferOverflow, dnp3.IINParameterError, dnp3.IINObjectUnknown, dnp3.IINNoFuncCodeSupport,
}

// svIndicators lists the names of the IIN bits set in iin in Suricata's
// order.
func svIndicators(iin uint16) []string {
	var out []string
	for _, bit := range svIINOrder {
		if iin&bit != 0 {
			out = append(out, dnp3.IINName(uint(bits16(bit))))
		}
	}
	return out
}

func bits16(b uint16) int {
	n := 0
	for b > 1 {
		b >>= 1
		n++
	}
	return n
}

// svEventReasons maps Suricata's DNP3 engine events (dnp3-events.rules)
// to the dnp3.Reason tapwatch raises for the same condition.
// len_too_small (2270001) has no exact counterpart: LinkTooShort covers
// the link header, AppTooShort the application header.
var svEventReasons = map[int][]dnp3.Reason{
	2270001: {dnp3.LinkTooShort, dnp3.AppTooShort},
	2270002: {dnp3.BadHeaderCRC},
	2270003: {dnp3.BadBlockCRC},
	2270004: {dnp3.UnknownObject},
	2270005: {dnp3.TooManyObjects}, // too many points: tapwatch counts points over MaxPoints in MorePoints
	2270006: {dnp3.TooManyObjects},
	2270007: {dnp3.FragmentTooLong},
	2270000: {dnp3.RequestFlood}, // dnp3.flooded: more than 32 requests waiting, tapwatch's default too
}

// svRule is a rule keyword evaluated over one decoded message; to says
// which direction the rule's flow keyword pins, "" for both.
type svRule struct {
	to    string // "server", "client" or ""
	match func(m *dnp3.Message) bool
}

func fcIs(fc uint8) func(m *dnp3.Message) bool {
	return func(m *dnp3.Message) bool { return m.FC == fc }
}

func hasObject(g, v uint8) func(m *dnp3.Message) bool {
	return func(m *dnp3.Message) bool {
		return slices.ContainsFunc(m.Objects, func(h dnp3.ObjectHeader) bool { return h.Group == g && h.Variation == v })
	}
}

// dnp3_data inspects the application fragment (application header and
// objects, transport headers and link CRCs removed).
func dataHas(b ...byte) func(m *dnp3.Message) bool {
	return func(m *dnp3.Message) bool { return bytes.Contains(m.Fragment, b) }
}

// dnp3.ind matches responses; Suricata's number is first octet << 8 |
// second octet.
func indSet(want, not uint16) func(m *dnp3.Message) bool {
	return func(m *dnp3.Message) bool {
		if m.Dir == dnp3.Request {
			return false
		}
		v := suricataIIN(m.IIN)
		return (want == 0 && v != 0 || want != 0 && v&want == want) && v&not == 0
	}
}

func suricataIIN(iin uint16) uint16 { return iin<<8 | iin>>8 }

// svRules are the test rules of the keyword tests, transcribed from their
// test.rules files, by test and signature id.
var svRules = map[string]map[int]svRule{
	"dnp3-dnp3_func-alert": {
		1: {"", fcIs(21)},
		2: {"server", fcIs(21)},
		3: {"client", fcIs(21)},
	},
	"dnp3-dnp3_obj-alert": {
		1: {"", hasObject(22, 1)},
		2: {"", hasObject(29, 1)},
	},
	"dnp3-dnp3_obj-alert-02": {
		1: {"", hasObject(22, 1)},
		2: {"", hasObject(29, 1)},
	},
	"dnp3-dnp3_data-alert": {
		1: {"client", func(m *dnp3.Message) bool {
			return m.FC == dnp3.FuncUnsolicitedResponse && dataHas(0x02, 0x01, 0x28, 0x01, 0x00)(m)
		}},
		2: {"", dataHas(0x02, 0x01, 0x28, 0x01, 0x00)},
		3: {"server", dataHas(0x02, 0x01, 0x28, 0x01, 0x00)},
		4: {"client", dataHas(0x02, 0x01, 0x28, 0x01, 0x00)},
		5: {"server", dataHas(0x3c, 0x04, 0x06, 0x3c)},
		6: {"client", dataHas(0x3c, 0x04, 0x06, 0x3c)},
		7: {"", dataHas(0x15, 0xab)},
	},
	"dnp3-ind-keyword": {
		1: {"", indSet(0x8000, 0)},      // device_restart
		2: {"", indSet(0x8000, 0)},      // 0x8000
		3: {"", indSet(0, 0)},           // !0
		4: {"", indSet(0x8000, 0x1000)}, // device_restart,!need_time
		5: {"", indSet(0x1000, 0)},      // need_time
	},
}

// svTest is the part of a suricata-verify test.yaml the test reads.
type svTest struct {
	Pcap   string `yaml:"pcap"`
	Checks []struct {
		Filter *svFilter `yaml:"filter"`
	} `yaml:"checks"`
}

type svFilter struct {
	Count    int            `yaml:"count"`
	Requires map[string]any `yaml:"requires"`
	Match    map[string]any `yaml:"match"`
}

func readSVTest(t *testing.T, file string) svTest {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var st svTest
	if err := yaml.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return st
}

// svPcap finds a test's capture: its own input.pcap, or the input.pcap of
// the test its pcap key points to ("../dnp3-eve/input.pcap").
func svPcap(t *testing.T, dir, prefix, key string) string {
	t.Helper()
	want := filepath.Join(dir, prefix+"__input.pcap")
	if key != "" {
		other := filepath.Base(filepath.Dir(key))
		m, _ := filepath.Glob(filepath.Join(dir, "tests__*"+other+"__"+filepath.Base(key)))
		if len(m) != 1 {
			t.Fatalf("pcap %q of %s: found %v", key, prefix, m)
		}
		want = m[0]
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("capture of %s: %v", prefix, err)
	}
	return want
}

// svMsg is a copy of one decoded DNP3 message with its packet context.
type svMsg struct {
	m          dnp3.Message
	flow       dpi.Flow
	fromServer bool
	ackFrame   uint64 // the frame whose ACK first covers m.Frame; m.Frame when none
	// detectFrame is the first frame after ackFrame sent the way m was:
	// Suricata parses data when the other side acknowledges it, and runs
	// the rules of the data's direction on the next packet sent that way,
	// so an alert on m may carry either frame number.
	detectFrame uint64
}

// logged reports whether Suricata writes an EVE dnp3 record for x.
func (x *svMsg) logged() bool {
	return x.m.Kind == dnp3.KindApplication && x.m.FC != dnp3.FuncConfirm
}

type svCapture struct {
	name     string
	linkType layers.LinkType
	msgs     []*svMsg // every message, application or not
}

type svSink struct{ msgs []*svMsg }

func (s *svSink) Message(f *dpi.Flow, from dpi.Side, msg any) {
	m, ok := msg.(*dnp3.Message)
	if !ok {
		return
	}
	fromServer := from == dpi.FromServer
	m.DecodePoints()
	x := &svMsg{m: *m, flow: *f, fromServer: fromServer}
	x.m.Objects = slices.Clone(m.Objects)
	x.m.Points = slices.Clone(m.Points)
	for i := range x.m.Points {
		x.m.Points[i].Octets = slices.Clone(m.Points[i].Octets)
	}
	x.m.Fragment = slices.Clone(m.Fragment)
	x.m.Raw = slices.Clone(m.Raw)
	s.msgs = append(s.msgs, x)
}

func replaySV(t *testing.T, pcap string, cfg dpi.Config) *svCapture {
	t.Helper()
	var s svSink
	sum, err := sensor.Replay(context.Background(), capture.OpenFiles(pcap), sensor.Options{DPI: cfg, Ops: &s})
	if err != nil {
		t.Fatalf("%s: %v", pcap, err)
	}
	for _, e := range sum.Errors {
		t.Errorf("%s: %v", pcap, e)
	}
	c := &svCapture{name: filepath.Base(pcap), msgs: s.msgs}
	acks, dirs := ackFrames(t, pcap, &c.linkType)
	for _, x := range c.msgs {
		x.ackFrame = x.m.Frame
		if a, ok := acks[x.m.Frame]; ok {
			x.ackFrame = a
		}
		x.detectFrame = x.ackFrame
		for f := x.ackFrame + 1; f < uint64(len(dirs)); f++ {
			if dirs[f] != "" && dirs[f] == dirs[x.m.Frame] {
				x.detectFrame = f
				break
			}
		}
	}
	return c
}

// ackFrames maps every TCP frame that carries data to the first later
// frame of the opposite direction that acknowledges all of it, and
// returns the direction of every TCP frame (indexed by frame number).
func ackFrames(t *testing.T, pcap string, lt *layers.LinkType) (map[uint64]uint64, []string) {
	t.Helper()
	type pending struct {
		frame uint64
		end   uint32
	}
	waiting := map[string][]pending{} // by sending direction
	out := map[uint64]uint64{}
	dirs := []string{""}
	src := capture.OpenFiles(pcap)
	var ci capture.Info
	for {
		data, err := src.ReadPacket(&ci)
		if err != nil {
			break
		}
		*lt = layers.LinkType(ci.LinkType)
		for uint64(len(dirs)) <= ci.Frame {
			dirs = append(dirs, "")
		}
		p := gopacket.NewPacket(data, layers.LinkType(ci.LinkType), gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		nl, tl := p.NetworkLayer(), p.TransportLayer()
		tcp, ok := tl.(*layers.TCP)
		if nl == nil || !ok {
			continue
		}
		nf := nl.NetworkFlow()
		dirKey := fmt.Sprintf("%v:%d>%v:%d", nf.Src(), tcp.SrcPort, nf.Dst(), tcp.DstPort)
		revKey := fmt.Sprintf("%v:%d>%v:%d", nf.Dst(), tcp.DstPort, nf.Src(), tcp.SrcPort)
		dirs[ci.Frame] = dirKey
		if tcp.ACK {
			q := waiting[revKey]
			for len(q) > 0 && int32(tcp.Ack-q[0].end) >= 0 {
				out[q[0].frame] = ci.Frame
				q = q[1:]
			}
			waiting[revKey] = q
		}
		if n := len(tcp.Payload); n > 0 {
			waiting[dirKey] = append(waiting[dirKey], pending{ci.Frame, tcp.Seq + uint32(n)})
		}
	}
	return out, dirs
}

// svRun checks the filters of one test.
type svRun struct {
	t           *testing.T
	test        string
	c           *svCapture
	used        map[string]bool
	notCompared map[string]int
	compared    int
}

func (r *svRun) allowed(pcapCnt uint64, key string) bool {
	k := fmt.Sprintf("%s %d %s", r.test, pcapCnt, key)
	if _, ok := svAllow[k]; ok {
		r.used[k] = true
		return true
	}
	return false
}

func (r *svRun) filter(f *svFilter) {
	m := f.Match
	et, _ := m["event_type"].(string)
	_, isAlert := m["alert.signature_id"]
	switch {
	case isAlert:
		r.alert(f)
	case et == "dnp3":
		if _, ok := m["pcap_cnt"]; ok {
			r.record(f)
		} else {
			r.count(f)
		}
	default:
		r.notCompared["event_type "+et] += f.Count
	}
}

// svDiff is one field where tapwatch differs from Suricata.
type svDiff struct{ key, want, got string }

// diffs compares every key of match that tapwatch models with x; keys in
// svAllow are skipped.
func (r *svRun) diffs(pcapCnt uint64, match map[string]any, x *svMsg, count bool) []svDiff {
	var out []svDiff
	keys := make([]string, 0, len(match))
	for k := range match {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	objs, points, inds := -1, map[int]int{}, -1
	for _, k := range keys {
		want := match[k]
		if i, j, ok := svIndex2(k); ok {
			objs = max(objs, i)
			points[i] = max(points[i], j)
		} else if i, ok := svIndex1(k); ok {
			objs = max(objs, i)
		} else if i, ok := svIndicator(k); ok {
			inds = max(inds, i)
		}
		got, why := svField(x, k, match)
		if why != "" {
			if count {
				r.notCompared[svShape(k)+" ("+why+")"]++
			}
			continue
		}
		if count {
			r.compared++
		}
		if !svEqual(want, got) && !r.allowed(pcapCnt, k) {
			out = append(out, svDiff{k, fmt.Sprint(want), fmt.Sprint(got)})
		}
	}
	// The record is complete: tapwatch must have nothing more.
	if n := len(x.m.Objects); n != objs+1 && !r.allowed(pcapCnt, "objects.length") {
		out = append(out, svDiff{"objects.length", strconv.Itoa(objs + 1), strconv.Itoa(n)})
	}
	for i := 0; i <= objs && i < len(x.m.Objects); i++ {
		want := 0
		if j, ok := points[i]; ok {
			want = j + 1
		}
		k := fmt.Sprintf("objects[%d].points.length", i)
		if n := x.m.Objects[i].NumPoints; n != want && !r.allowed(pcapCnt, k) {
			out = append(out, svDiff{k, strconv.Itoa(want), strconv.Itoa(n)})
		}
	}
	if x.m.Dir != dnp3.Request {
		if n := len(svIndicators(x.m.IIN)); n != inds+1 && !r.allowed(pcapCnt, "iin.indicators.length") {
			out = append(out, svDiff{"iin.indicators.length", strconv.Itoa(inds + 1), strconv.Itoa(n)})
		}
	}
	return out
}

// record checks a filter that names one EVE dnp3 record by pcap_cnt.
func (r *svRun) record(f *svFilter) {
	t := r.t
	pcapCnt := svUint(f.Match["pcap_cnt"])
	typ, _ := f.Match["dnp3.type"].(string)
	var cands []*svMsg
	for _, x := range r.c.msgs {
		if x.logged() && x.ackFrame == pcapCnt && (typ == "" || x.fromServer == (typ != "request")) {
			cands = append(cands, x)
		}
	}
	var best []svDiff
	var bestMsg *svMsg
	n := 0
	for i, x := range cands {
		d := r.diffs(pcapCnt, f.Match, x, i == 0)
		if len(d) == 0 {
			n++
		}
		if bestMsg == nil || len(d) < len(best) {
			best, bestMsg = d, x
		}
	}
	if n == f.Count {
		return
	}
	if bestMsg == nil {
		t.Errorf("%s pcap_cnt %d: Suricata logs %d %s record(s), tapwatch decoded no message acked by that frame",
			r.test, pcapCnt, f.Count, typ)
		return
	}
	if len(best) == 0 {
		t.Errorf("%s pcap_cnt %d: Suricata logs %d matching %s record(s), tapwatch %d",
			r.test, pcapCnt, f.Count, typ, n)
		return
	}
	for _, d := range best {
		t.Errorf("%s pcap_cnt %d (tapwatch frame %d): %s: Suricata %s, tapwatch %s",
			r.test, pcapCnt, bestMsg.m.Frame, d.key, d.want, d.got)
	}
}

// count checks a filter without pcap_cnt: how many records match.
func (r *svRun) count(f *svFilter) {
	t := r.t
	n := 0
	for _, x := range r.c.msgs {
		if !x.logged() {
			continue
		}
		ok := true
		for k, want := range f.Match {
			got, why := svField(x, k, f.Match)
			if why == "" && !svEqual(want, got) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	r.compared++
	if n != f.Count && !r.allowed(0, svMatchString(f.Match)) {
		t.Errorf("%s: Suricata logs %d records with %s, tapwatch decoded %d (application messages other than confirms)",
			r.test, f.Count, svMatchString(f.Match), n)
	}
}

// alert checks an alert-count filter against the equivalent rule or
// anomaly.
func (r *svRun) alert(f *svFilter) {
	t := r.t
	sid := int(svUint(f.Match["alert.signature_id"]))
	desc := fmt.Sprintf("%s sid %d", r.test, sid)
	for k, v := range f.Match {
		switch {
		case k == "packet_info.linktype_name":
			// Suricata names the pcap link type; EN10MB is Ethernet.
			got := map[layers.LinkType]string{layers.LinkTypeEthernet: "EN10MB", layers.LinkTypeNull: "NULL", layers.LinkTypeRaw: "RAW"}[r.c.linkType]
			r.compared++
			if got != v {
				t.Errorf("%s: %s: Suricata %v, tapwatch read link type %v", desc, k, v, r.c.linkType)
			}
		case k == "app_proto":
			if v != "dnp3" {
				t.Errorf("%s: app_proto %v", desc, v)
			}
		}
	}
	var hits []*svMsg
	if reasons, ok := svEventReasons[sid]; ok {
		for _, x := range r.c.msgs {
			for _, reason := range reasons {
				if x.m.Anomalies&(1<<reason) != 0 {
					hits = append(hits, x)
					break
				}
			}
		}
		desc += fmt.Sprintf(" (anomaly %v)", reasons)
	} else if rule, ok := svRules[r.test][sid]; ok {
		for _, x := range r.c.msgs {
			if !x.logged() || rule.to == "server" && x.fromServer || rule.to == "client" && !x.fromServer || !rule.match(&x.m) {
				continue
			}
			if inds, ok := f.Match["dnp3.response.iin.indicators[0]"]; ok {
				got := svIndicators(x.m.IIN)
				if len(got) == 0 || got[0] != inds {
					continue
				}
			}
			hits = append(hits, x)
		}
	} else {
		t.Logf("%s: no tapwatch equivalent (the rule is Lua or not transcribed into svRules): not compared", desc)
		r.notCompared[fmt.Sprintf("alert %s sid %d", r.test, sid)]++
		return
	}
	r.compared++
	var frames []string
	for _, x := range hits {
		frames = append(frames, fmt.Sprintf("%d (acked %d, %d segments)", x.m.Frame, x.ackFrame, x.m.Segments))
	}
	if len(hits) != f.Count && !r.allowed(0, fmt.Sprintf("sid %d", sid)) {
		t.Errorf("%s: Suricata alerts %d time(s), tapwatch's equivalent fires %d time(s), at frames %v",
			desc, f.Count, len(hits), frames)
		return
	}
	if want, ok := f.Match["pcap_cnt"]; ok {
		w := svUint(want)
		for _, x := range hits {
			if x.ackFrame != w && x.detectFrame != w {
				t.Errorf("%s: Suricata alerts at pcap_cnt %d, tapwatch at frame %d (acked %d, next packet that way %d)",
					desc, w, x.m.Frame, x.ackFrame, x.detectFrame)
			}
		}
	}
	if len(hits) > 0 {
		t.Logf("%s: %d alert(s), tapwatch at frames %s", desc, f.Count, strings.Join(frames, ", "))
	}
}

var (
	svObjRE   = regexp.MustCompile(`^dnp3\.application\.objects\[(\d+)\]\.(\w+)$`)
	svPointRE = regexp.MustCompile(`^dnp3\.application\.objects\[(\d+)\]\.points\[(\d+)\]\.(\w+)$`)
	svIndRE   = regexp.MustCompile(`^dnp3\.iin\.indicators\[(\d+)\]$`)
	svNumRE   = regexp.MustCompile(`\[\d+\]`)
)

func svIndex1(k string) (int, bool) {
	m := svObjRE.FindStringSubmatch(k)
	if m == nil {
		return 0, false
	}
	i, _ := strconv.Atoi(m[1])
	return i, true
}

func svIndex2(k string) (int, int, bool) {
	m := svPointRE.FindStringSubmatch(k)
	if m == nil {
		return 0, 0, false
	}
	i, _ := strconv.Atoi(m[1])
	j, _ := strconv.Atoi(m[2])
	return i, j, true
}

func svIndicator(k string) (int, bool) {
	m := svIndRE.FindStringSubmatch(k)
	if m == nil {
		return 0, false
	}
	i, _ := strconv.Atoi(m[1])
	return i, true
}

// svShape is a key without its indices, for the summary.
func svShape(k string) string { return svNumRE.ReplaceAllString(k, "[]") }

// svField returns tapwatch's value for one EVE key, or why it is not
// compared. match is the whole record (point fields need their siblings).
func svField(x *svMsg, k string, match map[string]any) (any, string) {
	m := &x.m
	switch k {
	case "event_type":
		return "dnp3", ""
	case "pcap_cnt":
		return x.ackFrame, ""
	case "proto":
		return map[dpi.Transport]string{dpi.TCP: "TCP", dpi.UDP: "UDP"}[x.flow.Transport], ""
	case "src_ip":
		return x.flow.Client.Addr().String(), ""
	case "src_port":
		return x.flow.Client.Port(), ""
	case "dest_ip":
		return x.flow.Server.Addr().String(), ""
	case "dest_port":
		return x.flow.Server.Port(), ""
	case "dnp3.type":
		return map[dnp3.Direction]string{dnp3.Request: "request", dnp3.Response: "response", dnp3.Unsolicited: "unsolicited_response"}[m.Dir], ""
	case "dnp3.src":
		return m.Link.Src, ""
	case "dnp3.dst":
		return m.Link.Dst, ""
	case "dnp3.control.function_code":
		return m.Link.Func, ""
	case "dnp3.control.dir":
		return m.Link.DIR, ""
	case "dnp3.control.pri":
		return m.Link.PRM, ""
	case "dnp3.control.fcb":
		return m.Link.FCB, ""
	case "dnp3.control.fcv":
		return m.Link.FCV, ""
	case "dnp3.application.complete":
		return !m.Truncated, ""
	case "dnp3.application.function_code":
		return m.FC, ""
	case "dnp3.application.control.fir":
		return m.FIR, ""
	case "dnp3.application.control.fin":
		return m.FIN, ""
	case "dnp3.application.control.con":
		return m.CON, ""
	case "dnp3.application.control.uns":
		return m.UNS, ""
	case "dnp3.application.control.sequence":
		return m.Seq, ""
	}
	if k, ok := svIndicator(k); ok {
		ind := svIndicators(m.IIN)
		if k >= len(ind) {
			return "(none)", ""
		}
		return ind[k], ""
	}
	if i, j, ok := svIndex2(k); ok {
		if i >= len(m.Objects) {
			return "(no object)", ""
		}
		h := m.Objects[i]
		if j >= h.NumPoints {
			return "(no point)", ""
		}
		name := k[strings.LastIndex(k, ".")+1:]
		prefix := fmt.Sprintf("dnp3.application.objects[%d].points[%d].", i, j)
		var siblings []string
		for s := range match {
			if strings.HasPrefix(s, prefix) {
				siblings = append(siblings, s[len(prefix):])
			}
		}
		return svPointField(h, &m.Points[h.FirstPoint+j], name, siblings)
	}
	if m2 := svObjRE.FindStringSubmatch(k); m2 != nil {
		i, _ := strconv.Atoi(m2[1])
		if i >= len(m.Objects) {
			return "(no object)", ""
		}
		h := m.Objects[i]
		switch m2[2] {
		case "group":
			return h.Group, ""
		case "variation":
			return h.Variation, ""
		case "qualifier":
			return h.Qualifier, ""
		case "prefix_code":
			return h.Prefix, ""
		case "range_code":
			return h.Range, ""
		case "start":
			return h.Start, ""
		case "stop":
			return h.Stop, ""
		case "count":
			return h.Count, ""
		}
	}
	return nil, "not modelled"
}

// Bits of the flags octet of inputs, outputs, counters and analogs
// (IEEE 1815-2012 Annex A).
var svFlagBits = map[string]uint{
	"online": 0, "restart": 1, "comm_lost": 2, "remote_forced": 3, "local_forced": 4,
	"chatter_filter": 5, "rollover": 5, "over_range": 5,
	"discontinuity": 6, "reference_err": 6,
}

// svPointField maps one of Suricata's point fields to tapwatch's Point.
func svPointField(h dnp3.ObjectHeader, p *dnp3.Point, name string, siblings []string) (any, string) {
	switch name {
	case "index":
		return p.Index, ""
	case "prefix":
		switch {
		case h.Prefix == 0:
			return 0, ""
		case h.Prefix <= 3:
			return p.Index, ""
		default:
			return len(p.Octets), ""
		}
	case "size":
		return len(p.Octets), ""
	case "state":
		// Suricata decodes some variations with a flags octet (group 2
		// variation 1) as one 8-bit "state": the whole octet, 0x81 for
		// online and on. Where the record names no flag bit beside it,
		// state is the flags octet.
		if p.HasFlags && !slices.ContainsFunc(siblings, func(s string) bool { _, ok := svFlagBits[s]; return ok }) {
			return p.Flags, ""
		}
		return p.Value, ""
	case "value", "delay_ms":
		return p.Value, ""
	case "timestamp":
		return p.Time, ""
	}
	if h.Group == 70 {
		return nil, "file-control object fields are opaque Octets"
	}
	if h.Group == 12 {
		switch name {
		case "op_type":
			return p.Code & 0x0f, ""
		case "qu":
			return p.Code >> 4 & 1, ""
		case "cr":
			return p.Code >> 5 & 1, ""
		case "tcc":
			return p.Code >> 6, ""
		case "count":
			return p.Count, ""
		case "ontime":
			return p.OnTime, ""
		case "offtime":
			return p.OffTime, ""
		case "status_code":
			return p.Status & 0x7f, ""
		case "reserved":
			return p.Status >> 7, ""
		}
		return nil, "not modelled"
	}
	if name == "count" {
		return p.Value, ""
	}
	bit, ok := svFlagBits[name]
	if !ok && strings.HasPrefix(name, "reserved") {
		// Reserved bits are the ones no other field of the point names.
		used := uint8(0)
		for _, s := range siblings {
			if b, ok := svFlagBits[s]; ok {
				used |= 1 << b
			}
			if s == "state" {
				switch h.Group {
				case 3, 4:
					used |= 0xc0
				default:
					used |= 0x80
				}
			}
		}
		if !slices.ContainsFunc(siblings, func(s string) bool { return s == "value" || s == "count" || s == "state" }) {
			return nil, "not modelled"
		}
		var free []uint
		for b := uint(0); b < 8; b++ {
			if used&(1<<b) == 0 {
				free = append(free, b)
			}
		}
		n := 0
		if name != "reserved" {
			n, _ = strconv.Atoi(strings.TrimPrefix(name, "reserved"))
		}
		if n >= len(free) {
			return nil, "not modelled"
		}
		bit, ok = free[n], true
	}
	if !ok {
		return nil, "not modelled"
	}
	if !p.HasFlags {
		return "(no flags)", ""
	}
	return p.Flags >> bit & 1, ""
}

// svEqual compares a YAML value with tapwatch's.
func svEqual(want, got any) bool {
	if ws, ok := want.(string); ok {
		gs, ok := got.(string)
		return ok && ws == gs
	}
	if wb, ok := want.(bool); ok {
		gb, ok := got.(bool)
		return ok && wb == gb
	}
	w, ok1 := svFloat(want)
	g, ok2 := svFloat(got)
	if !ok1 || !ok2 {
		return false
	}
	return w == g || math.Abs(w-g) <= 1e-6*math.Max(math.Abs(w), math.Abs(g))
}

func svFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint16:
		return float64(v), true
	case uint8:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

func svUint(v any) uint64 {
	f, _ := svFloat(v)
	return uint64(f)
}

func svMatchString(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%v", k, m[k])
	}
	return b.String()
}
