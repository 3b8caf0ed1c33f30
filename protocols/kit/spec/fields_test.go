package spec

import (
	"strings"
	"testing"
	"time"
)

var testSection = Section{Path: "dev[]", Doc: "a device", Fields: []Field{
	{Key: "name", Type: TypeString, Required: true, Doc: "the name"},
	{Key: "port", Type: TypeInteger, Default: int64(502), Min: 1, Max: 65535, Doc: "a | port"},
	{Key: "mode", Type: TypeEnum, Default: "a", Values: []string{"a", "b"}},
	{Key: "on", Type: TypeBoolean, Default: true},
	{Key: "period", Type: TypeDuration, Default: 5 * time.Second, Dur: Positive.In(time.Millisecond)},
}}

func TestSectionDefaultsAndChecks(t *testing.T) {
	var ps Problems
	o := Parse(&ps, "f.json", []byte(`{"port": 0, "mode": "B", "extra": 1}`))
	if got := testSection.Str(o, "name"); got != "" {
		t.Errorf("name %q", got)
	}
	if got := testSection.Int(o, "port"); got != 502 {
		t.Errorf("port %d, want the default after a range error", got)
	}
	if got := testSection.Enum(o, "mode"); got != "b" {
		t.Errorf("mode %q", got)
	}
	if !testSection.Bool(o, "on") || testSection.Duration(o, "period") != 5*time.Second {
		t.Error("defaults not applied")
	}
	o.Done()
	got := ps.List
	want := []string{"f.json: name: is required", "f.json: port: 0 is out of range (want 1..65535)", "warning: f.json: extra: unknown key, ignored"}
	if len(got) != len(want) {
		t.Fatalf("problems %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("problem %d: %q, want %q", i, got[i], want[i])
		}
	}
}

func TestSectionUnknownKeyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a key missing from the table must panic")
		}
	}()
	var ps Problems
	testSection.Str(Parse(&ps, "f", []byte(`{}`)), "nope")
}

func TestMarkdown(t *testing.T) {
	md := Markdown(testSection)
	for _, want := range []string{
		"`dev[]`: a device",
		"| `name` | string | required | the name |",
		"| `port` | integer 1..65535 | `502` | a \\| port |",
		"| `mode` | `a`, `b` | `\"a\"` |  |",
		"| `period` | milliseconds | `5000` |  |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in:\n%s", want, md)
		}
	}
}
