package dnp3_test

import (
	"fmt"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
)

// A rule that only cares about control operations walks the object
// headers of an application fragment and stops at the first CROB.
func ExampleParser() {
	fragment := []byte{
		0xC3,                   // FIR FIN, sequence 3
		0x05,                   // direct operate
		0x0C, 0x01, 0x17, 0x01, // g12v1 CROB, 1-octet index, count 1
		0x02,                   // index 2
		0x03,                   // latch on
		0x01,                   // count
		0xE8, 0x03, 0x00, 0x00, // on-time 1000 ms
		0x00, 0x00, 0x00, 0x00, // off-time 0
		0x00, // status
	}
	var p dnp3.Parser
	h, err := p.Start(fragment)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(dnp3.FunctionName(h.FC), "seq", h.Seq)
	for {
		oh, err := p.Next()
		if err == dnp3.ErrDone {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("g%dv%d %s qualifier %#02x count %d\n", oh.Group, oh.Variation,
			dnp3.GroupName(oh.Group), oh.Qualifier, oh.Count)
		if oh.Group != 12 {
			p.Skip()
			continue
		}
		pt, err := p.Point()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("index %d code %#02x on %d ms\n", pt.Index, pt.Code, pt.OnTime)
		break
	}
	// Output:
	// direct_operate seq 3
	// g12v1 control_relay_output_block qualifier 0x17 count 1
	// index 2 code 0x03 on 1000 ms
}
