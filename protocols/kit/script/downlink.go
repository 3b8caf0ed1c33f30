package script

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// Command kinds.
const (
	KindRPC        = "rpc"
	KindAttributes = "attributes"
)

// Command is a platform write for a device: an RPC or an attribute update.
type Command struct {
	Kind   string // KindRPC or KindAttributes
	Device string
	// RPC.
	ID     int64
	Method string
	Params json.RawMessage
	// Attribute update.
	Values map[string]json.RawMessage
}

// RPCCommand and AttributesCommand build Commands from the contract's types.
func RPCCommand(req protocols.RPCRequest) Command {
	return Command{Kind: KindRPC, Device: req.Device, ID: req.ID, Method: req.Method, Params: req.Params}
}

// AttributesCommand is the Command of a shared-attribute update.
func AttributesCommand(u protocols.AttributeUpdate) Command {
	return Command{Kind: KindAttributes, Device: u.Device, Values: u.Values}
}

// Output is one thing to send, as downlink returned it.
type Output struct {
	Topic   string // "topic": where to send, for connectors that address messages
	Payload []byte // "payload": a string or bytes as is, a dict or list as JSON
	QoS     int    // "qos"; -1 when not given: the connector's default
	Retain  bool   // "retain"
	// Reply is "reply" as JSON: what an RPC answers the platform; nil
	// when the script gave none.
	Reply json.RawMessage
}

// ErrNoDownlink is returned by Downlink on a script without downlink(cmd).
var ErrNoDownlink = fmt.Errorf("script defines no downlink(cmd)")

// Downlink converts a command into what to send. Errors are *RunError.
func (s *Script) Downlink(c Command) ([]Output, error) {
	if s.downlink == nil {
		return nil, ErrNoDownlink
	}
	cmd, err := s.commandValue(c)
	if err != nil {
		return nil, s.failAt(s.downlink, "cannot pass the command: %v", err)
	}
	out, err := s.call(s.downlink, cmd)
	if err != nil {
		return nil, err
	}
	outs, err := outputs(out)
	if err != nil {
		return nil, s.failAt(s.downlink, "returned %v", err)
	}
	return outs, nil
}

func decodeRaw(raw json.RawMessage) (starlark.Value, error) {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return starlark.None, nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return pyexpr.ToStarlark(v)
}

func (s *Script) commandValue(c Command) (starlark.Value, error) {
	d := starlark.StringDict{
		"kind":   starlark.String(c.Kind),
		"device": starlark.String(c.Device),
		"config": s.config,
		"method": starlark.None,
		"id":     starlark.None,
		"params": starlark.None,
		"values": starlark.None,
	}
	switch c.Kind {
	case KindRPC:
		d["method"] = starlark.String(c.Method)
		d["id"] = starlark.MakeInt64(c.ID)
		p, err := decodeRaw(c.Params)
		if err != nil {
			return nil, fmt.Errorf("params: %v", err)
		}
		d["params"] = p
	case KindAttributes:
		vals := starlark.NewDict(len(c.Values))
		for _, k := range slices.Sorted(maps.Keys(c.Values)) {
			v, err := decodeRaw(c.Values[k])
			if err != nil {
				return nil, fmt.Errorf("values[%q]: %v", k, err)
			}
			_ = vals.SetKey(starlark.String(k), v)
		}
		d["values"] = vals
	default:
		return nil, fmt.Errorf("unknown command kind %q", c.Kind)
	}
	return starlarkstruct.FromStringDict(starlark.String("cmd"), d), nil
}

var outputKeys = map[string]bool{"topic": true, "payload": true, "qos": true, "retain": true, "reply": true}

func outputs(out starlark.Value) ([]Output, error) {
	switch t := out.(type) {
	case starlark.NoneType:
		return nil, nil
	case *starlark.Dict:
		o, err := output(t)
		if err != nil {
			return nil, err
		}
		return []Output{o}, nil
	case *starlark.List, starlark.Tuple:
		var res []Output
		it := starlark.Iterate(t)
		defer it.Done()
		var x starlark.Value
		for i := 0; it.Next(&x); i++ {
			d, ok := x.(*starlark.Dict)
			if !ok {
				return nil, fmt.Errorf("item %d is a %s, want a dict", i, x.Type())
			}
			o, err := output(d)
			if err != nil {
				return nil, fmt.Errorf("item %d: %v", i, err)
			}
			res = append(res, o)
		}
		return res, nil
	}
	return nil, fmt.Errorf("a %s, want a dict, a list of dicts or None", out.Type())
}

func output(d *starlark.Dict) (Output, error) {
	o := Output{QoS: -1}
	for _, it := range d.Items() {
		k, _ := it[0].(starlark.String)
		if !outputKeys[string(k)] {
			return o, fmt.Errorf("unknown key %s (want topic, payload, qos, retain, reply)", it[0].String())
		}
		v := it[1]
		switch k {
		case "topic":
			s, ok := v.(starlark.String)
			if !ok {
				return o, fmt.Errorf("\"topic\" is a %s, want a string", v.Type())
			}
			o.Topic = string(s)
		case "payload":
			switch p := v.(type) {
			case starlark.String:
				o.Payload = []byte(p)
			case starlark.Bytes:
				o.Payload = []byte(p)
			default:
				j, err := encodeJSON(v)
				if err != nil {
					return o, fmt.Errorf("\"payload\": %v", err)
				}
				o.Payload = j
			}
		case "qos":
			q, err := starlark.AsInt32(v)
			if err != nil || q < 0 || q > 2 {
				return o, fmt.Errorf("\"qos\" is %s, want 0, 1 or 2", v.String())
			}
			o.QoS = q
		case "retain":
			b, ok := v.(starlark.Bool)
			if !ok {
				return o, fmt.Errorf("\"retain\" is a %s, want True or False", v.Type())
			}
			o.Retain = bool(b)
		case "reply":
			j, err := encodeJSON(v)
			if err != nil {
				return o, fmt.Errorf("\"reply\": %v", err)
			}
			o.Reply = j
		}
	}
	return o, nil
}

func encodeJSON(v starlark.Value) ([]byte, error) {
	th := &starlark.Thread{}
	th.SetMaxExecutionSteps(DefaultMaxSteps)
	s, err := starlark.Call(th, jsonEncode, starlark.Tuple{v}, nil)
	if err != nil {
		return nil, err
	}
	return []byte(s.(starlark.String)), nil
}
