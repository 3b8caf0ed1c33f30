package platform

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseDeviceRPC(t *testing.T) {
	r, err := ParseDeviceRPC([]byte(`{"device":"Dev A","data":{"id":12,"method":"setRelay","params":{"on":true}}}`))
	if err != nil || r.Device != "Dev A" || r.ID != 12 || r.Method != "setRelay" || string(r.Params) != `{"on":true}` {
		t.Fatalf("%+v %v", r, err)
	}
	for payload, want := range map[string]string{
		`{"data":{"id":1,"method":"m"}}`:                `bad platform payload: rpc without "device"`,
		`{"device":"D","data":{"id":1}}`:                `bad platform payload: rpc for "D" without "data.method"`,
		`{"device":"D","data":{"id":1.5,"method":"m"}}`: `bad platform payload: rpc for "D": id "1.5" is not an integer`,
		`not json`: `bad platform payload: invalid character 'o' in literal null (expecting 'u')`,
		`{"device":"D","data":{"id":1,"method":"m"}} extra`: `bad platform payload: trailing data after the JSON value`,
	} {
		_, err := ParseDeviceRPC([]byte(payload))
		if err == nil || err.Error() != want || !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: got %v, want %s", payload, err, want)
		}
	}
}

func TestParseGatewayRPCAndAttributes(t *testing.T) {
	g, err := ParseGatewayRPC("v1/devices/me/rpc/request/42", []byte(`{"method":"gateway_ping","params":{}}`))
	if err != nil || g.RequestID != "42" || g.Method != "gateway_ping" {
		t.Fatalf("%+v %v", g, err)
	}
	if _, err := ParseGatewayRPC("v1/devices/me/rpc/request/", []byte(`{"method":"x"}`)); err == nil {
		t.Error("empty request id accepted")
	}
	a, err := ParseAttributeUpdate([]byte(`{"device":"Dev A","data":{"fw":"1.2","n":5}}`))
	if err != nil || a.Device != "Dev A" || string(a.Values["n"]) != "5" {
		t.Fatalf("%+v %v", a, err)
	}
	flat, _ := ParseAttributes([]byte(`{"RemoteLoggingLevel":"DEBUG"}`))
	nested, _ := ParseAttributes([]byte(`{"shared":{"RemoteLoggingLevel":"DEBUG"}}`))
	if string(flat["RemoteLoggingLevel"]) != `"DEBUG"` || string(nested["RemoteLoggingLevel"]) != `"DEBUG"` {
		t.Fatalf("flat %v nested %v", flat, nested)
	}
	resp, err := ParseAttributeResponse([]byte(`{"id":7,"device":"D","value":3}`), func(int64) string { return "k" })
	if err != nil || string(resp.Values["k"]) != "3" {
		t.Fatalf("%+v %v", resp, err)
	}
}

func TestReplyPayloads(t *testing.T) {
	for got, want := range map[string]string{
		string(RPCReplyPayload("Dev \"A\"", 3, []byte(`{"result":{"value":78}}`))): `{"device":"Dev \"A\"","id":3,"data":{"result":{"value":78}}}`,
		string(RPCReplyPayload("D", 1, nil)):                                       `{"device":"D","id":1,"data":null}`,
		string(ErrorData("Method not found", 404)):                                 `{"error":"Method not found","code":404}`,
		string(AttributeRequestPayload(7, "D", false, []string{"a", "b"})):         `{"id":7,"device":"D","client":false,"keys":["a","b"]}`,
	} {
		if got != want || !json.Valid([]byte(got)) {
			t.Errorf("got %s want %s", got, want)
		}
	}
}

func FuzzParseInbound(f *testing.F) {
	f.Add([]byte(`{"device":"Dev A","data":{"id":12,"method":"setRelay","params":{"on":true}}}`))
	f.Add([]byte(`{"id":7,"device":"D","values":{"a":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseDeviceRPC(b)
		_, _ = ParseAttributeUpdate(b)
		_, _ = ParseGatewayRPC("v1/devices/me/rpc/request/1", b)
		_, _ = ParseAttributes(b)
		_, _ = ParseAttributeResponse(b, func(int64) string { return "k" })
	})
}
