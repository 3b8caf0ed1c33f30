package opcua

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"testing"
	"time"

	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func TestMain(m *testing.M) {
	// gopcua's server prints to the standard logger whatever SetLogger says.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// plantSpec shapes the test address space:
//
//	Root/Objects/Plant/Device<d>/{Temperature, Humidity, Status, Setpoint}
//	Root/Objects/Plant/Device<d>/SerialNumber   (ns=1;i=5000+d)
//	Root/Objects/Plant/Line/Speed               (ns=1;s=Line.Speed)
//	plus Var<k> variables per device for load tests.
type plantSpec struct {
	devices int
	extra   int // Var0..Var<extra-1> per device
}

// testServer is the shared OPC UA test server with the plant's address
// space; spec is read again by restart.
type testServer struct {
	*testpeer.OPCUAServer
	spec *plantSpec
}

func startServer(t testing.TB, port int, sp plantSpec, vals *testpeer.OPCUAValues, opts ...server.Option) *testServer {
	t.Helper()
	spec := &sp
	s := testpeer.StartOPCUAServer(t, testpeer.OPCUAOptions{Port: port, Values: vals, ServerOptions: opts,
		Build: func(s *testpeer.OPCUAServer) { buildPlant(s, *spec) }})
	return &testServer{OPCUAServer: s, spec: spec}
}

func buildPlant(s *testpeer.OPCUAServer, sp plantSpec) {
	line := s.Folder(nil, ua.NewStringNodeID(1, "Line"), "Line")
	s.Variable(line, ua.NewStringNodeID(1, "Line.Speed"), "Speed", "Line.Speed", 1.5)
	for d := 1; d <= sp.devices; d++ {
		dn := fmt.Sprintf("Device%d", d)
		dev := s.Folder(nil, ua.NewStringNodeID(1, dn), dn)
		s.Variable(dev, ua.NewStringNodeID(1, dn+".Temperature"), "Temperature", dn+".Temperature", 20.5)
		s.Variable(dev, ua.NewStringNodeID(1, dn+".Humidity"), "Humidity", dn+".Humidity", float32(40.5))
		s.Variable(dev, ua.NewStringNodeID(1, dn+".Status"), "Status", dn+".Status", "OK")
		s.Variable(dev, ua.NewStringNodeID(1, dn+".Setpoint"), "Setpoint", dn+".Setpoint", int32(10))
		s.Variable(dev, ua.NewNumericNodeID(1, uint32(5000+d)), "SerialNumber", dn+".SerialNumber", fmt.Sprintf("SN-%d", d))
		for k := 0; k < sp.extra; k++ {
			s.Variable(dev, ua.NewStringNodeID(1, fmt.Sprintf("%s.Var%d", dn, k)), fmt.Sprintf("Var%d", k), fmt.Sprintf("%s.Var%d", dn, k), float64(k))
		}
	}
}

// set changes a value and notifies subscribers.
func (ts *testServer) set(key string, v any) { ts.Set(key, v) }

// restart stops the server and starts a new one with the same tree
// (ts.spec, as it is now) and values on the same port, behind the same
// proxy, which closes the clients' connections as a real restart would.
func (ts *testServer) restart() *testServer {
	return &testServer{OPCUAServer: ts.Restart(), spec: ts.spec}
}

func (ts *testServer) url() string { return ts.URL() }

// counts is what the server holds: subscriptions and monitored items.
func (ts *testServer) counts() (subs, items int) { return ts.Counts() }

// latest is the newest value of device/key as text, "" if none.
func latest(sink *sinktest.Recorder, device, key string) (string, bool) {
	v, ok := sink.Latest(device, key)
	if !ok {
		return "", false
	}
	return v.String(), true
}

// newTestConnector builds a Connector from JSON, as the runtime would.
func newTestConnector(t testing.TB, raw string) *Connector {
	t.Helper()
	ps := &spec.Problems{}
	root := spec.Parse(ps, "opcua.json", []byte(raw))
	if root == nil {
		t.Fatal(ps.Err())
	}
	lg := zerolog.Nop()
	if os.Getenv("OPCUA_TEST_LOG") != "" {
		lg = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}).With().Timestamp().Logger()
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "opcua", Type: "opcua", Config: root, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts c.Run and stops it at cleanup.
func run(t testing.TB, c *Connector, sink protocols.Sink) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return cancel
}
