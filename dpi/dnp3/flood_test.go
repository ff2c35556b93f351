package dnp3

import "testing"

type floodRecorder struct{ flagged []int }

func (r *floodRecorder) Message(m *Message) {
	if m.Anomalies&(1<<RequestFlood) != 0 {
		r.flagged = append(r.flagged, int(m.Frame))
	}
}

// TestRequestFlood: the request that takes a master past FloodRequests
// unanswered requests is flagged, once; a response starts the count again;
// confirms and unsolicited responses do not count.
func TestRequestFlood(t *testing.T) {
	const master, outstation = 1, 10
	req := func(seq uint8, fc byte) []byte {
		return segFrame(linkDIR|linkPRM|lfUnconfirmedData, outstation, master, true, true, seq,
			[]byte{0xC0 | seq&0x0f, fc, 0x3C, 0x01, 0x06}) // class 0 read (objects ignored for confirms)
	}
	resp := func(seq uint8, fc byte) []byte {
		return segFrame(linkPRM|lfUnconfirmedData, master, outstation, true, true, seq, []byte{0xC0 | seq&0x0f, fc, 0, 0})
	}
	d := NewDecoder(Config{FloodRequests: 4})
	var c Conn
	c.Reset(false)
	r := &floodRecorder{}
	frame := uint64(0)
	send := func(side Side, b []byte) {
		frame++
		if n := d.Feed(&c, side, b, Meta{Frame: frame}, r); n != len(b) {
			t.Fatalf("frame %d: %d of %d bytes consumed", frame, n, len(b))
		}
	}
	for i := uint8(0); i < 4; i++ {
		send(FromClient, req(i, FuncRead)) // frames 1-4: at the limit, not past it
	}
	send(FromClient, req(4, FuncConfirm))              // 5: a confirm asks for nothing
	send(FromServer, resp(0, FuncUnsolicitedResponse)) // 6: unsolicited: no answer to anything
	send(FromClient, req(5, FuncRead))                 // 7: the fifth request: flagged
	send(FromClient, req(6, FuncRead))                 // 8: same run: not again
	send(FromServer, resp(1, FuncResponse))            // 9: an answer
	for i := uint8(7); i < 12; i++ {
		send(FromClient, req(i, FuncRead)) // 10-14: a new run, flagged at 14
	}
	if want := []int{7, 14}; len(r.flagged) != 2 || r.flagged[0] != want[0] || r.flagged[1] != want[1] {
		t.Errorf("flagged at frames %v, want %v", r.flagged, want)
	}
}
