package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
)

// fakeConnector has polled devices, a connector-level RPC and, when push
// is set, a Source that pushes it once and waits.
type fakeConnector struct {
	devs   []protocols.Device
	push   *protocols.Push
	closed chan struct{}
	once   sync.Once
}

func (c *fakeConnector) Devices() []protocols.Device { return c.devs }
func (c *fakeConnector) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *fakeConnector) ConnectorRPC(_ context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	return protocols.RPCResult(`"connector:` + req.Method + `"`), nil
}

type pushConnector struct{ *fakeConnector }

func (c pushConnector) Run(ctx context.Context, sink protocols.Sink) error {
	if err := sink.Push(ctx, *c.push); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func testConnectorEnv(journal, registry *actor.PID) *connectorEnv {
	return &connectorEnv{
		devices: testDeviceEnv(journal, registry),
		props:   &propsKit{},
		goSafe:  func(_ string, fn func()) { go fn() },
		links:   &sync.Map{},
	}
}

func spawnConnector(t *testing.T, sys *actor.ActorSystem, env *connectorEnv, conn protocols.Connector) *actor.PID {
	t.Helper()
	first := true
	cfg := config.Connector{Name: "conn", Type: "fake", Connector: conn, Build: func() (protocols.Connector, error) { return conn, nil }}
	pid, err := sys.Root.SpawnNamed(env.props.props(func() actor.Actor {
		return &connectorActor{cfg: cfg, env: env, log: zerolog.Nop(), first: &first}
	}), "connector/conn")
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestConnectorRunsItsDevices: a connector actor starts one device actor per
// device (they announce themselves and poll into the journal), answers a
// connector-level RPC, and closes the connector when it stops, after its
// devices have gone down.
func TestConnectorRunsItsDevices(t *testing.T) {
	sys := bareSystem(t)
	journal, journaled := spawnProbe(t, sys, "journal", nil)
	registry, registered := spawnProbe(t, sys, "registry", nil)
	conn := &fakeConnector{devs: []protocols.Device{&counterDevice{}}, closed: make(chan struct{})}
	pid := spawnConnector(t, sys, testConnectorEnv(journal, registry), conn)

	up := waitFor(t, registered, func(m *deviceUp) bool { return m.name == "counter" })
	if want := pid.Id + "/device/counter"; up.pid.Id != want {
		t.Fatalf("device actor %s, want %s (a child of its connector)", up.pid.Id, want)
	}
	waitFor(t, journaled, func(m *AppendEvents) bool { return m.Events[0].Device == "counter" })

	res, err := sys.Root.RequestFuture(pid, &connectorRPC{req: protocols.RPCRequest{Method: "scan"}, deadline: time.Now().Add(waitLimit)}, waitLimit).Result()
	if err != nil {
		t.Fatal(err)
	}
	if r := res.(*rpcResult); r.err != nil || string(r.data) != `"connector:scan"` {
		t.Fatalf("connector rpc: %s, %v", r.data, r.err)
	}

	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, registered, func(m *deviceDown) bool { return m.name == "counter" })
	select {
	case <-conn.closed:
	case <-time.After(waitLimit):
		t.Fatal("connector not closed on stop")
	}
}

// TestConnectorPushSource: a push source's data reaches the journal through
// a device actor the connector creates on first use, and the source learns
// it was committed once the journal calls Done.
func TestConnectorPushSource(t *testing.T) {
	sys := bareSystem(t)
	journal, journaled := spawnProbe(t, sys, "journal", func(_ actor.Context, m any) {
		if a, ok := m.(*AppendEvents); ok && a.Done != nil {
			a.Done(nil) // committed
		}
	})
	registry, registered := spawnProbe(t, sys, "registry", nil)
	committed := make(chan error, 1)
	push := &protocols.Push{Device: "meter", Profile: "power",
		Reading: protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "kw", Value: protocols.Float(1.5)}}},
		Done:    func(err error) { committed <- err }}
	conn := pushConnector{&fakeConnector{push: push, closed: make(chan struct{})}}
	pid := spawnConnector(t, sys, testConnectorEnv(journal, registry), conn)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()

	waitFor(t, registered, func(m *DeviceConnected) bool { return m.Device == "meter" && m.Type == "power" })
	app := waitFor(t, journaled, func(m *AppendEvents) bool { return len(m.Events) > 0 && m.Events[0].Device == "meter" })
	var kinds []protocols.EventKind
	for _, e := range app.Events {
		kinds = append(kinds, e.Kind)
	}
	if kinds[0] != protocols.EventConnect || kinds[len(kinds)-1] != protocols.EventTelemetry {
		t.Fatalf("events %v: want the connect first and the telemetry last", kinds)
	}
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the source was never told its data was committed")
	}
}

// TestConnectorRecyclesPooledPushes: the journal recycles the value arrays
// of a pooled Push (a converter's own), and never those of any other, which
// the source may still hold.
func TestConnectorRecyclesPooledPushes(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		sys := bareSystem(t)
		journal, journaled := spawnProbe(t, sys, "journal", nil)
		registry, _ := spawnProbe(t, sys, "registry", nil)
		push := &protocols.Push{Device: "meter", Pooled: pooled,
			Reading: protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "kw", Value: protocols.Float(1.5)}}}}
		conn := pushConnector{&fakeConnector{push: push, closed: make(chan struct{})}}
		pid := spawnConnector(t, sys, testConnectorEnv(journal, registry), conn)
		app := waitFor(t, journaled, func(m *AppendEvents) bool {
			return len(m.Events) > 0 && m.Events[len(m.Events)-1].Kind == protocols.EventTelemetry
		})
		if app.Recycle != pooled {
			t.Errorf("pooled %v: Recycle %v", pooled, app.Recycle)
		}
		_ = sys.Root.StopFuture(pid).Wait()
	}
}

// TestConnectorPushToPolledDevice: a source that pushes data for a device
// its connector also polls (an SNMP agent's traps) reaches that device's
// polling actor instead of failing to create a second one.
func TestConnectorPushToPolledDevice(t *testing.T) {
	sys := bareSystem(t)
	journal, journaled := spawnProbe(t, sys, "journal", func(_ actor.Context, m any) {
		if a, ok := m.(*AppendEvents); ok && a.Done != nil {
			a.Done(nil)
		}
	})
	registry, registered := spawnProbe(t, sys, "registry", nil)
	committed := make(chan error, 1)
	push := &protocols.Push{Device: "counter",
		Reading: protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "trap", Value: protocols.String("linkDown")}}},
		Done:    func(err error) { committed <- err }}
	conn := pushConnector{&fakeConnector{devs: []protocols.Device{&counterDevice{}}, push: push, closed: make(chan struct{})}}
	pid := spawnConnector(t, sys, testConnectorEnv(journal, registry), conn)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()

	up := waitFor(t, registered, func(m *deviceUp) bool { return m.name == "counter" })
	waitFor(t, journaled, func(m *AppendEvents) bool {
		for _, e := range m.Events {
			if e.Device == "counter" && e.Kind == protocols.EventTelemetry && len(e.Values) == 1 && e.Values[0].Key == "trap" {
				return true
			}
		}
		return false
	})
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the source was never told its data was committed")
	}
	if want := pid.Id + "/device/counter"; up.pid.Id != want {
		t.Fatalf("device actor %s, want %s", up.pid.Id, want)
	}
}
