package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

type fakeService struct{ port int64 }

func (fakeService) Start(zerolog.Logger) error { return nil }
func (fakeService) Stop()                      {}

func init() {
	protocols.RegisterService("fakeon", func(o *spec.Obj) protocols.Service {
		port := o.IntRange("port", 1, 1, 65535)
		if !o.Bool("enabled", false) {
			return nil
		}
		o.Done()
		return fakeService{port: port}
	})
}

func loadMain(t *testing.T, sections string) (*Gateway, error) {
	t.Helper()
	dir := t.TempDir()
	main := `{"thingsboard":{"host":"localhost","port":1883,"security":{"accessToken":"x"}}` + sections + `}`
	path := filepath.Join(dir, "tb_gateway.json")
	if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path, func(string) string { return "" })
}

// TestServiceSection: a registered service's section becomes one Service
// when it is switched on, none when off; its problems carry its path; an
// edit is a change applied at the next start.
func TestServiceSection(t *testing.T) {
	for _, tc := range []struct {
		section string
		want    int
	}{{`{"enabled":true,"port":9595}`, 1}, {`{"enabled":false}`, 0}, {`{}`, 0}} {
		cfg, err := loadMain(t, `,"fakeon":`+tc.section)
		if err != nil {
			t.Fatalf("%s: %v", tc.section, err)
		}
		if len(cfg.Services) != tc.want {
			t.Fatalf("%s: %d services, want %d", tc.section, len(cfg.Services), tc.want)
		}
		if tc.want == 1 && (cfg.Services[0].Section != "fakeon" || cfg.Services[0].Service.(fakeService).port != 9595) {
			t.Fatalf("service %+v", cfg.Services[0])
		}
	}
	if _, err := loadMain(t, `,"fakeon":{"enabled":true,"port":70000}`); err == nil || !strings.Contains(err.Error(), "tb_gateway.json: fakeon.port") {
		t.Fatalf("bad port: %v", err)
	}
	a, _ := loadMain(t, `,"fakeon":{"enabled":true,"port":1}`)
	b, _ := loadMain(t, `,"fakeon":{"enabled":true,"port":2}`)
	off, _ := loadMain(t, ``)
	for _, tc := range []struct {
		old, new *Gateway
		want     string
	}{{a, b, "fakeon changed (applies at the next start)"}, {a, off, "fakeon changed (applies at the next start)"}, {a, a, ""}} {
		var got []string
		for _, c := range Diff(tc.old, tc.new) {
			got = append(got, c.String())
		}
		if strings.Join(got, "; ") != tc.want {
			t.Errorf("diff %q, want %q", got, tc.want)
		}
	}
}

// TestServiceNotInBuild: a section of a service whose protocol this build
// lacks is an error naming the build tag when it is switched on, and is
// ignored (no unknown-key warning either) when it is off.
func TestServiceNotInBuild(t *testing.T) {
	serviceTags["fakesvc"] = "protocols.fakesvc"
	t.Cleanup(func() { delete(serviceTags, "fakesvc") })
	_, err := loadMain(t, `,"fakesvc":{"enabled":true,"serverPort":1}`)
	if err == nil || !strings.Contains(err.Error(), "tb_gateway.json: fakesvc.enabled") || !strings.Contains(err.Error(), "build with the tag protocols.fakesvc") {
		t.Fatalf("enabled section: %v", err)
	}
	cfg, err := loadMain(t, `,"fakesvc":{"enabled":false,"serverPort":1}`)
	if err != nil {
		t.Fatalf("disabled section: %v", err)
	}
	if len(cfg.Services) != 0 || len(cfg.Problems.List) != 0 {
		t.Fatalf("disabled section: services %v, problems %v", cfg.Services, cfg.Problems.List)
	}
}

// TestConnectorKeyPassed: a connector's factory gets the main file's key
// of its entry (the secret a gRPC connector process registers with), not
// the JSON path of its configuration.
func TestConnectorKeyPassed(t *testing.T) {
	var got string
	protocols.Register("keyprobe", func(cc protocols.ConnectorConfig) (protocols.Connector, error) {
		got = cc.Key
		return nil, errors.New("probe only")
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	main := `{"thingsboard":{"host":"localhost","port":1883,"security":{"accessToken":"x"}},
"connectors":[{"type":"keyprobe","name":"p","key":"s3cret","configuration":"p.json"}]}`
	path := filepath.Join(dir, "tb_gateway.json")
	if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _ = Load(path, func(string) string { return "" })
	if got != "s3cret" {
		t.Fatalf("factory got key %q, want s3cret", got)
	}
}
