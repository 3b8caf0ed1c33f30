package automation

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/supervisor"
)

// subscriberMailbox bounds what a forward or task may have queued from the
// bus; beyond it the newest is dropped and counted on its status.
const subscriberMailbox = 1024

// Deps is what the engine uses of the gateway.
type Deps struct {
	System *actor.ActorSystem
	Bus    *bus.Bus
	// Env gives handlers and forwards the device write and the journal.
	Env handler.Env
	Log zerolog.Logger
	// Clock drives schedules, for-durations and retries (nil: real time).
	Clock Clock
	// Store, when set, replaces the queue's store from the config (tests).
	Store persistence.Store
}

// Engine runs one automation.yaml: an actor per forward and per enabled
// task, and the durable action queue they share.
type Engine struct {
	deps     Deps
	log      zerolog.Logger
	store    persistence.Store
	handlers map[string]handler.Handler
	queue    *actor.PID
	qa       *queueActor
	qstats   *QueueStats
	board    *statusBoard

	mu      sync.Mutex // serialises Reload and Stop
	fileMu  sync.Mutex
	fileSum [32]byte // content of the automation file last loaded (watch.go)
	cfg     *Config
	running []running
	stopped bool
}

type running struct {
	pid *actor.PID
	sub *bus.Subscription
}

// Start opens the queue and starts cfg's forwards and tasks.
func Start(cfg *Config, deps Deps) (*Engine, error) {
	if cfg == nil {
		return nil, errors.New("automation: no config")
	}
	if deps.Clock == nil {
		deps.Clock = RealClock{}
	}
	e := &Engine{deps: deps, log: deps.Log.With().Str("component", "automation").Logger(), qstats: &QueueStats{},
		board: &statusBoard{m: map[string]*entry{}}, handlers: map[string]handler.Handler{}}
	e.store = deps.Store
	if e.store == nil {
		if cfg.Queue.Memory {
			e.store = persistence.NewMemoryStore()
		} else {
			s, err := persistence.OpenBadgerStore(cfg.Queue.Dir, persistence.Options{Logger: e.log})
			if err != nil {
				return nil, fmt.Errorf("automation queue: %w", err)
			}
			e.store = s
		}
	}
	qa := &queueActor{cfg: cfg.Queue, store: e.store, handlers: e.handlers, clock: deps.Clock, stats: e.qstats,
		log: e.log.With().Str("actor", "automation-queue").Logger(),
		onResult: func(task string, err error) {
			if err != nil {
				e.board.get(task).fail(deps.Clock.Now(), err)
			}
		}}
	e.qa = qa
	env := deps.Env
	env.Log = e.log
	env.Dir = filepath.Dir(cfg.File)
	env.Enqueue = func(ctx context.Context, parent handler.Action, reqs []handler.Request) error {
		return e.enqueueFor(ctx, parent, reqs)
	}
	for _, name := range handler.Names() {
		f, _ := handler.Lookup(name)
		e.handlers[name] = f(env)
	}
	pid, err := deps.System.Root.SpawnNamed(e.props(func() actor.Actor { return qa }, nil), "automation/queue")
	if err != nil {
		_ = e.closeStore()
		return nil, fmt.Errorf("automation queue: %w", err)
	}
	e.queue = pid
	qa.pid.Store(pid)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.startAll(cfg)
	return e, nil
}

// enqueueFor is Env.Enqueue: it checks each request as parseAction checks
// a task's action, queues the good ones under parent's task and waits until
// they are stored. A handler cannot queue a script: a script returning
// itself would loop through the queue for ever.
func (e *Engine) enqueueFor(ctx context.Context, parent handler.Action, reqs []handler.Request) error {
	now := e.deps.Clock.Now()
	var errs []error
	items := make([]*queued, 0, len(reqs))
	for i, r := range reqs {
		h, ok := e.handlers[r.Handler]
		switch {
		case r.Handler == "script":
			errs = append(errs, fmt.Errorf("actions[%d]: a script cannot queue another script", i))
			continue
		case !ok:
			errs = append(errs, fmt.Errorf("actions[%d]: %q is not a handler; known: %s", i, r.Handler, strings.Join(handler.Names(), ", ")))
			continue
		}
		params := r.Params
		if params == nil {
			params = map[string]any{}
		}
		if bad := h.Validate(params); len(bad) > 0 {
			errs = append(errs, fmt.Errorf("actions[%d] (%s): %w", i, r.Handler, errors.Join(bad...)))
			continue
		}
		items = append(items, &queued{Key: idempotencyKey(parent.Key, strconv.FormatUint(parent.Seq, 10), time.Time{}, i), Task: parent.Task,
			Handler: r.Handler, Params: params, Created: now, Next: now})
	}
	if len(items) > 0 {
		// A queue that cannot take them is worth a retry of the parent (the
		// bad requests will be named then); bad requests are not.
		pid := e.qa.pid.Load()
		if pid == nil {
			return errors.New("the action queue is not running")
		}
		done := make(chan struct{})
		e.deps.System.Root.Send(pid, &enqueue{items: items, done: done, once: true})
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("queueing %d actions: %w", len(items), ctx.Err())
		}
	}
	if len(errs) > 0 {
		return handler.Permanent(errors.Join(errs...))
	}
	return nil
}

func (e *Engine) props(producer actor.Producer, drops *bus.DropCounter) *actor.Props {
	if drops == nil {
		drops = new(bus.DropCounter)
	}
	log := e.log
	logFor := func(string) zerolog.Logger { return log }
	// A wrapping actor, not receiver middleware: a task sees every value on
	// its topics, and middleware costs an envelope per message.
	return actor.PropsFromProducer(func() actor.Actor { return supervisor.LogPanics(logFor, producer()) },
		actor.WithMailbox(bus.SubscriberMailbox(subscriberMailbox, drops)))
}

// startAll spawns an actor per forward and enabled task and subscribes it.
func (e *Engine) startAll(cfg *Config) {
	e.cfg = cfg
	if err := pruneState(e.store, cfg); err != nil {
		e.log.Warn().Err(err).Msg("cannot delete the state of removed tasks")
	}
	e.board.mu.Lock()
	e.board.m = map[string]*entry{}
	for _, f := range cfg.Forwards {
		e.board.m[f.Name] = &entry{s: Status{Name: f.Name, Kind: "forward", Enabled: f.Enabled}}
	}
	for _, t := range cfg.Tasks {
		e.board.m[t.Name] = &entry{s: Status{Name: t.Name, Kind: "task", Enabled: t.Enabled}}
	}
	e.board.mu.Unlock()
	for _, f := range cfg.Forwards {
		if !f.Enabled {
			continue
		}
		a := &forwardActor{f: f, env: e.deps.Env, st: e.board.get(f.Name), clock: e.deps.Clock,
			log: e.log.With().Str("forward", f.Name).Logger()}
		e.spawn("forward/"+f.Name, func() actor.Actor { return a },
			[]bus.Pattern{{Class: bus.ClassDevice, Name: f.Source.Device, Leaf: f.Source.Key}})
	}
	for _, t := range cfg.Tasks {
		if !t.Enabled {
			continue
		}
		var patterns []bus.Pattern
		if t.Trigger.Event != nil {
			patterns = append(patterns, *t.Trigger.Event)
		}
		for _, ref := range t.Vars {
			patterns = append(patterns, bus.Pattern{Class: bus.ClassDevice, Name: ref.Device, Leaf: ref.Key})
		}
		a := &taskActor{t: t, st: e.board.get(t.Name), clock: e.deps.Clock, store: e.store, queue: e.queue,
			log: e.log.With().Str("task", t.Name).Logger()}
		e.spawn("task/"+t.Name, func() actor.Actor { return a }, patterns)
	}
	e.log.Info().Int("forwards", len(cfg.Forwards)).Int("tasks", len(cfg.Tasks)).Msg("automation started")
}

func (e *Engine) spawn(name string, producer actor.Producer, patterns []bus.Pattern) {
	drops := new(bus.DropCounter)
	pid, err := e.deps.System.Root.SpawnNamed(e.props(producer, drops), "automation/"+name)
	if err != nil {
		e.log.Error().Err(err).Str("actor", name).Msg("cannot start")
		return
	}
	r := running{pid: pid}
	if len(patterns) > 0 {
		r.sub = e.deps.Bus.Subscribe(pid, drops, patterns...)
	}
	e.running = append(e.running, r)
}

func (e *Engine) stopAll() {
	for _, r := range e.running {
		if r.sub != nil {
			r.sub.Cancel()
		}
		_ = e.deps.System.Root.StopFuture(r.pid).Wait()
	}
	e.running = nil
}

// Reload replaces the forwards and tasks with cfg's; connectors and the
// queue (with what it holds) keep running. Queue settings take effect at
// the next start.
func (e *Engine) Reload(cfg *Config) error {
	if cfg == nil {
		return errors.New("automation: no config")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errors.New("automation: stopped")
	}
	e.stopAll()
	e.startAll(cfg)
	return nil
}

// Stop ends every actor and closes the queue's store; queued actions
// stay there for the next start.
func (e *Engine) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil
	}
	e.stopped = true
	e.stopAll()
	_ = e.deps.System.Root.StopFuture(e.queue).Wait()
	var errs []error
	for _, h := range e.handlers {
		if c, ok := h.(handler.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	errs = append(errs, e.closeStore())
	return errors.Join(errs...)
}

func (e *Engine) closeStore() error {
	if e.deps.Store != nil {
		return nil // the caller's
	}
	return e.store.Close()
}

// Status lists every forward and task, by name.
func (e *Engine) Status() []Status {
	e.board.mu.Lock()
	out := make([]Status, 0, len(e.board.m))
	for _, s := range e.board.m {
		out = append(out, s.snapshot())
	}
	e.board.mu.Unlock()
	e.mu.Lock()
	drops := map[string]uint64{}
	for _, r := range e.running {
		if r.sub != nil {
			drops[r.pid.Id] = r.sub.Dropped()
		}
	}
	e.mu.Unlock()
	for i := range out {
		out[i].Dropped = drops["automation/"+out[i].Kind+"/"+out[i].Name]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Queue counts what the action queue did.
func (e *Engine) Queue() *QueueStats { return e.qstats }

// Report is the engine's state for operators (/automation).
type Report struct {
	Rules []Status      `json:"rules"`
	Queue QueueSnapshot `json:"queue"`
}

// QueueSnapshot is QueueStats at one moment.
type QueueSnapshot struct {
	Depth   int64  `json:"depth"`
	Queued  uint64 `json:"queued"`
	Done    uint64 `json:"done"`
	Failed  uint64 `json:"failed"`
	Expired uint64 `json:"expired"`
	Retries uint64 `json:"retries"`
	Dropped uint64 `json:"dropped"`
}

// Report returns the state of every forward and task and of the queue.
func (e *Engine) Report() Report {
	q := e.qstats
	return Report{Rules: e.Status(), Queue: QueueSnapshot{
		Depth: q.Depth.Load(), Queued: q.Queued.Load(), Done: q.Done.Load(), Failed: q.Failed.Load(),
		Expired: q.Expired.Load(), Retries: q.Retries.Load(), Dropped: q.Dropped.Load(),
	}}
}
