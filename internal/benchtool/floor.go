// Package benchtool is the library behind cmd/tapbench, which `make bench`
// runs: it generates a plant capture (the site plant by default) and a
// policy for it, measures the floor (the cheapest honest way to read and
// decode that capture with gopacket), runs tapwatch replay with the
// policy on the same file as a child process, and reports packets per
// second and peak RSS as ratios to the floor measured in the same
// invocation, and instructions per packet counted with callgrind.
package benchtool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Result is what one measured program reports, as one JSON line on stdout.
// tapwatch replay --json reports at least Packets and Seconds.
type Result struct {
	Packets      int64   `json:"packets"`
	Seconds      float64 `json:"seconds"`
	PPS          float64 `json:"pps"`
	PayloadBytes int64   `json:"payload_bytes"`
}

// readBufferSize is the floor's read buffer.
const readBufferSize = 1 << 20

type packetReader interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

var pcapngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}

// Floor reads a pcap or pcapng stream and decodes every packet with one
// gopacket DecodingLayerParser over preallocated Ethernet, 802.1Q, IPv4,
// IPv6, TCP and UDP layers (BSD loopback and Linux cooked link types too),
// summing TCP payload lengths so that the work cannot be optimised away.
// It does nothing else: it is the floor any packet pipeline built on
// gopacket pays. Packets that fail to decode are counted all the same.
func Floor(r io.Reader) (Result, error) {
	start := time.Now()
	br := bufio.NewReaderSize(r, readBufferSize)
	var (
		src packetReader
		err error
	)
	if magic, _ := br.Peek(4); bytes.Equal(magic, pcapngMagic) {
		src, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		src, err = pcapgo.NewReader(br)
	}
	if err != nil {
		return Result{}, fmt.Errorf("floor: %w", err)
	}

	var (
		eth     layers.Ethernet
		dot1q   layers.Dot1Q
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		loop    layers.Loopback
		sll     layers.LinuxSLL
		first   gopacket.LayerType
		decoded = make([]gopacket.LayerType, 0, 8)
	)
	switch lt := src.LinkType(); lt {
	case layers.LinkTypeEthernet:
		first = layers.LayerTypeEthernet
	case layers.LinkTypeNull:
		first = layers.LayerTypeLoopback
	case layers.LinkTypeLinuxSLL:
		first = layers.LayerTypeLinuxSLL
	default:
		return Result{}, fmt.Errorf("floor: link type %v is not supported", lt)
	}
	parser := gopacket.NewDecodingLayerParser(first, &eth, &dot1q, &ip4, &ip6, &tcp, &udp, &loop, &sll)
	parser.IgnoreUnsupported = true

	var res Result
	for {
		data, _, err := src.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return res, fmt.Errorf("floor: after %d packets: %w", res.Packets, err)
		}
		res.Packets++
		_ = parser.DecodeLayers(data, &decoded)
		for _, t := range decoded {
			if t == layers.LayerTypeTCP {
				res.PayloadBytes += int64(len(tcp.Payload))
			}
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.PPS = float64(res.Packets) / res.Seconds
	}
	return res, nil
}

// FloorFile runs Floor on the named capture file.
func FloorFile(path string) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	res, err := Floor(f)
	if err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}
