package mqtt

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func benchMapping() string {
	var ts []string
	types := []string{"double", "int", "double", "bool", "int", "double", "int", "bool", "long", "float"}
	for i, typ := range types {
		ts = append(ts, fmt.Sprintf(`{"type":%q,"key":"k%d","value":"${v%d}"}`, typ, i, i))
	}
	return `{"topicFilter":"sensor/data","subscriptionQos":1,"converter":{"type":"json","deviceInfo":{"deviceNameExpression":"${serialNumber}",
		"deviceProfileExpressionSource":"message","deviceProfileExpression":"${sensorType}"},"timeseries":[` + strings.Join(ts, ",") + `]}}`
}

// benchPayload is the message benchMapping reads.
const benchPayload = `{"serialNumber":"SN-001","sensorType":"Thermometer","ts":1700000000000,"v0":1.5,"v1":2,"v2":"3.25","v3":true,"v4":-7,"v5":10.125,"v6":0,"v7":"on","v8":42,"v9":3.14159}`

// BenchmarkRun measures QoS 1 messages of 10 JSON values from mosquitto
// through Run to a sink that commits at once (so every message is acked).
// allocs/msg counts the whole process, the in-process publishers included;
// BenchmarkHandle isolates the connector's share.
func BenchmarkRun(b *testing.B) {
	for _, v := range versions[1:] {
		b.Run(v.name, func(b *testing.B) {
			m := testpeer.StartMosquitto(b)
			c := newTestConnector(b, m.Addr(), `{`+brokerJSON(v.version, "")+`, "mapping": [`+benchMapping()+`]}`)
			s := sinktest.NewCounter()
			sinktest.Run(b, c, s)
			s.Wait(b, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
			const pubs = 4
			var ps []*testpeer.Subscriber
			for range pubs {
				ps = append(ps, testpeer.Subscribe(b, m.Addr()))
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
			case <-s.WhenPushed(b.N):
			case <-time.After(5 * time.Minute):
				b.Fatalf("received %d of %d", s.Pushed(), b.N)
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

// BenchmarkHandle is the connector's own per-message work: match, convert,
// push, and the ack bookkeeping, without a network.
func BenchmarkHandle(b *testing.B) {
	c := newTestConnector(b, "127.0.0.1:1", `{`+brokerJSON(5, "")+`, "mapping": [`+benchMapping()+`]}`)
	s := sinktest.NewCounter()
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
