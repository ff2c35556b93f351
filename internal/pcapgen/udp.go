package pcapgen

import (
	"fmt"
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
	if 8+len(payload) > maxIPLen {
		return nil, fmt.Errorf("pcapgen: %d-byte UDP datagram", 8+len(payload))
	}
	w := u.w
	// The UDP datagram whole, with its checksum, is cut in two.
	w.tmp = appendUDP(w.tmp[:0], u.src.port, u.dst.port)
	w.tmp = append(w.tmp, payload...)
	src, dst := u.src.ip.As4(), u.dst.ip.As4()
	setChecksum(w.tmp, protoUDP, src[:], dst[:])
	datagram := w.tmp
	w.ipID++
	id := w.ipID
	frames := make([]int, 0, 2)
	for i, part := range [2][]byte{datagram[:firstLen], datagram[firstLen:]} {
		flagsFrag := uint16(ipv4MoreFragments)
		if i == 1 {
			flagsFrag = uint16(firstLen / 8)
		}
		if err := w.ipv4Header(&u.src, &u.dst, id, flagsFrag, 64, protoUDP); err != nil {
			return frames, err
		}
		w.buf = append(w.buf, part...)
		f, err := w.emitIP()
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
	return frames, nil
}
