package spec

import "testing"

func TestRawJSON(t *testing.T) {
	var ps Problems
	root := Parse(&ps, "f.json", []byte(`{"a": {"z": 1, "b": [ {"x": {"k2": 2, "k1": [1, 2]}}, {"x": "second"} ]}, "a.b": 1, "dup": 1, "dup": {"c": 2, "a": 1}}`))
	if root == nil {
		t.Fatal(ps.Err())
	}
	items := root.Obj("a").List("b")
	if v, ok := items[0].RawJSON("x"); !ok || string(v) != `{"k2": 2, "k1": [1, 2]}` {
		t.Fatalf("items[0].x = %s %v", v, ok)
	}
	if v, ok := items[1].RawText(); !ok || string(v) != `{"x": "second"}` {
		t.Fatalf("items[1] = %s %v", v, ok)
	}
	if v, ok := items[1].RawJSON("x"); !ok || string(v) != `"second"` {
		t.Fatalf("items[1].x = %s %v", v, ok)
	}
	if v, ok := root.RawJSON("dup"); !ok || string(v) != `{"c": 2, "a": 1}` {
		t.Fatalf("dup = %s %v", v, ok)
	}
	if v, ok := root.RawJSON("a.b"); !ok || string(v) != "1" {
		t.Fatalf("a.b = %s %v", v, ok)
	}
	if v, ok := root.RawJSON("missing"); ok {
		t.Errorf("missing = %s, want not ok", v)
	}
	// A rewritten object has no text: the caller falls back to Any.
	if _, ok := New(&ps, "f.json", "", map[string]any{"x": 1}).RawJSON("x"); ok {
		t.Error("an object without text gave text")
	}
}
