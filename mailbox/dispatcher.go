package mailbox

import (
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// PooledDispatcher runs mailboxes on goroutines that are kept alive for a
// while after they finish. protoactor's default dispatcher starts a fresh
// goroutine for every scheduling; a device actor's poll then regrows a small
// stack through the driver and network code every time, which cost ~15 % of
// the gateway's CPU at a thousand polls a second. Reusing warm goroutines
// keeps their grown stacks. The pool never blocks a caller: when no worker is
// idle a new one starts, so a slow poll can never hold up other actors.
//
// Idle workers are reused last-in first-out. A burst (a thousand device actors
// starting at once) leaves many workers behind; handing work round-robin to
// all of them, as goroutines queued on one channel would be, keeps every one
// alive with its grown stack, while LIFO keeps the few a steady load needs
// busy and lets the rest reach their idle timeout.
type PooledDispatcher struct {
	throughput int
	idle       time.Duration
	mu         sync.Mutex
	free       []*poolWorker // idle workers, the most recently idle last
	workers    int
}

// poolWorker is one worker goroutine's hand-off slot.
type poolWorker struct{ work chan func() }

// NewPooledDispatcher returns a dispatcher yielding every throughput messages
// whose idle workers exit after idle.
func NewPooledDispatcher(throughput int, idle time.Duration) *PooledDispatcher {
	return &PooledDispatcher{throughput: throughput, idle: idle}
}

// Schedule runs fn on the most recently idle worker, or on a new one when
// none is idle.
func (d *PooledDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	if n := len(d.free); n > 0 {
		w := d.free[n-1]
		d.free[n-1] = nil
		d.free = d.free[:n-1]
		d.mu.Unlock()
		w.work <- fn // buffered: never blocks
		return
	}
	d.workers++
	d.mu.Unlock()
	go d.worker(&poolWorker{work: make(chan func(), 1)}, fn)
}

// Throughput is how many messages a mailbox processes before yielding.
func (d *PooledDispatcher) Throughput() int { return d.throughput }

// Workers is the number of live worker goroutines.
func (d *PooledDispatcher) Workers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.workers
}

func (d *PooledDispatcher) worker(w *poolWorker, fn func()) {
	timer := time.NewTimer(d.idle)
	defer timer.Stop()
	for {
		fn()
		d.mu.Lock()
		d.free = append(d.free, w)
		d.mu.Unlock()
		timer.Reset(d.idle)
		select {
		case fn = <-w.work:
		case <-timer.C:
			d.mu.Lock()
			if i := slices.Index(d.free, w); i >= 0 {
				d.free = slices.Delete(d.free, i, i+1)
				d.workers--
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			// Schedule took this worker as the timer fired: its work is on the way.
			fn = <-w.work
		}
	}
}

var _ actor.Dispatcher = (*PooledDispatcher)(nil)
