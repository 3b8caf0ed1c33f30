package script

import (
	"encoding/json"
	"errors"
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

// Output is one thing to send, as downlink returned it. Which keys a
// script may give depends on the connector (see Keys); "payload" and
// "reply" are always read.
type Output struct {
	Payload []byte // "payload": a string or bytes as is, a dict or list as JSON
	// Reply is "reply" as JSON: what an RPC answers the platform; nil
	// when the script gave none.
	Reply json.RawMessage

	// MessageKeys (MQTT).
	Topic  string // "topic": where to publish
	QoS    int    // "qos"; -1 when not given: the connector's default
	Retain bool   // "retain"

	// HTTPKeys (Request).
	URL     string            // "url": absolute, or a path on the connector's host
	Method  string            // "method": HTTP method, upper case; empty: the entry's
	Headers map[string]string // "headers": added to (and over) the entry's

	// FrameKeys (CAN).
	NodeID    int64 // "nodeId"; -1 when not given: the entry's or an error
	Extended  bool  // "isExtendedId"
	FD        bool  // "isFd"
	BitSwitch bool  // "bitrateSwitch"
}

// Keys names the output keys a connector reads besides "payload" and
// "reply"; a script that returns another key gets an error naming the
// keys it may use, so a misspelt key is not silently dropped.
type Keys []string

// The connectors' key sets.
var (
	// MessageKeys: MQTT publishes payload on topic.
	MessageKeys = Keys{"topic", "qos", "retain"}
	// HTTPKeys: the Request connector sends payload as the body of a
	// request to url.
	HTTPKeys = Keys{"url", "method", "headers"}
	// StreamKeys: the Socket connector writes payload to the device's
	// connection as it is.
	StreamKeys = Keys{}
	// FrameKeys: the CAN connector sends payload as the data of one frame.
	FrameKeys = Keys{"nodeId", "isExtendedId", "isFd", "bitrateSwitch"}
)

func (k Keys) has(key string) bool {
	return key == "payload" || key == "reply" || slices.Contains(k, key)
}

func (k Keys) String() string {
	return strings.Join(append(slices.Clone(k), "payload", "reply"), ", ")
}

// ErrNoDownlink is returned by Downlink on a script without downlink(cmd).
var ErrNoDownlink = fmt.Errorf("script defines no downlink(cmd)")

// LoadDownlink loads a script that a downlink entry names; one without
// downlink(cmd) is a *CompileError, as a syntax error is.
func LoadDownlink(path string, opts Options) (*Script, error) {
	s, err := Load(path, opts)
	if err == nil && !s.HasDownlink() {
		err = &CompileError{File: s.File, Msg: "defines no downlink(cmd), which a command entry needs"}
	}
	return s, err
}

// Downlink converts a command into MQTT messages (MessageKeys). Errors
// are *RunError.
func (s *Script) Downlink(c Command) ([]Output, error) { return s.DownlinkFor(c, MessageKeys) }

// DownlinkFor converts a command into what to send, reading the keys a
// connector takes. Errors are *RunError.
func (s *Script) DownlinkFor(c Command, keys Keys) ([]Output, error) {
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
	outs, err := outputs(out, keys)
	if err != nil {
		return nil, s.failAt(s.downlink, "returned %v", err)
	}
	return outs, nil
}

// HTTPRequests runs downlink for an HTTP connector: the requests to send,
// in order, each with a "url" and with method and headers resolved against
// the entry's (method when the script gives none; the script's headers
// added to and over the entry's, which are not changed).
func (s *Script) HTTPRequests(c Command, method string, headers map[string]string) ([]Output, error) {
	outs, err := s.DownlinkFor(c, HTTPKeys)
	if err != nil {
		return nil, err
	}
	if len(outs) == 0 {
		return nil, fmt.Errorf("%s: downlink returned no request to send", s.File)
	}
	for i := range outs {
		o := &outs[i]
		if o.URL == "" {
			return nil, fmt.Errorf("%s: downlink returned no \"url\"", s.File)
		}
		if o.Method == "" {
			o.Method = method
		}
		if len(o.Headers) == 0 {
			o.Headers = headers
		} else if len(headers) > 0 {
			merged := maps.Clone(headers)
			maps.Copy(merged, o.Headers)
			o.Headers = merged
		}
	}
	return outs, nil
}

// DefaultReply is an RPC's answer when no output gives "reply".
var DefaultReply = json.RawMessage(`{"success":true}`)

// Reply is the last "reply" among outs, or def when none gives one.
func Reply(outs []Output, def json.RawMessage) json.RawMessage {
	for i := len(outs) - 1; i >= 0; i-- {
		if outs[i].Reply != nil {
			return outs[i].Reply
		}
	}
	return def
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

func outputs(out starlark.Value, keys Keys) ([]Output, error) {
	switch t := out.(type) {
	case starlark.NoneType:
		return nil, nil
	case *starlark.Dict:
		o, err := output(t, keys)
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
			o, err := output(d, keys)
			if err != nil {
				return nil, fmt.Errorf("item %d: %v", i, err)
			}
			res = append(res, o)
		}
		return res, nil
	}
	return nil, fmt.Errorf("a %s, want a dict, a list of dicts or None", out.Type())
}

func output(d *starlark.Dict, keys Keys) (Output, error) {
	o := Output{QoS: -1, NodeID: -1}
	for _, it := range d.Items() {
		k, _ := it[0].(starlark.String)
		if !keys.has(string(k)) {
			return o, fmt.Errorf("unknown key %s (want %s)", it[0].String(), keys)
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
		case "retain", "isExtendedId", "isFd", "bitrateSwitch":
			b, ok := v.(starlark.Bool)
			if !ok {
				return o, fmt.Errorf("%q is a %s, want True or False", string(k), v.Type())
			}
			switch k {
			case "retain":
				o.Retain = bool(b)
			case "isExtendedId":
				o.Extended = bool(b)
			case "isFd":
				o.FD = bool(b)
			default:
				o.BitSwitch = bool(b)
			}
		case "url", "method":
			s, ok := v.(starlark.String)
			if !ok || s == "" || (k == "method" && strings.ContainsAny(string(s), " \t/:")) {
				return o, fmt.Errorf("%q is %s, want a non-empty string", string(k), v.String())
			}
			if k == "url" {
				o.URL = string(s)
			} else {
				o.Method = strings.ToUpper(string(s))
			}
		case "headers":
			hd, ok := v.(*starlark.Dict)
			if !ok {
				return o, fmt.Errorf("\"headers\" is a %s, want a dict of strings", v.Type())
			}
			o.Headers = make(map[string]string, hd.Len())
			for _, h := range hd.Items() {
				hk, ok1 := h[0].(starlark.String)
				hv, ok2 := h[1].(starlark.String)
				if !ok1 || !ok2 {
					return o, fmt.Errorf("\"headers\": %s: %s is not a string header", h[0].String(), h[1].String())
				}
				o.Headers[string(hk)] = string(hv)
			}
		case "nodeId":
			n, err := starlark.AsInt32(v)
			if err != nil || n < 0 || n > 0x1FFFFFFF {
				return o, fmt.Errorf("\"nodeId\" is %s, want a CAN id (0..0x1FFFFFFF)", v.String())
			}
			o.NodeID = int64(n)
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

// UpdateUnclaimed hands the script the attribute updates that no entry of
// the connector took (ignored, as protocols.UpdateEach returns them): one
// command per key, in order, and send gets what downlink returned. A key
// for which downlink returns nothing stays ignored; a failed key does not
// stop the others (errors joined, each naming its key).
func (s *Script) UpdateUnclaimed(device string, values map[string]json.RawMessage, ignored []string, keys Keys,
	send func(key string, outs []Output) error) ([]string, error) {
	var still []string
	var errs []error
	for _, k := range ignored {
		outs, err := s.DownlinkFor(Command{Kind: KindAttributes, Device: device, Values: map[string]json.RawMessage{k: values[k]}}, keys)
		if err == nil && len(outs) == 0 {
			still = append(still, k)
			continue
		}
		if err == nil {
			err = send(k, outs)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("attribute %q: %w", k, err))
		}
	}
	return still, errors.Join(errs...)
}
