// Package pyre compiles the regular expressions found in upstream config
// files, which are written for Python's re module.
//
// Go's regexp (RE2) runs every pattern it accepts, in linear time. Patterns
// RE2 refuses (lookaround, backreferences, conditionals, (?x), ...) run on
// regexp2, a backtracking engine, under a match timeout so a pathological
// pattern costs at most that long per match instead of hanging a connector.
// The few inputs on which RE2 would read an accepted pattern differently
// from Python (Unicode \d \w \s \b, and $ before a final newline) also go
// to regexp2.
package pyre

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// DefaultTimeout bounds one match on the backtracking engine.
const DefaultTimeout = 100 * time.Millisecond

// ErrTimeout is returned when a match on the backtracking engine ran out of
// time. The caller counts or logs it and treats the input as unmatched.
var ErrTimeout = errors.New("regular expression match timed out")

// Anchor says where a pattern must match, as Python's three functions do.
type Anchor uint8

const (
	// Search finds the first match anywhere (re.search).
	Search Anchor = iota
	// Match must match at the start of the input (re.match).
	Match
	// FullMatch must match the whole input (re.fullmatch).
	FullMatch
)

func (a Anchor) String() string {
	switch a {
	case Match:
		return "match"
	case FullMatch:
		return "fullmatch"
	}
	return "search"
}

// Regexp is a compiled Python pattern. It is safe for concurrent use.
type Regexp struct {
	src     string
	anchor  Anchor
	fast    *regexp.Regexp  // nil when RE2 refuses the pattern
	slow    *regexp2.Regexp // nil when RE2 reads every input as Python does
	route   route
	timeout time.Duration
}

// route lists the inputs RE2 would read differently from Python.
type route uint8

const (
	routeUnicode route = 1 << iota // \d \w \s \b: Python's are Unicode, RE2's ASCII
	routeDollar                    // $: Python's also matches before a final "\n"
)

// Compile compiles a Python pattern for use with anchor a.
func Compile(expr string, a Anchor) (*Regexp, error) {
	return compile(expr, a, DefaultTimeout, false)
}

// MustCompile is Compile for patterns known to be valid; it panics otherwise.
func MustCompile(expr string, a Anchor) *Regexp {
	r, err := Compile(expr, a)
	if err != nil {
		panic(err)
	}
	return r
}

// Valid reports why a Python pattern cannot be compiled, or nil.
func Valid(expr string) error {
	_, err := Compile(expr, Search)
	return err
}

func compile(expr string, a Anchor, timeout time.Duration, forceSlow bool) (*Regexp, error) {
	t := translate(expr)
	if t.err != nil {
		return nil, fmt.Errorf("%q is not a valid regular expression: %v", expr, t.err)
	}
	r := &Regexp{src: expr, anchor: a, timeout: timeout, route: t.route}
	if !forceSlow {
		// Compile the bare pattern first: wrapping it for an anchor could
		// turn an unbalanced ")" into a valid pattern with another meaning.
		if _, err := regexp.Compile(t.re2); err == nil {
			r.fast, err = regexp.Compile(anchored(t.re2, a, false))
			if err != nil {
				r.fast = nil
			}
		}
	}
	if r.fast != nil && r.route == 0 {
		return r, nil
	}
	opts := regexp2.None
	if t.ascii {
		opts = regexp2.RE2
	}
	if _, err := regexp2.Compile(t.net, opts); err != nil {
		if r.fast != nil {
			// RE2-only syntax (\pL, \Q..\E): RE2 reads every input.
			r.route = 0
			return r, nil
		}
		return nil, fmt.Errorf("%q is not a valid regular expression: %v", expr, err)
	}
	slow, err := regexp2.Compile(anchored(t.net, a, t.verbose), opts)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid regular expression: %v", expr, err)
	}
	slow.MatchTimeout = timeout
	r.slow = slow
	return r, nil
}

// anchored wraps a pattern for re.match or re.fullmatch. In verbose mode a
// trailing comment would swallow the closing parenthesis, hence the newline.
func anchored(src string, a Anchor, verbose bool) string {
	if a == Search {
		return src
	}
	end := ")"
	if verbose {
		end = "\n)"
	}
	if a == FullMatch {
		end += `\z`
	}
	return `\A(?:` + src + end
}

// String returns the pattern as written.
func (r *Regexp) String() string { return r.src }

// Anchor returns the anchor the pattern was compiled for.
func (r *Regexp) Anchor() Anchor { return r.anchor }

// Fallback reports whether RE2 refused the pattern, so every match runs on
// the backtracking engine under the timeout.
func (r *Regexp) Fallback() bool { return r.fast == nil }

// useSlow reports whether s must go to the backtracking engine.
func (r *Regexp) useSlow(s string) bool {
	if r.fast == nil {
		return true
	}
	if r.slow == nil {
		return false
	}
	if r.route&routeDollar != 0 && strings.HasSuffix(s, "\n") {
		return true
	}
	if r.route&routeUnicode != 0 {
		for i := 0; i < len(s); i++ {
			// Non-ASCII, and the ASCII whitespace Python's \s has beyond RE2's.
			if b := s[i]; b >= 0x80 || b == '\v' || (b >= 0x1c && b <= 0x1f) {
				return true
			}
		}
	}
	return false
}

// MatchString reports whether s matches.
func (r *Regexp) MatchString(s string) (bool, error) {
	if !r.useSlow(s) {
		return r.fast.MatchString(s), nil
	}
	ok, err := r.slow.MatchString(s)
	if err != nil {
		return false, r.matchErr(err)
	}
	return ok, nil
}

// LastGroup returns what upstream takes from a topic: the last capturing
// group that took part in the match (Python's m.group(m.lastindex)), or the
// whole match when none did. ok is false when s does not match.
//
// Python's lastindex is the group closed last while matching; it is
// approximated as the participating group ending last, the outermost one on
// a tie (an empty group right after another one is the only case where
// the two differ).
func (r *Regexp) LastGroup(s string) (v string, ok bool, err error) {
	if !r.useSlow(s) {
		m := r.fast.FindStringSubmatchIndex(s)
		if m == nil {
			return "", false, nil
		}
		best := 0
		for g := 1; g < len(m)/2; g++ {
			start, end := m[2*g], m[2*g+1]
			if start < 0 {
				continue
			}
			if best == 0 || end > m[2*best+1] || (end == m[2*best+1] && start < m[2*best]) {
				best = g
			}
		}
		return s[m[2*best]:m[2*best+1]], true, nil
	}
	m, err := r.slow.FindStringMatch(s)
	if err != nil {
		return "", false, r.matchErr(err)
	}
	if m == nil {
		return "", false, nil
	}
	// regexp2 numbers named groups after unnamed ones, so pick by position
	// (in runes, which orders the same as bytes).
	groups := m.Groups()
	best := &groups[0]
	found := false
	for i := 1; i < len(groups); i++ {
		g := &groups[i]
		if len(g.Captures) == 0 {
			continue
		}
		end, bestEnd := g.Index+g.Length, best.Index+best.Length
		if !found || end > bestEnd || (end == bestEnd && g.Index < best.Index) {
			best, found = g, true
		}
	}
	return best.String(), true, nil
}

func (r *Regexp) matchErr(err error) error {
	// regexp2's error quotes the whole input; the pattern is what to fix.
	if strings.Contains(err.Error(), "timeout") {
		return fmt.Errorf("%w after %v: %q", ErrTimeout, r.timeout, r.src)
	}
	return fmt.Errorf("regular expression %q: %v", r.src, err)
}
