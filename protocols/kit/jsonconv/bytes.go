package jsonconv

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyre"
)

// slice is a Python-style [lo:hi] over the payload; negative bounds count from the end.
type slice struct {
	lo, hi       int
	hasLo, hasHi bool
	single       bool // [i]
	src          string
}

func parseSlice(s string) (slice, error) {
	t := strings.TrimSpace(s)
	// Upstream configs sometimes wrap the slice in ${}.
	if strings.HasPrefix(t, "${") && strings.HasSuffix(t, "}") {
		t = strings.TrimSpace(t[2 : len(t)-1])
	}
	if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' {
		return slice{}, errors.New("is not a slice expression like [0:4]")
	}
	sl := slice{src: s}
	in := t[1 : len(t)-1]
	lo, hi, found := strings.Cut(in, ":")
	num := func(p string) (int, bool, error) {
		p = strings.TrimSpace(p)
		if p == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(p)
		if err != nil || n > 1<<30 || n < -(1<<30) {
			return 0, false, fmt.Errorf("has a bad bound %q", p)
		}
		return n, true, nil
	}
	var err error
	if sl.lo, sl.hasLo, err = num(lo); err != nil {
		return slice{}, err
	}
	if !found {
		if !sl.hasLo {
			return slice{}, errors.New("is not a slice expression like [0:4]")
		}
		sl.single = true
		return sl, nil
	}
	if sl.hi, sl.hasHi, err = num(hi); err != nil {
		return slice{}, err
	}
	return sl, nil
}

// apply never panics: out-of-range bounds clamp as in Python.
func (s slice) apply(b []byte) ([]byte, bool) {
	n := len(b)
	norm := func(i int) int {
		if i < 0 {
			i += n
		}
		return max(0, min(i, n))
	}
	if s.single {
		i := s.lo
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, false
		}
		return b[i : i+1], true
	}
	lo, hi := 0, n
	if s.hasLo {
		lo = norm(s.lo)
	}
	if s.hasHi {
		hi = norm(s.hi)
	}
	if hi < lo {
		hi = lo
	}
	return b[lo:hi], true
}

type bytesKey struct {
	typ string
	key string
	re  *pyre.Regexp // keySource "topic": the key is taken from the topic
	sl  slice
}

// BytesConverter is the upstream "bytes" converter.
type BytesConverter struct {
	filter        string
	hex           bool
	name, profile bytesSource
	attrs, ts     []bytesKey
}

type bytesSource struct {
	kind  string
	tmpl  []templatePart
	re    *pyre.Regexp
	konst string
}

// templatePart is literal text or, when isSlice, a slice of the payload.
type templatePart struct {
	lit     string
	sl      slice
	isSlice bool
}

// parseTemplate reads a bytes-converter name or profile expression the way
// upstream does: every [i] or [lo:hi] in it is replaced by that part of the
// payload and the rest is literal text, so "[0:4]" is a slice, "dev-[0:2]"
// a prefixed one and "default" a constant.
func parseTemplate(expr string) []templatePart {
	var parts []templatePart
	rest := expr
	for {
		open := strings.IndexByte(rest, '[')
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], ']')
		if end < 0 {
			break
		}
		sl, err := parseSlice(rest[open : open+end+1])
		if err != nil {
			parts = append(parts, templatePart{lit: rest[:open+1]})
			rest = rest[open+1:]
			continue
		}
		if open > 0 {
			parts = append(parts, templatePart{lit: rest[:open]})
		}
		parts = append(parts, templatePart{sl: sl, isSlice: true})
		rest = rest[open+end+1:]
	}
	if rest != "" {
		parts = append(parts, templatePart{lit: rest})
	}
	return parts
}

// checkTemplate finds a bracket group meant as a slice ([lo:hi]) with a bad
// bound: parseTemplate would keep it as text, which is never what was meant.
func checkTemplate(expr string) error {
	rest := expr
	for {
		open := strings.IndexByte(rest, '[')
		if open < 0 {
			return nil
		}
		end := strings.IndexByte(rest[open:], ']')
		if end < 0 {
			return nil
		}
		group := rest[open : open+end+1]
		if _, err := parseSlice(group); err != nil && strings.Contains(group, ":") {
			return fmt.Errorf("%q %v", expr, err)
		}
		rest = rest[open+end+1:]
	}
}

func newBytesSource(kind, expr string) (bytesSource, error) {
	s := bytesSource{kind: kind, konst: expr}
	var err error
	switch kind {
	case SourceTopic:
		s.re, err = pyre.Compile(expr, pyre.Search)
	case SourceMessage:
		if err = checkTemplate(expr); err == nil {
			s.tmpl = parseTemplate(expr)
		}
	}
	return s, err
}

// NewBytesConverter compiles a mapping's bytes converter.
func NewBytesConverter(m *Mapping) (*BytesConverter, error) {
	cc := &m.Converter
	c := &BytesConverter{filter: m.TopicFilter, hex: cc.HexMode}
	var err error
	if c.name, err = newBytesSource(cc.DeviceInfo.NameSource, cc.DeviceInfo.Name); err != nil {
		return nil, fmt.Errorf("mapping %q: deviceNameExpression: %w", m.TopicFilter, err)
	}
	profile, psrc := cc.DeviceInfo.Profile, cc.DeviceInfo.ProfileSource
	if profile == "" {
		profile, psrc = "default", SourceConstant
	}
	if c.profile, err = newBytesSource(psrc, profile); err != nil {
		return nil, fmt.Errorf("mapping %q: deviceProfileExpression: %w", m.TopicFilter, err)
	}
	build := func(ks []KeyConfig) ([]bytesKey, error) {
		out := make([]bytesKey, 0, len(ks))
		for _, k := range ks {
			sl, err := parseSlice(k.Value)
			if err != nil {
				return nil, fmt.Errorf("key %q: value %q %v", k.Key, k.Value, err)
			}
			bk := bytesKey{typ: strings.ToLower(k.Type), key: k.Key, sl: sl}
			if k.KeySource == SourceTopic {
				if bk.re, err = pyre.Compile(k.Key, pyre.Search); err != nil {
					return nil, fmt.Errorf("key: %w", err)
				}
			}
			out = append(out, bk)
		}
		return out, nil
	}
	if c.attrs, err = build(cc.Attributes); err != nil {
		return nil, fmt.Errorf("mapping %q: attributes: %w", m.TopicFilter, err)
	}
	if c.ts, err = build(cc.Timeseries); err != nil {
		return nil, fmt.Errorf("mapping %q: timeseries: %w", m.TopicFilter, err)
	}
	if cc.AllAttributes {
		c.attrs = []bytesKey{{typ: "string", key: "data", sl: slice{}}}
	}
	if cc.AllTimeseries {
		c.ts = []bytesKey{{typ: "string", key: "data", sl: slice{}}}
	}
	return c, nil
}

func (c *BytesConverter) text(b []byte) string {
	if c.hex {
		return hex.EncodeToString(b)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func (c *BytesConverter) slice(sl slice, payload []byte) (string, error) {
	b, ok := sl.apply(payload)
	if !ok {
		return "", fmt.Errorf("%s is out of range for %d bytes", sl.src, len(payload))
	}
	return c.text(b), nil
}

func (c *BytesConverter) resolve(s *bytesSource, topic string, payload []byte) (string, error) {
	switch s.kind {
	case SourceTopic:
		v, ok, err := topicMatch(s.re, topic)
		if err != nil {
			return "", fmt.Errorf("topic %q: %w", topic, err)
		}
		if !ok {
			return "", fmt.Errorf("topic %q does not match %q", topic, s.re.String())
		}
		return v, nil
	case SourceMessage:
		if len(s.tmpl) == 1 && s.tmpl[0].isSlice {
			return c.slice(s.tmpl[0].sl, payload)
		}
		var b strings.Builder
		for _, p := range s.tmpl {
			if !p.isSlice {
				b.WriteString(p.lit)
				continue
			}
			v, err := c.slice(p.sl, payload)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		}
		return b.String(), nil
	}
	return s.konst, nil
}

// Convert implements Converter.
func (c *BytesConverter) Convert(topic string, payload []byte, now time.Time) ([]Converted, error) {
	out := Converted{Ts: now.UnixMilli()}
	var err error
	if out.Device, err = c.resolve(&c.name, topic, payload); err != nil {
		return nil, malformed(c.filter, "device name", err)
	}
	if out.Device == "" {
		return nil, malformed(c.filter, "device name", errors.New("is empty"))
	}
	if out.Profile, err = c.resolve(&c.profile, topic, payload); err != nil {
		return nil, malformed(c.filter, "device profile", err)
	}
	var errs []error
	out.Attributes = c.values(topic, payload, c.attrs, &errs)
	out.Telemetry = c.values(topic, payload, c.ts, &errs)
	return []Converted{out}, errors.Join(errs...)
}

func (c *BytesConverter) values(topic string, payload []byte, keys []bytesKey, errs *[]error) []protocols.Datapoint {
	if len(keys) == 0 {
		return nil
	}
	dps := make([]protocols.Datapoint, 0, len(keys))
	for _, k := range keys {
		key := k.key
		if k.re != nil {
			v, found, err := topicMatch(k.re, topic)
			if err == nil && !found {
				err = fmt.Errorf("topic %q does not match", topic)
			}
			if err != nil {
				*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(k.key), err))
				continue
			}
			key = v
		}
		b, ok := k.sl.apply(payload)
		if !ok {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(k.key), fmt.Errorf("%s is out of range for %d bytes", k.sl.src, len(payload))))
			continue
		}
		typ := k.typ
		if typ == "raw" || typ == "" {
			typ = "string"
		}
		v, err := convertValue(typ, c.text(b))
		if err != nil {
			*errs = append(*errs, malformed(c.filter, "key "+strconv.Quote(k.key), err))
			continue
		}
		dps = append(dps, protocols.Datapoint{Key: key, Value: v})
	}
	return dps
}

var _ Converter = (*BytesConverter)(nil)
