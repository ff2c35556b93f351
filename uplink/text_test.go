package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

func ptr[T any](v T) *T { return &v }

// The value-range alert of the demo, as tail --format text prints it.
func valueAlert(ts time.Time) *event.Alert {
	return &event.Alert{V: 1, Kind: event.KindAlert, Site: "plant1", Sensor: "tap1", Seq: 7, TS: ts,
		Rule: "baseline-value-range", Severity: "high", Title: "Written value 900 out of learned range at holding_registers 5 of 10.10.1.20 from 10.10.1.10",
		Attack: []string{"T0836", "T0831"}, Proto: "modbus",
		Src: &event.Endpoint{IP: "10.10.1.10", Port: 50646}, Dst: &event.Endpoint{IP: "10.10.1.20", Port: 502},
		Unit: ptr(uint8(1)), FC: ptr(uint8(6)), FCName: "write_single_register", Addr: &event.Range{Lo: 5, Hi: 5},
		Values: event.Values{900}, Expected: "118.8..181.2 (learned 124..176)", Count: 1, First: ts, Last: ts}
}

func TestTextFormat(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.Local)
	f := newTextFormatter(false, true)
	f.now = func() time.Time { return now }
	ts := now.Add(2*time.Minute + 11*time.Second)

	f.format(&event.Asset{Kind: event.KindAsset, Site: "plant1", Sensor: "tap1", IP: "10.10.1.10", Roles: []string{"master"}, Protocols: []string{"modbus"}}, true)
	got := string(f.format(&event.Asset{Kind: event.KindAsset, Site: "plant1", Sensor: "tap1", TS: ts, IP: "10.10.1.20",
		Roles: []string{"slave"}, Protocols: []string{"modbus"}, ModbusUnits: []uint8{1, 2}, Vendor: "Acme", MAC: "02:00:00:00:00:14"}, false))
	if want := "10:02:11 asset plant1/tap1 10.10.1.20: Modbus server, modbus, units 1,2, vendor Acme, MAC 02:00:00:00:00:14"; got != want {
		t.Errorf("asset:\n got %q\nwant %q", got, want)
	}

	got = string(f.format(valueAlert(ts), false))
	want := "10:02:11 HIGH plant1/tap1 baseline-value-range: Written value 900 out of learned range at holding_registers 5 of 10.10.1.20 from 10.10.1.10\n" +
		"    10.10.1.10 (Modbus master) → 10.10.1.20 unit 1 (Modbus server): write_single_register (fc 6), holding register 5, value 900; expected 118.8..181.2 (learned 124..176)\n" +
		"    ATT&CK T0836 Modify Parameter, T0831 Manipulation of Control"
	if got != want {
		t.Errorf("alert:\n got %q\nwant %q", got, want)
	}

	// A folded repeat of a DNP3 alert, yesterday, from a host not seen,
	// with a technique tapwatch has no name for, in colour.
	f.colour = true
	d := &event.Alert{Kind: event.KindAlert, Site: "s", Sensor: "n", TS: now.Add(-24 * time.Hour), First: now.Add(-25 * time.Hour),
		Rule: "dnp3-restart", Severity: "critical", Title: "DNP3 cold_restart", Attack: []string{"T0816", "T0999"}, Proto: "dnp3",
		Src: &event.Endpoint{IP: "10.10.1.12"}, Dst: &event.Endpoint{IP: "10.10.1.41"}, DNP3Src: ptr(uint16(1)), DNP3Dst: ptr(uint16(11)),
		FC: ptr(uint8(13)), FCName: "cold_restart", FCs: []uint16{13, 14}, Addr: &event.Range{Lo: 0, Hi: 3}, Values: event.Values{1, 2, 3, 4, 5, 6, 7, 8, 9}, Count: 4, Last: now.Add(-25*time.Hour + 90*time.Second)}
	got = string(f.format(d, false))
	for _, s := range []string{
		"2026-11-20 10:00:00 \x1b[1;37;41mCRITICAL\x1b[0m s/n dnp3-restart: DNP3 cold_restart (4 times in 1m30s)",
		"\n    10.10.1.12 link 1 → 10.10.1.41 link 11: cold_restart (fc 13; folded fc 13, 14), points 0-3, values 1 2 3 4 5 6 7 8 … (9 values)",
		"\n    ATT&CK T0816 Device Restart/Shutdown, T0999",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("folded DNP3 alert:\n%q\nlacks %q", got, s)
		}
	}

	got = string(f.format(&event.Status{Kind: event.KindStatus, Site: "plant1", Sensor: "tap1", TS: ts, State: "degraded", Reason: "link eth1 down",
		Links: []event.Link{{Iface: "eth1", State: "down", Drops: 3}}, Uplink: "connected", SpoolDepth: 2, Unacked: event.Severities{Critical: 1, High: 2}}, true))
	if want := "10:02:11 status plant1/tap1 (retained) DEGRADED (link eth1 down); eth1 down; uplink connected; 3 dropped by the kernel on eth1; 2 spooled; unacknowledged: 1 critical, 2 high"; got != want {
		t.Errorf("status:\n got %q\nwant %q", got, want)
	}
	// The status that follows each new alert is not printed; one that
	// says the alerts were acknowledged, or that the state changed, is.
	st := &event.Status{Kind: event.KindStatus, Site: "plant1", Sensor: "tap1", TS: ts, State: "degraded", Reason: "link eth1 down",
		Links: []event.Link{{Iface: "eth1", State: "down", Drops: 5}}, Uplink: "connected", Unacked: event.Severities{Critical: 1, High: 3}}
	if got := f.format(st, false); got != nil {
		t.Errorf("a status with one more unacknowledged alert: %q", got)
	}
	st.Unacked = event.Severities{}
	if got, want := string(f.format(st, false)), "; alerts acknowledged at the box"; !strings.HasSuffix(got, want) {
		t.Errorf("acknowledged: %q, want it to end with %q", got, want)
	}
	// Without alerts printed (--kinds status), a new unacknowledged alert
	// is news.
	g := newTextFormatter(false, false)
	g.now = f.now
	g.format(st, false)
	st.Unacked = event.Severities{High: 1}
	if got, want := string(g.format(st, false)), "; unacknowledged: 1 high"; !strings.HasSuffix(got, want) {
		t.Errorf("--kinds status, a new alert: %q, want it to end with %q", got, want)
	}
	st.Unacked = event.Severities{}
	st.State, st.Reason, st.Links[0].State = "monitoring", "", "up"
	if got, want := string(f.format(st, false)), "10:02:11 status plant1/tap1 MONITORING; eth1 up; uplink connected; 5 dropped by the kernel on eth1"; got != want {
		t.Errorf("state change:\n got %q\nwant %q", got, want)
	}
	// Text from the broker cannot drive the terminal or fake a line.
	f.colour = false
	evil := valueAlert(ts)
	evil.Title, evil.Src.IP = "pump \x1b[2J\n10:00:00 INFO fake", "10.10.1.10\r"
	got = string(f.format(evil, false))
	if strings.ContainsAny(got, "\x1b\r") || strings.Count(got, "\n") != 2 || !strings.Contains(got, ": pump ?[2J?10:00:00 INFO fake\n    10.10.1.10? → ") {
		t.Errorf("control characters from the broker printed: %q", got)
	}
	if evil.Title != "pump \x1b[2J\n10:00:00 INFO fake" {
		t.Error("format changed the message it was given")
	}
	got = string(f.format(&event.Stats{Kind: event.KindStats, Site: "plant1", Sensor: "tap1", TS: ts, Packets: 100,
		Messages: map[string]uint64{"modbus": 60, "dnp3": 20}, DecodeErrors: map[string]uint64{"modbus": 1}, Flows: 9, FlowsCreated: 34, KernelDrops: 4}, false))
	if want := "10:02:11 stats plant1/tap1 100 packets, 60 Modbus and 20 DNP3 messages, 34 flows (9 open now); alerts: none; 1 malformed; 4 dropped by the kernel"; got != want {
		t.Errorf("stats:\n got %q\nwant %q", got, want)
	}
}

// An asset is printed again only when its line changes: not for the
// hourly refresh of last_seen, nor when a restarted sensor sends it
// again, nor for its retained copy after tail reconnected.
func TestTextAssetChanged(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.Local)
	f := newTextFormatter(false, true)
	f.now = func() time.Time { return now }
	plc := &event.Asset{Kind: event.KindAsset, Site: "plant1", Sensor: "tap1", TS: now, IP: "10.10.1.20",
		Roles: []string{"slave"}, Protocols: []string{"modbus"}, ModbusUnits: []uint8{1}, FirstSeen: now, LastSeen: now}
	if got, want := string(f.format(plc, true)), "10:00:00 asset plant1/tap1 (retained) 10.10.1.20: Modbus server, modbus, units 1"; got != want {
		t.Fatalf("retained asset:\n got %q\nwant %q", got, want)
	}
	again := *plc
	again.TS, again.LastSeen = now.Add(time.Hour), now.Add(time.Hour)
	for _, retained := range []bool{false, true} {
		if got := f.format(&again, retained); got != nil {
			t.Errorf("the same asset (retained %v): %q", retained, got)
		}
	}
	again.ModbusUnits = []uint8{1, 2}
	if got, want := string(f.format(&again, false)), "11:00:00 asset plant1/tap1 10.10.1.20: Modbus server, modbus, units 1,2"; got != want {
		t.Errorf("asset with a new unit:\n got %q\nwant %q", got, want)
	}
	other := *plc
	other.Sensor = "tap2" // the same address seen by another sensor
	if got := f.format(&other, false); got == nil {
		t.Error("another sensor's asset not printed")
	}
}

// The Last Will was composed when the sensor connected: a live one is
// printed with the time it came, when the connection broke.
func TestTextLastWill(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.Local)
	f := newTextFormatter(false, true)
	f.now = func() time.Time { return now }
	will := &event.Status{Kind: event.KindStatus, Site: "plant1", Sensor: "tap1", TS: now.Add(-3 * time.Hour),
		State: event.StateOffline, Reason: "connection lost", Uplink: event.UplinkDisconnected}
	if got, want := string(f.format(will, false)), "10:00:00 status plant1/tap1 OFFLINE (connection lost); uplink disconnected"; got != want {
		t.Errorf("live Last Will:\n got %q\nwant %q", got, want)
	}
	if got, want := string(f.format(will, true)), "07:00:00 status plant1/tap1 (retained) OFFLINE (connection lost); uplink disconnected"; got != want {
		t.Errorf("retained Last Will:\n got %q\nwant %q", got, want)
	}
}

// Tail --format text --kinds alert against a broker: the asset published
// between two alerts is not printed, but names the second alert's sender,
// and its seq is no gap.
func TestTailText(t *testing.T) {
	b, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out, rep testenv.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Tail(ctx, TailConfig{Brokers: []string{b.URL()}, Kinds: []string{"alert"}, Count: 2, Format: FormatText}, &out, &rep)
		done <- err
	}()
	pollUntil(t, 5*time.Second, "tail subscribed", func() bool { return b.Subscribed("tapwatch-tail-") })
	p, _ := startPublisher(t, testConfig(b.URL()), t.TempDir())
	p.Alert(valueAlert(time.Now()), 1, true)
	p.Asset(&event.Asset{IP: "10.10.1.10", Roles: []string{"master"}, Protocols: []string{"modbus"}})
	p.Alert(valueAlert(time.Now()), 2, true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, s := range []string{" HIGH plant1/tap1 baseline-value-range: ", "    10.10.1.10 (Modbus master) → 10.10.1.20 unit 1: write_single_register (fc 6), holding register 5, value 900; expected 118.8..181.2 (learned 124..176)\n"} {
		if !strings.Contains(got, s) {
			t.Errorf("tail wrote\n%s\nlacking %q; report: %s", got, s, rep.String())
		}
	}
	if strings.Contains(got, "{") || strings.Contains(got, " asset ") || strings.Count(got, "\n") != 6 {
		t.Errorf("tail wrote more than the alerts' three lines each:\n%s", got)
	}
	if rep.String() != "" {
		t.Errorf("tail reported: %s", rep.String())
	}
	if err := (TailConfig{Brokers: []string{b.URL()}, Format: "xml"}).Validate(); err == nil || !strings.Contains(err.Error(), `format: "xml"`) {
		t.Errorf("format xml: %v", err)
	}
}

// FuzzTailMessage: whatever a broker delivers, tail decodes it or says it
// cannot, and formats what it decoded without panicking.
func FuzzTailMessage(f *testing.F) {
	ts := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, m := range []interface{ MarshalMsg([]byte) ([]byte, error) }{
		valueAlert(ts),
		&event.Status{Kind: event.KindStatus, State: "monitoring", Links: []event.Link{{Iface: "eth1", State: "up", Drops: 1}}, Unacked: event.Severities{High: 1}},
		&event.Asset{Kind: event.KindAsset, IP: "10.10.1.20", Roles: []string{"slave", "master"}, ModbusUnits: []uint8{1}, Vendor: "v"},
		&event.Stats{Kind: event.KindStats, Messages: map[string]uint64{"modbus": 1}},
	} {
		b, err := m.MarshalMsg(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		text := newTextFormatter(true, true)
		for range 2 { // the second time with the first's assets and status remembered
			line, _, v, err := decode(b)
			if err != nil {
				return
			}
			if line == nil {
				t.Fatal("decoded, but no JSON line")
			}
			if v != nil {
				text.format(v, false)
			}
		}
	})
}

// A tail whose broker cannot be reached says so once and tries again,
// as a security center's tail service must after a reboot; when it is
// stopped without ever having connected, that is an error (tapwatch
// tail's exit status 1). A broker that comes up meanwhile is used.
func TestTailUnreachable(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens yet
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out, rep testenv.Buffer
	_, err := Tail(ctx, TailConfig{Brokers: []string{url}}, &out, &rep)
	if err == nil || err.Error() != "never connected to ["+url+"]" {
		t.Errorf("Tail stopped before reaching %s: %v", url, err)
	}
	if r := rep.String(); strings.Count(r, "cannot reach") != 1 || !strings.Contains(r, "connection refused") {
		t.Errorf("Tail's report: %q, want one line saying it cannot reach the broker", r)
	}

	// The broker comes up after tail started: tail connects and receives.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep = testenv.Buffer{}
	done := make(chan error, 1)
	go func() {
		_, err := Tail(ctx, TailConfig{Brokers: []string{url}, Kinds: []string{"alert"}, Count: 1}, &out, &rep)
		done <- err
	}()
	pollUntil(t, 5*time.Second, "tail saying it cannot reach the broker", func() bool { return strings.Contains(rep.String(), "cannot reach") })
	b, err := StartEmbedded(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pollUntil(t, 10*time.Second, "tail subscribed", func() bool { return b.Subscribed("tapwatch-tail-") })
	p, _ := startPublisher(t, testConfig(b.URL()), t.TempDir())
	p.Alert(valueAlert(time.Now()), 1, true)
	if err := <-done; err != nil {
		t.Fatalf("Tail after the broker came up: %v; report %s", err, rep.String())
	}
}

// Refusals end a first connection at once; a broker that cannot be
// reached does not.
func TestTailRefused(t *testing.T) {
	tlsTail := TailConfig{Brokers: []string{"ssl://broker.example:8883"}}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w : %w", packets.ErrorNetworkError, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")), false},
		{fmt.Errorf("%w : %w", packets.ErrorNetworkError, errors.New("dial tcp: i/o timeout")), false},
		{packets.ErrorRefusedNotAuthorised, true},
		{packets.ErrorRefusedBadUsernameOrPassword, true},
		{fmt.Errorf("%w : %w", packets.ErrorNetworkError, &tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}), true},
		{fmt.Errorf("%w : %w", packets.ErrorNetworkError, errors.New("remote error: tls: certificate required")), true},
		{fmt.Errorf("%w : %w", packets.ErrorNetworkError, errors.New("read tcp: connection reset by peer")), true},
	} {
		if got := refused(tlsTail, c.err); got != c.want {
			t.Errorf("refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	withCert := tlsTail
	withCert.TLS.Cert = "soc.pem"
	if refused(withCert, errors.New("connection reset by peer")) || refused(TailConfig{Brokers: []string{"tcp://127.0.0.1:1883"}}, errors.New("connection reset by peer")) {
		t.Error("a reset is a refusal only over TLS without a client certificate")
	}
}
