package request

import (
	"encoding/json"

	"github.com/industryos/gateway/protocols/kit/jsonconv"
)

// ConverterFactory builds a custom converter from a mapping's
// extensionConfig (upstream's "extension-config").
type ConverterFactory func(extensionConfig json.RawMessage) (Converter, error)

// custom is request's own registry: its converters read polled responses,
// not messages, so they do not mix with the other connectors'.
var custom = jsonconv.NewRegistry[Converter]("request")

// RegisterConverter makes a Go converter available to mappings with
// "type":"custom","extension":name. Call it from init(); an empty name, a
// nil factory or a name already taken panics so the mistake shows at start-up.
func RegisterConverter(name string, f ConverterFactory) { custom.Register(name, f) }

func lookupConverter(name string) ConverterFactory { return custom.Lookup(name) }
