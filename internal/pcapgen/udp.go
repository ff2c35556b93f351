package pcapgen

import (
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// UDP writes datagrams between two endpoints.
type UDP struct {
	w        *Writer
	src, dst end
}

// NewUDP returns a UDP conversation from src to dst.
func NewUDP(w *Writer, src, dst Endpoint) (*UDP, error) {
	s, d, err := newEnds(src, dst)
	if err != nil {
		return nil, err
	}
	return &UDP{w: w, src: s, dst: d}, nil
}

// Send writes one datagram from src to dst and returns its frame number.
func (u *UDP) Send(payload []byte) (int, error) {
	return u.w.writeUDP(&u.src, &u.dst, payload)
}

// Reply writes one datagram from dst back to src.
func (u *UDP) Reply(payload []byte) (int, error) {
	return u.w.writeUDP(&u.dst, &u.src, payload)
}

// SendFragments writes one IPv4 datagram from src to dst as two fragments.
// The first carries the first firstLen bytes of the IP payload (the 8-byte
// UDP header and the start of payload), rounded down to a multiple of 8;
// the second the rest. It returns both frame numbers.
func (u *UDP) SendFragments(payload []byte, firstLen int) ([]int, error) {
	if u.src.v6 {
		return nil, fmt.Errorf("pcapgen: SendFragments writes IPv4 fragments; %v is IPv6", u.src.ip)
	}
	firstLen &^= 7
	if firstLen <= 0 || firstLen >= 8+len(payload) {
		return nil, fmt.Errorf("pcapgen: first fragment of %d bytes does not split a %d-byte UDP datagram", firstLen, 8+len(payload))
	}
	w := u.w
	// Serialize UDP alone: the checksum only needs the pseudo-header fields.
	pseudo := &layers.IPv4{Version: 4, Protocol: layers.IPProtocolUDP, SrcIP: u.src.ip, DstIP: u.dst.ip}
	udp := &layers.UDP{SrcPort: layers.UDPPort(u.src.port), DstPort: layers.UDPPort(u.dst.port)}
	if err := udp.SetNetworkLayerForChecksum(pseudo); err != nil {
		return nil, err
	}
	if err := gopacket.SerializeLayers(w.tmp, serializeOpts, udp, gopacket.Payload(payload)); err != nil {
		return nil, err
	}
	datagram := w.tmp.Bytes()
	w.ipID++
	id := w.ipID
	frames := make([]int, 0, 2)
	for i, part := range [2][]byte{datagram[:firstLen], datagram[firstLen:]} {
		if err := w.link(u.src.mac, u.dst.mac, layers.LayerTypeIPv4); err != nil {
			return frames, err
		}
		w.ip4 = layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, Id: id, SrcIP: u.src.ip, DstIP: u.dst.ip}
		if i == 0 {
			w.ip4.Flags = layers.IPv4MoreFragments
		} else {
			w.ip4.FragOffset = uint16(firstLen / 8)
		}
		w.ls = append(w.ls, &w.ip4, gopacket.Payload(part))
		f, err := w.emit()
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
	return frames, nil
}
