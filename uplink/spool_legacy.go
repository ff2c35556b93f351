package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Versions before the segment log kept the spool in a bbolt database
// (state_dir/spool.db: bucket "msgs" of seq -> flag, topic length, topic,
// payload; bucket "meta" with "next" and "drops") and reserved numbers in
// state_dir/seq.reserve. On a full disk bbolt could neither grow nor
// delete (a delete is a commit, which needs free pages) and never gave
// its space back. The first open of the new spool moves what it held into
// the segments and removes it.

// legacySpool is what an earlier version's spool held, read at open.
type legacySpool struct {
	loaded  bool
	entries []Entry
	drops   uint64
	next    uint64 // the next number it would have handed out
	reserve uint64 // numbers below were reserved (seq.reserve)
}

// loadLegacy reads a legacy spool into s.legacy, once. A damaged database
// is moved aside, as before, and reported in warn. With free set, the
// database is removed once read, to give its space to the new spool
// (freed says whether there was one): its messages are then in memory
// only until migrateLegacy stores them, a short window in which a crash
// would lose them.
func (s *Spool) loadLegacy(free bool) (warn error, freed bool, err error) {
	if _, real := s.fs.(osFS); !real || s.legacy.loaded {
		return nil, false, nil // only a real disk can hold a bbolt file
	}
	path := filepath.Join(s.stateDir, legacySpoolFile)
	var warns []error
	if r, err := readLegacyReserve(filepath.Join(s.stateDir, legacyReserveFile)); err != nil {
		warns = append(warns, err)
	} else {
		s.legacy.reserve = r
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		s.legacy.loaded = true
		return errors.Join(warns...), false, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return errors.Join(warns...), false, errLocked
	}
	var entries []Entry
	var next, drops uint64
	if err == nil {
		err = db.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket([]byte("meta")); m != nil {
				next, drops = legacyU64(m.Get([]byte("next"))), legacyU64(m.Get([]byte("drops")))
			}
			msgs := tx.Bucket([]byte("msgs"))
			if msgs == nil {
				return nil
			}
			return msgs.ForEach(func(k, v []byte) error {
				if len(k) != 8 || len(v) < 3 || len(v) < 3+(int(v[1])<<8|int(v[2])) {
					return fmt.Errorf("damaged entry %x", k)
				}
				tl := int(v[1])<<8 | int(v[2])
				entries = append(entries, Entry{Seq: binary.BigEndian.Uint64(k), Retain: v[0]&1 != 0,
					Topic: string(v[3 : 3+tl]), Payload: append([]byte(nil), v[3+tl:]...)})
				return nil
			})
		})
		db.Close()
	}
	if err != nil {
		q := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(path, q); rerr != nil {
			return errors.Join(warns...), false, fmt.Errorf("spool %s: %v; and it cannot be moved aside: %v", path, err, rerr)
		}
		warns = append(warns, fmt.Errorf("spool %s could not be read (%v); moved to %s, numbering goes on above every number it reserved", path, err, q))
		entries, next, drops = nil, 0, 0
	}
	s.legacy = legacySpool{loaded: true, entries: entries, drops: drops, next: next, reserve: s.legacy.reserve}
	if len(entries) > 0 {
		s.legacy.next = max(next, entries[len(entries)-1].Seq+1)
	}
	if err == nil && free {
		if err := os.Remove(path); err != nil {
			return errors.Join(warns...), false, err
		}
		freed = true
		s.space.at = time.Time{} // read the free space again
		s.segSize = s.segmentSize()
	}
	return errors.Join(warns...), freed, nil
}

// migrateLegacy moves a legacy spool's messages, drops and reservation
// into the segment log, then removes it.
func (s *Spool) migrateLegacy() (warn error, err error) {
	if _, real := s.fs.(osFS); !real {
		return nil, nil
	}
	warn, _, err = s.loadLegacy(false)
	if err != nil {
		return warn, err
	}
	l := s.legacy
	if l.next == 0 && l.reserve == 0 && len(l.entries) == 0 && l.drops == 0 {
		return warn, nil
	}
	s.drops += l.drops
	s.reserved = max(s.reserved, l.next, l.reserve)
	s.floor = max(s.floor, l.next)
	if err := s.migrateEntries(l.entries); err != nil {
		// Not stored: they are held in memory, to be sent all the same.
		// The drops and numbers are applied again when the disk is
		// opened again.
		for _, r := range s.recs {
			s.hold(r)
		}
		s.legacy.entries = nil
		return warn, err
	}
	if err := s.writeMeta(); err != nil {
		return warn, err
	}
	s.legacy = legacySpool{loaded: true}
	for _, name := range []string{legacySpoolFile, legacyReserveFile} {
		if err := os.Remove(filepath.Join(s.stateDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return warn, err
		}
	}
	if len(l.entries) > 0 {
		s.log.Info("spool: moved the messages of an earlier version's spool into the new one", "from", filepath.Join(s.stateDir, legacySpoolFile), "messages", len(l.entries), "to", s.dir)
	}
	return warn, nil
}

// migrateEntries stores the legacy messages not yet in the log.
func (s *Spool) migrateEntries(entries []Entry) error {
	from := uint64(0)
	if t := s.tail(); t != nil {
		from = t.end
	}
	s.buf, s.recs = s.buf[:0], s.recs[:0]
	for _, e := range entries {
		if e.Seq < from {
			continue
		}
		start := len(s.buf)
		s.buf = beginRecord(s.buf, e.Seq, e.Retain, e.Topic)
		s.buf = append(s.buf, e.Payload...)
		s.addRecord(e.Seq, start)
	}
	if len(s.recs) == 0 {
		return nil
	}
	if len(s.segs) == 0 {
		s.head = s.recs[0].seq
	}
	if err := s.store(s.recs); err != nil {
		return err
	}
	s.floor = max(s.floor, s.recs[len(s.recs)-1].seq+1)
	return nil
}

func legacyU64(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func readLegacyReserve(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("spool: %s: not a sequence number: %q; ignored", path, b)
	}
	return n, nil
}
