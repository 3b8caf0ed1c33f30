package grpcapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/grpcapi/pb"
)

// value turns one wire value into ours; the type field, not which value
// field happens to be set, decides (proto3 cannot tell false from unset).
func value(kv *pb.KeyValueProto) (protocols.Value, error) {
	switch kv.GetType() {
	case pb.KeyValueType_BOOLEAN_V:
		return protocols.Bool(kv.GetBoolV()), nil
	case pb.KeyValueType_LONG_V:
		return protocols.Int(kv.GetLongV()), nil
	case pb.KeyValueType_DOUBLE_V:
		return protocols.Float(kv.GetDoubleV()), nil
	case pb.KeyValueType_STRING_V:
		return protocols.String(kv.GetStringV()), nil
	case pb.KeyValueType_JSON_V:
		v, err := protocols.JSON([]byte(kv.GetJsonV()))
		if err != nil {
			return protocols.Value{}, fmt.Errorf("key %q: json_v: %w", kv.GetKey(), err)
		}
		return v, nil
	}
	return protocols.Value{}, fmt.Errorf("key %q: unknown value type %d", kv.GetKey(), kv.GetType())
}

// datapoints converts a list of wire values; a bad value is reported in
// errs and left out, the others are kept.
func datapoints(kvs []*pb.KeyValueProto) (out []protocols.Datapoint, errs []error) {
	out = make([]protocols.Datapoint, 0, len(kvs))
	for _, kv := range kvs {
		if kv.GetKey() == "" {
			errs = append(errs, fmt.Errorf("value without a key"))
			continue
		}
		v, err := value(kv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, protocols.Datapoint{Key: kv.GetKey(), Value: v})
	}
	return out, errs
}

// millis is a wire timestamp; 0 means "now" (the zero time for a Push).
func millis(ts int64) time.Time {
	if ts <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ts)
}

// wireValue turns a platform JSON value (an attribute) into a wire value
// of the narrowest type that holds it.
func wireValue(key string, raw json.RawMessage) *pb.KeyValueProto {
	kv := &pb.KeyValueProto{Key: key}
	raw = bytes.TrimSpace(raw)
	switch {
	case bytes.Equal(raw, []byte("true")) || bytes.Equal(raw, []byte("false")):
		kv.Type, kv.BoolV = pb.KeyValueType_BOOLEAN_V, raw[0] == 't'
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			kv.Type, kv.StringV = pb.KeyValueType_STRING_V, s
			return kv
		}
		kv.Type, kv.JsonV = pb.KeyValueType_JSON_V, string(raw)
	default:
		if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			kv.Type, kv.LongV = pb.KeyValueType_LONG_V, i
		} else if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
			kv.Type, kv.DoubleV = pb.KeyValueType_DOUBLE_V, f
		} else {
			kv.Type, kv.JsonV = pb.KeyValueType_JSON_V, string(raw)
		}
	}
	return kv
}
