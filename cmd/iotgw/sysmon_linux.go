package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
)

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK.
const prSetTimerSlack = 29

// keepSysmonAwake re-executes the process once with the runtime monitor kept
// out of its deep sleep and the timer slack of timerSlack (see sysmon.go). It
// returns only in the re-executed process, when GODEBUG already decides, or
// when the re-execution failed.
func keepSysmonAwake() {
	if restoreGODEBUG() {
		return
	}
	env := sysmonEnviron(os.Environ())
	if env == nil {
		return
	}
	// The slack is the calling thread's; execve keeps it, and every thread
	// of the new image inherits it from the one that created it. So this
	// goroutine stays on the thread it sets it on until the exec.
	runtime.LockOSThread()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(timerSlack.Nanoseconds()), 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "iotgw: setting the timer slack failed, running with the default (more wake-ups at low load): %v\n", errno)
	}
	// /proc/self/exe is this very binary even if a package upgrade has
	// replaced the file on disk since it started.
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	fmt.Fprintf(os.Stderr, "iotgw: re-executing with the runtime monitor kept awake failed, running without (more CPU at low load): %v\n", err)
	runtime.UnlockOSThread()
}

// The kernel names an executed image after the file execve was given, and the
// re-execution gives /proc/self/exe: ps, top, pgrep and killall would know the
// gateway as "exe", and an operator's "pkill -HUP iotgw" in a logrotate
// script would signal nothing. So the re-executed image takes back the name
// it was started as. init runs on the main thread, whose name is the
// process's; the threads the runtime has started by then are renamed too, as
// every thread it starts later inherits the name of the one that starts it.
func init() {
	if _, reexecuted := os.LookupEnv(sysmonBefore); !reexecuted || len(os.Args) == 0 {
		return
	}
	nameThreads(filepath.Base(os.Args[0]))
}

// nameThreads sets the name of every thread of the process, the calling one
// first. Two passes: a thread started during the first by one not yet renamed
// took the old name.
func nameThreads(name string) {
	if len(name) > 15 { // the kernel keeps 15 bytes
		name = name[:15]
	}
	self := strconv.Itoa(syscall.Gettid())
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return
		}
		_ = os.WriteFile("/proc/self/task/"+self+"/comm", []byte(name), 0)
		for _, t := range tasks {
			if t.Name() != self {
				_ = os.WriteFile("/proc/self/task/"+t.Name()+"/comm", []byte(name), 0)
			}
		}
	}
}
