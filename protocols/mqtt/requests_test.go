package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

const requestsMapping = `"requestsMapping": {
	"connectRequests": [
		{"topicFilter": "sensor/connect", "deviceInfo": {"deviceNameExpressionSource": "message", "deviceNameExpression": "${SerialNumber}",
			"deviceProfileExpressionSource": "constant", "deviceProfileExpression": "Sensor"}},
		{"topicFilter": "sensor/+/connect", "deviceNameTopicExpression": "sensor/([^/]+)/connect"}
	],
	"disconnectRequests": [
		{"topicFilter": "sensor/disconnect", "deviceNameJsonExpression": "${SerialNumber}"}
	],
	"attributeRequests": [
		{"retain": false, "topicFilter": "v1/devices/me/attributes/request",
			"deviceInfo": {"deviceNameExpressionSource": "message", "deviceNameExpression": "${serialNumber}"},
			"attributeNameExpressionSource": "message", "attributeNameExpression": "${versionAttribute}, ${pduAttribute}",
			"topicExpression": "devices/${deviceName}/attrs", "valueExpression": "{\"${attributeKey}\": ${attributeValue}}"},
		{"topicFilter": "client/+/request", "deviceNameTopicExpression": "client/([^/]+)/request",
			"attributeNameJsonExpression": "${key}", "retrieveType": "client",
			"topicExpression": "client/${deviceName}/${attributeKey}", "valueExpression": "${attributeValue}"}
	],
	"attributeUpdates": [
		{"retain": true, "qos": 1, "deviceNameFilter": "SN.*", "attributeFilter": "firmwareVersion",
			"topicExpression": "sensor/${deviceName}/${attributeKey}", "valueExpression": "{\"${attributeKey}\":\"${attributeValue}\"}"}
	],
	"serverSideRpc": [
		{"type": "twoWay", "deviceNameFilter": ".*", "methodFilter": "echo",
			"requestTopicExpression": "sensor/${deviceName}/request/${methodName}/${requestId}",
			"responseTopicExpression": "sensor/${deviceName}/response/${methodName}/${requestId}",
			"responseTimeout": 10000, "valueExpression": "${params}"},
		{"deviceNameFilter": ".*", "methodFilter": "slow",
			"requestTopicExpression": "sensor/${deviceName}/request/${methodName}/${requestId}",
			"responseTopicExpression": "sensor/${deviceName}/response/${methodName}/${requestId}",
			"responseTimeout": 300, "valueExpression": "{\"x\": ${params.x}}"},
		{"type": "oneWay", "deviceNameFilter": "SN.*", "methodFilter": "set.*",
			"requestTopicExpression": "sensor/${deviceName}/${methodName}", "valueExpression": "${params.value}"}
	]
}`

func startRequests(t *testing.T, version int) (*Connector, *sinktest.Recorder, *testpeer.Mosquitto) {
	t.Helper()
	m := testpeer.StartMosquitto(t)
	c := newTestConnector(t, m.Addr(), `{`+brokerJSON(version, "")+`, "mapping": [`+dataMapping+`], `+requestsMapping+`}`)
	s := sinktest.New()
	s.SetAttributes(map[string]json.RawMessage{"fw": json.RawMessage(`"1.2.3"`), "pdu": json.RawMessage(`7.1`), "mode": json.RawMessage(`"eco"`)})
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
	return c, s, m
}

func TestConnectDisconnectRequests(t *testing.T) {
	_, s, m := startRequests(t, 5)
	pub := testpeer.Subscribe(t, m.Addr())
	publish(t, pub, "sensor/connect", `{"SerialNumber":"SN-1"}`)
	publish(t, pub, "sensor/SN-2/connect", ``)
	publish(t, pub, "sensor/disconnect", `{"SerialNumber":"SN-1"}`)
	publish(t, pub, "sensor/connect", `{"other":1}`)
	s.Wait(t, 10*time.Second, "connects, disconnect and a malformed request", func() bool {
		return len(s.Connects()) == 2 && len(s.Disconnects()) == 1 && len(s.MalformedReports()) == 1
	})
	connects, disconnects := s.Connects(), s.Disconnects()
	if connects[0] != "SN-1/Sensor" || connects[1] != "SN-2/default" || disconnects[0] != "SN-1" {
		t.Fatalf("connects %q disconnects %q", connects, disconnects)
	}
	if m := s.MalformedReports()[0].String(); !strings.HasPrefix(m, "sensor/connect: ") || !strings.Contains(m, "${SerialNumber}") {
		t.Fatalf("malformed = %q", m)
	}
}

func TestAttributeRequestAnswered(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			_, s, m := startRequests(t, v.version)
			dev := testpeer.Subscribe(t, m.Addr(), "devices/SN-002/attrs", "client/#")
			publish(t, dev, "v1/devices/me/attributes/request", `{"serialNumber":"SN-002","versionAttribute":"fw","pduAttribute":"pdu"}`)
			got := dev.WaitTopic(t, 10*time.Second, "devices/SN-002/attrs", 2)
			if string(got[0].Payload) != `{"fw": 1.2.3}` && string(got[0].Payload) != `{"pdu": 7.1}` {
				t.Fatalf("answers %q %q", got[0].Payload, got[1].Payload)
			}
			payloads := string(got[0].Payload) + " " + string(got[1].Payload)
			if payloads != `{"fw": 1.2.3} {"pdu": 7.1}` {
				t.Fatalf("answers = %s", payloads)
			}
			publish(t, dev, "client/D1/request", `{"key":"mode"}`)
			if got := dev.WaitTopic(t, 10*time.Second, "client/D1/mode", 1); string(got[0].Payload) != "eco" {
				t.Fatalf("client answer = %q", got[0].Payload)
			}
			if r := s.AttrRequests(); len(r) != 2 || r[0] != "SN-002 client=false [fw pdu]" || r[1] != "D1 client=true [mode]" {
				t.Fatalf("requests = %q", r)
			}
		})
	}
}

func TestAttributeUpdatePublished(t *testing.T) {
	c, _, m := startRequests(t, 4)
	dev := testpeer.Subscribe(t, m.Addr(), "sensor/SN-002/#")
	if c.Commander("other", "x") == nil {
		t.Fatal("rpc rules with deviceNameFilter .* take every device")
	}
	cm := c.Commander("SN-002", "Sensor")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ignored, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"firmwareVersion": json.RawMessage(`"6.6"`), "color": json.RawMessage(`1`)})
	if err != nil || len(ignored) != 1 || ignored[0] != "color" {
		t.Fatalf("ignored %v, err %v", ignored, err)
	}
	got := dev.WaitTopic(t, 10*time.Second, "sensor/SN-002/firmwareVersion", 1)
	if string(got[0].Payload) != `{"firmwareVersion":"6.6"}` {
		t.Fatalf("published %q", got[0].Payload)
	}
	// Retained: a later subscriber gets it with the retain flag.
	late := testpeer.Subscribe(t, m.Addr(), "sensor/SN-002/firmwareVersion")
	if got := late.WaitTopic(t, 10*time.Second, "sensor/SN-002/firmwareVersion", 1); !got[0].Retain {
		t.Fatalf("not retained: %+v", got[0])
	}
}

func TestRPC(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			c, _, m := startRequests(t, v.version)
			dev := testpeer.Subscribe(t, m.Addr(), "sensor/+/request/#", "sensor/SN-7/setLevel")
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
					for _, msg := range msgs[answered:] {
						if strings.Contains(msg.Topic, "/request/echo/") {
							resp := strings.Replace(msg.Topic, "/request/", "/response/", 1)
							_ = dev.Publish(ctx, resp, append([]byte(`{"echo":`), append(msg.Payload, '}')...), 1)
						}
					}
					answered = len(msgs)
				}
			}()
			cm := c.Commander("SN-7", "Sensor")
			rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer rcancel()

			res, err := cm.RPC(rctx, protocols.RPCRequest{ID: 42, Device: "SN-7", Method: "echo", Params: json.RawMessage(`{"a":1}`)})
			if err != nil || string(res) != `{"echo":{"a":1}}` {
				t.Fatalf("echo = %s, %v", res, err)
			}
			if got := testpeer.OnTopic(dev.Messages(), "sensor/SN-7/request/echo/42"); len(got) != 1 {
				t.Fatalf("request not published on its topic: %v", dev.Messages())
			}

			start := time.Now()
			_, err = cm.RPC(rctx, protocols.RPCRequest{ID: 43, Device: "SN-7", Method: "slow", Params: json.RawMessage(`{"x":5}`)})
			if !errors.Is(err, protocols.ErrTimeout) || !strings.Contains(err.Error(), `"sensor/SN-7/response/slow/43"`) {
				t.Fatalf("slow = %v", err)
			}
			if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
				t.Fatalf("timed out after %s, want the rule's 300ms", d)
			}
			if got := dev.WaitTopic(t, 5*time.Second, "sensor/SN-7/request/slow/43", 1); string(got[0].Payload) != `{"x": 5}` {
				t.Fatalf("slow request = %q", got[0].Payload)
			}

			res, err = cm.RPC(rctx, protocols.RPCRequest{ID: 44, Device: "SN-7", Method: "setLevel", Params: json.RawMessage(`{"value":17}`)})
			if err != nil || string(res) != `{"success":true}` {
				t.Fatalf("one-way = %s, %v", res, err)
			}
			if got := dev.WaitTopic(t, 5*time.Second, "sensor/SN-7/setLevel", 1); string(got[0].Payload) != "17" {
				t.Fatalf("one-way payload = %q", got[0].Payload)
			}

			_, err = cm.RPC(rctx, protocols.RPCRequest{ID: 45, Device: "SN-7", Method: "reboot"})
			if !errors.Is(err, protocols.ErrUnknownMethod) {
				t.Fatalf("unknown method = %v", err)
			}
			// A missing ${params.x} names the expression.
			_, err = cm.RPC(rctx, protocols.RPCRequest{ID: 46, Device: "SN-7", Method: "slow", Params: json.RawMessage(`{}`)})
			if err == nil || !strings.Contains(err.Error(), "${params.x}") {
				t.Fatalf("missing param = %v", err)
			}
			if c.Commander("X-1", "") == nil {
				t.Fatal("no commander for X-1")
			}
			c.waitMu.Lock()
			n := len(c.waiters)
			c.waitMu.Unlock()
			if n != 0 {
				t.Fatalf("%d rpc waiters left", n)
			}
		})
	}
}

func TestRPCNotConnected(t *testing.T) {
	c := newTestConnector(t, "127.0.0.1:1", `{`+brokerJSON(5, "")+`, "mapping": [`+dataMapping+`], `+requestsMapping+`}`)
	_, err := c.Commander("SN-1", "").RPC(context.Background(), protocols.RPCRequest{ID: 1, Method: "setLevel", Params: json.RawMessage(`{"value":1}`)})
	if !errors.Is(err, ErrNotConnected) || !errors.Is(err, protocols.ErrIO) {
		t.Fatalf("err = %v", err)
	}
}

func TestUnmatched(t *testing.T) {
	c := newTestConnector(t, "127.0.0.1:1", `{`+brokerJSON(5, "")+`, "mapping": [`+dataMapping+`], `+requestsMapping+`}`)
	s := sinktest.New()
	m := &message{topic: "elsewhere", payload: []byte(`{}`), pending: 1}
	if !c.handle(context.Background(), s, m, nil) || s.UnmatchedCount() != 1 {
		t.Fatalf("unmatched = %d", s.UnmatchedCount())
	}
}

func TestParseRequests(t *testing.T) {
	brokerJSON := func(v int, extra string) string {
		return strings.NewReplacer("HOST", "h", "PORT", "1883").Replace(brokerJSON(v, extra))
	}
	cfg, warns, err := ParseFile("mqtt.json", []byte(`{`+brokerJSON(5, "")+`, "mapping": [], `+requestsMapping+`}`))
	if err != nil || len(warns) != 0 {
		t.Fatalf("err %v warnings %v", err, warns)
	}
	r := cfg.Requests
	if len(r.Connect) != 2 || r.Connect[1].DeviceInfo.NameSource != SourceTopic || r.Connect[1].DeviceInfo.Profile != "default" {
		t.Fatalf("connect = %+v", r.Connect[1])
	}
	if a := r.AttributeRequests[1]; a.Scope != ScopeClient || a.NameSource != SourceMessage || a.NameExpr != "${key}" {
		t.Fatalf("attribute request = %+v", a)
	}
	if x := r.RPC[1]; x.Type != RPCTwoWay || x.ResponseTimeout != 300*time.Millisecond || x.ResponseTopicQoS != 1 {
		t.Fatalf("rpc[1] = %+v", x)
	}
	if x := r.RPC[2]; x.Type != RPCOneWay {
		t.Fatalf("rpc[2] = %+v", x)
	}

	flat, _, err := ParseFile("mqtt.json", []byte(`{`+brokerJSON(5, "")+`, "mapping": [], "requestsMapping": {"connectRequests": [
		{"topicFilter": "c/+", "deviceNameExpressionSource": "topic", "deviceNameExpression": "c/(.*)", "deviceProfileExpression": "P"}]}}`))
	if err != nil || flat.Requests.Connect[0].DeviceInfo != (DeviceInfo{NameSource: SourceTopic, Name: "c/(.*)", ProfileSource: SourceConstant, Profile: "P"}) {
		t.Fatalf("flat deviceInfo: %v %+v", err, flat.Requests.Connect)
	}

	// Old format: the sections at the top level.
	old, _, err := ParseFile("mqtt.json", []byte(`{`+brokerJSON(5, "")+`, "mapping": [],
		"attributeUpdates": [{"deviceNameFilter": ".*", "attributeFilter": ".*", "topicExpression": "a/${deviceName}", "valueExpression": "${attributeValue}"}]}`))
	if err != nil || len(old.Requests.AttributeUpdates) != 1 {
		t.Fatalf("old format: %v %+v", err, old.Requests)
	}

	_, _, err = ParseFile("mqtt.json", []byte(`{`+brokerJSON(5, "")+`, "mapping": [], "requestsMapping": {
		"connectRequests": [{"topicFilter": "a/#/b"}],
		"attributeRequests": [{"topicFilter": "r", "deviceNameTopicExpression": "(", "scope": "both", "topicExpression": "x/+", "valueExpression": "${"}],
		"attributeUpdates": [{"deviceNameFilter": "[", "topicExpression": "t", "valueExpression": "v", "qos": 3}],
		"serverSideRpc": [{"type": "twoWay", "methodFilter": "m", "requestTopicExpression": "q", "valueExpression": "v", "responseTimeout": 0}]}}`))
	want := []string{
		`mqtt.json: requestsMapping.connectRequests[0].topicFilter: "a/#/b" has '#' before the last level`,
		`mqtt.json: requestsMapping.connectRequests[0].deviceInfo: is required`,
		`mqtt.json: requestsMapping.attributeRequests[0].deviceNameTopicExpression: "(" is not a valid regular expression`,
		`mqtt.json: requestsMapping.attributeRequests[0].scope: unknown value "both"`,
		`mqtt.json: requestsMapping.attributeRequests[0].attributeNameExpression: is required`,
		`mqtt.json: requestsMapping.attributeRequests[0].topicExpression: "x/+": a topic to publish to must not contain wildcards`,
		`mqtt.json: requestsMapping.attributeRequests[0].valueExpression: expression "${": unclosed ${`,
		`mqtt.json: requestsMapping.attributeUpdates[0].deviceNameFilter: "[" is not a valid regular expression`,
		`mqtt.json: requestsMapping.attributeUpdates[0].qos: 3 is out of range (want 0..2)`,
		`mqtt.json: requestsMapping.serverSideRpc[0].responseTopicExpression: is required for a twoWay rpc`,
		`mqtt.json: requestsMapping.serverSideRpc[0].responseTimeout: 0 must be a positive number of milliseconds`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestTopicMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+/b", "a/b", true},
		{"+/+", "a", false},
		{"a/+/c", "a//c", true},
		{"$share/g/a/+", "a/b", true},
		{"#", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
	} {
		if got := topicMatches(c.filter, c.topic); got != c.want {
			t.Errorf("topicMatches(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
}
