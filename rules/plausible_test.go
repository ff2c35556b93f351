package rules

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// TestQuietBlocks: the points of a block polled again with the same flags
// octets are skipped (pointSet.quiet), and that hides nothing. Each case
// runs twice, the second time checking every point one by one
// (skipSettled off): both must raise exactly the alerts it wants.
//   - Analog inputs over two blocks, whose values change at every poll
//     while their flags stay: nothing, until point 66 loses its link.
//   - Binary inputs over two blocks with events for point 65: quiet
//     polls, an event that changes it, quiet polls, an event in a poll
//     whose octets are those of the last (it must still clear the
//     point's mark at that poll), then a change with no event, kept by
//     the next answers: a silent change.
//   - Double-bit inputs, quiet, then point 2 goes offline.
//   - The same binary inputs read packed (g1v1), which says nothing of
//     flags, between reads with flags: the packed read's change of point
//     3 must not be skipped as quiet by the next read with flags.
//   - Binary inputs read from 0, then from 40, mid-block: quietRun skips
//     the quiet points of a pass by their own bits of pointSet.quiet,
//     before and after a point that changed (42), and not point 50,
//     whose event in the same answer must be cleared by its static value
//     there: its change with no event after is a silent change.
func TestQuietBlocks(t *testing.T) {
	plc, hmi := host(20), host(10)
	analogs := func(flags66 uint8, jitter int32) []byte {
		b := pcapgen.AnalogInputs(0, 0x01, make([]int32, 70)...)
		// Values after each flags octet: 4 octets each; object j is at
		// 7 + 5j (the header is 7 octets long, 16-bit range).
		hdr := len(b) - 5*70
		for j := range 70 {
			v := int32(j)*100 + jitter*int32(j%7)
			o := b[hdr+5*j:]
			o[1], o[2], o[3], o[4] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
		b[hdr+5*66] = flags66
		return b
	}
	binaries := func(v65 uint8) []byte {
		f := make([]uint8, 70)
		for j := range f {
			f[j] = 0x01
		}
		f[65] |= v65 << 7
		f[3] = 0x81
		return pcapgen.BinaryInputs(0, f...)
	}
	ev65 := func(v uint8) []byte {
		return pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 65, Flags: 0x01 | v<<7, Time: 1})
	}
	cases := []struct {
		name  string
		want  []string // titles' tails, in order
		write func(w *pcapgen.Writer) error
	}{
		{"analog inputs, values changing, then a link lost", []string{"reports the quality of analog input 66 to 10.10.1.10 changed: online to online, comm lost ×1"},
			func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				var polls [][]byte
				for k := range 6 {
					polls = append(polls, analogs(0x01, int32(k)))
				}
				polls = append(polls, analogs(0x05, 9), analogs(0x05, 10), analogs(0x05, 11))
				return class0(d, 0, polls...)
			}},
		{"binary inputs, an event, then a silent change", []string{"reports binary input 65 changed from 1 to 0 to 10.10.1.10 with no event, though it reports events for it ×1"},
			func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				// An event that leaves the static value where it was (a
				// flicker) comes in a poll whose flags octets are those
				// of the last: it must still count as the event since.
				return allClasses(d, 0,
					objs(ev65(0), binaries(0)), objs(binaries(0)), objs(binaries(0)),
					objs(ev65(1), binaries(1)), objs(binaries(1)), objs(binaries(1)),
					objs(ev65(1), binaries(1)), objs(binaries(0)),
					objs(binaries(0)), objs(binaries(0)), objs(binaries(0)))
			}},
		{"double-bit inputs, then one offline", []string{"reports the quality of double-bit input 2 to 10.10.1.10 changed: online to offline ×1"},
			func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				dbl := func(f2 uint8) []byte {
					b := pcapgen.BinaryInputs(0, 0x81, 0x41, f2, 0x81)
					b[0] = 3 // group 3, variation 2: double-bit inputs with flags
					return b
				}
				return class0(d, 0, dbl(0x41), dbl(0x41), dbl(0x41), dbl(0x40), dbl(0x40))
			}},
		{"binary inputs read packed between reads with flags", []string{
			"reports binary input 3 changed from 1 to 0 to 10.10.1.10 with no event, though it reports events for it ×1",
			"reports binary input 3 changed from 1 to 0 to 10.10.1.10 with no event, though it reports events for it ×2", // the change back, folded
		},
			func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				ev3 := pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: 3, Flags: 0x81, Time: 1})
				withFlags := pcapgen.BinaryInputs(0, 0x01, 0x01, 0x01, 0x81)
				packed := func(bits uint8) []byte { // g1v1, points 0-3
					return []byte{1, 1, 0x00, 0, 3, bits}
				}
				// Point 3 is on, with its event; a packed read says off
				// with no event, twice (a silent change); the read with
				// flags then says on again, twice: changed back with no
				// event, which must be judged, not skipped as quiet (it
				// folds into the alert).
				return allClasses(d, 0, objs(ev3, withFlags), objs(withFlags), objs(withFlags),
					objs(packed(0x00)), objs(packed(0x00)), objs(withFlags), objs(withFlags))
			}},
		{"binary inputs read mid-block, an event, then silent changes", []string{
			"reports binary input 42 changed from 1 to 0 to 10.10.1.10 with no event, though it reports events for it ×1",
			"reports binary input 50 changed from 1 to 0 to 10.10.1.10 with no event, though it reports events for it ×1",
		},
			func(w *pcapgen.Writer) error {
				d, err := dnp3Conn(w, hmi, plc)
				if err != nil {
					return err
				}
				on := func(start int, off ...int) []byte { // points start to 69, on but those in off
					f := make([]uint8, 70-start)
					for j := range f {
						f[j] = 0x81
					}
					for _, o := range off {
						f[o-start] = 0x01
					}
					return pcapgen.BinaryInputs(uint16(start), f...)
				}
				ev := func(i uint16) []byte {
					return pcapgen.BinaryInputEvents(pcapgen.BinaryEvent{Index: i, Flags: 0x81, Time: 1})
				}
				// Points 42 and 50 report events once; every point is
				// quiet after the reads from 0. The answer with 50's
				// event reads from 40 and turns 42 off with no event;
				// the next turns 50 off with no event: had the pass
				// with its event skipped it (after 42's change), its
				// event would still be "since", and hide the change.
				return allClasses(d, 0,
					objs(ev(42), on(0)), objs(on(0)), objs(on(0)),
					objs(ev(50), on(40, 42)), objs(on(40, 42, 50)),
					objs(on(40, 42, 50)), objs(on(40, 42, 50)))
			}},
	}
	for _, c := range cases {
		for _, skip := range []bool{true, false} {
			skipSettled = skip
			rec := func() *recorder {
				defer func() { skipSettled = true }()
				return replayNet(t, c.write)
			}()
			var got []string
			for _, a := range rec.alerts {
				if strings.HasPrefix(a.Rule, "dnp3-") {
					got = append(got, a.Rule+": "+a.Title+" ×"+strconv.FormatUint(a.Count, 10))
				}
			}
			ok := len(got) == len(c.want)
			for i := range min(len(got), len(c.want)) {
				ok = ok && strings.HasSuffix(got[i], c.want[i])
			}
			if !ok {
				t.Errorf("%s, skipping %v: alerts\n%s\nwant titles ending\n%s", c.name, skip, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		}
	}
}

// layoutStrides are the object sizes of the DNP3 layouts of flags
// octets.
var layoutStrides = []int{1, 2, 3, 5, 7, 9, 11}

// flagsRun returns n objects of stride octets at random, and raw, the
// flags octets (the first of each) they hold.
func flagsRun(r *rand.Rand, stride, n int) (raw []uint8, data []byte) {
	raw, data = make([]uint8, n), make([]byte, n*stride)
	for i := range data {
		data[i] = uint8(r.Uint32())
	}
	for i := range raw {
		raw[i] = data[i*stride]
	}
	return raw, data
}

// TestSameRaw: for every stride the layouts have, and every length of a
// block's run, sameRaw says whether the flags octets equal raw, with a
// difference at each place in turn, in a flags octet (seen) and in a
// value octet (not a flags octet: ignored).
func TestSameRaw(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, stride := range layoutStrides {
		for n := 0; n <= pointBlock; n++ {
			raw, data := flagsRun(r, stride, n)
			if !sameRaw(raw, data, stride) {
				t.Fatalf("stride %d, %d points: the same octets differ", stride, n)
			}
			for at := range data {
				data[at] ^= 0x40
				want := at%stride != 0
				if got := sameRaw(raw, data, stride); got != want {
					t.Fatalf("stride %d, %d points, octet %d changed: sameRaw = %v, want %v", stride, n, at, got, want)
				}
				data[at] ^= 0x40
			}
		}
	}
}

// TestQuietRun: for every stride the layouts have and every length of a
// run, quietRun counts the leading points that are quiet and whose flags
// octet is raw, as a point-by-point loop does: with a changed octet (a
// flags octet or a value octet, which does not count) and a point that
// is not quiet, each at every place, and with quiet masks at random.
func TestQuietRun(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	slow := func(quiet uint64, raw []uint8, data []byte, stride int) int {
		n := 0
		for n < len(raw) && quiet>>n&1 != 0 && data[n*stride] == raw[n] {
			n++
		}
		return n
	}
	check := func(quiet uint64, raw []uint8, data []byte, stride int, what string) {
		t.Helper()
		if got, want := quietRun(quiet, raw, data, stride), slow(quiet, raw, data, stride); got != want {
			t.Fatalf("stride %d, %d points, %s: quietRun = %d, want %d", stride, len(raw), what, got, want)
		}
	}
	for _, stride := range layoutStrides {
		for n := 0; n <= pointBlock; n++ {
			raw, data := flagsRun(r, stride, n)
			all := ^uint64(0)
			check(all, raw, data, stride, "all quiet, all the same")
			for at := range data {
				data[at] ^= 0x40
				check(all, raw, data, stride, "octet "+strconv.Itoa(at)+" changed")
				data[at] ^= 0x40
			}
			for j := range n {
				check(all&^(1<<j), raw, data, stride, "point "+strconv.Itoa(j)+" not quiet")
			}
			for range 8 {
				q := r.Uint64() | r.Uint64() | r.Uint64() // mostly quiet
				if n > 0 {
					data[r.IntN(len(data))] ^= uint8(r.IntN(2)) << 3
				}
				for i := range raw {
					if r.IntN(4) == 0 {
						raw[i] = data[i*stride]
					}
				}
				check(q, raw, data, stride, "at random")
			}
		}
	}
}
