package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"

	"github.com/tapwatch/tapwatch/dpi/link"
)

// pcapFile reads a classic pcap file a block at a time into a batch's
// buffer and finds the records in it, so that a record's bytes are read
// from the file straight into the buffer the pipeline decodes them from,
// with no copy in between. It accepts what pcapgo's Reader accepts and
// fails where it fails, with the same messages (see FuzzPcapFile).
type pcapFile struct {
	fileReader
	big     bool   // big-endian header fields
	factor  uint32 // nanoseconds a unit of the fraction: 1 or 1000
	snaplen uint32
	maxCap  uint64 // the longest record taken: the snap length, or libpcap's 262144 if more
	link    link.Type
	pend    []byte // the start of a record that did not fit in the last block
	frame   uint64 // records handed out
	failed  bool   // the file has ended; fill returns io.EOF
}

const (
	pcapHeaderLen = 24
	pcapRecordLen = 16
	// pcapMaxEager is libpcap's MAXIMUM_SNAPLEN: records up to this length
	// are taken whatever the file's snap length says (as pcapgo does).
	pcapMaxEager = 262144
)

// newPcapFile reads the 24-byte file header from r.
func newPcapFile(r io.Reader) (*pcapFile, error) {
	var h [pcapHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, headerError(err)
	}
	p := &pcapFile{fileReader: fileReader{r: r}}
	switch le := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16 | uint32(h[3])<<24; le {
	case 0xa1b2c3d4:
		p.factor = 1000
	case 0xd4c3b2a1:
		p.big, p.factor = true, 1000
	case 0xa1b23c4d:
		p.factor = 1
	case 0x4d3cb2a1:
		p.big, p.factor = true, 1
	default:
		//lint:ignore ST1005 pcapgo's message
		return nil, fmt.Errorf("Unknown magic %x", le)
	}
	if v := p.u16(h[4:6]); v != 2 {
		//lint:ignore ST1005 pcapgo's message
		return nil, fmt.Errorf("Unknown major version %d", v)
	}
	if v := p.u16(h[6:8]); v != 4 {
		//lint:ignore ST1005 pcapgo's message
		return nil, fmt.Errorf("Unknown minor version %d", v)
	}
	p.snaplen = p.u32(h[16:20])
	p.link = link.Type(p.u32(h[20:24]))
	p.maxCap = max(uint64(p.snaplen), pcapMaxEager)
	return p, nil
}

func (p *pcapFile) u16(b []byte) uint16 {
	if p.big {
		return uint16(b[0])<<8 | uint16(b[1])
	}
	return uint16(b[1])<<8 | uint16(b[0])
}

func (p *pcapFile) u32(b []byte) uint32 {
	_ = b[3]
	if p.big {
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
}

// fileReader reads a capture file, noting the error that ends it.
type fileReader struct {
	r     io.Reader
	ended bool  // r has returned an error
	rerr  error // that error, unless it was io.EOF
}

// read fills buf from r as far as r gives.
func (f *fileReader) read(buf []byte) int {
	n := 0
	for n < len(buf) && !f.ended {
		m, err := f.r.Read(buf[n:])
		n += m
		if err != nil {
			f.ended = true
			if err != io.EOF {
				f.rerr = err
			}
		}
	}
	return n
}

// fill reads the next block of the file into b, reusing its buffers, and
// lists the records it holds. b.err is what ends the file after them:
// io.EOF, a *FileError (path names the file), or nil when there is more.
// A record longer than b's buffer grows it, by no more than the bytes the
// file really holds.
func (p *pcapFile) fill(b *batch, path string) {
	b.data, b.recs, b.err = append(b.data[:0], p.pend...), b.recs[:0], nil
	p.pend = p.pend[:0]
	if p.failed {
		b.err = io.EOF
		return
	}
	for {
		b.data = b.data[:len(b.data)+p.read(b.data[len(b.data):cap(b.data)])]
		off, err := p.records(b)
		if err != nil {
			p.fail(b, path, err)
			return
		}
		tail := b.data[off:]
		if len(b.recs) == cap(b.recs) || len(b.recs) > 0 && !p.ended {
			p.pend = append(p.pend, tail...)
			b.data = b.data[:off]
			return
		}
		if p.ended {
			// The file is done: what is left is a record cut short.
			b.data = b.data[:off]
			switch {
			case p.rerr != nil:
				p.fail(b, path, p.rerr)
			case len(tail) == 0,
				len(tail) == pcapRecordLen && p.u32(tail[8:12]) > 0:
				// pcapgo ends a file whose last record header has no
				// bytes after it as if the file had ended before it.
				p.failed = true
				b.err = io.EOF
			default:
				p.fail(b, path, io.ErrUnexpectedEOF)
			}
			return
		}
		// No record fits yet: the buffer holds the start of one record
		// longer than the buffer. Grow it (at most doubling, so that a
		// damaged length cannot make us allocate more than the file
		// holds) and read on.
		grown := make([]byte, len(b.data), 2*cap(b.data))
		copy(grown, b.data)
		b.data = grown
	}
}

// records lists the complete records in b.data and returns the offset of
// the first byte after them, or the error of a damaged record header.
func (p *pcapFile) records(b *batch) (int, error) {
	off, data, recs := 0, b.data, b.recs
	for len(recs) < cap(recs) && len(data)-off >= pcapRecordLen {
		// The record header's four words, read together with one bounds
		// check and one test of the byte order.
		h := (*[pcapRecordLen]byte)(data[off:])
		sec, frac := binary.LittleEndian.Uint32(h[0:]), binary.LittleEndian.Uint32(h[4:])
		capLen, wireLen := binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
		if p.big {
			sec, frac = bits.ReverseBytes32(sec), bits.ReverseBytes32(frac)
			capLen, wireLen = bits.ReverseBytes32(capLen), bits.ReverseBytes32(wireLen)
		}
		if uint64(capLen) > math.MaxInt { // 32-bit platforms only
			b.recs = recs
			return off, errLengthOverflow
		}
		if uint64(capLen) > p.maxCap {
			b.recs = recs
			return off, fmt.Errorf("capture length exceeds snap length: %d > %d", capLen, p.snaplen)
		}
		if capLen > wireLen {
			b.recs = recs
			return off, fmt.Errorf("capture length exceeds original packet length: %d > %d", capLen, wireLen)
		}
		if uint64(len(data)-off) < pcapRecordLen+uint64(capLen) {
			break // (in uint64: a length near 2^31 is negative in a 32-bit int)
		}
		p.frame++
		recs = recs[:len(recs)+1] // filled in place: no record is built and copied
		r := &recs[len(recs)-1]
		r.off, r.n = off+pcapRecordLen, int(capLen)
		// uint32 arithmetic, as pcapgo: a fraction that is out of range
		// in a microsecond file wraps the same way there.
		r.info.Timestamp = time.Unix(int64(sec), int64(frac*p.factor)).UTC()
		r.info.CaptureLength, r.info.Length = int(capLen), int(wireLen)
		r.info.LinkType, r.info.Frame, r.info.Source = p.link, p.frame, 0
		off += pcapRecordLen + int(capLen)
	}
	b.recs = recs
	return off, nil
}

// fail ends the file at the record after the last one handed out.
func (p *pcapFile) fail(b *batch, path string, err error) {
	p.failed = true
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = errTruncatedRecord
	}
	b.err = &FileError{Path: path, Record: p.frame + 1, Err: err}
}

var (
	errTruncatedRecord = errors.New("file ends inside the record (truncated capture)")
	errLengthOverflow  = errors.New("length from file does not fit in int")
)

// batches hands out the records of a file one at a time, on the caller's
// goroutine (the File of NewFile, which is not read ahead; a File that is
// reads ahead with prefetch).
type batches struct {
	b batch
	i int
}

func (s *batches) next(info *Info, src filler, path string) ([]byte, error) {
	b, err := s.current(src, path)
	if err != nil {
		return nil, err
	}
	return b.take(&s.i, info), nil
}

// current returns the batch that holds the next record, s.i its index,
// or the error that ends the file.
func (s *batches) current(src filler, path string) (*batch, error) {
	for {
		if s.i < len(s.b.recs) {
			return &s.b, nil
		}
		if s.b.err != nil {
			err := s.b.err
			s.b.err = io.EOF // a damaged file is reported once, then ends
			return nil, err
		}
		if cap(s.b.data) == 0 {
			s.b = newBatch()
		}
		src.fill(&s.b, path)
		s.i = 0
	}
}
