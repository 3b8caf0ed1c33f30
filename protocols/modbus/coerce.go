package modbus

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/industryos/gateway/protocols"
)

func valueErrorf(format string, a ...any) error {
	return &tagged{ErrValue, fmt.Errorf(format, a...)}
}

// unwrapValue returns the value of rpc params: the params themselves, or
// the "value" member of an object (the shape widgets send).
func unwrapValue(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, valueErrorf("no value to write (params are empty)")
	}
	if raw[0] != '{' {
		return raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, valueErrorf("params are not valid JSON: %v", err)
	}
	v, ok := obj["value"]
	if !ok || isNull(v) {
		return nil, valueErrorf("params object has no \"value\"")
	}
	return bytes.TrimSpace(v), nil
}

// valueFromJSON turns one JSON value into a Value. Integral number literals
// stay exact (64-bit registers need every digit); a list, which only bits
// keys take, is kept as its JSON text for the bits encoder.
func valueFromJSON(raw json.RawMessage) (protocols.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return protocols.Value{}, valueErrorf("%s is not valid JSON", compact(raw))
	}
	switch t := x.(type) {
	case nil:
		return protocols.Value{}, valueErrorf("no value to write (got null)")
	case bool:
		return protocols.Bool(t), nil
	case string:
		return protocols.String(t), nil
	case json.Number:
		return numberValue(t.String()), nil
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			switch b := e.(type) {
			case bool:
				parts[i] = strconv.FormatBool(b)
			case json.Number:
				parts[i] = b.String()
			case string:
				parts[i] = b
			default:
				return protocols.Value{}, valueErrorf("list item %d is not a bit: %s", i, compact(raw))
			}
		}
		return protocols.String("[" + strings.Join(parts, ",") + "]"), nil
	}
	return protocols.Value{}, valueErrorf("%s is not a value (want a number, string, boolean or list of bits)", compact(raw))
}

func numberValue(s string) protocols.Value {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return protocols.Int(i)
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return protocols.Uint(u)
	}
	f, _ := strconv.ParseFloat(s, 64) // a json.Number always parses, at worst to ±Inf
	return protocols.Float(f)
}

// coerce checks that v can be written as c's type and converts it to the
// kind the encoder takes, so that a rejected value is named together with
// the type ("value 70000 does not fit 16int").
func coerce(c *Codec, v protocols.Value) (protocols.Value, error) {
	switch c.Type {
	case TypeString, TypeBytes:
		return coerceText(c, v)
	case TypeBits:
		if isBitFunction(c.FunctionCode) && c.RequestCount() == 1 {
			return coerceBit(v)
		}
		return v, nil
	case TypeFloat16, TypeFloat32, TypeFloat64:
		return coerceFloat(c.Type, v)
	}
	if c.Type.numeric() {
		return coerceInt(c.Type, v)
	}
	return protocols.Value{}, valueErrorf("type %s cannot be written", c.Type)
}

// show is how a value appears in messages: text as typed, numbers as JSON.
func show(v protocols.Value) string {
	if v.Kind == protocols.KindString {
		return strconv.Quote(v.S)
	}
	return v.String()
}

func coerceText(c *Codec, v protocols.Value) (protocols.Value, error) {
	n := c.RequestCount()
	size := 2 * n
	if isBitFunction(c.FunctionCode) {
		size = (n + 7) / 8
	}
	s := v.String()
	b := []byte(s)
	if c.Type == TypeBytes {
		var err error
		if b, err = hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x")); err != nil {
			return protocols.Value{}, valueErrorf("value %s is not a hex string (bytes)", show(v))
		}
	}
	if len(b) > size {
		return protocols.Value{}, valueErrorf("value %s does not fit %s of %d bytes (%d bytes given)", show(v), c.Type, size, len(b))
	}
	return protocols.String(s), nil
}

func coerceBit(v protocols.Value) (protocols.Value, error) {
	switch v.Kind {
	case protocols.KindBool:
		return v, nil
	case protocols.KindInt, protocols.KindUint, protocols.KindFloat:
		if f, _ := v.Float64(); f == 0 || f == 1 {
			return protocols.Bool(f == 1), nil
		}
	case protocols.KindString:
		switch strings.ToLower(strings.TrimSpace(v.S)) {
		case "true", "1", "on":
			return protocols.Bool(true), nil
		case "false", "0", "off":
			return protocols.Bool(false), nil
		}
	}
	return protocols.Value{}, valueErrorf("value %s is not a bit (want true, false, 1 or 0)", show(v))
}

func coerceFloat(t DataType, v protocols.Value) (protocols.Value, error) {
	f, ok := v.Float64()
	if v.Kind == protocols.KindString {
		var err error
		f, err = strconv.ParseFloat(strings.TrimSpace(v.S), 64)
		ok = err == nil || errors.Is(err, strconv.ErrRange)
	}
	if !ok {
		return protocols.Value{}, valueErrorf("value %s is not a number (%s)", show(v), t)
	}
	limit := math.MaxFloat64
	switch t {
	case TypeFloat16:
		limit = 65504
	case TypeFloat32:
		limit = math.MaxFloat32
	}
	if !math.IsNaN(f) && math.Abs(f) > limit {
		return protocols.Value{}, valueErrorf("value %s does not fit %s (max ±%g)", show(v), t, limit)
	}
	return protocols.Float(f), nil
}

// coerceInt truncates fractions toward zero, as upstream's int(float(x)) does.
func coerceInt(t DataType, v protocols.Value) (protocols.Value, error) {
	w := t.Width()
	signed := t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
	var lo int64
	hi := mask(w)
	if signed {
		lo, hi = -(int64(1) << (w - 1)), uint64(1)<<(w-1)-1
	}
	rangeErr := func() error {
		return valueErrorf("value %s does not fit %s (range %d..%d)", show(v), t, lo, hi)
	}
	x := v
	if x.Kind == protocols.KindString {
		s := strings.TrimSpace(x.S)
		if i, err := strconv.ParseInt(s, 0, 64); err == nil {
			x = protocols.Int(i)
		} else if u, err := strconv.ParseUint(s, 0, 64); err == nil {
			x = protocols.Uint(u)
		} else if f, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			x = protocols.Float(f)
		} else {
			return protocols.Value{}, valueErrorf("value %s is not a number (%s)", show(v), t)
		}
	}
	switch x.Kind {
	case protocols.KindBool, protocols.KindInt:
		if x.I < lo || x.I >= 0 && uint64(x.I) > hi {
			return protocols.Value{}, rangeErr()
		}
		if signed {
			return protocols.Int(x.I), nil
		}
		return protocols.Uint(uint64(x.I)), nil
	case protocols.KindUint:
		if x.U > hi {
			return protocols.Value{}, rangeErr()
		}
		if signed {
			return protocols.Int(int64(x.U)), nil
		}
		return protocols.Uint(x.U), nil
	case protocols.KindFloat:
		if math.IsNaN(x.F) || math.IsInf(x.F, 0) {
			return protocols.Value{}, valueErrorf("value %s is not a finite number (%s)", show(v), t)
		}
		f := math.Trunc(x.F)
		// float64(hi)+1 is the exclusive bound 2^w (or 2^(w-1)) exactly,
		// even where float64(hi) itself had to round up to it.
		if f < float64(lo) || f >= float64(hi)+1 {
			return protocols.Value{}, rangeErr()
		}
		if signed {
			return protocols.Int(int64(f)), nil
		}
		return protocols.Uint(uint64(f)), nil
	}
	return protocols.Value{}, valueErrorf("value %s is not a number (%s)", show(v), t)
}
