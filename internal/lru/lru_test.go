package lru

import (
	"slices"
	"testing"
)

type key struct {
	a, b uint64
}

type val struct {
	n    int
	note string
}

// hashesIn returns n hashes that t places in the same two sets as h, in
// the same order, h first, and n more whose two sets are neither of h's;
// and how many entries h's sets hold (2*Ways, or Ways when they are one).
func hashesIn(t *Table[key, val], h uint64, n int) (same, other []uint64, room int) {
	a, b := t.sets(h)
	for x := h; len(same) < n || len(other) < n; x++ {
		if x-h > 1<<24 {
			panic("hashesIn: not enough hashes of those sets, or of others")
		}
		xa, xb := t.sets(x)
		switch {
		case &xa[0] == &a[0] && &xb[0] == &b[0]:
			if len(same) < n {
				same = append(same, x)
			}
		case &xa[0] != &a[0] && &xa[0] != &b[0] && &xb[0] != &a[0] && &xb[0] != &b[0]:
			if len(other) < n {
				other = append(other, x)
			}
		}
	}
	room = 2 * Ways
	if &a[0] == &b[0] {
		room = Ways
	}
	return same, other, room
}

// twoSets returns a hash from h on whose two sets in t differ.
func twoSets(t *Table[key, val], h uint64) uint64 {
	for ; ; h++ {
		if a, b := t.sets(h); &a[0] != &b[0] {
			return h
		}
	}
}

func TestSize(t *testing.T) {
	for _, c := range []struct{ n, want int }{{-1, 4}, {0, 4}, {1, 4}, {4, 4}, {5, 8}, {8, 8}, {9, 16}, {4096, 4096}, {4097, 8192}} {
		if got := Size(c.n); got != c.want {
			t.Errorf("Size(%d) = %d, want %d", c.n, got, c.want)
		}
		var tb Table[key, val]
		tb.Init(c.n, 1)
		if tb.Cap() != c.want || tb.Len() != 0 {
			t.Errorf("Init(%d): cap %d len %d", c.n, tb.Cap(), tb.Len())
		}
	}
}

// TestSetSelection: keys of the same two sets compete for their ways;
// keys of other sets do not disturb them; the seed moves keys between
// sets.
func TestSetSelection(t *testing.T) {
	var tb Table[key, val]
	tb.Init(64, 7)
	same, other, room := hashesIn(&tb, twoSets(&tb, 1000), 2*Ways+1)
	if room != 2*Ways {
		t.Fatalf("room %d", room)
	}
	for i, h := range same[:room] {
		tb.Get(&key{a: h}, h, int64(i))
	}
	for i, h := range other {
		tb.Get(&key{a: h}, h, int64(100+i))
	}
	// The two sets are full, but nothing of them was evicted by the others.
	for _, h := range same[:room] {
		if tb.Find(&key{a: h}, h) == nil {
			t.Errorf("key %d was evicted by keys of other sets", h)
		}
	}
	if tb.Evictions() != 0 {
		t.Errorf("%d evictions", tb.Evictions())
	}
	// One key more evicts one of them, the least recently used.
	h := same[room]
	tb.Get(&key{a: h}, h, 200)
	if tb.Evictions() != 1 || tb.Find(&key{a: same[0]}, same[0]) != nil {
		t.Errorf("evictions %d; oldest key still there: %v", tb.Evictions(), tb.Find(&key{a: same[0]}, same[0]) != nil)
	}
	// Equal keys with different hashes are different places: the hash
	// chooses the sets, the key is compared within them.
	if tb.Find(&key{a: same[1]}, other[0]) != nil {
		t.Error("found a key in a set it does not hash to")
	}
	// A new key takes the first empty entry of the set with more empty
	// ones, its first set when they have as many. Keys whose two sets
	// are one (onlyIn) fill a set by exactly as many as are put.
	onlyIn := func(tb *Table[key, val], set []Entry[key, val], n int) []uint64 {
		var hs []uint64
		for y := uint64(0); len(hs) < n; y++ {
			if ya, yb := tb.sets(y); &ya[0] == &set[0] && &yb[0] == &set[0] {
				hs = append(hs, y)
			}
		}
		return hs
	}
	for _, c := range []struct {
		inA, inB int
		second   bool // the key goes to its second set
	}{{0, 0, false}, {1, 1, false}, {2, 1, true}, {1, 2, false}, {3, 2, true}, {Ways, 0, true}, {0, Ways - 1, false}} {
		var tb1 Table[key, val]
		tb1.Init(64, 7)
		x := twoSets(&tb1, 5000)
		xa, xb := tb1.sets(x)
		for i, y := range append(onlyIn(&tb1, xa, c.inA), onlyIn(&tb1, xb, c.inB)...) {
			tb1.Get(&key{a: y}, y, int64(i))
		}
		var want *Entry[key, val]
		if c.second {
			want = &xb[c.inB]
		} else {
			want = &xa[c.inA]
		}
		if e, _ := tb1.Get(&key{a: x}, x, 10); e != want || tb1.Evictions() != 0 {
			t.Errorf("%d and %d entries used in a key's two sets: it took another entry than the first empty one of the emptier set (or evicted)", c.inA, c.inB)
		}
	}
	// Another seed spreads the same hashes differently.
	var tb2 Table[key, val]
	tb2.Init(64, 8)
	moved := 0
	a0, _ := tb2.sets(same[0])
	for _, h := range same {
		if a, _ := tb2.sets(h); &a[0] != &a0[0] {
			moved++
		}
	}
	if moved == 0 {
		t.Error("the seed does not change set selection")
	}
}

// TestLRUByTime: the victim is the entry used least recently by the
// caller's clock, not the first inserted; a use moves an entry up; ties go
// to the first of the set.
func TestLRUByTime(t *testing.T) {
	var tb Table[key, val]
	tb.Init(4, 1) // one set
	times := []int64{40, 10, 30, 20}
	for i, at := range times {
		if _, found := tb.Get(&key{a: uint64(i)}, uint64(i), at); found {
			t.Fatalf("key %d found before insert", i)
		}
	}
	evicted := func(k uint64) bool { return tb.Find(&key{a: k}, k) == nil }
	tb.Get(&key{a: 10}, 10, 50)
	if !evicted(1) || evicted(0) || evicted(2) || evicted(3) {
		t.Fatal("key 1 (time 10) should be the first evicted")
	}
	// Touch key 3 (time 20): key 2 (time 30) is now the oldest.
	if e, found := tb.Get(&key{a: 3}, 3, 60); !found || e.Last != 60 {
		t.Fatalf("Get of a present key: found %v last %d", found, e.Last)
	}
	tb.Get(&key{a: 11}, 11, 70)
	if !evicted(2) || evicted(3) {
		t.Fatal("key 2 (time 30) should be evicted after key 3 was used again")
	}
	// Find is not a use: key 0 (time 40) stays the oldest.
	tb.Find(&key{a: 0}, 0)
	tb.Get(&key{a: 12}, 12, 80)
	if !evicted(0) {
		t.Fatal("Find counted as a use")
	}
	// Packet time going back: an entry of an earlier time is the oldest,
	// whatever the order of insertion.
	tb.Get(&key{a: 13}, 13, 5)
	tb.Get(&key{a: 14}, 14, 90)
	if !evicted(13) {
		t.Error("an entry used at an earlier time was not evicted first")
	}
	// Ties: the first of the set in slot order.
	tb.Init(4, 1)
	for i := range 4 {
		tb.Get(&key{a: uint64(i)}, uint64(i), 7)
	}
	tb.Get(&key{a: 9}, 9, 7)
	if !evicted(0) || evicted(1) {
		t.Error("a tie did not evict the first inserted")
	}
	if tb.Evictions() != 1 {
		t.Errorf("%d evictions after Init", tb.Evictions())
	}
}

// TestEvictionCallback: OnEvict sees the evicted entry with its key and
// value before it is overwritten, once per eviction, and never for a
// Delete or an empty slot.
func TestEvictionCallback(t *testing.T) {
	var tb Table[key, val]
	tb.Init(4, 3)
	var seen []val
	tb.OnEvict = func(e *Entry[key, val]) {
		if !e.Used() {
			t.Error("OnEvict of an empty entry")
		}
		seen = append(seen, e.Value)
		if e.Value.n != int(e.Key.a) {
			t.Errorf("key %d carries value %d", e.Key.a, e.Value.n)
		}
	}
	for i := range 6 {
		k := key{a: uint64(i)}
		e, found := tb.Lookup(&k, k.a)
		if found {
			t.Fatalf("key %d found", i)
		}
		tb.Put(e, &k, k.a, int64(i))
		if e.Value != (val{}) || e.Key != k || e.Last != int64(i) {
			t.Fatalf("Put left %+v", *e)
		}
		e.Value = val{n: i, note: "v"}
	}
	if want := []val{{0, "v"}, {1, "v"}}; !slices.Equal(seen, want) {
		t.Errorf("evicted %v, want %v", seen, want)
	}
	if tb.Evictions() != 2 || tb.Len() != 4 {
		t.Errorf("evictions %d len %d", tb.Evictions(), tb.Len())
	}
	// Delete frees a slot without an eviction; the next key takes it.
	e := tb.Find(&key{a: 3}, 3)
	tb.Delete(e)
	tb.Delete(e) // a second Delete changes nothing
	if tb.Len() != 3 || e.Used() {
		t.Fatalf("after Delete: len %d used %v", tb.Len(), e.Used())
	}
	k := key{a: 50}
	if got, found := tb.Lookup(&k, 50); found || got != e {
		t.Error("Lookup did not offer the freed slot")
	}
	tb.Get(&k, 50, 0) // older than everything, but the slot was free
	if len(seen) != 2 || tb.Evictions() != 2 || tb.Len() != 4 {
		t.Errorf("insert into a free slot: %d callbacks, %d evictions, len %d", len(seen), tb.Evictions(), tb.Len())
	}
}

// TestFullTable fills a table well past its size: it never holds more
// than its capacity, every insert is kept or counted as an eviction, a
// key evicts only when both its sets are full, and then the least
// recently used of their entries (the first of those used as long ago,
// its first set's before its second's); until then it takes the first
// empty entry of the set with more of them.
func TestFullTable(t *testing.T) {
	var tb Table[key, val]
	tb.Init(64, 11)
	const n = 1000
	evictions := 0
	var evicted *key // the key OnEvict saw last
	tb.OnEvict = func(e *Entry[key, val]) { evictions++; k := e.Key; evicted = &k }
	for i := range n {
		k := key{a: uint64(i), b: uint64(i) * 3}
		h := k.a * 0x9e3779b97f4a7c15
		a, b := tb.sets(h)
		sets := [][]Entry[key, val]{a, b}
		if &a[0] == &b[0] {
			sets = sets[:1]
		}
		// The entry the key must take: the first empty one of the set
		// with more, a's when as many; or the least recently used.
		var want *Entry[key, val]
		most := 0
		for _, set := range sets {
			empty := 0
			for j := range set {
				if !set[j].Used() {
					empty++
				}
			}
			if empty > most {
				most = empty
				for j := range set {
					if !set[j].Used() {
						want = &set[j]
						break
					}
				}
			}
		}
		if want == nil {
			for _, set := range sets {
				for j := range set {
					if e := &set[j]; want == nil || e.Last < want.Last {
						want = e
					}
				}
			}
		}
		wantKey, wantUsed := want.Key, want.Used()
		evicted = nil
		e, found := tb.Get(&k, h, int64(i%300)) // the clock goes back now and then
		if found {
			t.Fatalf("key %d found before it was put", i)
		}
		if e != want {
			t.Fatalf("key %d took another entry than the first empty or least recently used of its sets", i)
		}
		if (evicted != nil) != wantUsed || evicted != nil && *evicted != wantKey {
			t.Fatalf("key %d: evicted %v", i, evicted)
		}
		if tb.Find(&k, h) == nil {
			t.Fatalf("key %d lost right after Get", i)
		}
	}
	if tb.Len() != tb.Cap() {
		t.Errorf("len %d of %d after %d inserts", tb.Len(), tb.Cap(), n)
	}
	if got := tb.Evictions(); got != n-64 || evictions != n-64 {
		t.Errorf("evictions %d (callback %d), want %d", got, evictions, n-64)
	}
	used := 0
	for i := range tb.Entries() {
		if tb.Entries()[i].Used() {
			used++
		}
	}
	if used != tb.Len() {
		t.Errorf("%d entries used, Len %d", used, tb.Len())
	}
	// slot gives each key's own entry back, and no entry outside its
	// two sets.
	ents := tb.Entries()
	for i := range ents {
		h := ents[i].hash
		if tb.slot(i, h) != &ents[i] {
			t.Fatalf("slot(%d) of its own key's hash: not its entry", i)
		}
		a, b := tb.sets(h)
		for j := range ents {
			if in := &ents[j&^(Ways-1)] == &a[0] || &ents[j&^(Ways-1)] == &b[0]; (tb.slot(j, h) != nil) != in {
				t.Fatalf("slot(%d) of a hash whose sets are %v that entry's", j, in)
			}
		}
	}
	if tb.slot(-1, 0) != nil || tb.slot(len(ents), 0) != nil {
		t.Error("slot of an index out of the table")
	}
}

// TestLowLoad: keys in use that fill a table by a quarter, used in turn,
// over a thousand seeds: no key evicts another. With one set a key, 128
// keys in a table of 512 evicted for 371 seeds of the thousand, 1,024 in
// 4,096 for 980.
func TestLowLoad(t *testing.T) {
	for _, c := range []struct{ size, keys int }{{512, 128}, {64, 16}, {4096, 1024}} {
		overflowed := 0
		for seed := range uint64(1000) {
			var tb Table[key, val]
			tb.Init(c.size, seed)
			for round := range 3 {
				for i := range c.keys {
					k := key{a: uint64(i)}
					tb.Get(&k, mix64(k.a, 99), int64(round*c.keys+i))
				}
			}
			if tb.Evictions() > 0 {
				overflowed++
			}
		}
		if overflowed > 0 {
			t.Errorf("%d keys in %d entries: evictions for %d seeds of 1000", c.keys, c.size, overflowed)
		}
	}
}

func TestResetAndCopy(t *testing.T) {
	var a, b, c Table[key, val]
	a.Init(16, 1)
	for i := range 40 {
		k := key{a: uint64(i)}
		e, _ := a.Get(&k, k.a, int64(i))
		e.Value.n = i
	}
	b.Init(16, 2)
	if !b.CopyFrom(&a) || b.Len() != a.Len() || b.Evictions() != a.Evictions() {
		t.Fatal("CopyFrom of a table of the same size")
	}
	for i := range 40 {
		k := key{a: uint64(i)}
		ea, eb := a.Find(&k, k.a), b.Find(&k, k.a)
		if (ea == nil) != (eb == nil) || ea != nil && eb.Value.n != i {
			t.Fatalf("key %d: copy differs", i)
		}
	}
	c.Init(32, 1)
	if c.CopyFrom(&a) {
		t.Error("CopyFrom of a table of another size")
	}
	ev := a.Evictions()
	a.Reset(5)
	if a.Len() != 0 || a.Evictions() != ev {
		t.Errorf("Reset: len %d evictions %d", a.Len(), a.Evictions())
	}
	for i := range a.Entries() {
		if a.Entries()[i].Used() {
			t.Fatal("Reset left an entry")
		}
	}
}

// TestNoAllocs: lookups, inserts, uses, evictions with a callback and
// deletes allocate nothing.
func TestNoAllocs(t *testing.T) {
	var tb Table[key, val]
	tb.Init(16, 9)
	n := 0
	tb.OnEvict = func(*Entry[key, val]) { n++ }
	var i uint64
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		k := key{a: i % 37, b: 1}
		e, _ := tb.Get(&k, k.a, int64(i))
		e.Value.n++
		if x := tb.Find(&k, k.a); x != nil && i%5 == 0 {
			tb.Delete(x)
		}
		k.b = 2
		if e, found := tb.Lookup(&k, k.a); !found {
			tb.Put(e, &k, k.a, int64(i))
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
	if n == 0 {
		t.Error("nothing was evicted")
	}
}

// TestHandle: a handle finds its entry, as a use, until the entry holds
// another key or none: evicted, deleted, reset or copied over.
func TestHandle(t *testing.T) {
	var tb Table[key, val]
	tb.Init(64, 3)
	if (Handle[key, val]{}).Get(1) != nil {
		t.Fatal("the zero handle refers to an entry")
	}
	same, _, room := hashesIn(&tb, twoSets(&tb, 100), 2*Ways+1)
	if room != 2*Ways {
		t.Fatalf("room %d", room)
	}
	same = same[:room+1]
	hs := make([]Handle[key, val], len(same))
	for i, h := range same {
		k := key{a: h}
		e, _ := tb.Get(&k, h, int64(10+i))
		e.Value.n = i
		hs[i] = e.Handle()
	}
	// The last key evicted the first, the least recently used.
	if hs[0].Get(20) != nil {
		t.Error("a handle to an evicted entry still matches")
	}
	for i := 1; i < len(hs); i++ {
		e := hs[i].Get(int64(30 + i))
		if e == nil || e.Key.a != same[i] || e.Value.n != i {
			t.Fatalf("handle %d: %+v", i, e)
		}
		if e.Last != int64(30+i) {
			t.Errorf("handle %d: Get did not count as a use: Last %d", i, e.Last)
		}
	}
	// Putting another key in an entry a handle refers to.
	k := key{a: same[0]}
	e, found := tb.Lookup(&k, same[0])
	if found {
		t.Fatal("the evicted key is still there")
	}
	var stale Handle[key, val]
	for i := 1; i < len(hs); i++ {
		if hs[i].e == e {
			stale = hs[i]
		}
	}
	tb.Put(e, &k, same[0], 40)
	if stale.Get(41) != nil {
		t.Error("a handle matches an entry that now holds another key")
	}
	fresh := e.Handle()
	if fresh.Get(42) != e {
		t.Error("a handle to the new key")
	}
	tb.Delete(e)
	if fresh.Get(43) != nil {
		t.Error("a handle to a deleted entry still matches")
	}
	// A copy stamps its entries afresh: another table that holds another
	// key in the same place, put at the same count, must not match.
	var x, y Table[key, val]
	x.Init(8, 3)
	y.Init(8, 3)
	kx, ky := key{a: 7, b: 1}, key{a: 7, b: 2}
	ex, _ := x.Get(&kx, 7, 50)
	y.Get(&ky, 7, 50)
	hx := ex.Handle()
	if !x.CopyFrom(&y) {
		t.Fatal("CopyFrom")
	}
	if e := hx.Get(51); e != nil {
		t.Errorf("a handle matches after CopyFrom: it finds %+v", e.Key)
	}
	k2 := key{a: 7}
	e3, _ := tb.Get(&k2, 7, 52)
	h3 := e3.Handle()
	tb.Reset(4)
	if h3.Get(53) != nil {
		t.Error("a handle matches after Reset")
	}
	if n := testing.AllocsPerRun(100, func() { h3.Get(54) }); n != 0 {
		t.Errorf("Handle.Get: %v allocations", n)
	}
}

// TestRefill: a table nearly full, refilled into another of the same size
// and seed, keeps every key, each in the entry it had, with its value,
// and evicts nothing, whatever order the first took its keys in; a key
// remap leaves out is not put. Keys whose hash remap changes go after the
// others, where Lookup offers, and may evict: every key put is then
// there or counted as an eviction.
func TestRefill(t *testing.T) {
	for _, move := range []bool{false, true} {
		for seed := range uint64(20) {
			var old, tb Table[key, val]
			old.Init(256, seed)
			tb.Init(256, seed)
			for i := range 240 {
				k := key{a: uint64(i)}
				e, _ := old.Get(&k, mix64(k.a, 5), int64(i%37)) // times out of order
				e.Value.n = i
			}
			put := 0
			tb.Refill(old.Entries(), func(k *key) (uint64, bool) {
				switch {
				case k.a%50 == 7:
					return 0, false // left out
				case move && k.a%50 == 9:
					k.b = 1 // another key, another hash
					return mix64(k.a, 6), true
				}
				return mix64(k.a, 5), true
			}, func(slot, from *Entry[key, val], k *key, h uint64) {
				put++
				tb.Put(slot, k, h, from.Last)
				slot.Value = from.Value
			})
			if tb.Len()+int(tb.Evictions()) != put {
				t.Errorf("move %v, seed %d: %d keys and %d evictions after putting %d", move, seed, tb.Len(), tb.Evictions(), put)
			}
			if move {
				continue
			}
			if tb.Evictions() != 0 {
				t.Errorf("seed %d: %d evictions", seed, tb.Evictions())
			}
			for i := range old.Entries() {
				from := &old.Entries()[i]
				if !from.Used() || from.Key.a%50 == 7 {
					continue
				}
				if e := &tb.Entries()[i]; !e.Used() || e.Key != from.Key || e.Value != from.Value || e.Last != from.Last {
					t.Fatalf("seed %d: key %d not back in its entry %d", seed, from.Key.a, i)
				}
			}
		}
	}
}
