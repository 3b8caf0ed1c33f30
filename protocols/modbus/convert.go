package modbus

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/industryos/gateway/protocols"
)

// DataType is a key's type after legacy aliases are resolved.
type DataType uint8

// Data types, named as in upstream configs.
const (
	TypeInvalid DataType = iota
	TypeString
	TypeBytes
	TypeBits
	TypeInt8
	TypeUint8
	TypeInt16
	TypeUint16
	TypeFloat16
	TypeInt32
	TypeUint32
	TypeFloat32
	TypeInt64
	TypeUint64
	TypeFloat64
)

var typeNames = [...]string{"invalid", "string", "bytes", "bits", "8int", "8uint", "16int", "16uint", "16float",
	"32int", "32uint", "32float", "64int", "64uint", "64float"}

// The order matters: it is the order error messages list the choices in.
const (
	uplinkTypeList   = "string, bytes, bits, 8int, 8uint, 16int, 16uint, 16float, 32int, 32uint, 32float, 64int, 64uint, 64float, bit, int, long, integer, uint, float, double"
	downlinkTypeList = uplinkTypeList + ", word, dword, unsigned, coil, coils"
)

func (t DataType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Width is the number of bits of a fixed-size type, 0 for string, bytes and bits.
func (t DataType) Width() int {
	switch t {
	case TypeInt8, TypeUint8:
		return 8
	case TypeInt16, TypeUint16, TypeFloat16:
		return 16
	case TypeInt32, TypeUint32, TypeFloat32:
		return 32
	case TypeInt64, TypeUint64, TypeFloat64:
		return 64
	}
	return 0
}

// Registers is the number of registers a fixed-size type occupies (8-bit
// types still take a whole register), 0 for variable-size types.
func (t DataType) Registers() int {
	w := t.Width()
	if w == 0 {
		return 0
	}
	return max(1, w/16)
}

func (t DataType) numeric() bool { return t.Width() > 0 }

// ParseType resolves a type name. Legacy aliases (int, long, integer, uint,
// float, double) take their width from count registers, as upstream does.
// downlink also accepts the write-only aliases.
func ParseType(name string, count int, downlink bool) (DataType, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for i := TypeString; i <= TypeFloat64; i++ {
		if typeNames[i] == n {
			return i, nil
		}
	}
	if count <= 0 {
		count = 1
	}
	var family [3]DataType // for 1, 2 and 4 registers
	switch {
	case n == "bit":
		return TypeBits, nil
	case n == "int" || n == "long" || n == "integer":
		family = [3]DataType{TypeInt16, TypeInt32, TypeInt64}
	case n == "uint":
		family = [3]DataType{TypeUint16, TypeUint32, TypeUint64}
	case n == "float" || n == "double":
		family = [3]DataType{TypeFloat16, TypeFloat32, TypeFloat64}
	case downlink && (n == "coil" || n == "coils"):
		return TypeBits, nil
	case downlink && n == "word":
		return TypeUint16, nil
	case downlink && n == "dword":
		return TypeUint32, nil
	case downlink && strings.HasPrefix(n, "unsigned"):
		family = [3]DataType{TypeUint16, TypeUint32, TypeUint64}
	default:
		list := uplinkTypeList
		if downlink {
			list = downlinkTypeList
		}
		return TypeInvalid, fmt.Errorf("unknown type %q (want one of: %s)", name, list)
	}
	switch count {
	case 1:
		return family[0], nil
	case 2:
		return family[1], nil
	case 4:
		return family[2], nil
	}
	return TypeInvalid, fmt.Errorf("type %q with objectsCount %d would be %d bits wide (want objectsCount 1, 2 or 4)", name, count, count*16)
}

// Order is a byte or word order. The zero value is LITTLE, upstream's default.
type Order uint8

const (
	Little Order = iota
	Big
)

func (o Order) String() string {
	if o == Big {
		return "BIG"
	}
	return "LITTLE"
}

// Codec turns one key's raw registers or bits into a Value and back. It is
// pure: no I/O, safe for concurrent use once built.
type Codec struct {
	Type         DataType
	FunctionCode int
	// Count is objectsCount: registers for FC 3/4/6/16, bits for FC 1/2/5/15.
	Count     int
	ByteOrder Order
	WordOrder Order
	// Bit selects one bit of a bits key; -1 keeps all of them.
	Bit int
	// BitsAsInt reports bits as 0/1 instead of booleans (bitTargetType "int").
	BitsAsInt bool
	// Multiplier and Divider scale register values; 0 means unset.
	Multiplier float64
	Divider    float64
	// Round is the number of decimals floats are rounded to; negative disables it.
	Round    int
	Variants map[string]protocols.Value
}

// DefaultRound is upstream's rounding of float results.
const DefaultRound = 6

// Errors returned by the codec.
var (
	// ErrShortData means fewer registers or bits arrived than the key needs.
	ErrShortData = errors.New("not enough data for the key")
	// ErrValue means a downlink value cannot be encoded as the key's type.
	ErrValue = errors.New("value does not fit the key's type")
)

// isBitFunction reports whether fc reads or writes single-bit objects.
func isBitFunction(fc int) bool { return fc == 1 || fc == 2 || fc == 5 || fc == 15 }

// RequestCount is the number of registers (or bits) a read of this key asks
// for.
func (c *Codec) RequestCount() int {
	if c.Count > 0 {
		return c.Count
	}
	if isBitFunction(c.FunctionCode) {
		if w := c.Type.Width(); w > 0 {
			return w
		}
		return 1
	}
	return max(1, c.Type.Registers())
}

// DecodeRegisters decodes the registers read for this key (FC 3/4). Extra
// registers beyond the key's count are ignored.
func (c *Codec) DecodeRegisters(regs []uint16) (protocols.Value, error) {
	n := c.RequestCount()
	if len(regs) < n {
		return protocols.Value{}, fmt.Errorf("%w: %s needs %d registers, got %d", ErrShortData, c.Type, n, len(regs))
	}
	regs = regs[:n]
	var v protocols.Value
	switch c.Type {
	case TypeString:
		v = bytesAsString(registerBytes(regs))
	case TypeBytes:
		v = protocols.String(hex.EncodeToString(registerBytes(regs)))
	case TypeBits:
		return c.bitsFromRegisters(regs)
	default:
		rn := c.Type.Registers()
		if rn == 0 || len(regs) < rn {
			return protocols.Value{}, fmt.Errorf("%w: %s needs %d registers, got %d", ErrShortData, c.Type, rn, len(regs))
		}
		var buf [8]byte
		c.reorder(buf[:2*rn], regs[:rn])
		v = numberFromBytes(c.Type, buf[:2*rn])
	}
	return c.post(v, true), nil
}

// DecodeBits decodes the coils or discrete inputs read for this key (FC 1/2).
func (c *Codec) DecodeBits(bits []bool) (protocols.Value, error) {
	n := c.RequestCount()
	if len(bits) < n {
		return protocols.Value{}, fmt.Errorf("%w: %s needs %d bits, got %d", ErrShortData, c.Type, n, len(bits))
	}
	bits = bits[:n]
	switch c.Type {
	case TypeBits:
		return c.bitsValue(bits, bits)
	case TypeString:
		return c.post(bytesAsString(packBits(bits)), false), nil
	case TypeBytes:
		return c.post(protocols.String(hex.EncodeToString(packBits(bits))), false), nil
	}
	// Coil k is bit k of the number: the Modbus wire packs coils LSB first.
	w := c.Type.Width()
	var u uint64
	for i := 0; i < w && i < len(bits); i++ {
		if bits[i] {
			u |= 1 << i
		}
	}
	return c.post(numberFromUint(c.Type, u), false), nil
}

// bitsFromRegisters expands registers into bits, index i being bit i%16 of
// register i/16. Like upstream, `bit` indexes that list and otherwise only
// the last Count bits are kept.
func (c *Codec) bitsFromRegisters(regs []uint16) (protocols.Value, error) {
	all := make([]bool, 16*len(regs))
	for i := range all {
		all[i] = regs[i/16]>>(i%16)&1 == 1
	}
	keep := min(max(c.Count, 1), len(all))
	return c.bitsValue(all, all[len(all)-keep:])
}

func (c *Codec) bitsValue(all, kept []bool) (protocols.Value, error) {
	if c.Bit >= 0 {
		if c.Bit >= len(all) {
			return protocols.Value{}, fmt.Errorf("%w: bit %d of %d bits", ErrShortData, c.Bit, len(all))
		}
		return c.post(c.bitValue(all[c.Bit]), false), nil
	}
	if len(kept) == 1 {
		return c.post(c.bitValue(kept[0]), false), nil
	}
	// Value has no list kind; the JSON list upstream would send is kept as text.
	b := make([]byte, 0, 2+6*len(kept))
	b = append(b, '[')
	for i, x := range kept {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case c.BitsAsInt && x:
			b = append(b, '1')
		case c.BitsAsInt:
			b = append(b, '0')
		default:
			b = strconv.AppendBool(b, x)
		}
	}
	b = append(b, ']')
	return c.post(protocols.String(string(b)), false), nil
}

func (c *Codec) bitValue(x bool) protocols.Value {
	if c.BitsAsInt {
		if x {
			return protocols.Int(1)
		}
		return protocols.Int(0)
	}
	return protocols.Bool(x)
}

// reorder writes regs into dst (2 bytes per register) in the byte sequence
// that is then read as a big-endian number: wordOrder LITTLE reverses the
// registers, byteOrder LITTLE swaps the bytes inside each register.
func (c *Codec) reorder(dst []byte, regs []uint16) {
	n := len(regs)
	for i := 0; i < n; i++ {
		r := regs[i]
		if c.WordOrder == Little {
			r = regs[n-1-i]
		}
		if c.ByteOrder == Little {
			r = r<<8 | r>>8
		}
		dst[2*i] = byte(r >> 8)
		dst[2*i+1] = byte(r)
	}
}

// unorder is the inverse of reorder (both operations are involutions and commute).
func (c *Codec) unorder(dst []uint16, b []byte) {
	n := len(dst)
	for i := 0; i < n; i++ {
		r := uint16(b[2*i])<<8 | uint16(b[2*i+1])
		if c.ByteOrder == Little {
			r = r<<8 | r>>8
		}
		if c.WordOrder == Little {
			dst[n-1-i] = r
		} else {
			dst[i] = r
		}
	}
}

func numberFromBytes(t DataType, b []byte) protocols.Value {
	if t == TypeInt8 || t == TypeUint8 {
		// The low byte of the (reordered) register.
		return numberFromUint(t, uint64(b[1]))
	}
	var u uint64
	for _, x := range b {
		u = u<<8 | uint64(x)
	}
	return numberFromUint(t, u)
}

func numberFromUint(t DataType, u uint64) protocols.Value {
	switch t {
	case TypeInt8:
		return protocols.Int(int64(int8(u)))
	case TypeUint8:
		return protocols.Uint(u & 0xff)
	case TypeInt16:
		return protocols.Int(int64(int16(u)))
	case TypeUint16:
		return protocols.Uint(u & 0xffff)
	case TypeFloat16:
		return protocols.Float(halfToFloat(uint16(u)))
	case TypeInt32:
		return protocols.Int(int64(int32(u)))
	case TypeUint32:
		return protocols.Uint(u & 0xffffffff)
	case TypeFloat32:
		return protocols.Float(float64(math.Float32frombits(uint32(u))))
	case TypeInt64:
		return protocols.Int(int64(u))
	case TypeUint64:
		return protocols.Uint(u)
	case TypeFloat64:
		return protocols.Float(math.Float64frombits(u))
	}
	return protocols.Value{}
}

func registerBytes(regs []uint16) []byte {
	b := make([]byte, 2*len(regs))
	for i, r := range regs {
		b[2*i] = byte(r >> 8)
		b[2*i+1] = byte(r)
	}
	return b
}

// packBits packs bits LSB first into bytes, the Modbus wire layout of coils.
func packBits(bits []bool) []byte {
	b := make([]byte, (len(bits)+7)/8)
	for i, x := range bits {
		if x {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// bytesAsString trims the NUL padding devices put around text and falls back
// to hex for bytes that are not UTF-8, as upstream does.
func bytesAsString(b []byte) protocols.Value {
	b = trimNUL(b)
	if !utf8.Valid(b) {
		return protocols.String(hex.EncodeToString(b))
	}
	return protocols.String(string(b))
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// post applies scaling (registers only, as upstream), rounding and variants.
func (c *Codec) post(v protocols.Value, scale bool) protocols.Value {
	if scale && c.Type.numeric() {
		switch {
		case c.Divider != 0:
			f, _ := v.Float64()
			v = protocols.Float(f / c.Divider)
		case c.Multiplier != 0:
			v = multiply(v, c.Multiplier)
		}
	}
	if v.Kind == protocols.KindFloat && c.Round >= 0 {
		v.F = roundTo(v.F, c.Round)
	}
	if len(c.Variants) > 0 {
		if label, ok := c.Variants[variantKey(v)]; ok {
			return label
		}
		if v.Kind == protocols.KindBool {
			// Upstream matches Python's str(bool).
			py := "False"
			if v.I != 0 {
				py = "True"
			}
			if label, ok := c.Variants[py]; ok {
				return label
			}
		}
	}
	return v
}

// multiply keeps integers integral when the multiplier is, as Python does.
func multiply(v protocols.Value, m float64) protocols.Value {
	f, _ := v.Float64()
	r := f * m
	if v.Kind != protocols.KindFloat && m == math.Trunc(m) && math.Abs(r) < 1<<53 {
		return protocols.Int(int64(r))
	}
	return protocols.Float(r)
}

func variantKey(v protocols.Value) string {
	if v.Kind == protocols.KindFloat && v.F == math.Trunc(v.F) && math.Abs(v.F) < 1<<53 {
		// Python prints 2.0 for a float two.
		return strconv.FormatFloat(v.F, 'f', 1, 64)
	}
	return v.String()
}

func roundTo(f float64, digits int) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) || digits > 15 {
		return f
	}
	p := math.Pow10(digits)
	x := f * p
	if math.Abs(x) >= 1<<52 {
		// Already coarser than the requested precision.
		return f
	}
	return math.Round(x) / p
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}

// floatToHalf converts to binary16 with round-to-nearest-even; values out of
// range become infinities, as a float16 cast does.
func floatToHalf(f float64) uint16 {
	bits := math.Float32bits(float32(f))
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff
	switch {
	case exp == 0xff:
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp == 0:
		return sign
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is still correct
	}
	return sign | uint16(half)
}

// EncodeRegisters encodes a downlink value for FC 6/16.
func (c *Codec) EncodeRegisters(v protocols.Value) ([]uint16, error) {
	n := c.RequestCount()
	switch c.Type {
	case TypeString, TypeBytes:
		b, err := c.textBytes(v, 2*n)
		if err != nil {
			return nil, err
		}
		regs := make([]uint16, n)
		for i := range regs {
			regs[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		return regs, nil
	case TypeBits:
		bits, err := parseBits(v, 16*n)
		if err != nil {
			return nil, err
		}
		regs := make([]uint16, n)
		for i, x := range bits {
			if x {
				regs[i/16] |= 1 << (i % 16)
			}
		}
		return regs, nil
	}
	u, err := encodeNumber(c.Type, v)
	if err != nil {
		return nil, err
	}
	rn := c.Type.Registers()
	var buf [8]byte
	if rn == 1 && c.Type.Width() == 8 {
		buf[1] = byte(u)
	} else {
		for i := 0; i < 2*rn; i++ {
			buf[i] = byte(u >> (8 * (2*rn - 1 - i)))
		}
	}
	regs := make([]uint16, rn)
	c.unorder(regs, buf[:2*rn])
	return regs, nil
}

// EncodeBits encodes a downlink value for FC 5/15.
func (c *Codec) EncodeBits(v protocols.Value) ([]bool, error) {
	n := c.RequestCount()
	switch c.Type {
	case TypeBits:
		return parseBits(v, n)
	case TypeString, TypeBytes:
		b, err := c.textBytes(v, (n+7)/8)
		if err != nil {
			return nil, err
		}
		bits := make([]bool, n)
		for i := range bits {
			bits[i] = b[i/8]>>(i%8)&1 == 1
		}
		return bits, nil
	}
	u, err := encodeNumber(c.Type, v)
	if err != nil {
		return nil, err
	}
	bits := make([]bool, n)
	for i := 0; i < n && i < 64; i++ {
		bits[i] = u>>i&1 == 1
	}
	return bits, nil
}

func (c *Codec) textBytes(v protocols.Value, size int) ([]byte, error) {
	s := v.String()
	var b []byte
	if c.Type == TypeBytes {
		var err error
		if b, err = hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x")); err != nil {
			return nil, fmt.Errorf("%w: %q is not a hex string", ErrValue, s)
		}
	} else {
		b = []byte(s)
	}
	if len(b) > size {
		return nil, fmt.Errorf("%w: %d bytes do not fit in %d", ErrValue, len(b), size)
	}
	out := make([]byte, size)
	copy(out, b)
	return out, nil
}

// encodeNumber returns the raw bits of v as t, checking the range.
func encodeNumber(t DataType, v protocols.Value) (uint64, error) {
	switch t {
	case TypeFloat16, TypeFloat32, TypeFloat64:
		f, err := asFloat(v)
		if err != nil {
			return 0, err
		}
		switch t {
		case TypeFloat16:
			return uint64(floatToHalf(f)), nil
		case TypeFloat32:
			if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
				return 0, fmt.Errorf("%w: %v overflows 32float", ErrValue, f)
			}
			return uint64(math.Float32bits(float32(f))), nil
		}
		return math.Float64bits(f), nil
	}
	w := t.Width()
	signed := t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
	if signed {
		i, err := asInt(v)
		if err != nil {
			return 0, err
		}
		lo, hi := -(int64(1) << (w - 1)), int64(1)<<(w-1)-1
		if w == 64 {
			lo, hi = math.MinInt64, math.MaxInt64
		}
		if i < lo || i > hi {
			return 0, fmt.Errorf("%w: %d is out of range for %s", ErrValue, i, t)
		}
		return uint64(i) & mask(w), nil
	}
	u, err := asUint(v)
	if err != nil {
		return 0, err
	}
	if u > mask(w) {
		return 0, fmt.Errorf("%w: %d is out of range for %s", ErrValue, u, t)
	}
	return u, nil
}

func mask(w int) uint64 {
	if w >= 64 {
		return math.MaxUint64
	}
	return 1<<w - 1
}

func asFloat(v protocols.Value) (float64, error) {
	if f, ok := v.Float64(); ok {
		return f, nil
	}
	if v.Kind == protocols.KindString {
		if f, err := strconv.ParseFloat(strings.TrimSpace(v.S), 64); err == nil {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: %q is not a number", ErrValue, v.String())
}

// asInt truncates floats toward zero, as upstream's int(float(x)) does.
func asInt(v protocols.Value) (int64, error) {
	switch v.Kind {
	case protocols.KindBool, protocols.KindInt:
		return v.I, nil
	case protocols.KindUint:
		if v.U > math.MaxInt64 {
			return 0, fmt.Errorf("%w: %d is out of range", ErrValue, v.U)
		}
		return int64(v.U), nil
	case protocols.KindString:
		if i, err := strconv.ParseInt(strings.TrimSpace(v.S), 0, 64); err == nil {
			return i, nil
		}
	}
	f, err := asFloat(v)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || f >= 1<<63 || f < -(1<<63) {
		return 0, fmt.Errorf("%w: %v is out of range", ErrValue, f)
	}
	return int64(f), nil
}

func asUint(v protocols.Value) (uint64, error) {
	switch v.Kind {
	case protocols.KindUint:
		return v.U, nil
	case protocols.KindString:
		if u, err := strconv.ParseUint(strings.TrimSpace(v.S), 0, 64); err == nil {
			return u, nil
		}
	case protocols.KindFloat:
		if v.F >= 0 && v.F < 1<<64 {
			return uint64(v.F), nil
		}
		return 0, fmt.Errorf("%w: %v is out of range", ErrValue, v.F)
	}
	i, err := asInt(v)
	if err != nil {
		return 0, err
	}
	if i < 0 {
		return 0, fmt.Errorf("%w: %d is negative", ErrValue, i)
	}
	return uint64(i), nil
}

// parseBits accepts a bool, a number (bit i is coil i), or text: "true",
// "1", "[1,0,1]", "1,0,1" or "[true,false]".
func parseBits(v protocols.Value, n int) ([]bool, error) {
	out := make([]bool, n)
	switch v.Kind {
	case protocols.KindBool, protocols.KindInt, protocols.KindUint, protocols.KindFloat:
		u, err := asUint(v)
		if err != nil {
			return nil, err
		}
		for i := 0; i < n && i < 64; i++ {
			out[i] = u>>i&1 == 1
		}
		return out, nil
	case protocols.KindString:
		s := strings.TrimSpace(v.S)
		s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
		parts := strings.Split(s, ",")
		if len(parts) > n {
			return nil, fmt.Errorf("%w: %d bits do not fit in %d", ErrValue, len(parts), n)
		}
		for i, p := range parts {
			switch strings.ToLower(strings.TrimSpace(p)) {
			case "1", "true", "on":
				out[i] = true
			case "0", "false", "off":
			default:
				return nil, fmt.Errorf("%w: %q is not a bit", ErrValue, p)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: null is not a bit", ErrValue)
}
