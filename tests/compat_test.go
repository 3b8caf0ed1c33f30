package tests

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestNewDeviceDetailsAndNestedJSON: a device the gateway connects gets
// upstream's {"connectorType","connectorName"} attributes right after its
// connect message, once; nested objects and lists in a device message
// reach the platform as JSON, not as strings.
func TestNewDeviceDetailsAndNestedJSON(t *testing.T) {
	platform := testpeer.StartMosquitto(t)
	devices := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	// A second mapping sends whole messages ("*"), nested values included.
	conf := strings.Replace(string(mqttConnectorConfig(t, devices.Addr())), `"mapping": [{`, `"mapping": [{
    "topicFilter": "sensor/+/doc", "subscriptionQos": 1,
    "converter": {"type": "json", "deviceInfo": {"deviceNameExpressionSource": "topic", "deviceNameExpression": "sensor/([^/]+)/doc"},
      "timeseries": "*"}}, {`, 1)
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, map[string][]byte{"mqtt": []byte(conf)})
	startGateway(t, path, nil)
	dev := testpeer.Subscribe(t, devices.Addr())

	devicePublish(t, dev, "sensor/SN-7/data", `{"n":1,"temp":2.5,"ts":1700000000000}`)
	devicePublish(t, dev, "sensor/SN-7/doc", `{"ts":1700000000001,"pos":{"lon":-2, "lat":1.5},"tags":["a",{"b":null}]}`)

	details := func(m testpeer.Msg) bool {
		var a map[string]map[string]any
		if m.Topic != "v1/gateway/attributes" || json.Unmarshal(m.Payload, &a) != nil {
			return false
		}
		d := a["SN-7"]
		return d != nil && d["connectorType"] == "mqtt" && d["connectorName"] == "mqtt"
	}
	msgs := plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		doc := got[point{"SN-7", 1700000000001}]
		if err != nil || string(doc["pos"]) != `{"lat":1.5,"lon":-2}` || string(doc["tags"]) != `["a",{"b":null}]` {
			return false
		}
		for _, m := range msgs {
			if details(m) {
				return true
			}
		}
		return false
	})
	connectAt, detailsAt, n := -1, -1, 0
	for i, m := range msgs {
		if m.Topic == "v1/gateway/connect" && bytes.Contains(m.Payload, []byte(`"SN-7"`)) && connectAt < 0 {
			connectAt = i
		}
		if details(m) {
			n++
			if detailsAt < 0 {
				detailsAt = i
			}
		}
	}
	if connectAt < 0 || detailsAt < connectAt {
		t.Errorf("connector details at message %d, connect at %d: the platform must know the device first", detailsAt, connectAt)
	}
	if n != 1 {
		t.Errorf("connector details sent %d times, want once", n)
	}
}
