package observe

import (
	"fmt"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/supervisor"
)

type benchMsg struct{ n int }

// BenchmarkActorThroughput measures messages/s through actors built as the
// gateway builds them (our mailbox, the pooled dispatcher, panic logging),
// without and with the metrics middleware and per-actor mailbox stats.
// "work=0" is an empty Receive, the worst case for the middleware's share;
// "work=2us" is closer to the gateway's actors (a journal append buffers and
// encodes, a device poll does I/O).
//
//	go test -run - -bench ActorThroughput -benchtime 2000000x ./actors/observe/
func BenchmarkActorThroughput(b *testing.B) {
	for _, work := range []time.Duration{0, 2 * time.Microsecond} {
		for _, metrics := range []bool{false, true} {
			name := fmt.Sprintf("work=%s/metrics=%v", work, metrics)
			b.Run(name, func(b *testing.B) { benchActors(b, 4, work, metrics) })
		}
	}
}

func spin(d time.Duration) {
	if d <= 0 {
		return
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

func benchActors(b *testing.B, actors int, work time.Duration, withMetrics bool) {
	sys := quietSystem()
	disp := mailbox.NewPooledDispatcher(300, time.Minute)
	var m *Metrics
	if withMetrics {
		m = New(Options{NoProcess: true})
	}
	var done atomic.Int64
	pids := make([]*actor.PID, actors)
	for i := range pids {
		st := new(mailbox.Stats)
		meter := m.ActorMeter(st) // nil without metrics: Wrap then adds nothing
		pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
			return supervisor.LogPanics(func(string) zerolog.Logger { return zerolog.Nop() }, meter.Wrap(actor.ReceiveFunc(func(c actor.Context) {
				if _, ok := c.Message().(*benchMsg); ok {
					spin(work)
					done.Add(1)
				}
			})))
		},
			actor.WithMailbox(mailbox.Producer(mailbox.WithCapacity(1<<16), mailbox.WithStats(st))),
			actor.WithDispatcher(disp)), fmt.Sprintf("gateway/connector/bench/device/d%d", i))
		if err != nil {
			b.Fatal(err)
		}
		pids[i] = pid
	}
	msg := &benchMsg{}
	const window = 1 << 14 // stay well inside the mailboxes: nothing is dropped
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-done.Load() > window {
			runtime.Gosched()
		}
		sys.Root.Send(pids[i%actors], msg)
	}
	for done.Load() < int64(b.N) {
		runtime.Gosched()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	for _, pid := range pids {
		_ = sys.Root.StopFuture(pid).Wait()
	}
}

// BenchmarkScrape is one /metrics request of a gateway with n device
// actors, each having seen a few message types, with and without gzip.
//
//	go test -run - -bench Scrape ./actors/observe/
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{200, 1000} {
		for _, gz := range []bool{false, true} {
			b.Run(fmt.Sprintf("devices=%d/gzip=%v", n, gz), func(b *testing.B) { benchScrape(b, n, gz) })
		}
	}
}

func benchScrape(b *testing.B, devices int, gz bool) {
	m := New(Options{})
	st := new(mailbox.Stats)
	for i := 0; i < devices; i++ {
		id := fmt.Sprintf("gateway/connector/bench/device/sim0-dev-%d", i)
		e := m.bind(&actor.PID{Id: id}, st)
		for _, msg := range []any{&actor.Started{}, &benchMsg{}, &ping{}} {
			e.typeOf(msg).n.Add(1)
		}
		e.hist.observe(time.Millisecond)
		m.ActorRestarted(id)
		m.Device("bench", fmt.Sprintf("sim0-dev-%d", i)).Polled(0.01, 100, nil, 1)
	}
	h := promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{})
	b.ReportAllocs()
	size := 0
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if gz {
			r.Header.Set("Accept-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "body-bytes")
}
