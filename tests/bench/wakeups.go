package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A thread that sleeps and is woken costs CPU of its own: the kernel's and,
// on a VM, the hypervisor's work to stop and restart a virtual CPU, charged
// to the thread that woke. At a few polls a second that cost, not the poll's
// work, is most of the gateway's CPU, and it differs from one machine (and
// hour) to the next many times over. Counting the gateway's context
// switches gives the part that is the gateway's doing; CPU per switch, the
// machine's price for it.

// contextSwitches sums the voluntary and involuntary context switches of
// every thread of process pid (a thread that exited takes its counts with
// it; the Go runtime keeps its threads). Zero when /proc cannot be read.
func contextSwitches(pid int) (voluntary, involuntary uint64) {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "status"))
	for _, t := range tasks {
		f, err := os.Open(t)
		if err != nil {
			continue
		}
		v, n := switchCounts(bufio.NewScanner(f))
		f.Close()
		voluntary += v
		involuntary += n
	}
	return voluntary, involuntary
}

// switchCounts reads the two ctxt_switches lines of a /proc status file.
func switchCounts(sc *bufio.Scanner) (voluntary, involuntary uint64) {
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "voluntary_ctxt_switches":
			voluntary = n
		case "nonvoluntary_ctxt_switches":
			involuntary = n
		}
	}
	return voluntary, involuntary
}
