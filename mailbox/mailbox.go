// Package mailbox provides the gateway's bounded actor mailbox for protoactor-go.
//
// protoactor's own bounded mailboxes are unusable here: Bounded busy-spins the sender when
// full and BoundedDropping pins a CPU core after its first drop. This mailbox never blocks a
// sender and never runs when idle. It has two user lanes: control messages (see Control)
// are delivered before data and are never dropped; data is bounded, and on overflow either
// the incoming or the oldest queued message is dropped, counted and reported.
package mailbox

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Control marks a user message that must be neither dropped nor delayed by queued data:
// configuration changes, RPC requests and replies, stop requests. *actor.PoisonPill is
// treated as control too, so Poison stops an actor promptly and discards the data queued
// behind it (use an ordinary data message as a drain marker if the backlog matters).
type Control interface{ ControlMessage() }

// Policy says what a full data lane does with one more message.
type Policy int

const (
	// DropNewest rejects the incoming message; what is queued is delivered in order.
	DropNewest Policy = iota
	// DropOldest evicts the oldest queued data message to make room; favours fresh readings.
	DropOldest
)

func (p Policy) String() string {
	switch p {
	case DropNewest:
		return "drop-newest"
	case DropOldest:
		return "drop-oldest"
	default:
		return "unknown"
	}
}

// DefaultCapacity is the data-lane capacity when WithCapacity is not given.
const DefaultCapacity = 1024

// Stats counts user messages of the mailboxes it is given to. All methods are safe to call
// from any goroutine. When nothing is in flight, Posted == Received + Dropped + Depth.
// Give each actor its own Stats to see per-actor figures; one Stats shared by several
// mailboxes (props reused for many actors) sums them.
type Stats struct {
	depth     atomic.Int64
	dropped   atomic.Uint64
	posted    atomic.Uint64
	received  atomic.Uint64
	scheduled atomic.Uint64
}

// Depth returns the number of user messages queued (both lanes).
func (s *Stats) Depth() int64 { return s.depth.Load() }

// Dropped returns the number of data messages rejected or evicted because the lane was full.
func (s *Stats) Dropped() uint64 { return s.dropped.Load() }

// Posted returns the number of user messages offered to the mailbox, dropped ones included.
func (s *Stats) Posted() uint64 { return s.posted.Load() }

// Received returns the number of user messages taken off the queue for the actor.
func (s *Stats) Received() uint64 { return s.received.Load() }

// Scheduled returns how many times the mailbox was handed to the dispatcher to run. It only
// moves while messages arrive; a value that keeps rising on an idle actor means a spin.
func (s *Stats) Scheduled() uint64 { return s.scheduled.Load() }

type config struct {
	capacity    int
	policy      Policy
	onDrop      func(dropped any)
	stats       *Stats
	middlewares []actor.MailboxMiddleware
}

// Option configures Producer.
type Option func(*config)

// WithCapacity bounds the data lane to n messages (minimum 1; default DefaultCapacity).
// Memory is allocated as the queue fills, so a large bound costs nothing while unused.
func WithCapacity(n int) Option { return func(c *config) { c.capacity = n } }

// WithPolicy sets the overflow policy of the data lane (default DropNewest).
func WithPolicy(p Policy) Option { return func(c *config) { c.policy = p } }

// WithOnDrop sets a callback for every dropped message. It runs on the sending goroutine,
// outside the mailbox lock, so it must be fast and must not block; count or log, don't send
// back to the same actor. The value is what was posted, possibly an *actor.MessageEnvelope
// (see actor.UnwrapEnvelope).
func WithOnDrop(fn func(dropped any)) Option { return func(c *config) { c.onDrop = fn } }

// WithStats makes the mailbox count into s, which the caller keeps to read the figures.
func WithStats(s *Stats) Option { return func(c *config) { c.stats = s } }

// WithMiddleware adds protoactor mailbox middleware (e.g. its statistics hooks). As in
// protoactor, MessagePosted runs on the sender's goroutine, the others on the mailbox's;
// MessagePosted also sees messages that are then dropped.
func WithMiddleware(mw ...actor.MailboxMiddleware) Option {
	return func(c *config) { c.middlewares = append(c.middlewares, mw...) }
}

// Producer returns a protoactor MailboxProducer for actor.WithMailbox.
func Producer(opts ...Option) actor.MailboxProducer {
	cfg := config{capacity: DefaultCapacity}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.capacity < 1 {
		cfg.capacity = 1
	}
	if cfg.stats == nil {
		// Counting is cheap and keeps the hot path free of nil checks.
		cfg.stats = new(Stats)
	}
	return func() actor.Mailbox { return newMailbox(cfg) }
}

const (
	idle int32 = iota
	running
)

// initialRing is a ring's first size. Most mailboxes are a device's, which
// rarely holds more than a message or two (its poll tick, a command); at
// 1000 devices a first size of 16 was about 0.4 MB of heap more (two rings
// of 256 bytes per device where 64 do), and a busy actor's ring doubles
// past 4 in a few pushes.
const initialRing = 4

type mailbox struct {
	cfg config

	mu sync.Mutex
	// Control is unbounded: control messages are rare, come from the gateway itself and must
	// not be lost, and bounding them would just move the overflow decision to the sender.
	control ring
	data    ring
	// user mirrors control.len()+data.len(); written under mu, read lock-free by the run loop.
	user atomic.Int64

	sysMu  sync.Mutex
	system ring
	sys    atomic.Int64

	status    atomic.Int32
	suspended atomic.Bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
	// process is processMessages as a func value made once: a method value
	// taken at every schedule is an allocation per scheduling.
	process func()
}

var _ actor.Mailbox = (*mailbox)(nil)

func newMailbox(cfg config) *mailbox {
	m := &mailbox{cfg: cfg}
	m.data.limit = cfg.capacity
	m.process = m.processMessages
	return m
}

// PostUserMessage queues a user message. It never blocks beyond a short lock.
func (m *mailbox) PostUserMessage(message any) {
	// Batches are unpacked the way protoactor's default mailbox does it: each message is
	// queued, then the batch itself, so the actor can observe the batch boundary.
	if batch, ok := message.(actor.MessageBatch); ok {
		for _, msg := range batch.GetMessages() {
			m.PostUserMessage(msg)
		}
	}
	if env, ok := message.(*actor.MessageEnvelope); ok {
		if batch, ok := env.Message.(actor.MessageBatch); ok {
			for _, msg := range batch.GetMessages() {
				m.PostUserMessage(msg)
			}
		}
	}

	for _, mw := range m.cfg.middlewares {
		mw.MessagePosted(message)
	}
	stats := m.cfg.stats
	stats.posted.Add(1)

	if isControl(message) {
		m.mu.Lock()
		m.control.push(message)
		m.user.Add(1)
		stats.depth.Add(1)
		m.mu.Unlock()
		m.schedule()
		return
	}

	var dropped any
	full := false
	m.mu.Lock()
	if m.data.full() {
		full = true
		if m.cfg.policy == DropOldest {
			dropped = m.data.pop()
			m.data.push(message)
		} else {
			dropped = message
		}
	} else {
		m.data.push(message)
		m.user.Add(1)
		stats.depth.Add(1)
	}
	m.mu.Unlock()

	if full {
		// A full lane means a run is already scheduled or the actor is suspended, so a
		// rejected message needs no wake-up; evicting keeps the count, so neither does that.
		stats.dropped.Add(1)
		if m.cfg.onDrop != nil {
			m.cfg.onDrop(dropped)
		}
		return
	}
	m.schedule()
}

// PostSystemMessage queues a protoactor system message (start, stop, watch, failure,
// suspend/resume...). System messages are never dropped.
func (m *mailbox) PostSystemMessage(message any) {
	for _, mw := range m.cfg.middlewares {
		mw.MessagePosted(message)
	}
	m.sysMu.Lock()
	m.system.push(message)
	m.sys.Add(1)
	m.sysMu.Unlock()
	m.schedule()
}

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker = invoker
	m.dispatcher = dispatcher
}

func (m *mailbox) Start() {
	for _, mw := range m.cfg.middlewares {
		mw.MailboxStarted()
	}
}

func (m *mailbox) UserMessageCount() int { return int(m.user.Load()) }

// schedule hands the mailbox to the dispatcher unless a run is already under way; at most
// one goroutine ever runs the mailbox, and none while it is empty.
func (m *mailbox) schedule() {
	if m.status.CompareAndSwap(idle, running) {
		m.cfg.stats.scheduled.Add(1)
		m.dispatcher.Schedule(m.process)
	}
}

func (m *mailbox) processMessages() {
	for {
		m.run()
		m.status.Store(idle)
		// A sender that posted after run saw the queue empty, but before the Store above,
		// found the status running and did not schedule; look again so its message is not
		// stranded. Counts are only changed together with the queues, under their locks, so
		// a positive count always means there is something to pop: this cannot spin, which
		// is exactly what goes wrong in protoactor's BoundedDropping.
		user := m.user.Load()
		if m.sys.Load() == 0 && (m.suspended.Load() || user == 0) {
			if user == 0 && !m.suspended.Load() {
				for _, mw := range m.cfg.middlewares {
					mw.MailboxEmpty()
				}
			}
			return
		}
		if !m.status.CompareAndSwap(idle, running) {
			return // a sender has scheduled a new run
		}
	}
}

func (m *mailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			// The actor context suspends this mailbox and reports the failure to the
			// supervisor; user messages wait until it resumes or restarts the actor.
			m.invoker.EscalateFailure(r, msg)
		}
	}()

	i, t := 0, m.dispatcher.Throughput()
	for {
		if i > t {
			i = 0
			runtime.Gosched()
		}
		i++

		if m.sys.Load() > 0 {
			msg = m.popSystem()
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			for _, mw := range m.cfg.middlewares {
				mw.MessageReceived(msg)
			}
			continue
		}

		if m.suspended.Load() {
			return
		}

		if msg = m.popUser(); msg == nil {
			return
		}
		m.invoker.InvokeUserMessage(msg)
		for _, mw := range m.cfg.middlewares {
			mw.MessageReceived(msg)
		}
	}
}

func (m *mailbox) popSystem() any {
	m.sysMu.Lock()
	msg := m.system.pop()
	m.sys.Add(-1)
	m.sysMu.Unlock()
	return msg
}

func (m *mailbox) popUser() any {
	if m.user.Load() == 0 {
		return nil
	}
	m.mu.Lock()
	msg := m.control.pop()
	if msg == nil {
		msg = m.data.pop()
	}
	m.user.Add(-1)
	m.cfg.stats.depth.Add(-1)
	m.mu.Unlock()
	m.cfg.stats.received.Add(1)
	return msg
}

func isControl(message any) bool {
	if env, ok := message.(*actor.MessageEnvelope); ok {
		message = env.Message
	}
	switch message.(type) {
	case Control, *actor.PoisonPill:
		return true
	}
	return false
}

// ring is a FIFO that grows by doubling, up to limit if limit > 0. It is not synchronised.
type ring struct {
	buf   []any
	head  int
	n     int
	limit int
}

func (r *ring) len() int { return r.n }

func (r *ring) full() bool { return r.limit > 0 && r.n >= r.limit }

func (r *ring) push(v any) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

func (r *ring) pop() any {
	if r.n == 0 {
		return nil
	}
	v := r.buf[r.head]
	r.buf[r.head] = nil // let the message be collected
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v
}

func (r *ring) grow() {
	size := max(initialRing, 2*len(r.buf))
	if r.limit > 0 {
		size = min(size, r.limit)
	}
	buf := make([]any, size)
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}
