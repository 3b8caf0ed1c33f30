//go:build unix

package persistence

import (
	"os"
	"path/filepath"
	"syscall"
)

// dirUsage sums allocated blocks rather than file sizes because badger's .vlog and .mem files
// are sparse: their apparent size is twice the configured size from the first write.
func dirUsage(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range entries {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += int64(st.Blocks) * 512
		} else {
			total += fi.Size()
		}
	}
	return total
}
