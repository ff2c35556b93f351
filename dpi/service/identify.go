package service

// Identify names the service from payload, the first bytes one side of a
// flow sent; fromClient says they went from client to server (the client
// opened the flow). It returns Unknown when the content says nothing
// certain: then ByPort decides. It reads a few header fields: none past
// octet 240 (the DHCP magic cookie), and it scans at most the first 128
// octets of a 220 greeting.
//
// Some rules depend on the side (an HTTP request comes from the client,
// a status line from the server); the rest hold in either direction.
// Stream rules that check a length accept a payload that is exactly one
// message, or whose next message also has a valid header.
func Identify(udp, fromClient bool, payload []byte) ID {
	if len(payload) < 3 {
		return Unknown
	}
	if udp {
		return identifyUDP(payload)
	}
	return identifyTCP(fromClient, payload)
}

func identifyTCP(fromClient bool, b []byte) ID {
	switch b[0] {
	case 0x00:
		if smb(b) {
			return SMB
		}
	case 0x03:
		if id := tpkt(b); id != Unknown {
			return id
		}
	case 0x05:
		if dnp3Link(b) {
			return DNP3
		}
		if dcerpc(b) {
			return DCERPC
		}
	case 0x10:
		if fromClient && mqttConnect(b) {
			return MQTT
		}
	case 0x16:
		if tlsHello(b) || framed(b, tlsRecord) {
			return TLS
		}
	case 0x14, 0x15, 0x17:
		if framed(b, tlsRecord) {
			return TLS
		}
	case 0x81:
		if fromClient && nbssRequest(b) {
			return NetBIOSSession
		}
	case 0xFF:
		if telnet(b) {
			return Telnet
		}
	case 'S':
		if ssh(b) {
			return SSH
		}
	case 'R':
		if vnc(b) {
			return VNC
		}
	case '2':
		if !fromClient {
			if id := banner220(b); id != Unknown {
				return id
			}
		}
	}
	modbus := mbap
	if fromClient {
		if 'A' <= b[0] && b[0] <= 'Z' {
			if id := clientText(b); id != Unknown {
				return id
			}
		}
		modbus = mbapRequest
	} else if b[0] == 'H' && httpStatus(b) {
		return HTTP
	}
	switch {
	case framed(b, modbus):
		return Modbus
	case framed(b, apci):
		return IEC104
	case framed(b, opcua):
		return OPCUA
	case framed(b, enip):
		return EtherNetIP
	}
	return Unknown
}

func identifyUDP(b []byte) ID {
	switch b[0] {
	case 0x05:
		if dnp3Link(b) {
			return DNP3
		}
	case 0x81:
		if bvlc(b) {
			return BACnet
		}
	case 0x30:
		if snmp(b) {
			return SNMP
		}
	case '<':
		if syslog(b) {
			return Syslog
		}
	case 'M', 'N':
		if hasPrefix(b, "M-SEARCH * HTTP/1.1\r\n") || hasPrefix(b, "NOTIFY * HTTP/1.1\r\n") {
			return SSDP
		}
	}
	switch {
	case dhcp(b):
		return DHCP
	case enip(b) == len(b) || cipIO(b):
		return EtherNetIP
	case mbap(b) == len(b):
		return Modbus
	case ptp(b):
		return PTP
	}
	return Unknown
}

// framed reports whether b starts with a message that pdu accepts (pdu
// returns its length, or 0) and is exactly that message, or is followed
// by the header of another: several requests may share a segment.
func framed(b []byte, pdu func([]byte) int) bool {
	n := pdu(b)
	if n == 0 || n > len(b) {
		return false
	}
	return n == len(b) || pdu(b[n:]) > 0
}

func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}

func be16(b []byte) int { return int(b[0])<<8 | int(b[1]) }
func le16(b []byte) int { return int(b[0]) | int(b[1])<<8 }
func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// --- IT services -------------------------------------------------------

// maxTLSRecord is the longest TLS record (TLSCiphertext, RFC 8446 §5.2).
const maxTLSRecord = 16384 + 2048

// tlsHello: a TLS handshake record (content type 22, record version
// 3.0–TLS 1.3) that starts with a ClientHello or ServerHello whose own
// version is also 3.x (RFC 8446 §5.1, §4.1.2).
func tlsHello(b []byte) bool {
	const minHello = 38 // version, random, session id, suite, compression
	if len(b) < 11 || b[0] != 0x16 || b[1] != 3 || b[2] > 4 {
		return false
	}
	if n := be16(b[3:]); n < 4+minHello || n > maxTLSRecord {
		return false
	}
	if b[5] != 1 && b[5] != 2 || b[6] != 0 || be16(b[7:]) < minHello {
		return false
	}
	return b[9] == 3 && b[10] <= 4
}

// tlsRecord returns the length of a TLS record (RFC 8446 §5.1): change
// cipher spec, alert, handshake or application data, record version 3.0
// to 1.2 (TLS 1.3 sends 1.2), and a length of 1 to the protocol's limit.
// A flow whose start the sensor missed still shows whole records, when
// its segments carry whole records.
func tlsRecord(b []byte) int {
	if len(b) < 5 || b[0] < 0x14 || b[0] > 0x17 || b[1] != 3 || b[2] > 3 {
		return 0
	}
	n := be16(b[3:])
	if n == 0 || n > maxTLSRecord {
		return 0
	}
	return 5 + n
}

// smb: a 4-byte NetBIOS session message header (type 0, 17- or 24-bit
// length) and the protocol id of SMB1 (0xFF), SMB2/3 (0xFE), an SMB3
// transform header (0xFD) or an SMB3 compression header (0xFC).
func smb(b []byte) bool {
	if len(b) < 8 || b[0] != 0 {
		return false
	}
	if n := int(b[1])<<16 | be16(b[2:]); n < 16 {
		return false
	}
	return b[4] >= 0xFC && b[5] == 'S' && b[6] == 'M' && b[7] == 'B'
}

// nbssRequest: a NetBIOS session request (RFC 1002 §4.3.2): type 0x81
// and the called name, 32 half-octets encoded as 'A'..'P'.
func nbssRequest(b []byte) bool {
	const nameLen = 32
	if len(b) < 5+nameLen || b[1] != 0 || be16(b[2:]) < 2*(nameLen+2) || b[4] != nameLen {
		return false
	}
	for _, c := range b[5 : 5+nameLen] {
		if c < 'A' || c > 'P' {
			return false
		}
	}
	return true
}

// tpkt tells RDP from S7comm in a TPKT (RFC 1006) and COTP (ISO 8073)
// message. RDP is a Connection Request with a cookie or an RDP
// negotiation request, or a Connection Confirm with a negotiation response
// or failure ([MS-RDPBCGR] 2.2.1.1, 2.2.1.2). S7comm is a Data TPDU whose
// payload starts with protocol id 0x32 (S7comm) or 0x72 (S7comm-plus).
// A Connection Request with TSAPs is ISO-on-TCP set-up, shared by S7comm
// and IEC 61850 MMS: Unknown, and the port decides.
func tpkt(b []byte) ID {
	if len(b) < 7 || b[1] != 0 {
		return Unknown
	}
	n, li := be16(b[2:]), int(b[4])
	switch b[5] {
	case 0xF0: // Data
		if li != 2 || n < 7+10 || len(b) < 11 {
			return Unknown
		}
		switch {
		case b[7] == 0x32 && (b[8] == 1 || b[8] == 2 || b[8] == 3 || b[8] == 7) && b[9] == 0 && b[10] == 0:
			return S7comm
		case b[7] == 0x72 && b[8] >= 1 && b[8] <= 3:
			return S7comm
		}
	case 0xE0, 0xD0: // Connection Request, Connection Confirm
		if li != n-5 || n < 11 || len(b) < 11 || b[10] != 0 {
			return Unknown
		}
		v := b[11:min(n, len(b))]
		if b[5] == 0xE0 {
			if b[6] == 0 && b[7] == 0 && (hasPrefix(v, "Cookie: msts") || rdpNeg(v, 1)) {
				return RDP
			}
		} else if rdpNeg(v, 2) || rdpNeg(v, 3) {
			return RDP
		}
	}
	return Unknown
}

// rdpNeg: an RDP negotiation structure of type typ, 8 octets long.
func rdpNeg(v []byte, typ byte) bool {
	return len(v) >= 8 && v[0] == typ && v[2] == 8 && v[3] == 0
}

// dcerpc: a DCE/RPC connection-oriented PDU header (C706 §12.6.3): version
// 5.0 or 5.1, a known PDU type, the usual data representation and a
// fragment length that covers the header.
func dcerpc(b []byte) bool {
	const hdrLen = 16
	if len(b) < hdrLen || b[0] != 5 || b[1] > 1 || b[2] > 20 {
		return false
	}
	if b[4]&^0x10 != 0 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return false
	}
	frag, auth := be16(b[8:]), be16(b[10:])
	if b[4] == 0x10 {
		frag, auth = le16(b[8:]), le16(b[10:])
	}
	return frag >= hdrLen && auth <= frag-hdrLen
}

// mqttConnect: an MQTT CONNECT packet, protocol "MQTT" level 4 or 5, or
// "MQIsdp" level 3 (MQTT 3.1.1 §3.1, MQTT 5.0 §3.1).
func mqttConnect(b []byte) bool {
	// The remaining length takes 1 to 4 octets, each but the last with
	// the high bit set.
	i := 1
	for i < len(b) && i < 4 && b[i]&0x80 != 0 {
		i++
	}
	if i >= len(b) || b[i]&0x80 != 0 {
		return false
	}
	v := b[i+1:]
	return hasPrefix(v, "\x00\x04MQTT") && len(v) > 6 && (v[6] == 4 || v[6] == 5) ||
		hasPrefix(v, "\x00\x06MQIsdp\x03")
}

// telnet: option negotiation (RFC 854): IAC, WILL/WONT/DO/DONT and a
// registered option, twice, or once and then another command or nothing.
// One triple alone is too weak: an MP3 frame starts with 0xFF 0xFB.
func telnet(b []byte) bool {
	i, cmds := 0, 0
	for cmds < 4 && i+3 <= len(b) && b[i] == 0xFF && b[i+1] >= 0xFB && b[i+1] <= 0xFE && (b[i+2] < 50 || b[i+2] == 0xFF) {
		i += 3
		cmds++
	}
	return cmds >= 2 || cmds == 1 && (i == len(b) || b[i] == 0xFF)
}

// ssh: the identification string "SSH-1.x" or "SSH-2.x" (RFC 4253 §4.2).
func ssh(b []byte) bool {
	return hasPrefix(b, "SSH-") && len(b) >= 7 && (b[4] == '1' || b[4] == '2') && b[5] == '.' && isDigit(b[6])
}

// vnc: the RFB ProtocolVersion message "RFB xxx.yyy\n" (RFC 6143 §7.1.1).
func vnc(b []byte) bool {
	return len(b) >= 12 && hasPrefix(b, "RFB ") && isDigit(b[4]) && isDigit(b[5]) && isDigit(b[6]) &&
		b[7] == '.' && isDigit(b[8]) && isDigit(b[9]) && isDigit(b[10]) && b[11] == '\n'
}

// httpMethods are the request methods of RFC 9110 and PATCH, each with
// the space that ends it.
var httpMethods = [...]string{"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "TRACE ", "CONNECT "}

// clientText names the text protocols whose client speaks first or whose
// first command is unmistakable: HTTP (a method and a request target),
// FTP (AUTH TLS or AUTH SSL, RFC 4217) and SMTP (EHLO or HELO).
//
// FTP's USER is not enough: POP3 sends the same command.
func clientText(b []byte) ID {
	for _, m := range httpMethods {
		if hasPrefix(b, m) && len(b) > len(m) {
			if httpTarget(m, b[len(m)]) {
				return HTTP
			}
			return Unknown
		}
	}
	switch {
	case hasPrefix(b, "PRI * HTTP/2.0\r\n"):
		return HTTP
	case hasPrefix(b, "AUTH TLS"), hasPrefix(b, "AUTH SSL"):
		return FTP
	case hasPrefix(b, "EHLO "), hasPrefix(b, "HELO "):
		return SMTP
	}
	return Unknown
}

// httpTarget: the request target starts as an origin form ("/"), an
// absolute form ("http://"), the asterisk of OPTIONS, or the authority of
// CONNECT (RFC 9112 §3.2).
func httpTarget(method string, c byte) bool {
	switch {
	case c == '/', c == 'h', c == 'H':
		return true
	case c == '*':
		return method == "OPTIONS "
	case method == "CONNECT ":
		return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'z' || c == '['
	}
	return false
}

// httpStatus: an HTTP/1.0 or 1.1 status line (RFC 9112 §4).
func httpStatus(b []byte) bool {
	return len(b) >= 12 && hasPrefix(b, "HTTP/1.") && (b[7] == '0' || b[7] == '1') && b[8] == ' ' &&
		isDigit(b[9]) && isDigit(b[10]) && isDigit(b[11])
}

// banner220 names a "220" greeting by what its first line says: FTP
// servers mostly name themselves (vsFTPd, ProFTPD, "FTP server") and SMTP
// servers say SMTP or ESMTP. A bare greeting is Unknown: the port decides.
func banner220(b []byte) ID {
	const maxLine = 128
	if len(b) < 8 || b[0] != '2' || b[1] != '2' || b[2] != '0' || b[3] != ' ' && b[3] != '-' {
		return Unknown
	}
	line := b[4:min(len(b), maxLine)]
	for i := 0; i+3 <= len(line) && line[i] != '\r' && line[i] != '\n'; i++ {
		if line[i+1] != 'T' || line[i+2] != 'P' {
			continue
		}
		switch {
		case line[i] == 'F':
			return FTP
		case line[i] == 'M' && i > 0 && line[i-1] == 'S':
			return SMTP
		}
	}
	return Unknown
}

// --- ICS ---------------------------------------------------------------

// mbap returns the length of a Modbus/TCP ADU (MBAP header, Modbus
// Messaging on TCP/IP Implementation Guide V1.0b §3.1.3): protocol id 0, a
// length of 2–254 and a function code, or an exception response of
// length 3. 0 when b is none.
func mbap(b []byte) int {
	if len(b) < 8 || b[2] != 0 || b[3] != 0 {
		return 0
	}
	n, fc := be16(b[4:]), b[7]
	if n < 2 || n > 254 || fc&0x7F == 0 || fc&0x80 != 0 && n != 3 {
		return 0
	}
	return 6 + n
}

// mbapRequest is mbap without exception responses: what a client sends.
func mbapRequest(b []byte) int {
	if len(b) < 8 || b[7]&0x80 != 0 {
		return 0
	}
	return mbap(b)
}

// dnp3Link: a DNP3 link header (IEEE 1815-2012 §9.2.4.1): start octets
// 0x05 0x64, a LENGTH of at least 5, and a matching header CRC.
func dnp3Link(b []byte) bool {
	return len(b) >= 10 && b[0] == 0x05 && b[1] == 0x64 && b[2] >= 5 && dnpCRC(b[:8]) == uint16(le16(b[8:]))
}

// dnpCRC is CRC-16/DNP: polynomial 0x3D65 taken least significant bit
// first (0xA6BC), initial value 0, the result complemented. Bit by bit:
// it only ever covers one 8-octet header.
func dnpCRC(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c ^= uint16(x)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA6BC
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

// apci returns the length of an IEC 60870-5-104 APDU (IEC 60870-5-104
// §5): start 0x68, a length of 4–253 and a valid control field. An
// I-format APDU carries an ASDU with a defined type, at least one object
// and a defined cause of transmission;
// S- and U-format ones are exactly 6 octets, and U-format has exactly one
// function bit.
func apci(b []byte) int {
	if len(b) < 6 || b[0] != 0x68 {
		return 0
	}
	n, c := int(b[1]), b[2]
	switch {
	case n < 4 || n > 253:
		return 0
	case c&1 == 0: // I
		if n < 4+6 || len(b) < 9 || b[4]&1 != 0 || !asduType(b[6]) || b[7]&0x7F == 0 || b[8]&0x3F == 0 || b[8]&0x3F > 47 {
			return 0
		}
	case c == 1: // S
		if n != 4 || b[3] != 0 || b[4]&1 != 0 {
			return 0
		}
	default: // U
		if n != 4 || b[3] != 0 || b[4] != 0 || b[5] != 0 {
			return 0
		}
		switch c {
		case 0x07, 0x0B, 0x13, 0x23, 0x43, 0x83:
		default:
			return 0
		}
	}
	return 2 + n
}

// asduType reports whether t is a type identification that IEC 60870-5-101
// and -104 define: process information in either direction, system
// information and parameters, file transfer.
func asduType(t byte) bool {
	switch {
	case 1 <= t && t <= 21, 30 <= t && t <= 40, 45 <= t && t <= 51, 58 <= t && t <= 64,
		t == 70, 100 <= t && t <= 107, 110 <= t && t <= 113, 120 <= t && t <= 127:
		return true
	}
	return false
}

// opcua returns the length of an OPC UA TCP message chunk (OPC 10000-6
// §7.1.2): a message type, a chunk type ('F' final; a MSG may also be 'C'
// or 'A'), and a little-endian size of at least the type's header. Hello
// and Acknowledge carry protocol version 0.
func opcua(b []byte) int {
	const maxChunk = 1 << 24
	if len(b) < 8 {
		return 0
	}
	size := le32(b[4:])
	final := b[3] == 'F'
	var least uint32 // the header of the message type
	switch string(b[:3]) {
	case "HEL":
		least = 32
	case "ACK":
		least = 28
	case "ERR":
		least = 16
	case "OPN", "CLO":
		least = 12
	case "MSG":
		least = 12
		final = final || b[3] == 'C' || b[3] == 'A'
	default:
		return 0
	}
	if !final || size < least || size > maxChunk {
		return 0
	}
	if (b[0] == 'H' || b[0] == 'A') && (len(b) < 12 || le32(b[8:]) != 0) {
		return 0
	}
	return int(size)
}

// enip returns the length of an EtherNet/IP encapsulation message (CIP
// Vol. 2 §2-3): a defined command other than NOP, options 0, a status
// that is success or a defined error, and for RegisterSession protocol
// version 1.
func enip(b []byte) int {
	const hdrLen = 24
	if len(b) < hdrLen {
		return 0
	}
	switch le16(b) {
	case 0x0004, 0x0063, 0x0064, 0x0065, 0x0066, 0x006F, 0x0070, 0x0072, 0x0073:
	default:
		return 0
	}
	n := le16(b[2:])
	if le32(b[8:]) > 0x69 || le32(b[20:]) != 0 {
		return 0
	}
	if b[0] == 0x65 && (n != 4 || len(b) < hdrLen+2 || le16(b[hdrLen:]) != 1) {
		return 0
	}
	return hdrLen + n
}

// cipIO: a CIP class 0/1 I/O datagram on 2222/udp (CIP Vol. 2 §2-6): a
// common packet format of two items, a sequenced address item (0x8002,
// 8 octets) and connected data (0x00B1) that fills the datagram.
func cipIO(b []byte) bool {
	return len(b) >= 18 && le16(b) == 2 && le16(b[2:]) == 0x8002 && le16(b[4:]) == 8 &&
		le16(b[14:]) == 0x00B1 && 18+le16(b[16:]) == len(b)
}

// bvlc: a BACnet/IP virtual link control header (ASHRAE 135 Annex J.2):
// type 0x81, a defined function, a length equal to the datagram's, the
// fixed size of fixed-size functions, and NPDU version 1 after the header
// of functions that carry an NPDU.
func bvlc(b []byte) bool {
	if len(b) < 4 || b[0] != 0x81 || be16(b[2:]) != len(b) {
		return false
	}
	n := len(b)
	switch b[1] {
	case 0x00, 0x05: // Result, Register-Foreign-Device
		return n == 6
	case 0x02, 0x06: // Read-BDT, Read-FDT
		return n == 4
	case 0x08: // Delete-FDT-Entry
		return n == 10
	case 0x01, 0x03: // Write-BDT, Read-BDT-Ack: 10-octet entries
		return (n-4)%10 == 0
	case 0x07: // Read-FDT-Ack: 10-octet entries
		return (n-4)%10 == 0
	case 0x09, 0x0A, 0x0B: // Distribute-Broadcast, Original-Unicast, Original-Broadcast
		return n > 5 && b[4] == 1
	case 0x04: // Forwarded-NPDU: the original source's address and port first
		return n > 11 && b[10] == 1
	}
	return false
}

// --- UDP chatter and management ----------------------------------------

// dhcp: a BOOTP request or reply carrying the DHCP magic cookie (RFC 2131
// §3).
func dhcp(b []byte) bool {
	return len(b) >= 240 && (b[0] == 1 || b[0] == 2) && b[2] <= 16 &&
		b[236] == 0x63 && b[237] == 0x82 && b[238] == 0x53 && b[239] == 0x63
}

// snmp: a BER SEQUENCE that fills the datagram, then the version (v1,
// v2c or v3) and a community string (v1, v2c) or the header data
// sequence (v3) (RFC 3416, RFC 3412).
func snmp(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	var n, off int
	switch {
	case b[1] < 0x80:
		n, off = int(b[1]), 2
	case b[1] == 0x81:
		n, off = int(b[2]), 3
	case b[1] == 0x82:
		n, off = be16(b[2:]), 4
	default:
		return false
	}
	if off+n != len(b) || len(b) < off+4 || b[off] != 0x02 || b[off+1] != 1 {
		return false
	}
	switch b[off+2] {
	case 0, 1:
		return b[off+3] == 0x04
	case 3:
		return b[off+3] == 0x30
	}
	return false
}

// syslog: a priority "<N>", N at most 191 without leading zeros, then
// the version 1 of RFC 5424 (§6.2) or the month of an RFC 3164 timestamp
// (§4.1.2). Other forms exist but "<N>" and text alone is too weak.
func syslog(b []byte) bool {
	pri, i := 0, 1
	for ; i < len(b) && i <= 3 && isDigit(b[i]); i++ {
		pri = pri*10 + int(b[i]-'0')
	}
	if i == 1 || i+4 >= len(b) || b[i] != '>' || b[1] == '0' && i > 2 || pri > 191 {
		return false
	}
	rest := b[i+1:]
	if hasPrefix(rest, "1 ") {
		return true
	}
	switch string(rest[:4]) {
	case "Jan ", "Feb ", "Mar ", "Apr ", "May ", "Jun ", "Jul ", "Aug ", "Sep ", "Oct ", "Nov ", "Dec ":
		return true
	}
	return false
}

// ptp: an IEEE 1588 (PTPv2) message (1588-2008 §13): version 2, a
// message length equal to the datagram's and at least the 34-octet
// common header, and a defined message type with the controlField that
// goes with it (kept by 1588-2019 for compatibility).
func ptp(b []byte) bool {
	if len(b) < 34 || b[1]&0x0F != 2 || be16(b[2:]) != len(b) {
		return false
	}
	var control byte
	switch b[0] & 0x0F {
	case 0x0: // Sync
		control = 0
	case 0x1: // Delay_Req
		control = 1
	case 0x8: // Follow_Up
		control = 2
	case 0x9: // Delay_Resp
		control = 3
	case 0xD: // Management
		control = 4
	case 0x2, 0x3, 0xA, 0xB, 0xC: // peer delay, Announce, Signaling
		control = 5
	default:
		return false
	}
	return b[32] == control
}
