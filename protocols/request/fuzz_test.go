package request

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// FuzzJSONConvert: any response body converts without panicking; every
// result names a device, and every error is a malformed-response error.
func FuzzJSONConvert(f *testing.F) {
	for _, s := range []string{`{"id":1,"type":"A","t":"21.5","a":[{"b":true}],"ts":1700000000}`, `[{"id":2},{"id":"x","t":null}]`, `"str"`, `{`, `[]`, `{"id":{"x":1},"t":1e400}`} {
		f.Add([]byte(s))
	}
	m := mapping("${id}-${type}", "${type}", key("t", "int", "${t}"), key("b", "bool", "${$.a[0].b}"), key("tpl", "string", "${t}:${missing}"), key("${type}", "raw", "${a}"))
	m.Converter.Telemetry[0].TsField = "${when}"
	c, err := NewJSONConverter(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := c.Convert(body, time.UnixMilli(1))
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error is not ErrMalformed: %v", err)
		}
		for _, r := range out {
			if r.Device == "" {
				t.Fatalf("result without a device: %+v", r)
			}
			for _, dp := range append(r.Telemetry, r.Attributes...) {
				if dp.Key == "" {
					t.Fatalf("datapoint without a key: %+v", r)
				}
				if _, err := json.Marshal(json.RawMessage(dp.Value.AppendJSON(nil))); err != nil {
					t.Fatalf("value %v renders invalid JSON: %v", dp.Value, err)
				}
			}
		}
	})
}

// FuzzParseConfig: any connector file either loads into a connector (no
// I/O happens at construction) or is refused with errors naming the file.
func FuzzParseConfig(f *testing.F) {
	f.Add(Sample)
	f.Add([]byte(`{"host":"h","mapping":[{"url":"u","converter":{"type":"custom","extension":"X"}}],"serverSideRpc":[{"methodFilter":"(","requestUrlExpression":"${"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ps spec.Problems
		root := spec.Parse(&ps, "f.json", raw)
		if root == nil {
			return
		}
		Parse(root)
		if ps.HasErrors() {
			return
		}
		root = spec.Parse(&spec.Problems{}, "f.json", raw)
		// SSLVerify may name an existing file that holds no certificate:
		// only reading it tells.
		if _, err := NewConnector(connectorConfig(root)); err != nil && !strings.Contains(err.Error(), "SSLVerify CA file") {
			t.Fatalf("a file that parses without errors is refused: %v", err)
		}
	})
}

// FuzzReservedParams: reserved get/set params never panic and a request
// built from them always has a URL template.
func FuzzReservedParams(f *testing.F) {
	for _, s := range []string{`"requestUrlExpression=a/${deviceName};httpMethod=post;value=${params};timeout=1;"`, `{"requestUrlExpression":"x","tries":"3","httpHeaders":"{\"A\":\"b\"}"}`, `"=;==;a=b=c"`, `7`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := reservedRule("set", raw)
		if err != nil {
			return
		}
		if r.url == nil || r.body == nil || r.tries < 1 || r.http.Timeout <= 0 || r.respTimeout <= 0 {
			t.Fatalf("incomplete rule %+v", r)
		}
		env := rpcEnv("d", rpcReq(raw), nil)
		renderURL(r.url, env)
		renderBody(r.body, env)
	})
}
