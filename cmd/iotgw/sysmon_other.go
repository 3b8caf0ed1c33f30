//go:build !linux

package main

// keepSysmonAwake re-executes only on Linux, the gateway's platform.
func keepSysmonAwake() {}
