package automation

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/persistence"
)

// queuePrefix keys queued actions in the store: the prefix and the
// action's sequence number, so a scan returns them in arrival order.
const queuePrefix = "q/"

// maxQueued bounds the queue; past it new actions are dropped, counted and
// logged, so a handler that never succeeds cannot fill the disk.
const maxQueued = 10000

// runTimeout bounds one attempt of a handler that sets no tighter limit.
const runTimeout = 30 * time.Second

// queued is one action waiting for its handler, as stored.
type queued struct {
	Seq       uint64         `json:"seq"`
	Key       string         `json:"key"`
	Task      string         `json:"task"`
	Handler   string         `json:"handler"`
	Params    map[string]any `json:"params"`
	Created   time.Time      `json:"created"`
	Attempts  int            `json:"attempts"`
	Next      time.Time      `json:"next"`
	LastError string         `json:"lastError,omitempty"`
	Event     map[string]any `json:"event,omitempty"`
	running   bool
}

// QueueStats counts what the action queue did.
type QueueStats struct {
	Queued, Done, Failed, Expired, Retries, Dropped atomic.Uint64
	Depth                                           atomic.Int64
}

// enqueue asks the queue to store and run actions. Control: an action must
// not be dropped behind a burst.
// done, when set, is closed once the items are stored (Env.Enqueue waits
// for it, so a parent action is deleted only after what it queued is kept).
// With once, an item whose key is already pending is not queued again
// (what a handler queues: a parent run twice gives the same keys; a task's
// own keys may repeat for distinct events with the same timestamp).
type enqueue struct {
	items []*queued
	done  chan struct{}
	once  bool
}

func (*enqueue) ControlMessage() {}

type queueWake struct{}

// runResult is what one attempt of an action ended with.
type runResult struct {
	q   *queued
	err error
}

func (*runResult) ControlMessage() {}

// queueActor keeps the durable queue: an action is stored before it first
// runs and deleted only once its handler succeeded (or failed for good, or
// expired), so a killed gateway runs it again after the restart:
// at-least-once, with the same idempotency key.
type queueActor struct {
	cfg      QueueConfig
	store    persistence.Store
	handlers map[string]handler.Handler
	clock    Clock
	log      zerolog.Logger
	stats    *QueueStats
	onResult func(task string, err error) // task status
	pid      atomic.Pointer[actor.PID]    // self, for Env.Enqueue from handlers

	pending map[uint64]*queued
	keys    map[string]int // idempotency keys of pending, counted
	running int
	stop    func() bool
	self    *actor.PID
	sys     *actor.ActorSystem
	ctx     context.Context
	cancel  context.CancelFunc
}

func (q *queueActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		q.self, q.sys = ctx.Self(), ctx.ActorSystem()
		q.pid.Store(q.self)
		q.ctx, q.cancel = context.WithCancel(context.Background())
		q.load()
		q.dispatch()
	case *enqueue:
		for _, it := range m.items {
			q.add(it, m.once)
		}
		if m.done != nil {
			close(m.done)
		}
		q.dispatch()
	case *queueWake:
		q.dispatch()
	case *runResult:
		q.running--
		q.finish(m.q, m.err)
		q.dispatch()
	case *actor.Stopping:
		if q.stop != nil {
			q.stop()
		}
		q.cancel()
	}
}

// load takes up what a previous run left in the store.
func (q *queueActor) load() {
	q.pending = map[uint64]*queued{}
	q.keys = map[string]int{}
	err := q.store.Scan([]byte(queuePrefix), func(_, v []byte) error {
		var it queued
		if err := json.Unmarshal(v, &it); err != nil {
			q.log.Error().Err(err).Msg("unreadable queued action; dropped")
			q.stats.Dropped.Add(1)
			return nil
		}
		q.pending[it.Seq] = &it
		q.keys[it.Key]++
		return nil
	})
	if err != nil {
		q.log.Error().Err(err).Msg("reading the action queue")
	}
	q.stats.Depth.Store(int64(len(q.pending)))
	if len(q.pending) > 0 {
		q.log.Info().Int("actions", len(q.pending)).Msg("queued actions from the last run; running them")
	}
}

func (q *queueActor) add(it *queued, once bool) {
	if once && q.keys[it.Key] > 0 {
		// The same action again: a parent action that ran twice (a restart
		// between its queueing and its end) queues the same keys.
		q.log.Debug().Str("task", it.Task).Str("key", it.Key).Msg("action already queued; not queued twice")
		return
	}
	if len(q.pending) >= maxQueued {
		q.stats.Dropped.Add(1)
		q.log.Error().Str("task", it.Task).Str("handler", it.Handler).Int("queued", len(q.pending)).Msg("action queue full; action dropped")
		return
	}
	seq, err := q.store.NextSeq()
	if err == nil {
		it.Seq = seq
		err = q.save(it)
	}
	if err != nil {
		// Not durable, but not lost while the process runs either.
		q.log.Error().Err(err).Str("task", it.Task).Msg("cannot store an action; it runs without surviving a restart")
		if it.Seq == 0 {
			it.Seq = uint64(time.Now().UnixNano())
		}
	}
	q.pending[it.Seq] = it
	q.keys[it.Key]++
	q.stats.Queued.Add(1)
	q.stats.Depth.Store(int64(len(q.pending)))
}

func (q *queueActor) save(it *queued) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return q.store.Put(persistence.SeqKey(queuePrefix, it.Seq), raw)
}

func (q *queueActor) remove(it *queued) {
	delete(q.pending, it.Seq)
	if q.keys[it.Key]--; q.keys[it.Key] <= 0 {
		delete(q.keys, it.Key)
	}
	q.stats.Depth.Store(int64(len(q.pending)))
	if err := q.store.Delete(persistence.SeqKey(queuePrefix, it.Seq)); err != nil {
		q.log.Error().Err(err).Str("task", it.Task).Msg("cannot delete a finished action; it may run again after a restart")
	}
}

// dispatch starts the due actions, oldest first, up to the worker limit,
// and arms the timer for the next one.
func (q *queueActor) dispatch() {
	now := q.clock.Now()
	var waiting []*queued
	for _, it := range q.pending {
		if !it.running {
			waiting = append(waiting, it)
		}
	}
	sort.Slice(waiting, func(i, j int) bool { return waiting[i].Seq < waiting[j].Seq })
	var next time.Time
	for _, it := range waiting {
		if it.Next.After(now) {
			if next.IsZero() || it.Next.Before(next) {
				next = it.Next
			}
			continue
		}
		if q.running >= q.cfg.Workers {
			break
		}
		q.start(it)
	}
	if q.stop != nil {
		q.stop()
		q.stop = nil
	}
	if !next.IsZero() {
		sys, self := q.sys, q.self
		q.stop = q.clock.AfterFunc(next.Sub(now), func() { sys.Root.Send(self, &queueWake{}) })
	}
}

func (q *queueActor) start(it *queued) {
	it.running = true
	it.Attempts++
	q.running++
	h := q.handlers[it.Handler]
	sys, self, ctx := q.sys, q.self, q.ctx
	a := handler.Action{Key: it.Key, Task: it.Task, Params: it.Params, Attempt: it.Attempts, Event: it.Event, Seq: it.Seq}
	go func() {
		var err error
		if h == nil {
			err = handler.Permanent(errors.New("no handler " + it.Handler))
		} else {
			rc, cancel := context.WithTimeout(ctx, runTimeout)
			err = safeRun(h, rc, a)
			cancel()
		}
		sys.Root.Send(self, &runResult{q: it, err: err})
	}()
}

// safeRun keeps a panicking handler from taking the gateway down.
func safeRun(h handler.Handler, ctx context.Context, a handler.Action) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = handler.Permanent(errors.New("handler panicked"))
		}
	}()
	return h.Run(ctx, a)
}

func (q *queueActor) finish(it *queued, err error) {
	it.running = false
	if q.onResult != nil {
		q.onResult(it.Task, err)
	}
	l := q.log.With().Str("task", it.Task).Str("handler", it.Handler).Str("key", it.Key).Int("attempt", it.Attempts).Logger()
	switch {
	case err == nil:
		q.stats.Done.Add(1)
		q.remove(it)
		l.Debug().Msg("action done")
	case errors.Is(err, handler.ErrPermanent):
		q.stats.Failed.Add(1)
		q.remove(it)
		l.Error().Err(err).Msg("action failed; not retried")
	case q.clock.Now().Sub(it.Created) >= q.cfg.Expire:
		q.stats.Expired.Add(1)
		q.remove(it)
		l.Error().Err(err).Dur("expire", q.cfg.Expire).Msg("action expired before it succeeded; given up")
	default:
		q.stats.Retries.Add(1)
		it.LastError = err.Error()
		it.Next = q.clock.Now().Add(backoff(q.cfg, it.Attempts))
		if serr := q.save(it); serr != nil {
			l.Error().Err(serr).Msg("cannot store an action's retry")
		}
		ev := l.Warn()
		if it.Attempts > 3 {
			ev = l.Debug() // the first failures tell; the rest would flood the log
		}
		ev.Err(err).Time("next", it.Next).Msg("action failed; retrying")
	}
}

// backoff doubles from RetryMin up to RetryMax.
func backoff(c QueueConfig, attempts int) time.Duration {
	d := c.RetryMin
	for i := 1; i < attempts && d < c.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.RetryMax)
}
