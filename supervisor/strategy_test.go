package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/actors/actorsys"
	"github.com/rs/zerolog"
)

const waitLimit = 10 * time.Second

type ping struct{}

type echo struct{ n int }

func newSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	return actorsys.New(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

type timedEvent struct {
	Event
	at time.Time
}

func eventSink() (func(Event), chan timedEvent) {
	ch := make(chan timedEvent, 256)
	return func(e Event) { ch <- timedEvent{e, time.Now()} }, ch
}

// crasher panics with reason on every ping and reports each start.
func crasher(reason func() any, started chan<- struct{}, stopped chan<- struct{}) actor.ReceiveFunc {
	return func(c actor.Context) {
		switch c.Message().(type) {
		case *actor.Started:
			started <- struct{}{}
		case *actor.Stopped:
			if stopped != nil {
				close(stopped)
			}
		case *ping:
			panic(reason())
		}
	}
}

func echoer(c actor.Context) {
	if m, ok := c.Message().(*echo); ok {
		c.Respond(m.n)
	}
}

type family struct {
	children   chan []*actor.PID
	terminated chan *actor.PID
}

// parentProps spawns the given children on start and reports their termination.
func parentProps(s *Strategy, f *family, kids map[string]*actor.Props) *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			var pids []*actor.PID
			for _, name := range []string{"bad", "good"} {
				if p, ok := kids[name]; ok {
					pid, err := c.SpawnNamed(p, name)
					if err != nil {
						panic(err)
					}
					pids = append(pids, pid)
				}
			}
			f.children <- pids
		case *actor.Terminated:
			f.terminated <- m.Who
		}
	}, actor.WithSupervisor(s))
}

func TestStrategyRestartsWithBackoffKeepsSiblingAndMarksUnhealthy(t *testing.T) {
	sys := newSystem(t)
	onEvent, events := eventSink()
	s := NewStrategy(
		WithBackoff(time.Millisecond, 20*time.Millisecond),
		WithJitter(NoJitter),
		WithCrashLoop(5, time.Minute),
		WithEvents(onEvent),
	)
	started := make(chan struct{}, 64)
	f := &family{children: make(chan []*actor.PID, 1), terminated: make(chan *actor.PID, 4)}
	parent := sys.Root.Spawn(parentProps(s, f, map[string]*actor.Props{
		"bad":  actor.PropsFromFunc(crasher(func() any { return errors.New("boom") }, started, nil)),
		"good": actor.PropsFromFunc(echoer),
	}))
	defer stop(sys, parent)
	kids := recv(t, f.children, "children")
	bad, good := kids[0], kids[1]
	recv(t, started, "first start")

	const failures = 8
	for range failures {
		sys.Root.Send(bad, &ping{})
	}

	// The sibling must keep answering while its brother crash-loops.
	var wg sync.WaitGroup
	var answered atomic.Int32
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := sys.Root.RequestFuture(good, &echo{i}, waitLimit).Result()
			if err != nil || res != i {
				t.Errorf("echo %d: got %v, %v", i, res, err)
				return
			}
			answered.Add(1)
		}()
	}

	got := make([]timedEvent, failures)
	for i := range got {
		got[i] = recv(t, events, fmt.Sprintf("event %d", i+1))
	}
	for i := range failures {
		recv(t, started, fmt.Sprintf("restart %d", i+1))
	}
	wg.Wait()
	if answered.Load() != 50 {
		t.Fatalf("sibling answered %d of 50", answered.Load())
	}

	wantDelay := []time.Duration{1, 2, 4, 8, 20, 20, 20, 20}
	for i, e := range got {
		if e.Child.Id != bad.Id || e.Directive != actor.RestartDirective {
			t.Fatalf("event %d: %+v", i, e.Event)
		}
		if e.Restarts != i+1 {
			t.Errorf("event %d: Restarts %d, want %d", i, e.Restarts, i+1)
		}
		if e.Delay != wantDelay[i]*time.Millisecond {
			t.Errorf("event %d: Delay %v, want %v", i, e.Delay, wantDelay[i]*time.Millisecond)
		}
		if want := i >= 4; e.Unhealthy != want {
			t.Errorf("event %d: Unhealthy %v, want %v", i, e.Unhealthy, want)
		}
		// The next failure can only follow the delayed restart; a lower bound is safe to assert.
		if i > 0 {
			if gap := e.at.Sub(got[i-1].at); gap < got[i-1].Delay {
				t.Errorf("event %d came %v after the previous one, before its %v delay", i, gap, got[i-1].Delay)
			}
		}
	}

	h := s.Health(bad.Id)
	if h.Restarts != failures || !h.Unhealthy || h.LastReason != "boom" {
		t.Errorf("Health(bad) = %+v", h)
	}
	if h := s.Health(good.Id); h != (ChildHealth{}) {
		t.Errorf("Health(good) = %+v, want zero", h)
	}
	snap := s.Snapshot()
	if len(snap) != 1 || snap[bad.Id] != h {
		t.Errorf("Snapshot = %+v", snap)
	}
	select {
	case who := <-f.terminated:
		t.Fatalf("%v terminated; a crash-looping child must keep being retried", who)
	default:
	}
}

func TestStrategyStopsChildOnConfigError(t *testing.T) {
	sys := newSystem(t)
	onEvent, events := eventSink()
	s := NewStrategy(WithBackoff(time.Millisecond, time.Millisecond), WithEvents(onEvent))
	started := make(chan struct{}, 4)
	var logs syncBuffer
	f := &family{children: make(chan []*actor.PID, 1), terminated: make(chan *actor.PID, 4)}
	cause := errors.New(`unknown register type "float128"`)
	parent := sys.Root.Spawn(parentProps(s, f, map[string]*actor.Props{
		// LogPanics re-panics with the original value, so the decider still sees ErrConfig.
		"bad": actor.PropsFromProducer(func() actor.Actor {
			log := zerolog.New(&logs)
			return LogPanics(func(string) zerolog.Logger { return log }, crasher(func() any { return ConfigError(cause) }, started, nil))
		}),
	}))
	defer stop(sys, parent)
	bad := recv(t, f.children, "children")[0]
	recv(t, started, "start")

	sys.Root.Send(bad, &ping{})
	sys.Root.Send(bad, &ping{}) // queued behind the failure; must never restart the child

	if who := recv(t, f.terminated, "Terminated"); who.Id != bad.Id {
		t.Fatalf("terminated %v, want %v", who, bad)
	}
	e := recv(t, events, "event")
	if e.Directive != actor.StopDirective || e.Delay != 0 {
		t.Fatalf("event %+v, want Stop without delay", e.Event)
	}
	if err, _ := e.Reason.(error); !errors.Is(err, ErrConfig) || !errors.Is(err, cause) {
		t.Fatalf("reason %v does not wrap ErrConfig and the cause", e.Reason)
	}
	select {
	case <-started:
		t.Fatal("config-error child was restarted")
	case e := <-events:
		t.Fatalf("unexpected second decision %+v", e.Event)
	default:
	}
	// Terminated children are not kept: state stays proportional to live children.
	if h := s.Health(bad.Id); h != (ChildHealth{}) {
		t.Errorf("Health after stop = %+v", h)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("want one panic log line, got %d:\n%s", n, logs.String())
	}
}

func TestStrategyAsGuardian(t *testing.T) {
	sys := newSystem(t)
	onEvent, events := eventSink()
	s := NewStrategy(WithBackoff(time.Millisecond, 4*time.Millisecond), WithJitter(NoJitter),
		WithCrashLoop(2, time.Minute), WithEvents(onEvent))
	started := make(chan struct{}, 16)
	// Top-level actors ignore their own WithSupervisor; WithGuardian is what applies.
	pid := sys.Root.Spawn(actor.PropsFromFunc(
		crasher(func() any { return "flaky" }, started, nil), actor.WithGuardian(s)))
	defer stop(sys, pid)
	recv(t, started, "start")

	const failures = 12 // more than protoactor's default 10-in-10s, which would stop it
	for range failures {
		sys.Root.Send(pid, &ping{})
	}
	for i := range failures {
		e := recv(t, events, "event")
		if e.Directive != actor.RestartDirective || e.Restarts != i+1 || e.Unhealthy != (i >= 1) {
			t.Fatalf("event %d: %+v", i, e.Event)
		}
		recv(t, started, "restart")
	}
	if h := s.Health(pid.Id); h.Restarts != failures || !h.Unhealthy || h.LastReason != "flaky" {
		t.Fatalf("Health = %+v", h)
	}
}

func TestStrategyGuardianTurnsEscalateIntoStop(t *testing.T) {
	sys := newSystem(t)
	onEvent, events := eventSink()
	s := NewStrategy(WithEvents(onEvent),
		WithDecider(func(any) actor.Directive { return actor.EscalateDirective }))
	started := make(chan struct{}, 4)
	stopped := make(chan struct{})
	pid := sys.Root.Spawn(actor.PropsFromFunc(
		crasher(func() any { return "fatal" }, started, stopped), actor.WithGuardian(s)))
	recv(t, started, "start")
	sys.Root.Send(pid, &ping{})
	recv(t, stopped, "Stopped")
	if e := recv(t, events, "event"); e.Directive != actor.StopDirective {
		t.Fatalf("event %+v, want Stop", e.Event)
	}
}

func TestStrategyResumeKeepsState(t *testing.T) {
	sys := newSystem(t)
	s := NewStrategy(WithDecider(func(any) actor.Directive { return actor.ResumeDirective }))
	f := &family{children: make(chan []*actor.PID, 1), terminated: make(chan *actor.PID, 1)}
	var starts atomic.Int32
	count := 0
	parent := sys.Root.Spawn(parentProps(s, f, map[string]*actor.Props{
		"bad": actor.PropsFromFunc(func(c actor.Context) {
			switch m := c.Message().(type) {
			case *actor.Started:
				starts.Add(1)
			case *ping:
				count++
				panic("oops")
			case *echo:
				c.Respond(count + m.n)
			}
		}),
	}))
	defer stop(sys, parent)
	bad := recv(t, f.children, "children")[0]
	sys.Root.Send(bad, &ping{})
	sys.Root.Send(bad, &ping{})
	res, err := sys.Root.RequestFuture(bad, &echo{}, waitLimit).Result()
	if err != nil || res != 2 || starts.Load() != 1 {
		t.Fatalf("got %v, %v after %d starts; want state kept (2) and no restart", res, err, starts.Load())
	}
}

// fakeSupervisor records directives; it lets the tests drive HandleFailure with a fake clock.
type fakeSupervisor struct {
	restarts chan *actor.PID
	stops    chan *actor.PID
}

// Self makes the fake look like an actor context rather than a guardian.
func (f *fakeSupervisor) Self() *actor.PID { return nil }

func (f *fakeSupervisor) Children() []*actor.PID             { return nil }
func (f *fakeSupervisor) EscalateFailure(any, any)           {}
func (f *fakeSupervisor) ResumeChildren(...*actor.PID)       {}
func (f *fakeSupervisor) RestartChildren(pids ...*actor.PID) { f.restarts <- pids[0] }
func (f *fakeSupervisor) StopChildren(pids ...*actor.PID)    { f.stops <- pids[0] }

func TestStrategyHealthRecoversAfterQuietPeriod(t *testing.T) {
	sys := newSystem(t)
	child := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	defer stop(sys, child)

	now := t0
	s := NewStrategy(WithBackoff(time.Millisecond, time.Millisecond), WithCrashLoop(2, time.Second),
		WithQuietPeriod(time.Minute), WithUnhealthyDelay(time.Millisecond))
	s.cfg.now = func() time.Time { return now }
	sup := &fakeSupervisor{restarts: make(chan *actor.PID, 8), stops: make(chan *actor.PID, 8)}

	fail := func() {
		s.HandleFailure(sys, sup, child, actor.NewRestartStatistics(), "x", nil)
		recv(t, sup.restarts, "restart")
	}
	fail()
	fail()
	if h := s.Health(child.Id); !h.Unhealthy || h.Restarts != 2 {
		t.Fatalf("after 2 quick failures: %+v", h)
	}
	now = now.Add(time.Minute - time.Millisecond)
	if !s.Health(child.Id).Unhealthy {
		t.Fatal("healthy before the quiet period has passed")
	}
	now = now.Add(time.Millisecond + time.Millisecond)
	if h := s.Health(child.Id); h.Unhealthy || h.Restarts != 2 {
		t.Fatalf("after the quiet period: %+v, want healthy with history", h)
	}
	fail()
	if h := s.Health(child.Id); h.Unhealthy || h.Restarts != 3 {
		t.Fatalf("one failure after recovery: %+v", h)
	}
}

func TestStrategyForgetsTerminatedChildren(t *testing.T) {
	sys := newSystem(t)
	s := NewStrategy(WithBackoff(time.Millisecond, time.Millisecond))
	sup := &fakeSupervisor{restarts: make(chan *actor.PID, 1024), stops: make(chan *actor.PID, 8)}
	var live []*actor.PID
	for i := range 3 * minSweepThreshold {
		pid := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
		s.HandleFailure(sys, sup, pid, nil, "x", nil)
		recv(t, sup.restarts, "restart")
		if i%8 == 0 {
			live = append(live, pid)
			continue
		}
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	n := len(s.children)
	s.mu.Unlock()
	if n > 2*minSweepThreshold {
		t.Errorf("%d entries kept for %d live children", n, len(live))
	}
	if snap := s.Snapshot(); len(snap) != len(live) {
		t.Errorf("Snapshot has %d entries, want %d", len(snap), len(live))
	}
	for _, pid := range live {
		sys.Root.StopFuture(pid).Wait()
	}
}

func TestStrategyNewIncarnationStartsFresh(t *testing.T) {
	sys := newSystem(t)
	s := NewStrategy(WithBackoff(time.Millisecond, time.Millisecond))
	sup := &fakeSupervisor{restarts: make(chan *actor.PID, 8), stops: make(chan *actor.PID, 8)}
	props := actor.PropsFromFunc(func(actor.Context) {})
	pid, _ := sys.Root.SpawnNamed(props, "dev")
	s.HandleFailure(sys, sup, pid, nil, "x", nil)
	recv(t, sup.restarts, "restart")
	sys.Root.StopFuture(pid).Wait()
	pid, err := sys.Root.SpawnNamed(props, "dev")
	if err != nil {
		t.Fatal(err)
	}
	defer stop(sys, pid)
	s.HandleFailure(sys, sup, pid, nil, "y", nil)
	recv(t, sup.restarts, "restart")
	if h := s.Health("dev"); h.Restarts != 1 || h.LastReason != "y" {
		t.Fatalf("respawned child inherited history: %+v", h)
	}
}

func TestDefaultDecider(t *testing.T) {
	cause := errors.New("no such port")
	cases := []struct {
		reason any
		want   actor.Directive
	}{
		{ConfigError(cause), actor.StopDirective},
		{fmt.Errorf("connector modbus-1: %w", ConfigError(cause)), actor.StopDirective},
		{ErrConfig, actor.StopDirective},
		{cause, actor.RestartDirective},
		{"string panic", actor.RestartDirective},
		{nil, actor.RestartDirective},
	}
	for _, c := range cases {
		if got := DefaultDecider(c.reason); got != c.want {
			t.Errorf("DefaultDecider(%v) = %v, want %v", c.reason, got, c.want)
		}
	}
	if ConfigError(nil) != nil {
		t.Error("ConfigError(nil) must be nil")
	}
	if err := ConfigError(cause); !errors.Is(err, cause) || err.Error() != "configuration error: no such port" {
		t.Errorf("ConfigError = %q", err)
	}
	if err := ConfigError(ErrConfig); err != ErrConfig {
		t.Errorf("double wrap: %q", err)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogPanicsLogsEachPanicOnceWithStack(t *testing.T) {
	sys := newSystem(t)
	var logs syncBuffer
	started := make(chan struct{}, 8)
	s := NewStrategy(WithBackoff(time.Millisecond, time.Millisecond))
	log := zerolog.New(&logs)
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return LogPanics(func(string) zerolog.Logger { return log },
			crasher(func() any { return errors.New("sensor exploded") }, started, nil))
	}, actor.WithGuardian(s)), "plc-7")
	if err != nil {
		t.Fatal(err)
	}
	defer stop(sys, pid)
	recv(t, started, "start")
	sys.Root.Send(pid, &ping{})
	sys.Root.Send(pid, &ping{})
	recv(t, started, "restart 1")
	recv(t, started, "restart 2")

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines, got %d:\n%s", len(lines), logs.String())
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("bad JSON %q: %v", l, err)
		}
		stack, _ := rec["stack"].(string)
		if rec["level"] != "error" || rec["actor"] != "plc-7" || rec["message_type"] != "*supervisor.ping" ||
			rec["error"] != "sensor exploded" || !strings.Contains(stack, "goroutine") ||
			!strings.Contains(stack, "strategy_test.go") {
			t.Errorf("log line missing fields: %s", l)
		}
	}
}

// stop exists because `defer sys.Root.StopFuture(pid).Wait()` would stop pid at once: only
// the last call of a deferred chain is deferred.
func stop(sys *actor.ActorSystem, pid *actor.PID) {
	_ = sys.Root.StopFuture(pid).Wait()
}
