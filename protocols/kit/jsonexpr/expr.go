// Package jsonexpr evaluates upstream's ${} value expressions against a
// decoded JSON message: ${key} reads a top-level member, anything else is a
// JSONPath (${$.a[0].b}, ${a.b}, ${$[0].sensor}); text outside ${} is kept,
// so "${a}-${b}" is a template. The MQTT, Request and REST converters share
// it so the same expression means the same thing in every connector.
package jsonexpr

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMissing is matched (errors.Is) by every error about a message that lacks
// what an expression points at, so callers can count malformed payloads apart
// from config mistakes.
var ErrMissing = errors.New("missing key")

// MissingError names the expression that found nothing.
type MissingError struct{ Expr string }

func (e *MissingError) Error() string { return fmt.Sprintf("%s: %v", e.Expr, ErrMissing) }

// Is lets errors.Is(err, ErrMissing) work without exposing the sentinel's text.
func (e *MissingError) Is(target error) bool { return target == ErrMissing }

// step is one hop of a JSONPath: an object key or a list index.
type step struct {
	key   string
	idx   int
	isIdx bool
}

// Part is a literal (Ref false) or a ${} reference of a compiled Expr.
type Part struct {
	Lit  string
	Ref  bool
	Key  string // the text between ${ and }, tried first as a top-level key
	path []step
}

// Expr is a compiled value expression. It is immutable and safe for
// concurrent use; compiling once keeps parsing off the per-message path.
type Expr struct {
	src string
	ops []Part
}

// Compile parses s. Text without ${} is a constant.
func Compile(s string) (*Expr, error) {
	e := &Expr{src: s}
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			if rest != "" {
				e.ops = append(e.ops, Part{Lit: rest})
			}
			return e, nil
		}
		if i > 0 {
			e.ops = append(e.ops, Part{Lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("expression %q: unclosed ${", s)
		}
		inner := rest[i+2 : i+j]
		if strings.TrimSpace(inner) == "" {
			return nil, fmt.Errorf("expression %q: empty ${}", s)
		}
		path, err := parsePath(inner)
		if err != nil {
			return nil, fmt.Errorf("expression %q: %v", s, err)
		}
		e.ops = append(e.ops, Part{Ref: true, Key: inner, path: path})
		rest = rest[i+j+1:]
	}
}

// MustCompile is Compile for expressions known at build time.
func MustCompile(s string) *Expr {
	e, err := Compile(s)
	if err != nil {
		panic(err)
	}
	return e
}

// Parts returns the compiled literals and references, in order; callers
// must not modify them (the MQTT converter's fast path reads them).
func (e *Expr) Parts() []Part { return e.ops }

// Lookup resolves one reference against a decoded message; ok is false
// when the message lacks it. It is Eval for a single ${}.
func (o *Part) Lookup(msg any) (any, bool) { return o.lookup(msg) }

// String returns the source text.
func (e *Expr) String() string { return e.src }

// IsConstant reports whether the expression has no ${} reference.
func (e *Expr) IsConstant() bool {
	for _, o := range e.ops {
		if o.Ref {
			return false
		}
	}
	return true
}

// parsePath accepts a.b[0].c, $.a[0].b, $[0].a and ['key with.dot'].
func parsePath(p string) ([]step, error) {
	p = strings.TrimPrefix(p, "$")
	p = strings.TrimPrefix(p, ".")
	var steps []step
	for len(p) > 0 {
		switch p[0] {
		case '.':
			p = p[1:]
			if p == "" {
				return nil, errors.New("path ends with '.'")
			}
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return nil, errors.New("unclosed '['")
			}
			in := p[1:end]
			if len(in) >= 2 && (in[0] == '\'' || in[0] == '"') && in[len(in)-1] == in[0] {
				steps = append(steps, step{key: in[1 : len(in)-1]})
			} else {
				n, err := strconv.Atoi(strings.TrimSpace(in))
				if err != nil || n < 0 {
					return nil, fmt.Errorf("bad index [%s]", in)
				}
				steps = append(steps, step{idx: n, isIdx: true})
			}
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			steps = append(steps, step{key: p[:end]})
			p = p[end:]
		}
	}
	return steps, nil
}

func (o *Part) lookup(msg any) (any, bool) {
	// Upstream tries the plain key before JSONPath, so keys containing dots
	// or spaces still resolve.
	if m, ok := msg.(map[string]any); ok {
		if v, ok := m[o.Key]; ok {
			return v, true
		}
	}
	cur := msg
	for _, s := range o.path {
		if s.isIdx {
			l, ok := cur.([]any)
			if !ok || s.idx >= len(l) {
				return nil, false
			}
			cur = l[s.idx]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[s.key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Eval evaluates against a decoded JSON message. A lone ${} returns the value
// with its JSON type kept (so numbers stay numbers); a template returns a string.
func (e *Expr) Eval(msg any) (any, error) {
	if len(e.ops) == 1 {
		o := &e.ops[0]
		if !o.Ref {
			return o.Lit, nil
		}
		v, ok := o.lookup(msg)
		if !ok {
			return nil, &MissingError{Expr: e.src}
		}
		return v, nil
	}
	if len(e.ops) == 0 {
		return "", nil
	}
	var b []byte
	for i := range e.ops {
		o := &e.ops[i]
		if !o.Ref {
			b = append(b, o.Lit...)
			continue
		}
		v, ok := o.lookup(msg)
		if !ok {
			return nil, &MissingError{Expr: e.src}
		}
		b = AppendText(b, v)
	}
	return string(b), nil
}

// EvalString evaluates and renders the result as text.
func (e *Expr) EvalString(msg any) (string, error) {
	v, err := e.Eval(msg)
	if err != nil {
		return "", err
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return string(AppendText(nil, v)), nil
}

// AppendText renders a JSON value the way it reads in the message, so a
// template of numbers keeps their original spelling.
func AppendText(b []byte, v any) []byte {
	switch t := v.(type) {
	case string:
		return append(b, t...)
	case json.Number:
		return append(b, t...)
	case float64:
		return strconv.AppendFloat(b, t, 'f', -1, 64)
	case bool:
		return strconv.AppendBool(b, t)
	case nil:
		return append(b, "null"...)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, fmt.Sprint(v)...)
	}
	return append(b, j...)
}
