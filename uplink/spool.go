package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/tapwatch/tapwatch/internal/atomicfile"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The spool keeps the messages that must reach the broker (alerts and
// asset changes) on disk, in order, until the broker has acknowledged
// them (PUBACK). It is a bbolt database (spool.db in the state
// directory): every append and every acknowledgement is a transaction,
// committed with fsync before it returns, and bbolt's copy-on-write pages
// and checksummed meta pages make a power cut leave either the old or the
// new state, never a torn one. docs/events.md says why bbolt was chosen.
//
// Bucket "msgs" maps the sequence number (8 bytes, big endian, so that
// the order of keys is the order of messages) to an entry: a flag byte
// (bit 0: retained), the topic's length (2 bytes), the topic and the
// msgpack payload, which carries the same sequence number. Bucket "meta"
// holds the next sequence number and the number of messages ever dropped
// because the spool was full.
//
// The sequence number must never be reused, even if the database is lost.
// So the spool also reserves numbers in blocks in a small file
// (seq.reserve, written atomically: temporary file, fsync, rename): a
// fresh spool after a lost or quarantined database starts above every
// number handed out before, and the numbers skipped show as a gap.

var (
	bucketMsgs = []byte("msgs")
	bucketMeta = []byte("meta")
	keyNext    = []byte("next")
	keyDrops   = []byte("drops")
)

const (
	spoolFile   = "spool.db"
	reserveFile = "seq.reserve"
	seqBlock    = 1024 // numbers reserved at a time in seq.reserve
)

// Limits bound the spool. When an append would exceed either, the oldest
// messages are dropped, and counted, until it fits.
type Limits struct {
	MaxBytes    int64 `yaml:"max_bytes"`    // payloads and topics, not the file's own overhead
	MaxMessages int   `yaml:"max_messages"` //
}

// DefaultLimits suit an SD card: 64 MiB, 200,000 messages.
var DefaultLimits = Limits{MaxBytes: 64 << 20, MaxMessages: 200_000}

// Entry is one spooled message.
type Entry struct {
	Seq     uint64
	Topic   string
	Retain  bool
	Payload []byte
}

// Item is a message to spool: Encode appends its payload, carrying seq,
// to b.
type Item struct {
	Topic  string
	Retain bool
	Encode func(seq uint64, b []byte) []byte
}

// Spool is the on-disk queue. Its methods are safe for concurrent use.
type Spool struct {
	dir string
	lim Limits
	db  *bolt.DB

	mu       sync.Mutex
	next     uint64 // the next sequence number
	reserved uint64 // numbers below this are reserved in seq.reserve
	count    int
	bytes    int64
	drops    uint64
	oldest   uint64 // sequence number of the oldest message, when count > 0
}

// SpoolStats is what the spool holds now.
type SpoolStats struct {
	Depth   uint64 // messages waiting for a PUBACK
	Bytes   uint64
	Drops   uint64 // messages dropped because the spool was full, ever
	LastSeq uint64 // the last sequence number handed out (0: none yet)
	Oldest  uint64 // sequence number of the oldest message held (0: none)
	Limits  Limits
}

// OpenSpool opens or creates the spool in dir. A database that cannot be
// opened is not deleted: it is renamed to spool.db.corrupt-TIME, the error
// is returned in quarantined (the caller reports it), and a fresh spool
// continues the sequence numbers from seq.reserve.
func OpenSpool(dir string, lim Limits) (s *Spool, quarantined error, err error) {
	if lim.MaxBytes <= 0 || lim.MaxMessages <= 0 {
		return nil, nil, fmt.Errorf("spool limits must be positive, got %d bytes, %d messages", lim.MaxBytes, lim.MaxMessages)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	s = &Spool{dir: dir, lim: lim}
	reserved, err := readReserve(filepath.Join(dir, reserveFile))
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, spoolFile)
	s.db, err = openDB(path)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, nil, fmt.Errorf("spool %s is in use by another process", path)
		}
		q := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(path, q); rerr != nil {
			return nil, nil, fmt.Errorf("spool %s: %v; and it cannot be moved aside: %v", path, err, rerr)
		}
		quarantined = fmt.Errorf("spool %s could not be opened (%v); moved to %s, starting a new spool after sequence number %d", path, err, q, reserved)
		if s.db, err = openDB(path); err != nil {
			return nil, quarantined, fmt.Errorf("spool %s: %w", path, err)
		}
	}
	fresh := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		msgs, err := tx.CreateBucketIfNotExists(bucketMsgs)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		s.next = getU64(meta, keyNext)
		fresh = meta.Get(keyNext) == nil
		s.drops = getU64(meta, keyDrops)
		c := msgs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || len(v) < 3 {
				return fmt.Errorf("damaged entry %x", k)
			}
			seq := binary.BigEndian.Uint64(k)
			if s.count == 0 {
				s.oldest = seq
			}
			s.count++
			s.bytes += int64(len(v))
			if seq >= s.next {
				s.next = seq + 1
			}
		}
		return nil
	})
	if err != nil {
		s.db.Close()
		return nil, quarantined, fmt.Errorf("spool %s: %w", path, err)
	}
	if s.next == 0 {
		s.next = 1
	}
	if fresh && reserved > s.next {
		// A new database, but numbers were handed out before: the old
		// one was lost or quarantined. Start above every number it may
		// have used, so that none is reused; the skipped ones show as a
		// gap.
		s.next = reserved
	}
	s.reserved = reserved
	return s, quarantined, nil
}

func openDB(path string) (*bolt.DB, error) {
	// NoFreelistSync: the list of free pages is not written at each
	// commit (fewer writes to the SD card); bbolt rebuilds it when it
	// opens the file.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	// bbolt checks the meta pages when it opens; check the pages too, so
	// that a damaged file is quarantined now and not found later.
	err = db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drained: Check's goroutine must finish
			if first == nil {
				first = err
			}
		}
		return first
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, k []byte, n uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], n)
	return b.Put(k, v[:])
}

func readReserve(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("spool: %s: not a sequence number: %q", path, b)
	}
	return n, nil
}

// Append spools items in one transaction, in order, giving each the next
// sequence number, and returns the first number given. The oldest
// messages are dropped, and counted, when the limits would be exceeded;
// a message larger than the byte limit on its own is refused.
func (s *Spool) Append(items []Item) (first uint64, err error) {
	if len(items) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first = s.next
	last := first + uint64(len(items)) - 1
	if last >= s.reserved {
		r := (last/seqBlock + 2) * seqBlock
		if err := atomicfile.Write(filepath.Join(s.dir, reserveFile), []byte(strconv.FormatUint(r, 10)+"\n"), 0o600); err != nil {
			return 0, fmt.Errorf("spool: reserving sequence numbers: %w", err)
		}
		s.reserved = r
	}
	count, bytes, drops, oldest := s.count, s.bytes, s.drops, s.oldest
	err = s.db.Update(func(tx *bolt.Tx) error {
		msgs, meta := tx.Bucket(bucketMsgs), tx.Bucket(bucketMeta)
		var key [8]byte
		for i, it := range items {
			seq := first + uint64(i)
			// A value must stay valid until the transaction ends: one
			// buffer per message.
			v := make([]byte, 0, 3+len(it.Topic)+256)
			flag := byte(0)
			if it.Retain {
				flag = 1
			}
			if len(it.Topic) > 0xFFFF {
				return fmt.Errorf("topic of %d bytes", len(it.Topic))
			}
			v = append(v, flag, byte(len(it.Topic)>>8), byte(len(it.Topic)))
			v = append(v, it.Topic...)
			v = it.Encode(seq, v)
			if int64(len(v)) > s.lim.MaxBytes {
				return fmt.Errorf("a message of %d bytes does not fit in a spool of %d", len(v), s.lim.MaxBytes)
			}
			// Make room, oldest first.
			for count > 0 && (count+1 > s.lim.MaxMessages || bytes+int64(len(v)) > s.lim.MaxBytes) {
				c := msgs.Cursor()
				k, old := c.First()
				if k == nil {
					break
				}
				bytes -= int64(len(old))
				count--
				drops++
				if err := c.Delete(); err != nil {
					return err
				}
				if nk, _ := c.First(); nk != nil {
					oldest = binary.BigEndian.Uint64(nk)
				}
			}
			binary.BigEndian.PutUint64(key[:], seq)
			if err := msgs.Put(key[:], v); err != nil {
				return err
			}
			if count == 0 {
				oldest = seq
			}
			count++
			bytes += int64(len(v))
		}
		if err := putU64(meta, keyNext, last+1); err != nil {
			return err
		}
		if drops != s.drops {
			return putU64(meta, keyDrops, drops)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	s.next = last + 1
	s.count, s.bytes, s.drops, s.oldest = count, bytes, drops, oldest
	return first, nil
}

// Peek returns up to n messages with sequence numbers from from on, in
// order. Their payloads are copies.
func (s *Spool) Peek(from uint64, n int) ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMsgs).Cursor()
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], from)
		for k, v := c.Seek(key[:]); k != nil && len(out) < n; k, v = c.Next() {
			if len(v) < 3 {
				return fmt.Errorf("damaged entry %x", k)
			}
			tl := int(v[1])<<8 | int(v[2])
			if len(v) < 3+tl {
				return fmt.Errorf("damaged entry %x", k)
			}
			out = append(out, Entry{
				Seq:     binary.BigEndian.Uint64(k),
				Retain:  v[0]&1 != 0,
				Topic:   string(v[3 : 3+tl]),
				Payload: append([]byte(nil), v[3+tl:]...),
			})
		}
		return nil
	})
	return out, err
}

// Ack removes every message up to and including seq: the broker has
// acknowledged them.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count == 0 || seq < s.oldest {
		return nil
	}
	count, bytes, oldest := s.count, s.bytes, s.oldest
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMsgs).Cursor()
		for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, v = c.First() {
			count--
			bytes -= int64(len(v))
			if err := c.Delete(); err != nil {
				return err
			}
		}
		if k, _ := c.First(); k != nil {
			oldest = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.count, s.bytes, s.oldest = count, bytes, oldest
	return nil
}

// Stats returns what the spool holds now.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStats{Depth: uint64(s.count), Bytes: uint64(s.bytes), Drops: s.drops, LastSeq: s.next - 1, Limits: s.lim}
	if s.count > 0 {
		st.Oldest = s.oldest
	}
	return st
}

// Close closes the database.
func (s *Spool) Close() error { return s.db.Close() }
