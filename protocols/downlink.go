package protocols

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
)

// RPCRequest is a server-side RPC addressed to a device or a connector.
type RPCRequest struct {
	ID     int64
	Device string // empty for connector-level RPC
	Method string
	// Params is the raw JSON of the request's params: an object, a string
	// ("type=16int;address=2;" for reserved methods), a number, or absent.
	Params json.RawMessage
}

// RPCResult is the JSON that becomes the reply's "data", e.g.
// {"result":{"value":78}} or {"success":true}.
type RPCResult json.RawMessage

// AttributeUpdate is a shared-attribute change for one device.
type AttributeUpdate struct {
	Device string
	Values map[string]json.RawMessage
}

// ErrUnknownMethod is returned for an RPC method the device does not know.
var ErrUnknownMethod = errors.New("unknown rpc method")

// Commander is implemented by devices that take writes from the platform.
// Its methods are called from the device's own actor, one at a time and
// interleaved with Poll, so a device never needs its own locking for them.
type Commander interface {
	// RPC runs a device RPC (configured methods and the reserved get/set).
	RPC(ctx context.Context, req RPCRequest) (RPCResult, error)
	// UpdateAttributes applies shared-attribute values the device declares
	// (e.g. Modbus attributeUpdates); keys it does not declare are ignored
	// and returned in ignored.
	UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) (ignored []string, err error)
	// SharedAttributeKeys are the shared attributes the device consumes,
	// requested from the platform when it connects.
	SharedAttributeKeys() []string
}

// ConnectorRPC is implemented by connectors that answer connector-level
// RPC on the gateway device (method "<type>_<name>", e.g. "modbus_read").
type ConnectorRPC interface {
	ConnectorRPC(ctx context.Context, req RPCRequest) (RPCResult, error)
}

// JSONString returns the string a JSON string literal holds; ok is false
// for any other JSON (reserved RPC params come as a string or an object).
func JSONString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// UpdateEach is the shape every Commander.UpdateAttributes shares: in key
// order, apply runs for every declared entry that takes a key; keys no
// entry takes are returned as ignored, and a failed key does not stop the
// others (the errors are joined; apply wraps them with its context).
func UpdateEach[E any](values map[string]json.RawMessage, entries []E, takes func(E, string) bool, apply func(E, string, json.RawMessage) error) (ignored []string, err error) {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(values)) {
		taken := false
		for _, e := range entries {
			if !takes(e, key) {
				continue
			}
			taken = true
			if err := apply(e, key, values[key]); err != nil {
				errs = append(errs, err)
			}
		}
		if !taken {
			ignored = append(ignored, key)
		}
	}
	return ignored, errors.Join(errs...)
}
