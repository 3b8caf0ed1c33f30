package testpeer

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Mochi is an embedded mochi-mqtt broker. Unlike mosquitto it keeps no
// state across a Close; use it for auth, ACL and protocol-level tests.
type Mochi struct {
	// Server is the broker, for hooks or inline subscriptions. Inline
	// subscription callbacks run on the publisher's read goroutine: they
	// must not block, or the publisher's PUBACKs stall.
	Server *mqtt.Server
	addr   string
	auth   *mochiHook
	once   sync.Once
}

type mochiOptions struct {
	allowAll bool
	creds    map[string][]byte // username → password (nil: any password)
	acl      func(username, topic string, write bool) bool
	port     int
	logger   *slog.Logger
	caps     func(*mqtt.Capabilities)
	tls      *tls.Config
}

// MochiOption configures StartMochi.
type MochiOption func(*mochiOptions)

// AllowAll accepts every client whatever its credentials. It is the
// default when no credential option is given.
func AllowAll() MochiOption { return func(o *mochiOptions) { o.allowAll = true } }

// AllowTokens accepts clients whose username is one of the tokens, with any
// password, as ThingsBoard authenticates access tokens.
func AllowTokens(tokens ...string) MochiOption {
	return func(o *mochiOptions) {
		for _, tok := range tokens {
			o.creds[tok] = nil
		}
	}
}

// AllowUser accepts username with exactly this password.
func AllowUser(username, password string) MochiOption {
	return func(o *mochiOptions) { o.creds[username] = []byte(password) }
}

// WithACL decides every publish (write) and subscribe; the default allows
// all. A refused QoS 1 publish from an MQTT 5 client gets PUBACK 0x87.
func WithACL(fn func(username, topic string, write bool) bool) MochiOption {
	return func(o *mochiOptions) { o.acl = fn }
}

// MochiPort listens on a given port instead of a free one, e.g. to bring a
// broker back where a closed one was.
func MochiPort(port int) MochiOption { return func(o *mochiOptions) { o.port = port } }

// MochiCapabilities adjusts the broker's capabilities, e.g.
// MaximumPacketSize or ReceiveMaximum. mochi enforces MaximumPacketSize but
// does not announce it in CONNACK as MQTT 5 requires; testpeer adds the
// property so clients can honour it.
func MochiCapabilities(fn func(*mqtt.Capabilities)) MochiOption {
	return func(o *mochiOptions) { o.caps = fn }
}

// MochiTLS makes the listener speak TLS with cfg, e.g. a certificate
// from GenerateTLS and a ClientAuth policy.
func MochiTLS(cfg *tls.Config) MochiOption { return func(o *mochiOptions) { o.tls = cfg } }

// MochiLogger sets the broker's logger (silent by default).
func MochiLogger(l *slog.Logger) MochiOption { return func(o *mochiOptions) { o.logger = l } }

// StartMochi starts the broker on 127.0.0.1 and closes it when the test
// ends.
func StartMochi(t testing.TB, opts ...MochiOption) *Mochi {
	t.Helper()
	o := mochiOptions{creds: map[string][]byte{}}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.creds) == 0 {
		o.allowAll = true
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	caps := mqtt.NewDefaultServerCapabilities()
	if o.caps != nil {
		o.caps(caps)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: o.logger, Capabilities: caps})
	auth := &mochiHook{opts: o, maxPacket: caps.MaximumPacketSize}
	// Mochi refuses every client without an auth hook and every publish and
	// subscribe without an ACL hook; this one hook does both.
	if err := srv.AddHook(auth, nil); err != nil {
		t.Fatalf("testpeer: mochi hook: %v", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(o.port)
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr, TLSConfig: o.tls})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatalf("testpeer: mochi listen %s: %v", addr, err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("testpeer: mochi serve: %v", err)
	}
	m := &Mochi{Server: srv, addr: tcp.Address(), auth: auth}
	t.Cleanup(m.Close)
	return m
}

// Addr is the listener's host:port.
func (m *Mochi) Addr() string { return m.addr }

// Port is the listener's port.
func (m *Mochi) Port() int {
	_, p, _ := net.SplitHostPort(m.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Close stops the broker; further calls do nothing (mochi's own Close
// panics the second time).
func (m *Mochi) Close() {
	m.once.Do(func() {
		// Stop accepting first: mochi's Close races (in mochi) with a
		// connection it is still accepting, which a reconnecting gateway
		// makes likely. Clients are disconnected as mochi's own Close does.
		m.Server.Listeners.CloseAll(func(id string) {
			for _, cl := range m.Server.Clients.GetByListener(id) {
				_ = m.Server.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		})
		_ = m.Server.Close()
	})
}

// AuthAttempts counts CONNECT packets that reached authentication.
func (m *Mochi) AuthAttempts() int64 { return m.auth.attempts.Load() }

// AuthRejections counts refused CONNECTs.
func (m *Mochi) AuthRejections() int64 { return m.auth.rejected.Load() }

// Publish sends a message from the broker's inline client, e.g. an RPC
// request to the client under test.
func (m *Mochi) Publish(topic string, payload []byte, qos byte) error {
	return m.Server.Publish(topic, payload, false, qos)
}

type mochiHook struct {
	mqtt.HookBase
	opts      mochiOptions
	maxPacket uint32
	attempts  atomic.Int64
	rejected  atomic.Int64
}

func (h *mochiHook) ID() string { return "testpeer" }

func (h *mochiHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPacketEncode
}

func (h *mochiHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.maxPacket > 0 && pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 {
		pk.Properties.MaximumPacketSize = h.maxPacket
	}
	return pk
}

func (h *mochiHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	h.attempts.Add(1)
	ok := h.opts.allowAll
	if !ok {
		pass, known := h.opts.creds[string(pk.Connect.Username)]
		ok = known && (pass == nil || bytes.Equal(pass, pk.Connect.Password))
	}
	if !ok {
		h.rejected.Add(1)
	}
	return ok
}

func (h *mochiHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.opts.acl == nil {
		return true
	}
	return h.opts.acl(string(cl.Properties.Username), topic, write)
}
