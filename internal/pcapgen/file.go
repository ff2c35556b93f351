package pcapgen

import (
	"encoding/binary"
	"runtime"
	"time"
)

// The capture file formats, written as gopacket's pcapgo wrote them so that
// fixtures did not change when pcapgen stopped using it: pcap with
// microsecond timestamps, and pcapng with one section, one interface and
// enhanced packet blocks, all little-endian.

const (
	pcapMagicMicroseconds = 0xa1b2c3d4
	pcapVersionMajor      = 2
	pcapVersionMinor      = 4
	pcapHeaderLen         = 24
	pcapRecordHeaderLen   = 16

	ngBlockSectionHeader = 0x0a0d0d0a
	ngBlockInterface     = 1
	ngBlockEnhanced      = 6
	ngByteOrderMagic     = 0x1a2b3c4d
	ngEnhancedHeaderLen  = 28 // block type and length, interface, timestamp, lengths

	// Option codes of the section header, the interface description and
	// any block (opt_endofopt).
	ngOptEnd             = 0
	ngOptHardware        = 2
	ngOptOS              = 3
	ngOptUserApplication = 4
	ngOptIfName          = 2
	ngOptIfTSResol       = 9
	ngOptIfOS            = 12

	// The values pcapgo wrote by default.
	ngApplication = "gopacket"
	ngIfName      = "intf0"
	ngTSResolNano = "\x09" // timestamps in 10^-9 s
)

// appendPcapHeader appends the pcap file header.
func appendPcapHeader(b []byte, snaplen uint32, lt uint16) []byte {
	b = binary.LittleEndian.AppendUint32(b, pcapMagicMicroseconds)
	b = binary.LittleEndian.AppendUint16(b, pcapVersionMajor)
	b = binary.LittleEndian.AppendUint16(b, pcapVersionMinor)
	b = binary.LittleEndian.AppendUint32(b, 0) // thiszone
	b = binary.LittleEndian.AppendUint32(b, 0) // sigfigs
	b = binary.LittleEndian.AppendUint32(b, snaplen)
	return binary.LittleEndian.AppendUint32(b, uint32(lt))
}

// appendPcapRecordHeader appends the header of an n-byte pcap record. A
// zero ts is the time of writing, as pcapgo had it.
func appendPcapRecordHeader(b []byte, ts time.Time, n int) []byte {
	if ts.IsZero() {
		ts = time.Now()
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(ts.Unix()))
	b = binary.LittleEndian.AppendUint32(b, uint32(ts.Nanosecond()/1000))
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// appendNgHeader appends the pcapng section header block, naming the
// machine and pcapgo as the application, and the description of interface
// 0, with nanosecond timestamps.
func appendNgHeader(b []byte, snaplen uint32, lt uint16) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, ngBlockSectionHeader)
	b = binary.LittleEndian.AppendUint32(b, 0) // block length, set below
	b = binary.LittleEndian.AppendUint32(b, ngByteOrderMagic)
	b = binary.LittleEndian.AppendUint16(b, 1) // version 1.0
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint64(b, ^uint64(0)) // section length unknown
	b = appendNgOption(b, ngOptUserApplication, ngApplication)
	b = appendNgOption(b, ngOptHardware, runtime.GOARCH)
	b = appendNgOption(b, ngOptOS, runtime.GOOS)
	b = binary.LittleEndian.AppendUint32(b, ngOptEnd)
	b = endNgBlock(b, start)

	start = len(b)
	b = binary.LittleEndian.AppendUint32(b, ngBlockInterface)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint16(b, lt)
	b = binary.LittleEndian.AppendUint16(b, 0) // reserved
	b = binary.LittleEndian.AppendUint32(b, snaplen)
	b = appendNgOption(b, ngOptIfName, ngIfName)
	b = appendNgOption(b, ngOptIfOS, runtime.GOOS)
	b = appendNgOption(b, ngOptIfTSResol, ngTSResolNano)
	b = binary.LittleEndian.AppendUint32(b, ngOptEnd)
	return endNgBlock(b, start)
}

// appendNgOption appends an option with its value padded to 32 bits.
func appendNgOption(b []byte, code uint16, val string) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	return append(b, make([]byte, -len(val)&3)...)
}

// endNgBlock appends the trailing length of the block that starts at
// b[start:] and sets its leading one.
func endNgBlock(b []byte, start int) []byte {
	n := uint32(len(b) - start + 4)
	binary.LittleEndian.PutUint32(b[start+4:], n)
	return binary.LittleEndian.AppendUint32(b, n)
}

// ngEnhancedLen is the length of the enhanced packet block of an n-byte
// frame: header, frame padded to 32 bits, trailing length.
func ngEnhancedLen(n int) uint32 { return uint32(ngEnhancedHeaderLen + n + -n&3 + 4) }

// appendNgEnhancedHeader appends the enhanced packet block header of an
// n-byte frame on interface 0; the frame, its padding and the trailing
// length (appendNgEnhancedTrailer) follow.
func appendNgEnhancedHeader(b []byte, ts time.Time, n int) []byte {
	ns := ts.UnixNano()
	b = binary.LittleEndian.AppendUint32(b, ngBlockEnhanced)
	b = binary.LittleEndian.AppendUint32(b, ngEnhancedLen(n))
	b = binary.LittleEndian.AppendUint32(b, 0) // interface
	b = binary.LittleEndian.AppendUint32(b, uint32(ns>>32))
	b = binary.LittleEndian.AppendUint32(b, uint32(ns))
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// appendNgEnhancedTrailer appends the padding after an n-byte frame and the
// block's trailing length.
func appendNgEnhancedTrailer(b []byte, n int) []byte {
	b = append(b, make([]byte, -n&3)...)
	return binary.LittleEndian.AppendUint32(b, ngEnhancedLen(n))
}
