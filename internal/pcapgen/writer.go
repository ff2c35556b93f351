package pcapgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tapwatch/tapwatch/dpi/link"
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
func (l Link) LinkType() link.Type {
	switch l {
	case LinkNull:
		return link.Null
	case LinkRaw:
		return link.Raw
	case LinkSLL:
		return link.LinuxSLL
	default:
		return link.Ethernet
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
		o.NullFamilyIPv6 = nullFamilyIPv6Darwin
	case nullFamilyIPv6BSD, nullFamilyIPv6FreeBSD, nullFamilyIPv6Darwin:
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
	hdr  []byte // a record's header or trailer

	packets int
	now     time.Time
	ipID    uint16

	buf []byte // the frame being built
	l3  int    // where its network layer starts
	tmp []byte // a UDP datagram before fragmentation
}

// NewWriter writes the file header to out and returns a Writer.
func NewWriter(out io.Writer, opts Options) (*Writer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	w := &Writer{
		opts: opts,
		now:  opts.Start,
		bw:   bufio.NewWriterSize(out, 1<<16),
		hdr:  make([]byte, 0, 64),
		buf:  make([]byte, 0, 2048),
	}
	lt := uint16(opts.Link.LinkType())
	if opts.PcapNG {
		w.hdr = appendNgHeader(w.hdr, opts.Snaplen, lt)
	} else {
		w.hdr = appendPcapHeader(w.hdr, opts.Snaplen, lt)
	}
	if _, err := w.bw.Write(w.hdr); err != nil {
		return nil, fmt.Errorf("pcapgen: writing the file header: %w", err)
	}
	return w, nil
}

// Capture returns the capture file that write makes with a Writer of
// options opts: a fixture built in memory.
func Capture(opts Options, write func(*Writer) error) ([]byte, error) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		return nil, err
	}
	if err := write(w); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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
func (w *Writer) Flush() error { return w.bw.Flush() }

// WritePacket writes one complete link-layer frame with timestamp ts. A ts
// later than the clock moves the clock to ts + Step.
func (w *Writer) WritePacket(ts time.Time, frame []byte) error {
	if w.opts.PcapNG {
		w.hdr = appendNgEnhancedHeader(w.hdr[:0], ts, len(frame))
	} else {
		w.hdr = appendPcapRecordHeader(w.hdr[:0], ts, len(frame))
	}
	_, err := w.bw.Write(w.hdr)
	if err == nil {
		_, err = w.bw.Write(frame)
	}
	if err == nil && w.opts.PcapNG {
		w.hdr = appendNgEnhancedTrailer(w.hdr[:0], len(frame))
		_, err = w.bw.Write(w.hdr)
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
