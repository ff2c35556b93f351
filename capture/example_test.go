package capture_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapwatch/tapwatch/capture"
)

// Reading a capture whose last record was cut off: the records before the
// damage are returned, then an error that names the file and the record.
func ExampleNewFile() {
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for i := 0; i < 3; i++ {
		frame := make([]byte, 60)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(int64(i), 0), CaptureLength: 60, Length: 60}, frame)
	}
	damaged := b.Bytes()[:b.Len()-10]

	src, err := capture.NewFile(bytes.NewReader(damaged), "plant.pcap")
	if err != nil {
		fmt.Println(err)
		return
	}
	var ci capture.Info
	for {
		data, err := src.ReadPacket(&ci)
		if err == io.EOF {
			break
		}
		var fe *capture.FileError
		if errors.As(err, &fe) {
			fmt.Println("error:", err)
			break
		}
		fmt.Printf("frame %d: %d bytes, link type %v\n", ci.Frame, len(data), ci.LinkType)
	}
	// Output:
	// frame 1: 60 bytes, link type Ethernet
	// frame 2: 60 bytes, link type Ethernet
	// error: plant.pcap: record 3: file ends inside the record (truncated capture)
}
