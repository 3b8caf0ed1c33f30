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
// per poll, and with a wildcard trigger one per device and key; a clock
// task fires at every tick its condition holds.
type taskActor struct {
	t        *Task
	board    *statusBoard
	clock    Clock
	store    persistence.Store
	queue    *actor.PID
	log      zerolog.Logger
	self     *actor.PID
	sys      *actor.ActorSystem
	last     map[Ref]protocols.Value
	episodes map[string]*episode // by source: device and key of the trigger
	gen      int
	stopC    func() bool // clock trigger timer
	lastAt   time.Time   // last clock run
}

// episode is one trigger source's run of its condition holding: a
// wildcard trigger (device/+/temperature) alarms per device.
type episode struct {
	since time.Time // the condition has held since; zero: it does not
	gen   int       // tells this episode's for-duration timer from older ones
	fired bool      // fired in this episode
	vars  map[string]protocols.Value
	stopT func() bool // for-duration timer
}

func (a *taskActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self, a.sys = ctx.Self(), ctx.ActorSystem()
		a.last = map[Ref]protocols.Value{}
		a.episodes = map[string]*episode{}
		if a.t.Trigger.Clock() {
			a.startClock()
		}
	case *bus.Values:
		for _, dp := range m.Values {
			a.last[Ref{m.Device, dp.Key}] = dp.Value
		}
		if p := a.t.Trigger.Event; p != nil {
			for _, dp := range m.Values {
				if p.Match(bus.ClassDevice, m.Device, dp.Key) {
					a.consider(m.Device+"\x00"+dp.Key, map[string]protocols.Value{
						"value": dp.Value, "device": protocols.String(m.Device), "key": protocols.String(dp.Key),
						"ts": protocols.Int(m.Ts), "event": protocols.String("value"),
					}, time.UnixMilli(m.Ts))
				}
			}
		}
	case *bus.Lifecycle:
		if p := a.t.Trigger.Event; p != nil && p.Match(m.Class, m.Name, m.Event) {
			a.consider(m.Class+"\x00"+m.Name+"\x00"+m.Event, map[string]protocols.Value{
				"value": protocols.String(m.Event), "device": protocols.String(m.Name), "key": protocols.String(m.Event),
				"ts": protocols.Int(m.Ts), "event": protocols.String(m.Event),
			}, time.UnixMilli(m.Ts))
		}
	case *clockTick:
		a.consider("", map[string]protocols.Value{"ts": protocols.Int(m.at.UnixMilli()), "event": protocols.String("clock")}, m.at)
		a.saveLast(m.at)
		if !m.late {
			a.armClock(m.at)
		}
	case *forElapsed:
		if ep := a.episodes[m.source]; ep != nil && m.gen == ep.gen && !ep.since.IsZero() && !ep.fired {
			ep.fired = true
			a.fire(m.source, ep.vars, ep.since.Add(a.t.For))
		}
	case *actor.Stopping:
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

// consider evaluates the condition for one trigger from source and fires
// when due.
func (a *taskActor) consider(source string, vars map[string]protocols.Value, at time.Time) {
	vars["task"] = protocols.String(a.t.Name)
	for name, ref := range a.t.Vars {
		if v, ok := a.last[ref]; ok {
			vars[name] = v
		}
	}
	ok, err := a.holds(vars)
	now := a.clock.Now()
	defer a.board.update(a.t.Name, func(s *Status) { s.Checks++ })
	if err != nil {
		a.board.fail(a.t.Name, now, err)
		a.board.update(a.t.Name, func(s *Status) { s.Skipped++ })
		return
	}
	ep := a.episodes[source]
	if !ok {
		a.board.update(a.t.Name, func(s *Status) { s.Skipped++ })
		if ep != nil {
			if ep.stopT != nil {
				ep.stopT()
			}
			delete(a.episodes, source)
		}
		return
	}
	if ep == nil {
		if len(a.episodes) >= maxEpisodes {
			a.board.fail(a.t.Name, now, fmt.Errorf("more than %d sources hold the condition at once; %q ignored", maxEpisodes, source))
			return
		}
		a.gen++
		ep = &episode{since: now, gen: a.gen}
		a.episodes[source] = ep
		if a.t.For > 0 {
			gen, sys, self := ep.gen, a.sys, a.self
			ep.stopT = a.clock.AfterFunc(a.t.For, func() { sys.Root.Send(self, &forElapsed{source: source, gen: gen}) })
		}
	}
	ep.vars = vars
	clock := a.t.Trigger.Clock()
	switch {
	case !ep.fired && now.Sub(ep.since) >= a.t.For:
		ep.fired = true
		a.fire(source, vars, at)
	case ep.fired && clock:
		a.fire(source, vars, at)
	}
}

// maxEpisodes bounds the sources a wildcard task tracks at once.
const maxEpisodes = 10000

// holds evaluates the condition; a variable without a value yet is an
// error naming it.
func (a *taskActor) holds(vars map[string]protocols.Value) (bool, error) {
	c := a.t.Condition
	if c == nil {
		return true, nil
	}
	args := make([]pyexpr.Arg, len(c.Names()))
	for i, n := range c.Names() {
		v, ok := vars[n]
		if !ok {
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
func (a *taskActor) fire(source string, vars map[string]protocols.Value, at time.Time) {
	now := a.clock.Now()
	a.board.update(a.t.Name, func(s *Status) { s.Runs++; s.LastRun = now })
	items := make([]*queued, 0, len(a.t.Actions))
	for i, act := range a.t.Actions {
		params, _ := render(act.Params, vars).(map[string]any)
		items = append(items, &queued{
			Key: idempotencyKey(a.t.Name, source, at, i), Task: a.t.Name, Handler: act.Handler,
			Params: params, Created: now, Next: now,
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
