package uplink

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The spool keeps the messages that must reach the broker (alerts and
// asset changes) on disk, in order, until the broker has acknowledged
// them (PUBACK). It is built so that a full disk can never stop it:
//
//   - Its space is taken up front. The log is a set of segment files
//     (state_dir/spool/NNNNNNNNNNNNNNNNNNNN.seg, named by the seq of their
//     first message), each allocated whole with fallocate when it is
//     created. Writing a message fills space the spool already holds.
//   - Dropping needs no space. When the spool may not grow (max_bytes,
//     or the filesystem's free space less a reserve for other files), the
//     oldest segment is reused for the new messages: its unacknowledged
//     messages are dropped, counted in drops and logged. An acknowledged
//     segment is deleted, which gives its space back.
//   - The small state (the first seq still wanted, the drops, the seq
//     numbers reserved) is in state_dir/spool/meta, written in place into
//     one of two checksummed slots, alternately, so that a torn write
//     loses at most the slot being written.
//   - A disk that fails anyway (an I/O error, a filesystem remounted
//     read-only) does not stop the pipeline: messages are held in memory,
//     bounded, until writes work again, and the error is reported.
//
// A record is: the body's length (4 bytes) and its CRC-32C (4 bytes),
// then the body: seq (8), a flag byte (bit 0: retained; bit 1: dropped),
// the topic's length (2), the topic and the msgpack payload, which
// carries the same seq. A dropped record has neither topic nor payload:
// it keeps the seqs of a segment without a gap where a message too
// large for the spool was dropped. All integers are big endian. The
// seqs of the records of a segment follow each other without a gap from
// the segment's name; each write ends with an end mark (8 zero bytes),
// where there is room. The first record that is short, fails its
// checksum or breaks the sequence ends the segment: at an end mark that
// is its clean end (the records of a reused segment's earlier use may
// follow it); anything else is damage, or a write torn by a power cut.
//
// Every append and every acknowledgement is synced (fsync) before it
// returns. The seq must never be reused, even if the segments are lost
// or damaged: numbers are reserved in blocks in meta before they are
// handed out, and a spool with no segment left, or whose last segment
// ends in damage, goes on above them. Messages given a number and not
// found at open (a hole in the segments, a damaged end, messages held in
// memory when the daemon stopped) are counted in drops, once: meta
// says how far that was done.

const (
	spoolDirName = "spool"
	metaName     = "meta"
	segSuffix    = ".seg"
	seqBlock     = 1024 // numbers reserved at a time in meta

	metaSize     = 4096
	metaSlotSize = 512 // each slot in its own sector
	// A slot: magic, generation, head, reserved, drops, next, counted,
	// tombs counted (8 bytes each), then the CRC-32C of those.
	metaSlotUsed = 64
	metaMagic    = "twspool1"

	recHeader = 8  // body length, CRC-32C of the body
	recFixed  = 11 // seq, flags, topic length

	// Segments: about segmentsWanted of them fill the spool's capacity,
	// so that a drop when full loses about 1/64 of it at once.
	segmentsWanted = 64
	minSegment     = 32 << 10
	maxSegment     = 4 << 20
	// maxRecord is the largest record: one fits any segment, whatever
	// size the spool's capacity gave it when it was made. An alert or an
	// asset change is a few hundred bytes.
	maxRecord = minSegment

	// The spool leaves this much of the filesystem free for the other
	// files of the state directory: 5 % of it, within these bounds.
	minFreeReserve = 256 << 10
	maxFreeReserve = 64 << 20

	// memLimit bounds the messages held in memory while the disk fails.
	memLimit = 4 << 20
	// diskRetry is how often a failing disk is tried again.
	diskRetry = 10 * time.Second
	// dropLogEvery: drops are summed into one log line at most this often.
	dropLogEvery = 10 * time.Second

	// Legacy (before the segment log): a bbolt database and its seq
	// reservation, in the state directory itself. Migrated at open.
	legacySpoolFile   = "spool.db"
	legacyReserveFile = "seq.reserve"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// endMark follows the last record of a segment: a record header of zeros,
// as free space is.
var endMark [recHeader]byte

// Limits bound the spool. When an append would exceed either, the oldest
// messages are dropped, and counted, until it fits.
type Limits struct {
	// MaxBytes is the most disk space the spool takes, in whole segments.
	// It never takes the last few percent of its filesystem either.
	MaxBytes    int64 `yaml:"max_bytes"`
	MaxMessages int   `yaml:"max_messages"` //
}

// DefaultLimits suit an SD card: 64 MiB, 200,000 messages.
var DefaultLimits = Limits{MaxBytes: 64 << 20, MaxMessages: 200_000}

// MinSpoolBytes is the smallest max_bytes: two of the smallest segments.
const MinSpoolBytes = 2 * minSegment

// Entry is one spooled message.
type Entry struct {
	Seq     uint64
	Topic   string
	Retain  bool
	Payload []byte
	// Dropped: the message was dropped when it was spooled (counted in
	// drops); its seq is to be acknowledged without publishing.
	Dropped bool
}

const (
	flagRetain  = 1
	flagDropped = 2
)

// Item is a message to spool: Encode appends its payload, carrying seq,
// to b.
type Item struct {
	Topic  string
	Retain bool
	Encode func(seq uint64, b []byte) []byte
}

// SpoolStats is what the spool holds now.
type SpoolStats struct {
	Depth    uint64 // messages waiting for a PUBACK
	Bytes    uint64 // their size
	Drops    uint64 // messages dropped, oldest first, ever
	LastSeq  uint64 // the last sequence number handed out (0: none yet)
	Oldest   uint64 // sequence number of the oldest message held (0: none)
	InMemory uint64 // of Depth, held in memory only because the disk failed
	Held     uint64 // disk space the spool holds (its segments)
	Capacity uint64 // the space it may hold now: max_bytes, or less when the disk is fuller
	Limits   Limits
	DiskErr  error // why the disk is not written, nil when it is
}

type segment struct {
	f     spoolFile
	first uint64   // seq of its first record (its name)
	end   uint64   // seq after its last record
	used  int64    // bytes of its records
	size  int64    // bytes allocated
	tombs []uint64 // seqs of its dropped records, counted already, ascending
	// damaged: at open, its records ended at something other than an
	// end mark (or free space).
	damaged bool
}

// live is the number of messages in [from, to) of g that are not dropped
// records.
func (g *segment) live(from, to uint64) uint64 {
	if to <= from {
		return 0
	}
	n := to - from
	for _, t := range g.tombs {
		if t >= from && t < to {
			n--
		}
	}
	return n
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// Spool is the on-disk queue. Its methods are safe for concurrent use.
type Spool struct {
	fs       fileSystem
	stateDir string
	dir      string
	lim      Limits
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	meta     spoolFile // nil while the disk cannot be used at all
	gen      uint64    // generation of the last meta slot written
	segs     []*segment
	segSize  int64
	head     uint64 // the first seq still wanted: lower ones are acknowledged or dropped
	headOff  int64  // offset of the record headAt in segs[0]
	headAt   uint64 // head, as of the last settleHead
	next     uint64 // the next seq to hand out
	reserved uint64 // seqs below this are reserved in meta
	floor    uint64 // next, as meta had it at open
	counted  uint64 // messages found missing or dropped below this are counted in drops already (in meta)
	pending  uint64 // counted becomes at least this at the next writeMeta: above the drops counted since
	saved    uint64 // drops, as meta has them
	// Dropped records (too large) are counted when they are made; those
	// below tombsCounted are in the drops meta has, the others are
	// counted again at open. pendingTombs: tombsCounted at the next
	// writeMeta.
	tombsCounted, pendingTombs uint64
	metaRead                   bool // meta was read: reserved is known
	drops                      uint64
	recovering                 bool        // the disk failed and meta was written again: say so when the segments are too
	legacy                     legacySpool // an earlier version's spool, read at open
	mem                        []Entry     // messages the disk did not take, in seq order
	memBytes                   int64

	diskErr    error
	retryAt    time.Time
	retryEvery time.Duration // diskRetry; tests shorten it
	buf        []byte
	recs       []rec
	cursor     struct { // where the last Peek stopped
		seg *segment
		seq uint64
		off int64
	}
	space struct { // the filesystem's free space, read at most once a second
		at           time.Time
		avail, total int64
	}
	dropped struct { // drops not yet logged
		n           uint64
		first, last uint64
		reason      string
		at          time.Time
	}
}

// rec is an encoded record of the batch being appended: buf[start:end].
type rec struct {
	seq        uint64
	start, end int
	dropped    bool // a dropped record, counted already
}

// OpenSpool opens or creates the spool in stateDir/spool (and migrates a
// spool.db of earlier versions). warning reports what was found damaged
// or could not be used (to log; the spool works: damaged messages are
// counted as dropped, a disk that cannot be written makes it hold
// messages in memory until it can). err is returned only when the spool
// cannot be used at all: bad limits, or another process holds it.
func OpenSpool(stateDir string, lim Limits, log *slog.Logger) (s *Spool, warning error, err error) {
	return openSpool(osFS{}, time.Now, stateDir, lim, log)
}

// openSpool is OpenSpool on fs, with the clock now (tests give fakes).
func openSpool(fs fileSystem, now func() time.Time, stateDir string, lim Limits, log *slog.Logger) (*Spool, error, error) {
	if lim.MaxBytes < MinSpoolBytes || lim.MaxMessages <= 0 {
		return nil, nil, fmt.Errorf("spool limits: want at least %d bytes and 1 message, got %d bytes, %d messages", MinSpoolBytes, lim.MaxBytes, lim.MaxMessages)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Spool{fs: fs, stateDir: stateDir, dir: filepath.Join(stateDir, spoolDirName), lim: lim, log: log, now: now, next: 1, retryEvery: diskRetry}
	s.segSize = s.segmentSize()
	warn, err := s.openDisk()
	if errors.Is(err, errLocked) {
		return nil, nil, fmt.Errorf("spool %s is in use by another process", s.dir)
	}
	if err != nil {
		s.memoryOnly(err)
		warn = errors.Join(warn, fmt.Errorf("spool %s cannot be used (%v): messages are held in memory until it can", s.dir, err))
		if !s.metaRead {
			warn = errors.Join(warn, fmt.Errorf("spool %s: the numbers used before are not known: numbering starts at %d, the clock's time in microseconds, above any used before", s.dir, s.next))
		}
	}
	return s, warn, nil
}

// memoryOnly gives up the disk after openDisk failed: what was read of it
// is forgotten (it is read again when the disk is retried), but for the
// numbers, which go on above every one known to be used. When not even
// meta could be read, those are not known: numbering goes on from the
// clock's time in microseconds, which no count of messages reaches, so
// that no number is used twice (the security center sees a jump).
func (s *Spool) memoryOnly(err error) {
	s.closeFiles()
	s.diskFailed(err)
	s.next = max(s.next, s.reserved, s.head, s.floor)
	if n := len(s.mem); n > 0 {
		s.next = max(s.next, s.mem[n-1].Seq+1)
	}
	if !s.metaRead {
		s.next = max(s.next, uint64(max(s.now().UnixMicro(), 1)))
	}
	s.reserved = max(s.reserved, s.next)
	s.head = s.next
	if len(s.mem) > 0 {
		s.head = s.mem[0].Seq
	}
	s.drops, s.counted, s.floor, s.gen = 0, 0, 0, 0
}

// openDisk opens the meta file and the segments, migrates a legacy spool,
// and works out head, next and the segment size.
func (s *Spool) openDisk() (warn error, err error) {
	if err := s.fs.MkdirAll(s.dir); err != nil {
		return nil, err
	}
	meta, err := s.fs.OpenFile(filepath.Join(s.dir, metaName), os.O_CREATE)
	if err != nil {
		return nil, err
	}
	if err := meta.Lock(); err != nil {
		meta.Close()
		return nil, err
	}
	s.meta = meta
	size, err := meta.Size()
	if err != nil {
		return nil, err
	}
	var warns []error
	if size < metaSize {
		err := meta.Allocate(metaSize)
		if err != nil && isNoSpace(err) {
			// An earlier version's spool.db may be what fills the disk:
			// its messages are taken into memory and it is removed, to
			// make room (they are stored in the segments below).
			w, freed, lerr := s.loadLegacy(true)
			warns = append(warns, w)
			if lerr != nil {
				return errors.Join(warns...), lerr
			}
			if freed {
				err = meta.Allocate(metaSize)
			}
		}
		if err != nil {
			s.knownNew(size)
			return errors.Join(warns...), err
		}
		if err := meta.Sync(); err != nil {
			return errors.Join(warns...), err
		}
		if err := s.fs.SyncDir(s.dir); err != nil {
			return errors.Join(warns...), err
		}
	}
	found, err := s.readMeta()
	if err != nil {
		return errors.Join(warns...), err
	}
	s.metaRead = true
	names, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return errors.Join(warns...), err
	}
	if !found && size > 0 {
		warns = append(warns, fmt.Errorf("spool %s: both state slots are damaged; every message found is sent again", filepath.Join(s.dir, metaName)))
	}
	for _, name := range names {
		first, ok := strings.CutSuffix(name, segSuffix)
		if !ok {
			continue
		}
		n, perr := strconv.ParseUint(first, 10, 64)
		if perr != nil || len(first) != 20 {
			warns = append(warns, fmt.Errorf("spool %s: %s is not a segment of the spool; left alone", s.dir, name))
			continue
		}
		seg, err := s.openSegment(name, n)
		if err != nil {
			return errors.Join(warns...), err
		}
		s.segs = append(s.segs, seg)
	}
	if w, err := s.migrateLegacy(); err != nil {
		return errors.Join(append(warns, w)...), err
	} else if w != nil {
		warns = append(warns, w)
	}
	if len(s.segs) > 0 && !found {
		s.head = s.segs[0].first
	}
	// Messages dropped when they were spooled (too large) are counted
	// then; those counted after meta was last written are counted again
	// here.
	for _, g := range s.segs {
		for _, t := range g.tombs {
			if t >= max(s.tombsCounted, s.head) {
				s.drops++
				s.pendingTombs = t + 1
			}
		}
	}
	// Messages given a number but not found are lost: a hole between
	// two segments (damage, or a segment removed by hand), the end of
	// the last segment (damage, or a power cut), or messages that were
	// held in memory when the daemon stopped. Each is counted in drops
	// once: counted says how far that was done.
	lost := func(from, to uint64, why string) {
		from = max(from, s.head, s.counted)
		if to > from {
			s.drops += to - from
			s.counted = max(s.counted, to)
			warns = append(warns, fmt.Errorf("spool %s: %d messages (seq %d to %d) %s; counted as dropped", s.dir, to-from, from, to-1, why))
		}
	}
	if len(s.segs) > 0 {
		lost(s.head, s.segs[0].first, "were not found on disk (held in memory when the daemon stopped, or a segment removed)")
	}
	for i := 1; i < len(s.segs); i++ {
		lost(s.segs[i-1].end, s.segs[i].first, "are unreadable or missing")
	}
	s.next = max(s.floor, s.head, 1)
	if t := s.tail(); t != nil {
		s.next = max(s.next, t.end)
		lost(t.end, s.floor, "were not found on disk (damaged, cut off by a power cut, or held in memory when the daemon stopped)")
		if t.damaged && s.reserved > s.next {
			// How far the damaged records went is not known: go on above
			// every number reserved, so that none is used twice. The
			// numbers skipped are not messages: not to be counted.
			warns = append(warns, fmt.Errorf("spool %s: the last segment is damaged after seq %d; numbering goes on at %d", s.dir, t.end-1, s.reserved))
			s.next = s.reserved
			s.counted = max(s.counted, s.next)
		}
	} else {
		// No segment: a new spool, or the old one lost. Start above every
		// number reserved, so that none is reused; the skipped ones show
		// as a gap.
		lost(s.head, s.floor, "were not found on disk (the spool's segments are gone)")
		s.next = max(s.next, s.reserved)
		s.head = s.next
		s.counted = max(s.counted, s.next)
	}
	s.head = min(s.head, s.next)
	s.reserved = max(s.reserved, s.next)
	s.segSize = s.segmentSize()
	if err := s.settleHead(); err != nil {
		return errors.Join(warns...), err
	}
	// max_bytes lowered since the last run: give back the oldest segments.
	for len(s.segs) > 1 && s.held() > s.lim.MaxBytes {
		if err := s.dropSegment("max_bytes was lowered to " + strconv.FormatInt(s.lim.MaxBytes, 10)); err != nil {
			return errors.Join(warns...), err
		}
	}
	if err := s.writeMeta(); err != nil {
		return errors.Join(warns...), err
	}
	s.flushDropLog(true)
	return errors.Join(warns...), nil
}

// knownNew: meta could not be made, but when it was never made before
// (it is empty) and there is no segment, no number was handed out but
// an earlier version's: they are known.
func (s *Spool) knownNew(metaSize int64) {
	if metaSize != 0 {
		return
	}
	names, err := s.fs.ReadDir(s.dir)
	if err != nil || slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, segSuffix) }) {
		return
	}
	if _, _, err := s.loadLegacy(false); err != nil {
		return
	}
	s.reserved = max(s.reserved, s.legacy.next, s.legacy.reserve)
	s.metaRead = true
}

// openSegment opens a segment and finds its records.
func (s *Spool) openSegment(name string, first uint64) (*segment, error) {
	f, err := s.fs.OpenFile(filepath.Join(s.dir, name), 0)
	if err != nil {
		return nil, err
	}
	// What a failed write left in the page cache must not be taken for
	// data on disk: sync it first, so that what is read is durable.
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, err
	}
	seg := &segment{f: f, first: first, end: first, size: size}
	var hdr [recHeader]byte
	body := make([]byte, 0, 1024)
	for seg.used+recHeader <= size {
		n, ok, err := readRecord(f, seg.used, seg.end, size, hdr[:], &body)
		if err != nil {
			f.Close()
			return nil, err
		}
		if !ok {
			// An end mark (or free space, which is zeros) ends it;
			// anything else is damage or a write torn by a power cut.
			seg.damaged = !bytes.Equal(hdr[:], endMark[:])
			break
		}
		if body[8]&flagDropped != 0 {
			seg.tombs = append(seg.tombs, seg.end)
		}
		seg.used += n
		seg.end++
	}
	return seg, nil
}

// readRecord reads the record at off, which must carry seq, into *body;
// ok is false when there is none (free space, a torn write, damage, or an
// older record of a reused segment). n is the record's length.
func readRecord(f spoolFile, off int64, seq uint64, size int64, hdr []byte, body *[]byte) (n int64, ok bool, err error) {
	if _, err := f.ReadAt(hdr[:recHeader], off); err != nil {
		return 0, false, readErr(err)
	}
	l := int64(binary.BigEndian.Uint32(hdr))
	if l < recFixed || off+recHeader+l > size {
		return 0, false, nil
	}
	b := (*body)[:0]
	if int64(cap(b)) < l {
		b = make([]byte, l)
	}
	b = b[:l]
	*body = b
	if _, err := f.ReadAt(b, off+recHeader); err != nil {
		return 0, false, readErr(err)
	}
	if crc32.Checksum(b, crcTable) != binary.BigEndian.Uint32(hdr[4:]) || binary.BigEndian.Uint64(b) != seq {
		return 0, false, nil
	}
	tl := int64(binary.BigEndian.Uint16(b[9:]))
	if recFixed+tl > l {
		return 0, false, nil
	}
	return recHeader + l, true, nil
}

// readErr: reading past the end of the file is the end of the records,
// not an error.
func readErr(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// ---- meta ----

// readMeta reads the newer valid slot of meta; found is false when
// neither is valid (a new spool, or both damaged).
func (s *Spool) readMeta() (found bool, err error) {
	var b [2 * metaSlotSize]byte
	if _, err := s.meta.ReadAt(b[:], 0); err != nil && readErr(err) != nil {
		return false, err
	}
	for i := range 2 {
		slot := b[i*metaSlotSize:]
		if string(slot[:8]) != metaMagic || crc32.Checksum(slot[:metaSlotUsed], crcTable) != binary.BigEndian.Uint32(slot[metaSlotUsed:]) {
			continue
		}
		gen := binary.BigEndian.Uint64(slot[8:])
		if found && gen <= s.gen {
			continue
		}
		found = true
		s.gen = gen
		s.head = binary.BigEndian.Uint64(slot[16:])
		s.reserved = binary.BigEndian.Uint64(slot[24:])
		s.drops = binary.BigEndian.Uint64(slot[32:])
		s.floor = binary.BigEndian.Uint64(slot[40:])
		s.counted = binary.BigEndian.Uint64(slot[48:])
		s.tombsCounted = binary.BigEndian.Uint64(slot[56:])
	}
	return found, nil
}

// writeMeta writes head, reserved, drops, next and counted into the
// older slot and syncs.
func (s *Spool) writeMeta() error {
	if s.meta == nil {
		return errors.New("no meta file")
	}
	var b [metaSlotUsed + 4]byte
	copy(b[:], metaMagic)
	gen := s.gen + 1
	binary.BigEndian.PutUint64(b[8:], gen)
	binary.BigEndian.PutUint64(b[16:], s.head)
	binary.BigEndian.PutUint64(b[24:], s.reserved)
	binary.BigEndian.PutUint64(b[32:], s.drops)
	binary.BigEndian.PutUint64(b[40:], s.next)
	// Not past a message held in memory: if it is lost (the daemon
	// stops), the next open must count it.
	pending := s.pending
	if len(s.mem) > 0 {
		pending = min(pending, s.mem[0].Seq)
	}
	counted := max(s.counted, pending)
	binary.BigEndian.PutUint64(b[48:], counted)
	binary.BigEndian.PutUint64(b[56:], max(s.tombsCounted, s.pendingTombs))
	binary.BigEndian.PutUint32(b[metaSlotUsed:], crc32.Checksum(b[:metaSlotUsed], crcTable))
	if _, err := s.meta.WriteAt(b[:], int64(gen%2)*metaSlotSize); err != nil {
		return err
	}
	if err := s.meta.Sync(); err != nil {
		return err
	}
	s.gen, s.counted, s.saved = gen, counted, s.drops
	s.tombsCounted = max(s.tombsCounted, s.pendingTombs)
	return nil
}

// gone notes that the messages up to seq, counted as dropped, are on
// disk nowhere: the next open, which finds them missing, must not count
// them again.
func (s *Spool) gone(seq uint64) { s.pending = max(s.pending, seq+1) }

// saveDrops writes meta when drops were counted since it was last
// written, so that a power cut does not forget them.
func (s *Spool) saveDrops() {
	if s.drops != s.saved && s.meta != nil && s.diskErr == nil {
		if err := s.writeMeta(); err != nil {
			s.diskFailed(err)
		}
	}
}

// ---- space ----

func (s *Spool) held() int64 {
	var n int64
	for _, g := range s.segs {
		n += g.size
	}
	return n
}

// freeSpace is the filesystem's free space and size, read at most once a
// second (avail < 0: unknown).
func (s *Spool) freeSpace() (avail, total int64) {
	if now := s.now(); now.Sub(s.space.at) >= time.Second || s.space.at.IsZero() {
		avail, total, err := s.fs.Space(s.stateDir)
		if err != nil {
			return -1, -1 // unknown; not kept, so that it is read again
		}
		s.space.avail, s.space.total, s.space.at = avail, total, now
	}
	return s.space.avail, s.space.total
}

func freeReserve(total int64) int64 { return min(max(total/20, minFreeReserve), maxFreeReserve) }

// capacity is the space the spool may hold now: max_bytes, or what it
// holds plus the free space above the reserve, if that is less.
func (s *Spool) capacity() int64 {
	c := s.lim.MaxBytes
	if avail, total := s.freeSpace(); avail >= 0 {
		c = min(c, s.held()+max(avail-freeReserve(total), 0))
	}
	return c
}

// segmentSize: about a 64th of the capacity found at open, in whole 4 KiB
// pages, within bounds.
func (s *Spool) segmentSize() int64 {
	z := s.capacity() / segmentsWanted
	return min(max(z&^4095, minSegment), maxSegment)
}

// ---- append ----

// Append spools items in order, giving each the next sequence number, and
// returns the first number given. Every item gets its number: the oldest
// messages are dropped, counted and logged, when the limits or the disk
// leave no room, and a message too large for the spool is itself
// dropped. When the disk fails the messages are held in memory, and err
// says why (the messages are not lost: Peek returns them).
func (s *Spool) Append(items []Item) (first uint64, err error) {
	if len(items) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.flushDropLog(false)
	defer s.saveDrops()
	if s.diskErr != nil && !s.now().Before(s.retryAt) {
		s.retryDisk()
	}
	first = s.next
	last := first + uint64(len(items)) - 1
	s.next = last + 1
	if last >= s.reserved {
		// Tried even while the segments fail: a number handed out beyond
		// the reservation on disk could be handed out again after a
		// restart.
		s.reserved = (last/seqBlock + 2) * seqBlock
		if s.meta != nil {
			if err := s.writeMeta(); err != nil {
				s.diskFailed(fmt.Errorf("reserving sequence numbers: %w", err))
			}
		}
	}
	// Encode, and drop what cannot be spooled at all.
	s.buf, s.recs = s.buf[:0], s.recs[:0]
	for i, it := range items {
		seq := first + uint64(i)
		start := len(s.buf)
		s.buf = beginRecord(s.buf, seq, it.Retain, it.Topic)
		s.buf = it.Encode(seq, s.buf)
		s.addRecord(seq, start)
	}
	// max_messages: make room, oldest first; a batch larger than the
	// limit keeps its newest.
	if excess := s.depth() + len(s.recs) - s.lim.MaxMessages; excess > 0 {
		held := min(excess, s.depth())
		if err := s.dropOldest(held, "max_messages ("+strconv.Itoa(s.lim.MaxMessages)+") reached"); err != nil {
			s.diskFailed(err)
		}
		if skip := excess - held; skip > 0 {
			// Nothing older is left: the first message kept is the head.
			n := uint64(0)
			for _, r := range s.recs[:skip] {
				if !r.dropped {
					n++
				}
			}
			s.dropCounted(n, s.recs[0].seq, s.recs[skip-1].seq, "max_messages ("+strconv.Itoa(s.lim.MaxMessages)+") reached")
			s.recs = s.recs[skip:]
			s.head = s.recs[0].seq
			if err := s.settleHead(); err != nil {
				s.diskFailed(err)
			} else if s.diskErr == nil {
				if err := s.writeMeta(); err != nil {
					s.diskFailed(err)
				}
			}
		}
	}
	if len(s.recs) == 0 {
		return first, s.diskErr
	}
	if s.diskErr == nil {
		if err := s.store(s.recs); err != nil {
			s.diskFailed(err)
		} else if s.recovering {
			s.recovering = false
			s.log.Info("spool: the disk is written again", "dir", s.dir, "held_in_memory", len(s.mem))
		}
	}
	if s.diskErr != nil {
		for _, r := range s.recs {
			s.hold(r)
		}
		// Their numbers are on disk nowhere else: a restart must start
		// above them.
		if s.meta != nil {
			s.writeMeta()
		}
	}
	return first, s.diskErr
}

// beginRecord appends a record's header (its length and CRC are filled in
// by addRecord), seq, flags and topic to b.
func beginRecord(b []byte, seq uint64, retain bool, topic string) []byte {
	flag := byte(0)
	if retain {
		flag = flagRetain
	}
	return beginRecordFlags(b, seq, flag, topic)
}

func beginRecordFlags(b []byte, seq uint64, flag byte, topic string) []byte {
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	if len(topic) > 0xFFFF {
		topic = topic[:0xFFFF]
	}
	b = append(b, flag, byte(len(topic)>>8), byte(len(topic)))
	return append(b, topic...)
}

// addRecord completes the record at s.buf[start:] and adds it to the
// batch. One larger than maxRecord is dropped: a dropped record stands
// in its place.
func (s *Spool) addRecord(seq uint64, start int) {
	n := len(s.buf) - start
	dropped := n > maxRecord
	if dropped {
		s.buf = beginRecordFlags(s.buf[:start], seq, flagDropped, "")
		s.dropCounted(1, seq, seq, fmt.Sprintf("a message larger than %d bytes (the largest the spool takes)", maxRecord))
		s.pendingTombs = max(s.pendingTombs, seq+1)
	}
	body := s.buf[start+recHeader:]
	binary.BigEndian.PutUint32(s.buf[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(s.buf[start+4:], crc32.Checksum(body, crcTable))
	s.recs = append(s.recs, rec{seq: seq, start: start, end: len(s.buf), dropped: dropped})
}

// store writes records to the segments and syncs them, all or none: on
// an error the segments are as before (what was written is overwritten
// later) and the error is returned.
func (s *Spool) store(recs []rec) error {
	type mark struct {
		g          *segment
		used       int64
		first, end uint64
		tombs      int
	}
	var touched []mark
	undo := func(err error) error {
		for _, m := range touched {
			m.g.used, m.g.first, m.g.end, m.g.tombs = m.used, m.first, m.end, m.g.tombs[:m.tombs]
		}
		s.cursor.seg = nil
		return err
	}
	for i := 0; i < len(recs); {
		tail := s.tail()
		if tail == nil || (tail.used > 0 && tail.end != recs[i].seq) || tail.used+int64(recs[i].end-recs[i].start) > tail.size {
			if err := s.newSegment(recs[i].seq); err != nil {
				return undo(err)
			}
			// A segment reused for the new one starts afresh, whatever
			// this batch wrote to it before (dropped, and counted).
			if t := s.tail(); t.used == 0 {
				touched = slices.DeleteFunc(touched, func(m mark) bool { return m.g == t })
			}
			continue
		}
		if len(touched) == 0 || touched[len(touched)-1].g != tail {
			touched = append(touched, mark{tail, tail.used, tail.first, tail.end, len(tail.tombs)})
		}
		if tail.used == 0 && tail.first != recs[i].seq {
			// An empty segment named for another seq (numbers went to
			// memory meanwhile): its name must say its first record.
			if err := s.renameSegment(tail, recs[i].seq); err != nil {
				return undo(err)
			}
			touched[len(touched)-1].first = tail.first
			touched[len(touched)-1].end = tail.end
		}
		j, off := i, tail.used
		for j < len(recs) && recs[j].seq == tail.end+uint64(j-i) && off+int64(recs[j].end-recs[j].start) <= tail.size {
			off += int64(recs[j].end - recs[j].start)
			j++
		}
		if _, err := tail.f.WriteAt(s.buf[recs[i].start:recs[j-1].end], tail.used); err != nil {
			return undo(err)
		}
		// An end mark after the last record: what follows may be the
		// records of the segment's earlier use, cut anywhere, which the
		// next open must not take for damage.
		if off+recHeader <= tail.size {
			if _, err := tail.f.WriteAt(endMark[:], off); err != nil {
				return undo(err)
			}
		}
		for _, r := range recs[i:j] {
			if r.dropped {
				tail.tombs = append(tail.tombs, r.seq)
			}
		}
		tail.used, tail.end = off, recs[j-1].seq+1
		i = j
	}
	for _, m := range touched {
		if err := m.g.f.Sync(); err != nil {
			// Not known to be durable: the caller holds them in memory.
			return undo(err)
		}
	}
	return nil
}

// renameSegment gives an empty segment the name of its new first seq.
func (s *Spool) renameSegment(g *segment, first uint64) error {
	from, to := filepath.Join(s.dir, segName(g.first)), filepath.Join(s.dir, segName(first))
	if err := s.fs.Rename(from, to); err != nil {
		return err
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return err
	}
	g.first, g.end, g.used, g.tombs = first, first, 0, nil
	// Positions kept for its old records are no longer right.
	if s.cursor.seg == g {
		s.cursor.seg = nil
	}
	if len(s.segs) > 0 && g == s.segs[0] {
		s.headAt, s.headOff = 0, 0
	}
	return nil
}

func (s *Spool) tail() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// newSegment makes a segment for records from first on: a new file if the
// spool may grow and the disk has room, else the oldest segment, reused
// (its messages dropped).
func (s *Spool) newSegment(first uint64) error {
	s.cursor.seg = nil
	held, size := s.held(), s.segSize
	reason := fmt.Sprintf("the spool holds its limit of %d bytes (max_bytes)", s.lim.MaxBytes)
	if held+size <= s.lim.MaxBytes {
		avail, total := s.freeSpace()
		reserve := freeReserve(total)
		if avail < 0 || avail-size >= reserve {
			err := s.createSegment(first, size)
			if err == nil {
				return nil
			}
			if !isNoSpace(err) {
				return err
			}
			s.space.at = time.Time{}
			reason = "the disk is full"
		} else {
			reason = fmt.Sprintf("the disk is nearly full (the spool leaves %d bytes free for other files)", reserve)
		}
	}
	if len(s.segs) == 0 {
		return fmt.Errorf("no room for a spool segment: %s", reason)
	}
	// Reuse the oldest segment. Its messages are given up first (meta
	// says so before the file changes), then it is renamed.
	old := s.segs[0]
	if err := s.dropSegmentMessages(old, reason); err != nil {
		return err
	}
	if old.first != first {
		if err := s.renameSegment(old, first); err != nil {
			return err
		}
	}
	old.first, old.end, old.used, old.tombs = first, first, 0, nil
	s.segs = append(s.segs[1:], old)
	s.headAt, s.headOff = 0, 0
	return s.settleHead()
}

func (s *Spool) createSegment(first uint64, size int64) error {
	name := filepath.Join(s.dir, segName(first))
	f, err := s.fs.OpenFile(name, os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		s.fs.Remove(name)
		return err
	}
	if err := f.Allocate(size); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fail(err)
	}
	s.segs = append(s.segs, &segment{f: f, first: first, end: first, size: size})
	if s.space.avail >= 0 {
		s.space.avail = max(s.space.avail-size, 0) // until the next statfs
	}
	return nil
}

// dropSegmentMessages gives up the messages still wanted in seg, the
// oldest segment, and moves head past it.
func (s *Spool) dropSegmentMessages(seg *segment, reason string) error {
	if seg.end > s.head {
		s.dropCounted(seg.live(max(seg.first, s.head), seg.end), max(seg.first, s.head), seg.end-1, reason)
		s.head = seg.end
		// Older messages held in memory go too: head is the floor of
		// both.
		for len(s.mem) > 0 && s.mem[0].Seq < s.head {
			if !s.mem[0].Dropped {
				s.dropCounted(1, s.mem[0].Seq, s.mem[0].Seq, reason)
			}
			s.memBytes -= entrySize(s.mem[0])
			s.mem = s.mem[1:]
		}
	}
	return s.writeMeta()
}

// dropSegment deletes the oldest segment, dropping its messages.
func (s *Spool) dropSegment(reason string) error {
	old := s.segs[0]
	if err := s.dropSegmentMessages(old, reason); err != nil {
		return err
	}
	return s.removeOldest()
}

func (s *Spool) removeOldest() error {
	if err := s.deleteOldest(); err != nil {
		return err
	}
	return s.settleHead()
}

// deleteOldest closes and deletes the oldest segment.
func (s *Spool) deleteOldest() error {
	old := s.segs[0]
	old.f.Close()
	s.segs = s.segs[1:]
	s.cursor.seg = nil
	s.headAt, s.headOff = 0, 0
	if err := s.fs.Remove(filepath.Join(s.dir, segName(old.first))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// settleHead deletes the segments wholly below head (but the last, which
// is written to), and finds head's offset in the first one left.
func (s *Spool) settleHead() error {
	for len(s.segs) > 1 && s.segs[0].end <= s.head {
		if err := s.deleteOldest(); err != nil {
			return err
		}
	}
	if len(s.segs) == 0 {
		s.headAt, s.headOff = 0, 0
		return nil
	}
	g := s.segs[0]
	at := min(s.head, g.end)
	off, err := s.offsetOf(g, at)
	if err != nil {
		return err
	}
	s.headAt, s.headOff = at, off
	return nil
}

// offsetOf finds the offset of the record seq in g (g.used for g.end),
// from the closest known position.
func (s *Spool) offsetOf(g *segment, seq uint64) (int64, error) {
	if seq >= g.end {
		return g.used, nil
	}
	at, off := g.first, int64(0)
	if s.cursor.seg == g && s.cursor.seq <= seq {
		at, off = s.cursor.seq, s.cursor.off
	} else if g == s.segs[0] && s.headAt <= seq && s.headAt >= g.first {
		at, off = s.headAt, s.headOff
	}
	var hdr [recHeader]byte
	for ; at < seq; at++ {
		if _, err := g.f.ReadAt(hdr[:], off); err != nil {
			return 0, err
		}
		off += recHeader + int64(binary.BigEndian.Uint32(hdr[:]))
	}
	return off, nil
}

// depth is the number of messages still wanted.
func (s *Spool) depth() int {
	n := len(s.mem)
	for _, g := range s.segs {
		if g.end > s.head {
			n += int(g.end - max(g.first, s.head))
		}
	}
	return n
}

// dropOldest drops the n oldest messages still wanted.
func (s *Spool) dropOldest(n int, reason string) error {
	for ; n > 0; n-- {
		diskSeq, ok := s.oldestOnDisk()
		if len(s.mem) > 0 && (!ok || s.mem[0].Seq < diskSeq) {
			if !s.mem[0].Dropped {
				s.dropCounted(1, s.mem[0].Seq, s.mem[0].Seq, reason)
			}
			s.gone(s.mem[0].Seq)
			s.memBytes -= entrySize(s.mem[0])
			s.mem = s.mem[1:]
			continue
		}
		if !ok {
			break
		}
		if _, g := s.oldestSegment(); g.live(diskSeq, diskSeq+1) == 1 {
			s.dropCounted(1, diskSeq, diskSeq, reason)
		}
		s.head = diskSeq + 1
	}
	if err := s.settleHead(); err != nil {
		return err
	}
	if s.diskErr != nil {
		return nil
	}
	return s.writeMeta()
}

// oldestOnDisk is the seq of the oldest message still wanted on disk.
func (s *Spool) oldestOnDisk() (uint64, bool) {
	seq, g := s.oldestSegment()
	return seq, g != nil
}

// oldestSegment is the seq of the oldest message still wanted on disk,
// and its segment (nil: none).
func (s *Spool) oldestSegment() (uint64, *segment) {
	for _, g := range s.segs {
		if g.end > s.head {
			return max(g.first, s.head), g
		}
	}
	return 0, nil
}

// hold keeps a record in memory, the disk having failed.
func (s *Spool) hold(r rec) {
	if r.seq < s.head {
		return // dropped meanwhile
	}
	s.holdEntry(entryOf(s.buf[r.start+recHeader : r.end]))
}

// holdEntry keeps e in memory, in seq order, within memLimit (the oldest
// are dropped).
func (s *Spool) holdEntry(e Entry) {
	i, found := slices.BinarySearchFunc(s.mem, e.Seq, func(m Entry, seq uint64) int { return cmp.Compare(m.Seq, seq) })
	if found {
		return
	}
	s.mem = slices.Insert(s.mem, i, e)
	s.memBytes += entrySize(e)
	for s.memBytes > memLimit && len(s.mem) > 1 {
		old := s.mem[0]
		if !old.Dropped {
			s.dropCounted(1, old.Seq, old.Seq, "the disk fails and the memory held for it is full")
		}
		s.gone(old.Seq)
		s.memBytes -= entrySize(old)
		s.mem = s.mem[1:]
	}
}

// entryOf makes an entry of a record's body (checked by readRecord or
// made by addRecord), copying what it keeps.
func entryOf(body []byte) Entry {
	tl := int(binary.BigEndian.Uint16(body[9:]))
	return Entry{Seq: binary.BigEndian.Uint64(body), Retain: body[8]&flagRetain != 0, Dropped: body[8]&flagDropped != 0,
		Topic: string(body[recFixed : recFixed+tl]), Payload: append([]byte(nil), body[recFixed+tl:]...)}
}

func entrySize(e Entry) int64 { return int64(recHeader + recFixed + len(e.Topic) + len(e.Payload)) }

// dropCounted counts n dropped messages, seq first to last, and sums them
// for the log.
func (s *Spool) dropCounted(n, first, last uint64, reason string) {
	if n == 0 {
		return
	}
	s.drops += n
	d := &s.dropped
	if d.n > 0 && d.reason != reason {
		s.flushDropLog(true)
	}
	if d.n == 0 {
		d.first, d.reason = first, reason
	}
	d.n += n
	d.last = max(d.last, last)
}

// flushDropLog logs the drops summed so far, if there are any and the
// last line is old enough (or now).
func (s *Spool) flushDropLog(now bool) {
	d := &s.dropped
	if d.n == 0 || (!now && s.now().Sub(d.at) < dropLogEvery) {
		return
	}
	s.log.Warn("spool: dropped the oldest messages; the security center sees a gap in seq",
		"dropped", d.n, "first_seq", d.first, "last_seq", d.last, "reason", d.reason, "drops_total", s.drops)
	d.n, d.last, d.at = 0, 0, s.now()
}

// ---- disk failures ----

// errText is an error's text without the file it names (an errno's
// text, when it has one), for text that must not change with the file.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// diskFailed switches to holding messages in memory, and says so once per
// kind of failure. The error kept for the status names the failure, not
// the file, so that the status does not change with every segment.
func (s *Spool) diskFailed(err error) {
	stable := err
	var errno syscall.Errno
	if errors.As(err, &errno) {
		stable = fmt.Errorf("cannot write to %s (%v); messages are held in memory", s.dir, errText(err))
	}
	if s.diskErr == nil || s.diskErr.Error() != stable.Error() {
		s.log.Error("spool: cannot write to disk; holding messages in memory until it works again", "dir", s.dir, "err", err, "retry_in", s.retryEvery)
	}
	s.diskErr = stable
	s.retryAt = s.now().Add(s.retryEvery)
}

// retryDisk tries the disk again: opening it if it was never opened,
// then writing the state.
func (s *Spool) retryDisk() {
	s.retryAt = s.now().Add(s.retryEvery)
	if s.meta == nil {
		// Never opened: open it now, keeping the numbers handed out, the
		// drops counted since (meta has those of before) and the
		// messages held.
		next, reserved, drops, head, mem, memBytes, metaRead := s.next, s.reserved, s.drops, s.head, s.mem, s.memBytes, s.metaRead
		s.segs, s.reserved, s.head, s.drops, s.floor, s.counted, s.gen, s.metaRead, s.mem, s.memBytes = nil, 0, 0, 0, 0, 0, 0, false, nil, 0
		if _, err := s.openDisk(); err != nil {
			held := s.mem // legacy messages that could not be stored
			s.closeFiles()
			s.next, s.reserved, s.drops, s.head, s.mem, s.memBytes, s.metaRead = next, reserved, drops, head, mem, memBytes, metaRead
			for _, e := range held {
				s.holdEntry(e)
			}
			s.diskFailed(err)
			return
		}
		s.next, s.drops = max(next, s.next), s.drops+drops
		s.reserved = max(s.reserved, reserved, s.next)
		// The numbers between those on disk and those handed out since
		// are no messages, and those handed out since and no longer
		// held were acknowledged or counted as dropped: neither is to be
		// counted as lost at a later open.
		if len(mem) > 0 {
			s.counted = max(s.counted, mem[0].Seq)
		} else {
			s.counted = max(s.counted, next)
		}
		held := s.mem
		s.mem, s.memBytes = mem, memBytes
		for _, e := range held {
			s.holdEntry(e)
		}
		if len(s.mem) > 0 {
			s.head = min(s.head, s.mem[0].Seq)
		}
	}
	if err := s.writeMeta(); err != nil {
		s.diskFailed(err)
		return
	}
	s.diskErr = nil
	s.recovering = true
}

func (s *Spool) closeFiles() {
	for _, g := range s.segs {
		g.f.Close()
	}
	s.segs = nil
	if s.meta != nil {
		s.meta.Close()
		s.meta = nil
	}
}

// ---- read and acknowledge ----

// Peek returns up to n messages with sequence numbers from from on, in
// order. Their payloads are copies. A record found damaged is skipped
// and counted as dropped.
func (s *Spool) Peek(from uint64, n int) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.flushDropLog(false)
	defer s.saveDrops()
	from = max(from, s.head)
	out, err := s.peekDisk(from, n)
	if len(s.mem) == 0 || err != nil {
		return out, err
	}
	// Merge with what is held in memory.
	merged := make([]Entry, 0, min(n, len(out)+len(s.mem)))
	i := 0
	for _, e := range s.mem {
		if e.Seq < from {
			continue
		}
		for i < len(out) && out[i].Seq < e.Seq {
			merged = append(merged, out[i])
			i++
		}
		merged = append(merged, e)
		if len(merged) >= n {
			return merged[:n], nil
		}
	}
	merged = append(merged, out[i:]...)
	return merged[:min(n, len(merged))], nil
}

func (s *Spool) peekDisk(from uint64, n int) ([]Entry, error) {
	var out []Entry
	var hdr [recHeader]byte
	var body []byte
	for _, g := range s.segs {
		if len(out) >= n {
			break
		}
		if g.end <= from {
			continue
		}
		seq := max(from, g.first)
		off, err := s.offsetOf(g, seq)
		for ; seq < g.end && len(out) < n; seq++ {
			var l int64
			ok := false
			if err == nil {
				l, ok, err = readRecord(g.f, off, seq, g.size, hdr[:], &body)
			}
			if err != nil || !ok {
				// Damaged since it was written, or unreadable: what is
				// left of the segment cannot be trusted. It is dropped,
				// so that delivery goes on past it.
				reason := "damaged on disk"
				if err != nil {
					reason = "cannot be read from disk (" + errText(err) + ")"
					s.log.Error("spool: cannot read a segment; its remaining messages are dropped", "segment", filepath.Join(s.dir, segName(g.first)), "seq", seq, "err", err)
				}
				s.dropCounted(g.live(seq, g.end), seq, g.end-1, reason)
				s.gone(g.end - 1)
				if g == s.tail() {
					g.used = off
				}
				g.end = seq
				err = nil
				break
			}
			out = append(out, entryOf(body))
			off += l
		}
		s.cursor.seg, s.cursor.seq, s.cursor.off = g, seq, off
	}
	return out, nil
}

// Ack removes every message up to and including seq: the broker has
// acknowledged them. A disk that fails to record it is reported in Stats
// (the messages may be sent again after a restart), not returned.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.flushDropLog(false)
	for len(s.mem) > 0 && s.mem[0].Seq <= seq {
		s.memBytes -= entrySize(s.mem[0])
		s.mem = s.mem[1:]
	}
	if seq < s.head {
		return nil
	}
	s.head = min(seq+1, s.next)
	if s.meta == nil {
		return nil
	}
	// meta first: a crash before the segments are removed leaves them to
	// be removed at the next open. Where the disk fails, the messages are
	// acknowledged all the same (a restart would send them again): the
	// failure is reported, not returned, so that sending goes on.
	if err := s.writeMeta(); err != nil {
		s.diskFailed(fmt.Errorf("acknowledging: %w", err))
		return nil
	}
	if err := s.settleHead(); err != nil {
		s.diskFailed(fmt.Errorf("acknowledging: %w", err))
	}
	return nil
}

// Stats returns what the spool holds now.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStats{Depth: uint64(s.depth()), InMemory: uint64(len(s.mem)), Drops: s.drops, LastSeq: s.next - 1,
		Held: uint64(s.held()), Capacity: uint64(s.capacity()), Limits: s.lim, DiskErr: s.diskErr}
	var bytes int64
	for i, g := range s.segs {
		if g.end > s.head {
			bytes += g.used
			if i == 0 {
				bytes -= s.headOff
			}
		}
	}
	st.Bytes = uint64(bytes + s.memBytes)
	if o, ok := s.oldestOnDisk(); ok {
		st.Oldest = o
	}
	if len(s.mem) > 0 && (st.Oldest == 0 || s.mem[0].Seq < st.Oldest) {
		st.Oldest = s.mem[0].Seq
	}
	return st
}

// Close writes the state and closes the files. Messages held in memory
// only are lost: the next open counts them as dropped, from the numbers
// meta has (it logs them, with the others found missing).
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.mem); n > 0 {
		s.log.Warn("spool: messages held in memory (the disk failed) are lost as the spool closes", "messages", n, "first_seq", s.mem[0].Seq, "last_seq", s.mem[n-1].Seq)
	}
	s.flushDropLog(true)
	var err error
	if s.meta != nil {
		err = s.writeMeta()
	}
	s.mem, s.memBytes = nil, 0
	s.closeFiles()
	return err
}
