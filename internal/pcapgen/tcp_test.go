package pcapgen

import (
	"bytes"
	"slices"
	"testing"
)

func TestTCPConn(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewTCPConn(w, ep(mac(1), "10.0.0.1", 40000), ep(mac(2), "10.0.0.2", 502), 100, 900)
	if err != nil {
		t.Fatal(err)
	}
	step := func(want []int) func(got []int, err error) {
		return func(got []int, err error) {
			t.Helper()
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("frames %v, %v; want %v", got, err, want)
			}
		}
	}
	one := func(want int) func(got int, err error) {
		return func(got int, err error) {
			t.Helper()
			step([]int{want})([]int{got}, err)
		}
	}
	step([]int{1, 2, 3})(c.Handshake())
	step([]int{4, 5, 6})(c.Client([]byte("abcdefghij"), Split(3)))
	step([]int{7, 8})(c.Server([]byte("0123456789"), SplitAt(4), Order(1, 0)))
	step([]int{9, 10})(c.Client([]byte("ABCDEFGH"), Split(2), Overlap(2)))
	one(11)(c.Retransmit(4))
	c.Skip(FromServer, 100)
	step([]int{12})(c.Server([]byte("xy")))
	one(13)(c.Ack(FromClient))
	one(14)(c.SendAt(FromClient, 111, []byte("ZZZZ")))
	if got := c.NextSeq(FromClient); got != 119 {
		t.Errorf("NextSeq(client) after SendAt = %d, want 119", got)
	}
	step([]int{15, 16, 17})(c.Close())
	one(18)(c.Rst(FromServer))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	const cli, srv = 40000, 502
	want := []struct {
		src      uint16
		seq, ack uint32
		flags    string
		payload  string
	}{
		{cli, 100, 0, "SYN", ""},             // 1
		{srv, 900, 101, "SYN|ACK", ""},       // 2
		{cli, 101, 901, "ACK", ""},           // 3
		{cli, 101, 901, "ACK", "abc"},        // 4: Split(3) cuts at 3 and 6
		{cli, 104, 901, "ACK", "def"},        // 5
		{cli, 107, 901, "PSH|ACK", "ghij"},   // 6: PSH on the last segment
		{srv, 905, 111, "ACK", "456789"},     // 7: Order(1, 0): second part first
		{srv, 901, 111, "PSH|ACK", "0123"},   // 8
		{cli, 111, 911, "ACK", "ABCD"},       // 9
		{cli, 113, 911, "PSH|ACK", "CDEFGH"}, // 10: Overlap(2) repeats "CD"
		{cli, 101, 911, "PSH|ACK", "abc"},    // 11: Retransmit(4), current ACK
		{srv, 1011, 119, "PSH|ACK", "xy"},    // 12: after a 100-byte gap
		{cli, 119, 1013, "ACK", ""},          // 13: ACK covers the gap
		{cli, 111, 1013, "PSH|ACK", "ZZZZ"},  // 14: SendAt, conflicting overlap
		{cli, 119, 1013, "FIN|ACK", ""},      // 15
		{srv, 1013, 120, "FIN|ACK", ""},      // 16
		{cli, 120, 1014, "ACK", ""},          // 17
		{srv, 1014, 120, "RST|ACK", ""},      // 18
	}
	_, pkts := readBack(t, buf.Bytes())
	if len(pkts) != len(want) {
		t.Fatalf("read %d frames, want %d", len(pkts), len(want))
	}
	for i, wf := range want {
		tcp := tcpOf(t, pkts[i])
		if uint16(tcp.SrcPort) != wf.src || tcp.Seq != wf.seq || tcp.Ack != wf.ack ||
			flagString(tcp) != wf.flags || string(tcp.Payload) != wf.payload {
			t.Errorf("frame %d: src %d seq %d ack %d %s %q; want src %d seq %d ack %d %s %q", i+1,
				tcp.SrcPort, tcp.Seq, tcp.Ack, flagString(tcp), tcp.Payload,
				wf.src, wf.seq, wf.ack, wf.flags, wf.payload)
		}
	}
	if syn := tcpOf(t, pkts[0]); len(syn.Options) != 1 || syn.Options[0].OptionData[0] != 0x05 {
		t.Errorf("SYN options %v, want MSS 1460", syn.Options)
	}
}

func TestTCPConnErrors(t *testing.T) {
	w, _ := NewWriter(&bytes.Buffer{}, Options{})
	c, _ := NewTCPConn(w, ep(mac(1), "10.0.0.1", 1), ep(mac(2), "10.0.0.2", 2), 0, 0)
	c.Handshake()
	for name, err := range map[string]error{
		"empty":               second(c.Client(nil)),
		"too many segments":   second(c.Client([]byte("abc"), Split(4))),
		"split outside":       second(c.Client([]byte("abc"), SplitAt(3))),
		"split not sorted":    second(c.Client([]byte("abcdef"), SplitAt(4, 2))),
		"order repeats":       second(c.Client([]byte("abcdef"), Split(2), Order(0, 0))),
		"order too short":     second(c.Client([]byte("abcdef"), Split(2), Order(1))),
		"negative overlap":    second(c.Client([]byte("abcdef"), Overlap(-1))),
		"retransmit non-data": second(c.Retransmit(2)),
		"bad side":            second(c.Send(Side(0), []byte("x"))),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if got := c.NextSeq(FromClient); got != 1 {
		t.Errorf("failed sends moved the client's sequence number to %d", got)
	}
	if w.Packets() != 3 {
		t.Errorf("failed sends wrote %d frames", w.Packets()-3)
	}
}

func second[T any](_ T, err error) error { return err }

// TestScanProbes: a scanner's probes of an open port (SYN, SYN-ACK, the
// scanner's RST) and of a closed one (SYN, the server's RST).
func TestScanProbes(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	open, err := NewTCPConn(w, ep(mac(9), "10.0.0.9", 61000), ep(mac(2), "10.0.0.2", 502), 100, 900)
	if err != nil {
		t.Fatal(err)
	}
	closed, err := NewTCPConn(w, ep(mac(9), "10.0.0.9", 61000), ep(mac(2), "10.0.0.2", 23), 300, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range []func() (int, error){open.Syn, open.SynAck, func() (int, error) { return open.Rst(FromClient) },
		closed.Syn, func() (int, error) { return closed.Rst(FromServer) }} {
		if n, err := f(); err != nil || n != i+1 {
			t.Fatalf("probe frame %d: %d, %v", i+1, n, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		src, dst uint16
		seq, ack uint32
		flags    string
	}{
		{61000, 502, 100, 0, "SYN"},
		{502, 61000, 900, 101, "SYN|ACK"},
		{61000, 502, 101, 901, "RST|ACK"},
		{61000, 23, 300, 0, "SYN"},
		{23, 61000, 1, 301, "RST|ACK"},
	}
	_, pkts := readBack(t, buf.Bytes())
	if len(pkts) != len(want) {
		t.Fatalf("read %d frames, want %d", len(pkts), len(want))
	}
	for i, wf := range want {
		tcp := tcpOf(t, pkts[i])
		if uint16(tcp.SrcPort) != wf.src || uint16(tcp.DstPort) != wf.dst || tcp.Seq != wf.seq || tcp.Ack != wf.ack || flagString(tcp) != wf.flags {
			t.Errorf("frame %d: %d>%d seq %d ack %d %s; want %d>%d seq %d ack %d %s", i+1, tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Ack, flagString(tcp),
				wf.src, wf.dst, wf.seq, wf.ack, wf.flags)
		}
	}
}
