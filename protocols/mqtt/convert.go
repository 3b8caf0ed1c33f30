package mqtt

import (
	"encoding/json"

	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// The converters (json, bytes, custom), their mapping and the ${}
// expressions live in protocols/kit/jsonconv, shared with the connectors
// that take the same mappings; these names keep this package's API as it was.

// Converter types.
const (
	TypeJSON   = jsonconv.TypeJSON
	TypeBytes  = jsonconv.TypeBytes
	TypeCustom = jsonconv.TypeCustom
)

// Expression sources.
const (
	SourceMessage  = jsonconv.SourceMessage
	SourceTopic    = jsonconv.SourceTopic
	SourceConstant = jsonconv.SourceConstant
)

type (
	// Mapping is one mapping[] entry.
	Mapping = jsonconv.Mapping
	// ConverterConfig is mapping[].converter.
	ConverterConfig = jsonconv.ConverterConfig
	// DeviceInfo says where device name and profile come from.
	DeviceInfo = jsonconv.DeviceInfo
	// KeyConfig is one attributes[] / timeseries[] item.
	KeyConfig = jsonconv.KeyConfig
	// Converted is what one message yields for one device.
	Converted = jsonconv.Converted
	// Converter turns one MQTT message into device data.
	Converter = jsonconv.Converter
	// ConvertError names the mapping and the key a payload failed on.
	ConvertError = jsonconv.ConvertError
	// ConverterFactory builds a custom converter from a mapping's extensionConfig.
	ConverterFactory = jsonconv.ConverterFactory
	// JSONConverter is the upstream "json" converter.
	JSONConverter = jsonconv.JSONConverter
	// BytesConverter is the upstream "bytes" converter.
	BytesConverter = jsonconv.BytesConverter
	// Expr is a compiled value expression.
	Expr = jsonconv.Expr
	// MissingError names the expression that found nothing.
	MissingError = jsonconv.MissingError

	source = jsonconv.Source
)

var (
	// ErrMalformed is matched by errors about a payload the mapping cannot read.
	ErrMalformed = jsonconv.ErrMalformed
	// ErrNoConverter means a mapping names a custom converter this build does not have.
	ErrNoConverter = jsonconv.ErrNoConverter
	// ErrMissing is matched by every error about a message that lacks what
	// an expression points at.
	ErrMissing = jsonconv.ErrMissing
)

// NewConverter builds the converter a mapping asks for.
func NewConverter(m *Mapping) (Converter, error) { return jsonconv.NewConverter(m) }

// NewJSONConverter compiles a mapping's json converter.
func NewJSONConverter(m *Mapping) (*JSONConverter, error) { return jsonconv.NewJSONConverter(m) }

// NewBytesConverter compiles a mapping's bytes converter.
func NewBytesConverter(m *Mapping) (*BytesConverter, error) { return jsonconv.NewBytesConverter(m) }

// RegisterConverter makes a Go converter available to mappings with
// "type":"custom","extension":name; see jsonconv.RegisterConverter.
func RegisterConverter(name string, f func(extensionConfig json.RawMessage) (Converter, error)) {
	jsonconv.RegisterConverter(name, f)
}

// RegisteredConverters lists custom converter names.
func RegisteredConverters() []string { return jsonconv.RegisteredConverters() }

// Compile parses s. Text without ${} is a constant.
func Compile(s string) (*Expr, error) { return jsonconv.Compile(s) }

// MustCompile is Compile for expressions known at build time.
func MustCompile(s string) *Expr { return jsonconv.MustCompile(s) }

// ParseTimestamp is upstream's reading of a device timestamp in a decoded
// JSON value.
func ParseTimestamp(v any) (int64, error) { return jsonconv.ParseTimestamp(v) }

// ConvertOldMapping turns an old-format mapping entry into the current shape.
func ConvertOldMapping(m map[string]any) map[string]any { return jsonconv.ConvertOldMapping(m) }

func newSource(kind, expr, what string) (source, error) { return jsonconv.NewSource(kind, expr, what) }

func decodeJSON(payload []byte) (any, error) { return jsonconv.DecodeJSON(payload) }

func parseMapping(o *spec.Obj) *Mapping { return jsonconv.ParseMapping(o) }

func checkSource(o *spec.Obj, key, src, expr, typ string) {
	jsonconv.CheckSource(o, key, src, expr, typ)
}

func validTopicFilter(f string) error { return jsonconv.ValidTopicFilter(f) }

// topicMatch applies upstream's rule (re.search): the last capturing group
// that took part, or the whole match when none did.
func topicMatch(re *pyre.Regexp, topic string) (string, bool, error) {
	return re.LastGroup(topic)
}
