package pyexpr

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// mulName is the guarded `*` the compiler substitutes for every binary `*`
// (see guard); users cannot write it by accident.
const mulName = "_pyexpr_mul"

// builtins are the predeclared names beside Starlark's universe when
// strictEval is off: Python built-ins that upstream expressions use and
// Starlark lacks, and a range that cannot be materialised into a memory bomb.
var builtins = starlark.StringDict{
	"range": starlark.NewBuiltin("range", guardedRange),
	"round": starlark.NewBuiltin("round", round),
	"hex":   starlark.NewBuiltin("hex", radix("hex", 16, "0x")),
	"bin":   starlark.NewBuiltin("bin", radix("bin", 2, "0b")),
	"oct":   starlark.NewBuiltin("oct", radix("oct", 8, "0o")),
	"sum":   starlark.NewBuiltin("sum", sum),
	mulName: starlark.NewBuiltin("*", guardedMul),
}

// strictEnv has only the guarded `*`: strict expressions name no built-in.
var strictEnv = starlark.StringDict{mulName: builtins[mulName]}

func init() {
	builtins.Freeze()
	strictEnv.Freeze()
}

// guard replaces every binary `*` in x with a call of the guarded
// multiplication: Starlark runs `"x" * 300000000` as one uncancellable step
// that allocates 300 MB, the step limit cannot stop it.
func guard(x syntax.Expr) syntax.Expr { return guardOps(x, false) }

// guardOps is guard; with plus set it also routes every binary `+` through
// the guarded concatenation, which scripts need (a loop doubling a string
// reaches gigabytes in thirty steps) and expressions, without loops, do not.
func guardOps(x syntax.Expr, plus bool) syntax.Expr {
	var g func(e syntax.Expr) syntax.Expr
	list := func(es []syntax.Expr) {
		for i := range es {
			es[i] = g(es[i])
		}
	}
	g = func(e syntax.Expr) syntax.Expr {
		switch t := e.(type) {
		case *syntax.BinaryExpr:
			t.X, t.Y = g(t.X), g(t.Y)
			if t.Op == syntax.STAR {
				return &syntax.CallExpr{Fn: &syntax.Ident{Name: mulName, NamePos: t.OpPos}, Lparen: t.OpPos, Args: []syntax.Expr{t.X, t.Y}, Rparen: t.OpPos}
			}
			if plus && t.Op == syntax.PLUS {
				return &syntax.CallExpr{Fn: &syntax.Ident{Name: addName, NamePos: t.OpPos}, Lparen: t.OpPos, Args: []syntax.Expr{t.X, t.Y}, Rparen: t.OpPos}
			}
		case *syntax.UnaryExpr:
			if t.X != nil {
				t.X = g(t.X)
			}
		case *syntax.ParenExpr:
			t.X = g(t.X)
		case *syntax.CondExpr:
			t.Cond, t.True, t.False = g(t.Cond), g(t.True), g(t.False)
		case *syntax.CallExpr:
			t.Fn = g(t.Fn)
			for i, a := range t.Args {
				// keyword argument name=value: keep the name
				if b, ok := a.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
					b.Y = g(b.Y)
					continue
				}
				t.Args[i] = g(a)
			}
		case *syntax.DotExpr:
			t.X = g(t.X)
		case *syntax.IndexExpr:
			t.X, t.Y = g(t.X), g(t.Y)
		case *syntax.SliceExpr:
			t.X = g(t.X)
			for _, p := range []*syntax.Expr{&t.Lo, &t.Hi, &t.Step} {
				if *p != nil {
					*p = g(*p)
				}
			}
		case *syntax.ListExpr:
			list(t.List)
		case *syntax.TupleExpr:
			list(t.List)
		case *syntax.DictExpr:
			for _, en := range t.List {
				if d, ok := en.(*syntax.DictEntry); ok {
					d.Key, d.Value = g(d.Key), g(d.Value)
				}
			}
		case *syntax.Comprehension:
			t.Body = g(t.Body)
			for _, c := range t.Clauses {
				switch cl := c.(type) {
				case *syntax.ForClause:
					cl.X = g(cl.X)
				case *syntax.IfClause:
					cl.Cond = g(cl.Cond)
				}
			}
		case *syntax.LambdaExpr:
			t.Body = g(t.Body)
			for i, p := range t.Params {
				if b, ok := p.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
					b.Y = g(b.Y)
					continue
				}
				t.Params[i] = p
			}
		case *syntax.DictEntry:
			t.Key, t.Value = g(t.Key), g(t.Value)
		}
		return e
	}
	return g(x)
}

// MaxIntBits bounds an integer product; CAN values have 64 bits, and a
// product of huge ints is a single step however long it takes.
const MaxIntBits = 4096

func guardedMul(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, y := args[0], args[1]
	if n, ok := repeatLen(x, y); ok && n > MaxSize {
		return nil, fmt.Errorf("repetition of %.0f elements is larger than the %d allowed", n, MaxSize)
	}
	if n, ok := repeatLen(y, x); ok && n > MaxSize {
		return nil, fmt.Errorf("repetition of %.0f elements is larger than the %d allowed", n, MaxSize)
	}
	if a, ok := x.(starlark.Int); ok {
		if b, ok := y.(starlark.Int); ok {
			if a.BigInt().BitLen()+b.BigInt().BitLen() > MaxIntBits {
				return nil, fmt.Errorf("integer product is larger than %d bits", MaxIntBits)
			}
		}
	}
	return starlark.Binary(syntax.STAR, x, y)
}

// repeatLen is the size of seq * n when seq is a sequence and n an int.
func repeatLen(seq, n starlark.Value) (float64, bool) {
	i, ok := n.(starlark.Int)
	if !ok {
		return 0, false
	}
	var l int
	switch s := seq.(type) {
	case starlark.String:
		l = len(s)
	case starlark.Bytes:
		l = len(s)
	case *starlark.List:
		l = s.Len()
	case starlark.Tuple:
		l = s.Len()
	default:
		return 0, false
	}
	f, _ := new(big.Float).SetInt(i.BigInt()).Float64()
	return f * float64(l), true
}

func guardedRange(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r, err := starlark.Call(th, starlark.Universe["range"], args, kwargs)
	if err != nil {
		return nil, err
	}
	if l, ok := r.(starlark.Sequence); ok && l.Len() > MaxSize {
		return nil, fmt.Errorf("range of %d elements is larger than the %d allowed", l.Len(), MaxSize)
	}
	return r, nil
}

// round is Python's round: half to even; an int without ndigits.
func round(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	var nd starlark.Value = starlark.None
	if err := starlark.UnpackPositionalArgs("round", args, kwargs, 1, &x, &nd); err != nil {
		return nil, err
	}
	if i, ok := x.(starlark.Int); ok && nd == starlark.None {
		return i, nil
	}
	f, ok := starlark.AsFloat(x)
	if !ok {
		return nil, fmt.Errorf("round: got %s, want a number", x.Type())
	}
	if nd == starlark.None {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("round: cannot convert %v to an integer", f)
		}
		return starlark.NumberToInt(starlark.Float(math.RoundToEven(f)))
	}
	n, err := starlark.AsInt32(nd)
	if err != nil {
		return nil, fmt.Errorf("round: ndigits: %v", err)
	}
	if i, ok := x.(starlark.Int); ok {
		if n >= 0 {
			return i, nil
		}
		f, _ = starlark.AsFloat(i)
	}
	// Python rounds the exact decimal value; formatting with n digits does.
	if n > 300 || n < -300 {
		return starlark.Float(f), nil
	}
	var r float64
	if n >= 0 {
		r, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'f', n, 64), 64)
	} else {
		p := math.Pow10(-n)
		r = math.RoundToEven(f/p) * p
	}
	return starlark.Float(r), nil
}

func radix(name string, base int, prefix string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var i starlark.Int
		if err := starlark.UnpackPositionalArgs(name, args, kwargs, 1, &i); err != nil {
			return nil, err
		}
		bi := i.BigInt()
		sign := ""
		if bi.Sign() < 0 {
			sign = "-"
			bi.Neg(bi)
		}
		return starlark.String(sign + prefix + bi.Text(base)), nil
	}
}

func sum(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var it starlark.Iterable
	var acc starlark.Value = starlark.MakeInt(0)
	if err := starlark.UnpackPositionalArgs("sum", args, kwargs, 1, &it, &acc); err != nil {
		return nil, err
	}
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for iter.Next(&x) {
		var err error
		if acc, err = starlark.Binary(syntax.PLUS, acc, x); err != nil {
			return nil, fmt.Errorf("sum: %v", err)
		}
	}
	return acc, nil
}

// ToStarlark converts a Go value (decoded JSON, []byte) to a frozen
// Starlark value. JSON numbers without a fraction are ints, as Python's
// json module reads them; []byte becomes a list of ints (bytearray).
func ToStarlark(x any) (starlark.Value, error) {
	v, err := toStarlark(x, 0)
	if err != nil {
		return nil, err
	}
	v.Freeze()
	return v, nil
}

func toStarlark(x any, depth int) (starlark.Value, error) {
	if depth > 64 {
		return nil, fmt.Errorf("value nested deeper than 64 levels")
	}
	switch t := x.(type) {
	case nil, none:
		return starlark.None, nil
	case starlark.Value:
		return t, nil
	case bool:
		return starlark.Bool(t), nil
	case string:
		return starlark.String(t), nil
	case int:
		return starlark.MakeInt(t), nil
	case int8:
		return starlark.MakeInt64(int64(t)), nil
	case int16:
		return starlark.MakeInt64(int64(t)), nil
	case int32:
		return starlark.MakeInt64(int64(t)), nil
	case int64:
		return starlark.MakeInt64(t), nil
	case uint:
		return starlark.MakeUint64(uint64(t)), nil
	case uint8:
		return starlark.MakeInt64(int64(t)), nil
	case uint16:
		return starlark.MakeInt64(int64(t)), nil
	case uint32:
		return starlark.MakeInt64(int64(t)), nil
	case uint64:
		return starlark.MakeUint64(t), nil
	case float32:
		return starlark.Float(t), nil
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return starlark.MakeInt64(int64(t)), nil
		}
		return starlark.Float(t), nil
	case json.Number:
		if i, ok := new(big.Int).SetString(t.String(), 10); ok {
			return starlark.MakeBigInt(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", t.String())
		}
		return starlark.Float(f), nil
	case []byte:
		l := make([]starlark.Value, len(t))
		for i, c := range t {
			l[i] = starlark.MakeInt(int(c))
		}
		return starlark.NewList(l), nil
	case []int:
		l := make([]starlark.Value, len(t))
		for i, c := range t {
			l[i] = starlark.MakeInt(c)
		}
		return starlark.NewList(l), nil
	case []any:
		l := make([]starlark.Value, len(t))
		for i, e := range t {
			v, err := toStarlark(e, depth+1)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return starlark.NewList(l), nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := starlark.NewDict(len(t))
		for _, k := range keys {
			v, err := toStarlark(t[k], depth+1)
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(starlark.String(k), v); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("cannot use a Go %T in an expression", x)
}
