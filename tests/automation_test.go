package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/actors/automation"
	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// startAutomation loads dir/automation.yaml and runs it on gw's bus.
func startAutomation(t *testing.T, gw *actors.Gateway, dir string) *automation.Engine {
	t.Helper()
	cfg, _, err := automation.Load(filepath.Join(dir, automation.FileName))
	if err != nil || cfg == nil {
		t.Fatalf("automation.yaml: %v", err)
	}
	eng, err := automation.Start(cfg, automation.Deps{
		System: gw.ActorSystem(), Bus: gw.Bus(), Log: testLogger(t),
		Env: handler.Env{WriteDevice: gw.WriteAttributes, DeviceRPC: gw.DeviceRPC, Journal: gw.AppendGatewayEvents},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop() })
	return eng
}

// TestAutomationModbusOffline: a pymodbus slave's unit 1 is polled, a task
// "value > 1000" writes unit 2's register through the gateway's downlink
// (read back from the slave), a forward copies a value to unit 2 through
// an expression, and a platform message is journaled; the platform broker
// is down throughout, and the journaled message reaches it once it is up.
func TestAutomationModbusOffline(t *testing.T) {
	testpeer.NeedPymodbus(t)
	slave := testpeer.StartPySlave(t, "tcp", "socket", "0", "1,2")
	unit := func(u int, extra string) string {
		return fmt.Sprintf(`{"type":"tcp","host":"127.0.0.1","port":%s,"unitId":%d,"deviceName":"unit%d","pollPeriod":100,
		  "timeout":1,"byteOrder":"BIG","reportStrategy":{"type":"ON_RECEIVED"}%s}`, slave.Port, u, u, extra)
	}
	modbus := `{"master":{"slaves":[` +
		unit(1, `,"timeseries":[{"tag":"level","type":"16uint","functionCode":3,"objectsCount":1,"address":5},
		                       {"tag":"flow","type":"16uint","functionCode":3,"objectsCount":1,"address":6}]`) + "," +
		unit(2, `,"attributeUpdates":[{"tag":"alarm","type":"16uint","functionCode":6,"objectsCount":1,"address":10},
		                            {"tag":"never","type":"16uint","functionCode":6,"objectsCount":1,"address":11},
		                            {"tag":"copy","type":"16uint","functionCode":6,"objectsCount":1,"address":12}]`) + `]}}`
	// Nothing listens on the platform's port until the end of the test.
	platformPort := testpeer.FreePort(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", platformPort), `{"type": "memory"}`,
		map[string][]byte{"modbus": []byte(modbus)})
	if err := os.WriteFile(filepath.Join(dir, automation.FileName), []byte(`
queue: {memory: true, retryMin: 50ms, retryMax: 1s}
forwards:
  - {name: copy-flow, source: unit1.flow, target: unit2.copy, expression: "value - 1000"}
tasks:
  - name: high-level
    trigger: {event: device/unit1/level}
    condition: value > 1000
    actions:
      - {handler: device_write, params: {device: unit2, key: alarm, value: 4242}}
      - {handler: platform_message, params: {kind: telemetry, values: {highLevel: "{{value}}"}}}
  - name: impossible
    trigger: {event: device/unit1/level}
    condition: value > 2000
    actions:
      - {handler: device_write, params: {device: unit2, key: never, value: 1}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, path, nil)
	eng := startAutomation(t, gw, dir)

	hr := func(u, a int) string {
		return strings.TrimPrefix(slave.Do("hr %d %d", u, a), fmt.Sprintf("hr %d %d ", u, a))
	}
	testpeer.Eventually(t, 20*time.Second, "unit 2 register 10 written by the task", func() error {
		if v := hr(2, 10); v != "4242" {
			return fmt.Errorf("register 10 = %s", v)
		}
		return nil
	})
	testpeer.Eventually(t, 20*time.Second, "unit 2 register 12 written by the forward", func() error {
		if v := hr(2, 12); v != "6" { // unit 1 register 6 is 1006
			return fmt.Errorf("register 12 = %s", v)
		}
		return nil
	})
	testpeer.Eventually(t, 10*time.Second, "both actions done", func() error {
		if q := eng.Queue(); q.Done.Load() != 2 || q.Failed.Load() != 0 {
			return fmt.Errorf("done %d failed %d", q.Done.Load(), q.Failed.Load())
		}
		return nil
	})
	if v := hr(2, 11); v != "2011" {
		t.Errorf("register 11 = %s: the impossible task wrote", v)
	}
	for _, st := range eng.Status() {
		switch st.Name {
		case "high-level":
			if st.Runs != 1 || st.LastError != "" {
				t.Errorf("high-level status %+v: want one run (a still-true condition does not fire again)", st)
			}
		case "impossible":
			if st.Runs != 0 || st.Checks == 0 {
				t.Errorf("impossible status %+v", st)
			}
		}
	}
	testpeer.Eventually(t, 10*time.Second, "the forward's write recorded", func() error {
		for _, st := range eng.Status() {
			if st.Name == "copy-flow" && (st.Runs == 0 || st.LastError != "") {
				return fmt.Errorf("forward status %+v", st)
			}
		}
		return nil
	})

	// The platform comes up: the journaled gateway message reaches it.
	testpeer.StartMochi(t, testpeer.MochiPort(platformPort))
	plat := testpeer.Subscribe(t, fmt.Sprintf("127.0.0.1:%d", platformPort), "v1/devices/me/telemetry")
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			var body []map[string]any
			if json.Unmarshal(m.Payload, &body) == nil {
				for _, e := range body {
					if v, _ := e["values"].(map[string]any); v != nil && v["highLevel"] == 1005.0 {
						return true
					}
				}
			}
		}
		return false
	})
}

// TestAutomationQueueSurvivesKill: webhook actions the receiver refuses
// are in the Badger queue when the gateway is killed (SIGKILL); the
// restarted gateway delivers each once, with its original idempotency key.
// The task is disabled by a SIGHUP reload before the kill, so the actions
// delivered after the restart can only come from the queue.
func TestAutomationQueueSurvivesKill(t *testing.T) {
	var mu sync.Mutex
	accept := false
	attempts := map[string]int{}
	delivered := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key := r.Header.Get("Idempotency-Key")
		attempts[key]++
		if !accept {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered[key]++
	}))
	defer srv.Close()
	s := startSim(t, 1, 2)
	dir := t.TempDir()
	path := writeConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)), `{"type": "memory"}`,
		map[string][]byte{"modbus": sim.GatewayConfig(s.Addr(), 1, 2, 100*time.Millisecond)})
	writeAutomation := func(enabled bool) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, automation.FileName), []byte(fmt.Sprintf(`
queue: {retryMin: 100ms, retryMax: 200ms}
tasks:
  - name: notify
    enabled: %t
    trigger: {event: device/sim-dev-1/+}
    condition: key == "r0" or key == "r1"    # not the connector details sent with the connect
    actions:
      - {handler: webhook, params: {url: "%s/hook", body: {key: "{{key}}", value: "{{value}}"}}}
`, enabled, srv.URL)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAutomation(true)
	gw := startBinary(t, path)
	// r0 and r1 each fire once; each action is refused at least twice.
	testpeer.Eventually(t, 30*time.Second, "two actions retried", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) != 2 {
			return fmt.Errorf("attempts %v", attempts)
		}
		for k, n := range attempts {
			if n < 2 {
				return fmt.Errorf("action %s tried %d times", k, n)
			}
		}
		return nil
	})
	writeAutomation(false)
	if err := gw.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Retries go on after the reload (the queue is kept); give the reload
	// a retry round to be applied, then kill.
	mu.Lock()
	before := attempts[firstKey(attempts)]
	mu.Unlock()
	testpeer.Eventually(t, 10*time.Second, "a retry after the reload", func() error {
		mu.Lock()
		defer mu.Unlock()
		if attempts[firstKey(attempts)] < before+2 {
			return fmt.Errorf("attempts %v", attempts)
		}
		return nil
	})
	if err := gw.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()
	mu.Lock()
	keys := len(attempts)
	accept = true
	mu.Unlock()
	startBinary(t, path)
	testpeer.Eventually(t, 30*time.Second, "both queued actions delivered", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(delivered) != 2 {
			return fmt.Errorf("delivered %v", delivered)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for k, n := range delivered {
		if n != 1 || attempts[k] < 3 {
			t.Errorf("action %s: delivered %d times after %d attempts", k, n, attempts[k])
		}
	}
	if len(attempts) != keys {
		t.Errorf("new actions after the restart: %v (the task is disabled)", attempts)
	}
}

func firstKey(m map[string]int) string {
	for k := range m {
		return k
	}
	return ""
}

// TestAutomationForwardMQTTToModbus: a value an MQTT device publishes is
// forwarded, through an expression, to a Modbus register of the simulator
// via the Modbus device's attributeUpdates, and another value triggers a
// device_rpc by the device's rpc mapping; the platform is down.
func TestAutomationForwardMQTTToModbus(t *testing.T) {
	devices := testpeer.StartMosquitto(t)
	s := startSim(t, 1, 40)
	var modbus map[string]any
	if err := json.Unmarshal(sim.GatewayConfig(s.Addr(), 1, 2, 200*time.Millisecond), &modbus); err != nil {
		t.Fatal(err)
	}
	slave := modbus["master"].(map[string]any)["slaves"].([]any)[0].(map[string]any)
	slave["attributeUpdates"] = []any{map[string]any{"tag": "setpoint", "type": "16uint", "functionCode": 6, "objectsCount": 1, "address": 30}}
	slave["rpc"] = []any{map[string]any{"tag": "setMode", "type": "16uint", "functionCode": 6, "objectsCount": 1, "address": 31}}
	modbusRaw, _ := json.Marshal(modbus)
	dir := t.TempDir()
	path := writeConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)), `{"type": "memory"}`,
		map[string][]byte{"mqtt": mqttConnectorConfig(t, devices.Addr()), "modbus": modbusRaw})
	if err := os.WriteFile(filepath.Join(dir, automation.FileName), []byte(`
queue: {memory: true}
forwards:
  - {name: temp-to-setpoint, source: SN-1.temp, target: sim-dev-1.setpoint, expression: "int(value * 10)"}
tasks:
  - name: mode-from-n
    trigger: {event: device/SN-1/n}
    condition: value > 0
    actions: [{handler: device_rpc, params: {device: sim-dev-1, method: setMode, params: "{{value}}"}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, path, nil)
	eng := startAutomation(t, gw, dir)
	dev := testpeer.Subscribe(t, devices.Addr(), "nothing/#")
	// The Modbus device must be up before the write can reach it.
	testpeer.Eventually(t, 20*time.Second, "sim-dev-1 connected", func() error {
		devs, err := gw.Devices(context.Background())
		if err != nil {
			return err
		}
		for _, d := range devs {
			if d.Device == "sim-dev-1" {
				return nil
			}
		}
		return fmt.Errorf("devices %v", devs)
	})
	devicePublish(t, dev, "sensor/SN-1/data", `{"n":7,"temp":21.5}`)
	testpeer.Eventually(t, 20*time.Second, "register 30 written by the forward", func() error {
		if v := s.Get(1, 30, 1)[0]; v != 215 {
			return fmt.Errorf("register 30 = %d (forward %+v)", v, eng.Status())
		}
		return nil
	})
	testpeer.Eventually(t, 20*time.Second, "register 31 written by the task's rpc", func() error {
		if v := s.Get(1, 31, 1)[0]; v != 7 {
			return fmt.Errorf("register 31 = %d (queue %+v)", v, eng.Report().Queue)
		}
		return nil
	})
}

// TestAutomationStatsToPlatform: the gateway binary sends the automation
// engine's summary (rules enabled, runs, last run, failing rules, queue)
// with its statistics telemetry to the platform broker (mosquitto).
func TestAutomationStatsToPlatform(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/devices/me/telemetry")
	s := startSim(t, 1, 2)
	dir := t.TempDir()
	path := writeConfig(t, dir, m.Addr(), `{"type": "memory"}`,
		map[string][]byte{"modbus": sim.GatewayConfig(s.Addr(), 1, 2, 100*time.Millisecond)},
		map[string]any{"statistics": map[string]any{"enable": true, "statsSendPeriodInSeconds": 1}})
	if err := os.WriteFile(filepath.Join(dir, automation.FileName), []byte(`
queue: {memory: true}
forwards:
  - {name: nowhere, source: sim-dev-1.r1, target: no-such-device.x}
tasks:
  - name: seen
    trigger: {event: device/sim-dev-1/r0}
    condition: value >= 0
    actions: [{handler: platform_message, params: {kind: telemetry, values: {seen: "{{value}}"}}}]
  - name: off
    enabled: false
    trigger: {every: 1h}
    actions: [{handler: platform_message, params: {values: {x: 1}}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	startBinary(t, path)
	var got automation.Summary
	sub.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		for _, msg := range msgs {
			var v struct {
				Values struct {
					AutomationStats *automation.Summary `json:"automationStats"`
				} `json:"values"`
			}
			if json.Unmarshal(msg.Payload, &v) == nil && v.Values.AutomationStats != nil {
				got = *v.Values.AutomationStats
				if got.Runs >= 2 && got.RulesWithErrors == 1 {
					return true
				}
			}
		}
		return false
	})
	if got.Tasks != 2 || got.TasksEnabled != 1 || got.ForwardsEnabled != 1 || got.LastRun == 0 ||
		!strings.Contains(got.Errors["nowhere"], "no-such-device") {
		t.Fatalf("automationStats %+v", got)
	}
}

// TestAutomationForDurationSurvivesKill: a for-duration condition that has
// held for about half its 8 s when the gateway is SIGKILLed fires about 4 s
// after the restart, not 8 s, and once.
func TestAutomationForDurationSurvivesKill(t *testing.T) {
	var mu sync.Mutex
	var hits []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	s := startSim(t, 1, 2)
	s.Set(1, 0, 500) // r0 stays above the limit
	dir := t.TempDir()
	path := writeConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)), `{"type": "memory"}`,
		map[string][]byte{"modbus": sim.GatewayConfig(s.Addr(), 1, 2, 100*time.Millisecond)})
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	patchMain(t, path, func(m map[string]any) { m["http"] = map[string]any{"enabled": true, "address": httpAddr} })
	if err := os.WriteFile(filepath.Join(dir, automation.FileName), []byte(fmt.Sprintf(`
tasks:
  - name: high
    trigger: {event: device/sim-dev-1/r0}
    condition: value > 100
    for: 8s
    actions: [{handler: webhook, params: {url: "%s/high"}}]
`, srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	checks := func() (uint64, error) {
		resp, err := http.Get("http://" + httpAddr + "/automation")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var rep automation.Report
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || len(rep.Rules) != 1 {
			return 0, fmt.Errorf("status %v %+v", err, rep)
		}
		return rep.Rules[0].Checks, nil
	}
	gw := startBinary(t, path)
	// Polled every 100 ms: 40 checks after the first mean the condition
	// has held for at least 3.9 s.
	testpeer.Eventually(t, 30*time.Second, "the condition holding for 4 s", func() error {
		n, err := checks()
		if err == nil && n < 41 {
			err = fmt.Errorf("%d checks", n)
		}
		return err
	})
	if err := gw.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()
	mu.Lock()
	if len(hits) != 0 {
		t.Fatalf("fired before the kill: %v", hits)
	}
	mu.Unlock()
	restarted := time.Now()
	startBinary(t, path)
	testpeer.Eventually(t, 30*time.Second, "the action after the restart", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(hits) == 0 {
			return fmt.Errorf("no call yet")
		}
		return nil
	})
	mu.Lock()
	after := hits[0].Sub(restarted)
	mu.Unlock()
	if after >= 6500*time.Millisecond {
		t.Fatalf("fired %s after the restart: the for-duration started over", after)
	}
	// Fired once for this episode, also while the condition goes on holding.
	n0, err := checks()
	if err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, "more checks after the action", func() error {
		if n, err := checks(); err != nil || n < n0+20 {
			return fmt.Errorf("%d checks, %v", n, err)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 1 {
		t.Fatalf("%d calls", len(hits))
	}
}

// remoteAutomationGateway is the built binary with remote configuration on,
// its /automation endpoint and mosquitto as the platform; automation.yaml
// holds initial unless it is empty.
type remoteAutomationGateway struct {
	t                  *testing.T
	sub                *testpeer.Subscriber
	dir, autoPath, api string
}

func startRemoteAutomationGateway(t *testing.T, initial string) *remoteAutomationGateway {
	m := testpeer.StartMosquitto(t)
	g := &remoteAutomationGateway{t: t, sub: testpeer.Subscribe(t, m.Addr(), "v1/devices/me/attributes"), dir: t.TempDir()}
	path := writeConfig(t, g.dir, m.Addr(), `{"type": "memory"}`,
		map[string][]byte{"modbus": sim.GatewayConfig(startSim(t, 1, 1).Addr(), 1, 1, time.Second)}, map[string]any{"remoteConfiguration": true})
	g.api = fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	patchMain(t, path, func(m map[string]any) { m["http"] = map[string]any{"enabled": true, "address": g.api} })
	g.autoPath = filepath.Join(g.dir, automation.FileName)
	if initial != "" {
		if err := os.WriteFile(g.autoPath, []byte(initial), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startBinary(t, path)
	// Announced: the gateway is connected and takes shared attributes.
	g.sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, msg := range msgs {
			if strings.Contains(string(msg.Payload), "general_configuration") {
				return true
			}
		}
		return false
	})
	return g
}

// rules are the names of the running automation's rules.
func (g *remoteAutomationGateway) rules() ([]string, error) {
	resp, err := http.Get("http://" + g.api + "/automation")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rep automation.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range rep.Rules {
		names = append(names, r.Name)
	}
	return names, nil
}

// waitRules waits until the running automation's rules are want.
func (g *remoteAutomationGateway) waitRules(want ...string) {
	g.t.Helper()
	testpeer.Eventually(g.t, 20*time.Second, fmt.Sprintf("automation rules %v", want), func() error {
		names, err := g.rules()
		if err != nil {
			return err
		}
		if !slices.Equal(names, want) {
			return fmt.Errorf("rules %v", names)
		}
		return nil
	})
}

// send publishes text as the shared attribute automation_configuration.
func (g *remoteAutomationGateway) send(text string) {
	g.t.Helper()
	body, _ := json.Marshal(map[string]string{"automation_configuration": text})
	if err := g.sub.Publish(context.Background(), "v1/devices/me/attributes", body, 1); err != nil {
		g.t.Fatal(err)
	}
}

// status waits for the remote configuration status of
// automation_configuration with applied and returns its message.
func (g *remoteAutomationGateway) status(applied bool) string {
	g.t.Helper()
	want := fmt.Sprintf(`"remoteConfigurationStatus":{"key":"automation_configuration","applied":%t`, applied)
	var got string
	g.sub.WaitFor(g.t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, msg := range msgs {
			if strings.Contains(string(msg.Payload), want) {
				got = string(msg.Payload)
				return true
			}
		}
		return false
	})
	return got
}

// TestAutomationRemoteConfiguration: the platform replaces a running
// automation file (backed up); a file with errors is refused with its
// line and the running automation stays.
func TestAutomationRemoteConfiguration(t *testing.T) {
	g := startRemoteAutomationGateway(t, `
queue: {memory: true}
tasks:
  - {name: a, trigger: {event: device/x/a}, actions: [{handler: platform_message, params: {values: {a: 1}}}]}
`)
	b := "queue: {memory: true}\ntasks:\n  - {name: b, trigger: {event: device/x/b}, actions: [{handler: platform_message, params: {values: {b: 1}}}]}\n"
	g.send(b)
	g.status(true)
	if names, err := g.rules(); err != nil || len(names) != 1 || names[0] != "b" {
		t.Fatalf("rules after the remote file: %v %v", names, err)
	}
	if raw, _ := os.ReadFile(g.autoPath); string(raw) != b {
		t.Fatalf("automation.yaml is %q", raw)
	}
	if backups, _ := filepath.Glob(filepath.Join(g.dir, "backup", "automation.backup.*.yaml")); len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	g.send("tasks:\n  - name: c\n    trigger: {cron: \"* * *\"}\n    actions: [{handler: platform_message, params: {values: {c: 1}}}]\n")
	refused := g.status(false)
	if !strings.Contains(refused, "automation.yaml:3: tasks[0].trigger.cron") || !strings.Contains(refused, "running automation stays") {
		t.Fatalf("refusal %s", refused)
	}
	if names, err := g.rules(); err != nil || len(names) != 1 || names[0] != "b" {
		t.Fatalf("rules after the refused file: %v %v", names, err)
	}
	if raw, _ := os.ReadFile(g.autoPath); string(raw) != b {
		t.Fatalf("a refused file was written: %q", raw)
	}
}

// TestAutomationStartsLater: a gateway started without automation.yaml
// starts automation when a valid file is written next to its config, or
// when the platform sends one (one with errors is refused, not written).
func TestAutomationStartsLater(t *testing.T) {
	t.Run("file written", func(t *testing.T) {
		g := startRemoteAutomationGateway(t, "")
		if err := os.WriteFile(g.autoPath, []byte("queue: {memory: true}\ntasks:\n  - {name: d, trigger: {event: device/x/d}, actions: [{handler: platform_message, params: {values: {d: 1}}}]}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		g.waitRules("d")
	})
	t.Run("sent by the platform", func(t *testing.T) {
		g := startRemoteAutomationGateway(t, "")
		g.send("tasks:\n  - name: c\n    trigger: {cron: \"* * *\"}\n    actions: []\n")
		if refused := g.status(false); !strings.Contains(refused, "automation.yaml:3") {
			t.Fatalf("refusal %s", refused)
		}
		if _, err := os.Stat(g.autoPath); err == nil {
			t.Fatal("a refused file was written")
		}
		g.send("queue: {memory: true}\ntasks:\n  - {name: r, trigger: {event: device/x/r}, actions: [{handler: platform_message, params: {values: {r: 1}}}]}\n")
		g.status(true)
		g.waitRules("r")
	})
}
