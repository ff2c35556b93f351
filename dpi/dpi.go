// Package dpi decodes captured packets from the link layer to the
// application: Ethernet, 802.1Q and QinQ, BSD loopback, Linux cooked and raw
// IP link types; IPv4 and IPv6; TCP and UDP. It keeps a bounded flow table,
// reassembles each direction of a TCP connection, and hands the byte streams
// to the protocol decoders of its registry (Config.Protocols: by default
// Modbus/TCP, Modbus RTU over TCP and DNP3), chosen by port or, for a
// decoder that has a detector (DNP3), by content. Each decoder package
// describes itself with a proto.Protocol, and messages reach the Handler
// through one protocol-neutral call.
//
// The steady-state path allocates nothing per packet: layers are decoded
// into preallocated structs by its own header decoder (decode.go), flow
// records are reused, and payloads are passed on without copying unless a
// segment arrives out of order or an application message spans segments.
package dpi

import (
	"errors"
	"fmt"
	"github.com/tapwatch/tapwatch/dpi/link"
	"net/netip"
	"slices"
	"time"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/dpi/service"
)

// Protocol limits and defaults.
const (
	DefaultMaxFlows      = 4096
	DefaultFlowIdle      = 5 * time.Minute
	DefaultFlowBuffer    = 64 << 10 // bytes held per direction of a flow for reassembly
	DefaultTotalBuffer   = 8 << 20  // bytes held by all flows together
	DefaultMaxOutOfOrder = 16       // segments held per direction while waiting for a hole to fill
	DefaultGapTimeout    = time.Second
	DefaultFlowReport    = 5 * time.Minute
	DefaultModbusPort    = modbus.DefaultPort
	DefaultDNP3Port      = dnp3.DefaultPort

	// maxSeqJump is how far a segment may lie beyond or behind the expected
	// sequence number before the stream is considered lost and resynced.
	maxSeqJump = 1 << 22
)

// Config tunes the decoder. The zero value of each field means its default.
type Config struct {
	ModbusPorts []uint16 // TCP and UDP ports that carry Modbus; default 502
	DNP3Ports   []uint16 // TCP and UDP ports that carry DNP3; default 20000 (DNP3 is also recognised on any port by its link header)
	// ModbusRTUPorts are TCP ports that carry Modbus RTU frames (slave
	// address, PDU, CRC) with no MBAP header: serial-to-Ethernet gateways.
	// None by default; a port listed here is not taken as a Modbus/TCP or
	// DNP3 port by default, but may not be given for those too.
	ModbusRTUPorts []uint16
	MaxFlows       int           // flow records; the least recently used is evicted when full
	FlowIdle       time.Duration // a flow silent this long (packet time) is expired
	FlowBuffer     int           // reassembly bytes one direction of a flow may hold
	TotalBuffer    int           // reassembly bytes all flows may hold together
	MaxOutOfOrder  int           // out-of-order segments held per direction
	GapTimeout     time.Duration // how long (packet time) a hole may stay open before it is skipped
	FlowReport     time.Duration // how often (packet time) a NetHandler hears the counts of the live flows
	Modbus         modbus.Config
	DNP3           dnp3.Config
	// Protocols is the registry of decoders, tried in order (serial ones
	// first) for a flow's ports, and each one's detector, in order, for
	// the first payload of a flow no port claims. Nil means
	// DefaultProtocols(c): the ports and decoder settings above apply only
	// then. To add a protocol, append its descriptor to DefaultProtocols.
	Protocols []proto.Protocol
}

// DefaultProtocols is the registry of c: Modbus RTU over TCP, Modbus/TCP
// and DNP3 on the ports c gives them (or their defaults).
func DefaultProtocols(c Config) []proto.Protocol {
	c.setDefaults()
	// Handlers that want DNP3 point values, or the values a Modbus read
	// response carries, ask for them (dnp3.Message.DecodePoints,
	// modbus.Message.DecodeValues); the rest of the pipeline skips the
	// work.
	c.DNP3.LazyPoints = true
	c.Modbus.LazyValues = true
	rtu, mb, dn := modbus.RTUProtocol(c.Modbus), modbus.Protocol(c.Modbus), dnp3.Protocol(c.DNP3)
	rtu.Ports, mb.Ports, dn.Ports = c.ModbusRTUPorts, c.ModbusPorts, c.DNP3Ports
	return []proto.Protocol{rtu, mb, dn}
}

func (c *Config) setDefaults() {
	if len(c.ModbusPorts) == 0 {
		c.ModbusPorts = []uint16{DefaultModbusPort}
	}
	if len(c.DNP3Ports) == 0 {
		c.DNP3Ports = []uint16{DefaultDNP3Port}
	}
	if c.MaxFlows == 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.FlowIdle == 0 {
		c.FlowIdle = DefaultFlowIdle
	}
	if c.FlowBuffer == 0 {
		c.FlowBuffer = DefaultFlowBuffer
	}
	if c.TotalBuffer == 0 {
		c.TotalBuffer = DefaultTotalBuffer
	}
	if c.MaxOutOfOrder == 0 {
		c.MaxOutOfOrder = DefaultMaxOutOfOrder
	}
	if c.GapTimeout == 0 {
		c.GapTimeout = DefaultGapTimeout
	}
	if c.FlowReport == 0 {
		c.FlowReport = DefaultFlowReport
	}
}

// Validate checks the configuration after defaults are applied.
func (c Config) Validate() error {
	var errs []error
	for _, p := range c.ModbusRTUPorts {
		switch {
		case p == 0:
			errs = append(errs, errors.New("modbus rtu port 0 is not a port"))
		case slices.Contains(c.ModbusPorts, p):
			errs = append(errs, fmt.Errorf("port %d is given for both Modbus/TCP and Modbus RTU over TCP", p))
		case slices.Contains(c.DNP3Ports, p):
			errs = append(errs, fmt.Errorf("port %d is given for both DNP3 and Modbus RTU over TCP", p))
		}
	}
	c.setDefaults()
	for _, p := range c.ModbusPorts {
		if p == 0 {
			errs = append(errs, errors.New("modbus port 0 is not a port"))
		}
		if slices.Contains(c.DNP3Ports, p) {
			errs = append(errs, fmt.Errorf("port %d is given for both Modbus and DNP3", p))
		}
	}
	for _, p := range c.DNP3Ports {
		if p == 0 {
			errs = append(errs, errors.New("dnp3 port 0 is not a port"))
		}
	}
	if err := c.DNP3.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxFlows < 16 || c.MaxFlows > 1<<22 {
		errs = append(errs, fmt.Errorf("max flows %d is outside 16..%d", c.MaxFlows, 1<<22))
	}
	if c.FlowIdle < time.Second {
		errs = append(errs, fmt.Errorf("flow idle timeout %v is shorter than 1s", c.FlowIdle))
	}
	if c.FlowBuffer < 1024 {
		errs = append(errs, fmt.Errorf("flow buffer %d bytes is below 1024", c.FlowBuffer))
	}
	if c.TotalBuffer < c.FlowBuffer {
		errs = append(errs, fmt.Errorf("total buffer %d bytes is below the flow buffer %d", c.TotalBuffer, c.FlowBuffer))
	}
	if c.MaxOutOfOrder < 1 || c.MaxOutOfOrder > 1024 {
		errs = append(errs, fmt.Errorf("max out-of-order segments %d is outside 1..1024", c.MaxOutOfOrder))
	}
	if c.GapTimeout < 0 {
		errs = append(errs, fmt.Errorf("gap timeout %v is negative", c.GapTimeout))
	}
	if c.FlowReport < time.Second {
		errs = append(errs, fmt.Errorf("flow report interval %v is shorter than 1s", c.FlowReport))
	}
	for i, p := range c.Protocols {
		if p.ID == proto.None || p.NewDecoder == nil {
			errs = append(errs, fmt.Errorf("protocol %d (%v) has no ID or no decoder", i, p.ID))
		}
	}
	return errors.Join(errs...)
}

// Transport is how a flow carries its messages: the layer-4 protocol, and
// for Modbus RTU frames in a TCP stream, that. The zero value is invalid.
type Transport uint8

const (
	TCP        Transport = 1
	UDP        Transport = 2
	RTUOverTCP Transport = 3 // TCP carrying Modbus RTU frames: a serial gateway's port (Config.ModbusRTUPorts)
)

func (t Transport) String() string {
	switch t {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case RTUOverTCP:
		return "rtu_over_tcp"
	}
	return "unknown"
}

// App is the application protocol decoded on a flow: the one protocol
// identity, proto.ID.
type App = proto.ID

// The protocols, by their older names.
const (
	AppNone   = proto.None
	AppModbus = proto.Modbus
	AppDNP3   = proto.DNP3
)

// Side says which end of a flow sent a message.
type Side = proto.Side

const (
	FromClient = proto.FromClient
	FromServer = proto.FromServer
)

// Flow is what handlers see of a conversation. Client is the side that
// talks to the well-known port.
type Flow struct {
	ID        uint64 // unique per engine, never reused
	Transport Transport
	Client    netip.AddrPort
	Server    netip.AddrPort
	ClientMAC [6]byte
	ServerMAC [6]byte
	VLAN      uint16 // outer 802.1Q id; 0 when untagged
	App       App
	MidStream bool // the capture did not see the connection open
	// Packets and Bytes (frame lengths) sent by the client [0] and the
	// server [1] so far. For a TCP flow no registered protocol claims,
	// the client is the side that sent the SYN when it was seen; else the
	// side with the higher port.
	Packets [2]uint64
	Bytes   [2]uint64
	// Lost counts the gaps in the TCP stream each side sent (client [0],
	// server [1]): bytes the capture missed or gave up on, and bytes the
	// peer acknowledged that the tap had not seen. A handler that
	// compares what a side said before and after can tell a possible loss
	// in between.
	Lost [2]uint32
	// NewPackets and NewBytes are what each side sent since the last
	// NetHandler.FlowCounts; set for that call.
	NewPackets, NewBytes [2]uint64
	End                  End // how the flow ended: set before NetHandler.FlowEnd
	// Frame is the capture frame being decoded when a FlowHandler or
	// NetHandler hears of the flow: its first, its first payload, its end.
	Frame uint64
	// Service is the flow's service once its first payload is seen
	// (NetHandler.FlowData): by content, else by the server port.
	Service service.ID
}

// Handler receives decoded application messages. m is a pointer to the
// decoder's reused message (*modbus.Message, *dnp3.Message, or another
// registered protocol's type); from says which end of f sent it. A handler
// type-switches on m and ignores the types it does not know. The
// arguments are reused after the call returns. For DNP3, point values are
// decoded only when the handler calls m.DecodePoints.
type Handler interface {
	Message(f *Flow, from Side, m any)
}

// FlowHandler is implemented by handlers that want to hear of every new
// conversation, whatever its protocol, if any: an OT host talking to the
// Internet shows only in its flows. f is reused after the call returns.
type FlowHandler interface {
	NewFlow(f *Flow, t time.Time)
}

// Counters count what the engine saw. Every field only grows, except the
// ones documented as gauges.
type Counters struct {
	Packets        uint64 `json:"packets"`
	Bytes          uint64 `json:"bytes"`
	NonIP          uint64 `json:"non_ip"`         // well-formed frames with no IP layer (ARP, LLDP, STP...)
	Undecodable    uint64 `json:"undecodable"`    // frames whose headers could not be decoded
	UnsupportedL2  uint64 `json:"unsupported_l2"` // link types the engine does not know
	Truncated      uint64 `json:"truncated"`      // packets cut short by the snap length
	BadIPLength    uint64 `json:"bad_ip_length"`  // IP length beyond the frame, though the frame was not cut
	IPv4           uint64 `json:"ipv4"`
	IPv6           uint64 `json:"ipv6"`
	TCP            uint64 `json:"tcp"`
	UDP            uint64 `json:"udp"`
	OtherIP        uint64 `json:"other_ip"`
	VLANTagged     uint64 `json:"vlan_tagged"`
	IPv4Fragments  uint64 `json:"ipv4_fragments"` // fragments are counted, not reassembled
	FlowsCreated   uint64 `json:"flows_created"`
	FlowsActive    uint64 `json:"flows_active"`     // gauge
	FlowsEvicted   uint64 `json:"flows_evicted"`    // dropped to make room (LRU)
	FlowsExpired   uint64 `json:"flows_expired"`    // idle for longer than FlowIdle
	FlowsClosed    uint64 `json:"flows_closed"`     // FIN from both sides, or RST
	FlowsFlushed   uint64 `json:"flows_flushed"`    // still open when Flush was called (end of a capture)
	TCPMidStream   uint64 `json:"tcp_mid_stream"`   // connections first seen without their handshake
	TCPOutOfOrder  uint64 `json:"tcp_out_of_order"` // segments that arrived ahead of a hole
	TCPRetransmits uint64 `json:"tcp_retransmits"`  // segments whose bytes were all delivered or held already
	TCPOverlaps    uint64 `json:"tcp_overlaps"`     // segments partly delivered or held already (the new part is used)
	TCPConflicts   uint64 `json:"tcp_conflicts"`    // segments whose overlapping bytes differed from a held first copy, or, in ICS flows, from the last bytes delivered
	TCPAckedUnseen uint64 `json:"tcp_acked_unseen"` // acknowledgements of bytes the tap never saw (capture loss, or bytes that came late)
	TCPGaps        uint64 `json:"tcp_gaps"`         // holes skipped; the decoder resynced after each
	TCPGapBytes    uint64 `json:"tcp_gap_bytes"`    // bytes known lost in those holes
	TCPBufferDrops uint64 `json:"tcp_buffer_drops"` // segments not held because a memory cap was reached
	TCPIgnoredRSTs uint64 `json:"tcp_ignored_rsts"` // resets far outside the stream, which did not end the flow
	BufferedBytes  uint64 `json:"buffered_bytes"`   // gauge: reassembly bytes held now
	BufferedPeak   uint64 `json:"buffered_peak"`    // the most reassembly bytes ever held at once
	AppBytes       uint64 `json:"app_bytes"`        // application bytes handed to decoders
	DNP3Sniffed    uint64 `json:"dnp3_sniffed"`     // flows recognised by content on a port not configured for them (by default only DNP3 has a detector)
	ARP            uint64 `json:"arp"`              // ARP frames (counted in non_ip too)
	ARPOther       uint64 `json:"arp_other"`        // ARP frames not for IPv4 over Ethernet, not handed on
	ICMP           uint64 `json:"icmp"`             // ICMP and ICMPv6 messages (counted in other_ip too)
}

// Engine decodes packets. It is not safe for concurrent use.
type Engine struct {
	cfg    Config
	h      Handler
	fh     FlowHandler      // h, when it wants new flows
	nh     NetHandler       // h, when it watches the network
	ih     IntegrityHandler // h, when it checks the integrity of ICS streams
	protos []registered     // the registry, serial protocols first
	// sniffers are the protocols of the registry with a content
	// detector, in its order: sniff tries them on every flow no port
	// claims.
	sniffers []sniffer
	sink     sink
	// The headers of the current frame (decode.go).
	decoded    []layer
	truncated  bool
	eth        ethHeader
	cookedEth  bool // a Linux cooked header gave eth.src (and eth.dst, when broadcast)
	vlan       vlanStack
	ip4        ip4Header
	ip6        ip6Header
	tcp        tcpHeader
	udp        udpHeader
	arpHdr     arpHeader
	icmp       icmpHeader
	arp        ARP                 // handed to nh, reused
	icmpMsg    ICMP                // handed to nh, reused
	integ      Integrity           // handed to ih, reused
	first      [ConflictBytes]byte // the versions of a Conflict report
	second     [ConflictBytes]byte
	ttl        uint8     // the current packet's IPv4 TTL or IPv6 hop limit
	fast       bool      // the current packet was decoded by fastPacket
	fr         fastFrame // fastPacket's, reused
	synDir     int       // for a TCP packet: 1 a SYN (to the server), 2 a SYN-ACK (from it), 0 neither
	flows      table
	now        int64 // packet time of the packet being decoded, unix ns
	nextScan   int64
	nextReport int64 // packet time of the next report of the live flows' counts
	meta       proto.Meta
	cur        *flow // flow whose messages are being delivered
	cut        int   // bytes of the current packet the snap length cut off
	size       int   // bytes of the current packet, as captured
	c          Counters
}

// New returns an engine that reports messages to h.
func New(cfg Config, h Handler) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	protos := cfg.Protocols
	if protos == nil {
		protos = DefaultProtocols(cfg)
	}
	cfg.setDefaults()
	e := &Engine{cfg: cfg, h: h}
	e.sink.e = e
	e.fh, _ = h.(FlowHandler)
	e.nh, _ = h.(NetHandler)
	e.ih, _ = h.(IntegrityHandler)
	for _, serial := range []bool{true, false} {
		for _, p := range protos {
			if p.Serial != serial {
				continue
			}
			r := registered{Protocol: p, dec: p.NewDecoder()}
			for _, port := range p.Ports {
				r.ports[port/64] |= 1 << (port % 64)
			}
			e.protos = append(e.protos, r)
		}
	}
	for i, p := range e.protos {
		if p.Detect != nil {
			e.sniffers = append(e.sniffers, sniffer{i + 1, p.Detect})
		}
	}
	e.decoded = make([]layer, 0, 16)
	e.flows.init(cfg.MaxFlows)
	return e, nil
}

// Counters returns a copy of the counters.
func (e *Engine) Counters() Counters {
	c := e.c
	c.FlowsActive = uint64(e.flows.live)
	return c
}

// portSet is a bitmap of ports.
type portSet [65536 / 64]uint64

func (e *Engine) isPort(s *portSet, p uint16) bool { return s[p/64]&(1<<(p%64)) != 0 }

// vlanStack is the 802.1Q and 802.1ad tags of a frame: the first two
// ids, and how many there were.
type vlanStack struct {
	ids [2]uint16
	n   int
}

// firstLayer returns the header a packet of link type lt starts with,
// or lNone.
func firstLayer(lt link.Type, data []byte) layer {
	switch lt {
	case link.Ethernet:
		return lEthernet
	case link.Null, link.Loop:
		return lLoopback
	case link.LinuxSLL:
		return lSLL
	case link.LinuxSLL2:
		return lSLL2
	case link.IPv4:
		return lIPv4
	case link.IPv6:
		return lIPv6
	case link.Raw, link.RawBSD, link.RawOpenBSD:
		if len(data) > 0 {
			switch data[0] >> 4 {
			case 4:
				return lIPv4
			case 6:
				return lIPv6
			}
		}
	}
	return lNone
}

// Packet decodes one captured packet. frame is its 1-based number in the
// capture; wire is its length on the wire, which is more than len(data)
// when the snap length cut it (0 means len(data)). data may be reused by
// the caller after Packet returns.
func (e *Engine) Packet(lt link.Type, ts time.Time, frame uint64, data []byte, wire int) {
	e.cut = max(wire-len(data), 0)
	e.c.Packets++
	e.c.Bytes += uint64(len(data))
	e.size = len(data)
	e.now = ts.UnixNano()
	e.meta.Time, e.meta.Frame = ts, frame // field by field: a 32-bit build copied a literal through duffcopy
	e.expireIdle()
	e.reportAll()

	if lt == link.Ethernet && e.fastPacket(data) {
		return
	}
	e.fast = false
	first := firstLayer(lt, data)
	if first == lNone {
		e.c.UnsupportedL2++
		return
	}
	err := e.decodeFrame(first, data)
	if e.truncated {
		e.c.Truncated++
	}
	h := e.decodedHeaders()
	v4, v6, tcp, udp, eth, arp, icmp, icmp6 := h.v4, h.v6, h.tcp, h.udp, h.eth, h.arp, h.icmp4 || h.icmp6, h.icmp6
	if e.vlan.n > 0 {
		e.c.VLANTagged++
	}
	var mac macs
	if eth || e.cookedEth {
		mac = macsOf(e.eth.dst, e.eth.src)
	}
	var k flowKey
	switch {
	case v4:
		e.c.IPv4++
		if e.ip4.flagsFrag&0x3fff != 0 { // more fragments, or an offset
			e.c.IPv4Fragments++
			return
		}
		k.a, k.b = ip16From4(e.ip4.src[:]), ip16From4(e.ip4.dst[:])
		e.ttl = e.ip4.ttl
	case v6:
		e.c.IPv6++
		k.a, k.b = ip16From16(e.ip6.src[:]), ip16From16(e.ip6.dst[:])
		e.ttl = e.ip6.hopLimit
	case err != nil:
		e.c.Undecodable++
		return
	default:
		e.c.NonIP++
		if arp {
			e.arpPacket(&mac) // its own addresses say who sent it; the link's, when known
		}
		return
	}
	if e.vlan.n > 0 {
		k.setVLAN(e.vlan.ids[0])
	}
	switch {
	case tcp && err == nil:
		e.c.TCP++
		k.setProto(ipTCP)
		k.setPorts(e.tcp.SrcPort, e.tcp.DstPort)
		e.tcpPacket(&k, &mac, &e.tcp)
	case udp && err == nil:
		e.c.UDP++
		k.setProto(ipUDP)
		k.setPorts(e.udp.SrcPort, e.udp.DstPort)
		e.udpPacket(&k, &mac, e.udp.Payload)
	default:
		e.c.OtherIP++
		if icmp && err == nil {
			e.icmpPacket(&k, &mac, icmp6)
		}
	}
}

// headerSet says which headers decodeFrame decoded in the current frame.
type headerSet struct {
	eth, v4, v6, tcp, udp, arp, icmp4, icmp6 bool
}

func (e *Engine) decodedHeaders() (h headerSet) {
	for _, t := range e.decoded {
		switch t {
		case lEthernet:
			h.eth = true
		case lIPv4:
			h.v4 = true
		case lIPv6:
			h.v6 = true
		case lTCP:
			h.tcp = true
		case lUDP:
			h.udp = true
		case lARP:
			h.arp = true
		case lICMPv4:
			h.icmp4 = true
		case lICMPv6:
			h.icmp6 = true
		}
	}
	return h
}

// groupAddr reports whether a (16 bytes, IPv4-mapped for IPv4) is a
// multicast or broadcast address: IPv6 or IPv4 multicast, 255.255.255.255,
// or an IPv4 address ending in .255 (the subnet broadcast of the common
// /24 and wider plants).
func groupAddr(a ip16) bool {
	ip := a.addr()
	return ip.IsMulticast() || ip.Is4() && byte(a.lo) == 255
}

// lookup finds or creates the flow of a packet whose source is k.a.
// It returns the flow, the side (0 or 1) the packet was sent from, and
// whether the flow was created for this packet.
func (e *Engine) lookup(k *flowKey, mac *macs, t Transport, create bool) (f *flow, side int, fresh bool) {
	// k is put in canonical order in place; the packet's own orientation is
	// recovered from swapped when a flow is created.
	swapped := k.canonicalize()
	if f = e.flows.cached(k); f == nil {
		f = e.flows.find(k)
	}
	if f == nil {
		if !create {
			return nil, 0, false
		}
		fresh = true
		if e.flows.full() {
			e.closeFlow(e.flows.oldest(), EndEvicted)
		}
		f = e.flows.add(*k)
		e.c.FlowsCreated++
		srcIP, srcPort, dstIP, dstPort := k.a, k.pa(), k.b, k.pb()
		if swapped {
			srcIP, srcPort, dstIP, dstPort = k.b, k.pb(), k.a, k.pa()
		}
		dec, serverSide := e.appFor(t, srcPort, dstPort) // 1: the packet's destination is the server
		switch {
		case dec == 0 && t == TCP && e.synDir != 0:
			// No protocol claims the ports: the SYN says who opened
			// the connection.
			serverSide = 2 - e.synDir
		case dec == 0 && t == UDP && groupAddr(dstIP):
			// A datagram to a group or broadcast address: the group is
			// what is served, whatever the ports say.
			serverSide = 1
		}
		f.Transport = t
		if dec != 0 {
			e.setApp(f, dec)
		}
		f.VLAN = k.vlan()
		f.MidStream = t == TCP && e.synDir == 0
		f.server = serverSide
		if swapped {
			f.server ^= 1
		}
		src := netip.AddrPortFrom(srcIP.addr(), srcPort)
		dst := netip.AddrPortFrom(dstIP.addr(), dstPort)
		if serverSide == 1 {
			f.Client, f.Server, f.ClientMAC, f.ServerMAC = src, dst, mac.src(), mac.dst()
		} else {
			f.Client, f.Server, f.ClientMAC, f.ServerMAC = dst, src, mac.dst(), mac.src()
		}
		f.macGap = f.ClientMAC == [6]byte{} || f.ServerMAC == [6]byte{}
		if e.fh != nil {
			f.Frame = e.meta.Frame
			e.fh.NewFlow(&f.Flow, e.meta.Time)
		}
	}
	f.last = e.now
	e.flows.touch(f)
	if swapped {
		side = 1
	}
	by := f.by(side)
	f.Packets[by]++
	f.Bytes[by] += uint64(e.size)
	if f.macGap && mac.src() != [6]byte{} {
		f.senderMAC(by, mac.src())
	}
	return f, side, fresh
}

// senderMAC fills in the MAC of the flow's end by (0 the client, 1 the
// server), the sender of a packet whose header gave it, when it was not
// known.
func (f *flow) senderMAC(by int, mac [6]byte) {
	at := &f.ClientMAC
	if by == 1 {
		at = &f.ServerMAC
	}
	if *at == [6]byte{} {
		*at = mac
	}
	f.macGap = f.ClientMAC == [6]byte{} || f.ServerMAC == [6]byte{}
}

func (e *Engine) udpPacket(k *flowKey, mac *macs, payload []byte) {
	f, side, fresh := e.lookup(k, mac, UDP, true)
	if fresh {
		e.resetApp(f)
	}
	if len(payload) > 0 {
		f.payload = true
		if f.dec == 0 {
			e.sniff(f, side, payload)
		}
		if !f.svcDone && e.nh != nil {
			e.identify(f, side, payload, true)
		}
	}
	if len(payload) == 0 || f.dec == 0 {
		return
	}
	e.endpoint(f, side, mac.src())
	e.cur = f
	e.c.AppBytes += uint64(len(payload))
	e.appDatagram(f, side, payload)
}

// expireIdle closes flows that have been silent longer than FlowIdle. The
// flow list is kept in order of last activity, so only its tail is checked.
func (e *Engine) expireIdle() {
	if e.now < e.nextScan {
		return
	}
	e.nextScan = e.now + int64(time.Second)
	limit := e.now - int64(e.cfg.FlowIdle)
	for {
		f := e.flows.oldest()
		if f == nil || f.last >= limit {
			return
		}
		e.closeFlow(f, EndExpired)
	}
}

// closeFlow ends a flow: what is still buffered is reported as truncated,
// waiting requests as unanswered, and the record is freed.
func (e *Engine) closeFlow(f *flow, end End) {
	switch end {
	case EndEvicted:
		e.c.FlowsEvicted++
	case EndExpired:
		e.c.FlowsExpired++
	case EndFlushed:
		e.c.FlowsFlushed++
	default:
		e.c.FlowsClosed++
	}
	e.cur = f
	if f.dec != 0 {
		// The client's side first, whichever end of the key it is, so
		// that held requests are decoded before the responses to them.
		for _, side := range [2]int{f.server ^ 1, f.server} {
			h := &f.half[side]
			e.flushHeld(f, side)
			if len(h.buf) > 0 {
				e.appGap(f, side, h.buf)
			}
		}
		e.appClose(f)
	}
	if e.nh != nil {
		e.reportCounts(f)
		if f.payload && !f.svcDone {
			// One side spoke, and said nothing that names the service.
			e.decideService(f, service.Unknown, f.Transport == UDP)
		}
		f.End, f.Frame = end, e.meta.Frame
		e.nh.FlowEnd(&f.Flow, e.meta.Time)
	}
	for side := range f.half {
		e.releaseHalf(&f.half[side])
	}
	e.flows.remove(f)
}

// Flush closes every flow, reporting what each still held. Call it at the
// end of a capture.
func (e *Engine) Flush() {
	for {
		f := e.flows.oldest()
		if f == nil {
			return
		}
		e.closeFlow(f, EndFlushed)
	}
}
