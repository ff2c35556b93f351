package capture

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
)

// The kernel filter of a live capture. It is built here from the
// configured ports, never from a string a user wrote: every packet is
// accepted, but only packets to or from an ICS port are kept whole; of
// everything else the kernel copies only the first ShortSnap bytes
// (enough for the Ethernet, IP and TCP or UDP headers), so that the
// conversation and public-address tracking stays cheap.
//
// It understands Ethernet frames, untagged or with one 802.1Q tag still
// in the frame (most drivers take the tag out into the packet's metadata,
// and then the frame is untagged), carrying IPv4 (first fragments only:
// later ones have no ports) or IPv6 (TCP or UDP right after the fixed
// header). Anything else is cut short.

// Snap lengths of the filter.
const (
	FullSnap  = 262144 // ICS packets: all of them
	ShortSnap = 128    // everything else: the headers
)

// MaxFilterPorts bounds the ports of one filter, so that every jump of
// the program stays within the 255 instructions a conditional jump can
// skip.
const MaxFilterPorts = 24

// Filter returns the classic BPF program that keeps packets to or from
// ports whole (up to full bytes) and cuts every other packet to short
// bytes, assembled for the kernel.
func Filter(ports []uint16, full, short uint32) ([]bpf.RawInstruction, error) {
	prog, err := FilterProgram(ports, full, short)
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(prog)
}

// FilterProgram is Filter's program before assembly (bpf.NewVM runs it).
func FilterProgram(ports []uint16, full, short uint32) ([]bpf.Instruction, error) {
	ports = slices.Compact(slices.Sorted(slices.Values(ports)))
	if len(ports) == 0 {
		return nil, errors.New("capture filter: no ports")
	}
	if len(ports) > MaxFilterPorts {
		return nil, fmt.Errorf("capture filter: %d ports, at most %d", len(ports), MaxFilterPorts)
	}
	if short == 0 || full < short {
		return nil, fmt.Errorf("capture filter: snap lengths %d and %d", full, short)
	}
	var a assembler
	a.op(bpf.LoadAbsolute{Off: 12, Size: 2}) // EtherType
	a.jeq(0x8100, "vlan", "")
	a.ipBlock(14, ports)
	a.label("vlan")
	a.op(bpf.LoadAbsolute{Off: 16, Size: 2}) // the tagged frame's EtherType
	a.ipBlock(18, ports)
	a.label("full")
	a.op(bpf.RetConstant{Val: full})
	a.label("short")
	a.op(bpf.RetConstant{Val: short})
	return a.assemble()
}

// ipBlock decides on a frame whose EtherType is in A and whose IP header
// starts at base.
func (a *assembler) ipBlock(base uint32, ports []uint16) {
	v4, v6 := a.fresh("v4"), a.fresh("v6")
	a.jeq(0x0800, v4, "")
	a.jeq(0x86DD, v6, "short")

	a.label(v4)
	ok4 := a.fresh("ok4")
	a.op(bpf.LoadAbsolute{Off: base + 9, Size: 1}) // protocol
	a.jeq(6, ok4, "")
	a.jeq(17, ok4, "short")
	a.label(ok4)
	a.op(bpf.LoadAbsolute{Off: base + 6, Size: 2}) // flags, fragment offset
	a.jset(0x1FFF, "short", "")
	a.op(bpf.LoadMemShift{Off: base}) // X = IP header length
	a.op(bpf.LoadIndirect{Off: base, Size: 2})
	a.ports(ports)
	a.op(bpf.LoadIndirect{Off: base + 2, Size: 2})
	a.ports(ports)
	a.ja("short")

	a.label(v6)
	ok6 := a.fresh("ok6")
	a.op(bpf.LoadAbsolute{Off: base + 6, Size: 1}) // next header
	a.jeq(6, ok6, "")
	a.jeq(17, ok6, "short")
	a.label(ok6)
	a.op(bpf.LoadAbsolute{Off: base + 40, Size: 2})
	a.ports(ports)
	a.op(bpf.LoadAbsolute{Off: base + 42, Size: 2})
	a.ports(ports)
	a.ja("short")
}

// ports jumps to full when A is one of ports, and falls through if not.
func (a *assembler) ports(ports []uint16) {
	for _, p := range ports {
		a.jeq(uint32(p), "full", "")
	}
}

// assembler lays out instructions with forward jumps to labels.
type assembler struct {
	ins    []bpf.Instruction
	jumps  []jumpFix
	labels map[string]int
	n      int
}

type jumpFix struct {
	at          int
	true, false string // "" falls through
}

func (a *assembler) op(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *assembler) fresh(name string) string {
	a.n++
	return fmt.Sprintf("%s.%d", name, a.n)
}

func (a *assembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

func (a *assembler) jeq(v uint32, t, f string) {
	a.jumps = append(a.jumps, jumpFix{len(a.ins), t, f})
	a.op(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v})
}

func (a *assembler) jset(v uint32, t, f string) {
	a.jumps = append(a.jumps, jumpFix{len(a.ins), t, f})
	a.op(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: v})
}

func (a *assembler) ja(to string) {
	a.jumps = append(a.jumps, jumpFix{at: len(a.ins), true: to})
	a.op(bpf.Jump{})
}

func (a *assembler) assemble() ([]bpf.Instruction, error) {
	skip := func(at int, label string) (uint32, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := a.labels[label]
		if !ok || to <= at {
			return 0, fmt.Errorf("capture filter: bad jump to %q", label)
		}
		return uint32(to - at - 1), nil
	}
	for _, j := range a.jumps {
		t, err := skip(j.at, j.true)
		if err != nil {
			return nil, err
		}
		f, err := skip(j.at, j.false)
		if err != nil {
			return nil, err
		}
		switch i := a.ins[j.at].(type) {
		case bpf.JumpIf:
			if t > 255 || f > 255 {
				return nil, errors.New("capture filter: program too long")
			}
			i.SkipTrue, i.SkipFalse = uint8(t), uint8(f)
			a.ins[j.at] = i
		case bpf.Jump:
			i.Skip = t
			a.ins[j.at] = i
		}
	}
	return a.ins, nil
}
