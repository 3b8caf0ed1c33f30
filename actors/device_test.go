package actors

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
)

// commandDevice is a polled device that takes RPCs and attribute updates.
type commandDevice struct {
	counterDevice
	updates chan map[string]json.RawMessage
}

func (d *commandDevice) RPC(_ context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	if req.Method == "fail" {
		return nil, errors.New("device refused")
	}
	return protocols.RPCResult(`{"method":"` + req.Method + `"}`), nil
}

func (d *commandDevice) UpdateAttributes(_ context.Context, v map[string]json.RawMessage) ([]string, error) {
	d.updates <- v
	return nil, nil
}

func (d *commandDevice) SharedAttributeKeys() []string { return nil }

// TestDevicePollToTelemetry: a polled device announces itself to the
// registry, and its polls reach the journal as a connect, then telemetry.
func TestDevicePollToTelemetry(t *testing.T) {
	sys := bareSystem(t)
	journal, journaled := spawnProbe(t, sys, "journal", nil)
	registry, registered := spawnProbe(t, sys, "registry", nil)
	env := testDeviceEnv(journal, registry)
	dev := &counterDevice{}
	pid := sys.Root.Spawn((&propsKit{}).props(func() actor.Actor {
		return newDeviceActor(dev, protocols.DeviceInfo{}, nil, "conn", env, zerolog.Nop())
	}))
	if up := waitFor[*deviceUp](t, registered, nil); up.name != "counter" || up.connector != "conn" || !up.pid.Equal(pid) {
		t.Fatalf("deviceUp %+v", up)
	}
	first := waitFor[*AppendEvents](t, journaled, nil)
	if len(first.Events) < 2 || first.Events[0].Kind != protocols.EventConnect || first.Events[0].Device != "counter" {
		t.Fatalf("first append %+v: want the connect first", first.Events)
	}
	waitFor(t, registered, func(m *DeviceConnected) bool { return m.Device == "counter" && m.Connector == "conn" })
	// Later polls are telemetry alone, the counter going up.
	last := int64(0)
	for range 3 {
		ev := waitFor(t, journaled, func(m *AppendEvents) bool {
			return len(m.Events) == 1 && m.Events[0].Kind == protocols.EventTelemetry
		}).Events[0]
		if ev.Values[0].Key != "n" {
			t.Fatalf("telemetry %+v", ev)
		}
		f, _ := ev.Values[0].Value.Float64()
		if n := int64(f); n <= last {
			t.Fatalf("value %d after %d", n, last)
		} else {
			last = n
		}
	}
	if env.counters.Polls.Load() < 3 || env.counters.DevicesConnected.Load() != 1 {
		t.Fatalf("polls %d, connected %d", env.counters.Polls.Load(), env.counters.DevicesConnected.Load())
	}
}

// TestDeviceCommandReply: a routed RPC runs on the device and its result is
// the reply; an error is replied too; an attribute update is applied.
func TestDeviceCommandReply(t *testing.T) {
	sys := bareSystem(t)
	journal, _ := spawnProbe(t, sys, "journal", nil)
	registry, registered := spawnProbe(t, sys, "registry", nil)
	dev := &commandDevice{updates: make(chan map[string]json.RawMessage, 1)}
	env := testDeviceEnv(journal, registry)
	pid := sys.Root.Spawn((&propsKit{}).props(func() actor.Actor {
		return newDeviceActor(dev, protocols.DeviceInfo{}, nil, "conn", env, zerolog.Nop())
	}))
	waitFor[*deviceUp](t, registered, nil)
	ask := func(method string) *rpcResult {
		t.Helper()
		res, err := sys.Root.RequestFuture(pid, &routeRPC{req: protocols.RPCRequest{ID: 1, Device: "counter", Method: method},
			deadline: time.Now().Add(waitLimit)}, waitLimit).Result()
		if err != nil {
			t.Fatal(err)
		}
		return res.(*rpcResult)
	}
	if r := ask("open"); r.err != nil || string(r.data) != `{"method":"open"}` {
		t.Fatalf("reply %s, %v", r.data, r.err)
	}
	if r := ask("fail"); r.err == nil || r.err.Error() != "device refused" {
		t.Fatalf("failing rpc replied %s, %v", r.data, r.err)
	}
	sys.Root.Send(pid, &routeAttributes{upd: protocols.AttributeUpdate{Device: "counter", Values: map[string]json.RawMessage{"sp": json.RawMessage("5")}}})
	select {
	case v := <-dev.updates:
		if string(v["sp"]) != "5" {
			t.Fatalf("update %v", v)
		}
	case <-time.After(waitLimit):
		t.Fatal("attribute update not applied")
	}
}

// sliceDevice hands every polled reading's telemetry slice to polled.
type sliceDevice struct {
	counterDevice
	polled chan []protocols.Datapoint
}

func (d *sliceDevice) Poll(ctx context.Context) (protocols.Reading, error) {
	r, err := d.counterDevice.Poll(ctx)
	select {
	case d.polled <- r.Telemetry:
	default:
	}
	return r, err
}

type ownedSliceDevice struct{ *sliceDevice }

func (*ownedSliceDevice) PollReadingOwned() {}

// TestDevicePollFiltersOwnedReadingInPlace: a driver that hands its reading
// over (protocols.OwnedReadingPoller) has it filtered in place, with no copy
// per poll; any other driver's reading is copied, since the driver may reuse
// its slices for the next poll.
func TestDevicePollFiltersOwnedReadingInPlace(t *testing.T) {
	for _, owned := range []bool{false, true} {
		sys := bareSystem(t)
		journal, journaled := spawnProbe(t, sys, "journal", nil)
		registry, _ := spawnProbe(t, sys, "registry", nil)
		env := testDeviceEnv(journal, registry)
		sd := &sliceDevice{polled: make(chan []protocols.Datapoint, 64)}
		var dev protocols.Device = sd
		if owned {
			dev = &ownedSliceDevice{sd}
		}
		sys.Root.Spawn((&propsKit{}).props(func() actor.Actor {
			return newDeviceActor(dev, protocols.DeviceInfo{}, nil, "conn", env, zerolog.Nop())
		}))
		ev := waitFor(t, journaled, func(m *AppendEvents) bool {
			return len(m.Events) == 1 && m.Events[0].Kind == protocols.EventTelemetry
		}).Events[0]
		same := false
		for len(sd.polled) > 0 {
			if s := <-sd.polled; &s[0] == &ev.Values[0] {
				same = true
			}
		}
		if same != owned {
			t.Errorf("owned %v: event shares the driver's slice: %v", owned, same)
		}
	}
}

// TestDeviceLoggerOnFirstUse: a device's log lines name it, and its logger
// (a 512-byte context of its own) is only built when it first logs.
func TestDeviceLoggerOnFirstUse(t *testing.T) {
	var buf strings.Builder
	d := newDeviceActor(nil, protocols.DeviceInfo{Name: "boiler-1"}, nil, "plant", testDeviceEnv(nil, nil),
		zerolog.New(&buf).With().Str("connector", "plant").Logger())
	if d.log != nil {
		t.Fatal("the logger was built before the device logged")
	}
	d.logger().Warn().Msg("poll failed")
	if l := d.logger(); l != d.log {
		t.Error("a second logger was built")
	}
	for _, want := range []string{`"device":"boiler-1"`, `"connector":"plant"`, `"message":"poll failed"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line %q lacks %s", buf.String(), want)
		}
	}
}
