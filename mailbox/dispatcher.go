package mailbox

import (
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
type PooledDispatcher struct {
	throughput int
	idle       time.Duration
	work       chan func()
	mu         sync.Mutex
	workers    int
}

// NewPooledDispatcher returns a dispatcher yielding every throughput messages
// whose idle workers exit after idle.
func NewPooledDispatcher(throughput int, idle time.Duration) *PooledDispatcher {
	return &PooledDispatcher{throughput: throughput, idle: idle, work: make(chan func())}
}

// Schedule runs fn on an idle worker, or on a new one when none is idle.
func (d *PooledDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		d.mu.Lock()
		d.workers++
		d.mu.Unlock()
		go d.worker(fn)
	}
}

// Throughput is how many messages a mailbox processes before yielding.
func (d *PooledDispatcher) Throughput() int { return d.throughput }

// Workers is the number of live worker goroutines.
func (d *PooledDispatcher) Workers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.workers
}

func (d *PooledDispatcher) worker(fn func()) {
	timer := time.NewTimer(d.idle)
	defer timer.Stop()
	for {
		fn()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d.idle)
		select {
		case fn = <-d.work:
		case <-timer.C:
			d.mu.Lock()
			d.workers--
			d.mu.Unlock()
			return
		}
	}
}

var _ actor.Dispatcher = (*PooledDispatcher)(nil)
