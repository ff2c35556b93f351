package service

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// x decodes hex written with spaces between fields.
func x(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Sides and transports, for the tables.
const (
	tcp, udp            = false, true
	client, server      = true, false
	anySide        side = 0
	clientOnly     side = 1
	serverOnly     side = 2
)

type side uint8

type idCase struct {
	name string
	udp  bool
	side side // which directions name the service; the other gives Unknown
	in   []byte
	want ID
}

// nbName is a NetBIOS name encoded in half-octets: 32 letters 'A'..'P'.
func nbName(s string) []byte {
	var b []byte
	b = append(b, 0x20)
	for i := range 16 {
		c := byte(' ')
		if i < len(s) {
			c = s[i]
		}
		b = append(b, 'A'+c>>4, 'A'+c&0x0F)
	}
	return append(b, 0)
}

func opcuaHello(url string) []byte {
	return cat([]byte("HELF"),
		le32b(uint32(32+len(url))), // message size
		le32b(0),                   // protocol version
		le32b(65536), le32b(65536), // receive and send buffer sizes
		le32b(0), le32b(0), // max message size, max chunk count
		le32b(uint32(len(url))), []byte(url))
}

func le32b(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func dhcpDiscover() []byte {
	b := make([]byte, 244)
	b[0], b[1], b[2] = 1, 1, 6 // BOOTREQUEST, Ethernet, 6-octet MAC
	copy(b[236:], x("63825363 350101"))
	return b
}

// identified: each payload must be named.
var identified = []idCase{
	// TLS
	{"tls client hello", tcp, anySide, clientHello("scada.example"), TLS},
	{"tls client hello without sni", tcp, anySide, clientHello(""), TLS},
	{"tls server hello", tcp, anySide, serverHello(), TLS},
	// Records of a flow whose start was missed: as on 7145 in Lemay's
	// moving_two_files.
	{"tls application data", tcp, anySide, cat(x("17 0301 0070"), make([]byte, 0x70)), TLS},
	{"tls two application data records", tcp, anySide, cat(x("17 0303 0020"), make([]byte, 0x20), x("17 0303 0010"), make([]byte, 0x10)), TLS},
	{"tls alert", tcp, anySide, x("15 0303 0002 0228"), TLS},
	{"tls certificate message", tcp, anySide, cat(clientHello("a")[:5], x("0b"), clientHello("a")[6:]), TLS},
	// SSH
	{"ssh 2.0", tcp, anySide, []byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), SSH},
	{"ssh 1.99", tcp, anySide, []byte("SSH-1.99-Cisco-1.25\r\n"), SSH},
	// HTTP
	{"http get", tcp, clientOnly, []byte("GET /index.html HTTP/1.1\r\nHost: hmi\r\n\r\n"), HTTP},
	{"http post", tcp, clientOnly, []byte("POST /api/v1/tags HTTP/1.1\r\n"), HTTP},
	{"http proxy get", tcp, clientOnly, []byte("GET http://update.example/ HTTP/1.1\r\n"), HTTP},
	{"http options *", tcp, clientOnly, []byte("OPTIONS * HTTP/1.1\r\n"), HTTP},
	{"http connect", tcp, clientOnly, []byte("CONNECT c2.example:443 HTTP/1.1\r\n"), HTTP},
	{"http/2 preface", tcp, clientOnly, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), HTTP},
	{"http status", tcp, serverOnly, []byte("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), HTTP},
	{"http 1.0 status", tcp, serverOnly, []byte("HTTP/1.0 404 Not Found\r\n"), HTTP},
	// SMB
	{"smb1 negotiate", tcp, anySide, x("00 000054 ff534d42 72 00000000 18 5328"), SMB},
	{"smb2 negotiate", tcp, anySide, x("00 0000b0 fe534d42 4000 0000 00000000 0000"), SMB},
	{"smb3 transform", tcp, anySide, x("00 000100 fd534d42 00000000"), SMB},
	{"smb over netbios, 17-bit length", tcp, anySide, x("00 010010 fe534d42 4000"), SMB},
	// NetBIOS session request: called and calling names.
	{"netbios session request", tcp, clientOnly, cat(x("81 00 0044"), nbName("FILESRV"), nbName("WS01")), NetBIOSSession},
	// RDP
	{"rdp cr with cookie and neg req", tcp, anySide, cat(
		x("03 00 002e"),         // TPKT, 46 octets
		x("29 e0 0000 0000 00"), // LI, CR, dst-ref, src-ref, class 0
		[]byte("Cookie: mstshash=operator\r\n"),
		x("01 00 0800 03000000")), RDP},
	{"rdp cr with neg req only", tcp, anySide, x("03 00 0013 0e e0 0000 0000 00 01 00 0800 0b000000"), RDP},
	{"rdp cc with neg rsp", tcp, anySide, x("03 00 0013 0e d0 0000 1234 00 02 1f 0800 02000000"), RDP},
	{"rdp cc with neg failure", tcp, anySide, x("03 00 0013 0e d0 0000 1234 00 03 00 0800 05000000"), RDP},
	// S7comm: setup communication job, then the same as S7comm-plus.
	{"s7comm job", tcp, anySide, x("03 00 0019 02 f0 80 32 01 0000 0000 0008 0000 f0 00 0001 0001 01e0"), S7comm},
	{"s7comm ack data", tcp, anySide, x("03 00 001b 02 f0 80 32 03 0000 0000 0008 0000 0000 f0 00 0001 0001 00f0"), S7comm},
	{"s7comm-plus", tcp, anySide, x("03 00 0020 02 f0 80 72 01 0011 31 0000 04ca 0000 0001 0000 0120 3600 0000"), S7comm},
	// VNC
	{"vnc", tcp, anySide, []byte("RFB 003.008\n"), VNC},
	// FTP and SMTP
	{"ftp vsftpd banner", tcp, serverOnly, []byte("220 (vsFTPd 3.0.3)\r\n"), FTP},
	{"ftp multi-line banner", tcp, serverOnly, []byte("220-Microsoft FTP Service\r\n220 ready\r\n"), FTP},
	{"ftp auth tls", tcp, clientOnly, []byte("AUTH TLS\r\n"), FTP},
	{"smtp banner", tcp, serverOnly, []byte("220 mail.example.com ESMTP Postfix\r\n"), SMTP},
	{"smtp ehlo", tcp, clientOnly, []byte("EHLO ws01.example.com\r\n"), SMTP},
	// Telnet
	{"telnet do options", tcp, anySide, x("fffd18 fffd20 fffd23 fffd27"), Telnet},
	{"telnet one will", tcp, anySide, x("fffb01"), Telnet},
	{"telnet will then subnegotiation", tcp, anySide, x("fffb18 fffa1801fff0"), Telnet},
	// Modbus/TCP
	{"modbus read holding registers", tcp, anySide, x("0001 0000 0006 01 03 0000 000a"), Modbus},
	{"modbus exception", tcp, serverOnly, x("0001 0000 0003 01 83 02"), Modbus},
	{"modbus two requests in a segment", tcp, anySide, x("0001 0000 0006 01 03 0000 000a 0002 0000 0006 01 01 0000 0010"), Modbus},
	{"modbus read exception status", tcp, anySide, x("00ff 0000 0002 01 07"), Modbus},
	// DNP3: reset link states, then a read of class 0.
	{"dnp3 reset link", tcp, anySide, x("0564 05c0 0100 0004 e921"), DNP3},
	{"dnp3 over udp", udp, anySide, x("0564 05c0 0100 0004 e921"), DNP3},
	// IEC 104
	{"iec104 startdt act", tcp, anySide, x("68 04 07 00 00 00"), IEC104},
	{"iec104 startdt con", tcp, anySide, x("68 04 0b 00 00 00"), IEC104},
	{"iec104 testfr act", tcp, anySide, x("68 04 43 00 00 00"), IEC104},
	{"iec104 s-format", tcp, anySide, x("68 04 01 00 02 00"), IEC104},
	{"iec104 interrogation", tcp, anySide, x("68 0e 0000 0000 64 01 0600 0100 000000 14"), IEC104},
	// OPC UA
	{"opcua hello", tcp, anySide, opcuaHello("opc.tcp://plc:4840"), OPCUA},
	{"opcua ack", tcp, anySide, cat([]byte("ACKF"), le32b(28), le32b(0), le32b(65536), le32b(65536), le32b(0), le32b(0)), OPCUA},
	// EtherNet/IP
	{"enip register session", tcp, anySide, x("6500 0400 00000000 00000000 0000000000000000 00000000 0100 0000"), EtherNetIP},
	{"enip list identity", tcp, anySide, x("6300 0000 00000000 00000000 0102030405060708 00000000"), EtherNetIP},
	{"enip list identity over udp", udp, anySide, x("6300 0000 00000000 00000000 0102030405060708 00000000"), EtherNetIP},
	{"cip i/o on 2222", udp, anySide, x("0200 0280 0800 11223344 05000000 b100 0600 0500 00000000"), EtherNetIP},
	// BACnet/IP: Who-Is, and I-Am forwarded by a BBMD.
	{"bacnet who-is", udp, anySide, x("81 0b 000c 01 20 ffff 00 ff 10 08"), BACnet},
	{"bacnet forwarded", udp, anySide, x("81 04 0017 c0a80105 bac0 01 20 ffff 00 ff 10 00 c4 02 00 00 01"), BACnet},
	{"bacnet register foreign device", udp, anySide, x("81 05 0006 003c"), BACnet},
	// Extras
	{"dcerpc bind", tcp, anySide, x("05 00 0b 03 10000000 4800 0000 01000000 b810 b810 00000000"), DCERPC},
	{"mqtt connect 3.1.1", tcp, clientOnly, cat(x("10 11 0004"), []byte("MQTT"), x("04 02 003c 0005"), []byte("plc01")), MQTT},
	{"mqtt connect 3.1", tcp, clientOnly, cat(x("10 13 0006"), []byte("MQIsdp"), x("03 02 003c 0005"), []byte("plc01")), MQTT},
	// UDP management and chatter
	{"dhcp discover", udp, anySide, dhcpDiscover(), DHCP},
	{"snmp v2c get", udp, anySide, cat(x("30 29 020101 0406"), []byte("public"), x("a01c 0204 12345678 020100 020100 300e 300c 0608 2b06010201010100 0500")), SNMP},
	{"snmp v3", udp, anySide, x("30 10 020103 300b 020101 020300ffe3 040100"), SNMP},
	{"syslog rfc 5424", udp, anySide, []byte("<34>1 2003-10-11T22:14:15.003Z rtu su - ID47 - login failed"), Syslog},
	{"syslog rfc 3164", udp, anySide, []byte("<13>Oct 11 22:14:15 rtu sshd[1]: msg"), Syslog},
	{"syslog priority 0", udp, anySide, []byte("<0>1 - rtu kernel - - - panic"), Syslog},
	{"ssdp m-search", udp, anySide, []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"), SSDP},
	{"ssdp notify", udp, anySide, []byte("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"), SSDP},
	{"ptp sync", udp, anySide, cat(x("00 02 002c 00 00 0000 0000000000000000 00000000 0011223344556677 0001 0001 00 00"), make([]byte, 10)), PTP},
}

// unknown: each payload must stay Unknown in both directions.
var unknown = []idCase{
	{"empty", tcp, anySide, nil, Unknown},
	{"two bytes", tcp, anySide, []byte{0x16, 3}, Unknown},
	// TLS near misses
	{"tls application data cut short", tcp, anySide, x("17 0303 0020 0102030405"), Unknown},
	{"tls application data then garbage", tcp, anySide, cat(x("17 0303 0002 0102"), []byte("GET / HTTP/1.1\r\n")), Unknown},
	{"tls record of length 0", tcp, anySide, x("17 0303 0000"), Unknown},
	{"tls record version 1.3", tcp, anySide, x("17 0304 0002 0102"), Unknown},
	{"tls record type 0x18", tcp, anySide, x("18 0303 0002 0102"), Unknown},
	{"tls record version 3.5", tcp, anySide, cat(x("16 0305"), clientHello("a")[3:]), Unknown},
	{"tls hello longer than its record", tcp, anySide, x("16 0301 0006 01 000001 03"), Unknown},
	{"tls cut in the header", tcp, anySide, clientHello("a")[:8], Unknown},
	// SSH, HTTP, VNC near misses
	{"ssh without a version", tcp, anySide, []byte("SSH-\r\n"), Unknown},
	{"sshx", tcp, anySide, []byte("SSHX-2.0-x\r\n"), Unknown},
	{"getx", tcp, anySide, []byte("GETX / HTTP/1.1\r\n"), Unknown},
	{"get without a target", tcp, anySide, []byte("GET "), Unknown},
	{"redis inline get", tcp, anySide, []byte("GET mykey\r\n"), Unknown},
	{"options asterisk is only options", tcp, anySide, []byte("GET * HTTP/1.1\r\n"), Unknown},
	{"lower-case get", tcp, anySide, []byte("get / HTTP/1.1\r\n"), Unknown},
	{"http/2 status", tcp, anySide, []byte("HTTP/2 200\r\n"), Unknown},
	{"http status without code", tcp, anySide, []byte("HTTP/1.1 OK\r\n\r\n"), Unknown},
	{"rfb without newline", tcp, anySide, []byte("RFB 003.008"), Unknown},
	{"rfb letters", tcp, anySide, []byte("RFB abc.def\n"), Unknown},
	// SMB and NetBIOS near misses
	{"smb keep-alive", tcp, anySide, x("85 000000"), Unknown},
	{"smc not smb", tcp, anySide, x("00 000054 fe534d43 4000"), Unknown},
	{"smb magic after a session message of 8", tcp, anySide, x("00 000008 fe534d42"), Unknown},
	{"netbios session positive response", tcp, anySide, x("82 000000"), Unknown},
	{"netbios request with a lower-case name", tcp, anySide, cat(x("81 00 0044"), bytes.ToLower(nbName("FILESRV")), nbName("WS01")), Unknown},
	// TPKT near misses
	{"tpkt alone", tcp, anySide, x("03 00 0004"), Unknown},
	{"tpkt without x.224", tcp, anySide, x("03 00 0007 ffffffff"), Unknown},
	{"cotp data without s7", tcp, anySide, x("03 00 0018 02 f0 80 7f65 820101040101010101ff30190201"), Unknown},
	{"cotp data with 0x32 and a bad rosctr", tcp, anySide, x("03 00 0019 02 f0 80 32 09 0000 0000 0008 0000 f0 00 0001 0001 01e0"), Unknown},
	{"s7 connection request with tsaps", tcp, anySide, x("03 00 0016 11 e0 0000 0001 00 c0 01 0a c1 02 0100 c2 02 0102"), Unknown},
	{"s7 connection confirm with tsaps", tcp, anySide, x("03 00 0016 11 d0 0001 0044 00 c0 01 0a c1 02 0100 c2 02 0102"), Unknown},
	{"bare connection request", tcp, anySide, x("03 00 000b 06 e0 0000 0000 00"), Unknown},
	{"rdp cr with a wrong length indicator", tcp, anySide, x("03 00 0013 0f e0 0000 0000 00 01 00 0800 03000000"), Unknown},
	{"rdp cr cookie without msts", tcp, anySide, cat(x("03 00 0019 14 e0 0000 0000 00"), []byte("Cookie: abcd\r\n")), Unknown},
	// FTP and SMTP: too weak alone
	{"user is ftp or pop3", tcp, anySide, []byte("USER anonymous\r\n"), Unknown},
	{"bare 220 greeting", tcp, anySide, []byte("220 Welcome\r\n"), Unknown},
	{"pop3 greeting", tcp, anySide, []byte("+OK POP3 server ready\r\n"), Unknown},
	{"220 without a separator", tcp, anySide, []byte("2200 FTP\r\n"), Unknown},
	// Telnet near misses: an MP3 frame header, one option then text.
	{"mp3 frame sync", tcp, anySide, x("fffb9064 00000000"), Unknown},
	{"one option then text", tcp, anySide, cat(x("fffb01"), []byte("login: ")), Unknown},
	{"iac iac", tcp, anySide, x("ffff41"), Unknown},
	// Modbus near misses
	{"mbap protocol id 1", tcp, anySide, x("0001 0001 0006 01 03 0000 000a"), Unknown},
	{"mbap length too long for the payload", tcp, anySide, x("0001 0000 0007 01 03 0000 000a"), Unknown},
	{"mbap length too short for the payload", tcp, anySide, x("0001 0000 0005 01 03 0000 000a"), Unknown},
	{"mbap length 1", tcp, anySide, x("0001 0000 0001 01"), Unknown},
	{"mbap function 0", tcp, anySide, x("0001 0000 0006 01 00 0000 000a"), Unknown},
	{"mbap exception of length 6", tcp, anySide, x("0001 0000 0006 01 83 0000 000a"), Unknown},
	{"mbap then garbage", tcp, anySide, x("0001 0000 0006 01 03 0000 000a 01020304050607"), Unknown},
	// DNP3
	{"dnp3 bad crc", tcp, anySide, x("0564 05c0 0100 0004 e922"), Unknown},
	{"dnp3 length 4", tcp, anySide, x("0564 04c0 0100 0004 e921"), Unknown},
	{"dnp3 cut before the crc", tcp, anySide, x("0564 05c0 0100 0004"), Unknown},
	// IEC 104 near misses
	{"apci length 3", tcp, anySide, x("68 03 07 00 00"), Unknown},
	{"apci length 254", tcp, anySide, cat(x("68 fe 07 00 00 00"), make([]byte, 250)), Unknown},
	{"apci length bigger than the payload", tcp, anySide, x("68 05 07 00 00 00"), Unknown},
	{"u-format with two functions", tcp, anySide, x("68 04 0f 00 00 00"), Unknown},
	{"s-format with a long apdu", tcp, anySide, x("68 06 01 00 02 00 00 00"), Unknown},
	{"i-format with cause 0", tcp, anySide, x("68 0e 0000 0000 64 01 0000 0100 000000 14"), Unknown},
	{"i-format with type 0", tcp, anySide, x("68 0e 0000 0000 00 01 0600 0100 000000 14"), Unknown},
	// OPC UA near misses
	{"opcua hello chunk c", tcp, anySide, append([]byte("HELC"), opcuaHello("opc.tcp://x")[4:]...), Unknown},
	{"opcua hello size off by one", tcp, anySide, append(opcuaHello("opc.tcp://x"), 0), Unknown},
	{"opcua hello version 1", tcp, anySide, cat(opcuaHello("opc.tcp://x")[:8], le32b(1), opcuaHello("opc.tcp://x")[12:]), Unknown},
	// EtherNet/IP near misses
	{"enip nop", tcp, anySide, make([]byte, 24), Unknown},
	{"enip options set", tcp, anySide, x("6300 0000 00000000 00000000 0102030405060708 01000000"), Unknown},
	{"enip length mismatch", tcp, anySide, x("6300 0400 00000000 00000000 0102030405060708 00000000"), Unknown},
	{"enip register session version 2", tcp, anySide, x("6500 0400 00000000 00000000 0000000000000000 00000000 0200 0000"), Unknown},
	// BACnet near misses
	{"bvlc length mismatch", udp, anySide, x("81 0b 000d 01 20 ffff 00 ff 10 08"), Unknown},
	{"bvlc function 0x0d", udp, anySide, x("81 0d 0006 0000"), Unknown},
	{"bvlc npdu version 2", udp, anySide, x("81 0b 000c 02 20 ffff 00 ff 10 08"), Unknown},
	{"bvlc over tcp", tcp, anySide, x("81 0b 000c 01 20 ffff 00 ff 10 08"), Unknown},
	// UDP: content alone is too weak for DNS, NTP, NetBIOS names.
	{"dns query", udp, anySide, cat(x("1234 0100 0001 0000 0000 0000 03"), []byte("plc"), x("00 0001 0001")), Unknown},
	{"ntp client", udp, anySide, cat(x("23 00 06 20"), make([]byte, 44)), Unknown},
	{"ssdp response", udp, anySide, []byte("HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n"), Unknown},
	{"syslog priority 192", udp, anySide, []byte("<192>x"), Unknown},
	{"syslog leading zero", udp, anySide, []byte("<013>x"), Unknown},
	{"syslog without version or timestamp", udp, anySide, []byte("<13>rtu tag: text"), Unknown},
	{"syslog cut after the priority", udp, anySide, []byte("<13>1"), Unknown},
	{"ptp with the wrong control field", udp, anySide, cat(x("00 02 002c 00 00 0000 0000000000000000 00000000 0011223344556677 0001 0001 05 00"), make([]byte, 10)), Unknown},
	{"iec104 i-format with an undefined type", tcp, anySide, x("68 0e 0000 0000 16 01 0600 0100 000000 14"), Unknown},
	{"iec104 i-format without objects", tcp, anySide, x("68 0e 0000 0000 64 00 0600 0100 000000 14"), Unknown},
	{"snmp length mismatch", udp, anySide, cat(x("30 2a 020101 0406"), []byte("public"), x("a01c 0204 12345678 020100 020100 300e 300c 0608 2b06010201010100 0500")), Unknown},
	{"snmp version 2", udp, anySide, cat(x("30 29 020102 0406"), []byte("public"), x("a01c 0204 12345678 020100 020100 300e 300c 0608 2b06010201010100 0500")), Unknown},
	{"dhcp without cookie", udp, anySide, dhcpDiscover()[:236], Unknown},
	{"ptp version 1", udp, anySide, cat(x("00 01 002c"), make([]byte, 40)), Unknown},
	{"ptp message type 5", udp, anySide, cat(x("05 02 002c"), make([]byte, 40)), Unknown},
	{"modbus over udp with a tail", udp, anySide, x("0001 0000 0006 01 03 0000 000a 00"), Unknown},
	{"cip i/o with a short item", udp, anySide, x("0200 0280 0800 11223344 05000000 b100 0700 0500 00000000"), Unknown},
	{"tls over udp", udp, anySide, clientHello("a"), Unknown},
	// MQTT and DCE/RPC near misses
	{"mqtt connect level 2", tcp, anySide, cat(x("10 11 0004"), []byte("MQTT"), x("02 02 003c 0005"), []byte("plc01")), Unknown},
	{"mqtt remaining length of 5 octets", tcp, anySide, cat(x("10 ffffffff7f 0004"), []byte("MQTT"), x("04")), Unknown},
	{"dcerpc version 4", tcp, anySide, x("04 00 0b 03 10000000 4800 0000 01000000"), Unknown},
	{"dcerpc fragment shorter than its header", tcp, anySide, x("05 00 0b 03 10000000 0800 0000 01000000"), Unknown},
}

func TestIdentify(t *testing.T) {
	check := func(c idCase, fromClient bool, want ID) {
		t.Helper()
		if got := Identify(c.udp, fromClient, c.in); got != want {
			dir := "server"
			if fromClient {
				dir = "client"
			}
			t.Errorf("%s from the %s (udp %v): %v, want %v", c.name, dir, c.udp, got, want)
		}
	}
	for _, c := range identified {
		switch c.side {
		case clientOnly:
			check(c, client, c.want)
			check(c, server, Unknown)
		case serverOnly:
			check(c, client, Unknown)
			check(c, server, c.want)
		default:
			check(c, client, c.want)
			check(c, server, c.want)
		}
	}
	for _, c := range unknown {
		check(c, client, Unknown)
		check(c, server, Unknown)
	}
}

// TestIdentifyRandom: random bytes, and random bytes behind each rule's
// first octets, stay Unknown. The seed is fixed, so the test is stable.
func TestIdentifyRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 17))
	named := map[ID]int{}
	b := make([]byte, 600)
	for i := range 200000 {
		n := r.IntN(len(b))
		for j := range n {
			b[j] = byte(r.Uint32())
		}
		if i%2 == 1 && n > 0 {
			// Start with a rule's first octet, to get past the switch.
			b[0] = []byte{0x00, 0x03, 0x05, 0x10, 0x16, 0x17, 0x30, 0x68, 0x81, 0xFF, '<'}[r.IntN(11)]
		}
		for _, u := range []bool{tcp, udp} {
			for _, c := range []bool{client, server} {
				if id := Identify(u, c, b[:n]); id != Unknown {
					named[id]++
					if named[id] == 1 {
						t.Errorf("random bytes named %v (udp %v, client %v): % x", id, u, c, b[:min(n, 32)])
					}
				}
			}
		}
	}
}

// TestDNPCRC holds dnpCRC to link headers whose CRCs come from elsewhere:
// the reset-link frame quoted by DNP3 implementers, and a request and a
// response of Zeek's dnp3_read trace (as tshark shows them).
func TestDNPCRC(t *testing.T) {
	for _, f := range []string{"0564 05c0 0100 0004 e921", "0564 14c4 0200 0300 4503", "0564 7444 0300 0200 6854"} {
		b := x(f)
		if got, want := dnpCRC(b[:8]), uint16(b[8])|uint16(b[9])<<8; got != want {
			t.Errorf("%s: CRC %#04x, want %#04x", f, got, want)
		}
	}
}

func TestIdentifyAllocs(t *testing.T) {
	all := append(append([]idCase(nil), identified...), unknown...)
	n := testing.AllocsPerRun(20, func() {
		for _, c := range all {
			Identify(c.udp, true, c.in)
			Identify(c.udp, false, c.in)
		}
	})
	if n != 0 {
		t.Errorf("Identify allocates %.0f times over the tables", n)
	}
}

// BenchmarkIdentify names every payload of the tables, both sides: the
// cost per flow of naming its service.
func BenchmarkIdentify(b *testing.B) {
	all := append(append([]idCase(nil), identified...), unknown...)
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range all {
			Identify(c.udp, true, c.in)
			Identify(c.udp, false, c.in)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*len(all)), "ns/payload")
}
