// Package observe is the gateway's observability: Prometheus metrics for
// actors, devices, the journal and the uplink (a private registry, never the
// global one), the receive middleware that feeds the actor metrics, the HTTP
// endpoint (/metrics, /healthz, /readyz, /debug/pprof when enabled), and
// remote logging to the platform.
//
// It knows nothing of the gateway's actors: package actors wires it in, and
// hands it functions to read what it cannot import (the current platform
// client, the supervisor's health snapshot).
package observe

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/platform"
	"github.com/industryos/gateway/supervisor"
)

// Namespace prefixes every metric of ours.
const Namespace = "iotgw"

// Options say where the collectors read state they do not own. Every field
// may be nil; the matching metrics are then absent.
type Options struct {
	// Journal returns the open journal.
	Journal func() persistence.Journal
	// Client returns the uplink's current platform client (nil between
	// sessions of the uplink actor).
	Client func() *platform.Client
	// Health returns the supervisor's view of failed actors, keyed by PID id.
	Health func() map[string]supervisor.ChildHealth
	// NoProcess leaves out the Go and process collectors (tests and
	// benchmarks that build many registries).
	NoProcess bool
}

// Metrics owns the registry and every instrument. A nil *Metrics is valid
// and records nothing, so callers need no "metrics enabled?" checks.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	actorsMu sync.Mutex
	actors   map[string]*actorEntry

	devPolls   *prometheus.CounterVec
	devSkipped *prometheus.CounterVec
	devErrors  *prometheus.CounterVec
	devLatency *prometheus.HistogramVec
	devValues  *prometheus.CounterVec
	devLast    *prometheus.GaugeVec
	devicesMu  sync.Mutex
	devices    map[[2]string]*Device

	commit prometheus.Histogram
	puback prometheus.Histogram

	conns connectorSources
}

var (
	actorLabels  = []string{"kind", "connector", "device"}
	deviceLabels = []string{"connector", "device"}
)

// New builds the registry with our collectors and, unless opts.NoProcess,
// the Go runtime and process collectors.
func New(opts Options) *Metrics {
	m := &Metrics{
		opts:    opts,
		reg:     prometheus.NewRegistry(),
		actors:  map[string]*actorEntry{},
		devices: map[[2]string]*Device{},
		devPolls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "device_polls_total",
			Help: "Polls of a device, failed ones included."}, deviceLabels),
		devSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "device_polls_skipped_total",
			Help: "Poll ticks skipped because the previous poll ran past them (the device, its link or the gateway is slower than the poll period)."}, deviceLabels),
		devErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "device_poll_errors_total",
			Help: "Failed polls by kind: timeout, exception (the device answered with an error), io, other."},
			append(append([]string{}, deviceLabels...), "kind")),
		devLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "device_poll_duration_seconds",
			Help: "Duration of one poll of a device.", Buckets: []float64{0.005, 0.02, 0.1, 0.5, 2, 10}}, deviceLabels),
		devValues: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "device_values_total",
			Help: "Values (telemetry and attributes) read by polls, before report filtering."}, deviceLabels),
		devLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "device_last_success_timestamp_seconds",
			Help: "Unix time of the device's last successful poll."}, deviceLabels),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "journal_commit_duration_seconds",
			Help: "Duration of one group commit (journal append, including its sync).", Buckets: prometheus.ExponentialBuckets(5e-5, 3, 10)}),
		puback: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "uplink_puback_latency_seconds",
			Help: "Time from handing a journaled message to the MQTT client to its PUBACK.", Buckets: prometheus.ExponentialBuckets(0.0005, 3, 11)}),
	}
	m.reg.MustRegister((*actorCollector)(m), (*connectorCollector)(m),
		m.devPolls, m.devSkipped, m.devErrors, m.devLatency, m.devValues, m.devLast, m.commit, m.puback)
	if opts.Journal != nil {
		m.reg.MustRegister(&journalCollector{get: opts.Journal})
	}
	if opts.Client != nil {
		m.reg.MustRegister(&uplinkCollector{get: opts.Client})
	}
	if !opts.NoProcess {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry is the private registry, for Register and for tests that gather.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds collectors (the gateway's own counters) to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ObservePuback records one PUBACK latency.
func (m *Metrics) ObservePuback(seconds float64) {
	if m != nil {
		m.puback.Observe(seconds)
	}
}

// Device is the per-device instrument set; get it once per device actor.
type Device struct {
	polls, values prometheus.Counter
	skipped       prometheus.Counter
	errs          map[string]prometheus.Counter
	latency       prometheus.Observer
	last          prometheus.Gauge
}

// Device returns the instruments of one device (the same ones across actor
// restarts). It returns nil on a nil *Metrics.
func (m *Metrics) Device(connector, device string) *Device {
	if m == nil {
		return nil
	}
	m.devicesMu.Lock()
	defer m.devicesMu.Unlock()
	k := [2]string{connector, device}
	if d := m.devices[k]; d != nil {
		return d
	}
	d := &Device{
		polls:   m.devPolls.WithLabelValues(connector, device),
		values:  m.devValues.WithLabelValues(connector, device),
		skipped: m.devSkipped.WithLabelValues(connector, device),
		latency: m.devLatency.WithLabelValues(connector, device),
		last:    m.devLast.WithLabelValues(connector, device),
		errs:    map[string]prometheus.Counter{},
	}
	for _, kind := range protocols.ErrorKinds {
		// Created up front so every kind is exported as 0 before the first failure.
		d.errs[kind] = m.devErrors.WithLabelValues(connector, device, kind)
	}
	m.devices[k] = d
	return d
}

// Skipped records poll ticks that did not run because the previous poll
// ended after them. Safe on a nil *Device.
func (d *Device) Skipped(n int) {
	if d != nil && n > 0 {
		d.skipped.Add(float64(n))
	}
}

// Polled records one poll: its duration, the values it read (a failed poll
// may still have read some) and its error. Safe on a nil *Device.
func (d *Device) Polled(seconds float64, values int, err error, unixNow float64) {
	if d == nil {
		return
	}
	d.polls.Inc()
	d.latency.Observe(seconds)
	if values > 0 {
		d.values.Add(float64(values))
	}
	if err != nil {
		d.errs[protocols.ErrorKind(err)].Inc()
		return
	}
	d.last.Set(unixNow)
}
