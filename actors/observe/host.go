package observe

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Host and process figures read from /proc, for the gateway's statistics
// telemetry and for the benchmarks that measure a gateway process. On a
// system without /proc every figure reads as zero (unknown), never an error:
// statistics are best effort.

// Memory is the host's memory in bytes.
type Memory struct{ Total, Available uint64 }

// ReadMemory reads MemTotal and MemAvailable from /proc/meminfo.
func ReadMemory() Memory {
	var m Memory
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(fields[1], 10, 64)
		switch fields[0] {
		case "MemTotal:":
			m.Total = kb << 10
		case "MemAvailable:":
			m.Available = kb << 10
		}
	}
	return m
}

// RSS is this process's resident set size in bytes.
func RSS() uint64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// PeakRSS is the peak resident set size (VmHWM) of process pid in bytes;
// pid 0 is this process.
func PeakRSS(pid int) int64 { return statusKB(pid, "VmHWM:") << 10 }

// ProcessRSS is the resident set size (VmRSS) of process pid in bytes and
// its file-backed part (RssFile: mapped code and data); pid 0 is this
// process.
func ProcessRSS(pid int) (rss, file int64) {
	return statusKB(pid, "VmRSS:") << 10, statusKB(pid, "RssFile:") << 10
}

// statusKB reads a "Name:  N kB" line of /proc/<pid>/status; 0 when absent.
func statusKB(pid int, name string) int64 {
	raw, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb
		}
	}
	return 0
}

// DiskSpace is the free (to unprivileged users) and total bytes of the file
// system holding dir; ok is false when it cannot be read.
func DiskSpace(dir string) (free, total uint64, ok bool) {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0, 0, false
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), true
}

// clockTick is the unit of /proc's CPU times: USER_HZ is 100 on every Linux
// architecture we ship.
const clockTick = 10 * time.Millisecond

// ProcessCPU is the user+system CPU time of process pid; pid 0 is this process.
func ProcessCPU(pid int) time.Duration {
	return time.Duration(processTicks(pid)) * clockTick
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}

func processTicks(pid int) uint64 {
	raw, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0
	}
	return statTicks(string(raw))
}

// statTicks is utime+stime of a /proc/<pid>/stat line.
func statTicks(s string) uint64 {
	// The command name in parentheses may hold blanks and parentheses;
	// fields count from after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st
}

func systemTicks() (busy, all uint64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		all += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, all
}

// CPUUsage is CPU use between two samples, in percent: Total of the whole
// host's capacity, Process of one core for this process.
type CPUUsage struct{ Total, Process float64 }

// CPUSampler turns /proc tick counters into percentages between samples.
// Not safe for concurrent use.
type CPUSampler struct {
	sysBusy, sysAll, proc uint64
	at                    time.Time
}

// NewCPUSampler takes the first sample.
func NewCPUSampler() *CPUSampler {
	s := &CPUSampler{}
	s.sysBusy, s.sysAll = systemTicks()
	s.proc = processTicks(0)
	s.at = time.Now()
	return s
}

// Sample returns the usage since the previous sample.
func (s *CPUSampler) Sample() CPUUsage {
	busy, all := systemTicks()
	proc := processTicks(0)
	now := time.Now()
	var out CPUUsage
	if d := all - s.sysAll; d > 0 {
		out.Total = 100 * float64(busy-s.sysBusy) / float64(d)
	}
	// Process ticks are 1/100 s; as a share of one core over the interval.
	if el := now.Sub(s.at).Seconds(); el > 0 {
		out.Process = float64(proc-s.proc) / el
	}
	s.sysBusy, s.sysAll, s.proc, s.at = busy, all, proc, now
	return out
}
