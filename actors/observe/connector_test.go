package observe

import (
	"testing"

	"github.com/industryos/gateway/protocols"
)

type fakeSource struct{ n, live float64 }

func (f *fakeSource) Metrics() []protocols.Metric {
	return []protocols.Metric{
		{Name: "fake_things_total", Help: "Things.", Value: f.n},
		{Name: "fake_running", Help: "Running.", Value: f.live, Gauge: true},
	}
}

// A connector's own metrics are exported with its name; its counters stay
// cumulative across a restart (a new instance counting from zero) and are
// still served while it is stopped; its gauges are not.
func TestConnectorMetrics(t *testing.T) {
	m := New(Options{NoProcess: true})
	reg := m.Registry()
	a := &fakeSource{n: 3, live: 1}
	m.ConnectorStarted("x", a)
	m.ConnectorStarted("y", &fakeSource{n: 10})
	if v := mustSample(t, reg, "iotgw_fake_things_total", map[string]string{"connector": "x"}); v != 3 {
		t.Fatalf("x things = %v", v)
	}
	if v := mustSample(t, reg, "iotgw_fake_running", map[string]string{"connector": "x"}); v != 1 {
		t.Fatalf("x running = %v", v)
	}
	a.n = 5
	m.ConnectorStopped("x")
	if v := mustSample(t, reg, "iotgw_fake_things_total", map[string]string{"connector": "x"}); v != 5 {
		t.Fatalf("stopped x things = %v", v)
	}
	if _, ok := sample(t, reg, "iotgw_fake_running", map[string]string{"connector": "x"}); ok {
		t.Fatal("a stopped connector's gauge is still served")
	}
	b := &fakeSource{n: 2}
	m.ConnectorStarted("x", b)
	if v := mustSample(t, reg, "iotgw_fake_things_total", map[string]string{"connector": "x"}); v != 7 {
		t.Fatalf("restarted x things = %v, want 5 + 2", v)
	}
	if v := mustSample(t, reg, "iotgw_fake_things_total", map[string]string{"connector": "y"}); v != 10 {
		t.Fatalf("y things = %v", v)
	}
	var nilMetrics *Metrics
	nilMetrics.ConnectorStarted("x", b) // metrics off: nothing, no panic
	nilMetrics.ConnectorStopped("x")
}
