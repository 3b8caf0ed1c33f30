package opcua

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func TestMain(m *testing.M) {
	// gopcua's server prints to the standard logger whatever SetLogger says.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// values is the test tree's data, read by the server through value
// functions under a lock, so tests can change values while the server
// reads them without a data race.
type values struct {
	mu sync.Mutex
	m  map[string]*ua.DataValue
}

func (v *values) get(k string) *ua.DataValue {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[k]
}

func (v *values) set(k string, x any, ts time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[k] = &ua.DataValue{
		EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value:           ua.MustVariant(x),
		SourceTimestamp: ts,
		ServerTimestamp: ts,
	}
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

type testServer struct {
	t     testing.TB
	port  int // the server's own port
	proxy *proxy
	spec  plantSpec
	vals  *values
	srv   *server.Server
	ns    *server.NodeNameSpace
	stop  context.CancelFunc
	nodes map[string]*server.Node // by value key
	keys  []string
	// writes receives the node ids clients wrote (ExternalNotification
	// drops events nobody receives, so a goroutine always listens).
	writes chan string
	done   chan struct{}
	opts   []server.Option
}

func startServer(t testing.TB, port int, sp plantSpec, vals *values, opts ...server.Option) *testServer {
	t.Helper()
	return startServerBehind(t, nil, port, sp, vals, opts...)
}

func startServerBehind(t testing.TB, px *proxy, port int, sp plantSpec, vals *values, opts ...server.Option) *testServer {
	t.Helper()
	if port == 0 {
		port = freePort(t)
	}
	if px == nil {
		px = newProxy(t, fmt.Sprintf("127.0.0.1:%d", port))
	}
	if vals == nil {
		vals = &values{m: map[string]*ua.DataValue{}}
	}
	ts := &testServer{t: t, port: port, proxy: px, spec: sp, vals: vals, nodes: map[string]*server.Node{}, writes: make(chan string, 1024), done: make(chan struct{}), opts: opts}
	pport := px.l.Addr().(*net.TCPAddr).Port
	base := []server.Option{
		server.EndPoint("127.0.0.1", port),
		// Also advertised under the proxy's address: gopcua's GetEndpoints
		// only returns endpoints whose URL equals the one asked for.
		server.EndPoint("127.0.0.1", pport),
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
		server.SetLogger(quietLogger{}),
	}
	ts.srv = server.New(append(base, opts...)...)
	ts.ns = server.NewNodeNameSpace(ts.srv, "Plant")
	root, _ := ts.srv.Namespace(0)
	root.(*server.NodeNameSpace).Objects().AddRef(ts.ns.Objects(), id.HasComponent, true)
	now := time.Now()
	line := folder(ua.NewStringNodeID(1, "Line"), "Line")
	ts.ns.AddNode(line)
	ts.ns.Objects().AddRef(line, id.Organizes, true)
	ts.variable(line, ua.NewStringNodeID(1, "Line.Speed"), "Speed", "Line.Speed", 1.5, now)
	for d := 1; d <= sp.devices; d++ {
		dn := fmt.Sprintf("Device%d", d)
		dev := folder(ua.NewStringNodeID(1, dn), dn)
		ts.ns.AddNode(dev)
		ts.ns.Objects().AddRef(dev, id.Organizes, true)
		ts.variable(dev, ua.NewStringNodeID(1, dn+".Temperature"), "Temperature", dn+".Temperature", 20.5, now)
		ts.variable(dev, ua.NewStringNodeID(1, dn+".Humidity"), "Humidity", dn+".Humidity", float32(40.5), now)
		ts.variable(dev, ua.NewStringNodeID(1, dn+".Status"), "Status", dn+".Status", "OK", now)
		ts.variable(dev, ua.NewStringNodeID(1, dn+".Setpoint"), "Setpoint", dn+".Setpoint", int32(10), now)
		ts.variable(dev, ua.NewNumericNodeID(1, uint32(5000+d)), "SerialNumber", dn+".SerialNumber", fmt.Sprintf("SN-%d", d), now)
		for k := 0; k < sp.extra; k++ {
			ts.variable(dev, ua.NewStringNodeID(1, fmt.Sprintf("%s.Var%d", dn, k)), fmt.Sprintf("Var%d", k), fmt.Sprintf("%s.Var%d", dn, k), float64(k), now)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = cancel
	go func() {
		defer close(ts.done)
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-ts.ns.ExternalNotification:
				select {
				case ts.writes <- n.String():
				default:
				}
			}
		}
	}()
	if err := ts.srv.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start opc-ua test server on %d: %v", port, err)
	}
	t.Cleanup(ts.close)
	return ts
}

// folder is an Object node; gopcua v0.8.0's NewFolderNode panics (it puts
// a NodeClass into a Variant).
func folder(nid *ua.NodeID, name string) *server.Node {
	return server.NewNode(nid, map[ua.AttributeID]*ua.DataValue{
		ua.AttributeIDNodeClass:     server.DataValueFromValue(uint32(ua.NodeClassObject)),
		ua.AttributeIDBrowseName:    server.DataValueFromValue(attrs.BrowseName(name)),
		ua.AttributeIDDisplayName:   server.DataValueFromValue(attrs.DisplayName(name, name)),
		ua.AttributeIDEventNotifier: server.DataValueFromValue(int16(0)),
	}, nil, nil)
}

func (ts *testServer) variable(parent *server.Node, nid *ua.NodeID, name, key string, v any, now time.Time) {
	if ts.vals.get(key) == nil {
		ts.vals.set(key, v, now)
	}
	n := server.NewVariableNode(nid, name, func() *ua.DataValue { return ts.vals.get(key) })
	ts.ns.AddNode(n)
	parent.AddRef(n, id.HasComponent, true)
	ts.nodes[key] = n
	ts.keys = append(ts.keys, key)
}

// set changes a value and notifies subscribers.
func (ts *testServer) set(key string, v any) {
	ts.vals.set(key, v, time.Now())
	ts.srv.ChangeNotification(ts.nodes[key].ID())
}

var closeMu sync.Mutex

func (ts *testServer) close() {
	closeMu.Lock()
	defer closeMu.Unlock()
	if ts.stop == nil {
		return
	}
	ts.proxy.drop()
	// Close before cancelling: the channel goroutines hand messages to the
	// server loop that the context stops, so the other order makes Close
	// wait its 10 s timeout.
	ts.srv.Close()
	ts.stop()
	<-ts.done
	ts.stop = nil
}

// restart stops the server and starts a new one with the same tree and
// values on the same port.
//
// Clients reach the server through a proxy on a fixed port: gopcua's
// server.Close leaves client TCP connections open (it only sends
// CloseSecureChannel and then waits up to 10 s), where a real server
// restart closes them; the proxy closes them like the kernel would.
func (ts *testServer) restart() *testServer {
	ts.proxy.drop()
	ts.close()
	return startServerBehind(ts.t, ts.proxy, ts.port, ts.spec, ts.vals, ts.opts...)
}

func (ts *testServer) url() string { return "opc.tcp://" + ts.proxy.l.Addr().String() }

// proxy forwards TCP connections to target.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func newProxy(t testing.TB, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.drop()
	})
	return p
}

func (p *proxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close(); c.Close() }()
	io.Copy(c, s)
	c.Close()
	s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// drop closes every forwarded connection.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// counts is what the server holds: subscriptions and monitored items.
func (ts *testServer) counts() (subs, items int) {
	ts.srv.SubscriptionService.Mu.Lock()
	subs = len(ts.srv.SubscriptionService.Subs)
	ts.srv.SubscriptionService.Mu.Unlock()
	ts.srv.MonitoredItemService.Mu.Lock()
	items = len(ts.srv.MonitoredItemService.Items)
	ts.srv.MonitoredItemService.Mu.Unlock()
	return
}

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
