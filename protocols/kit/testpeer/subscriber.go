package testpeer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Msg is one received publication.
type Msg struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	Received time.Time
}

// SubscriberOptions configures SubscribeWith.
type SubscriberOptions struct {
	Username string
	Password string
	// ClientID defaults to a random one; reuse an id to resume a session.
	ClientID string
	QoS      byte // subscription QoS, default 1
	// QoS0 forces QoS 0 subscriptions (QoS alone cannot express 0).
	QoS0 bool
	TLS  *tls.Config // nil: plain TCP
	// OnMessage, when set, also sees every message, on paho's goroutine:
	// it must not block (a reply is published from a goroutine of its own).
	OnMessage func(Msg)
}

// Subscriber is an MQTT 5 client that records everything it receives. It
// keeps a persistent session and QoS 1 subscriptions and resubscribes after
// every reconnect, so messages the broker queued while it was away (its own
// reconnect or a broker restart with persistence) are not lost.
type Subscriber struct {
	cm     *autopaho.ConnectionManager
	topics []string

	mu     sync.Mutex
	msgs   []Msg
	notify chan struct{} // closed and replaced on every arrival or (re)subscription
	ready  bool          // connected and subscribed
	readys int           // completed subscriptions, across reconnects
}

// Subscribe connects to addr (host:port) anonymously and subscribes to the
// topic filters, returning once the broker acknowledged the subscription.
func Subscribe(t testing.TB, addr string, topics ...string) *Subscriber {
	t.Helper()
	return SubscribeWith(t, addr, SubscriberOptions{}, topics...)
}

// SubscribeWith is Subscribe with credentials or TLS.
func SubscribeWith(t testing.TB, addr string, o SubscriberOptions, topics ...string) *Subscriber {
	t.Helper()
	if o.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.ClientID = "testpeer-sub-" + hex.EncodeToString(b[:])
	}
	qos := o.QoS
	if qos == 0 && !o.QoS0 {
		qos = 1
	}
	scheme := "mqtt"
	if o.TLS != nil {
		scheme = "mqtts"
	}
	s := &Subscriber{topics: topics, notify: make(chan struct{})}
	cfg := autopaho.ClientConfig{
		ServerUrls: []*url.URL{{Scheme: scheme, Host: addr}},
		TlsCfg:     o.TLS,
		KeepAlive:  10,
		// Never Clean Start, even the first time (the id is fresh anyway):
		// mosquitto 2.0.11 does not restore, after its own restart, a
		// session whose last CONNECT had Clean Start set.
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         3600,
		// Quick, bounded retries: brokers come back within a test.
		ReconnectBackoff: func(attempt int) time.Duration {
			if attempt == 0 {
				return 50 * time.Millisecond
			}
			return 200 * time.Millisecond
		},
		ConnectTimeout:  5 * time.Second,
		ConnectUsername: o.Username,
		ConnectPassword: []byte(o.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			subs := make([]paho.SubscribeOptions, len(topics))
			for i, tp := range topics {
				subs[i] = paho.SubscribeOptions{Topic: tp, QoS: qos}
			}
			go func() {
				if len(subs) > 0 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
						return // the connection dropped; the next OnConnectionUp retries
					}
				}
				s.mu.Lock()
				s.ready = true
				s.readys++
				s.signal()
				s.mu.Unlock()
			}()
		},
		OnConnectionDown: func() bool {
			s.mu.Lock()
			s.ready = false
			s.mu.Unlock()
			return true
		},
		ClientConfig: paho.ClientConfig{
			ClientID: o.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				p := pr.Packet
				m := Msg{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Received: time.Now()}
				if o.OnMessage != nil {
					o.OnMessage(m)
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, m)
				s.signal()
				s.mu.Unlock()
				return true, nil
			}},
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("testpeer: subscriber: %v", err)
	}
	s.cm = cm
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	if err := s.waitReady(10 * time.Second); err != nil {
		t.Fatalf("testpeer: subscriber %s to %v: %v", addr, topics, err)
	}
	return s
}

// signal wakes waiters; s.mu must be held.
func (s *Subscriber) signal() {
	close(s.notify)
	s.notify = make(chan struct{})
}

func (s *Subscriber) waitReady(timeout time.Duration) error {
	return s.waitState(timeout, func() bool { return s.ready })
}

// waitState waits until cond, evaluated under s.mu, holds.
func (s *Subscriber) waitState(timeout time.Duration, cond func() bool) error {
	timeout = Timeout(timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.notify
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("not subscribed after %s", timeout)
		}
	}
}

// WaitReady waits until the subscriber is connected and subscribed, e.g.
// after a broker restart.
func (s *Subscriber) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := s.waitReady(timeout); err != nil {
		t.Fatalf("testpeer: subscriber: %v", err)
	}
}

// WaitSubscriptions waits until n subscriptions completed in total, e.g.
// n=2 for "resubscribed after one reconnect". Messages queued in the
// broker's session may arrive before that.
func (s *Subscriber) WaitSubscriptions(t testing.TB, timeout time.Duration, n int) {
	t.Helper()
	if err := s.waitState(timeout, func() bool { return s.readys >= n }); err != nil {
		t.Fatalf("testpeer: subscriber: %d subscriptions: %v", n, err)
	}
}

// Subscriptions counts completed (re)subscriptions, one per connection.
func (s *Subscriber) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readys
}

// Messages returns a copy of everything received so far, in arrival order.
func (s *Subscriber) Messages() []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// Reset forgets the messages received so far.
func (s *Subscriber) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
}

// Wait blocks until cond holds for the messages received so far or ctx
// ends. cond is re-evaluated on every arrival, never by polling. It is safe
// to call from any goroutine.
func (s *Subscriber) Wait(ctx context.Context, cond func([]Msg) bool) ([]Msg, error) {
	for {
		s.mu.Lock()
		msgs, ch := slices.Clone(s.msgs), s.notify
		s.mu.Unlock()
		if cond(msgs) {
			return msgs, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return msgs, ctx.Err()
		}
	}
}

// WaitFor is Wait with a timeout that fails the test, listing what did
// arrive. Call it from the test goroutine.
func (s *Subscriber) WaitFor(t testing.TB, timeout time.Duration, cond func([]Msg) bool) []Msg {
	t.Helper()
	timeout = Timeout(timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msgs, err := s.Wait(ctx, cond)
	if err != nil {
		t.Fatalf("testpeer: condition not met within %s; received %d messages:%s", timeout, len(msgs), describe(msgs))
	}
	return msgs
}

// WaitTopic waits until n messages arrived on topic and returns them.
func (s *Subscriber) WaitTopic(t testing.TB, timeout time.Duration, topic string, n int) []Msg {
	t.Helper()
	s.WaitFor(t, timeout, func(m []Msg) bool { return len(OnTopic(m, topic)) >= n })
	return OnTopic(s.Messages(), topic)
}

// OnTopic filters messages by exact topic.
func OnTopic(msgs []Msg, topic string) []Msg {
	var out []Msg
	for _, m := range msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// Publish sends a message from the subscriber's connection; with QoS 1 it
// returns once the broker acknowledged it.
func (s *Subscriber) Publish(ctx context.Context, topic string, payload []byte, qos byte) error {
	_, err := s.cm.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos})
	return err
}

// PublishRetained publishes a retained message: the broker hands it to a
// subscriber that subscribes later, so a test need not know when the
// gateway's subscription is in place.
func (s *Subscriber) PublishRetained(ctx context.Context, topic string, payload []byte, qos byte) error {
	_, err := s.cm.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: true})
	return err
}

func describe(msgs []Msg) string {
	var b strings.Builder
	for i, m := range msgs {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... %d more", len(msgs)-i)
			break
		}
		p := m.Payload
		if len(p) > 200 {
			p = append(p[:200:200], "..."...)
		}
		fmt.Fprintf(&b, "\n  %s %s", m.Topic, p)
	}
	return b.String()
}

// PlatformSessionLimits is what a ThingsBoard 3.8+ platform with default
// settings answers to getSessionLimits.
const PlatformSessionLimits = `{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{},"gatewayRateLimits":{}}`

// AnswerSessionLimits answers the gateway's getSessionLimits RPC on the
// broker at addr with limits, as a current platform does, so a gateway
// under test does not wait out the timeout it keeps for old platforms.
func AnswerSessionLimits(t testing.TB, addr, limits string) {
	t.Helper()
	var s *Subscriber
	ready := make(chan struct{})
	s = SubscribeWith(t, addr, SubscriberOptions{OnMessage: func(m Msg) {
		if !strings.Contains(string(m.Payload), "getSessionLimits") {
			return
		}
		id := m.Topic[strings.LastIndexByte(m.Topic, '/')+1:]
		go func() {
			<-ready
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Publish(ctx, "v1/devices/me/rpc/response/"+id, []byte(limits), 1)
		}()
	}}, "v1/devices/me/rpc/request/+")
	close(ready)
}
