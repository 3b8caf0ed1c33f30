package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// echoDevice is a test protocol that takes commands: "echo" returns its
// params, "slow" outlives the rpc timeout, anything else is unknown; attribute
// updates are recorded.
type echoDevice struct {
	name string
	mu   sync.Mutex
	attr map[string]string
}

func (d *echoDevice) Info() protocols.DeviceInfo {
	return protocols.DeviceInfo{Name: d.name, Type: "echo", PollPeriod: 100 * time.Millisecond, ConnectAttemptCount: 2}
}
func (d *echoDevice) Poll(context.Context) (protocols.Reading, error) {
	return protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "up", Value: protocols.Bool(true)}}}, nil
}
func (d *echoDevice) Close() error { return nil }
func (d *echoDevice) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	switch req.Method {
	case "echo":
		return protocols.RPCResult(fmt.Sprintf(`{"result":%s}`, req.Params)), nil
	case "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w %q", protocols.ErrUnknownMethod, req.Method)
}
func (d *echoDevice) UpdateAttributes(_ context.Context, values map[string]json.RawMessage) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range values {
		d.attr[k] = string(v)
	}
	return nil, nil
}
func (d *echoDevice) SharedAttributeKeys() []string { return []string{"setpoint"} }

func (d *echoDevice) attribute(k string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attr[k]
}

type echoConnector struct{ devs []protocols.Device }

func (c *echoConnector) Devices() []protocols.Device { return c.devs }
func (c *echoConnector) Close() error                { return nil }
func (c *echoConnector) ConnectorRPC(_ context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	if req.Method == "echo_fail" {
		return nil, errors.New("connector says no")
	}
	return protocols.RPCResult(fmt.Sprintf(`{"result":{"devices":%d}}`, len(c.devs))), nil
}

var echoDevices sync.Map // name → *echoDevice

// freshEcho forgets echo devices, so a test re-run sees no old attributes.
func freshEcho(names ...string) {
	for _, n := range names {
		echoDevices.Delete(n)
	}
}

func init() {
	protocols.Register("echo", func(cfg protocols.ConnectorConfig) (protocols.Connector, error) {
		var out []protocols.Device
		for _, n := range cfg.Config.Strings("devices") {
			d, _ := echoDevices.LoadOrStore(n, &echoDevice{name: n, attr: map[string]string{}})
			out = append(out, d.(*echoDevice))
		}
		return &echoConnector{devs: out}, nil
	})
}

// reply waits for the reply with id on topic and returns its raw JSON.
func waitReply(t *testing.T, sub *testpeer.Subscriber, topic string, match func(map[string]json.RawMessage) bool) map[string]json.RawMessage {
	t.Helper()
	var got map[string]json.RawMessage
	sub.WaitFor(t, 15*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if m.Topic != topic {
				continue
			}
			var body map[string]json.RawMessage
			if json.Unmarshal(m.Payload, &body) == nil && match(body) {
				got = body
				return true
			}
		}
		return false
	})
	return got
}

func hasID(id string) func(map[string]json.RawMessage) bool {
	return func(b map[string]json.RawMessage) bool { return string(b["id"]) == id && b["data"] != nil }
}

// TestDeviceRPCAndAttributes: RPC requests on v1/gateway/rpc reach the owning
// device and are answered as {"device","id","data"}; unknown devices, unknown
// methods and timeouts are answered too, never silence; attribute updates land.
func TestDeviceRPCAndAttributes(t *testing.T) {
	freshEcho("rpc-a", "rpc-b")
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/rpc", "v1/gateway/telemetry", "v1/devices/me/rpc/response/+")
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{
		"echo": []byte(`{"devices": ["rpc-a", "rpc-b"]}`)})
	startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "rpc-a") > 0 && contiguousAny(got, "rpc-b") > 0
	})
	send := func(topic, body string) {
		t.Helper()
		if err := sub.Publish(context.Background(), topic, []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	send("v1/gateway/rpc", `{"device":"rpc-a","data":{"id":1,"method":"echo","params":{"x":5}}}`)
	r := waitReply(t, sub, "v1/gateway/rpc", hasID("1"))
	if string(r["device"]) != `"rpc-a"` || string(r["data"]) != `{"result":{"x":5}}` {
		t.Errorf("echo reply: %s %s", r["device"], r["data"])
	}
	send("v1/gateway/rpc", `{"device":"nobody","data":{"id":2,"method":"echo","params":{}}}`)
	r = waitReply(t, sub, "v1/gateway/rpc", hasID("2"))
	if !strings.Contains(string(r["data"]), `device not found: \"nobody\"`) {
		t.Errorf("unknown device reply: %s", r["data"])
	}
	send("v1/gateway/rpc", `{"device":"rpc-b","data":{"id":3,"method":"frobnicate"}}`)
	r = waitReply(t, sub, "v1/gateway/rpc", hasID("3"))
	if !strings.Contains(string(r["data"]), `unknown rpc method \"frobnicate\"`) {
		t.Errorf("unknown method reply: %s", r["data"])
	}
	send("v1/gateway/rpc", `{"device":"rpc-b","data":{"id":4,"method":"slow","params":{"timeout":300}}}`)
	r = waitReply(t, sub, "v1/gateway/rpc", hasID("4"))
	if string(r["data"]) != `{"error":"Timeout rpc has been reached for rpc-b"}` {
		t.Errorf("timeout reply: %s", r["data"])
	}
	// A malformed request is logged and counted, and the gateway keeps serving.
	send("v1/gateway/rpc", `{"device":`)
	send("v1/gateway/rpc", `{"device":"rpc-a","data":{"id":5,"method":"echo","params":1}}`)
	r = waitReply(t, sub, "v1/gateway/rpc", hasID("5"))
	if string(r["data"]) != `{"result":1}` {
		t.Errorf("after a malformed request: %s", r["data"])
	}

	send("v1/gateway/attributes", `{"device":"rpc-a","data":{"setpoint":21.5}}`)
	testpeer.Eventually(t, 10*time.Second, "setpoint 21.5 on rpc-a", func() error {
		d, _ := echoDevices.Load("rpc-a")
		if v := d.(*echoDevice).attribute("setpoint"); v != "21.5" {
			return fmt.Errorf("setpoint %q", v)
		}
		return nil
	})

	// Gateway RPC: ping, devices, unknown method, connector RPC by type.
	gw := func(id, body string) string {
		t.Helper()
		send("v1/devices/me/rpc/request/"+id, body)
		var payload string
		sub.WaitFor(t, 15*time.Second, func(msgs []testpeer.Msg) bool {
			for _, m := range msgs {
				if m.Topic == "v1/devices/me/rpc/response/"+id {
					payload = string(m.Payload)
					return true
				}
			}
			return false
		})
		return payload
	}
	for id, c := range map[string]struct{ req, want string }{
		"10": {`{"method":"gateway_ping","params":{}}`, `{"code":200,"resp":"pong"}`},
		"11": {`{"method":"gateway_devices"}`, `{"code":200,"resp":{"rpc-a":"echo","rpc-b":"echo"}}`},
		"12": {`{"method":"gateway_frobnicate"}`, `{"error":"Method not found","code":404}`},
		"13": {`{"method":"echo_count"}`, `{"result":{"devices":2}}`},
		"14": {`{"method":"zigbee_scan"}`, `{"error":"zigbee - connector not found in available connectors.","code":404}`},
		"15": {`{"method":"echo_fail"}`, `{"error":"connector says no","code":500}`},
	} {
		if got := gw(id, c.req); got != c.want {
			t.Errorf("%s: got %s want %s", c.req, got, c.want)
		}
	}
}

// TestStatistics: the gateway announces itself with attributes and sends
// machineStats/serviceStats/connectorsStats telemetry from real counters.
func TestStatistics(t *testing.T) {
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/devices/me/telemetry", "v1/devices/me/attributes")
	path := writeConfig(t, t.TempDir(), b.Addr(), `{"type": "memory"}`,
		map[string][]byte{"echo": []byte(`{"devices": ["stats-a"]}`)},
		map[string]any{"statistics": map[string]any{"enable": true, "statsSendPeriodInSeconds": 1}})
	startGateway(t, path, nil)
	var stats struct {
		Values struct {
			MachineStats    map[string]float64            `json:"machineStats"`
			ServiceStats    map[string]float64            `json:"serviceStats"`
			ConnectorsStats map[string]map[string]float64 `json:"connectorsStats"`
		} `json:"values"`
	}
	var attrs map[string]any
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			switch m.Topic {
			case "v1/devices/me/attributes":
				_ = json.Unmarshal(m.Payload, &attrs)
			case "v1/devices/me/telemetry":
				_ = json.Unmarshal(m.Payload, &stats)
			}
		}
		return attrs != nil && stats.Values.ConnectorsStats["echo"]["convertersTsProduced"] > 0
	})
	if attrs["Version"] == nil || attrs["cpuCount"].(float64) < 1 || attrs["totalMemory"].(float64) <= 0 {
		t.Errorf("gateway attributes: %v", attrs)
	}
	if stats.Values.MachineStats["totalMemory"] <= 0 || stats.Values.MachineStats["gwMemory"] <= 0 {
		t.Errorf("machineStats: %v", stats.Values.MachineStats)
	}
	if _, ok := stats.Values.ServiceStats["journalDepth"]; !ok {
		t.Errorf("serviceStats lacks journalDepth: %v", stats.Values.ServiceStats)
	}
}

// TestRenameDeleteAndRestart: a platform rename maps both ways and survives a
// restart through connected_devices.json; known devices are re-connected
// after a restart; a deleted device is forgotten and re-announced on its next
// data under its own name.
func TestRenameDeleteAndRestart(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/#", "v1/devices/me/rpc/response/+")
	dir := t.TempDir()
	send := func(topic, body string) {
		t.Helper()
		if err := sub.Publish(context.Background(), topic, []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	gwReply := func(id string) string {
		var out string
		sub.WaitFor(t, 15*time.Second, func(msgs []testpeer.Msg) bool {
			for _, m := range msgs {
				if m.Topic == "v1/devices/me/rpc/response/"+id {
					out = string(m.Payload)
					return true
				}
			}
			return false
		})
		return out
	}
	path := writeConfig(t, dir, m.Addr(), `{"type": "memory"}`, map[string][]byte{"echo": []byte(`{"devices": ["ren-a"]}`)})
	cfg1 := startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "ren-a") > 0
	})
	send("v1/devices/me/rpc/request/1", `{"method":"gateway_device_renamed","params":{"ren-a":"Renamed A"}}`)
	if r := gwReply("1"); r != `{"success":true}` {
		t.Fatalf("rename reply %s", r)
	}
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "Renamed A") > 0
	})
	send("v1/gateway/rpc", `{"device":"Renamed A","data":{"id":7,"method":"echo","params":"hi"}}`)
	r := waitReply(t, sub, "v1/gateway/rpc", hasID("7"))
	if string(r["device"]) != `"Renamed A"` || string(r["data"]) != `{"result":"hi"}` {
		t.Fatalf("rpc to the new name: %s %s", r["device"], r["data"])
	}
	ctx, cancel := contextTimeout(5 * time.Second)
	_ = cfg1.Stop(ctx)
	cancel()
	raw, err := os.ReadFile(filepath.Join(dir, "connected_devices.json"))
	if err != nil || !strings.Contains(string(raw), `"renaming": "Renamed A"`) {
		t.Fatalf("registry file: %s %v", raw, err)
	}

	// Restart without ren-a in the config: it is still announced, under its new name.
	sub.Reset()
	path = writeConfig(t, dir, m.Addr(), `{"type": "memory"}`, map[string][]byte{"echo": []byte(`{"devices": ["ren-b"]}`)})
	startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if m.Topic == "v1/gateway/connect" && strings.Contains(string(m.Payload), `"Renamed A"`) {
				return true
			}
		}
		return false
	})
	send("v1/devices/me/rpc/request/2", `{"method":"gateway_device_deleted","params":"Renamed A"}`)
	if r := gwReply("2"); r != `{"success":true}` {
		t.Fatalf("delete reply %s", r)
	}
	testpeer.Eventually(t, 10*time.Second, "the deleted device to leave connected_devices.json", func() error {
		raw, _ := os.ReadFile(filepath.Join(dir, "connected_devices.json"))
		if strings.Contains(string(raw), "ren-a") {
			return fmt.Errorf("deleted device still saved: %s", raw)
		}
		return nil
	})
}

// TestGatewayRestartKeepsJournal: gateway_restart rebuilds the actor tree in
// the same process; data keeps flowing and nothing journaled is lost.
func TestGatewayRestartKeepsJournal(t *testing.T) {
	freshChaos("restart-1")
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/gateway/telemetry", "v1/devices/me/rpc/response/+")
	path := writeConfig(t, t.TempDir(), b.Addr(), `{"type": "memory"}`, map[string][]byte{"chaos": []byte(`{"devices": ["restart-1"]}`)})
	rj := newRecordingJournal(newMemoryJournal())
	gw := startGateway(t, path, rj)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguous(got, "restart-1") >= 5
	})
	restarts := gw.Counters().TreeRestarts.Load()
	if err := sub.Publish(context.Background(), "v1/devices/me/rpc/request/9", []byte(`{"method":"gateway_restart","params":1}`), 1); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 20*time.Second, "a tree restart", func() error {
		if gw.Counters().TreeRestarts.Load() == restarts {
			return errors.New("not restarted yet")
		}
		return nil
	})
	// Polls continue after the restart and everything committed arrives.
	mark := contiguous(mustTelemetry(t, sub.Messages()), "restart-1")
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguous(got, "restart-1") >= mark+5
	})
	committed := rj.committed()
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return len(missing(committed, got)) == 0
	})
}

func mustTelemetry(t *testing.T, msgs []testpeer.Msg) map[point]map[string]json.RawMessage {
	t.Helper()
	got, err := telemetry(msgs)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestRemoteConfiguration: connector and general configuration arrive as
// shared attributes; a valid change is written and applied, an invalid one is
// rejected with the checker's message and the running config stays.
func TestRemoteConfiguration(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry", "v1/devices/me/attributes", "v1/devices/me/attributes/request/+")
	dir := t.TempDir()
	path := writeConfig(t, dir, m.Addr(), `{"type": "memory"}`, map[string][]byte{"echo": []byte(`{"devices": ["rc-a"]}`)},
		map[string]any{"remoteConfiguration": true})
	gw := startGateway(t, path, nil)
	// On connect the gateway publishes its configuration and asks for the shared keys.
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		var announced, requested bool
		for _, m := range msgs {
			announced = announced || m.Topic == "v1/devices/me/attributes" && strings.Contains(string(m.Payload), `"active_connectors":["echo"]`)
			requested = requested || strings.HasPrefix(m.Topic, "v1/devices/me/attributes/request/") && strings.Contains(string(m.Payload), "general_configuration")
		}
		return announced && requested
	})
	status := func(applied bool) string {
		var out string
		sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
			for _, m := range msgs {
				if m.Topic == "v1/devices/me/attributes" && strings.Contains(string(m.Payload), fmt.Sprintf(`"applied":%v`, applied)) {
					out = string(m.Payload)
					return true
				}
			}
			return false
		})
		return out
	}
	send := func(body string) {
		t.Helper()
		if err := sub.Publish(context.Background(), "v1/devices/me/attributes", []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadFile(path)
	send(`{"general_configuration": {"host": "", "port": 99999, "security": {"accessToken": "x"}}}`)
	st := status(false)
	if !strings.Contains(st, "thingsboard.port: 99999 is out of range") || !strings.Contains(st, "thingsboard.host: must not be empty") {
		t.Errorf("rejection does not name the problems: %s", st)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("a rejected change modified tb_gateway.json")
	}

	sub.Reset()
	send(`{"echo": {"name": "echo", "type": "echo", "configurationJson": {"devices": ["rc-a", "rc-b"]}}}`)
	status(true)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "rc-b") > 0
	})
	raw, _ := os.ReadFile(filepath.Join(dir, "echo.json"))
	if !strings.Contains(string(raw), "rc-b") {
		t.Errorf("connector file not written: %s", raw)
	}
	if backups, _ := filepath.Glob(filepath.Join(dir, "backup", "echo.backup.*.json")); len(backups) != 1 {
		t.Errorf("backups: %v", backups)
	}
	// Re-sending the same configuration changes nothing and restarts nothing.
	restarts := gw.Counters().TreeRestarts.Load()
	send(`{"echo": {"name": "echo", "type": "echo", "configurationJson": {"devices": ["rc-a", "rc-b"]}}, "storage_configuration": {"type": "memory"}}`)
	send(`{"RemoteLoggingLevel": "NONE"}`)
	// The absence of a restart is the point; a later change that is
	// rejected is the marker to wait for (its status comes after the
	// gateway looked at the messages above). It repeats the same connector
	// configuration too, which the status must not count as a change.
	sub.Reset()
	send(`{"echo": {"name": "echo", "type": "echo", "configurationJson": {"devices": ["rc-a", "rc-b"]}}, "general_configuration": {"host": "", "port": 99999, "security": {"accessToken": "x"}}}`)
	if st := status(false); !strings.Contains(st, `"key":"general_configuration"`) {
		t.Errorf("the unchanged connector counted as a change: %s", st)
	}
	if r := gw.Counters().TreeRestarts.Load(); r != restarts {
		t.Errorf("identical configuration restarted the tree (%d → %d)", restarts, r)
	}
}
