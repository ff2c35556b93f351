package service_test

// The external test package: internal/testenv imports dpi, which imports
// this package.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/dpi/service"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// flowKey is a flow with its endpoints in a fixed order.
type flowKey struct {
	udp  bool
	a, b netip.AddrPort
}

// flowState is what the test learns of a flow: who the client is, and
// what Identify made of the first payload of each side.
type flowState struct {
	client, server netip.AddrPort
	seen           [2]bool // client, server sent a payload
	id             [2]service.ID
}

// name is what content says of the flow: the client's side first.
func (f *flowState) name() service.ID {
	if f.id[0] != service.Unknown {
		return f.id[0]
	}
	return f.id[1]
}

// readFlows reads a pcap or pcapng capture and runs Identify on the first
// payload of each side of every TCP and UDP flow. The client is the
// sender of a SYN, the receiver of a SYN-ACK, or else the side with the
// higher port, as for a flow whose start the capture missed.
func readFlows(t *testing.T, path string) (flows map[flowKey]*flowState, packets int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var (
		src interface {
			ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		}
		link layers.LinkType
	)
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		src, link = r, r.LinkType()
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		src, link = r, r.LinkType()
	}
	flows = map[flowKey]*flowState{}
	for ; ; packets++ {
		data, _, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Logf("%s: stops at %v", filepath.Base(path), err)
			break
		}
		var first gopacket.Decoder = link
		switch link {
		case layers.LinkTypeIPv4: // raw IPv4, as in suricata-verify's dnp3-flood
			first = layers.LayerTypeIPv4
		case layers.LinkTypeIPv6:
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(data, first, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		var sIP, dIP netip.Addr
		switch ip := p.NetworkLayer().(type) {
		case *layers.IPv4:
			sIP, _ = netip.AddrFromSlice(ip.SrcIP)
			dIP, _ = netip.AddrFromSlice(ip.DstIP)
		case *layers.IPv6:
			sIP, _ = netip.AddrFromSlice(ip.SrcIP)
			dIP, _ = netip.AddrFromSlice(ip.DstIP)
		default:
			continue
		}
		var (
			udp              bool
			sPort, dPort     uint16
			payload          []byte
			syn, synAck, ack bool
		)
		switch l := p.TransportLayer().(type) {
		case *layers.TCP:
			sPort, dPort, payload = uint16(l.SrcPort), uint16(l.DstPort), l.Payload
			syn, ack = l.SYN, l.ACK
			synAck = syn && ack
		case *layers.UDP:
			udp, sPort, dPort, payload = true, uint16(l.SrcPort), uint16(l.DstPort), l.Payload
		default:
			continue
		}
		s, d := netip.AddrPortFrom(sIP.Unmap(), sPort), netip.AddrPortFrom(dIP.Unmap(), dPort)
		k := flowKey{udp, s, d}
		if k.b.Compare(k.a) < 0 {
			k.a, k.b = k.b, k.a
		}
		fl := flows[k]
		if fl == nil {
			fl = &flowState{client: s, server: d}
			if synAck || !syn && sPort < dPort {
				fl.client, fl.server = d, s
			}
			flows[k] = fl
		}
		if len(payload) == 0 {
			continue
		}
		side := 0
		if s != fl.client {
			side = 1
		}
		if !fl.seen[side] {
			fl.seen[side] = true
			fl.id[side] = service.Identify(udp, side == 0, payload)
		}
	}
	return flows, packets
}

// captures lists the captures under dir, leaving out the oracles.
func captures(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), "_") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".pcap") || strings.HasSuffix(path, ".pcapng")) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tally counts flows by the name content gives them, "unknown" included.
func tally(flows map[flowKey]*flowState) map[string]int {
	n := map[string]int{}
	for _, f := range flows {
		if f.seen[0] || f.seen[1] {
			n[f.name().String()]++
		}
	}
	return n
}

func format(n map[string]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(n)) {
		b.WriteString(" " + k + ":" + itoa(n[k]))
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// TestCorpus runs Identify over every capture of the public corpus and
// the labelled attacks. It never names Modbus a flow on the DNP3 port or
// DNP3 one on the Modbus port, the two sides of a flow never get two
// different names, and the corpus's ICS traffic is named by content.
func TestCorpus(t *testing.T) {
	corpus := testenv.Corpus(t)
	total := map[string]int{}
	for _, path := range captures(t, corpus) {
		rel, _ := filepath.Rel(corpus, path)
		flows, packets := readFlows(t, path)
		for k, f := range flows {
			onDNP3 := k.a.Port() == 20000 || k.b.Port() == 20000
			onModbus := k.a.Port() == 502 || k.b.Port() == 502
			for _, id := range f.id {
				if id == service.Modbus && onDNP3 && !onModbus || id == service.DNP3 && onModbus && !onDNP3 {
					t.Errorf("%s: %v → %v named %v", rel, f.client, f.server, id)
				}
			}
			if f.id[0] != service.Unknown && f.id[1] != service.Unknown && f.id[0] != f.id[1] {
				t.Errorf("%s: %v → %v: the client's side is %v, the server's %v", rel, f.client, f.server, f.id[0], f.id[1])
			}
		}
		n := tally(flows)
		for k, v := range n {
			total[k] += v
		}
		t.Logf("%s: %d packets, flows by name:%s", rel, packets, format(n))
	}
	t.Logf("all captures, flows by name:%s", format(total))
	if total["modbus"] < 100 || total["dnp3"] < 50 {
		t.Errorf("content names %d flows Modbus and %d DNP3; the corpus holds hundreds of each", total["modbus"], total["dnp3"])
	}
}

// TestLabelledAttacks checks what the attacks of the Lemay CSET'16 data
// set show of themselves: the files moved over TLS on port 7145, and the
// SMB between Windows hosts next to the Modbus polling. The QUT captures
// hold no remote access nor file transfer (their odd UDP on port 23 is no
// Telnet), so nothing there may be named so.
func TestLabelledAttacks(t *testing.T) {
	qut, err := filepath.Glob(filepath.Join(testenv.Corpus(t), "labelled-attacks", "qut-2017-dnp3", "*.pcap"))
	if err != nil || len(qut) == 0 {
		t.Fatalf("no QUT captures: %v", err)
	}
	for _, path := range qut {
		flows, _ := readFlows(t, path)
		for k, f := range flows {
			if id := f.name(); id.Has(service.RemoteAccess | service.FileTransfer) {
				t.Errorf("%s: %v → %v (udp %v) named %v", filepath.Base(path), f.client, f.server, k.udp, id)
			}
		}
	}

	dir := filepath.Join(testenv.Corpus(t), "labelled-attacks", "lemay-modbus-cset16")
	moving, _ := readFlows(t, filepath.Join(dir, "moving_two_files_modbus_6RTU.pcap"))
	// The capture misses the start of this flow: its first payloads are
	// TLS records of application data, and the port guess picks the
	// wrong client, which does not matter for TLS.
	var onTLS int
	for k, f := range moving {
		if k.a.Port() == 7145 || k.b.Port() == 7145 {
			onTLS++
			if f.id != [2]service.ID{service.TLS, service.TLS} {
				t.Errorf("moving_two_files: %v ↔ %v named %v and %v; want tls", f.client, f.server, f.id[0], f.id[1])
			}
		}
	}
	if onTLS == 0 {
		t.Error("moving_two_files: no flow to port 7145")
	}
	for _, name := range []string{"moving_two_files_modbus_6RTU.pcap", "characterization_modbus_6RTU_with_operate.pcap"} {
		flows, _ := readFlows(t, filepath.Join(dir, name))
		n := tally(flows)
		if n["smb"]+n["netbios_ssn"] == 0 || n["modbus"] == 0 {
			t.Errorf("%s: no SMB or no Modbus named:%s", name, format(n))
		}
	}
}
