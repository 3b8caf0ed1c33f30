package script

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// entry is the script's top-level function name, which must take one
// parameter; the error is positioned at the definition when there is one.
func (s *Script) entry(name string) (*starlark.Function, *RunError) {
	v, ok := s.globals[name]
	if !ok {
		return nil, &RunError{File: s.File, Msg: fmt.Sprintf("defines no %s(...): want a function of one parameter (def %s(event):)", name, name)}
	}
	fn, ok := v.(*starlark.Function)
	if !ok || fn.NumParams() != 1 {
		re := &RunError{File: s.File, Msg: fmt.Sprintf("%s must be a function of one parameter (def %s(event):)", name, name)}
		if ok {
			pos := fn.Position()
			re.Line, re.Col = int(pos.Line), int(pos.Col)
		}
		return nil, re
	}
	return fn, nil
}

// Has reports whether the script defines name as a function of one
// parameter.
func (s *Script) Has(name string) bool {
	_, err := s.entry(name)
	return err == nil
}

// Call runs the script's function name (Options.Func, or any top-level
// function of one parameter) with one argument: a read-only struct whose
// attributes are attrs' keys, called kind in the script's error messages
// ("event has no .x attribute"). Values are decoded-JSON-like Go values,
// converted as pyexpr.ToStarlark does. The result comes back as JSON
// ("null" for None), so the caller sees what a JSON round trip gives:
// dicts with string keys, lists, numbers, strings, bools. Errors are
// *RunError, counted in Stats as the converters' are; the step limit holds
// as for any call.
func (s *Script) Call(name, kind string, attrs map[string]any) (json.RawMessage, error) {
	fn, rerr := s.entry(name)
	if rerr != nil {
		return nil, s.fail(rerr)
	}
	d := make(starlark.StringDict, len(attrs))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v, err := pyexpr.ToStarlark(attrs[k])
		if err != nil {
			return nil, s.failAt(fn, "cannot pass %s.%s: %v", kind, k, err)
		}
		d[k] = v
	}
	arg := starlarkstruct.FromStringDict(starlark.String(kind), d)
	out, err := s.call(fn, arg)
	if err != nil {
		return nil, err
	}
	raw, err := encodeJSON(out)
	if err != nil {
		return nil, s.failAt(fn, "returned %s, which is not JSON-like: %v", describe(out), err)
	}
	return raw, nil
}
