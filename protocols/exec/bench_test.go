package exec

import (
	"encoding/json"
	osexec "os/exec"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/sinktest"
)

// BenchmarkRun measures records per second from a program's stdout to a
// sink: `yes` prints one ten-value record per line as fast as the pipe
// takes it, so this is the connector's share (read, parse, push).
func BenchmarkRun(b *testing.B) {
	yes, err := osexec.LookPath("yes")
	if err != nil {
		b.Skip("no yes(1)")
	}
	line := `{"device":"SN-001","profile":"Thermometer","telemetry":{"k0":1.5,"k1":2,"k2":3.25,"k3":true,"k4":-7,"k5":10.125,"k6":0,"k7":"on","k8":42,"k9":3.14159}}`
	cmd, _ := json.Marshal(map[string]any{"command": []string{yes, line}})
	c := newConnector(b, string(cmd), nil)
	s := sinktest.NewCounter()
	r := sinktest.Run(b, c, s)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done := s.WhenPushed(b.N)
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatal("too slow")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*10)/time.Since(start).Seconds(), "values/s")
	b.StopTimer()
	_ = r.Stop()
}
