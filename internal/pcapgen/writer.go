package pcapgen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Link is the link-layer encapsulation of a capture. The zero value is
// invalid; Options.Link defaults to LinkEthernet.
type Link uint8

const (
	LinkEthernet Link = iota + 1 // Ethernet II (LINKTYPE_ETHERNET 1)
	LinkVLAN                     // Ethernet with one 802.1Q tag
	LinkQinQ                     // Ethernet with an 802.1ad outer tag (0x88a8) and an 802.1Q inner tag
	LinkNull                     // BSD loopback (LINKTYPE_NULL 0): 4-byte address family
	LinkRaw                      // raw IPv4/IPv6 (LINKTYPE_RAW 101)
	LinkSLL                      // Linux cooked capture v1 (LINKTYPE_LINUX_SLL 113)
)

var linkNames = [...]string{
	LinkEthernet: "ethernet",
	LinkVLAN:     "vlan",
	LinkQinQ:     "qinq",
	LinkNull:     "null",
	LinkRaw:      "raw",
	LinkSLL:      "sll",
}

func (l Link) String() string {
	if int(l) < len(linkNames) && linkNames[l] != "" {
		return linkNames[l]
	}
	return fmt.Sprintf("Link(%d)", uint8(l))
}

// LinkType is the capture file's link-layer header type for l.
func (l Link) LinkType() layers.LinkType {
	switch l {
	case LinkNull:
		return layers.LinkTypeNull
	case LinkRaw:
		return layers.LinkTypeRaw
	case LinkSLL:
		return layers.LinkTypeLinuxSLL
	default:
		return layers.LinkTypeEthernet
	}
}

// CarriesARP reports whether frames of this link type can hold ARP.
func (l Link) CarriesARP() bool { return l != LinkNull && l != LinkRaw }

// Defaults of Options.
const (
	DefaultVLAN      = 10
	DefaultOuterVLAN = 100
	DefaultStep      = 100 * time.Microsecond
	DefaultSnaplen   = 262144
)

// DefaultStart is the timestamp of the first frame unless Options.Start is set.
var DefaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure a Writer. The zero value writes Ethernet in pcap format.
type Options struct {
	Link   Link // default LinkEthernet
	PcapNG bool // write pcapng instead of pcap

	VLAN      uint16 // tag of LinkVLAN, inner tag of LinkQinQ; default DefaultVLAN
	OuterVLAN uint16 // outer tag of LinkQinQ; default DefaultOuterVLAN

	// NullFamilyIPv6 is the LinkNull address family of IPv6 frames: 24
	// (NetBSD, OpenBSD), 28 (FreeBSD) or 30 (macOS, the default).
	NullFamilyIPv6 uint32
	// NullBigEndian writes the LinkNull family big-endian. The default is
	// little-endian, the host order of every board tapwatch targets.
	NullBigEndian bool

	Start   time.Time     // time of the first frame; default DefaultStart
	Step    time.Duration // clock advance after each frame; default DefaultStep
	Snaplen uint32        // file header snap length; default DefaultSnaplen
}

func (o *Options) setDefaults() error {
	if o.Link == 0 {
		o.Link = LinkEthernet
	}
	if o.Link > LinkSLL {
		return fmt.Errorf("pcapgen: unknown link %d", o.Link)
	}
	if o.VLAN == 0 {
		o.VLAN = DefaultVLAN
	}
	if o.OuterVLAN == 0 {
		o.OuterVLAN = DefaultOuterVLAN
	}
	if o.VLAN > 4094 || o.OuterVLAN > 4094 {
		return fmt.Errorf("pcapgen: VLAN ids %d/%d out of range 1-4094", o.VLAN, o.OuterVLAN)
	}
	switch o.NullFamilyIPv6 {
	case 0:
		o.NullFamilyIPv6 = uint32(layers.ProtocolFamilyIPv6Darwin)
	case 24, 28, 30:
	default:
		return fmt.Errorf("pcapgen: NullFamilyIPv6 %d is not 24, 28 or 30", o.NullFamilyIPv6)
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.Step == 0 {
		o.Step = DefaultStep
	}
	if o.Step < 0 {
		return fmt.Errorf("pcapgen: negative Step %v", o.Step)
	}
	if o.Snaplen == 0 {
		o.Snaplen = DefaultSnaplen
	}
	return nil
}

// ErrLinkCannotCarry is returned when a frame's network protocol cannot be
// encapsulated in the Writer's link type (ARP on LinkNull or LinkRaw).
var ErrLinkCannotCarry = errors.New("pcapgen: link type cannot carry this protocol")

// Writer writes frames to a pcap or pcapng stream, numbering them from 1 and
// stamping them from its clock. It buffers: call Flush before closing the
// underlying file. It is not safe for concurrent use.
type Writer struct {
	opts Options
	bw   *bufio.Writer
	pcap *pcapgo.Writer
	ng   *pcapgo.NgWriter

	packets int
	now     time.Time
	ipID    uint16

	buf  gopacket.SerializeBuffer
	tmp  gopacket.SerializeBuffer // UDP datagrams before fragmentation
	ls   []gopacket.SerializableLayer
	eth  layers.Ethernet
	tags [2]layers.Dot1Q
	null nullHeader
	sll  sllHeader

	// Reused by the TCP and UDP helpers so that writing allocates little.
	ip4 layers.IPv4
	ip6 layers.IPv6
	tcp layers.TCP
	udp layers.UDP
}

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

// NewWriter writes the file header to out and returns a Writer.
func NewWriter(out io.Writer, opts Options) (*Writer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	w := &Writer{
		opts: opts,
		now:  opts.Start,
		buf:  gopacket.NewSerializeBuffer(),
		tmp:  gopacket.NewSerializeBuffer(),
		ls:   make([]gopacket.SerializableLayer, 0, 8),
	}
	if opts.PcapNG {
		intf := pcapgo.DefaultNgInterface
		intf.LinkType = opts.Link.LinkType()
		intf.SnapLength = opts.Snaplen
		ng, err := pcapgo.NewNgWriterInterface(out, intf, pcapgo.DefaultNgWriterOptions)
		if err != nil {
			return nil, fmt.Errorf("pcapgen: writing pcapng header: %w", err)
		}
		w.ng = ng
	} else {
		w.bw = bufio.NewWriterSize(out, 1<<16)
		w.pcap = pcapgo.NewWriter(w.bw)
		if err := w.pcap.WriteFileHeader(opts.Snaplen, opts.Link.LinkType()); err != nil {
			return nil, fmt.Errorf("pcapgen: writing pcap header: %w", err)
		}
	}
	return w, nil
}

// Link is the Writer's link encapsulation.
func (w *Writer) Link() Link { return w.opts.Link }

// Packets is the number of frames written so far, which is also the frame
// number of the last one.
func (w *Writer) Packets() int { return w.packets }

// Now is the timestamp the next frame written by a helper will carry.
func (w *Writer) Now() time.Time { return w.now }

// Advance moves the clock forward by d, e.g. to model a polling interval.
func (w *Writer) Advance(d time.Duration) {
	if d > 0 {
		w.now = w.now.Add(d)
	}
}

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() error {
	if w.ng != nil {
		return w.ng.Flush()
	}
	return w.bw.Flush()
}

// WritePacket writes one complete link-layer frame with timestamp ts. A ts
// later than the clock moves the clock to ts + Step.
func (w *Writer) WritePacket(ts time.Time, frame []byte) error {
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}
	var err error
	if w.ng != nil {
		err = w.ng.WritePacket(ci, frame)
	} else {
		err = w.pcap.WritePacket(ci, frame)
	}
	if err != nil {
		return fmt.Errorf("pcapgen: writing frame %d: %w", w.packets+1, err)
	}
	w.packets++
	if next := ts.Add(w.opts.Step); next.After(w.now) {
		w.now = next
	}
	return nil
}

// WriteLayers encapsulates network-layer packet l (its first layer IPv4,
// IPv6 or ARP) in the Writer's link type, stamps it with the clock and writes
// it. src and dst are the Ethernet addresses (the source alone for LinkSLL,
// neither for LinkNull and LinkRaw). Lengths and checksums are computed;
// transport layers need SetNetworkLayerForChecksum. It returns the frame
// number.
func (w *Writer) WriteLayers(src, dst net.HardwareAddr, l ...gopacket.SerializableLayer) (int, error) {
	if len(l) == 0 {
		return 0, errors.New("pcapgen: WriteLayers with no layers")
	}
	if err := w.link(src, dst, l[0].LayerType()); err != nil {
		return 0, err
	}
	w.ls = append(w.ls, l...)
	return w.emit()
}

// link starts w.ls with the link-layer headers for a packet whose first
// network layer is of type t.
func (w *Writer) link(src, dst net.HardwareAddr, t gopacket.LayerType) error {
	var et layers.EthernetType
	switch t {
	case layers.LayerTypeIPv4:
		et = layers.EthernetTypeIPv4
	case layers.LayerTypeIPv6:
		et = layers.EthernetTypeIPv6
	case layers.LayerTypeARP:
		et = layers.EthernetTypeARP
	default:
		return fmt.Errorf("pcapgen: first layer %v is not IPv4, IPv6 or ARP", t)
	}
	w.ls = w.ls[:0]
	switch w.opts.Link {
	case LinkEthernet, LinkVLAN, LinkQinQ:
		w.eth = layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: et}
		w.ls = append(w.ls, &w.eth)
		switch w.opts.Link {
		case LinkVLAN:
			w.eth.EthernetType = layers.EthernetTypeDot1Q
			w.tags[0] = layers.Dot1Q{VLANIdentifier: w.opts.VLAN, Type: et}
			w.ls = append(w.ls, &w.tags[0])
		case LinkQinQ:
			w.eth.EthernetType = layers.EthernetTypeQinQ
			w.tags[0] = layers.Dot1Q{VLANIdentifier: w.opts.OuterVLAN, Type: layers.EthernetTypeDot1Q}
			w.tags[1] = layers.Dot1Q{VLANIdentifier: w.opts.VLAN, Type: et}
			w.ls = append(w.ls, &w.tags[0], &w.tags[1])
		}
	case LinkNull:
		switch et {
		case layers.EthernetTypeIPv4:
			w.null.family = uint32(layers.ProtocolFamilyIPv4)
		case layers.EthernetTypeIPv6:
			w.null.family = w.opts.NullFamilyIPv6
		default:
			return fmt.Errorf("%w: %v on %v", ErrLinkCannotCarry, et, w.opts.Link)
		}
		w.null.bigEndian = w.opts.NullBigEndian
		w.ls = append(w.ls, &w.null)
	case LinkRaw:
		if et == layers.EthernetTypeARP {
			return fmt.Errorf("%w: %v on %v", ErrLinkCannotCarry, et, w.opts.Link)
		}
	case LinkSLL:
		w.sll = sllHeader{packetType: sllPacketTypeHost, addr: src, proto: et}
		if isBroadcast(dst) {
			w.sll.packetType = sllPacketTypeBroadcast
		}
		w.ls = append(w.ls, &w.sll)
	}
	return nil
}

// emit serializes w.ls and writes it at the clock's time.
func (w *Writer) emit() (int, error) {
	if err := gopacket.SerializeLayers(w.buf, serializeOpts, w.ls...); err != nil {
		return 0, fmt.Errorf("pcapgen: serializing frame %d: %w", w.packets+1, err)
	}
	if err := w.WritePacket(w.now, w.buf.Bytes()); err != nil {
		return 0, err
	}
	return w.packets, nil
}

func isBroadcast(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0]&mac[1]&mac[2]&mac[3]&mac[4]&mac[5] == 0xff
}

// nullHeader is the 4-byte BSD loopback header. gopacket's Loopback layer
// always writes little-endian; this one can write either order.
type nullHeader struct {
	family    uint32
	bigEndian bool
}

func (h *nullHeader) LayerType() gopacket.LayerType { return layers.LayerTypeLoopback }

func (h *nullHeader) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	p, err := b.PrependBytes(4)
	if err != nil {
		return err
	}
	if h.bigEndian {
		binary.BigEndian.PutUint32(p, h.family)
	} else {
		binary.LittleEndian.PutUint32(p, h.family)
	}
	return nil
}

// Linux cooked capture v1 packet types (sll_pkttype).
const (
	sllPacketTypeHost      = 0
	sllPacketTypeBroadcast = 1
	sllHeaderLen           = 16
	arphrdEther            = 1
)

// sllHeader is the 16-byte Linux cooked header; gopacket decodes it but
// cannot serialize it.
type sllHeader struct {
	packetType uint16
	addr       net.HardwareAddr
	proto      layers.EthernetType
}

func (h *sllHeader) LayerType() gopacket.LayerType { return layers.LayerTypeLinuxSLL }

func (h *sllHeader) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	p, err := b.PrependBytes(sllHeaderLen)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint16(p[0:], h.packetType)
	binary.BigEndian.PutUint16(p[2:], arphrdEther)
	binary.BigEndian.PutUint16(p[4:], uint16(len(h.addr)))
	clear(p[6:14])
	copy(p[6:14], h.addr)
	binary.BigEndian.PutUint16(p[14:], uint16(h.proto))
	return nil
}
