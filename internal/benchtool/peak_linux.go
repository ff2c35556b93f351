package benchtool

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// peakPollInterval is how often the child's high-water mark is read; growth
// in the last interval before it exits is missed.
const peakPollInterval = 2 * time.Millisecond

// watchPeakRSS polls the high-water RSS (VmHWM) of a running process and
// returns a function that stops polling and gives the last value in bytes.
//
// ru_maxrss cannot be used on Linux: exec records the RSS of the mm the
// child had before it, and Go starts children with vfork, sharing the
// parent's mm, so every child would report at least the parent's RSS.
func watchPeakRSS(pid int) (stop func() int64) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	done := make(chan struct{})
	var (
		wg   sync.WaitGroup
		peak int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(peakPollInterval)
		defer t.Stop()
		for {
			if v := readHWM(path); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// readHWM returns VmHWM from a /proc status file in bytes, or 0.
func readHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	i := bytes.Index(b, []byte("VmHWM:"))
	if i < 0 {
		return 0 // a zombie, or a kernel thread
	}
	line := b[i+len("VmHWM:"):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))), 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}
