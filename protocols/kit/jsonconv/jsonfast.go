package jsonconv

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
)

// fastJSON converts the common message shape — one flat JSON object whose
// values the mapping reads by top-level key — without building a map or
// boxing values: it scans the object once, keeps the scalars the mapping
// refers to and skips (while validating) the rest.
//
// It is an optimisation only. It gives up (errGeneralPath) on anything it does
// not handle exactly like the general path — a top-level list, a referenced
// value that is an object or a list, invalid JSON, a device name, profile
// or timestamp error — and the general path then does the message over
// (a referenced object or list becomes a JSON value there).
// The one kind of error it reports itself is a key's (a missing key, a
// value of the wrong type): devices that send some keys only now and then
// are common, and those messages should not be parsed twice. It builds
// those errors as JSONConverter.values does.
type fastJSON struct {
	slots         map[string]int // top-level key -> index into the scanned values
	keys          []string       // slots inverted
	name          fastSource
	profile       fastSource
	attrs, ts     []fastKey
	tsField       *fastExpr // nil: none, or useReceivedTs
	tsSlot        int       // "ts", or -1 with useReceivedTs
	timestampSlot int       // "timestamp", or -1 with useReceivedTs
}

type fastSource struct {
	src  *Source
	expr *fastExpr // for SourceMessage
}

type fastKey struct {
	jk   *jsonKey // for its type and, in errors, its names
	name fastSource
	val  fastExpr
}

// fastOp is a literal (slot < 0) or the value of a top-level key.
type fastOp struct {
	lit  string
	slot int
}

type fastExpr struct{ ops []fastOp }

// plainKey reports whether Expr's lookup of ${key} can only ever read the
// top-level member named key: its first try is msg[key], and parsePath
// turns a key without '.', '[' or a leading '$' into that same single step.
func plainKey(key string) bool {
	return !strings.ContainsAny(key, ".[") && !strings.HasPrefix(key, "$")
}

// newFastJSON returns nil when the mapping needs something only the general
// path does: "*" (every key), or an expression that looks below the top
// level.
func newFastJSON(c *JSONConverter) *fastJSON {
	if c.allAttrs || c.allTs {
		return nil
	}
	f := &fastJSON{slots: map[string]int{}, tsSlot: -1, timestampSlot: -1}
	slot := func(key string) int {
		if i, ok := f.slots[key]; ok {
			return i
		}
		i := len(f.slots)
		f.slots[key] = i
		f.keys = append(f.keys, key)
		return i
	}
	expr := func(e *Expr) (*fastExpr, bool) {
		fe := &fastExpr{}
		for _, o := range e.Parts() {
			if !o.Ref {
				fe.ops = append(fe.ops, fastOp{lit: o.Lit, slot: -1})
				continue
			}
			if !plainKey(o.Key) {
				return nil, false
			}
			fe.ops = append(fe.ops, fastOp{slot: slot(o.Key)})
		}
		return fe, true
	}
	src := func(s *Source) (fastSource, bool) {
		fs := fastSource{src: s}
		if s.kind != SourceTopic && s.kind != SourceConstant {
			var ok bool
			if fs.expr, ok = expr(s.expr); !ok {
				return fs, false
			}
		}
		return fs, true
	}
	var ok bool
	if f.name, ok = src(&c.name); !ok {
		return nil
	}
	if f.profile, ok = src(&c.profile); !ok {
		return nil
	}
	keys := func(ks []jsonKey) ([]fastKey, bool) {
		out := make([]fastKey, 0, len(ks))
		for i := range ks {
			k := &ks[i]
			name, ok := src(&k.key)
			if !ok {
				return nil, false
			}
			v, ok := expr(k.val)
			if !ok {
				return nil, false
			}
			out = append(out, fastKey{jk: k, name: name, val: *v})
		}
		return out, true
	}
	if f.attrs, ok = keys(c.attrs); !ok {
		return nil
	}
	if f.ts, ok = keys(c.ts); !ok {
		return nil
	}
	if !c.useReceivedTs {
		if c.tsField != nil {
			if f.tsField, ok = expr(c.tsField); !ok {
				return nil
			}
		}
		f.tsSlot, f.timestampSlot = slot("ts"), slot("timestamp")
	}
	return f
}

// maxStackSlots keeps the scanned values of typical mappings on the stack.
const maxStackSlots = 32

// errGeneralPath is fastJSON.convert giving a message up.
var errGeneralPath = errors.New("jsonconv: needs the general JSON path")

// convert is convertTo for a payload already copied to s. It returns
// errGeneralPath when the general path has to do the message.
func (f *fastJSON) convert(c *JSONConverter, dst []Converted, topic, s string, now time.Time) ([]Converted, error) {
	p := parser{s: s}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, errGeneralPath
	}
	var buf [maxStackSlots]scalar
	var vals []scalar
	if len(f.slots) <= maxStackSlots {
		vals = buf[:len(f.slots)]
	} else {
		vals = make([]scalar, len(f.slots))
	}
	if !p.scanObject(f, vals) {
		return nil, errGeneralPath
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, errGeneralPath
	}

	var out Converted
	var err error
	var ok bool
	if out.Device, err = f.name.resolve(topic, vals); err != nil || out.Device == "" {
		return nil, errGeneralPath
	}
	if out.Profile, err = f.profile.resolve(topic, vals); err != nil {
		return nil, errGeneralPath
	}
	out.Ts = now.UnixMilli()
	if !c.useReceivedTs {
		if out.Ts, ok = f.msgTs(vals, out.Ts); !ok {
			return nil, errGeneralPath
		}
	}
	// Pooled arrays, one per list: the journal recycles them once it has
	// encoded them, so a busy MQTT connection does not allocate its values.
	var errs []error
	if len(f.attrs) > 0 {
		out.Attributes = f.values(c, topic, vals, f.attrs, protocols.MakeDatapoints(len(f.attrs))[:0], &errs)
	}
	if len(f.ts) > 0 {
		out.Telemetry = f.values(c, topic, vals, f.ts, protocols.MakeDatapoints(len(f.ts))[:0], &errs)
	}
	out.Pooled = true
	return append(dst, out), errors.Join(errs...)
}

// msgTs mirrors JSONConverter.msgTs for a message that has no timestamp
// error (an error sends the message to the general path).
func (f *fastJSON) msgTs(vals []scalar, fallback int64) (int64, bool) {
	if f.tsField != nil {
		if v, ok := f.tsField.eval(vals); ok {
			ts, err := parseTsScalar(v)
			return ts, err == nil
		}
	}
	for _, i := range [...]int{f.tsSlot, f.timestampSlot} {
		if v := vals[i]; v.kind != scUnset {
			ts, err := parseTsScalar(v)
			return ts, err == nil
		}
	}
	return fallback, true
}

// values is JSONConverter.values, errors included.
func (f *fastJSON) values(c *JSONConverter, topic string, vals []scalar, keys []fastKey, dps []protocols.Datapoint, errs *[]error) []protocols.Datapoint {
	for i := range keys {
		k := &keys[i]
		name, err := k.name.resolve(topic, vals)
		if err != nil {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(k.jk.display), err))
			continue
		}
		raw, ok := k.val.eval(vals)
		if !ok {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(name), &MissingError{Expr: k.jk.val.String()}))
			continue
		}
		v, err := convertScalar(k.jk.typ, raw)
		if err != nil {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(name), err))
			continue
		}
		dps = append(dps, protocols.Datapoint{Key: name, Value: v})
	}
	return dps
}

// resolve is Source.Resolve; topic and constant sources never read the
// message, so they are the general code itself.
func (s *fastSource) resolve(topic string, vals []scalar) (string, error) {
	if s.expr == nil {
		return s.src.Resolve(topic, nil)
	}
	v, ok := s.expr.eval(vals)
	switch {
	case !ok:
		return "", &MissingError{Expr: s.src.expr.String()}
	case v.kind == scString, v.kind == scNumber:
		// A number's text is what appendText would render.
		return v.s, nil
	}
	return string(appendScalar(nil, v)), nil
}

// eval is Expr.Eval: a lone ${} keeps the value's JSON type, a template is
// text. ok is false when a referenced key is absent.
func (e *fastExpr) eval(vals []scalar) (scalar, bool) {
	switch len(e.ops) {
	case 0:
		return scalar{kind: scString}, true
	case 1:
		o := &e.ops[0]
		if o.slot < 0 {
			return scalar{kind: scString, s: o.lit}, true
		}
		v := vals[o.slot]
		return v, v.kind != scUnset
	}
	var b []byte
	for i := range e.ops {
		o := &e.ops[i]
		if o.slot < 0 {
			b = append(b, o.lit...)
			continue
		}
		v := vals[o.slot]
		if v.kind == scUnset {
			return scalar{}, false
		}
		b = appendScalar(b, v)
	}
	return scalar{kind: scString, s: string(b)}, true
}

// scanObject reads the object at p.i, storing the members f refers to
// (the last of duplicate keys wins, as in a map). It returns false on
// invalid JSON and on a wanted member that is an object or a list.
func (p *parser) scanObject(f *fastJSON, vals []scalar) bool {
	// Devices tend to send keys in the order the mapping lists them, so the
	// slot after the last one found is tried before the map.
	next := 0
	p.depth++
	p.i++
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return false
		}
		k, err := p.str()
		if err != nil {
			return false
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return false
		}
		p.i++
		p.ws()
		i := -1
		if next < len(f.keys) && f.keys[next] == k {
			i = next
		} else if j, ok := f.slots[k]; ok {
			i = j
		}
		if i >= 0 {
			var ok bool
			if vals[i], ok = p.scalarValue(); !ok {
				return false
			}
			next = i + 1
		} else if !p.skip() {
			return false
		}
		p.ws()
		if p.i >= len(p.s) {
			return false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// scalarValue reads a value the way value does, as a scalar; objects and
// lists are refused.
func (p *parser) scalarValue() (scalar, bool) {
	if p.i >= len(p.s) {
		return scalar{}, false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		s, err := p.str()
		return scalar{kind: scString, s: s}, err == nil
	case c == '-' || (c >= '0' && c <= '9'):
		s, err := p.numberText()
		return scalar{kind: scNumber, s: s}, err == nil
	case c == 't':
		_, err := p.lit("true", true)
		return scalar{kind: scBool, b: true}, err == nil
	case c == 'f':
		_, err := p.lit("false", false)
		return scalar{kind: scBool}, err == nil
	case c == 'n':
		_, err := p.lit("null", nil)
		return scalar{kind: scNull}, err == nil
	}
	return scalar{}, false
}

// skip validates a value exactly as value does (same grammar, same depth
// limit) without building it.
func (p *parser) skip() bool {
	if p.i >= len(p.s) {
		return false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.skipObject()
	case c == '[':
		return p.skipArray()
	case c == '"':
		_, err := p.str()
		return err == nil
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.numberText()
		return err == nil
	case c == 't':
		_, err := p.lit("true", true)
		return err == nil
	case c == 'f':
		_, err := p.lit("false", false)
		return err == nil
	case c == 'n':
		_, err := p.lit("null", nil)
		return err == nil
	}
	return false
}

// errSkip stops a walk whose element did not validate; skip reports only
// whether the value is valid, the general path says why not.
var errSkip = errors.New("invalid JSON")

func (p *parser) skipElement() error {
	if !p.skip() {
		return errSkip
	}
	return nil
}

func (p *parser) skipObject() bool {
	return p.members(func(string) error { return p.skipElement() }) == nil
}

func (p *parser) skipArray() bool {
	return p.elements(']', "after array element", p.skipElement) == nil
}
