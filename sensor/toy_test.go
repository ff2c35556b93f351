package sensor_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/internal/pcapgen"
	"github.com/tapwatch/tapwatch/sensor"
)

// A toy protocol, defined only here, shows that a protocol plugs into dpi
// and the pipeline through its descriptor alone: one line of text per
// message, on TCP port 7777, or on any port when a flow starts with
// "TOY HELLO" from its client.

var toyID = proto.New("toy", "Toy")

func toyProtocol() proto.Protocol {
	return proto.Protocol{
		ID:    toyID,
		Ports: []uint16{7777},
		Detect: func(b []byte) (ok, fromClient bool) {
			return bytes.HasPrefix(b, []byte("TOY HELLO")), true
		},
		NewDecoder: func() proto.Decoder { return new(toyDecoder) },
	}
}

// toyMsg is one line. It is proto.Loggable, so the ops log writes it.
type toyMsg struct {
	meta proto.Meta
	line []byte
}

func (m *toyMsg) Packet() proto.Meta { return m.meta }

func (m *toyMsg) AppendFields(b []byte) []byte {
	return strconv.AppendQuote(append(b, `,"line":`...), string(m.line))
}

// toyDecoder holds the message every stream of an engine reuses.
type toyDecoder struct{ msg toyMsg }

func (d *toyDecoder) NewStream() proto.Stream { return &toyStream{d: d} }

type toyStream struct{ d *toyDecoder }

func (s *toyStream) Reset(bool) {}

func (s *toyStream) Feed(from proto.Side, data []byte, meta *proto.Meta, out proto.Sink) int {
	n := 0
	for {
		i := bytes.IndexByte(data[n:], '\n')
		if i < 0 {
			return n
		}
		s.d.msg = toyMsg{meta: *meta, line: data[n : n+i]}
		out.Message(from, &s.d.msg)
		n += i + 1
	}
}

func (s *toyStream) Gap(proto.Side, []byte, *proto.Meta, proto.Sink) {}

func (s *toyStream) Datagram(from proto.Side, data []byte, meta *proto.Meta, out proto.Sink) {
	s.Feed(from, append(data, '\n'), meta, out)
}

func (s *toyStream) Close(*proto.Meta, proto.Sink) {}

// toySink keeps what it hears of the toy protocol and ignores the rest.
type toySink struct{ got []string }

func (t *toySink) Message(f *dpi.Flow, from dpi.Side, m any) {
	msg, ok := m.(*toyMsg)
	if !ok {
		return
	}
	src, dst, who := f.Client, f.Server, "client"
	if from == dpi.FromServer {
		src, dst, who = dst, src, "server"
	}
	t.got = append(t.got, fmt.Sprintf("%d %v %v %s %v>%v %s", msg.meta.Frame, f.App, f.Transport, who, src, dst, msg.line))
}

func TestToyProtocol(t *testing.T) {
	client := pcapgen.Endpoint{MAC: hmi.MAC, IP: hmi.IP, Port: 40000}
	server := pcapgen.Endpoint{MAC: plc.MAC, IP: plc.IP, Port: 7777}
	// On a port no protocol claims, with the client on the lower port: the
	// detector, not the port guess, decides which end is the client.
	client2 := pcapgen.Endpoint{MAC: hmi.MAC, IP: hmi.IP, Port: 1234}
	server2 := pcapgen.Endpoint{MAC: plc.MAC, IP: plc.IP, Port: 45000}
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, pcapgen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := pcapgen.NewTCPConn(w, client, server, 100, 200)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := pcapgen.NewTCPConn(w, client2, server2, 300, 400)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { _, err := c1.Handshake(); return err },
		func() error { _, err := c1.Client([]byte("GET temp\nGET pre"), pcapgen.Split(7)); return err },
		func() error { _, err := c1.Client([]byte("ssure\n")); return err },
		func() error { _, err := c1.Server([]byte("OK 21\nOK 3\n")); return err },
		func() error { _, err := c2.Handshake(); return err },
		func() error { _, err := c2.Client([]byte("TOY HELLO\n")); return err },
		func() error { _, err := c2.Server([]byte("TOY WELCOME\n")); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	src := toySource(t, w, &buf)
	cfg := dpi.Config{}
	cfg.Protocols = append(dpi.DefaultProtocols(cfg), toyProtocol())
	var sink toySink
	var ops strings.Builder
	sum, err := sensor.Replay(context.Background(), src, sensor.Options{DPI: cfg, Rules: &sink, Ops: sensor.NewOpsWriter(&ops)})
	if err != nil {
		t.Fatal(err)
	}

	a, b := netip.AddrPortFrom(hmi.IP, 40000), netip.AddrPortFrom(plc.IP, 7777)
	c, d := netip.AddrPortFrom(hmi.IP, 1234), netip.AddrPortFrom(plc.IP, 45000)
	want := []string{
		fmt.Sprintf("7 toy tcp client %v>%v GET temp", a, b),
		fmt.Sprintf("11 toy tcp client %v>%v GET pressure", a, b),
		fmt.Sprintf("12 toy tcp server %v>%v OK 21", b, a),
		fmt.Sprintf("12 toy tcp server %v>%v OK 3", b, a),
		fmt.Sprintf("16 toy tcp client %v>%v TOY HELLO", c, d),
		fmt.Sprintf("17 toy tcp server %v>%v TOY WELCOME", d, c),
	}
	if strings.Join(sink.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("handler got\n%s\nwant\n%s", strings.Join(sink.got, "\n"), strings.Join(want, "\n"))
	}
	if sum.DPI.DNP3Sniffed != 1 {
		t.Errorf("%d flows recognised by content, want 1", sum.DPI.DNP3Sniffed)
	}
	lines := strings.Split(strings.TrimSuffix(ops.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("ops log has %d lines, want %d:\n%s", len(lines), len(want), ops.String())
	}
	wantLine := `{"ts":"2024-01-01T00:00:00.000600000Z","frame":7,"proto":"toy","transport":"tcp","src":"10.10.1.10","sport":40000,"dst":"10.10.1.20","dport":7777,"line":"GET temp"}`
	if lines[0] != wantLine {
		t.Errorf("ops log line\n%s\nwant\n%s", lines[0], wantLine)
	}
	if !strings.Contains(lines[5], `"src":"10.10.1.20","sport":45000,"dst":"10.10.1.10","dport":1234,"line":"TOY WELCOME"`) {
		t.Errorf("ops log line %s", lines[5])
	}
}

// toySource flushes w, which writes to buf, and opens what it wrote as a
// capture.
func toySource(t *testing.T, w *pcapgen.Writer, buf *bytes.Buffer) capture.Source {
	t.Helper()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	src, err := capture.NewFile(bytes.NewReader(buf.Bytes()), "toy.pcap")
	if err != nil {
		t.Fatal(err)
	}
	return src
}
