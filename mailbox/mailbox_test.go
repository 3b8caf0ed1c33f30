package mailbox

import (
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/actors/actorsys"
)

const waitLimit = 10 * time.Second

type ctl string

func (ctl) ControlMessage() {}

type data string

// recorder is a MessageInvoker that records what it is given. Like the real actor context,
// escalating a failure suspends the mailbox.
type recorder struct {
	mb      actor.Mailbox
	mu      sync.Mutex
	user    []any
	system  []any
	failure []any
	panicOn func(any) bool
}

func (r *recorder) InvokeSystemMessage(m any) {
	r.mu.Lock()
	r.system = append(r.system, m)
	r.mu.Unlock()
}

func (r *recorder) InvokeUserMessage(m any) {
	r.mu.Lock()
	r.user = append(r.user, m)
	r.mu.Unlock()
	if r.panicOn != nil && r.panicOn(m) {
		panic(fmt.Sprintf("cannot handle %v", m))
	}
}

func (r *recorder) EscalateFailure(reason, _ any) {
	r.mu.Lock()
	r.failure = append(r.failure, reason)
	r.mu.Unlock()
	r.mb.PostSystemMessage(&actor.SuspendMailbox{})
}

func (r *recorder) users() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.user...)
}

// manualDispatcher runs scheduled work only when the test says so, which makes queue
// contents and ordering fully deterministic.
type manualDispatcher struct {
	mu      sync.Mutex
	pending []func()
}

func (d *manualDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	d.pending = append(d.pending, fn)
	d.mu.Unlock()
}

func (d *manualDispatcher) Throughput() int { return 300 }

// drain runs everything scheduled, including work scheduled meanwhile, and returns how many
// runs that took. A mailbox that spins never returns from its run and hangs the test.
func (d *manualDispatcher) drain() int {
	n := 0
	for {
		d.mu.Lock()
		if len(d.pending) == 0 {
			d.mu.Unlock()
			return n
		}
		fn := d.pending[0]
		d.pending = d.pending[1:]
		d.mu.Unlock()
		fn()
		n++
	}
}

func newTestMailbox(t *testing.T, opts ...Option) (*mailbox, *recorder, *manualDispatcher, *Stats) {
	t.Helper()
	stats := new(Stats)
	mb := Producer(append([]Option{WithStats(stats)}, opts...)...)().(*mailbox)
	rec := &recorder{mb: mb}
	d := &manualDispatcher{}
	mb.RegisterHandlers(rec, d)
	mb.Start()
	return mb, rec, d, stats
}

func checkStats(t *testing.T, s *Stats, posted, received, dropped uint64, depth int64) {
	t.Helper()
	if s.Posted() != posted || s.Received() != received || s.Dropped() != dropped || s.Depth() != depth {
		t.Fatalf("stats posted=%d received=%d dropped=%d depth=%d, want %d %d %d %d",
			s.Posted(), s.Received(), s.Dropped(), s.Depth(), posted, received, dropped, depth)
	}
}

func TestLaneOrderAndControlFirst(t *testing.T) {
	mb, rec, d, stats := newTestMailbox(t, WithCapacity(10))
	env := &actor.MessageEnvelope{Message: ctl("c2")}
	poison := &actor.PoisonPill{}
	for _, m := range []any{data("d1"), ctl("c1"), data("d2"), env, data("d3"), poison, data("d4")} {
		mb.PostUserMessage(m)
	}
	if mb.UserMessageCount() != 7 {
		t.Fatalf("UserMessageCount = %d", mb.UserMessageCount())
	}
	if runs := d.drain(); runs != 1 {
		t.Fatalf("%d runs for one burst, want 1", runs)
	}
	want := []any{ctl("c1"), env, poison, data("d1"), data("d2"), data("d3"), data("d4")}
	if got := rec.users(); !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	checkStats(t, stats, 7, 7, 0, 0)
	if stats.Scheduled() != 1 || mb.UserMessageCount() != 0 {
		t.Fatalf("scheduled %d, count %d", stats.Scheduled(), mb.UserMessageCount())
	}
}

func TestOverflow(t *testing.T) {
	cases := []struct {
		policy      Policy
		wantDropped []any
		wantOrder   []any
	}{
		{DropNewest, []any{data("d3"), data("d4"), data("d5")}, []any{ctl("c"), data("d0"), data("d1"), data("d2")}},
		{DropOldest, []any{data("d0"), data("d1"), data("d2")}, []any{ctl("c"), data("d3"), data("d4"), data("d5")}},
	}
	for _, c := range cases {
		t.Run(c.policy.String(), func(t *testing.T) {
			var dropped []any // the callback runs on the posting goroutine: this one
			mb, rec, d, stats := newTestMailbox(t, WithCapacity(3), WithPolicy(c.policy),
				WithOnDrop(func(m any) { dropped = append(dropped, m) }))
			for i := range 6 {
				mb.PostUserMessage(data(fmt.Sprintf("d%d", i)))
			}
			checkStats(t, stats, 6, 0, 3, 3)
			// A full data lane must not hold back control messages.
			mb.PostUserMessage(ctl("c"))
			checkStats(t, stats, 7, 0, 3, 4)
			if !reflect.DeepEqual(dropped, c.wantDropped) {
				t.Fatalf("dropped %v, want %v", dropped, c.wantDropped)
			}
			d.drain()
			if got := rec.users(); !reflect.DeepEqual(got, c.wantOrder) {
				t.Fatalf("delivered %v, want %v", got, c.wantOrder)
			}
			checkStats(t, stats, 7, 4, 3, 0)
		})
	}
}

func TestSuspendedMailboxStillRunsSystemMessages(t *testing.T) {
	mb, rec, d, _ := newTestMailbox(t)
	rec.panicOn = func(m any) bool { return m == data("bad") }
	for _, m := range []string{"a", "bad", "b", "c"} {
		mb.PostUserMessage(data(m))
	}
	d.drain()
	if got := rec.users(); !reflect.DeepEqual(got, []any{data("a"), data("bad")}) {
		t.Fatalf("delivered %v before suspension", got)
	}
	if len(rec.failure) != 1 || mb.UserMessageCount() != 2 {
		t.Fatalf("failures %v, queued %d", rec.failure, mb.UserMessageCount())
	}
	// Suspended: user messages wait, system messages (e.g. Stop, Restart) still get through.
	mb.PostUserMessage(data("d"))
	mb.PostSystemMessage(&actor.Restart{})
	d.drain()
	if len(rec.system) != 1 || len(rec.users()) != 2 {
		t.Fatalf("system %v users %v", rec.system, rec.users())
	}
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	d.drain()
	want := []any{data("a"), data("bad"), data("b"), data("c"), data("d")}
	if got := rec.users(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after resume %v, want %v", got, want)
	}
}

// goDispatcher runs each scheduled mailbox on a new goroutine, like protoactor's default,
// and tracks how many runs are in flight.
type goDispatcher struct {
	active  atomic.Int32
	stopped chan struct{}
}

func (d *goDispatcher) Schedule(fn func()) {
	d.active.Add(1)
	go func() {
		fn()
		d.active.Add(-1)
		d.stopped <- struct{}{}
	}()
}

func (d *goDispatcher) Throughput() int { return 300 }

func TestIdleAfterDropsDoesNotSpin(t *testing.T) {
	for _, p := range []Policy{DropNewest, DropOldest} {
		t.Run(p.String(), func(t *testing.T) {
			stats := new(Stats)
			mb := Producer(WithCapacity(4), WithPolicy(p), WithStats(stats))().(*mailbox)
			entered, release := make(chan struct{}), make(chan struct{})
			total := make(chan struct{})
			var handled atomic.Int32
			inv := &funcInvoker{user: func(m any) {
				if m == data("first") {
					close(entered)
					<-release
				}
				handled.Add(1)
				if m == data("last") {
					close(total)
				}
			}}
			d := &goDispatcher{stopped: make(chan struct{}, 64)}
			mb.RegisterHandlers(inv, d)

			mb.PostUserMessage(data("first"))
			wait(t, entered, "first message")
			for i := range 100 {
				mb.PostUserMessage(data(fmt.Sprint(i)))
			}
			mb.PostUserMessage(data("last"))
			if p == DropNewest {
				// "last" was rejected; make room by letting the actor run, then resend.
				close(release)
				drainRuns(t, d)
				mb.PostUserMessage(data("last"))
			} else {
				close(release)
			}
			wait(t, total, "last message")
			drainRuns(t, d)

			if d.active.Load() != 0 {
				t.Fatal("a mailbox run is still executing on an idle mailbox")
			}
			scheduled := stats.Scheduled()
			if stats.Depth() != 0 || mb.UserMessageCount() != 0 {
				t.Fatalf("depth %d count %d after draining", stats.Depth(), mb.UserMessageCount())
			}
			if got := uint64(handled.Load()); got != stats.Received() || stats.Posted() != stats.Received()+stats.Dropped() {
				t.Fatalf("handled %d, stats posted=%d received=%d dropped=%d",
					got, stats.Posted(), stats.Received(), stats.Dropped())
			}
			if stats.Dropped() == 0 {
				t.Fatal("expected drops")
			}
			// One more message costs exactly one more run, which then ends: nothing was left
			// looping in the background.
			mb.PostUserMessage(data("again"))
			drainRuns(t, d)
			if stats.Scheduled() != scheduled+1 || d.active.Load() != 0 {
				t.Fatalf("scheduled %d -> %d, active %d", scheduled, stats.Scheduled(), d.active.Load())
			}
		})
	}
}

// drainRuns waits until no mailbox run is in flight.
func drainRuns(t *testing.T, d *goDispatcher) {
	t.Helper()
	for d.active.Load() != 0 {
		wait(t, d.stopped, "mailbox run to finish")
	}
	// Empty the notifications of runs that already finished.
	for {
		select {
		case <-d.stopped:
		default:
			return
		}
	}
}

type funcInvoker struct{ user func(any) }

func (f *funcInvoker) InvokeSystemMessage(any)  {}
func (f *funcInvoker) InvokeUserMessage(m any)  { f.user(m) }
func (f *funcInvoker) EscalateFailure(any, any) {}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
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

type countingMiddleware struct {
	started, posted, received, empty atomic.Int32
}

func (c *countingMiddleware) MailboxStarted()     { c.started.Add(1) }
func (c *countingMiddleware) MessagePosted(any)   { c.posted.Add(1) }
func (c *countingMiddleware) MessageReceived(any) { c.received.Add(1) }
func (c *countingMiddleware) MailboxEmpty()       { c.empty.Add(1) }

func TestMiddleware(t *testing.T) {
	mw := &countingMiddleware{}
	mb, _, d, _ := newTestMailbox(t, WithCapacity(1), WithMiddleware(mw))
	mb.PostUserMessage(data("a"))
	mb.PostUserMessage(data("dropped"))
	mb.PostSystemMessage(&actor.Restart{})
	d.drain()
	if mw.started.Load() != 1 || mw.posted.Load() != 3 || mw.received.Load() != 2 || mw.empty.Load() != 1 {
		t.Fatalf("started=%d posted=%d received=%d empty=%d", mw.started.Load(), mw.posted.Load(),
			mw.received.Load(), mw.empty.Load())
	}
}

func newSystem() *actor.ActorSystem {
	return actorsys.New(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}

func TestActorStopAndPoison(t *testing.T) {
	sys := newSystem()
	for _, how := range []string{"stop", "poison"} {
		t.Run(how, func(t *testing.T) {
			entered, release, stopped := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var after atomic.Int32
			pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
				switch c.Message() {
				case data("block"):
					close(entered)
					<-release
				case data("queued"):
					after.Add(1)
				}
				if _, ok := c.Message().(*actor.Stopped); ok {
					close(stopped)
				}
			}, actor.WithMailbox(Producer(WithCapacity(8)))))
			sys.Root.Send(pid, data("block"))
			wait(t, entered, "block")
			sys.Root.Send(pid, data("queued"))
			var f *actor.Future
			if how == "stop" {
				f = sys.Root.StopFuture(pid)
			} else {
				f = sys.Root.PoisonFuture(pid)
			}
			close(release)
			if err := f.Wait(); err != nil {
				t.Fatal(err)
			}
			wait(t, stopped, "Stopped")
			// Both Stop (system lane) and PoisonPill (control lane) overtake queued data.
			if after.Load() != 0 {
				t.Fatalf("queued data handled after %s", how)
			}
		})
	}
}

func TestActorRestartedAfterPanicKeepsProcessing(t *testing.T) {
	sys := newSystem()
	got := make(chan any, 16)
	var starts atomic.Int32
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			starts.Add(1)
		case data:
			if m == "boom" {
				panic("boom")
			}
			got <- m
		case ctl:
			got <- m
		}
	}, actor.WithMailbox(Producer(WithCapacity(8))), actor.WithGuardian(actor.NewRestartingStrategy())))
	defer stop(sys, pid)
	for _, m := range []any{data("a"), data("boom"), data("b"), ctl("c"), data("boom"), data("d")} {
		sys.Root.Send(pid, m)
	}
	var seen []any
	for range 4 {
		seen = append(seen, wait(t, got, "message"))
	}
	// Control may overtake data at any point, so only the data order is fixed.
	var dataSeen []any
	for _, m := range seen {
		if _, ok := m.(data); ok {
			dataSeen = append(dataSeen, m)
		}
	}
	if !reflect.DeepEqual(dataSeen, []any{data("a"), data("b"), data("d")}) || len(seen) != 4 {
		t.Fatalf("received %v", seen)
	}
	if starts.Load() != 3 {
		t.Fatalf("%d starts, want 3 (two restarts)", starts.Load())
	}
}

type seqMsg struct{ sender, seq int }

type check struct{}

func (check) ControlMessage() {}

func TestConcurrentSenders(t *testing.T) {
	const senders, perSender = 16, 2000
	for _, tc := range []struct {
		policy   Policy
		capacity int
	}{{DropNewest, 64}, {DropOldest, 64}, {DropNewest, senders * perSender}} {
		t.Run(fmt.Sprintf("%v/%d", tc.policy, tc.capacity), func(t *testing.T) {
			sys := newSystem()
			stats := new(Stats)
			var callbackDrops atomic.Uint64
			var want atomic.Int64
			want.Store(-1)
			done := make(chan struct{})
			var once sync.Once
			last := make([]int, senders)
			for i := range last {
				last[i] = -1
			}
			processed := int64(0)
			var orderErr error
			pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
				switch m := c.Message().(type) {
				case seqMsg:
					if m.seq <= last[m.sender] && orderErr == nil {
						orderErr = fmt.Errorf("sender %d: seq %d after %d", m.sender, m.seq, last[m.sender])
					}
					last[m.sender] = m.seq
					processed++
				case check:
				default:
					return
				}
				if processed == want.Load() {
					once.Do(func() { close(done) })
				}
			}, actor.WithMailbox(Producer(WithCapacity(tc.capacity), WithPolicy(tc.policy), WithStats(stats),
				WithOnDrop(func(any) { callbackDrops.Add(1) })))))
			defer stop(sys, pid)

			var wg sync.WaitGroup
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perSender {
						sys.Root.Send(pid, seqMsg{s, i})
					}
				}()
			}
			wg.Wait()
			if stats.Posted() != senders*perSender {
				t.Fatalf("posted %d", stats.Posted())
			}
			want.Store(int64(stats.Posted() - stats.Dropped()))
			// Nudge the actor in case it finished before it could know the target.
			sys.Root.Send(pid, check{})
			wait(t, done, "all accepted messages")
			if orderErr != nil {
				t.Fatal(orderErr)
			}
			if callbackDrops.Load() != stats.Dropped() {
				t.Fatalf("callback saw %d drops, stats %d", callbackDrops.Load(), stats.Dropped())
			}
			if tc.capacity == senders*perSender && stats.Dropped() != 0 {
				t.Fatalf("%d drops with room for everything", stats.Dropped())
			}
			t.Logf("posted %d, dropped %d", stats.Posted(), stats.Dropped())
		})
	}
}

func stop(sys *actor.ActorSystem, pid *actor.PID) { _ = sys.Root.StopFuture(pid).Wait() }

type flush struct{ ch chan struct{} }

func BenchmarkThroughput(b *testing.B) {
	mailboxes := []struct {
		name string
		mb   func(n int, s *Stats) actor.MailboxProducer
	}{
		{"unbounded", func(int, *Stats) actor.MailboxProducer { return actor.Unbounded() }},
		// Room for every message, so the comparison with Unbounded measures queueing only.
		{"bounded", func(n int, s *Stats) actor.MailboxProducer { return Producer(WithCapacity(n+1), WithStats(s)) }},
		// Senders outrun the actor; shows what shedding costs the senders.
		{"bounded-1024-drop-oldest", func(_ int, s *Stats) actor.MailboxProducer {
			return Producer(WithCapacity(1024), WithPolicy(DropOldest), WithStats(s))
		}},
	}
	for _, senders := range []int{1, 8} {
		for _, mbx := range mailboxes {
			b.Run(fmt.Sprintf("%s/senders=%d", mbx.name, senders), func(b *testing.B) {
				sys := newSystem()
				stats := new(Stats)
				var count int
				pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
					switch m := c.Message().(type) {
					case int:
						count++
					case flush:
						close(m.ch)
					}
				}, actor.WithMailbox(mbx.mb(b.N, stats))))
				defer stop(sys, pid)
				fin := make(chan struct{})
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for s := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := s; i < b.N; i += senders {
							sys.Root.Send(pid, i)
						}
					}()
				}
				wg.Wait()
				// The newest message is never evicted, so it marks the end for every mailbox.
				sys.Root.Send(pid, flush{fin})
				<-fin
				elapsed := time.Since(start)
				b.StopTimer()
				if uint64(count)+stats.Dropped() != uint64(b.N) {
					b.Fatalf("handled %d + dropped %d of %d", count, stats.Dropped(), b.N)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				b.ReportMetric(float64(stats.Dropped())/float64(b.N), "dropped/msg")
			})
		}
	}
}
