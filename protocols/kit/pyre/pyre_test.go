package pyre

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

type tcase struct {
	Pattern string `json:"pattern"`
	Anchor  Anchor `json:"anchor"`
	Input   string `json:"input"`
	// Want is what Python gives: nil when there is no match, else
	// m.group(m.lastindex or 0).
	Want *string `json:"want"`
}

func str(s string) *string { return &s }

// cases hold Python's answers; TestAgainstPython re-checks them with
// python3 when it is installed.
var cases = []tcase{
	// The default MQTT connector's expressions.
	{`(?<=sensor/)(.*?)(?=/data)`, Search, "sensor/SN-001/data", str("SN-001")},
	{`(?<=sensor/)(.*?)(?=/data)`, Search, "sensor/SN-001/other", nil},
	{`(.*?)(?=/.*)`, Search, "TestDevice/data", str("TestDevice")},
	{`(?<=TestDevice/)(.*)`, Search, "TestDevice/temp", str("temp")},
	{`(?<=sensor\/)(.*?)(?=\/request)`, Search, "sensor/SN-002/request", str("SN-002")},
	// Groups: the last one that took part; the whole match without any.
	{`sensor/([^/]+)/data`, Search, "x/sensor/d7/data", str("d7")},
	{`sensor/[^/]+/data`, Search, "x/sensor/d7/data", str("sensor/d7/data")},
	{`a/(\w+)|b/(\w+)`, Search, "a/one", str("one")},
	{`a/(\w+)|b/(\w+)`, Search, "b/two", str("two")},
	{`((\w+)-x)`, Search, "ab-x", str("ab-x")},
	{`(\w)(\w)?`, Search, "a", str("a")},
	{`(?P<dev>[^/]+)/(?P<key>[^/]+)`, Search, "d1/temp", str("temp")},
	{`(?P<dev>[^/]+)/(?P=dev)`, Search, "d1/d1", str("d1")},
	{`(?P<dev>[^/]+)/(?P=dev)`, Search, "d1/d2", nil},
	{`(x)(?P<n>y)(z)`, Search, "xyz", str("z")},
	{`(?P<n>x)(y)`, Search, "xy", str("y")},
	{`(a)\1`, Search, "aa", str("a")},
	// Anchors.
	{`dev`, Search, "my-dev-1", str("dev")},
	{`dev`, Match, "my-dev-1", nil},
	{`my`, Match, "my-dev-1", str("my")},
	{`my`, FullMatch, "my-dev-1", nil},
	{`my-dev-\d`, FullMatch, "my-dev-1", str("my-dev-1")},
	{`a|ab`, FullMatch, "ab", str("ab")},
	{`a|ab`, Match, "ab", str("a")},
	{`SN-.*`, FullMatch, "SN-1\n", nil},
	// $ and \Z.
	{`abc$`, Search, "abc\n", str("abc")},
	{`abc$`, FullMatch, "abc\n", nil},
	{`abc\Z`, Search, "abc\n", nil},
	{`abc\Z`, Search, "abc", str("abc")},
	{`(?m)^b$`, Search, "a\nb\nc", str("b")},
	// Unicode classes.
	{`\d+`, Search, "x٣٤y", str("٣٤")},
	{`\w+`, FullMatch, "größe", str("größe")},
	{`(?a)\w+`, Search, "größe", str("gr")},
	{`\bé`, Search, "aé", nil},
	{`\d+`, Search, "x12y", str("12")},
	{`\s`, Search, "a\vb", str("\v")},
	// Python-only spellings.
	{`a{,2}`, FullMatch, "aa", str("aa")},
	{`a{,2}`, FullMatch, "aaa", nil},
	{`[[:alpha:]]`, Search, "[:alpha:]", str(":]")},
	{`(?a)x\w$`, Search, "xa\n", str("xa")},
	{`(?a)x\w$`, FullMatch, "xa\n", nil},
	{`(?a)(?P<k>\d)`, Search, "٣1", str("1")},
	{`[]a]+`, FullMatch, "a]a", str("a]a")},
	{`(?u)\w+`, Search, "é", str("é")},
	{`(?x) d e v  # the device`, FullMatch, "dev", str("dev")},
	{`(?i)SN`, FullMatch, "sn", str("sn")},
	{`(?i:s)N`, FullMatch, "sN", str("sN")},
	{`(?#note)dev`, FullMatch, "dev", str("dev")},
	{`(a)?(?(1)b|c)`, FullMatch, "c", str("c")},
	{`(?<!x)dev`, Search, "xdev dev", str("dev")},
	{`(?!tmp)\w+`, FullMatch, "tmp1", nil},
}

func run(t testing.TB, r *Regexp, in string) *string {
	t.Helper()
	v, ok, err := r.LastGroup(in)
	if err != nil {
		t.Fatalf("%q on %q: %v", r, in, err)
	}
	m, err := r.MatchString(in)
	if err != nil {
		t.Fatalf("%q on %q: %v", r, in, err)
	}
	if m != ok {
		t.Fatalf("%q on %q: MatchString %v but LastGroup %v", r, in, m, ok)
	}
	if !ok {
		return nil
	}
	return &v
}

func show(p *string) string {
	if p == nil {
		return "no match"
	}
	return "match " + `"` + *p + `"`
}

func TestCases(t *testing.T) {
	for _, c := range cases {
		r, err := Compile(c.Pattern, c.Anchor)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.Pattern, err)
			continue
		}
		if got := run(t, r, c.Input); show(got) != show(c.Want) {
			t.Errorf("%s(%q, %q): %s, want %s", c.Anchor, c.Pattern, c.Input, show(got), show(c.Want))
		}
		// The backtracking engine alone must agree, so routing is only
		// about speed.
		if s, err := compile(c.Pattern, c.Anchor, DefaultTimeout, true); err == nil {
			if got := run(t, s, c.Input); show(got) != show(c.Want) {
				t.Errorf("fallback %s(%q, %q): %s, want %s", c.Anchor, c.Pattern, c.Input, show(got), show(c.Want))
			}
		}
	}
}

// TestAgainstPython checks the table's answers with the real re module.
func TestAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: table not re-checked against Python")
	}
	in, _ := json.Marshal(cases)
	const script = `
import json, re, sys
out = []
for c in json.load(sys.stdin):
    f = [re.search, re.match, re.fullmatch][c["anchor"]]
    m = f(c["pattern"], c["input"])
    out.append(None if m is None else m.group(m.lastindex or 0))
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-W", "ignore", "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var got []*string
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if show(got[i]) != show(c.Want) {
			t.Errorf("Python %s(%q, %q): %s, table says %s", c.Anchor, c.Pattern, c.Input, show(got[i]), show(c.Want))
		}
	}
}

func TestFallbackDetection(t *testing.T) {
	for expr, fallback := range map[string]bool{
		`sensor/([^/]+)/data`:        false,
		`(?P<n>\d+)`:                 false,
		`abc\Z`:                      false,
		`a{,3}`:                      false,
		`(?<=sensor/)(.*?)(?=/data)`: true,
		`(.*?)(?=/.*)`:               true,
		`(?P<n>a)(?P=n)`:             true,
		`(a)\1`:                      true,
		`(?x) a b`:                   true,
		`(?!tmp)\w+`:                 true,
	} {
		r, err := Compile(expr, Search)
		if err != nil {
			t.Fatalf("Compile(%q): %v", expr, err)
		}
		if r.Fallback() != fallback {
			t.Errorf("Compile(%q).Fallback() = %v", expr, r.Fallback())
		}
	}
}

func TestInvalid(t *testing.T) {
	for _, expr := range []string{`(`, `a)`, `a)|(b`, `[a`, `(?<=a`, `*a`, `(?P=nope)`, `\`, `\Q`, `a\E`, `\C`, `\q`, `()(?(0)a)`} {
		for _, a := range []Anchor{Search, Match, FullMatch} {
			if _, err := Compile(expr, a); err == nil {
				t.Errorf("Compile(%q, %s) accepted an invalid pattern", expr, a)
			} else if !strings.Contains(err.Error(), "is not a valid regular expression") {
				t.Errorf("Compile(%q): %v", expr, err)
			}
		}
	}
}

// TestTimeout: catastrophic backtracking is an error, on both routes to
// the backtracking engine, and the compiled pattern keeps working.
func TestTimeout(t *testing.T) {
	long := strings.Repeat("a", 40) + "b"
	forced, err := compile(`(a+)+$`, Search, 20*time.Millisecond, true)
	if err != nil {
		t.Fatal(err)
	}
	natural, err := compile(`(?=a)(a+)+$`, FullMatch, 20*time.Millisecond, false)
	if err != nil {
		t.Fatal(err)
	}
	if !natural.Fallback() {
		t.Fatal("lookahead pattern did not fall back")
	}
	for _, r := range []*Regexp{forced, natural} {
		if _, err := r.MatchString(long); !errors.Is(err, ErrTimeout) {
			t.Errorf("%q MatchString: %v, want ErrTimeout", r, err)
		}
		if _, _, err := r.LastGroup(long); !errors.Is(err, ErrTimeout) {
			t.Errorf("%q LastGroup: %v, want ErrTimeout", r, err)
		} else if strings.Contains(err.Error(), long) {
			t.Errorf("error quotes the input: %v", err)
		}
		if ok, err := r.MatchString("aaa"); !ok || err != nil {
			t.Errorf("%q on aaa: %v %v", r, ok, err)
		}
	}
	// RE2 runs the same pattern in linear time.
	if ok, err := MustCompile(`(a+)+$`, Search).MatchString(long); ok || err != nil {
		t.Errorf("RE2 route: %v %v", ok, err)
	}
}

func BenchmarkSearch(b *testing.B) {
	for _, bc := range []struct{ name, expr string }{
		{"re2", `sensor/([^/]+)/data`},
		{"fallback", `(?<=sensor/)(.*?)(?=/data)`},
	} {
		r := MustCompile(bc.expr, Search)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v, ok, err := r.LastGroup("sensor/SN-001/data"); v != "SN-001" || !ok || err != nil {
					b.Fatal(v, ok, err)
				}
			}
		})
	}
}
