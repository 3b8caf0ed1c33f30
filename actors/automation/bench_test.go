package automation

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
)

// BenchmarkBusToTask: values through the bus into a task that evaluates
// its condition on each (never true: no handler I/O), 10 values per
// message as a polled device emits them. Reports values/s.
func BenchmarkBusToTask(b *testing.B) {
	for _, c := range []struct{ name, cond string }{
		{"fast-path", "value > 1000000"},                  // int arithmetic: no interpreter
		{"starlark", "value > 1000000 and device == 'd'"}, // a string compare runs Starlark
	} {
		cond := c.cond
		b.Run(c.name, func(b *testing.B) {
			cfg, ps := Parse("automation.yaml", []byte(fmt.Sprintf(`
tasks:
  - {name: t, trigger: {event: "device/#"}, condition: "%s", actions: [{handler: test_record}]}
`, cond)))
			if ps.Err() != nil {
				b.Fatal(ps.Err())
			}
			sys := quietSystem()
			bb := bus.New(sys)
			eng, err := Start(cfg, Deps{System: sys, Bus: bb, Store: persistence.NewMemoryStore(), Log: zerolog.Nop(), Env: handler.Env{}})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Stop()
			vals := make([]protocols.Datapoint, 10)
			for i := range vals {
				vals[i] = protocols.Datapoint{Key: fmt.Sprintf("r%d", i), Value: protocols.Int(int64(i))}
			}
			st := eng.board.get("t")
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				bb.PublishValues("d", "c", false, int64(i), vals)
				if i%256 == 255 {
					for st.checks.Load() < uint64(i+1)*10 {
						runtime.Gosched()
					}
				}
			}
			for st.checks.Load() < uint64(b.N)*10 {
				runtime.Gosched()
			}
			b.ReportMetric(float64(b.N*10)/time.Since(start).Seconds(), "values/s")
		})
	}
}
