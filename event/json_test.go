package event

import (
	"encoding/json"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestAlertAppendJSON: the JSON of an alert, field for field in the
// order of the struct, with times in nine digits of nanoseconds.
func TestAlertAppendJSON(t *testing.T) {
	want := `{"v":1,"kind":"alert","sensor":"tap1","site":"plant1","seq":41,"ts":"2025-03-14T09:26:53.123456789Z",` +
		`"id":37,"rule":"pump3-setpoint","severity":"critical","category":"policy","title":"Pump-3 setpoint out of range","attack":["T0836","T0855"],` +
		`"proto":"modbus","transport":"rtu_over_tcp","src":{"ip":"10.10.1.99","port":51000,"mac":"02:00:0a:0a:01:63"},"dst":{"ip":"10.10.1.20","port":502},"vlan":20,` +
		`"unit":1,"fc":16,"fc_name":"write_multiple_registers","addr":{"lo":5,"hi":6},"values":[500,-1.5],"expected":"100..200",` +
		`"count":3,"first":"2025-03-14T09:25:23.123456790Z","last":"2025-03-14T09:26:53.123456789Z","frame":1234,"evidence":"0110000500020401f4fffe"}`
	if got := string(sampleAlert().AppendJSON(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	a := sampleDNP3Alert()
	a.FCs = []uint16{3, 13}
	a.TS = t2.In(time.FixedZone("CET", 3600)) // written in UTC
	want = `{"v":1,"kind":"alert","sensor":"tap1","site":"plant1","seq":42,"ts":"2025-03-14T09:26:51.000000000Z",` +
		`"id":42,"rule":"dnp3-restart","severity":"high","category":"dangerous-function","title":"DNP3 cold restart","attack":["T0816"],` +
		`"proto":"dnp3","src":{"ip":"10.10.2.5","port":40122},"dst":{"ip":"10.10.2.20","port":20000},"dnp3_src":1,"dnp3_dst":10,"fc":13,"fc_name":"cold_restart","fcs":[3,13],` +
		`"count":1,"first":"2025-03-14T09:26:53.123456789Z","last":"2025-03-14T09:26:53.123456789Z","evidence":"c30d"}`
	if got := string(a.AppendJSON(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Appended, not written over.
	if got := string(a.AppendJSON([]byte("x"))); got != "x"+want {
		t.Errorf("appended to x: %s", got)
	}
	// No attack is [], as tail has always printed it.
	bare := &Alert{Kind: KindAlert, Rule: "r"}
	want = `{"v":0,"kind":"alert","sensor":"","site":"","seq":0,"ts":"0001-01-01T00:00:00.000000000Z","id":0,"rule":"r","severity":"","category":"","title":"","attack":[],` +
		`"count":0,"first":"0001-01-01T00:00:00.000000000Z","last":"0001-01-01T00:00:00.000000000Z"}`
	if got := string(bare.AppendJSON(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestAlertJSONIsMarshal: json.Marshal of an alert, by value or by
// pointer, gives the bytes of AppendJSON (tapwatch tail prints the one,
// replay the other), and they decode into the alert again.
func TestAlertJSONIsMarshal(t *testing.T) {
	odd := sampleAlert()
	odd.Title = "a \"quoted\" \\ title\x01\x7f\xff\t\n <b>&</b> \u2028\u2029 é"
	odd.Expected = "<100"
	odd.Src.MAC = ""
	odd.Attack = nil
	for _, a := range []*Alert{sampleAlert(), sampleDNP3Alert(), odd, {}} {
		want := a.AppendJSON(nil)
		if !json.Valid(want) {
			t.Fatalf("not JSON: %s", want)
		}
		for _, v := range []any{a, *a} {
			got, err := json.Marshal(v)
			if err != nil || string(got) != string(want) {
				t.Errorf("json.Marshal(%T): %s, %v\nAppendJSON: %s", v, got, err, want)
			}
		}
		var back Alert
		if err := json.Unmarshal(want, &back); err != nil {
			t.Fatal(err)
		}
		if a.Attack == nil {
			back.Attack = nil
		}
		a.Title = strings.ToValidUTF8(a.Title, "\ufffd")
		a.TS, a.First, a.Last = a.TS.UTC(), a.First.UTC(), a.Last.UTC()
		if !reflect.DeepEqual(&back, a) {
			t.Errorf("decoded\n%+v\nwant\n%+v", back, *a)
		}
	}
	got := string(odd.AppendJSON(nil))
	if w := `"title":"a \"quoted\" \\ title\u0001\u007f` + "\ufffd" + `\u0009\u000a \u003cb\u003e\u0026\u003c/b\u003e \u2028\u2029 é"`; !strings.Contains(got, w) {
		t.Errorf("title: %s\nwant %s", got, w)
	}
	if !strings.Contains(got, `"attack":[]`) || !strings.Contains(got, `"src":{"ip":"10.10.1.99","port":51000}`) {
		t.Errorf("attack or src: %s", got)
	}
}

// TestValuesHexJSON: values and evidence alone are written as in an
// alert.
func TestValuesHexJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		V Values
		H Hex
	}{Values{1.5, math.NaN(), math.Inf(-1), 1e21}, Hex{0, 0xab}})
	if err != nil || string(b) != `{"V":[1.5,null,null,1e+21],"H":"00ab"}` {
		t.Errorf("%s %v", b, err)
	}
}

// TestDocsAlertLines: the alert lines the docs show are what AppendJSON
// writes for them.
func TestDocsAlertLines(t *testing.T) {
	n := 0
	for _, name := range []string{"../docs/events.md", "../docs/policy.md", "../README.md"} {
		doc, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(doc), "\n") {
			if !strings.HasPrefix(line, `{"v":1,"kind":"alert",`) {
				continue
			}
			n++
			var a Alert
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Errorf("%s: %v: %s", name, err, line)
				continue
			}
			if got := string(a.AppendJSON(nil)); got != strings.Replace(line, `,"repeat":true`, "", 1) {
				t.Errorf("%s shows\n%s\nAppendJSON writes\n%s", name, line, got)
			}
		}
	}
	if n < 2 {
		t.Errorf("%d alert lines in the docs, want those of events.md and policy.md", n)
	}
}
