package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
	"github.com/industryos/gateway/protocols/platform"
)

// DefaultRPCTimeout bounds a device or connector RPC when the request does
// not carry its own "timeout" (ms) in params, as upstream does.
const DefaultRPCTimeout = 5 * time.Second

// routeRPC asks the registry to run an RPC on a device. Control messages:
// a command must not wait behind, or be dropped with, a burst of data.
type routeRPC struct {
	req      protocols.RPCRequest
	deadline time.Time
}

// routeAttributes carries a shared-attribute update to a device.
type routeAttributes struct {
	upd protocols.AttributeUpdate
}

// connectorRPC runs a connector-level RPC on a connector actor.
type connectorRPC struct {
	req      protocols.RPCRequest
	deadline time.Time
}

// attributesResult answers a routeAttributes sent as a request (a local
// write): the keys the device does not take, or the write's error.
type attributesResult struct {
	ignored []string
	err     error
}

// rpcResult answers routeRPC and connectorRPC.
type rpcResult struct {
	data protocols.RPCResult
	err  error
}

// deviceUp and deviceDown keep the registry's name → actor map.
type deviceUp struct {
	name, connector string
	pid             *actor.PID
}
type deviceDown struct {
	name string
	pid  *actor.PID
}

func (*routeRPC) ControlMessage()        {}
func (*routeAttributes) ControlMessage() {}
func (*connectorRPC) ControlMessage()    {}
func (*deviceUp) ControlMessage()        {}
func (*deviceDown) ControlMessage()      {}

// errUnknownDevice is answered for a command to a device no connector owns.
var errUnknownDevice = errors.New("device not found")

// rpcTimeout reads params.timeout (ms) when params is an object that has one.
func rpcTimeout(params json.RawMessage) time.Duration {
	var p struct {
		Timeout float64 `json:"timeout"`
	}
	if len(params) > 0 && params[0] == '{' && json.Unmarshal(params, &p) == nil && p.Timeout > 0 {
		return time.Duration(p.Timeout * float64(time.Millisecond))
	}
	return DefaultRPCTimeout
}

// downlink takes what the platform sends. It runs on the MQTT client's
// goroutine: it parses and hands off, and never blocks on devices.
type downlink struct {
	sys      *actor.ActorSystem
	registry func() *actor.PID // device commands go there
	renames  *renames
	counters *Counters
	log      zerolog.Logger
	// tap, when set, also sees every message (Options.OnPlatformMessage).
	tap    func(topic string, payload []byte)
	goSafe func(what string, fn func())
	// publish sends a reply, waiting briefly for a session to be up.
	publish func(ctx context.Context, topic string, payload []byte, qos byte) error
	// gatewayRPC answers an RPC to the gateway itself; it may block.
	gatewayRPC func(req platform.GatewayRPC)
	attrs      *attrRequests // attribute requests waiting for their response
	// gatewayAttributes are the handlers of the gateway device's own
	// shared attributes; they are added before the platform connects.
	gatewayAttributes []func(map[string]json.RawMessage)
	badLog            ratelimit.Lines
}

func (d *downlink) onMessage(topic string, payload []byte) {
	d.counters.InboundMessages.Add(1)
	if d.tap != nil {
		d.tap(topic, payload)
	}
	switch {
	case topic == platform.TopicGatewayRPC:
		req, err := platform.ParseDeviceRPC(payload)
		if err != nil {
			d.badInbound(topic, payload, err)
			return
		}
		d.goSafe("device rpc", func() { d.deviceRPC(req) })
	case topic == platform.TopicAttributes:
		upd, err := platform.ParseAttributeUpdate(payload)
		if err != nil {
			d.badInbound(topic, payload, err)
			return
		}
		d.sys.Root.Send(d.registry(), &routeAttributes{upd: d.renames.toOriginalUpdate(upd)})
	case strings.HasPrefix(topic, platform.TopicMeRPCRequestPrefix):
		req, err := platform.ParseGatewayRPC(topic, payload)
		if err != nil {
			d.badInbound(topic, payload, err)
			return
		}
		d.goSafe("gateway rpc", func() { d.gatewayRPC(req) })
	case topic == platform.TopicAttributesResponse:
		d.onAttributeResponse(payload)
	case topic == platform.TopicMeAttributes, strings.HasPrefix(topic, platform.TopicMeAttributesResponsePrefix):
		values, err := platform.ParseAttributes(payload)
		if err != nil {
			d.badInbound(topic, payload, err)
			return
		}
		for _, h := range d.gatewayAttributes {
			h(values)
		}
	default:
		d.log.Debug().Str("topic", topic).Int("bytes", len(payload)).Msg("platform message not handled")
	}
}

func (d *downlink) badInbound(topic string, payload []byte, err error) {
	d.counters.BadInbound.Add(1)
	if ok, suppressed := d.badLog.Allow(time.Now()); ok {
		const max = 200
		p := string(payload)
		if len(p) > max {
			p = p[:max] + "…"
		}
		d.log.Warn().Err(err).Str("topic", topic).Str("payload", p).Int("suppressed", suppressed).Msg("ignoring malformed platform message")
	}
}

// deviceRPC runs one device RPC and always replies: with the result, an
// error, or upstream's timeout shape.
func (d *downlink) deviceRPC(req protocols.RPCRequest) {
	platformName := req.Device
	req.Device = d.renames.toOriginal(req.Device)
	timeout := rpcTimeout(req.Params)
	res, err := d.sys.Root.RequestFuture(d.registry(), &routeRPC{req: req, deadline: time.Now().Add(timeout)}, timeout).Result()
	var data []byte
	if err == nil {
		// The device (not the routing) timed out, by its own protocol
		// timeout or by the request's deadline, which the device's context
		// shares with the future and may notice first: same reply upstream gives.
		if r := res.(*rpcResult); errors.Is(r.err, protocols.ErrTimeout) || errors.Is(r.err, context.DeadlineExceeded) {
			err = actor.ErrTimeout
		}
	}
	switch {
	case errors.Is(err, actor.ErrTimeout):
		data = platform.ErrorData("Timeout rpc has been reached for "+platformName, 0)
	case err != nil:
		data = platform.ErrorData(err.Error(), 0)
	default:
		r := res.(*rpcResult)
		if r.err != nil {
			data = platform.ErrorData(r.err.Error(), 0)
		} else {
			data = r.data
		}
	}
	d.reply(platform.TopicGatewayRPC, platform.RPCReplyPayload(platformName, req.ID, data))
}

func (d *downlink) reply(topic string, payload []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A request can arrive from the broker's stored session before our
	// session counts as up (right after a reconnect); wait for it briefly.
	if err := d.publish(ctx, topic, payload, 0); err != nil {
		d.log.Warn().Err(err).Str("topic", topic).Msg("cannot send rpc reply")
	}
}

// onAttributeResponse hands an attribute response to the request waiting for it.
func (d *downlink) onAttributeResponse(payload []byte) {
	id, waiting, err := d.attrs.respond(payload)
	switch {
	case err != nil:
		d.badInbound(platform.TopicAttributesResponse, payload, err)
	case !waiting:
		d.log.Debug().Int64("id", id).Msg("attribute response for no pending request (late or duplicate)")
	}
}

// route forwards a command to its device, or answers for a missing one.
func (r *registryActor) route(ctx actor.Context, device string, msg any) {
	pid, ok := r.pids[device]
	if !ok {
		// A device of a push connector seen before a restart has no actor
		// until it reports again; its connector can create one now.
		if s := r.saved[device]; s != nil && s.ConnectorName != "" {
			if cpid := r.connector(s.ConnectorName); cpid != nil {
				ctx.RequestWithCustomSender(cpid, &adoptRoute{name: device, profile: s.DeviceType, msg: msg}, ctx.Sender())
				return
			}
		}
		if _, isRPC := msg.(*routeRPC); isRPC {
			ctx.Respond(&rpcResult{err: fmt.Errorf("%w: %q", errUnknownDevice, device)})
		} else if ctx.Sender() != nil {
			ctx.Respond(&attributesResult{err: fmt.Errorf("%w: %q", errUnknownDevice, device)})
		} else {
			r.log.Warn().Str("device", device).Msg("attribute update for an unknown device; ignored")
		}
		return
	}
	ctx.Forward(pid)
}

func platformUpdate(device string, values map[string]json.RawMessage) protocols.AttributeUpdate {
	return protocols.AttributeUpdate{Device: device, Values: values}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
