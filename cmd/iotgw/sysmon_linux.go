package main

import (
	"fmt"
	"os"
	"syscall"
)

// keepSysmonAwake re-executes the process once with the runtime monitor kept
// out of its deep sleep (see sysmon.go). It returns only in the re-executed
// process, when GODEBUG already decides, or when the re-execution failed.
func keepSysmonAwake() {
	if restoreGODEBUG() {
		return
	}
	env := sysmonEnviron(os.Environ())
	if env == nil {
		return
	}
	// /proc/self/exe is this very binary even if a package upgrade has
	// replaced the file on disk since it started.
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	fmt.Fprintf(os.Stderr, "iotgw: re-executing with the runtime monitor kept awake failed, running without (more CPU at low load): %v\n", err)
}
