package rest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
