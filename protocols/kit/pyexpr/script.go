package pyexpr

import (
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// addName is the guarded `+` GuardFile substitutes in scripts.
const addName = "_pyexpr_add"

// scriptBuiltins are builtins plus the guarded `+`: what a script file
// (protocols/kit/script) runs with beside Starlark's universe.
var scriptBuiltins = func() starlark.StringDict {
	d := starlark.StringDict{addName: starlark.NewBuiltin("+", guardedAdd)}
	for k, v := range builtins {
		d[k] = v
	}
	d.Freeze()
	return d
}()

// ScriptBuiltins are the predeclared names a file guarded by GuardFile
// needs (the guarded `*` and `+`), with the Python built-ins expressions
// have (range bounded, round, hex, bin, oct, sum). The dict is frozen:
// copy it to add more.
func ScriptBuiltins() starlark.StringDict { return scriptBuiltins }

// GuardFile rewrites a parsed script in place so that every `*` and `+`
// goes through the size-checked built-ins: a repetition or a concatenation
// is one interpreter step however large its result, so the step limit
// alone cannot stop `s = s + s` in a loop from taking all memory.
// Augmented `*=` and `+=` are rewritten to `x = x * y` when their target is
// a plain name; on any other target they are refused (the error is a
// *syntax.Error with the position), since evaluating the target twice
// could differ from Python's single evaluation.
func GuardFile(f *syntax.File) error {
	var firstErr error
	var stmts func([]syntax.Stmt)
	ex := func(e syntax.Expr) syntax.Expr {
		if e == nil {
			return nil
		}
		return guardOps(e, true)
	}
	stmts = func(list []syntax.Stmt) {
		for _, s := range list {
			switch t := s.(type) {
			case *syntax.AssignStmt:
				t.LHS = ex(t.LHS)
				t.RHS = ex(t.RHS)
				if t.Op == syntax.STAR_EQ || t.Op == syntax.PLUS_EQ {
					id, ok := t.LHS.(*syntax.Ident)
					if !ok {
						if firstErr == nil {
							firstErr = syntax.Error{Pos: t.OpPos, Msg: fmt.Sprintf("%s on anything but a plain name is not supported in scripts; write x = x %s y", t.Op, t.Op.String()[:1])}
						}
						continue
					}
					name := mulName
					if t.Op == syntax.PLUS_EQ {
						name = addName
					}
					self := &syntax.Ident{NamePos: id.NamePos, Name: id.Name}
					t.RHS = &syntax.CallExpr{Fn: &syntax.Ident{Name: name, NamePos: t.OpPos}, Lparen: t.OpPos, Args: []syntax.Expr{self, t.RHS}, Rparen: t.OpPos}
					t.Op = syntax.EQ
				}
			case *syntax.DefStmt:
				for i, p := range t.Params {
					if b, ok := p.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
						b.Y = ex(b.Y)
						continue
					}
					t.Params[i] = p
				}
				stmts(t.Body)
			case *syntax.ExprStmt:
				t.X = ex(t.X)
			case *syntax.ForStmt:
				t.X = ex(t.X)
				stmts(t.Body)
			case *syntax.WhileStmt:
				t.Cond = ex(t.Cond)
				stmts(t.Body)
			case *syntax.IfStmt:
				t.Cond = ex(t.Cond)
				stmts(t.True)
				stmts(t.False)
			case *syntax.ReturnStmt:
				t.Result = ex(t.Result)
			}
		}
	}
	stmts(f.Stmts)
	return firstErr
}

// guardedAdd is `+` with the size check guardedMul makes for `*`.
func guardedAdd(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, y := args[0], args[1]
	if n := seqLen(x) + seqLen(y); n > MaxSize {
		return nil, fmt.Errorf("concatenation of %d elements is larger than the %d allowed", n, MaxSize)
	}
	return starlark.Binary(syntax.PLUS, x, y)
}

// seqLen is the length of a string, bytes, list or tuple; 0 for anything else.
func seqLen(v starlark.Value) int {
	switch s := v.(type) {
	case starlark.String:
		return len(s)
	case starlark.Bytes:
		return len(s)
	case *starlark.List:
		return s.Len()
	case starlark.Tuple:
		return s.Len()
	}
	return 0
}
