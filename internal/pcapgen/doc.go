// Package pcapgen writes deterministic packet captures for tests and
// benchmarks: link encapsulations (Ethernet, 802.1Q, QinQ, BSD loopback,
// raw IP, Linux cooked), IPv4 and IPv6, TCP connections with exact sequence
// numbers and the usual misbehaviour (splits, reordering, retransmission,
// overlap, gaps), UDP datagrams and IPv4 fragments, Modbus/TCP ADU and
// Modbus RTU frame builders, DNP3 link, transport and application
// builders, and two seeded industrial-network traffic mixes: Plant, a small
// plant, and SitePlant, a larger one with IT traffic and a few hosts that
// raise alerts.
//
// Everything goes through a Writer, which stamps each frame from its own
// clock and numbers frames from 1 as a capture reader does, so a test can
// assert on the frame number at which something happened. The Modbus
// builders follow the MODBUS Application Protocol Specification V1.1b3 and
// do not depend on the project's decoder, so fixtures cannot share its bugs.
//
// Frames are serialized here, lengths and checksums computed, byte for
// byte as gopacket's SerializeLayers and pcapgo wrote them when pcapgen
// used them (golden_test.go holds the hashes): pcapgen does not link
// gopacket, so that the tapwatch binary, which links it for its demo, does
// not either. Tests decode what it writes with gopacket.
package pcapgen
