package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/pyre"
	_ "github.com/industryos/gateway/protocols/localapi"
	_ "github.com/industryos/gateway/protocols/modbus"
)

var update = flag.Bool("update", false, "rewrite expected.txt files")

// TestGolden loads every testdata/<case>/tb_gateway.{json,yaml} and compares
// the problems (errors and warnings, one per line) with expected.txt.
func TestGolden(t *testing.T) {
	dirs, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		t.Run(d.Name(), func(t *testing.T) {
			dir := filepath.Join("testdata", d.Name())
			path := filepath.Join(dir, "tb_gateway.json")
			if _, err := os.Stat(path); err != nil {
				path = filepath.Join(dir, "tb_gateway.yaml")
			}
			cfg, _ := Load(path, func(string) string { return "" })
			var lines []string
			for _, p := range cfg.Problems.List {
				lines = append(lines, p.String())
			}
			got := strings.Join(lines, "\n")
			if len(lines) > 0 {
				got += "\n"
			}
			want := filepath.Join(dir, "expected.txt")
			if *update {
				_ = os.WriteFile(want, []byte(got), 0o644)
				return
			}
			raw, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(raw) {
				t.Errorf("problems differ\n--- got\n%s--- want\n%s", got, raw)
			}
		})
	}
}

func TestValidConfig(t *testing.T) {
	cfg, err := Load("testdata/valid/tb_gateway.json", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ThingsBoard.Host != "platform.example.com" || cfg.ThingsBoard.Security.AccessToken != "YOUR_ACCESS_TOKEN" || cfg.ThingsBoard.Security.Type != "accessToken" {
		t.Errorf("thingsboard: %+v", cfg.ThingsBoard)
	}
	if !cfg.Storage.Durable || cfg.Storage.MaxAge == 0 || cfg.Storage.MaxBytes != 1024*10<<20 {
		t.Errorf("sqlite storage mapping: %+v", cfg.Storage)
	}
	if len(cfg.Connectors) != 1 || len(cfg.Connectors[0].Connector.Devices()) != 1 {
		t.Fatalf("connectors: %+v", cfg.Connectors)
	}
	if n := cfg.Connectors[0].Connector.Devices()[0].Info().Name; n != "Temp Sensor" {
		t.Errorf("device name %q", n)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{"TB_GW_HOST": "override.example", "TB_GW_PORT": "8883", "TB_GW_USERNAME": "u", "TB_GW_PASSWORD": "p"}
	cfg, err := Load("testdata/valid/tb_gateway.json", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	tb := cfg.ThingsBoard
	if tb.Host != "override.example" || tb.Port != 8883 || tb.Security.Type != "usernamePassword" || tb.Security.Username != "u" {
		t.Errorf("env not applied: %+v", tb)
	}
	env = map[string]string{"TB_GW_PORT": "not-a-port"}
	if _, err := Load("testdata/valid/tb_gateway.json", func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), `thingsboard.port: "not-a-port" is not an integer`) {
		t.Errorf("bad TB_GW_PORT: %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	seed, _ := os.ReadFile("testdata/valid/tb_gateway.json")
	f.Add(seed, []byte(`{"master":{"slaves":[{}]}}`))
	mb, _ := os.ReadFile("testdata/valid/modbus.json")
	f.Add(seed, mb)
	f.Fuzz(func(t *testing.T, main, connector []byte) {
		dir := t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, "tb_gateway.json"), main, 0o600)
		_ = os.WriteFile(filepath.Join(dir, "modbus.json"), connector, 0o600)
		cfg, err := Load(filepath.Join(dir, "tb_gateway.json"), func(string) string { return "" })
		if err == nil && cfg.Problems.HasErrors() {
			t.Fatal("errors recorded but Load returned nil")
		}
	})
}

func TestDeviceFilterAndActivity(t *testing.T) {
	cfg, _ := Load("testdata/filter/tb_gateway.json", func(string) string { return "" })
	f := cfg.Filter
	for _, c := range []struct {
		connector, device string
		want              bool
	}{
		{"Modbus Connector", "test-1", false},   // denied
		{"Modbus Connector", "my-test-1", true}, // full match only
		{"Modbus Connector", "plc", true},       // not denied, no allow list
		{"MQTT Connector", "sensor-12", true},   // allowed
		{"MQTT Connector", "sensor-x", false},   // allow list exists, no match
		{"Other", "anything", true},             // no lists
		// Python syntax: lookbehind, named groups, backreferences.
		{"Modbus Connector", "plc-7", false},
		{"Modbus Connector", "my-plc-7", true},
		{"MQTT Connector", "ab-ab-ok", true},
		{"MQTT Connector", "ab-cd-ok", false},
	} {
		if got := f.Allowed(c.connector, c.device); got != c.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", c.connector, c.device, got, c.want)
		}
	}
	if !cfg.Activity.Enabled || cfg.Activity.Timeout.Seconds() != 120 || cfg.Activity.Period.Seconds() != 5 {
		t.Errorf("activity: %+v", cfg.Activity)
	}
	// A pattern that backtracks without end keeps the device out, and says why.
	slow, err := pyre.Compile(`(?=a)(a+)+$`, pyre.FullMatch)
	if err != nil {
		t.Fatal(err)
	}
	tf := &DeviceFilter{deny: map[string][]*pyre.Regexp{"c": {slow}}}
	if ok, err := tf.Check("c", strings.Repeat("a", 40)+"b"); ok || !errors.Is(err, pyre.ErrTimeout) || !strings.Contains(err.Error(), `deny list of "c"`) {
		t.Errorf("timeout: %v %v", ok, err)
	}
	var nilFilter *DeviceFilter
	if !nilFilter.Allowed("x", "y") {
		t.Error("a nil filter must allow everything")
	}
}

// Upstream's type spelling, connectors of types this build lacks and bad
// entries do not refuse the file: the rest loads and runs.
func TestDropInLeniency(t *testing.T) {
	env := func(string) string { return "" }
	cfg, err := Load("testdata/type_case/tb_gateway.json", env)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Connectors {
		if c.Type != "modbus" {
			t.Errorf("connector %q: type %q, want modbus", c.Name, c.Type)
		}
	}
	cfg, err = Load("testdata/unsupported_connector/tb_gateway.json", env)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Connectors) != 1 || len(cfg.Unsupported) != 2 {
		t.Fatalf("connectors %d, unsupported %+v", len(cfg.Connectors), cfg.Unsupported)
	}
	if u := cfg.Unsupported[0]; u.Name != "BACnet" || u.Type != "bacnet" || u.Path != "connectors[1]" {
		t.Errorf("unsupported: %+v", u)
	}
	cfg, err = Load("testdata/skipped_entries/tb_gateway.json", env)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.Problems.Skips()); n != 1 {
		t.Errorf("skips: %v", cfg.Problems.Skips())
	}
	if n := len(cfg.Connectors[0].Connector.Devices()); n != 1 {
		t.Errorf("devices: %d", n)
	}
}

func TestProvisioningSection(t *testing.T) {
	cfg, err := Load("testdata/provisioning/tb_gateway.json", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.ThingsBoard.Provisioning
	if p == nil || p.Type != "ACCESS_TOKEN" || p.Key != "pkey" || p.Secret != "psecret" || p.DeviceName != "Gateway A" ||
		p.CredentialsFile != filepath.Join("testdata", "provisioning", ".credentials") || cfg.ThingsBoard.Security.Type != "" {
		t.Fatalf("provisioning %+v security %+v", p, cfg.ThingsBoard.Security)
	}
}

func TestProvisioningEnv(t *testing.T) {
	env := map[string]string{
		"TB_GW_PROVISIONING_DEVICE_KEY": "k", "TB_GW_PROVISIONING_DEVICE_SECRET": "s",
		"TB_GW_PROVISIONING_DEVICE_USERNAME": "u", "TB_GW_PROVISIONING_DEVICE_PASSWORD": "p",
	}
	// The valid case has a security section: upstream's provisioning
	// variables replace it.
	cfg, err := Load("testdata/valid/tb_gateway.json", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.ThingsBoard.Provisioning
	if p == nil || !p.FromEnv || p.Type != "MQTT_BASIC" || p.Key != "k" || p.Username != "u" || p.Password != "p" {
		t.Fatalf("provisioning %+v", p)
	}
	if cfg.ThingsBoard.Security.Type != "" {
		t.Fatalf("security kept: %+v", cfg.ThingsBoard.Security)
	}
	found := false
	for _, w := range cfg.Problems.Warnings() {
		found = found || strings.Contains(w.String(), "thingsboard.security: ignored")
	}
	if !found {
		t.Fatalf("no warning about the ignored security section: %v", cfg.Problems.List)
	}
}
