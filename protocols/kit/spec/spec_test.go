package spec

import (
	"strings"
	"testing"
)

func TestAccessorsRecordPaths(t *testing.T) {
	ps := &Problems{}
	o := Parse(ps, "c.json", []byte(`{"a": {"n": "x", "list": [1, {"b": true}], "e": "nope", "port": "502", "f": 1.5}, "hots": 1}`))
	a := o.Obj("a")
	a.Int("n", 0)
	items := a.List("list")
	if len(items) != 1 || items[0].Path() != "a.list[1]" {
		t.Fatalf("list items: %+v", items)
	}
	a.Enum("e", "x", "x", "y")
	if p := a.Int("port", 0); p != 502 {
		t.Errorf("numeric string: %d", p)
	}
	a.Int("f", 0)
	o.Known("host")
	o.Done()
	var lines []string
	for _, p := range ps.List {
		lines = append(lines, p.String())
	}
	want := []string{
		`c.json: a.n: "x" is not an integer`,
		`c.json: a.list[0]: expected an object, got 1`,
		`c.json: a.e: unknown value "nope" (want one of: x, y)`,
		`c.json: a.f: 1.5 is not an integer`,
		`warning: c.json: hots: unknown key, ignored (did you mean "host"?)`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	ps := &Problems{}
	if Parse(ps, "c.json", []byte("{\n  \"a\": 1,\n  oops\n}")) != nil {
		t.Fatal("parsed invalid JSON")
	}
	if got := ps.Errors()[0].String(); !strings.Contains(got, "c.json: invalid JSON: line 3") {
		t.Errorf("got %s", got)
	}
}

func TestEmptySectionIsAbsent(t *testing.T) {
	ps := &Problems{}
	o := Parse(ps, "f.json", []byte(`{"a": {}, "b": [], "c": {}, "d": []}`))
	if l := o.List("a"); l != nil {
		t.Fatalf("List of {} = %v, want nil", l)
	}
	if x := o.Obj("b"); x != nil {
		t.Fatalf("Obj of [] = %v, want nil", x)
	}
	if s := o.Strings("c"); s != nil {
		t.Fatalf("Strings of {} = %v, want nil", s)
	}
	if x := o.Obj("d"); x != nil {
		t.Fatal("Obj of [] must be absent")
	}
	o.Done()
	if len(ps.List) != 0 {
		t.Fatalf("problems: %v", ps.List)
	}
}

func TestSkipSince(t *testing.T) {
	ps := &Problems{}
	ps.Errorf("f.json", "a", "bad before")
	m := ps.Mark()
	ps.Warnf("f.json", "b[0].x", "unknown key")
	if ps.SkipSince(m) {
		t.Fatal("a warning alone must not skip the entry")
	}
	ps.Errorf("f.json", "b[1].id", "out of range")
	if !ps.SkipSince(m) {
		t.Fatal("an error after the mark must skip the entry")
	}
	if got := len(ps.Errors()); got != 1 {
		t.Fatalf("errors = %d, want only the one before the mark", got)
	}
	sk := ps.Skips()
	if len(sk) != 1 || sk[0].String() != "error (entry skipped): f.json: b[1].id: out of range" {
		t.Fatalf("skips = %v", sk)
	}
	if n := len(ps.NotErrors()); n != 2 {
		t.Fatalf("NotErrors = %d, want 2", n)
	}
}
