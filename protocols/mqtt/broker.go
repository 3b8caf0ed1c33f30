package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotConnected is returned by commands while the broker connection is down.
var ErrNotConnected = errors.New("not connected to the broker")

// message is one PUBLISH received from the broker.
type message struct {
	topic   string
	payload []byte
	qos     byte
	dup     bool
	// ack sends PUBACK/PUBREC. It is nil for QoS 0. It may block (the 3.1.1
	// client hands the ack to its writer over an unbuffered channel), so only
	// the link's acker goroutine calls it, in arrival order.
	ack  func()
	link *link
	// rawAck, when set, is the connection a QoS 1 PUBACK for packetID can
	// be written to directly, so the acker batches the acks of a burst
	// into one write instead of a syscall each (MQTT 5; QoS 1 keeps no
	// session state on the receiving side).
	rawAck   net.Conn
	packetID uint16

	doneFn func(error) // see pushDone

	mu      sync.Mutex
	pending int  // outstanding pushes plus one while the message is dispatched
	done    bool // everything the message produced is committed
}

// subscription is one topic filter with its QoS.
type subscription struct {
	filter string
	qos    byte
}

// client is one MQTT connection, whatever the protocol version. A client
// never reconnects by itself: the connector dials a new one, so backoff,
// resubscription and ack bookkeeping live in one place for both libraries.
type client interface {
	// Publish sends one message; for QoS 1/2 it returns once the broker
	// acknowledged it.
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
	// Subscribe subscribes to every filter; a filter the broker refuses is
	// an error naming it.
	Subscribe(ctx context.Context, subs []subscription) error
	Unsubscribe(ctx context.Context, filters ...string) error
	// Lost is closed when the connection ended; Err then says why.
	Lost() <-chan struct{}
	Err() error
	// Close disconnects and waits for the library's goroutines.
	Close()
}

// dialOptions is what a dial needs besides the broker config.
type dialOptions struct {
	broker   *Broker
	clientID string
	// cleanStart is decided per attempt: upstream's cleanStart / cleanSession
	// apply to the first connection of a run only when a session may outlive
	// it, so a reconnect resumes the session that holds unacked messages.
	cleanStart     bool
	receiveMaximum uint16
	// deliver hands a received message to the connector. It blocks while the
	// connector's queue is full and returns false once the link is lost or
	// the connector stops, in which case the message is not acknowledged.
	deliver func(*message) bool
	// session state shared by the MQTT 5 connections of one run, so QoS 2
	// exchanges survive a reconnect.
	v5 *v5Shared
}

type dialFunc func(ctx context.Context, o *dialOptions) (client, error)

// dialerFor picks the library by protocol version: paho.golang speaks only
// MQTT 5, paho.mqtt.golang 3.1 and 3.1.1.
func dialerFor(version int) dialFunc {
	if version == 5 {
		return dialV5
	}
	return dialV3
}

// lostSignal is the Lost/Err half every client shares.
type lostSignal struct {
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	err  error
}

func newLostSignal() lostSignal { return lostSignal{ch: make(chan struct{})} }

func (l *lostSignal) fail(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.ch)
	})
}

func (l *lostSignal) Lost() <-chan struct{} { return l.ch }

func (l *lostSignal) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// whileUp derives a context that also ends when cl's connection is lost.
// With a persistent session paho keeps a SUBSCRIBE or PUBLISH waiting for
// its ack across a connection loss (until PacketTimeout); a caller on a dead
// connection should learn at once.
func whileUp(ctx context.Context, cl client) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-cl.Lost():
			cancel(fmt.Errorf("%w: %w", ErrNotConnected, cl.Err()))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// upErr prefers the reason whileUp ended ctx with over ctx.Err().
func upErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// errClosed is the Err of a client the connector closed itself.
var errClosed = errors.New("connection closed by the gateway")

// address is the broker as host:port, for dialing and messages.
func (b *Broker) address() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// tlsConfig builds the client TLS settings for security type certificates;
// nil for the other types. Files are read on every dial so a renewed
// certificate is picked up by the next reconnect. Verification stays on
// unless the file says insecure.
func (b *Broker) tlsConfig() (*tls.Config, error) {
	s := &b.Security
	if s.Type != SecurityCertificates {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: b.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.Insecure} //nolint:gosec // opt-in via "insecure"
	if s.PathToCACert != "" {
		pem, err := os.ReadFile(s.PathToCACert)
		if err != nil {
			return nil, fmt.Errorf("read pathToCACert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pathToCACert %q holds no PEM certificate", s.PathToCACert)
		}
		cfg.RootCAs = pool
	}
	if s.PathToClientCert != "" {
		cert, err := tls.LoadX509KeyPair(s.PathToClientCert, s.PathToPrivateKey)
		if err != nil {
			return nil, fmt.Errorf("load pathToClientCert/pathToPrivateKey: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dialNet opens the TCP (or TLS) connection for the MQTT 5 client.
func dialNet(ctx context.Context, b *Broker) (net.Conn, error) {
	tc, err := b.tlsConfig()
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if tc == nil {
		return d.DialContext(ctx, "tcp", b.address())
	}
	td := tls.Dialer{NetDialer: &d, Config: tc}
	return td.DialContext(ctx, "tcp", b.address())
}

// newClientID is used when the file has no clientId. It is made once per
// connector so reconnects resume the same session.
func newClientID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "industryos-gw-" + hex.EncodeToString(b[:])
}

// shareName strips a shared-subscription prefix ($share/group/filter) so the
// filter can be matched against topics.
func shareName(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i+1:]
		}
	}
	return filter
}

// topicMatches applies MQTT filter rules: + is one level, # the rest
// (including the parent level), and wildcards never match $-topics at the
// first level.
func topicMatches(filter, topic string) bool {
	filter = shareName(filter)
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" too.
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// backoff paces reconnects: min·2^n capped at max, with ±20% jitter so many
// gateways do not hammer a restarted broker in lockstep.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.n++
	d = time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
	return max(d, time.Millisecond)
}

func (b *backoff) reset() { b.n = 0 }
