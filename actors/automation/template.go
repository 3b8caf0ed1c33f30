package automation

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/industryos/gateway/protocols"
)

// Templates: a string param may hold {{name}} placeholders for the event's
// variables (value, device, key, ts, event, task) and the task's vars. A
// param that is exactly one placeholder takes the variable's typed value
// (a number stays a number); placeholders inside text are replaced by the
// value's text.
var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// checkTemplates reports placeholders naming unknown variables.
func checkTemplates(v any, path string, vars []string) []error {
	var errs []error
	switch x := v.(type) {
	case string:
		for _, m := range placeholder.FindAllStringSubmatch(x, -1) {
			if !contains(vars, m[1]) {
				errs = append(errs, fmt.Errorf("%s: {{%s}} names no variable (have %s)", path, m[1], strings.Join(vars, ", ")))
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			errs = append(errs, checkTemplates(x[k], path+"."+k, vars)...)
		}
	case []any:
		for i, e := range x {
			errs = append(errs, checkTemplates(e, fmt.Sprintf("%s[%d]", path, i), vars)...)
		}
	}
	return errs
}

// render returns a copy of v with placeholders replaced from vars. A
// variable without a value renders as "" (inside text) or nil (alone).
func render(v any, vars map[string]protocols.Value) any {
	switch x := v.(type) {
	case string:
		if m := placeholder.FindStringSubmatch(x); m != nil && m[0] == x {
			val, ok := vars[m[1]]
			if !ok {
				return nil
			}
			return goValue(val)
		}
		return placeholder.ReplaceAllStringFunc(x, func(s string) string {
			name := placeholder.FindStringSubmatch(s)[1]
			val, ok := vars[name]
			if !ok {
				return ""
			}
			return val.String()
		})
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = render(e, vars)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = render(e, vars)
		}
		return out
	}
	return v
}

// goValue is v as a JSON-friendly Go value.
func goValue(v protocols.Value) any {
	switch v.Kind {
	case protocols.KindBool:
		return v.I != 0
	case protocols.KindInt:
		return v.I
	case protocols.KindUint:
		return v.U
	case protocols.KindFloat:
		return v.F
	case protocols.KindString:
		return v.S
	case protocols.KindJSON:
		return rawJSON(v.S)
	}
	return nil
}

// eventValue is v as handlers get it in Action.Event: a JSON value
// decoded (as the queue's JSON round trip would give it back after a
// restart), the others as goValue.
func eventValue(v protocols.Value) any {
	if v.Kind == protocols.KindJSON {
		var x any
		if json.Unmarshal([]byte(v.S), &x) == nil {
			return x
		}
		return v.S
	}
	return goValue(v)
}

// rawJSON keeps a JSON value's text through encoding/json.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
