package pcapgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/tapwatch/tapwatch/internal/testenv"
)

// crcBitwise is CRC-16/DNP computed bit by bit with the unreflected
// polynomial 0x3d65, reflecting each input octet and the result: an
// implementation independent of CRCDNP's table.
func crcBitwise(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		for i := range 8 {
			bit := x>>i&1 == 1 // octets enter LSB first
			if (c&0x8000 != 0) != bit {
				c = c<<1 ^ 0x3d65
			} else {
				c <<= 1
			}
		}
	}
	var r uint16
	for i := range 16 {
		if c&(1<<i) != 0 {
			r |= 1 << (15 - i)
		}
	}
	return ^r
}

func TestCRCDNP(t *testing.T) {
	if got := CRCDNP([]byte("123456789")); got != 0xea82 {
		t.Errorf("CRCDNP(123456789) = %#04x, want 0xea82", got)
	}
	if got := crcBitwise([]byte("123456789")); got != 0xea82 {
		t.Fatalf("crcBitwise(123456789) = %#04x, want 0xea82", got)
	}
	buf := make([]byte, 300)
	for i := range buf {
		buf[i] = byte(i*7 + i>>3)
	}
	for n := range len(buf) {
		if a, b := CRCDNP(buf[:n]), crcBitwise(buf[:n]); a != b {
			t.Fatalf("CRCDNP of %d octets = %#04x, bitwise %#04x", n, a, b)
		}
	}
}

func TestLinkFrame(t *testing.T) {
	// Reset link states from master 1024 to outstation 1: the frame found
	// in many DNP3 primers.
	got := LinkFrame(LinkControl(true, true, false, false, DNP3PriResetLink), 1, 1024, nil)
	want := []byte{0x05, 0x64, 0x05, 0xc0, 0x01, 0x00, 0x00, 0x04, 0xe9, 0x21}
	if !bytes.Equal(got, want) {
		t.Errorf("reset link states\n got % x\nwant % x", got, want)
	}

	// 20 user octets: a full block and a 4-octet block, each with its CRC.
	user := []byte("0123456789abcdefWXYZ")
	got = LinkFrame(0x44, 3, 4, user)
	want = []byte{0x05, 0x64, 25, 0x44, 3, 0, 4, 0}
	want = binary.LittleEndian.AppendUint16(want, crcBitwise(want))
	want = append(want, user[:16]...)
	want = binary.LittleEndian.AppendUint16(want, crcBitwise(user[:16]))
	want = append(want, user[16:]...)
	want = binary.LittleEndian.AppendUint16(want, crcBitwise(user[16:]))
	if !bytes.Equal(got, want) {
		t.Errorf("20-octet frame\n got % x\nwant % x", got, want)
	}
	if len(got) != LinkFrameLen(len(user)) {
		t.Errorf("LinkFrameLen(20) = %d, frame is %d", LinkFrameLen(len(user)), len(got))
	}

	for _, c := range []struct {
		dir, prm, fcb, fcv bool
		fc                 uint8
		want               uint8
	}{
		{true, true, false, false, DNP3PriUnconfirmedData, 0xc4},
		{false, true, false, false, DNP3PriUnconfirmedData, 0x44},
		{true, true, true, true, DNP3PriConfirmedData, 0xf3},
		{true, true, false, false, DNP3PriRequestStatus, 0xc9},
		{false, false, false, false, DNP3SecLinkStatus, 0x0b},
		{false, false, false, true, DNP3SecNotSupported, 0x1f},
	} {
		if got := LinkControl(c.dir, c.prm, c.fcb, c.fcv, c.fc); got != c.want {
			t.Errorf("LinkControl(%v, %v, %v, %v, %d) = %#02x, want %#02x", c.dir, c.prm, c.fcb, c.fcv, c.fc, got, c.want)
		}
	}

	defer func() {
		if recover() == nil {
			t.Error("LinkFrame with 251 user octets did not panic")
		}
	}()
	LinkFrame(0x44, 1, 2, make([]byte, 251))
}

func TestDNP3Builders(t *testing.T) {
	cases := []struct {
		name      string
		got, want []byte
	}{
		{"AppControl", []byte{AppControl(true, true, false, false, 3), AppControl(true, true, true, true, 17)}, []byte{0xc3, 0xf1}},
		{"integrity poll", AppRequest(AppControl(true, true, false, false, 2), DNP3Read, ClassData(1), ClassData(2), ClassData(3), ClassData(0)), []byte{
			0xc2, 0x01, // FIR FIN seq 2, READ
			0x3c, 0x02, 0x06, // class 1
			0x3c, 0x03, 0x06, // class 2
			0x3c, 0x04, 0x06, // class 3
			0x3c, 0x01, 0x06, // class 0
		}},
		{"null response", AppResponse(0xc2, DNP3Response, IINDeviceRestart|IINObjectUnknown), []byte{0xc2, 0x81, 0x80, 0x02}},
		{"BinaryInputs 8-bit", BinaryInputs(3, 0x01, 0x81), []byte{0x01, 0x02, 0x00, 3, 4, 0x01, 0x81}},
		{"BinaryInputs 16-bit", BinaryInputs(255, 0x01, 0x81), []byte{0x01, 0x02, 0x01, 0xff, 0x00, 0x00, 0x01, 0x01, 0x81}},
		{"AppendRangeHeader 16-bit", AppendRangeHeader(nil, 1, 2, 0x01, 0, 9), []byte{0x01, 0x02, 0x01, 0, 0, 9, 0}},
		{"AnalogInputs", AnalogInputs(0, 0x01, -2, 0x01020304), []byte{
			0x1e, 0x01, 0x00, 0, 1,
			0x01, 0xfe, 0xff, 0xff, 0xff,
			0x01, 0x04, 0x03, 0x02, 0x01,
		}},
		{"AnalogInputsFloat", AnalogInputsFloat(0x100, 0x01, 1.5), []byte{
			0x1e, 0x05, 0x01, 0x00, 0x01, 0x00, 0x01,
			0x01, 0x00, 0x00, 0xc0, 0x3f, // 1.5 = 0x3fc00000
		}},
		{"BinaryInputEvents", BinaryInputEvents(BinaryEvent{Index: 5, Flags: 0x81, Time: 0x0123456789ab}), []byte{
			0x02, 0x02, 0x17, 1,
			5, 0x81, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
		}},
		{"BinaryInputEvents wide", BinaryInputEvents(BinaryEvent{Index: 300, Flags: 0x01, Time: 1}), []byte{
			0x02, 0x02, 0x28, 1, 0,
			0x2c, 0x01, 0x01, 1, 0, 0, 0, 0, 0,
		}},
		{"AnalogInputEvents", AnalogInputEvents(AnalogEvent{Index: 7, Flags: 0x01, Value: 1000}), []byte{
			0x20, 0x01, 0x17, 1,
			7, 0x01, 0xe8, 0x03, 0x00, 0x00,
		}},
		{"CROB", CROB(0x0102, CROBLatchOn, 1, 100, 200, DNP3StatusSuccess), []byte{
			0x0c, 0x01, 0x28, 0x01, 0x00, // g12v1, 16-bit count and index prefix, count 1
			0x02, 0x01, // index 258
			0x03, 0x01, // latch on, count 1
			100, 0, 0, 0, // on-time
			200, 0, 0, 0, // off-time
			0x00, // status
		}},
		{"AnalogOutput", AnalogOutput(4, -1, DNP3StatusNotSupported), []byte{0x29, 0x01, 0x28, 1, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x04}},
		{"TimeAndDate", TimeAndDate(1704067200000), []byte{0x32, 0x01, 0x07, 0x01, 0x00, 0xf4, 0x51, 0xc2, 0x8c, 0x01}}, // 0x018cc251f400,
		{"ClearRestart", ClearRestart(), []byte{0x50, 0x01, 0x00, 0x07, 0x07, 0x00}},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s\n got % x\nwant % x", c.name, c.got, c.want)
		}
	}
}

// dnp3Frame is a link frame parsed by parseLinkFrame.
type dnp3Frame struct {
	ctrl     uint8
	dst, src uint16
	user     []byte
}

var errIncomplete = errors.New("incomplete DNP3 link frame")

// parseLinkFrame is the inverse of AppendLinkFrame: it parses the frame at
// the start of b, checks every CRC and returns the frame and its length, or
// errIncomplete when b holds only part of it.
func parseLinkFrame(b []byte) (dnp3Frame, int, error) {
	if len(b) < DNP3LinkHeaderLen {
		return dnp3Frame{}, 0, errIncomplete
	}
	if b[0] != 0x05 || b[1] != 0x64 || b[2] < 5 {
		return dnp3Frame{}, 0, fmt.Errorf("bad link header % x", b[:DNP3LinkHeaderLen])
	}
	if got, want := binary.LittleEndian.Uint16(b[8:]), CRCDNP(b[:8]); got != want {
		return dnp3Frame{}, 0, fmt.Errorf("header CRC %#04x, want %#04x", got, want)
	}
	n := int(b[2]) - 5
	size := LinkFrameLen(n)
	if len(b) < size {
		return dnp3Frame{}, 0, errIncomplete
	}
	f := dnp3Frame{ctrl: b[3], dst: binary.LittleEndian.Uint16(b[4:]), src: binary.LittleEndian.Uint16(b[6:]), user: make([]byte, 0, n)}
	for off := DNP3LinkHeaderLen; n > 0; {
		k := min(16, n)
		block := b[off : off+k]
		if got, want := binary.LittleEndian.Uint16(b[off+k:]), CRCDNP(block); got != want {
			return dnp3Frame{}, 0, fmt.Errorf("block CRC %#04x, want %#04x", got, want)
		}
		f.user = append(f.user, block...)
		off += k + 2
		n -= k
	}
	return f, size, nil
}

// transportRx reassembles one direction's transport segments into
// application fragments, checking FIR, FIN and the sequence numbers.
type transportRx struct {
	started bool
	next    uint8 // expected sequence number
	frag    []byte
	segs    int // segments of the fragment being assembled
	wraps   int // 63 -> 0 transitions seen
}

// add takes a segment's user data and returns the completed fragment and
// the number of segments it had, or nil.
func (r *transportRx) add(user []byte) ([]byte, int, error) {
	if len(user) == 0 {
		return nil, 0, errors.New("empty transport segment")
	}
	th, data := user[0], user[1:]
	seq := th & 0x3f
	if r.started && seq != r.next {
		return nil, 0, fmt.Errorf("transport seq %d, want %d", seq, r.next)
	}
	if r.started && seq == 0 && r.next == 0 {
		r.wraps++
	}
	r.started, r.next = true, (seq+1)&0x3f
	if th&DNP3TransportFIR != 0 {
		if r.segs != 0 {
			return nil, 0, errors.New("FIR inside a fragment")
		}
		r.frag = r.frag[:0]
	} else if r.segs == 0 {
		return nil, 0, errors.New("segment without FIR outside a fragment")
	}
	r.frag = append(r.frag, data...)
	r.segs++
	if th&DNP3TransportFIN == 0 {
		return nil, 0, nil
	}
	n := r.segs
	r.segs = 0
	return r.frag, n, nil
}

func TestDNP3Frames(t *testing.T) {
	frag := make([]byte, 600)
	for i := range frag {
		frag[i] = byte(i)
	}
	seq := uint8(62)
	frames := DNP3Frames(frag, true, 10, 1, &seq, 0)
	if len(frames) != 3 || seq != 1 {
		t.Fatalf("600 octets: %d frames, seq now %d; want 3 and 1", len(frames), seq)
	}
	if all := AppendDNP3Frames(nil, frag, true, 10, 1, new(uint8(62)), 0); !bytes.Equal(all, bytes.Join(frames, nil)) {
		t.Error("AppendDNP3Frames and DNP3Frames differ")
	}
	var rx transportRx
	wantTH := []uint8{0x40 | 62, 63, 0x80} // FIR seq 62, seq 63, FIN seq 0
	for i, b := range frames {
		f, n, err := parseLinkFrame(b)
		if err != nil || n != len(b) {
			t.Fatalf("frame %d: %v (%d of %d octets)", i, err, n, len(b))
		}
		if f.ctrl != 0xc4 || f.dst != 10 || f.src != 1 {
			t.Errorf("frame %d: control %#02x, %d -> %d", i, f.ctrl, f.src, f.dst)
		}
		if f.user[0] != wantTH[i] {
			t.Errorf("frame %d: transport header %#02x, want %#02x", i, f.user[0], wantTH[i])
		}
		got, segs, err := rx.add(f.user)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 && (segs != 3 || !bytes.Equal(got, frag)) {
			t.Errorf("reassembled %d octets in %d segments", len(got), segs)
		}
	}
	if rx.wraps != 1 {
		t.Errorf("saw %d wraps, want 1", rx.wraps)
	}
	if len(frames[0]) != LinkFrameLen(250) || len(frames[0]) != 292 {
		t.Errorf("a full frame is %d octets, want 292", len(frames[0]))
	}

	seq = 5
	frames = DNP3Frames(frag[:100], false, 1, 10, &seq, 30)
	if len(frames) != 4 || seq != 9 {
		t.Fatalf("100 octets in 30-octet segments: %d frames, seq %d", len(frames), seq)
	}
	f, _, _ := parseLinkFrame(frames[3])
	if f.ctrl != 0x44 || f.user[0] != 0x80|8 || len(f.user) != 11 {
		t.Errorf("last small segment: control %#02x, user % x", f.ctrl, f.user)
	}
}

// TestDNP3Conn sends over TCP and UDP and checks what arrives.
func TestDNP3Conn(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	master := ep(mac(1), "10.0.0.1", 40000)
	out := ep(mac(2), "10.0.0.2", DNP3Port)
	c, err := NewTCPConn(w, master, out, 1000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	d := NewDNP3TCP(c, 1, 10)
	d.MasterSeq, d.OutstationSeq = 63, 60
	req := AppRequest(AppControl(true, true, false, false, 0), DNP3Read, ClassData(0))
	resp := AppResponse(AppControl(true, true, false, false, 0), DNP3Response, 0, AnalogInputsFloat(0, DNP3FlagOnline, make([]float32, 200)...))
	if f, err := d.Master(req); err != nil || len(f) != 1 {
		t.Fatalf("request: frames %v, %v", f, err)
	}
	d.FramesPerSegment = 2
	if f, err := d.Outstation(resp); err != nil || len(f) != 3 { // 5 link frames
		t.Fatalf("response: frames %v, %v", f, err)
	}
	if f, err := d.LinkStatus(); err != nil || len(f) != 2 {
		t.Fatalf("link status: frames %v, %v", f, err)
	}
	if d.MasterSeq != 0 || d.OutstationSeq != 1 {
		t.Errorf("transport seqs now %d and %d, want 0 and 1", d.MasterSeq, d.OutstationSeq)
	}
	u, err := NewUDP(w, ep(mac(1), "10.0.0.1", DNP3Port), out)
	if err != nil {
		t.Fatal(err)
	}
	du := NewDNP3UDP(u, 2, 11)
	if _, err := du.Master(req); err != nil {
		t.Fatal(err)
	}
	if _, err := du.Outstation(resp); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	_, pkts := readBack(t, buf.Bytes())
	var stream [2][]byte // TCP payload from master, from outstation
	var datagrams [][]byte
	for _, p := range pkts[3:] {
		if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			stream[b2i(tcp.SrcPort == DNP3Port)] = append(stream[b2i(tcp.SrcPort == DNP3Port)], tcp.Payload...)
		} else if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			datagrams = append(datagrams, udp.Payload)
		}
	}
	for i, want := range [][]uint8{{0xc4, 0xc9}, {0x44, 0x44, 0x44, 0x44, 0x44, 0x0b}} {
		var rx transportRx
		var ctrls []uint8
		for b := stream[i]; len(b) > 0; {
			f, n, err := parseLinkFrame(b)
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			b = b[n:]
			ctrls = append(ctrls, f.ctrl)
			if f.ctrl&0x0f != DNP3PriUnconfirmedData || f.ctrl&0x40 == 0 {
				continue
			}
			frag, _, err := rx.add(f.user)
			if err != nil {
				t.Fatal(err)
			}
			if frag != nil && !bytes.Equal(frag, [][]byte{req, resp}[i]) {
				t.Errorf("stream %d: fragment % x", i, frag[:min(len(frag), 16)])
			}
		}
		if !bytes.Equal(ctrls, want) {
			t.Errorf("stream %d: control octets % x, want % x", i, ctrls, want)
		}
	}
	if len(datagrams) != 2 || len(datagrams[1]) != 4*292+LinkFrameLen(1+len(resp)-4*249) {
		t.Errorf("UDP: %d datagrams", len(datagrams))
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDNP3Tshark writes a capture of built frames and checks Wireshark's
// dissection: function codes, objects, and no expert complaints (bad CRCs,
// malformed objects).
func TestDNP3Tshark(t *testing.T) {
	tshark := testenv.Tool(t, "tshark", "tshark")
	file := filepath.Join(t.TempDir(), "dnp3.pcap")
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	master := ep(mac(1), "10.0.0.1", 40000)
	station := ep(mac(2), "10.0.0.2", DNP3Port)
	c, err := NewTCPConn(w, master, station, 1000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDNP3TCP(c, 1, 10)
	d.FramesPerSegment = 1
	const ms = 1704067200123
	ctl := func(seq uint8, con, uns bool) uint8 { return AppControl(true, true, con, uns, seq) }
	points := make([]uint8, 40)
	for i := range points {
		points[i] = DNP3FlagOnline | uint8(i%2)<<7
	}
	steps := []struct {
		side Side
		frag []byte
		want string // dnp3.ctl.prifunc, dnp3.al.func, dnp3.al.obj
		// wrap starts the fragment at transport sequence number 62, so
		// that its segments run 62, 63, 0, ... Wireshark 4.0 does not
		// reassemble such a fragment (IEEE 1815-2012 8.2.1.3 counts
		// modulo 64) and muddles later ones of the same direction, so
		// the dissection of this fragment is not checked, and it is
		// the last from the outstation.
		wrap bool
	}{
		{FromMaster, AppRequest(ctl(1, false, false), DNP3Read, ClassData(1), ClassData(2), ClassData(3), ClassData(0)),
			"4\t1\t0x3c02,0x3c03,0x3c04,0x3c01", false},
		{FromOutstation, AppResponse(ctl(1, false, false), DNP3Response, IINDeviceRestart,
			BinaryInputs(0, points...), AnalogInputsFloat(0, DNP3FlagOnline, 1.5, -2, 300), AnalogInputs(300, DNP3FlagOnline, 7, -7)),
			"4\t129\t0x0102,0x1e05,0x1e01", false},
		{FromMaster, AppRequest(ctl(2, false, false), DNP3Read, ClassData(0)), "4\t1\t0x3c01", false},
		{FromOutstation, AppResponse(ctl(2, false, false), DNP3Response, IINDeviceRestart, AnalogInputsFloat(0, DNP3FlagOnline, make([]float32, 200)...)), // 5 segments
			"4\t129\t0x1e05", false},
		{FromMaster, AppRequest(ctl(3, false, false), DNP3Write, ClearRestart()), "4\t2\t0x5001", false},
		{FromMaster, AppRequest(ctl(4, false, false), DNP3Write, TimeAndDate(ms)), "4\t2\t0x3201", false},
		{FromOutstation, AppResponse(ctl(4, true, false), DNP3Response, IINClass1Events,
			BinaryInputEvents(BinaryEvent{Index: 3, Flags: 0x81, Time: ms}, BinaryEvent{Index: 400, Flags: 0x01, Time: ms + 5}),
			AnalogInputEvents(AnalogEvent{Index: 2, Flags: 0x01, Value: -40})),
			"4\t129\t0x0202,0x2001", false},
		{FromMaster, AppRequest(ctl(4, false, false), DNP3Confirm), "4\t0\t", false},
		{FromMaster, AppRequest(ctl(5, false, false), DNP3Select, CROB(5, CROBLatchOn, 1, 0, 0, 0)), "4\t3\t0x0c01", false},
		{FromOutstation, AppResponse(ctl(5, false, false), DNP3Response, 0, CROB(5, CROBLatchOn, 1, 0, 0, DNP3StatusSuccess)), "4\t129\t0x0c01", false},
		{FromMaster, AppRequest(ctl(6, false, false), DNP3DirectOperate, AnalogOutput(2, 1234, 0)), "4\t5\t0x2901", false},
		{FromOutstation, AppResponse(ctl(7, true, true), DNP3UnsolicitedResponse, 0, AnalogInputEvents(AnalogEvent{Index: 1, Value: 9})), "4\t130\t0x2001", false},
		{FromMaster, AppRequest(ctl(7, false, true), DNP3Confirm), "4\t0\t", false},
		{FromMaster, AppRequest(ctl(7, false, false), DNP3Read, ClassData(0)), "4\t1\t0x3c01", false},
		{FromOutstation, AppResponse(ctl(7, false, false), DNP3Response, 0, AnalogInputsFloat(0, DNP3FlagOnline, make([]float32, 100)...)), "", true},
	}
	var want []string
	for _, s := range steps {
		if s.wrap {
			d.OutstationSeq = 62
		}
		frames, err := d.Send(s.side, s.frag)
		if err != nil {
			t.Fatal(err)
		}
		if s.wrap {
			for range frames {
				want = append(want, "") // not checked
			}
			continue
		}
		// Wireshark shows the application layer on the frame that ends
		// the fragment, the link layer on every frame.
		for range len(frames) - 1 {
			want = append(want, "4\t\t")
		}
		want = append(want, s.want)
	}
	if _, err := d.LinkStatus(); err != nil {
		t.Fatal(err)
	}
	want = append(want, "9\t\t", "\t\t")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(tshark, "-n", "-r", file, "-d", "tcp.port==20000,dnp3", "-T", "fields",
		"-e", "dnp3.ctl.prifunc", "-e", "dnp3.al.func", "-e", "dnp3.al.obj", "-e", "_ws.expert.message",
		"-E", "occurrence=a", "-E", "aggregator=,")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimRight(string(res), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(lines), len(want), res)
	}
	for i, l := range lines {
		fields := strings.Split(l, "\t")
		if len(fields) != 4 {
			t.Fatalf("frame %d: tshark line %q", i+1, l)
		}
		if fields[3] != "" {
			t.Errorf("frame %d: Wireshark expert info %q", i+1, fields[3])
		}
		if got := strings.Join(fields[:3], "\t"); want[i] != "" && got != want[i] {
			t.Errorf("frame %d: tshark says %q, want %q", i+1, got, want[i])
		}
	}
}
