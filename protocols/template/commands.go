package template

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/industryos/gateway/protocols"
)

// SharedAttributeKeys are the attributeUpdates keys, requested from the
// platform when the device connects.
func (d *device) SharedAttributeKeys() []string {
	out := make([]string, len(d.cfg.Writable))
	for i, k := range d.cfg.Writable {
		out[i] = k.Key
	}
	return out
}

// UpdateAttributes writes each declared key to its register.
func (d *device) UpdateAttributes(_ context.Context, values map[string]json.RawMessage) ([]string, error) {
	return protocols.UpdateEach(values, d.cfg.Writable,
		func(k *KeyConfig, key string) bool { return k.Key == key },
		func(k *KeyConfig, _ string, raw json.RawMessage) error {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("template: %s: %w", k.Key, err)
			}
			f, err := d.open()
			if err != nil {
				return err
			}
			f.write(k.Register, v)
			return nil
		})
}

// RPC answers "get" with a register's value ({"register": "temp"}); every
// other method is unknown.
func (d *device) RPC(_ context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	if req.Method != "get" {
		return nil, fmt.Errorf("template: %q: %w", req.Method, protocols.ErrUnknownMethod)
	}
	var p struct {
		Register string `json:"register"`
	}
	if err := json.Unmarshal(req.Params, &p); err != nil || p.Register == "" {
		return nil, fmt.Errorf("template: get wants params {\"register\": \"<name>\"}")
	}
	f, err := d.open()
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(map[string]any{"result": map[string]any{"value": f.read()[p.Register]}})
	return protocols.RPCResult(out), err
}
