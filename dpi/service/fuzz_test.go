package service

import "testing"

// FuzzIdentify runs Identify on both transports and sides, and SNI, on
// arbitrary bytes: nothing panics, every result is a valid ID, a TLS
// result comes with the record type, and SNI returns a host name that is
// a sub-slice of the input.
func FuzzIdentify(f *testing.F) {
	for _, c := range identified {
		f.Add(c.in)
	}
	for _, c := range unknown {
		f.Add(c.in)
	}
	full := clientHello("engineering-ws.plant.example")
	f.Add(full)                  // a whole ClientHello with a name
	f.Add(full[:60])             // cut in the session id
	f.Add(full[:len(full)-12])   // cut in the last extensions
	f.Add(x("81 00 0044 20"))    // a session request cut in the called name
	f.Add(x("10 ff"))            // MQTT cut in the remaining length
	f.Add(x("03 00 ffff ff e0")) // a TPKT whose length indicator overflows
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, udp := range []bool{false, true} {
			for _, fromClient := range []bool{false, true} {
				id := Identify(udp, fromClient, b)
				if id >= numIDs {
					t.Fatalf("Identify gave %d", id)
				}
				if id == TLS && (udp || b[0] < 0x14 || b[0] > 0x17) {
					t.Fatalf("TLS from % x (udp %v)", b[:min(len(b), 8)], udp)
				}
			}
		}
		name := SNI(b)
		if name == nil {
			return
		}
		if !aliases(name, b) || cap(name) != len(name) || !isHostName(name) {
			t.Fatalf("SNI gave %q, not a host name within the input", name)
		}
		if Identify(false, true, b) != TLS {
			t.Fatalf("SNI found %q in what Identify does not call TLS", name)
		}
	})
}
