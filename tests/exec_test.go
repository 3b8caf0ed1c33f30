package tests

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

const execProgram = `
import json, sys
print(json.dumps({"device": "py-meter", "profile": "meter", "telemetry": {"kw": 1.5}}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["type"] == "rpc":
        print(json.dumps({"id": cmd["id"], "reply": {"kw": cmd["params"]["kw"] * 2}}), flush=True)
`

// TestExecConnectorBinary: the built binary runs a Python program as an
// exec connector: its record reaches the platform and an RPC from the
// platform is answered by the program.
func TestExecConnectorBinary(t *testing.T) {
	py, err := osexec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "meter.py"), []byte(execProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, platform.Addr(), `{"type": "memory"}`,
		map[string][]byte{"exec": []byte(`{"name": "meters", "command": ["` + py + `", "-u", "meter.py"], "rpcTimeout": 5}`)})
	startBinary(t, cfg)
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/telemetry") {
			if strings.Contains(string(m.Payload), `"py-meter"`) && strings.Contains(string(m.Payload), `"kw":1.5`) {
				return true
			}
		}
		return false
	})
	pctx, pcancel := contextTimeout(10 * time.Second)
	defer pcancel()
	if err := plat.Publish(pctx, "v1/gateway/rpc", []byte(`{"device":"py-meter","data":{"id":5,"method":"double","params":{"kw":4}}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if string(m.Payload) == `{"device":"py-meter","id":5,"data":{"kw":8}}` {
				return true
			}
		}
		return false
	})
}

// TestExecMetrics scrapes /metrics of a gateway running an exec connector
// whose program prints a record and a bad line and exits: restarts,
// records and malformed lines are exported with the connector's name.
func TestExecMetrics(t *testing.T) {
	platform := testpeer.StartMosquitto(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flaky.sh"), []byte(`
echo '{"device": "flaky", "telemetry": {"up": 1}}'
echo 'not a record'
exit 2
`), 0o644); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, dir, platform.Addr(), `{"type": "memory"}`,
		map[string][]byte{"exec": []byte(`{"name": "flaky", "command": ["/bin/sh", "flaky.sh"], "restartDelay": 10, "maxRestartDelay": 20}`)})
	patchMain(t, path, withHTTP(nil))
	gw := startGateway(t, path, nil)
	conn := map[string]string{"connector": "exec"} // writeConfig names connectors after their type
	testpeer.Eventually(t, 30*time.Second, "three restarts to be exported", func() error {
		sc := scrapeMetrics(t, gw)
		restarts := sc.sum("iotgw_exec_restarts_total", conn)
		records, bad := sc.sum("iotgw_exec_records_total", conn), sc.sum("iotgw_exec_malformed_lines_total", conn)
		switch {
		case restarts < 3:
			return fmt.Errorf("%v restarts", restarts)
		case records < restarts || bad < restarts:
			// Each of the runs before the last restart printed both lines.
			return fmt.Errorf("%v records, %v malformed after %v restarts", records, bad, restarts)
		case !sc.has("iotgw_exec_stdin_write_errors_total"):
			return fmt.Errorf("no iotgw_exec_stdin_write_errors_total")
		}
		return nil
	})
}
