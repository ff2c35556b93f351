package hw

import "sync"

// FakeWatchdog is a watchdog device for tests: it counts pings and
// records a disarm.
type FakeWatchdog struct {
	mu       sync.Mutex
	pings    int
	failures int
	disarmed bool
	err      error
}

// Ping counts a ping, or fails with the error set by Fail.
func (f *FakeWatchdog) Ping() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		f.failures++
		return f.err
	}
	f.pings++
	return nil
}

// Close records the disarm.
func (f *FakeWatchdog) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disarmed = true
	return nil
}

// Fail makes the pings fail with err (nil: succeed again).
func (f *FakeWatchdog) Fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Pings is the number of pings so far.
func (f *FakeWatchdog) Pings() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pings
}

// Failures is the number of pings that failed.
func (f *FakeWatchdog) Failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures
}

// Disarmed reports whether the device was disarmed.
func (f *FakeWatchdog) Disarmed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.disarmed
}
