package script

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	starjson "go.starlark.net/lib/json"
	starmath "go.starlark.net/lib/math"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// Limits.
const (
	// DefaultMaxSteps bounds one call (and the top-level code at load). A
	// step is roughly one bytecode: a typical converter takes a few hundred,
	// and a million take tens of milliseconds, so a runaway loop holds its
	// connector that long and no longer.
	DefaultMaxSteps = 1_000_000
	// MaxSourceLen bounds a script file.
	MaxSourceLen = 1 << 20
)

// Entry points a script may define.
const (
	FuncUplink   = "uplink"
	FuncDownlink = "downlink"
)

var (
	// ErrCompile marks a script that cannot be loaded: *CompileError.
	ErrCompile = errors.New("script does not compile")
	// ErrRun marks a failed call: the script raised (fail(), a type error,
	// a bad result) or ran out of steps; *RunError.
	ErrRun = errors.New("script failed")
	// ErrStepLimit marks a call stopped by the step limit; such a
	// *RunError matches both ErrRun and ErrStepLimit.
	ErrStepLimit = errors.New("script stopped by the step limit")
)

// CompileError is a load error with its position in the script.
type CompileError struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Msg       string
}

func (e *CompileError) Error() string {
	switch {
	case e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Is makes errors.Is(err, ErrCompile) true.
func (e *CompileError) Is(target error) bool { return target == ErrCompile }

// RunError is a failed call, positioned at the innermost line of the
// script that was running.
type RunError struct {
	File      string
	Line, Col int
	Func      string // the script function running at Line
	Msg       string
	StepLimit bool
}

func (e *RunError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	}
	if e.Func != "" {
		return fmt.Sprintf("%s: in %s: %s", where, e.Func, e.Msg)
	}
	return fmt.Sprintf("%s: %s", where, e.Msg)
}

// Is makes errors.Is match ErrRun, and ErrStepLimit for a stopped call.
func (e *RunError) Is(target error) bool {
	return target == ErrRun || (target == ErrStepLimit && e.StepLimit)
}

// Options say how to load a script.
type Options struct {
	// Config is the converter's extensionConfig (JSON), given to every call
	// as msg.config / cmd.config. Empty: None.
	Config json.RawMessage
	// MaxSteps bounds one call (0: DefaultMaxSteps).
	MaxSteps uint64
	// Print receives the script's print() lines; nil discards them.
	Print func(file, msg string)
	// Func, when set, names the entry point the script must define (a
	// function of one parameter, run with Call) in place of uplink or
	// downlink: automation scripts define run(event), not converters.
	Func string
}

// Script is a loaded script, safe for concurrent use.
type Script struct {
	File     string
	uplink   *starlark.Function
	downlink *starlark.Function
	config   starlark.Value
	globals  starlark.StringDict // frozen top level, for Call
	pool     sync.Pool

	calls, failures, stopped atomic.Uint64
}

// Stats are counters since load.
type Stats struct {
	Calls     uint64 // uplink and downlink calls
	Failures  uint64 // calls that raised or returned something unusable
	StepLimit uint64 // of the failures, calls stopped by the step limit
}

// Stats returns the script's counters.
func (s *Script) Stats() Stats {
	return Stats{Calls: s.calls.Load(), Failures: s.failures.Load(), StepLimit: s.stopped.Load()}
}

// HasUplink and HasDownlink report which entry points the script defines.
func (s *Script) HasUplink() bool   { return s.uplink != nil }
func (s *Script) HasDownlink() bool { return s.downlink != nil }

var fileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true, // Python scripts loop with while; the step limit stops a runaway one
	TopLevelControl: true,
	GlobalReassign:  true,
	// Recursion stays off: a deep recursion grows the Go stack far faster
	// than it uses steps.
}

// predeclared is what a script sees beside Starlark's universe.
var predeclared = func() starlark.StringDict {
	d := starlark.StringDict{
		"json":   starjson.Module,
		"math":   starmath.Module,
		"binary": binaryModule,
	}
	for k, v := range pyexpr.ScriptBuiltins() {
		d[k] = v
	}
	d.Freeze()
	return d
}()

// Load reads and compiles the script at path.
func Load(path string, opts Options) (*Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, &CompileError{File: path, Msg: fmt.Sprintf("cannot read: %v", unwrapPath(err))}
	}
	return Compile(path, src, opts)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Compile compiles src, runs its top level once (with the step limit) and
// freezes what it defined. file names the script in errors. Errors are
// *CompileError. A script must define uplink or downlink (or both) as
// functions of one parameter.
func Compile(file string, src []byte, opts Options) (*Script, error) {
	if len(src) > MaxSourceLen {
		return nil, &CompileError{File: file, Msg: fmt.Sprintf("%d bytes is larger than the %d allowed", len(src), MaxSourceLen)}
	}
	f, err := fileOptions.Parse(file, src, 0)
	if err != nil {
		return nil, compileError(file, err)
	}
	for _, st := range f.Stmts {
		if l, ok := st.(*syntax.LoadStmt); ok {
			pos := l.Load
			return nil, &CompileError{File: file, Line: int(pos.Line), Col: int(pos.Col), Msg: "load is not available: a script is one file and reads no other"}
		}
	}
	if err := pyexpr.GuardFile(f); err != nil {
		return nil, compileError(file, err)
	}
	prog, err := starlark.FileProgram(f, predeclared.Has)
	if err != nil {
		return nil, compileError(file, err)
	}
	s := &Script{File: file}
	steps := opts.MaxSteps
	if steps == 0 {
		steps = DefaultMaxSteps
	}
	printer := func(_ *starlark.Thread, msg string) {}
	if opts.Print != nil {
		printer = func(_ *starlark.Thread, msg string) { opts.Print(file, msg) }
	}
	s.pool.New = func() any {
		th := &starlark.Thread{Name: file, Print: printer}
		th.SetMaxExecutionSteps(steps)
		return th
	}
	th := s.pool.Get().(*starlark.Thread)
	globals, err := prog.Init(th, predeclared)
	s.pool.Put(th)
	if err != nil {
		re := s.runError(err)
		return nil, &CompileError{File: file, Line: re.Line, Col: re.Col, Msg: "at load: " + re.Msg}
	}
	globals.Freeze()
	s.globals = globals
	if opts.Func != "" {
		if _, err := s.entry(opts.Func); err != nil {
			return nil, &CompileError{File: file, Line: err.Line, Col: err.Col, Msg: err.Msg}
		}
	}
	for _, name := range []string{FuncUplink, FuncDownlink} {
		v, ok := globals[name]
		if !ok {
			continue
		}
		fn, ok := v.(*starlark.Function)
		if !ok || fn.NumParams() != 1 {
			pos := syntax.Position{}
			if ok {
				pos = fn.Position()
			}
			return nil, &CompileError{File: file, Line: int(pos.Line), Col: int(pos.Col), Msg: fmt.Sprintf("%s must be a function of one parameter (def %s(%s):)", name, name, map[string]string{FuncUplink: "msg", FuncDownlink: "cmd"}[name])}
		}
		if name == FuncUplink {
			s.uplink = fn
		} else {
			s.downlink = fn
		}
	}
	if s.uplink == nil && s.downlink == nil && opts.Func == "" {
		return nil, &CompileError{File: file, Msg: "defines neither uplink(msg) nor downlink(cmd)"}
	}
	s.config = starlark.None
	if len(opts.Config) > 0 {
		// Starlark's decoder keeps the keys in file order, as Python's
		// json does: upstream converters walk their config in that order.
		th := s.pool.Get().(*starlark.Thread)
		th.Steps = 0
		cfg, err := starlark.Call(th, jsonDecode, starlark.Tuple{starlark.String(opts.Config)}, nil)
		s.pool.Put(th)
		if err != nil {
			return nil, &CompileError{File: file, Msg: fmt.Sprintf("extensionConfig: %v", err)}
		}
		cfg.Freeze()
		s.config = cfg
	}
	return s, nil
}

func compileError(file string, err error) error {
	ce := &CompileError{File: file, Msg: err.Error()}
	var serr syntax.Error
	var rerrs resolve.ErrorList
	switch {
	case errors.As(err, &serr):
		ce.Line, ce.Col, ce.Msg = int(serr.Pos.Line), int(serr.Pos.Col), serr.Msg
	case errors.As(err, &rerrs) && len(rerrs) > 0:
		ce.Line, ce.Col, ce.Msg = int(rerrs[0].Pos.Line), int(rerrs[0].Pos.Col), rerrs[0].Msg
		if len(rerrs) > 1 {
			ce.Msg += fmt.Sprintf(" (and %d more)", len(rerrs)-1)
		}
	}
	return ce
}

// call runs fn(arg) on a pooled thread, counting the call and its failure.
func (s *Script) call(fn *starlark.Function, arg starlark.Value) (starlark.Value, error) {
	s.calls.Add(1)
	th := s.pool.Get().(*starlark.Thread)
	// Steps add up across calls and a step-limit cancellation sticks.
	th.Steps = 0
	th.Uncancel()
	out, err := starlark.Call(th, fn, starlark.Tuple{arg}, nil)
	s.pool.Put(th)
	if err != nil {
		return nil, s.fail(s.runError(err))
	}
	return out, nil
}

// fail counts a failed call.
func (s *Script) fail(e *RunError) *RunError {
	s.failures.Add(1)
	if e.StepLimit {
		s.stopped.Add(1)
	}
	return e
}

// runError positions err at the innermost frame that is in the script.
func (s *Script) runError(err error) *RunError {
	re := &RunError{File: s.File, Msg: err.Error()}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		re.Msg = ee.Msg
		for i := 0; i < len(ee.CallStack); i++ {
			fr := ee.CallStack.At(i)
			if fr.Pos.Filename() == s.File {
				re.Line, re.Col, re.Func = int(fr.Pos.Line), int(fr.Pos.Col), fr.Name
				break
			}
		}
	}
	re.StepLimit = strings.Contains(re.Msg, "cancelled: too many steps")
	if re.StepLimit {
		re.Msg = "stopped after too many steps (endless loop?)"
	}
	return re
}

// failAt is a bad result of a call, positioned at the function.
func (s *Script) failAt(fn *starlark.Function, format string, a ...any) error {
	pos := fn.Position()
	return s.fail(&RunError{File: s.File, Line: int(pos.Line), Col: int(pos.Col), Func: fn.Name(), Msg: fmt.Sprintf(format, a...)})
}
