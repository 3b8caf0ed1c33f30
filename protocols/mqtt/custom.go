package mqtt

import (
	"encoding/json"
	"sort"
	"sync"
)

// ConverterFactory builds a custom converter from a mapping's extensionConfig.
type ConverterFactory func(extensionConfig json.RawMessage) (Converter, error)

var (
	customMu sync.RWMutex
	custom   = map[string]ConverterFactory{}
)

// RegisterConverter makes a Go converter available to mappings with
// "type":"custom","extension":name. Call it from init(); an empty name, a nil
// factory or a name already taken panics so the mistake shows at start-up.
func RegisterConverter(name string, f func(extensionConfig json.RawMessage) (Converter, error)) {
	if name == "" {
		panic("mqtt: RegisterConverter with an empty name")
	}
	if f == nil {
		panic("mqtt: RegisterConverter " + name + " with a nil factory")
	}
	customMu.Lock()
	defer customMu.Unlock()
	if _, dup := custom[name]; dup {
		panic("mqtt: converter " + name + " registered twice")
	}
	custom[name] = f
}

func lookupConverter(name string) ConverterFactory {
	customMu.RLock()
	defer customMu.RUnlock()
	return custom[name]
}

// RegisteredConverters lists custom converter names, for `iotgw check` style tooling.
func RegisteredConverters() []string {
	customMu.RLock()
	defer customMu.RUnlock()
	out := make([]string, 0, len(custom))
	for k := range custom {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
