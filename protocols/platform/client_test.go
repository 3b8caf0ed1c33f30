package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type inbound struct {
	topic   string
	payload string
}

type harness struct {
	t     *testing.T
	c     *Client
	log   *logBuf
	ups   chan struct{}
	downs chan error
	msgs  chan inbound
}

// testConfig points at addr with short timings so the tests stay fast.
func testConfig(addr string) Config {
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	return Config{
		Host:                 host,
		Port:                 port,
		QoS:                  1,
		Security:             Security{AccessToken: "gw-token"},
		ReconnectMin:         50 * time.Millisecond,
		ReconnectMax:         400 * time.Millisecond,
		SessionLimitsTimeout: 200 * time.Millisecond,
		ConnectTimeout:       3 * time.Second,
		PublishTimeout:       3 * time.Second,
	}
}

func startClient(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, log: &logBuf{}, ups: make(chan struct{}, 16), downs: make(chan error, 16), msgs: make(chan inbound, 256)}
	c, err := New(cfg, Options{
		Logger:           zerolog.New(h.log).With().Timestamp().Logger(),
		OnConnectionUp:   func() { h.ups <- struct{}{} },
		OnConnectionDown: func(err error) { h.downs <- err },
		OnMessage: func(topic string, payload []byte) {
			select {
			case h.msgs <- inbound{topic, string(payload)}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("client log:\n%s", h.log)
		}
	})
	return h
}

func (h *harness) waitUp(timeout time.Duration) {
	h.t.Helper()
	timeout = testpeer.Timeout(timeout)
	select {
	case <-h.ups:
	case <-time.After(timeout):
		h.t.Fatalf("not connected within %s; stats %+v", timeout, h.c.Stats())
	}
	if !h.c.Connected() {
		h.t.Fatal("OnConnectionUp called but Connected() is false")
	}
}

func (h *harness) waitDown(timeout time.Duration) error {
	h.t.Helper()
	timeout = testpeer.Timeout(timeout)
	select {
	case err := <-h.downs:
		return err
	case <-time.After(timeout):
		h.t.Fatalf("connection not reported down within %s", timeout)
		return nil
	}
}

// waitFailedAttempt waits until a connection attempt failed: what a test
// that proves the client does not connect waits for instead of a sleep.
func (h *harness) waitFailedAttempt() {
	h.t.Helper()
	testpeer.Eventually(h.t, 20*time.Second, "a failed connection attempt", func() error {
		if !strings.Contains(h.log.String(), "platform connection attempt failed") {
			return fmt.Errorf("stats %+v", h.c.Stats())
		}
		return nil
	})
}

func (h *harness) waitMsg(topic string, timeout time.Duration) inbound {
	h.t.Helper()
	timeout = testpeer.Timeout(timeout)
	deadline := time.After(timeout)
	for {
		select {
		case m := <-h.msgs:
			if m.topic == topic {
				return m
			}
		case <-deadline:
			h.t.Fatalf("no message on %s within %s", topic, timeout)
		}
	}
}

func (h *harness) publish(topic string, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return h.c.Publish(ctx, topic, payload, 1)
}

func TestClientMosquittoPublishAndRestart(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), TopicTelemetry, TopicConnect)
	rpc := testpeer.Subscribe(t, m.Addr())
	h := startClient(t, testConfig(m.Addr()))
	h.waitUp(5 * time.Second)

	// mosquitto never answers getSessionLimits: the gate opened on timeout.
	lim := h.c.Limits()
	if lim.FromPlatform || lim.MaxPayload != DefaultMaxPayload {
		t.Errorf("limits %+v", lim)
	}
	events := []protocols.Event{connect("Dev A", "thermo"), tele("Dev A", 1700000000000, "t", 21.5)}
	for _, msg := range Pack(events, lim.MaxPayload, nil) {
		if err := h.publish(msg.Topic, msg.Payload); err != nil {
			t.Fatalf("publish %s: %v", msg.Topic, err)
		}
	}
	got := sub.WaitTopic(t, 5*time.Second, TopicTelemetry, 1)
	if string(got[0].Payload) != `{"Dev A":[{"ts":1700000000000,"values":{"t":21.5}}]}` {
		t.Errorf("received %s", got[0].Payload)
	}
	if c := testpeer.OnTopic(sub.Messages(), TopicConnect); len(c) != 1 || string(c[0].Payload) != `{"device":"Dev A","type":"thermo"}` {
		t.Errorf("connect messages %+v", c)
	}

	m.Stop()
	if err := h.waitDown(5 * time.Second); err == nil {
		t.Error("OnConnectionDown with nil error")
	}
	if h.c.Connected() {
		t.Error("Connected() true with the broker stopped")
	}
	if err := h.publish(TopicTelemetry, []byte(`{}`)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("publish while down: %v, want ErrNotConnected", err)
	}

	m.Restart()
	h.waitUp(10 * time.Second)
	if err := h.publish(TopicTelemetry, []byte(`{"Dev A":[{"ts":2,"values":{"t":1}}]}`)); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	sub.WaitTopic(t, 5*time.Second, TopicTelemetry, 2)

	// Subscriptions are in place after the reconnect.
	rpc.WaitReady(t, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := `{"device":"Dev A","data":{"id":1,"method":"setRelay","params":{}}}`
	if err := rpc.Publish(ctx, TopicGatewayRPC, []byte(req), 1); err != nil {
		t.Fatal(err)
	}
	if in := h.waitMsg(TopicGatewayRPC, 5*time.Second); in.payload != req {
		t.Errorf("rpc payload %s", in.payload)
	}

	st := h.c.Stats()
	if st.Reconnects != 1 || st.Publishes != 3 || st.BytesSent == 0 || st.ConnectAttempts < 2 || !st.Connected {
		t.Errorf("stats %+v", st)
	}
}

// stallHook holds PUBLISH packets on one topic until released, so the
// client's Publish is still waiting for its PUBACK when the broker dies.
type stallHook struct {
	mqtt.HookBase
	topic   string
	release chan struct{}
}

func (h *stallHook) ID() string           { return "stall" }
func (h *stallHook) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *stallHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == h.topic {
		<-h.release
	}
	return pk, nil
}

func TestClientPublishInFlightWhenBrokerDies(t *testing.T) {
	m := testpeer.StartMochi(t)
	hook := &stallHook{topic: TopicTelemetry, release: make(chan struct{})}
	if err := m.Server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(m.Addr())
	cfg.PublishTimeout = time.Second
	h := startClient(t, cfg)
	h.waitUp(5 * time.Second)

	res := make(chan error, 1)
	go func() { res <- h.publish(TopicTelemetry, []byte(`{"A":[]}`)) }()
	testpeer.Eventually(t, 5*time.Second, "the publish to be in flight", func() error {
		if h.c.Stats().Inflight != 1 {
			return errors.New("publish not in flight yet")
		}
		return nil
	})
	// mochi's Close waits for the stalled connection goroutine: release it
	// only once the client has seen the connection drop.
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	h.waitDown(5 * time.Second)
	close(hook.release)
	<-closed
	select {
	case err := <-res:
		var rej *RejectedError
		if err == nil || errors.As(err, &rej) {
			t.Fatalf("in-flight publish on a dead broker returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("publish did not return")
	}
	if h.c.Connected() {
		t.Error("still connected")
	}
}

func TestClientAuthRejectedBacksOff(t *testing.T) {
	m := testpeer.StartMochi(t, testpeer.AllowTokens("good-token"))
	cfg := testConfig(m.Addr())
	cfg.Security.AccessToken = "WRONG-TOKEN-XYZ"
	cfg.ReconnectMin, cfg.ReconnectMax = 100*time.Millisecond, 400*time.Millisecond
	h := startClient(t, cfg)

	// Delays 0, 100, 200, 400, 400 ms (-10% jitter at most): the fifth
	// attempt comes a second after the first at the earliest. A client
	// without backoff would get there in milliseconds. A loaded machine can
	// only make it later, so this bound holds there too.
	start := time.Now()
	testpeer.Eventually(t, 20*time.Second, "5 attempts and 3 logged rejections", func() error {
		if n, l := m.AuthAttempts(), strings.Count(h.log.String(), "platform rejected credentials"); n < 5 || l < 3 {
			return fmt.Errorf("%d attempts, %d logged", n, l)
		}
		return nil
	})
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("5 connection attempts in %v, want a second at least", d)
	}
	n := m.AuthAttempts()
	if h.c.Connected() {
		t.Error("connected with a wrong token")
	}
	select {
	case <-h.ups:
		t.Error("OnConnectionUp called")
	default:
	}
	logs := h.log.String()
	lines := strings.Count(logs, "platform rejected credentials")
	if lines < 3 || int64(lines) > m.AuthRejections() {
		t.Errorf("%d credential errors logged for %d rejections", lines, m.AuthRejections())
	}
	if !strings.Contains(logs, `"level":"error"`) || strings.Contains(logs, "WRONG-TOKEN-XYZ") {
		t.Errorf("log:\n%s", logs)
	}
	if st := h.c.Stats(); st.LastError == "" || st.ConnectAttempts < uint64(n) {
		t.Errorf("stats %+v", st)
	}

	cfg.Security.AccessToken = "good-token"
	good := startClient(t, cfg)
	good.waitUp(5 * time.Second)
}

func TestClientSessionLimits(t *testing.T) {
	m := testpeer.StartMochi(t)
	platform := testpeer.Subscribe(t, m.Addr(), TopicMeRPCRequestPrefix+"+")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answered := make(chan error, 1)
	go func() {
		msgs, err := platform.Wait(ctx, func(m []testpeer.Msg) bool { return len(m) > 0 })
		if err != nil {
			answered <- err
			return
		}
		req := msgs[0]
		if string(req.Payload) != `{"method":"getSessionLimits","params":{"timeout":5000}}` {
			answered <- fmt.Errorf("request %s", req.Payload)
			return
		}
		id := strings.TrimPrefix(req.Topic, TopicMeRPCRequestPrefix)
		answered <- platform.Publish(ctx, TopicMeRPCResponsePrefix+id, []byte(
			`{"maxPayloadSize":1000,"maxInflightMessages":100,`+
				`"rateLimits":{"messages":"10:1,300:60","telemetryMessages":"","telemetryDataPoints":"100:1"},`+
				`"gatewayRateLimits":{"messages":"0:0,","telemetryMessages":"","telemetryDataPoints":"500:1"}}`), 1)
	}()

	cfg := testConfig(m.Addr())
	cfg.SessionLimitsTimeout = 5 * time.Second
	start := time.Now()
	h := startClient(t, cfg)
	h.waitUp(8 * time.Second)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("gate opened after %s: the answer was not used", el)
	}
	lim := h.c.Limits()
	if lim.MaxPayload != 800 || lim.MaxInflight != 8 || !lim.FromPlatform ||
		len(lim.Device.Messages) != 2 || lim.Device.Messages[0].Count != 8 ||
		len(lim.Gateway.TelemetryDataPoints) != 1 || lim.Gateway.TelemetryDataPoints[0].Count != 400 {
		t.Errorf("limits %+v", lim)
	}
	// The answer is consumed internally, never delivered to OnMessage: the
	// first message delivered is a marker the platform sent after it.
	if err := platform.Publish(context.Background(), TopicMeAttributes, []byte(`{"marker":1}`), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-h.msgs:
		if in.topic != TopicMeAttributes || in.payload != `{"marker":1}` {
			t.Errorf("unexpected message %+v", in)
		}
	case <-time.After(testpeer.MinTimeout):
		t.Fatal("the marker did not arrive")
	}
}

func TestClientGateOpensWhenPlatformNeverAnswers(t *testing.T) {
	m := testpeer.StartMochi(t)
	cfg := testConfig(m.Addr())
	cfg.SessionLimitsTimeout = 400 * time.Millisecond
	start := time.Now()
	h := startClient(t, cfg)
	h.waitUp(5 * time.Second)
	if el := time.Since(start); el < 350*time.Millisecond {
		t.Errorf("connected after %s, before the session limits timeout", el)
	}
	lim := h.c.Limits()
	// mochi announces ReceiveMaximum 1024 in CONNACK.
	if lim.FromPlatform || lim.MaxPayload != DefaultMaxPayload || lim.MaxInflight != 819 {
		t.Errorf("limits %+v", lim)
	}
	logs := h.log.String()
	if i, j := strings.Index(logs, "negotiating session limits"), strings.Index(logs, "did not answer getSessionLimits"); i < 0 || j < i {
		t.Errorf("log:\n%s", logs)
	}
}

func TestClientRejectedPuback(t *testing.T) {
	m := testpeer.StartMochi(t, testpeer.WithACL(func(_, topic string, write bool) bool {
		return !write || topic != TopicClaim
	}))
	h := startClient(t, testConfig(m.Addr()))
	h.waitUp(5 * time.Second)
	err := h.publish(TopicClaim, []byte(`{"A":{"secretKey":"k"}}`))
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Reason != 0x87 || rej.Topic != TopicClaim {
		t.Fatalf("got %v, want RejectedError 0x87", err)
	}
	if err := h.publish(TopicTelemetry, []byte(`{"A":[]}`)); err != nil {
		t.Errorf("the connection should survive a rejection: %v", err)
	}
	if st := h.c.Stats(); st.Rejected != 1 || st.PublishErrors != 1 || st.Publishes != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientHonoursMaximumPacketSize(t *testing.T) {
	m := testpeer.StartMochi(t, testpeer.MochiCapabilities(func(c *mqtt.Capabilities) {
		c.MaximumPacketSize = 1000
		c.ReceiveMaximum = 10
	}))
	h := startClient(t, testConfig(m.Addr()))
	h.waitUp(5 * time.Second)
	if lim := h.c.Limits(); lim.MaxPayload != 800 || lim.MaxInflight != 8 {
		t.Errorf("limits %+v", lim)
	}
	err := h.publish(TopicTelemetry, bytes.Repeat([]byte("x"), 2000))
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Reason != 0x95 {
		t.Fatalf("got %v", err)
	}
	if !h.c.Connected() {
		t.Error("an oversized payload must not cost the connection")
	}
	if err := h.publish(TopicTelemetry, bytes.Repeat([]byte("x"), 800)); err != nil {
		t.Error(err)
	}
}

func TestClientMochiRestartResubscribes(t *testing.T) {
	m := testpeer.StartMochi(t)
	port := m.Port()
	h := startClient(t, testConfig(m.Addr()))
	h.waitUp(5 * time.Second)

	m.Close()
	h.waitDown(5 * time.Second)
	// A new broker knows nothing about us: messages arrive only if the
	// client subscribed again by itself.
	m2 := testpeer.StartMochi(t, testpeer.MochiPort(port))
	h.waitUp(10 * time.Second)
	topics := []string{
		TopicMeAttributes, TopicMeAttributesResponsePrefix + "3", TopicMeRPCRequestPrefix + "9",
		TopicMeRPCResponsePrefix + "77", TopicAttributes, TopicAttributesResponse, TopicGatewayRPC,
	}
	if err := m2.Publish("v1/not/subscribed", []byte("x"), 1); err != nil {
		t.Fatal(err)
	}
	for i, tp := range topics {
		if err := m2.Publish(tp, []byte(strconv.Itoa(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	for i, tp := range topics {
		if in := h.waitMsg(tp, 5*time.Second); in.payload != strconv.Itoa(i) {
			t.Errorf("%s: %q", tp, in.payload)
		}
	}
	if err := h.publish(TopicTelemetry, []byte(`{"A":[]}`)); err != nil {
		t.Error(err)
	}
}

func TestClientClose(t *testing.T) {
	m := testpeer.StartMochi(t)
	h := startClient(t, testConfig(m.Addr()))
	h.waitUp(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.waitDown(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("down error %v", err)
	}
	if err := h.c.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := h.publish(TopicTelemetry, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after close: %v", err)
	}
	if err := h.c.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close: %v", err)
	}
	if h.c.Connected() {
		t.Error("connected after close")
	}
}

func TestClientTLS(t *testing.T) {
	files := testpeer.GenerateTLS(t)
	m := testpeer.StartMosquitto(t, testpeer.MosquittoTLS(files.ServerCert, files.ServerKey))
	base := testConfig(m.TLSAddr())
	base.Security = Security{Type: SecurityTLSAccessToken, AccessToken: "tok"}

	t.Run("verified with CA", func(t *testing.T) {
		cfg := base
		cfg.Security.CACert = files.CACert
		h := startClient(t, cfg)
		h.waitUp(5 * time.Second)
		if err := h.publish(TopicTelemetry, []byte(`{"A":[]}`)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown CA fails verification", func(t *testing.T) {
		h := startClient(t, base)
		h.waitFailedAttempt()
		if h.c.Connected() {
			t.Fatal("connected to a server signed by an unknown CA")
		}
		if st := h.c.Stats(); !strings.Contains(st.LastError, "certificate") {
			t.Errorf("last error %q", st.LastError)
		}
		if !strings.Contains(h.log.String(), "platform connection attempt failed") {
			t.Errorf("log:\n%s", h.log)
		}
	})
	t.Run("insecure skips verification", func(t *testing.T) {
		cfg := base
		cfg.Security.Insecure = true
		h := startClient(t, cfg)
		h.waitUp(5 * time.Second)
	})
	t.Run("plain client on the TLS port fails", func(t *testing.T) {
		cfg := base
		cfg.Security = Security{AccessToken: "tok"}
		h := startClient(t, cfg)
		h.waitFailedAttempt()
		if h.c.Connected() {
			t.Fatal("plain MQTT connected to a TLS listener")
		}
	})
}

func TestClientX509Certificate(t *testing.T) {
	files := testpeer.GenerateTLS(t)
	m := testpeer.StartMosquitto(t, testpeer.MosquittoTLS(files.ServerCert, files.ServerKey),
		testpeer.MosquittoConfig("cafile "+files.CACert, "require_certificate true"))
	base := testConfig(m.TLSAddr())

	t.Run("client certificate accepted", func(t *testing.T) {
		cfg := base
		cfg.Security = Security{Type: SecurityX509Certificate, CACert: files.CACert, Cert: files.ClientCert, PrivateKey: files.ClientKey}
		h := startClient(t, cfg)
		h.waitUp(5 * time.Second)
	})
	t.Run("no client certificate refused", func(t *testing.T) {
		cfg := base
		cfg.Security = Security{Type: SecurityTLSAccessToken, AccessToken: "tok", CACert: files.CACert}
		h := startClient(t, cfg)
		h.waitFailedAttempt()
		if h.c.Connected() {
			t.Fatal("connected without the required client certificate")
		}
	})
}
