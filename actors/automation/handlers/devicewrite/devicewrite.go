// Package devicewrite is the automation handler that writes a value to a
// device through its connector's downlink path: the same code a platform
// shared-attribute update runs, so the device's attributeUpdates mapping
// decides how the key is written.
//
//   - handler: device_write
//     params: {device: plc, key: setpoint, value: "{{value}}"}
//     # or several keys at once: {device: plc, values: {a: 1, b: "{{value}}"}}
package devicewrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/industryos/gateway/actors/automation/handler"
)

// Name is the handler's name in automation.yaml.
const Name = "device_write"

func init() { handler.Register(Name, New) }

// Handler writes device keys.
type Handler struct{ env handler.Env }

// New builds the handler.
func New(env handler.Env) handler.Handler { return &Handler{env: env} }

// Validate checks device and key/value or values.
func (h *Handler) Validate(p map[string]any) []error {
	errs := handler.Known(p, "device", "key", "value", "values")
	if _, err := handler.String(p, "device"); err != nil {
		errs = append(errs, err)
	}
	_, hasKey := p["key"]
	_, hasValues := p["values"]
	switch {
	case hasKey == hasValues:
		errs = append(errs, errors.New("params: want key and value, or values"))
	case hasKey:
		if _, err := handler.String(p, "key"); err != nil {
			errs = append(errs, err)
		}
		if _, ok := p["value"]; !ok {
			errs = append(errs, errors.New("params.value: is required with key"))
		}
	default:
		if m, ok := p["values"].(map[string]any); !ok || len(m) == 0 {
			errs = append(errs, fmt.Errorf("params.values: %v is not a non-empty mapping of key: value", p["values"]))
		}
	}
	return errs
}

// Run writes the values and fails permanently when the device does not
// take a key (it is not in its attributeUpdates).
func (h *Handler) Run(ctx context.Context, a handler.Action) error {
	device, err := handler.String(a.Params, "device")
	if err != nil {
		return handler.Permanent(err)
	}
	values := map[string]json.RawMessage{}
	if key, ok := a.Params["key"].(string); ok {
		raw, err := json.Marshal(a.Params["value"])
		if err != nil {
			return handler.Permanent(fmt.Errorf("params.value: %w", err))
		}
		values[key] = raw
	} else {
		m, _ := a.Params["values"].(map[string]any)
		for k, v := range m {
			raw, err := json.Marshal(v)
			if err != nil {
				return handler.Permanent(fmt.Errorf("params.values.%s: %w", k, err))
			}
			values[k] = raw
		}
	}
	ignored, err := h.env.WriteDevice(ctx, device, values)
	if err != nil {
		return fmt.Errorf("write %s to %q: %w", strings.Join(keys(values), ", "), device, err)
	}
	if len(ignored) > 0 {
		return handler.Permanent(fmt.Errorf("device %q does not take %s (not in its attributeUpdates)", device, strings.Join(ignored, ", ")))
	}
	return nil
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

var _ handler.Handler = (*Handler)(nil)
