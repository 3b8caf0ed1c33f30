package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/industryos/gateway/protocols/kit/pahoconn"
)

// v5Shared is what the MQTT 5 connections of one run share.
type v5Shared struct {
	// session keeps in-flight QoS 2 state across reconnects, as autopaho
	// does; paho would otherwise create (and drop) one per connection.
	session *state.State
}

func newV5Shared() *v5Shared { return &v5Shared{session: state.NewInMemory()} }

// ackSession is the session paho sees. paho acks a message as soon as the
// handler returns, long before the runtime committed it; its Ack therefore
// does nothing here, and the connector's acker writes the ack itself
// through the embedded state, synchronously and in arrival order.
type ackSession struct{ *state.State }

func (ackSession) Ack(*packets.Publish) error { return nil }

func (s *v5Shared) close() { _ = s.session.Close() }

// v5Client is one MQTT 5 connection over paho.golang's low-level client. We
// drive paho.Client directly rather than autopaho so that every connection
// is a distinct value: acks of messages from a dead connection are never
// sent on its successor, and reconnect pacing is ours.
type v5Client struct {
	lostSignal
	pc        *paho.Client
	closeOnce sync.Once
}

func dialV5(ctx context.Context, o *dialOptions) (client, error) {
	b := o.broker
	conn, err := dialNet(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", b.address(), err)
	}
	// paho writes a packet as several buffers; over TLS those are separate
	// writes, and writers run concurrently (our acks and publishes, paho's
	// pinger, which sends its first PINGREQ right after CONNACK, racing our
	// SUBSCRIBE). The wrapper is a sync.Locker paho holds per packet;
	// without it mosquitto saw interleaved, malformed packets. It also
	// buffers reads.
	conn = pahoconn.Wrap(conn)
	c := &v5Client{lostSignal: newLostSignal()}
	cfg := paho.ClientConfig{
		ClientID:      o.clientID,
		Conn:          conn,
		Session:       ackSession{o.v5.session},
		PacketTimeout: 10 * time.Second,
		// Not paho's manual-ack mode: its tracker scans every unacked
		// message on each arrival (quadratic at a large Receive Maximum,
		// a quarter of the CPU at 20 k msgs/s). paho's automatic ack goes
		// to ackSession.Ack, a no-op; our acker sends the real one.
		OnClientError: func(err error) { c.fail(err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			reason := ""
			if d.Properties != nil {
				reason = d.Properties.ReasonString
			}
			c.fail(fmt.Errorf("broker %s disconnected us: reason 0x%02x %s", b.address(), d.ReasonCode, reason))
		},
	}
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
		p := pr.Packet
		m := &message{topic: p.Topic, payload: p.Payload, qos: p.QoS, dup: p.Duplicate()}
		if p.QoS > 0 {
			session := o.v5.session
			m.ack = func() { _ = session.Ack(p.Packet()) }
			if p.QoS == 1 {
				m.rawAck, m.packetID = conn, p.PacketID
			}
		}
		o.deliver(m)
		return true, nil
	}}
	pc := paho.NewClient(cfg)
	c.pc = pc
	sei := uint32(b.SessionExpiryInterval)
	rm := o.receiveMaximum
	cp := &paho.Connect{
		ClientID:   o.clientID,
		KeepAlive:  uint16(b.KeepAlive),
		CleanStart: o.cleanStart,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &sei, ReceiveMaximum: &rm},
	}
	if b.Security.Type == SecurityBasic {
		cp.Username, cp.UsernameFlag = b.Security.Username, true
		if b.Security.Password != "" {
			cp.Password, cp.PasswordFlag = []byte(b.Security.Password), true
		}
	}
	ca, err := pc.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		if ca != nil {
			return nil, fmt.Errorf("connect to %s as %q: broker refused: %w", b.address(), o.clientID, &ConnackError{Code: ca.ReasonCode, Reason: connackReason(ca)})
		}
		return nil, fmt.Errorf("connect to %s as %q: %w", b.address(), o.clientID, err)
	}
	go func() {
		<-pc.Done()
		c.fail(errors.New("connection lost"))
	}()
	return c, nil
}

func connackReason(ca *paho.Connack) string {
	if ca.Properties != nil && ca.Properties.ReasonString != "" {
		return ca.Properties.ReasonString
	}
	switch ca.ReasonCode {
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x8A:
		return "banned"
	}
	return ""
}

// ConnackError is a broker's refusal of our CONNECT.
type ConnackError struct {
	Code   byte
	Reason string
}

func (e *ConnackError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("reason code 0x%02x", e.Code)
	}
	return fmt.Sprintf("reason code 0x%02x (%s)", e.Code, e.Reason)
}

func (c *v5Client) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	pr, err := c.pc.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
	if err != nil {
		if pr != nil {
			return fmt.Errorf("publish to %q: broker answered reason 0x%02x: %w", topic, pr.ReasonCode, err)
		}
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

func (c *v5Client) Subscribe(ctx context.Context, subs []subscription) error {
	var errs []error
	for _, s := range subs {
		if _, err := c.pc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.filter, QoS: s.qos}}}); err != nil {
			errs = append(errs, fmt.Errorf("subscribe to %q (qos %d): %w", s.filter, s.qos, err))
			if ctx.Err() != nil || isLost(c) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (c *v5Client) Unsubscribe(ctx context.Context, filters ...string) error {
	if _, err := c.pc.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters}); err != nil {
		return fmt.Errorf("unsubscribe from %q: %w", filters, err)
	}
	return nil
}

func (c *v5Client) Close() {
	c.closeOnce.Do(func() {
		// Signal first: a deliver blocked on a full queue must give up, or
		// paho's shutdown would wait for it.
		c.fail(errClosed)
		_ = c.pc.Disconnect(&paho.Disconnect{ReasonCode: 0})
		select {
		case <-c.pc.Done():
		case <-time.After(10 * time.Second):
		}
	})
}

func isLost(c client) bool {
	select {
	case <-c.Lost():
		return true
	default:
		return false
	}
}
