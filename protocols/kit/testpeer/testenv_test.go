package testpeer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func publish(t *testing.T, s *Subscriber, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Publish(ctx, topic, []byte(payload), 1); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("port %d not free: %v", p, err)
	}
	l.Close()
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	Eventually(t, 2*time.Second, "the fifth call", func() error {
		if n.Add(1) < 5 {
			return errors.New("not yet")
		}
		return nil
	})
	if n.Load() != 5 {
		t.Fatalf("cond called %d times", n.Load())
	}
}

func TestMosquittoRestartKeepsSessions(t *testing.T) {
	m := StartMosquitto(t, MosquittoConfig("log_type all"))
	sub := Subscribe(t, m.Addr(), "a/#")
	pub := Subscribe(t, m.Addr())
	publish(t, pub, "a/1", "one")
	sub.WaitTopic(t, 5*time.Second, "a/1", 1)

	m.Stop()
	if m.Running() {
		t.Fatal("still running after Stop")
	}
	if c, err := net.DialTimeout("tcp", m.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("port still open after Stop")
	}
	m.Restart()
	pub.WaitReady(t, 10*time.Second)
	// Published before the subscriber is back: the broker queues it in the
	// subscriber's persisted session.
	publish(t, pub, "a/2", "two")
	sub.WaitTopic(t, 10*time.Second, "a/2", 1)
	// The queued message can arrive from the resumed session before the
	// re-subscription completes, so wait for it rather than check at once.
	Eventually(t, 10*time.Second, "the resubscription", func() error {
		if n := sub.Subscriptions(); n < 2 {
			return fmt.Errorf("subscriber did not resubscribe: %d", n)
		}
		return nil
	})

	m.Kill()
	m.Restart()
	pub.WaitReady(t, 10*time.Second)
	publish(t, pub, "a/3", "three")
	msgs := sub.WaitTopic(t, 10*time.Second, "a/3", 1)
	if string(msgs[0].Payload) != "three" || msgs[0].QoS != 1 {
		t.Errorf("got %+v", msgs[0])
	}
}

func TestMosquittoTLS(t *testing.T) {
	files := GenerateTLS(t)
	m := StartMosquitto(t, MosquittoTLS(files.ServerCert, files.ServerKey))
	sub := SubscribeWith(t, m.TLSAddr(), SubscriberOptions{TLS: &tls.Config{RootCAs: files.CAPool, ServerName: "127.0.0.1"}}, "x")
	pub := Subscribe(t, m.Addr())
	publish(t, pub, "x", "over tls")
	sub.WaitTopic(t, 5*time.Second, "x", 1)
}

// connectRaw makes one MQTT 5 CONNECT and returns the CONNACK reason code.
func connectRaw(t *testing.T, addr, user, pass string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cli := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cli.Connect(ctx, &paho.Connect{ClientID: "raw", CleanStart: true, KeepAlive: 10,
		UsernameFlag: true, Username: user, PasswordFlag: pass != "", Password: []byte(pass)})
	if ca == nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	if err == nil {
		_ = cli.Disconnect(&paho.Disconnect{})
	}
	return ca.ReasonCode
}

func TestMochiAuth(t *testing.T) {
	m := StartMochi(t, AllowTokens("good"), AllowUser("u", "p"))
	sub := SubscribeWith(t, m.Addr(), SubscriberOptions{Username: "good"}, "t/+")
	pub := SubscribeWith(t, m.Addr(), SubscriberOptions{Username: "u", Password: "p"})
	publish(t, pub, "t/1", "hello")
	sub.WaitTopic(t, 5*time.Second, "t/1", 1)
	if err := m.Publish("t/2", []byte("inline"), 0); err != nil {
		t.Fatal(err)
	}
	sub.WaitTopic(t, 5*time.Second, "t/2", 1)

	before := m.AuthRejections()
	for _, c := range []struct{ user, pass string }{{"bad", ""}, {"u", "wrong"}} {
		if rc := connectRaw(t, m.Addr(), c.user, c.pass); rc != 0x86 {
			t.Errorf("%s/%s: CONNACK 0x%02x, want 0x86", c.user, c.pass, rc)
		}
	}
	if got := m.AuthRejections() - before; got != 2 {
		t.Errorf("%d rejections counted, want 2", got)
	}
	if rc := connectRaw(t, m.Addr(), "good", "anything"); rc != 0 {
		t.Errorf("token with password: CONNACK 0x%02x", rc)
	}
}

func TestMochiACLAndDoubleClose(t *testing.T) {
	m := StartMochi(t, WithACL(func(user, topic string, write bool) bool { return !write || topic != "denied" }))
	pub := Subscribe(t, m.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, "denied", []byte("x"), 1); err == nil {
		t.Error("publish to a denied topic succeeded")
	}
	if err := pub.Publish(ctx, "allowed", []byte("x"), 1); err != nil {
		t.Error(err)
	}
	m.Close()
	m.Close() // mochi itself panics on a second Close
}

func TestSubscriberWaitTimesOut(t *testing.T) {
	m := StartMochi(t)
	sub := Subscribe(t, m.Addr(), "nothing")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := sub.Wait(ctx, func(m []Msg) bool { return len(m) > 0 }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}
