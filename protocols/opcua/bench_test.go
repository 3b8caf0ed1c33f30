package opcua

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
)

// countSink counts values and notes when the first arrived; it never blocks.
type countSink struct {
	*sinktest.Recorder
	first atomic.Int64 // unix nanos of the first push
}

func (s *countSink) Push(ctx context.Context, p protocols.Push) error {
	s.first.CompareAndSwap(0, time.Now().UnixNano())
	return s.Recorder.Push(ctx, p)
}

func loadConfig(url string, vars int) string {
	var keys []string
	for k := 0; k < vars; k++ {
		keys = append(keys, fmt.Sprintf(`{"key": "v%d", "type": "path", "value": "${Var%d}"}`, k, k))
	}
	return fmt.Sprintf(`{
  "server": {"url": %q, "timeoutInMillis": 5000, "enableSubscriptions": true, "subCheckPeriodInMillis": 100,
             "reconnectBackoffInitialDelay": 0.1, "maxItemsPerSubscription": 1000},
  "mapping": [{
    "deviceNodePattern": "Root\\.Objects\\.Plant\\.Device[0-9]+",
    "deviceInfo": {"deviceNameExpression": "${SerialNumber}", "deviceNameExpressionSource": "path"},
    "timeseries": [%s]
  }]
}`, url, strings.Join(keys, ",\n"))
}

// BenchmarkSubscribe10k: 100 devices × 100 variables = 10,000 monitored
// items on gopcua's in-process server, every variable changed once per
// second, through Run into a counting sink. It reports start-up (Run to
// the first value and to every item's initial value), values/s in steady
// state over 5 s, and allocations per value (process-wide: the in-process
// server's allocations are included).
//
//	go test -run XXX -bench Subscribe10k -benchtime 1x ./protocols/opcua/
func BenchmarkSubscribe10k(b *testing.B) { benchSubscribe(b, time.Second) }

// BenchmarkSubscribe10kFast changes every variable every 200 ms (50,000
// changes/s offered) to find the driver's ceiling rather than the load's.
func BenchmarkSubscribe10kFast(b *testing.B) { benchSubscribe(b, 200*time.Millisecond) }

func benchSubscribe(b *testing.B, period time.Duration) {
	const devices, vars = 100, 100
	ts := startServer(b, 0, plantSpec{devices: devices, extra: vars}, nil)
	c := newTestConnector(b, loadConfig(ts.url(), vars))
	sink := &countSink{Recorder: sinktest.NewCounter()}
	total := int64(devices * vars)

	start := time.Now()
	sinktest.Run(b, c, sink)
	sink.Wait(b, 60*time.Second, "every item's initial value", func() bool { return sink.PushedValues() >= int(total) })
	firstValue := time.Duration(sink.first.Load() - start.UnixNano())
	allInitial := time.Since(start)

	// Change every variable once per second.
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	var changes atomic.Int64
	go func() {
		defer close(loadDone)
		t := time.NewTicker(period)
		defer t.Stop()
		round := 0
		for {
			round++
			for d := 1; d <= devices; d++ {
				for k := 0; k < vars; k++ {
					ts.set(fmt.Sprintf("Device%d.Var%d", d, k), float64(round*1000+k))
				}
			}
			changes.Add(total)
			select {
			case <-stopLoad:
				return
			case <-t.C:
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond) // settle into the steady state
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	n0, c0, t0 := int64(sink.PushedValues()), changes.Load(), time.Now()
	b.ResetTimer()
	time.Sleep(5 * time.Second)
	b.StopTimer()
	n1, c1, el := int64(sink.PushedValues()), changes.Load(), time.Since(t0)
	runtime.ReadMemStats(&ms1)
	close(stopLoad)
	<-loadDone

	got := float64(n1-n0) / el.Seconds()
	b.ReportMetric(got, "values/s")
	b.ReportMetric(float64(c1-c0)/el.Seconds(), "changes/s")
	b.ReportMetric(firstValue.Seconds(), "s-to-first-value")
	b.ReportMetric(allInitial.Seconds(), "s-to-all-10k")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(max(n1-n0, 1)), "allocs/value")
	b.ReportMetric(float64(c.stats.Subscriptions.Load()), "subscriptions")
	b.ReportMetric(float64(c.stats.BrowseRequests.Load()), "browse-requests")
}
