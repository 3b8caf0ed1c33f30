package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

// v3Client is one MQTT 3.1 / 3.1.1 connection over paho.mqtt.golang, with
// the library's own reconnect switched off (the connector redials).
type v3Client struct {
	lostSignal
	cl        pahov3.Client
	closeOnce sync.Once
}

// watchedConn reports the first read or write failure at once. The
// library's ConnectionLost handler runs only after its workers stopped,
// and one of them may be waiting in our deliver callback for queue space;
// deliver must learn about the loss first to let go.
type watchedConn struct {
	net.Conn
	c *v3Client
}

func (w watchedConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil {
		w.c.fail(fmt.Errorf("connection lost: %w", err))
	}
	return n, err
}

func (w watchedConn) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if err != nil {
		w.c.fail(fmt.Errorf("connection lost: %w", err))
	}
	return n, err
}

func dialV3(ctx context.Context, o *dialOptions) (client, error) {
	b := o.broker
	c := &v3Client{lostSignal: newLostSignal()}
	opts := pahov3.NewClientOptions()
	opts.AddBroker("tcp://" + b.address()) // the scheme is ignored: we dial ourselves
	opts.SetClientID(o.clientID)
	opts.SetProtocolVersion(uint(b.Version)) // 3 = MQTT 3.1, 4 = 3.1.1; no fallback
	opts.SetKeepAlive(time.Duration(b.KeepAlive) * time.Second)
	opts.SetCleanSession(o.cleanStart)
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	opts.SetResumeSubs(false)
	opts.SetConnectTimeout(10 * time.Second)
	opts.SetWriteTimeout(10 * time.Second)
	// Acks wait for the runtime's commit; ordered delivery keeps the
	// handler sequential so arrival order is the ack order.
	opts.SetAutoAckDisabled(true)
	opts.SetOrderMatters(true)
	if b.Security.Type == SecurityBasic {
		opts.SetUsername(b.Security.Username)
		opts.SetPassword(b.Security.Password)
	}
	opts.SetCustomOpenConnectionFn(func(*url.URL, pahov3.ClientOptions) (net.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := dialNet(dctx, b)
		if err != nil {
			return nil, err
		}
		return watchedConn{Conn: conn, c: c}, nil
	})
	opts.SetDefaultPublishHandler(func(_ pahov3.Client, pm pahov3.Message) {
		m := &message{topic: pm.Topic(), payload: pm.Payload(), qos: pm.Qos(), dup: pm.Duplicate()}
		if m.qos > 0 {
			m.ack = pm.Ack
		}
		o.deliver(m)
	})
	opts.SetConnectionLostHandler(func(_ pahov3.Client, err error) { c.fail(fmt.Errorf("connection lost: %w", err)) })
	c.cl = pahov3.NewClient(opts)
	tok := c.cl.Connect()
	if err := waitToken(ctx, tok); err != nil {
		c.fail(err)
		c.cl.Disconnect(0)
		return nil, fmt.Errorf("connect to %s as %q (mqtt %s): %w", b.address(), o.clientID, versionName(b.Version), err)
	}
	return c, nil
}

func versionName(v int) string {
	switch v {
	case 3:
		return "3.1"
	case 4:
		return "3.1.1"
	}
	return "5"
}

// waitToken waits for a paho.mqtt.golang token or ctx.
func waitToken(ctx context.Context, tok pahov3.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *v3Client) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if err := waitToken(ctx, c.cl.Publish(topic, qos, retain, payload)); err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

func (c *v3Client) Subscribe(ctx context.Context, subs []subscription) error {
	filters := make(map[string]byte, len(subs))
	for _, s := range subs {
		filters[s.filter] = s.qos
	}
	// A nil callback routes everything to the default handler, which also
	// takes shared-subscription messages whose topic has no $share prefix.
	tok := c.cl.SubscribeMultiple(filters, nil)
	if err := waitToken(ctx, tok); err != nil {
		return fmt.Errorf("subscribe to %d filters: %w", len(subs), err)
	}
	var errs []error
	for f, code := range tok.(*pahov3.SubscribeToken).Result() {
		if code >= 0x80 {
			errs = append(errs, fmt.Errorf("subscribe to %q (qos %d): broker refused (0x%02x)", f, filters[f], code))
		}
	}
	return errors.Join(errs...)
}

func (c *v3Client) Unsubscribe(ctx context.Context, filters ...string) error {
	if err := waitToken(ctx, c.cl.Unsubscribe(filters...)); err != nil {
		return fmt.Errorf("unsubscribe from %q: %w", filters, err)
	}
	return nil
}

func (c *v3Client) Close() {
	c.closeOnce.Do(func() {
		c.fail(errClosed)
		c.cl.Disconnect(250)
	})
}
