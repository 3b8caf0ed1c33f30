package main

import (
	"os"
	"runtime"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/observe"
)

// The scheduler's processor count (GOMAXPROCS) costs CPU of its own at low
// load: every goroutine that becomes runnable (a poll timer, a socket read)
// wakes a second thread that spins looking for work and finds none. A
// gateway polling 100 devices a second spends about a quarter of its CPU on
// that with two processors. So, unless told otherwise, the gateway runs on
// one processor while one is enough and on all of them when it is busy.
const (
	procsSample   = time.Second
	procsBusy     = 0.6 // of a core, over one sample on one processor: widen
	procsQuiet    = 0.3 // of a core, over every sample of procsQuietFor: narrow
	procsQuietFor = 10  // samples
)

// procGovernor decides the processor count from the process's CPU use.
type procGovernor struct {
	max, cur int
	quiet    int // consecutive quiet samples while widened
}

// next takes the last sample's CPU use, in cores, and returns the count to use.
func (g *procGovernor) next(busy float64) int {
	if g.cur == 1 {
		if busy >= procsBusy {
			g.cur, g.quiet = g.max, 0
		}
		return g.cur
	}
	if busy >= procsQuiet {
		g.quiet = 0
		return g.cur
	}
	if g.quiet++; g.quiet >= procsQuietFor {
		g.cur, g.quiet = 1, 0
	}
	return g.cur
}

// governProcs applies resources.maxProcs: a fixed count when set, the
// GOMAXPROCS environment variable's when that is set, and otherwise the
// governor between one and the runtime's default (the CPUs the process may
// use, cgroup quota included). It starts wide, so start-up runs on every
// CPU. The returned func stops it.
func governProcs(configured int, log zerolog.Logger) (stop func()) {
	switch {
	case configured > 0:
		runtime.GOMAXPROCS(configured)
		return func() {}
	case os.Getenv("GOMAXPROCS") != "":
		return func() {}
	}
	g := &procGovernor{max: runtime.GOMAXPROCS(0)}
	g.cur = g.max
	last := observe.ProcessCPU(0)
	if g.max < 2 || last == 0 { // one CPU, or no /proc to measure with
		return func() {}
	}
	log.Debug().Int("max", g.max).Msg("processors governed by load (resources.maxProcs fixes them)")
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(procsSample)
		defer t.Stop()
		lastAt := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				cpu := observe.ProcessCPU(0)
				busy := (cpu - last).Seconds() / now.Sub(lastAt).Seconds()
				last, lastAt = cpu, now
				if prev := g.cur; g.next(busy) != prev {
					runtime.GOMAXPROCS(g.cur)
					log.Debug().Int("procs", g.cur).Float64("cores_busy", busy).Msg("processors changed")
				}
			}
		}
	}()
	return func() { close(done) }
}
