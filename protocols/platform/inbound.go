package platform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/industryos/gateway/protocols"
)

// ErrBadPayload wraps every inbound parse error.
var ErrBadPayload = errors.New("bad platform payload")

func badf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPayload, fmt.Sprintf(format, a...))
}

// ParseDeviceRPC parses {"device":"Dev A","data":{"id":1,"method":"m","params":...}}
// from v1/gateway/rpc.
func ParseDeviceRPC(payload []byte) (protocols.RPCRequest, error) {
	var m struct {
		Device string `json:"device"`
		Data   struct {
			ID     json.Number     `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		} `json:"data"`
	}
	if err := decodeStrict(payload, &m); err != nil {
		return protocols.RPCRequest{}, err
	}
	if m.Device == "" {
		return protocols.RPCRequest{}, badf("rpc without \"device\"")
	}
	if m.Data.Method == "" {
		return protocols.RPCRequest{}, badf("rpc for %q without \"data.method\"", m.Device)
	}
	id, err := m.Data.ID.Int64()
	if err != nil {
		return protocols.RPCRequest{}, badf("rpc for %q: id %q is not an integer", m.Device, m.Data.ID)
	}
	return protocols.RPCRequest{ID: id, Device: m.Device, Method: m.Data.Method, Params: m.Data.Params}, nil
}

// ParseAttributeUpdate parses {"device":"Dev A","data":{"k":v}} from
// v1/gateway/attributes.
func ParseAttributeUpdate(payload []byte) (protocols.AttributeUpdate, error) {
	var m struct {
		Device string                     `json:"device"`
		Data   map[string]json.RawMessage `json:"data"`
	}
	if err := decodeStrict(payload, &m); err != nil {
		return protocols.AttributeUpdate{}, err
	}
	if m.Device == "" {
		return protocols.AttributeUpdate{}, badf("attribute update without \"device\"")
	}
	return protocols.AttributeUpdate{Device: m.Device, Values: m.Data}, nil
}

// GatewayRPC is an RPC to the gateway itself.
type GatewayRPC struct {
	RequestID string // from the topic; the reply goes to .../response/<RequestID>
	Method    string
	Params    json.RawMessage
}

// ParseGatewayRPC parses {"method":"gateway_ping","params":{}} received on
// v1/devices/me/rpc/request/<id>.
func ParseGatewayRPC(topic string, payload []byte) (GatewayRPC, error) {
	id, ok := strings.CutPrefix(topic, TopicMeRPCRequestPrefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return GatewayRPC{}, badf("unexpected rpc topic %q", topic)
	}
	var m struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := decodeStrict(payload, &m); err != nil {
		return GatewayRPC{}, err
	}
	if m.Method == "" {
		return GatewayRPC{}, badf("gateway rpc %s without \"method\"", id)
	}
	return GatewayRPC{RequestID: id, Method: m.Method, Params: m.Params}, nil
}

// ParseAttributes parses the gateway's own shared-attribute update: either
// the flat {"k":v} form or the {"shared":{...}} form of an attribute response.
func ParseAttributes(payload []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := decodeStrict(payload, &m); err != nil {
		return nil, err
	}
	if shared, ok := m["shared"]; ok && len(m) <= 2 {
		var inner map[string]json.RawMessage
		if json.Unmarshal(shared, &inner) == nil {
			return inner, nil
		}
	}
	return m, nil
}

// AttributeResponse is the platform's answer to a child attribute request.
type AttributeResponse struct {
	ID     int64
	Device string
	Values map[string]json.RawMessage
}

// ParseAttributeResponse normalises both {"id","device","value"} (single key,
// the key is the one requested) and {"id","device","values":{...}}.
func ParseAttributeResponse(payload []byte, singleKey func(id int64) string) (AttributeResponse, error) {
	var m struct {
		ID     json.Number                `json:"id"`
		Device string                     `json:"device"`
		Value  json.RawMessage            `json:"value"`
		Values map[string]json.RawMessage `json:"values"`
	}
	if err := decodeStrict(payload, &m); err != nil {
		return AttributeResponse{}, err
	}
	id, err := m.ID.Int64()
	if err != nil {
		return AttributeResponse{}, badf("attribute response: id %q is not an integer", m.ID)
	}
	r := AttributeResponse{ID: id, Device: m.Device, Values: m.Values}
	if r.Values == nil {
		r.Values = map[string]json.RawMessage{}
	}
	if len(m.Value) > 0 && singleKey != nil {
		if k := singleKey(id); k != "" {
			r.Values[k] = m.Value
		}
	}
	return r, nil
}

// AttributeRequestPayload builds {"id":7,"device":"Dev A","client":false,"keys":[...]}.
func AttributeRequestPayload(id int64, device string, client bool, keys []string) []byte {
	b := append([]byte(`{"id":`), strconv.FormatInt(id, 10)...)
	b = append(b, `,"device":`...)
	b = protocols.AppendJSONString(b, device)
	b = append(b, `,"client":`...)
	b = strconv.AppendBool(b, client)
	b = append(b, `,"keys":[`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocols.AppendJSONString(b, k)
	}
	return append(b, "]}"...)
}

// RPCReplyPayload builds {"device":"Dev A","id":1,"data":<data>} for v1/gateway/rpc.
func RPCReplyPayload(device string, id int64, data []byte) []byte {
	b := append([]byte(`{"device":`), protocols.AppendJSONString(nil, device)...)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"data":`...)
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("null")
	}
	b = append(b, data...)
	return append(b, '}')
}

// ErrorData builds {"error":"msg"} (plus "code" when code != 0), the upstream error reply shape.
func ErrorData(msg string, code int) []byte {
	b := append([]byte(`{"error":`), protocols.AppendJSONString(nil, msg)...)
	if code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, '}')
}

func decodeStrict(payload []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return badf("%v", err)
	}
	if dec.More() {
		return badf("trailing data after the JSON value")
	}
	return nil
}
