package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tapwatch/tapwatch/dpi/link"
)

// magic numbers of the two file formats, as the first four bytes on disk.
var (
	pcapMagics = [][]byte{
		{0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0xc3, 0xd4}, // microseconds
		{0x4d, 0x3c, 0xb2, 0xa1}, {0xa1, 0xb2, 0x3c, 0x4d}, // nanoseconds
	}
	pcapngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}
)

// File reads one pcap or pcapng file.
type File struct {
	path  string
	index int
	f     io.Closer
	pf    *prefetch // reads src ahead (OpenFile)
	src   filler    // a pcapFile or a pcapngFile
	bs    batches   // reads src on the caller's goroutine (NewFile)
	link  link.Type
}

// filler is a file reader that reads a stretch of the file at a time into
// a batch (pcapFile.fill, pcapngFile.fill).
type filler interface {
	fill(b *batch, path string)
}

var _ BatchSource = (*File)(nil)

// Stdin is the path that names standard input, as for most tools: a
// capture piped in (tcpdump -w - | tapwatch replay -). Its errors name it
// "stdin".
const Stdin = "-"

// OpenFile opens a pcap or pcapng file, telling them apart by content. The
// file is read ahead, a stretch at a time, on a goroutine of its own; Close
// stops it. The path Stdin reads standard input.
func OpenFile(path string) (*File, error) { return openFile(path, 0) }

// openFile is OpenFile for the file numbered index in a Files.
func openFile(path string, index int) (*File, error) {
	var f *os.File
	name := path
	if path == Stdin {
		f, name = os.Stdin, "stdin"
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	r, err := NewFile(f, name)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f, r.index = f, index
	r.startPrefetch()
	return r, nil
}

func headerError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("file is empty or shorter than a capture header")
	}
	return err
}

// NewFile reads a capture from r; name is used in errors.
func NewFile(r io.Reader, name string) (*File, error) {
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, &FileError{Path: name, Err: headerError(err)}
	}
	return newFile(io.MultiReader(bytes.NewReader(head), r), head, name)
}

// newFile reads a capture from r, whose first four bytes are head.
func newFile(r io.Reader, head []byte, name string) (*File, error) {
	var err error
	c := &File{path: name}
	switch {
	case bytes.Equal(head, pcapngMagic):
		var p *pcapngFile
		if p, err = newPcapngFile(r); err == nil {
			c.link, c.src = p.link, p
		}
	case matchAny(head, pcapMagics):
		var p *pcapFile
		if p, err = newPcapFile(r); err == nil {
			c.link, c.src = p.link, p
			if !SupportedLinkType(c.link) {
				// pcapng interfaces are checked packet by packet by the
				// decoder, which counts what it cannot decode.
				err = fmt.Errorf("%w %d (%v)", ErrUnsupportedLinkType, uint32(c.link), c.link)
			}
		}
	case head[0] == 0x1f && head[1] == 0x8b:
		err = fmt.Errorf("not a pcap or pcapng file but one compressed with gzip (magic % x): decompress it first (gunzip -c %s > capture.pcap)", head, name)
	default:
		err = fmt.Errorf("not a pcap or pcapng file (magic % x)", head)
	}
	if err != nil {
		return nil, &FileError{Path: name, Err: err}
	}
	return c, nil
}

// IsCaptureFile reports whether the regular file at path starts as a
// pcap or pcapng file does. It is false for a file that cannot be read,
// and for anything but a regular file (a FIFO, a pipe, a terminal), which
// it does not open: reading one would wait for a writer or take bytes
// meant for someone else.
func IsCaptureFile(path string) bool {
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	return bytes.Equal(head, pcapngMagic) || matchAny(head, pcapMagics)
}

func matchAny(b []byte, set [][]byte) bool {
	for _, m := range set {
		if bytes.Equal(b, m) {
			return true
		}
	}
	return false
}

// LinkType is the link type of the file (of its first interface for pcapng).
func (c *File) LinkType() link.Type { return c.link }

// ReadPacket returns the next record. After a damaged record it returns a
// *FileError, and io.EOF on every later call.
func (c *File) ReadPacket(info *Info) ([]byte, error) {
	var (
		data []byte
		err  error
	)
	if c.pf != nil {
		data, err = c.pf.next(info)
	} else {
		data, err = c.bs.next(info, c.src, c.path)
	}
	info.Source = c.index
	return data, err
}

// ReadBatch implements BatchSource: the records read ahead and not yet
// handed out.
func (c *File) ReadBatch(out *Batch) error {
	var (
		b   *batch
		i   *int
		err error
	)
	if c.pf != nil {
		b, err = c.pf.current()
		i = &c.pf.i
	} else {
		b, err = c.bs.current(c.src, c.path)
		i = &c.bs.i
	}
	if err != nil {
		*out = Batch{}
		return err
	}
	out.data, out.recs = b.data, b.recs[*i:]
	*i = len(b.recs)
	if c.index != 0 { // the readers number every record 0
		for k := range out.recs {
			out.recs[k].info.Source = c.index
		}
	}
	return nil
}

// Close closes the underlying file, if OpenFile opened it.
func (c *File) Close() error {
	if c.pf != nil {
		c.pf.close()
	}
	if c.f == nil {
		return nil
	}
	return c.f.Close()
}

// Files reads several capture files one after the other, in the order given.
// An error in one file is returned once; the next call goes on with the next
// file, so one damaged file does not hide the others.
type Files struct {
	paths []string
	next  int
	cur   *File
}

var _ BatchSource = (*Files)(nil)

// OpenFiles returns a source over paths. Files are opened lazily, one at a time.
func OpenFiles(paths ...string) *Files { return &Files{paths: paths} }

// ReadPacket returns the next packet of the current file, moving on to the
// next file at the end of each. It returns io.EOF after the last file.
func (fs *Files) ReadPacket(ci *Info) ([]byte, error) {
	var data []byte
	err := fs.read(func(f *File) (err error) {
		data, err = f.ReadPacket(ci)
		return err
	})
	return data, err
}

// ReadBatch implements BatchSource, moving from file to file as
// ReadPacket does.
func (fs *Files) ReadBatch(b *Batch) error {
	err := fs.read(func(f *File) error { return f.ReadBatch(b) })
	if err != nil {
		*b = Batch{}
	}
	return err
}

// read calls get on the current file, opening the next one first when
// there is none, until get returns something other than io.EOF.
func (fs *Files) read(get func(*File) error) error {
	for {
		if fs.cur == nil {
			if fs.next >= len(fs.paths) {
				return io.EOF
			}
			i := fs.next
			fs.next++
			f, err := openFile(fs.paths[i], i)
			if err != nil {
				var fe *FileError
				if !errors.As(err, &fe) {
					err = &FileError{Path: fs.paths[i], Err: err}
				}
				return err
			}
			fs.cur = f
		}
		err := get(fs.cur)
		if err == nil {
			return nil
		}
		fs.cur.Close()
		fs.cur = nil
		if err != io.EOF {
			return err
		}
	}
}

// Close closes the file being read.
func (fs *Files) Close() error {
	if fs.cur == nil {
		return nil
	}
	err := fs.cur.Close()
	fs.cur = nil
	return err
}
