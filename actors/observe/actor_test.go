package observe

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/supervisor"
)

func TestParseActorID(t *testing.T) {
	for id, want := range map[string]ActorID{
		"gateway":                               {Kind: "gateway"},
		"gateway/journal":                       {Kind: "journal"},
		"gateway/uplink":                        {Kind: "uplink"},
		"gateway/connector/Modbus A":            {Kind: "connector", Connector: "Modbus A"},
		"gateway/connector/Modbus A/device/p-1": {Kind: "device", Connector: "Modbus A", Device: "p-1"},
		"gateway/registry/$3":                   {Kind: "registry"},
		"$12":                                   {Kind: "other"},
	} {
		if got := ParseActorID(id); got != want {
			t.Errorf("ParseActorID(%q) = %+v, want %+v", id, got, want)
		}
	}
}

type ping struct{ n int }
type block struct{ started, release chan struct{} }

func spawnObserved(t *testing.T, sys *actor.ActorSystem, m *Metrics, name string, capacity int, recv actor.ReceiveFunc) *actor.PID {
	t.Helper()
	st := new(mailbox.Stats)
	meter := m.ActorMeter(st)
	props := actor.PropsFromProducer(func() actor.Actor {
		return supervisor.LogPanics(func(string) zerolog.Logger { return zerolog.Nop() }, meter.Wrap(recv))
	},
		actor.WithMailbox(mailbox.Producer(mailbox.WithCapacity(capacity), mailbox.WithStats(st))),
		actor.WithDispatcher(mailbox.NewPooledDispatcher(300, time.Minute)))
	pid, err := sys.Root.SpawnNamed(props, name)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, testpeer.MinTimeout, what, testpeer.True(cond))
}

// TestActorMetrics: messages by type, processing time, mailbox depth and
// overflow drops (from our mailbox), restarts and the crash-loop verdict,
// all labelled with the connector and device of the actor's name.
func TestActorMetrics(t *testing.T) {
	var unhealthy atomic.Bool
	var pidID atomic.Value
	m := New(Options{NoProcess: true, Health: func() map[string]supervisor.ChildHealth {
		id, _ := pidID.Load().(string)
		return map[string]supervisor.ChildHealth{id: {Restarts: 1, Unhealthy: unhealthy.Load()}}
	}})
	sys := quietSystem()
	var handled atomic.Int64
	pid := spawnObserved(t, sys, m, "gateway/connector/c1/device/d1", 4, func(c actor.Context) {
		switch msg := c.Message().(type) {
		case *block:
			close(msg.started)
			<-msg.release
			handled.Add(1)
		case *ping:
			handled.Add(1)
		}
	})
	pidID.Store(pid.Id)
	labels := map[string]string{"kind": "device", "connector": "c1", "device": "d1"}
	reg := m.Registry()

	started, release := make(chan struct{}), make(chan struct{})
	sys.Root.Send(pid, &block{started: started, release: release})
	<-started
	for i := 0; i < 10; i++ {
		sys.Root.Send(pid, &ping{i}) // 4 fit, 6 are dropped
	}
	if d := mustSample(t, reg, "iotgw_actor_mailbox_depth", labels); d != 4 {
		t.Errorf("mailbox depth %v, want 4", d)
	}
	if d := mustSample(t, reg, "iotgw_actor_mailbox_dropped_total", labels); d != 6 {
		t.Errorf("mailbox drops %v, want 6", d)
	}
	close(release)
	waitFor(t, "the queue to drain", func() bool { return handled.Load() == 5 })
	waitFor(t, "the last message to be counted", func() bool {
		v, _ := sample(t, reg, "iotgw_actor_messages_total", map[string]string{"device": "d1", "type": "observe.ping"})
		return v == 4
	})
	if v := mustSample(t, reg, "iotgw_actor_messages_total", map[string]string{"device": "d1", "type": "actor.Started"}); v != 1 {
		t.Errorf("Started counted %v times", v)
	}
	// The first message of each type is timed, the rest of a burst mostly not.
	timed := mustSample(t, reg, "iotgw_actor_message_duration_seconds", labels)
	if timed < 3 || timed > 6 {
		t.Errorf("%v of 6 messages timed, want the first of each of 3 types at least", timed)
	}
	// A quiet actor has every message timed: the first one in each tick is.
	for i := 0; i < 2; i++ {
		t0 := coarseTick.Load()
		waitFor(t, "the next tick", func() bool { return coarseTick.Load() != t0 })
		before := handled.Load()
		sys.Root.Send(pid, &ping{})
		waitFor(t, "the ping", func() bool { return handled.Load() == before+1 })
		waitFor(t, "its duration", func() bool {
			return mustSample(t, reg, "iotgw_actor_message_duration_seconds", labels) == timed+float64(i+1)
		})
	}
	if d := mustSample(t, reg, "iotgw_actor_mailbox_depth", labels); d != 0 {
		t.Errorf("depth %v after draining", d)
	}

	m.ActorRestarted(pid.Id)
	unhealthy.Store(true)
	if v := mustSample(t, reg, "iotgw_actor_restarts_total", labels); v != 1 {
		t.Errorf("restarts %v", v)
	}
	if v := mustSample(t, reg, "iotgw_actor_unhealthy", labels); v != 1 {
		t.Errorf("unhealthy %v", v)
	}
	if u := m.Unhealthy(); len(u) != 1 || u[0] != pid.Id {
		t.Errorf("Unhealthy() = %v", u)
	}

	// A respawn under the same name keeps the counters monotonic.
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	pid = spawnObserved(t, sys, m, "gateway/connector/c1/device/d1", 4, func(actor.Context) {})
	sys.Root.Send(pid, &ping{})
	waitFor(t, "the respawned actor's message", func() bool {
		v, _ := sample(t, reg, "iotgw_actor_messages_total", map[string]string{"device": "d1", "type": "observe.ping"})
		return v == 7
	})
	if d := mustSample(t, reg, "iotgw_actor_mailbox_dropped_total", labels); d != 6 {
		t.Errorf("drops %v after a respawn, want the earlier 6 kept", d)
	}
}

// TestActorLabelsShared: actors outside the tree share kind "other"; their
// series are summed, never exported twice (which would fail the scrape).
func TestActorLabelsShared(t *testing.T) {
	m := New(Options{NoProcess: true})
	sys := quietSystem()
	for i := 0; i < 3; i++ {
		pid := spawnObserved(t, sys, m, fmt.Sprintf("stray-%d", i), 8, func(actor.Context) {})
		sys.Root.Send(pid, &ping{})
	}
	waitFor(t, "three strays", func() bool {
		v, _ := sample(t, m.Registry(), "iotgw_actor_messages_total", map[string]string{"kind": "other", "type": "observe.ping"})
		return v == 3
	})
	if _, err := m.Registry().Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	if m.ActorMeter(new(mailbox.Stats)) != nil {
		t.Error("nil metrics must not add a meter")
	}
	m.ActorRestarted("x")
	m.ObservePuback(1)
	m.Device("c", "d").Polled(1, 1, nil, 1)
	if m.Unhealthy() != nil {
		t.Error("nil metrics report unhealthy actors")
	}
}
