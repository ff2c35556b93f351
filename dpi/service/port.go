package service

// ByPort names the service of a server port (udp says the transport), or
// Unknown. The ports are the IANA well-known or registered ports of each
// service; docs/services.md lists them, and a test holds the two equal.
func ByPort(udp bool, port uint16) ID {
	if udp {
		return udpPort(port)
	}
	return tcpPort(port)
}

func tcpPort(port uint16) ID {
	switch port {
	case 445:
		return SMB
	case 139:
		return NetBIOSSession
	case 3389:
		return RDP
	case 22:
		return SSH
	case 23:
		return Telnet
	case 5900, 5901, 5902, 5903:
		return VNC
	case 20, 21:
		return FTP
	case 80, 8080:
		return HTTP
	case 443, 8443:
		return TLS
	case 53:
		return DNS
	case 5355:
		return LLMNR
	case 502:
		return Modbus
	case 20000:
		return DNP3
	case 44818:
		return EtherNetIP
	case 102:
		return S7comm
	case 2404:
		return IEC104
	case 4840:
		return OPCUA
	case 135:
		return DCERPC
	case 88:
		return Kerberos
	case 389:
		return LDAP
	case 25, 587:
		return SMTP
	case 1883, 8883:
		return MQTT
	}
	return Unknown
}

// 514/tcp is rsh, not syslog, and 161/tcp is unused: those stay UDP only.
func udpPort(port uint16) ID {
	switch port {
	case 137, 138:
		return NetBIOS
	case 53:
		return DNS
	case 123:
		return NTP
	case 161, 162:
		return SNMP
	case 514:
		return Syslog
	case 67, 68, 546, 547: // DHCP, DHCPv6
		return DHCP
	case 5355:
		return LLMNR
	case 5353:
		return MDNS
	case 1900:
		return SSDP
	case 319, 320:
		return PTP
	case 502:
		return Modbus
	case 20000:
		return DNP3
	case 44818, 2222:
		return EtherNetIP
	case 47808:
		return BACnet
	case 88:
		return Kerberos
	case 389:
		return LDAP
	}
	return Unknown
}
