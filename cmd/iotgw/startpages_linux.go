package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseCodePages asks the kernel to reclaim the pages of the executable's
// read-only mappings (code and read-only data; the writable data segment is
// left alone) and returns the bytes it covered. Kernels before 5.4 have no
// MADV_PAGEOUT and answer EINVAL.
func releaseCodePages() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("executable path: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var spans [][2]uintptr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		start, end, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(start, 16, 64)
		b, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		spans = append(spans, [2]uintptr{uintptr(a), uintptr(b)})
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("/proc/self/maps: %w", err)
	}
	if len(spans) == 0 {
		return 0, fmt.Errorf("no read-only mapping of %s in /proc/self/maps", exe)
	}
	total := 0
	for _, s := range spans {
		// The raw call: the span is an address range, not Go memory.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, s[0], s[1]-s[0], unix.MADV_PAGEOUT); errno != 0 {
			return total, fmt.Errorf("madvise(MADV_PAGEOUT) on %s: %w", exe, errno)
		}
		total += int(s[1] - s[0])
	}
	return total, nil
}
