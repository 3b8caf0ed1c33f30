package tests

import (
	"path/filepath"
	"testing"

	"github.com/industryos/gateway/actors/automation"
	"github.com/industryos/gateway/protocols/config"
)

// TestExamplesLoad: the configs in examples/ load without an error or a
// warning, every connector builds, and the Modbus example matches the
// simulator (`iotgw sim modbus --devices 2 --registers 4 --port 5020`).
func TestExamplesLoad(t *testing.T) {
	mains, err := filepath.Glob("../examples/tb_gateway.*")
	if err != nil || len(mains) < 2 {
		t.Fatalf("example main configs: %v %v", mains, err)
	}
	seen := map[string]bool{}
	for _, path := range mains {
		cfg, err := config.Load(path, func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range cfg.Problems.List {
			t.Errorf("%s: %s", path, p.String())
		}
		for _, c := range cfg.Connectors {
			seen[c.Type] = true
			if c.Name == "Modbus simulator" && len(c.Connector.Devices()) != 2 {
				t.Errorf("%s: modbus example has %d devices, the simulator command serves 2", path, len(c.Connector.Devices()))
			}
		}
	}
	for _, typ := range []string{"modbus", "mqtt", "can", "opcua", "snmp", "request", "rest", "socket"} {
		if !seen[typ] {
			t.Errorf("no example for the %s connector", typ)
		}
	}
}

// TestExampleAutomation: examples/automation.yaml loads without a problem
// and names only devices and keys the example connector has.
func TestExampleAutomation(t *testing.T) {
	cfg, ps, err := automation.Load("../examples/automation.yaml")
	if err != nil || cfg == nil {
		t.Fatalf("load: %v", err)
	}
	for _, p := range ps.List {
		t.Errorf("%s", p.String())
	}
	if len(cfg.Forwards) == 0 || len(cfg.Tasks) < 4 {
		t.Errorf("%d forwards, %d tasks", len(cfg.Forwards), len(cfg.Tasks))
	}
}
