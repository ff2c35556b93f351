package uplink

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// memFS is a filesystem in memory that models what a power cut keeps:
// a file's contents as of its last Sync, and a folder's entries as of its
// last SyncDir. It has a size, so that it fills up, and a hook that can
// fail any call, or tear a write, to inject faults.
type memFS struct {
	mu       sync.Mutex
	capacity int64               // bytes it holds (allocated or written); < 0: no limit
	names    map[string]*memNode // the entries now
	durable  map[string]*memNode // the entries as of the last SyncDir of their folder
	fail     func(op, name string) error
	calls    int
}

type memNode struct {
	data   []byte // contents now
	synced []byte // contents as of the last Sync
	alloc  int64  // space reserved (at least len(data) counts)
	locked bool
}

// errTorn from the hook makes a write write half of its bytes, then fail.
var errTorn = errors.New("torn write")

func newMemFS(capacity int64) *memFS {
	return &memFS{capacity: capacity, names: map[string]*memNode{}, durable: map[string]*memNode{}}
}

func (m *memFS) hook(op, name string) error {
	m.calls++
	if m.fail != nil {
		return m.fail(op, name)
	}
	return nil
}

func (m *memFS) used() int64 {
	var n int64
	seen := map[*memNode]bool{}
	for _, nd := range m.names {
		if !seen[nd] {
			seen[nd] = true
			n += max(nd.alloc, int64(len(nd.data)))
		}
	}
	return n
}

// grow checks that nd may take size bytes.
func (m *memFS) grow(nd *memNode, size int64) error {
	have := max(nd.alloc, int64(len(nd.data)))
	if size <= have || m.capacity < 0 {
		return nil
	}
	if m.used()+size-have > m.capacity {
		return syscall.ENOSPC
	}
	return nil
}

// Crash is a power cut: what was not synced is gone.
func (m *memFS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names = map[string]*memNode{}
	for name, nd := range m.durable {
		nd.data = append([]byte(nil), nd.synced...)
		nd.locked = false
		m.names[name] = nd
	}
}

// SetCapacity changes the size of the filesystem (space freed or taken
// by other files).
func (m *memFS) SetCapacity(c int64) {
	m.mu.Lock()
	m.capacity = c
	m.mu.Unlock()
}

func (m *memFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hook("mkdir", dir)
}

func (m *memFS) OpenFile(name string, flag int) (spoolFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.hook("open", name); err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	nd, ok := m.names[name]
	switch {
	case ok && flag&os.O_EXCL != 0:
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	case !ok:
		nd = &memNode{}
		m.names[name] = nd
	}
	return &memFile{fs: m, nd: nd, name: name}, nil
}

func (m *memFS) Rename(from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.hook("rename", from); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	nd, ok := m.names[from]
	if !ok {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrNotExist}
	}
	delete(m.names, from)
	m.names[to] = nd
	return nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.hook("remove", name); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	if _, ok := m.names[name]; !ok {
		return &os.PathError{Op: "remove", Path: name, Err: os.ErrNotExist}
	}
	delete(m.names, name)
	return nil
}

func (m *memFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.hook("readdir", dir); err != nil {
		return nil, &os.PathError{Op: "readdir", Path: dir, Err: err}
	}
	var out []string
	for name := range m.names {
		if path.Dir(name) == dir {
			out = append(out, path.Base(name))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *memFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.hook("syncdir", dir); err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	for name := range m.durable {
		if path.Dir(name) == dir {
			delete(m.durable, name)
		}
	}
	for name, nd := range m.names {
		if path.Dir(name) == dir {
			m.durable[name] = nd
		}
	}
	return nil
}

func (m *memFS) Space(dir string) (avail, total int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.capacity < 0 {
		return -1, -1, nil
	}
	return max(m.capacity-m.used(), 0), m.capacity, nil
}

// files lists the entries now, for test failures.
func (m *memFS) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for name, nd := range m.names {
		fmt.Fprintf(&b, "%s: %d bytes (%d allocated, %d synced)\n", name, len(nd.data), nd.alloc, len(nd.synced))
	}
	return b.String()
}

type memFile struct {
	fs   *memFS
	nd   *memNode
	name string
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.hook("read", f.name); err != nil {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
	}
	if off >= int64(len(f.nd.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.nd.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	err := f.fs.hook("write", f.name)
	if err != nil && err != errTorn {
		return 0, &os.PathError{Op: "write", Path: f.name, Err: err}
	}
	if err == errTorn {
		p = p[:len(p)/2]
	}
	end := off + int64(len(p))
	if gerr := f.fs.grow(f.nd, end); gerr != nil {
		return 0, &os.PathError{Op: "write", Path: f.name, Err: gerr}
	}
	if end > int64(len(f.nd.data)) {
		f.nd.data = append(f.nd.data, make([]byte, end-int64(len(f.nd.data)))...)
	}
	copy(f.nd.data[off:], p)
	if err == errTorn {
		return len(p), &os.PathError{Op: "write", Path: f.name, Err: syscall.EIO}
	}
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.hook("sync", f.name); err != nil {
		return &os.PathError{Op: "sync", Path: f.name, Err: err}
	}
	f.nd.synced = append(f.nd.synced[:0], f.nd.data...)
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.nd.locked = false
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.nd.data)), nil
}

func (f *memFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.hook("allocate", f.name); err != nil {
		return &os.PathError{Op: "fallocate", Path: f.name, Err: err}
	}
	if err := f.fs.grow(f.nd, size); err != nil {
		return &os.PathError{Op: "fallocate", Path: f.name, Err: err}
	}
	f.nd.alloc = max(f.nd.alloc, size)
	if size > int64(len(f.nd.data)) {
		f.nd.data = append(f.nd.data, make([]byte, size-int64(len(f.nd.data)))...)
	}
	return nil
}

func (f *memFile) Lock() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.nd.locked {
		return errLocked
	}
	f.nd.locked = true
	return nil
}
