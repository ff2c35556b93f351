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

// migrateLegacy moves a legacy spool's messages, drops and reservation
// into the segment log, then removes it. A damaged database is moved
// aside, as before, and reported in warn.
func (s *Spool) migrateLegacy() (warn error, err error) {
	path := filepath.Join(s.stateDir, legacySpoolFile)
	reservePath := filepath.Join(s.stateDir, legacyReserveFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, s.removeLegacyReserve(reservePath)
	}
	var warns []error
	if r, err := readLegacyReserve(reservePath); err != nil {
		warns = append(warns, err)
	} else {
		s.reserved = max(s.reserved, r)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, errLocked
	}
	var entries []Entry
	if err == nil {
		var next, drops uint64
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
		if err == nil {
			s.drops += drops
			s.reserved = max(s.reserved, next)
		}
	}
	if err != nil {
		q := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(path, q); rerr != nil {
			return errors.Join(warns...), fmt.Errorf("spool %s: %v; and it cannot be moved aside: %v", path, err, rerr)
		}
		warns = append(warns, fmt.Errorf("spool %s could not be read (%v); moved to %s, numbering goes on after %d", path, err, q, s.reserved))
		entries = nil
	}
	if err := s.migrateEntries(entries, path); err != nil {
		return errors.Join(warns...), err
	}
	if err := s.writeMeta(); err != nil {
		return errors.Join(warns...), err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errors.Join(warns...), err
	}
	if len(entries) > 0 {
		s.log.Info("spool: moved the messages of an earlier version's spool into the new one", "from", path, "messages", len(entries), "to", s.dir)
	}
	return errors.Join(warns...), s.removeLegacyReserve(reservePath)
}

// migrateEntries stores the legacy messages not yet in the log. On a full
// disk the legacy file itself is what fills it: it is removed first (its
// messages are in memory) to make room, a short window in which a crash
// would lose them.
func (s *Spool) migrateEntries(entries []Entry, path string) error {
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
	err := s.store(s.recs)
	if err != nil && isNoSpace(err) {
		if rerr := os.Remove(path); rerr != nil {
			return err
		}
		s.space.at = time.Time{}
		err = s.store(s.recs)
	}
	if err != nil {
		for _, r := range s.recs {
			s.hold(r)
		}
	}
	return err
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

// removeLegacyReserve removes seq.reserve once meta holds the reservation.
func (s *Spool) removeLegacyReserve(path string) error {
	if r, err := readLegacyReserve(path); err == nil && r > s.reserved {
		s.reserved = r
		if err := s.writeMeta(); err != nil {
			return err
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
