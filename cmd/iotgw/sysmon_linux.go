package main

import (
	"fmt"
	"os"
	"runtime"
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
