package rest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols"
)

// An endpoint's converter can be a Starlark script: one request may name
// several devices, and a request the script fails on is counted without
// stopping the next one.
func TestScriptEndpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.star")
	src := `
def uplink(msg):
    rows = msg.json()["rows"]
    return [{"device": r["id"], "profile": msg.config["profile"], "telemetry": {"v": r["v"]}} for r in rows]
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	file := `{"server": {"host": "127.0.0.1", "port": 0}, "mapping": [
		{"endpoint": "/rows", "HTTPMethods": ["POST"],
		 "converter": {"type": "script", "script": "` + path + `", "extensionConfig": {"profile": "row"}}}]}`
	_, s, base := startConnector(t, file)
	if a := do(t, "POST", base+"/rows", "application/json", `{"rows":[{"id":"a","v":1},{"id":"b","v":2.5}]}`); a.code != 200 {
		t.Fatalf("answer %d %q", a.code, a.body)
	}
	if a := do(t, "POST", base+"/rows", "application/json", `{"nothing":1}`); a.code == 200 {
		t.Fatalf("a failed script answered %d %q", a.code, a.body)
	}
	if a := do(t, "POST", base+"/rows", "application/json", `{"rows":[{"id":"a","v":3}]}`); a.code != 200 {
		t.Fatalf("answer %d %q", a.code, a.body)
	}
	var got []string
	for _, p := range s.DataPushes() {
		got = append(got, p.Device+"/"+p.Profile+"="+p.Reading.Telemetry[0].Value.String())
	}
	if strings.Join(got, " ") != "a/row=1 b/row=2.5 a/row=3" {
		t.Fatalf("pushes %v", got)
	}
	if m := s.MalformedReports(); len(m) != 1 || !strings.Contains(m[0].String(), "rows.star:3:22: in uplink: ") || !strings.Contains(m[0].String(), `key "rows" not in dict`) {
		t.Fatalf("malformed %v", m)
	}
}

// requestsMapping attributeUpdates and serverSideRpc entries with a
// "script" send the requests its downlink(cmd) returns to the device (a
// real HTTP server here): an absolute url, the entry's method and headers
// unless the script gives its own, and a "reply" in place of the device's
// answer.
func TestScriptDownlink(t *testing.T) {
	d, devURL := startDevice(t)
	path := filepath.Join(t.TempDir(), "down.star")
	src := `
def downlink(cmd):
    base = "DEVICE_URL"
    if cmd.kind == "attributes":
        return [{"url": base + "/" + cmd.device + "/attr", "payload": {k: v}} for k, v in cmd.values.items()]
    if cmd.method == "twice":
        return [{"url": base + "/" + cmd.device + "/rpc/a", "payload": "1"},
                {"url": base + "/" + cmd.device + "/rpc/b", "method": "put", "headers": {"Content-Type": "text/plain"}, "payload": "2",
                 "reply": {"sent": 2}}]
    return {"url": base + "/" + cmd.device + "/rpc/" + cmd.method, "payload": cmd.params}
`
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(src, "DEVICE_URL", devURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := build(t, "rest.json", []byte(`{"server": {"host": "127.0.0.1", "port": 0}, "mapping": [],
  "requestsMapping": {
    "attributeUpdates": [{"HTTPMethod": "PATCH", "httpHeaders": {"Content-Type": "application/json"}, "script": "`+path+`"}],
    "serverSideRpc": [{"methodFilter": "twice|echo", "HTTPMethod": "POST", "script": "`+path+`"}]}}`))
	cm := c.Commander("SN-2", "default")
	ctx := context.Background()
	if ignored, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"fw": json.RawMessage(`"2.1"`)}); err != nil || len(ignored) != 0 {
		t.Fatalf("update: ignored %v, %v", ignored, err)
	}
	if got := d.last(); got != `PATCH /SN-2/attr application/json {"fw":"2.1"}` {
		t.Errorf("device got %q", got)
	}
	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 3, Device: "SN-2", Method: "twice"})
	if err != nil || string(res) != `{"sent":2}` {
		t.Fatalf("twice = %s, %v", res, err)
	}
	d.mu.Lock()
	got := strings.Join(d.reqs[len(d.reqs)-2:], " | ")
	d.mu.Unlock()
	if got != `POST /SN-2/rpc/a  1 | PUT /SN-2/rpc/b text/plain 2` {
		t.Errorf("device got %q", got)
	}
	// Without "reply" the device's answer is the result, as without a script.
	res, err = cm.RPC(ctx, protocols.RPCRequest{ID: 4, Device: "SN-2", Method: "echo", Params: json.RawMessage(`{"x":1}`)})
	if err != nil || string(res) != `{"result":{"echo":{"x":1}}}` {
		t.Fatalf("echo = %s, %v", res, err)
	}
}
