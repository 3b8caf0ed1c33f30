package main

import (
	"runtime"
	"testing"

	"github.com/rs/zerolog"
)

func TestProcGovernor(t *testing.T) {
	g := newProcGovernor(4)
	step := func(busy float64, want, wantGC int) {
		t.Helper()
		if got := g.next(busy); got != want {
			t.Fatalf("at %.2f cores busy: %d processors, want %d", busy, got, want)
		}
		if got := g.gcPercent(); got != wantGC {
			t.Fatalf("at %.2f cores busy: GC target %d%%, want %d%%", busy, got, wantGC)
		}
	}
	// Start-up is wide and busy. The GC target tightens after gcQuietFor
	// quiet samples in a row; the processors narrow after procsQuietFor.
	if g.cur != 4 || g.gcPercent() != gcBusyPercent {
		t.Fatalf("start-up: %d processors, GC target %d%%; want 4 and %d%%", g.cur, g.gcPercent(), gcBusyPercent)
	}
	step(0.05, 4, gcBusyPercent)
	step(0.5, 4, gcBusyPercent) // between the thresholds: neither busy nor quiet
	for i := 1; i < gcQuietFor; i++ {
		step(0.05, 4, gcBusyPercent)
	}
	step(0.05, 4, gcQuietPercent)
	for i := gcQuietFor + 1; i < procsQuietFor; i++ {
		step(0.05, 4, gcQuietPercent)
	}
	step(0.5, 4, gcQuietPercent) // a sample over procsQuiet restarts the count
	for i := 1; i < procsQuietFor; i++ {
		step(0.05, 4, gcQuietPercent)
	}
	step(0.05, 1, gcQuietPercent)
	step(procsBusy-0.01, 1, gcQuietPercent)
	step(procsBusy, 4, gcBusyPercent)
	step(1.5, 4, gcBusyPercent)
	step(procsQuiet, 4, gcBusyPercent) // at the threshold is not quiet
	for i := 1; i < gcQuietFor; i++ {
		step(0.1, 4, gcBusyPercent)
	}
	step(0.1, 4, gcQuietPercent)
	for i := gcQuietFor + 1; i < procsQuietFor; i++ {
		step(0.1, 4, gcQuietPercent)
	}
	step(0.1, 1, gcQuietPercent)
	// Busy from the start: it stays wide and relaxed.
	g = newProcGovernor(2)
	step(1.2, 2, gcBusyPercent)
	step(0.4, 2, gcBusyPercent)
}

func TestGovernProcsFixed(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	governProcs(3, zerolog.Nop())()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("resources.maxProcs 3 gave GOMAXPROCS %d", got)
	}
}
