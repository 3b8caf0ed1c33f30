// Package supervisor provides the gateway's supervision policy for protoactor-go: a
// one-for-one strategy that restarts failed children after a capped, jittered exponential
// backoff, marks crash-looping children unhealthy instead of giving up on them, stops
// children that failed because of bad configuration, and reports every decision as an
// Event. LogPanics adds the stack trace that protoactor does not log.
package supervisor

import (
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"
)

// Event describes one supervision decision.
type Event struct {
	Child     *actor.PID
	Reason    any
	Directive actor.Directive
	// Restarts is the number of failures in the child's current streak, counting this one;
	// it is the backoff attempt and starts again at 1 after the child ran for the quiet period.
	Restarts int
	// Delay is how long the restart waits; zero for other directives.
	Delay     time.Duration
	Unhealthy bool
}

// ChildHealth is the supervision state of one child.
type ChildHealth struct {
	// Restarts counts every restart this strategy ordered for the child since it was spawned.
	Restarts   uint64
	Unhealthy  bool
	LastReason string
}

const (
	defaultInitial    = 100 * time.Millisecond
	defaultMax        = 30 * time.Second
	defaultFactor     = 2.0
	defaultLoopLimit  = 5
	defaultLoopWindow = time.Minute
	maxReasonLen      = 256
	minSweepThreshold = 64
	sweepGrowth       = 2
)

type config struct {
	initial, max   time.Duration
	jitter         Jitter
	loopLimit      int
	loopWindow     time.Duration
	quiet          time.Duration
	unhealthyDelay time.Duration
	decider        func(reason any) actor.Directive
	events         func(Event)
	now            func() time.Time
}

// Option configures NewStrategy.
type Option func(*config)

// WithBackoff sets the restart backoff: initial delay, doubling up to maxDelay (defaults
// 100ms, 30s).
func WithBackoff(initial, maxDelay time.Duration) Option {
	return func(c *config) { c.initial, c.max = initial, maxDelay }
}

// WithJitter sets the backoff jitter (default DecorrelatedJitter).
func WithJitter(j Jitter) Option {
	return func(c *config) { c.jitter = j }
}

// WithCrashLoop marks a child unhealthy after n restarts within window (defaults 5, 1m).
// n <= 0 disables the unhealthy verdict.
func WithCrashLoop(n int, window time.Duration) Option {
	return func(c *config) { c.loopLimit, c.loopWindow = n, window }
}

// WithQuietPeriod sets how long a restarted child must run without failing before it is
// healthy again and its backoff starts over (default: the crash-loop window).
func WithQuietPeriod(d time.Duration) Option {
	return func(c *config) { c.quiet = d }
}

// WithUnhealthyDelay sets the fixed delay between restarts of an unhealthy child
// (default: the backoff maximum).
func WithUnhealthyDelay(d time.Duration) Option {
	return func(c *config) { c.unhealthyDelay = d }
}

// WithDecider sets the function that maps a failure reason (the panic value) to a directive
// (default DefaultDecider).
func WithDecider(fn func(reason any) actor.Directive) Option {
	return func(c *config) { c.decider = fn }
}

// WithEvents sets a callback for every decision. It runs on the supervisor's goroutine (the
// parent's mailbox, or the failed actor's own goroutine for a guardian), so it must not
// block; send to an actor or a buffered channel to do real work.
func WithEvents(fn func(Event)) Option {
	return func(c *config) { c.events = fn }
}

// Strategy is a one-for-one actor.SupervisorStrategy with backoff and crash-loop accounting.
// Use it as a parent's supervisor (actor.WithSupervisor) or, for top-level actors, as their
// guardian (actor.WithGuardian). It is safe for concurrent use; one Strategy may supervise
// any number of children.
type Strategy struct {
	cfg     config
	backoff *Backoff

	mu       sync.Mutex
	children map[string]*childState
	sweepAt  int
}

type childState struct {
	pid    *actor.PID
	system *actor.ActorSystem
	// proc identifies the incarnation: a child stopped and spawned again under the same name
	// gets a new process and must not inherit the old one's history.
	proc       actor.Process
	restarts   uint64
	loop       CrashLoop
	backoff    *Backoff
	lastReason string
}

var _ actor.SupervisorStrategy = (*Strategy)(nil)

// NewStrategy returns a Strategy configured by opts.
func NewStrategy(opts ...Option) *Strategy {
	cfg := config{
		initial:    defaultInitial,
		max:        defaultMax,
		loopLimit:  defaultLoopLimit,
		loopWindow: defaultLoopWindow,
		decider:    DefaultDecider,
		now:        time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.decider == nil {
		cfg.decider = DefaultDecider
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	b := NewBackoff(cfg.initial, cfg.max, defaultFactor).WithJitter(cfg.jitter)
	if cfg.unhealthyDelay <= 0 {
		cfg.unhealthyDelay = b.Max()
	}
	return &Strategy{
		cfg:      cfg,
		backoff:  b,
		children: make(map[string]*childState),
		sweepAt:  minSweepThreshold,
	}
}

// HandleFailure implements actor.SupervisorStrategy. It ignores rs: protoactor's
// RestartStatistics only grows when a strategy calls Fail, and this one keeps its own
// bounded history instead.
func (s *Strategy) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, message any) {
	directive := s.cfg.decider(reason)
	// A guardian has no parent to escalate to and panics if asked; for top-level actors the
	// nearest safe meaning of "not mine to handle" is to stop the child.
	if directive == actor.EscalateDirective && isGuardian(sup) {
		directive = actor.StopDirective
	}

	proc, alive := system.ProcessRegistry.Get(child)
	proc = incarnation(proc)
	now := s.cfg.now()
	ev := Event{Child: child, Reason: reason, Directive: directive}

	s.mu.Lock()
	st := s.stateLocked(system, child, proc, alive)
	st.lastReason = describe(reason)
	if directive == actor.RestartDirective {
		st.restarts++
		ev.Restarts, ev.Unhealthy = st.loop.Failure(now)
		if ev.Unhealthy {
			ev.Delay = s.cfg.unhealthyDelay
		} else {
			ev.Delay = st.backoff.Next(ev.Restarts)
		}
		st.loop.Restarted(now.Add(ev.Delay))
	} else {
		ev.Restarts = st.loop.Streak()
		ev.Unhealthy = st.loop.Unhealthy(now)
	}
	s.maybeSweepLocked()
	s.mu.Unlock()

	s.publish(system, ev)

	switch directive {
	case actor.ResumeDirective:
		sup.ResumeChildren(child)
	case actor.RestartDirective:
		s.restart(system, sup, child, proc, ev.Delay)
	case actor.StopDirective:
		sup.StopChildren(child)
	case actor.EscalateDirective:
		sup.EscalateFailure(reason, message)
	}
}

func (s *Strategy) restart(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, proc actor.Process, delay time.Duration) {
	if delay <= 0 {
		sup.RestartChildren(child)
		return
	}
	// The child stays suspended until the timer fires: its mailbox keeps queuing user
	// messages but processes none, which is what makes the delay effective.
	time.AfterFunc(delay, func() {
		// If the child was stopped meanwhile (or replaced by a new actor with the same name)
		// a Restart would only produce a dead letter or hit the wrong incarnation.
		if proc != nil {
			if p, ok := system.ProcessRegistry.Get(child); !ok || p != proc {
				return
			}
		}
		sup.RestartChildren(child)
	})
}

func (s *Strategy) publish(system *actor.ActorSystem, ev Event) {
	// Mirrors protoactor's own strategies so EventStream subscribers see our decisions too.
	system.EventStream.Publish(&actor.SupervisorEvent{Child: ev.Child, Reason: ev.Reason, Directive: ev.Directive})
	if s.cfg.events != nil {
		s.cfg.events(ev)
	}
}

func (s *Strategy) stateLocked(system *actor.ActorSystem, child *actor.PID, proc actor.Process, alive bool) *childState {
	st := s.children[child.Id]
	if st != nil && (!alive || st.proc == proc) {
		return st
	}
	st = &childState{pid: child, system: system, proc: proc, backoff: s.backoff.Clone()}
	st.loop.init(s.cfg.loopLimit, s.cfg.loopWindow, s.cfg.quiet)
	s.children[child.Id] = st
	return st
}

// maybeSweepLocked drops state of children that no longer exist. The threshold doubles with
// the live population, so the cost is amortised O(1) per failure and memory stays
// proportional to the children alive, however many come and go.
func (s *Strategy) maybeSweepLocked() {
	if len(s.children) < s.sweepAt {
		return
	}
	s.sweepLocked()
	s.sweepAt = max(minSweepThreshold, len(s.children)*sweepGrowth)
}

func (s *Strategy) sweepLocked() {
	for id, st := range s.children {
		if !st.aliveLocked() {
			delete(s.children, id)
		}
	}
}

func (st *childState) aliveLocked() bool {
	p, ok := st.system.ProcessRegistry.Get(st.pid)
	return ok && (st.proc == nil || p == st.proc)
}

// Health returns the state of the child with the given PID id. Children that never failed,
// and children that have terminated, report the zero ChildHealth: a stopped child is
// reported to its owner by Terminated, not here.
func (s *Strategy) Health(childID string) ChildHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.children[childID]
	if st == nil {
		return ChildHealth{}
	}
	if !st.aliveLocked() {
		delete(s.children, childID)
		return ChildHealth{}
	}
	return st.healthLocked(s.cfg.now())
}

// Snapshot returns the health of every live child that has failed at least once, keyed by
// PID id.
func (s *Strategy) Snapshot() map[string]ChildHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	now := s.cfg.now()
	out := make(map[string]ChildHealth, len(s.children))
	for id, st := range s.children {
		out[id] = st.healthLocked(now)
	}
	return out
}

// Forget drops the state kept for a child, e.g. when its owner removes it from the config.
func (s *Strategy) Forget(childID string) {
	s.mu.Lock()
	delete(s.children, childID)
	s.mu.Unlock()
}

func (st *childState) healthLocked(now time.Time) ChildHealth {
	return ChildHealth{Restarts: st.restarts, Unhealthy: st.loop.Unhealthy(now), LastReason: st.lastReason}
}

// incarnation returns the process if it identifies one local actor instance, nil otherwise:
// remote processes are looked up afresh on every call and cannot be compared.
func incarnation(p actor.Process) actor.Process {
	if _, ok := p.(*actor.ActorProcess); ok {
		return p
	}
	return nil
}

// isGuardian reports whether sup is protoactor's guardian process rather than an actor
// context; only actor contexts know their own PID.
func isGuardian(sup actor.Supervisor) bool {
	_, ok := sup.(interface{ Self() *actor.PID })
	return !ok
}

// describe bounds the stored reason so a child panicking with a huge value cannot pin it.
func describe(reason any) string {
	var s string
	switch r := reason.(type) {
	case error:
		s = r.Error()
	case string:
		s = r
	default:
		s = fmt.Sprint(r)
	}
	if len(s) > maxReasonLen {
		n := maxReasonLen
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}
