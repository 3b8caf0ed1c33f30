package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// With sync writes every journal commit ends in a disk cache flush, and on
// an edge box's SD card or eMMC the flushes and the bytes written are wear
// as well as time. The kernel counts both per block device; the bench reads
// them for the device that holds the gateway's data folder. They are the
// machine's figures (anything else writing to that disk counts too), which
// on the bench's quiet machine is the gateway.

// diskStat holds the counters of /sys/block/<dev>/stat the bench prints.
type diskStat struct {
	writes, sectors  uint64 // writes completed, 512-byte sectors written
	flushes, flushMs uint64 // flush requests completed, ms spent on them (kernel 5.5+)
	hasFlush         bool
}

// parseDiskStat reads one stat line: field 5 writes, 7 sectors written,
// 16 and 17 flushes and their milliseconds (missing on older kernels).
func parseDiskStat(line string) (diskStat, error) {
	f := strings.Fields(line)
	if len(f) < 11 {
		return diskStat{}, fmt.Errorf("disk stat: %d fields, want at least 11", len(f))
	}
	n := func(i int) (uint64, error) { return strconv.ParseUint(f[i], 10, 64) }
	var s diskStat
	var err error
	if s.writes, err = n(4); err != nil {
		return diskStat{}, err
	}
	if s.sectors, err = n(6); err != nil {
		return diskStat{}, err
	}
	if len(f) >= 17 {
		if s.flushes, err = n(15); err != nil {
			return diskStat{}, err
		}
		if s.flushMs, err = n(16); err != nil {
			return diskStat{}, err
		}
		s.hasFlush = true
	}
	return s, nil
}

// diskOf finds the block device holding path: its name and stat file, or
// an error where there is none (tmpfs, overlay, another OS).
func diskOf(path string) (name, statFile string, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", "", err
	}
	major, minor := unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	statFile = filepath.Join(sys, "stat")
	if _, err := os.Stat(statFile); err != nil {
		return "", "", fmt.Errorf("%s is on %d:%d, no block device", path, major, minor)
	}
	target, err := filepath.EvalSymlinks(sys)
	if err != nil {
		return "", "", err
	}
	return filepath.Base(target), statFile, nil
}

// diskSampler reports a disk's counters over an interval, and what one
// process wrote.
type diskSampler struct {
	name, file string
	pid        int
	start      diskStat
	pidStart   uint64
	at         time.Time
}

// newDiskSampler starts sampling the disk of path and process pid's writes;
// nil when path is on no block device. It first writes back whatever is
// dirty: the gateway's binary, just built, would otherwise reach the disk
// in the window, tens of MB of it.
func newDiskSampler(path string, pid int) *diskSampler {
	name, file, err := diskOf(path)
	if err != nil {
		return nil
	}
	syscall.Sync()
	s := &diskSampler{name: name, file: file, pid: pid, at: time.Now()}
	if s.start, err = s.read(); err != nil {
		return nil
	}
	s.pidStart, _ = writeBytes(pid)
	return s
}

// writeBytes is what process pid has caused to be written to storage
// (/proc/<pid>/io; pages it dirtied in a file mapping count when dirtied).
func writeBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io: no write_bytes", pid)
}

func (s *diskSampler) read() (diskStat, error) {
	b, err := os.ReadFile(s.file)
	if err != nil {
		return diskStat{}, err
	}
	return parseDiskStat(string(b))
}

// line is the bench's disk line for the interval since the sampler started.
func (s *diskSampler) line() string {
	end, err := s.read()
	if err != nil {
		return fmt.Sprintf("disk         %s: %v", s.name, err)
	}
	secs := time.Since(s.at).Seconds()
	out := "disk         "
	if w, err := writeBytes(s.pid); err == nil {
		out += fmt.Sprintf("the gateway wrote %.1f KB/s; ", float64(w-s.pidStart)/1024/secs)
	}
	out += fmt.Sprintf("%s (the machine's, holding its data, file system journal included): %.1f writes/s, %.1f KB/s written",
		s.name, float64(end.writes-s.start.writes)/secs, float64(end.sectors-s.start.sectors)*512/1024/secs)
	if end.hasFlush && s.start.hasFlush {
		n := end.flushes - s.start.flushes
		out += fmt.Sprintf(", %.1f cache flushes/s", float64(n)/secs)
		if n > 0 {
			out += fmt.Sprintf(" (%.2f ms each)", float64(end.flushMs-s.start.flushMs)/float64(n))
		}
	}
	return out
}
