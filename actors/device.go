package actors

import (
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/supervisor"
)

// deviceEnv is what device actors get from the gateway: where their events
// and state go, their counters, and the running configuration. One is made
// per start of the tree and shared by every device actor.
type deviceEnv struct {
	journal, registry *actor.PID
	counters          *Counters
	// connectorCounters returns a connector's counters (made on first use).
	connectorCounters func(connector string) *ConnectorCounters
	metrics           *observe.Metrics // nil: metrics off
	// conf is the running configuration: device filter, activity checks,
	// the default report strategy and the connectors' types.
	conf func() *config.Gateway
	// syncShared requests a device's shared attributes from the platform
	// and routes them to it; it runs off the actor and must not block.
	syncShared func(device string, keys []string)
	// bus gets every emitted value and lifecycle event (nil: none).
	bus *bus.Bus
	// polls counts polls in flight for the journal's early commit (nil: none).
	polls *pollGate
	// slots places polled devices in their period's slots (nil: at random).
	slots *slotPlan
}

// connectorType is the configured type of the named connector, "" when
// no connector has that name.
func (e *deviceEnv) connectorType(name string) string {
	for _, c := range e.conf().Connectors {
		if c.Name == name {
			return c.Type
		}
	}
	return ""
}

// deviceActor polls one device on its own schedule. A slow or dead device only
// ever delays itself: each device has its own actor, timer and backoff.
type deviceActor struct {
	dev protocols.Device // nil for a device a push source reports
	// polled is who owns dev's polled readings: the driver (they are
	// copied), or the actor (protocols.OwnedReadingPoller: filtered in
	// place, their arrays recycled).
	polled    readingOwner
	cmd       protocols.Commander
	info      protocols.DeviceInfo
	connector string
	env       *deviceEnv
	cc        *ConnectorCounters
	journal   *actor.PID
	registry  *actor.PID
	// log is built from baseLog on first use (logger): a device's own
	// context costs 512 bytes (zerolog's With), half a megabyte at 1000
	// devices, and most devices never log.
	baseLog  zerolog.Logger
	log      *zerolog.Logger
	counters *Counters

	self     *actor.PID
	sys      *actor.ActorSystem
	timer    *time.Timer
	pollCtx  pollContext // reusable poll deadline (protocols.ReusableContextPoller)
	expectAt int64       // the armed poll's instant, registered with env.polls; 0: none
	// slot is the device's slot of its poll period's grid, taken from
	// env.slots (-1: none held).
	slot int
	// overruns counts the polls in a row that ended past their slot
	// (moveSlot).
	overruns  int
	next      time.Time
	tel, attr *report.Filter
	connected bool
	lastData  time.Time
	failures  int
	overran   bool // a poll has run a whole period late (logged once per incarnation)
	backoff   *supervisor.Backoff
	errLog    ratelimit.Lines
	scratch   []protocols.Datapoint
	obs       *observe.Device // nil when metrics are off
	filtered  bool
	stopTick  func()
	reportSet bool // strategies known: always for polled devices; pushed ones may take them from their first data
}

// newDeviceActor builds the actor of a polled device (dev set) or of a pushed
// one (dev nil, info given by the source).
func newDeviceActor(dev protocols.Device, info protocols.DeviceInfo, cmd protocols.Commander, connector string, env *deviceEnv, log zerolog.Logger) *deviceActor {
	if dev != nil {
		info = dev.Info()
		cmd, _ = dev.(protocols.Commander)
	}
	retry := info.RetryDelay
	if retry <= 0 {
		retry = time.Second
	}
	maxDelay := max(30*time.Second, info.PollPeriod)
	d := &deviceActor{
		dev: dev, cmd: cmd, info: info, connector: connector, env: env, cc: env.connectorCounters(connector),
		journal: env.journal, registry: env.registry, counters: env.counters,
		baseLog: log,
		backoff: supervisor.NewBackoff(retry, maxDelay, 2),
		obs:     env.metrics.Device(connector, info.Name),
		// A polled device's strategies come from its config, never from
		// data a source pushes to it.
		reportSet: dev != nil,
		slot:      -1,
	}
	if _, ok := dev.(protocols.OwnedReadingPoller); ok {
		d.polled = pooledReading
	}
	return d
}

func (d *deviceActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		d.self = ctx.Self()
		d.sys = ctx.ActorSystem()
		if ok, err := d.env.conf().Filter.Check(d.connector, d.info.Name); !ok {
			// Filtered devices are not polled at all: their data would be
			// dropped anyway, and an unreachable one would only cost timeouts.
			d.filtered = true
			if err != nil {
				d.logger().Warn().Err(err).Msg("deviceFiltering could not decide; device excluded, not polled, its data dropped")
			} else {
				d.logger().Info().Msg("device excluded by deviceFiltering; not polled, its data dropped")
			}
			if d.dev == nil {
				ctx.Send(d.registry, &deviceUp{name: d.info.Name, connector: d.connector, pid: ctx.Self()})
			}
			return
		}
		d.tel = report.NewFilter(d.info.Report, d.info.KeyReport)
		d.attr = report.NewFilter(d.info.Report, d.info.KeyReport)
		if d.dev == nil {
			d.startPushed(ctx)
			return
		}
		// Start in a slot of the period (see slotFill).
		link, slow := d.link()
		d.slot = d.env.slots.take(d.info.PollPeriod, link, slow, rand.Int64N)
		now := time.Now()
		stagger := firstPoll(now, d.info.PollPeriod, d.slot, rand.Int64N)
		d.next = now.Add(stagger)
		d.arm(stagger)
		ctx.Send(d.registry, &deviceUp{name: d.info.Name, connector: d.connector, pid: ctx.Self()})
	case *routeRPC, *routeAttributes:
		d.runCommand(ctx, m)
	case *pushData:
		d.pushed(ctx, m)
	case *pushConnect, *pushDisconnect, *pushTick:
		d.pushControl(ctx, m)
	case *forgetConnection:
		d.markDisconnected()
	case *pollTick:
		if m.owner != d {
			return
		}
		d.poll(ctx)
	case *actor.Stopping, *actor.Restarting:
		if d.timer != nil {
			d.timer.Stop()
		}
		if d.expectAt != 0 {
			d.env.polls.drop(d.expectAt)
			d.expectAt = 0
		}
		link, _ := d.link()
		d.env.slots.release(d.info.PollPeriod, link, d.slot)
		d.slot = -1
		if d.stopTick != nil {
			d.stopTick()
		}
		if _, stopping := m.(*actor.Stopping); stopping {
			ctx.Send(d.registry, &deviceDown{name: d.info.Name, pid: ctx.Self()})
		}
		d.markDisconnected()
	}
}

// markDisconnected forgets that the platform knows the device, so its next
// data announces it again.
func (d *deviceActor) markDisconnected() {
	if d.connected {
		d.connected = false
		d.counters.DevicesConnected.Add(-1)
	}
}

// connect announces the device to the platform and syncs its shared attributes.
func (d *deviceActor) connect(ctx actor.Context, now time.Time, events []protocols.Event) []protocols.Event {
	d.connected = true
	d.counters.DevicesConnected.Add(1)
	events = append(events, protocols.Event{Kind: protocols.EventConnect, Device: d.info.Name, DeviceType: d.info.Type, Ts: now.UnixMilli()})
	if d.info.Name != "" {
		events = append(events, d.connectorDetails(now))
	}
	ctx.Send(d.registry, &DeviceConnected{Device: d.info.Name, Type: d.info.Type, Connector: d.connector})
	if d.cmd != nil {
		keys := d.cmd.SharedAttributeKeys()
		d.env.syncShared(d.info.Name, keys)
	}
	return events
}

// connectorDetails is the attribute message upstream sends with a device's
// connect: which connector (type and name) serves it. It goes through the
// journal with the connect, so it is not lost while the platform is away,
// and past the report strategy, as upstream sends it unconditionally.
func (d *deviceActor) connectorDetails(now time.Time) protocols.Event {
	vals := make([]protocols.Datapoint, 0, 2)
	if typ := d.env.connectorType(d.connector); typ != "" {
		vals = append(vals, protocols.Datapoint{Key: "connectorType", Value: protocols.String(typ)})
	}
	vals = append(vals, protocols.Datapoint{Key: "connectorName", Value: protocols.String(d.connector)})
	return protocols.Event{Kind: protocols.EventAttributes, Device: d.info.Name, Ts: now.UnixMilli(), Values: vals}
}

func (d *deviceActor) disconnect(ctx actor.Context, now time.Time, events []protocols.Event) []protocols.Event {
	d.markDisconnected()
	ctx.Send(d.registry, &DeviceDisconnected{Device: d.info.Name, Connector: d.connector})
	return append(events, protocols.Event{Kind: protocols.EventDisconnect, Device: d.info.Name, Ts: now.UnixMilli()})
}

// due adds the values whose report period has come.
func (d *deviceActor) due(now time.Time, events []protocols.Event) []protocols.Event {
	if !d.connected {
		return events
	}
	if due := d.tel.Due(now, nil); len(due) > 0 {
		events = append(events, protocols.Event{Kind: protocols.EventTelemetry, Device: d.info.Name, Ts: now.UnixMilli(), Values: due})
	}
	if due := d.attr.Due(now, nil); len(due) > 0 {
		events = append(events, protocols.Event{Kind: protocols.EventAttributes, Device: d.info.Name, Ts: now.UnixMilli(), Values: due})
	}
	return events
}

// deliver hands events to the journal; done (may be nil) learns when they
// are committed, or at once when there is nothing to commit.
func (d *deviceActor) deliver(ctx actor.Context, events []protocols.Event, done func(error)) {
	d.deliverRecycling(ctx, events, done, false)
}

// deliverRecycling is deliver for events whose Values arrays nothing else
// holds (a poll's: the driver's handed-over reading, or the report filter's
// fresh copies): unless bus subscribers share them, the journal reuses them.
func (d *deviceActor) deliverRecycling(ctx actor.Context, events []protocols.Event, done func(error), owned bool) {
	if len(events) == 0 {
		if done != nil {
			done(nil)
		}
		return
	}
	for _, e := range events {
		d.counters.ValuesEmitted.Add(uint64(len(e.Values)))
		switch e.Kind {
		case protocols.EventTelemetry:
			d.cc.TsProduced.Add(uint64(len(e.Values)))
		case protocols.EventAttributes:
			d.cc.AttrProduced.Add(uint64(len(e.Values)))
		}
	}
	d.cc.EventsPushed.Add(uint64(len(events)))
	recycle := owned
	if d.env.bus.Active() {
		d.publish(events)
		recycle = false
	}
	ctx.Send(d.journal, &AppendEvents{Events: events, Done: done, Recycle: recycle})
}

// publish puts what the journal is about to get on the bus: values and
// connects/disconnects. The journal owns the events from here on and never
// changes them, so subscribers may share their value slices.
func (d *deviceActor) publish(events []protocols.Event) {
	for _, e := range events {
		switch e.Kind {
		case protocols.EventTelemetry, protocols.EventAttributes:
			d.env.bus.PublishValues(e.Device, d.connector, e.Kind == protocols.EventAttributes, e.Ts, e.Values)
		case protocols.EventConnect:
			d.env.bus.PublishLifecycle(&bus.Lifecycle{Class: bus.ClassDeviceEvent, Name: e.Device, Connector: d.connector, Event: bus.Connected, Ts: e.Ts})
		case protocols.EventDisconnect:
			d.env.bus.PublishLifecycle(&bus.Lifecycle{Class: bus.ClassDeviceEvent, Name: e.Device, Connector: d.connector, Event: bus.Disconnected, Ts: e.Ts})
		}
	}
}

// readingOwner says whose a reading's slices are once it reaches emit.
type readingOwner uint8

const (
	// driverReading: the driver may reuse the slices for its next poll, so
	// the report filter copies what passes.
	driverReading readingOwner = iota
	// handedReading: the actor's to keep (a push hands them over), so
	// filtering happens in place.
	handedReading
	// pooledReading: handed over, one array each that nothing else holds
	// (protocols.OwnedReadingPoller), so an array the filter empties is
	// recycled at once.
	pooledReading
)

// emit turns a reading into events, filtering it in place unless the
// driver still owns its slices.
func (d *deviceActor) emit(now, started time.Time, reading protocols.Reading, events []protocols.Event, owner readingOwner) []protocols.Event {
	d.counters.ValuesPolled.Add(uint64(len(reading.Telemetry) + len(reading.Attributes)))
	var attrDst, telDst []protocols.Datapoint
	pooled := owner == pooledReading
	if owner != driverReading {
		attrDst, telDst = reading.Attributes[:0], reading.Telemetry[:0]
	}
	if attrs := d.attr.Apply(now, reading.Attributes, attrDst); len(attrs) > 0 {
		events = append(events, protocols.Event{Kind: protocols.EventAttributes, Device: d.info.Name, Ts: now.UnixMilli(), Values: attrs})
	} else if pooled {
		protocols.RecycleDatapoints(reading.Attributes) // nothing passed: no event holds it
	}
	if tel := d.tel.Apply(now, reading.Telemetry, telDst); len(tel) > 0 {
		events = append(events, protocols.Event{Kind: protocols.EventTelemetry, Device: d.info.Name, Ts: started.UnixMilli(), Values: tel})
	} else if pooled {
		protocols.RecycleDatapoints(reading.Telemetry)
	}
	return events
}

// logger is the device's logger, with its name. Only the actor's own
// goroutine logs.
func (d *deviceActor) logger() *zerolog.Logger {
	if d.log == nil {
		l := d.baseLog.With().Str("device", d.info.Name).Logger()
		d.log = &l
	}
	return d.log
}

// link is the link the device's polls queue on ("": none) and whether it
// is known to be slow (see protocols.LinkedDevice).
func (d *deviceActor) link() (string, bool) {
	if l, ok := d.dev.(protocols.LinkedDevice); ok {
		return l.Link()
	}
	return "", false
}
