package spec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Field types, as the README tables name them.
const (
	TypeString   = "string"
	TypeInteger  = "integer"
	TypeNumber   = "number"
	TypeBoolean  = "boolean"
	TypeEnum     = "enum"
	TypeDuration = "duration"
	TypeObject   = "object"
	TypeList     = "list"
)

// Field is one key of a config section. The table is the single place that
// says what a key is: the parser reads through it (so its default is the
// one applied and its range the one `iotgw check` enforces) and the
// protocol's README shows it (see Markdown).
type Field struct {
	Key  string
	Type string
	// Default is what an absent key means: a string, int64, float64, bool
	// or time.Duration matching Type; nil for none.
	Default any
	// Min and Max bound an integer (both zero: unbounded).
	Min, Max int64
	// Values are an enum's choices; the first spelling wins.
	Values []string
	// Dur is a duration's unit and range.
	Dur Dur
	// Required keys are reported when absent.
	Required bool
	Doc      string
}

// Section is the field table of one object in the file. Path is where it
// sits ("master.slaves[]"), for the README.
type Section struct {
	Path   string
	Doc    string
	Fields []Field
}

// Field returns key's entry. A key missing from the table is a programming
// error: a test exercising the parser finds it at once.
func (s *Section) Field(key string) *Field {
	for i := range s.Fields {
		if s.Fields[i].Key == key {
			return &s.Fields[i]
		}
	}
	panic(fmt.Sprintf("spec: %q is not in the field table of %q", key, s.Path))
}

// Keys lists the table's keys.
func (s *Section) Keys() []string {
	out := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		out[i] = f.Key
	}
	return out
}

// Known marks every key of the table as understood, for sections whose
// nested objects and lists are read by hand.
func (s *Section) Known(o *Obj) { o.Known(s.Keys()...) }

// Str reads a string key with the table's default.
func (s *Section) Str(o *Obj, key string) string {
	f := s.Field(key)
	if f.Required {
		return o.RequiredStr(key)
	}
	def, _ := f.Default.(string)
	return o.Str(key, def)
}

// Int reads an integer key with the table's default and range.
func (s *Section) Int(o *Obj, key string) int64 {
	f := s.Field(key)
	def, _ := f.Default.(int64)
	if f.Required && !o.Has(key) {
		o.Errorf(key, "is required")
		return def
	}
	if f.Min == 0 && f.Max == 0 {
		return o.Int(key, def)
	}
	return o.IntRange(key, def, f.Min, f.Max)
}

// Float reads a number key with the table's default.
func (s *Section) Float(o *Obj, key string) float64 {
	def, _ := s.Field(key).Default.(float64)
	return o.Float(key, def)
}

// Bool reads a boolean key with the table's default.
func (s *Section) Bool(o *Obj, key string) bool {
	def, _ := s.Field(key).Default.(bool)
	return o.Bool(key, def)
}

// Enum reads an enum key with the table's default and choices.
func (s *Section) Enum(o *Obj, key string) string {
	f := s.Field(key)
	def, _ := f.Default.(string)
	return o.Enum(key, def, f.Values...)
}

// Duration reads a duration key with the table's default, unit and range.
func (s *Section) Duration(o *Obj, key string) time.Duration {
	f := s.Field(key)
	def, _ := f.Default.(time.Duration)
	d := f.Dur
	d.Required = d.Required || f.Required
	return o.Duration(key, def, d)
}

// Markdown renders sections as the README's configuration reference: one
// table per section, in order.
func Markdown(sections ...Section) string {
	var b strings.Builder
	for i, s := range sections {
		if i > 0 {
			b.WriteString("\n")
		}
		path := s.Path
		if path == "" {
			path = "(top level)"
		}
		fmt.Fprintf(&b, "`%s`", path)
		if s.Doc != "" {
			fmt.Fprintf(&b, ": %s", s.Doc)
		}
		b.WriteString("\n\n| Key | Type | Default | Description |\n|---|---|---|---|\n")
		for _, f := range s.Fields {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Key, f.typeText(), f.defaultText(), strings.ReplaceAll(f.Doc, "|", "\\|"))
		}
	}
	return b.String()
}

func (f *Field) typeText() string {
	switch f.Type {
	case TypeEnum:
		return strings.Join(quoteAll(f.Values), ", ")
	case TypeDuration:
		u := f.Dur.Unit
		if u == 0 {
			u = time.Second
		}
		return unitName(u)
	case TypeInteger:
		if f.Min != 0 || f.Max != 0 {
			return fmt.Sprintf("integer %d..%d", f.Min, f.Max)
		}
	}
	return f.Type
}

func (f *Field) defaultText() string {
	if f.Required {
		return "required"
	}
	switch d := f.Default.(type) {
	case nil:
		return ""
	case string:
		if d == "" {
			return `""`
		}
		return "`" + strconv.Quote(d) + "`"
	case time.Duration:
		u := f.Dur.Unit
		if u == 0 {
			u = time.Second
		}
		return "`" + fmtNum(float64(d)/float64(u)) + "`"
	case float64:
		return "`" + fmtNum(d) + "`"
	}
	return fmt.Sprintf("`%v`", f.Default)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return out
}
