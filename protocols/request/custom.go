package request

import (
	"encoding/json"
	"sync"
)

// ConverterFactory builds a custom converter from a mapping's
// extensionConfig (upstream's "extension-config").
type ConverterFactory func(extensionConfig json.RawMessage) (Converter, error)

var (
	customMu sync.RWMutex
	custom   = map[string]ConverterFactory{}
)

// RegisterConverter makes a Go converter available to mappings with
// "type":"custom","extension":name. Call it from init(); an empty name, a
// nil factory or a name already taken panics so the mistake shows at start-up.
func RegisterConverter(name string, f ConverterFactory) {
	if name == "" || f == nil {
		panic("request: RegisterConverter with an empty name or a nil factory")
	}
	customMu.Lock()
	defer customMu.Unlock()
	if _, dup := custom[name]; dup {
		panic("request: converter " + name + " registered twice")
	}
	custom[name] = f
}

func lookupConverter(name string) ConverterFactory {
	customMu.RLock()
	defer customMu.RUnlock()
	return custom[name]
}
