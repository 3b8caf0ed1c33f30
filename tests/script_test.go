package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// scriptConnector is an mqtt connector whose mappings run scripts: the
// ported upstream example, a script that loops forever or raises on some
// devices, and a downlink script for RPC.
func scriptConnector(t *testing.T, addr string) []byte {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf(`{
  "name": "Scripted devices",
  "broker": {"host": %q, "port": %s, "version": 5, "keepAlive": 10, "clientId": "gw-script",
    "cleanStart": false, "sessionExpiryInterval": 3600},
  "mapping": [
    {"topicFilter": "custom/sensors/+", "subscriptionQos": 1,
     "converter": {"type": "custom", "extension": "scripts/custom_mqtt_uplink.star",
                   "extensionConfig": {"temperature": 2, "humidity": 2, "batteryLevel": 1}}},
    {"topicFilter": "faulty/+", "subscriptionQos": 1,
     "converter": {"type": "script", "script": "scripts/faulty.star"}},
    {"topicFilter": "raising/+", "subscriptionQos": 1,
     "converter": {"type": "script", "script": "scripts/faulty.star"}}
  ],
  "requestsMapping": {
    "serverSideRpc": [{"type": "twoWay", "deviceNameFilter": ".*", "methodFilter": "^read$",
      "responseTopicExpression": "custom/rpc/${deviceName}/response/${requestId}", "responseTimeout": 5000,
      "script": "scripts/rpc.star"}]
  }
}`, host, port))
}

const faultyE2E = `
def uplink(msg):
    d = msg.json()
    if d["mode"] == "loop":
        while True:
            pass
    if d["mode"] == "raise":
        fail("bad frame")
    return {"device": msg.topic.split("/")[1], "telemetry": {"n": d["n"]}}
`

const rpcE2E = `
def downlink(cmd):
    return {"topic": "custom/rpc/%s/request/%d" % (cmd.device, cmd.id),
            "payload": binary.pack_int(cmd.params["register"], 2)}
`

// TestScriptConverterBinary: the built binary runs script converters from
// the connector file's folder. Hex payloads become telemetry on the
// platform broker, a script stuck in a loop or raising is stopped and
// logged with its file and line while the other devices keep flowing,
// and a two-way RPC goes out through a downlink script and is answered.
func TestScriptConverterBinary(t *testing.T) {
	platform := testpeer.StartMosquitto(t)
	// The device broker logs subscriptions: the test waits for the last one.
	devices := testpeer.StartMosquitto(t, testpeer.MosquittoConfig("log_type subscribe"))
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../examples/scripts/custom_mqtt_uplink.star")
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string][]byte{"custom_mqtt_uplink.star": example, "faulty.star": []byte(faultyE2E), "rpc.star": []byte(rpcE2E)} {
		if err := os.WriteFile(filepath.Join(dir, "scripts", name), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, dir, platform.Addr(), `{"type": "memory"}`, map[string][]byte{"mqtt": scriptConnector(t, devices.Addr())})

	check, err := exec.Command(iotgwBinary(t), "check", "-c", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, check)
	}
	var log lineBuffer
	startBinaryLog(t, cfg, &log)

	dev := testpeer.Subscribe(t, devices.Addr(), "custom/rpc/+/request/+")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The device answers a read request with the register it was asked for.
		answered := 0
		for {
			msgs, err := dev.Wait(ctx, func(ms []testpeer.Msg) bool { return len(ms) > answered })
			if err != nil {
				return
			}
			for _, m := range msgs[answered:] {
				if len(m.Payload) == 2 {
					resp := strings.Replace(m.Topic, "/request/", "/response/", 1)
					_ = dev.Publish(ctx, resp, fmt.Appendf(nil, `{"register":%d,"value":42}`, int(m.Payload[0])<<8|int(m.Payload[1])), 1)
				}
			}
			answered = len(msgs)
		}
	}()
	// Wait for the connector's subscriptions (one SUBSCRIBE per mapping, in
	// file order): a message published before them would not be kept by the
	// broker.
	testpeer.Eventually(t, 30*time.Second, "the mqtt connector to subscribe", func() error {
		if !strings.Contains(devices.Log(), "raising/+") {
			return fmt.Errorf("the last mapping is not subscribed on the device broker yet")
		}
		return nil
	})

	devicePublish(t, dev, "faulty/F-1", `{"mode":"ok","n":1}`)
	devicePublish(t, dev, "faulty/F-2", `{"mode":"loop"}`)
	devicePublish(t, dev, "custom/sensors/SN-1", "0x1A2B3C4D05")
	// Another mapping: malformed input is logged rate-limited per mapping.
	devicePublish(t, dev, "raising/F-3", `{"mode":"raise"}`)
	devicePublish(t, dev, "faulty/F-1", `{"mode":"ok","n":2}`)

	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		seen := map[string]bool{}
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/telemetry") {
			var data map[string][]struct{ Values map[string]json.RawMessage }
			if json.Unmarshal(m.Payload, &data) != nil {
				continue
			}
			for devName, entries := range data {
				for _, e := range entries {
					for k, v := range e.Values {
						seen[devName+"."+k+"="+string(v)] = true
					}
				}
			}
		}
		return seen["SN-1.temperature=43"] && seen["SN-1.humidity=77"] && seen["SN-1.batteryLevel=5"] &&
			seen["F-1.n=1"] && seen["F-1.n=2"]
	})
	for _, m := range testpeer.OnTopic(plat.Messages(), "v1/gateway/telemetry") {
		if strings.Contains(string(m.Payload), "F-2") || strings.Contains(string(m.Payload), "F-3") {
			t.Fatalf("a failed script call produced telemetry: %s", m.Payload)
		}
	}
	testpeer.Eventually(t, 10*time.Second, "the script failures in the log", func() error {
		all := strings.Join(log.lines(), "\n")
		for _, want := range []string{"faulty.star:", "stopped after too many steps", "bad frame"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("no %q in the log:\n%s", want, all)
			}
		}
		return nil
	})

	pctx, pcancel := contextTimeout(10 * time.Second)
	defer pcancel()
	if err := plat.Publish(pctx, "v1/gateway/rpc", []byte(`{"device":"SN-1","data":{"id":9,"method":"read","params":{"register":258}}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if string(m.Payload) == `{"device":"SN-1","id":9,"data":{"register":258,"value":42}}` {
				return true
			}
		}
		return false
	})
}

// TestScriptCheckError: `iotgw check` names a script that does not
// compile with its file, line and column, under the key that names it.
func TestScriptCheckError(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "faulty.star"), []byte("def uplink(msg):\n    return {'device': msg.topic, 'telemetry': {'v': undefined_name}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "rpc.star"), []byte(rpcE2E), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "custom_mqtt_uplink.star"), []byte("def uplink(msg)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, "127.0.0.1:1883", `{"type": "memory"}`, map[string][]byte{"mqtt": scriptConnector(t, "127.0.0.1:1884")})
	out, err := exec.Command(iotgwBinary(t), "check", "-c", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("check accepted a broken script:\n%s", out)
	}
	for _, want := range []string{
		"mqtt.json: mapping[0].converter.script: " + filepath.Join(dir, "scripts", "custom_mqtt_uplink.star") + ":2:1: got newline, want ':'",
		"mqtt.json: mapping[1].converter.script: " + filepath.Join(dir, "scripts", "faulty.star") + ":2:53: undefined: undefined_name",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
