package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/protocols"
)

// TestDevicePublishesOnBus: what a device actor journals is also on the
// bus, the connect as a lifecycle event and the values under
// device/<name>/<key>.
func TestDevicePublishesOnBus(t *testing.T) {
	sys := bareSystem(t)
	journal, _ := spawnProbe(t, sys, "journal", nil)
	registry, _ := spawnProbe(t, sys, "registry", nil)
	sub, got := spawnProbe(t, sys, "subscriber", nil)
	env := testDeviceEnv(journal, registry)
	env.bus = bus.New(sys)
	values, _ := bus.ParsePattern("device/counter/n")
	events, _ := bus.ParsePattern("devevent/+/#")
	env.bus.Subscribe(sub, nil, values, events)
	sys.Root.Spawn((&propsKit{}).props(func() actor.Actor {
		return newDeviceActor(&counterDevice{}, protocols.DeviceInfo{}, nil, "conn", env, zerolog.Nop())
	}))
	up := waitFor[*bus.Lifecycle](t, got, nil)
	if up.Event != bus.Connected || up.Name != "counter" || up.Connector != "conn" {
		t.Fatalf("lifecycle %+v", up)
	}
	v := waitFor[*bus.Values](t, got, nil)
	if v.Device != "counter" || v.Connector != "conn" || v.Attributes || len(v.Values) != 1 || v.Values[0].Key != "n" {
		t.Fatalf("values %+v", v)
	}
}

// TestDeviceRecyclesPolledValuesUnlessShared: a poll's events go to the
// journal for recycling, except while bus subscribers share their value
// arrays: a subscriber's values must not be cleared and reused under it.
func TestDeviceRecyclesPolledValuesUnlessShared(t *testing.T) {
	for _, shared := range []bool{false, true} {
		sys := bareSystem(t)
		journal, journaled := spawnProbe(t, sys, "journal", nil)
		registry, _ := spawnProbe(t, sys, "registry", nil)
		env := testDeviceEnv(journal, registry)
		if shared {
			sub, _ := spawnProbe(t, sys, "subscriber", nil)
			env.bus = bus.New(sys)
			values, _ := bus.ParsePattern("device/#")
			env.bus.Subscribe(sub, nil, values)
		}
		sys.Root.Spawn((&propsKit{}).props(func() actor.Actor {
			return newDeviceActor(&counterDevice{}, protocols.DeviceInfo{}, nil, "conn", env, zerolog.Nop())
		}))
		m := waitFor(t, journaled, func(m *AppendEvents) bool {
			for _, e := range m.Events {
				if e.Kind == protocols.EventTelemetry {
					return true
				}
			}
			return false
		})
		if m.Recycle == shared {
			t.Errorf("bus subscribers %v: Recycle %v", shared, m.Recycle)
		}
	}
}
