package lab

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// The lab's DNP3 stations: a SCADA front end polling an RTU. They exist
// only in the replayed capture; no namespace has their addresses.
var (
	DNP3Master     = netip.MustParseAddr("10.10.1.30")
	DNP3Outstation = netip.MustParseAddr("10.10.1.40")
)

// DNP3 link addresses of the lab's stations.
const (
	DNP3MasterLink     = 1
	DNP3OutstationLink = 10
)

// DNP3Options configure WriteDNP3. The zero value writes the lab's
// stations.
type DNP3Options struct {
	Master, Outstation netip.Addr // default DNP3Master, DNP3Outstation
	Start              time.Time  // time of the first frame; default pcapgen.DefaultStart
}

// LabMAC is the lab's Ethernet address of an IPv4 host: locally
// administered and unicast, 02:00 then the four octets of the address, so
// that a capture shows at a glance which host sent a frame.
func LabMAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
}

// WriteDNP3 writes a pcap (Ethernet) of one DNP3/TCP session between a
// master and an outstation on port 20000, about three seconds and fifty
// packets long: the TCP handshake, a link status check, an integrity poll
// answered by an outstation that has just restarted (IIN1.7 and 1.4),
// the master's writes that clear the restart bit and set the time, class
// 1-3 event polls (events confirmed by the master, or no data), a
// select-before-operate of an analog output (g41v1), another integrity
// poll, and the close. It returns the number of packets written.
func WriteDNP3(out io.Writer, opts DNP3Options) (int, error) {
	if !opts.Master.IsValid() {
		opts.Master = DNP3Master
	}
	if !opts.Outstation.IsValid() {
		opts.Outstation = DNP3Outstation
	}
	if !opts.Master.Is4() || !opts.Outstation.Is4() {
		return 0, fmt.Errorf("DNP3 stations %v and %v: want IPv4 addresses", opts.Master, opts.Outstation)
	}
	w, err := pcapgen.NewWriter(out, pcapgen.Options{Start: opts.Start})
	if err != nil {
		return 0, err
	}
	master := pcapgen.Endpoint{MAC: LabMAC(opts.Master), IP: opts.Master, Port: 49732}
	outstation := pcapgen.Endpoint{MAC: LabMAC(opts.Outstation), IP: opts.Outstation, Port: pcapgen.DNP3Port}
	c, err := pcapgen.NewTCPConn(w, master, outstation, 0x1a2b3c4d, 0x5e6f7081)
	if err != nil {
		return 0, err
	}
	s := &dnp3Session{w: w, tcp: c, d: pcapgen.NewDNP3TCP(c, DNP3MasterLink, DNP3OutstationLink)}
	s.run()
	if s.err != nil {
		return 0, s.err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return w.Packets(), nil
}

// dnp3Session writes the exchanges of WriteDNP3, keeping the first error.
type dnp3Session struct {
	w   *pcapgen.Writer
	tcp *pcapgen.TCPConn
	d   *pcapgen.DNP3Conn
	seq uint8 // application sequence number of the master's next request
	err error
}

func (s *dnp3Session) do(f func() error) {
	if s.err == nil {
		s.err = f()
	}
}

func (s *dnp3Session) pause(d time.Duration) { s.w.Advance(d) }

// exchange sends a request and the outstation's response (with the
// response's CON set when confirm, followed by the master's confirm), then
// the master's ACK of the response unless the confirm carried it.
func (s *dnp3Session) exchange(fc uint8, req [][]byte, iin uint16, confirm bool, resp ...[]byte) {
	seq := s.seq
	s.seq = (s.seq + 1) & 0x0f
	ctl := pcapgen.AppControl(true, true, false, false, seq)
	s.do(func() error { _, err := s.d.Master(pcapgen.AppRequest(ctl, fc, req...)); return err })
	s.pause(8 * time.Millisecond) // the outstation's response time
	rctl := pcapgen.AppControl(true, true, confirm, false, seq)
	s.do(func() error {
		_, err := s.d.Outstation(pcapgen.AppResponse(rctl, pcapgen.DNP3Response, iin, resp...))
		return err
	})
	s.pause(2 * time.Millisecond)
	if confirm {
		s.do(func() error {
			_, err := s.d.Master(pcapgen.AppRequest(pcapgen.AppControl(true, true, false, false, seq), pcapgen.DNP3Confirm))
			return err
		})
		return // the confirm acknowledges the response
	}
	s.do(func() error { _, err := s.tcp.Ack(pcapgen.FromMaster); return err })
}

func (s *dnp3Session) run() {
	classes := func(cs ...uint8) [][]byte {
		h := make([][]byte, len(cs))
		for i, c := range cs {
			h[i] = pcapgen.ClassData(c)
		}
		return h
	}
	binaries := []uint8{ // breaker closed, pump running, door closed, ...
		pcapgen.DNP3FlagOnline | pcapgen.DNP3BinaryState,
		pcapgen.DNP3FlagOnline | pcapgen.DNP3BinaryState,
		pcapgen.DNP3FlagOnline,
		pcapgen.DNP3FlagOnline,
		pcapgen.DNP3FlagOnline | pcapgen.DNP3BinaryState,
		pcapgen.DNP3FlagOnline,
		pcapgen.DNP3FlagOnline,
		pcapgen.DNP3FlagOnline,
	}
	analogs := func(flow float32) []byte { // flow, pressure, tank level, valve
		return pcapgen.AnalogInputsFloat(0, pcapgen.DNP3FlagOnline, flow, 4.25, 61.5, 48)
	}
	now := func() uint64 { return uint64(s.w.Now().UnixMilli()) }

	s.do(func() error { _, err := s.tcp.Handshake(); return err })
	s.pause(20 * time.Millisecond)
	s.do(func() error { _, err := s.d.LinkStatus(); return err })
	s.pause(50 * time.Millisecond)

	// Integrity poll of an outstation that has just restarted; the master
	// clears the restart bit and sets the time.
	restarted := uint16(pcapgen.IINDeviceRestart | pcapgen.IINNeedTime)
	s.exchange(pcapgen.DNP3Read, classes(1, 2, 3, 0), restarted, false,
		pcapgen.BinaryInputs(0, binaries...), analogs(312.5))
	s.pause(100 * time.Millisecond)
	s.exchange(pcapgen.DNP3Write, [][]byte{pcapgen.ClearRestart()}, pcapgen.IINNeedTime, false)
	s.pause(50 * time.Millisecond)
	s.exchange(pcapgen.DNP3Write, [][]byte{pcapgen.TimeAndDate(now())}, 0, false)

	// Class 1-3 event polls, every half second.
	s.pause(500 * time.Millisecond)
	s.exchange(pcapgen.DNP3Read, classes(1, 2, 3), pcapgen.IINClass1Events, true,
		pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 2, Flags: pcapgen.DNP3FlagOnline | pcapgen.DNP3BinaryState, Time: now() - 340}),
		pcapgen.AnalogInputEvents(pcapgen.AnalogEvent{Index: 2, Flags: pcapgen.DNP3FlagOnline, Value: 62}))
	s.pause(500 * time.Millisecond)
	s.exchange(pcapgen.DNP3Read, classes(1, 2, 3), 0, false)

	// The operator sets the valve (analog output 0) to 55 %:
	// select-before-operate of a g41v1.
	s.pause(300 * time.Millisecond)
	valve := func(status uint8) []byte { return pcapgen.AnalogOutput(0, 55, status) }
	s.exchange(pcapgen.DNP3Select, [][]byte{valve(pcapgen.DNP3StatusSuccess)}, 0, false, valve(pcapgen.DNP3StatusSuccess))
	s.pause(40 * time.Millisecond)
	s.exchange(pcapgen.DNP3Operate, [][]byte{valve(pcapgen.DNP3StatusSuccess)}, 0, false, valve(pcapgen.DNP3StatusSuccess))

	s.pause(500 * time.Millisecond)
	s.exchange(pcapgen.DNP3Read, classes(1, 2, 3), pcapgen.IINClass2Events, true,
		pcapgen.AnalogInputEvents(pcapgen.AnalogEvent{Index: 3, Flags: pcapgen.DNP3FlagOnline, Value: 55}))
	s.pause(500 * time.Millisecond)
	s.exchange(pcapgen.DNP3Read, classes(1, 2, 3), 0, false)

	// A second integrity poll, then the master closes the session.
	s.pause(500 * time.Millisecond)
	s.exchange(pcapgen.DNP3Read, classes(1, 2, 3, 0), 0, false,
		pcapgen.BinaryInputs(0, binaries...), analogs(298.0))
	s.pause(100 * time.Millisecond)
	s.do(func() error { _, err := s.tcp.Close(); return err })
}

func cmdDNP3Pcap(args []string, stdout, stderr io.Writer) error {
	c := newCommand("dnp3-pcap", "-o FILE [--master IP] [--outstation IP]",
		`Writes a pcap (Ethernet, real IPv4/TCP headers and checksums) of one DNP3
session over TCP: a master polling an outstation on port 20000 with link
status, integrity and class 1-3 event polls, writes clearing the restart
bit and setting the time, and a select-before-operate of an analog output;
about 50 packets over 3 seconds. The MAC of each station is 02:00 and its
IPv4 address. Replay it with, e.g.:
  tcpreplay -i IFACE FILE
`, stdout, stderr)
	out := c.fs.String("o", "", "output pcap file (required; - for standard output)")
	masterIP := c.fs.String("master", DNP3Master.String(), "the master's IPv4 address")
	outIP := c.fs.String("outstation", DNP3Outstation.String(), "the outstation's IPv4 address")
	if err := c.parse(args); err != nil {
		return err
	}
	if *out == "" {
		return c.usageError("-o FILE is required")
	}
	var opts DNP3Options
	var err error
	if opts.Master, err = netip.ParseAddr(*masterIP); err != nil || !opts.Master.Is4() {
		return c.usageError(fmt.Sprintf("--master %q: want an IPv4 address", *masterIP))
	}
	if opts.Outstation, err = netip.ParseAddr(*outIP); err != nil || !opts.Outstation.Is4() {
		return c.usageError(fmt.Sprintf("--outstation %q: want an IPv4 address", *outIP))
	}
	if *out == "-" {
		_, err := WriteDNP3(stdout, opts) // the pcap writer buffers and flushes
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	n, err := WriteDNP3(f, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return fmt.Errorf("%s: %w", *out, err)
	}
	fmt.Fprintf(stderr, "%s: %d packets of DNP3/TCP between %v (link address %d) and %v:%d (link address %d)\n",
		*out, n, opts.Master, DNP3MasterLink, opts.Outstation, pcapgen.DNP3Port, DNP3OutstationLink)
	return nil
}
