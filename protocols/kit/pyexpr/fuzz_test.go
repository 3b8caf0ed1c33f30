package pyexpr

import (
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols"
)

// FuzzExpr compiles arbitrary sources and evaluates them: no panics, the
// step and size limits hold, and where the fast path answers it agrees
// with Starlark.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		"bool(value & 0b00000100)", "value / 4", "value * 10", "value + 5", "'Test' + value",
		"userSpeed if maxAllowedSpeed > userSpeed else maxAllowedSpeed", "can_data[0] << 8 | can_data[1]",
		"len(can_data) > 3", `"x" * 300000000`, "[0] * value", "list(range(value))", "value // 3 % 7",
		"[1 for a in range(value) for b in range(value)]", "round(value, 1)", "hex(value)", "-value ** 2",
		"value >> 70", "(lambda x: x * x)(value)", "sum([value] * 3)", "str(value) * 4",
	} {
		f.Add(s, int64(5), false)
		f.Add(s, int64(-1<<40), true)
	}
	f.Fuzz(func(t *testing.T, src string, v int64, strict bool) {
		e, err := Compile(src, Options{Vars: []string{"value", "can_data"}, Strict: strict, MaxSteps: 20_000})
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("%q: compile error %T %v", src, err, err)
			}
			return
		}
		for _, val := range []protocols.Value{protocols.Int(v), protocols.Float(float64(v) / 3), protocols.String(strings.Repeat("a", int(v&15))), protocols.Bool(v&1 == 1)} {
			in := make([]Arg, len(e.Names()))
			for i, n := range e.Names() {
				if n == "value" {
					in[i].Value = val
				} else {
					in[i].Go = []byte{byte(v), byte(v >> 8), 0xff}
				}
			}
			out, err := e.Eval(in)
			if err == nil && out.Kind == protocols.KindString && len(out.S) > 64*MaxSize {
				t.Fatalf("%q: %d-byte result", src, len(out.S))
			}
			if e.fast != nil {
				if fv, ok := e.fast.evalTop(in); ok {
					sv, serr := e.slow(in)
					if serr != nil || fv.Kind != sv.Kind || !fv.Equal(sv) {
						t.Fatalf("%q with %v: fast %v (%v), starlark %v (%v) %v", src, val, fv, fv.Kind, sv, sv.Kind, serr)
					}
				}
			}
		}
	})
}
