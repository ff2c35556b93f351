package capture

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/tapwatch/tapwatch/dpi/link"
)

// pcapngFile reads a pcapng file a stretch at a time into a batch's buffer
// and finds the packets in its blocks, so that a packet's bytes are read
// from the file straight into the buffer the pipeline decodes them from,
// as pcapFile does for classic pcap files.
//
// It reads each block's fields in the order pcapgo's NgReader reads them
// and fails where that fails, with the same messages, but for these
// differences (see FuzzPcapngFile):
//
//   - Packets of every interface are handed out, each with its interface's
//     link type. NgReader, as capture used it, skipped the packets of
//     interfaces whose link type differed from the first interface's, and
//     could not read on past a later section whose first interface had
//     another one.
//   - Blocks are checked as libpcap and Wireshark check them, and a block
//     that fails is an error wrapping errBadBlock: a length that is not a
//     multiple of 4 or is under 12, a trailing length other than the
//     leading one, or fields that run past the block's end. NgReader
//     checks none of these: it reads on across the block's end.
//   - A file that ends inside a block is "truncated" whatever the block,
//     where NgReader said "could not read name: unexpected EOF" and the
//     like in name resolution and decryption secrets blocks.
type pcapngFile struct {
	fileReader
	big      bool          // the current section is big-endian
	sections int           // section header blocks read
	ifaces   []ngInterface // the current section's interfaces
	link     link.Type     // the file's first interface's link type
	opened   bool          // the file's first interface has been read
	pend     []byte        // the start of a block that did not fit in the last batch
	frame    uint64        // packets handed out
	failed   bool          // the file has ended; fill returns io.EOF
}

// ngInterface is what a packet needs of its interface description block.
type ngInterface struct {
	link     link.Type
	snaplen  uint32
	units    uint64 // timestamp units a second (if_tsresol)
	up, down uint64 // nanoseconds = units left over * up / down, as NgReader rounds them
	offset   uint64 // seconds added to every timestamp (if_tsoffset)
	// sec and from are the second of the last timestamp split on a
	// 32-bit processor and its first timestamp in units (split).
	sec, from uint64
	split1    bool // sec and from are set
}

// Block types and the byte-order magic.
const (
	ngIDB       = 1
	ngPB        = 2 // the obsolete packet block
	ngSPB       = 3
	ngNRB       = 4
	ngISB       = 5
	ngEPB       = 6
	ngDSB       = 10
	ngSHB       = 0x0a0d0d0a // the same in both byte orders
	ngByteOrder = 0x1a2b3c4d
)

var (
	// errBadBlock is wrapped by the errors of blocks whose lengths are
	// inconsistent.
	errBadBlock = errors.New("malformed pcapng block")
	// errNoInterface is NgReader's error for a packet before any
	// interface description block of its section.
	//lint:ignore ST1005 pcapgo's message
	errNoInterface = errors.New("A section must have an interface before a packet block")
	errNeedMore    = errors.New("block continues past the buffer")
)

// newPcapngFile reads the first section header block and the blocks up to
// the first interface description block, as NgReader does before it
// reads packets. Errors are NgReader's, unwrapped.
func newPcapngFile(r io.Reader) (*pcapngFile, error) {
	p := &pcapngFile{fileReader: fileReader{r: r}}
	b := batch{data: make([]byte, 0, 4<<10), recs: make([]record, 0, 1)}
	if err := p.load(&b); err != nil {
		return nil, err
	}
	return p, nil // the bytes read after the interface are in p.pend
}

// order is a byte order: true is big-endian.
type order bool

func (o order) u16(b []byte) uint16 {
	if o {
		return uint16(b[0])<<8 | uint16(b[1])
	}
	return uint16(b[1])<<8 | uint16(b[0])
}

func (o order) u32(b []byte) uint32 {
	_ = b[3]
	if o {
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
}

func (o order) u64(b []byte) uint64 {
	if o {
		return uint64(o.u32(b[0:4]))<<32 | uint64(o.u32(b[4:8]))
	}
	return uint64(o.u32(b[4:8]))<<32 | uint64(o.u32(b[0:4]))
}

// fill reads the next stretch of the file into b, reusing its buffers, and
// lists the packets it holds. b.err is what ends the file after them:
// io.EOF, a *FileError (path names the file), or nil when there is more.
func (p *pcapngFile) fill(b *batch, path string) {
	if err := p.load(b); err != nil {
		p.failed = true
		if err != io.EOF {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = errTruncatedRecord
			}
			err = &FileError{Path: path, Record: p.frame + 1, Err: err}
		}
		b.err = err
	}
}

// load is fill with the error that ends the file unwrapped: io.EOF at its
// end. Before the file's first interface is read, it stops after it.
func (p *pcapngFile) load(b *batch) error {
	b.data, b.recs, b.err = append(b.data[:0], p.pend...), b.recs[:0], nil
	p.pend = p.pend[:0]
	if p.failed {
		return io.EOF
	}
	for {
		b.data = b.data[:len(b.data)+p.read(b.data[len(b.data):cap(b.data)])]
		off, err := p.blocks(b)
		if err != nil && err != errNeedMore {
			b.data = b.data[:off]
			if p.rerr != nil && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				err = p.rerr
			}
			return err
		}
		tail := b.data[off:]
		if len(b.recs) > 0 || err == nil {
			p.pend = append(p.pend, tail...)
			b.data = b.data[:off]
			return nil
		}
		// No packet yet, and the buffer (filled: the file goes on) ends
		// inside a block. Move that block to the front, or if it starts
		// there, grow the buffer, at most doubling it, so that a damaged
		// length cannot make us allocate more than the file holds.
		if off > 0 {
			b.data = b.data[:copy(b.data, tail)]
			continue
		}
		grown := make([]byte, len(b.data), 2*cap(b.data))
		copy(grown, b.data)
		b.data = grown
	}
}

// blocks reads the complete blocks in b.data, lists their packets and
// returns the offset of the first byte after them. Its error is
// errNeedMore when the file goes on past b.data, nil when the batch is
// full or, at the start of the file, the first interface has been read,
// and otherwise what ends the file.
func (p *pcapngFile) blocks(b *batch) (int, error) {
	off, opened := 0, p.opened
	for len(b.recs) < cap(b.recs) {
		n, err := p.block(b, off)
		if err != nil {
			return off, err
		}
		off += n
		if !opened && p.opened {
			break
		}
	}
	return off, nil
}

// ngCursor reads the fields of a block in order, as NgReader reads them
// from its stream, and tells a field that runs past the block's end from
// one that runs past the end of the file.
type ngCursor struct {
	b   []byte // the block as far as the file holds it: all of it, or less at the end
	pos int
	end uint32 // the block's length
	big order
	typ uint32
}

func (c *ngCursor) u16(b []byte) uint16 { return c.big.u16(b) }
func (c *ngCursor) u32(b []byte) uint32 { return c.big.u32(b) }

// left is what NgReader counts as left of the block: up to its end,
// trailing length included.
func (c *ngCursor) left() uint64 { return uint64(c.end) - uint64(c.pos) }

func (c *ngCursor) take(n uint64) ([]byte, error) {
	if n > c.left() {
		return nil, c.bad("its fields run past its end")
	}
	if n > uint64(len(c.b)-c.pos) {
		return nil, io.ErrUnexpectedEOF
	}
	s := c.b[c.pos : c.pos+int(n)]
	c.pos += int(n)
	return s, nil
}

// pad skips the padding after n bytes.
func (c *ngCursor) pad(n uint32) error {
	_, err := c.take(uint64((4 - n&3) & 3))
	return err
}

// rest skips to the end of the block.
func (c *ngCursor) rest() error {
	_, err := c.take(c.left())
	return err
}

func (c *ngCursor) bad(why string) error {
	return fmt.Errorf("%w: block type %#x, length %d: %s", errBadBlock, c.typ, c.end, why)
}

// option reads the next option of a block. ok is false after the last
// one: at an end-of-options option, or when only the trailing length is
// left, as NgReader has it.
func (c *ngCursor) option() (code uint16, val []byte, ok bool, err error) {
	if c.left() == 4 {
		return 0, nil, false, nil
	}
	h, err := c.take(4)
	if err != nil {
		return 0, nil, false, err
	}
	code, n := c.u16(h[0:2]), c.u16(h[2:4])
	if code == 0 {
		if n != 0 {
			//lint:ignore ST1005 pcapgo's message
			return 0, nil, false, errors.New("End of Options must be zero length")
		}
		return 0, nil, false, nil
	}
	if val, err = c.take(uint64(n)); err == nil {
		err = c.pad(uint32(n))
	}
	return code, val, err == nil, err
}

// skipOptions reads the options of a block for their errors alone.
func (c *ngCursor) skipOptions() error {
	for {
		_, _, ok, err := c.option()
		if !ok {
			return err
		}
	}
}

// block reads the block at b.data[off:] and, if it is a packet, lists it
// in b. It returns the block's length; errNeedMore when b.data does not
// hold all of the block and the file goes on; io.EOF at the end of the
// file; or the error that ends the file.
func (p *pcapngFile) block(b *batch, off int) (int, error) {
	buf := b.data[off:]
	if len(buf) == 0 && p.ended {
		return 0, io.EOF
	}
	c := ngCursor{b: buf, pos: 8, big: order(p.big)}
	if len(buf) >= 4 && order(false).u32(buf) == ngSHB {
		c.pos = 12 // and the byte-order magic
	}
	if len(buf) < c.pos {
		if p.ended {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, errNeedMore
	}
	c.typ = c.u32(buf[0:4])
	if c.typ == ngSHB {
		switch order(false).u32(buf[8:12]) {
		case ngByteOrder:
			c.big = false
		case 0x4d3c2b1a:
			c.big = true
		default:
			//lint:ignore ST1005 pcapgo's message
			return 0, errors.New("Wrong byte order value in Section Header")
		}
	} else if p.sections == 0 {
		//lint:ignore ST1005 pcapgo's message
		return 0, fmt.Errorf("Unknown magic %x", c.typ)
	}
	c.end = c.u32(buf[4:8])
	switch c.typ {
	case ngPB, ngEPB, ngSPB, ngISB:
		if len(p.ifaces) == 0 {
			return 0, errNoInterface
		}
	}
	if c.end%4 != 0 || c.end < 12 {
		return 0, c.bad("not a multiple of 4 of at least 12")
	}
	if uint64(len(buf)) < uint64(c.end) {
		if !p.ended {
			return 0, errNeedMore
		}
	} else {
		c.b = buf[:c.end]
	}

	var (
		rec    record
		packet bool
		err    error
		iface  *ngInterface
	)
	switch c.typ {
	case ngEPB, ngPB:
		var f []byte
		if f, err = c.take(20); err != nil {
			return 0, err
		}
		id := c.u32(f[0:4])
		if c.typ == ngPB {
			id = uint32(c.u16(f[0:2]))
		}
		if uint64(id) >= uint64(len(p.ifaces)) {
			return 0, p.noInterface(id)
		}
		iface = &p.ifaces[id]
		rec.info.Timestamp = iface.time(uint64(c.u32(f[4:8]))<<32 | uint64(c.u32(f[8:12])))
		capLen := c.u32(f[12:16])
		rec.info.CaptureLength, rec.info.Length = int(capLen), int(c.u32(f[16:20]))
		rec.off, rec.n, packet = off+c.pos, int(capLen), true
		if _, err = c.take(uint64(capLen)); err == nil {
			err = c.pad(capLen)
		}
		if err == nil && c.typ == ngEPB {
			err = c.skipOptions()
		}
	case ngSPB:
		var f []byte
		if f, err = c.take(4); err != nil {
			return 0, err
		}
		iface = &p.ifaces[0]
		wire := c.u32(f)
		capLen := wire
		if iface.snaplen != 0 && capLen > iface.snaplen {
			capLen = iface.snaplen
		}
		rec.info.CaptureLength, rec.info.Length = int(capLen), int(wire)
		rec.off, rec.n, packet = off+c.pos, int(capLen), true
		if _, err = c.take(uint64(capLen)); err == nil {
			err = c.pad(capLen)
		}
	case ngIDB:
		var in ngInterface
		if in, err = c.iface(); err != nil {
			return 0, err
		}
		iface = &in
	case ngISB:
		var f []byte
		if f, err = c.take(12); err != nil {
			return 0, err
		}
		if id := c.u32(f[0:4]); uint64(id) >= uint64(len(p.ifaces)) {
			return 0, p.noInterface(id)
		}
		err = c.skipOptions()
	case ngNRB:
		err = c.names()
	case ngDSB:
		if len(p.ifaces) == 0 { // NgReader reads them only there
			err = c.secrets()
		}
	case ngSHB:
		if p.sections == 0 || len(p.ifaces) > 0 { // NgReader skips one before the section's first interface
			err = c.section()
		}
	}
	fields := c.pos
	if err == nil {
		err = c.rest()
	}
	if err == nil && c.typ == ngIDB {
		err = iface.scale()
	}
	if err != nil {
		return 0, err
	}
	if c.typ != ngNRB && uint64(fields) > uint64(c.end)-4 {
		// A name resolution block's records may run into the trailing
		// length: NgReader reads it as one, and so does Wireshark.
		return 0, c.bad("its fields run into its trailing length")
	}
	if t := c.u32(c.b[c.end-4:]); t != c.end {
		return 0, c.bad(fmt.Sprintf("trailing length %d", t))
	}

	// The block is good: it takes effect.
	switch c.typ {
	case ngSHB:
		p.big = bool(c.big)
		if p.sections == 0 || len(p.ifaces) > 0 {
			p.ifaces = p.ifaces[:0]
		}
		p.sections++
	case ngIDB:
		p.ifaces = append(p.ifaces, *iface)
		if !p.opened {
			p.link, p.opened = iface.link, true
		}
	}
	if packet {
		p.frame++
		rec.info.LinkType, rec.info.Frame = iface.link, p.frame
		b.recs = append(b.recs, rec)
	}
	return int(c.end), nil
}

func (p *pcapngFile) noInterface(id uint32) error {
	return fmt.Errorf("Interface id %d not present in section (have only %d interfaces)", id, len(p.ifaces))
}

// section reads a section header block after its byte-order magic.
func (c *ngCursor) section() error {
	f, err := c.take(12)
	if err != nil {
		return err
	}
	if c.u16(f[0:2]) != 1 || c.u16(f[2:4]) != 0 {
		//lint:ignore ST1005 pcapgo's message
		return errors.New("Unknown pcapng Version in Section Header")
	}
	return c.skipOptions()
}

// iface reads an interface description block, as far as its options.
func (c *ngCursor) iface() (ngInterface, error) {
	var in ngInterface
	f, err := c.take(8)
	if err != nil {
		return in, err
	}
	in.link, in.snaplen = link.Type(c.u16(f[0:2])), c.u32(f[4:8])
	in.units = 6 // the resolution for now; scale makes it units
	for {
		code, val, ok, err := c.option()
		if !ok {
			return in, err
		}
		switch {
		case code == 9 && len(val) >= 1: // if_tsresol
			in.units = uint64(val[0])
		case code == 14 && len(val) >= 8: // if_tsoffset
			in.offset = c.big.u64(val)
		}
	}
}

// scale turns the resolution in units into units a second, and the
// factors that take units to nanoseconds, as NgReader computes them.
func (in *ngInterface) scale() error {
	res := byte(in.units)
	if res == 0 { // NgReader takes 0 for the default, not for seconds
		res = 6
	}
	exp := res & 0x7f
	if res&0x80 != 0 {
		if exp > 63 {
			//lint:ignore ST1005 pcapgo's message
			return fmt.Errorf("Timestamp resolution 2^-%d is too high", exp)
		}
		in.units = 1 << exp
	} else {
		if exp > 63 {
			//lint:ignore ST1005 pcapgo's message
			return fmt.Errorf("Timestamp resolution 10^-%d is too high", exp)
		}
		in.units = 1
		for range exp {
			in.units *= 10 // wraps past 10^19, as NgReader's does
		}
	}
	in.up, in.down = 1, 1
	if in.units < 1e9 {
		in.up = 1e9 / in.units
	} else {
		in.down = in.units / 1e9
	}
	return nil
}

// time converts a timestamp in the interface's units.
func (in *ngInterface) time(ts uint64) time.Time {
	if bits.UintSize == 64 {
		return time.Unix(int64(ts/in.units+in.offset), int64(ts%in.units*in.up/in.down)).UTC()
	}
	sec, rest := in.split(ts)
	ns := rest * in.up
	if in.down != 1 {
		ns /= in.down
	}
	return time.Unix(int64(sec+in.offset), int64(ns)).UTC()
}

// split is ts / in.units and ts % in.units. A 32-bit processor divides
// 64-bit numbers in software, in several hundred instructions (and the
// Pi Zero's ARMv6 has no divide at all), so it divides only when ts
// leaves the second of the last one: about once a second of packets.
func (in *ngInterface) split(ts uint64) (sec, rest uint64) {
	if in.split1 && ts >= in.from && ts-in.from < in.units {
		return in.sec, ts - in.from
	}
	sec = ts / in.units
	in.sec, in.from, in.split1 = sec, sec*in.units, true
	return sec, ts - in.from
}

// names reads a name resolution block's records for NgReader's errors:
// like NgReader, it reads on into the trailing length when no end record
// comes first.
func (c *ngCursor) names() error {
	for c.left() > 0 {
		h, err := c.take(4)
		if err != nil {
			return err
		}
		typ, n := c.u16(h[0:2]), uint64(c.u16(h[2:4]))
		n = min(n, c.left())
		addr := uint64(0)
		switch typ {
		case 0: // the end
			return nil
		case 1:
			addr = 4
		case 2:
			addr = 16
		case 3:
			addr = 6
		case 4:
			addr = 8
		}
		if n < addr {
			return fmt.Errorf("name record of type %d is too short for its address", typ)
		}
		if _, err := c.take(n); err != nil {
			return err
		}
		if err := c.pad(uint32(n)); err != nil {
			return err
		}
	}
	return nil
}

// secrets reads a decryption secrets block's header and secrets.
func (c *ngCursor) secrets() error {
	f, err := c.take(8)
	if err == nil {
		_, err = c.take(uint64(c.u32(f[4:8])))
	}
	return err
}
