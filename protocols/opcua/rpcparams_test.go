package opcua

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSetParams(t *testing.T) {
	tests := []struct{ in, target, value string }{
		{"ns=2;i=13; 56;", "ns=2;i=13", "56"},
		{"Frequency= 35   ;", "Frequency", "35"},
		{"Frequency=35", "Frequency", "35"},
		{"Frequency;=35;", "Frequency", "35"},
		{"Frequency 35", "Frequency", "35"},
		{"ns=2;i=13=56", "ns=2;i=13", "56"},
		{"ns=2;i=13 56", "ns=2;i=13", "56"},
		{"ns=2;i=13;=56", "ns=2;i=13", "56"},
		{"ns=3;s=My Var; hello world;", "ns=3;s=My Var", "hello world"},
		{"ns=2;i=1; a; b", "ns=2;i=1", "a; b"},
		{`${Root\.Objects\.Dev\.Speed}; 12.5`, `${Root\.Objects\.Dev\.Speed}`, "12.5"},
		{"  Enabled = true ; ", "Enabled", "true"},
	}
	for _, tc := range tests {
		target, value, err := ParseSetParams(tc.in)
		if err != nil || target != tc.target || value != tc.value {
			t.Errorf("ParseSetParams(%q) = %q, %q, %v; want %q, %q", tc.in, target, value, err, tc.target, tc.value)
		}
	}
}

func TestParseSetParamsErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `invalid rpc params "": missing node id or path and value`},
		{" ; ", `invalid rpc params " ; ": missing node id or path and value`},
		{"ns=2;i=13", `invalid rpc params "ns=2;i=13": want "<node id or path>; <value>" or "<path>=<value>"`},
		{"Frequency=", `invalid rpc params "Frequency=": want "<node id or path>; <value>" or "<path>=<value>"`},
	}
	for _, tc := range tests {
		_, _, err := ParseSetParams(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseSetParams(%q) error = %v, want %s", tc.in, err, tc.want)
		} else if !errors.Is(err, ErrInvalidParams) {
			t.Errorf("ParseSetParams(%q): does not wrap ErrInvalidParams", tc.in)
		}
	}
}

func TestParseGetParams(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ns=2;i=13", "ns=2;i=13"},
		{"ns=2;i=13;", "ns=2;i=13"},
		{" Frequency ; ", "Frequency"},
		{`${Root\.Objects\.Dev}`, `${Root\.Objects\.Dev}`},
	}
	for _, tc := range tests {
		got, err := ParseGetParams(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseGetParams(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseGetParams(" ;"); err == nil || err.Error() != `invalid rpc params " ;": missing node id or path` {
		t.Errorf("error = %v", err)
	}
}

func FuzzRPCParams(f *testing.F) {
	for _, s := range []string{"ns=2;i=13; 56;", "Frequency= 35   ;", "ns=2;i=13", "a b", ";=", "= ="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if g, err := ParseGetParams(s); err == nil && (g == "" || !strings.Contains(s, g)) {
			t.Fatalf("ParseGetParams(%q) = %q", s, g)
		}
		target, value, err := ParseSetParams(s)
		if err != nil {
			return
		}
		if target == "" || value == "" || !strings.Contains(s, target) || !strings.Contains(s, value) {
			t.Fatalf("ParseSetParams(%q) = %q, %q", s, target, value)
		}
		if LooksLikeNodeID(target) {
			if _, err := ParseNodeID(target); err != nil {
				t.Fatalf("ParseSetParams(%q) target %q is not a node id: %v", s, target, err)
			}
		}
	})
}
