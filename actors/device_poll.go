package actors

import (
	"cmp"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/protocols"
)

// pollTick carries its owner so a timer left over from a previous incarnation
// of the actor (after a restart) is recognised and ignored.
type pollTick struct{ owner *deviceActor }

// arm schedules the next poll tick. One timer and one tick per actor
// serve every poll (Reset re-arms the fired timer), so polling costs no
// allocation for its schedule.
// The poll is registered with the journal's pollGate under d.next.
func (d *deviceActor) arm(delay time.Duration) {
	if d.expectAt != 0 {
		d.env.polls.drop(d.expectAt)
	}
	d.expectAt = d.next.UnixNano()
	d.env.polls.expect(d.expectAt)
	if d.timer == nil {
		tick := &pollTick{owner: d}
		sys, self := d.sys, d.self
		d.timer = time.AfterFunc(delay, func() { sys.Root.Send(self, tick) })
		return
	}
	d.timer.Reset(delay)
}

// pollSlots is how many start times a poll period offers. Devices polling
// at the same period start in one of these slots, not at a random
// instant, so the polls of one slot share one journal commit, one platform
// message and its PUBACK, and one ack: at low rates each poll otherwise
// pays for all of that alone. A poll's latency (from its start) does not
// change; only when it starts does.
const (
	pollSlots   = 10
	maxSlotSize = 100 * time.Millisecond
)

// slotFill is how many devices slotPlan puts in a slot before it opens
// another. The slots of a period are there to spread a large site's polls
// (upstream #799: a thousand devices must not all poll in the same
// millisecond), not a small one's: 100 devices spread over all ten slots
// made ten commits (two syncs each) and ten platform messages a second,
// and those were about a third of the gateway's CPU. A slot's polls queue
// behind each other on a shared link, and that queue is their latency
// from the poll's start: 100 devices behind one Modbus TCP connection had
// a p99 of up to 40 ms with 32 to a slot, where 20 keep it near 20.
const slotFill = 20

// slotGrid is a poll period's slots: their size and count. They are
// wall-clock multiples of size, n of them to a cycle of at most one second
// (a device polled every 5 s starts in the first second of its period). n
// is 0 below a millisecond per slot: such devices start at any instant.
func slotGrid(period time.Duration) (size time.Duration, n int) {
	p := min(period, time.Second)
	if p <= 0 {
		return 0, 0
	}
	size = min(p/pollSlots, maxSlotSize)
	if size < time.Millisecond {
		return 0, 0
	}
	return size, int(p / size)
}

// firstPoll is the delay from now to the first poll of a device in slot of
// its period's grid: the next wall-clock instant m*size with m ≡ slot
// (mod n), so every device of the slot polls at the same instants. Without
// a grid (slot < 0, or none for the period) it is any instant of the first
// period, by pick.
func firstPoll(now time.Time, period time.Duration, slot int, pick func(n int64) int64) time.Duration {
	size, n := slotGrid(period)
	if n == 0 || slot < 0 {
		if p := min(period, time.Second); p > 0 {
			return time.Duration(pick(int64(p)))
		}
		return 0
	}
	t, sz := now.UnixNano(), int64(size)
	m := (t + sz - 1) / sz // the first grid instant at or after now
	m += (int64(slot%n) - m%int64(n) + int64(n)) % int64(n)
	return time.Duration(m*sz - t)
}

// linkFill is how many devices of a link known to be slow
// (protocols.LinkedDevice) slotPlan puts in a slot before it takes another
// for that link: their polls queue on it, so a slot that took a whole
// RS-485 line at 9600 baud (about 40 ms a round trip) would make its last
// device wait over a second and stamp its values that long before they
// were read. Four wait at most about 120 ms. A link whose polls overrun
// their slot anyway gets fewer (slotPlan.overran).
const linkFill = 4

// minOverrun is the shortest time from a slot's instant to the end of a
// poll that counts as running past the slot (see overrunAfter).
const minOverrun = 50 * time.Millisecond

// overrunAfter is how long after its slot's instant a poll may end before
// it ran past the slot: the slot's size, so a link's queue is over before
// the next slot's polls join it, but at least minOverrun, which stamps a
// value early by no more than a short period tolerates and keeps a busy
// machine's scheduling delays at 100 ms periods from counting. 0: no grid.
func overrunAfter(period time.Duration) time.Duration {
	size, n := slotGrid(period)
	if n == 0 {
		return 0
	}
	return max(size, minOverrun)
}

// slotPlan places each polled device in a slot of its period (see
// slotFill and linkFill): in the fullest slot that still has room for it,
// else in the least loaded one, at random among equals, so that gateways
// started together do not all poll at the same instants.
type slotPlan struct {
	mu   sync.Mutex
	used map[time.Duration]*periodSlots
}

// periodSlots counts the devices in each slot of one period.
type periodSlots struct {
	devices []int32
	links   map[string]*linkSlots
}

// linkSlots is one link's share of a period's slots.
type linkSlots struct {
	devices []int32 // per slot
	// fill is how many of the link's devices a slot takes: slotFill,
	// linkFill for a slow link, fewer once its polls ran past a slot.
	fill int32
	// at and left are, per slot, the instant of the last poll that ran
	// past it and how many devices moved out of it after that poll
	// (overran); nil until one did.
	at   []int64
	left []int32
}

// period returns the counts of period's slots, n of them.
func (s *slotPlan) period(period time.Duration, n int) *periodSlots {
	if s.used == nil {
		s.used = map[time.Duration]*periodSlots{}
	}
	ps := s.used[period]
	if ps == nil {
		ps = &periodSlots{devices: make([]int32, n), links: map[string]*linkSlots{}}
		s.used[period] = ps
	}
	return ps
}

// link returns the link's counts; a device with no link ("") has a
// throwaway one, since nothing queues with it.
func (ps *periodSlots) link(name string, slow bool) *linkSlots {
	if name == "" {
		return &linkSlots{devices: make([]int32, len(ps.devices)), fill: slotFill}
	}
	l := ps.links[name]
	if l == nil {
		l = &linkSlots{devices: make([]int32, len(ps.devices)), fill: slotFill}
		if slow {
			l.fill = linkFill
		}
		ps.links[name] = l
	}
	return l
}

// open is the fullest slot, other than skip, that still has room for one
// more device of l; -1 when none has.
func (ps *periodSlots) open(l *linkSlots, skip int) int {
	best := -1
	for i, c := range ps.devices {
		if i != skip && c > 0 && c < slotFill && l.devices[i] < l.fill && (best < 0 || c > ps.devices[best]) {
			best = i
		}
	}
	return best
}

// take places a device polling every period on link ("": a link of its
// own; slow: known to be slow, see protocols.LinkedDevice) and returns its
// slot, -1 for a period without a grid. A nil plan picks at random.
func (s *slotPlan) take(period time.Duration, link string, slow bool, pick func(n int64) int64) int {
	_, n := slotGrid(period)
	if n == 0 {
		return -1
	}
	if s == nil {
		return int(pick(int64(n)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.period(period, n)
	l := ps.link(link, slow)
	best := ps.open(l, -1)
	if best < 0 {
		// None open with room: the least loaded, first by the link's own
		// devices, at random among equals.
		less := func(i, j int) int {
			return cmp.Or(cmp.Compare(l.devices[i], l.devices[j]), cmp.Compare(ps.devices[i], ps.devices[j]))
		}
		var ties []int
		for i := range ps.devices {
			switch {
			case len(ties) == 0 || less(i, ties[0]) < 0:
				ties = append(ties[:0], i)
			case less(i, ties[0]) == 0:
				ties = append(ties, i)
			}
		}
		best = ties[pick(int64(len(ties)))]
	}
	ps.devices[best]++
	l.devices[best]++
	return best
}

// overran says that a device of link in slot polled for took from the
// slot's instant at to its end, past the slot (overrunAfter), and not for
// the first time. The link serves fewer of its devices in one slot than
// the slot holds: its fill drops to what would have ended in time (the
// device waited for at most the devices the slot held at that instant, so
// the link took at least took divided by their count for each) and the
// device moves to the fullest slot with room for it on the link. ok is
// false when no slot has room (the link is busy for the whole period, or
// the device's poll alone is that long): the device stays.
func (s *slotPlan) overran(period time.Duration, link string, slot int, at int64, took time.Duration) (to int, ok bool) {
	limit := overrunAfter(period)
	if s == nil || link == "" || slot < 0 || limit == 0 || took <= limit {
		return slot, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.used[period]
	if ps == nil || ps.links[link] == nil || slot >= len(ps.devices) {
		return slot, false
	}
	l := ps.links[link]
	if l.at == nil {
		l.at, l.left = make([]int64, len(ps.devices)), make([]int32, len(ps.devices))
	}
	if l.at[slot] != at {
		// The devices that moved out of the slot earlier were in its queue
		// at that instant only.
		l.at[slot], l.left[slot] = at, 0
	}
	here := l.devices[slot]
	queued := int64(here + l.left[slot])
	l.fill = max(1, min(l.fill, int32(queued*int64(limit)/int64(took))))
	if here <= l.fill {
		return slot, false
	}
	to = ps.open(l, slot)
	if to < 0 {
		// No open slot: any with room for the link, the least loaded.
		for i, c := range l.devices {
			if i != slot && c < l.fill && (to < 0 || ps.devices[i] < ps.devices[to]) {
				to = i
			}
		}
		if to < 0 {
			return slot, false
		}
	}
	ps.devices[slot]--
	l.devices[slot]--
	l.left[slot]++
	ps.devices[to]++
	l.devices[to]++
	return to, true
}

// release gives back a slot that take returned for period and link.
func (s *slotPlan) release(period time.Duration, link string, slot int) {
	if s == nil || slot < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.used[period]
	if ps == nil || slot >= len(ps.devices) {
		return
	}
	if ps.devices[slot] > 0 {
		ps.devices[slot]--
	}
	if l := ps.links[link]; l != nil && l.devices[slot] > 0 {
		l.devices[slot]--
	}
}

// pollGate tells the journal when a slot's polls are all in, so it commits
// then instead of waiting out its linger (and, for a slot whose polls take
// longer than one linger, such as a hundred devices behind five serialised
// Modbus links, a second one). Devices register each poll when they arm its
// timer, under its scheduled instant (the slots are wall-clock instants, so
// the devices of a slot share one); the device whose poll ends the last one
// due sends the journal slotPolled.
//
// The last one due: no poll registered for an instant up to lookahead (the
// journal's linger) from now is outstanding. A slot due within the linger
// would share its commit anyway (fast polling), and such polls keep the
// linger's batching. A poll outstanding for longer than staleAfter (a
// silent slave waiting out its timeout) no longer holds the others back.
type pollGate struct {
	mu        sync.Mutex
	lookahead time.Duration
	due       map[int64]int32 // scheduled instant (unix ns) → polls registered, not ended
}

const (
	staleAfter  = time.Second
	forgetAfter = time.Minute // an instant no poll will end any more (a lost tick)
)

func (g *pollGate) setLookahead(d time.Duration) {
	g.mu.Lock()
	g.lookahead = d
	g.mu.Unlock()
}

// expect registers a poll scheduled at the instant at.
func (g *pollGate) expect(at int64) {
	if g == nil {
		return
	}
	g.mu.Lock()
	if g.due == nil {
		g.due = map[int64]int32{}
	}
	g.due[at]++
	g.mu.Unlock()
}

// drop forgets a registered poll that will not run (its actor stopped).
func (g *pollGate) drop(at int64) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.remove(at)
	g.mu.Unlock()
}

func (g *pollGate) remove(at int64) {
	if n := g.due[at]; n > 1 {
		g.due[at] = n - 1
	} else {
		delete(g.due, at)
	}
}

// end unregisters a poll that ended and reports whether it was the last one
// due (see pollGate).
func (g *pollGate) end(at int64, now time.Time) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.remove(at)
	if g.due[at] > 0 {
		return false
	}
	horizon := now.Add(g.lookahead).UnixNano()
	stale, forget := now.Add(-staleAfter).UnixNano(), now.Add(-forgetAfter).UnixNano()
	last := true
	for k := range g.due {
		switch {
		case k < forget:
			delete(g.due, k)
		case k > stale && k <= horizon:
			last = false
		}
	}
	return last
}

// pollEnded runs after the poll's events were handed to the journal (or
// after a panic), so slotPolled arrives behind every append of the slot.
func (d *deviceActor) pollEnded(ctx actor.Context, at int64) {
	if at != 0 && d.env.polls.end(at, time.Now()) {
		ctx.Send(d.journal, slotPolledMsg)
	}
}

func (d *deviceActor) poll(ctx actor.Context) {
	// schedule registers the next poll before this one ends.
	at := d.expectAt
	d.expectAt = 0
	defer d.pollEnded(ctx, at)
	started := time.Now()
	timeout := max(d.info.PollPeriod, 5*time.Second)
	var reading protocols.Reading
	var err error
	if _, ok := d.dev.(protocols.ReusableContextPoller); ok {
		pc := d.pollCtx.start(started, timeout)
		reading, err = d.dev.Poll(pc)
		d.pollCtx.stop()
	} else {
		pctx, cancel := context.WithTimeout(context.Background(), timeout)
		reading, err = d.dev.Poll(pctx)
		cancel()
	}
	now := time.Now()
	d.counters.Polls.Add(1)
	d.cc.Polls.Add(1)
	d.obs.Polled(now.Sub(started).Seconds(), len(reading.Telemetry)+len(reading.Attributes), err, float64(now.UnixNano())/1e9)
	var events []protocols.Event
	if err != nil && d.connected && len(reading.Telemetry)+len(reading.Attributes) > 0 {
		// Keys read before an exception or a timeout are real values.
		events = d.emit(now, started, reading, events, d.polled)
	}
	if err != nil {
		d.counters.PollErrors.Add(1)
		d.cc.PollErrors.Add(1)
		if d.env.bus.Active() {
			d.env.bus.PublishLifecycle(&bus.Lifecycle{Class: bus.ClassDeviceEvent, Name: d.info.Name, Connector: d.connector,
				Event: bus.PollError, Ts: now.UnixMilli(), Err: err.Error()})
		}
		d.failures++
		if d.failures == 1 {
			d.errLog.Reset()
		}
		if ok, suppressed := d.errLog.Allow(now); ok {
			d.logger().Warn().Err(err).Int("failures", d.failures).Int("suppressed", suppressed).Msg("poll failed")
		}
		act := d.env.conf().Activity
		idle := act.Enabled && now.Sub(d.lastData) > act.Timeout
		if d.connected && (idle || d.info.ConnectAttemptCount > 0 && d.failures >= d.info.ConnectAttemptCount) {
			d.logger().Warn().Int("failures", d.failures).Bool("inactive", idle).Msg("device unreachable; disconnecting it from the platform")
			events = d.disconnect(ctx, now, events)
		}
	} else {
		if d.failures > 0 {
			d.logger().Info().Int("failures", d.failures).Msg("device answers again")
			d.errLog.Reset()
		}
		d.failures = 0
		d.lastData = now
		if !d.connected {
			events = d.connect(ctx, now, events)
		}
		events = d.emit(now, started, reading, events, d.polled)
	}
	events = d.due(now, events)
	d.deliverRecycling(ctx, events, nil, true)
	d.schedule(now)
	if err == nil {
		d.moveSlot(now, at)
	}
}

// moveSlot moves the device to another slot of its period when its last
// two polls, scheduled at their slot's instant at, ended past the slot
// (slotPlan.overran): its link serves fewer devices in one slot than the
// slot holds. Its next poll is then the new slot's first instant after
// the one scheduled, so it is still never polled more often than its
// period.
func (d *deviceActor) moveSlot(now time.Time, at int64) {
	took := now.Sub(time.Unix(0, at))
	if at == 0 || d.slot < 0 || took <= overrunAfter(d.info.PollPeriod) {
		d.overruns = 0
		return
	}
	if d.overruns++; d.overruns < 2 {
		return
	}
	d.overruns = 0
	link, _ := d.link()
	to, ok := d.env.slots.overran(d.info.PollPeriod, link, d.slot, at, took)
	if !ok {
		return
	}
	d.logger().Info().Str("link", link).Dur("took", took).Int("from", d.slot).Int("to", to).
		Msg("polls on this link ran past their start slot; the device moves to another")
	d.slot = to
	d.next = d.next.Add(firstPoll(d.next, d.info.PollPeriod, to, rand.Int64N))
	d.arm(d.next.Sub(now))
}

// schedule keeps a fixed rate while the device answers and backs off while
// it does not.
func (d *deviceActor) schedule(now time.Time) {
	period := d.info.PollPeriod
	if period <= 0 {
		period = time.Second
	}
	if d.failures >= 2 {
		delay := max(period, d.backoff.Next(d.failures-2))
		d.next = now.Add(delay)
		d.arm(delay)
		return
	}
	var skipped int64
	d.next, skipped = nextTick(d.next, now, period, d.failures == 0)
	if skipped > 0 {
		d.obs.Skipped(int(skipped))
		if !d.overran {
			d.overran = true
			d.logger().Warn().Dur("period", period).Int64("skipped", skipped).
				Msg("a poll ran a whole period past its tick; ticks are skipped while that lasts (counted in iotgw_device_polls_skipped_total)")
		}
	}
	d.arm(max(d.next.Sub(now), 0))
}

// nextTick is the poll tick after prev on prev's grid. With catchUp it is
// what a time.Ticker read late delivers: a poll that ran past the next tick
// is followed at once by that tick's poll (a sample taken a little late is
// better than a gap in the series), and only the ticks before it, which a
// poll longer than a whole period ran past, are skipped. A device is still
// never polled more often than its period, and a brief stall (a GC, a slow
// round trip on a busy link) costs no samples. Without catchUp (the last
// poll failed) every tick already passed is skipped: a device that has just
// timed out is not asked again at once.
func nextTick(prev, now time.Time, period time.Duration, catchUp bool) (next time.Time, skipped int64) {
	next = prev.Add(period)
	late := now.Sub(next)
	switch {
	case late <= 0:
		return next, 0
	case catchUp:
		skipped = int64(late / period)
	default:
		skipped = int64(late/period) + 1
	}
	return next.Add(time.Duration(skipped) * period), skipped
}

// pollContext is a device's reusable poll deadline, for drivers that only
// read a context's deadline, Done and Err on the polling goroutine
// (protocols.ReusableContextPoller). context.WithTimeout costs a context, a
// timer and, once Done is asked, a channel per poll; this costs nothing while
// no one waits on Done, and a timer re-armed in place when someone does.
// Everything but the expiry runs on the device actor's goroutine.
type pollContext struct {
	cur *pollDeadline
}

// start arms the deadline for one poll; stop must follow when Poll returns.
func (p *pollContext) start(now time.Time, timeout time.Duration) *pollDeadline {
	c := p.cur
	if c != nil && c.armed && !c.timer.Stop() {
		c = nil // a poll that panicked left its timer running, and it fired
	}
	if c == nil || c.expired.Load() {
		// A deadline that fired closed its channel for good.
		c = &pollDeadline{done: make(chan struct{})}
		p.cur = c
	}
	c.deadline = now.Add(timeout)
	c.armed = false
	return c
}

func (p *pollContext) stop() {
	c := p.cur
	if !c.armed {
		return
	}
	c.armed = false
	if !c.timer.Stop() {
		// It fired, or is firing: its channel is (about to be) closed,
		// so the next poll gets a fresh one.
		p.cur = nil
	}
}

// pollDeadline is the context.Context a poll sees.
type pollDeadline struct {
	deadline time.Time
	armed    bool // the timer runs for this poll: Done was asked for
	timer    *time.Timer
	done     chan struct{}
	expired  atomic.Bool // done is closed; set before closing it
}

func (c *pollDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// Done arms the timer on first use in a poll: most polls never wait on it.
func (c *pollDeadline) Done() <-chan struct{} {
	if !c.armed && !c.expired.Load() {
		c.armed = true
		left := time.Until(c.deadline)
		if c.timer == nil {
			c.timer = time.AfterFunc(left, c.expire)
		} else {
			c.timer.Reset(left)
		}
	}
	return c.done
}

func (c *pollDeadline) expire() {
	c.expired.Store(true)
	close(c.done)
}

// Err follows the clock while no timer runs, closing Done itself at the
// deadline, so that Err and Done never disagree.
func (c *pollDeadline) Err() error {
	if c.expired.Load() {
		return context.DeadlineExceeded
	}
	if !c.armed && !time.Now().Before(c.deadline) {
		c.expire()
		return context.DeadlineExceeded
	}
	return nil
}

func (*pollDeadline) Value(any) any { return nil }
