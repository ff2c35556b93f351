//go:build !linux

package benchtool

// watchPeakRSS has nothing to poll here; Measure falls back to ru_maxrss.
func watchPeakRSS(int) (stop func() int64) {
	return func() int64 { return 0 }
}
