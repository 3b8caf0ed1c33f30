package main

import (
	"runtime"
	"testing"

	"github.com/rs/zerolog"
)

func TestProcGovernor(t *testing.T) {
	g := &procGovernor{max: 4, cur: 4}
	step := func(busy float64, want int) {
		t.Helper()
		if got := g.next(busy); got != want {
			t.Fatalf("at %.2f cores busy: %d processors, want %d", busy, got, want)
		}
	}
	// Start-up is wide; quiet must last procsQuietFor samples in a row.
	for i := 1; i < procsQuietFor; i++ {
		step(0.05, 4)
	}
	step(0.5, 4) // a busy sample restarts the count
	for i := 1; i < procsQuietFor; i++ {
		step(0.05, 4)
	}
	step(0.05, 1)
	step(procsBusy-0.01, 1)
	step(procsBusy, 4)
	step(1.5, 4)
	step(procsQuiet, 4) // at the threshold is not quiet
	for i := 1; i < procsQuietFor; i++ {
		step(0.1, 4)
	}
	step(0.1, 1)
}

func TestGovernProcsFixed(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	governProcs(3, zerolog.Nop())()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("resources.maxProcs 3 gave GOMAXPROCS %d", got)
	}
}
