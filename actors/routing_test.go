package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
)

// TestRegistryRoutesRPCToItsDevice: the downlink's registry sends a device
// RPC to that device's actor (and no other), answers an unknown device
// itself, and hands a known push device without an actor to its connector.
func TestRegistryRoutesRPCToItsDevice(t *testing.T) {
	sys := bareSystem(t)
	answer := func(name string) func(actor.Context, any) {
		return func(ctx actor.Context, m any) {
			if r, ok := m.(*routeRPC); ok {
				ctx.Respond(&rpcResult{data: protocols.RPCResult(`"` + name + ":" + r.req.Method + `"`)})
			}
		}
	}
	a, _ := spawnProbe(t, sys, "a", answer("a"))
	b, _ := spawnProbe(t, sys, "b", answer("b"))
	conn, adopted := spawnProbe(t, sys, "connector", func(ctx actor.Context, m any) {
		if r, ok := m.(*adoptRoute); ok {
			ctx.Respond(&rpcResult{data: protocols.RPCResult(`"adopted:` + r.name + `"`)})
		}
	})
	uplink, _ := spawnProbe(t, sys, "uplink", nil)
	saved := map[string]*persistence.SavedDevice{"quiet": {ConnectorName: "mqtt", DeviceType: "sensor"}}
	reg := sys.Root.Spawn((&propsKit{}).props(func() actor.Actor {
		return &registryActor{
			renames: newRenames(), log: zerolog.Nop(), saved: saved,
			connector: func(name string) *actor.PID {
				if name == "mqtt" {
					return conn
				}
				return nil
			},
			uplink: func() *actor.PID { return uplink },
		}
	}))
	sys.Root.Send(reg, &deviceUp{name: "dev-a", connector: "c", pid: a})
	sys.Root.Send(reg, &deviceUp{name: "dev-b", connector: "c", pid: b})
	rpc := func(device string) *rpcResult {
		t.Helper()
		res, err := sys.Root.RequestFuture(reg, &routeRPC{req: protocols.RPCRequest{Device: device, Method: "m"},
			deadline: time.Now().Add(waitLimit)}, waitLimit).Result()
		if err != nil {
			t.Fatal(err)
		}
		return res.(*rpcResult)
	}
	for dev, want := range map[string]string{"dev-a": `"a:m"`, "dev-b": `"b:m"`, "quiet": `"adopted:quiet"`} {
		if r := rpc(dev); r.err != nil || string(r.data) != want {
			t.Fatalf("%s: %s, %v; want %s", dev, r.data, r.err, want)
		}
	}
	waitFor(t, adopted, func(m *adoptRoute) bool { return m.name == "quiet" && m.profile == "sensor" })
	if r := rpc("nobody"); !errors.Is(r.err, errUnknownDevice) {
		t.Fatalf("unknown device: %s, %v", r.data, r.err)
	}
	// A device that went down is unknown again.
	sys.Root.Send(reg, &deviceDown{name: "dev-a", pid: a})
	if r := rpc("dev-a"); !errors.Is(r.err, errUnknownDevice) {
		t.Fatalf("stopped device: %s, %v", r.data, r.err)
	}
}
