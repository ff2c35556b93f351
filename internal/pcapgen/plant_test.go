package pcapgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func plantCapture(t testing.TB, packets int, seed int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Plant(w, packets, seed); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Packets() < packets || w.Packets() > packets+40 {
		t.Fatalf("Plant(%d) wrote %d frames", packets, w.Packets())
	}
	return buf.Bytes()
}

func TestPlantDeterministic(t *testing.T) {
	a := sha256.Sum256(plantCapture(t, 5000, 1))
	b := sha256.Sum256(plantCapture(t, 5000, 1))
	c := sha256.Sum256(plantCapture(t, 5000, 2))
	if a != b {
		t.Error("the same seed gave different captures")
	}
	if a == c {
		t.Error("different seeds gave the same capture")
	}
}

// TestPlant decodes a plant capture, reassembles every port-502 stream and
// checks that it is well-formed Modbus/TCP with the promised variety.
func TestPlant(t *testing.T) {
	const packets = 30000
	_, pkts := readBack(t, plantCapture(t, packets, 7))

	type flowKey struct{ src, dst string }
	type flow struct {
		next    uint32
		started bool
		buf     []byte
	}
	flows := map[flowKey]*flow{}
	pending := map[string]map[uint16]uint8{} // connection -> tid -> function code
	var (
		modbus, syns, fins, rsts, retrans, splits, multi, exceptions, pipelined int
		arp, icmp, dns, ntp, v6, web                                            int
		fcs                                                                     = map[uint8]int{}
	)
	for i, p := range pkts {
		frame := i + 1
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
		if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			switch {
			case udp.DstPort == 53 || udp.SrcPort == 53:
				dns++
			case udp.DstPort == 123:
				ntp++
			}
			continue
		}
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			continue
		}
		if tcp.SrcPort != 502 && tcp.DstPort != 502 {
			if tcp.DstPort == 443 || tcp.DstPort == 80 || tcp.SrcPort == 443 || tcp.SrcPort == 80 {
				web++
			}
			continue
		}
		modbus++
		nf := p.NetworkLayer().NetworkFlow()
		key := flowKey{fmt.Sprint(nf.Src(), ":", tcp.SrcPort), fmt.Sprint(nf.Dst(), ":", tcp.DstPort)}
		conn := key.src + ">" + key.dst
		if tcp.SrcPort == 502 {
			conn = key.dst + ">" + key.src
		}
		f := flows[key]
		switch {
		case tcp.SYN:
			syns++
			flows[key] = &flow{next: tcp.Seq + 1, started: true}
			if tcp.DstPort == 502 {
				pending[conn] = map[uint16]uint8{}
			}
			continue
		case f == nil:
			t.Fatalf("frame %d: segment of %v without a SYN", frame, key)
		case tcp.FIN:
			fins++
			continue
		case tcp.RST:
			rsts++
			continue
		case len(tcp.Payload) == 0:
			continue
		case tcp.Seq != f.next:
			if int32(tcp.Seq-f.next) > 0 {
				t.Fatalf("frame %d: %v seq %d, expected %d: a gap", frame, key, tcp.Seq, f.next)
			}
			retrans++
			continue
		}
		f.next += uint32(len(tcp.Payload))
		f.buf = append(f.buf, tcp.Payload...)
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
				fcs[fc]++
				pending[conn][tid] = fc
				if len(pending[conn]) > 1 {
					pipelined++
				}
			} else {
				want, ok := pending[conn][tid]
				if !ok || fc&0x7f != want {
					t.Fatalf("frame %d: response tid %d fc %d to no request (pending %v)", frame, tid, fc, pending[conn])
				}
				if fc&0x80 != 0 {
					exceptions++
				}
				delete(pending[conn], tid)
			}
			f.buf = f.buf[n:]
		}
		if len(f.buf) > 0 {
			splits++
		}
		if adus > 1 {
			multi++
		}
	}
	share := float64(modbus) / float64(len(pkts))
	t.Logf("modbus %.1f%%: %d SYNs, %d FINs, %d RSTs, %d retransmissions, %d split, %d multi-ADU segments, %d pipelined, %d exceptions, FCs %v",
		100*share, syns, fins, rsts, retrans, splits, multi, pipelined, exceptions, fcs)
	t.Logf("other: arp %d icmp %d dns %d ntp %d ipv6 %d web %d", arp, icmp, dns, ntp, v6, web)
	if share < 0.58 || share > 0.62 {
		t.Errorf("Modbus share %.3f, want about 0.6", share)
	}
	for name, n := range map[string]int{
		"reconnects": syns - 2*plantMasters*plantPLCs, "closes": fins, "resets": rsts,
		"retransmissions": retrans, "split ADUs": splits, "multi-ADU segments": multi,
		"pipelined requests": pipelined, "exceptions": exceptions,
		"ARP": arp, "ICMP": icmp, "DNS": dns, "NTP": ntp, "IPv6": v6, "HTTP(S)": web,
	} {
		if n <= 0 {
			t.Errorf("no %s in %d packets", name, len(pkts))
		}
	}
	for _, fc := range []uint8{1, 2, 3, 4, 6, 16} {
		if fcs[fc] == 0 {
			t.Errorf("no requests with function code %d", fc)
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
	if testing.Short() {
		t.Skip("writes 150,000 packets")
	}
	h := &heapSampler{at: []int{10 << 20, 50 << 20}}
	w, err := NewWriter(h, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Plant(w, 150000, 3); err != nil {
		t.Fatal(err)
	}
	if len(h.samples) != 2 {
		t.Fatalf("only %d heap samples after %d bytes", len(h.samples), h.n)
	}
	early, late := h.samples[0], h.samples[1]
	t.Logf("live heap after 10 MiB: %d KiB, after 50 MiB: %d KiB", early>>10, late>>10)
	if late > early+1<<20 {
		t.Errorf("live heap grew from %d to %d bytes while streaming", early, late)
	}
}
