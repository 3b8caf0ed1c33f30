package opcua

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

// ErrParams is wrapped by RPC requests whose params cannot be used.
var ErrParams = errors.New("invalid rpc params")

// nodeIO is the part of *opcua.Client writes and calls need; tests fake it.
type nodeIO interface {
	Read(ctx context.Context, req *ua.ReadRequest) (*ua.ReadResponse, error)
	Write(ctx context.Context, req *ua.WriteRequest) (*ua.WriteResponse, error)
	Call(ctx context.Context, req *ua.CallMethodRequest) (*ua.CallMethodResult, error)
}

// dataTypes remembers node data types learnt from a BadTypeMismatch, so
// later writes to the node are converted up front.
type dataTypes struct {
	mu sync.Mutex
	m  map[string]*ua.NodeID
}

func (d *dataTypes) get(node string) *ua.NodeID {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[node]
}

func (d *dataTypes) set(node string, dt *ua.NodeID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]*ua.NodeID{}
	}
	d.m[node] = dt
}

// writeValue writes x (bool, int64, float64 or string) to node's Value.
// On BadTypeMismatch it reads the node's DataType, converts x and retries
// once; it returns the value as written.
func writeValue(ctx context.Context, cl nodeIO, types *dataTypes, node *ua.NodeID, x any) (any, error) {
	key := node.String()
	if dt := types.get(key); dt != nil {
		cx, err := ToDataType(x, dt)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", key, err)
		}
		x = cx
	}
	st, err := writeOnce(ctx, cl, node, x)
	if err != nil {
		return nil, err
	}
	if st == ua.StatusBadTypeMismatch {
		dt, err := readDataType(ctx, cl, node)
		if err != nil {
			return nil, fmt.Errorf("write %s: type mismatch, and reading its DataType failed: %w", key, err)
		}
		cx, err := ToDataType(x, dt)
		if err != nil {
			return nil, fmt.Errorf("write %s: server refused the value's type (BadTypeMismatch) and %w", key, err)
		}
		types.set(key, dt)
		x = cx
		if st, err = writeOnce(ctx, cl, node, x); err != nil {
			return nil, err
		}
	}
	if st != ua.StatusOK && isBad(st) {
		return nil, fmt.Errorf("write %s: %w", key, &badStatusError{status: st, node: key})
	}
	return x, nil
}

func writeOnce(ctx context.Context, cl nodeIO, node *ua.NodeID, x any) (ua.StatusCode, error) {
	v, err := ua.NewVariant(x)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w: %v", node, ErrValue, err)
	}
	res, err := cl.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
		NodeID: node, AttributeID: ua.AttributeIDValue,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v},
	}}})
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", node, err)
	}
	if len(res.Results) != 1 {
		return 0, fmt.Errorf("write %s: server answered %d results", node, len(res.Results))
	}
	return res.Results[0], nil
}

func readDataType(ctx context.Context, cl nodeIO, node *ua.NodeID) (*ua.NodeID, error) {
	res, err := cl.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: node, AttributeID: ua.AttributeIDDataType}}})
	if err != nil {
		return nil, err
	}
	if len(res.Results) != 1 || res.Results[0] == nil {
		return nil, errors.New("no result")
	}
	dv := res.Results[0]
	if isBad(dv.Status) {
		return nil, &badStatusError{status: dv.Status, node: node.String()}
	}
	switch t := dv.Value.Value().(type) {
	case *ua.NodeID:
		return t, nil
	case *ua.ExpandedNodeID:
		return t.NodeID, nil
	}
	return nil, fmt.Errorf("DataType attribute is %T", dv.Value.Value())
}

// readNode reads one node's value for a "get".
func readNode(ctx context.Context, cl nodeIO, node *ua.NodeID) (*ua.DataValue, error) {
	res, err := cl.Read(ctx, &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth, NodesToRead: []*ua.ReadValueID{{NodeID: node, AttributeID: ua.AttributeIDValue}}})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", node, err)
	}
	if len(res.Results) != 1 {
		return nil, fmt.Errorf("read %s: server answered %d results", node, len(res.Results))
	}
	return res.Results[0], nil
}

// callMethod calls a method with arguments; on BadTypeMismatch or
// BadInvalidArgument it reads the method's InputArguments, converts the
// arguments to their declared types and retries once.
func (c *Connector) callMethod(ctx context.Context, s *session, object, method *ua.NodeID, args []any) ([]*ua.Variant, error) {
	call := func(args []any) (*ua.CallMethodResult, error) {
		req := &ua.CallMethodRequest{ObjectID: object, MethodID: method}
		for _, a := range args {
			v, err := ua.NewVariant(a)
			if err != nil {
				return nil, fmt.Errorf("%w: argument %v: %v", ErrValue, a, err)
			}
			req.InputArguments = append(req.InputArguments, v)
		}
		return s.c.Call(ctx, req)
	}
	res, err := call(args)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, object, err)
	}
	if res.StatusCode == ua.StatusBadTypeMismatch || res.StatusCode == ua.StatusBadInvalidArgument {
		types, terr := c.inputTypes(ctx, s, method)
		if terr == nil && len(types) == len(args) {
			conv := make([]any, len(args))
			for i, a := range args {
				if conv[i], terr = ToDataType(a, types[i]); terr != nil {
					return nil, fmt.Errorf("call %s on %s: argument %d: %w", method, object, i+1, terr)
				}
			}
			if res, err = call(conv); err != nil {
				return nil, fmt.Errorf("call %s on %s: %w", method, object, err)
			}
		}
	}
	if isBad(res.StatusCode) {
		return nil, fmt.Errorf("call %s on %s: %w", method, object, &badStatusError{status: res.StatusCode, node: method.String()})
	}
	return res.OutputArguments, nil
}

func (c *Connector) inputTypes(ctx context.Context, s *session, method *ua.NodeID) ([]*ua.NodeID, error) {
	b := c.newBrowser(s)
	q := &query{segs: []Segment{{Name: "InputArguments"}}, cur: []*ua.NodeID{method}}
	if err := b.resolve(ctx, []*query{q}); err != nil {
		return nil, err
	}
	n := q.result()
	if n == nil {
		return nil, errors.New("method has no InputArguments")
	}
	dv, err := readNode(ctx, s.c, n)
	if err != nil {
		return nil, err
	}
	eos, ok := dv.Value.Value().([]*ua.ExtensionObject)
	if !ok {
		return nil, fmt.Errorf("InputArguments is %T", dv.Value.Value())
	}
	var out []*ua.NodeID
	for _, eo := range eos {
		a, ok := eo.Value.(*ua.Argument)
		if !ok {
			return nil, fmt.Errorf("InputArguments holds %T", eo.Value)
		}
		out = append(out, a.DataType)
	}
	return out, nil
}

// Commander returns the command side of a device found by Run.
func (c *Connector) Commander(device, profile string) protocols.Commander {
	return &commander{c: c, device: device}
}

type commander struct {
	c      *Connector
	device string
}

func (k *commander) current() (*session, *device, error) {
	s, p := k.c.current()
	if s == nil || p == nil {
		return nil, nil, fmt.Errorf("opcua device %q: %w", k.device, ErrNotConnected)
	}
	d := p.byName[k.device]
	if d == nil {
		return nil, nil, fmt.Errorf("opcua device %q: not found in the server's address space (last scan)", k.device)
	}
	return s, d, nil
}

// SharedAttributeKeys are the attributes_updates keys of the device's mapping.
func (k *commander) SharedAttributeKeys() []string {
	_, p := k.c.current()
	var m *Device
	if p != nil && p.byName[k.device] != nil {
		m = p.byName[k.device].mapping
	} else if len(k.c.cfg.Mapping) == 1 {
		m = &k.c.cfg.Mapping[0]
	}
	if m == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, u := range m.AttrUpdates {
		if !seen[u.Key] {
			seen[u.Key] = true
			out = append(out, u.Key)
		}
	}
	return out
}

// UpdateAttributes writes each declared key's value to its node; a failed
// key does not stop the others.
func (k *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	s, d, err := k.current()
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(values))
	var ignored []string
	var errs []error
	for _, name := range names {
		node, ok := d.updates[name]
		if !ok {
			if why, known := d.unresolved[name]; known {
				errs = append(errs, fmt.Errorf("opcua device %q attribute %q: %s", d.name, name, why))
				continue
			}
			ignored = append(ignored, name)
			continue
		}
		x, err := JSONValue(values[name])
		if err == nil {
			_, err = writeValue(ctx, s.c, &k.c.types, node, x)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("opcua device %q attribute %q: %w", d.name, name, err))
		}
	}
	return ignored, errors.Join(errs...)
}

// RPC runs the reserved get/set and the configured rpc_methods. Replies:
// {"result":{"value":<read value>}} for get, {"result":{"value":<value as
// written>}} for set, {"result":<output>} for methods (a list when the
// method has several outputs, null when none).
func (k *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	s, d, err := k.current()
	if err != nil {
		return nil, err
	}
	switch m := strings.ToLower(req.Method); m {
	case "get", "set":
		if str, ok := protocols.JSONString(req.Params); ok {
			return k.reserved(ctx, s, d, m, str)
		}
		if findMethod(d.mapping, req.Method) == nil {
			return nil, fmt.Errorf("opcua device %q: %s: %w: params must be a string like %q, got %s", d.name, req.Method, ErrParams,
				map[string]string{"get": "ns=2;i=13;", "set": "ns=2;i=13; 56;"}[m], compactText(req.Params))
		}
	}
	rm := findMethod(d.mapping, req.Method)
	if rm == nil {
		known := []string{"get", "set"}
		for _, r := range d.mapping.RPCMethods {
			known = append(known, r.Method)
		}
		return nil, fmt.Errorf("%w %q for opcua device %q (known: %s)", protocols.ErrUnknownMethod, req.Method, d.name, strings.Join(known, ", "))
	}
	args, err := methodArgs(rm.Arguments, req.Params)
	if err != nil {
		return nil, fmt.Errorf("opcua device %q: %s: %w", d.name, req.Method, err)
	}
	out, err := k.c.callOn(ctx, s, d, rm.Method, args)
	if err != nil {
		return nil, fmt.Errorf("opcua device %q: %s: %w", d.name, req.Method, err)
	}
	return append(append([]byte(`{"result":`), out...), '}'), nil
}

func (c *Connector) callOn(ctx context.Context, s *session, d *device, method string, args []any) (json.RawMessage, error) {
	b := c.newBrowser(s)
	mid, err := b.methodNode(ctx, d.node, method)
	if err != nil {
		return nil, err
	}
	outs, err := c.callMethod(ctx, s, d.node, mid, args)
	if err != nil {
		return nil, err
	}
	return outputsJSON(outs), nil
}

func outputsJSON(outs []*ua.Variant) json.RawMessage {
	switch len(outs) {
	case 0:
		return json.RawMessage("null")
	case 1:
		return variantJSON(outs[0])
	}
	b := []byte{'['}
	for i, o := range outs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, variantJSON(o)...)
	}
	return append(b, ']')
}

func findMethod(m *Device, name string) *RPCMethod {
	for i := range m.RPCMethods {
		if m.RPCMethods[i].Method == name {
			return &m.RPCMethods[i]
		}
	}
	return nil
}

// reserved runs get and set; the target is a node id or a path, relative
// paths below the device node.
func (k *commander) reserved(ctx context.Context, s *session, d *device, method, params string) (protocols.RPCResult, error) {
	fail := func(err error) (protocols.RPCResult, error) {
		return nil, fmt.Errorf("opcua device %q: %s %q: %w", d.name, method, params, err)
	}
	var target, value string
	var err error
	if method == "get" {
		target, err = ParseGetParams(params)
	} else {
		target, value, err = ParseSetParams(params)
	}
	if err != nil {
		return fail(err)
	}
	e, err := ParseExpr(target)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrParams, err))
	}
	q := newQuery(e, d.node, false)
	if err := k.c.newBrowser(s).resolve(ctx, []*query{q}); err != nil {
		return fail(err)
	}
	node := q.result()
	if node == nil {
		return fail(fmt.Errorf("%w: %s %q matches no node", ErrParams, e.Kind, e.Raw))
	}
	if method == "get" {
		dv, err := readNode(ctx, s.c, node)
		if err != nil {
			return fail(err)
		}
		if dv != nil && isBad(dv.Status) {
			return fail(&badStatusError{status: dv.Status, node: node.String()})
		}
		var v *ua.Variant
		if dv != nil {
			v = dv.Value
		}
		return valueResult(variantJSON(v)), nil
	}
	written, err := writeValue(ctx, s.c, &k.c.types, node, GuessValue(value))
	if err != nil {
		return fail(err)
	}
	v, _ := ua.NewVariant(written)
	return valueResult(variantJSON(v)), nil
}

func valueResult(v json.RawMessage) protocols.RPCResult {
	b := append([]byte(`{"result":{"value":`), v...)
	return append(b, "}}"...)
}

// methodArgs takes the call's arguments from params when it has any
// ({"arguments":[{"value":…}]}, a list, or one scalar), else from config.
func methodArgs(cfg []Argument, params json.RawMessage) ([]any, error) {
	raw := bytes.TrimSpace(params)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		out := make([]any, len(cfg))
		for i, a := range cfg {
			x, err := configArg(a)
			if err != nil {
				return nil, fmt.Errorf("rpc_methods argument %d: %w", i+1, err)
			}
			out[i] = x
		}
		return out, nil
	}
	var items []json.RawMessage
	switch raw[0] {
	case '{':
		var obj struct {
			Arguments []json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Arguments == nil {
			return nil, fmt.Errorf("%w: want {\"arguments\":[{\"value\":…}]}, got %s", ErrParams, compactText(raw))
		}
		items = obj.Arguments
	case '[':
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%w: %s is not a JSON list", ErrParams, compactText(raw))
		}
	default:
		items = []json.RawMessage{raw}
	}
	out := make([]any, len(items))
	for i, it := range items {
		t := ""
		it = bytes.TrimSpace(it)
		if len(it) > 0 && it[0] == '{' {
			var a struct {
				Type  string          `json:"type"`
				Value json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal(it, &a); err != nil || a.Value == nil {
				return nil, fmt.Errorf("%w: argument %d: want {\"type\"?, \"value\"}, got %s", ErrParams, i+1, compactText(it))
			}
			t, it = a.Type, a.Value
		}
		x, err := JSONValue(it)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		if t == "" && i < len(cfg) {
			t = cfg[i].Type
		}
		if x, err = typedArg(x, t); err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		out[i] = x
	}
	return out, nil
}

func configArg(a Argument) (any, error) {
	x, err := normalize(a.Value)
	if err != nil {
		return nil, err
	}
	return typedArg(x, a.Type)
}

// argTypes maps upstream argument type names to built-in data types.
var argTypes = map[string]uint32{
	"bool": id.Boolean, "boolean": id.Boolean,
	"integer": id.Int64, "int": id.Int64, "long": id.Int64, "int64": id.Int64,
	"int32": id.Int32, "int16": id.Int16, "int8": id.SByte, "sbyte": id.SByte,
	"uint64": id.UInt64, "uint32": id.UInt32, "uint16": id.UInt16, "uint8": id.Byte, "byte": id.Byte,
	"float": id.Double, "double": id.Double, "float64": id.Double, "float32": id.Float,
	"string": id.String, "str": id.String,
}

func typedArg(x any, t string) (any, error) {
	t = strings.ToLower(strings.TrimSpace(t))
	if t == "" {
		return x, nil
	}
	dt, ok := argTypes[t]
	if !ok {
		return nil, fmt.Errorf("%w: unknown argument type %q", ErrParams, t)
	}
	return ToDataType(x, ua.NewNumericNodeID(0, dt))
}

// ConnectorRPC runs "opcua_<method>": the OPC-UA method <method> on every
// device node that has it, with params {"arguments":[{"value":…}]} (or a
// list). One device replies {"result":<output>}; several reply
// {"result":{"<device>":<output>|{"error":"…"},…}}.
func (c *Connector) ConnectorRPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	method, ok := strings.CutPrefix(req.Method, "opcua_")
	if !ok || method == "" {
		return nil, fmt.Errorf("%w %q for opcua connector %q (want opcua_<method>)", protocols.ErrUnknownMethod, req.Method, c.name)
	}
	s, p := c.current()
	if s == nil || p == nil {
		return nil, fmt.Errorf("opcua connector %q: %w", c.name, ErrNotConnected)
	}
	type res struct {
		dev string
		out json.RawMessage
	}
	var results []res
	b := c.newBrowser(s)
	for _, d := range p.devices {
		mid, err := b.methodNode(ctx, d.node, method)
		if err != nil {
			if errors.Is(err, protocols.ErrUnknownMethod) {
				continue
			}
			return nil, fmt.Errorf("opcua connector %q: %s: %w", c.name, req.Method, err)
		}
		var cfgArgs []Argument
		if rm := findMethod(d.mapping, method); rm != nil {
			cfgArgs = rm.Arguments
		}
		args, err := methodArgs(cfgArgs, req.Params)
		if err != nil {
			return nil, fmt.Errorf("opcua connector %q: %s: %w", c.name, req.Method, err)
		}
		var out json.RawMessage
		if outs, err := c.callMethod(ctx, s, d.node, mid, args); err != nil {
			out = append(append([]byte(`{"error":`), protocols.AppendJSONString(nil, err.Error())...), '}')
			if len(p.devices) == 1 {
				return nil, fmt.Errorf("opcua connector %q: %s on %q: %w", c.name, req.Method, d.name, err)
			}
		} else {
			out = outputsJSON(outs)
		}
		results = append(results, res{d.name, out})
	}
	switch len(results) {
	case 0:
		return nil, fmt.Errorf("%w %q: no device node of opcua connector %q has a method %q", protocols.ErrUnknownMethod, req.Method, c.name, method)
	case 1:
		return append(append([]byte(`{"result":`), results[0].out...), '}'), nil
	}
	out := []byte(`{"result":{`)
	for i, r := range results {
		if i > 0 {
			out = append(out, ',')
		}
		out = protocols.AppendJSONString(out, r.dev)
		out = append(out, ':')
		out = append(out, r.out...)
	}
	return append(out, "}}"...), nil
}

var (
	_ protocols.DeviceCommands = (*Connector)(nil)
	_ protocols.ConnectorRPC   = (*Connector)(nil)
	_ protocols.Commander      = (*commander)(nil)
)
