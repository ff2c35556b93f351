package dpi

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/tapwatch/tapwatch/dpi/proto"
)

// flowKey names a conversation. canonical orders the two ends so that both
// directions of a conversation map to the same key.
type flowKey struct {
	a, b ip16
	// The rest in one word, compared and hashed as one: port a in bits
	// 48-63, port b in 32-47, the VLAN id in 16-31, the IP protocol in
	// 0-7.
	rest uint64
}

func (k *flowKey) pa() uint16   { return uint16(k.rest >> 48) }
func (k *flowKey) pb() uint16   { return uint16(k.rest >> 32) }
func (k *flowKey) vlan() uint16 { return uint16(k.rest >> 16) }
func (k *flowKey) proto() uint8 { return uint8(k.rest) }
func (k *flowKey) setPorts(pa, pb uint16) {
	k.rest = k.rest&0xffffffff | uint64(pa)<<48 | uint64(pb)<<32
}
func (k *flowKey) setVLAN(v uint16) { k.rest = k.rest&^(0xffff<<16) | uint64(v)<<16 }
func (k *flowKey) setProto(p uint8) { k.rest = k.rest&^0xff | uint64(p) }

// swapEnds swaps the key's two ends, addresses and ports.
func (k *flowKey) swapEnds() {
	k.a, k.b = k.b, k.a
	k.rest = uint64(bits.RotateLeft32(uint32(k.rest>>32), 16))<<32 | k.rest&0xffffffff
}

// macs are a frame's two Ethernet addresses as the frame's first twelve
// octets hold them: the destination, then the source. The packet path
// takes them by pointer, into the frame itself on the fast path: as two
// arrays by value they were copied out of the frame and again at each
// call.
type macs [12]byte

func macsOf(dst, src [6]byte) (m macs) {
	copy(m[:6], dst[:])
	copy(m[6:], src[:])
	return m
}

func (m *macs) src() [6]byte { return [6]byte(m[6:12]) }
func (m *macs) dst() [6]byte { return [6]byte(m[0:6]) }

// ip16 is an IP address as two words, in network order (IPv4 mapped into
// IPv6, ::ffff:a.b.c.d): keys are compared, ordered and hashed a word at
// a time. As octets, a 32-bit processor compared and copied them through
// calls to the runtime (memequal, duffcopy; ARM's memequal goes an octet
// at a time), on every packet.
type ip16 struct{ hi, lo uint64 }

// ip16From4 is the IPv4-mapped form of the IPv4 address in b[:4].
func ip16From4(b []byte) ip16 {
	return ip16{lo: 0xffff<<32 | uint64(binary.BigEndian.Uint32(b))}
}

// ip16From16 is the IPv6 address in b[:16].
func ip16From16(b []byte) ip16 {
	_ = b[15]
	return ip16{hi: binary.BigEndian.Uint64(b), lo: binary.BigEndian.Uint64(b[8:])}
}

// as16 is a in octets.
func (a ip16) as16() (b [16]byte) {
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return b
}

// addr is a as a netip.Addr, IPv4 for a mapped address.
func (a ip16) addr() netip.Addr { return netip.AddrFrom16(a.as16()).Unmap() }

// canonical returns the key with the lower end first, and whether the
// packet's source is the second end.
func (k *flowKey) canonical() (flowKey, bool) {
	c := *k
	return c, c.canonicalize()
}

// canonicalize puts the lower end first, in place, and says whether it
// swapped the ends.
func (k *flowKey) canonicalize() bool {
	// The ports as one word, port a high, and swapped: comparing the two
	// compares port b with port a.
	a, b, p := k.a, k.b, uint32(k.rest>>32)
	q := bits.RotateLeft32(p, 16)
	if b.hi > a.hi || b.hi == a.hi && (b.lo > a.lo || b.lo == a.lo && q >= p) {
		return false
	}
	// swapEnds, written out with the rotated word at hand: a call of it
	// puts canonicalize over the inliner's budget (84 against 80).
	k.a, k.b = b, a
	k.rest = uint64(q)<<32 | k.rest&0xffffffff
	return true
}

// equal reports whether k and o are the same key: field by field, which
// the compiler does inline, where == on the struct calls its generated
// equality function (TestFlowKeyEqual).
func (k *flowKey) equal(o *flowKey) bool {
	return k.a == o.a && k.b == o.b && k.rest == o.rest
}

// hash mixes the key's words. It need not resist crafted collisions: probe
// chains are bounded by the table's load, and the table by MaxFlows.
func (k *flowKey) hash(seed uint64) uint64 {
	a0, a1, b0, b1 := k.a.hi, k.a.lo, k.b.hi, k.b.lo
	h := seed ^ a0 ^ bits.RotateLeft64(a1, 13) ^ bits.RotateLeft64(b0, 29) ^ bits.RotateLeft64(b1, 43)
	h = mix(h ^ k.rest)
	return mix(h)
}

func mix(x uint64) uint64 {
	hi, lo := bits.Mul64(x, 0x9e3779b97f4a7c15)
	return hi ^ lo
}

// flow is one conversation. Records live in fixed chunks so pointers to them
// stay valid; free records are reused.
type flow struct {
	Flow
	key    flowKey
	idx    int32
	prev   int32 // towards the most recently used; -1 at the head
	next   int32 // towards the least recently used; -1 at the tail
	last   int64 // packet time of the last packet, unix ns
	server int   // side (0: key.a, 1: key.b) that is the server
	closed [2]bool
	// payload: a TCP segment with payload was seen, either way.
	payload bool
	// reported, reportedBytes: the counts last told to a NetHandler.
	reported, reportedBytes [2]uint64
	// svcTried: the first payload of the client (1) and of the server (2)
	// was tried for the service; svcDone: Flow.Service is decided.
	svcTried uint8
	svcDone  bool
	// macGap: ClientMAC or ServerMAC is unknown, as after the first
	// packet of a Linux cooked capture, whose header names only the
	// sender; the other end's comes from the first packet it sends.
	macGap bool
	half   [2]half // indexed by the side that sends
	dec    int     // the flow's protocol: index + 1 in the engine's registry; 0 for none
	st     proto.Stream
	// streams holds, by registry index, the decoder state this record
	// made for each protocol; it is kept when the record is reused.
	streams []proto.Stream
}

const chunkSize = 64

// table is a bounded flow table with least-recently-used order. Its index
// is an open-addressing hash table with linear probing, sized at four
// slots per flow, so lookups are short and never allocate.
type table struct {
	slots  []int32 // flow index + 1; 0 is empty
	mask   uint64
	seed   uint64
	chunks []*[chunkSize]flow
	free   []int32
	max    int
	live   int
	head   int32 // most recently used
	tail   int32 // least recently used
	last   *flow // the flow get found last
	nextID uint64
}

func (t *table) init(max int) {
	t.max = max
	n := 1
	for n < 4*max {
		n <<= 1
	}
	t.slots = make([]int32, n)
	t.mask = uint64(n - 1)
	t.seed = 0x6a09e667f3bcc909
	t.head, t.tail = -1, -1
}

// at is the record of index i (0 or more): divided unsigned, i/chunkSize
// and i%chunkSize are a shift and a mask, without the sign's corrections.
func (t *table) at(i int32) *flow { return &t.chunks[uint32(i)/chunkSize][uint32(i)%chunkSize] }

func (t *table) full() bool { return t.live >= t.max }

// cached is the last flow found when its key is k, else nil. Packets of
// one flow often come in runs (a response in several segments, a bulk
// transfer): the packet path tries it before find, and it is small enough
// to be inlined there.
func (t *table) cached(k *flowKey) *flow {
	if f := t.last; f != nil && f.key.equal(k) {
		return f
	}
	return nil
}

// find looks k up in the slots, and keeps what it found for cached.
func (t *table) find(k *flowKey) *flow {
	for i := k.hash(t.seed) & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return nil
		}
		if f := t.at(s - 1); f.key.equal(k) {
			t.last = f
			return f
		}
	}
}

func (t *table) insert(k *flowKey, idx int32) {
	i := k.hash(t.seed) & t.mask
	for t.slots[i] != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = idx + 1
}

// delete removes k's slot and shifts later members of its probe chain back,
// so the table needs no tombstones.
func (t *table) delete(k *flowKey) {
	i := k.hash(t.seed) & t.mask
	for {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if t.at(s - 1).key.equal(k) {
			break
		}
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		s := t.slots[j]
		if s == 0 {
			break
		}
		home := t.at(s-1).key.hash(t.seed) & t.mask
		// Move s into the hole at i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = s
			i = j
		}
	}
	t.slots[i] = 0
}

// oldest returns the least recently used flow, or nil.
func (t *table) oldest() *flow {
	if t.tail < 0 {
		return nil
	}
	return t.at(t.tail)
}

// add returns a fresh record for k at the head of the list. The caller
// makes room first.
func (t *table) add(k flowKey) *flow {
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		n := int32(len(t.chunks) * chunkSize)
		t.chunks = append(t.chunks, new([chunkSize]flow))
		for j := n + chunkSize - 1; j > n; j-- {
			t.free = append(t.free, j)
		}
		i = n
	}
	f := t.at(i)
	h0, h1, st := f.half[0], f.half[1], f.streams // keep buffers and decoder state for reuse
	*f = flow{key: k, idx: i, prev: -1, next: -1, streams: st}
	f.half[0].reuse(h0)
	f.half[1].reuse(h1)
	t.nextID++
	f.ID = t.nextID
	t.insert(&f.key, i)
	t.live++
	t.pushFront(f)
	return f
}

func (t *table) remove(f *flow) {
	if t.last == f {
		t.last = nil
	}
	t.unlink(f)
	t.delete(&f.key)
	t.free = append(t.free, f.idx)
	t.live--
}

// touch moves f to the front of the list, oldest last. Most packets find
// their flow in front already; the test is small enough to be inlined,
// the move is a call.
func (t *table) touch(f *flow) {
	if t.head != f.idx {
		t.toFront(f)
	}
}

func (t *table) toFront(f *flow) {
	t.unlink(f)
	t.pushFront(f)
}

func (t *table) pushFront(f *flow) {
	f.prev = -1
	f.next = t.head
	if t.head >= 0 {
		t.at(t.head).prev = f.idx
	}
	t.head = f.idx
	if t.tail < 0 {
		t.tail = f.idx
	}
}

func (t *table) unlink(f *flow) {
	if f.prev >= 0 {
		t.at(f.prev).next = f.next
	} else if t.head == f.idx {
		t.head = f.next
	}
	if f.next >= 0 {
		t.at(f.next).prev = f.prev
	} else if t.tail == f.idx {
		t.tail = f.prev
	}
	f.prev, f.next = -1, -1
}
