package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckValid(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"check", "-c", "../../protocols/config/testdata/valid/tb_gateway.json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `connector "Modbus Connector" (modbus): 1 devices`) || !strings.Contains(out.String(), "OK") {
		t.Errorf("stdout: %s", out.String())
	}
}

func TestCheckPrintsEveryProblem(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"check", "-c", "../../protocols/config/testdata/bad_modbus_type/tb_gateway.json"}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		`modbus.json: master.slaves[0].timeseries[1].type: unknown type "33int" (want one of: string, bytes, bits, 8int, 8uint, 16int,`,
		`modbus.json: master.slaves[0].deviceName: is required`,
		`modbus.json: master.slaves[0].pollPeriod: "fast" is not a number of milliseconds`,
		`invalid configuration`,
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"run", "-c", "../../protocols/config/testdata/bad_main/tb_gateway.json"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "thingsboard.host: is required") || !strings.Contains(errOut.String(), "not starting") {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if code := run([]string{"run", "--log-level", "loud", "-c", "x"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown log level "loud"`) {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

func TestCheckConnectorFile(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"check", "-c", "../../examples/modbus.json"}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"modbus.json looks like a connector file", "tb_gateway.json: connectors[0].configuration refers to it"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
}

func TestCheckTruncatedAndMissing(t *testing.T) {
	dir := t.TempDir()
	trunc := filepath.Join(dir, "tb_gateway.json")
	if err := os.WriteFile(trunc, []byte("{\"thingsboard\": {\"host\": \"h\",\n \"port\": 1883,\n \"security\": {\"acc"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-c", trunc}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "invalid JSON: unexpected EOF at line 3 column 19 (the file ends there") {
		t.Fatalf("exit %d:\n%s", code, errOut.String())
	}
	missing := `{"thingsboard": {"host": "h", "port": 1883, "security": {"accessToken": "t"}},
  "connectors": [{"type": "modbus", "name": "m", "configuration": "nope.json"}]}`
	if err := os.WriteFile(trunc, []byte(missing), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run([]string{"check", "-c", trunc}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `tb_gateway.json: connectors[0].configuration: cannot read "nope.json" (connector "m")`) {
		t.Fatalf("exit %d:\n%s", code, errOut.String())
	}
}

func TestCheckFields(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-fields", "modbus"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "| `pollPeriod` | milliseconds | required |") {
		t.Errorf("stdout lacks pollPeriod:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"check", "-fields", "nope"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `unknown connector type "nope"`) {
		t.Errorf("exit %d, stderr %s", code, errOut.String())
	}
}

func TestCheckUnknownKeyPointsToFields(t *testing.T) {
	dir := t.TempDir()
	src := "../../protocols/config/testdata/valid/"
	gw, err := os.ReadFile(src + "tb_gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(src + "modbus.json")
	if err != nil {
		t.Fatal(err)
	}
	mb = bytes.Replace(mb, []byte(`"slaves": [`), []byte(`"slaves": [{"host": "127.0.0.1", "deviceName": "x", "pollPeriod": 1000, "pollPerod": 5},`), 1)
	for name, raw := range map[string][]byte{"tb_gateway.json": gw, "modbus.json": mb} {
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-c", filepath.Join(dir, "tb_gateway.json")}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	for _, want := range []string{`pollPerod: unknown key, ignored (did you mean "pollPeriod"?)`, "the keys a modbus connector reads: iotgw check -fields modbus"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
}
