package main

import (
	"os"
	"strings"
	"time"
)

// The runtime's monitor thread (sysmon) goes into a deep sleep whenever every
// processor is idle, and the first system call after that wakes it and resets
// it to waking every 20 µs until it sees the processors idle again
// (golang/go#18236). A polling gateway does exactly that all day: idle while a
// device answers, a read, idle again. At 100 devices polled once a second that
// monitor was a quarter of the gateway's CPU, more on a VM, where waking a
// thread on the other core is a trip through the hypervisor. The runtime keeps
// the monitor out of the deep sleep only while a scheduler trace period is set
// (GODEBUG schedtrace), which it reads once, at start-up; so the long-running
// commands re-execute themselves once with the longest period the setting
// takes. The monitor then backs off to one wake-up per 10 ms when nothing
// happens and stays there, and a trace line is due only every 24.8 days.
//
// The re-executed image also runs with a timer slack of timerSlack instead of
// Linux's 50 µs. The runtime sleeps in the network poller until its next
// timer, but epoll's timeout is in whole milliseconds and the runtime rounds
// down: a timer due in 24.6 ms wakes the thread after 24 ms, finds nothing
// due and sleeps once more, up to a millisecond. So most timers (a
// poll slot's, a journal flush's, each of badger's compaction ticks, 40 a
// second) woke the gateway twice. With a millisecond of slack the kernel may
// end the first sleep up to a millisecond later, which is past the timer.
// Timers fire up to that much later, small next to the gateway's poll
// periods and timeouts; the monitor's 10 ms naps stretch by as much. Programs
// the gateway starts (exec connectors) inherit the slack.
//
// An operator's own schedtrace in GODEBUG (schedtrace=0 turns this off) is
// left alone, and then the slack too.
const (
	timerSlack = time.Millisecond

	sysmonTrace = "schedtrace=2147483647" // ms, the largest value the runtime parses
	// sysmonBefore carries GODEBUG as the gateway was started with across the
	// re-execution, so that the programs it starts do not inherit the period.
	sysmonBefore = "IOTGW_GODEBUG_BEFORE"
)

// sysmonEnviron is the environment to re-execute with, or nil when the
// process must not re-execute: GODEBUG sets schedtrace already.
func sysmonEnviron(environ []string) []string {
	godebug, has := "", false
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug, has = v, true
		}
	}
	for _, f := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(f), "schedtrace=") {
			return nil
		}
	}
	before := "unset"
	if has {
		before = "set:" + godebug
	}
	out := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, sysmonBefore+"=") {
			out = append(out, kv)
		}
	}
	trace := sysmonTrace
	if godebug != "" {
		trace = godebug + "," + sysmonTrace
	}
	return append(out, "GODEBUG="+trace, sysmonBefore+"="+before)
}

// restoreGODEBUG puts GODEBUG back as it was before the re-execution and
// reports whether this process is the re-executed one. The runtime has read
// the trace period by now and does not re-read it when GODEBUG changes (it
// re-reads only the settings that can change while running).
func restoreGODEBUG() bool {
	before, ok := os.LookupEnv(sysmonBefore)
	if !ok {
		return false
	}
	_ = os.Unsetenv(sysmonBefore)
	if v, set := strings.CutPrefix(before, "set:"); set {
		_ = os.Setenv("GODEBUG", v)
	} else {
		_ = os.Unsetenv("GODEBUG")
	}
	return true
}
