package request

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// proc is a subRequests processingFunction. Upstream exec()s arbitrary
// Python; here the one shape its documentation and sample use runs —
// `def f(data, key): return {key: <expression>}` on one line — with the
// expression evaluated by the sandboxed pyexpr. Anything else is refused
// at load with a message saying so.
type proc struct {
	dataVar, keyVar string
	expr            *pyexpr.Expr
}

var (
	procDef  = regexp.MustCompile(`^\s*def\s+\w+\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)\s*:\s*return\s+(.+?)\s*$`)
	procDict = regexp.MustCompile(`^\{\s*(\w+)\s*:\s*(.+?)\s*\}$`)
)

func compileProc(src string) (*proc, error) {
	m := procDef.FindStringSubmatch(src)
	if m == nil || strings.Contains(m[3], "\n") {
		return nil, errors.New("only a one-line `def f(data, key): return {key: <expression>}` runs here (upstream's Python is not executed)")
	}
	d := procDict.FindStringSubmatch(m[3])
	if d == nil || d[1] != m[2] {
		return nil, fmt.Errorf("return value %q must be {%s: <expression>}", m[3], m[2])
	}
	e, err := pyexpr.Compile(d[2], pyexpr.Options{})
	if err != nil {
		return nil, err
	}
	return &proc{dataVar: m[1], keyVar: m[2], expr: e}, nil
}

// run evaluates the function on a sub-request's decoded answer.
func (p *proc) run(data any, key string) (protocols.Value, error) {
	return p.expr.EvalMap(map[string]any{p.dataVar: data, p.keyVar: key})
}
