// Package pyexpr evaluates upstream's Python expressions (the `expression`
// and `dataExpression` keys that upstream runs with Python's eval) with
// go.starlark.net, a sandboxed Python dialect without I/O. An expression is
// compiled once, at config load, into a Starlark lambda over the variables
// it reads; each evaluation calls it on a pooled thread with a step limit.
// Arithmetic over ints and floats (`value * 10`, `value / 4`,
// `bool(value & 0b100)`, `a if c else b`) takes a fast path that gives the
// same result without entering the interpreter.
package pyexpr

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/industryos/gateway/protocols"
)

// Limits.
const (
	// DefaultMaxSteps bounds one evaluation. Starlark has no while loop, so
	// only comprehensions iterate; one step is roughly one bytecode.
	DefaultMaxSteps = 100_000
	// MaxSourceLen bounds an expression's source.
	MaxSourceLen = 4096
	// MaxSize bounds what one repetition (`s * n`) or range may produce:
	// elements of a list or tuple, bytes of a string.
	MaxSize = 1 << 20
)

// ErrEval marks a failed evaluation (a Python run-time error: unknown name,
// wrong types, division by zero, step limit); errors.Is matches *EvalError.
var ErrEval = errors.New("expression failed")

// EvalError is a failed evaluation of the expression Source.
type EvalError struct {
	Source string
	Msg    string
}

func (e *EvalError) Error() string { return fmt.Sprintf("expression %q: %s", e.Source, e.Msg) }

// Is makes errors.Is(err, ErrEval) true.
func (e *EvalError) Is(target error) bool { return target == ErrEval }

func (e *Expr) fail(format string, a ...any) error {
	return &EvalError{Source: e.Source, Msg: fmt.Sprintf(format, a...)}
}

// Options say how to compile.
type Options struct {
	// Vars, when not nil, are the only variables the expression may read;
	// any other name is a compile error. Nil: every name that is not a
	// built-in is a variable, supplied at evaluation (RPC params).
	Vars []string
	// Strict mirrors upstream's strictEval (eval with no __builtins__):
	// built-in functions such as bool or len are refused at compile time.
	Strict bool
	// MaxSteps bounds one evaluation (0: DefaultMaxSteps).
	MaxSteps uint64
}

// Expr is a compiled expression, safe for concurrent use.
type Expr struct {
	Source string
	names  []string
	fn     *starlark.Function
	fast   *node
	pool   sync.Pool
}

// Names are the variables the expression reads, in the order Eval takes them.
func (e *Expr) Names() []string { return e.names }

// Uses reports whether the expression reads the variable name.
func (e *Expr) Uses(name string) bool { return slices.Contains(e.names, name) }

// Fast reports whether the expression has a fast path (int/float arithmetic).
func (e *Expr) Fast() bool { return e.fast != nil }

// SyntaxError is a compile error with its position in the source.
type SyntaxError struct {
	Source string
	Line   int // 1-based; 0 when unknown
	Col    int // 1-based; 0 when unknown
	Msg    string
}

func (e *SyntaxError) Error() string {
	switch {
	case e.Line > 1:
		return fmt.Sprintf("invalid expression %q: line %d column %d: %s", e.Source, e.Line, e.Col, e.Msg)
	case e.Col > 0:
		return fmt.Sprintf("invalid expression %q: column %d: %s", e.Source, e.Col, e.Msg)
	}
	return fmt.Sprintf("invalid expression %q: %s", e.Source, e.Msg)
}

var fileOptions = &syntax.FileOptions{}

// Compile parses src as a Python expression. Errors are *SyntaxError.
func Compile(src string, opts Options) (*Expr, error) {
	if len(src) > MaxSourceLen {
		return nil, &SyntaxError{Source: src[:40] + "…", Msg: fmt.Sprintf("%d characters is longer than the %d allowed", len(src), MaxSourceLen)}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &SyntaxError{Source: src, Msg: "empty expression"}
	}
	// Python's eval accepts surrounding blank space and newlines.
	body := strings.TrimSpace(src)
	names, err := freeNames(src, body, opts)
	if err != nil {
		return nil, err
	}
	e := &Expr{Source: src, names: names}
	// Second parse: the resolver mutates the tree, and the lambda needs a
	// fresh one whose only free names are its parameters.
	x, err := fileOptions.ParseExpr("expr", body, 0)
	if err != nil {
		return nil, syntaxError(src, err)
	}
	e.fast = compileFast(x, names, opts.Strict)
	x = guard(x)
	lam := &syntax.LambdaExpr{Body: x}
	for _, n := range names {
		lam.Params = append(lam.Params, &syntax.Ident{Name: n})
	}
	steps := opts.MaxSteps
	if steps == 0 {
		steps = DefaultMaxSteps
	}
	e.pool.New = func() any {
		th := &starlark.Thread{Name: "expression", Print: func(*starlark.Thread, string) {}}
		th.SetMaxExecutionSteps(steps)
		return th
	}
	th := e.pool.Get().(*starlark.Thread)
	defer e.pool.Put(th)
	env := builtins
	if opts.Strict {
		env = strictEnv
	}
	v, err := starlark.EvalExprOptions(fileOptions, th, lam, env)
	if err != nil {
		return nil, syntaxError(src, err)
	}
	e.fn = v.(*starlark.Function)
	e.fn.Freeze()
	return e, nil
}

// freeNames resolves src and returns the names it reads that are not
// built-ins (sorted), refusing names outside opts.Vars and, in strict mode,
// built-in functions.
func freeNames(src, body string, opts Options) ([]string, error) {
	x, err := fileOptions.ParseExpr("expr", body, 0)
	if err != nil {
		return nil, syntaxError(src, err)
	}
	isBuiltin := func(name string) bool {
		if opts.Strict {
			return name == "True" || name == "False" || name == "None"
		}
		return starlark.Universe.Has(name) || builtins.Has(name)
	}
	// Every name that is not a built-in resolves as "predeclared": those
	// are the expression's variables.
	if _, err := resolve.ExprOptions(fileOptions, x, func(n string) bool { return !isBuiltin(n) }, isBuiltin); err != nil {
		return nil, syntaxError(src, err)
	}
	var seen []*syntax.Ident // first use of each name, in source order
	syntax.Walk(x, func(n syntax.Node) bool {
		if id, ok := n.(*syntax.Ident); ok {
			if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Predeclared &&
				!slices.ContainsFunc(seen, func(s *syntax.Ident) bool { return s.Name == id.Name }) {
				seen = append(seen, id)
			}
		}
		return true
	})
	var names []string
	for _, id := range seen {
		n, pos := id.Name, id.NamePos
		msg := ""
		switch {
		case opts.Strict && (starlark.Universe.Has(n) || builtins.Has(n)):
			msg = fmt.Sprintf("%s is a built-in function: strictEval (default true) disables them, as upstream; set \"strictEval\": false", n)
		case opts.Vars != nil && !slices.Contains(opts.Vars, n):
			msg = fmt.Sprintf("name %q is not defined (variables: %s)", n, strings.Join(opts.Vars, ", "))
		}
		if msg != "" {
			return nil, &SyntaxError{Source: src, Line: int(pos.Line), Col: int(pos.Col), Msg: msg}
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func syntaxError(src string, err error) error {
	se := &SyntaxError{Source: src, Msg: err.Error()}
	var serr syntax.Error
	var rerrs resolve.ErrorList
	switch {
	case errors.As(err, &serr):
		se.Line, se.Col, se.Msg = int(serr.Pos.Line), int(serr.Pos.Col), serr.Msg
	case errors.As(err, &rerrs) && len(rerrs) > 0:
		se.Line, se.Col, se.Msg = int(rerrs[0].Pos.Line), int(rerrs[0].Pos.Col), rerrs[0].Msg
	}
	if strings.Contains(se.Msg, "undefined:") && strings.Contains(se.Msg, "True") {
		se.Msg += " (Python spells booleans True and False)"
	}
	return se
}

// Arg is the value of one variable: a scalar Value, or, when Go is not nil,
// a Go value (nested maps and lists of RPC params; []byte becomes a list
// of ints, as Python's bytearray indexes to ints).
type Arg struct {
	Value protocols.Value
	Go    any
}

// Eval evaluates e with args in the order of Names and returns a scalar.
// A result that is not a bool, number or string (None, a list, a dict), or
// an int beyond 64 bits, is an error.
func (e *Expr) Eval(args []Arg) (protocols.Value, error) {
	if len(args) != len(e.names) {
		return protocols.Value{}, e.fail("%d values for %d variables", len(args), len(e.names))
	}
	if e.fast != nil {
		if v, ok := e.fast.evalTop(args); ok {
			return v, nil
		}
	}
	return e.slow(args)
}

// EvalMap evaluates e with the variables taken from vars (for example
// RPC params). A variable missing from vars is an error naming it.
func (e *Expr) EvalMap(vars map[string]any) (protocols.Value, error) {
	args := make([]Arg, len(e.names))
	for i, n := range e.names {
		v, ok := vars[n]
		if !ok {
			have := make([]string, 0, len(vars))
			for k := range vars {
				have = append(have, k)
			}
			sort.Strings(have)
			return protocols.Value{}, e.fail("name %q is not defined (the data has: %s)", n, strings.Join(have, ", "))
		}
		if s, ok := scalarOf(v); ok {
			args[i].Value = s
		} else {
			args[i].Go = v
			if v == nil {
				args[i].Go = none{}
			}
		}
	}
	return e.Eval(args)
}

// scalarOf converts decoded JSON scalars the way Python's json module types
// them: numbers without a fraction are ints.
func scalarOf(v any) (protocols.Value, bool) {
	switch t := v.(type) {
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return protocols.Int(int64(t)), true
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return protocols.Int(i), true
		}
		if !strings.ContainsAny(t.String(), ".eE") {
			return protocols.Value{}, false // a big int: ToStarlark keeps it exact
		}
		if f, err := t.Float64(); err == nil {
			return protocols.Float(f), true
		}
		return protocols.Value{}, false
	}
	s, ok := protocols.FromGo(v)
	if ok && s.Kind == protocols.KindUint && s.U <= math.MaxInt64 {
		s = protocols.Int(int64(s.U))
	}
	return s, ok
}

// none marks a JSON null in an Arg.
type none struct{}

func (e *Expr) slow(args []Arg) (protocols.Value, error) {
	tuple := make(starlark.Tuple, len(args))
	for i, a := range args {
		v, err := argValue(a)
		if err != nil {
			return protocols.Value{}, e.fail("%s: %v", e.names[i], err)
		}
		tuple[i] = v
	}
	th := e.pool.Get().(*starlark.Thread)
	// Steps add up across calls and a step-limit cancellation sticks.
	th.Steps = 0
	th.Uncancel()
	out, err := starlark.Call(th, e.fn, tuple, nil)
	e.pool.Put(th)
	if err != nil {
		msg := err.Error()
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			msg = ee.Msg
		}
		return protocols.Value{}, e.fail("%s", msg)
	}
	v, err := FromStarlark(out)
	if err != nil {
		return protocols.Value{}, e.fail("%v", err)
	}
	return v, nil
}

// FromStarlark converts a scalar Starlark result.
func FromStarlark(x starlark.Value) (protocols.Value, error) {
	switch t := x.(type) {
	case starlark.Bool:
		return protocols.Bool(bool(t)), nil
	case starlark.Int:
		if i, ok := t.Int64(); ok {
			return protocols.Int(i), nil
		}
		if u, ok := t.Uint64(); ok {
			return protocols.Uint(u), nil
		}
		return protocols.Value{}, fmt.Errorf("result %s does not fit in 64 bits", shorten(t.String()))
	case starlark.Float:
		return protocols.Float(float64(t)), nil
	case starlark.String:
		return protocols.String(string(t)), nil
	case starlark.Bytes:
		return protocols.String(string(t)), nil
	case starlark.NoneType:
		return protocols.Value{}, fmt.Errorf("result is None, want a bool, number or string")
	}
	return protocols.Value{}, fmt.Errorf("result is a %s (%s), want a bool, number or string", x.Type(), shorten(x.String()))
}

func shorten(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func argValue(a Arg) (starlark.Value, error) {
	if a.Go != nil {
		return ToStarlark(a.Go)
	}
	return scalar(a.Value), nil
}

func scalar(v protocols.Value) starlark.Value {
	switch v.Kind {
	case protocols.KindBool:
		return starlark.Bool(v.I != 0)
	case protocols.KindInt:
		return starlark.MakeInt64(v.I)
	case protocols.KindUint:
		return starlark.MakeUint64(v.U)
	case protocols.KindFloat:
		return starlark.Float(v.F)
	case protocols.KindString:
		return starlark.String(v.S)
	}
	return starlark.None
}
