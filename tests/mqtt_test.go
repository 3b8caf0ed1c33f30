package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// mqttConnectorConfig is an upstream mqtt connector file for the device
// broker at addr: JSON telemetry per device topic, attribute updates and a
// two-way RPC. The session outlives a connection so a broker restart keeps
// what the gateway has not acknowledged.
func mqttConnectorConfig(t testing.TB, addr string) []byte {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf(`{
  "name": "Device broker",
  "broker": {"host": %q, "port": %s, "version": 5, "keepAlive": 10, "clientId": "gw-e2e",
    "cleanStart": false, "sessionExpiryInterval": 3600, "security": {"type": "anonymous"}},
  "mapping": [{
    "topicFilter": "sensor/+/data", "subscriptionQos": 1,
    "converter": {
      "type": "json",
      "deviceInfo": {"deviceNameExpressionSource": "topic", "deviceNameExpression": "sensor/([^/]+)/data",
        "deviceProfileExpressionSource": "constant", "deviceProfileExpression": "thermometer"},
      "timeseries": [{"type": "int", "key": "n", "value": "${n}"}, {"type": "double", "key": "temp", "value": "${temp}"}]
    }
  }],
  "requestsMapping": {
    "attributeUpdates": [{"deviceNameFilter": ".*", "attributeFilter": "firmwareVersion", "retain": false,
      "topicExpression": "sensor/${deviceName}/${attributeKey}", "valueExpression": "{\"${attributeKey}\":\"${attributeValue}\"}"}],
    "serverSideRpc": [{"type": "twoWay", "deviceNameFilter": ".*", "methodFilter": "echo",
      "requestTopicExpression": "sensor/${deviceName}/request/${methodName}/${requestId}",
      "responseTopicExpression": "sensor/${deviceName}/response/${methodName}/${requestId}",
      "responseTimeout": 4000, "valueExpression": "${params}"},
      {"type": "twoWay", "deviceNameFilter": ".*", "methodFilter": "silent",
      "requestTopicExpression": "sensor/${deviceName}/request/${methodName}/${requestId}",
      "responseTopicExpression": "sensor/${deviceName}/response/${methodName}/${requestId}",
      "responseTimeout": 300, "valueExpression": "${params}"}]
  }
}`, host, port))
}

// startMQTTGateway runs a gateway whose platform is one mosquitto and whose
// mqtt connector reads another.
func startMQTTGateway(t *testing.T) (platform, devices *testpeer.Mosquitto, plat *testpeer.Subscriber) {
	t.Helper()
	platform = testpeer.StartMosquitto(t)
	devices = testpeer.StartMosquitto(t)
	plat = testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`,
		map[string][]byte{"mqtt": mqttConnectorConfig(t, devices.Addr())})
	startGateway(t, path, nil)
	return platform, devices, plat
}

func devicePublish(t testing.TB, d *testpeer.Subscriber, topic, payload string) {
	t.Helper()
	ctx, cancel := contextTimeout(10 * time.Second)
	defer cancel()
	if err := d.Publish(ctx, topic, []byte(payload), 1); err != nil {
		t.Fatalf("device publish %s: %v", topic, err)
	}
}

// TestMQTTConnectorEndToEnd: device telemetry reaches the platform under
// the topic's device name; a shared attribute update and a two-way RPC from
// the platform reach the device broker and the RPC answer comes back.
func TestMQTTConnectorEndToEnd(t *testing.T) {
	_, devices, plat := startMQTTGateway(t)
	dev := testpeer.Subscribe(t, devices.Addr(), "sensor/+/request/#", "sensor/+/firmwareVersion")
	// The device: answers every echo request on its response topic.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		answered := 0
		for {
			msgs, err := dev.Wait(ctx, func(ms []testpeer.Msg) bool { return len(ms) > answered })
			if err != nil {
				return
			}
			for _, m := range msgs[answered:] {
				if strings.Contains(m.Topic, "/request/echo/") {
					resp := strings.Replace(m.Topic, "/request/", "/response/", 1)
					_ = dev.Publish(ctx, resp, append(append([]byte(`{"echo":`), m.Payload...), '}'), 1)
				}
			}
			answered = len(msgs)
		}
	}()

	devicePublish(t, dev, "sensor/SN-1/data", `{"n":1,"temp":21.5,"ts":1700000000000}`)
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		v := got[point{"SN-1", 1700000000000}]
		return err == nil && string(v["n"]) == "1" && string(v["temp"]) == "21.5"
	})
	connected := false
	for _, m := range testpeer.OnTopic(plat.Messages(), "v1/gateway/connect") {
		var c struct{ Device, Type string }
		if json.Unmarshal(m.Payload, &c) == nil && c.Device == "SN-1" && c.Type == "thermometer" {
			connected = true
		}
	}
	if !connected {
		t.Errorf("no connect for SN-1 with profile thermometer: %v", testpeer.OnTopic(plat.Messages(), "v1/gateway/connect"))
	}

	pctx, pcancel := contextTimeout(10 * time.Second)
	defer pcancel()
	if err := plat.Publish(pctx, "v1/gateway/attributes", []byte(`{"device":"SN-1","data":{"firmwareVersion":"6.6","ignored":1}}`), 1); err != nil {
		t.Fatal(err)
	}
	if got := dev.WaitTopic(t, 10*time.Second, "sensor/SN-1/firmwareVersion", 1); string(got[0].Payload) != `{"firmwareVersion":"6.6"}` {
		t.Fatalf("attribute update published as %q", got[0].Payload)
	}

	if err := plat.Publish(pctx, "v1/gateway/rpc", []byte(`{"device":"SN-1","data":{"id":7,"method":"echo","params":{"a":1}}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 10*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if string(m.Payload) == `{"device":"SN-1","id":7,"data":{"echo":{"a":1}}}` {
				return true
			}
		}
		return false
	})

	// No answer within the rule's responseTimeout: the platform gets
	// upstream's timeout reply, not silence.
	if err := plat.Publish(pctx, "v1/gateway/rpc", []byte(`{"device":"SN-1","data":{"id":8,"method":"silent","params":{}}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 10*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			var r struct {
				ID   int64
				Data struct{ Error string }
			}
			if json.Unmarshal(m.Payload, &r) == nil && r.ID == 8 && r.Data.Error == "Timeout rpc has been reached for SN-1" {
				return true
			}
		}
		return false
	})
}

// TestMQTTDeviceBrokerRestart: messages the device broker accepted are all
// delivered to the platform even when that broker restarts while the
// gateway is still working through them.
func TestMQTTDeviceBrokerRestart(t *testing.T) {
	_, devices, plat := startMQTTGateway(t)
	dev := testpeer.Subscribe(t, devices.Addr())
	const n = 400
	const ts0 = 1700000000000
	for i := range n {
		devicePublish(t, dev, fmt.Sprintf("sensor/D%d/data", i%4), fmt.Sprintf(`{"n":%d,"temp":1,"ts":%d}`, i, ts0+i))
		if i == n/2 {
			devices.Restart()
			dev.WaitReady(t, 20*time.Second)
		}
	}
	devices.Restart()
	want := map[point]bool{}
	for i := range n {
		want[point{fmt.Sprintf("D%d", i%4), ts0 + int64(i)}] = true
	}
	plat.WaitFor(t, 60*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		return err == nil && len(missing(want, got)) == 0
	})
}
