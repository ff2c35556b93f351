package uplink

import (
	"errors"
	"io"
	"os"
	"sort"
	"syscall"
)

// fileSystem is everything the spool does to the disk, so that tests can
// inject faults (a full disk, an I/O error, a crash between two calls)
// at any of them.
type fileSystem interface {
	MkdirAll(dir string) error
	// OpenFile opens or creates (flag os.O_CREATE, mode 0600) a file.
	OpenFile(name string, flag int) (spoolFile, error)
	Rename(from, to string) error
	Remove(name string) error
	// ReadDir lists the names in dir.
	ReadDir(dir string) ([]string, error)
	// SyncDir makes the creations, renames and removals in dir durable.
	SyncDir(dir string) error
	// Space is the free space for an unprivileged writer and the size of
	// the filesystem holding dir; avail < 0 when it cannot be known.
	Space(dir string) (avail, total int64, err error)
}

// spoolFile is an open file of the spool.
type spoolFile interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Close() error
	Size() (int64, error)
	// Allocate makes the file size bytes long with its blocks reserved,
	// so that a write below size needs no new space from the filesystem.
	Allocate(size int64) error
	// Lock takes an exclusive lock on the file, without waiting; it
	// fails with errLocked when another process holds it.
	Lock() error
}

var errLocked = errors.New("locked by another process")

// isNoSpace reports whether err says the filesystem (or the user's
// quota) is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// osFS is the real disk.
type osFS struct{}

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }

func (osFS) OpenFile(name string, flag int) (spoolFile, error) {
	f, err := os.OpenFile(name, flag|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Rename(from, to string) error { return os.Rename(from, to) }
func (osFS) Remove(name string) error     { return os.Remove(name) }

func (osFS) ReadDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (osFS) Space(dir string) (avail, total int64, err error) { return diskSpace(dir) }

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f osFile) Allocate(size int64) error { return allocate(f.File, size) }
func (f osFile) Lock() error               { return lockFile(f.File) }

// allocateByWriting reserves blocks where the filesystem cannot preallocate
// (no fallocate): by writing zeros up to size.
func allocateByWriting(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 64<<10)
	for off := st.Size(); off < size; {
		n := int64(len(zeros))
		if size-off < n {
			n = size - off
		}
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}
