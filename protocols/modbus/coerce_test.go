package modbus

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/industryos/gateway/protocols"
)

func TestValueFromJSON(t *testing.T) {
	cases := []struct {
		in   string
		want protocols.Value
		err  string
	}{
		{in: `77`, want: protocols.Int(77)},
		{in: `-3`, want: protocols.Int(-3)},
		{in: `18446744073709551615`, want: protocols.Uint(18446744073709551615)},
		{in: `12.34`, want: protocols.Float(12.34)},
		{in: `1e3`, want: protocols.Float(1000)},
		{in: `true`, want: protocols.Bool(true)},
		{in: `"77"`, want: protocols.String("77")},
		{in: `[true, 0, 1]`, want: protocols.String("[true,0,1]")},
		{in: `null`, err: "no value to write (got null)"},
		{in: `{"a":1}`, err: `{"a":1} is not a value (want a number, string, boolean or list of bits)`},
		{in: `[{}]`, err: "list item 0 is not a bit: [{}]"},
		{in: `nope`, err: "nope is not valid JSON"},
	}
	for _, c := range cases {
		got, err := valueFromJSON(json.RawMessage(c.in))
		if c.err != "" {
			if err == nil || err.Error() != c.err || !errors.Is(err, ErrValue) {
				t.Errorf("%s: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !sameValue(got, c.want) {
			t.Errorf("%s = %#v, %v; want %#v", c.in, got, err, c.want)
		}
	}
}

func TestUnwrapValue(t *testing.T) {
	for in, want := range map[string]string{`56`: `56`, ` {"value": "x"} `: `"x"`, `"s"`: `"s"`} {
		got, err := unwrapValue(json.RawMessage(in))
		if err != nil || string(got) != want {
			t.Errorf("%s = %s, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]string{``: "no value to write (params are empty)", `null`: "no value to write (params are empty)",
		`{"v":1}`: `params object has no "value"`, `{"value":null}`: `params object has no "value"`} {
		if _, err := unwrapValue(json.RawMessage(in)); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestCoerce(t *testing.T) {
	cases := []struct {
		t     DataType
		fc    int
		count int
		in    protocols.Value
		want  protocols.Value
		err   string
	}{
		{t: TypeInt16, fc: 6, in: protocols.Int(-32768), want: protocols.Int(-32768)},
		{t: TypeInt16, fc: 6, in: protocols.String(" 77 "), want: protocols.Int(77)},
		{t: TypeInt16, fc: 6, in: protocols.String("0x10"), want: protocols.Int(16)},
		{t: TypeInt16, fc: 6, in: protocols.Float(-1.9), want: protocols.Int(-1)},
		{t: TypeInt16, fc: 6, in: protocols.String("21.42"), want: protocols.Int(21)},
		{t: TypeInt16, fc: 6, in: protocols.Bool(true), want: protocols.Int(1)},
		{t: TypeInt16, fc: 6, in: protocols.Int(70000), err: "value 70000 does not fit 16int (range -32768..32767)"},
		{t: TypeInt16, fc: 6, in: protocols.String("70000"), err: `value "70000" does not fit 16int (range -32768..32767)`},
		{t: TypeInt16, fc: 6, in: protocols.Float(32767.9), want: protocols.Int(32767)},
		{t: TypeInt16, fc: 6, in: protocols.Float(32768), err: "value 32768 does not fit 16int (range -32768..32767)"},
		{t: TypeInt16, fc: 6, in: protocols.String("abc"), err: `value "abc" is not a number (16int)`},
		{t: TypeUint16, fc: 6, in: protocols.Int(65535), want: protocols.Uint(65535)},
		{t: TypeUint16, fc: 6, in: protocols.Int(-1), err: "value -1 does not fit 16uint (range 0..65535)"},
		{t: TypeInt32, fc: 16, in: protocols.Int(0x12345678), want: protocols.Int(0x12345678)},
		{t: TypeInt32, fc: 16, in: protocols.Int(1 << 31), err: "value 2147483648 does not fit 32int (range -2147483648..2147483647)"},
		{t: TypeInt64, fc: 16, in: protocols.Uint(1 << 63), err: "value 9223372036854775808 does not fit 64int (range -9223372036854775808..9223372036854775807)"},
		{t: TypeInt64, fc: 16, in: protocols.Float(9.3e18), err: "value 9.3e+18 does not fit 64int (range -9223372036854775808..9223372036854775807)"},
		{t: TypeUint64, fc: 16, in: protocols.String("18446744073709551615"), want: protocols.Uint(18446744073709551615)},
		{t: TypeUint64, fc: 16, in: protocols.Float(1.8446744073709552e19), err: "value 1.8446744073709552e+19 does not fit 64uint (range 0..18446744073709551615)"},
		{t: TypeInt8, fc: 6, in: protocols.Int(-129), err: "value -129 does not fit 8int (range -128..127)"},
		{t: TypeFloat32, fc: 16, in: protocols.String("12.34"), want: protocols.Float(12.34)},
		{t: TypeFloat32, fc: 16, in: protocols.Int(3), want: protocols.Float(3)},
		{t: TypeFloat32, fc: 16, in: protocols.Float(1e39), err: "value 1e+39 does not fit 32float (max ±3.4028234663852886e+38)"},
		{t: TypeFloat16, fc: 6, in: protocols.Int(70000), err: "value 70000 does not fit 16float (max ±65504)"},
		{t: TypeFloat64, fc: 16, in: protocols.String("x"), err: `value "x" is not a number (64float)`},
		{t: TypeBits, fc: 5, in: protocols.String("true"), want: protocols.Bool(true)},
		{t: TypeBits, fc: 5, in: protocols.Int(0), want: protocols.Bool(false)},
		{t: TypeBits, fc: 5, in: protocols.String("ON"), want: protocols.Bool(true)},
		{t: TypeBits, fc: 5, in: protocols.Int(2), err: "value 2 is not a bit (want true, false, 1 or 0)"},
		{t: TypeBits, fc: 5, in: protocols.String("maybe"), err: `value "maybe" is not a bit (want true, false, 1 or 0)`},
		{t: TypeBits, fc: 15, count: 3, in: protocols.String("[1,0,1]"), want: protocols.String("[1,0,1]")},
		{t: TypeString, fc: 16, count: 2, in: protocols.String("abcd"), want: protocols.String("abcd")},
		{t: TypeString, fc: 16, count: 2, in: protocols.Int(12345), err: "value 12345 does not fit string of 4 bytes (5 bytes given)"},
		{t: TypeBytes, fc: 16, count: 1, in: protocols.String("0xBEEF"), want: protocols.String("0xBEEF")},
		{t: TypeBytes, fc: 16, count: 1, in: protocols.String("xyz"), err: `value "xyz" is not a hex string (bytes)`},
	}
	for _, c := range cases {
		got, err := coerce(&Codec{Type: c.t, FunctionCode: c.fc, Count: c.count}, c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err || !errors.Is(err, ErrValue) {
				t.Errorf("%s %v: error %v, want %q", c.t, c.in, err, c.err)
			}
			continue
		}
		if err != nil || !sameValue(got, c.want) {
			t.Errorf("%s %v = %#v, %v; want %#v", c.t, c.in, got, err, c.want)
		}
		// Whatever coerce accepts, the encoder must take.
		k := Codec{Type: c.t, FunctionCode: c.fc, Count: c.count, Bit: -1}
		if isBitFunction(c.fc) {
			_, err = k.EncodeBits(got)
		} else {
			_, err = k.EncodeRegisters(got)
		}
		if err != nil {
			t.Errorf("%s %v: encoder rejects the coerced %v: %v", c.t, c.in, got, err)
		}
	}
}
