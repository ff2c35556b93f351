package pcapgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// generators are the plants, by name.
var generators = []struct {
	name string
	gen  func(*Writer, int, int64) error
	// slack is how many frames past the count asked for the last step
	// may write.
	slack int
}{{"Plant", Plant, 40}, {"SitePlant", SitePlant, 60}}

func genCapture(t testing.TB, gen func(*Writer, int, int64) error, slack, packets int, seed int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := gen(w, packets, seed); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Packets() < packets || w.Packets() > packets+slack {
		t.Fatalf("wrote %d frames for %d", w.Packets(), packets)
	}
	return buf.Bytes()
}

func plantCapture(t testing.TB, packets int, seed int64) []byte {
	return genCapture(t, Plant, generators[0].slack, packets, seed)
}

func TestPlantDeterministic(t *testing.T) {
	for _, g := range generators {
		t.Run(g.name, func(t *testing.T) {
			a := sha256.Sum256(genCapture(t, g.gen, g.slack, 5000, 1))
			b := sha256.Sum256(genCapture(t, g.gen, g.slack, 5000, 1))
			c := sha256.Sum256(genCapture(t, g.gen, g.slack, 5000, 2))
			if a != b {
				t.Error("the same seed gave different captures")
			}
			if a == c {
				t.Error("different seeds gave the same capture")
			}
		})
	}
}

// TestPlant decodes a plant capture, reassembles every port-502 and
// port-20000 stream and checks that it is well-formed Modbus/TCP and DNP3
// with the promised variety and mix.
func TestPlant(t *testing.T) {
	const packets = 30000
	_, pkts := readBack(t, plantCapture(t, packets, 7))

	ics := newICSWalk(t, PlantOutstations, false)
	var arp, icmp, dns, ntp, v6, web int
	for i, p := range pkts {
		if p.Layer(layers.LayerTypeARP) != nil {
			arp++
			continue
		}
		if p.Layer(layers.LayerTypeIPv6) != nil {
			v6++
		}
		if p.Layer(layers.LayerTypeICMPv4) != nil {
			icmp++
		}
		if ics.packet(i+1, p) {
			continue
		}
		if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			switch {
			case udp.DstPort == 53 || udp.SrcPort == 53:
				dns++
			case udp.DstPort == 123:
				ntp++
			}
			continue
		}
		if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			if tcp.DstPort == 443 || tcp.DstPort == 80 || tcp.SrcPort == 443 || tcp.SrcPort == 80 {
				web++
			}
		}
	}
	m, dnp3 := ics, ics.dnp3
	share := float64(m.modbus) / float64(len(pkts))
	m.log(len(pkts))
	t.Logf("other: arp %d icmp %d dns %d ntp %d ipv6 %d web %d", arp, icmp, dns, ntp, v6, web)
	if share < 0.38 || share > 0.42 {
		t.Errorf("Modbus share %.3f, want about 0.4", share)
	}
	dnp3Share, udpShare := float64(dnp3.tcp+dnp3.udp)/float64(len(pkts)), float64(dnp3.udp)/float64(len(pkts))
	if dnp3Share < 0.28 || dnp3Share > 0.32 {
		t.Errorf("DNP3 share %.3f, want about 0.3", dnp3Share)
	}
	if udpShare < 0.005 || udpShare > 0.05 {
		t.Errorf("DNP3/UDP share %.3f, want a few percent", udpShare)
	}
	dnp3.finish()
	m.expect(len(pkts), map[string]int{
		"reconnects": m.syns - 2*plantMasters*plantPLCs,
		"ARP":        arp, "ICMP": icmp, "DNS": dns, "NTP": ntp, "IPv6": v6, "HTTP(S)": web,
		"DNP3 reconnects": dnp3.syns - 2*dnp3TCPAssocs,
	})
}

// icsWalk follows the Modbus/TCP and DNP3 streams of a plant capture:
// every TCP segment on port 502 or 20000 in sequence (a gap fails the
// test), every Modbus response matching a request of its connection,
// every DNP3 stream through dnp3Check.
type icsWalk struct {
	t           *testing.T
	outstations []netip.Addr
	// midStream lets a connection start without a SYN, as one open
	// before the capture started does.
	midStream bool
	flows     map[icsFlowKey]*icsFlow
	pending   map[string]map[uint16]uint8 // connection -> tid -> function code

	modbus, syns, fins, rsts, retrans, splits, multi, exceptions, pipelined int
	fcs                                                                     map[uint8]int
	// writers counts the FC 6 and 16 requests of each source; maxWrite
	// is the largest value each wrote.
	writers  map[netip.Addr]int
	maxWrite map[netip.Addr]uint16
	dnp3     *dnp3Check
}

type icsFlowKey struct{ src, dst string }

type icsFlow struct {
	next uint32
	buf  []byte
}

func newICSWalk(t *testing.T, outstations []netip.Addr, midStream bool) *icsWalk {
	return &icsWalk{t: t, outstations: outstations, midStream: midStream, flows: map[icsFlowKey]*icsFlow{},
		pending: map[string]map[uint16]uint8{}, fcs: map[uint8]int{}, writers: map[netip.Addr]int{}, maxWrite: map[netip.Addr]uint16{},
		dnp3: newDNP3Check(t)}
}

// packet checks p if it is Modbus or DNP3, and reports whether it is.
func (w *icsWalk) packet(frame int, p gopacket.Packet) bool {
	t := w.t
	t.Helper()
	dnp3 := w.dnp3
	if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		if udp.DstPort != DNP3Port && udp.SrcPort != DNP3Port {
			return false
		}
		nf := p.NetworkLayer().NetworkFlow()
		dnp3.udp++
		fromOutstation := slices.Contains(w.outstations, netip.MustParseAddr(nf.Src().String()))
		dnp3.stream(frame, fmt.Sprint(nf.Src(), ">", nf.Dst(), "/udp"), fromOutstation, udp.Payload, true)
		return true
	}
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		return false
	}
	isDNP3 := tcp.SrcPort == DNP3Port || tcp.DstPort == DNP3Port
	if tcp.SrcPort != 502 && tcp.DstPort != 502 && !isDNP3 {
		return false
	}
	if isDNP3 {
		dnp3.tcp++
	} else {
		w.modbus++
	}
	nf := p.NetworkLayer().NetworkFlow()
	key := icsFlowKey{fmt.Sprint(nf.Src(), ":", tcp.SrcPort), fmt.Sprint(nf.Dst(), ":", tcp.DstPort)}
	conn := key.src + ">" + key.dst
	if tcp.SrcPort == 502 {
		conn = key.dst + ">" + key.src
	}
	f := w.flows[key]
	if f == nil && w.midStream && !tcp.SYN && !tcp.RST && len(tcp.Payload) > 0 {
		f = &icsFlow{next: tcp.Seq}
		w.flows[key] = f
		if w.pending[conn] == nil {
			w.pending[conn] = map[uint16]uint8{}
		}
	}
	switch {
	case tcp.SYN:
		if isDNP3 {
			dnp3.syns++
		} else {
			w.syns++
		}
		w.flows[key] = &icsFlow{next: tcp.Seq + 1}
		if tcp.DstPort == 502 {
			w.pending[conn] = map[uint16]uint8{}
		}
		return true
	case tcp.RST:
		if isDNP3 {
			dnp3.closes++
		} else {
			w.rsts++
		}
		return true
	case f == nil:
		t.Fatalf("frame %d: segment of %v without a SYN", frame, key)
	case tcp.FIN:
		if isDNP3 {
			dnp3.closes++
		} else {
			w.fins++
		}
		return true
	case len(tcp.Payload) == 0:
		return true
	case tcp.Seq != f.next:
		if int32(tcp.Seq-f.next) > 0 {
			t.Fatalf("frame %d: %v seq %d, expected %d: a gap", frame, key, tcp.Seq, f.next)
		}
		w.retrans++
		return true
	}
	f.next += uint32(len(tcp.Payload))
	f.buf = append(f.buf, tcp.Payload...)
	if isDNP3 {
		f.buf = dnp3.stream(frame, key.src+">"+key.dst, tcp.SrcPort == DNP3Port, f.buf, false)
		return true
	}
	adus := 0
	for len(f.buf) >= MBAPLen+1 {
		n := MBAPLen - 1 + int(binary.BigEndian.Uint16(f.buf[4:]))
		if binary.BigEndian.Uint16(f.buf[2:]) != 0 || n < MBAPLen+1 || n > 260 {
			t.Fatalf("frame %d: bad MBAP header % x", frame, f.buf[:MBAPLen])
		}
		if len(f.buf) < n {
			break
		}
		adus++
		tid, fc := binary.BigEndian.Uint16(f.buf), f.buf[MBAPLen]
		if tcp.DstPort == 502 {
			w.fcs[fc]++
			w.pending[conn][tid] = fc
			if len(w.pending[conn]) > 1 {
				w.pipelined++
			}
			if fc == FCWriteSingleRegister || fc == FCWriteMultipleRegisters {
				src := netip.MustParseAddr(nf.Src().String())
				w.writers[src]++
				vals := f.buf[MBAPLen+3 : n] // FC 6: the value
				if fc == FCWriteMultipleRegisters {
					vals = f.buf[MBAPLen+6 : n]
				}
				for i := 0; i+1 < len(vals); i += 2 {
					w.maxWrite[src] = max(w.maxWrite[src], binary.BigEndian.Uint16(vals[i:]))
				}
			}
		} else {
			want, ok := w.pending[conn][tid]
			if !ok || fc&0x7f != want {
				t.Fatalf("frame %d: response tid %d fc %d to no request (pending %v)", frame, tid, fc, w.pending[conn])
			}
			if fc&0x80 != 0 {
				w.exceptions++
			}
			delete(w.pending[conn], tid)
		}
		f.buf = f.buf[n:]
	}
	if len(f.buf) > 0 {
		w.splits++
	}
	if adus > 1 {
		w.multi++
	}
	return true
}

func (w *icsWalk) log(packets int) {
	dnp3 := w.dnp3
	w.t.Logf("modbus %.1f%%: %d SYNs, %d FINs, %d RSTs, %d retransmissions, %d split, %d multi-ADU segments, %d pipelined, %d exceptions, FCs %v",
		100*float64(w.modbus)/float64(packets), w.syns, w.fins, w.rsts, w.retrans, w.splits, w.multi, w.pipelined, w.exceptions, w.fcs)
	w.t.Logf("dnp3 %.1f%% (UDP %.1f%%): %d SYNs, %d FINs/RSTs, %d link frames, %d fragments, %d multi-segment (up to %d segments), %d frames split across TCP segments, %d transport wraps, link status %d/%d, FCs %v, objects %v",
		100*float64(dnp3.tcp+dnp3.udp)/float64(packets), 100*float64(dnp3.udp)/float64(packets), dnp3.syns, dnp3.closes, dnp3.frames, dnp3.fragments, dnp3.multiSeg, dnp3.maxSegs, dnp3.splitFrames, dnp3.wraps, dnp3.linkReq, dnp3.linkResp, dnp3.fcs, dnp3.objects)
}

// expect fails the test for each kind of traffic the walk or more (the
// caller's) did not see, and for a Modbus request function code missing.
func (w *icsWalk) expect(packets int, more map[string]int) {
	t := w.t
	t.Helper()
	dnp3 := w.dnp3
	seen := map[string]int{
		"closes": w.fins, "resets": w.rsts,
		"retransmissions": w.retrans, "split ADUs": w.splits, "multi-ADU segments": w.multi,
		"pipelined requests": w.pipelined, "exceptions": w.exceptions,
		"DNP3 closes":                  dnp3.closes,
		"multi-segment DNP3 fragments": dnp3.multiSeg, "DNP3 transport 63->0 wraps": dnp3.wraps,
		"DNP3 link frames split across TCP segments": dnp3.splitFrames,
		"DNP3 TCP segments with several link frames": dnp3.multiFrame,
		"DNP3 link status requests":                  dnp3.linkReq, "DNP3 link status responses": dnp3.linkResp,
		"DNP3 confirms of unsolicited responses": dnp3.unsConfirms,
	}
	maps.Copy(seen, more)
	for name, n := range seen {
		if n <= 0 {
			t.Errorf("no %s in %d packets", name, packets)
		}
	}
	for _, fc := range []uint8{1, 2, 3, 4, 6, 16} {
		if w.fcs[fc] == 0 {
			t.Errorf("no requests with function code %d", fc)
		}
	}
}

// dnp3TCPAssocs is the number of the plant's DNP3 associations over TCP:
// one per outstation but the UDP one, and a second master for two.
const dnp3TCPAssocs = plantOutstations - 1 + 2

// dnp3Check follows the plant's DNP3 streams: every link frame's CRCs
// (with parseLinkFrame, the builders' inverse), transport sequence numbers
// and FIR/FIN, and every fragment's function code, sequence number and
// objects, which must use up the fragment exactly.
type dnp3Check struct {
	t          *testing.T
	rx         map[string]*transportRx // per direction
	lastReq    map[string]uint8        // association -> seq of the last request
	conPending map[string]int          // association -> 1+seq of a response awaiting confirm (UNS in bit 8)

	tcp, udp, syns, closes               int
	frames, fragments, multiSeg, maxSegs int
	splitFrames, multiFrame, wraps       int
	linkReq, linkResp, unsConfirms       int
	fcs                                  map[uint8]int
	objects                              map[string]int
}

func newDNP3Check(t *testing.T) *dnp3Check {
	return &dnp3Check{t: t, rx: map[string]*transportRx{}, lastReq: map[string]uint8{}, conPending: map[string]int{},
		fcs: map[uint8]int{}, objects: map[string]int{}}
}

// stream takes the bytes buf received so far in direction dir (an
// association is named by the master's side of it) and returns what is left
// of a link frame that is not complete yet. A datagram must hold whole
// frames.
func (c *dnp3Check) stream(frame int, dir string, fromOutstation bool, buf []byte, datagram bool) []byte {
	t := c.t
	t.Helper()
	assoc := dir
	if fromOutstation {
		a, b, _ := strings.Cut(strings.TrimSuffix(dir, "/udp"), ">")
		assoc = b + ">" + a + strings.TrimPrefix(dir, a+">"+b)
	}
	n := 0
	for len(buf) > 0 {
		f, size, err := parseLinkFrame(buf)
		if errors.Is(err, errIncomplete) && !datagram {
			c.splitFrames++
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %s: %v", frame, dir, err)
		}
		buf = buf[size:]
		n++
		c.frames++
		if dirBit := f.ctrl&0x80 != 0; dirBit == fromOutstation {
			t.Fatalf("frame %d: %s: DIR bit %v", frame, dir, dirBit)
		}
		switch {
		case f.ctrl&0x4f == 0x40|DNP3PriRequestStatus && len(f.user) == 0:
			c.linkReq++
			continue
		case f.ctrl&0x4f == DNP3SecLinkStatus && len(f.user) == 0:
			c.linkResp++
			continue
		case f.ctrl&0x7f != 0x40|DNP3PriUnconfirmedData:
			t.Fatalf("frame %d: %s: link control %#02x", frame, dir, f.ctrl)
		}
		rx := c.rx[dir]
		if rx == nil {
			rx = &transportRx{}
			c.rx[dir] = rx
		}
		wraps := rx.wraps
		frag, segs, err := rx.add(f.user)
		if err != nil {
			t.Fatalf("frame %d: %s: %v", frame, dir, err)
		}
		c.wraps += rx.wraps - wraps
		if frag != nil {
			c.fragments++
			if segs > 1 {
				c.multiSeg++
			}
			c.maxSegs = max(c.maxSegs, segs)
			c.fragment(frame, assoc, fromOutstation, frag)
		}
	}
	if n > 1 {
		c.multiFrame++
	}
	return buf
}

func (c *dnp3Check) fragment(frame int, assoc string, fromOutstation bool, frag []byte) {
	t := c.t
	t.Helper()
	if len(frag) < 2 || frag[0]&0xc0 != 0xc0 {
		t.Fatalf("frame %d: %s: fragment % x is not a single FIR FIN fragment", frame, assoc, frag[:min(len(frag), 4)])
	}
	ctl, fc, seq, uns, con := frag[0], frag[1], frag[0]&0x0f, frag[0]&0x10 != 0, frag[0]&0x20 != 0
	c.fcs[fc]++
	objs := frag[2:]
	switch {
	case !fromOutstation && fc == DNP3Confirm:
		want, ok := c.conPending[assoc]
		if !ok || want != 1+int(seq)+b2i(uns)<<8 {
			t.Fatalf("frame %d: %s: confirm %#02x of nothing (awaiting %x)", frame, assoc, ctl, want)
		}
		delete(c.conPending, assoc)
		if uns {
			c.unsConfirms++
		}
	case !fromOutstation:
		if uns || con || fc > DNP3Operate && fc != DNP3ColdRestart && fc != DNP3WarmRestart {
			t.Fatalf("frame %d: %s: request ctl %#02x fc %d", frame, assoc, ctl, fc)
		}
		c.lastReq[assoc] = seq
	case fc == DNP3Response || fc == DNP3UnsolicitedResponse:
		if len(frag) < 4 {
			t.Fatalf("frame %d: %s: response without IIN", frame, assoc)
		}
		if uns != (fc == DNP3UnsolicitedResponse) {
			t.Fatalf("frame %d: %s: fc %d with UNS %v", frame, assoc, fc, uns)
		}
		if req, ok := c.lastReq[assoc]; fc == DNP3Response && (!ok || req != seq) {
			t.Fatalf("frame %d: %s: response seq %d to request seq %d", frame, assoc, seq, req)
		}
		if con {
			c.conPending[assoc] = 1 + int(seq) + b2i(uns)<<8
		}
		objs = frag[4:]
	default:
		t.Fatalf("frame %d: %s: outstation sent fc %d", frame, assoc, fc)
	}
	for len(objs) > 0 {
		name, n, err := walkObject(objs)
		if err != nil {
			t.Fatalf("frame %d: %s: fc %d: %v in % x", frame, assoc, fc, err, objs[:min(len(objs), 16)])
		}
		c.objects[name]++
		objs = objs[n:]
	}
}

// walkObject returns the name ("g30v5") and length of the object header
// and objects at the start of b, for the objects and qualifiers the plant
// uses.
func walkObject(b []byte) (string, int, error) {
	if len(b) < 3 {
		return "", 0, errors.New("short object header")
	}
	g, v, q := b[0], b[1], b[2]
	name := fmt.Sprintf("g%dv%d", g, v)
	size := map[string]int{"g1v2": 1, "g2v2": 7, "g30v5": 5, "g30v1": 5, "g32v1": 5, "g12v1": 11, "g41v1": 5, "g50v1": 6, "g52v2": 2, "g80v1": 0}[name]
	if size == 0 && name != "g80v1" && g != 60 {
		return "", 0, fmt.Errorf("unexpected object %s", name)
	}
	var count, prefix, hdr int
	switch q {
	case 0x06:
		hdr = 3
	case 0x00:
		if len(b) < 5 {
			return "", 0, errors.New("short range")
		}
		hdr, count = 5, int(b[4])-int(b[3])+1
	case 0x01:
		if len(b) < 7 {
			return "", 0, errors.New("short range")
		}
		hdr, count = 7, int(binary.LittleEndian.Uint16(b[5:]))-int(binary.LittleEndian.Uint16(b[3:]))+1
	case 0x07:
		if len(b) < 4 {
			return "", 0, errors.New("short count")
		}
		hdr, count = 4, int(b[3])
	case 0x17:
		if len(b) < 4 {
			return "", 0, errors.New("short count")
		}
		hdr, count, prefix = 4, int(b[3]), 1
	case 0x28:
		if len(b) < 5 {
			return "", 0, errors.New("short count")
		}
		hdr, count, prefix = 5, int(binary.LittleEndian.Uint16(b[3:])), 2
	default:
		return "", 0, fmt.Errorf("unexpected qualifier %#02x", q)
	}
	if (g == 60) != (q == 0x06) || count < 0 || (count == 0 && q != 0x06) {
		return "", 0, fmt.Errorf("%s with qualifier %#02x and count %d", name, q, count)
	}
	n := hdr + count*(prefix+size)
	if name == "g80v1" {
		n = hdr + (count+7)/8
	}
	if n > len(b) {
		return "", 0, fmt.Errorf("%s of %d octets, %d left", name, n, len(b))
	}
	return name, n, nil
}

func (c *dnp3Check) finish() {
	t := c.t
	t.Helper()
	for _, fc := range []uint8{DNP3Confirm, DNP3Read, DNP3Write, DNP3Select, DNP3Operate, DNP3Response, DNP3UnsolicitedResponse} {
		if c.fcs[fc] == 0 {
			t.Errorf("no DNP3 fragments with function code %d", fc)
		}
	}
	for _, o := range []string{"g1v2", "g2v2", "g30v5", "g32v1", "g12v1", "g41v1", "g50v1", "g80v1", "g60v1", "g60v2", "g60v3", "g60v4"} {
		if c.objects[o] == 0 {
			t.Errorf("no DNP3 object %s", o)
		}
	}
}

// heapSampler discards what is written and records the live heap after
// the given numbers of bytes.
type heapSampler struct {
	n       int
	at      []int
	samples []uint64
}

func (h *heapSampler) Write(p []byte) (int, error) {
	h.n += len(p)
	if len(h.at) > 0 && h.n >= h.at[0] {
		h.at = h.at[1:]
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.samples = append(h.samples, ms.HeapAlloc)
	}
	return len(p), nil
}

var _ io.Writer = (*heapSampler)(nil)

func TestPlantMemoryFlat(t *testing.T) {
	testenv.Long(t, "writes 150,000 packets of each plant")
	// The site plant writes about half the bytes a packet.
	for i, at := range [][]int{{10 << 20, 40 << 20}, {10 << 20, 24 << 20}} {
		g := generators[i]
		t.Run(g.name, func(t *testing.T) {
			h := &heapSampler{at: slices.Clone(at)}
			w, err := NewWriter(h, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.gen(w, 150000, 3); err != nil {
				t.Fatal(err)
			}
			if len(h.samples) != 2 {
				t.Fatalf("only %d heap samples after %d bytes", len(h.samples), h.n)
			}
			early, late := h.samples[0], h.samples[1]
			t.Logf("live heap after %d MiB: %d KiB, after %d MiB: %d KiB", at[0]>>20, early>>10, at[1]>>20, late>>10)
			if late > early+1<<20 {
				t.Errorf("live heap grew from %d to %d bytes while streaming", early, late)
			}
		})
	}
}

// benchGenerator measures a generator alone: one op is one capture of
// 1,000,000 packets written to io.Discard.
func benchGenerator(b *testing.B, gen func(*Writer, int, int64) error) {
	for b.Loop() {
		w, err := NewWriter(io.Discard, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := gen(w, 1000000, 1); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlant measures Plant alone; see benchGenerator.
func BenchmarkPlant(b *testing.B) { benchGenerator(b, Plant) }

// BenchmarkSitePlant measures SitePlant alone; see benchGenerator.
func BenchmarkSitePlant(b *testing.B) { benchGenerator(b, SitePlant) }
