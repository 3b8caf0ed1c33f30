//go:build !unix

package main

import "time"

// processCPU is not measured here: the processor count stays the runtime's.
func processCPU() (time.Duration, bool) { return 0, false }
