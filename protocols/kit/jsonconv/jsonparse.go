package jsonconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parser decodes JSON into the same shapes as encoding/json with UseNumber
// (map[string]any, []any, string, json.Number, bool, nil). It exists because
// this is the per-message hot path: keys, strings and numbers without escapes
// are substrings of one copy of the payload instead of an allocation each.
type parser struct {
	s     string
	i     int
	depth int
}

// maxDepth bounds recursion so a hostile payload cannot exhaust the stack.
const maxDepth = 10000

var errUnexpectedEOF = errors.New("unexpected EOF")

// DecodeJSON decodes a payload into the shapes encoding/json gives with
// UseNumber, without an allocation per key, string or number.
func DecodeJSON(payload []byte) (any, error) { return decodeJSONString(string(payload)) }

// decodeJSONString is decodeJSON on a payload already copied to a string.
func decodeJSONString(s string) (any, error) {
	p := parser{s: s}
	p.ws()
	if p.i >= len(p.s) {
		return nil, errUnexpectedEOF
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) errAt(what string) error {
	if p.i >= len(p.s) {
		return errUnexpectedEOF
	}
	return fmt.Errorf("invalid character %q %s at offset %d", p.s[p.i], what, p.i)
}

func (p *parser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, errUnexpectedEOF
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.lit("true", true)
	case c == 'f':
		return p.lit("false", false)
	case c == 'n':
		return p.lit("null", nil)
	}
	return nil, p.errAt("looking for beginning of value")
}

func (p *parser) lit(word string, v any) (any, error) {
	if len(p.s)-p.i < len(word) {
		if word[:len(p.s)-p.i] == p.s[p.i:] {
			return nil, errUnexpectedEOF
		}
	} else if p.s[p.i:p.i+len(word)] == word {
		p.i += len(word)
		return v, nil
	}
	return nil, p.errAt("in literal")
}

func (p *parser) object() (any, error) {
	m := make(map[string]any)
	err := p.members(func(k string) error {
		v, err := p.value()
		m[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (p *parser) array() (any, error) {
	l := []any{}
	err := p.elements(']', "after array element", func() error {
		v, err := p.value()
		l = append(l, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// members walks the object at p.i, calling member with each key once the
// parser is on the key's value, which member must consume.
func (p *parser) members(member func(key string) error) error {
	return p.elements('}', "after object key:value pair", func() error {
		if p.i >= len(p.s) {
			return errUnexpectedEOF
		}
		if p.s[p.i] != '"' {
			return p.errAt("looking for beginning of object key string")
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.s) {
			return errUnexpectedEOF
		}
		if p.s[p.i] != ':' {
			return p.errAt("after object key")
		}
		p.i++
		p.ws()
		return member(k)
	})
}

// elements walks the object or list whose opening bracket is at p.i,
// calling each with the parser on every element (past whitespace); each
// must consume it. after names the place of a bad separator in errors.
func (p *parser) elements(closer byte, after string, each func() error) error {
	if p.depth++; p.depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	defer func() { p.depth-- }()
	p.i++
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == closer {
		p.i++
		return nil
	}
	for {
		p.ws()
		if err := each(); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.s) {
			return errUnexpectedEOF
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case closer:
			p.i++
			return nil
		default:
			return p.errAt(after)
		}
	}
}

func (p *parser) number() (any, error) {
	s, err := p.numberText()
	if err != nil {
		return nil, err
	}
	return json.Number(s), nil
}

// numberText reads a number literal and returns its text, so callers that
// only convert it (the fast path) do not box a json.Number into an any.
func (p *parser) numberText() (string, error) {
	start := p.i
	digits := func() int {
		// Locals, not p's fields: the loop then stays in registers.
		s, i := p.s, p.i
		for i < len(s) && s[i]-'0' <= 9 {
			i++
		}
		n := i - p.i
		p.i = i
		return n
	}
	if p.s[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return "", p.errAt("in numeric literal")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.errAt("after decimal point in numeric literal")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.errAt("in exponent of numeric literal")
		}
	}
	return p.s[start:p.i], nil
}

// strPlain marks the bytes a string literal can hold with no further
// thought: not '"', '\\', a control character or part of a multi-byte
// UTF-8 sequence.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string literal at p.i (which is '"').
func (p *parser) str() (string, error) {
	p.i++
	start := p.i
	// Most strings are short ASCII: one table look-up per byte, and no
	// UTF-8 validation when the closing quote follows.
	i := start
	for i < len(p.s) && strPlain[p.s[i]] {
		i++
	}
	p.i = i
	if i < len(p.s) && p.s[i] == '"' {
		p.i++
		return p.s[start:i], nil
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			if !utf8.ValidString(s) {
				return toValidUTF8(s), nil
			}
			return s, nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return "", p.errAt("in string literal")
		}
		p.i++
	}
	return "", errUnexpectedEOF
}

// toValidUTF8 matches encoding/json, which replaces each invalid byte.
func toValidUTF8(s string) string {
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

func (p *parser) strSlow(start int) (string, error) {
	b := []byte(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return toValidUTF8(string(b)), nil
		case c < 0x20:
			return "", p.errAt("in string literal")
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.s) {
			return "", errUnexpectedEOF
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errAt("in \\u hexadecimal character escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if x, ok := p.hex4(); ok {
						if d := utf16.DecodeRune(r, x); d != utf8.RuneError {
							r2 = d
						} else {
							p.i = save
						}
					} else {
						return "", p.errAt("in \\u hexadecimal character escape")
					}
				}
				r = r2
			}
			b = utf8.AppendRune(b, r)
		default:
			p.i--
			return "", p.errAt("in string escape code")
		}
	}
	return "", errUnexpectedEOF
}

func (p *parser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}
