package pcapgen

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

func TestUDPFragments(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{Link: LinkVLAN})
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewUDP(w, ep(mac(1), "10.0.0.1", 33000), ep(mac(2), "10.0.0.2", 502))
	if err != nil {
		t.Fatal(err)
	}
	adu := MBAP(7, 1, WriteMultipleRegisters(100, make([]uint16, 40)...)) // 93 bytes
	if _, err := u.Send(adu); err != nil {
		t.Fatal(err)
	}
	frames, err := u.SendFragments(adu, 30) // rounded down to 24: UDP header + 16 bytes
	if err != nil || len(frames) != 2 || frames[0] != 2 || frames[1] != 3 {
		t.Fatalf("SendFragments = %v, %v; want frames 2 and 3", frames, err)
	}
	if _, err := u.Reply(adu[:12]); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	_, pkts := readBack(t, buf.Bytes())
	if len(pkts) != 4 {
		t.Fatalf("read %d frames, want 4", len(pkts))
	}
	first := pkts[1].Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	last := pkts[2].Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if first.Flags != layers.IPv4MoreFragments || first.FragOffset != 0 || len(first.Payload) != 24 {
		t.Errorf("first fragment: flags %v offset %d, %d bytes", first.Flags, first.FragOffset, len(first.Payload))
	}
	if last.Flags != 0 || last.FragOffset != 3 || len(last.Payload) != 8+len(adu)-24 {
		t.Errorf("last fragment: flags %v offset %d, %d bytes", last.Flags, last.FragOffset, len(last.Payload))
	}
	if first.Id != last.Id {
		t.Errorf("fragment ids %d and %d differ", first.Id, last.Id)
	}

	// gopacket's defragmenter gets the datagram back, with a valid checksum.
	d := ip4defrag.NewIPv4Defragmenter()
	if out, err := d.DefragIPv4(first); err != nil || out != nil {
		t.Fatalf("first fragment: %v, %v", out, err)
	}
	whole, err := d.DefragIPv4(last)
	if err != nil || whole == nil {
		t.Fatalf("defragmenting: %v, %v", whole, err)
	}
	p := gopacket.NewPacket(whole.Payload, layers.LayerTypeUDP, gopacket.Default)
	udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok || !bytes.Equal(udp.Payload, adu) || udp.DstPort != 502 {
		t.Fatalf("reassembled UDP %+v", udp)
	}
	udp.SetNetworkLayerForChecksum(whole)
	if err, res := udp.VerifyChecksum(); err != nil || !res.Valid {
		t.Errorf("reassembled UDP checksum: %v %+v", err, res)
	}

	reply := pkts[3].Layer(layers.LayerTypeUDP).(*layers.UDP)
	if reply.SrcPort != 502 || reply.DstPort != 33000 {
		t.Errorf("Reply went %d>%d", reply.SrcPort, reply.DstPort)
	}

	for _, bad := range []int{0, 7, 8 + len(adu) + 7} {
		if _, err := u.SendFragments(adu, bad); err == nil {
			t.Errorf("SendFragments(first=%d) succeeded", bad)
		}
	}
	u6, _ := NewUDP(w, ep(mac(1), "fd00::1", 1), ep(mac(2), "fd00::2", 2))
	if _, err := u6.SendFragments(adu, 16); err == nil {
		t.Error("SendFragments over IPv6 succeeded")
	}
}
