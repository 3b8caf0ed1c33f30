// Package platform connects the gateway to a ThingsBoard-compatible platform
// over the Gateway MQTT API (MQTT 5) and encodes events into its payloads.
//
// Delivery is at-least-once and owned by the caller: Publish at QoS 1
// returns nil only once the PUBACK arrived, and the caller deletes data from
// its journal only then. Anything else (timeout, connection loss) means
// "unknown": keep the data and send it again later. Duplicates are harmless
// because telemetry carries explicit timestamps.
package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/eclipse/paho.golang/paho/store/memory"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/kit/pahoconn"
)

var (
	// ErrNotConnected is returned by Publish while the session is not up,
	// including the short window after CONNACK while session limits are
	// negotiated. Nothing was sent; retry after OnConnectionUp.
	ErrNotConnected = errors.New("platform: not connected")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("platform: client closed")
)

// RejectedError is a negative PUBACK (reason code >= 0x80), e.g. 0x99
// payload format invalid (quota codes are a QuotaError), or a payload the broker
// announced it would not accept. The platform has seen the message and
// refused it, so resending the same bytes will not help: the caller should
// drop or quarantine it rather than retry forever.
type RejectedError struct {
	Topic  string
	Reason byte
	Detail string // reason string from the broker, when given
}

func (e *RejectedError) Error() string {
	s := fmt.Sprintf("platform rejected publish to %s: reason 0x%02x", e.Topic, e.Reason)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// reasonPacketTooLarge is the MQTT 5 reason code 0x95.
const reasonPacketTooLarge = 0x95

// inboundReceiveMaximum is our CONNECT ReceiveMaximum. paho allocates a
// channel of this many slots per connection (65535 by default), and inbound
// traffic (RPC, attribute updates) is light.
const inboundReceiveMaximum = 32

// getSessionLimitsRequest is what the SDK sends after every connect.
var getSessionLimitsRequest = []byte(`{"method":"getSessionLimits","params":{"timeout":5000}}`)

// Options are the client's callbacks.
type Options struct {
	Logger zerolog.Logger
	// OnConnectionUp is called once per connection, after the session
	// limits were negotiated (Connected is true from then on). Calls to
	// OnConnectionUp and OnConnectionDown never overlap and always
	// alternate. Neither may call Close.
	OnConnectionUp func()
	// OnConnectionDown is called when a connection reported by
	// OnConnectionUp is lost or closed.
	OnConnectionDown func(err error)
	// OnMessage receives every inbound publication on the subscribed
	// topics (the getSessionLimits answer excepted). It runs on paho's
	// receive goroutine, and the message is acknowledged when it returns:
	// it must not block (hand the message to a channel or actor). The
	// payload is not reused by the client and may be retained.
	OnMessage func(topic string, payload []byte)
}

// Stats are cumulative counters of the client.
type Stats struct {
	Connected       bool
	ConnectAttempts uint64 // every CONNECT attempt, successful or not
	Reconnects      uint64 // successful connections after the first
	Publishes       uint64 // acknowledged (QoS 1) or written (QoS 0)
	PublishErrors   uint64 // failed, including rejections
	Rejected        uint64 // negative PUBACKs
	Inflight        int64  // Publish calls currently waiting
	BytesSent       uint64 // payload bytes of successful publishes
	Received        uint64 // inbound publications
	// RateLimited counts Admit calls that had to wait for the session's
	// rate limits, RateLimitWait their total wait.
	RateLimited   uint64
	RateLimitWait time.Duration
	// QuotaExceeded counts publishes the platform refused for its rate
	// limits (to be sent again, not in Rejected).
	QuotaExceeded uint64
	LastError     string
	LastErrorAt   time.Time
}

// Client is the platform connection. It is safe for concurrent use; run
// several Publish calls in parallel (up to Limits().MaxInflight) for
// throughput, since each QoS 1 Publish waits a round trip.
type Client struct {
	cfg Config
	// explicitID is the configured client id, empty when derived: after
	// provisioning it is derived again from the received credentials.
	explicitID string
	opts       Options
	log        zerolog.Logger
	tls        *tls.Config
	url        *url.URL
	backoff    *reconnector

	cm atomic.Pointer[autopaho.ConnectionManager]
	// writing is a one-slot semaphore held by a publish from just before it
	// is handed to paho until its PUBLISH is on the connection: with one
	// PUBLISH being written at a time, the connection's "a PUBLISH was
	// written" belongs to its holder, whose hook is sent.
	writing   chan struct{}
	sent      atomic.Pointer[sentHook]
	connected atomic.Bool
	reqSeq    atomic.Uint64

	// cbMu serialises the user's up/down callbacks with the state change
	// that triggers them, so they alternate.
	cbMu sync.Mutex

	mu         sync.Mutex
	started    bool
	closed     bool
	gen        uint64 // bumped on every connection up and down
	connCancel context.CancelFunc
	everUp     bool
	upAt       time.Time
	upNotified bool
	link       linkLimits
	limits     SessionLimits
	pending    pendingRequest
	throttle   *throttle
	lastErr    error
	lastErrAt  time.Time
	provCancel context.CancelFunc // provisioning in progress, nil otherwise
	provDone   chan struct{}
	wg         sync.WaitGroup
	finished   chan struct{}

	reconnects, publishes, pubErrors, rejected, bytesSent, received atomic.Uint64
	inflight                                                        atomic.Int64
}

type pendingRequest struct {
	id uint64
	ch chan []byte
}

// New validates cfg and loads its certificates; it does no network I/O.
func New(cfg Config, opts Options) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	explicitID := cfg.ClientID
	cfg = cfg.withDefaults()
	var tc *tls.Config
	var err error
	if cfg.provisioning() {
		// The credentials come later; the provisioning connection has TLS
		// settings of its own.
		tc, err = cfg.provisionTLS()
	} else {
		tc, err = cfg.tlsConfig()
	}
	if err != nil {
		return nil, err
	}
	c := &Client{
		explicitID: explicitID,
		cfg:        cfg,
		opts:       opts,
		log:        opts.Logger.With().Str("component", "platform").Logger(),
		tls:        tc,
		url:        cfg.serverURL(),
		backoff:    newReconnector(cfg.ReconnectMin, cfg.ReconnectMax),
		limits:     effectiveLimits(cfg.MaxPayload, cfg.Host, linkLimits{}, nil),
		finished:   make(chan struct{}),
		writing:    make(chan struct{}, 1),
	}
	c.throttle = newThrottle(c.log)
	c.throttle.set(c.limits)
	return c, nil
}

// Start connects in the background and keeps reconnecting until ctx is done
// or Close is called. It returns at once; watch OnConnectionUp or Connected.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.started {
		return errors.New("platform: already started")
	}
	c.started = true
	if c.cfg.Security.Type == "" {
		// No credentials yet: provisioning obtains them in the background
		// and connects with them (provision_client.go).
		pctx, cancel := context.WithCancel(ctx)
		c.provCancel = cancel
		c.provDone = make(chan struct{})
		go c.provisionThenConnect(pctx, ctx)
		return nil
	}
	if err := c.connectLocked(ctx); err != nil {
		c.started = false
		return err
	}
	return nil
}

// connectLocked starts the connection manager; c.mu is held.
func (c *Client) connectLocked(ctx context.Context) error {
	user, pass := c.cfg.credentials()
	pcfg := autopaho.ClientConfig{
		ServerUrls:            []*url.URL{c.url},
		TlsCfg:                c.tls,
		KeepAlive:             uint16(c.cfg.KeepAlive / time.Second),
		SessionExpiryInterval: uint32(c.cfg.SessionExpiry / time.Second),
		ReconnectBackoff:      c.backoff.delay,
		ConnectTimeout:        c.cfg.ConnectTimeout,
		ConnectUsername:       user,
		ConnectPassword:       pass,
		OnConnectionUp:        c.onUp,
		OnConnectionDown:      c.onDown,
		OnConnectError:        c.onConnectError,
		Errors:                pahoLogger{c.log},
		PahoErrors:            pahoLogger{c.log},
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
			defer cancel()
			var conn net.Conn
			var err error
			if c.tls != nil {
				conn, err = (&tls.Dialer{Config: c.tls}).DialContext(dctx, "tcp", u.Host)
			} else {
				conn, err = (&net.Dialer{}).DialContext(dctx, "tcp", u.Host)
			}
			if err != nil {
				return nil, err
			}
			return pahoconn.WrapNotify(conn, c.publishWritten), nil
		},
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.ReceiveMaximum = ptr(uint16(inboundReceiveMaximum))
			return cp, nil
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          c.cfg.ClientID,
			Session:           state.New(newLazyStore(), memory.New()),
			PacketTimeout:     c.cfg.PublishTimeout,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.onPublish},
			OnClientError:     c.onClientError,
			OnServerDisconnect: func(d *paho.Disconnect) {
				c.setErr(fmt.Errorf("platform sent DISCONNECT (reason 0x%02x)", d.ReasonCode))
				if d.ReasonCode == reasonMessageRateTooHigh || d.ReasonCode == ReasonQuotaExceeded {
					c.throttle.exhaustedAll()
				}
			},
		},
	}
	if c.cfg.KeepAlive > 0 && pcfg.KeepAlive == 0 {
		pcfg.KeepAlive = 1
	}
	cm, err := autopaho.NewConnection(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("platform: %w", err)
	}
	c.cm.Store(cm)
	c.log.Info().Object("config", c.cfg).Msg("connecting to platform")
	go c.watch(cm)
	return nil
}

func ptr[T any](v T) *T { return &v }

// watch handles the manager's end (Close or Start's ctx): autopaho does not
// call OnConnectionDown then, but our user still has to hear about it.
func (c *Client) watch(cm *autopaho.ConnectionManager) {
	<-cm.Done()
	c.connected.Store(false)
	c.cbMu.Lock()
	c.mu.Lock()
	c.gen++
	if c.connCancel != nil {
		c.connCancel()
	}
	wasUp := c.upNotified
	c.upNotified = false
	c.mu.Unlock()
	if wasUp && c.opts.OnConnectionDown != nil {
		c.opts.OnConnectionDown(ErrClosed)
	}
	c.cbMu.Unlock()
	c.wg.Wait()
	close(c.finished)
}

// Close disconnects and stops reconnecting. In-flight Publish calls fail.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	provCancel, provDone := c.provCancel, c.provDone
	cm := c.cm.Load()
	c.mu.Unlock()
	c.connected.Store(false)
	if !started {
		return nil
	}
	if cm == nil {
		// Still provisioning: it sees closed and never connects.
		if provCancel != nil {
			provCancel()
			select {
			case <-provDone:
			case <-ctx.Done():
				return fmt.Errorf("platform: close: %w", ctx.Err())
			}
		}
		return nil
	}
	if err := cm.Disconnect(ctx); err != nil {
		return fmt.Errorf("platform: close: %w", err)
	}
	select {
	case <-c.finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("platform: close: %w", ctx.Err())
	}
}

// Connected reports whether the session is up and ready for publishing:
// CONNACK received and the session limits answered or timed out.
func (c *Client) Connected() bool { return c.connected.Load() }

// Limits returns the effective limits of the current session.
func (c *Client) Limits() SessionLimits {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limits
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	s := Stats{
		Connected:       c.connected.Load(),
		ConnectAttempts: c.backoff.attemptCount(),
		Reconnects:      c.reconnects.Load(),
		Publishes:       c.publishes.Load(),
		PublishErrors:   c.pubErrors.Load(),
		Rejected:        c.rejected.Load(),
		Inflight:        c.inflight.Load(),
		BytesSent:       c.bytesSent.Load(),
		Received:        c.received.Load(),
		RateLimited:     c.throttle.waits.Load(),
		RateLimitWait:   time.Duration(c.throttle.waitNanos.Load()),
		QuotaExceeded:   c.throttle.quota.Load(),
	}
	c.mu.Lock()
	if c.lastErr != nil {
		s.LastError, s.LastErrorAt = c.lastErr.Error(), c.lastErrAt
	}
	c.mu.Unlock()
	return s
}

// Admit blocks until the session's rate limits let a message to topic with
// values datapoints go, charges it, and returns how long it waited; it fails
// only with ctx's error. Call it before each Publish (Publish does not, so a
// caller can wait without a deadline and still bound the PUBACK wait). The
// gateway's own v1/devices/me/* topics count against the session's
// rateLimits, v1/gateway/* against its gatewayRateLimits. Without limits it
// returns at once.
func (c *Client) Admit(ctx context.Context, topic string, values int) (time.Duration, error) {
	return c.throttle.admit(ctx, topic, values)
}

// Publish sends one message. With QoS 1 it blocks until the PUBACK and
// returns nil only then; a negative PUBACK is a *RejectedError, except the
// reason codes meaning "rate limit reached", which are a *QuotaError
// (errors.Is ErrQuotaExceeded: send again after Admit). While the
// session is down it returns ErrNotConnected at once. Any other error (ctx,
// PublishTimeout, connection lost while waiting) leaves delivery unknown.
//
// A QoS 1 message written before a connection loss stays in the MQTT
// session, so when the broker kept the session it is resent on reconnect and
// this call may still succeed within PublishTimeout.
//
// QoS 0 returns once the message is written to the socket: no delivery
// guarantee at all.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, qos byte) error {
	return c.publish(ctx, topic, payload, qos, nil)
}

// PublishThen is Publish, and calls sent exactly once: as soon as the
// PUBLISH is on the connection, or when it returns without having written
// it. A publisher that keeps its messages in order starts the next one at
// sent instead of waiting for this one's PUBACK: PUBLISH packets of this
// client are written one at a time, in the order their calls got the turn.
func (c *Client) PublishThen(ctx context.Context, topic string, payload []byte, qos byte, sent func()) error {
	return c.publish(ctx, topic, payload, qos, sent)
}

// sentHook is the writing publish's callback; whoever takes it from
// Client.sent calls it, once.
type sentHook struct {
	c  *Client
	fn func() // nil for none
}

func (h *sentHook) done() {
	<-h.c.writing
	if h.fn != nil {
		h.fn()
	}
}

// publishWritten runs after each PUBLISH the connection writes. One that
// paho resends by itself after a reconnect may release the holder early.
func (c *Client) publishWritten() {
	if h := c.sent.Swap(nil); h != nil {
		h.done()
	}
}

func (c *Client) publish(ctx context.Context, topic string, payload []byte, qos byte, sent func()) error {
	if err := c.admissible(ctx, topic, len(payload), qos); err != nil {
		if sent != nil {
			sent()
		}
		return err
	}
	h := &sentHook{c: c, fn: sent}
	c.sent.Store(h)
	c.inflight.Add(1)
	pr, err := c.cm.Load().Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
	c.inflight.Add(-1)
	if c.sent.CompareAndSwap(h, nil) {
		h.done() // returned without writing
	}
	return c.published(topic, len(payload), pr, err)
}

// admissible checks what makes a publish fail before it is written, then
// takes the writing turn (see Client.writing).
func (c *Client) admissible(ctx context.Context, topic string, size int, qos byte) error {
	if qos > 1 {
		return fmt.Errorf("platform: QoS %d not supported", qos)
	}
	if !c.connected.Load() {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return ErrNotConnected
	}
	c.mu.Lock()
	maxPacket := c.link.maxPacket
	c.mu.Unlock()
	if maxPacket > 0 && publishPacketSize(topic, size) > maxPacket {
		c.pubErrors.Add(1)
		c.rejected.Add(1)
		return &RejectedError{Topic: topic, Reason: reasonPacketTooLarge,
			Detail: fmt.Sprintf("%d byte payload exceeds the broker's maximum packet size %d", size, maxPacket)}
	}
	select {
	case c.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// published accounts for a publish's outcome and maps it to the errors
// Publish documents.
func (c *Client) published(topic string, size int, pr *paho.PublishResponse, err error) error {
	if err == nil {
		c.publishes.Add(1)
		c.bytesSent.Add(uint64(size))
		c.throttle.succeeded(topic)
		return nil
	}
	c.pubErrors.Add(1)
	if pr != nil && isQuotaReason(pr.ReasonCode) {
		qe := &QuotaError{Topic: topic, Reason: pr.ReasonCode}
		if pr.Properties != nil {
			qe.Detail = pr.Properties.ReasonString
		}
		c.throttle.exhausted(topic)
		c.setErr(qe)
		return qe
	}
	if pr != nil && pr.ReasonCode >= 0x80 {
		c.rejected.Add(1)
		rej := &RejectedError{Topic: topic, Reason: pr.ReasonCode}
		if pr.Properties != nil {
			rej.Detail = pr.Properties.ReasonString
		}
		c.setErr(rej)
		return rej
	}
	if errors.Is(err, autopaho.ConnectionDownError) {
		return ErrNotConnected
	}
	err = fmt.Errorf("platform: publish to %s: %w", topic, err)
	c.setErr(err)
	return err
}

// publishPacketSize is the encoded size of a PUBLISH without properties.
func publishPacketSize(topic string, payload int) int {
	rem := 2 + len(topic) + 2 + 1 + payload // topic, packet id, property length
	n := 1 + 1
	for r := rem; r > 127; r >>= 7 {
		n++
	}
	return n + rem
}

func (c *Client) setErr(err error) {
	c.mu.Lock()
	c.lastErr, c.lastErrAt = err, time.Now()
	c.mu.Unlock()
}

func (c *Client) onClientError(err error) { c.setErr(err) }

// isAuthFailure matches the CONNACK codes for bad credentials: MQTT 5
// 0x86/0x87 and their MQTT 3 counterparts 0x04/0x05, which some brokers
// pass through.
func isAuthFailure(code byte) bool {
	return code == 0x86 || code == 0x87 || code == 0x04 || code == 0x05
}

func (c *Client) onConnectError(err error) {
	c.setErr(err)
	retry := c.backoff.nominal()
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) && isAuthFailure(ce.ReasonCode) {
		c.log.Error().Str("platform", c.url.Host).Str("client_id", c.cfg.ClientID).
			Str("security", c.cfg.Security.Type).Uint8("reason_code", ce.ReasonCode).
			Str("reason", ce.Reason).Dur("retry_in", retry).
			Msg("platform rejected credentials; check the gateway's access token, username/password or certificate")
		return
	}
	c.log.Warn().Err(err).Str("platform", c.url.Host).Dur("retry_in", retry).
		Msg("platform connection attempt failed")
}

// onUp runs on autopaho's goroutine and must not block: the subscribe and
// session-limits handshake runs on its own goroutine.
func (c *Client) onUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	c.backoff.up()
	c.mu.Lock()
	if c.connCancel != nil {
		c.connCancel()
	}
	c.gen++
	gen := c.gen
	ctx, cancel := context.WithCancel(context.Background())
	c.connCancel = cancel
	if c.everUp {
		c.reconnects.Add(1)
	}
	c.everUp = true
	c.upAt = time.Now()
	c.link = linkFromConnack(ca)
	c.limits = effectiveLimits(c.cfg.MaxPayload, c.cfg.Host, c.link, nil)
	// The throttle keeps the last session's limits until the platform
	// answers: nothing is published before, and replacing them with the
	// defaults would forget what was sent in their windows.
	c.wg.Add(1)
	c.mu.Unlock()
	c.log.Info().Str("platform", c.url.Host).Bool("session_present", ca.SessionPresent).
		Msg("connected to platform; negotiating session limits")
	go func() {
		defer c.wg.Done()
		c.handshake(ctx, gen, cm)
	}()
}

func (c *Client) subscriptions() []paho.SubscribeOptions {
	q := c.cfg.QoS
	// NoLocal: on a plain broker we would otherwise receive our own
	// getSessionLimits request as an RPC to the gateway.
	return []paho.SubscribeOptions{
		{Topic: TopicMeAttributes, QoS: q, NoLocal: true},
		{Topic: TopicMeAttributesResponsePrefix + "+", QoS: q, NoLocal: true},
		{Topic: TopicMeRPCRequestPrefix + "+", QoS: q, NoLocal: true},
		{Topic: TopicMeRPCResponsePrefix + "+", QoS: q, NoLocal: true},
		{Topic: TopicAttributes, QoS: 1, NoLocal: true},
		{Topic: TopicAttributesResponse, QoS: 1, NoLocal: true},
		{Topic: TopicGatewayRPC, QoS: 1, NoLocal: true},
	}
}

// handshake subscribes, asks for the session limits and opens the gate.
// Like upstream, nothing is published before the answer or its timeout.
func (c *Client) handshake(ctx context.Context, gen uint64, cm *autopaho.ConnectionManager) {
	subs := c.subscriptions()
	sctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	sa, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		// The data path does not need the subscriptions; only inbound RPC
		// and attribute updates are affected until the next connect.
		c.log.Warn().Err(err).Msg("platform subscribe failed")
	} else {
		for i, r := range sa.Reasons {
			if r >= 0x80 && i < len(subs) {
				c.log.Warn().Str("topic", subs[i].Topic).Uint8("reason_code", r).Msg("platform refused subscription")
			}
		}
	}

	id := c.reqSeq.Add(1)
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.gen != gen {
		c.mu.Unlock()
		return
	}
	c.pending = pendingRequest{id: id, ch: ch}
	c.mu.Unlock()

	deadline := time.Now().Add(c.cfg.SessionLimitsTimeout)
	pctx, cancel := context.WithDeadline(ctx, deadline)
	_, err = cm.Publish(pctx, &paho.Publish{
		Topic: TopicMeRPCRequestPrefix + strconv.FormatUint(id, 10), QoS: c.cfg.QoS, Payload: getSessionLimitsRequest})
	cancel()
	if err != nil && ctx.Err() == nil {
		c.log.Debug().Err(err).Msg("getSessionLimits request not acknowledged")
	}
	var srv *serverLimits
	timer := time.NewTimer(time.Until(deadline))
	select {
	case p := <-ch:
		timer.Stop()
		s, err := parseSessionLimits(p)
		if err != nil {
			c.log.Warn().Err(err).Bytes("payload", p).Msg("ignoring unparsable session limits")
		} else {
			srv = &s
		}
	case <-timer.C:
		c.log.Info().Dur("timeout", c.cfg.SessionLimitsTimeout).
			Msg("platform did not answer getSessionLimits (platform < 3.8?); using default limits")
	case <-ctx.Done():
		timer.Stop()
		return
	}

	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.mu.Lock()
	c.pending = pendingRequest{}
	if c.gen != gen || c.closed {
		c.mu.Unlock()
		return
	}
	c.limits = effectiveLimits(c.cfg.MaxPayload, c.cfg.Host, c.link, srv)
	c.throttle.set(c.limits)
	lim := c.limits
	c.upNotified = true
	c.connected.Store(true)
	c.mu.Unlock()
	c.log.Info().Int("max_payload", lim.MaxPayload).Int("max_inflight", lim.MaxInflight).
		Bool("from_platform", lim.FromPlatform).Msg("platform session ready")
	if c.opts.OnConnectionUp != nil {
		c.opts.OnConnectionUp()
	}
}

func (c *Client) onDown() bool {
	c.connected.Store(false)
	c.backoff.down()
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.mu.Lock()
	c.gen++
	if c.connCancel != nil {
		c.connCancel()
		c.connCancel = nil
	}
	c.pending = pendingRequest{}
	err := c.lastErr
	if err == nil || c.lastErrAt.Before(c.upAt) {
		err = errors.New("platform connection lost")
	}
	wasUp := c.upNotified
	c.upNotified = false
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return false
	}
	c.log.Warn().Err(err).Dur("retry_in", c.backoff.nominal()).Msg("platform connection lost")
	if wasUp && c.opts.OnConnectionDown != nil {
		c.opts.OnConnectionDown(err)
	}
	return true
}

// onPublish runs on paho's receive goroutine: no blocking here.
func (c *Client) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	c.received.Add(1)
	if id, ok := strings.CutPrefix(p.Topic, TopicMeRPCResponsePrefix); ok && c.deliverPending(id, p.Payload) {
		return true, nil
	}
	if c.opts.OnMessage != nil {
		c.opts.OnMessage(p.Topic, p.Payload)
	}
	return true, nil
}

func (c *Client) deliverPending(id string, payload []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending.id == 0 || id != strconv.FormatUint(c.pending.id, 10) {
		return false
	}
	select {
	case c.pending.ch <- payload:
	default:
	}
	return true
}

// pahoLogger routes paho's internal error logs to debug: connection
// problems are already reported once, clearly, by this package.
type pahoLogger struct{ l zerolog.Logger }

func (p pahoLogger) Println(v ...any) { p.l.Debug().Str("source", "paho").Msg(fmt.Sprint(v...)) }
func (p pahoLogger) Printf(format string, v ...any) {
	p.l.Debug().Str("source", "paho").Msgf(format, v...)
}
