// Package devicerpc is the automation handler that calls a device RPC
// through its connector, as an RPC from the platform does (the device's
// rpc mapping, or a connector's reserved get/set methods).
//
//   - handler: device_rpc
//     params: {device: plc, method: setMode, params: 2}
//
// A device that does not answer, or is not known (yet), is retried; a
// device exception, or an error in the reply, fails the action for good.
package devicerpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/protocols"
)

// Name is the handler's name in automation.yaml.
const Name = "device_rpc"

func init() { handler.Register(Name, New) }

// Handler calls device RPCs.
type Handler struct{ env handler.Env }

// New builds the handler.
func New(env handler.Env) handler.Handler { return &Handler{env: env} }

// Validate checks device and method.
func (h *Handler) Validate(p map[string]any) []error {
	errs := handler.Known(p, "device", "method", "params")
	for _, k := range []string{"device", "method"} {
		if _, err := handler.String(p, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Run calls the RPC once.
func (h *Handler) Run(ctx context.Context, a handler.Action) error {
	device, err := handler.String(a.Params, "device")
	if err != nil {
		return handler.Permanent(err)
	}
	method, err := handler.String(a.Params, "method")
	if err != nil {
		return handler.Permanent(err)
	}
	var params json.RawMessage
	if p, ok := a.Params["params"]; ok {
		if params, err = json.Marshal(p); err != nil {
			return handler.Permanent(fmt.Errorf("params.params: %w", err))
		}
	}
	if h.env.DeviceRPC == nil {
		return handler.Permanent(errors.New("device rpc not available"))
	}
	data, err := h.env.DeviceRPC(ctx, device, method, params)
	switch {
	case errors.Is(err, protocols.ErrException):
		return handler.Permanent(err) // the device refused the request
	case err != nil:
		return err // not answering, not connected (yet), not known (yet)
	}
	// A reserved or mapped method reports a device error in the reply.
	if strings.Contains(string(data), `"error"`) {
		return handler.Permanent(fmt.Errorf("rpc %s to %q answered %s", method, device, data))
	}
	return nil
}

var _ handler.Handler = (*Handler)(nil)
