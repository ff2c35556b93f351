// Package capture provides packet sources: pcap and pcapng files, read with
// zero copies, and (on Linux) live AF_PACKET rings.
//
// A Source returns one packet at a time. The returned bytes alias the
// source's buffer and are valid only until the next call.
package capture

import (
	"errors"
	"fmt"
	"time"

	"github.com/tapwatch/tapwatch/dpi/link"
)

// Info describes one captured packet.
type Info struct {
	Timestamp     time.Time
	CaptureLength int       // bytes captured
	Length        int       // bytes on the wire
	LinkType      link.Type // how to decode the first byte
	Frame         uint64    // 1-based number of the packet in its file (or since the start of a live capture)
	Source        int       // index of the file or interface the packet came from
}

// Source is a stream of packets. ReadPacket fills ci and returns the
// packet's bytes, valid until the next call, or io.EOF after the last
// packet. Filling the caller's Info instead of returning one saves a copy
// per packet.
type Source interface {
	ReadPacket(ci *Info) (data []byte, err error)
}

// A BatchSource also hands out its packets a batch at a time: a loop over
// a file's packets then pays for one call a batch rather than a call or
// two a packet (sensor.Pipeline.Replay uses it). ReadBatch fills b with
// the packets read ahead and not yet handed out, at least one when the
// error is nil; they are valid until the next call of either method. Its
// errors are ReadPacket's: a *FileError for a damaged record, after the
// packets before it, and io.EOF at the end; b is then empty. The two
// methods may be mixed.
type BatchSource interface {
	Source
	ReadBatch(b *Batch) error
}

// Batch is a run of packets from a BatchSource: Packet(i) for i below
// Len().
type Batch struct {
	data []byte
	recs []record
}

// Len is the number of packets in the batch.
func (b *Batch) Len() int { return len(b.recs) }

// Packet returns packet i's bytes and what is known of it, both valid
// until the source's next call.
func (b *Batch) Packet(i int) ([]byte, *Info) {
	r := &b.recs[i]
	return r.bytes(b.data), &r.info
}

// FileError reports a capture file that could not be read past a record.
// Records before Record were delivered.
type FileError struct {
	Path   string
	Record uint64 // 1-based record that failed; 0 means the file header
	Err    error
}

func (e *FileError) Error() string {
	if e.Record == 0 {
		return fmt.Sprintf("%s: file header: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s: record %d: %v", e.Path, e.Record, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// ErrUnsupportedLinkType is wrapped by errors for files whose link type the
// decoder cannot handle.
var ErrUnsupportedLinkType = errors.New("unsupported link type")

// SupportedLinkType reports whether the dpi layer decodes lt.
func SupportedLinkType(lt link.Type) bool { return lt.Decoded() }
