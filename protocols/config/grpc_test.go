package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/config"
)

// TestGRPCSection: the grpc connectors' keys are checked with the path of
// the bad key, and an enabled grpc section in a build without the grpc
// protocol (this test's) names the missing build tag. The section's own
// keys are read by package grpcapi and tested there.
func TestGRPCSection(t *testing.T) {
	dir := t.TempDir()
	main := `{"thingsboard":{"host":"localhost","port":1883,"security":{"accessToken":"x"}},
"grpc":{"enabled":true,"serverPort":70000,"keepAliveTimeMs":10000},
"connectors":[{"type":"grpc","name":"a","configuration":"ext.json"},
{"type":"grpc","name":"b","key":"k1","configuration":"ext.json"},
{"type":"grpc","name":"c","key":"k1","configuration":"ext.json"}]}`
	for f, s := range map[string]string{"tb_gateway.json": main, "ext.json": `{"anything":1}`} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := config.Load(filepath.Join(dir, "tb_gateway.json"), func(string) string { return "" })
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"tb_gateway.json: grpc.enabled: the grpc server is not in this build: build with the tag protocols.grpc", "connectors[0].key", `connectors[2].key: key already used by connector "b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
