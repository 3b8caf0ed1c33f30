package observe

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/supervisor"
)

// ActorID is what an actor's metrics are labelled with. Only names from the
// configuration end up here (connector and device names), never message ids,
// so the number of series is bounded by the config.
type ActorID struct {
	Kind      string // gateway, journal, uplink, registry, connector, device, ...
	Connector string
	Device    string
}

// ParseActorID maps a PID id of the gateway's tree ("gateway/journal",
// "gateway/connector/<c>", "gateway/connector/<c>/device/<d>") to labels.
// Anything outside the tree is kind "other".
func ParseActorID(id string) ActorID {
	rest, ok := strings.CutPrefix(id, "gateway/")
	if !ok {
		if id == "gateway" {
			return ActorID{Kind: "gateway"}
		}
		return ActorID{Kind: "other"}
	}
	if c, ok := strings.CutPrefix(rest, "connector/"); ok {
		if conn, dev, isDev := strings.Cut(c, "/device/"); isDev {
			return ActorID{Kind: "device", Connector: conn, Device: dev}
		}
		return ActorID{Kind: "connector", Connector: c}
	}
	kind, _, _ := strings.Cut(rest, "/")
	return ActorID{Kind: kind}
}

// actorEntry is the state of one actor name; it outlives incarnations, so
// counters stay monotonic across restarts and respawns.
type actorEntry struct {
	id    ActorID
	pid   string
	m     *Metrics
	types atomic.Pointer[[]*typeCounter] // copy-on-write; an actor sees few types
	last  atomic.Pointer[typeCounter]    // the previous message's type: the common case
	alive atomic.Bool
	tick  atomic.Uint32 // coarse clock tick of the last timed message
	hist  durationHist

	restarts atomic.Uint64

	// Guarded by Metrics.actorsMu.
	stats       *mailbox.Stats
	baseDropped uint64 // drops of earlier mailboxes under the same name
}

type typeCounter struct {
	t       reflect.Type
	name    string
	n       atomic.Uint64
	stopped bool // *actor.Stopped: the incarnation is gone
}

var stoppedType = reflect.TypeOf((*actor.Stopped)(nil))

// sampleEvery: besides the first message of each coarse tick, one message in
// sampleEvery of each type is timed. Reading the clock twice costs more than
// everything else the middleware does (150 ns on some VMs), so timing every
// message would cost a cheap actor a third of its throughput.
const sampleEvery = 64

// ActorMeter counts an actor's messages by type and times its Receive. Make
// one per actor's props, with the mailbox.Stats its mailbox counts into
// (mailbox.WithStats): the actor's name is learnt from its first message and
// the pair is registered then. Wrap every incarnation's actor with Wrap, inside
// supervisor.LogPanics.
//
// Every message is counted. Time in Receive is sampled: an actor's first
// message in each 100 ms tick and one in 64 of each message type are timed,
// so a quiet actor has all its messages timed and a busy one pays for the
// clock on a small fraction.
type ActorMeter struct {
	m     *Metrics
	st    *mailbox.Stats
	bound atomic.Pointer[actorEntry]
}

// ActorMeter returns a meter for one actor's props; nil on a nil *Metrics.
func (m *Metrics) ActorMeter(st *mailbox.Stats) *ActorMeter {
	if m == nil {
		return nil
	}
	startTicker()
	return &ActorMeter{m: m, st: st}
}

// Wrap returns inner with its messages metered; inner itself on a nil
// *ActorMeter (metrics off). A wrapping actor, not receiver middleware:
// protoactor allocates an envelope for every message a middleware sees.
func (a *ActorMeter) Wrap(inner actor.Actor) actor.Actor {
	if a == nil {
		return inner
	}
	return &metered{a: a, inner: inner}
}

type metered struct {
	a     *ActorMeter
	inner actor.Actor
}

func (w *metered) Receive(c actor.Context) {
	e, tc, timed := w.a.begin(c.Self(), c.Message())
	if timed {
		start := time.Now()
		w.inner.Receive(c)
		e.hist.observe(time.Since(start))
	} else {
		w.inner.Receive(c)
	}
	if tc.stopped {
		e.alive.Store(false)
	}
}

// begin counts msg and says whether its Receive is to be timed.
func (a *ActorMeter) begin(self *actor.PID, msg any) (*actorEntry, *typeCounter, bool) {
	e := a.bound.Load()
	if e == nil {
		e = a.m.bind(self, a.st)
		a.bound.Store(e)
	}
	tc := e.typeOf(msg)
	n := tc.n.Add(1)
	if now := coarseTick.Load(); n%sampleEvery == 1 || e.tick.Load() != now {
		e.tick.Store(now)
		return e, tc, true
	}
	return e, tc, false
}

func (e *actorEntry) typeOf(msg any) *typeCounter {
	t := reflect.TypeOf(msg)
	if tc := e.last.Load(); tc != nil && tc.t == t {
		return tc
	}
	var tc *typeCounter
	for _, c := range *e.types.Load() {
		if c.t == t {
			tc = c
			break
		}
	}
	if tc == nil {
		tc = e.addType(t, msg)
	}
	e.last.Store(tc)
	return tc
}

// addType is the slow path, once per message type and actor name.
func (e *actorEntry) addType(t reflect.Type, msg any) *typeCounter {
	e.m.actorsMu.Lock()
	defer e.m.actorsMu.Unlock()
	old := *e.types.Load()
	for _, c := range old {
		if c.t == t {
			return c
		}
	}
	tc := &typeCounter{t: t, name: strings.TrimPrefix(fmt.Sprintf("%T", msg), "*"), stopped: t == stoppedType}
	next := append(append(make([]*typeCounter, 0, len(old)+1), old...), tc)
	e.types.Store(&next)
	return tc
}

// coarseTick advances every tickInterval while any metrics exist; the
// middleware compares it instead of reading the clock.
var (
	coarseTick   atomic.Uint32
	tickerOnce   sync.Once
	tickInterval = 100 * time.Millisecond
)

func startTicker() {
	tickerOnce.Do(func() {
		go func() {
			for range time.Tick(tickInterval) {
				coarseTick.Add(1)
			}
		}()
	})
}

// durationHist is a histogram cheap enough for the receive path: fixed
// buckets, one atomic add each for bucket, count and sum.
type durationHist struct {
	buckets [len(durationBounds)]atomic.Uint64 // non-cumulative; the last is +Inf
	count   atomic.Uint64
	sumNs   atomic.Uint64
}

// durationBounds are the upper bounds: 10 µs × 10^k up to 1 s, then +Inf.
// Few buckets: every actor has one histogram, and with hundreds of devices a
// scrape's size is what costs an edge box. Long Receives are device polls,
// which have their own histogram.
var durationBounds = [...]time.Duration{
	10 * time.Microsecond, 100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond,
	100 * time.Millisecond, time.Second, 1 << 62,
}

func (h *durationHist) observe(d time.Duration) {
	i := 0
	for i < len(durationBounds)-1 && d > durationBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
}

// histSnap is a histogram read at scrape time (non-cumulative buckets).
type histSnap struct {
	buckets [len(durationBounds)]uint64
	count   uint64
	sumNs   uint64
}

func (h *durationHist) snapshot() histSnap {
	var s histSnap
	for i := range h.buckets {
		s.buckets[i] = h.buckets[i].Load()
	}
	s.count, s.sumNs = h.count.Load(), h.sumNs.Load()
	return s
}

func (s *histSnap) add(o histSnap) {
	for i := range s.buckets {
		s.buckets[i] += o.buckets[i]
	}
	s.count += o.count
	s.sumNs += o.sumNs
}

func (s *histSnap) metric(d *prometheus.Desc, lv ...string) prometheus.Metric {
	cum := make(map[float64]uint64, len(durationBounds)-1)
	var acc uint64
	for i := 0; i < len(durationBounds)-1; i++ {
		acc += s.buckets[i]
		cum[durationBounds[i].Seconds()] = acc
	}
	return prometheus.MustNewConstHistogram(d, s.count, float64(s.sumNs)/1e9, cum, lv...)
}

func (m *Metrics) entryLocked(pid string) *actorEntry {
	e := m.actors[pid]
	if e == nil {
		id := ParseActorID(pid)
		e = &actorEntry{id: id, pid: pid, m: m}
		empty := []*typeCounter{}
		e.types.Store(&empty)
		m.actors[pid] = e
	}
	return e
}

func (m *Metrics) bind(self *actor.PID, st *mailbox.Stats) *actorEntry {
	pid := ""
	if self != nil {
		pid = self.Id
	}
	m.actorsMu.Lock()
	defer m.actorsMu.Unlock()
	e := m.entryLocked(pid)
	if e.stats != st {
		if e.stats != nil {
			e.baseDropped += e.stats.Dropped()
		}
		e.stats = st
	}
	e.alive.Store(true)
	return e
}

// ActorRestarted counts a restart the supervisor ordered for the actor with
// this PID id. Safe on a nil *Metrics.
func (m *Metrics) ActorRestarted(pid string) {
	if m == nil {
		return
	}
	m.actorsMu.Lock()
	e := m.entryLocked(pid)
	m.actorsMu.Unlock()
	e.restarts.Add(1)
}

// Unhealthy lists the PID ids the supervisor currently reports as crash-looping.
func (m *Metrics) Unhealthy() []string {
	if m == nil || m.opts.Health == nil {
		return nil
	}
	var out []string
	for id, h := range m.opts.Health() {
		if h.Unhealthy {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// actorCollector exports the actor metrics at scrape time: messages by type
// and time in Receive (from the middleware), mailbox depth and drops (from
// our mailbox; protoactor's own mailbox gauge never reports), restarts and
// the crash-loop verdict.
type actorCollector Metrics

var (
	descMessages = prometheus.NewDesc(Namespace+"_actor_messages_total",
		"Messages an actor received, by Go type (system messages such as Started included).", append(append([]string{}, actorLabels...), "type"), nil)
	descDuration = prometheus.NewDesc(Namespace+"_actor_message_duration_seconds",
		"Time an actor spent in Receive per message, sampled: an actor's first message in each 100 ms and one in 64 of each type.", actorLabels, nil)
	descDepth = prometheus.NewDesc(Namespace+"_actor_mailbox_depth",
		"User messages queued in the actor's mailbox (both lanes).", actorLabels, nil)
	descDropped = prometheus.NewDesc(Namespace+"_actor_mailbox_dropped_total",
		"Data messages the actor's bounded mailbox dropped on overflow.", actorLabels, nil)
	descRestarts = prometheus.NewDesc(Namespace+"_actor_restarts_total",
		"Restarts the supervisor ordered for the actor.", actorLabels, nil)
	descUnhealthy = prometheus.NewDesc(Namespace+"_actor_unhealthy",
		"1 while the actor is in a crash loop (too many restarts in the window), else 0.", actorLabels, nil)
)

func (c *actorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descDuration, descDepth, descDropped, descRestarts, descUnhealthy} {
		ch <- d
	}
}

// actorAgg is one label set's figures. Several PIDs can share labels (kind
// "other"); a label set must be exported once, so they are summed.
type actorAgg struct {
	depth             int64
	dropped, restarts uint64
	unhealthy         bool
	types             map[string]uint64
	hist              histSnap
}

func (c *actorCollector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	var health map[string]supervisor.ChildHealth
	if m.opts.Health != nil {
		health = m.opts.Health()
	}
	byID := map[ActorID]*actorAgg{}
	m.actorsMu.Lock()
	for pid, e := range m.actors {
		a := byID[e.id]
		if a == nil {
			a = &actorAgg{types: map[string]uint64{}}
			byID[e.id] = a
		}
		a.dropped += e.baseDropped
		if e.stats != nil {
			a.dropped += e.stats.Dropped()
			if e.alive.Load() {
				a.depth += e.stats.Depth()
			}
		}
		a.restarts += e.restarts.Load()
		a.unhealthy = a.unhealthy || health[pid].Unhealthy
		for _, tc := range *e.types.Load() {
			a.types[tc.name] += tc.n.Load()
		}
		a.hist.add(e.hist.snapshot())
	}
	m.actorsMu.Unlock()
	for id, a := range byID {
		lv := []string{id.Kind, id.Connector, id.Device}
		for name, n := range a.types {
			ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(n), id.Kind, id.Connector, id.Device, name)
		}
		ch <- a.hist.metric(descDuration, lv...)
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(a.depth), lv...)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(a.dropped), lv...)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(a.restarts), lv...)
		unhealthy := 0.0
		if a.unhealthy {
			unhealthy = 1
		}
		ch <- prometheus.MustNewConstMetric(descUnhealthy, prometheus.GaugeValue, unhealthy, lv...)
	}
}
