package observe

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/industryos/gateway/protocols"
)

// connectorSources are the connectors with figures of their own
// (protocols.MetricsSource), read at scrape time. A connector instance
// lives until its actor restarts; what its counters reached is kept as a
// base the next instance's counts add to, so the series stay cumulative.
type connectorSources struct {
	mu   sync.Mutex
	live map[string]protocols.MetricsSource
	base map[[2]string]protocols.Metric // {connector, name} → counts of earlier instances
}

// ConnectorStarted registers a connector instance whose Metrics are
// exported with the label connector=name, replacing any earlier one.
func (m *Metrics) ConnectorStarted(name string, src protocols.MetricsSource) {
	if m == nil {
		return
	}
	cs := &m.conns
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.live == nil {
		cs.live, cs.base = map[string]protocols.MetricsSource{}, map[[2]string]protocols.Metric{}
	}
	if old := cs.live[name]; old != nil && old != src {
		cs.fold(name, old)
	}
	cs.live[name] = src
}

// ConnectorStopped ends a connector instance: its counters are kept (and
// exported) until the next instance adds to them; its gauges go.
func (m *Metrics) ConnectorStopped(name string) {
	if m == nil {
		return
	}
	cs := &m.conns
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if src := cs.live[name]; src != nil {
		cs.fold(name, src)
		delete(cs.live, name)
	}
}

func (cs *connectorSources) fold(name string, src protocols.MetricsSource) {
	for _, mt := range src.Metrics() {
		if mt.Gauge {
			continue
		}
		k := [2]string{name, mt.Name}
		b := cs.base[k]
		mt.Value += b.Value
		cs.base[k] = mt
	}
}

// connectorCollector exports the sources. It is unchecked (Describe sends
// nothing): which metrics exist depends on the connectors configured.
type connectorCollector Metrics

func (c *connectorCollector) Describe(chan<- *prometheus.Desc) {}

func (c *connectorCollector) Collect(ch chan<- prometheus.Metric) {
	cs := &c.conns
	cs.mu.Lock()
	out := map[[2]string]protocols.Metric{}
	for k, b := range cs.base {
		out[k] = b
	}
	for name, src := range cs.live {
		for _, mt := range src.Metrics() {
			k := [2]string{name, mt.Name}
			if b, ok := cs.base[k]; ok && !mt.Gauge {
				mt.Value += b.Value
			}
			out[k] = mt
		}
	}
	cs.mu.Unlock()
	keys := make([][2]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][1] != keys[j][1] {
			return keys[i][1] < keys[j][1]
		}
		return keys[i][0] < keys[j][0]
	})
	for _, k := range keys {
		mt := out[k]
		typ := prometheus.CounterValue
		if mt.Gauge {
			typ = prometheus.GaugeValue
		}
		desc := prometheus.NewDesc(Namespace+"_"+mt.Name, mt.Help, []string{"connector"}, nil)
		ch <- prometheus.MustNewConstMetric(desc, typ, mt.Value, k[0])
	}
}
