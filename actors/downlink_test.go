package actors

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/platform"
)

type published struct {
	topic   string
	payload string
}

// TestDownlinkRoutesDeviceRPC: a device RPC from the platform goes to the
// registry under the device's original name (it was renamed on the
// platform), and the device's answer is published as the reply under the
// platform's name; a malformed message is counted and dropped.
func TestDownlinkRoutesDeviceRPC(t *testing.T) {
	sys := bareSystem(t)
	registry, routed := spawnProbe(t, sys, "registry", func(ctx actor.Context, m any) {
		if r, ok := m.(*routeRPC); ok {
			ctx.Respond(&rpcResult{data: protocols.RPCResult(`{"ok":"` + r.req.Device + `"}`)})
		}
	})
	replies := make(chan published, 4)
	r := newRenames()
	r.set("pump-7", "Pump 7")
	d := &downlink{
		sys: sys, registry: func() *actor.PID { return registry }, renames: r,
		counters: &Counters{}, log: zerolog.Nop(), goSafe: func(_ string, fn func()) { go fn() },
		publish: func(_ context.Context, topic string, payload []byte, _ byte) error {
			replies <- published{topic, string(payload)}
			return nil
		},
		attrs: &attrRequests{},
	}
	d.onMessage(platform.TopicGatewayRPC, []byte(`{"device":"Pump 7","data":{"id":42,"method":"start","params":{}}}`))
	rpc := waitFor(t, routed, func(m *routeRPC) bool { return m.req.Method == "start" })
	if rpc.req.Device != "pump-7" || rpc.req.ID != 42 {
		t.Fatalf("routed %+v: want the original name and the id", rpc.req)
	}
	select {
	case p := <-replies:
		if p.topic != platform.TopicGatewayRPC || !strings.Contains(p.payload, `"Pump 7"`) || !strings.Contains(p.payload, `"ok":"pump-7"`) {
			t.Fatalf("reply %s %s", p.topic, p.payload)
		}
	case <-time.After(waitLimit):
		t.Fatal("no rpc reply published")
	}
	d.onMessage(platform.TopicGatewayRPC, []byte(`{not json`))
	if d.counters.BadInbound.Load() != 1 || d.counters.InboundMessages.Load() != 2 {
		t.Fatalf("bad %d, inbound %d", d.counters.BadInbound.Load(), d.counters.InboundMessages.Load())
	}
}
