package localapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
)

// Errors of the device API's payloads.
var (
	ErrNotObject = errors.New("expected a JSON object")
	ErrEmpty     = errors.New("no values")
)

// Sample is one timestamped group of values; Ts zero means "when received".
type Sample struct {
	Ts     time.Time
	Values []protocols.Datapoint
}

// ParseTelemetry reads a device API telemetry payload: an object of values,
// {"ts":ms,"values":{...}}, or a list of either.
func ParseTelemetry(payload []byte) ([]Sample, error) {
	v, err := decode(payload)
	if err != nil {
		return nil, err
	}
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case map[string]any:
		items = []any{t}
	default:
		return nil, fmt.Errorf("telemetry: %w or a list of objects, got %s", ErrNotObject, kind(v))
	}
	out := make([]Sample, 0, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("telemetry[%d]: %w, got %s", i, ErrNotObject, kind(it))
		}
		s, err := sample(m)
		if err != nil {
			return nil, fmt.Errorf("telemetry[%d]: %w", i, err)
		}
		if len(s.Values) > 0 {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("telemetry: %w", ErrEmpty)
	}
	return out, nil
}

func sample(m map[string]any) (Sample, error) {
	tsv, hasTs := m["ts"]
	vals, hasValues := m["values"].(map[string]any)
	if !hasTs || !hasValues || len(m) != 2 {
		return Sample{Values: datapoints(m)}, nil
	}
	n, ok := tsv.(json.Number)
	if !ok {
		return Sample{}, fmt.Errorf("ts: expected milliseconds, got %s", kind(tsv))
	}
	ms, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil || f < 0 || f > math.MaxInt64 {
			return Sample{}, fmt.Errorf("ts: %s is not milliseconds", n)
		}
		ms = int64(f)
	}
	if ms <= 0 {
		return Sample{}, fmt.Errorf("ts: %d is not a time after 1970", ms)
	}
	return Sample{Ts: time.UnixMilli(ms), Values: datapoints(vals)}, nil
}

// ParseAttributes reads client attributes: one object.
func ParseAttributes(payload []byte) ([]protocols.Datapoint, error) {
	v, err := decode(payload)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("attributes: %w, got %s", ErrNotObject, kind(v))
	}
	dps := datapoints(m)
	if len(dps) == 0 {
		return nil, fmt.Errorf("attributes: %w", ErrEmpty)
	}
	return dps, nil
}

func decode(payload []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("invalid JSON: data after the document")
	}
	return v, nil
}

// datapoints converts an object's members in key order (deterministic).
func datapoints(m map[string]any) []protocols.Datapoint {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]protocols.Datapoint, 0, len(keys))
	for _, k := range keys {
		out = append(out, protocols.Datapoint{Key: k, Value: value(m[k])})
	}
	return out
}

func value(x any) protocols.Value {
	switch t := x.(type) {
	case nil:
		return protocols.Value{}
	case bool:
		return protocols.Bool(t)
	case string:
		return protocols.String(t)
	case json.Number:
		s := t.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return protocols.Int(i)
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return protocols.Uint(u)
			}
		}
		f, _ := strconv.ParseFloat(s, 64)
		return protocols.Float(f)
	}
	raw, err := json.Marshal(x)
	if err == nil {
		if v, err := protocols.JSON(raw); err == nil {
			return v
		}
	}
	return protocols.String(fmt.Sprint(x))
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// attributeRequest is the body of an MQTT attribute request or the query
// of the HTTP one: comma-separated key lists.
type attributeRequest struct {
	ClientKeys string `json:"clientKeys"`
	SharedKeys string `json:"sharedKeys"`
}

// errNoKeys: the gateway API asks the platform for attributes by key. With
// an empty key list the platform answers client and shared attributes
// merged into one object (and a single one without its name), so a device
// request for all attributes cannot be answered faithfully.
var errNoKeys = errors.New("attribute request without clientKeys or sharedKeys: the gateway can ask the platform only by key")

// check refuses a request without keys.
func (r attributeRequest) check() error {
	if len(splitKeys(r.ClientKeys)) == 0 && len(splitKeys(r.SharedKeys)) == 0 {
		return errNoKeys
	}
	return nil
}

func splitKeys(s string) []string {
	var out []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// rpcCall is a client-side RPC request from a device.
type rpcCall struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}
