package capture

import (
	"errors"
	"time"
)

// LiveConfig is a live capture on one interface (Linux only).
type LiveConfig struct {
	Interface string
	// Ports are the ICS ports whose packets the kernel filter keeps whole
	// (see Filter); other packets are cut to their headers.
	Ports []uint16
	// RingBytes is the kernel ring's size (default 8 MiB: a Pi Zero has
	// 512 MiB in all). It is rounded down to whole blocks of
	// LiveBlockBytes, at least 2.
	RingBytes int
	// BlockTimeout is how long the kernel waits to fill a block before
	// handing it over anyway (default 100ms): the most a packet waits on
	// a quiet link. See RingBlocks for what it does to the ring.
	BlockTimeout time.Duration
	// NoPromiscuous leaves the interface out of promiscuous mode. A tap
	// or mirror port delivers frames addressed to other hosts, which
	// promiscuous mode is needed to see, so it is on by default.
	NoPromiscuous bool
	// ReturnIdle makes ReadPacket return ErrIdle when no packet came
	// within the poll timeout (200ms), so that the reading goroutine can
	// do other work on a quiet link; without it ReadPacket waits.
	ReturnIdle bool

	blockBytes int // LiveBlockBytes; tests measure other sizings
}

// Live capture defaults.
const (
	DefaultRingBytes    = 8 << 20
	DefaultBlockTimeout = 100 * time.Millisecond
	// LiveBlockBytes is the size of a ring's blocks: small, so that a
	// ring has many (see RingBlocks); a frame must fit in one, so the
	// kernel cuts frames to 65,406 bytes, which only the largest GRO
	// aggregates exceed.
	LiveBlockBytes  = 64 << 10
	livePollTimeout = 200 * time.Millisecond
)

// RingBlocks is the number of blocks in a ring of ringBytes.
//
// The kernel fills one block at a time and hands it to the reader when it
// is full or when blockTimeout has passed since it was opened, whatever
// it holds; a packet that finds no free block is dropped. So while the
// reader stalls the ring holds about blocks × blockTimeout of a quiet
// link's traffic (a link too quiet to fill a block within blockTimeout:
// with 64 KiB blocks, a few thousand small packets a second at 100ms),
// and ringBytes of a busier link's.
func RingBlocks(ringBytes int) int { return max(ringBytes/LiveBlockBytes, 2) }

// LiveStats are the kernel's counters of a live capture since it opened.
type LiveStats struct {
	Packets uint64 // passed the filter, the dropped ones too
	Drops   uint64 // dropped because the ring was full
	Freezes uint64 // times the ring filled
}

// ErrIdle is what a live source's ReadPacket returns, when asked to, after
// a while without a packet: the link is quiet, the reader is alive.
var ErrIdle = errors.New("capture: no packet yet")

// ErrLiveUnsupported is what OpenLive returns where there is no AF_PACKET.
var ErrLiveUnsupported = errors.New("live capture is Linux-only (AF_PACKET); on this system, capture with another tool and use tapwatch replay")
