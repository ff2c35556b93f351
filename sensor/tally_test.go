package sensor

import (
	"testing"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
)

// TestDNP3TallyMalformed: a DNP3 message whose only anomaly is a misuse
// (an operate without select, a request flood) is counted with the
// anomalies but not as malformed, so that the stats' decode_errors and
// replay --summary's malformed count agree with what was malformed.
func TestDNP3TallyMalformed(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range [][]dnp3.Reason{
		{dnp3.OperateWithoutSelect},
		{dnp3.RequestFlood},
		{dnp3.BadBlockCRC},
		{dnp3.SelectMismatch, dnp3.ObjectTooShort},
		nil,
	} {
		m := dnp3.Message{Kind: dnp3.KindApplication}
		for _, r := range rs {
			if m.Malformed == 0 {
				m.Malformed = r
			}
			m.Anomalies |= 1 << r
		}
		p.Message(nil, dpi.FromClient, &m)
	}
	d := p.Tally().DNP3
	if d.Fragments != 5 || d.Anomalous != 4 || d.Malformed != 2 {
		t.Errorf("5 fragments, 4 with anomalies, 2 of them malformed: got %d fragments, %d with anomalies, %d malformed", d.Fragments, d.Anomalous, d.Malformed)
	}
	if d.ByReason[dnp3.OperateWithoutSelect] != 1 || d.ByReason[dnp3.ObjectTooShort] != 1 || d.ByReason[dnp3.SelectMismatch] != 1 {
		t.Errorf("anomalies by reason: %v", d.ByReason)
	}
}
