package mqtt

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
)

// source resolves a device name or profile.
type source struct {
	kind string
	expr *Expr          // message, constant
	re   *regexp.Regexp // topic
	what string         // for messages: "deviceNameExpression"
}

func newSource(kind, expr, what string) (source, error) {
	s := source{kind: kind, what: what}
	var err error
	if kind == SourceTopic {
		s.re, err = regexp.Compile(expr)
	} else {
		s.expr, err = Compile(expr)
	}
	if err != nil {
		return s, fmt.Errorf("%s: %v", what, err)
	}
	return s, nil
}

func (s *source) resolve(topic string, msg any) (string, error) {
	switch s.kind {
	case SourceTopic:
		v, ok := topicMatch(s.re, topic)
		if !ok {
			return "", fmt.Errorf("topic %q does not match %q", topic, s.re.String())
		}
		return v, nil
	case SourceConstant:
		return s.expr.src, nil
	}
	return s.expr.EvalString(msg)
}

type jsonKey struct {
	typ     string
	key     source
	val     *Expr
	display string // key as configured, for errors
}

// JSONConverter is the upstream "json" converter. It is immutable after
// construction and safe for concurrent use.
type JSONConverter struct {
	filter        string
	name, profile source
	attrs, ts     []jsonKey
	allAttrs      bool
	allTs         bool
	useReceivedTs bool
	tsField       *Expr
}

// NewJSONConverter compiles a mapping's json converter.
func NewJSONConverter(m *Mapping) (*JSONConverter, error) {
	cc := &m.Converter
	c := &JSONConverter{filter: m.TopicFilter, allAttrs: cc.AllAttributes, allTs: cc.AllTimeseries, useReceivedTs: cc.UseReceivedTs}
	var err error
	if c.name, err = newSource(cc.DeviceInfo.NameSource, cc.DeviceInfo.Name, "deviceNameExpression"); err != nil {
		return nil, fmt.Errorf("mapping %q: %w", m.TopicFilter, err)
	}
	profile, psrc := cc.DeviceInfo.Profile, cc.DeviceInfo.ProfileSource
	if profile == "" {
		profile, psrc = "default", SourceConstant
	}
	if c.profile, err = newSource(psrc, profile, "deviceProfileExpression"); err != nil {
		return nil, fmt.Errorf("mapping %q: %w", m.TopicFilter, err)
	}
	tsField := cc.TsField
	build := func(ks []KeyConfig) ([]jsonKey, error) {
		out := make([]jsonKey, 0, len(ks))
		for _, k := range ks {
			jk := jsonKey{typ: strings.ToLower(k.Type), display: k.Key}
			src := k.KeySource
			if src == "" {
				src = SourceMessage
			}
			if jk.key, err = newSource(src, k.Key, "key "+strconv.Quote(k.Key)); err != nil {
				return nil, err
			}
			if jk.val, err = Compile(k.Value); err != nil {
				return nil, fmt.Errorf("key %q: value: %v", k.Key, err)
			}
			if tsField == "" && k.TsField != "" {
				tsField = k.TsField
			}
			out = append(out, jk)
		}
		return out, nil
	}
	if c.attrs, err = build(cc.Attributes); err != nil {
		return nil, fmt.Errorf("mapping %q: attributes: %w", m.TopicFilter, err)
	}
	if c.ts, err = build(cc.Timeseries); err != nil {
		return nil, fmt.Errorf("mapping %q: timeseries: %w", m.TopicFilter, err)
	}
	if tsField != "" {
		if c.tsField, err = Compile(tsExpr(tsField)); err != nil {
			return nil, fmt.Errorf("mapping %q: tsField: %v", m.TopicFilter, err)
		}
	}
	return c, nil
}

// Convert implements Converter.
func (c *JSONConverter) Convert(topic string, payload []byte, now time.Time) ([]Converted, error) {
	msg, err := decodeJSON(payload)
	if err != nil {
		return nil, malformed(c.filter, "invalid JSON", err)
	}
	var errs []error
	switch t := msg.(type) {
	case map[string]any:
		out, ok := c.one(topic, t, now.UnixMilli(), &errs)
		if !ok {
			return nil, errors.Join(errs...)
		}
		return []Converted{out}, errors.Join(errs...)
	case []any:
		fallback := now.UnixMilli()
		if len(t) > 0 {
			if first, ok := t[0].(map[string]any); ok {
				if ts, ok := c.msgTs(first, &errs); ok {
					fallback = ts
				}
			}
		}
		out := make([]Converted, 0, len(t))
		for i, el := range t {
			m, ok := el.(map[string]any)
			if !ok {
				errs = append(errs, malformed(c.filter, fmt.Sprintf("element [%d]", i), fmt.Errorf("expected an object, got %s", jsonKind(el))))
				continue
			}
			if r, ok := c.one(topic, m, fallback, &errs); ok {
				out = append(out, r)
			}
		}
		return merge(out), errors.Join(errs...)
	}
	return nil, malformed(c.filter, "payload", fmt.Errorf("expected a JSON object or list, got %s", jsonKind(msg)))
}

func (c *JSONConverter) msgTs(msg map[string]any, errs *[]error) (int64, bool) {
	if c.tsField != nil {
		v, err := c.tsField.Eval(msg)
		if err == nil {
			ts, err := parseTs(v)
			if err == nil {
				return ts, true
			}
			*errs = append(*errs, malformed(c.filter, "tsField "+strconv.Quote(c.tsField.src), err))
		}
	}
	for _, k := range [...]string{"ts", "timestamp"} {
		if v, ok := msg[k]; ok {
			ts, err := parseTs(v)
			if err != nil {
				*errs = append(*errs, malformed(c.filter, k, err))
				continue
			}
			return ts, true
		}
	}
	return 0, false
}

func (c *JSONConverter) one(topic string, msg map[string]any, fallbackTs int64, errs *[]error) (Converted, bool) {
	var out Converted
	var err error
	if out.Device, err = c.name.resolve(topic, msg); err != nil {
		*errs = append(*errs, malformed(c.filter, "device name", err))
		return out, false
	}
	if out.Device == "" {
		*errs = append(*errs, malformed(c.filter, "device name", errors.New("is empty")))
		return out, false
	}
	if out.Profile, err = c.profile.resolve(topic, msg); err != nil {
		*errs = append(*errs, malformed(c.filter, "device profile", err))
		return out, false
	}
	out.Ts = fallbackTs
	if !c.useReceivedTs {
		if ts, ok := c.msgTs(msg, errs); ok {
			out.Ts = ts
		}
	}
	out.Attributes = c.values(topic, msg, c.attrs, c.allAttrs, errs)
	out.Telemetry = c.values(topic, msg, c.ts, c.allTs, errs)
	return out, true
}

func (c *JSONConverter) values(topic string, msg map[string]any, keys []jsonKey, all bool, errs *[]error) []protocols.Datapoint {
	if all {
		names := make([]string, 0, len(msg))
		for k := range msg {
			names = append(names, k)
		}
		sort.Strings(names)
		dps := make([]protocols.Datapoint, 0, len(names))
		for _, k := range names {
			v, err := convertValue("raw", msg[k])
			if err != nil {
				*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(k), err))
				continue
			}
			dps = append(dps, protocols.Datapoint{Key: k, Value: v})
		}
		return dps
	}
	if len(keys) == 0 {
		return nil
	}
	dps := make([]protocols.Datapoint, 0, len(keys))
	for i := range keys {
		k := &keys[i]
		name, err := k.key.resolve(topic, msg)
		if err != nil {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(k.display), err))
			continue
		}
		raw, err := k.val.Eval(msg)
		if err != nil {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(name), err))
			continue
		}
		v, err := convertValue(k.typ, raw)
		if err != nil {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(name), err))
			continue
		}
		dps = append(dps, protocols.Datapoint{Key: name, Value: v})
	}
	return dps
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// convertValue applies upstream's convert_data_type to a decoded JSON value.
// "raw" (and an empty type) keep the JSON type, which is what "*" needs.
func convertValue(typ string, v any) (protocols.Value, error) {
	switch typ {
	case "int", "integer", "long":
		f, err := toNumber(v)
		if err != nil {
			return protocols.Value{}, err
		}
		f = math.Trunc(f)
		if math.IsNaN(f) || f > math.MaxInt64 || f < math.MinInt64 {
			return protocols.Value{}, fmt.Errorf("%s is out of the integer range", describeValue(v))
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
			var s string
			if n, ok := t.(json.Number); ok {
				s = string(n)
			} else {
				s = strings.ToLower(strings.TrimSpace(t.(string)))
			}
			switch s {
			case "y", "yes", "t", "true", "on", "1":
				return protocols.Bool(true), nil
			case "n", "no", "f", "false", "off", "0":
				return protocols.Bool(false), nil
			}
		}
		return protocols.Value{}, fmt.Errorf("%s is not a boolean", describeValue(v))
	case "raw", "":
		switch t := v.(type) {
		case nil:
			return protocols.Value{}, nil
		case bool:
			return protocols.Bool(t), nil
		case json.Number:
			return numberValue(string(t))
		case float64:
			return protocols.Float(t), nil
		case string:
			return protocols.String(t), nil
		}
		return protocols.String(string(appendText(nil, v))), nil
	}
	if v == nil {
		return protocols.Value{}, errors.New("null is not a " + typ)
	}
	switch t := v.(type) {
	case string:
		return protocols.String(t), nil
	case json.Number:
		return protocols.String(string(t)), nil
	}
	return protocols.String(string(appendText(nil, v))), nil
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
	switch t := v.(type) {
	case json.Number:
		return strconv.ParseFloat(string(t), 64)
	case float64:
		return t, nil
	case bool:
		if t {
			return 1, nil
		}
		return 0, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%s is not a number", describeValue(v))
}

func describeValue(v any) string {
	switch t := v.(type) {
	case string:
		if len(t) > 64 {
			t = t[:64] + "..."
		}
		return strconv.Quote(t)
	case json.Number:
		return string(t)
	}
	return jsonKind(v)
}

// parseTs accepts unix seconds or milliseconds (as numbers or numeric
// strings) and RFC 3339 / "2006-01-02 15:04:05" text; it returns milliseconds.
func parseTs(v any) (int64, error) {
	var f float64
	switch t := v.(type) {
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(t), 64); err != nil {
			return 0, fmt.Errorf("%s is not a timestamp", t)
		}
	case float64:
		f = t
	case string:
		s := strings.TrimSpace(t)
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			f = n
			break
		}
		for _, layout := range [...]string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if tm, err := time.Parse(layout, s); err == nil {
				return tm.UnixMilli(), nil
			}
		}
		return 0, fmt.Errorf("%s is not a timestamp", describeValue(v))
	default:
		return 0, fmt.Errorf("%s is not a timestamp", describeValue(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e15 {
		return 0, fmt.Errorf("%v is not a timestamp", f)
	}
	// Upstream devices send both; anything below 1e11 would be a millisecond
	// time in early 1973, so it is read as seconds.
	if f < 1e11 {
		return int64(f * 1000), nil
	}
	return int64(f), nil
}

var _ Converter = (*JSONConverter)(nil)
