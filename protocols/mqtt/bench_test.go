package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/tests/testenv"
)

// countSink commits every push at once and signals when want pushes arrived.
type countSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
	once sync.Once
}

func (s *countSink) Push(_ context.Context, p protocols.Push) error {
	if p.Done != nil {
		p.Done(nil)
	}
	if s.n.Add(1) == s.want {
		s.once.Do(func() { close(s.done) })
	}
	return nil
}
func (s *countSink) Connect(string, string) {}
func (s *countSink) Disconnect(string)      {}
func (s *countSink) RequestAttributes(context.Context, string, bool, []string) (map[string]json.RawMessage, error) {
	return nil, nil
}
func (s *countSink) Malformed(string, error) {}
func (s *countSink) Unmatched()              {}
func (s *countSink) Link(bool, error)        {}

func benchMapping() string {
	var ts []string
	types := []string{"double", "int", "double", "bool", "int", "double", "int", "bool", "long", "float"}
	for i, typ := range types {
		ts = append(ts, fmt.Sprintf(`{"type":%q,"key":"k%d","value":"${v%d}"}`, typ, i, i))
	}
	return `{"topicFilter":"sensor/data","subscriptionQos":1,"converter":{"type":"json","deviceInfo":{"deviceNameExpression":"${serialNumber}",
		"deviceProfileExpressionSource":"message","deviceProfileExpression":"${sensorType}"},"timeseries":[` + strings.Join(ts, ",") + `]}}`
}

// BenchmarkRun measures QoS 1 messages of 10 JSON values from mosquitto
// through Run to a sink that commits at once (so every message is acked).
// allocs/msg counts the whole process, the in-process publishers included;
// BenchmarkHandle isolates the connector's share.
func BenchmarkRun(b *testing.B) {
	for _, v := range versions[1:] {
		b.Run(v.name, func(b *testing.B) {
			m := testenv.StartMosquitto(b)
			c := newTestConnector(b, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+benchMapping()+`]}`)
			s := &countSink{want: int64(b.N), done: make(chan struct{})}
			up := newRecSink()
			run(b, c, &linkTee{countSink: s, rec: up})
			up.wait(b, 10*time.Second, "link up", func() bool { return up.ups() == 1 })
			const pubs = 4
			var ps []*testenv.Subscriber
			for range pubs {
				ps = append(ps, testenv.Subscribe(b, m.Addr()))
			}
			payload := []byte(benchPayload)
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, p := range ps {
				n := b.N / pubs
				if i == 0 {
					n += b.N % pubs
				}
				// Several in-flight publishes per publisher: one at a time
				// would measure the round trip, not the connector.
				const inflight = 16
				for j := range inflight {
					k := n / inflight
					if j == 0 {
						k += n % inflight
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range k {
							if err := p.Publish(context.Background(), "sensor/data", payload, 1); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
			}
			select {
			case <-s.done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("received %d of %d", s.n.Load(), b.N)
			}
			el := time.Since(start)
			b.StopTimer()
			wg.Wait()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N*10)/el.Seconds(), "values/s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/msg")
		})
	}
}

// linkTee counts pushes and records link events.
type linkTee struct {
	*countSink
	rec *recSink
}

func (t *linkTee) Link(up bool, err error) { t.rec.Link(up, err) }

// BenchmarkHandle is the connector's own per-message work: match, convert,
// push, and the ack bookkeeping, without a network.
func BenchmarkHandle(b *testing.B) {
	c := newTestConnector(b, "127.0.0.1:1", `{`+brokerJSON(5, "")+`, "mapping": [`+benchMapping()+`]}`)
	s := &countSink{want: -1, done: make(chan struct{})}
	l := newLink(nil, nil)
	payload := []byte(benchPayload)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		m := &message{topic: "sensor/data", payload: payload, qos: 1, ack: func() {}, link: l, pending: 1}
		l.unacked = append(l.unacked[:0], m)
		c.handle(context.Background(), s, m, nil)
		m.release()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*10)/time.Since(start).Seconds(), "values/s")
}
