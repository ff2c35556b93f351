//go:build !unix

package benchtool

import "os"

// maxRSS is unknown where getrusage does not exist.
func maxRSS(*os.ProcessState) int64 { return 0 }
