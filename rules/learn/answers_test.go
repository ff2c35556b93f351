package learn

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
)

// plant writes one Modbus and one DNP3 conversation, with answers that
// answer can change: mbAnswer(read) is the PDU answering a read of
// holding registers at addr, and class0 the objects answering a class 0
// read.
type plant struct {
	mbAnswer func(addr uint16) []byte
	class0   [][]byte
}

func gen(t *testing.T, p plant, rounds int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{Step: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ep := func(n byte, port uint16) pcapgen.Endpoint {
		return pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, n}, IP: netip.AddrFrom4([4]byte{10, 10, 1, n}), Port: port}
	}
	mb, err := pcapgen.NewTCPConn(w, ep(10, 40000), ep(20, 502), 1, 2)
	if err == nil {
		_, err = mb.Handshake()
	}
	var dn *pcapgen.DNP3Conn
	if err == nil {
		var c *pcapgen.TCPConn
		if c, err = pcapgen.NewTCPConn(w, ep(11, 40001), ep(40, 20000), 3, 4); err == nil {
			_, err = c.Handshake()
			dn = pcapgen.NewDNP3TCP(c, 1, 10)
		}
	}
	for i := 0; i < rounds && err == nil; i++ {
		for j, addr := range []uint16{0, 100} {
			tid := uint16(2*i + j + 1)
			if _, err = mb.Client(pcapgen.MBAP(tid, 1, []byte{3, byte(addr >> 8), byte(addr), 0, 2})); err == nil {
				_, err = mb.Server(pcapgen.MBAP(tid, 1, p.mbAnswer(addr)))
			}
		}
		ctl := pcapgen.AppControl(true, true, false, false, uint8(i))
		if err == nil {
			_, err = dn.Master(pcapgen.AppRequest(ctl, pcapgen.DNP3Read, pcapgen.ClassData(0)))
		}
		if err == nil {
			_, err = dn.Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3Response, 0, p.class0...))
		}
		w.Advance(time.Second)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func replayTo(t *testing.T, data []byte, h sensor.OpsSink) {
	t.Helper()
	src, err := capture.NewFile(bytes.NewReader(data), "plant.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sensor.Replay(context.Background(), src, sensor.Options{Rules: h}); err != nil {
		t.Fatal(err)
	}
}

// normalPlant: holding registers 0-1 answered with data, 100-101 refused
// (illegal data address); binary inputs 0-2 and analog inputs 0-3 in
// every class 0 answer.
var normalPlant = plant{
	mbAnswer: func(addr uint16) []byte {
		if addr == 100 {
			return []byte{0x83, 2}
		}
		return []byte{3, 4, 0, 1, 0, 2}
	},
	class0: [][]byte{pcapgen.BinaryInputs(0, 1, 0x81, 1), pcapgen.AnalogInputs(0, 1, 5, 6, 7, 8)},
}

// TestLearnAnswers: responses teach what each device answered and
// reported; the baseline file holds it, reads back the same, and
// baseline-new-point reports a point that appears or disappears, and
// nothing on the plant as learned.
func TestLearnAnswers(t *testing.T) {
	l := New(Options{})
	replayTo(t, gen(t, normalPlant, 5), l)
	p := l.Baseline(0.1)
	text := format(p)
	for _, want := range []string{
		`answered: {holding_registers: [0, 1]}`,
		`- {group: "1/2", points: "0-2"}  # binary_input`,
		`- {group: "30/1", points: "0-3"}  # analog_input`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("learned baseline lacks %q:\n%s", want, text)
		}
	}
	q, err := policy.Parse([]byte(text), "baseline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if format(q) != text {
		t.Fatalf("the baseline does not read back the same:\n%s\n---\n%s", text, format(q))
	}
	cases := []struct {
		name  string
		p     plant
		title string // of the only baseline-new-point alert; "" for none
	}{
		{"as learned", normalPlant, ""},
		{"a refused address answered", plant{mbAnswer: func(uint16) []byte { return []byte{3, 4, 0, 1, 0, 2} }, class0: normalPlant.class0},
			"answered a read of holding_registers 100-101 from 10.10.1.10 with data"},
		{"an answered address refused", plant{mbAnswer: func(uint16) []byte { return []byte{0x83, 2} }, class0: normalPlant.class0},
			"refuses a read of holding_registers 0-1 from 10.10.1.10 (illegal data address)"},
		{"a binary input inserted", plant{mbAnswer: normalPlant.mbAnswer, class0: [][]byte{pcapgen.BinaryInputs(0, 1, 0x81, 1, 1), normalPlant.class0[1]}},
			"reports points 0-3 of 1/2 to 10.10.1.11"},
		{"a binary input deleted", plant{mbAnswer: normalPlant.mbAnswer, class0: [][]byte{pcapgen.BinaryInputs(0, 1, 0x81), normalPlant.class0[1]}},
			"answers a class 0 read from 10.10.1.11 with 2 of the 3 points of 1/2 it reported while learning (0-2)"},
		{"an event of a learned point", plant{mbAnswer: normalPlant.mbAnswer, class0: append([][]byte{pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 2, Flags: 0x81, Time: 5})}, normalPlant.class0...)},
			""},
		{"an event of a point never seen", plant{mbAnswer: normalPlant.mbAnswer, class0: append([][]byte{pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 7, Flags: 0x81, Time: 5})}, normalPlant.class0...)},
			"reports an event of point 7 (2/2) to 10.10.1.11: no such point of group 1"},
		{"a new object", plant{mbAnswer: normalPlant.mbAnswer, class0: append([][]byte{pcapgen.AnalogInputsFloat(0, 1, 1.5)}, normalPlant.class0...)},
			"reports object 30/5"},
	}
	// A response between other link addresses (the outstation's 11
	// to the master's 1) does not fit the conversation.
	t.Run("other link addresses", func(t *testing.T) {
		var rec recorder
		e, err := rules.NewEngine(q, &rec, rules.EngineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		replayTo(t, genLinks(t, 11), e)
		if got := rec.ids(); !strings.Contains(got, "baseline-new-address") {
			t.Errorf("alerts %s, want baseline-new-address", got)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec recorder
			e, err := rules.NewEngine(q, &rec, rules.EngineOptions{})
			if err != nil {
				t.Fatal(err)
			}
			replayTo(t, gen(t, c.p, 3), e)
			var titles []string
			for _, a := range rec.alerts {
				if a.Rule == "baseline-new-point" && !a.Summary {
					titles = append(titles, a.Title)
				}
			}
			switch {
			case c.title == "" && len(rec.alerts) > 0:
				t.Errorf("alerts %s, want none", rec.ids())
			case c.title != "" && (len(titles) != 1 || !strings.Contains(titles[0], c.title)):
				t.Errorf("alerts %q, want one with %q (all: %s)", titles, c.title, rec.ids())
			}
		})
	}
}

// genLinks writes a class 0 read from link address 1 to 10 answered
// from link address from.
func genLinks(t *testing.T, from uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{Step: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 11}, IP: netip.AddrFrom4([4]byte{10, 10, 1, 11}), Port: 40001}
	o := pcapgen.Endpoint{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 40}, IP: netip.AddrFrom4([4]byte{10, 10, 1, 40}), Port: 20000}
	c, err := pcapgen.NewTCPConn(w, m, o, 3, 4)
	if err == nil {
		_, err = c.Handshake()
	}
	ctl := pcapgen.AppControl(true, true, false, false, 1)
	if err == nil {
		_, err = pcapgen.NewDNP3TCP(c, 1, 10).Master(pcapgen.AppRequest(ctl, pcapgen.DNP3Read, pcapgen.ClassData(0)))
	}
	if err == nil {
		_, err = pcapgen.NewDNP3TCP(c, 1, from).Outstation(pcapgen.AppResponse(ctl, pcapgen.DNP3Response, 0, normalPlant.class0...))
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLearnSparseClass0: an outstation whose points are not contiguous
// answers a class 0 read with one header per run of them; together they
// cover what was learned, and nothing is reported.
func TestLearnSparseClass0(t *testing.T) {
	sparse := plant{mbAnswer: normalPlant.mbAnswer,
		class0: [][]byte{pcapgen.AnalogInputs(0, 1, 5, 6), pcapgen.AnalogInputs(20, 1, 7, 8)}}
	l := New(Options{})
	replayTo(t, gen(t, sparse, 4), l)
	q, err := policy.Parse([]byte(format(l.Baseline(0.1))), "baseline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]plant{
		"as learned": sparse,
		"a run lost": {mbAnswer: sparse.mbAnswer, class0: sparse.class0[:1]},
	} {
		var rec recorder
		e, err := rules.NewEngine(q, &rec, rules.EngineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		replayTo(t, gen(t, p, 3), e)
		got := rec.ids()
		if want := map[string]string{"as learned": "", "a run lost": "baseline-new-point"}[name]; !strings.Contains(got, want) || want == "" && got != "" {
			t.Errorf("%s: alerts %q, want %q", name, got, want)
		}
	}
}

// TestResponseLinksWithoutNewPoint: the link addresses of a response are
// baseline-new-address's, whether baseline-new-point is on or not.
func TestResponseLinksWithoutNewPoint(t *testing.T) {
	l := New(Options{})
	replayTo(t, gen(t, normalPlant, 3), l)
	p := l.Baseline(0.1)
	for i := range p.Detectors {
		if p.Detectors[i].ID == "baseline-new-point" {
			p.Detectors[i].Enabled = false
		}
	}
	q, err := policy.Parse([]byte(format(p)), "baseline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := q.Detector("baseline-new-point"); !ok || s.Enabled {
		t.Fatalf("baseline-new-point: %+v", s)
	}
	var rec recorder
	e, err := rules.NewEngine(q, &rec, rules.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replayTo(t, genLinks(t, 11), e)
	if got := rec.ids(); !strings.Contains(got, "baseline-new-address") || strings.Contains(got, "baseline-new-point") {
		t.Errorf("alerts %s, want baseline-new-address alone", got)
	}
}
