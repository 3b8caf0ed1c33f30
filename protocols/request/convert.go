package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/jsonexpr"
	"github.com/industryos/gateway/protocols/kit/script"
)

// Converted is what one response item yields for one device.
type Converted = jsonconv.Converted

// Converter turns one polled response body into device data. It may return
// results together with an error: the results are what could be converted,
// the error describes what was skipped.
type Converter interface {
	Convert(body []byte, now time.Time) ([]Converted, error)
}

// The converter errors are the other connectors': a ConvertError's
// TopicFilter holds the mapping's url.
var (
	// ErrMalformed is matched by errors about a response the mapping cannot read.
	ErrMalformed = jsonconv.ErrMalformed
	// ErrNoConverter means a mapping names a custom converter this build does not have.
	ErrNoConverter = jsonconv.ErrNoConverter
)

// ConvertError names the mapping and what a response failed on.
type ConvertError = jsonconv.ConvertError

// NewConverter builds the converter a mapping asks for; a script path is
// taken as written (see NewConverterEnv).
func NewConverter(m *Mapping) (Converter, error) { return NewConverterEnv(m, jsonconv.Env{}) }

// NewConverterEnv builds the converter a mapping asks for: json, a script
// (custom with a script, or script), or a registered Go converter.
func NewConverterEnv(m *Mapping, env jsonconv.Env) (Converter, error) {
	switch m.Converter.Type {
	case TypeJSON, "":
		return NewJSONConverter(m)
	case TypeScript:
		return newScriptConverter(m, env)
	case TypeCustom:
		if m.Converter.Script != "" {
			return newScriptConverter(m, env)
		}
		f := lookupConverter(m.Converter.Extension)
		if f == nil {
			return nil, jsonconv.NoConverterError(m.Converter.Extension)
		}
		c, err := f(m.Converter.ExtensionConfig)
		if err != nil {
			return nil, fmt.Errorf("mapping %q: custom converter %q: %w", m.URL, m.Converter.Extension, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("mapping %q: unknown converter type %q", m.URL, m.Converter.Type)
}

type jsonKey struct {
	typ     string
	key     *jsonexpr.Expr
	val     *jsonexpr.Expr
	tsField *jsonexpr.Expr
}

// JSONConverter is upstream's json request converter. It is immutable
// after construction and safe for concurrent use.
type JSONConverter struct {
	url           string
	name, profile *jsonexpr.Expr
	attrs, ts     []jsonKey
}

// NewJSONConverter compiles a mapping's json converter.
func NewJSONConverter(m *Mapping) (*JSONConverter, error) {
	cc := &m.Converter
	c := &JSONConverter{url: m.URL}
	var err error
	if c.name, err = jsonexpr.Compile(cc.DeviceName); err != nil {
		return nil, fmt.Errorf("mapping %q: deviceNameJsonExpression: %w", m.URL, err)
	}
	profile := cc.DeviceType
	if profile == "" {
		profile = "default"
	}
	if c.profile, err = jsonexpr.Compile(profile); err != nil {
		return nil, fmt.Errorf("mapping %q: deviceTypeJsonExpression: %w", m.URL, err)
	}
	build := func(ks []KeyConfig) ([]jsonKey, error) {
		out := make([]jsonKey, 0, len(ks))
		for _, k := range ks {
			jk := jsonKey{typ: k.Type}
			if jk.key, err = jsonexpr.Compile(k.Key); err != nil {
				return nil, err
			}
			if jk.val, err = jsonexpr.Compile(k.Value); err != nil {
				return nil, fmt.Errorf("key %q: value: %w", k.Key, err)
			}
			if k.TsField != "" {
				if jk.tsField, err = jsonexpr.Compile(tsExpr(k.TsField)); err != nil {
					return nil, fmt.Errorf("key %q: tsField: %w", k.Key, err)
				}
			}
			out = append(out, jk)
		}
		return out, nil
	}
	if c.attrs, err = build(cc.Attributes); err != nil {
		return nil, fmt.Errorf("mapping %q: attributes: %w", m.URL, err)
	}
	if c.ts, err = build(cc.Telemetry); err != nil {
		return nil, fmt.Errorf("mapping %q: telemetry: %w", m.URL, err)
	}
	return c, nil
}

// DecodeJSON decodes a response body keeping numbers' text (json.Number),
// the shape jsonexpr reads.
func DecodeJSON(body []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err == nil {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// Convert implements Converter.
func (c *JSONConverter) Convert(body []byte, now time.Time) ([]Converted, error) {
	v, err := DecodeJSON(body)
	if err != nil {
		return nil, c.malformed("response is not JSON", err)
	}
	return c.ConvertValue(v, now)
}

// ConvertValue converts a decoded response: a list converts item by item,
// as upstream does; anything else is one item.
func (c *JSONConverter) ConvertValue(v any, now time.Time) ([]Converted, error) {
	var errs []error
	var out []Converted
	if l, ok := v.([]any); ok {
		for i, el := range l {
			n := len(errs)
			out = c.one(out, el, now, &errs)
			for j := n; j < len(errs); j++ {
				errs[j] = fmt.Errorf("item [%d]: %w", i, errs[j])
			}
		}
	} else {
		out = c.one(out, v, now, &errs)
	}
	return out, errors.Join(errs...)
}

func (c *JSONConverter) malformed(what string, err error) error {
	return &ConvertError{TopicFilter: c.url, What: what, Err: err}
}

func (c *JSONConverter) one(out []Converted, msg any, now time.Time, errs *[]error) []Converted {
	name, err := c.name.EvalString(msg)
	if err == nil && name == "" {
		err = errors.New("is empty")
	}
	if err != nil {
		*errs = append(*errs, c.malformed("device name", err))
		return out
	}
	profile, err := c.profile.EvalString(msg)
	if err != nil {
		*errs = append(*errs, c.malformed("device type", err))
		return out
	}
	base := now.UnixMilli()
	if m, ok := msg.(map[string]any); ok {
		for _, k := range [...]string{"ts", "timestamp"} {
			if tv, ok := m[k]; ok {
				ts, err := jsonconv.ParseTimestamp(tv)
				if err != nil {
					*errs = append(*errs, c.malformed(k, err))
					continue
				}
				base = ts
				break
			}
		}
	}
	first := len(out)
	out = append(out, Converted{Device: name, Profile: profile, Ts: base})
	for i := range c.attrs {
		k := &c.attrs[i]
		if dp, ok := c.value(k, msg, errs); ok {
			out[first].Attributes = append(out[first].Attributes, dp)
		}
	}
	for i := range c.ts {
		k := &c.ts[i]
		dp, ok := c.value(k, msg, errs)
		if !ok {
			continue
		}
		ts := base
		if k.tsField != nil {
			if tv, err := k.tsField.Eval(msg); err == nil {
				if t, err := jsonconv.ParseTimestamp(tv); err == nil {
					ts = t
				} else {
					*errs = append(*errs, c.malformed("key "+strconv.Quote(dp.Key)+": tsField", err))
				}
			}
		}
		at := -1
		for j := first; j < len(out); j++ {
			if out[j].Ts == ts {
				at = j
				break
			}
		}
		if at < 0 {
			out = append(out, Converted{Device: name, Profile: profile, Ts: ts})
			at = len(out) - 1
		}
		out[at].Telemetry = append(out[at].Telemetry, dp)
	}
	return out
}

// value resolves one key. A missing lone ${} skips the key; a template
// with some references missing keeps the key with "null" in their place
// and is skipped only when none resolves (upstream's rules).
func (c *JSONConverter) value(k *jsonKey, msg any, errs *[]error) (protocols.Datapoint, bool) {
	name, err := k.key.EvalString(msg)
	if err == nil && name == "" {
		err = errors.New("is empty")
	}
	if err != nil {
		*errs = append(*errs, c.malformed("key "+strconv.Quote(k.key.String()), err))
		return protocols.Datapoint{}, false
	}
	raw, err := evalTemplate(k.val, msg)
	if err != nil {
		*errs = append(*errs, c.malformed("key "+strconv.Quote(name), err))
		return protocols.Datapoint{}, false
	}
	v, err := convertValue(k.typ, raw)
	if err != nil {
		*errs = append(*errs, c.malformed("key "+strconv.Quote(name), err))
		return protocols.Datapoint{}, false
	}
	return protocols.Datapoint{Key: name, Value: v}, true
}

func evalTemplate(e *jsonexpr.Expr, msg any) (any, error) {
	parts := e.Parts()
	if len(parts) <= 1 {
		return e.Eval(msg)
	}
	var b []byte
	resolved := false
	for i := range parts {
		p := &parts[i]
		if !p.Ref {
			b = append(b, p.Lit...)
			continue
		}
		v, ok := p.Lookup(msg)
		if !ok {
			b = append(b, "null"...)
			continue
		}
		resolved = true
		b = jsonexpr.AppendText(b, v)
	}
	if !resolved {
		return nil, &jsonexpr.MissingError{Expr: e.String()}
	}
	return string(b), nil
}

// convertValue applies upstream's convert_data_type to a decoded JSON
// value. "raw" (and an empty type) keep the JSON type.
func convertValue(typ string, v any) (protocols.Value, error) {
	if v == nil {
		if typ == "raw" || typ == "" || typ == "json" {
			return protocols.Value{}, errors.New("value is null")
		}
		return protocols.Value{}, fmt.Errorf("null is not a %s", typ)
	}
	switch typ {
	case "int", "integer", "long":
		f, err := toNumber(v)
		if err != nil {
			return protocols.Value{}, err
		}
		f = math.Trunc(f)
		if math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
			return protocols.Value{}, fmt.Errorf("%s is out of the integer range", describe(v))
		}
		return protocols.Int(int64(f)), nil
	case "float", "double":
		f, err := toNumber(v)
		if err != nil {
			return protocols.Value{}, err
		}
		return protocols.Float(f), nil
	case "bool", "boolean":
		switch t := v.(type) {
		case bool:
			return protocols.Bool(t), nil
		case string, json.Number:
			s := strings.ToLower(strings.TrimSpace(fmt.Sprint(t)))
			switch s {
			case "y", "yes", "t", "true", "on", "1":
				return protocols.Bool(true), nil
			case "n", "no", "f", "false", "off", "0":
				return protocols.Bool(false), nil
			}
		}
		return protocols.Value{}, fmt.Errorf("%s is not a boolean", describe(v))
	case "raw", "", "json":
		switch t := v.(type) {
		case bool:
			return protocols.Bool(t), nil
		case json.Number:
			return numberValue(string(t))
		case string:
			if typ == "json" {
				if x, err := DecodeJSON([]byte(t)); err == nil {
					if _, isStr := x.(string); !isStr && x != nil {
						return convertValue("raw", x)
					}
				}
			}
			return protocols.String(t), nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return protocols.Value{}, err
		}
		return protocols.JSON(b)
	}
	return protocols.String(string(jsonexpr.AppendText(nil, v))), nil
}

func numberValue(s string) (protocols.Value, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return protocols.Int(i), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return protocols.Value{}, fmt.Errorf("%q is not a number", s)
	}
	return protocols.Float(f), nil
}

func toNumber(v any) (float64, error) {
	var f float64
	var err error
	switch t := v.(type) {
	case json.Number:
		f, err = strconv.ParseFloat(string(t), 64)
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(t), 64)
	case bool:
		if t {
			return 1, nil
		}
		return 0, nil
	case float64:
		f = t
	default:
		err = errors.New("not a number")
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is not a number", describe(v))
	}
	return f, nil
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		if len(t) > 64 {
			t = t[:64] + "..."
		}
		return strconv.Quote(t)
	case json.Number:
		return string(t)
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%v", v)
}

var _ Converter = (*JSONConverter)(nil)

// scriptConverter runs a mapping's Starlark script on each response body;
// the script sees the mapping's url as msg.topic.
type scriptConverter struct {
	url string
	s   *script.Script
}

func newScriptConverter(m *Mapping, env jsonconv.Env) (*scriptConverter, error) {
	s, err := script.Load(script.Path(env.Dir, m.Converter.Script), script.Options{Config: m.Converter.ExtensionConfig, Print: env.Print})
	if err == nil && !s.HasUplink() {
		err = &script.CompileError{File: s.File, Msg: "defines no uplink(msg), which a mapping's converter needs"}
	}
	if err != nil {
		return nil, err
	}
	return &scriptConverter{url: m.URL, s: s}, nil
}

// Convert implements Converter; a failed call is a ConvertError
// (ErrMalformed) naming the script's file and line.
func (c *scriptConverter) Convert(body []byte, now time.Time) ([]Converted, error) {
	rs, err := c.s.Uplink(script.Message{Payload: body, Topic: c.url, Now: now})
	if err != nil {
		return nil, &ConvertError{TopicFilter: c.url, What: "script", Err: err}
	}
	out := make([]Converted, len(rs))
	for i, r := range rs {
		out[i] = Converted{Device: r.Device, Profile: r.Profile, Ts: r.Ts, Telemetry: r.Telemetry, Attributes: r.Attributes}
	}
	return out, nil
}
