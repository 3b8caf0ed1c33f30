package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/spec"
	"github.com/industryos/gateway/tests/testenv"
)

// recSink is the runtime side of a Source for tests: it records what the
// connector hands over. It is a real Sink, not a stand-in for the broker.
type recSink struct {
	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every event
	pushes      []protocols.Push
	malformed   []string
	unmatched   int
	links       []linkEvent
	connects    []string
	disconnects []string
	attrReqs    []string

	// hold keeps Done callbacks instead of calling them: nothing commits.
	hold bool
	held []func(error)
	// gate, when set, blocks Push until it is closed (back-pressure).
	gate chan struct{}
	// attrs answers RequestAttributes.
	attrs map[string]json.RawMessage
	// failNext makes the next Push fail without ctx ending.
	failNext error
}

type linkEvent struct {
	up  bool
	err error
}

func newRecSink() *recSink { return &recSink{changed: make(chan struct{})} }

func (s *recSink) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *recSink) Push(ctx context.Context, p protocols.Push) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failNext; err != nil {
		s.failNext = nil
		s.signal()
		return err
	}
	s.pushes = append(s.pushes, p)
	if s.hold {
		s.held = append(s.held, p.Done)
	} else if p.Done != nil {
		p.Done(nil)
	}
	s.signal()
	return nil
}

func (s *recSink) Connect(device, profile string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connects = append(s.connects, device+"/"+profile)
	s.signal()
}

func (s *recSink) Disconnect(device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnects = append(s.disconnects, device)
	s.signal()
}

func (s *recSink) RequestAttributes(_ context.Context, device string, client bool, keys []string) (map[string]json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrReqs = append(s.attrReqs, fmt.Sprintf("%s client=%v %v", device, client, keys))
	s.signal()
	out := map[string]json.RawMessage{}
	for _, k := range keys {
		if v, ok := s.attrs[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

func (s *recSink) Malformed(where string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.malformed = append(s.malformed, where+": "+err.Error())
	s.signal()
}

func (s *recSink) Unmatched() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unmatched++
	s.signal()
}

func (s *recSink) Link(up bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.links = append(s.links, linkEvent{up, err})
	s.signal()
}

// release commits everything held so far.
func (s *recSink) release() {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.hold = false
	s.mu.Unlock()
	for _, d := range held {
		d(nil)
	}
}

// wait blocks until cond (called with s.mu held) is true.
func (s *recSink) wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("timed out after %s waiting for %s; pushes=%d links=%v malformed=%v", timeout, what, len(s.pushes), s.links, s.malformed)
		}
	}
}

func (s *recSink) ups() int {
	n := 0
	for _, l := range s.links {
		if l.up {
			n++
		}
	}
	return n
}

// values lists the "v" telemetry of every push, in order.
func (s *recSink) values() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.pushes {
		for _, dp := range p.Reading.Telemetry {
			if dp.Key == "v" {
				out = append(out, dp.Value.String())
			}
		}
	}
	return out
}

// newTestConnector builds a connector from a JSON file whose broker host
// and port are filled in, with quick reconnects.
func newTestConnector(t testing.TB, addr string, file string) *Connector {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	file = strings.ReplaceAll(file, "HOST", host)
	file = strings.ReplaceAll(file, "PORT", port)
	var ps spec.Problems
	root := spec.Parse(&ps, "mqtt.json", []byte(file))
	if root == nil {
		t.Fatal(ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "mqtt-test", Type: "mqtt", Config: root, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c.minBackoff, c.maxBackoff = 20*time.Millisecond, 200*time.Millisecond
	return c
}

// run starts c.Run and stops it when the test ends.
func run(t testing.TB, c *Connector, s protocols.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

// ackBarrier waits until the current connection handed n acks to the
// library, then makes a QoS 1 round trip on it: the broker reads a
// connection in order, so its PUBACK means it processed our acks too.
func ackBarrier(t testing.TB, c *Connector, n uint64) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		l := c.cur.Load()
		if l == nil {
			return fmt.Errorf("not connected")
		}
		if got := l.acked.Load(); got < n {
			return fmt.Errorf("%d of %d acks sent", got, n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.publish(ctx, "barrier", []byte("x"), 1, false); err != nil {
		t.Fatal(err)
	}
}

func fmtDPs(dps []protocols.Datapoint) string {
	var parts []string
	for _, dp := range dps {
		parts = append(parts, dp.Key+"="+dp.Value.String())
	}
	return strings.Join(parts, ",")
}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

func publish(t testing.TB, p *testenv.Subscriber, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Publish(ctx, topic, []byte(payload), 1); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

const dataMapping = `{
	"topicFilter": "sensor/+/data", "subscriptionQos": 1,
	"converter": {
		"type": "json",
		"deviceInfo": {"deviceNameExpressionSource": "topic", "deviceNameExpression": "sensor/([^/]+)/data",
			"deviceProfileExpressionSource": "message", "deviceProfileExpression": "${type}"},
		"reportStrategy": {"type": "ON_CHANGE"},
		"attributes": [{"type": "string", "key": "model", "value": "${model}"}],
		"timeseries": [{"type": "int", "key": "v", "value": "${v}", "reportStrategy": {"type": "ON_RECEIVED"}},
			{"type": "double", "key": "t", "value": "${t}"}]
	}}`

func brokerJSON(version int, extra string) string {
	return fmt.Sprintf(`"broker": {"host": "HOST", "port": PORT, "version": %d, "keepAlive": 10 %s}`, version, extra)
}

var versions = []struct {
	name    string
	version int
	session string // broker keys for a session that outlives a connection
}{
	{"v3.1", 3, `, "cleanSession": false`},
	{"v3.1.1", 4, `, "cleanSession": false`},
	{"v5", 5, `, "cleanStart": false, "sessionExpiryInterval": 3600`},
}

func TestRunConvertsAndPushes(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			m := testenv.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+dataMapping+`]}`)
			s := newRecSink()
			run(t, c, s)
			s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })
			pub := testenv.Subscribe(t, m.Addr())
			publish(t, pub, "sensor/SN-1/data", `{"type":"thermo","model":"T1","v":"21.7","t":1.5,"ts":1700000000000}`)
			// t is missing: partial result pushed, the miss reported as malformed.
			publish(t, pub, "sensor/SN-2/data", `{"type":"thermo","v":3}`)
			publish(t, pub, "sensor/SN-3/data", `not json`)
			s.wait(t, 10*time.Second, "two pushes and two malformed", func() bool { return len(s.pushes) == 2 && len(s.malformed) == 2 })

			s.mu.Lock()
			defer s.mu.Unlock()
			p := s.pushes[0]
			if p.Device != "SN-1" || p.Profile != "thermo" || p.Ts.UnixMilli() != 1700000000000 {
				t.Fatalf("push = %+v", p)
			}
			if got := fmtDPs(p.Reading.Telemetry) + " " + fmtDPs(p.Reading.Attributes); got != "v=21,t=1.5 model=T1" {
				t.Fatalf("reading = %s", got)
			}
			if p.Report.Type != protocols.OnChange || p.KeyReport["v"].Type != protocols.OnReceived {
				t.Fatalf("report = %+v %+v", p.Report, p.KeyReport)
			}
			if p2 := s.pushes[1]; p2.Device != "SN-2" || len(p2.Reading.Telemetry) != 1 {
				t.Fatalf("partial push = %+v", p2)
			}
			if !strings.HasPrefix(s.malformed[0], "sensor/+/data: ") || !strings.Contains(s.malformed[1], "invalid JSON") {
				t.Fatalf("malformed = %q", s.malformed)
			}
		})
	}
}

func TestSharedSubscription(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			m := testenv.StartMosquitto(t)
			shared := strings.Replace(dataMapping, `"sensor/+/data"`, `"$share/gw/sensor/+/data"`, 1)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+shared+`]}`)
			s := newRecSink()
			run(t, c, s)
			s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })
			pub := testenv.Subscribe(t, m.Addr())
			publish(t, pub, "sensor/A/data", `{"type":"x","v":1,"t":2,"model":"m"}`)
			s.wait(t, 10*time.Second, "push", func() bool { return len(s.pushes) == 1 })
		})
	}
}

// A broker restart without persistence of our session (clean start) must
// still bring the subscriptions back.
func TestReconnectResubscribes(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			m := testenv.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+dataMapping+`]}`)
			s := newRecSink()
			run(t, c, s)
			s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })
			pub := testenv.Subscribe(t, m.Addr())
			publish(t, pub, "sensor/A/data", `{"type":"x","v":1}`)
			s.wait(t, 10*time.Second, "first push", func() bool { return len(s.pushes) == 1 })

			m.Restart()
			s.wait(t, 20*time.Second, "link down and up again", func() bool {
				return s.ups() == 2 && len(s.links) >= 3 && !s.links[1].up && s.links[1].err != nil
			})
			pub.WaitReady(t, 10*time.Second)
			publish(t, pub, "sensor/A/data", `{"type":"x","v":2}`)
			s.wait(t, 10*time.Second, "push after reconnect", func() bool { return len(s.pushes) == 2 })
		})
	}
}

// Nothing the broker delivered is acknowledged before the sink committed
// it: a restart before the commit brings the messages again, and after the
// commit they stay acknowledged.
func TestAckAfterCommit(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			m := testenv.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, v.session)+`, "mapping": [`+dataMapping+`]}`)
			s := newRecSink()
			s.hold = true
			run(t, c, s)
			s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })
			pub := testenv.Subscribe(t, m.Addr())
			const n = 20
			for i := range n {
				publish(t, pub, "sensor/A/data", fmt.Sprintf(`{"type":"x","v":%d}`, i))
			}
			s.wait(t, 10*time.Second, "n pushes, none committed", func() bool { return len(s.pushes) == n })

			m.Restart()
			s.wait(t, 20*time.Second, "redelivery of all uncommitted messages", func() bool { return s.ups() == 2 && len(s.pushes) == 2*n })
			got := s.values()
			for i := range n {
				if got[i] != got[n+i] || got[i] != fmt.Sprint(i) {
					t.Fatalf("redelivered %v", got)
				}
			}
			s.release() // commits the first copies (dead connection: no ack) and the redelivered ones
			ackBarrier(t, c, n)

			// Everything is acknowledged now: another restart brings nothing
			// back before the next fresh message.
			s.mu.Lock()
			before := len(s.pushes)
			s.mu.Unlock()
			m.Restart()
			s.wait(t, 20*time.Second, "third connection", func() bool { return s.ups() == 3 })
			pub.WaitReady(t, 10*time.Second)
			publish(t, pub, "sensor/A/data", `{"type":"x","v":999}`)
			s.wait(t, 10*time.Second, "marker", func() bool { return len(s.pushes) > before })
			if got := s.values()[before:]; len(got) != 1 || got[0] != "999" {
				t.Fatalf("after commit and restart got %v, want only the marker", got)
			}
		})
	}
}

// A sink that blocks holds the broker back; nothing is lost and the order
// is kept once it lets go.
func TestBackPressureLosesNothing(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			m := testenv.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, v.session)+`, "mapping": [`+dataMapping+`]}`)
			c.queue = 8
			s := newRecSink()
			s.gate = make(chan struct{})
			run(t, c, s)
			s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })
			pub := testenv.Subscribe(t, m.Addr())
			const n = 300
			for i := range n {
				publish(t, pub, "sensor/A/data", fmt.Sprintf(`{"type":"x","v":%d}`, i))
			}
			s.mu.Lock()
			if len(s.pushes) != 0 {
				t.Fatalf("pushed %d through a closed gate", len(s.pushes))
			}
			close(s.gate)
			s.mu.Unlock()
			s.wait(t, 20*time.Second, "all messages", func() bool { return len(s.pushes) >= n })
			got := s.values()
			for i := range n {
				if got[i] != fmt.Sprint(i) {
					t.Fatalf("message %d is %s", i, got[i])
				}
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pw := dir + "/passwd"
	if out, err := execCommand("mosquitto_passwd", "-b", "-c", pw, "gw", "s3cret"); err != nil {
		t.Skipf("mosquitto_passwd: %v %s", err, out)
	}
	m := testenv.StartMosquitto(t, testenv.MosquittoConfig("allow_anonymous false", "password_file "+pw))
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			good := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, `, "security": {"type": "basic", "username": "gw", "password": "s3cret"}`)+`, "mapping": [`+dataMapping+`]}`)
			s := newRecSink()
			run(t, good, s)
			s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })

			bad := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, `, "security": {"type": "basic", "username": "gw", "password": "wrong-pass"}`)+`, "mapping": [`+dataMapping+`]}`)
			s2 := newRecSink()
			run(t, bad, s2)
			s2.wait(t, 10*time.Second, "refusal", func() bool { return len(s2.links) > 0 })
			s2.mu.Lock()
			defer s2.mu.Unlock()
			l := s2.links[0]
			if l.up || l.err == nil || strings.Contains(l.err.Error(), "wrong-pass") {
				t.Fatalf("link = %+v", l)
			}
			if !strings.Contains(strings.ToLower(l.err.Error()), "not authori") && !strings.Contains(strings.ToLower(l.err.Error()), "bad user name") {
				t.Fatalf("refusal does not say why: %v", l.err)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	certs := testenv.GenerateTLS(t)
	m := testenv.StartMosquitto(t, testenv.MosquittoTLS(certs.ServerCert, certs.ServerKey))
	other := testenv.GenerateTLS(t)
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			sec := fmt.Sprintf(`, "security": {"type": "certificates", "pathToCACert": %q, "pathToClientCert": %q, "pathToPrivateKey": %q}`,
				certs.CACert, certs.ClientCert, certs.ClientKey)
			c := newTestConnector(t, m.TLSAddr(), `{`+brokerJSON(v.version, sec)+`, "mapping": [`+dataMapping+`]}`)
			s := newRecSink()
			run(t, c, s)
			s.wait(t, 10*time.Second, "link up over TLS", func() bool { return s.ups() == 1 })
			pub := testenv.Subscribe(t, m.Addr())
			// A burst, so acks (our goroutine) and paho's own writes overlap
			// on the TLS connection.
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 50 {
						if err := pub.Publish(context.Background(), "sensor/A/data", []byte(fmt.Sprintf(`{"type":"x","v":%d}`, g*100+i)), 1); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			s.wait(t, 10*time.Second, "pushes over TLS", func() bool { return len(s.pushes) == 200 })
			ackBarrier(t, c, 200)
			s.mu.Lock()
			if s.ups() != 1 {
				t.Fatalf("TLS connection dropped during the burst: %v", s.links)
			}
			s.mu.Unlock()

			// A CA that did not sign the server: verification is on.
			wrong := fmt.Sprintf(`, "security": {"type": "certificates", "pathToCACert": %q}`, other.CACert)
			c2 := newTestConnector(t, m.TLSAddr(), `{`+brokerJSON(v.version, wrong)+`, "mapping": [`+dataMapping+`]}`)
			s2 := newRecSink()
			run(t, c2, s2)
			s2.wait(t, 10*time.Second, "refusal", func() bool { return len(s2.links) > 0 })
			s2.mu.Lock()
			l := s2.links[0]
			s2.mu.Unlock()
			if l.up || !strings.Contains(l.err.Error(), "certificate") {
				t.Fatalf("link with a foreign CA = %+v", l)
			}

			// insecure skips verification.
			insecure := fmt.Sprintf(`, "security": {"type": "certificates", "pathToCACert": %q, "insecure": true}`, other.CACert)
			c3 := newTestConnector(t, m.TLSAddr(), `{`+brokerJSON(v.version, insecure)+`, "mapping": [`+dataMapping+`]}`)
			s3 := newRecSink()
			run(t, c3, s3)
			s3.wait(t, 10*time.Second, "insecure link up", func() bool { return s3.ups() == 1 })
		})
	}
}

// QoS 2 goes through the manual PUBREC path of both libraries; an
// uncommitted QoS 2 message is redelivered after a restart like QoS 1.
func TestQoS2(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			m := testenv.StartMosquitto(t)
			mapping := strings.Replace(dataMapping, `"subscriptionQos": 1`, `"subscriptionQos": 2`, 1)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, v.session)+`, "mapping": [`+mapping+`]}`)
			s := newRecSink()
			s.hold = true
			run(t, c, s)
			s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })
			pub := testenv.SubscribeWith(t, m.Addr(), testenv.SubscriberOptions{QoS: 2})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range 3 {
				if err := pub.Publish(ctx, "sensor/A/data", []byte(fmt.Sprintf(`{"type":"x","v":%d}`, i)), 2); err != nil {
					t.Fatal(err)
				}
			}
			s.wait(t, 10*time.Second, "3 pushes", func() bool { return len(s.pushes) == 3 })
			m.Restart()
			s.wait(t, 20*time.Second, "redelivery", func() bool { return s.ups() == 2 && len(s.pushes) == 6 })
			s.release()
			ackBarrier(t, c, 3)
			s.mu.Lock()
			before := len(s.pushes)
			s.mu.Unlock()
			m.Restart()
			s.wait(t, 20*time.Second, "third connection", func() bool { return s.ups() == 3 })
			pub.WaitReady(t, 10*time.Second)
			if err := pub.Publish(ctx, "sensor/A/data", []byte(`{"type":"x","v":999}`), 2); err != nil {
				t.Fatal(err)
			}
			s.wait(t, 10*time.Second, "marker", func() bool { return len(s.pushes) > before })
			if got := s.values()[before:]; len(got) != 1 || got[0] != "999" {
				t.Fatalf("after commit and restart got %v, want only the marker", got)
			}
		})
	}
}

// A Push that fails on its own (the runtime could not create the device)
// is neither acked nor left blocking later acks: the connection is dropped
// and the broker redelivers.
func TestPushFailureRedelivers(t *testing.T) {
	m := testenv.StartMosquitto(t)
	c := newTestConnector(t, m.Addr(), `{`+brokerJSON(5, versions[2].session)+`, "mapping": [`+dataMapping+`]}`)
	s := newRecSink()
	s.failNext = fmt.Errorf("device actor not created")
	run(t, c, s)
	s.wait(t, 10*time.Second, "link up", func() bool { return s.ups() == 1 })
	pub := testenv.Subscribe(t, m.Addr())
	publish(t, pub, "sensor/A/data", `{"type":"x","v":7}`)
	s.wait(t, 10*time.Second, "reconnect and redelivery", func() bool { return s.ups() == 2 && len(s.pushes) == 1 })
	if got := s.values(); got[0] != "7" {
		t.Fatalf("pushed %v", got)
	}
}
