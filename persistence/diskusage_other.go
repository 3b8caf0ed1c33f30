//go:build !unix

package persistence

import (
	"os"
	"path/filepath"
)

// dirUsage falls back to apparent sizes where block counts are not available; that overstates
// badger's sparse files but never understates.
func dirUsage(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range entries {
		if fi, err := os.Lstat(filepath.Join(dir, e.Name())); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
	}
	return total
}
