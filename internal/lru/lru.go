// Package lru is a bounded table: a fixed number of entries, set
// associative with two choices, that evicts the least recently used entry
// of a key's two sets when both are full.
// "Recently" is a time the caller gives (tapwatch uses packet time, not
// wall time), so that a replay behaves as the capture did live.
//
// The table allocates only in Init: lookups, inserts and evictions
// allocate nothing. It is not safe for concurrent use.
package lru

import "math/bits"

// Ways is the number of entries in a set.
//
// A key may live in either of two sets (sets): a new key takes an empty
// entry of the one with more empty entries, or else evicts the least
// recently used of the eight. With one set per key, a set took five or
// more of the keys in use long before the table was full, and those keys
// then evicted each other at every use: the bench's DNP3 point blocks,
// 123 in a table of 512, did so for about two seeds in five, losing the
// blocks' state over and over (docs/performance.md, "Later (5)"). With
// two, both sets of a key are full only when the table nearly is.
const Ways = 4

// Entry is one entry of a Table. Key, Value and Last belong to the caller
// between Put and Delete or eviction.
type Entry[K comparable, V any] struct {
	Key   K
	Value V
	Last  int64  // when the entry was last used: the least recent of a key's two full sets is evicted
	hash  uint64 // the caller's hash of Key: compared before the key, which costs more
	used  bool
	gen   uint32 // the table's count of Puts when this key was put (Handle); in used's padding
}

// Used reports whether the entry holds a key.
func (e *Entry[K, V]) Used() bool { return e.used }

// Table is a set-associative table of entries of key type K and value
// type V. The zero Table is empty and must be given a size by Init. The
// caller hashes keys (equal keys must have equal hashes); the table mixes
// the hash with its seed to choose a key's two sets.
type Table[K comparable, V any] struct {
	slots     []Entry[K, V]
	mask      uint64
	seed      uint64
	live      int
	evictions uint64
	gen       uint32 // Puts so far, wrapping (Entry.gen)

	// OnEvict, when set, sees an entry just before Put evicts it, so that
	// the caller can act on it (report what it held).
	OnEvict func(*Entry[K, V])
}

// Init sizes t to n entries, rounded up to a power of two of at least
// one set, and empties it. seed keys the hash, so that a sender cannot aim
// at one set.
func (t *Table[K, V]) Init(n int, seed uint64) {
	n = Size(n)
	t.slots = make([]Entry[K, V], n)
	t.mask = uint64(n - 1)
	t.seed = seed
	t.live = 0
	t.evictions = 0
}

// Size is the number of entries a table asked for n has.
func Size(n int) int {
	if n < Ways {
		n = Ways
	}
	return 1 << bits.Len(uint(n-1))
}

// Reset empties t and keys its hash with seed; the eviction count stays.
func (t *Table[K, V]) Reset(seed uint64) {
	clear(t.slots)
	t.seed = seed
	t.live = 0
}

// sets are the two sets where a key of hash h may live: from the low and
// the high half of one mix of the hash. They are the same set for about
// one key in as many as the table has sets (always, in a table of one).
func (t *Table[K, V]) sets(h uint64) (a, b []Entry[K, V]) {
	x := mix64(h, t.seed)
	return t.slots[x&t.mask&^(Ways-1):][:Ways], t.slots[x>>32&t.mask&^(Ways-1):][:Ways]
}

// Lookup returns the entry of key k, whose hash is h, and true; or, when
// k is not in the table, the entry a new k would take and false (victim).
// Nothing changes until the caller calls Put.
func (t *Table[K, V]) Lookup(k *K, h uint64) (*Entry[K, V], bool) {
	a, b := t.sets(h)
	if s := find(a, b, k, h); s != nil {
		return s, true
	}
	return victim(a, b), false
}

// find is the entry of set a or b that holds k, or nil.
func find[K comparable, V any](a, b []Entry[K, V], k *K, h uint64) *Entry[K, V] {
	for i := range a {
		if s := &a[i]; s.used && s.hash == h && s.Key == *k {
			return s
		}
	}
	if &b[0] == &a[0] {
		return nil
	}
	for i := range b {
		if s := &b[i]; s.used && s.hash == h && s.Key == *k {
			return s
		}
	}
	return nil
}

// victim is the entry of sets a and b a new key takes: the first empty
// one of the set with more empty ones (a, when as many), or else the
// least recently used of both (the first of those used as long ago, a's
// before b's). Filling the emptier set keeps the sets even, so that both
// sets of a key are full only when the table nearly is.
func victim[K comparable, V any](a, b []Entry[K, V]) *Entry[K, V] {
	v := &a[0]
	ea, na := scanSet(a, &v)
	var eb *Entry[K, V]
	nb := 0
	if &b[0] != &a[0] {
		eb, nb = scanSet(b, &v)
	}
	switch {
	case na > 0 && na >= nb:
		return ea
	case nb > 0:
		return eb
	}
	return v
}

// scanSet returns the first empty entry of set and how many are empty,
// and moves *lru to any used entry of set used before it.
func scanSet[K comparable, V any](set []Entry[K, V], lru **Entry[K, V]) (first *Entry[K, V], empty int) {
	for i := range set {
		s := &set[i]
		if !s.used {
			if empty++; empty == 1 {
				first = s
			}
		} else if s.Last < (*lru).Last {
			*lru = s
		}
	}
	return first, empty
}

// Find returns the entry of key k, whose hash is h, or nil. It does not
// count as a use.
func (t *Table[K, V]) Find(k *K, h uint64) *Entry[K, V] {
	if e, ok := t.Lookup(k, h); ok {
		return e
	}
	return nil
}

// Put stores key k, whose hash is h, in e, the entry Lookup returned for
// k, with a zero value, used at now. When e holds another key, that one is
// evicted: OnEvict sees it first, and the eviction is counted.
func (t *Table[K, V]) Put(e *Entry[K, V], k *K, h uint64, now int64) {
	if e.used {
		t.evictions++
		if t.OnEvict != nil {
			t.OnEvict(e)
		}
	} else {
		t.live++
	}
	*e = Entry[K, V]{Key: *k, Last: now, hash: h, used: true, gen: t.nextGen()}
}

// nextGen is the generation of the next Put: never 0, so that the zero
// Handle refers to nothing.
func (t *Table[K, V]) nextGen() uint32 {
	t.gen++
	if t.gen == 0 {
		t.gen = 1
	}
	return t.gen
}

// Handle refers to one entry for as long as the entry holds the key it
// held when the handle was taken: a caller that keeps a handle beside
// something that always names the same key (a flow) finds the entry
// again without hashing or comparing the key. The zero Handle refers to
// nothing.
//
// Each Put stamps its entry with the table's count of Puts, which the
// handle keeps: an entry evicted, deleted, reset or copied over since no
// longer matches. The count wraps at 2^32 Puts, so a handle kept across
// that many Puts whose entry is put again at exactly the same count would
// match a key it does not hold; keep handles in places that are
// overwritten far more often than that. Init gives the table new
// entries: handles taken before it must be dropped.
type Handle[K comparable, V any] struct {
	e   *Entry[K, V]
	gen uint32
}

// Handle returns a handle to e, an entry of t that holds a key.
func (e *Entry[K, V]) Handle() Handle[K, V] { return Handle[K, V]{e: e, gen: e.gen} }

// Get returns the entry h refers to, used at now, or nil when it no
// longer holds the key it held when h was taken.
func (h Handle[K, V]) Get(now int64) *Entry[K, V] {
	e := h.e
	if e == nil || e.gen != h.gen || !e.used {
		return nil
	}
	e.Last = now
	return e
}

// Get returns the entry of key k, whose hash is h, used at now: the one
// in the table (true), or a new one with a zero value (false), which may
// have evicted another.
func (t *Table[K, V]) Get(k *K, h uint64, now int64) (*Entry[K, V], bool) {
	a, b := t.sets(h)
	if s := find(a, b, k, h); s != nil {
		s.Last = now
		return s, true
	}
	e := victim(a, b)
	t.Put(e, k, h, now)
	return e, false
}

// Delete empties e, an entry of t. It is not an eviction.
func (t *Table[K, V]) Delete(e *Entry[K, V]) {
	if e.used {
		*e = Entry[K, V]{}
		t.live--
	}
}

// Refill puts the entries of old, a table of t's size and seed, into t,
// just emptied (Reset): remap gives each key its key in t and that key's
// hash, or leaves it out; place puts it in the entry given (with Put) and
// its value. Two passes: first each key that can go back in the entry it
// had, because that entry is in one of its two sets (every key whose hash
// did not change), so that none of them can evict another, whatever order
// old took them in (which of its two sets a key took depended on the keys
// before it); then the others, in the entry Lookup offers, which may evict.
func (t *Table[K, V]) Refill(old []Entry[K, V], remap func(k *K) (uint64, bool), place func(slot, from *Entry[K, V], k *K, h uint64)) {
	for pass := range 2 {
		for i := range old {
			from := &old[i]
			if !from.used {
				continue
			}
			k := from.Key
			h, ok := remap(&k)
			if !ok {
				continue
			}
			slot := t.slot(i, h)
			if (slot != nil) != (pass == 0) {
				continue
			}
			if pass == 1 {
				slot, _ = t.Lookup(&k, h)
			}
			place(slot, from, &k, h)
		}
	}
}

// slot is entry i of t when a key of hash h may live there (it is in one
// of the key's two sets), or nil.
func (t *Table[K, V]) slot(i int, h uint64) *Entry[K, V] {
	if i < 0 || i >= len(t.slots) {
		return nil
	}
	a, b := t.sets(h)
	if s := &t.slots[i&^(Ways-1)]; s == &a[0] || s == &b[0] {
		return &t.slots[i]
	}
	return nil
}

// Entries are all the entries of t, used or not, in a fixed order; the
// caller may change the values and Delete entries while ranging over them.
func (t *Table[K, V]) Entries() []Entry[K, V] { return t.slots }

// Len is the number of entries in use.
func (t *Table[K, V]) Len() int { return t.live }

// Cap is the number of entries t holds at most.
func (t *Table[K, V]) Cap() int { return len(t.slots) }

// Evictions is the number of entries Put has evicted since Init.
func (t *Table[K, V]) Evictions() uint64 { return t.evictions }

// CopyFrom makes t a copy of old (entries, seed and eviction count) when
// both have the same size, and reports whether it did. OnEvict stays
// t's.
func (t *Table[K, V]) CopyFrom(old *Table[K, V]) bool {
	if len(t.slots) != len(old.slots) {
		return false
	}
	copy(t.slots, old.slots)
	t.seed, t.live, t.evictions = old.seed, old.live, old.evictions
	// Stamp the copies afresh: a handle to t's entries from before the
	// copy must not match old's.
	for i := range t.slots {
		if e := &t.slots[i]; e.used {
			e.gen = t.nextGen()
		}
	}
	return true
}

// mix64 is a 64-bit finalizer (splitmix64) keyed with seed.
func mix64(x, seed uint64) uint64 {
	x ^= seed
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
