package jsonconv

import (
	"encoding/json"
	"sort"
	"sync"
)

// Registry holds Go converters by the name a mapping gives as
// "type":"custom","extension":name. It is generic because the connectors
// disagree on what a converter is (a message converter here, a polled
// response converter in request) but not on how the names are kept.
type Registry[C any] struct {
	owner string // prefixes panic messages, so they name the API called
	mu    sync.RWMutex
	m     map[string]func(extensionConfig json.RawMessage) (C, error)
}

// NewRegistry returns an empty registry whose panics start with owner.
func NewRegistry[C any](owner string) *Registry[C] {
	return &Registry[C]{owner: owner, m: map[string]func(json.RawMessage) (C, error){}}
}

// Register adds a factory. Call it from init(); an empty name, a nil
// factory or a name already taken panics so the mistake shows at start-up.
func (r *Registry[C]) Register(name string, f func(extensionConfig json.RawMessage) (C, error)) {
	if name == "" {
		panic(r.owner + ": RegisterConverter with an empty name")
	}
	if f == nil {
		panic(r.owner + ": RegisterConverter " + name + " with a nil factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(r.owner + ": converter " + name + " registered twice")
	}
	r.m[name] = f
}

// Lookup returns the factory registered as name, or nil.
func (r *Registry[C]) Lookup(name string) func(extensionConfig json.RawMessage) (C, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[name]
}

// Names lists the registered names, sorted.
func (r *Registry[C]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.m))
	for k := range r.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ConverterFactory builds a custom converter from a mapping's extensionConfig.
type ConverterFactory func(extensionConfig json.RawMessage) (Converter, error)

// custom is the registry NewConverter reads; mqtt and rest mappings share it.
var custom = NewRegistry[Converter]("jsonconv")

// RegisterConverter makes a Go converter available to mappings with
// "type":"custom","extension":name. Call it from init(); an empty name, a nil
// factory or a name already taken panics so the mistake shows at start-up.
func RegisterConverter(name string, f func(extensionConfig json.RawMessage) (Converter, error)) {
	custom.Register(name, f)
}

func lookupConverter(name string) ConverterFactory { return custom.Lookup(name) }

// RegisteredConverters lists custom converter names, for `iotgw check` style tooling.
func RegisteredConverters() []string { return custom.Names() }
