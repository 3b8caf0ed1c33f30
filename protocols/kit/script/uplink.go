package script

import (
	"fmt"
	"sort"
	"time"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// Message is what a connector received.
type Message struct {
	Payload []byte
	// Topic names where the message came from: the MQTT topic, the URL
	// path, the peer address or the CAN id.
	Topic string
	// Meta is what else the connector knows (decoded-JSON-like values).
	Meta map[string]any
	Now  time.Time
}

// Result is one device's data from an uplink call.
type Result struct {
	Device     string
	Profile    string
	Ts         int64 // unix milliseconds
	Telemetry  []protocols.Datapoint
	Attributes []protocols.Datapoint
}

// ErrNoUplink is returned by Uplink on a script without uplink(msg).
var ErrNoUplink = fmt.Errorf("script defines no uplink(msg)")

// Uplink converts one message. Errors are *RunError (counted in Stats).
func (s *Script) Uplink(m Message) ([]Result, error) {
	if s.uplink == nil {
		return nil, ErrNoUplink
	}
	mv := &msgValue{m: m, config: s.config}
	out, err := s.call(s.uplink, mv)
	if err != nil {
		return nil, err
	}
	res, err := results(out, m.Now.UnixMilli())
	if err != nil {
		return nil, s.failAt(s.uplink, "returned %v", err)
	}
	return res, nil
}

// msgValue is msg: attributes computed when the script reads them, so a
// script that only reads msg.payload pays for nothing else.
type msgValue struct {
	m      Message
	config starlark.Value
	parsed starlark.Value
}

var msgAttrs = []string{"config", "json", "meta", "payload", "text", "topic", "ts"}

func (v *msgValue) String() string {
	return fmt.Sprintf("<msg topic=%q, %d bytes>", v.m.Topic, len(v.m.Payload))
}
func (v *msgValue) Type() string          { return "msg" }
func (v *msgValue) Freeze()               {}
func (v *msgValue) Truth() starlark.Bool  { return true }
func (v *msgValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: msg") }
func (v *msgValue) AttrNames() []string   { return msgAttrs }

func (v *msgValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "payload":
		return starlark.Bytes(v.m.Payload), nil
	case "text":
		return starlark.String(v.m.Payload), nil
	case "topic":
		return starlark.String(v.m.Topic), nil
	case "ts":
		return starlark.MakeInt64(v.m.Now.UnixMilli()), nil
	case "config":
		return v.config, nil
	case "meta":
		if len(v.m.Meta) == 0 {
			return starlark.NewDict(0), nil
		}
		return pyexpr.ToStarlark(v.m.Meta)
	case "json":
		return starlark.NewBuiltin("msg.json", v.json), nil
	}
	return nil, nil
}

var jsonDecode = starjson.Module.Members["decode"]

func (v *msgValue) json(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	if v.parsed == nil {
		out, err := starlark.Call(th, jsonDecode, starlark.Tuple{starlark.String(v.m.Payload)}, nil)
		if err != nil {
			return nil, fmt.Errorf("payload is not JSON: %v", err)
		}
		v.parsed = out
	}
	return v.parsed, nil
}

// results reads uplink's return value.
func results(out starlark.Value, now int64) ([]Result, error) {
	switch t := out.(type) {
	case starlark.NoneType:
		return nil, nil
	case *starlark.Dict:
		return appendResult(nil, t, now, "")
	case *starlark.List, starlark.Tuple:
		var res []Result
		it := starlark.Iterate(t)
		defer it.Done()
		var x starlark.Value
		for i := 0; it.Next(&x); i++ {
			d, ok := x.(*starlark.Dict)
			if !ok {
				return nil, fmt.Errorf("item %d is a %s, want a dict", i, x.Type())
			}
			var err error
			if res, err = appendResult(res, d, now, fmt.Sprintf("item %d: ", i)); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	return nil, fmt.Errorf("a %s, want a dict, a list of dicts or None", out.Type())
}

var resultKeys = map[string]bool{"device": true, "profile": true, "ts": true, "telemetry": true, "attributes": true}

func appendResult(res []Result, d *starlark.Dict, now int64, where string) ([]Result, error) {
	r := Result{Profile: "default", Ts: now}
	for _, k := range d.Keys() {
		ks, ok := k.(starlark.String)
		if !ok || !resultKeys[string(ks)] {
			return nil, fmt.Errorf("%sunknown key %s (want device, profile, ts, telemetry, attributes)", where, k.String())
		}
	}
	get := func(k string) starlark.Value {
		v, _, _ := d.Get(starlark.String(k))
		return v
	}
	dev, ok := get("device").(starlark.String)
	if !ok || dev == "" {
		return nil, fmt.Errorf("%s\"device\" is %s, want a non-empty string", where, describe(get("device")))
	}
	r.Device = string(dev)
	if p := get("profile"); p != nil && p != starlark.None {
		ps, ok := p.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s\"profile\" is a %s, want a string", where, p.Type())
		}
		r.Profile = string(ps)
	}
	if ts := get("ts"); ts != nil && ts != starlark.None {
		i, ok := ts.(starlark.Int)
		if !ok {
			return nil, fmt.Errorf("%s\"ts\" is a %s, want Unix milliseconds (int)", where, ts.Type())
		}
		ms, ok := i.Int64()
		if !ok {
			return nil, fmt.Errorf("%s\"ts\" %s is out of range", where, i.String())
		}
		r.Ts = ms
	}
	var err error
	if r.Attributes, err = datapoints(get("attributes")); err != nil {
		return nil, fmt.Errorf("%sattributes: %v", where, err)
	}
	tel := get("telemetry")
	if l, ok := tel.(*starlark.List); ok {
		// [{"ts": ms, "values": {...}}, ...]: one result per timestamp.
		base := r
		base.Telemetry = nil
		for i := 0; i < l.Len(); i++ {
			e, ok := l.Index(i).(*starlark.Dict)
			if !ok {
				return nil, fmt.Errorf("%stelemetry[%d] is a %s, want {\"ts\": ms, \"values\": {...}}", where, i, l.Index(i).Type())
			}
			one := base
			if i > 0 {
				one.Attributes = nil
			}
			tv, _, _ := e.Get(starlark.String("ts"))
			if ti, ok := tv.(starlark.Int); ok {
				if one.Ts, ok = ti.Int64(); !ok {
					return nil, fmt.Errorf("%stelemetry[%d].ts is out of range", where, i)
				}
			} else if tv != nil && tv != starlark.None {
				return nil, fmt.Errorf("%stelemetry[%d].ts is a %s, want Unix milliseconds (int)", where, i, tv.Type())
			}
			vals, _, _ := e.Get(starlark.String("values"))
			if one.Telemetry, err = datapoints(vals); err != nil {
				return nil, fmt.Errorf("%stelemetry[%d].values: %v", where, i, err)
			}
			res = append(res, one)
		}
		if l.Len() == 0 && len(base.Attributes) > 0 {
			res = append(res, base)
		}
		return res, nil
	}
	if r.Telemetry, err = datapoints(tel); err != nil {
		return nil, fmt.Errorf("%stelemetry: %v", where, err)
	}
	return append(res, r), nil
}

func describe(v starlark.Value) string {
	if v == nil {
		return "missing"
	}
	if s, ok := v.(starlark.String); ok && s == "" {
		return "empty"
	}
	return "a " + v.Type()
}

// datapoints reads a {key: value} dict, keys sorted so output is stable.
func datapoints(v starlark.Value) ([]protocols.Datapoint, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	d, ok := v.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("is a %s, want a dict of key: value", v.Type())
	}
	out := make([]protocols.Datapoint, 0, d.Len())
	for _, it := range d.Items() {
		k, ok := it[0].(starlark.String)
		if !ok || k == "" {
			return nil, fmt.Errorf("key %s is not a non-empty string", it[0].String())
		}
		val, err := toValue(it[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %v", string(k), err)
		}
		out = append(out, protocols.Datapoint{Key: string(k), Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

var jsonEncode = starjson.Module.Members["encode"]

// toValue converts a datapoint value; a dict or list becomes a JSON value.
func toValue(x starlark.Value) (protocols.Value, error) {
	switch x.(type) {
	case *starlark.Dict, *starlark.List, starlark.Tuple:
		th := &starlark.Thread{}
		th.SetMaxExecutionSteps(DefaultMaxSteps)
		s, err := starlark.Call(th, jsonEncode, starlark.Tuple{x}, nil)
		if err != nil {
			return protocols.Value{}, err
		}
		return protocols.JSON([]byte(s.(starlark.String)))
	case starlark.NoneType:
		return protocols.Value{}, fmt.Errorf("value is None")
	}
	return pyexpr.FromStarlark(x)
}
