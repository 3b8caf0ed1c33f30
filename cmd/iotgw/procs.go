package main

import (
	"os"
	"runtime"
	"runtime/debug"
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

// The garbage collector's target follows the same load. Quiet, memory is
// what an edge box is short of: a collection when the heap has grown by a
// quarter keeps RSS near the live heap. Busy (from a sample at procsBusy or
// more until gcQuietFor samples in a row are quiet), cycles are: at a
// million values/s marking the heap took an eighth of the gateway's CPU
// with gcQuietPercent and half of that with gcBusyPercent, for about 15 MB
// more RSS. Start-up counts as busy: a restart is when backlogs drain (the
// journal's, a device broker's queued session), mostly before the first
// one-second sample; draining 100,000 queued MQTT messages spent a fifth of
// its CPU in collections with gcQuietPercent. The target tightens again
// after two quiet seconds, not at the narrowing ten seconds later, and the
// heap the busy target let grow goes back to the kernel at once instead of
// over minutes of background scavenging: a quiet gateway's RSS is what the
// box has to spare, from its first seconds.
// GOGC and GOMEMLIMIT in the environment still override.
const (
	gcQuietPercent = 25
	gcBusyPercent  = 100
	gcQuietFor     = 2 // samples
	// gcFreeEvery spaces the forced returns of the heap to the kernel: a load
	// that alternates busy and quiet seconds would otherwise pay a collection
	// and the page faults of regrowing the heap every few seconds.
	gcFreeEvery = time.Minute
)

// procGovernor decides the processor count and the GC target from the
// process's CPU use.
type procGovernor struct {
	max, cur int
	quiet    int  // consecutive quiet samples while widened
	busy     bool // gcBusyPercent: start-up, or a busy sample not yet followed by gcQuietFor quiet ones
	gcQuiet  int  // consecutive quiet samples while busy
}

// newProcGovernor starts wide and busy: start-up is.
func newProcGovernor(max int) *procGovernor {
	return &procGovernor{max: max, cur: max, busy: true}
}

// next takes the last sample's CPU use, in cores, and returns the count to use.
func (g *procGovernor) next(load float64) int {
	switch {
	case load >= procsBusy:
		g.busy, g.gcQuiet = true, 0
	case load < procsQuiet:
		if g.gcQuiet++; g.gcQuiet >= gcQuietFor {
			g.busy = false
		}
	default:
		g.gcQuiet = 0
	}
	if g.cur == 1 {
		if load >= procsBusy {
			g.cur, g.quiet = g.max, 0
		}
		return g.cur
	}
	if load >= procsQuiet {
		g.quiet = 0
		return g.cur
	}
	if g.quiet++; g.quiet >= procsQuietFor {
		g.cur, g.quiet = 1, 0
	}
	return g.cur
}

// gcPercent is the GC target for the governor's state.
func (g *procGovernor) gcPercent() int {
	if g.busy {
		return gcBusyPercent
	}
	return gcQuietPercent
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
	g := newProcGovernor(runtime.GOMAXPROCS(0))
	last := observe.ProcessCPU(0)
	if g.max < 2 || last == 0 { // one CPU, or no /proc to measure with
		return func() {}
	}
	log.Debug().Int("max", g.max).Msg("processors governed by load (resources.maxProcs fixes them)")
	governGC := os.Getenv("GOGC") == ""
	if governGC {
		debug.SetGCPercent(g.gcPercent())
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(procsSample)
		defer t.Stop()
		lastAt := time.Now()
		var freed time.Time // last debug.FreeOSMemory
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				cpu := observe.ProcessCPU(0)
				busy := (cpu - last).Seconds() / now.Sub(lastAt).Seconds()
				last, lastAt = cpu, now
				prev, prevGC := g.cur, g.gcPercent()
				if g.next(busy) != prev {
					runtime.GOMAXPROCS(g.cur)
					log.Debug().Int("procs", g.cur).Float64("cores_busy", busy).Msg("processors changed")
				}
				if gc := g.gcPercent(); gc != prevGC && governGC {
					debug.SetGCPercent(gc)
					if gc < prevGC && (freed.IsZero() || now.Sub(freed) >= gcFreeEvery) {
						debug.FreeOSMemory()
						freed = now
					}
					log.Debug().Int("gcPercent", gc).Float64("cores_busy", busy).Msg("GC target changed")
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
		if governGC {
			debug.SetGCPercent(gcQuietPercent)
		}
	}
}
