package request

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upstreamDir is upstream's config corpus beside the repository (absent in
// a plain clone: the tests skip).
const upstreamDir = "../../../shared/upstream-configs"

// Upstream's default request.json loads; its custom-converter mapping is
// kept in the config (the connector skips it when the extension is not
// built in) and its subRequests processingFunction compiles.
func TestUpstreamDefaultLoads(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(upstreamDir, "thingsboard_gateway/config/request.json"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("upstream config corpus not found at %s", upstreamDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg, probs, err := ParseFile("request.json", raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Logf("%s", p)
	}
	if len(cfg.Mapping) != 3 || len(cfg.AttributeUpdates) != 1 || len(cfg.ServerSideRPC) != 2 {
		t.Fatalf("mapping %d attributeUpdates %d serverSideRpc %d", len(cfg.Mapping), len(cfg.AttributeUpdates), len(cfg.ServerSideRPC))
	}
	m := cfg.Mapping[0]
	if m.URL != "getdata" || m.HTTP.Timeout != 500*time.Millisecond || m.ScanPeriod != 5*time.Second || !m.HTTP.AllowRedirects {
		t.Fatalf("mapping[0] = %+v", m)
	}
	if cfg.Security.Type != SecurityBasic || cfg.Security.Username != "user" || !cfg.SSLVerify {
		t.Fatalf("security %v sslverify %v", cfg.Security, cfg.SSLVerify)
	}
	if cfg.Security.String() != "basic user user password ***" {
		t.Fatalf("security prints its password: %s", cfg.Security)
	}
	if got := cfg.Mapping[2].SubRequests; len(got) != 1 || got[0].Key != "cumPwr" {
		t.Fatalf("subRequests = %+v", got)
	}
	if cfg.ServerSideRPC[0].ResponseTimeout != time.Second || cfg.ServerSideRPC[0].Tries != 3 {
		t.Fatalf("rpc[0] = %+v", cfg.ServerSideRPC[0])
	}
	// Every other upstream file naming a request connector loads too.
	filepath.WalkDir(upstreamDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") || !strings.Contains(filepath.Base(p), "request") || strings.Contains(p, "/mqtt/") {
			return nil
		}
		raw, _ := os.ReadFile(p)
		if _, _, err := ParseFile(filepath.Base(p), raw); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		return nil
	})
}

func TestSampleLoads(t *testing.T) {
	cfg, probs, err := ParseFile("sample.json", Sample)
	if err != nil || len(probs) > 0 {
		t.Fatalf("err %v problems %v", err, probs)
	}
	if len(cfg.Mapping) != 2 {
		t.Fatalf("mapping %d", len(cfg.Mapping))
	}
}

// Bad entries are skipped with a line naming file, path and value; the
// rest of the file loads. A bad top level refuses the file.
func TestConfigProblems(t *testing.T) {
	raw := `{"host":"127.0.0.1:9","SSLVerify":false,
	  "mapping":[
	    {"url":"a","scanPeriod":"fast","converter":{"deviceNameJsonExpression":"d"}},
	    {"url":"b","timeout":0,"converter":{"deviceNameJsonExpression":"d"}},
	    {"url":"c","converter":{"deviceNameJsonExpression":"${unclosed"}},
	    {"url":"ok","converter":{"deviceNameJsonExpression":"d","telemetry":[{"key":"t","value":"${t}"}]}}
	  ],
	  "attributeUpdates":[{"attributeFilter":"(","requestUrlExpression":"x"},{"requestUrlExpression":"y"}],
	  "serverSideRpc":[{"requestUrlExpression":"x"},{"methodFilter":"m","requestUrlExpression":"z","tries":0}]}`
	cfg, probs, err := ParseFile("r.json", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range probs {
		lines = append(lines, p.String())
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`r.json: mapping[0].scanPeriod: "fast" is not a number`,
		`r.json: mapping[1].timeout: 0 must be a positive number of seconds`,
		`r.json: mapping[2].converter.deviceNameJsonExpression: expression "${unclosed": unclosed ${`,
		`r.json: attributeUpdates[0].attributeFilter`,
		`r.json: serverSideRpc[0].methodFilter: is required`,
		`r.json: serverSideRpc[1].tries`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in\n%s", want, all)
		}
	}
	if len(cfg.Mapping) != 1 || cfg.Mapping[0].URL != "ok" || len(cfg.AttributeUpdates) != 1 || len(cfg.ServerSideRPC) != 0 {
		t.Fatalf("kept mapping %d updates %d rpcs %d", len(cfg.Mapping), len(cfg.AttributeUpdates), len(cfg.ServerSideRPC))
	}
	if cfg.Host != "http://127.0.0.1:9" || cfg.SSLVerify {
		t.Fatalf("host %q ssl %v", cfg.Host, cfg.SSLVerify)
	}
	if _, _, err := ParseFile("r.json", []byte(`{"mapping":[]}`)); err == nil || !strings.Contains(err.Error(), "r.json: host: is required") {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := ParseFile("r.json", []byte(`{"host":"h","SSLVerify":7}`)); err == nil || !strings.Contains(err.Error(), "SSLVerify") {
		t.Fatalf("err = %v", err)
	}
}

// TLS verification is on when the file does not mention SSLVerify.
func TestSSLVerifyDefaultsOn(t *testing.T) {
	cfg, _, err := ParseFile("r.json", []byte(`{"host":"https://h"}`))
	if err != nil || !cfg.SSLVerify {
		t.Fatalf("err %v SSLVerify %v", err, cfg.SSLVerify)
	}
}
