package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/platform"
)

// GatewayMethod answers an RPC to the gateway itself; the returned JSON is
// published as the reply.
type GatewayMethod func(ctx context.Context, g *Gateway, params json.RawMessage) ([]byte, error)

var (
	gwMethodsMu sync.RWMutex
	gwMethods   = map[string]GatewayMethod{}
)

// RegisterGatewayMethod adds a gateway_<name> RPC. It panics on duplicates,
// which are programming errors.
func RegisterGatewayMethod(name string, m GatewayMethod) {
	gwMethodsMu.Lock()
	defer gwMethodsMu.Unlock()
	if _, dup := gwMethods[name]; dup || m == nil || name == "" {
		panic(fmt.Sprintf("actors: gateway method %q registered twice or empty", name))
	}
	gwMethods[name] = m
}

func init() {
	RegisterGatewayMethod("ping", func(context.Context, *Gateway, json.RawMessage) ([]byte, error) {
		return []byte(`{"code":200,"resp":"pong"}`), nil
	})
	RegisterGatewayMethod("version", func(_ context.Context, g *Gateway, _ json.RawMessage) ([]byte, error) {
		// There is no update service to ask on an offline box; latest is
		// what runs until an updater exists.
		v := protocols.AppendJSONString(nil, g.opts.Version)
		return fmt.Appendf(nil, `{"code":200,"resp":{"current_version":%s,"latest_version":%s}}`, v, v), nil
	})
	RegisterGatewayMethod("devices", func(ctx context.Context, g *Gateway, _ json.RawMessage) ([]byte, error) {
		devs, err := g.Devices(ctx)
		if err != nil {
			return nil, err
		}
		b := []byte(`{"code":200,"resp":{`)
		for i, d := range devs {
			if i > 0 {
				b = append(b, ',')
			}
			b = protocols.AppendJSONString(b, g.renames.toPlatform(d.Device))
			b = append(b, ':')
			b = protocols.AppendJSONString(b, d.Connector)
		}
		return append(b, "}}"...), nil
	})
	RegisterGatewayMethod("device_renamed", func(ctx context.Context, g *Gateway, params json.RawMessage) ([]byte, error) {
		var m map[string]string
		if err := json.Unmarshal(params, &m); err != nil || len(m) == 0 {
			return nil, fmt.Errorf(`device_renamed: params must be {"old name":"new name"}, got %s`, params)
		}
		for from, to := range m {
			if _, err := g.askRegistry(ctx, &renameDevice{from: from, to: to}); err != nil {
				return nil, err
			}
		}
		return []byte(`{"success":true}`), nil
	})
	RegisterGatewayMethod("device_deleted", func(ctx context.Context, g *Gateway, params json.RawMessage) ([]byte, error) {
		var name string
		if err := json.Unmarshal(params, &name); err != nil || name == "" {
			return nil, fmt.Errorf(`device_deleted: params must be the device name, got %s`, params)
		}
		return g.askRegistry(ctx, &deleteDevice{name: name})
	})
	RegisterGatewayMethod("restart", func(_ context.Context, g *Gateway, params json.RawMessage) ([]byte, error) {
		delay := time.Second
		var secs float64
		if len(params) > 0 && json.Unmarshal(params, &secs) == nil && secs > 1 {
			delay = time.Duration(secs * float64(time.Second))
		}
		// Reply first: the restart tears down the session the reply goes out on.
		time.AfterFunc(delay, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := g.Restart(ctx); err != nil {
				g.log.Error().Err(err).Msg("gateway_restart failed")
			}
		})
		return []byte(`{"success":true}`), nil
	})
	RegisterGatewayMethod("stats", func(_ context.Context, g *Gateway, _ json.RawMessage) ([]byte, error) {
		c := g.counters
		return fmt.Appendf(nil, `{"eventsProduced":%d,"eventsSent":%d}`, c.EventsJournaled.Load(), c.MessagesSent.Load()), nil
	})
}

func (g *Gateway) askRegistry(ctx context.Context, msg any) ([]byte, error) {
	res, err := g.ask(ctx, g.registry, msg)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := res.(*rpcResult)
	return r.data, r.err
}

// callMethod turns a panicking method into a 500 reply rather than silence.
func callMethod(ctx context.Context, g *Gateway, m GatewayMethod, params json.RawMessage) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).Msg("gateway rpc method panicked")
			out, err = nil, fmt.Errorf("internal error: %v", r)
		}
	}()
	return m(ctx, g, params)
}

// gatewayRPC answers v1/devices/me/rpc/request/<id>.
func (g *Gateway) gatewayRPC(req platform.GatewayRPC) {
	timeout := rpcTimeout(req.Params)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	data := g.runGatewayRPC(ctx, req)
	g.down.reply(platform.TopicMeRPCResponsePrefix+req.RequestID, data)
}

func (g *Gateway) runGatewayRPC(ctx context.Context, req platform.GatewayRPC) []byte {
	prefix, name, found := strings.Cut(req.Method, "_")
	if !found {
		return platform.ErrorData("Method not found", 404)
	}
	if prefix == "gateway" {
		gwMethodsMu.RLock()
		m := gwMethods[name]
		gwMethodsMu.RUnlock()
		if m == nil {
			return platform.ErrorData("Method not found", 404)
		}
		out, err := callMethod(ctx, g, m, req.Params)
		if err != nil {
			return platform.ErrorData(err.Error(), 500)
		}
		return out
	}
	return g.connectorTypeRPC(ctx, prefix, protocols.RPCRequest{Method: req.Method, Params: req.Params})
}

// connectorTypeRPC sends <type>_<method> to every connector of that type, as
// upstream does. One connector's answer is returned as is; several are
// returned keyed by connector name.
func (g *Gateway) connectorTypeRPC(ctx context.Context, typ string, req protocols.RPCRequest) []byte {
	deadline, _ := ctx.Deadline()
	results := map[string][]byte{}
	cfgs, pids := g.connectorPIDs()
	for i, c := range cfgs {
		if c.Type != typ || i >= len(pids) {
			continue
		}
		res, err := g.ask(ctx, pids[i], &connectorRPC{req: req, deadline: deadline})
		switch {
		case err != nil:
			results[c.Name] = platform.ErrorData(fmt.Sprintf("connector %q: %v", c.Name, err), 500)
		case res.(*rpcResult).err != nil:
			results[c.Name] = platform.ErrorData(res.(*rpcResult).err.Error(), 500)
		default:
			results[c.Name] = res.(*rpcResult).data
		}
	}
	switch len(results) {
	case 0:
		return platform.ErrorData(typ+" - connector not found in available connectors.", 404)
	case 1:
		for _, r := range results {
			return r
		}
	}
	b := []byte{'{'}
	for i, name := range sortedKeys(results) {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocols.AppendJSONString(b, name)
		b = append(b, ':')
		b = append(b, results[name]...)
	}
	return append(b, '}')
}
