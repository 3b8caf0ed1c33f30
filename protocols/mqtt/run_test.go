package mqtt

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// values lists the "v" telemetry of every push, in order.
func values(s *sinktest.Recorder) []string {
	var out []string
	for _, v := range s.Values("", "v") {
		out = append(out, v.String())
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

// ackBarrier waits until the current connection handed n acks to the
// library, then makes a QoS 1 round trip on it: the broker reads a
// connection in order, so its PUBACK means it processed our acks too.
func ackBarrier(t testing.TB, c *Connector, n uint64) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, "the connection", func() error {
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

func publish(t testing.TB, p *testpeer.Subscriber, topic, payload string) {
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
			m := testpeer.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+dataMapping+`]}`)
			s := sinktest.New()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			pub := testpeer.Subscribe(t, m.Addr())
			publish(t, pub, "sensor/SN-1/data", `{"type":"thermo","model":"T1","v":"21.7","t":1.5,"ts":1700000000000}`)
			// t is missing: partial result pushed, the miss reported as malformed.
			publish(t, pub, "sensor/SN-2/data", `{"type":"thermo","v":3}`)
			publish(t, pub, "sensor/SN-3/data", `not json`)
			s.Wait(t, 10*time.Second, "two pushes and two malformed", func() bool { return s.Pushed() == 2 && len(s.MalformedReports()) == 2 })

			pushes, malformed := s.Pushes(), s.MalformedReports()
			p := pushes[0]
			if p.Device != "SN-1" || p.Profile != "thermo" || p.Ts.UnixMilli() != 1700000000000 {
				t.Fatalf("push = %+v", p)
			}
			if got := fmtDPs(p.Reading.Telemetry) + " " + fmtDPs(p.Reading.Attributes); got != "v=21,t=1.5 model=T1" {
				t.Fatalf("reading = %s", got)
			}
			if p.Report.Type != protocols.OnChange || p.KeyReport["v"].Type != protocols.OnReceived {
				t.Fatalf("report = %+v %+v", p.Report, p.KeyReport)
			}
			if p2 := pushes[1]; p2.Device != "SN-2" || len(p2.Reading.Telemetry) != 1 {
				t.Fatalf("partial push = %+v", p2)
			}
			if !strings.HasPrefix(malformed[0].String(), "sensor/+/data: ") || !strings.Contains(malformed[1].String(), "invalid JSON") {
				t.Fatalf("malformed = %v", malformed)
			}
		})
	}
}

func TestSharedSubscription(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			m := testpeer.StartMosquitto(t)
			shared := strings.Replace(dataMapping, `"sensor/+/data"`, `"$share/gw/sensor/+/data"`, 1)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+shared+`]}`)
			s := sinktest.New()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			pub := testpeer.Subscribe(t, m.Addr())
			publish(t, pub, "sensor/A/data", `{"type":"x","v":1,"t":2,"model":"m"}`)
			s.Wait(t, 10*time.Second, "push", func() bool { return s.Pushed() == 1 })
		})
	}
}

// A broker restart without persistence of our session (clean start) must
// still bring the subscriptions back.
func TestReconnectResubscribes(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			m := testpeer.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+dataMapping+`]}`)
			s := sinktest.New()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			pub := testpeer.Subscribe(t, m.Addr())
			publish(t, pub, "sensor/A/data", `{"type":"x","v":1}`)
			s.Wait(t, 10*time.Second, "first push", func() bool { return s.Pushed() == 1 })

			m.Restart()
			s.Wait(t, 20*time.Second, "link down and up again", func() bool {
				l := s.Links()
				return s.Ups() == 2 && len(l) >= 3 && !l[1].Up && l[1].Err != nil
			})
			pub.WaitReady(t, 10*time.Second)
			publish(t, pub, "sensor/A/data", `{"type":"x","v":2}`)
			s.Wait(t, 10*time.Second, "push after reconnect", func() bool { return s.Pushed() == 2 })
		})
	}
}

// Nothing the broker delivered is acknowledged before the sink committed
// it: a restart before the commit brings the messages again, and after the
// commit they stay acknowledged.
func TestAckAfterCommit(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			m := testpeer.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, v.session)+`, "mapping": [`+dataMapping+`]}`)
			s := sinktest.New()
			s.Hold()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			pub := testpeer.Subscribe(t, m.Addr())
			const n = 20
			for i := range n {
				publish(t, pub, "sensor/A/data", fmt.Sprintf(`{"type":"x","v":%d}`, i))
			}
			s.Wait(t, 10*time.Second, "n pushes, none committed", func() bool { return s.Pushed() == n })

			m.Restart()
			s.Wait(t, 20*time.Second, "redelivery of all uncommitted messages", func() bool { return s.Ups() == 2 && s.Pushed() == 2*n })
			got := values(s)
			for i := range n {
				if got[i] != got[n+i] || got[i] != fmt.Sprint(i) {
					t.Fatalf("redelivered %v", got)
				}
			}
			s.Release() // commits the first copies (dead connection: no ack) and the redelivered ones
			ackBarrier(t, c, n)

			// Everything is acknowledged now: another restart brings nothing
			// back before the next fresh message.
			before := s.Pushed()
			m.Restart()
			s.Wait(t, 20*time.Second, "third connection", func() bool { return s.Ups() == 3 })
			pub.WaitReady(t, 10*time.Second)
			publish(t, pub, "sensor/A/data", `{"type":"x","v":999}`)
			s.Wait(t, 10*time.Second, "marker", func() bool { return s.Pushed() > before })
			if got := values(s)[before:]; len(got) != 1 || got[0] != "999" {
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
			m := testpeer.StartMosquitto(t)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, v.session)+`, "mapping": [`+dataMapping+`]}`)
			c.queue = 8
			s := sinktest.New()
			gate := make(chan struct{})
			s.SetGate(gate)
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			pub := testpeer.Subscribe(t, m.Addr())
			const n = 300
			for i := range n {
				publish(t, pub, "sensor/A/data", fmt.Sprintf(`{"type":"x","v":%d}`, i))
			}
			if n := s.Pushed(); n != 0 {
				t.Fatalf("pushed %d through a closed gate", n)
			}
			close(gate)
			s.Wait(t, 20*time.Second, "all messages", func() bool { return s.Pushed() >= n })
			got := values(s)
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
	m := testpeer.StartMosquitto(t, testpeer.MosquittoConfig("allow_anonymous false", "password_file "+pw))
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			good := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, `, "security": {"type": "basic", "username": "gw", "password": "s3cret"}`)+`, "mapping": [`+dataMapping+`]}`)
			s := sinktest.New()
			sinktest.Run(t, good, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })

			bad := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, `, "security": {"type": "basic", "username": "gw", "password": "wrong-pass"}`)+`, "mapping": [`+dataMapping+`]}`)
			s2 := sinktest.New()
			sinktest.Run(t, bad, s2)
			s2.Wait(t, 10*time.Second, "refusal", func() bool { return len(s2.Links()) > 0 })
			l := s2.Links()[0]
			if l.Up || l.Err == nil || strings.Contains(l.Err.Error(), "wrong-pass") {
				t.Fatalf("link = %+v", l)
			}
			if !strings.Contains(strings.ToLower(l.Err.Error()), "not authori") && !strings.Contains(strings.ToLower(l.Err.Error()), "bad user name") {
				t.Fatalf("refusal does not say why: %v", l.Err)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	certs := testpeer.GenerateTLS(t)
	m := testpeer.StartMosquitto(t, testpeer.MosquittoTLS(certs.ServerCert, certs.ServerKey))
	other := testpeer.GenerateTLS(t)
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			sec := fmt.Sprintf(`, "security": {"type": "certificates", "pathToCACert": %q, "pathToClientCert": %q, "pathToPrivateKey": %q}`,
				certs.CACert, certs.ClientCert, certs.ClientKey)
			c := newTestConnector(t, m.TLSAddr(), `{`+brokerJSON(v.version, sec)+`, "mapping": [`+dataMapping+`]}`)
			s := sinktest.New()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up over TLS", func() bool { return s.Ups() == 1 })
			pub := testpeer.Subscribe(t, m.Addr())
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
			s.Wait(t, 10*time.Second, "pushes over TLS", func() bool { return s.Pushed() == 200 })
			ackBarrier(t, c, 200)
			if s.Ups() != 1 {
				t.Fatalf("TLS connection dropped during the burst: %v", s.Links())
			}

			// A CA that did not sign the server: verification is on.
			wrong := fmt.Sprintf(`, "security": {"type": "certificates", "pathToCACert": %q}`, other.CACert)
			c2 := newTestConnector(t, m.TLSAddr(), `{`+brokerJSON(v.version, wrong)+`, "mapping": [`+dataMapping+`]}`)
			s2 := sinktest.New()
			sinktest.Run(t, c2, s2)
			s2.Wait(t, 10*time.Second, "refusal", func() bool { return len(s2.Links()) > 0 })
			l := s2.Links()[0]
			if l.Up || !strings.Contains(l.Err.Error(), "certificate") {
				t.Fatalf("link with a foreign CA = %+v", l)
			}

			// insecure skips verification.
			insecure := fmt.Sprintf(`, "security": {"type": "certificates", "pathToCACert": %q, "insecure": true}`, other.CACert)
			c3 := newTestConnector(t, m.TLSAddr(), `{`+brokerJSON(v.version, insecure)+`, "mapping": [`+dataMapping+`]}`)
			s3 := sinktest.New()
			sinktest.Run(t, c3, s3)
			s3.Wait(t, 10*time.Second, "insecure link up", func() bool { return s3.Ups() == 1 })
		})
	}
}

// QoS 2 goes through the manual PUBREC path of both libraries; an
// uncommitted QoS 2 message is redelivered after a restart like QoS 1.
func TestQoS2(t *testing.T) {
	for _, v := range versions[1:] {
		t.Run(v.name, func(t *testing.T) {
			m := testpeer.StartMosquitto(t)
			mapping := strings.Replace(dataMapping, `"subscriptionQos": 1`, `"subscriptionQos": 2`, 1)
			c := newTestConnector(t, m.Addr(), `{`+brokerJSON(v.version, v.session)+`, "mapping": [`+mapping+`]}`)
			s := sinktest.New()
			s.Hold()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			pub := testpeer.SubscribeWith(t, m.Addr(), testpeer.SubscriberOptions{QoS: 2})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range 3 {
				if err := pub.Publish(ctx, "sensor/A/data", []byte(fmt.Sprintf(`{"type":"x","v":%d}`, i)), 2); err != nil {
					t.Fatal(err)
				}
			}
			s.Wait(t, 10*time.Second, "3 pushes", func() bool { return s.Pushed() == 3 })
			m.Restart()
			s.Wait(t, 20*time.Second, "redelivery", func() bool { return s.Ups() == 2 && s.Pushed() == 6 })
			s.Release()
			ackBarrier(t, c, 3)
			before := s.Pushed()
			m.Restart()
			s.Wait(t, 20*time.Second, "third connection", func() bool { return s.Ups() == 3 })
			pub.WaitReady(t, 10*time.Second)
			if err := pub.Publish(ctx, "sensor/A/data", []byte(`{"type":"x","v":999}`), 2); err != nil {
				t.Fatal(err)
			}
			s.Wait(t, 10*time.Second, "marker", func() bool { return s.Pushed() > before })
			if got := values(s)[before:]; len(got) != 1 || got[0] != "999" {
				t.Fatalf("after commit and restart got %v, want only the marker", got)
			}
		})
	}
}

// A Push that fails on its own (the runtime could not create the device)
// is neither acked nor left blocking later acks: the connection is dropped
// and the broker redelivers.
func TestPushFailureRedelivers(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	c := newTestConnector(t, m.Addr(), `{`+brokerJSON(5, versions[2].session)+`, "mapping": [`+dataMapping+`]}`)
	s := sinktest.New()
	s.FailNext(fmt.Errorf("device actor not created"))
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
	pub := testpeer.Subscribe(t, m.Addr())
	publish(t, pub, "sensor/A/data", `{"type":"x","v":7}`)
	s.Wait(t, 10*time.Second, "reconnect and redelivery", func() bool { return s.Ups() == 2 && s.Pushed() == 1 })
	if got := values(s); got[0] != "7" {
		t.Fatalf("pushed %v", got)
	}
}
