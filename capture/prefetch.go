package capture

import "io"

// prefetch reads a capture file on a goroutine of its own: it reads the
// file a stretch at a time into a batch and finds the records in it
// (pcapFile.fill, pcapngFile.fill), so that the disk (an SD card, on a
// Pi) and the system calls happen while the pipeline decodes. The pipeline then takes packets from a batch without
// copies. Batches are allocated once and recycled.
type prefetch struct {
	full chan *batch
	free chan *batch
	stop chan struct{}
	done chan struct{}
	cur  *batch
	i    int
}

type batch struct {
	data []byte
	recs []record
	err  error // what ended the file after these records (io.EOF or a *FileError)
}

type record struct {
	off, n int
	info   Info
}

// bytes is the record's packet in data, its batch's buffer.
func (r *record) bytes(data []byte) []byte { return data[r.off : r.off+r.n : r.off+r.n] }

// take hands out record *i, copying what is known of it to info, and
// moves *i on.
func (b *batch) take(i *int, info *Info) []byte {
	r := &b.recs[*i]
	*i++
	*info = r.info
	return r.bytes(b.data)
}

// A batch holds up to prefetchRecords records in prefetchBytes: 128
// bytes a record, a little less than an ICS network's typical frame and
// its record header, so that the bytes, not the records, fill a batch,
// and a classic pcap file's block is read straight into it with no more
// than one record's worth carried over to the next (pcapFile.fill).
const (
	prefetchBatches = 3
	prefetchBytes   = 128 << 10
	prefetchRecords = 1024
)

func (c *File) startPrefetch() {
	pf := &prefetch{
		full: make(chan *batch, prefetchBatches),
		free: make(chan *batch, prefetchBatches),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range prefetchBatches {
		b := newBatch()
		pf.free <- &b
	}
	c.pf = pf
	go pf.run(c)
}

func newBatch() batch {
	return batch{data: make([]byte, 0, prefetchBytes), recs: make([]record, 0, prefetchRecords)}
}

// run fills batches until the file ends or stop is closed.
func (pf *prefetch) run(c *File) {
	defer close(pf.done)
	for {
		var b *batch
		select {
		case b = <-pf.free:
		case <-pf.stop:
			return
		}
		c.src.fill(b, c.path) // returns records, or the end
		ended := b.err != nil // b belongs to the reader once sent
		select {
		case pf.full <- b:
		case <-pf.stop:
			return
		}
		if ended {
			return
		}
	}
}

// next returns the next packet; the bytes are valid until the next call.
func (pf *prefetch) next(info *Info) ([]byte, error) {
	b, err := pf.current()
	if err != nil {
		return nil, err
	}
	return b.take(&pf.i, info), nil
}

// current returns the batch that holds the next record, pf.i its index,
// or the error that ends the file.
func (pf *prefetch) current() (*batch, error) {
	for {
		if b := pf.cur; b != nil {
			if pf.i < len(b.recs) {
				return b, nil
			}
			if err := b.err; err != nil {
				b.err = io.EOF // a damaged file is reported once, then ends
				return nil, err
			}
			pf.free <- b // never blocks: there are only so many batches
			pf.cur = nil
		}
		pf.cur, pf.i = <-pf.full, 0
	}
}

// close stops the goroutine and waits for it.
func (pf *prefetch) close() {
	select {
	case <-pf.stop:
	default:
		close(pf.stop)
	}
	<-pf.done
}
