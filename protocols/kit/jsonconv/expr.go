package jsonconv

import "github.com/industryos/gateway/protocols/kit/jsonexpr"

// The ${} evaluator lives in protocols/kit/jsonexpr, shared with the other
// connectors whose converters take the same expressions; these names keep
// this package's API as it was.

// Expr is a compiled value expression (see jsonexpr.Expr).
type Expr = jsonexpr.Expr

// MissingError names the expression that found nothing.
type MissingError = jsonexpr.MissingError

// ErrMissing is matched (errors.Is) by every error about a message that lacks
// what an expression points at.
var ErrMissing = jsonexpr.ErrMissing

// Compile parses s. Text without ${} is a constant.
func Compile(s string) (*Expr, error) { return jsonexpr.Compile(s) }

// MustCompile is Compile for expressions known at build time.
func MustCompile(s string) *Expr { return jsonexpr.MustCompile(s) }

func appendText(b []byte, v any) []byte { return jsonexpr.AppendText(b, v) }
