package actors

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/actors/actorsys"
	"github.com/industryos/gateway/protocols/config"
)

// Helpers for testing one actor alone: a bare actor system, and probes that
// stand in for its collaborators and report what they receive.

// waitLimit bounds every wait for an event; tests wait on events, and this
// is only how long they give one to come.
const waitLimit = 20 * time.Second

func bareSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	sys := actorsys.New(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	t.Cleanup(sys.Shutdown)
	return sys
}

// probe is an actor that hands every user message to got; respond, when
// set, answers requests.
type probe struct {
	got     chan any
	respond func(ctx actor.Context, msg any)
}

func (p *probe) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return
	default:
		if p.respond != nil {
			p.respond(ctx, m)
		}
		p.got <- m
	}
}

func spawnProbe(t *testing.T, sys *actor.ActorSystem, name string, respond func(actor.Context, any)) (*actor.PID, <-chan any) {
	t.Helper()
	ch := make(chan any, 4096)
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &probe{got: ch, respond: respond} }), name)
	if err != nil {
		t.Fatal(err)
	}
	return pid, ch
}

// waitFor returns the first message of type T on ch that ok accepts (nil:
// any), skipping others; it fails the test after waitLimit.
func waitFor[T any](t *testing.T, ch <-chan any, ok func(T) bool) T {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-ch:
			if v, is := m.(T); is && (ok == nil || ok(v)) {
				return v
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %T within %s", zero, waitLimit)
			return zero
		}
	}
}

// testDeviceEnv is a device environment whose journal and registry are
// the given probes.
func testDeviceEnv(journal, registry *actor.PID) *deviceEnv {
	cfg := &config.Gateway{}
	return &deviceEnv{
		journal: journal, registry: registry, counters: &Counters{},
		connectorCounters: func(string) *ConnectorCounters { return &ConnectorCounters{} },
		conf:              func() *config.Gateway { return cfg },
		syncShared:        func(string, []string) {},
	}
}

// startGateway starts the tree and stops it when the test ends.
func startGateway(t *testing.T, opts Options) *Gateway {
	t.Helper()
	gw, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Stop(ctx)
	})
	return gw
}
