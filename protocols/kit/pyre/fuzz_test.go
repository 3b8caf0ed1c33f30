package pyre

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzPyre: compiling and matching any pattern on any input never panics,
// the answers agree with each other, and the backtracking engine agrees
// with RE2 wherever both run.
func FuzzPyre(f *testing.F) {
	for _, c := range cases {
		f.Add(c.Pattern, c.Input)
	}
	f.Add(`(a+)+$`, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")
	f.Add(`[[:alpha:]-[a]]{,3}\Z`, "x\n")
	f.Add(`(?x)a # c`, "a")
	f.Fuzz(func(t *testing.T, expr, in string) {
		const timeout = 5 * time.Millisecond
		var ok [3]bool
		for a := Search; a <= FullMatch; a++ {
			r, err := compile(expr, a, timeout, false)
			if err != nil {
				if a == Search {
					return
				}
				t.Fatalf("%q compiles for search but not %s: %v", expr, a, err)
			}
			m, err := r.MatchString(in)
			if err != nil {
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("%s(%q, %q): %v", a, expr, in, err)
				}
				return
			}
			_, found, err := r.LastGroup(in)
			if err != nil {
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("%s(%q, %q): %v", a, expr, in, err)
				}
				return
			}
			if m != found {
				t.Fatalf("%s(%q, %q): MatchString %v, LastGroup %v", a, expr, in, m, found)
			}
			ok[a] = m
			if r.Fallback() || r.useSlow(in) {
				continue
			}
			s, err := compile(expr, a, timeout, true)
			if err != nil {
				continue // RE2-only syntax
			}
			if sm, err := s.MatchString(in); err == nil && sm != m {
				t.Fatalf("%s(%q, %q): RE2 %v, regexp2 %v", a, expr, in, m, sm)
			}
		}
		// fullmatch implies match implies search. Not checked with
		// conditionals: regexp2 gets (?(1)...) after an empty loop "()*"
		// wrong (search misses the empty match Python finds).
		if strings.Contains(expr, "(?(") {
			return
		}
		if (ok[FullMatch] && !ok[Match]) || (ok[Match] && !ok[Search]) {
			t.Fatalf("%q on %q: search %v, match %v, fullmatch %v", expr, in, ok[Search], ok[Match], ok[FullMatch])
		}
	})
}
