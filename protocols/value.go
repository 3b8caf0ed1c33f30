// Package protocols holds the data model shared by every protocol and the
// contract a protocol implements to be driven by the generic connector and
// device actors. It knows nothing about actors.
package protocols

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the type of a Value.
type Kind uint8

const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindUint
	KindFloat
	KindString
	// KindJSON is a JSON document (in practice an object or a list) that the
	// platform receives as JSON, not as a string. S holds its compact text,
	// always valid JSON and valid UTF-8: the constructors and the journal
	// decoder check it, so the platform encoder can copy it as it is.
	KindJSON
)

// Value is a typed telemetry or attribute value. It is a small tagged union
// rather than `any` so converters, the journal codec and the platform encoder
// never need reflection.
type Value struct {
	Kind Kind
	I    int64 // KindBool (0/1), KindInt
	U    uint64
	F    float64
	S    string // KindString; the JSON text for KindJSON
}

func Bool(b bool) Value {
	if b {
		return Value{Kind: KindBool, I: 1}
	}
	return Value{Kind: KindBool}
}
func Int(i int64) Value     { return Value{Kind: KindInt, I: i} }
func Uint(u uint64) Value   { return Value{Kind: KindUint, U: u} }
func Float(f float64) Value { return Value{Kind: KindFloat, F: f} }
func String(s string) Value { return Value{Kind: KindString, S: s} }

// JSON returns a KindJSON value holding raw in compact form. raw must be one
// valid JSON document; invalid UTF-8 inside its strings is replaced, as
// AppendJSONString does, so the platform never receives an unparsable
// message.
func JSON(raw []byte) (Value, error) {
	var b bytes.Buffer
	b.Grow(len(raw))
	if err := json.Compact(&b, raw); err != nil {
		return Value{}, fmt.Errorf("invalid JSON value: %w", err)
	}
	s := b.String()
	if !utf8.ValidString(s) {
		// Outside strings the grammar admits only ASCII, so every invalid
		// byte is inside a string, where U+FFFD is valid.
		s = strings.ToValidUTF8(s, "\ufffd")
	}
	return Value{Kind: KindJSON, S: s}, nil
}

// validJSON is the invariant of a KindJSON value's text.
func validJSON(s string) bool {
	return utf8.ValidString(s) && json.Valid([]byte(s))
}

// FromGo converts a Go boolean, number or string, as protocol libraries
// and expression engines return them; ok is false for any other type.
// Unsigned numbers keep their kind. A float32 becomes the float64 of its
// shortest decimal form (0.1, not 0.10000000149011612), as a device that
// reports a REAL means it.
func FromGo(x any) (v Value, ok bool) {
	switch t := x.(type) {
	case bool:
		return Bool(t), true
	case int:
		return Int(int64(t)), true
	case int8:
		return Int(int64(t)), true
	case int16:
		return Int(int64(t)), true
	case int32:
		return Int(int64(t)), true
	case int64:
		return Int(t), true
	case uint:
		return Uint(uint64(t)), true
	case uint8:
		return Uint(uint64(t)), true
	case uint16:
		return Uint(uint64(t)), true
	case uint32:
		return Uint(uint64(t)), true
	case uint64:
		return Uint(t), true
	case float32:
		f := float64(t)
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			f, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
		}
		return Float(f), true
	case float64:
		return Float(t), true
	case string:
		return String(t), true
	}
	return Value{}, false
}

// Float64 returns the value as a number when it is numeric.
func (v Value) Float64() (float64, bool) {
	switch v.Kind {
	case KindBool, KindInt:
		return float64(v.I), true
	case KindUint:
		return float64(v.U), true
	case KindFloat:
		return v.F, true
	}
	return 0, false
}

// Equal compares values; floats are equal within 0.001 as upstream's ON_CHANGE does.
func (v Value) Equal(o Value) bool {
	if v.Kind == KindFloat || o.Kind == KindFloat {
		a, ok1 := v.Float64()
		b, ok2 := o.Float64()
		if ok1 && ok2 {
			return math.Abs(a-b) < 0.001 || (math.IsNaN(a) && math.IsNaN(b))
		}
		return false
	}
	return v == o
}

// AppendJSON appends the JSON form. NaN and infinities are not valid JSON, so
// they are sent as strings rather than breaking the whole message.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.Kind {
	case KindBool:
		if v.I != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case KindInt:
		return strconv.AppendInt(b, v.I, 10)
	case KindUint:
		return strconv.AppendUint(b, v.U, 10)
	case KindFloat:
		if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
			return strconv.AppendQuote(b, strconv.FormatFloat(v.F, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, v.F, 'g', -1, 64)
	case KindString:
		return AppendJSONString(b, v.S)
	case KindJSON:
		if v.S != "" {
			return append(b, v.S...)
		}
	}
	return append(b, "null"...)
}

// String formats the value for logs and displays.
func (v Value) String() string {
	if v.Kind == KindString || v.Kind == KindJSON && v.S != "" {
		return v.S
	}
	return string(v.AppendJSON(nil))
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal; invalid UTF-8 is
// replaced so the platform never receives an unparsable message.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20:
				b = append(b, c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// Datapoint is one key and its value.
type Datapoint struct {
	Key   string
	Value Value
}
