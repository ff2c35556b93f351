//go:build !linux

package uplink

import "os"

func allocate(f *os.File, size int64) error { return allocateByWriting(f, size) }

// lockFile is not implemented off Linux: a second sensor on the same state
// directory is not detected there.
func lockFile(*os.File) error { return nil }

// diskSpace is not known off Linux: the spool is bounded by max_bytes
// only.
func diskSpace(string) (avail, total int64, err error) { return -1, -1, nil }
