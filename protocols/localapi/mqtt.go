package localapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/industryos/gateway/protocols"
)

// The platform's device topics.
const (
	topicMe                = "v1/devices/me/"
	topicTelemetry         = "v1/devices/me/telemetry"
	topicAttributes        = "v1/devices/me/attributes"
	topicAttrRequestPrefix = "v1/devices/me/attributes/request/"
	topicAttrResponse      = "v1/devices/me/attributes/response/"
	topicRPCRequestPrefix  = "v1/devices/me/rpc/request/"
	topicRPCResponsePrefix = "v1/devices/me/rpc/response/"
	// topicPrefix starts the broker-internal name of a device's topics.
	topicPrefix = "iotgw-local/"
)

// attributeTimeout bounds a device's attribute request to the platform.
const attributeTimeout = 20 * time.Second

// mqttServer is the embedded broker and its hook: authentication, topic
// isolation and acknowledgement after commit.
type mqttServer struct {
	mqtt.HookBase
	srv  *mqtt.Server
	addr string
	c    *Connector
	sink protocols.Sink
	ctx  context.Context

	sessions sync.Map // *mqtt.Client → *session
	mu       sync.Mutex
	online   map[string]int // device name → connected sessions
}

// session is one authenticated MQTT connection.
type session struct {
	st *devState
	cl *mqtt.Client
	v5 bool

	// acks are written in order by one goroutine at a time, started while
	// acks wait (not one per connection for its whole life): a Done
	// callback must not block on a slow device's socket.
	mu      sync.Mutex
	acks    []packets.Packet
	writing bool
	closed  atomic.Bool
}

func startMQTT(ctx context.Context, c *Connector, sink protocols.Sink) (*mqttServer, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(c.cfg.MaxBody + 1024)
	caps.RetainAvailable = 0 // nothing a device publishes is routed, so nothing is retained
	// Each client's outbound queue is allocated at its full size (8192
	// pointers by default: 64 KB a device, 64 MB for a thousand); a device's
	// downlink is a few commands, and a full queue drops (mochi counts it).
	caps.MaximumClientWritesPending = 256
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	m := &mqttServer{srv: srv, c: c, sink: sink, ctx: ctx, online: map[string]int{}}
	if err := srv.AddHook(m, nil); err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	if c.cfg.MQTT.TLS() {
		cert, err := tls.LoadX509KeyPair(c.cfg.MQTT.Cert, c.cfg.MQTT.Key)
		if err != nil {
			return nil, fmt.Errorf("load certificate: %w", err)
		}
		// Client certificates are checked by fingerprint against the device
		// list (self-signed device certificates, as the platform takes them),
		// so the chain is not verified here.
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	}
	l := listeners.NewTCP(listeners.Config{ID: "local", Address: c.cfg.MQTT.Address, TLSConfig: tlsCfg})
	if err := srv.AddListener(l); err != nil {
		return nil, err
	}
	if err := srv.Serve(); err != nil {
		srv.Listeners.CloseAll(func(string) {})
		return nil, err
	}
	m.addr = l.Address()
	return m, nil
}

func (m *mqttServer) close() {
	m.srv.Listeners.CloseAll(func(id string) {
		for _, cl := range m.srv.Clients.GetByListener(id) {
			_ = m.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	})
	_ = m.srv.Close()
}

func (m *mqttServer) ID() string { return "localapi" }

func (m *mqttServer) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribe, mqtt.OnPublish, mqtt.OnPacketEncode:
		return true
	}
	return false
}

// OnConnect authenticates, so a refusal can answer "not authorized" (mochi's
// own authentication step answers "bad username or password").
func (m *mqttServer) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	var peer *x509.Certificate
	if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			peer = certs[0]
		}
	}
	d, err := m.c.auth.mqtt(cl.ID, string(pk.Connect.Username), pk.Connect.Password, peer)
	if err != nil {
		m.sink.Refused("mqtt "+cl.Net.Remote, fmt.Errorf("mqtt client %q from %s: %w", cl.ID, cl.Net.Remote, err))
		code := packets.ErrNotAuthorized
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.Err3NotAuthorized
		}
		_ = m.srv.SendConnack(cl, code, false, nil)
		return packets.ErrNotAuthorized
	}
	s := &session{st: m.c.hub.state(d), cl: cl, v5: cl.Properties.ProtocolVersion == 5}
	m.sessions.Store(cl, s)
	return nil
}

func (m *mqttServer) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := m.sessions.Load(cl)
	return ok
}

func (m *mqttServer) session(cl *mqtt.Client) *session {
	if v, ok := m.sessions.Load(cl); ok {
		return v.(*session)
	}
	return nil
}

// OnSessionEstablished announces the device to the platform when its
// first session opens.
func (m *mqttServer) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	s := m.session(cl)
	if s == nil {
		return
	}
	m.mu.Lock()
	m.online[s.st.dev.Name]++
	first := m.online[s.st.dev.Name] == 1
	m.mu.Unlock()
	if first {
		m.sink.Connect(s.st.dev.Name, s.st.dev.Profile)
	}
}

// OnDisconnect announces the device's disconnect when its last session ends.
func (m *mqttServer) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	v, ok := m.sessions.LoadAndDelete(cl)
	if !ok {
		return
	}
	s := v.(*session)
	s.close()
	m.mu.Lock()
	m.online[s.st.dev.Name]--
	last := m.online[s.st.dev.Name] == 0
	if last {
		delete(m.online, s.st.dev.Name)
	}
	m.mu.Unlock()
	if last && m.ctx.Err() == nil {
		m.sink.Disconnect(s.st.dev.Name)
	}
}

// OnACLCheck: a device publishes only the platform's device topics
// (OnPublish sorts them) and reads only its own prefixed ones.
func (m *mqttServer) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	s := m.session(cl)
	if s == nil {
		return false
	}
	if write {
		return true
	}
	return strings.HasPrefix(topic, s.st.prefix)
}

// OnSubscribe files the device's v1/devices/me/* filters under its prefix;
// anything else stays as it is and is refused by OnACLCheck.
func (m *mqttServer) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return m.rewriteFilters(cl, pk)
}

func (m *mqttServer) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return m.rewriteFilters(cl, pk)
}

func (m *mqttServer) rewriteFilters(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	s := m.session(cl)
	if s == nil {
		return pk
	}
	filters := make(packets.Subscriptions, len(pk.Filters))
	copy(filters, pk.Filters)
	for i := range filters {
		if strings.HasPrefix(filters[i].Filter, topicMe) {
			filters[i].Filter = s.st.prefix + filters[i].Filter
		}
	}
	pk.Filters = filters
	return pk
}

// OnSubscribed hands RPCs and attribute updates that waited for the
// device to its new subscription.
func (m *mqttServer) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	s := m.session(cl)
	if s == nil {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue
		}
		if strings.HasPrefix(f.Filter, s.st.prefix+topicRPCRequestPrefix) {
			for _, p := range s.st.takeQueued() {
				if !m.deliverRPC(s.st, p) {
					s.st.requeue(p)
				}
			}
		}
		if f.Filter == s.st.prefix+topicAttributes {
			for _, u := range s.st.takeUpdates() {
				_ = m.publish(s.st, topicAttributes, u)
			}
		}
	}
}

// OnPacketEncode strips the device prefix from what a device receives.
func (m *mqttServer) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish && strings.HasPrefix(pk.TopicName, topicPrefix) {
		rest := pk.TopicName[len(topicPrefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			pk.TopicName = rest[i+1:]
		}
	}
	return pk
}

// publish sends to one device's topic (under its prefix) at QoS 1.
func (m *mqttServer) publish(st *devState, topic string, payload []byte) error {
	if err := m.srv.Publish(st.prefix+topic, payload, false, 1); err != nil {
		return fmt.Errorf("device %q: publish %s: %w", st.dev.Name, topic, err)
	}
	return nil
}

// subscribed reports whether a session of the device takes topic.
func (m *mqttServer) subscribed(st *devState, topic string) bool {
	return len(m.srv.Topics.Subscribers(st.prefix+topic).Subscriptions) > 0
}

// deliverRPC publishes a server-side RPC when the device has a session
// subscribed to it; false leaves it for a later subscription or HTTP poll.
func (m *mqttServer) deliverRPC(st *devState, p *pendingRPC) bool {
	topic := topicRPCRequestPrefix + strconv.FormatInt(p.req.ID, 10)
	if !m.subscribed(st, topic) {
		return false
	}
	b, _ := json.Marshal(struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params,omitempty"`
	}{p.req.Method, p.req.Params})
	return m.publish(st, topic, b) == nil
}

// OnPublish takes what a device sends. Nothing a device publishes is
// routed to other clients. Data is acknowledged once it is committed: a
// QoS 1 PUBACK is written by the session when the runtime's Done arrives
// (mochi is told to send none), a QoS 2 PUBREC after OnPublish returns.
func (m *mqttServer) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	s := m.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	d := s.st.dev
	topic := pk.TopicName
	switch {
	case topic == topicTelemetry || topic == topicAttributes:
		kind := topic[len(topicMe):]
		pushes, err := devicePushes(s.st.dev, kind, pk.Payload)
		if err != nil {
			return m.bad(s, pk, kind, err)
		}
		return m.commit(s, pk, pushes)
	case strings.HasPrefix(topic, topicAttrRequestPrefix):
		id := topic[len(topicAttrRequestPrefix):]
		var req attributeRequest
		if err := json.Unmarshal(pk.Payload, &req); err != nil || id == "" {
			return m.bad(s, pk, "attribute request", fmt.Errorf("expected {\"clientKeys\":\"a,b\",\"sharedKeys\":\"c\"}: %v", err))
		}
		if err := req.check(); err != nil {
			return m.bad(s, pk, "attribute request", err)
		}
		go m.answerAttributes(s.st, id, req)
	case strings.HasPrefix(topic, topicRPCResponsePrefix):
		id, err := strconv.ParseInt(topic[len(topicRPCResponsePrefix):], 10, 64)
		if err == nil {
			err = s.st.reply(id, pk.Payload)
		}
		if err != nil {
			m.sink.Malformed("mqtt "+d.Name+" rpc response", err)
		}
	case strings.HasPrefix(topic, topicRPCRequestPrefix):
		id := topic[len(topicRPCRequestPrefix):]
		_ = m.publish(s.st, topicRPCResponsePrefix+id, clientRPC(pk.Payload, time.Now()))
	default:
		return m.bad(s, pk, "topic", fmt.Errorf("topic %q is not a device API topic", topic))
	}
	return pk, packets.CodeSuccessIgnore
}

// bad counts a payload or topic the device API does not take. An MQTT 5
// device learns it from the PUBACK's reason code; an MQTT 3.1.1 one gets a
// normal PUBACK (it would only re-send the same message otherwise).
func (m *mqttServer) bad(s *session, pk packets.Packet, what string, err error) (packets.Packet, error) {
	m.sink.Malformed("mqtt "+s.st.dev.Name+" "+what, err)
	if s.v5 && pk.FixedHeader.Qos > 0 {
		if what == "topic" {
			return pk, packets.ErrTopicNameInvalid
		}
		return pk, packets.ErrPayloadFormatInvalid
	}
	return pk, packets.CodeSuccessIgnore
}

// commit hands the pushes to the runtime and acknowledges once all are
// committed.
func (m *mqttServer) commit(s *session, pk packets.Packet, pushes []protocols.Push) (packets.Packet, error) {
	qos := pk.FixedHeader.Qos
	if qos == 0 {
		for _, p := range pushes {
			if err := m.sink.Push(m.ctx, p); err != nil {
				return pk, packets.ErrRejectPacket
			}
		}
		return pk, packets.ErrRejectPacket
	}
	var left atomic.Int32
	left.Store(int32(len(pushes)))
	var failed atomic.Bool
	finished := make(chan bool, 1)
	finish := func(ok bool) {
		if qos == 1 {
			s.ack(pk.PacketID, ok)
		} else {
			finished <- ok
		}
	}
	done := func(err error) {
		if err != nil {
			failed.Store(true)
		}
		if left.Add(-1) == 0 {
			finish(!failed.Load())
		}
	}
	for i := range pushes {
		pushes[i].Done = done
		if err := m.sink.Push(m.ctx, pushes[i]); err != nil {
			// Not accepted (the gateway is stopping): no ack, the device
			// sends it again after reconnecting.
			failed.Store(true)
			if left.Add(-int32(len(pushes)-i)) == 0 {
				s.cl.Stop(err)
			}
			return pk, packets.ErrRejectPacket
		}
	}
	if qos == 1 {
		return pk, packets.ErrRejectPacket
	}
	select {
	case ok := <-finished:
		if ok {
			return pk, packets.CodeSuccessIgnore
		}
	case <-m.ctx.Done():
	}
	s.cl.Stop(errors.New("local api: data not committed"))
	return pk, packets.ErrRejectPacket
}

// answerAttributes asks the platform (through the gateway) and answers on
// v1/devices/me/attributes/response/{id}.
func (m *mqttServer) answerAttributes(st *devState, id string, req attributeRequest) {
	ctx, cancel := context.WithTimeout(m.ctx, attributeTimeout)
	defer cancel()
	resp := requestAttributes(ctx, m.sink, st.dev.Name, req)
	b, _ := json.Marshal(resp)
	_ = m.publish(st, topicAttrResponse+id, b)
}

// requestAttributes asks for the client and shared keys of a device
// request; a scope that fails is left out of the answer and logged by the
// runtime.
func requestAttributes(ctx context.Context, sink protocols.Sink, device string, req attributeRequest) map[string]map[string]json.RawMessage {
	out := map[string]map[string]json.RawMessage{}
	for _, scope := range []struct {
		name   string
		client bool
		keys   []string
	}{{"client", true, splitKeys(req.ClientKeys)}, {"shared", false, splitKeys(req.SharedKeys)}} {
		if len(scope.keys) == 0 {
			continue
		}
		vals, err := sink.RequestAttributes(ctx, device, scope.client, scope.keys)
		if err != nil {
			sink.Dropped("attribute request of "+device, 1, err)
			continue
		}
		out[scope.name] = vals
	}
	return out
}

// ack queues a PUBACK for the session's writer; a failed commit is a
// PUBACK with an error for MQTT 5 and a closed connection for 3.1.1 (which
// has no way to say so), so the device sends the message again.
func (s *session) ack(id uint16, ok bool) {
	if s.closed.Load() {
		return
	}
	if !ok && !s.v5 {
		s.cl.Stop(errors.New("local api: data not committed"))
		return
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id}
	if !ok {
		pk.ReasonCode = packets.ErrUnspecifiedError.Code
	}
	s.mu.Lock()
	s.acks = append(s.acks, pk)
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	if start {
		go s.writeAcks()
	}
}

// writeAcks writes the waiting acks in order and ends when none wait.
func (s *session) writeAcks() {
	for {
		s.mu.Lock()
		acks := s.acks
		s.acks = nil
		if len(acks) == 0 || s.closed.Load() {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, pk := range acks {
			if err := s.cl.WritePacket(pk); err != nil {
				s.close()
				break
			}
		}
	}
}

func (s *session) close() { s.closed.Store(true) }
