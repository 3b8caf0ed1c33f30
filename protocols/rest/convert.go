package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols/kit/jsonconv"
)

// ErrBadRequest is matched by every error about a request the connector
// cannot read; the handler answers it with 400 and the error's text.
var ErrBadRequest = errors.New("bad request")

type badRequest struct{ err error }

func (b badRequest) Error() string        { return b.err.Error() }
func (b badRequest) Unwrap() error        { return b.err }
func (b badRequest) Is(target error) bool { return target == ErrBadRequest }

func badf(format string, a ...any) error { return badRequest{fmt.Errorf(format, a...)} }

// Input is what one request carries for the converter: its body and the
// fields upstream merges into it (path values, then query parameters,
// which win over the body's keys).
type Input struct {
	ContentType string
	Body        []byte
	Query       url.Values
	PathValues  map[string]string
}

// Payload returns the JSON document the converter reads. A plain JSON body
// without query or path values is passed through untouched (the converter
// decodes it once); anything else is decoded, merged and encoded again.
func (in *Input) Payload() ([]byte, error) {
	body := bytes.TrimSpace(in.Body)
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(in.ContentType, ";", 2)[0]))
	extra := len(in.Query) > 0 || len(in.PathValues) > 0
	var doc any
	switch {
	case ct == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, badf("form body: %v", err)
		}
		doc = valuesMap(form)
	case ct == "multipart/form-data":
		return nil, badf("multipart/form-data bodies are not supported; send JSON or a urlencoded form")
	case len(body) == 0:
		if !extra {
			return nil, nil
		}
		doc = map[string]any{}
	default:
		if !extra {
			if !json.Valid(body) {
				return nil, badf("invalid JSON: %s", describeJSONError(body))
			}
			return body, nil
		}
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&doc); err != nil {
			return nil, badf("invalid JSON: %s", describeJSONError(body))
		}
		if d.More() {
			return nil, badf("invalid JSON: more than one value")
		}
	}
	merge := func(m map[string]any) {
		for k, v := range in.PathValues {
			if _, ok := m[k]; !ok {
				m[k] = v
			}
		}
		for k, vs := range in.Query {
			m[k] = vs[len(vs)-1]
		}
	}
	switch t := doc.(type) {
	case map[string]any:
		merge(t)
	case []any:
		for _, el := range t {
			if m, ok := el.(map[string]any); ok {
				merge(m)
			}
		}
	}
	return json.Marshal(doc)
}

func valuesMap(v url.Values) map[string]any {
	m := make(map[string]any, len(v))
	for k, vs := range v {
		m[k] = vs[len(vs)-1]
	}
	return m
}

// describeJSONError says where and why a body is not JSON, for the 400.
func describeJSONError(b []byte) string {
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		return "not a single JSON value"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at byte %d", se.Error(), se.Offset)
	}
	return err.Error()
}

// convert runs a mapping's converter on a request payload. It returns what
// could be converted and the problems met; a payload the converter cannot
// read at all is an ErrBadRequest.
func convert(conv jsonconv.Converter, endpoint string, payload []byte, now time.Time) ([]jsonconv.Converted, error) {
	out, err := conv.Convert(endpoint, payload, now)
	if err != nil {
		var ce *jsonconv.ConvertError
		if errors.As(err, &ce) && (ce.What == "invalid JSON" || ce.What == "payload") {
			return nil, badRequest{err}
		}
	}
	return out, err
}

// template is a requestUrlExpression or valueExpression: text with ${}
// references into the command's data, each rendered on its own so URL
// values can be escaped.
type template struct {
	src   string
	parts []tpart
}

type tpart struct {
	lit  string
	expr *jsonconv.Expr
}

func compileTemplate(s string) (*template, error) {
	t := &template{src: s}
	last := 0
	for _, loc := range refRe.FindAllStringIndex(s, -1) {
		if loc[0] > last {
			t.parts = append(t.parts, tpart{lit: s[last:loc[0]]})
		}
		e, err := jsonconv.Compile(s[loc[0]:loc[1]])
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, tpart{expr: e})
		last = loc[1]
	}
	if last < len(s) {
		t.parts = append(t.parts, tpart{lit: s[last:]})
	}
	return t, nil
}

// render fills the template from env; esc, when set, escapes each value.
func (t *template) render(env any, esc func(string) string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.expr.EvalString(env)
		if err != nil {
			return "", fmt.Errorf("%q: %w", t.src, err)
		}
		if esc != nil {
			v = esc(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// refs evaluates each ${} of the template on its own: upstream reads
// "${attribute}${attribute1}" as two attribute names, not one. References
// the data lacks are left out; a template without ${} is one constant.
func (t *template) refs(doc any) []string {
	var out []string
	hasRef := false
	for _, p := range t.parts {
		if p.expr == nil {
			continue
		}
		hasRef = true
		v, err := p.expr.Eval(doc)
		if err != nil || v == nil {
			continue
		}
		if l, ok := v.([]any); ok {
			for _, e := range l {
				if s, ok := e.(string); ok && s != "" {
					out = append(out, s)
				}
			}
			continue
		}
		if s, err := p.expr.EvalString(doc); err == nil && s != "" {
			out = append(out, s)
		}
	}
	if !hasRef && strings.TrimSpace(t.src) != "" {
		for _, s := range strings.Split(t.src, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// escapeURL is Python's urllib.parse.quote: everything but unreserved
// characters and '/' is percent-encoded.
func escapeURL(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
