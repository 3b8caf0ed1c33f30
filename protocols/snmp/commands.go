package snmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols"
)

// ErrParams means an RPC's params do not fit its method.
var ErrParams = errors.New("snmp: bad rpc params")

// Reserved RPC params, quoted in messages.
const (
	reservedGet = "oid=1.3.6.1.2.1.1.5.0;"
	reservedSet = "oid=1.3.6.1.2.1.1.5.0;value=router-1;"
)

// SharedAttributeKeys is empty: upstream never requests shared attributes
// for SNMP devices, and a write on every reconnect would surprise.
func (d *Device) SharedAttributeKeys() []string { return nil }

// UpdateAttributes writes each attribute to the agent through every
// attributeUpdateRequests entry whose attributeFilter matches its name.
func (d *Device) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	return protocols.UpdateEach(values, d.cfg.AttrWrites,
		func(w *WriteConfig, key string) bool { return w.matches(key) },
		func(w *WriteConfig, key string, raw json.RawMessage) error {
			if _, err := d.write(ctx, w, raw); err != nil {
				return fmt.Errorf("snmp %s: attribute %q (%s): %w", d.endpoint(), key, w.Path, err)
			}
			return nil
		})
}

func (w *WriteConfig) matches(name string) bool {
	if w.Filter == nil {
		return false
	}
	ok, _ := w.Filter.MatchString(name)
	return ok
}

// RPC runs the serverSideRpcRequests entry whose requestFilter matches the
// method, or else the reserved get ("oid=…;") and set ("oid=…;value=…;").
// Replies: {"result":{"value":…}} with the value read or the value set.
func (d *Device) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	for _, w := range d.cfg.RPC {
		if !w.matches(req.Method) {
			continue
		}
		var v protocols.Value
		var err error
		if w.Read != nil {
			v, err = d.ReadKey(ctx, w.Read)
		} else {
			v, err = d.write(ctx, w, unwrapValue(req.Params))
		}
		if err != nil {
			return nil, fmt.Errorf("snmp %s: rpc %q: %w", d.endpoint(), req.Method, err)
		}
		return result(v), nil
	}
	switch strings.ToLower(req.Method) {
	case "get", "set":
		v, err := d.reserved(ctx, strings.ToLower(req.Method), req.Params)
		if err != nil {
			return nil, fmt.Errorf("snmp %s: rpc %q: %w", d.endpoint(), req.Method, err)
		}
		return result(v), nil
	}
	return nil, fmt.Errorf("snmp %s: rpc %q: %w", d.endpoint(), req.Method, protocols.ErrUnknownMethod)
}

func result(v protocols.Value) protocols.RPCResult {
	b := []byte(`{"result":{"value":`)
	b = v.AppendJSON(b)
	return append(b, "}}"...)
}

// unwrapValue takes {"value": x} as x, and anything else as it is
// (upstream sent params as the value).
func unwrapValue(raw json.RawMessage) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil && len(obj) == 1 {
		if v, ok := obj["value"]; ok {
			return v
		}
	}
	return raw
}

// ReservedParams parses the reserved methods' "key=value;" params.
func ReservedParams(s string) (map[string]string, error) {
	out := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q is not key=value", ErrParams, part)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func (d *Device) reserved(ctx context.Context, method string, params json.RawMessage) (protocols.Value, error) {
	example := reservedGet
	if method == "set" {
		example = reservedSet
	}
	var kv map[string]string
	if s, ok := protocols.JSONString(params); ok {
		var err error
		if kv, err = ReservedParams(s); err != nil {
			return protocols.Value{}, err
		}
	} else {
		var obj map[string]any
		if json.Unmarshal(params, &obj) != nil {
			return protocols.Value{}, fmt.Errorf("%w: want a string like %q, got %s", ErrParams, example, params)
		}
		kv = map[string]string{}
		for k, v := range obj {
			if s, ok := v.(string); ok {
				kv[k] = s
			} else {
				b, _ := json.Marshal(v)
				kv[k] = string(b)
			}
		}
	}
	oid, err := normOID(kv["oid"])
	if err != nil {
		return protocols.Value{}, fmt.Errorf("%w: %v (want params like %q)", ErrParams, err, example)
	}
	if method == "get" {
		m := strings.ToLower(kv["method"])
		if m == "" {
			m = "get"
		}
		if !slices.Contains(readMethods, m) || m == "bulkget" {
			return protocols.Value{}, fmt.Errorf("%w: method %q cannot be used in get", ErrParams, m)
		}
		k := &KeyConfig{Key: "get", Method: m, OIDs: []string{oid}, BulkSize: DefaultBulkSize, Timeout: d.cfg.Timeout}
		return d.ReadKey(ctx, k)
	}
	val, ok := kv["value"]
	if !ok {
		return protocols.Value{}, fmt.Errorf("%w: value is required (want params like %q)", ErrParams, example)
	}
	raw := json.RawMessage(val)
	if !json.Valid(raw) {
		raw, _ = json.Marshal(val) // bare text is a string
	}
	return d.write(ctx, &WriteConfig{Method: "set", OIDs: []string{oid}, Timeout: d.cfg.Timeout}, raw)
}

// write runs a set or multiset with raw as the value received and returns
// the value written (multiset: the {oid: value} object).
func (d *Device) write(ctx context.Context, w *WriteConfig, raw json.RawMessage) (protocols.Value, error) {
	var pdus []gosnmp.SnmpPDU
	switch w.Method {
	case "set":
		p, err := pduFor(w.OIDs[0], raw)
		if err != nil {
			return protocols.Value{}, fmt.Errorf("%w: %v", ErrParams, err)
		}
		pdus = append(pdus, p)
	case "multiset":
		m := w.Mappings
		if m == nil {
			// An entry without mappings takes them from the params.
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil || len(obj) == 0 {
				return protocols.Value{}, fmt.Errorf("%w: multiset wants params {\"<oid>\": value, ...}, got %s", ErrParams, raw)
			}
			for _, oid := range slices.Sorted(maps.Keys(obj)) {
				n, err := normOID(oid)
				if err != nil {
					return protocols.Value{}, fmt.Errorf("%w: %v", ErrParams, err)
				}
				p, err := pduFor(n, obj[oid])
				if err != nil {
					return protocols.Value{}, fmt.Errorf("%w: %v", ErrParams, err)
				}
				pdus = append(pdus, p)
			}
			break
		}
		for _, oid := range slices.Sorted(maps.Keys(m)) {
			v := raw
			if !valueTemplate(m[oid]) {
				v, _ = json.Marshal(m[oid])
			}
			p, err := pduFor(oid, v)
			if err != nil {
				return protocols.Value{}, fmt.Errorf("%w: %v", ErrParams, err)
			}
			pdus = append(pdus, p)
		}
	default:
		return protocols.Value{}, fmt.Errorf("%w: method %q does not write", ErrParams, w.Method)
	}
	g, err := d.conn(ctx, "", w.Timeout)
	if err != nil {
		return protocols.Value{}, err
	}
	if _, err := checked(g.Set(pdus)); err != nil {
		return protocols.Value{}, err
	}
	if w.Method == "set" {
		return Value(pdus[0])
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range pdus {
		if i > 0 {
			b.WriteByte(',')
		}
		v, _ := Value(p)
		b.Write(appendJSONString(nil, oidText(p.Name)))
		b.WriteByte(':')
		b.Write(v.AppendJSON(nil))
	}
	b.WriteByte('}')
	return protocols.JSON(b.Bytes())
}
