package pyexpr

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/industryos/gateway/protocols"
)

var uplink = []string{"value", "can_data"}

func args(e *Expr, value protocols.Value, data []byte) []Arg {
	out := make([]Arg, len(e.Names()))
	for i, n := range e.Names() {
		switch n {
		case "value":
			out[i].Value = value
		case "can_data":
			out[i].Go = data
		}
	}
	return out
}

func TestEvalUplink(t *testing.T) {
	data := []byte{0x12, 0x34, 0xab, 0xcd}
	for _, tc := range []struct {
		src    string
		strict bool
		value  protocols.Value
		want   protocols.Value
		fast   bool
	}{
		// the forms of upstream's CAN files
		{src: "bool(value & 0b00000100)", value: protocols.Int(4), want: protocols.Bool(true), fast: true},
		{src: "bool(value & 0b00000100)", value: protocols.Int(0x3b), want: protocols.Bool(false), fast: true},
		{src: "value / 4", strict: true, value: protocols.Int(1234), want: protocols.Float(308.5), fast: true},
		{src: "value * 10", strict: true, value: protocols.Int(-7), want: protocols.Int(-70), fast: true},
		{src: "value + 5", strict: true, value: protocols.Int(1), want: protocols.Int(6), fast: true},
		{src: "'Test' + value", strict: true, value: protocols.String("abc"), want: protocols.String("Testabc")},
		// Python semantics
		{src: "value // 2", strict: true, value: protocols.Int(-7), want: protocols.Int(-4), fast: true},
		{src: "value % 3", strict: true, value: protocols.Int(-7), want: protocols.Int(2), fast: true},
		{src: "value / 2", strict: true, value: protocols.Int(7), want: protocols.Float(3.5), fast: true},
		{src: "value >> 1", strict: true, value: protocols.Int(-3), want: protocols.Int(-2), fast: true},
		{src: "~value", strict: true, value: protocols.Int(5), want: protocols.Int(-6), fast: true},
		{src: "value * 1.5", strict: true, value: protocols.Int(3), want: protocols.Float(4.5), fast: true},
		{src: "value * 2", strict: true, value: protocols.Float(1.25), want: protocols.Float(2.5), fast: true},
		{src: "value if value > 0 else -value", strict: true, value: protocols.Int(-3), want: protocols.Int(3), fast: true},
		{src: "value > 10 and value < 20", strict: true, value: protocols.Int(15), want: protocols.Bool(true), fast: true},
		{src: "value or 7", strict: true, value: protocols.Int(0), want: protocols.Int(7), fast: true},
		{src: "not value", strict: true, value: protocols.Bool(false), want: protocols.Bool(true), fast: true},
		{src: "value == True", strict: true, value: protocols.Bool(true), want: protocols.Bool(true), fast: true},
		{src: "value", strict: true, value: protocols.String("s"), want: protocols.String("s"), fast: true},
		{src: "value * value", strict: true, value: protocols.Int(1 << 40), want: protocols.Uint(0), fast: true}, // overflow → Starlark → error below
		{src: "  value  \n", strict: true, value: protocols.Int(3), want: protocols.Int(3), fast: true},
		{src: "(value * 9 / 5) + 32", strict: true, value: protocols.Float(100), want: protocols.Float(212), fast: true},
		// can_data, the frame's bytes as ints
		{src: "can_data[0] << 8 | can_data[1]", strict: true, want: protocols.Int(0x1234)},
		{src: "len(can_data) > 3", value: protocols.Int(0), want: protocols.Bool(true)},
		{src: "sum(can_data)", want: protocols.Int(0x12 + 0x34 + 0xab + 0xcd)},
		{src: "hex(can_data[2])", want: protocols.String("0xab")},
		{src: "round(value, 2)", value: protocols.Float(2.675), want: protocols.Float(2.67)},
		{src: "round(value)", value: protocols.Float(2.5), want: protocols.Int(2)},
		{src: "'%d rpm' % value", strict: true, value: protocols.Int(5), want: protocols.String("5 rpm")},
		{src: "str(value).upper()", value: protocols.String("ab"), want: protocols.String("AB")},
		{src: "[b for b in can_data if b > 0x80][0]", want: protocols.Int(0xab)},
		{src: "max(can_data)", want: protocols.Int(0xcd)},
	} {
		e, err := Compile(tc.src, Options{Vars: uplink, Strict: tc.strict})
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if e.Fast() != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.src, e.Fast(), tc.fast)
		}
		got, err := e.Eval(args(e, tc.value, data))
		if tc.src == "value * value" {
			if err == nil || !strings.Contains(err.Error(), "does not fit in 64 bits") {
				t.Errorf("%q: %v, %v; want a 64-bit error", tc.src, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) || got.Kind != tc.want.Kind {
			t.Errorf("%q (%v): %v (%v), %v; want %v", tc.src, tc.value, got, got.Kind, err, tc.want)
		}
	}
}

func TestEvalMap(t *testing.T) {
	e, err := Compile("userSpeed if maxAllowedSpeed > userSpeed else maxAllowedSpeed", Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.Names(), ","); got != "maxAllowedSpeed,userSpeed" {
		t.Errorf("names %s", got)
	}
	var params map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"userSpeed": 170, "maxAllowedSpeed": 150, "other": [1, {"a": null}]}`))
	dec.UseNumber()
	if err := dec.Decode(&params); err != nil {
		t.Fatal(err)
	}
	if v, err := e.EvalMap(params); err != nil || !v.Equal(protocols.Int(150)) {
		t.Errorf("got %v, %v", v, err)
	}
	delete(params, "userSpeed")
	if _, err := e.EvalMap(params); err == nil || !errors.Is(err, ErrEval) ||
		!strings.Contains(err.Error(), `name "userSpeed" is not defined (the data has: maxAllowedSpeed, other)`) {
		t.Errorf("missing name: %v", err)
	}
	e, err = Compile("other[1]['a'] == None and len(other) == 2", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.EvalMap(params); err != nil || !v.Equal(protocols.Bool(true)) {
		t.Errorf("nested: %v, %v", v, err)
	}
	e, _ = Compile("value + 5", Options{Strict: true})
	if v, err := e.EvalMap(map[string]any{"value": 3.0}); err != nil || v.Kind != protocols.KindInt || v.I != 8 {
		t.Errorf("a JSON 3.0 decoded without UseNumber: %v (%v), %v", v, v.Kind, err)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		src    string
		strict bool
		vars   []string
		want   string
	}{
		{src: "value +", want: `invalid expression "value +": column 8: got end of file, want primary expression`},
		{src: "value ? 1 : 0", want: `column 7:`},
		{src: "bool(value & 4)", strict: true, vars: uplink, want: `column 1: bool is a built-in function: strictEval (default true) disables them`},
		{src: "len(x)", strict: true, want: `len is a built-in function`},
		{src: "value + speed", vars: uplink, want: `column 9: name "speed" is not defined (variables: value, can_data)`},
		{src: "value == true", vars: uplink, want: `name "true" is not defined`},
		{src: "", want: `empty expression`},
		{src: "x = 1", want: `invalid expression`},
		{src: "value\n+ 1", want: `line 2 column`},
		{src: strings.Repeat("1+", 3000) + "1", want: `longer than the 4096 allowed`},
		{src: "0 < value < 10", vars: uplink, want: `does not associate`},
		{src: "value ** 2", vars: uplink, want: `invalid expression`},
	} {
		_, err := Compile(tc.src, Options{Vars: tc.vars, Strict: tc.strict})
		var se *SyntaxError
		if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.src, err, tc.want)
		}
	}
}

func TestRunTimeErrors(t *testing.T) {
	for _, tc := range []struct {
		src   string
		value protocols.Value
		want  string
	}{
		{src: "value // 0", value: protocols.Int(1), want: "division by zero"},
		{src: "value / 0", value: protocols.Float(1), want: "division by zero"},
		{src: "value + 1", value: protocols.String("a"), want: "unknown binary op: string + int"},
		{src: "value", value: protocols.Value{}, want: "result is None"},
		{src: "[value]", value: protocols.Int(1), want: "result is a list"},
		{src: `"x" * 300000000`, want: "repetition of 300000000 elements is larger than the 1048576 allowed"},
		{src: `[0] * value`, value: protocols.Int(1 << 40), want: "larger than the 1048576 allowed"},
		{src: `value * "ab"`, value: protocols.Int(1 << 20), want: "larger than the 1048576 allowed"},
		{src: `list(range(value))`, value: protocols.Int(1 << 30), want: "range of 1073741824 elements"},
		{src: `(value << 500) * (value << 500) * (value << 500) * (value << 500) * (value << 500) * (value << 500) * (value << 500) * (value << 500) * (value << 500)`, value: protocols.Int(1), want: "larger than 4096 bits"},
		{src: `len([1 for a in range(1000) for b in range(1000)])`, want: "too many steps"},
	} {
		e, err := Compile(tc.src, Options{Vars: uplink})
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		v, err := e.Eval(args(e, tc.value, nil))
		if err == nil || !errors.Is(err, ErrEval) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, %v; want %q", tc.src, v, err, tc.want)
		}
	}
}

// A step-limit cancellation must not stick to the pooled thread.
func TestStepLimitDoesNotStick(t *testing.T) {
	e, err := Compile("len([1 for a in range(value) for b in range(value)])", Options{Vars: uplink, MaxSteps: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := e.Eval([]Arg{{Value: protocols.Int(1000)}}); err == nil || !strings.Contains(err.Error(), "too many steps") {
			t.Fatalf("big: %v", err)
		}
		if v, err := e.Eval([]Arg{{Value: protocols.Int(10)}}); err != nil || v.I != 100 {
			t.Fatalf("small after a cancelled run: %v, %v", v, err)
		}
	}
}

func TestConcurrentEval(t *testing.T) {
	e, err := Compile("str(value) + '!'", Options{Vars: uplink})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				v, err := e.Eval([]Arg{{Value: protocols.Int(int64(i))}})
				if err != nil || v.S == "" {
					t.Errorf("%v %v", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// The fast path must agree with Starlark for every operator and operand kind.
func TestFastMatchesStarlark(t *testing.T) {
	ops := []string{"+", "-", "*", "/", "//", "%", "&", "|", "^", "<<", ">>", "==", "!=", "<", "<=", ">", ">=", "and", "or"}
	vals := []protocols.Value{protocols.Int(0), protocols.Int(7), protocols.Int(-7), protocols.Int(3), protocols.Int(-1),
		protocols.Int(1 << 62), protocols.Int(-1 << 63), protocols.Float(2.5), protocols.Float(-0.5), protocols.Float(0),
		protocols.Bool(true), protocols.Int(64), protocols.Uint(65535), protocols.Uint(1 << 63), protocols.Uint(0)}
	for _, o := range ops {
		e, err := Compile("value "+o+" can_data", Options{Vars: []string{"value", "can_data"}})
		if err != nil {
			t.Fatal(err)
		}
		if !e.Fast() {
			t.Fatalf("%s: no fast path", o)
		}
		for _, x := range vals {
			for _, y := range vals {
				in := []Arg{{Value: y}, {Value: x}} // names are sorted: can_data, value
				fast, ok := e.fast.evalTop(in)
				slow, err := e.slow(in)
				if !ok {
					continue
				}
				if err != nil || fast.Kind != slow.Kind || !fast.Equal(slow) {
					t.Errorf("%v %s %v: fast %v (%v), starlark %v (%v) %v", x, o, y, fast, fast.Kind, slow, slow.Kind, err)
				}
			}
		}
	}
}

// Unsigned register values (Modbus) stay on the fast path: an automation
// condition over them runs for every polled value.
func TestFastTakesUnsigned(t *testing.T) {
	e, err := Compile("value > 1000000", Options{Vars: []string{"value"}})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := e.fast.evalTop([]Arg{{Value: protocols.Uint(65535)}}); !ok || v.Kind != protocols.KindBool || v.I != 0 {
		t.Fatalf("65535 > 1000000: %v, fast path %v", v, ok)
	}
	if _, ok := e.fast.evalTop([]Arg{{Value: protocols.Uint(1 << 63)}}); ok {
		t.Fatal("a uint above int64 took the fast path")
	}
}

func BenchmarkEvalFast(b *testing.B) {
	e, _ := Compile("value * 10", Options{Vars: uplink, Strict: true})
	in := []Arg{{Value: protocols.Int(5)}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := e.Eval(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvalStarlark(b *testing.B) {
	e, _ := Compile("can_data[0] << 8 | can_data[1]", Options{Vars: uplink, Strict: true})
	in := []Arg{{Go: []byte{1, 2, 3, 4, 5, 6, 7, 8}}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := e.Eval(in); err != nil {
			b.Fatal(err)
		}
	}
}
