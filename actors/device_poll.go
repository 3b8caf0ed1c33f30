package actors

import (
	"context"
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
func (d *deviceActor) arm(delay time.Duration) {
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

// firstPoll is the delay to a device's first poll: a random slot of the
// first period (upstream #799: a thousand devices must not all poll in
// the same millisecond), on a grid of slot size aligned to the wall clock,
// so every device of the same period lands on the same few instants.
func firstPoll(now time.Time, period time.Duration, pick func(n int64) int64) time.Duration {
	p := min(period, time.Second)
	if p <= 0 {
		return 0
	}
	slot := min(p/pollSlots, maxSlotSize)
	if slot < time.Millisecond {
		return time.Duration(pick(int64(p)))
	}
	n := int64(p / slot)
	delay := time.Duration(pick(n)) * slot
	// Align to the grid: wall-clock multiples of the slot size.
	return delay + (slot-time.Duration(now.UnixNano())%slot)%slot
}

func (d *deviceActor) poll(ctx actor.Context) {
	started := time.Now()
	pctx, cancel := context.WithTimeout(context.Background(), max(d.info.PollPeriod, 5*time.Second))
	reading, err := d.dev.Poll(pctx)
	cancel()
	now := time.Now()
	d.counters.Polls.Add(1)
	d.cc.Polls.Add(1)
	d.obs.Polled(now.Sub(started).Seconds(), len(reading.Telemetry)+len(reading.Attributes), err, float64(now.UnixNano())/1e9)
	var events []protocols.Event
	if err != nil && d.connected && len(reading.Telemetry)+len(reading.Attributes) > 0 {
		// Keys read before an exception or a timeout are real values.
		events = d.emit(now, started, reading, events, false)
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
			d.log.Warn().Err(err).Int("failures", d.failures).Int("suppressed", suppressed).Msg("poll failed")
		}
		act := d.env.conf().Activity
		idle := act.Enabled && now.Sub(d.lastData) > act.Timeout
		if d.connected && (idle || d.info.ConnectAttemptCount > 0 && d.failures >= d.info.ConnectAttemptCount) {
			d.log.Warn().Int("failures", d.failures).Bool("inactive", idle).Msg("device unreachable; disconnecting it from the platform")
			events = d.disconnect(ctx, now, events)
		}
	} else {
		if d.failures > 0 {
			d.log.Info().Int("failures", d.failures).Msg("device answers again")
			d.errLog.Reset()
		}
		d.failures = 0
		d.lastData = now
		if !d.connected {
			events = d.connect(ctx, now, events)
		}
		events = d.emit(now, started, reading, events, false)
	}
	events = d.due(now, events)
	d.deliver(ctx, events, nil)
	d.schedule(now)
}

// schedule keeps a fixed rate while the device answers (missed ticks are
// skipped, not bunched) and backs off while it does not.
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
	d.next = d.next.Add(period)
	if d.next.Before(now) {
		missed := now.Sub(d.next)/period + 1
		d.next = d.next.Add(missed * period)
	}
	d.arm(d.next.Sub(now))
}
