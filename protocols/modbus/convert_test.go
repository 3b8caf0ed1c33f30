package modbus

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols"
)

func codec(t DataType, bo, wo Order) *Codec {
	return &Codec{Type: t, FunctionCode: 3, ByteOrder: bo, WordOrder: wo, Bit: -1, Round: DefaultRound}
}

var orders = []struct {
	name   string
	bo, wo Order
}{
	{"BIG/BIG", Big, Big},
	{"BIG/LITTLE", Big, Little},
	{"LITTLE/BIG", Little, Big},
	{"LITTLE/LITTLE", Little, Little},
}

// Each row gives the registers for byteOrder/wordOrder BIG/BIG, BIG/LITTLE,
// LITTLE/BIG and LITTLE/LITTLE, worked out by hand from the rules: swap the
// bytes of each register for byte LITTLE, reverse the registers for word
// LITTLE.
var numericVectors = []struct {
	name string
	typ  DataType
	want protocols.Value
	regs [4][]uint16
}{
	{"32int 0x12345678", TypeInt32, protocols.Int(0x12345678), [4][]uint16{
		{0x1234, 0x5678}, {0x5678, 0x1234}, {0x3412, 0x7856}, {0x7856, 0x3412}}},
	{"32int -2", TypeInt32, protocols.Int(-2), [4][]uint16{
		{0xFFFF, 0xFFFE}, {0xFFFE, 0xFFFF}, {0xFFFF, 0xFEFF}, {0xFEFF, 0xFFFF}}},
	{"32uint 4e9", TypeUint32, protocols.Uint(4000000000), [4][]uint16{
		{0xEE6B, 0x2800}, {0x2800, 0xEE6B}, {0x6BEE, 0x0028}, {0x0028, 0x6BEE}}},
	{"32float 12.34", TypeFloat32, protocols.Float(12.34), [4][]uint16{
		{0x4145, 0x70A4}, {0x70A4, 0x4145}, {0x4541, 0xA470}, {0xA470, 0x4541}}},
	{"32float -1.5", TypeFloat32, protocols.Float(-1.5), [4][]uint16{
		{0xBFC0, 0x0000}, {0x0000, 0xBFC0}, {0xC0BF, 0x0000}, {0x0000, 0xC0BF}}},
	{"16int -2", TypeInt16, protocols.Int(-2), [4][]uint16{
		{0xFFFE}, {0xFFFE}, {0xFEFF}, {0xFEFF}}},
	{"16int 0x1234", TypeInt16, protocols.Int(0x1234), [4][]uint16{
		{0x1234}, {0x1234}, {0x3412}, {0x3412}}},
	{"16uint 65535", TypeUint16, protocols.Uint(65535), [4][]uint16{
		{0xFFFF}, {0xFFFF}, {0xFFFF}, {0xFFFF}}},
	{"16uint 0x00AB", TypeUint16, protocols.Uint(0xAB), [4][]uint16{
		{0x00AB}, {0x00AB}, {0xAB00}, {0xAB00}}},
	{"16float 1.5", TypeFloat16, protocols.Float(1.5), [4][]uint16{
		{0x3E00}, {0x3E00}, {0x003E}, {0x003E}}},
	{"16float -2", TypeFloat16, protocols.Float(-2), [4][]uint16{
		{0xC000}, {0xC000}, {0x00C0}, {0x00C0}}},
	{"16float 65504", TypeFloat16, protocols.Float(65504), [4][]uint16{
		{0x7BFF}, {0x7BFF}, {0xFF7B}, {0xFF7B}}},
	{"16float 0.333", TypeFloat16, protocols.Float(0.333252), [4][]uint16{ // 0x3555 = 0.33325195...
		{0x3555}, {0x3555}, {0x5535}, {0x5535}}},
	{"8int -2", TypeInt8, protocols.Int(-2), [4][]uint16{
		{0x00FE}, {0x00FE}, {0xFE00}, {0xFE00}}},
	{"8uint 171", TypeUint8, protocols.Uint(171), [4][]uint16{
		{0x00AB}, {0x00AB}, {0xAB00}, {0xAB00}}},
	{"64int 0x0102030405060708", TypeInt64, protocols.Int(0x0102030405060708), [4][]uint16{
		{0x0102, 0x0304, 0x0506, 0x0708}, {0x0708, 0x0506, 0x0304, 0x0102},
		{0x0201, 0x0403, 0x0605, 0x0807}, {0x0807, 0x0605, 0x0403, 0x0201}}},
	{"64int -1", TypeInt64, protocols.Int(-1), [4][]uint16{
		{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF},
		{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}}},
	{"64uint max", TypeUint64, protocols.Uint(math.MaxUint64), [4][]uint16{
		{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF},
		{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}}},
	{"64uint 0x8000000000000001", TypeUint64, protocols.Uint(0x8000000000000001), [4][]uint16{
		{0x8000, 0, 0, 0x0001}, {0x0001, 0, 0, 0x8000}, {0x0080, 0, 0, 0x0100}, {0x0100, 0, 0, 0x0080}}},
	{"64float 1.0", TypeFloat64, protocols.Float(1), [4][]uint16{
		{0x3FF0, 0, 0, 0}, {0, 0, 0, 0x3FF0}, {0xF03F, 0, 0, 0}, {0, 0, 0, 0xF03F}}},
	{"64float -0.1", TypeFloat64, protocols.Float(-0.1), [4][]uint16{ // 0xBFB999999999999A
		{0xBFB9, 0x9999, 0x9999, 0x999A}, {0x999A, 0x9999, 0x9999, 0xBFB9},
		{0xB9BF, 0x9999, 0x9999, 0x9A99}, {0x9A99, 0x9999, 0x9999, 0xB9BF}}},
}

func TestDecodeNumericVectors(t *testing.T) {
	for _, v := range numericVectors {
		for i, o := range orders {
			c := codec(v.typ, o.bo, o.wo)
			got, err := c.DecodeRegisters(v.regs[i])
			if err != nil {
				t.Fatalf("%s %s: %v", v.name, o.name, err)
			}
			if !sameValue(got, v.want) {
				t.Errorf("%s %s: decode %v = %#v, want %#v", v.name, o.name, v.regs[i], got, v.want)
			}
		}
	}
}

func TestEncodeNumericVectors(t *testing.T) {
	for _, v := range numericVectors {
		for i, o := range orders {
			c := codec(v.typ, o.bo, o.wo)
			got, err := c.EncodeRegisters(v.want)
			if err != nil {
				t.Fatalf("%s %s: %v", v.name, o.name, err)
			}
			if !equalRegs(got, v.regs[i]) {
				t.Errorf("%s %s: encode = %04X, want %04X", v.name, o.name, got, v.regs[i])
			}
		}
	}
}

// The upstream downlink test vectors (test_write_device_rpc_function16_respects_configured_word_order).
func TestUpstreamWordOrderVectors(t *testing.T) {
	cases := []struct {
		typ  DataType
		wo   Order
		in   protocols.Value
		want []uint16
	}{
		{TypeInt32, Big, protocols.Int(0x12345678), []uint16{0x1234, 0x5678}},
		{TypeInt32, Little, protocols.Int(0x12345678), []uint16{0x5678, 0x1234}},
		{TypeFloat32, Big, protocols.Float(12.34), []uint16{0x4145, 0x70A4}},
		{TypeFloat32, Little, protocols.Float(12.34), []uint16{0x70A4, 0x4145}},
	}
	for _, tc := range cases {
		c := codec(tc.typ, Big, tc.wo)
		c.FunctionCode = 16
		regs, err := c.EncodeRegisters(tc.in)
		if err != nil || !equalRegs(regs, tc.want) {
			t.Errorf("%s word %s: %04X, %v; want %04X", tc.typ, tc.wo, regs, err, tc.want)
		}
		back, err := c.DecodeRegisters(regs)
		if err != nil || !sameValue(back, tc.in) {
			t.Errorf("%s word %s: round trip %v, %v", tc.typ, tc.wo, back, err)
		}
	}
}

func TestRoundTripAllNumeric(t *testing.T) {
	values := []float64{0, 1, -1, 7, -128, 127, 255, 1000, -32768, 32767, 65535, 123456, -2147483648, 4294967295, 1 << 40, -(1 << 50)}
	for typ := TypeInt8; typ <= TypeFloat64; typ++ {
		for _, o := range orders {
			c := codec(typ, o.bo, o.wo)
			c.Round = -1
			for _, f := range values {
				in := protocols.Float(f)
				regs, err := c.EncodeRegisters(in)
				if err != nil {
					continue // out of range for this type
				}
				if len(regs) != typ.Registers() {
					t.Fatalf("%s: %d registers, want %d", typ, len(regs), typ.Registers())
				}
				got, err := c.DecodeRegisters(regs)
				if err != nil {
					t.Fatal(err)
				}
				g, _ := got.Float64()
				if typ == TypeFloat16 && math.Abs(f) > 2048 {
					continue // not exact in half precision
				}
				if typ == TypeFloat32 && math.Abs(f) > 1<<24 {
					continue
				}
				if g != f {
					t.Errorf("%s %s: %v -> %04X -> %v", typ, o.name, f, regs, got)
				}
			}
		}
	}
}

func TestEncodeRange(t *testing.T) {
	bad := []struct {
		typ DataType
		v   protocols.Value
	}{
		{TypeInt8, protocols.Int(128)},
		{TypeUint8, protocols.Int(-1)},
		{TypeInt16, protocols.Int(40000)},
		{TypeUint16, protocols.Int(65536)},
		{TypeUint32, protocols.Float(-3)},
		{TypeInt32, protocols.String("x")},
		{TypeFloat32, protocols.Float(1e39)},
	}
	for _, b := range bad {
		if _, err := codec(b.typ, Big, Big).EncodeRegisters(b.v); !errors.Is(err, ErrValue) {
			t.Errorf("%s %v: err %v, want ErrValue", b.typ, b.v, err)
		}
	}
	// Strings are parsed, floats truncate like int(float(x)).
	regs, err := codec(TypeInt16, Big, Big).EncodeRegisters(protocols.String("-7"))
	if err != nil || regs[0] != 0xFFF9 {
		t.Errorf("16int \"-7\": %04X %v", regs, err)
	}
	regs, err = codec(TypeInt16, Big, Big).EncodeRegisters(protocols.Float(3.9))
	if err != nil || regs[0] != 3 {
		t.Errorf("16int 3.9: %04X %v", regs, err)
	}
}

func TestDecodeText(t *testing.T) {
	cases := []struct {
		typ  DataType
		bo   Order
		regs []uint16
		want string
	}{
		{TypeString, Big, []uint16{0x4142}, "AB"},
		{TypeString, Little, []uint16{0x4142}, "AB"}, // strings are not reordered
		{TypeString, Big, []uint16{0x4142, 0x4300}, "ABC"},
		{TypeString, Big, []uint16{0x0000, 0x4869, 0x0000}, "Hi"},
		{TypeString, Big, []uint16{0xC3A9, 0x7465}, "éte"},
		{TypeString, Big, []uint16{0xFF41}, "ff41"}, // invalid UTF-8 falls back to hex
		{TypeBytes, Big, []uint16{0x0102, 0xA0FF}, "0102a0ff"},
		{TypeBytes, Little, []uint16{0x0102}, "0102"},
	}
	for _, tc := range cases {
		c := codec(tc.typ, tc.bo, Little)
		c.Count = len(tc.regs)
		got, err := c.DecodeRegisters(tc.regs)
		if err != nil || got != protocols.String(tc.want) {
			t.Errorf("%s %04X: %#v %v, want %q", tc.typ, tc.regs, got, err, tc.want)
		}
	}
	c := codec(TypeString, Big, Big)
	c.Count = 3
	regs, err := c.EncodeRegisters(protocols.String("ABC"))
	if err != nil || !equalRegs(regs, []uint16{0x4142, 0x4300, 0}) {
		t.Errorf("encode string: %04X %v", regs, err)
	}
	if _, err := c.EncodeRegisters(protocols.String("too long!")); !errors.Is(err, ErrValue) {
		t.Errorf("long string: %v", err)
	}
	c.Type = TypeBytes
	regs, err = c.EncodeRegisters(protocols.String("0102a0"))
	if err != nil || !equalRegs(regs, []uint16{0x0102, 0xA000, 0}) {
		t.Errorf("encode bytes: %04X %v", regs, err)
	}
}

func TestDecodeBits(t *testing.T) {
	tf := []bool{true, false, true}
	cases := []struct {
		name  string
		fc    int
		count int
		bit   int
		asInt bool
		bits  []bool
		regs  []uint16
		want  protocols.Value
	}{
		{"coil bool", 1, 1, -1, false, []bool{true}, nil, protocols.Bool(true)},
		{"coil int", 1, 1, -1, true, []bool{true}, nil, protocols.Int(1)},
		{"coils list", 1, 3, -1, false, tf, nil, protocols.String("[true,false,true]")},
		{"coils list int", 2, 3, -1, true, tf, nil, protocols.String("[1,0,1]")},
		{"coils bit", 1, 3, 1, false, tf, nil, protocols.Bool(false)},
		{"coils bit int", 1, 3, 2, true, tf, nil, protocols.Int(1)},
		{"register last bit", 3, 1, -1, false, nil, []uint16{0x8000}, protocols.Bool(true)},
		{"register last bit clear", 3, 1, -1, false, nil, []uint16{0x7FFF}, protocols.Bool(false)},
		{"register bit 0", 3, 1, 0, true, nil, []uint16{0x0001}, protocols.Int(1)},
		{"register bit 9", 4, 1, 9, false, nil, []uint16{0x0200}, protocols.Bool(true)},
		{"register bit 17", 3, 2, 17, false, nil, []uint16{0, 0x0002}, protocols.Bool(true)},
		{"registers last 2", 3, 2, -1, true, nil, []uint16{0x0001, 0x8000}, protocols.String("[0,1]")},
	}
	for _, tc := range cases {
		c := &Codec{Type: TypeBits, FunctionCode: tc.fc, Count: tc.count, Bit: tc.bit, BitsAsInt: tc.asInt, Round: DefaultRound}
		var got protocols.Value
		var err error
		if tc.regs != nil {
			got, err = c.DecodeRegisters(tc.regs)
		} else {
			got, err = c.DecodeBits(tc.bits)
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %#v %v, want %#v", tc.name, got, err, tc.want)
		}
	}
}

func TestNumbersFromCoils(t *testing.T) {
	bits := make([]bool, 16)
	bits[0], bits[3], bits[15] = true, true, true // 0x8009
	c := &Codec{Type: TypeUint16, FunctionCode: 1, Bit: -1, Round: DefaultRound}
	if got, err := c.DecodeBits(bits); err != nil || got != protocols.Uint(0x8009) {
		t.Errorf("16uint from coils: %v %v", got, err)
	}
	c.Type = TypeInt16
	if got, err := c.DecodeBits(bits); err != nil || got != protocols.Int(-32759) {
		t.Errorf("16int from coils: %v %v", got, err)
	}
	enc, err := c.EncodeBits(protocols.Int(-32759))
	if err != nil || !equalBits(enc, bits) {
		t.Errorf("encode 16int to coils: %v %v", enc, err)
	}
}

func TestEncodeBits(t *testing.T) {
	c := &Codec{Type: TypeBits, FunctionCode: 15, Count: 4, Bit: -1}
	for _, in := range []protocols.Value{protocols.Int(5), protocols.String("[1,0,1]"), protocols.String("true, false, true, 0")} {
		got, err := c.EncodeBits(in)
		if err != nil || !equalBits(got, []bool{true, false, true, false}) {
			t.Errorf("%v: %v %v", in, got, err)
		}
	}
	if _, err := c.EncodeBits(protocols.String("[1,0,1,1,1]")); !errors.Is(err, ErrValue) {
		t.Errorf("too many bits: %v", err)
	}
	c = &Codec{Type: TypeBits, FunctionCode: 5, Count: 1, Bit: -1}
	got, err := c.EncodeBits(protocols.Bool(true))
	if err != nil || !equalBits(got, []bool{true}) {
		t.Errorf("bool: %v %v", got, err)
	}
	c = &Codec{Type: TypeBits, FunctionCode: 16, Count: 1, Bit: -1}
	regs, err := c.EncodeRegisters(protocols.String("[1,0,0,0,0,0,0,0,0,1]"))
	if err != nil || !equalRegs(regs, []uint16{0x0201}) {
		t.Errorf("bits to register: %04X %v", regs, err)
	}
}

func TestScaleRoundVariants(t *testing.T) {
	c := codec(TypeInt16, Big, Big)
	c.Divider = 10
	if got, _ := c.DecodeRegisters([]uint16{235}); got != protocols.Float(23.5) {
		t.Errorf("divider: %v", got)
	}
	c.Multiplier = 2 // divider wins
	if got, _ := c.DecodeRegisters([]uint16{235}); got != protocols.Float(23.5) {
		t.Errorf("divider and multiplier: %v", got)
	}
	c.Divider = 0
	if got, _ := c.DecodeRegisters([]uint16{235}); got != protocols.Int(470) {
		t.Errorf("integral multiplier keeps ints: %#v", got)
	}
	c.Multiplier = 0.5
	if got, _ := c.DecodeRegisters([]uint16{235}); got != protocols.Float(117.5) {
		t.Errorf("fractional multiplier: %#v", got)
	}
	c = codec(TypeInt16, Big, Big)
	c.Divider = 3
	if got, _ := c.DecodeRegisters([]uint16{10}); got != protocols.Float(3.333333) {
		t.Errorf("default round 6: %v", got)
	}
	c.Round = 1
	if got, _ := c.DecodeRegisters([]uint16{10}); got != protocols.Float(3.3) {
		t.Errorf("round 1: %v", got)
	}
	c = codec(TypeFloat32, Big, Big)
	c.Round = 1
	if got, _ := c.DecodeRegisters([]uint16{0x4145, 0x70A4}); got != protocols.Float(12.3) {
		t.Errorf("float round 1: %v", got)
	}
	c = codec(TypeUint16, Big, Big)
	c.Variants = map[string]protocols.Value{"1": protocols.String("running"), "2": protocols.String("fault")}
	if got, _ := c.DecodeRegisters([]uint16{1}); got != protocols.String("running") {
		t.Errorf("variant: %v", got)
	}
	if got, _ := c.DecodeRegisters([]uint16{3}); got != protocols.Uint(3) {
		t.Errorf("no variant: %v", got)
	}
	c = &Codec{Type: TypeBits, FunctionCode: 1, Count: 1, Bit: -1, Variants: map[string]protocols.Value{"True": protocols.String("on")}}
	if got, _ := c.DecodeBits([]bool{true}); got != protocols.String("on") {
		t.Errorf("python bool variant: %v", got)
	}
	c = codec(TypeInt16, Big, Big)
	c.Divider = 10
	c.Variants = map[string]protocols.Value{"2.0": protocols.String("two")}
	if got, _ := c.DecodeRegisters([]uint16{20}); got != protocols.String("two") {
		t.Errorf("float variant: %v", got)
	}
}

func TestDecodeShort(t *testing.T) {
	if _, err := codec(TypeInt32, Big, Big).DecodeRegisters([]uint16{1}); !errors.Is(err, ErrShortData) {
		t.Errorf("short registers: %v", err)
	}
	c := &Codec{Type: TypeBits, FunctionCode: 1, Count: 4, Bit: -1}
	if _, err := c.DecodeBits([]bool{true}); !errors.Is(err, ErrShortData) {
		t.Errorf("short bits: %v", err)
	}
}

func TestHalf(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := halfToFloat(uint16(h))
		back := floatToHalf(f)
		if math.IsNaN(f) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %04X -> %04X", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%04X -> %v -> %04X", h, f, back)
		}
	}
	if floatToHalf(1e6) != 0x7C00 || floatToHalf(-1e6) != 0xFC00 {
		t.Error("overflow must become infinity")
	}
	if floatToHalf(1.0009765625+0.00048828125) != 0x3C02 { // tie rounds to even
		t.Errorf("tie: %04X", floatToHalf(1.0009765625+0.00048828125))
	}
}

func TestParseType(t *testing.T) {
	cases := []struct {
		name  string
		count int
		want  DataType
	}{
		{"16int", 1, TypeInt16}, {"32FLOAT", 2, TypeFloat32}, {"bit", 1, TypeBits},
		{"int", 1, TypeInt16}, {"long", 2, TypeInt32}, {"integer", 4, TypeInt64},
		{"uint", 2, TypeUint32}, {"float", 2, TypeFloat32}, {"double", 4, TypeFloat64}, {"float", 1, TypeFloat16},
	}
	for _, tc := range cases {
		got, err := ParseType(tc.name, tc.count, false)
		if err != nil || got != tc.want {
			t.Errorf("ParseType(%q, %d) = %v, %v; want %v", tc.name, tc.count, got, err, tc.want)
		}
	}
	_, err := ParseType("33int", 1, false)
	want := `unknown type "33int" (want one of: string, bytes, bits, 8int, 8uint, 16int, 16uint, 16float, 32int, 32uint, 32float, 64int, 64uint, 64float, bit, int, long, integer, uint, float, double)`
	if err == nil || err.Error() != want {
		t.Errorf("33int: %v", err)
	}
	if _, err := ParseType("int", 3, false); err == nil || !strings.Contains(err.Error(), "48 bits") {
		t.Errorf("int x3: %v", err)
	}
	if _, err := ParseType("word", 1, false); err == nil {
		t.Error("word is downlink only")
	}
	if got, err := ParseType("dword", 2, true); err != nil || got != TypeUint32 {
		t.Errorf("dword: %v %v", got, err)
	}
}

func sameValue(a, b protocols.Value) bool {
	if a.Kind == protocols.KindFloat && b.Kind == protocols.KindFloat {
		return a.F == b.F || (math.IsNaN(a.F) && math.IsNaN(b.F))
	}
	return a == b
}

func equalRegs(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalBits(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzDecode(f *testing.F) {
	f.Add(uint8(TypeInt32), uint8(2), uint8(0), uint8(3), int16(-1), []byte{0x12, 0x34, 0x56, 0x78})
	f.Add(uint8(TypeString), uint8(3), uint8(3), uint8(4), int16(-1), []byte("hello\xff"))
	f.Add(uint8(TypeBits), uint8(5), uint8(1), uint8(1), int16(2), []byte{0xff, 0x00})
	f.Add(uint8(TypeBits), uint8(2), uint8(2), uint8(3), int16(20), []byte{0x80, 0x01, 0x00})
	f.Add(uint8(TypeFloat16), uint8(1), uint8(1), uint8(4), int16(-1), []byte{0x7c, 0x01})
	f.Fuzz(func(t *testing.T, typ, count, ord, fc uint8, bit int16, raw []byte) {
		c := &Codec{
			Type:         DataType(typ % (uint8(TypeFloat64) + 2)),
			FunctionCode: int(fc%4) + 1,
			Count:        int(count),
			ByteOrder:    Order(ord & 1),
			WordOrder:    Order(ord >> 1 & 1),
			Bit:          int(bit),
			BitsAsInt:    ord&4 != 0,
			Divider:      float64(ord >> 3 & 1 * 10),
			Multiplier:   float64(ord >> 4 & 3),
			Round:        int(ord>>6) - 1,
			Variants:     map[string]protocols.Value{"1": protocols.String("one")},
		}
		regs := make([]uint16, len(raw)/2)
		for i := range regs {
			regs[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
		}
		bits := make([]bool, 8*len(raw))
		for i := range bits {
			bits[i] = raw[i/8]>>(i%8)&1 == 1
		}
		if v, err := c.DecodeRegisters(regs); err == nil {
			_ = v.String()
			// Decoded numbers must encode back without panicking.
			_, _ = c.EncodeRegisters(v)
		}
		if v, err := c.DecodeBits(bits); err == nil {
			_ = v.String()
			_, _ = c.EncodeBits(v)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	keys := []struct {
		c    *Codec
		regs []uint16
	}{
		{codec(TypeUint16, Big, Big), []uint16{0x1234}},
		{codec(TypeInt32, Little, Little), []uint16{0x7856, 0x3412}},
		{codec(TypeFloat32, Big, Little), []uint16{0x70A4, 0x4145}},
		{codec(TypeFloat64, Big, Big), []uint16{0x3FF0, 0, 0, 0}},
	}
	keys[0].c.Divider = 10
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		for _, k := range keys {
			if _, err := k.c.DecodeRegisters(k.regs); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "values/s")
}
