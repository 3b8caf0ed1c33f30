package request

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
