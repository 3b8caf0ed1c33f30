// Package platform is the automation handler that sends telemetry or
// attributes of the gateway device itself to the platform. The message goes
// through the journal like any device's data, so it reaches the platform
// after an outage; the action is done once the journal has committed it.
//
//   - handler: platform_message
//     params: {kind: telemetry, values: {overheat: true, temperature: "{{value}}"}}
package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/protocols"
)

// Name is the handler's name in automation.yaml.
const Name = "platform_message"

func init() { handler.Register(Name, New) }

// Handler journals gateway-device messages.
type Handler struct{ env handler.Env }

// New builds the handler.
func New(env handler.Env) handler.Handler { return &Handler{env: env} }

// Validate checks kind and values.
func (h *Handler) Validate(p map[string]any) []error {
	errs := handler.Known(p, "kind", "values")
	if k, err := handler.OptString(p, "kind", "telemetry"); err != nil {
		errs = append(errs, err)
	} else if k != "telemetry" && k != "attributes" {
		errs = append(errs, fmt.Errorf("params.kind: %q is not telemetry or attributes", k))
	}
	if m, ok := p["values"].(map[string]any); !ok || len(m) == 0 {
		errs = append(errs, fmt.Errorf("params.values: %v is not a non-empty mapping of key: value", p["values"]))
	}
	return errs
}

// Run appends the message to the journal and waits for the commit.
func (h *Handler) Run(ctx context.Context, a handler.Action) error {
	kind := protocols.EventTelemetry
	if k, _ := a.Params["kind"].(string); k == "attributes" {
		kind = protocols.EventAttributes
	}
	m, _ := a.Params["values"].(map[string]any)
	if len(m) == 0 {
		return handler.Permanent(fmt.Errorf("params.values: nothing to send"))
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	vals := make([]protocols.Datapoint, 0, len(m))
	for _, k := range names {
		v, ok := protocols.FromGo(m[k])
		if !ok {
			raw, err := json.Marshal(m[k])
			if err != nil {
				return handler.Permanent(fmt.Errorf("params.values.%s: %w", k, err))
			}
			if v, err = protocols.JSON(raw); err != nil {
				return handler.Permanent(fmt.Errorf("params.values.%s: %w", k, err))
			}
		}
		vals = append(vals, protocols.Datapoint{Key: k, Value: v})
	}
	done := make(chan error, 1)
	h.env.Journal([]protocols.Event{{Kind: kind, Ts: time.Now().UnixMilli(), Values: vals}}, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("journal did not commit: %w", ctx.Err())
	}
}

var _ handler.Handler = (*Handler)(nil)
