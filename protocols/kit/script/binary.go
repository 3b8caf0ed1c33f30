package script

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// binaryModule stands in for what upstream's Python converters take from
// bytearray, int.from_bytes and struct: Starlark's bytes index to bytes,
// not ints, and it has no struct module.
var binaryModule = &starlarkstruct.Module{
	Name: "binary",
	Members: starlark.StringDict{
		"fromhex":    starlark.NewBuiltin("binary.fromhex", binFromHex),
		"list":       starlark.NewBuiltin("binary.list", binList),
		"int":        starlark.NewBuiltin("binary.int", binInt),
		"float":      starlark.NewBuiltin("binary.float", binFloat),
		"pack_int":   starlark.NewBuiltin("binary.pack_int", binPackInt),
		"pack_float": starlark.NewBuiltin("binary.pack_float", binPackFloat),
		"hex":        starlark.NewBuiltin("binary.hex", binHex),
	},
}

// octets reads bytes, a string's bytes, or a list/tuple of ints 0..255.
func octets(fn string, v starlark.Value) ([]byte, error) {
	switch t := v.(type) {
	case starlark.Bytes:
		return []byte(t), nil
	case starlark.String:
		return []byte(t), nil
	case starlark.Indexable:
		if t.Len() > pyexpr.MaxSize {
			return nil, fmt.Errorf("%s: %d elements is more than the %d allowed", fn, t.Len(), pyexpr.MaxSize)
		}
		out := make([]byte, t.Len())
		for i := range out {
			n, err := starlark.AsInt32(t.Index(i))
			if err != nil || n < 0 || n > 255 {
				return nil, fmt.Errorf("%s: element %d is %s, want an int 0..255", fn, i, t.Index(i).String())
			}
			out[i] = byte(n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: got a %s, want bytes or a list of ints", fn, v.Type())
}

func intList(b []byte) *starlark.List {
	l := make([]starlark.Value, len(b))
	for i, c := range b {
		l[i] = starlark.MakeInt(int(c))
	}
	return starlark.NewList(l)
}

// binary.fromhex("0x1a 2b") -> [26, 43], like Python's bytearray.fromhex
// after removing "0x".
func binFromHex(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &s); err != nil {
		return nil, err
	}
	s = strings.NewReplacer("0x", "", "0X", "", " ", "", "\t", "", "\n", "", "\r", "").Replace(s)
	out, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	return intList(out), nil
}

func binList(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	o, err := octets(b.Name(), v)
	if err != nil {
		return nil, err
	}
	return intList(o), nil
}

func byteOrder(fn, order string) (bool, error) {
	switch order {
	case "big", ">":
		return true, nil
	case "little", "<":
		return false, nil
	}
	return false, fmt.Errorf("%s: order %q is neither \"big\" nor \"little\"", fn, order)
}

// binary.int(b, order="big", signed=False): int.from_bytes.
func binInt(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	order, signed := "big", false
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "b", &v, "order?", &order, "signed?", &signed); err != nil {
		return nil, err
	}
	o, err := octets(b.Name(), v)
	if err != nil {
		return nil, err
	}
	big_, err := byteOrder(b.Name(), order)
	if err != nil {
		return nil, err
	}
	be := make([]byte, len(o))
	for i := range o {
		if big_ {
			be[i] = o[i]
		} else {
			be[i] = o[len(o)-1-i]
		}
	}
	n := new(big.Int).SetBytes(be)
	if signed && len(be) > 0 && be[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(be))))
	}
	return starlark.MakeBigInt(n), nil
}

// binary.float(b, order="big"): an IEEE 754 float of 4 or 8 bytes.
func binFloat(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	order := "big"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "b", &v, "order?", &order); err != nil {
		return nil, err
	}
	o, err := octets(b.Name(), v)
	if err != nil {
		return nil, err
	}
	big_, err := byteOrder(b.Name(), order)
	if err != nil {
		return nil, err
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if big_ {
		bo = binary.BigEndian
	}
	switch len(o) {
	case 4:
		return starlark.Float(math.Float32frombits(bo.Uint32(o))), nil
	case 8:
		return starlark.Float(math.Float64frombits(bo.Uint64(o))), nil
	}
	return nil, fmt.Errorf("%s: %d bytes, want 4 or 8", b.Name(), len(o))
}

// binary.pack_int(n, size, order="big"): int.to_bytes (negative numbers in
// two's complement).
func binPackInt(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var n starlark.Int
	var size int
	order := "big"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "n", &n, "size", &size, "order?", &order); err != nil {
		return nil, err
	}
	if size < 1 || size > 64 {
		return nil, fmt.Errorf("%s: size %d is not in 1..64", b.Name(), size)
	}
	big_, err := byteOrder(b.Name(), order)
	if err != nil {
		return nil, err
	}
	x := n.BigInt()
	lim := new(big.Int).Lsh(big.NewInt(1), uint(8*size))
	if x.Sign() < 0 {
		x.Add(x, lim)
	}
	if x.Sign() < 0 || x.Cmp(lim) >= 0 {
		return nil, fmt.Errorf("%s: %s does not fit in %d bytes", b.Name(), n.String(), size)
	}
	out := x.FillBytes(make([]byte, size))
	if !big_ {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return starlark.Bytes(out), nil
}

// binary.pack_float(x, size=4, order="big").
func binPackFloat(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	size := 4
	order := "big"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x", &x, "size?", &size, "order?", &order); err != nil {
		return nil, err
	}
	f, ok := starlark.AsFloat(x)
	if !ok {
		return nil, fmt.Errorf("%s: got a %s, want a number", b.Name(), x.Type())
	}
	big_, err := byteOrder(b.Name(), order)
	if err != nil {
		return nil, err
	}
	var bo binary.AppendByteOrder = binary.LittleEndian
	if big_ {
		bo = binary.BigEndian
	}
	switch size {
	case 4:
		return starlark.Bytes(bo.AppendUint32(nil, math.Float32bits(float32(f)))), nil
	case 8:
		return starlark.Bytes(bo.AppendUint64(nil, math.Float64bits(f))), nil
	}
	return nil, fmt.Errorf("%s: size %d, want 4 or 8", b.Name(), size)
}

func binHex(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	o, err := octets(b.Name(), v)
	if err != nil {
		return nil, err
	}
	return starlark.String(hex.EncodeToString(o)), nil
}
