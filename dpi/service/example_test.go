package service_test

import (
	"fmt"

	"github.com/tapwatch/tapwatch/dpi/service"
)

// Naming a flow: content first, the server port otherwise.
func Example() {
	name := func(udp bool, port uint16, client, server []byte) service.ID {
		if id := service.Identify(udp, true, client); id != service.Unknown {
			return id
		}
		if id := service.Identify(udp, false, server); id != service.Unknown {
			return id
		}
		return service.ByPort(udp, port)
	}
	// SMB negotiate on an odd port.
	smb := []byte{0x00, 0x00, 0x00, 0x54, 0xFE, 'S', 'M', 'B', 0x40, 0x00}
	fmt.Println(name(false, 7145, smb, nil))
	// A DNS query: its header alone is too weak, the port names it.
	dns := []byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}
	fmt.Println(name(true, 53, dns, nil))
	// An SSH server's banner.
	fmt.Println(name(false, 2222, nil, []byte("SSH-2.0-dropbear_2022.83\r\n")))
	id := service.RDP
	fmt.Println(id, id.Has(service.RemoteAccess), id.Has(service.ICS))
	// Output:
	// smb
	// dns
	// ssh
	// rdp true false
}
