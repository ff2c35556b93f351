package rules

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// The address index finds, for any address, exactly the prefixes that
// contain it: IPv4, IPv6 and IPv4-mapped, every length from 0 to 128,
// lengths on and off the word boundaries.
func TestAddrIndexMatchesContains(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	addr := func() netip.Addr {
		// Few distinct octets, so that prefixes often contain addresses.
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.IntN(2)) * 0x80
		}
		switch rng.IntN(3) {
		case 0:
			return netip.AddrFrom4([4]byte(b[:4]))
		case 1:
			return netip.AddrFrom16(netip.AddrFrom4([4]byte(b[:4])).As16()) // mapped
		}
		return netip.AddrFrom16(b)
	}
	var ai addrIndex
	pfs := []netip.Prefix{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("0.0.0.0/0")}
	for range 300 {
		a := addr()
		bits := rng.IntN(a.BitLen() + 1)
		if rng.IntN(4) == 0 {
			bits = []int{0, 32, 64, 65, 96, 128}[rng.IntN(6)] % (a.BitLen() + 1)
		}
		pfs = append(pfs, netip.PrefixFrom(a, bits))
	}
	for i, pf := range pfs {
		c := &compiled{idx: int32(i), fc: make([]policy.CodeSet, 2)}
		ai.add(pf, c, proto.ID(1))
	}
	// want: the rules whose prefix contains a, with a mapped address
	// and prefix taken as IPv4.
	contains := func(pf netip.Prefix, a netip.Addr) bool {
		if p := pf.Addr(); p.Is4In6() {
			pf = netip.PrefixFrom(p.Unmap(), max(pf.Bits()-96, 0))
		}
		return pf.Masked().Contains(a.Unmap())
	}
	// No address (a made-up operation's) is in no prefix, not even ::/0.
	if out, _ := ai.lookup(netip.Addr{}, make([]*bucket, 0, maxBuckets)); len(out) != 0 {
		t.Fatalf("no address: %d buckets", len(out))
	}
	for range 5000 {
		a := addr()
		var want []int32
		for i, pf := range pfs {
			if contains(pf, a) {
				want = append(want, int32(i))
			}
		}
		out, ok := ai.lookup(a, make([]*bucket, 0, maxBuckets))
		if !ok {
			t.Fatalf("%v: buckets overflow", a)
		}
		var got []int32
		for _, b := range out {
			got = append(got, b.rules...)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%v: rules %v, want %v", a, got, want)
		}
	}
}
