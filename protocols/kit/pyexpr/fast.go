package pyexpr

import (
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"go.starlark.net/syntax"

	"github.com/industryos/gateway/protocols"
)

// The fast path evaluates int and float arithmetic, comparisons, `not`,
// `and`/`or`, `x if c else y` and bool() without the interpreter, with
// Python's semantics (floor division and modulo, true division). Whenever an
// operand is of another kind, an int overflows 64 bits, or an operation
// would raise an error (division by zero), it gives up and the expression
// runs in Starlark, which gives the same answer or the proper error.

type op uint8

const (
	opArg op = iota
	opLit
	opNeg
	opPos
	opInvert
	opNot
	opBool
	opAnd
	opOr
	opCond
	opBin
)

type node struct {
	op   op
	tok  syntax.Token // opBin
	arg  int          // opArg
	lit  num          // opLit
	a, b *node
	c    *node // opCond: a if c else b
}

type kind uint8

const (
	kInt kind = iota + 1
	kFloat
	kBool
)

type num struct {
	k kind
	i int64
	f float64
}

// compileFast builds the fast tree for x, or nil when x uses anything else.
func compileFast(x syntax.Expr, names []string, strict bool) *node {
	var c func(e syntax.Expr) *node
	c = func(e syntax.Expr) *node {
		switch t := e.(type) {
		case *syntax.ParenExpr:
			return c(t.X)
		case *syntax.Ident:
			if i := slices.Index(names, t.Name); i >= 0 {
				return &node{op: opArg, arg: i}
			}
			switch t.Name {
			case "True":
				return &node{op: opLit, lit: num{k: kBool, i: 1}}
			case "False":
				return &node{op: opLit, lit: num{k: kBool}}
			}
		case *syntax.Literal:
			switch v := t.Value.(type) {
			case int64:
				return &node{op: opLit, lit: num{k: kInt, i: v}}
			case float64:
				return &node{op: opLit, lit: num{k: kFloat, f: v}}
			}
		case *syntax.UnaryExpr:
			a := c(t.X)
			if a == nil {
				return nil
			}
			switch t.Op {
			case syntax.MINUS:
				return &node{op: opNeg, a: a}
			case syntax.PLUS:
				return &node{op: opPos, a: a}
			case syntax.TILDE:
				return &node{op: opInvert, a: a}
			case syntax.NOT:
				return &node{op: opNot, a: a}
			}
		case *syntax.BinaryExpr:
			a, b := c(t.X), c(t.Y)
			if a == nil || b == nil {
				return nil
			}
			switch t.Op {
			case syntax.AND:
				return &node{op: opAnd, a: a, b: b}
			case syntax.OR:
				return &node{op: opOr, a: a, b: b}
			case syntax.PLUS, syntax.MINUS, syntax.STAR, syntax.SLASH, syntax.SLASHSLASH, syntax.PERCENT,
				syntax.AMP, syntax.PIPE, syntax.CIRCUMFLEX, syntax.LTLT, syntax.GTGT,
				syntax.EQL, syntax.NEQ, syntax.LT, syntax.LE, syntax.GT, syntax.GE:
				return &node{op: opBin, tok: t.Op, a: a, b: b}
			}
		case *syntax.CondExpr:
			a, b, cond := c(t.True), c(t.False), c(t.Cond)
			if a == nil || b == nil || cond == nil {
				return nil
			}
			return &node{op: opCond, a: a, b: b, c: cond}
		case *syntax.CallExpr:
			if id, ok := t.Fn.(*syntax.Ident); ok && id.Name == "bool" && !strict && !slices.Contains(names, "bool") && len(t.Args) == 1 {
				if _, kw := t.Args[0].(*syntax.BinaryExpr); kw && t.Args[0].(*syntax.BinaryExpr).Op == syntax.EQ {
					return nil
				}
				if a := c(t.Args[0]); a != nil {
					return &node{op: opBool, a: a}
				}
			}
		}
		return nil
	}
	return c(x)
}

// evalTop runs the fast tree; ok is false when the interpreter must run.
func (n *node) evalTop(args []Arg) (protocols.Value, bool) {
	if n.op == opArg {
		// A bare variable is its value, whatever its kind.
		if a := args[n.arg]; a.Go == nil && a.Value.Kind != protocols.KindNull {
			return a.Value, true
		}
		return protocols.Value{}, false
	}
	r, ok := n.eval(args)
	if !ok {
		return protocols.Value{}, false
	}
	switch r.k {
	case kInt:
		return protocols.Int(r.i), true
	case kFloat:
		return protocols.Float(r.f), true
	case kBool:
		return protocols.Bool(r.i != 0), true
	}
	return protocols.Value{}, false
}

func (r num) truth() bool {
	if r.k == kFloat {
		return r.f != 0
	}
	return r.i != 0
}

func (n *node) eval(args []Arg) (num, bool) {
	switch n.op {
	case opArg:
		v := args[n.arg]
		if v.Go != nil {
			return num{}, false
		}
		switch v.Value.Kind {
		case protocols.KindInt:
			return num{k: kInt, i: v.Value.I}, true
		case protocols.KindFloat:
			if math.IsNaN(v.Value.F) {
				return num{}, false // Starlark orders NaN; leave it to Starlark
			}
			return num{k: kFloat, f: v.Value.F}, true
		case protocols.KindBool:
			return num{k: kBool, i: v.Value.I}, true
		case protocols.KindUint:
			// Unsigned register values: Python has one int type, so they
			// compare like ints; above int64 Starlark's big ints take over.
			if v.Value.U <= math.MaxInt64 {
				return num{k: kInt, i: int64(v.Value.U)}, true
			}
		}
		return num{}, false
	case opLit:
		return n.lit, true
	case opCond:
		c, ok := n.c.eval(args)
		if !ok {
			return num{}, false
		}
		if c.truth() {
			return n.a.eval(args)
		}
		return n.b.eval(args)
	case opAnd, opOr:
		a, ok := n.a.eval(args)
		if !ok {
			return num{}, false
		}
		if a.truth() == (n.op == opOr) {
			return a, true
		}
		return n.b.eval(args)
	}
	a, ok := n.a.eval(args)
	if !ok {
		return num{}, false
	}
	switch n.op {
	case opNot:
		return boolNum(!a.truth()), true
	case opBool:
		return boolNum(a.truth()), true
	case opNeg:
		switch {
		case a.k == kInt && a.i != math.MinInt64:
			return num{k: kInt, i: -a.i}, true
		case a.k == kFloat:
			return num{k: kFloat, f: -a.f}, true
		}
		return num{}, false
	case opPos:
		if a.k == kBool {
			return num{}, false
		}
		return a, true
	case opInvert:
		if a.k == kInt {
			return num{k: kInt, i: ^a.i}, true
		}
		return num{}, false
	}
	b, ok := n.b.eval(args)
	if !ok || a.k == kBool || b.k == kBool {
		// Starlark's bools are not numbers; == between bools is fine.
		if ok && a.k == kBool && b.k == kBool && (n.tok == syntax.EQL || n.tok == syntax.NEQ) {
			return boolNum((a.i == b.i) == (n.tok == syntax.EQL)), true
		}
		return num{}, false
	}
	if a.k == kInt && b.k == kInt {
		return intOp(n.tok, a.i, b.i)
	}
	return floatOp(n.tok, a, b)
}

func boolNum(b bool) num {
	if b {
		return num{k: kBool, i: 1}
	}
	return num{k: kBool}
}

func intOp(tok syntax.Token, x, y int64) (num, bool) {
	i := func(v int64) (num, bool) { return num{k: kInt, i: v}, true }
	switch tok {
	case syntax.PLUS:
		s := x + y
		if (s > x) != (y > 0) {
			return num{}, false
		}
		return i(s)
	case syntax.MINUS:
		d := x - y
		if (d < x) != (y > 0) {
			return num{}, false
		}
		return i(d)
	case syntax.STAR:
		hi, lo := bits.Mul64(uint64(abs(x)), uint64(abs(y)))
		if x == math.MinInt64 || y == math.MinInt64 || hi != 0 || lo > math.MaxInt64 {
			return num{}, false
		}
		p := int64(lo)
		if (x < 0) != (y < 0) {
			p = -p
		}
		return i(p)
	case syntax.SLASH:
		if y == 0 || abs(x) > 1<<53 || abs(y) > 1<<53 {
			return num{}, false
		}
		return num{k: kFloat, f: float64(x) / float64(y)}, true
	case syntax.SLASHSLASH:
		if y == 0 || (x == math.MinInt64 && y == -1) {
			return num{}, false
		}
		q := x / y
		if (x%y != 0) && ((x < 0) != (y < 0)) {
			q--
		}
		return i(q)
	case syntax.PERCENT:
		if y == 0 || y == -1 {
			return num{}, false
		}
		m := x % y
		if m != 0 && ((m < 0) != (y < 0)) {
			m += y
		}
		return i(m)
	case syntax.AMP:
		return i(x & y)
	case syntax.PIPE:
		return i(x | y)
	case syntax.CIRCUMFLEX:
		return i(x ^ y)
	case syntax.LTLT:
		if y < 0 || y > 62 {
			return num{}, false
		}
		r := x << uint(y)
		if r>>uint(y) != x {
			return num{}, false
		}
		return i(r)
	case syntax.GTGT:
		if y < 0 || y > 63 {
			return num{}, false
		}
		return i(x >> uint(y))
	}
	return compare(tok, x, y)
}

// compare is the comparison operators for ints and floats alike.
func compare[T int64 | float64](tok syntax.Token, x, y T) (num, bool) {
	switch tok {
	case syntax.EQL:
		return boolNum(x == y), true
	case syntax.NEQ:
		return boolNum(x != y), true
	case syntax.LT:
		return boolNum(x < y), true
	case syntax.LE:
		return boolNum(x <= y), true
	case syntax.GT:
		return boolNum(x > y), true
	case syntax.GE:
		return boolNum(x >= y), true
	}
	return num{}, false
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// floatOp handles float (or mixed int and float) operands: + - * / and
// comparisons. Floor division and modulo of floats go to Starlark.
func floatOp(tok syntax.Token, a, b num) (num, bool) {
	x, ok1 := a.float()
	y, ok2 := b.float()
	if !ok1 || !ok2 {
		return num{}, false
	}
	f := func(v float64) (num, bool) { return num{k: kFloat, f: v}, true }
	switch tok {
	case syntax.PLUS:
		return f(x + y)
	case syntax.MINUS:
		return f(x - y)
	case syntax.STAR:
		return f(x * y)
	case syntax.SLASH:
		if y == 0 {
			return num{}, false
		}
		return f(x / y)
	}
	return compare(tok, x, y)
}

// float converts exactly; ints beyond 2^53 and NaN go to Starlark.
func (r num) float() (float64, bool) {
	if r.k == kInt {
		if abs(r.i) > 1<<53 {
			return 0, false
		}
		return float64(r.i), true
	}
	if math.IsNaN(r.f) {
		return 0, false
	}
	return r.f, true
}

// describe is for tests: the fast tree as text.
func (n *node) describe() string {
	var b strings.Builder
	var w func(n *node)
	w = func(n *node) {
		switch n.op {
		case opArg:
			b.WriteString("$" + strconv.Itoa(n.arg))
		case opLit:
			b.WriteString("lit")
		default:
			b.WriteString("(")
			if n.op == opBin {
				b.WriteString(n.tok.String())
			} else {
				b.WriteString(strconv.Itoa(int(n.op)))
			}
			for _, c := range []*node{n.a, n.b, n.c} {
				if c != nil {
					b.WriteString(" ")
					w(c)
				}
			}
			b.WriteString(")")
		}
	}
	w(n)
	return b.String()
}
