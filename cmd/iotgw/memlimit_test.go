package main

import (
	"runtime/debug"
	"testing"

	"github.com/rs/zerolog"
)

func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })

	t.Setenv("GOMEMLIMIT", "")
	if got := applyMemoryLimit(96, zerolog.Nop()); got != 96<<20 || debug.SetMemoryLimit(-1) != 96<<20 {
		t.Fatalf("config key: %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
	// GOMEMLIMIT wins over the config: the runtime read it at start; here we stand in for that.
	t.Setenv("GOMEMLIMIT", "200MiB")
	debug.SetMemoryLimit(200 << 20)
	if got := applyMemoryLimit(96, zerolog.Nop()); got != 200<<20 {
		t.Fatalf("GOMEMLIMIT: %d", got)
	}
}
