package opcua

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

// ErrBadStatus is wrapped by errors for values the server reported with a
// bad status code; it also matches protocols.ErrException.
var ErrBadStatus = errors.New("bad status")

// ErrValue is wrapped by downlink conversion errors (a value that does not
// fit the node's data type).
var ErrValue = errors.New("invalid value")

type badStatusError struct {
	status ua.StatusCode
	node   string
}

func (e *badStatusError) Error() string { return BadStatusText(e.status, e.node) }
func (e *badStatusError) Unwrap() []error {
	return []error{ErrBadStatus, protocols.ErrException, e.status}
}

// StatusName is the OPC-UA name of a status code as upstream (asyncua)
// prints it: "BadNodeIdUnknown", "Good", "UncertainLastUsableValue". gopcua
// spells "ID" where the specification spells "Id".
func StatusName(s ua.StatusCode) string {
	if s == ua.StatusOK {
		return "Good"
	}
	d, ok := ua.StatusCodes[s]
	if !ok {
		// Unknown codes keep their severity bits in the name.
		switch {
		case s&0x80000000 != 0:
			return fmt.Sprintf("Bad(0x%08X)", uint32(s))
		case s&0x40000000 != 0:
			return fmt.Sprintf("Uncertain(0x%08X)", uint32(s))
		}
		return fmt.Sprintf("Good(0x%08X)", uint32(s))
	}
	n := strings.TrimPrefix(d.Name, "Status")
	return strings.ReplaceAll(n, "ID", "Id")
}

// BadStatusText is upstream's value for a node read with a bad status.
func BadStatusText(s ua.StatusCode, node string) string {
	return "Bad status code: " + StatusName(s) + " for node: " + node
}

// isBad reports a Bad severity; Uncertain values are still forwarded, as
// upstream does.
func isBad(s ua.StatusCode) bool { return s&0xC0000000 == 0x80000000 }

// FormatTime is upstream's DateTime rendering: ISO-8601 in UTC.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
}

// ConvertDataValue turns a read or notified value into the platform value.
// A bad status gives upstream's "Bad status code: …" string and an error
// wrapping ErrBadStatus, so the caller can both send and count it.
func ConvertDataValue(dv *ua.DataValue, node string) (protocols.Value, error) {
	if dv == nil {
		return protocols.Value{}, &badStatusError{status: ua.StatusBadNoData, node: node}
	}
	if dv.Has(ua.DataValueStatusCode) && isBad(dv.Status) {
		return protocols.String(BadStatusText(dv.Status, node)), &badStatusError{status: dv.Status, node: node}
	}
	return ConvertVariant(dv.Value), nil
}

// ConvertVariant converts a variant: numbers and booleans keep their kind,
// float32 keeps its shortest decimal form (21.5, not 21.5000000001),
// DateTime is ISO-8601 UTC, StatusCode its name, ByteString hex, node ids
// and qualified names text, and arrays a JSON list of strings carried as a
// string (protocols.Value has no list kind; modbus bit lists do the same).
func ConvertVariant(v *ua.Variant) protocols.Value {
	if v == nil || v.Value() == nil {
		return protocols.Value{}
	}
	if v.Type() == ua.TypeIDByteString {
		if b, ok := v.Value().([]byte); ok {
			return protocols.String(hex.EncodeToString(b))
		}
	}
	if v.ArrayLength() > 0 || v.Has(ua.VariantArrayValues) {
		return protocols.String(listJSON(v.Value()))
	}
	return convertScalar(v.Value())
}

func convertScalar(x any) protocols.Value {
	if v, ok := protocols.FromGo(x); ok {
		return v
	}
	return protocols.String(scalarText(x))
}

// scalarText renders any non-numeric scalar as upstream's str() would, in
// our documented spelling.
func scalarText(x any) string {
	switch t := x.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case time.Time:
		return FormatTime(t)
	case ua.StatusCode:
		return StatusName(t)
	case []byte:
		return hex.EncodeToString(t)
	case *ua.GUID:
		if t == nil {
			return ""
		}
		return t.String()
	case *ua.NodeID:
		if t == nil {
			return ""
		}
		return t.String()
	case *ua.ExpandedNodeID:
		if t == nil || t.NodeID == nil {
			return ""
		}
		return t.NodeID.String()
	case *ua.QualifiedName:
		if t == nil {
			return ""
		}
		if t.NamespaceIndex == 0 {
			return t.Name
		}
		return strconv.Itoa(int(t.NamespaceIndex)) + ":" + t.Name
	case *ua.LocalizedText:
		if t == nil {
			return ""
		}
		return t.Text
	case *ua.XMLElement:
		if t == nil {
			return ""
		}
		return string(*t)
	case *ua.Variant:
		return ConvertVariant(t).String()
	case *ua.DataValue:
		if t == nil {
			return ""
		}
		return ConvertVariant(t.Value).String()
	case *ua.ExtensionObject:
		if t == nil || t.Value == nil {
			return ""
		}
		if b, err := json.Marshal(t.Value); err == nil {
			return string(b)
		}
		return fmt.Sprint(t.Value)
	}
	if v, ok := protocols.FromGo(x); ok {
		return v.String()
	}
	return fmt.Sprint(x)
}

// listJSON renders a slice as a JSON list of strings, upstream's
// [str(item) for item in value].
func listJSON(x any) string {
	items := sliceItems(x)
	b := make([]byte, 0, 2+len(items)*8)
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocols.AppendJSONString(b, scalarText(it))
	}
	return string(append(b, ']'))
}

func sliceItems(x any) []any {
	switch t := x.(type) {
	case []any:
		return t
	case []bool:
		return anys(t)
	case []int8:
		return anys(t)
	case []int16:
		return anys(t)
	case []int32:
		return anys(t)
	case []int64:
		return anys(t)
	case []uint8:
		return anys(t)
	case []uint16:
		return anys(t)
	case []uint32:
		return anys(t)
	case []uint64:
		return anys(t)
	case []float32:
		return anys(t)
	case []float64:
		return anys(t)
	case []string:
		return anys(t)
	case []time.Time:
		return anys(t)
	case []ua.StatusCode:
		return anys(t)
	case [][]byte:
		return anys(t)
	case []*ua.GUID:
		return anys(t)
	case []*ua.NodeID:
		return anys(t)
	case []*ua.ExpandedNodeID:
		return anys(t)
	case []*ua.QualifiedName:
		return anys(t)
	case []*ua.LocalizedText:
		return anys(t)
	case []*ua.Variant:
		return anys(t)
	case []*ua.DataValue:
		return anys(t)
	case []*ua.ExtensionObject:
		return anys(t)
	}
	return []any{x}
}

func anys[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// GuessValue is upstream's guess for a "set" value given as text: a
// boolean, then an integer, then a float, otherwise the string.
func GuessValue(s string) any {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "true":
		return true
	case "false":
		return false
	}
	if i, err := strconv.ParseInt(t, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return f
	}
	return s
}

// JSONValue decodes a platform value (an attribute update or an RPC
// argument) into the natural Go value for a first write: integral numbers
// are int64, other numbers float64; objects and lists are refused.
func JSONValue(raw json.RawMessage) (any, error) {
	var x any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%w: %s is not JSON", ErrValue, compactText(raw))
	}
	return normalize(x)
}

func normalize(x any) (any, error) {
	switch t := x.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: number %s is out of range", ErrValue, t)
		}
		return f, nil
	case string, bool, float64, int64:
		return t, nil
	case nil:
		return nil, fmt.Errorf("%w: null cannot be written", ErrValue)
	}
	return nil, fmt.Errorf("%w: %s cannot be written to a scalar node", ErrValue, compactText(mustJSON(x)))
}

func mustJSON(x any) []byte {
	b, _ := json.Marshal(x)
	return b
}

func compactText(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// builtinTypeName names the built-in data types ToDataType converts to.
var builtinTypeName = map[uint32]string{
	id.Boolean: "Boolean", id.SByte: "SByte", id.Byte: "Byte", id.Int16: "Int16", id.UInt16: "UInt16",
	id.Int32: "Int32", id.UInt32: "UInt32", id.Int64: "Int64", id.UInt64: "UInt64", id.Float: "Float",
	id.Double: "Double", id.String: "String", id.DateTime: "DateTime", id.ByteString: "ByteString",
	id.LocalizedText: "LocalizedText", id.Enumeration: "Enumeration", id.Number: "Number",
	id.Integer: "Integer", id.UInteger: "UInteger", id.BaseDataType: "BaseDataType",
}

// DataTypeName names a DataType node id for messages.
func DataTypeName(dt *ua.NodeID) string {
	if dt == nil {
		return "unknown"
	}
	if dt.Namespace() == 0 {
		if n, ok := builtinTypeName[dt.IntID()]; ok {
			return n
		}
	}
	return dt.String()
}

// ToDataType converts a decoded value (bool, int64, float64 or string) to
// the Go type gopcua encodes as the given built-in DataType, the retry
// after a BadTypeMismatch. Conversions that would lose information (3.7 to
// an Int32, 300 to a Byte, "abc" to a Double) are errors.
func ToDataType(x any, dt *ua.NodeID) (any, error) {
	if dt == nil || dt.Namespace() != 0 {
		return nil, fmt.Errorf("%w: cannot convert to data type %s (not a built-in type)", ErrValue, DataTypeName(dt))
	}
	fail := func() (any, error) {
		return nil, fmt.Errorf("%w: %s does not fit data type %s", ErrValue, describe(x), DataTypeName(dt))
	}
	switch dt.IntID() {
	case id.Boolean:
		switch t := x.(type) {
		case bool:
			return t, nil
		case int64:
			if t == 0 || t == 1 {
				return t == 1, nil
			}
		case float64:
			if t == 0 || t == 1 {
				return t == 1, nil
			}
		case string:
			if b, ok := parseBool(t); ok {
				return b, nil
			}
		}
		return fail()
	case id.SByte, id.Int16, id.Int32, id.Int64, id.Enumeration, id.Integer:
		i, ok := toInt(x)
		if !ok {
			return fail()
		}
		switch dt.IntID() {
		case id.SByte:
			if i < math.MinInt8 || i > math.MaxInt8 {
				return fail()
			}
			return int8(i), nil
		case id.Int16:
			if i < math.MinInt16 || i > math.MaxInt16 {
				return fail()
			}
			return int16(i), nil
		case id.Int32, id.Enumeration:
			if i < math.MinInt32 || i > math.MaxInt32 {
				return fail()
			}
			return int32(i), nil
		}
		return i, nil
	case id.Byte, id.UInt16, id.UInt32, id.UInt64, id.UInteger:
		i, ok := toInt(x)
		if !ok || i < 0 {
			return fail()
		}
		switch dt.IntID() {
		case id.Byte:
			if i > math.MaxUint8 {
				return fail()
			}
			return uint8(i), nil
		case id.UInt16:
			if i > math.MaxUint16 {
				return fail()
			}
			return uint16(i), nil
		case id.UInt32:
			if i > math.MaxUint32 {
				return fail()
			}
			return uint32(i), nil
		}
		return uint64(i), nil
	case id.Float, id.Double, id.Number:
		f, ok := toFloat(x)
		if !ok {
			return fail()
		}
		if dt.IntID() == id.Float {
			if !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
				return fail()
			}
			return float32(f), nil
		}
		return f, nil
	case id.String, id.BaseDataType:
		return textOf(x), nil
	case id.LocalizedText:
		return &ua.LocalizedText{EncodingMask: ua.LocalizedTextText, Text: textOf(x)}, nil
	case id.DateTime:
		s, ok := x.(string)
		if !ok {
			return fail()
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		if err != nil {
			return fail()
		}
		return t, nil
	case id.ByteString:
		s, ok := x.(string)
		if !ok {
			return fail()
		}
		b, err := hex.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return fail()
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: cannot convert to data type %s", ErrValue, DataTypeName(dt))
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "y", "on", "t":
		return true, true
	case "false", "0", "no", "n", "off", "f":
		return false, true
	}
	return false, false
}

func toInt(x any) (int64, bool) {
	switch t := x.(type) {
	case int64:
		return t, true
	case bool:
		if t {
			return 1, true
		}
		return 0, true
	case float64:
		if t != math.Trunc(t) || t < -(1<<63) || t >= 1<<63 {
			return 0, false
		}
		return int64(t), true
	case string:
		s := strings.TrimSpace(t)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return toInt(f)
		}
	}
	return 0, false
}

func toFloat(x any) (float64, bool) {
	switch t := x.(type) {
	case int64:
		return float64(t), true
	case float64:
		return t, true
	case bool:
		if t {
			return 1, true
		}
		return 0, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		return f, err == nil
	}
	return 0, false
}

func textOf(x any) string {
	switch t := x.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	return fmt.Sprint(x)
}

func describe(x any) string {
	if s, ok := x.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(x)
}

// variantJSON renders a value read for an RPC reply: scalars as JSON,
// lists as real JSON lists.
func variantJSON(v *ua.Variant) json.RawMessage {
	pv := ConvertVariant(v)
	if pv.Kind == protocols.KindString && (v.ArrayLength() > 0 || v.Has(ua.VariantArrayValues)) && json.Valid([]byte(pv.S)) {
		return json.RawMessage(pv.S)
	}
	return pv.AppendJSON(nil)
}
