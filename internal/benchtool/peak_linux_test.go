package benchtool

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadHWM(t *testing.T) {
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	os.WriteFile(status, []byte("Name:\tfloor\nVmPeak:\t  1238636 kB\nVmHWM:\t    7368 kB\nVmRSS:\t    7368 kB\n"), 0o644)
	if got := readHWM(status); got != 7368<<10 {
		t.Errorf("readHWM = %d, want %d", got, 7368<<10)
	}
	zombie := filepath.Join(dir, "zombie")
	os.WriteFile(zombie, []byte("Name:\tfloor\nState:\tZ (zombie)\n"), 0o644)
	if got := readHWM(zombie); got != 0 {
		t.Errorf("readHWM(zombie) = %d", got)
	}
	if got := readHWM("/proc/self/status"); got <= 0 {
		t.Errorf("readHWM(/proc/self/status) = %d", got)
	}
}
