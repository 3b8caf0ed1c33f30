package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/protocols"
)

// Services the gateway offers to in-process subsystems (automation): they
// take the same paths as the platform's messages.

// ActorSystem is the gateway's actor system, for subsystems that run
// their own actors beside the tree.
func (g *Gateway) ActorSystem() *actor.ActorSystem { return g.sys }

// WriteAttributes writes values to a device exactly as a platform
// shared-attribute update does (registry, device actor, the connector's
// attributeUpdates), and waits for the device: ignored are the keys it
// does not take. ctx bounds the wait (DefaultRPCTimeout without a deadline).
func (g *Gateway) WriteAttributes(ctx context.Context, device string, values map[string]json.RawMessage) (ignored []string, err error) {
	timeout := DefaultRPCTimeout + time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	res, err := g.sys.Root.RequestFuture(g.registry, &routeAttributes{upd: platformUpdate(device, values)}, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("write to %q: %w", device, err)
	}
	r := res.(*attributesResult)
	return r.ignored, r.err
}

// AppendGatewayEvents journals events of the gateway device itself (Device
// ""), so they reach the platform after an outage; done (may be nil) learns
// of the commit.
func (g *Gateway) AppendGatewayEvents(events []protocols.Event, done func(error)) {
	g.sys.Root.Send(g.journal, &AppendEvents{Events: events, Done: done})
}

// SetAutomationStatus makes the http endpoint serve fn's answer as JSON on
// /automation (nil: automation off).
func (g *Gateway) SetAutomationStatus(fn func() any) {
	if fn == nil {
		g.automationStatus.Store(nil)
		return
	}
	g.automationStatus.Store(&fn)
}

// SetAutomationStats makes the statistics telemetry carry fn's answer, as
// JSON, under automationStats (nil: automation off).
func (g *Gateway) SetAutomationStats(fn func() any) {
	if fn == nil {
		g.automationStats.Store(nil)
		return
	}
	g.automationStats.Store(&fn)
}

// SetAutomationRemote makes remote configuration apply the shared
// attribute automation_configuration with fn (nil: refused, automation is
// not running).
func (g *Gateway) SetAutomationRemote(fn AutomationApplier) {
	if fn == nil {
		g.automationRemote.Store(nil)
		return
	}
	g.automationRemote.Store(&fn)
}

// DeviceRPC runs an RPC on a device exactly as a platform RPC does and
// returns the device's reply data. A device that does not answer in time
// gives an error wrapping context.DeadlineExceeded.
func (g *Gateway) DeviceRPC(ctx context.Context, device, method string, params json.RawMessage) (json.RawMessage, error) {
	timeout := DefaultRPCTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	req := protocols.RPCRequest{ID: g.localRPC.Add(1), Device: device, Method: method, Params: params}
	res, err := g.sys.Root.RequestFuture(g.registry, &routeRPC{req: req, deadline: time.Now().Add(timeout)}, timeout).Result()
	if errors.Is(err, actor.ErrTimeout) {
		return nil, fmt.Errorf("rpc %s to %q: %w", method, device, context.DeadlineExceeded)
	}
	if err != nil {
		return nil, fmt.Errorf("rpc %s to %q: %w", method, device, err)
	}
	r := res.(*rpcResult)
	if r.err != nil {
		if errors.Is(r.err, protocols.ErrTimeout) {
			return nil, fmt.Errorf("rpc %s to %q: %w: %w", method, device, context.DeadlineExceeded, r.err)
		}
		return nil, fmt.Errorf("rpc %s to %q: %w", method, device, r.err)
	}
	return json.RawMessage(r.data), nil
}
