package jsonexpr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func decode(t testing.TB, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestExprEval(t *testing.T) {
	msg := `{"name":"Dev A","a":{"b":[{"c":7},{"c":"x"}]},"key with space":1.5,"d.e":"dotted","n":12345678901234567890,"ok":true,"list":[1,2]}`
	tests := []struct {
		expr string
		want any
	}{
		{"${name}", "Dev A"},
		{"${a.b[0].c}", json.Number("7")},
		{"${$.a.b[1].c}", "x"},
		{"${key with space}", json.Number("1.5")},
		{"${d.e}", "dotted"},
		{"${$['d.e']}", "dotted"},
		{"${n}", json.Number("12345678901234567890")},
		{"${name}-${a.b[0].c}", "Dev A-7"},
		{"pre ${ok} post", "pre true post"},
		{"${list}", []any{json.Number("1"), json.Number("2")}},
		{"x${list}", "x[1,2]"},
		{"constant", "constant"},
		{"", ""},
	}
	m := decode(t, msg)
	for _, tt := range tests {
		e, err := Compile(tt.expr)
		if err != nil {
			t.Fatalf("%q: %v", tt.expr, err)
		}
		got, err := e.Eval(m)
		if err != nil {
			t.Errorf("%q: %v", tt.expr, err)
			continue
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(tt.want)
		if string(gj) != string(wj) {
			t.Errorf("%q = %s, want %s", tt.expr, gj, wj)
		}
	}
}

func TestExprRootList(t *testing.T) {
	got, err := MustCompile("${$[1].sensor}").EvalString(decode(t, `[{"sensor":"a"},{"sensor":"b"}]`))
	if err != nil || got != "b" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestExprMissing(t *testing.T) {
	m := decode(t, `{"a":{"b":[1]}}`)
	for _, s := range []string{"${x}", "${a.c}", "${a.b[3]}", "${a.b.c}", "${a}-${zz}"} {
		_, err := MustCompile(s).Eval(m)
		if !errors.Is(err, ErrMissing) {
			t.Errorf("%q: err = %v, want ErrMissing", s, err)
			continue
		}
		if want := s + ": missing key"; err.Error() != want {
			t.Errorf("%q: err = %q, want %q", s, err, want)
		}
	}
}

func TestExprCompileErrors(t *testing.T) {
	for s, want := range map[string]string{
		"${a":      `expression "${a": unclosed ${`,
		"x${}":     `expression "x${}": empty ${}`,
		"${a[x]}":  `expression "${a[x]}": bad index [x]`,
		"${a[0}":   `expression "${a[0}": unclosed '['`,
		"${a.}":    `expression "${a.}": path ends with '.'`,
		"${a[-1]}": `expression "${a[-1]}": bad index [-1]`,
	} {
		_, err := Compile(s)
		if err == nil || err.Error() != want {
			t.Errorf("%q: err = %v, want %q", s, err, want)
		}
	}
}

func TestExprIsConstant(t *testing.T) {
	if !MustCompile("abc").IsConstant() || MustCompile("a${b}").IsConstant() {
		t.Fatal("IsConstant wrong")
	}
}

func BenchmarkExprEval(b *testing.B) {
	m := decode(b, `{"a":{"b":[{"c":7}]}}`)
	e := MustCompile("${a.b[0].c}")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Eval(m); err != nil {
			b.Fatal(err)
		}
	}
}
