package jsonconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyre"
)

// Source resolves a device name, profile or key from a topic, a message
// or a constant.
type Source struct {
	kind   string
	expr   *Expr        // message, constant
	re     *pyre.Regexp // topic
	topics *topicCache  // topic
	what   string       // for messages: "deviceNameExpression"
}

// NewSource compiles expr read from kind (SourceMessage, SourceTopic or
// SourceConstant); what names it in errors.
func NewSource(kind, expr, what string) (Source, error) {
	s := Source{kind: kind, what: what}
	var err error
	if kind == SourceTopic {
		s.re, err = pyre.Compile(expr, pyre.Search)
		s.topics = &topicCache{}
	} else {
		s.expr, err = Compile(expr)
	}
	if err != nil {
		return s, fmt.Errorf("%s: %v", what, err)
	}
	return s, nil
}

// Kind is the source the expression reads: SourceMessage, SourceTopic or
// SourceConstant.
func (s *Source) Kind() string { return s.kind }

// What names the expression in errors, e.g. "deviceNameExpression".
func (s *Source) What() string { return s.what }

// Resolve gives the source's text for one message.
func (s *Source) Resolve(topic string, msg any) (string, error) {
	switch s.kind {
	case SourceTopic:
		v, ok, err := s.topics.match(s.re, topic)
		if err != nil {
			return "", fmt.Errorf("topic %q: %w", topic, err)
		}
		if !ok {
			return "", fmt.Errorf("topic %q does not match %q", topic, s.re.String())
		}
		return v, nil
	case SourceConstant:
		return s.expr.String(), nil
	}
	return s.expr.EvalString(msg)
}

// topicCache remembers what a topic regexp made of the topics it saw:
// devices publish on the same topics over and over, and matching costs as
// much as converting a small message (and allocates).
type topicCache struct {
	mu   sync.RWMutex
	m    map[string]topicHit
	size int // bytes of the topics in m
}

type topicHit struct {
	v  string
	ok bool
}

// A stream of ever new topics must not pin unbounded memory: a full cache
// starts over.
const (
	maxTopicCache      = 4096
	maxTopicCacheBytes = 256 << 10
)

func (tc *topicCache) match(re *pyre.Regexp, topic string) (string, bool, error) {
	tc.mu.RLock()
	h, hit := tc.m[topic]
	tc.mu.RUnlock()
	if hit {
		return h.v, h.ok, nil
	}
	v, ok, err := topicMatch(re, topic)
	if err != nil {
		// A timeout says as much about the load as about the topic: not
		// remembered, so the next message tries again.
		return "", false, err
	}
	tc.mu.Lock()
	if tc.m == nil || len(tc.m) >= maxTopicCache || tc.size+len(topic) > maxTopicCacheBytes {
		tc.m, tc.size = map[string]topicHit{}, 0
	}
	if _, dup := tc.m[topic]; !dup {
		tc.m[topic] = topicHit{v, ok}
		tc.size += len(topic)
	}
	tc.mu.Unlock()
	return v, ok, nil
}

type jsonKey struct {
	typ     string
	key     Source
	val     *Expr
	display string // key as configured, for errors
}

// JSONConverter is the upstream "json" converter. It is immutable after
// construction and safe for concurrent use.
type JSONConverter struct {
	filter        string
	name, profile Source
	attrs, ts     []jsonKey
	allAttrs      bool
	allTs         bool
	useReceivedTs bool
	tsField       *Expr
	fast          *fastJSON // nil when the mapping needs the general path
}

// NewJSONConverter compiles a mapping's json converter.
func NewJSONConverter(m *Mapping) (*JSONConverter, error) {
	cc := &m.Converter
	c := &JSONConverter{filter: m.TopicFilter, allAttrs: cc.AllAttributes, allTs: cc.AllTimeseries, useReceivedTs: cc.UseReceivedTs}
	var err error
	if c.name, err = NewSource(cc.DeviceInfo.NameSource, cc.DeviceInfo.Name, "deviceNameExpression"); err != nil {
		return nil, fmt.Errorf("mapping %q: %w", m.TopicFilter, err)
	}
	profile, psrc := cc.DeviceInfo.Profile, cc.DeviceInfo.ProfileSource
	if profile == "" {
		profile, psrc = "default", SourceConstant
	}
	if c.profile, err = NewSource(psrc, profile, "deviceProfileExpression"); err != nil {
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
			if jk.key, err = NewSource(src, k.Key, "key "+strconv.Quote(k.Key)); err != nil {
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
	c.fast = newFastJSON(c)
	return c, nil
}

// Convert implements Converter.
func (c *JSONConverter) Convert(topic string, payload []byte, now time.Time) ([]Converted, error) {
	return c.ConvertTo(nil, topic, payload, now)
}

// ConvertTo is Convert appending a single object's result to dst, so the
// connector can keep it on its stack; lists still get a slice of their own.
func (c *JSONConverter) ConvertTo(dst []Converted, topic string, payload []byte, now time.Time) ([]Converted, error) {
	// One copy serves both paths and keeps the result from referring to
	// the caller's buffer.
	s := string(payload)
	if c.fast != nil {
		if out, err := c.fast.convert(c, dst, topic, s, now); err != errGeneralPath {
			return out, err
		}
	}
	return c.convertGeneral(dst, topic, s, now)
}

// convertGeneral handles every payload and is the reference for the fast
// path: any message the fast path is unsure about comes here.
func (c *JSONConverter) convertGeneral(dst []Converted, topic, payload string, now time.Time) ([]Converted, error) {
	msg, err := decodeJSONString(payload)
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
		return append(dst, out), errors.Join(errs...)
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
			*errs = append(*errs, malformed(c.filter, "tsField "+strconv.Quote(c.tsField.String()), err))
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
	if out.Device, err = c.name.Resolve(topic, msg); err != nil {
		*errs = append(*errs, malformed(c.filter, "device name", err))
		return out, false
	}
	if out.Device == "" {
		*errs = append(*errs, malformed(c.filter, "device name", errors.New("is empty")))
		return out, false
	}
	if out.Profile, err = c.profile.Resolve(topic, msg); err != nil {
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
	out.Pooled = true // two fresh arrays
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
		name, err := k.key.Resolve(topic, msg)
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

// scalarKind is the JSON type of a scalar. scUnset is the zero value so a
// fast-path slot that no key filled reads as missing.
type scalarKind uint8

const (
	scUnset scalarKind = iota
	scNull
	scBool
	scNumber
	scString
)

// scalar is a JSON null, boolean, number (s is its literal text) or string
// (s is the decoded text). It lets conversions run on a number's text
// without boxing a json.Number into an any.
type scalar struct {
	kind scalarKind
	b    bool
	s    string
}

// toScalar classifies what decodeJSON yields; floats, lists and objects
// are not scalars.
func toScalar(v any) (scalar, bool) {
	switch t := v.(type) {
	case nil:
		return scalar{kind: scNull}, true
	case bool:
		return scalar{kind: scBool, b: t}, true
	case json.Number:
		return scalar{kind: scNumber, s: string(t)}, true
	case string:
		return scalar{kind: scString, s: t}, true
	}
	return scalar{}, false
}

// appendScalar is appendText for a scalar.
func appendScalar(b []byte, v scalar) []byte {
	switch v.kind {
	case scBool:
		return strconv.AppendBool(b, v.b)
	case scNumber, scString:
		return append(b, v.s...)
	}
	return append(b, "null"...)
}

// convertValue applies upstream's convert_data_type to a decoded JSON value.
// "raw" (and an empty type) keep the JSON type, which is what "*" needs.
func convertValue(typ string, v any) (protocols.Value, error) {
	if sc, ok := toScalar(v); ok {
		return convertScalar(typ, sc)
	}
	// What is left: lists, objects and float64 (which decodeJSON never
	// yields, but convertValue has always accepted).
	switch typ {
	case "int", "integer", "long":
		f, err := toNumber(v)
		if err != nil {
			return protocols.Value{}, err
		}
		f = math.Trunc(f)
		if math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
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
		return protocols.Value{}, fmt.Errorf("%s is not a boolean", describeValue(v))
	case "raw", "", "json":
		if t, ok := v.(float64); ok {
			return protocols.Float(t), nil
		}
		// Upstream hands a whole message's nested values ("*") to the
		// platform as they are, so objects and lists stay JSON.
		return protocols.JSON(appendJSONAny(nil, v))
	}
	return protocols.String(string(appendText(nil, v))), nil
}

// jsonText is the "json" type of a text: upstream parses it (json.loads),
// so a device that sends its object as a JSON string, or a bytes slice
// holding JSON, reaches the platform as JSON. Text that is not JSON stays
// a string rather than losing the value.
func jsonText(s string) (protocols.Value, error) {
	x, err := decodeJSONString(s)
	if err != nil {
		return protocols.String(s), nil
	}
	if _, ok := x.(string); ok {
		return protocols.String(s), nil
	}
	return convertValue("raw", x)
}

// appendJSONAny appends the compact JSON form of a value decodeJSON built.
// Object members come out sorted by key, as the decoded map has no order;
// numbers keep the device's literal text.
func appendJSONAny(b []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, t)
	case json.Number:
		return append(b, t...)
	case float64:
		return protocols.Float(t).AppendJSON(b)
	case string:
		return protocols.AppendJSONString(b, t)
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONAny(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = protocols.AppendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONAny(b, t[k])
		}
		return append(b, '}')
	}
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}

// convertScalar is convertValue for a scalar; both paths of the converter
// share it, so they cannot drift apart.
func convertScalar(typ string, v scalar) (protocols.Value, error) {
	switch typ {
	case "int", "integer", "long":
		// An integer literal is read exactly: through a float64, counters
		// beyond 2^53 would lose their last digits.
		if v.kind == scNumber || v.kind == scString {
			if s := strings.TrimSpace(v.s); !strings.ContainsAny(s, ".eE") {
				if i, err := strconv.ParseInt(s, 10, 64); err == nil {
					return protocols.Int(i), nil
				}
			}
		}
		f, err := scalarNumber(v)
		if err != nil {
			return protocols.Value{}, err
		}
		f = math.Trunc(f)
		// float64(math.MaxInt64) is 2^63, itself out of range.
		if math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
			return protocols.Value{}, fmt.Errorf("%s is out of the integer range", describeScalar(v))
		}
		return protocols.Int(int64(f)), nil
	case "float", "double":
		f, err := scalarNumber(v)
		if err != nil {
			return protocols.Value{}, err
		}
		return protocols.Float(f), nil
	case "bool", "boolean":
		switch v.kind {
		case scBool:
			return protocols.Bool(v.b), nil
		case scString, scNumber:
			s := v.s
			if v.kind == scString {
				s = strings.ToLower(strings.TrimSpace(s))
			}
			switch s {
			case "y", "yes", "t", "true", "on", "1":
				return protocols.Bool(true), nil
			case "n", "no", "f", "false", "off", "0":
				return protocols.Bool(false), nil
			}
		}
		return protocols.Value{}, fmt.Errorf("%s is not a boolean", describeScalar(v))
	case "json":
		if v.kind == scString {
			return jsonText(v.s)
		}
		return convertScalar("raw", v)
	case "raw", "":
		switch v.kind {
		case scNull:
			return protocols.Value{}, nil
		case scBool:
			return protocols.Bool(v.b), nil
		case scNumber:
			return numberValue(v.s)
		}
		return protocols.String(v.s), nil
	}
	switch v.kind {
	case scNull:
		return protocols.Value{}, errors.New("null is not a " + typ)
	case scString, scNumber:
		return protocols.String(v.s), nil
	}
	return protocols.String(strconv.FormatBool(v.b)), nil
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

// float64Pow10 holds the powers of ten a float64 represents exactly.
var float64Pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNumber is strconv.ParseFloat(s, 64) for a JSON number literal. The
// common short decimal is done inline the way strconv's own exact path does
// it — an integer below 2^53 divided by an exact power of ten is correctly
// rounded, so the result is bit for bit the same — without its general
// scanning; everything else goes to strconv.
func parseNumber(s string) (float64, error) {
	i := 0
	neg := i < len(s) && s[i] == '-'
	if neg {
		i++
	}
	var m uint64
	digits, frac := 0, 0
	sawDigit, sawDot := false, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if m != 0 || c != '0' {
				digits++
			}
			m = m*10 + uint64(c-'0')
			if sawDot {
				frac++
			}
		case c == '.' && !sawDot:
			sawDot = true
		default:
			return strconv.ParseFloat(s, 64)
		}
	}
	if !sawDigit || digits > 15 || frac >= len(float64Pow10) {
		return strconv.ParseFloat(s, 64)
	}
	f := float64(m)
	if neg {
		f = -f
	}
	return f / float64Pow10[frac], nil
}

func toNumber(v any) (float64, error) {
	if sc, ok := toScalar(v); ok {
		return scalarNumber(sc)
	}
	if t, ok := v.(float64); ok {
		return t, nil
	}
	return 0, fmt.Errorf("%s is not a number", describeValue(v))
}

func scalarNumber(v scalar) (float64, error) {
	switch v.kind {
	case scNumber:
		return parseNumber(v.s)
	case scBool:
		if v.b {
			return 1, nil
		}
		return 0, nil
	case scString:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.s), 64)
		if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%s is not a number", describeScalar(v))
}

func describeValue(v any) string {
	if sc, ok := toScalar(v); ok {
		return describeScalar(sc)
	}
	return jsonKind(v)
}

func describeScalar(v scalar) string {
	switch v.kind {
	case scString:
		t := v.s
		if len(t) > 64 {
			t = t[:64] + "..."
		}
		return strconv.Quote(t)
	case scNumber:
		return v.s
	case scBool:
		return "a boolean"
	}
	return "null"
}

// ParseTimestamp is upstream's reading of a device timestamp in a decoded
// JSON value, shared by the connectors that take JSON from devices.
func ParseTimestamp(v any) (int64, error) { return parseTs(v) }

// parseTs accepts unix seconds or milliseconds (as numbers or numeric
// strings) and RFC 3339 / "2006-01-02 15:04:05" text; it returns milliseconds.
func parseTs(v any) (int64, error) {
	if sc, ok := toScalar(v); ok {
		return parseTsScalar(sc)
	}
	if f, ok := v.(float64); ok {
		return tsFromFloat(f)
	}
	return 0, fmt.Errorf("%s is not a timestamp", describeValue(v))
}

func parseTsScalar(v scalar) (int64, error) {
	var f float64
	switch v.kind {
	case scNumber:
		var err error
		if f, err = parseNumber(v.s); err != nil {
			return 0, fmt.Errorf("%s is not a timestamp", v.s)
		}
	case scString:
		s := strings.TrimSpace(v.s)
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			f = n
			break
		}
		for _, layout := range [...]string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if tm, err := time.Parse(layout, s); err == nil {
				return tm.UnixMilli(), nil
			}
		}
		return 0, fmt.Errorf("%s is not a timestamp", describeScalar(v))
	default:
		return 0, fmt.Errorf("%s is not a timestamp", describeScalar(v))
	}
	return tsFromFloat(f)
}

func tsFromFloat(f float64) (int64, error) {
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
