package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/config"
)

// TestGRPCSection: the grpc section and the grpc connectors' keys are
// checked with the path of the bad key.
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
	for _, want := range []string{"tb_gateway.json: grpc.serverPort", "connectors[0].key", `connectors[2].key: key already used by connector "b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
