package dnp3_test

import (
	"fmt"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
)

type printer struct{}

func (printer) Message(m *dnp3.Message) {
	switch m.Kind {
	case dnp3.KindLink:
		fmt.Printf("link frame: function %d from %d to %d\n", m.Link.Func, m.Link.Src, m.Link.Dst)
	case dnp3.KindApplication:
		fmt.Printf("fragment from %d to %d: %d segment(s), %d octets, function %d\n",
			m.Link.Src, m.Link.Dst, m.Segments, len(m.Fragment), m.FC)
	case dnp3.KindGarbage:
		fmt.Printf("skipped %d octets\n", len(m.Raw))
	}
}

func ExampleDecoder_Feed() {
	stream := []byte{
		// Request link status (link function 9) from master 1024 to
		// outstation 1.
		0x05, 0x64, 0x05, 0xC9, 0x01, 0x00, 0x00, 0x04, 0xA6, 0x57,
		// Unconfirmed user data: transport FIR FIN, READ class 1 data.
		0x05, 0x64, 0x0B, 0xC4, 0x01, 0x00, 0x00, 0x04, 0xF4, 0x5C,
		0xC0, 0xC0, 0x01, 0x3C, 0x02, 0x06, 0x54, 0xE0,
		// Something else.
		'h', 'e', 'l', 'l', 'o',
		// The first bytes of the next frame: left for the next call.
		0x05, 0x64, 0x05,
	}
	d := dnp3.NewDecoder(dnp3.Config{})
	var c dnp3.Conn
	c.Reset(false)
	n := d.Feed(&c, dnp3.FromClient, stream, dnp3.Meta{Frame: 1}, printer{})
	fmt.Println("unconsumed:", len(stream)-n)
	// Output:
	// link frame: function 9 from 1024 to 1
	// fragment from 1024 to 1: 1 segment(s), 5 octets, function 1
	// skipped 5 octets
	// unconsumed: 3
}
