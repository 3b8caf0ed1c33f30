package pyre

import (
	"fmt"
	"strings"
)

// translated is a Python pattern rewritten for each engine.
type translated struct {
	re2     string // for Go's regexp
	net     string // for regexp2 (.NET syntax)
	route   route
	verbose bool // (?x): a trailing comment runs to the end of the line
	ascii   bool // (?a): regexp2 needs its RE2 option for ASCII classes
	err     error
}

// pyEscapes are the letters Python gives a meaning after a backslash, plus
// \z and \p{...}, which both engines read as Python 3.14 and the regex
// module do. Others are errors in Python; RE2's \Q, \E and \C would
// change the structure of the pattern.
const pyEscapes = "aAbBdDfnNprsStuUvwWxzZP"

// translate rewrites the Python spellings the engines read differently:
//   - \Z is the end of the input (Go and .NET: \z; .NET's \Z also matches
//     before a final newline);
//   - (?P<name>...) and (?P=name) become .NET's (?<name>...) and \k<name>;
//   - x{,n} is x{0,n} (both engines take "{,n}" literally);
//   - "[" inside a class is a literal (Go reads [:alpha:], .NET [a-[b]]);
//   - the flags u (Unicode, Python's default for text) and a (ASCII) are
//     dropped; a makes RE2's ASCII classes exact, and regexp2 gets its RE2
//     option (ASCII classes, (?P<n>), but $ only at the very end, so $
//     becomes a lookahead for an optional final newline).
//
// It also notes the constructs RE2 would read differently on some inputs.
// Anything else is copied: an invalid pattern is the engines' to refuse.
func translate(p string) translated {
	var g, n strings.Builder
	g.Grow(len(p) + 8)
	n.Grow(len(p) + 8)
	both := func(s string) { g.WriteString(s); n.WriteString(s) }
	var t translated
	inClass, multiline := false, false
	var dollars []int // offsets of $ in n
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\\' {
			if i+1 >= len(p) {
				both(`\`)
				i++
				continue
			}
			d := p[i+1]
			if (d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z') && strings.IndexByte(pyEscapes, d) < 0 && t.err == nil {
				t.err = fmt.Errorf("bad escape \\%c at position %d", d, i)
			}
			switch d {
			case 'Z':
				both(`\z`)
			case 'd', 'D', 'w', 'W', 's', 'S', 'b', 'B':
				t.route |= routeUnicode
				both(p[i : i+2])
			default:
				both(p[i : i+2])
			}
			i += 2
			continue
		}
		if inClass {
			switch c {
			case ']':
				inClass = false
				both("]")
			case '[':
				both(`\[`)
			default:
				g.WriteByte(c)
				n.WriteByte(c)
			}
			i++
			continue
		}
		switch c {
		case '[':
			both("[")
			i++
			if i < len(p) && p[i] == '^' {
				both("^")
				i++
			}
			// A "]" first in a class is a literal.
			if i < len(p) && p[i] == ']' {
				both(`\]`)
				i++
			}
			inClass = true
			continue
		case '$':
			t.route |= routeDollar
			dollars = append(dollars, n.Len())
		case '{':
			if j := repeatUpTo(p, i); j > 0 {
				both("{0" + p[i+1:j])
				i = j
				continue
			}
		case '(':
			if strings.HasPrefix(p[i:], "(?P<") {
				g.WriteString("(?P<")
				n.WriteString("(?<")
				i += 4
				continue
			}
			if strings.HasPrefix(p[i:], "(?P=") {
				if j := strings.IndexByte(p[i:], ')'); j > 0 {
					g.WriteString(p[i : i+j+1]) // RE2 refuses backreferences
					n.WriteString(`\k<` + p[i+4:i+j] + ">")
					i += j + 1
					continue
				}
			}
			if strings.HasPrefix(p[i:], "(?(0)") && t.err == nil {
				// .NET reads it as "group 0 took part"; Python refuses it.
				t.err = fmt.Errorf("bad group number at position %d", i+3)
			}
			if f, j, ok := flagGroup(p, i); ok {
				if strings.ContainsRune(f, 'x') {
					t.verbose = true
				}
				if strings.ContainsRune(f, 'a') {
					t.ascii = true
				}
				if strings.ContainsRune(f, 'm') {
					multiline = true
				}
				f = strings.NewReplacer("u", "", "a", "").Replace(f)
				switch {
				case f == "" && p[j] == ')':
					// nothing left to say
				case f == "":
					both("(?:")
				default:
					both("(?" + f + p[j:j+1])
				}
				i = j + 1
				continue
			}
		}
		g.WriteByte(c)
		n.WriteByte(c)
		i++
	}
	t.re2, t.net = g.String(), n.String()
	if t.ascii {
		t.route &^= routeUnicode
		if !multiline && len(dollars) > 0 {
			// regexp2's RE2 option makes $ the end of the input only.
			var b strings.Builder
			last := 0
			for _, d := range dollars {
				b.WriteString(t.net[last:d])
				b.WriteString(`(?=\n?\z)`)
				last = d + 1
			}
			b.WriteString(t.net[last:])
			t.net = b.String()
		}
	}
	return t
}

// repeatUpTo reports whether p[i:] starts with "{,n}" and returns the index
// of its ",", or 0.
func repeatUpTo(p string, i int) int {
	if i+2 >= len(p) || p[i+1] != ',' {
		return 0
	}
	j := i + 2
	for j < len(p) && p[j] >= '0' && p[j] <= '9' {
		j++
	}
	if j == i+2 || j >= len(p) || p[j] != '}' {
		return 0
	}
	return i + 1
}

// flagGroup recognises "(?flags)" and "(?flags-flags:" at p[i]; f is the
// flags text and p[j] the closing ")" or ":".
func flagGroup(p string, i int) (f string, j int, ok bool) {
	if !strings.HasPrefix(p[i:], "(?") {
		return "", 0, false
	}
	j = i + 2
	for j < len(p) && strings.IndexByte("aiLmsux-", p[j]) >= 0 {
		j++
	}
	if j == i+2 || j >= len(p) || (p[j] != ')' && p[j] != ':') {
		return "", 0, false
	}
	return p[i+2 : j], j, true
}
