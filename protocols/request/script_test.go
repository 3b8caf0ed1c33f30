package request

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// A polled mapping's converter can be a Starlark script: the response
// body is msg.payload and the mapping's url msg.topic.
func TestScriptConverterPolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meters.star")
	src := `
def uplink(msg):
    return [{"device": m["id"], "profile": msg.config["profile"], "telemetry": {"kw": m["w"] / 1000}, "attributes": {"url": msg.topic}}
            for m in msg.json()["meters"]]
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/meters", jsonHandler(`{"meters":[{"id":"M1","w":1500},{"id":"M2","w":250}]}`))
	srv := startPeer(t, mux, nil)
	c, _ := newConnector(t, `{"host":"`+srv.URL+`","mapping":[
	  {"url":"meters","scanPeriod":60,"converter":{"type":"custom","script":"`+path+`","extensionConfig":{"profile":"meter"}}}]}`)
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "both meters", func() bool {
		_, a := s.Latest("M1", "kw")
		_, b := s.Latest("M2", "kw")
		return a && b
	})
	var got []string
	for _, p := range s.DataPushes() {
		got = append(got, p.Device+"/"+p.Profile+" "+p.Reading.Telemetry[0].Value.String()+" "+p.Reading.Attributes[0].Value.String())
	}
	if strings.Join(got, ", ") != "M1/meter 1.5 meters, M2/meter 0.25 meters" {
		t.Fatalf("pushes %v", got)
	}
}

// A script that does not load stops the connector (a site's own script
// with a typo must not drop data quietly); a mapping without its script
// is skipped like any bad mapping.
func TestScriptConverterConfigError(t *testing.T) {
	_, err := connectorErr(t, `{"host":"http://127.0.0.1:1","mapping":[{"url":"x","converter":{"type":"custom","script":"/nonexistent/x.star"}}]}`)
	if want := `request.json: mapping[0].converter.script: /nonexistent/x.star: cannot read: no such file or directory`; err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	_, ps := newConnector(t, `{"host":"http://127.0.0.1:1","mapping":[{"url":"x","converter":{"type":"script"}}]}`)
	if s := ps.Skips(); len(s) != 1 || s[0].String() != `error (entry skipped): request.json: mapping[0].converter.script: is required for a script converter (a Starlark file)` {
		t.Errorf("skips %v", s)
	}
}

func connectorErr(t *testing.T, raw string) (*Connector, error) {
	t.Helper()
	var ps spec.Problems
	root := spec.Parse(&ps, "request.json", []byte(raw))
	if root == nil {
		t.Fatal(ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "request-test", Type: "request", Config: root, Logger: zerolog.Nop()})
	if err == nil {
		t.Fatal("no error")
	}
	return c, err
}

// attributeUpdates and serverSideRpc entries with a "script" send the
// requests its downlink(cmd) returns to a real HTTP server: the url is a
// path on the host (or absolute), method and headers default to the
// entry's, and a "reply" replaces the RPC's answer.
func TestScriptDownlink(t *testing.T) {
	dir := t.TempDir()
	src := `
def downlink(cmd):
    if cmd.kind == "attributes":
        return [{"url": "/dev/%s/%s" % (cmd.device, k), "payload": {"v": v}} for k, v in cmd.values.items()]
    if cmd.method == "reset":
        return [{"url": "/dev/%s/stop" % cmd.device, "method": "post", "payload": "stop"},
                {"url": "/dev/%s/start" % cmd.device, "method": "post", "headers": {"X-Req": str(cmd.id)}, "payload": "start",
                 "reply": {"done": cmd.params["why"]}}]
    return {"url": "/dev/%s/echo" % cmd.device}
`
	if err := os.WriteFile(filepath.Join(dir, "down.star"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hdr []string
	mux := http.NewServeMux()
	mux.HandleFunc("/dev/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hdr = append(hdr, r.Header.Get("X-Req")+"|"+r.Header.Get("X-Site"))
		mu.Unlock()
		io.WriteString(w, `{"echo":"`+r.URL.Path+`"}`)
	})
	srv := startPeer(t, mux, nil)
	file := filepath.Join(dir, "request.json")
	c := newConnectorFile(t, file, `{"host":"`+srv.URL+`","mapping":[],
	  "attributeUpdates":[{"httpMethod":"PUT","httpHeaders":{"X-Site":"s1"},"script":"down.star"}],
	  "serverSideRpc":[{"methodFilter":"reset|echo","httpMethod":"GET","script":"down.star"}]}`)
	cm := c.Commander("pump", "")
	ctx := context.Background()

	if ignored, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"speed": json.RawMessage(`12`)}); err != nil || len(ignored) != 0 {
		t.Fatalf("update: ignored %v, %v", ignored, err)
	}
	if last := srv.seen()[len(srv.seen())-1]; last.Method != "PUT" || last.Path != "/dev/pump/speed" || last.Body != `{"v":12}` {
		t.Fatalf("update sent %+v", last)
	}
	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 9, Device: "pump", Method: "reset", Params: json.RawMessage(`{"why":"jam"}`)})
	if err != nil || string(res) != `{"done":"jam"}` {
		t.Fatalf("reset = %s, %v", res, err)
	}
	got := srv.seen()
	if n := len(got); n != 3 || got[1].Method != "POST" || got[1].Path != "/dev/pump/stop" || got[1].Body != "stop" ||
		got[2].Path != "/dev/pump/start" || got[2].Body != "start" {
		t.Fatalf("reset sent %+v", got)
	}
	mu.Lock()
	if strings.Join(hdr, ",") != "|s1,|,9|" {
		t.Errorf("headers %q", hdr)
	}
	mu.Unlock()
	// Without "reply" the answer is the last request's, as without a script.
	res, err = cm.RPC(ctx, protocols.RPCRequest{ID: 10, Device: "pump", Method: "echo"})
	if err != nil || string(res) != `{"result":{"value":{"echo":"/dev/pump/echo"}}}` {
		t.Fatalf("echo = %s, %v", res, err)
	}
	if last := srv.seen()[len(srv.seen())-1]; last.Method != "GET" {
		t.Fatalf("echo sent %+v", last)
	}
}

// A command entry's script that does not load, or one given with the keys
// it replaces, is a config error at the entry.
func TestScriptDownlinkConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "up.star"), []byte("def uplink(msg):\n  return None\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := connectorErrFile(t, filepath.Join(dir, "request.json"), `{"host":"http://127.0.0.1:1","mapping":[],
	  "serverSideRpc":[{"methodFilter":"x","script":"up.star"}]}`)
	if want := `request.json: serverSideRpc[0].script: ` + filepath.Join(dir, "up.star") + `: defines no downlink(cmd), which a command entry needs`; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	_, ps := newConnector(t, `{"host":"http://127.0.0.1:1","mapping":[],
	  "attributeUpdates":[{"script":"x.star","requestUrlExpression":"a/b"}]}`)
	if s := ps.Skips(); len(s) != 1 || !strings.Contains(s[0].String(), `attributeUpdates[0].requestUrlExpression: is not used with "script"`) {
		t.Errorf("skips %v", s)
	}
}

func newConnectorFile(t *testing.T, file, raw string) *Connector {
	t.Helper()
	var ps spec.Problems
	root := spec.Parse(&ps, "request.json", []byte(raw))
	if root == nil {
		t.Fatal(ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "request-test", Type: "request", File: file, Config: root, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func connectorErrFile(t *testing.T, file, raw string) (*Connector, error) {
	t.Helper()
	var ps spec.Problems
	root := spec.Parse(&ps, "request.json", []byte(raw))
	if root == nil {
		t.Fatal(ps.Err())
	}
	return NewConnector(protocols.ConnectorConfig{Name: "request-test", Type: "request", File: file, Config: root, Logger: zerolog.Nop()})
}
