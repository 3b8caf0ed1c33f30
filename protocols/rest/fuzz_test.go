package rest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// FuzzPush sends arbitrary requests through the handler: every one is
// answered with a status the connector documents, never a panic, and a 200
// means every value it carried was committed.
func FuzzPush(f *testing.F) {
	f.Add("POST", "/push", "application/json", `{"sensorName":"a","sensorType":"t","temp":1}`, "")
	f.Add("POST", "/push", "application/json", `[{"sensorName":"a","sensorType":"t","temp":1},{"sensorName":"b","sensorType":"t","hum":"x"}]`, "temp=2")
	f.Add("GET", "/secure/1", "", ``, "co2=1")
	f.Add("POST", "/push", "application/x-www-form-urlencoded", `sensorName=a&sensorType=b&temp=%zz`, "")
	f.Add("POST", "/attrs", "application/json", `{"deviceName":"d","attribute":["a","b"]}`, "")
	f.Add("POST", "/push", "application/json", `{"sensorName":`, "")
	c, _ := build(f, "rest.json", []byte(testFile))
	s := sinktest.NewCounter()
	h, err := c.Handler(s)
	if err != nil {
		f.Fatal(err)
	}
	allowed := map[int]bool{200: true, 400: true, 401: true, 404: true, 405: true, 408: true, 413: true, 415: true, 503: true}
	f.Fuzz(func(t *testing.T, method, path, ct, body, query string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " ?#\r\n\t") || path == "/ask" {
			return
		}
		if _, err := url.ParseQuery(query); err != nil {
			query = url.QueryEscape(query)
		}
		req, err := http.NewRequest(method, "http://gw"+path+"?"+query, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		before := s.Pushed()
		h.ServeHTTP(w, req)
		if !allowed[w.Code] {
			t.Fatalf("%s %s %q: status %d %q", method, path, body, w.Code, w.Body)
		}
		if w.Code != 200 && path == "/push" && s.Pushed() != before && w.Code != 503 {
			t.Fatalf("%d answer after data was pushed", w.Code)
		}
	})
}

// FuzzPayload: whatever a request carries, Payload either refuses it as a
// bad request or yields one JSON document.
func FuzzPayload(f *testing.F) {
	f.Add("application/json", `{"a":1}`, "b=2", "x")
	f.Add("application/x-www-form-urlencoded", `a=1&a=2`, "", "")
	f.Add("text/plain", `[1,{"a":2}]`, "a=1", "")
	f.Add("", ``, "", "v")
	f.Fuzz(func(t *testing.T, ct, body, query, pathValue string) {
		q, _ := url.ParseQuery(query)
		in := Input{ContentType: ct, Body: []byte(body), Query: q}
		if pathValue != "" {
			in.PathValues = map[string]string{"p": pathValue}
		}
		out, err := in.Payload()
		if err != nil {
			if !isBadRequest(err) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if out != nil && !json.Valid(out) {
			t.Fatalf("payload %q is not JSON", out)
		}
	})
}

func isBadRequest(err error) bool {
	_, ok := err.(badRequest)
	return ok
}

// FuzzConfig: any connector file is either refused with problems or builds
// a connector; neither panics.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(testFile))
	f.Add(Sample)
	f.Add([]byte(`{"host":"0.0.0.0","mapping":[{"endpoint":"/{a}","converter":{"deviceNameExpression":"${a}"}}],"serverSideRpc":[{}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ps spec.Problems
		root := spec.Parse(&ps, "rest.json", raw)
		if root == nil {
			return
		}
		c, err := NewConnector(protocols.ConnectorConfig{Name: "f", Type: "rest", Config: root, Logger: zerolog.Nop()})
		if err != nil {
			return
		}
		if _, err := c.Handler(sinktest.NewCounter()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzTemplate: command templates render or fail cleanly, and URL escaping
// keeps only what quote() keeps.
func FuzzTemplate(f *testing.F) {
	f.Add("http://h/${deviceName}/${params.a}", "dev ice/1", `{"a":[1,2]}`)
	f.Add("${attribute}${attribute1}", "x", `{"attribute":"a"}`)
	f.Fuzz(func(t *testing.T, src, device, params string) {
		tp, err := compileTemplate(src)
		if err != nil {
			return
		}
		env := map[string]any{"deviceName": device, "params": rawValue(json.RawMessage(params))}
		if s, err := tp.render(env, escapeURL); err == nil {
			for i := 0; i < len(s); i++ {
				if s[i] == ' ' && !strings.Contains(src, " ") {
					t.Fatalf("unescaped space in %q", s)
				}
			}
		}
		_ = tp.refs(env)
	})
}
