// Package service names the application service of a flow (SMB, RDP,
// TLS, Modbus, ...) cheaply, from the first payload each side sends and
// from the server port, for tapwatch's network model and the detectors
// that watch it: a new service on a host, remote access or file transfer
// between OT hosts, a new protocol on a known link.
//
// Content decides where a few comparisons make it certain; otherwise the
// server's well-known port does (ByPort). Every rule prefers Unknown to a
// wrong name, because a name drives alerts. docs/services.md lists the
// services, their rules and what is deliberately not recognised.
//
// The package imports nothing of tapwatch and never allocates: Identify,
// SNI and ByPort are safe on any bytes, truncated or garbage.
package service

// ID is a service: an application protocol seen on a flow. The zero value
// is Unknown. Its String is the name used on the wire, in the baseline and
// in config.
type ID uint8

const (
	Unknown ID = iota

	// IT, remote access and file transfer.
	SMB            // SMB1/2/3, on 445 or over a NetBIOS session (139)
	NetBIOS        // NetBIOS name (137/udp) and datagram (138/udp) services
	NetBIOSSession // NetBIOS session service (139/tcp) with no SMB seen
	RDP
	SSH
	Telnet
	VNC
	FTP
	HTTP
	TLS
	DNS
	NTP
	SNMP
	Syslog
	DHCP
	LLMNR
	MDNS
	SSDP
	PTP

	// ICS.
	Modbus
	DNP3
	EtherNetIP // 44818/tcp+udp, 2222/udp
	S7comm     // 102/tcp (TPKT+COTP+0x32)
	IEC104     // 2404/tcp
	OPCUA      // 4840/tcp
	BACnet     // 47808/udp

	// Cheap and useful for lateral movement and exfiltration.
	DCERPC // MS-RPC endpoint mapper and DCOM/WMI (135/tcp)
	Kerberos
	LDAP
	SMTP
	MQTT

	numIDs
)

// Class is a set of kinds of service, as bit flags.
type Class uint8

const (
	RemoteAccess Class = 1 << iota // RDP, SSH, Telnet, VNC
	FileTransfer                   // SMB, FTP, NetBIOS session
	ICS                            // Modbus, DNP3, EtherNet/IP, S7comm, IEC 104, OPC UA, BACnet
	Chatter                        // normal background, learned and folded: NetBIOS name/datagram, LLMNR, mDNS, SSDP, DHCP, NTP, PTP
)

type info struct {
	name  string
	class Class
}

var infos = [numIDs]info{
	Unknown:        {"unknown", 0},
	SMB:            {"smb", FileTransfer},
	NetBIOS:        {"netbios", Chatter},
	NetBIOSSession: {"netbios_ssn", FileTransfer},
	RDP:            {"rdp", RemoteAccess},
	SSH:            {"ssh", RemoteAccess},
	Telnet:         {"telnet", RemoteAccess},
	VNC:            {"vnc", RemoteAccess},
	FTP:            {"ftp", FileTransfer},
	HTTP:           {"http", 0},
	TLS:            {"tls", 0},
	DNS:            {"dns", 0},
	NTP:            {"ntp", Chatter},
	SNMP:           {"snmp", 0},
	Syslog:         {"syslog", 0},
	DHCP:           {"dhcp", Chatter},
	LLMNR:          {"llmnr", Chatter},
	MDNS:           {"mdns", Chatter},
	SSDP:           {"ssdp", Chatter},
	PTP:            {"ptp", Chatter},
	Modbus:         {"modbus", ICS},
	DNP3:           {"dnp3", ICS},
	EtherNetIP:     {"ethernet_ip", ICS},
	S7comm:         {"s7comm", ICS},
	IEC104:         {"iec104", ICS},
	OPCUA:          {"opcua", ICS},
	BACnet:         {"bacnet", ICS},
	DCERPC:         {"dcerpc", 0},
	Kerberos:       {"kerberos", 0},
	LDAP:           {"ldap", 0},
	SMTP:           {"smtp", 0},
	MQTT:           {"mqtt", 0},
}

// String is the service's lower-case name: "smb", "rdp", "ethernet_ip";
// "unknown" for Unknown, and "invalid" for a number that is no ID.
func (id ID) String() string {
	if id < numIDs {
		return infos[id].name
	}
	return "invalid"
}

// Lookup returns the ID whose String is name, Unknown for "unknown".
func Lookup(name string) (ID, bool) {
	for id := range numIDs {
		if infos[id].name == name {
			return id, true
		}
	}
	return Unknown, false
}

// Names returns the name of every service but Unknown, in ID order.
func Names() []string {
	out := make([]string, 0, numIDs-1)
	for id := Unknown + 1; id < numIDs; id++ {
		out = append(out, infos[id].name)
	}
	return out
}

// Has reports whether the service is of any of the classes in c.
func (id ID) Has(c Class) bool {
	return id < numIDs && infos[id].class&c != 0
}

// Classes returns every class the service is of.
func (id ID) Classes() Class {
	if id < numIDs {
		return infos[id].class
	}
	return 0
}
