package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

type opcuaQuiet struct{}

func (opcuaQuiet) Debug(string, ...any) {}
func (opcuaQuiet) Info(string, ...any)  {}
func (opcuaQuiet) Warn(string, ...any)  {}
func (opcuaQuiet) Error(string, ...any) {}

// opcuaPlant is a gopcua in-process server with one object,
// Root/Objects/Plant/Boiler1 {Temperature, Setpoint, Serial}.
type opcuaPlant struct {
	srv    *server.Server
	ns     *server.NodeNameSpace
	mu     sync.Mutex
	temp   float64
	tempN  *server.Node
	writes chan string
	url    string
}

func startOPCUAPlant(t *testing.T) *opcuaPlant {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &opcuaPlant{temp: 20.5, writes: make(chan string, 64), url: fmt.Sprintf("opc.tcp://127.0.0.1:%d", port)}
	p.srv = server.New(server.EndPoint("127.0.0.1", port),
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous), server.SetLogger(opcuaQuiet{}))
	p.ns = server.NewNodeNameSpace(p.srv, "Plant")
	root, _ := p.srv.Namespace(0)
	root.(*server.NodeNameSpace).Objects().AddRef(p.ns.Objects(), id.HasComponent, true)
	boiler := server.NewNode(ua.NewStringNodeID(1, "Boiler1"), map[ua.AttributeID]*ua.DataValue{
		ua.AttributeIDNodeClass:   server.DataValueFromValue(uint32(ua.NodeClassObject)),
		ua.AttributeIDBrowseName:  server.DataValueFromValue(attrs.BrowseName("Boiler1")),
		ua.AttributeIDDisplayName: server.DataValueFromValue(attrs.DisplayName("Boiler1", "Boiler1")),
	}, nil, nil)
	p.ns.AddNode(boiler)
	p.ns.Objects().AddRef(boiler, id.Organizes, true)
	add := func(n *server.Node) *server.Node {
		p.ns.AddNode(n)
		boiler.AddRef(n, id.HasComponent, true)
		return n
	}
	// Temperature reads through a locked function, so the test can change
	// it while the server reads it.
	p.tempN = add(server.NewVariableNode(ua.NewStringNodeID(1, "Boiler1.Temperature"), "Temperature", func() *ua.DataValue {
		p.mu.Lock()
		defer p.mu.Unlock()
		return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant(p.temp), SourceTimestamp: time.Now()}
	}))
	add(server.NewVariableNode(ua.NewStringNodeID(1, "Boiler1.Setpoint"), "Setpoint", int32(50)))
	add(server.NewVariableNode(ua.NewStringNodeID(1, "Boiler1.Serial"), "Serial", "B-001"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-p.ns.ExternalNotification:
				p.writes <- n.String()
			}
		}
	}()
	if err := p.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.srv.Close()
		cancel()
		<-done
	})
	return p
}

func (p *opcuaPlant) setTemp(v float64) {
	p.mu.Lock()
	p.temp = v
	p.mu.Unlock()
	p.srv.ChangeNotification(p.tempN.ID())
}

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
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/attributes") {
			var body map[string]map[string]json.RawMessage
			if json.Unmarshal(m.Payload, &body) == nil && string(body["Boiler B-001"]["setpoint"]) == "50" {
				return true
			}
		}
		return false
	})
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
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/attributes") {
			var body map[string]map[string]json.RawMessage
			if json.Unmarshal(m.Payload, &body) == nil && string(body["Boiler B-001"]["setpoint"]) == "72" {
				return true
			}
		}
		return false
	})
}
