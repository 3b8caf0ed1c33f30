// Package handler is the contract of an automation action handler and its
// registry. Each handler lives in its own folder under handlers/ and
// registers itself in init(), as protocols do; handlers/all imports them.
// A handler is plain Go: it knows nothing of actors, and reaches the
// gateway only through the Env it is built with.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
)

// ErrPermanent marks a failure that retrying cannot fix (a device that
// refuses the key, a 4xx answer): the action is given up at once.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Action is one call of a handler. Key is the idempotency key: the same for
// every attempt of the action, across retries and gateway restarts.
type Action struct {
	Key     string
	Task    string
	Params  map[string]any // templates already rendered
	Attempt int            // 1 for the first try
	// Seq is the action's place in the queue: unique among queued actions
	// and kept across restarts, where Key may repeat for distinct events
	// of one source within a millisecond.
	Seq uint64
	// Event holds the trigger's variables, as templates see them: value,
	// device, key, ts, event, task, previous and the task's vars (a
	// variable without a value is absent). Nil for an action that a
	// handler queued (Env.Enqueue).
	Event map[string]any
}

// EventVars are the names Action.Event (and conditions and templates) take
// from the trigger; the task's vars come beside them. previous is the
// triggering key's value before this one (absent for the key's first
// value, for lifecycle events and clock ticks).
var EventVars = []string{"value", "device", "key", "ts", "event", "task", "previous"}

// Request is an action a handler asks the queue to run (what a script
// returns): a handler's name and its params, final (not templates).
type Request struct {
	Handler string
	Params  map[string]any
}

// Handler performs actions of one kind.
type Handler interface {
	// Validate checks an action's params as written in automation.yaml
	// (templates not rendered yet); each problem names its param.
	Validate(params map[string]any) []error
	// Run performs the action once. Nil means done; an error is retried
	// with backoff unless it wraps ErrPermanent.
	Run(ctx context.Context, a Action) error
}

// EventReader is a handler that reads Action.Event beyond its templated
// params (a script): its tasks keep what the event needs, such as each
// key's previous value, which other tasks skip.
type EventReader interface{ ReadsEvent() bool }

// Closer is a handler that holds resources (connections) to release.
type Closer interface{ Close() error }

// Env is what handlers may use of the gateway.
type Env struct {
	// WriteDevice writes values to a device through its connector's
	// downlink path, as a platform attribute update does, and returns the
	// device's answer: the keys it does not take, or the write's error.
	WriteDevice func(ctx context.Context, device string, values map[string]json.RawMessage) (ignored []string, err error)
	// DeviceRPC runs an RPC on a device as a platform RPC does and returns
	// its reply data; a timeout wraps context.DeadlineExceeded.
	DeviceRPC func(ctx context.Context, device, method string, params json.RawMessage) (json.RawMessage, error)
	// Journal appends events of the gateway device itself (Device "") to
	// the journal; done learns when they are committed.
	Journal func(events []protocols.Event, done func(error))
	// Enqueue hands actions to the durable queue on behalf of parent: they
	// belong to its task, and their idempotency keys derive from parent's
	// key, its Seq and their place, so a parent run twice (a restart before
	// it was done) queues the same keys, which are not queued twice. It
	// returns once they are stored. A request naming an unknown handler,
	// or params its handler refuses, is not queued: the error (wrapping
	// ErrPermanent) names each (actions[i]: ...), and the others are queued
	// all the same. An error without ErrPermanent (the queue is stopping)
	// is worth retrying the parent.
	Enqueue func(ctx context.Context, parent Action, reqs []Request) error
	// Dir is the automation file's directory: a relative file param
	// (a script) is read from there.
	Dir string
	Log zerolog.Logger
}

// Factory builds a handler.
type Factory func(env Env) Handler

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// Register makes a handler available under name; an empty name, a nil
// factory or a second registration panics at start-up.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if name == "" || f == nil {
		panic("handler: Register with an empty name or a nil factory")
	}
	if _, dup := registry[name]; dup {
		panic("handler: " + name + " registered twice")
	}
	registry[name] = f
}

// Lookup returns the factory registered as name.
func Lookup(name string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names lists the registered handlers, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Param helpers: params come from YAML (strings, numbers, bools, maps,
// lists) and, after rendering, may hold any of those.

// String reads a string param; missing or not a string is an error.
func String(params map[string]any, key string) (string, error) {
	v, ok := params[key]
	if !ok {
		return "", fmt.Errorf("params.%s: is required", key)
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("params.%s: %v is not a non-empty string", key, v)
	}
	return s, nil
}

// OptString reads an optional string param.
func OptString(params map[string]any, key, def string) (string, error) {
	if _, ok := params[key]; !ok {
		return def, nil
	}
	return String(params, key)
}

// Known reports params other than keys as errors, with a hint.
func Known(params map[string]any, keys ...string) []error {
	var errs []error
	for k := range params {
		found := false
		for _, want := range keys {
			if k == want {
				found = true
				break
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("params.%s: unknown param (this handler takes %v)", k, keys))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}
