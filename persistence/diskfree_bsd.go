//go:build darwin || freebsd

package persistence

import (
	"fmt"
	"syscall"
)

// freeSpace is what an unprivileged writer may still use on dir's filesystem: blocks reserved
// for root are left alone even when the gateway runs as root, since they are the system's
// margin.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return blockBytes(st.Bavail, st.Bsize), nil
}
