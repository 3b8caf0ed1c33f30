package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// scriptConnector writes the connector file and its scripts into a
// directory and builds the connector from there, as the gateway does.
func scriptConnector(t testing.TB, addr, file string, scripts map[string]string) (*Connector, error) {
	t.Helper()
	dir := t.TempDir()
	for name, src := range scripts {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := strings.Cut(addr, ":")
	file = strings.ReplaceAll(strings.ReplaceAll(file, "HOST", host), "PORT", port)
	var ps spec.Problems
	root := spec.Parse(&ps, "mqtt.json", []byte(file))
	if root == nil {
		t.Fatal(ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "mqtt-test", Type: "mqtt", Config: root, File: filepath.Join(dir, "mqtt.json"), Logger: zerolog.Nop()})
	if err != nil {
		return nil, err
	}
	c.minBackoff, c.maxBackoff = 20*time.Millisecond, 200*time.Millisecond
	return c, nil
}

const faultyScript = `
def uplink(msg):
    d = msg.json()
    if d.get("mode") == "loop":
        while True:
            pass
    if d.get("mode") == "raise":
        fail("device sent mode raise")
    return {"device": msg.topic.split("/")[1], "profile": msg.config["profile"], "telemetry": {"v": d["v"]}}
`

// A script that loops forever or raises on one device's messages is
// stopped and counted with its file and line; the other devices on the
// same mapping and on another mapping keep arriving, in order.
func TestScriptConverterFaults(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	c, err := scriptConnector(t, m.Addr(), `{`+brokerJSON(5, "")+`, "mapping": [
		{"topicFilter": "script/+/data", "converter": {"type": "custom", "script": "scripts/faulty.star", "extensionConfig": {"profile": "scripted"}}},
		`+dataMapping+`]}`, map[string]string{"scripts/faulty.star": faultyScript})
	if err != nil {
		t.Fatal(err)
	}
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
	pub := testpeer.Subscribe(t, m.Addr())
	publish(t, pub, "script/good/data", `{"v":1}`)
	publish(t, pub, "script/bad/data", `{"mode":"loop"}`)
	publish(t, pub, "sensor/json/data", `{"type":"x","v":2,"t":1,"model":"m"}`)
	publish(t, pub, "script/bad/data", `{"mode":"raise"}`)
	publish(t, pub, "script/good/data", `{"v":3}`)
	s.Wait(t, 20*time.Second, "three pushes and two malformed", func() bool {
		return s.Pushed() == 3 && len(s.MalformedReports()) == 2
	})
	var got []string
	for _, p := range s.Pushes() {
		got = append(got, p.Device+"/"+p.Profile+":"+fmtDPs(p.Reading.Telemetry))
	}
	if strings.Join(got, " ") != "good/scripted:v=1 json/x:v=2,t=1 good/scripted:v=3" {
		t.Fatalf("pushes = %v", got)
	}
	mal := s.MalformedReports()
	for i, want := range []string{
		// The line of a stopped loop is where the interpreter was: any line
		// of the loop, or the jump back to its head.
		": in uplink: stopped after too many steps (endless loop?)",
		"faulty.star:8:13: in uplink: fail: device sent mode raise",
	} {
		if r := mal[i].String(); !strings.HasPrefix(r, "script/+/data: ") || !strings.Contains(r, "/scripts/faulty.star:") || !strings.HasSuffix(r, want) {
			t.Errorf("malformed[%d] = %s, want it to end with %s", i, r, want)
		}
	}
	if st := c.mappings[0].conv.(*jsonconv.ScriptConverter).Script().Stats(); st != (script.Stats{Calls: 4, Failures: 2, StepLimit: 1}) {
		t.Fatalf("stats = %+v", st)
	}
}

// Script problems are config errors at the key that names the script, with
// the script's file:line:column, as `iotgw check` prints them.
func TestScriptConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, converter string
		scripts         map[string]string
		want            string
	}{
		{"syntax", `{"type": "custom", "script": "s.star"}`, map[string]string{"s.star": "def uplink(msg):\n  return {'device': msg.topic,}}\n"},
			`mqtt.json: mapping[0].converter.script: DIR/s.star:2:32: unexpected '}'`},
		{"extension names a script", `{"type": "custom", "extension": "conv.star"}`, map[string]string{"conv.star": "def uplink(msg):\n  return undefined_name\n"},
			`mqtt.json: mapping[0].converter.script: DIR/conv.star:2:10: undefined: undefined_name`},
		{"missing file", `{"type": "script", "script": "nope.star"}`, nil,
			`mqtt.json: mapping[0].converter.script: DIR/nope.star: cannot read: no such file or directory`},
		{"downlink only", `{"type": "script", "script": "d.star"}`, map[string]string{"d.star": "def downlink(cmd):\n  pass\n"},
			`mqtt.json: mapping[0].converter.script: DIR/d.star: defines no uplink(msg), which a mapping's converter needs`},
		{"script type without script", `{"type": "script"}`, nil,
			`mqtt.json: mapping[0].converter.script: is required for a script converter (a Starlark file)`},
		{"script on a json converter", `{"type": "json", "script": "s.star", "deviceInfo": {"deviceNameExpression": "x", "deviceNameExpressionSource": "constant"}}`, nil,
			`mqtt.json: mapping[0].converter.script: "s.star" is only read by a custom or script converter, not json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scriptConnector(t, "127.0.0.1:1883", `{`+brokerJSON(5, "")+`, "mapping": [{"topicFilter": "a/+", "converter": `+tc.converter+`}]}`, tc.scripts)
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.Join(strings.Split(err.Error(), "\n"), " | ")
			if i := strings.Index(got, "/"); i > 0 && strings.Contains(tc.want, "DIR") {
				// The temporary directory differs per run.
				dir := got[i:strings.LastIndex(got, "/")]
				got = strings.Replace(got, dir, "DIR", 1)
			}
			if got != tc.want {
				t.Fatalf("err = %s\nwant  %s", got, tc.want)
			}
		})
	}
}

const downlinkScript = `
def downlink(cmd):
    if cmd.kind == "attributes":
        return [{"topic": cmd.device + "/attr/" + k, "payload": json.encode({"value": v}), "retain": True} for k, v in cmd.values.items()]
    if cmd.method == "get":
        return {"topic": cmd.device + "/cmd/get/%d" % cmd.id, "payload": binary.pack_int(cmd.params["register"], 2)}
    if cmd.method == "bad":
        return {"topic": cmd.device + "/#"}
    return {"topic": cmd.device + "/cmd/" + cmd.method, "payload": cmd.params, "qos": 0, "reply": {"queued": cmd.params}}
`

// serverSideRpc and attributeUpdates entries with a script: the script
// says what to publish; a two-way RPC still waits for the device's answer.
func TestScriptDownlink(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	c, err := scriptConnector(t, m.Addr(), `{`+brokerJSON(5, "")+`, "mapping": [], "requestsMapping": {
		"attributeUpdates": [{"deviceNameFilter": "SN.*", "attributeFilter": "fw.*", "script": "dl.star"}],
		"serverSideRpc": [
			{"methodFilter": "^get$", "type": "twoWay", "responseTopicExpression": "${deviceName}/resp/${requestId}", "responseTimeout": 5000, "script": "dl.star"},
			{"methodFilter": ".*", "script": "dl.star"}]}}`, map[string]string{"dl.star": downlinkScript})
	if err != nil {
		t.Fatal(err)
	}
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
	dev := testpeer.Subscribe(t, m.Addr(), "SN-1/#")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The device answers get requests with the register's value.
		answered := 0
		for {
			msgs, err := dev.Wait(ctx, func(ms []testpeer.Msg) bool { return len(ms) > answered })
			if err != nil {
				return
			}
			for _, msg := range msgs[answered:] {
				if id, ok := strings.CutPrefix(msg.Topic, "SN-1/cmd/get/"); ok {
					_ = dev.Publish(ctx, "SN-1/resp/"+id, []byte(fmt.Sprintf(`{"register":%d,"value":7}`, int(msg.Payload[0])<<8|int(msg.Payload[1]))), 1)
				}
			}
			answered = len(msgs)
		}
	}()
	cm := c.Commander("SN-1", "")
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	res, err := cm.RPC(rctx, protocols.RPCRequest{ID: 3, Device: "SN-1", Method: "get", Params: json.RawMessage(`{"register":258}`)})
	if err != nil || string(res) != `{"register":258,"value":7}` {
		t.Fatalf("two-way = %s, %v", res, err)
	}
	res, err = cm.RPC(rctx, protocols.RPCRequest{ID: 4, Device: "SN-1", Method: "setLevel", Params: json.RawMessage(`{"level":5}`)})
	if err != nil || string(res) != `{"queued":{"level":5}}` {
		t.Fatalf("one-way = %s, %v", res, err)
	}
	if got := dev.WaitTopic(t, 10*time.Second, "SN-1/cmd/setLevel", 1); string(got[0].Payload) != `{"level":5}` {
		t.Fatalf("one-way payload %q", got[0].Payload)
	}
	_, err = cm.RPC(rctx, protocols.RPCRequest{ID: 5, Device: "SN-1", Method: "bad"})
	if err == nil || !strings.Contains(err.Error(), `dl.star: downlink returned topic "SN-1/#", not a topic to publish to`) {
		t.Fatalf("bad topic: %v", err)
	}
	ignored, err := cm.UpdateAttributes(rctx, map[string]json.RawMessage{"fwVersion": json.RawMessage(`"2.0"`), "color": json.RawMessage(`1`)})
	if err != nil || len(ignored) != 1 || ignored[0] != "color" {
		t.Fatalf("ignored %v, err %v", ignored, err)
	}
	if got := dev.WaitTopic(t, 10*time.Second, "SN-1/attr/fwVersion", 1); string(got[0].Payload) != `{"value":"2.0"}` {
		t.Fatalf("attribute %q", got[0].Payload)
	}
	// Retained as the script asked: a later subscriber gets it.
	late := testpeer.Subscribe(t, m.Addr(), "SN-1/attr/fwVersion")
	if got := late.WaitTopic(t, 10*time.Second, "SN-1/attr/fwVersion", 1); !got[0].Retain {
		t.Fatalf("not retained: %+v", got[0])
	}
}

func TestScriptDownlinkConfigErrors(t *testing.T) {
	_, err := scriptConnector(t, "127.0.0.1:1883", `{`+brokerJSON(5, "")+`, "mapping": [], "requestsMapping": {
		"attributeUpdates": [{"script": "up.star"}],
		"serverSideRpc": [{"methodFilter": "a", "script": "dl.star", "requestTopicExpression": "x"}, {"methodFilter": "b", "script": "missing.star"}]}}`,
		map[string]string{"dl.star": "def downlink(cmd):\n  return None\n", "up.star": "def uplink(msg):\n  return None\n"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`mqtt.json: requestsMapping.serverSideRpc[0].requestTopicExpression: is not used with "script": the script's downlink(cmd) returns what to send`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	_, err = scriptConnector(t, "127.0.0.1:1883", `{`+brokerJSON(5, "")+`, "mapping": [], "requestsMapping": {
		"attributeUpdates": [{"script": "up.star"}],
		"serverSideRpc": [{"methodFilter": "b", "script": "missing.star"}]}}`,
		map[string]string{"up.star": "def uplink(msg):\n  return None\n"})
	for _, want := range []string{
		`mqtt.json: requestsMapping.attributeUpdates[0].script: `, `/up.star: defines no downlink(cmd), which a command entry needs`,
		`mqtt.json: requestsMapping.serverSideRpc[0].script: `, `/missing.star: cannot read: no such file or directory`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
