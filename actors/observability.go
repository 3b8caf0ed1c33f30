package actors

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/platform"
	"github.com/industryos/gateway/supervisor"
)

// observability is the gateway's metrics, HTTP endpoint and remote log. Each
// part is optional: metrics and the endpoint exist only when http is
// enabled, the remote log only when the caller built the logger with one.
type observability struct {
	metrics *observe.Metrics
	server  *observe.Server
	remote  *observe.RemoteLog

	// What readiness, the counters' collectors and the log read.
	log      zerolog.Logger
	counters *Counters
	version  string
	client   *atomic.Pointer[platform.Client] // the uplink's current one
	conf     func() *config.Gateway
	journal  func() persistence.Journal
	links    *sync.Map // connector name → *linkState of a push source
	// remoteConfig is set when remote configuration runs: it asks for
	// RemoteLoggingLevel among its own keys.
	remoteConfig bool
	publish      func(ctx context.Context, topic string, payload []byte, qos byte) error
}

// Metrics returns the gateway's metrics, nil unless the http endpoint is enabled.
func (g *Gateway) Metrics() *observe.Metrics {
	if g.obs == nil {
		return nil
	}
	return g.obs.metrics
}

// HTTPAddr returns the address the http endpoint is bound to, "" when it is off.
func (g *Gateway) HTTPAddr() string {
	if g.obs == nil || g.obs.server == nil {
		return ""
	}
	return g.obs.server.Addr()
}

// startObservability builds the metrics, binds the http endpoint and starts
// the remote log. It runs after the journal is open and before the tree is
// spawned (the actors' props read the metrics). A bind failure fails Start.
func (g *Gateway) startObservability() error {
	o := &observability{
		remote: g.opts.RemoteLog, log: g.log, counters: g.counters, version: g.opts.Version,
		client: &g.client, conf: g.conf, journal: func() persistence.Journal { return g.j },
		links: &g.links, remoteConfig: g.remote != nil, publish: g.PublishDirect,
	}
	g.obs = o
	cfg := g.conf()
	if cfg.HTTP.Enabled {
		o.metrics = observe.New(observe.Options{
			Journal: func() persistence.Journal { return g.j },
			Client:  g.client.Load,
			Health:  func() map[string]supervisor.ChildHealth { return g.strategy.Snapshot() },
		})
		if err := o.metrics.Register(o.counterCollectors()...); err != nil {
			return err
		}
		if o.remote != nil {
			if err := o.metrics.Register(o.remote.Collector()); err != nil {
				return err
			}
		}
		g.j = o.metrics.InstrumentJournal(g.j)
		srv, err := observe.Listen(observe.ServerOptions{
			Address: cfg.HTTP.Address,
			Pprof:   cfg.HTTP.Pprof,
			Metrics: o.metrics,
			Ready:   o.notReady,
			Automation: func() any {
				if f := g.automationStatus.Load(); f != nil {
					return (*f)()
				}
				return nil
			},
			Logger: g.log.With().Str("component", "http").Logger(),
		})
		if err != nil {
			return fmt.Errorf("http endpoint on %s: %w", cfg.HTTP.Address, err)
		}
		o.server = srv
		if host, _, _ := net.SplitHostPort(srv.Addr()); !net.ParseIP(host).IsLoopback() {
			g.log.Warn().Str("address", srv.Addr()).Bool("pprof", cfg.HTTP.Pprof).Msg("the http endpoint is reachable from the network")
		}
	}
	if o.remote != nil {
		o.remote.Start(observe.Sink{
			Publish: func(ctx context.Context, payload []byte) error {
				return g.PublishDirect(ctx, platform.TopicMeTelemetry, payload, g.conf().ThingsBoard.QoS)
			},
			MaxPayload: func() int {
				if c := g.client.Load(); c != nil {
					return c.Limits().MaxPayload
				}
				return 0
			},
			Connectors: func() map[string]bool {
				m := map[string]bool{}
				for _, c := range g.conf().Connectors {
					m[c.Name] = c.RemoteLogging
				}
				return m
			},
			Logger: g.log,
		})
		g.OnGatewayAttributes(o.remote.HandleGatewayAttributes)
	}
	return nil
}

// stopObservability runs last in Stop: the endpoint answers until then
// (readiness is already failing), and the remote log gets a last attempt.
func (g *Gateway) stopObservability(ctx context.Context) {
	if g.obs == nil {
		return
	}
	if g.obs.remote != nil {
		g.obs.remote.Stop()
	}
	if g.obs.server != nil {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = g.obs.server.Close(sctx)
	}
}

// notReady is /readyz: ready when the uplink is connected and the journal is open.
func (o *observability) notReady() map[string]string {
	not := map[string]string{}
	if c := o.client.Load(); c == nil {
		not["uplink"] = "no platform client (the uplink is starting or restarting)"
	} else if !c.Connected() {
		reason := "not connected to the platform"
		if st := c.Stats(); st.LastError != "" {
			reason += ": " + st.LastError
		}
		not["uplink"] = reason
	}
	for _, u := range o.conf().Unsupported {
		not["connector/"+u.Name] = u.Reason
	}
	o.links.Range(func(k, v any) bool {
		l := v.(*linkState)
		l.mu.Lock()
		if l.known && !l.up {
			not["connector/"+k.(string)] = "link down: " + l.err
		}
		l.mu.Unlock()
		return true
	})
	if j := o.journal(); j == nil {
		not["journal"] = "not open"
	} else if _, err := j.Read(j.LastSeq(), 1, 1); err != nil {
		not["journal"] = err.Error()
	}
	return not
}

// requestRemoteLoggingLevel asks the platform for RemoteLoggingLevel after a
// connect, as upstream does, when remote configuration (which asks for it
// among its keys) is off.
func (o *observability) requestRemoteLoggingLevel() {
	if o == nil || o.remote == nil || o.remoteConfig {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Ids far from remote configuration's own request numbers.
	topic := platform.TopicMeAttributesRequestPrefix + strconv.FormatInt(1<<30+time.Now().UnixMilli()%(1<<20), 10)
	if err := o.publish(ctx, topic, []byte(`{"sharedKeys":"`+observe.RemoteLoggingLevelKey+`"}`), 1); err != nil {
		o.log.Debug().Err(err).Msg("remote logging level request not sent")
	}
}

// actorLogger is the logger for an actor's panic line: the gateway logger
// with the actor's connector and device, read from its PID id.
func (o *observability) actorLogger(pid string) zerolog.Logger {
	id := observe.ParseActorID(pid)
	if id.Connector == "" {
		return o.log
	}
	c := o.log.With().Str("connector", id.Connector)
	if id.Device != "" {
		c = c.Str("device", id.Device)
	}
	return c.Logger()
}

// observeSupervisorEvent counts restarts per actor and returns the log
// fields of the failed actor.
func (o *observability) observeSupervisorEvent(ev supervisor.Event, e *zerolog.Event) *zerolog.Event {
	if ev.Directive == actor.RestartDirective && o != nil {
		o.metrics.ActorRestarted(ev.Child.Id)
	}
	id := observe.ParseActorID(ev.Child.Id)
	if id.Connector != "" {
		e = e.Str("connector", id.Connector)
	}
	if id.Device != "" {
		e = e.Str("device", id.Device)
	}
	return e
}

// counterCollectors export the process-wide Counters, read at scrape time.
func (o *observability) counterCollectors() []prometheus.Collector {
	c := o.counters
	counter := func(name, help string, v func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: observe.Namespace, Name: name, Help: help}, v)
	}
	u := func(a interface{ Load() uint64 }) func() float64 { return func() float64 { return float64(a.Load()) } }
	return []prometheus.Collector{
		counter("values_polled_total", "Values read by all polls, before report filtering.", u(&c.ValuesPolled)),
		counter("values_emitted_total", "Values after report filtering, sent to the journal.", u(&c.ValuesEmitted)),
		counter("events_lost_total", "Events that could not be committed to the journal (append failed).", u(&c.EventsLost)),
		counter("journal_append_errors_total", "Failed group commits.", u(&c.JournalErrors)),
		counter("uplink_messages_delivered_total", "Journaled messages the platform acknowledged.", u(&c.MessagesSent)),
		counter("uplink_values_delivered_total", "Values in journaled messages the platform acknowledged.", u(&c.ValuesDelivered)),
		counter("uplink_data_publish_failures_total", "Journaled messages whose publish failed and will be re-sent.", u(&c.PublishFailures)),
		counter("uplink_data_rejected_total", "Journaled messages the platform refused permanently (dropped, logged).", u(&c.PlatformRejected)),
		counter("journal_corrupt_records_total", "Journal records that could not be decoded (skipped).", u(&c.CorruptRecords)),
		counter("mailbox_dropped_total", "Data messages dropped by full mailboxes, all actors.", u(&c.MailboxDrops)),
		counter("restarts_total", "Actor restarts ordered by the supervisor, all actors.", u(&c.Restarts)),
		counter("platform_bad_messages_total", "Malformed messages from the platform (ignored).", u(&c.BadInbound)),
		counter("input_malformed_total", "Messages or frames from push connectors that could not be converted (dropped, logged).", u(&c.Malformed)),
		counter("input_dropped_total", "Values or messages push connectors had to give up (CAN bus overrun, superseded OPC-UA values).", u(&c.InputDropped)),
		counter("input_refused_total", "Local device API connections and requests refused for unknown credentials (MQTT CONNACK not authorized, HTTP 401).", u(&c.Refused)),
		counter("input_unmatched_total", "Messages or frames from push connectors that no mapping wanted.", u(&c.Unmatched)),
		counter("tree_restarts_total", "In-process restarts of the actor tree (gateway_restart, remote configuration).", u(&c.TreeRestarts)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: observe.Namespace, Name: "devices_connected",
			Help: "Devices currently connected to the platform."}, func() float64 { return float64(c.DevicesConnected.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: observe.Namespace, Name: "config_entries_skipped",
			Help: "Config entries left out at load (bad entries and connectors of types this build lacks); each is logged at start."},
			func() float64 { return float64(len(o.conf().Problems.Skips())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: observe.Namespace, Name: "build_info",
			Help: "Always 1; the version label is the gateway's version.", ConstLabels: prometheus.Labels{"version": o.version}},
			func() float64 { return 1 }),
	}
}

// PlatformStats returns the current platform client's counters (zero while
// there is none), e.g. rate-limit waits and quota refusals.
func (g *Gateway) PlatformStats() platform.Stats {
	if c := g.client.Load(); c != nil {
		return c.Stats()
	}
	return platform.Stats{}
}
