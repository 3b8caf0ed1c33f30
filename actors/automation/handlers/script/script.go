// Package script is the automation handler that runs a Starlark function
// (protocols/kit/script: the converters' sandbox and step limit) and queues
// the actions it returns. The script decides; the queue acts: what it
// returns is stored and retried like a task's own actions, never run
// inline.
//
//   - handler: script
//     params:
//     file: scripts/alarm.star   # relative to automation.yaml's directory; or source: "def run(event): ..."
//     function: run              # default run
//     params: {limit: 80}        # templated like any param; the script reads event.params
//
// The function takes one parameter, event, with the attributes value,
// device, key, ts, event, task, previous (None when absent), vars (dict of
// the task's vars: the last known values) and params, and returns None, an
// action or a list of them: {"handler": "device_write", "params":
// {"device": "plc", "key": "alarm", "value": 1}}. An action naming an
// unknown handler (or a script) or with params its handler refuses is not
// queued; the others are, and the run fails with each refused action named.
// A returned value of another shape fails the run and queues nothing. The
// script compiles when the file is checked (iotgw check, a reload) and
// again when its file changes.
package script

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"sync"

	"github.com/industryos/gateway/actors/automation/handler"
	starscript "github.com/industryos/gateway/protocols/kit/script"
)

// Name is the handler's name in automation.yaml.
const Name = "script"

// DefaultFunction is the entry point when params.function is not given.
const DefaultFunction = "run"

// maxCached bounds the compiled scripts kept; past it the cache starts over.
const maxCached = 64

func init() { handler.Register(Name, New) }

// Handler runs scripts.
type Handler struct {
	env   handler.Env
	mu    sync.Mutex
	cache map[string]*compiled
}

type compiled struct {
	sum [32]byte
	s   *starscript.Script
}

// New builds the handler.
func New(env handler.Env) handler.Handler {
	return &Handler{env: env, cache: map[string]*compiled{}}
}

var (
	params      = []string{"file", "source", "function", "params"}
	ident       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	placeholder = regexp.MustCompile(`\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}`)
)

// Validate checks the params and compiles the script, so a syntax error
// or a missing function is a check-time error with file:line.
func (h *Handler) Validate(p map[string]any) []error {
	errs := handler.Known(p, params...)
	if _, err := h.load(p); err != nil {
		errs = append(errs, err)
	}
	if v, ok := p["params"]; ok {
		if _, ok := v.(map[string]any); !ok {
			errs = append(errs, fmt.Errorf("params.params: %v is not a mapping (the script reads it as event.params)", v))
		}
	}
	return errs
}

// load returns the compiled script the params name, compiling it when its
// text changed since the last call.
func (h *Handler) load(p map[string]any) (*starscript.Script, error) {
	fn, err := handler.OptString(p, "function", DefaultFunction)
	if err != nil {
		return nil, err
	}
	if !ident.MatchString(fn) {
		return nil, fmt.Errorf("params.function: %q is not a function name", fn)
	}
	_, hasFile := p["file"]
	_, hasSource := p["source"]
	var name, key string
	var src []byte
	switch {
	case hasFile == hasSource:
		return nil, errors.New("params: want file (a Starlark file) or source (the script itself), not both or neither")
	case hasFile:
		ref, err := handler.String(p, "file")
		if err != nil {
			return nil, err
		}
		if placeholder.MatchString(ref) {
			return nil, fmt.Errorf("params.file: %q: a script's file cannot be a template (it is compiled when the file is checked)", ref)
		}
		name = starscript.Path(h.env.Dir, ref)
		if src, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("params.file: cannot read %s: %w", name, unwrapPath(err))
		}
		key = "file\x00" + name + "\x00" + fn
	default:
		s, err := handler.String(p, "source")
		if err != nil {
			return nil, err
		}
		if placeholder.MatchString(s) {
			return nil, errors.New("params.source: holds a {{placeholder}}: the script reads the event from its argument, not from templates")
		}
		name, src = "source", []byte(s)
		key = "source\x00" + fn
	}
	sum := sha256.Sum256(src)
	if hasSource {
		key += "\x00" + string(sum[:])
	}
	h.mu.Lock()
	c := h.cache[key]
	h.mu.Unlock()
	if c != nil && c.sum == sum {
		return c.s, nil
	}
	log := h.env.Log
	s, err := starscript.Compile(name, src, starscript.Options{Func: fn, Print: func(file, msg string) {
		log.Debug().Str("script", file).Msg(msg)
	}})
	if err != nil {
		if hasFile {
			return nil, fmt.Errorf("params.file: %w", err)
		}
		return nil, fmt.Errorf("params.source: %w", err)
	}
	h.mu.Lock()
	if len(h.cache) >= maxCached {
		h.cache = map[string]*compiled{}
	}
	h.cache[key] = &compiled{sum: sum, s: s}
	h.mu.Unlock()
	return s, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Run calls the script's function with the event and queues what it
// returns. A script that fails (raises, runs out of steps, does not
// compile any more) fails for good: the same event would fail the same way.
func (h *Handler) Run(ctx context.Context, a handler.Action) error {
	s, err := h.load(a.Params)
	if err != nil {
		return handler.Permanent(err)
	}
	fn, _ := handler.OptString(a.Params, "function", DefaultFunction)
	out, err := s.Call(fn, "event", EventAttrs(a))
	if err != nil {
		return handler.Permanent(err)
	}
	reqs, err := Requests(out)
	if err != nil {
		return handler.Permanent(fmt.Errorf("%s: %s returned %w", s.File, fn, err))
	}
	if len(reqs) == 0 {
		return nil
	}
	if h.env.Enqueue == nil {
		return handler.Permanent(errors.New("no action queue to take what the script returned"))
	}
	if err := h.env.Enqueue(ctx, a, reqs); err != nil {
		return fmt.Errorf("%s: %s returned %w", s.File, fn, err)
	}
	return nil
}

// EventAttrs is the script's event: every name present (None when the
// trigger has no such value), the task's vars gathered in vars, and the
// rendered params.
func EventAttrs(a handler.Action) map[string]any {
	attrs := make(map[string]any, len(handler.EventVars)+2)
	vars := map[string]any{}
	for k, v := range a.Event {
		if slices.Contains(handler.EventVars, k) {
			attrs[k] = v
		} else {
			vars[k] = v
		}
	}
	for _, k := range handler.EventVars {
		if _, ok := attrs[k]; !ok {
			attrs[k] = nil
		}
	}
	attrs["vars"] = vars
	p, _ := a.Params["params"].(map[string]any)
	if p == nil {
		p = map[string]any{}
	}
	attrs["params"] = p
	return attrs
}

// Requests reads what the function returned: null, one action or a list
// of them, each {"handler": name, "params": {...}}.
func Requests(raw json.RawMessage) ([]handler.Request, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	var list []any
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		list = []any{x}
	case []any:
		list = x
	default:
		return nil, fmt.Errorf("%s, want None, an action {\"handler\": ..., \"params\": {...}} or a list of them", kind(v))
	}
	reqs := make([]handler.Request, 0, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("actions[%d]: %s, want {\"handler\": ..., \"params\": {...}}", i, kind(e))
		}
		var extra []string
		for k := range m {
			if k != "handler" && k != "params" {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return nil, fmt.Errorf("actions[%d]: unknown keys %v (an action has handler and params)", i, extra)
		}
		name, ok := m["handler"].(string)
		if !ok || name == "" {
			return nil, fmt.Errorf("actions[%d]: \"handler\" is %v, want a handler's name", i, m["handler"])
		}
		p, ok := m["params"].(map[string]any)
		if _, has := m["params"]; has && !ok {
			return nil, fmt.Errorf("actions[%d]: \"params\" is %s, want a dict", i, kind(m["params"]))
		}
		reqs = append(reqs, handler.Request{Handler: name, Params: p})
	}
	return reqs, nil
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case map[string]any:
		return "a dict"
	case []any:
		return "a list"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a bool"
	}
	return fmt.Sprintf("%T", v)
}

// ReadsEvent: the script gets the whole event, previous included.
func (h *Handler) ReadsEvent() bool { return true }

var (
	_ handler.Handler     = (*Handler)(nil)
	_ handler.EventReader = (*Handler)(nil)
)
