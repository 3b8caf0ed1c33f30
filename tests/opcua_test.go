package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// opcuaPlant is the shared OPC UA test server with one object,
// Root/Objects/Plant/Boiler1 {Temperature, Setpoint, Serial}.
type opcuaPlant struct {
	*testpeer.OPCUAServer
	url    string
	writes chan string
}

func startOPCUAPlant(t *testing.T) *opcuaPlant {
	t.Helper()
	s := testpeer.StartOPCUAServer(t, testpeer.OPCUAOptions{Build: func(s *testpeer.OPCUAServer) {
		boiler := s.Folder(nil, ua.NewStringNodeID(1, "Boiler1"), "Boiler1")
		s.Variable(boiler, ua.NewStringNodeID(1, "Boiler1.Temperature"), "Temperature", "Boiler1.Temperature", 20.5)
		s.VariableFunc(boiler, ua.NewStringNodeID(1, "Boiler1.Setpoint"), "Setpoint", int32(50))
		s.VariableFunc(boiler, ua.NewStringNodeID(1, "Boiler1.Serial"), "Serial", "B-001")
	}})
	return &opcuaPlant{OPCUAServer: s, url: s.URL(), writes: s.Writes}
}

func (p *opcuaPlant) setTemp(v float64) { p.Set("Boiler1.Temperature", v) }

func opcuaConnectorConfig(url string) []byte {
	return []byte(fmt.Sprintf(`{
  "name": "OPC-UA",
  "server": {"url": %q, "timeoutInMillis": 3000, "enableSubscriptions": true, "subCheckPeriodInMillis": 100,
             "reconnectBackoffInitialDelay": 0.1},
  "mapping": [{
    "deviceNodePattern": "Root\\.Objects\\.Plant\\.Boiler[0-9]+",
    "deviceInfo": {"deviceNameExpression": "Boiler ${Serial}", "deviceNameExpressionSource": "path",
                   "deviceProfileExpression": "boiler"},
    "timeseries": [{"key": "temperature", "type": "path", "value": "${Temperature}"}],
    "attributes": [{"key": "setpoint", "type": "path", "value": "${Setpoint}"}],
    "attributes_updates": [{"key": "targetSetpoint", "type": "path", "value": "${Setpoint}"}]
  }]
}`, url))
}

// TestOPCUAConnectorEndToEnd: values of a gopcua in-process server reach
// mosquitto as v1/gateway/telemetry of the device named from the server's
// Serial node; a shared attribute update from the platform is written to
// the server's Setpoint node.
func TestOPCUAConnectorEndToEnd(t *testing.T) {
	plant := startOPCUAPlant(t)
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`,
		map[string][]byte{"opcua": opcuaConnectorConfig(plant.url)})
	startGateway(t, path, nil)

	temps := func(msgs []testpeer.Msg) map[string]bool {
		got, err := telemetry(msgs)
		if err != nil {
			return nil
		}
		out := map[string]bool{}
		for p, vs := range got {
			if p.Device == "Boiler B-001" {
				out[string(vs["temperature"])] = true
			}
		}
		return out
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return temps(msgs)["20.5"] })
	plant.setTemp(63.25)
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return temps(msgs)["63.25"] })
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, "Boiler B-001", "setpoint", "50") })
	connected := false
	for _, m := range testpeer.OnTopic(plat.Messages(), "v1/gateway/connect") {
		connected = connected || strings.Contains(string(m.Payload), `"device":"Boiler B-001","type":"boiler"`)
	}
	if !connected {
		t.Errorf("no connect for Boiler B-001 with profile boiler: %v", testpeer.OnTopic(plat.Messages(), "v1/gateway/connect"))
	}

	ctx, cancel := contextTimeout(10 * time.Second)
	defer cancel()
	if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"Boiler B-001","data":{"targetSetpoint":72}}`), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-plant.writes:
		if n != "ns=1;s=Boiler1.Setpoint" {
			t.Fatalf("write landed on %s", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the shared attribute update was not written to the server")
	}
	// The server now reports the written value; the subscription delivers it.
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, "Boiler B-001", "setpoint", "72") })
}
