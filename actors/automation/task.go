package automation

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// statePrefix keys task state in the store: t/<task> holds the last time
// a clock task was considered, for the missed-run policy.
const statePrefix = "t/"

// clockTick is a due run of a clock trigger, at its scheduled time.
type clockTick struct {
	at   time.Time
	late bool // a run missed while the gateway was down
}

// forElapsed: the condition has held since the episode gen of source
// began for the task's for-duration.
type forElapsed struct {
	source string
	gen    int
}

func (*clockTick) ControlMessage()  {}
func (*forElapsed) ControlMessage() {}

// taskActor considers its task on every trigger: it keeps the last value of
// each key the condition reads, evaluates the condition, and when it holds
// (for the for-duration, when one is set) queues the task's actions.
//
// An event task fires once when its condition becomes true and is re-armed
// when it becomes false again, so "temperature > 80" is one alarm, not one
// per poll, and with a wildcard trigger one per device and key; an event
// task without a condition (or for-duration) fires on every event; a clock
// task fires at every tick its condition holds.
type taskActor struct {
	t        *Task
	st       *entry
	clock    Clock
	store    persistence.Store
	queue    *actor.PID
	log      zerolog.Logger
	self     *actor.PID
	sys      *actor.ActorSystem
	last     map[Ref]protocols.Value
	episodes map[string]*episode // by source: device and key of the trigger
	gen      int
	stopC    func() bool  // clock trigger timer
	args     []pyexpr.Arg // scratch for the condition's arguments
	failing  bool         // the status shows this actor's last error
	// varRefs and varDevices are the keys (and their devices) of Vars.
	varRefs    map[Ref]bool
	varDevices map[string]bool
	lastAt     time.Time // last clock run
	// prev is the last value of each triggering device key: the next
	// event's "previous" (not kept across restarts).
	prev map[prevKey]protocols.Value
	// Persisted state (state.go): last fired, and what awaits writing.
	lastRun   time.Time
	dirtyEp   map[string]bool
	dirtyVars bool
	flushT    *time.Timer
}

// episode is one trigger source's run of its condition holding: a
// wildcard trigger (device/+/temperature) alarms per device.
type episode struct {
	since time.Time // the condition has held since; zero: it does not
	gen   int       // tells this episode's for-duration timer from older ones
	fired bool      // fired in this episode
	ev    trigger
	stopT func() bool // for-duration timer
}

// trigger is what one trigger gives the condition and the templates:
// value, device, key, ts and event (value absent for clock ticks).
type trigger struct {
	value    protocols.Value
	hasValue bool
	previous protocols.Value // the key's value before this one
	hasPrev  bool
	device   string
	key      string
	event    string
	ts       int64
}

// source identifies the trigger's origin for its episode.
func (t *trigger) source() string {
	if t.event == "clock" {
		return ""
	}
	return t.device + "\x00" + t.key + "\x00" + t.event
}

func (a *taskActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self, a.sys = ctx.Self(), ctx.ActorSystem()
		a.last = map[Ref]protocols.Value{}
		a.episodes = map[string]*episode{}
		a.prev = map[prevKey]protocols.Value{}
		a.varRefs, a.varDevices = map[Ref]bool{}, map[string]bool{}
		for _, r := range a.t.Vars {
			a.varRefs[r], a.varDevices[r.Device] = true, true
		}
		a.restoreState()
		if a.t.Trigger.Clock() {
			a.startClock()
		}
	case *bus.Values:
		// Only the keys the condition reads are kept; a task without vars
		// (most of them) skips this per-value work.
		if len(a.t.Vars) > 0 && a.varDevices[m.Device] {
			for _, dp := range m.Values {
				if r := (Ref{m.Device, dp.Key}); a.varRefs[r] {
					a.last[r] = dp.Value
					a.stateTouched("", true)
				}
			}
		}
		if p := a.t.Trigger.Event; p != nil {
			for _, dp := range m.Values {
				if p.Match(bus.ClassDevice, m.Device, dp.Key) {
					if !a.t.UsesPrevious {
						a.consider(&trigger{value: dp.Value, hasValue: true, device: m.Device, key: dp.Key, event: "value", ts: m.Ts})
						continue
					}
					pk := prevKey{m.Device, dp.Key}
					prev, hasPrev := a.prev[pk]
					a.consider(&trigger{value: dp.Value, hasValue: true, previous: prev, hasPrev: hasPrev,
						device: m.Device, key: dp.Key, event: "value", ts: m.Ts})
					if hasPrev || len(a.prev) < maxEpisodes {
						a.prev[pk] = dp.Value
					}
				}
			}
		}
	case *bus.Lifecycle:
		if p := a.t.Trigger.Event; p != nil && p.Match(m.Class, m.Name, m.Event) {
			a.consider(&trigger{value: protocols.String(m.Event), hasValue: true, device: m.Name, key: m.Event, event: m.Event, ts: m.Ts})
		}
	case *clockTick:
		a.consider(&trigger{event: "clock", ts: m.at.UnixMilli()})
		a.saveLast(m.at)
		if !m.late {
			a.armClock(m.at)
		}
	case *forElapsed:
		if ep := a.episodes[m.source]; ep != nil && m.gen == ep.gen && !ep.since.IsZero() && !ep.fired {
			ep.fired = true
			a.fire(&ep.ev, ep.since.Add(a.t.For))
			a.episodeChanged(m.source)
		}
	case *stateFlush:
		a.flushState()
	case *actor.Stopping:
		a.flushState()
		for _, ep := range a.episodes {
			if ep.stopT != nil {
				ep.stopT()
			}
		}
		if a.stopC != nil {
			a.stopC()
		}
	}
}

// consider evaluates the condition for one trigger and fires when due.
// It runs for every matching value, so it allocates nothing unless the
// condition holds.
func (a *taskActor) consider(ev *trigger) {
	a.st.checks.Add(1)
	ok, err := a.holds(ev)
	if err != nil {
		a.st.fail(a.clock.Now(), err)
		a.failing = true
		a.st.skipped.Add(1)
		return
	}
	if a.failing {
		// The condition evaluates again: the status no longer shows an error
		// that is over (the lock is taken only on this change).
		a.failing = false
		a.st.ok()
	}
	if !ok {
		a.st.skipped.Add(1)
		if len(a.episodes) > 0 {
			src := ev.source()
			if ep := a.episodes[src]; ep != nil {
				if ep.stopT != nil {
					ep.stopT()
				}
				delete(a.episodes, src)
				a.episodeChanged(src)
			}
		}
		return
	}
	now := a.clock.Now()
	src := ev.source()
	ep := a.episodes[src]
	changed := ep == nil // a new episode or a run: what a restart must know
	if ep == nil {
		if len(a.episodes) >= maxEpisodes {
			a.st.fail(now, fmt.Errorf("more than %d sources hold the condition at once; %q ignored", maxEpisodes, src))
			a.failing = true
			return
		}
		a.gen++
		ep = &episode{since: now, gen: a.gen}
		a.episodes[src] = ep
		if a.t.For > 0 {
			a.armFor(src, ep, a.t.For)
		}
	}
	ep.ev = *ev
	switch {
	case !ep.fired && now.Sub(ep.since) >= a.t.For:
		ep.fired = true
		a.fire(ev, time.UnixMilli(ev.ts))
		changed = true
	case ep.fired && a.t.Trigger.Clock():
		a.fire(ev, time.UnixMilli(ev.ts))
		changed = true
	case ep.fired && a.t.Condition == nil && a.t.For == 0:
		// Without a condition there is no state to re-arm on: every event
		// ("on each connect, call the webhook") is its own firing, and a
		// restart changes nothing about the next one, so the episode is
		// written behind, not at event rate.
		a.fire(ev, time.UnixMilli(ev.ts))
	}
	if changed {
		a.episodeChanged(src)
	} else {
		a.stateTouched(src, false)
	}
}

// lookup is the value of a condition or template variable.
func (a *taskActor) lookup(ev *trigger, name string) (protocols.Value, bool) {
	switch name {
	case "value":
		return ev.value, ev.hasValue
	case "previous":
		return ev.previous, ev.hasPrev
	case "device":
		return protocols.String(ev.device), ev.device != ""
	case "key":
		return protocols.String(ev.key), ev.key != ""
	case "ts":
		return protocols.Int(ev.ts), true
	case "event":
		return protocols.String(ev.event), true
	case "task":
		return protocols.String(a.t.Name), true
	}
	ref, ok := a.t.Vars[name]
	if !ok {
		return protocols.Value{}, false
	}
	v, ok := a.last[ref]
	return v, ok
}

// prevKey is a triggering device key, for "previous".
type prevKey struct{ device, key string }

// maxEpisodes bounds the sources a wildcard task tracks at once.
const maxEpisodes = 10000

// holds evaluates the condition; a variable without a value yet is an
// error naming it.
func (a *taskActor) holds(ev *trigger) (bool, error) {
	c := a.t.Condition
	if c == nil {
		return true, nil
	}
	names := c.Names()
	if cap(a.args) < len(names) {
		a.args = make([]pyexpr.Arg, len(names))
	}
	args := a.args[:len(names)]
	for i, n := range names {
		v, ok := a.lookup(ev, n)
		if !ok {
			if n == "previous" {
				// A key's first value has none: not an error, just not a
				// change to compare yet.
				return false, nil
			}
			if ref, isVar := a.t.Vars[n]; isVar {
				return false, fmt.Errorf("no value yet for %s (%s)", n, ref)
			}
			return false, fmt.Errorf("%s has no value for this trigger", n)
		}
		args[i] = pyexpr.Arg{Value: v}
	}
	res, err := c.Eval(args)
	if err != nil {
		return false, err
	}
	switch res.Kind {
	case protocols.KindBool, protocols.KindInt:
		return res.I != 0, nil
	case protocols.KindUint:
		return res.U != 0, nil
	case protocols.KindFloat:
		return res.F != 0, nil
	case protocols.KindString:
		return res.S != "", nil
	}
	return false, nil
}

// fire queues the task's actions, rendered from vars. Each action's
// idempotency key derives from the task, the trigger's source and time and
// the action's place, so it stays the same across retries and restarts.
func (a *taskActor) fire(ev *trigger, at time.Time) {
	now := a.clock.Now()
	a.st.ran(now)
	a.lastRun, a.dirtyVars = now, true
	vars := map[string]protocols.Value{}
	event := map[string]any{}
	for _, n := range append(append([]string(nil), eventVars...), sortedKeys(a.t.Vars)...) {
		if v, ok := a.lookup(ev, n); ok {
			vars[n] = v
			event[n] = eventValue(v)
		}
	}
	// The value is part of the key: two values of one key in the same
	// millisecond are two events, and a receiver must not drop the second
	// as a duplicate. The same event fired again (after a restart) keeps it.
	source := ev.source()
	if ev.hasValue {
		source += "\x00" + ev.value.String()
	}
	items := make([]*queued, 0, len(a.t.Actions))
	for i, act := range a.t.Actions {
		params, _ := render(act.Params, vars).(map[string]any)
		items = append(items, &queued{
			Key: idempotencyKey(a.t.Name, source, at, i), Task: a.t.Name, Handler: act.Handler,
			Params: params, Created: now, Next: now, Event: event,
		})
	}
	a.sys.Root.Send(a.queue, &enqueue{items: items})
	a.log.Info().Time("trigger", at).Int("actions", len(items)).Msg("task fired")
}

func idempotencyKey(task, source string, at time.Time, action int) string {
	h := sha256.Sum256([]byte(task + "\x00" + source + "\x00" + strconv.FormatInt(at.UnixNano(), 10) + "\x00" + strconv.Itoa(action)))
	return hex.EncodeToString(h[:16])
}

// nextRun is the trigger's first run after t.
func (a *taskActor) nextRun(t time.Time) time.Time {
	tr := a.t.Trigger
	if tr.Sun != nil {
		return tr.Sun.Next(t, a.log)
	}
	if tr.Cron != nil {
		return tr.Cron.Next(t.In(tr.Location))
	}
	return t.Add(tr.Every)
}

// startClock applies the missed-run policy to the time the gateway was
// down, then arms the next run.
func (a *taskActor) startClock() {
	now := a.clock.Now()
	key := []byte(statePrefix + a.t.Name)
	if raw, err := a.store.Get(key); err == nil {
		if last, err := time.Parse(time.RFC3339Nano, string(raw)); err == nil {
			if missed := a.nextRun(last); !missed.After(now) {
				if a.t.Trigger.Missed == MissedRunOnce {
					a.log.Info().Time("missed", missed).Msg("schedule missed a run while the gateway was down; running it once")
					a.sys.Root.Send(a.self, &clockTick{at: now, late: true})
				} else {
					a.log.Info().Time("missed", missed).Msg("schedule missed a run while the gateway was down; skipped")
				}
			}
		}
	}
	a.saveLast(now)
	a.armClock(now)
}

func (a *taskActor) armClock(from time.Time) {
	next := a.nextRun(from)
	if next.IsZero() {
		return
	}
	sys, self := a.sys, a.self
	a.stopC = a.clock.AfterFunc(next.Sub(a.clock.Now()), func() { sys.Root.Send(self, &clockTick{at: next}) })
}

func (a *taskActor) saveLast(t time.Time) {
	if t.Before(a.lastAt) {
		return
	}
	a.lastAt = t
	if err := a.store.Put([]byte(statePrefix+a.t.Name), []byte(t.Format(time.RFC3339Nano))); err != nil {
		a.log.Warn().Err(err).Msg("cannot store the schedule's last run")
	}
}
