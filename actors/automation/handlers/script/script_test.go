package script

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
	starscript "github.com/industryos/gateway/protocols/kit/script"
)

const alarm = `
def run(event):
    if event.previous != None and event.value - event.previous > event.params["jump"]:
        return [
            {"handler": "device_write", "params": {"device": event.device, "key": "alarm", "value": 1}},
            {"handler": "platform_message", "params": {"kind": "telemetry", "values": {"jump": event.value - event.previous, "pressure": event.vars["pressure"]}}},
        ]
    return None
`

// queued records what a handler hands to the queue.
type queued struct {
	parent handler.Action
	reqs   []handler.Request
	err    error
}

func (q *queued) enqueue(_ context.Context, parent handler.Action, reqs []handler.Request) error {
	q.parent, q.reqs = parent, reqs
	return q.err
}

func TestValidateCompilesTheScript(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.star"), []byte(alarm), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.star"), []byte("def run(event):\n    return undefined_name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := New(handler.Env{Dir: dir, Log: zerolog.Nop()})
	if errs := h.Validate(map[string]any{"file": "ok.star", "params": map[string]any{"jump": 10.0}}); len(errs) > 0 {
		t.Fatalf("good script: %v", errs)
	}
	if errs := h.Validate(map[string]any{"source": "def check(e):\n    return None\n", "function": "check"}); len(errs) > 0 {
		t.Fatalf("inline source with another function: %v", errs)
	}
	for _, tc := range []struct {
		name string
		p    map[string]any
		want string
	}{
		{"name error", map[string]any{"file": "bad.star"}, "params.file: " + filepath.Join(dir, "bad.star") + ":2:12: undefined: undefined_name"},
		{"missing file", map[string]any{"file": "nope.star"}, "params.file: cannot read " + filepath.Join(dir, "nope.star") + ": no such file or directory"},
		{"no run", map[string]any{"source": "def other(e): pass\n"}, "params.source: source: defines no run(...)"},
		{"wrong function", map[string]any{"file": "ok.star", "function": "go"}, "defines no go(...)"},
		{"syntax", map[string]any{"source": "def run(e)\n  pass\n"}, "params.source: source:2:1: got newline, want ':'"},
		{"both", map[string]any{"file": "ok.star", "source": "x"}, "want file (a Starlark file) or source"},
		{"neither", map[string]any{}, "want file (a Starlark file) or source"},
		{"templated file", map[string]any{"file": "{{device}}.star"}, "cannot be a template"},
		{"bad function name", map[string]any{"file": "ok.star", "function": "a-b"}, `params.function: "a-b" is not a function name`},
		{"params not a map", map[string]any{"file": "ok.star", "params": "x"}, "params.params: x is not a mapping"},
		{"unknown param", map[string]any{"file": "ok.star", "bogus": 1.0}, "params.bogus: unknown param"},
	} {
		errs := h.Validate(tc.p)
		if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, errs, tc.want)
		}
	}
}

func event(value, previous any) handler.Action {
	return handler.Action{Key: "k1", Task: "t", Attempt: 1,
		Params: map[string]any{"file": "alarm.star", "params": map[string]any{"jump": 10.0}},
		Event:  map[string]any{"value": value, "previous": previous, "device": "boiler", "key": "p", "ts": 1700000000000.0, "event": "value", "task": "t", "pressure": 3.5}}
}

func TestRunQueuesWhatTheScriptReturns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "alarm.star")
	if err := os.WriteFile(file, []byte(alarm), 0o644); err != nil {
		t.Fatal(err)
	}
	q := &queued{}
	h := New(handler.Env{Dir: dir, Enqueue: q.enqueue, Log: zerolog.Nop()})
	if err := h.Run(context.Background(), event(50.0, 30.0)); err != nil {
		t.Fatal(err)
	}
	if q.parent.Key != "k1" || len(q.reqs) != 2 {
		t.Fatalf("queued %+v", q)
	}
	if r := q.reqs[0]; r.Handler != "device_write" || r.Params["device"] != "boiler" || r.Params["key"] != "alarm" || r.Params["value"] != 1.0 {
		t.Fatalf("first action %+v", r)
	}
	if v := q.reqs[1].Params["values"].(map[string]any); v["jump"] != 20.0 || v["pressure"] != 3.5 {
		t.Fatalf("second action %+v", q.reqs[1])
	}

	// Below the jump, and without a previous value: None, nothing queued.
	for _, prev := range []any{45.0, nil} {
		q.reqs = nil
		if err := h.Run(context.Background(), event(50.0, prev)); err != nil || q.reqs != nil {
			t.Fatalf("previous %v: %v, queued %v", prev, err, q.reqs)
		}
	}

	// The file changes: the next run compiles the new text.
	if err := os.WriteFile(file, []byte("def run(event):\n    return {\"handler\": \"webhook\", \"params\": {\"url\": \"http://x\"}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Run(context.Background(), event(1.0, 1.0)); err != nil || len(q.reqs) != 1 || q.reqs[0].Handler != "webhook" {
		t.Fatalf("after the edit: %v, %+v", err, q.reqs)
	}

	// A queue refusing some actions: the run fails for good, naming them.
	q.err = handler.Permanent(errors.New(`actions[0]: "nope" is not a handler`))
	err := h.Run(context.Background(), event(1.0, 1.0))
	if !errors.Is(err, handler.ErrPermanent) || !strings.Contains(err.Error(), `alarm.star: run returned`) || !strings.Contains(err.Error(), `"nope" is not a handler`) {
		t.Fatalf("refused action: %v", err)
	}
	// A queue that is stopping: retried.
	q.err = context.Canceled
	if err := h.Run(context.Background(), event(1.0, 1.0)); err == nil || errors.Is(err, handler.ErrPermanent) {
		t.Fatalf("stopping queue: %v", err)
	}
}

func TestRunFailures(t *testing.T) {
	q := &queued{}
	h := New(handler.Env{Enqueue: q.enqueue, Log: zerolog.Nop()})
	run := func(src string) error {
		return h.Run(context.Background(), handler.Action{Key: "k", Params: map[string]any{"source": src}, Event: map[string]any{"value": 1.0}})
	}
	for _, tc := range []struct{ name, src, want string }{
		{"raises", "def run(e):\n    fail(\"boom\")\n", "source:2:9: in run: fail: boom"},
		{"not an action", "def run(e):\n    return 3\n", "run returned a number, want None"},
		{"list of strings", "def run(e):\n    return [\"x\"]\n", "actions[0]: a string"},
		{"unknown key", "def run(e):\n    return {\"handler\": \"webhook\", \"when\": 1}\n", "actions[0]: unknown keys [when]"},
		{"no handler", "def run(e):\n    return {\"params\": {}}\n", `actions[0]: "handler" is <nil>`},
		{"params not a dict", "def run(e):\n    return {\"handler\": \"webhook\", \"params\": 1}\n", `actions[0]: "params" is a number`},
		{"attribute typo", "def run(e):\n    return e.valeu\n", "has no .valeu attribute"},
	} {
		q.reqs = nil
		err := run(tc.src)
		if !errors.Is(err, handler.ErrPermanent) || !strings.Contains(err.Error(), tc.want) || q.reqs != nil {
			t.Errorf("%s: got %v (queued %v), want a permanent error with %q", tc.name, err, q.reqs, tc.want)
		}
	}
	// An endless loop is stopped by the step limit.
	err := run("def run(e):\n    while True:\n        pass\n")
	if !errors.Is(err, handler.ErrPermanent) || !errors.Is(err, starscript.ErrStepLimit) {
		t.Fatalf("endless loop: %v", err)
	}
	// The event's names are all there, None when the trigger has none.
	if err := run("def run(e):\n    if e.previous != None or e.device != None or e.vars != {} or e.params != {}:\n        fail(\"not empty\")\n"); err != nil {
		t.Fatal(err)
	}
}
