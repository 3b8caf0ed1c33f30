package actors

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/supervisor"
)

// PropsOption configures the props of one actor of the tree, in the style of
// protoactor-go's props options: each says one thing that differs between
// actors, and what every actor gets is added by the propsKit.
type PropsOption func(*propsSpec)

type propsSpec struct {
	capacity   int
	supervisor actor.SupervisorStrategy
}

// WithMailbox gives the actor a bounded mailbox of capacity data messages
// (control messages have their own lane); the newest message is dropped
// when it is full, and the drop counted. Without it the capacity is
// deviceMailbox.
func WithMailbox(capacity int) PropsOption {
	return func(s *propsSpec) { s.capacity = capacity }
}

// WithSupervisor makes strategy supervise the actor's children (a connector
// supervises its devices); without it protoactor's default applies.
func WithSupervisor(strategy actor.SupervisorStrategy) PropsOption {
	return func(s *propsSpec) { s.supervisor = strategy }
}

// propsKit holds what the props of every actor of one gateway share: the
// pooled dispatcher, the drop counter, the logger for panics and, when
// metrics are on, the middleware that times messages. A zero kit (tests)
// gives the default dispatcher, no drop counting and no metrics.
type propsKit struct {
	dispatcher actor.Dispatcher
	drops      *atomic.Uint64                  // nil: not counted
	panicLog   func(pid string) zerolog.Logger // nil: zerolog.Nop
	metrics    *observe.Metrics                // nil: metrics off
}

// props builds the props of an actor made by producer: a bounded two-lane
// mailbox whose drops are counted and told to whoever waits on the dropped
// message, the shared dispatcher, panic logging, and metrics when on.
func (k *propsKit) props(producer actor.Producer, opts ...PropsOption) *actor.Props {
	spec := propsSpec{capacity: deviceMailbox}
	for _, o := range opts {
		o(&spec)
	}
	st := new(mailbox.Stats) // this actor's own, for its mailbox metrics
	drops := k.drops
	panicLog := k.panicLog
	if panicLog == nil {
		panicLog = func(string) zerolog.Logger { return zerolog.Nop() }
	}
	po := []actor.PropsOption{
		actor.WithMailbox(mailbox.Producer(
			mailbox.WithCapacity(spec.capacity),
			mailbox.WithPolicy(mailbox.DropNewest),
			mailbox.WithOnDrop(func(m any) {
				if drops != nil {
					drops.Add(1)
				}
				// Whoever waits for a dropped message's commit must learn
				// it will not come, or a push source would wait forever.
				if d, ok := m.(interface{ dropped() }); ok {
					d.dropped()
				}
			}),
			mailbox.WithStats(st),
		)),
	}
	if k.dispatcher != nil {
		po = append(po, actor.WithDispatcher(k.dispatcher))
	}
	// Panic logging and metering wrap the actor rather than its receive:
	// receiver middleware costs an envelope allocation per message.
	meter := k.metrics.ActorMeter(st)
	inner := producer
	producer = func() actor.Actor { return supervisor.LogPanics(panicLog, meter.Wrap(inner())) }
	if spec.supervisor != nil {
		po = append(po, actor.WithSupervisor(spec.supervisor))
	}
	return actor.PropsFromProducer(producer, po...)
}

// Mailbox capacities. Device and connector actors get few messages; the
// journal takes every device's events, so it gets room for bursts.
const (
	deviceMailbox  = 256
	journalMailbox = 65536
	uplinkMailbox  = 4096
)
