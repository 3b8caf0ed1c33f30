package persistence

import (
	"fmt"
	"syscall"
)

// freeSpace is what an unprivileged writer may still use on dir's filesystem: blocks reserved
// for root are left alone even when the gateway runs as root, since they are the system's
// margin. Linux counts blocks in fragment size units (Frsize), which old kernels leave at 0.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Frsize > 0 {
		return blockBytes(st.Bavail, st.Frsize), nil
	}
	return blockBytes(st.Bavail, st.Bsize), nil
}
