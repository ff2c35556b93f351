// Command mkinitramfs writes a gzip-compressed initramfs (the "newc" cpio
// format the Linux kernel unpacks at boot) from a list of entries, so that
// scripts/hil-qemu.sh needs no cpio tool on the build machine.
//
//	mkinitramfs -o OUT.cpio.gz ENTRY...
//
// Each ENTRY is one of:
//
//	dir:/PATH               an empty directory (mode 0755)
//	file:/PATH=HOSTFILE     a regular file, copied with HOSTFILE's mode bits
//	chr:/PATH=MAJOR:MINOR   a character device node (mode 0600)
//
// Parent directories are not created implicitly: list them first. Every
// entry is owned by root and dated 1970-01-01, so the same inputs give
// the same archive byte for byte.
package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChr  = 0o020000
)

type entry struct {
	name         string // without the leading slash
	mode         uint32
	data         []byte
	major, minor uint32 // of a device node
}

func parse(arg string) (entry, error) {
	kind, rest, ok := strings.Cut(arg, ":")
	if !ok {
		return entry{}, fmt.Errorf("%q: want KIND:/PATH[=...]", arg)
	}
	path, value, _ := strings.Cut(rest, "=")
	if !strings.HasPrefix(path, "/") || path == "/" {
		return entry{}, fmt.Errorf("%q: the path must be absolute and not /", arg)
	}
	e := entry{name: strings.TrimPrefix(path, "/")}
	switch kind {
	case "dir":
		e.mode = modeDir | 0o755
	case "file":
		if value == "" {
			return entry{}, fmt.Errorf("%q: want file:/PATH=HOSTFILE", arg)
		}
		st, err := os.Stat(value)
		if err != nil {
			return entry{}, err
		}
		if !st.Mode().IsRegular() {
			return entry{}, fmt.Errorf("%s: not a regular file", value)
		}
		if e.data, err = os.ReadFile(value); err != nil {
			return entry{}, err
		}
		e.mode = modeFile | uint32(st.Mode().Perm())
	case "chr":
		maj, min, ok := strings.Cut(value, ":")
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return entry{}, fmt.Errorf("%q: want chr:/PATH=MAJOR:MINOR", arg)
		}
		e.mode, e.major, e.minor = modeChr|0o600, uint32(a), uint32(b)
	default:
		return entry{}, fmt.Errorf("%q: unknown kind %q", arg, kind)
	}
	return e, nil
}

// writer emits newc records, padding names and data to 4 bytes.
type writer struct {
	w   io.Writer
	n   int64
	ino uint32
	err error
}

func (w *writer) write(b []byte) {
	if w.err != nil {
		return
	}
	var n int
	n, w.err = w.w.Write(b)
	w.n += int64(n)
}

func (w *writer) pad() {
	if r := w.n % 4; r != 0 {
		w.write(make([]byte, 4-r))
	}
}

func (w *writer) record(e entry) {
	w.ino++
	nlink := 1
	if e.mode&modeDir == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		w.ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.major, e.minor, len(e.name)+1, 0)
	w.write([]byte(hdr))
	w.write(append([]byte(e.name), 0))
	w.pad()
	w.write(e.data)
	w.pad()
}

func run(out string, args []string) error {
	if out == "" || len(args) == 0 {
		return errors.New("usage: mkinitramfs -o OUT.cpio.gz ENTRY (one or more)")
	}
	var entries []entry
	for _, a := range args {
		e, err := parse(a)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriter(f)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	w := &writer{w: zw}
	for _, e := range entries {
		w.record(e)
	}
	w.record(entry{name: "TRAILER!!!"})
	for _, err := range []error{w.err, zw.Close(), bw.Flush(), f.Close()} {
		if err != nil {
			return err
		}
	}
	return os.Rename(tmp, out)
}

func main() {
	out := flag.String("o", "", "the archive to write (gzip-compressed newc cpio)")
	flag.Parse()
	if err := run(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}
