package testpeer

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"
)

// OPCUAValues are the values of an OPC UA test server's variables by key.
// The server reads them through value functions under a lock, so a test
// can change them while the server reads them without a data race; they
// outlive a Restart.
type OPCUAValues struct {
	mu sync.Mutex
	m  map[string]*ua.DataValue
}

// NewOPCUAValues returns an empty set of values.
func NewOPCUAValues() *OPCUAValues { return &OPCUAValues{m: map[string]*ua.DataValue{}} }

// Get is the value of key, nil if none.
func (v *OPCUAValues) Get(key string) *ua.DataValue {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[key]
}

// Set gives key the value x with source and server timestamp ts.
func (v *OPCUAValues) Set(key string, x any, ts time.Time) {
	v.SetDataValue(key, &ua.DataValue{
		EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value:           ua.MustVariant(x),
		SourceTimestamp: ts,
		ServerTimestamp: ts,
	})
}

// SetDataValue gives key a complete DataValue, e.g. a bad status.
func (v *OPCUAValues) SetDataValue(key string, dv *ua.DataValue) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[key] = dv
}

// OPCUAOptions configure StartOPCUAServer.
type OPCUAOptions struct {
	// Port is the server's own port; 0 picks a free one.
	Port int
	// Namespace names the namespace the address space goes in
	// (ns=1); "Plant" when empty.
	Namespace string
	// Build adds the address space (Folder, Variable, VariableFunc). It
	// runs again on every Restart.
	Build func(s *OPCUAServer)
	// Values, when set, are the variables' values (shared with whoever
	// holds them); a new set otherwise.
	Values *OPCUAValues
	// ServerOptions come after the defaults (endpoints, security None,
	// anonymous login, a silent logger), e.g. more security policies.
	ServerOptions []server.Option
}

// OPCUAServer is a gopcua server in the test process. Clients reach it
// through a TCP proxy (URL): gopcua's server.Close leaves client
// connections open (it only sends CloseSecureChannel and waits up to
// 10 s), where a real server restart closes them; the proxy closes them as
// the kernel would.
type OPCUAServer struct {
	// Server is the gopcua server, e.g. for its subscription service.
	Server *server.Server
	// NS is the namespace the address space is in.
	NS *server.NodeNameSpace
	// Values are the variables' values by key.
	Values *OPCUAValues
	// Nodes are the variables by key.
	Nodes map[string]*server.Node
	// Keys are the variables' keys in the order they were added.
	Keys []string
	// Writes receives the node ids clients wrote (gopcua drops the
	// notification when nobody listens, so the server always listens and
	// drops them when this is full).
	Writes chan string

	t        testing.TB
	o        OPCUAOptions
	port     int
	proxy    *opcuaProxy
	channels *opcuaChannels
	stop     context.CancelFunc
	done     chan struct{}
}

// StartOPCUAServer starts a server on 127.0.0.1 and closes it when the
// test ends.
func StartOPCUAServer(t testing.TB, o OPCUAOptions) *OPCUAServer {
	t.Helper()
	if o.Port == 0 {
		o.Port = FreePort(t)
	}
	if o.Namespace == "" {
		o.Namespace = "Plant"
	}
	if o.Values == nil {
		o.Values = NewOPCUAValues()
	}
	return startOPCUA(t, o, newOPCUAProxy(t, fmt.Sprintf("127.0.0.1:%d", o.Port)))
}

func startOPCUA(t testing.TB, o OPCUAOptions, px *opcuaProxy) *OPCUAServer {
	t.Helper()
	s := &OPCUAServer{t: t, o: o, port: o.Port, proxy: px, Values: o.Values, channels: newOPCUAChannels(),
		Nodes: map[string]*server.Node{}, Writes: make(chan string, 1024), done: make(chan struct{})}
	base := []server.Option{
		server.EndPoint("127.0.0.1", o.Port),
		// Also advertised under the proxy's address: gopcua's GetEndpoints
		// only returns endpoints whose URL equals the one asked for.
		server.EndPoint("127.0.0.1", px.port()),
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
		server.SetLogger(s.channels),
	}
	s.Server = server.New(append(base, o.ServerOptions...)...)
	s.NS = server.NewNodeNameSpace(s.Server, o.Namespace)
	root, _ := s.Server.Namespace(0)
	root.(*server.NodeNameSpace).Objects().AddRef(s.NS.Objects(), id.HasComponent, true)
	if o.Build != nil {
		o.Build(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		defer close(s.done)
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-s.NS.ExternalNotification:
				select {
				case s.Writes <- n.String():
				default:
				}
			}
		}
	}()
	if err := s.Server.Start(ctx); err != nil {
		cancel()
		t.Fatalf("testpeer: start OPC UA server on %d: %v", o.Port, err)
	}
	px.pause(false)
	t.Cleanup(s.Close)
	return s
}

// Folder adds an object named name under parent (the namespace's Objects
// folder when nil). gopcua v0.8.0's NewFolderNode panics (it puts a
// NodeClass into a Variant), hence a node of our own.
func (s *OPCUAServer) Folder(parent *server.Node, nid *ua.NodeID, name string) *server.Node {
	n := server.NewNode(nid, map[ua.AttributeID]*ua.DataValue{
		ua.AttributeIDNodeClass:     server.DataValueFromValue(uint32(ua.NodeClassObject)),
		ua.AttributeIDBrowseName:    server.DataValueFromValue(attrs.BrowseName(name)),
		ua.AttributeIDDisplayName:   server.DataValueFromValue(attrs.DisplayName(name, name)),
		ua.AttributeIDEventNotifier: server.DataValueFromValue(int16(0)),
	}, nil, nil)
	s.NS.AddNode(n)
	if parent == nil {
		s.NS.Objects().AddRef(n, id.Organizes, true)
	} else {
		parent.AddRef(n, id.Organizes, true)
	}
	return n
}

// Variable adds a variable under parent that reads Values[key], set to v
// (timestamped now) unless Values already holds key.
func (s *OPCUAServer) Variable(parent *server.Node, nid *ua.NodeID, name, key string, v any) *server.Node {
	if s.Values.Get(key) == nil {
		s.Values.Set(key, v, time.Now())
	}
	n := s.VariableFunc(parent, nid, name, func() *ua.DataValue { return s.Values.Get(key) })
	s.Nodes[key] = n
	s.Keys = append(s.Keys, key)
	return n
}

// VariableFunc adds a variable under parent whose value fn computes at
// every read (or a constant when fn is a plain value, as gopcua allows).
func (s *OPCUAServer) VariableFunc(parent *server.Node, nid *ua.NodeID, name string, fn any) *server.Node {
	n := server.NewVariableNode(nid, name, fn)
	s.NS.AddNode(n)
	parent.AddRef(n, id.HasComponent, true)
	return n
}

// Set changes the value of key (timestamped now) and notifies the
// subscribers.
func (s *OPCUAServer) Set(key string, v any) {
	s.Values.Set(key, v, time.Now())
	s.Server.ChangeNotification(s.Nodes[key].ID())
}

// URL is the endpoint clients should use: through the proxy.
func (s *OPCUAServer) URL() string { return "opc.tcp://" + s.proxy.l.Addr().String() }

// DirectURL is the server's own endpoint, without the proxy's copying
// (for benchmarks; a Restart does not drop its connections).
func (s *OPCUAServer) DirectURL() string { return fmt.Sprintf("opc.tcp://127.0.0.1:%d", s.port) }

// Port is the server's own port.
func (s *OPCUAServer) Port() int { return s.port }

// Counts is what the server holds: subscriptions and monitored items.
func (s *OPCUAServer) Counts() (subs, items int) {
	s.Server.SubscriptionService.Mu.Lock()
	subs = len(s.Server.SubscriptionService.Subs)
	s.Server.SubscriptionService.Mu.Unlock()
	s.Server.MonitoredItemService.Mu.Lock()
	items = len(s.Server.MonitoredItemService.Items)
	s.Server.MonitoredItemService.Mu.Unlock()
	return
}

var opcuaCloseMu sync.Mutex

// Close drops the clients' connections and stops the server; further
// calls do nothing.
func (s *OPCUAServer) Close() {
	opcuaCloseMu.Lock()
	defer opcuaCloseMu.Unlock()
	if s.stop == nil {
		return
	}
	s.proxy.pause(true)
	s.proxy.drop()
	if !s.channels.waitIdle(10 * time.Second) {
		s.t.Logf("testpeer: OPC UA server on %d: secure channels still open at close: %s", s.port, s.channels)
	}
	// Close before cancelling: the channel goroutines hand messages to the
	// server loop that the context stops, so the other order makes Close
	// wait its 10 s timeout.
	s.Server.Close()
	s.stop()
	<-s.done
	s.stop = nil
}

// Restart stops the server and starts a new one with the same options
// (Build runs again) and Values on the same port, behind the same proxy.
func (s *OPCUAServer) Restart() *OPCUAServer {
	s.t.Helper()
	s.Close()
	return startOPCUA(s.t, s.o, s.proxy)
}

// opcuaChannels is the server's logger, read for what the channel goroutines say about
// their secure channels. gopcua v0.8.0's Server.Close waits on a WaitGroup that a channel's
// goroutine joins outside the broker's lock, so closing while a channel is open or opening
// is a data race (the race detector reports it). Close therefore first waits until every
// accepted connection's channel has failed or ended, as these log lines tell; the lock taken
// by each log call is also the synchronisation the race detector needs to see.
type opcuaChannels struct {
	mu                               sync.Mutex
	changed                          chan struct{}
	accepted, opened, failed, closed int
}

func newOPCUAChannels() *opcuaChannels { return &opcuaChannels{changed: make(chan struct{})} }

// The format strings are gopcua v0.8.0's (server.go, channel_broker.go).
func (c *opcuaChannels) count(format string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch format {
	case "registered connection: %s":
		c.accepted++
	case "Registered new channel (id %d) now at %d channels":
		c.opened++
	case "Error creating secure channel for new connection: %s":
		c.failed++
	case "Secure Channel %d closed", "Secure Channel %d error: %s", "Context done, closing Secure Channel %d":
		c.closed++
	default:
		return
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *opcuaChannels) Debug(string, ...any)     {}
func (c *opcuaChannels) Info(f string, _ ...any)  { c.count(f) }
func (c *opcuaChannels) Warn(f string, _ ...any)  { c.count(f) }
func (c *opcuaChannels) Error(f string, _ ...any) { c.count(f) }

func (c *opcuaChannels) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("accepted %d, opened %d, failed %d, ended %d", c.accepted, c.opened, c.failed, c.closed)
}

// waitIdle waits until no channel is open or opening, or until timeout.
func (c *opcuaChannels) waitIdle(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		idle := c.accepted == c.opened+c.failed && c.opened == c.closed
		changed := c.changed
		c.mu.Unlock()
		if idle {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// opcuaProxy forwards TCP connections to target.
type opcuaProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	paused bool // while the server closes: new clients are refused
}

func newOPCUAProxy(t testing.TB, target string) *opcuaProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: OPC UA proxy: %v", err)
	}
	p := &opcuaProxy{l: l, target: target, conns: map[net.Conn]bool{}}
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

func (p *opcuaProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *opcuaProxy) serve(c net.Conn) {
	p.mu.Lock()
	paused := p.paused
	p.mu.Unlock()
	if paused {
		c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.paused {
		p.mu.Unlock()
		s.Close()
		c.Close()
		return
	}
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); s.Close(); c.Close() }()
	_, _ = io.Copy(c, s)
	c.Close()
	s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

func (p *opcuaProxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.mu.Unlock()
}

// drop closes every forwarded connection.
func (p *opcuaProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
