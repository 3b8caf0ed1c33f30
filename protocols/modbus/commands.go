package modbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// setExample is upstream's reserved set params, quoted in messages.
const setExample = "type=16int;functionCode=6;objectsCount=1;address=2;value=77;"

// RPC runs a device rpc: the rpc[] entry whose tag is the method, or the
// reserved get and set, whose params are a "key=value;" string. Replies
// are upstream's: {"result":{"value":<read value>}} for reads and
// {"result":{"value":<the value as sent>}} for writes.
func (d *Device) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	if m := strings.ToLower(req.Method); m == "get" || m == "set" {
		if s, ok := protocols.JSONString(req.Params); ok {
			cmd, err := parseReserved(m, s)
			if err != nil {
				return nil, d.rpcErr(req.Method, err)
			}
			return d.command(ctx, req.Method, cmd)
		}
		if d.rpcKey(req.Method) == nil {
			example := ReservedExample
			if m == "set" {
				example = setExample
			}
			return nil, d.rpcErr(req.Method, paramErrorf("params must be a string like %q, got %s", example, describeParams(req.Params)))
		}
	}
	k := d.rpcKey(req.Method)
	if k == nil {
		return nil, d.unknownMethod(req.Method)
	}
	if k.Unusable != nil {
		return nil, d.rpcErr(req.Method, k.Unusable)
	}
	var raw json.RawMessage
	if isWriteFunction(k.FunctionCode) {
		var err error
		if raw, err = unwrapValue(req.Params); err != nil {
			return nil, d.rpcErr(req.Method, err)
		}
	}
	out, err := d.run(ctx, k, raw)
	if err != nil {
		return nil, d.rpcErr(req.Method, err)
	}
	return valueResult(out), nil
}

// command runs a validated ad-hoc read or write with the slave's byte and
// word order.
func (d *Device) command(ctx context.Context, method string, cmd command) (protocols.RPCResult, error) {
	k, err := d.commandKey(cmd, method)
	if err != nil {
		return nil, d.rpcErr(method, err)
	}
	out, err := d.run(ctx, k, cmd.value)
	if err != nil {
		return nil, d.rpcErr(method, err)
	}
	return valueResult(out), nil
}

func (d *Device) commandKey(cmd command, method string) (*KeyConfig, error) {
	k, err := d.adHocKey(cmd.fc, cmd.address, cmd.count, cmd.typ.String(), cmd.write())
	if err != nil {
		return nil, paramErrorf("%v", err)
	}
	k.Tag = method
	return k, nil
}

// run reads k, or writes raw to it, and returns the JSON for the reply's
// "value": the decoded value, or the written value as it was sent.
func (d *Device) run(ctx context.Context, k *KeyConfig, raw json.RawMessage) (json.RawMessage, error) {
	if !isWriteFunction(k.FunctionCode) {
		v, err := d.ReadKey(ctx, k)
		if err != nil {
			return nil, err
		}
		return valueJSON(k, v), nil
	}
	v, err := valueFromJSON(raw)
	if err == nil {
		v, err = coerce(&k.Codec, v)
	}
	if err != nil {
		return nil, err
	}
	if err := d.Write(ctx, k, v); err != nil {
		return nil, err
	}
	return compactJSON(raw), nil
}

func isWriteFunction(fc int) bool { return fc == 5 || fc == 6 || fc == 15 || fc == 16 }

// rpcErr names the device and method on problems with the request; I/O
// errors already name the slave by endpoint and unit and pass unchanged.
func (d *Device) rpcErr(method string, err error) error {
	if errors.Is(err, ErrParams) || errors.Is(err, ErrValue) {
		return fmt.Errorf("modbus device %q: %s: %w", d.cfg.DeviceName, method, err)
	}
	return err
}

func (d *Device) rpcKey(method string) *KeyConfig {
	for _, k := range d.cfg.RPC {
		if k.Tag == method {
			return k
		}
	}
	return nil
}

func (d *Device) unknownMethod(method string) error {
	known := []string{"get", "set"}
	seen := map[string]bool{"get": true, "set": true}
	for _, k := range d.cfg.RPC {
		if !seen[k.Tag] {
			seen[k.Tag] = true
			known = append(known, k.Tag)
		}
	}
	return fmt.Errorf("%w %q for modbus device %q (known: %s)", protocols.ErrUnknownMethod, method, d.cfg.DeviceName, strings.Join(known, ", "))
}

// UpdateAttributes writes each value whose key is an attributeUpdates[] tag
// with that entry's type, function code and orders. A failed key does not
// stop the others; the errors are joined, each naming its key.
func (d *Device) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	return protocols.UpdateEach(values, d.cfg.AttributeUpdates,
		func(k *KeyConfig, name string) bool { return k.Tag == name },
		func(k *KeyConfig, name string, raw json.RawMessage) error {
			if _, err := d.run(ctx, k, raw); err != nil {
				return fmt.Errorf("attribute %q: %w", name, err)
			}
			return nil
		})
}

// SharedAttributeKeys are the attributeUpdates[] tags, in file order.
func (d *Device) SharedAttributeKeys() []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range d.cfg.AttributeUpdates {
		if !seen[k.Tag] {
			seen[k.Tag] = true
			out = append(out, k.Tag)
		}
	}
	return out
}

// ConnectorRPC runs "modbus_<anything>" with params {type, functionCode,
// objectsCount, address, value?}: the function code decides between read
// and write, the name after "modbus_" is not used. Without host, port and
// unitId it runs on every slave, concurrently, and replies
// {"result":{"<deviceName>":<value>|{"error":"…"},…}}; with them it runs once on an
// ad-hoc slave and replies {"result":<value>}. A written value is echoed as
// sent.
func (c *Connector) ConnectorRPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	if !strings.HasPrefix(req.Method, "modbus_") {
		return nil, fmt.Errorf("%w %q for modbus connector %q (want modbus_<name>)", protocols.ErrUnknownMethod, req.Method, c.name)
	}
	p, err := connectorParams(req.Params)
	if err != nil {
		return nil, c.rpcErr(req.Method, err)
	}
	cmd, err := parseCommand(p, opAny)
	if err != nil {
		return nil, c.rpcErr(req.Method, err)
	}
	if cmd.write() {
		// One bad value would fail identically on every slave.
		v, err := valueFromJSON(cmd.value)
		if err == nil {
			_, err = coerce(&Codec{Type: cmd.typ, FunctionCode: cmd.fc, Count: cmd.count}, v)
		}
		if err != nil {
			return nil, c.rpcErr(req.Method, err)
		}
	}
	if isAdHoc(p) {
		return c.adHocRPC(ctx, req.Method, p, cmd)
	}
	results := make([]json.RawMessage, len(c.devices))
	var wg sync.WaitGroup
	for i, d := range c.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := d.commandKey(cmd, req.Method)
			var out json.RawMessage
			if err == nil {
				out, err = d.run(ctx, k, cmd.value)
			}
			if err != nil {
				out = errorJSON(d.rpcErr(req.Method, err))
			}
			results[i] = out
		}()
	}
	wg.Wait()
	b := []byte(`{"result":{`)
	for i, d := range c.devices {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocols.AppendJSONString(b, d.cfg.DeviceName)
		b = append(b, ':')
		b = append(b, results[i]...)
	}
	return append(b, "}}"...), nil
}

func (c *Connector) rpcErr(method string, err error) error {
	return fmt.Errorf("modbus connector %q: %s: %w", c.name, method, err)
}

// adHocKeys are the params that describe the ad-hoc slave. "type" is not
// among them: in a connector rpc it is the data type. "timeout" is not
// either: the gateway reads it as the rpc's own timeout in milliseconds.
var adHocKeys = []string{"host", "port", "unitId", "method", "byteOrder", "wordOrder",
	"baudrate", "bytesize", "parity", "stopbits", "deviceName"}

func isAdHoc(p map[string]json.RawMessage) bool {
	for _, k := range []string{"host", "port", "unitId"} {
		if raw, ok := p[k]; ok && !isNull(raw) && string(bytes.TrimSpace(raw)) != `""` {
			return true
		}
	}
	return false
}

// adHocRPC builds a slave from the params, runs cmd on it and releases it.
// It shares the link of a configured slave on the same endpoint, so it is
// serialized with that slave's polls.
func (c *Connector) adHocRPC(ctx context.Context, method string, p map[string]json.RawMessage, cmd command) (protocols.RPCResult, error) {
	m := map[string]any{}
	for _, key := range adHocKeys {
		raw, ok := p[key]
		if !ok || isNull(raw) {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil {
			return nil, c.rpcErr(method, paramErrorf("%s: %s is not valid JSON", key, compact(raw)))
		}
		m[key] = x
	}
	m["type"] = "tcp"
	if port, isStr := m["port"].(string); isStr {
		if _, err := strconv.Atoi(strings.TrimSpace(port)); err != nil {
			m["type"] = "serial"
		}
	}
	if _, ok := m["deviceName"]; !ok {
		m["deviceName"] = method
	}
	m["pollPeriod"] = json.Number("1000")
	ps := &spec.Problems{}
	s := parseSlave(spec.New(ps, "", "params", m), protocols.ReportStrategy{})
	if err := ps.Err(); err != nil {
		return nil, c.rpcErr(method, &tagged{ErrParams, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))})
	}
	if dl, ok := ctx.Deadline(); ok {
		s.Timeout = min(s.Timeout, max(time.Until(dl), time.Millisecond))
	}
	d := newDevice(s, c.pool)
	defer d.Close()
	k, err := d.commandKey(cmd, method)
	if err != nil {
		return nil, c.rpcErr(method, err)
	}
	out, err := d.run(ctx, k, cmd.value)
	if err != nil {
		if errors.Is(err, ErrParams) || errors.Is(err, ErrValue) {
			err = c.rpcErr(method, err)
		}
		return nil, err
	}
	return append(append([]byte(`{"result":`), out...), '}'), nil
}

// connectorParams accepts the params object, or the reserved "key=value;"
// string form for operators who type connector rpcs by hand.
func connectorParams(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if isNull(raw) {
		return nil, paramErrorf("params are required (want {\"type\", \"functionCode\", \"address\", \"objectsCount\"?, \"value\"?})")
	}
	if s, ok := protocols.JSONString(raw); ok {
		kv, err := ParseReservedParams(s)
		if err != nil {
			return nil, err
		}
		p := make(map[string]json.RawMessage, len(kv))
		for k, v := range kv {
			p[k], _ = json.Marshal(v)
		}
		return p, nil
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil || p == nil {
		return nil, paramErrorf("params must be an object like {\"type\":\"16int\",\"functionCode\":3,\"address\":2}, got %s", describeParams(raw))
	}
	return p, nil
}

func describeParams(raw json.RawMessage) string {
	if isNull(raw) {
		return "none"
	}
	return compact(raw)
}

// valueJSON renders a read value; a bits key's list is sent as a JSON list
// rather than as the text Value carries it in.
func valueJSON(k *KeyConfig, v protocols.Value) json.RawMessage {
	if k.Type == TypeBits && v.Kind == protocols.KindString && strings.HasPrefix(v.S, "[") && json.Valid([]byte(v.S)) {
		return json.RawMessage(v.S)
	}
	return v.AppendJSON(nil)
}

func valueResult(v json.RawMessage) protocols.RPCResult {
	b := append([]byte(`{"result":{"value":`), v...)
	return append(b, "}}"...)
}

func errorJSON(err error) json.RawMessage {
	b := append([]byte(`{"error":`), protocols.AppendJSONString(nil, err.Error())...)
	return append(b, '}')
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

var (
	_ protocols.Commander    = (*Device)(nil)
	_ protocols.ConnectorRPC = (*Connector)(nil)
)
