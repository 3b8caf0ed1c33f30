package opcua

import (
	"errors"
	"testing"
)

func TestParseExpr(t *testing.T) {
	tests := []struct {
		in   string
		kind ExprKind
		str  string
		segs int
	}{
		{"${ns=3;i=8}", ExprNodeID, "ns=3;i=8", 0},
		{"ns=4;s=TempSensor_S", ExprNodeID, "ns=4;s=TempSensor_S", 0},
		{`${Root\.Objects\.Dev\.Node}`, ExprAbsolute, `Root\.Objects\.Dev\.Node`, 4},
		{`Root\.Objects\.MyObject`, ExprAbsolute, `Root\.Objects\.MyObject`, 3},
		{"${Node}", ExprRelative, "Node", 1},
		{`${Sub\.2:Node}`, ExprRelative, `Sub\.2:Node`, 2},
		{` ${ Humidity } `, ExprRelative, "Humidity", 1},
		{`${Root\.Objects\.Device[0-9]+}`, ExprAbsolute, `Root\.Objects\.Device[0-9]+`, 3},
		{"${Root}", ExprAbsolute, "Root", 1},
	}
	for _, tc := range tests {
		e, err := ParseExpr(tc.in)
		if err != nil {
			t.Errorf("ParseExpr(%q): %v", tc.in, err)
			continue
		}
		if e.Kind != tc.kind || e.String() != tc.str || len(e.Path.Segments) != tc.segs {
			t.Errorf("ParseExpr(%q) = %v %q (%d segments), want %v %q (%d)", tc.in, e.Kind, e.String(), len(e.Path.Segments), tc.kind, tc.str, tc.segs)
		}
	}
}

func TestSegments(t *testing.T) {
	p, err := ParsePath(`Root\.Objects\.2:Device[0-9]+\.Temp.*`)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Segments
	if !p.Absolute || !p.HasPattern() {
		t.Fatalf("absolute=%v pattern=%v", p.Absolute, p.HasPattern())
	}
	match := func(seg Segment, ns uint16, name string) bool {
		ok, err := seg.Match(ns, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if s[1].IsPattern() || !match(s[1], 0, "Objects") || match(s[1], 0, "objects") {
		t.Error("Objects should be a literal segment")
	}
	if !s[2].HasNamespace || s[2].Namespace != 2 || !match(s[2], 2, "Device12") || match(s[2], 3, "Device12") || match(s[2], 2, "Device12x") {
		t.Errorf("namespaced regex segment: %+v", s[2])
	}
	// Python syntax, as upstream's files are written: a negative lookahead.
	py, err := ParsePath(`Root\.Objects\.(?!DevTest)Dev\w+`)
	if err != nil {
		t.Fatal(err)
	}
	if seg := py.Segments[2]; !match(seg, 0, "Dev1") || match(seg, 0, "DevTest1") {
		t.Errorf("lookahead segment: %+v", seg)
	}
	if !match(s[3], 5, "Temperature") || match(s[3], 5, "xTemp") {
		t.Error("regex must be anchored")
	}
}

func TestParseExprErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"${ns=x;i=8}", `invalid node id "ns=x;i=8": namespace "x" is not a number`},
		{"${Node", `invalid path "${Node": unterminated "${"`},
		{"${}", `invalid path "${}": empty expression`},
		{`${Root\.\.Node}`, `invalid path "Root\\.\\.Node": segment 2: empty segment`},
		{`${Root\.Objects\.}`, `invalid path "Root\\.Objects\\.": segment 3: empty segment`},
		{`${Root\.Dev[}`, "invalid path \"Root\\\\.Dev[\": segment 2: \"Dev[\" is not a valid regular expression: error parsing regexp: unterminated [] set in `Dev[`"},
		{`${2:}`, `invalid path "2:": segment 1: empty name after namespace`},
	}
	for _, tc := range tests {
		_, err := ParseExpr(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseExpr(%q) error = %v, want %s", tc.in, err, tc.want)
		}
	}
	if _, err := ParseExpr("${}"); !errors.Is(err, ErrInvalidPath) {
		t.Error("want ErrInvalidPath")
	}
}

func TestJoin(t *testing.T) {
	dev, _ := ParsePath(`Root\.Objects\.Dev`)
	rel, _ := ParsePath(`Sensors\.Temp`)
	j := Join(dev, rel)
	if !j.Absolute || j.String() != `Root\.Objects\.Dev\.Sensors\.Temp` {
		t.Errorf("Join = %v %q", j.Absolute, j.String())
	}
	if len(dev.Segments) != 3 {
		t.Error("Join modified its input")
	}
	abs, _ := ParsePath(`Root\.Other`)
	if Join(dev, abs).String() != `Root\.Other` {
		t.Error("joining an absolute path must return it")
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{`${Root\.Objects\.Dev\.Node}`, "${Node}", "${ns=3;i=8}", `Root\.2:a[0-9]+`, "${", `\.\.`, "2:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseExpr(s)
		if err != nil {
			return
		}
		if e.Kind == ExprNodeID {
			return
		}
		// A parsed path prints back to a path of the same shape.
		p, err := ParsePath(e.Path.String())
		if err != nil {
			t.Fatalf("ParseExpr(%q).String() = %q does not parse: %v", s, e.Path.String(), err)
		}
		if p.String() != e.Path.String() || p.Absolute != e.Path.Absolute || len(p.Segments) != len(e.Path.Segments) {
			t.Fatalf("path %q reparsed as %q", e.Path.String(), p.String())
		}
		_ = Join(p, p)
	})
}
