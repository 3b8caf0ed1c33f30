// Package golden runs a protocol's testdata/<case>/ folders and keeps its
// README's generated sections current. Each case folder holds the inputs
// (config.json, and input data where the protocol converts some) and the
// expected output (want.golden); `go test -update` rewrites the expected
// files and the README sections from what the code produces now, so a
// change shows up as a reviewable diff.
package golden

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want.golden and the README's generated sections")

// Updating reports whether the test run was asked to rewrite golden files.
func Updating() bool { return *update }

// WantFile is the expected output in each case folder.
const WantFile = "want.golden"

// Run runs fn as a subtest for each folder under dir and compares what it
// returns with the folder's want.golden. A dir without cases fails: a
// protocol's golden test that silently runs nothing checks nothing.
func Run(t *testing.T, dir string, fn func(t *testing.T, caseDir string) []byte) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("golden cases: %v", err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		caseDir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(caseDir, "config.json")); err != nil {
			continue // not a golden case (fuzz corpora, fixtures)
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			Check(t, filepath.Join(caseDir, WantFile), fn(t, caseDir))
		})
	}
	if n == 0 {
		t.Fatalf("no golden cases (folders with a config.json) under %s", dir)
	}
}

// Check compares got with the file at path, or writes it under -update.
func Check(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test -run %s -update` to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run `go test -run '%s' -update` and review the diff):\n%s",
			path, strings.SplitN(t.Name(), "/", 2)[0], diff(string(want), string(got)))
	}
}

// diff shows the first lines that differ; enough to see what changed.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(wl), len(gl)) && shown < 10; i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, w, g)
			shown++
		}
	}
	return b.String()
}

// Dump renders v as indented text for a golden file: exported fields only,
// zero values left out (the file shows what a config sets), map keys
// sorted, durations in their usual spelling, values of other modules'
// types (regexp, url) by their String method.
func Dump(v any) []byte {
	d := dumper{seen: map[uintptr]bool{}}
	d.value(reflect.ValueOf(v), 0)
	d.b.WriteByte('\n')
	return d.b.Bytes()
}

type dumper struct {
	b    bytes.Buffer
	seen map[uintptr]bool
}

const module = "github.com/industryos/gateway"

var (
	durationType = reflect.TypeOf(time.Duration(0))
	rawJSONType  = reflect.TypeOf(json.RawMessage(nil))
)

func (d *dumper) indent(n int) { d.b.WriteString(strings.Repeat("  ", n)) }

func (d *dumper) value(v reflect.Value, depth int) {
	if !v.IsValid() {
		d.b.WriteString("nil")
		return
	}
	if v.Type() == durationType {
		d.b.WriteString(time.Duration(v.Int()).String())
		return
	}
	if v.Kind() == reflect.Struct && v.Type().Implements(appenderType) && v.CanInterface() {
		j := v.Interface().(jsonAppender)
		d.b.Write(j.AppendJSON(nil))
		return
	}
	if v.Type() == rawJSONType {
		// Its text, the same with every Go release (from 1.27 the type has a
		// String method, before it printed as hex).
		d.b.WriteString(strconv.Quote(string(v.Bytes())))
		return
	}
	if s, ok := foreignString(v); ok {
		d.b.WriteString(strconv.Quote(s))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			d.b.WriteString("nil")
			return
		}
		if d.seen[v.Pointer()] {
			d.b.WriteString("<cycle>")
			return
		}
		d.seen[v.Pointer()] = true
		d.value(v.Elem(), depth)
		delete(d.seen, v.Pointer())
	case reflect.Interface:
		d.value(v.Elem(), depth)
	case reflect.Struct:
		d.b.WriteString("{")
		t := v.Type()
		any := false
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			fv := v.Field(i)
			if !f.IsExported() || fv.IsZero() || skipKind(fv.Kind()) {
				continue
			}
			d.b.WriteByte('\n')
			d.indent(depth + 1)
			d.b.WriteString(f.Name)
			d.b.WriteString(": ")
			d.value(fv, depth+1)
			any = true
		}
		if any {
			d.b.WriteByte('\n')
			d.indent(depth)
		}
		d.b.WriteString("}")
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			fmt.Fprintf(&d.b, "%x", v.Bytes())
			return
		}
		d.b.WriteString("[")
		for i := 0; i < v.Len(); i++ {
			d.b.WriteByte('\n')
			d.indent(depth + 1)
			d.value(v.Index(i), depth+1)
		}
		if v.Len() > 0 {
			d.b.WriteByte('\n')
			d.indent(depth)
		}
		d.b.WriteString("]")
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		d.b.WriteString("{")
		for _, k := range keys {
			d.b.WriteByte('\n')
			d.indent(depth + 1)
			fmt.Fprintf(&d.b, "%v: ", k)
			d.value(v.MapIndex(k), depth+1)
		}
		if len(keys) > 0 {
			d.b.WriteByte('\n')
			d.indent(depth)
		}
		d.b.WriteString("}")
	case reflect.String:
		d.b.WriteString(strconv.Quote(v.String()))
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		d.b.WriteString("<" + v.Kind().String() + ">")
	default:
		fmt.Fprintf(&d.b, "%v", v)
	}
}

// jsonAppender is a value that has its own JSON form (protocols.Value):
// shown as the platform would receive it.
type jsonAppender interface{ AppendJSON([]byte) []byte }

var appenderType = reflect.TypeOf((*jsonAppender)(nil)).Elem()

func skipKind(k reflect.Kind) bool {
	return k == reflect.Func || k == reflect.Chan || k == reflect.UnsafePointer
}

// foreignString is v's String method when v's type comes from outside this
// module: their fields are someone else's internals.
func foreignString(v reflect.Value) (string, bool) {
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", false
		}
		t = t.Elem()
	}
	if t.PkgPath() == "" || strings.HasPrefix(t.PkgPath(), module) || !v.CanInterface() {
		return "", false
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String(), true
	}
	return "", false
}
