package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// upstreamMQTT is upstream's default mqtt.json, its broker pointed at addr.
func upstreamMQTT(t *testing.T, version int) string {
	t.Helper()
	path := filepath.Join("..", "..", "..", "shared", "upstream-configs", "thingsboard_gateway", "config", "mqtt.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("upstream config corpus not available: %v", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	broker := cfg["broker"].(map[string]any)
	broker["host"], broker["port"], broker["version"] = "HOST", 0, version
	out, _ := json.Marshal(cfg)
	// PORT must be a bare number in the file newTestConnector fills in.
	return strings.Replace(string(out), `"port":0`, `"port":PORT`, 1)
}

// TestUpstreamLookaroundOverBroker runs upstream's default mqtt.json
// unchanged (but for the broker address) against mosquitto: its Python
// lookaround expressions name the devices, over MQTT 3.1.1 and 5.
func TestUpstreamLookaroundOverBroker(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			file := upstreamMQTT(t, v.version)
			m := testpeer.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), file)
			s := sinktest.New()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			pub := testpeer.Subscribe(t, m.Addr())
			publish(t, pub, "sensor/SN-001/data", `{"sensorModel":"T1","temp":21.5,"hum":"40"}`)
			publish(t, pub, "sensor/SN-002/connect", ``)
			s.Wait(t, 10*time.Second, "a push and a connect", func() bool { return s.Pushed() == 1 && len(s.Connects()) == 1 })
			p := s.Pushes()[0]
			if p.Device != "SN-001" || p.Profile != "Thermometer" {
				t.Fatalf("push = %+v", p)
			}
			if got := fmtDPs(p.Reading.Telemetry) + " " + fmtDPs(p.Reading.Attributes); got != "temperature=21.5,humidity=40 model=T1" {
				t.Fatalf("reading = %s", got)
			}
			if got := s.Connects(); got[0] != "SN-002/default" {
				t.Fatalf("connects = %q", got)
			}
			if r := s.MalformedReports(); len(r) != 0 {
				t.Fatalf("malformed = %v", r)
			}
		})
	}
}

// TestCommandFilterAnchors: attributeUpdates filters are re.match (at the
// start of the name), serverSideRpc filters re.search (anywhere), as
// upstream applies them.
func TestCommandFilterAnchors(t *testing.T) {
	c := newTestConnector(t, "127.0.0.1:1", `{`+brokerJSON(5, "")+`, "mapping": [], "requestsMapping": {
		"attributeUpdates": [{"deviceNameFilter": "SN-", "attributeFilter": "fw",
			"topicExpression": "a/${deviceName}", "valueExpression": "${attributeValue}"}],
		"serverSideRpc": [{"type": "oneWay", "deviceNameFilter": "(?<=-)7", "methodFilter": "set",
			"requestTopicExpression": "r/${deviceName}", "valueExpression": "${params}"}]}}`)
	rules := func(device string) (updates, rpcs int) {
		cm, _ := c.Commander(device, "").(*commander)
		if cm == nil {
			return 0, 0
		}
		return len(cm.updates), len(cm.rpcs)
	}
	for device, want := range map[string][2]int{"SN-1": {1, 0}, "xSN-1": {0, 0}, "SN-7": {1, 1}, "A-7": {0, 1}, "A7": {0, 0}} {
		if u, r := rules(device); u != want[0] || r != want[1] {
			t.Errorf("%s: %d updates, %d rpcs; want %v", device, u, r, want)
		}
	}
	cm := c.Commander("SN-7", "")
	ctx := context.Background()
	ignored, _ := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"fwVersion": json.RawMessage(`1`), "xfw": json.RawMessage(`1`)})
	if len(ignored) != 1 || ignored[0] != "xfw" {
		t.Errorf("ignored = %q", ignored)
	}
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 1, Method: "reset"}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("reset (methodFilter set, searched): %v", err)
	}
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 2, Method: "get"}); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Errorf("get: %v", err)
	}
}
