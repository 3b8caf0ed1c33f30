package rest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func build(t testing.TB, file string, raw []byte) (*Connector, *spec.Problems) {
	t.Helper()
	var ps spec.Problems
	root := spec.Parse(&ps, file, raw)
	if root == nil {
		t.Fatalf("%s: %v", file, ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "rest-test", Type: "rest", Config: root, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c, &ps
}

func TestParseSample(t *testing.T) {
	c, ps := build(t, "sample.json", Sample)
	if w := ps.NotErrors(); len(w) > 0 {
		t.Errorf("sample has problems: %v", w)
	}
	cfg := c.Config()
	if cfg.Server.Host != "127.0.0.1" || cfg.Server.Port != 5000 || cfg.Server.SSL {
		t.Errorf("server %+v", cfg.Server)
	}
	if len(c.endpoints) != 2 || len(c.attrReqs) != 1 || len(c.updates) != 1 || len(c.rpcs) != 1 {
		t.Fatalf("compiled %d endpoints, %d attribute requests, %d updates, %d rpcs", len(c.endpoints), len(c.attrReqs), len(c.updates), len(c.rpcs))
	}
	e := cfg.Mapping[1]
	if e.Security.Type != SecurityBasic || e.Security.Username != "user" || strings.Join(e.Methods, ",") != "GET,POST" {
		t.Errorf("second endpoint %+v", e)
	}
	if u := cfg.Updates[0]; u.Timeout != 500*time.Millisecond || u.Tries != 3 || u.Method != "POST" || !u.SSLVerify {
		t.Errorf("update %+v", u)
	}
}

// corpusDir is upstream's config corpus beside the repository.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "upstream-configs")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("upstream config corpus not found at %s: %v", dir, err)
	}
	return dir
}

// TestUpstreamConfigsLoad: upstream's default rest.json (and any rest file
// among its unit-test configs) loads; its custom-converter endpoint is
// skipped with a line naming the extension.
func TestUpstreamConfigsLoad(t *testing.T) {
	dir := corpusDir(t)
	files := []string{filepath.Join(dir, "thingsboard_gateway", "config", "rest.json")}
	_ = filepath.WalkDir(filepath.Join(dir, "tests"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, string(filepath.Separator)+"rest"+string(filepath.Separator)) && strings.HasSuffix(p, ".json") {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, ps := build(t, f, raw)
		t.Logf("%s: %d endpoints, %d attribute requests, %d updates, %d rpcs; %v", f, len(c.endpoints), len(c.attrReqs), len(c.updates), len(c.rpcs), ps.NotErrors())
		if filepath.Base(f) != "rest.json" {
			continue
		}
		if len(c.endpoints) != 2 || len(c.attrReqs) != 1 || len(c.updates) != 2 || len(c.rpcs) != 3 {
			t.Errorf("rest.json compiled %d endpoints, %d attribute requests, %d updates, %d rpcs", len(c.endpoints), len(c.attrReqs), len(c.updates), len(c.rpcs))
		}
		skips := ps.Skips()
		if len(skips) != 1 || !strings.Contains(skips[0].String(), "CustomRestUplinkConverter") || !strings.Contains(skips[0].String(), "mapping[2]") {
			t.Errorf("skips %v, want one naming mapping[2]'s CustomRestUplinkConverter", skips)
		}
		if c.cfg.Server.Port != 5000 || c.cfg.Server.Host != "127.0.0.1" {
			t.Errorf("server %+v", c.cfg.Server)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"bad port", `{"server":{"port":"x"},"mapping":[]}`, `server.port: "x" is not an integer`},
		{"bad method", `{"mapping":[{"endpoint":"/a","HTTPMethods":["FETCH"],"converter":{"type":"json","deviceInfo":{"deviceNameExpression":"a"}}}]}`, `mapping[0].HTTPMethods: unknown HTTP method "FETCH"`},
		{"relative endpoint", `{"mapping":[{"endpoint":"a","converter":{"type":"json","deviceInfo":{"deviceNameExpression":"a"}}}]}`, `mapping[0].endpoint: "a" must start with '/'`},
		{"duplicate route", `{"mapping":[{"endpoint":"/a","converter":{"deviceInfo":{"deviceNameExpression":"a"}}},{"endpoint":"/a","converter":{"deviceInfo":{"deviceNameExpression":"b"}}}]}`, `mapping[1].endpoint: POST "/a" is already served by mapping[0]`},
		{"bad expression", `{"mapping":[{"endpoint":"/a","converter":{"deviceInfo":{"deviceNameExpression":"${a"}}}]}`, `unclosed ${`},
		{"bad filter", `{"requestsMapping":{"serverSideRpc":[{"deviceNameFilter":"(","requestUrlExpression":"x"}]}}`, `requestsMapping.serverSideRpc[0].deviceNameFilter`},
		{"basic without user", `{"mapping":[{"endpoint":"/a","security":{"type":"basic"},"converter":{"deviceInfo":{"deviceNameExpression":"a"}}}]}`, `mapping[0].security.username: is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps spec.Problems
			root := spec.Parse(&ps, "rest.json", []byte(tc.file))
			Parse(root)
			var all []string
			for _, p := range ps.List {
				all = append(all, p.String())
			}
			if got := strings.Join(all, "\n"); !strings.Contains(got, tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
}

// TestOldFormat: a pre-3.6 file (server keys and request sections at the
// top level, expressions in the converter) loads the same way.
func TestOldFormat(t *testing.T) {
	c, ps := build(t, "old.json", []byte(`{
  "host": "127.0.0.1", "port": "5001", "SSL": false,
  "mapping": [{"endpoint": "/d", "HTTPMethods": ["POST"], "security": {"type": "anonymous"},
    "converter": {"type": "json", "deviceNameExpression": "Device ${name}", "deviceTypeExpression": "default",
      "timeseries": [{"type": "int", "key": "t", "value": "${t}"}]}}],
  "attributeUpdates": [{"HTTPMethod": "POST", "deviceNameFilter": ".*", "attributeFilter": ".*",
    "requestUrlExpression": "http://127.0.0.1:1/", "valueExpression": "${attributeValue}"}]
}`))
	if ps.HasErrors() {
		t.Fatal(ps.Err())
	}
	if c.cfg.Server.Port != 5001 || len(c.endpoints) != 1 || len(c.updates) != 1 {
		t.Fatalf("server %+v, %d endpoints, %d updates", c.cfg.Server, len(c.endpoints), len(c.updates))
	}
	di := c.cfg.Mapping[0].Mapping.Converter.DeviceInfo
	if di.NameSource != "message" || di.ProfileSource != "constant" {
		t.Errorf("device info %+v", di)
	}
}
