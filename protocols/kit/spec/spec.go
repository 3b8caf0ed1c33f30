// Package spec decodes upstream JSON/YAML configuration while recording every
// problem with its file and JSON path. Upstream files carry keys we do not use
// yet, so unknown keys are warnings; everything else that is wrong is an error,
// and decoding never stops at the first problem.
package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Severity of a Problem.
type Severity int

const (
	Error Severity = iota
	Warning
	// Skipped is an error in one entry of a list (an RPC, an attribute
	// update, a key) that leaves that entry out instead of refusing the whole
	// file: upstream loads such files and fails only when the entry is used,
	// so a site's file must still start every valid entry with us.
	Skipped
)

// Problem is one finding about a config file.
type Problem struct {
	File     string
	Path     string
	Msg      string
	Severity Severity
}

func (p Problem) String() string {
	var b strings.Builder
	switch p.Severity {
	case Warning:
		b.WriteString("warning: ")
	case Skipped:
		b.WriteString("error (entry skipped): ")
	}
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems collects findings; the zero value is ready to use.
type Problems struct {
	List []Problem
}

// Errorf records an error at file/path.
func (ps *Problems) Errorf(file, path, format string, a ...any) {
	ps.List = append(ps.List, Problem{File: file, Path: path, Msg: fmt.Sprintf(format, a...)})
}

// Warnf records a warning at file/path.
func (ps *Problems) Warnf(file, path, format string, a ...any) {
	ps.List = append(ps.List, Problem{File: file, Path: path, Msg: fmt.Sprintf(format, a...), Severity: Warning})
}

// Skipf records an entry left out at file/path (see Skipped).
func (ps *Problems) Skipf(file, path, format string, a ...any) {
	ps.List = append(ps.List, Problem{File: file, Path: path, Msg: fmt.Sprintf(format, a...), Severity: Skipped})
}

// Mark is a position in the list for SkipSince.
func (ps *Problems) Mark() int { return len(ps.List) }

// SkipSince turns the errors recorded since mark into Skipped problems and
// reports whether there were any; the caller then leaves the entry it was
// parsing out. Use it only around an entry whose absence leaves the rest of
// the file meaningful.
func (ps *Problems) SkipSince(mark int) bool { return ps.demoteSince(mark, Skipped) != nil }

// WarnSince turns the errors recorded since mark into warnings and returns
// them, nil when there were none: for an entry that stays loaded and fails
// only when it is used (upstream checks an RPC's type when it is called).
func (ps *Problems) WarnSince(mark int) []Problem { return ps.demoteSince(mark, Warning) }

func (ps *Problems) demoteSince(mark int, to Severity) []Problem {
	var out []Problem
	for i := mark; i < len(ps.List); i++ {
		if ps.List[i].Severity == Error {
			ps.List[i].Severity = to
			out = append(out, ps.List[i])
		}
	}
	return out
}

// Skips returns the entries left out (see SkipSince).
func (ps *Problems) Skips() []Problem { return ps.filter(Skipped) }

// NotErrors returns the warnings and skipped entries: what a loaded file
// still has to report.
func (ps *Problems) NotErrors() []Problem {
	var out []Problem
	for _, p := range ps.List {
		if p.Severity != Error {
			out = append(out, p)
		}
	}
	return out
}

// Errors returns only the errors.
func (ps *Problems) Errors() []Problem { return ps.filter(Error) }

// Warnings returns only the warnings.
func (ps *Problems) Warnings() []Problem { return ps.filter(Warning) }

func (ps *Problems) filter(s Severity) []Problem {
	if ps == nil {
		return nil
	}
	var out []Problem
	for _, p := range ps.List {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// HasErrors reports whether any error was recorded.
func (ps *Problems) HasErrors() bool { return len(ps.Errors()) > 0 }

// Err returns the errors joined into one error, or nil.
func (ps *Problems) Err() error {
	errs := ps.Errors()
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, p := range errs {
		lines[i] = p.String()
	}
	return &InvalidError{Lines: lines}
}

// InvalidError is returned for a config that has errors; each line names file and path.
type InvalidError struct{ Lines []string }

func (e *InvalidError) Error() string { return strings.Join(e.Lines, "\n") }

// Obj is a JSON object being decoded at a path. Every accessor marks its key as
// known, so Done can warn about the rest.
type Obj struct {
	ps    *Problems
	file  string
	path  string
	m     map[string]any
	known map[string]bool
	src   []byte // the file's JSON text when Parse made the root; see RawJSON
	segs  []seg  // where this object is in src
}

// Parse decodes raw JSON into an Obj rooted at file. A syntax error is recorded
// with its line and column and nil is returned.
func Parse(ps *Problems, file string, raw []byte) *Obj {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		ps.Errorf(file, "", "invalid JSON: %s", describeJSONError(raw, err))
		return nil
	}
	if m == nil {
		ps.Errorf(file, "", "expected a JSON object, got null")
		return nil
	}
	o := New(ps, file, "", m)
	o.src = raw
	return o
}

func describeJSONError(raw []byte, err error) string {
	var off int64 = -1
	switch e := err.(type) {
	case *json.SyntaxError:
		off = e.Offset
	case *json.UnmarshalTypeError:
		off = e.Offset
	}
	if off < 0 {
		return err.Error()
	}
	// encoding/json's offset is just past the offending byte; point at it.
	line, col := 1, 1
	for i := int64(0); i < off-1 && i < int64(len(raw)); i++ {
		if raw[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d column %d: %v", line, col, err)
}

// New wraps an already decoded map (numbers should be json.Number or float64).
func New(ps *Problems, file, path string, m map[string]any) *Obj {
	return &Obj{ps: ps, file: file, path: path, m: m, known: map[string]bool{}}
}

// File is the file this object came from.
func (o *Obj) File() string { return o.file }

// Path is the JSON path of this object.
func (o *Obj) Path() string { return o.path }

// Problems gives access to the collector.
func (o *Obj) Problems() *Problems { return o.ps }

// Raw is the underlying map.
func (o *Obj) Raw() map[string]any { return o.m }

// KeyPath is the JSON path of key inside this object.
func (o *Obj) KeyPath(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// Errorf records an error at key (or at the object itself when key is "").
func (o *Obj) Errorf(key, format string, a ...any) {
	p := o.path
	if key != "" {
		p = o.KeyPath(key)
	}
	o.ps.Errorf(o.file, p, format, a...)
}

// Warnf records a warning at key.
func (o *Obj) Warnf(key, format string, a ...any) {
	p := o.path
	if key != "" {
		p = o.KeyPath(key)
	}
	o.ps.Warnf(o.file, p, format, a...)
}

// Has reports whether key is present (and marks it known).
func (o *Obj) Has(key string) bool {
	o.known[key] = true
	_, ok := o.m[key]
	return ok
}

// Known marks keys as understood without reading them.
func (o *Obj) Known(keys ...string) {
	for _, k := range keys {
		o.known[k] = true
	}
}

func (o *Obj) get(key string) (any, bool) {
	o.known[key] = true
	v, ok := o.m[key]
	if ok && v == nil {
		return nil, false
	}
	return v, ok
}

// getSection is get for a section (a list or an object): upstream treats an
// empty {} or [] as absent whichever of the two it expects, and its own files
// use both spellings (`"connectRequests": {}`).
func (o *Obj) getSection(key string) (any, bool) {
	v, ok := o.get(key)
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			return nil, false
		}
	case []any:
		if len(t) == 0 {
			return nil, false
		}
	}
	return v, ok
}

// Any returns the raw value of key.
func (o *Obj) Any(key string) (any, bool) { return o.get(key) }

// Str reads a string; numbers and bools are accepted in their text form because
// upstream files are inconsistent about quoting.
func (o *Obj) Str(key, def string) string {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case int:
		return strconv.Itoa(t)
	case bool:
		return strconv.FormatBool(t)
	}
	o.Errorf(key, "expected a string, got %s", describe(v))
	return def
}

// RequiredStr reads a string that must be present and non-empty.
func (o *Obj) RequiredStr(key string) string {
	s := o.Str(key, "")
	if _, ok := o.m[key]; !ok {
		o.Errorf(key, "is required")
	} else if strings.TrimSpace(s) == "" {
		o.Errorf(key, "must not be empty")
	}
	return s
}

// Float reads a number; numeric strings are accepted.
func (o *Obj) Float(key string, def float64) float64 {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	f, err := toFloat(v)
	if err != nil {
		o.Errorf(key, "%s is not a number", describe(v))
		return def
	}
	return f
}

// Int reads an integer; numeric strings and integral floats are accepted.
func (o *Obj) Int(key string, def int64) int64 {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	f, err := toFloat(v)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		o.Errorf(key, "%s is not an integer", describe(v))
		return def
	}
	return int64(f)
}

// IntRange reads an integer and checks min <= v <= max.
func (o *Obj) IntRange(key string, def, min, max int64) int64 {
	v := o.Int(key, def)
	if _, ok := o.m[key]; ok && (v < min || v > max) {
		o.Errorf(key, "%d is out of range (want %d..%d)", v, min, max)
		return def
	}
	return v
}

// Bool reads a boolean; "true"/"false" strings are accepted.
func (o *Obj) Bool(key string, def bool) bool {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	switch t := v.(type) {
	case bool:
		return t
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(t)); err == nil {
			return b
		}
	}
	o.Errorf(key, "%s is not a boolean (want true or false)", describe(v))
	return def
}

// Enum reads a string that must be one of allowed (case-insensitive); the
// canonical spelling from allowed is returned.
func (o *Obj) Enum(key, def string, allowed ...string) string {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	s, isStr := v.(string)
	if isStr {
		for _, a := range allowed {
			if strings.EqualFold(strings.TrimSpace(s), a) {
				return a
			}
		}
	}
	o.Errorf(key, "unknown value %s (want one of: %s)", describe(v), strings.Join(allowed, ", "))
	return def
}

// Obj reads a nested object; nil when absent or of the wrong type.
func (o *Obj) Obj(key string) *Obj {
	v, ok := o.getSection(key)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		o.Errorf(key, "expected an object, got %s", describe(v))
		return nil
	}
	return o.child(o.KeyPath(key), m, seg{key: key})
}

func (o *Obj) child(path string, m map[string]any, at ...seg) *Obj {
	c := New(o.ps, o.file, path, m)
	if o.src != nil {
		c.src = o.src
		c.segs = append(append(make([]seg, 0, len(o.segs)+len(at)), o.segs...), at...)
	}
	return c
}

// List reads a list of objects; non-object items are reported and skipped.
func (o *Obj) List(key string) []*Obj {
	v, ok := o.getSection(key)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.Errorf(key, "expected a list, got %s", describe(v))
		return nil
	}
	out := make([]*Obj, 0, len(arr))
	for i, it := range arr {
		p := fmt.Sprintf("%s[%d]", o.KeyPath(key), i)
		m, isMap := it.(map[string]any)
		if !isMap {
			o.ps.Errorf(o.file, p, "expected an object, got %s", describe(it))
			continue
		}
		out = append(out, o.child(p, m, seg{key: key}, seg{index: i}))
	}
	return out
}

// Strings reads a list of strings.
func (o *Obj) Strings(key string) []string {
	v, ok := o.getSection(key)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.Errorf(key, "expected a list of strings, got %s", describe(v))
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, it := range arr {
		s, isStr := it.(string)
		if !isStr {
			o.ps.Errorf(o.file, fmt.Sprintf("%s[%d]", o.KeyPath(key), i), "expected a string, got %s", describe(it))
			continue
		}
		out = append(out, s)
	}
	return out
}

// Done warns about keys nobody asked for, with a "did you mean" hint for near misses.
func (o *Obj) Done() {
	var unknown []string
	for k := range o.m {
		if !o.known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		if hint := closest(k, o.known); hint != "" {
			o.Warnf(k, "unknown key, ignored (did you mean %q?)", hint)
		} else {
			o.Warnf(k, "unknown key, ignored")
		}
	}
}

// Closest returns the candidate within two edits of k (ignoring case), or ""
// when none is: the "did you mean" of a misspelt value.
func Closest(k string, candidates []string) string {
	m := make(map[string]bool, len(candidates))
	for _, c := range candidates {
		m[c] = true
	}
	return closest(k, m)
}

func closest(k string, known map[string]bool) string {
	best, bestD := "", 3
	lk := strings.ToLower(k)
	for c := range known {
		if _, present := known[c]; !present {
			continue
		}
		d := levenshtein(lk, strings.ToLower(c))
		if d < bestD || (d == bestD && best != "" && c < best) {
			best, bestD = c, d
		}
	}
	if bestD > 2 || best == k {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func toFloat(v any) (float64, error) {
	switch t := v.(type) {
	case json.Number:
		return t.Float64()
	case float64:
		return t, nil
	case int:
		return float64(t), nil
	case int64:
		return float64(t), nil
	case uint64:
		return float64(t), nil
	case string:
		return strconv.ParseFloat(strings.TrimSpace(t), 64)
	}
	return 0, fmt.Errorf("not a number")
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(t)
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}

// Describe formats a raw value for an error message the way this package does.
func Describe(v any) string { return describe(v) }
