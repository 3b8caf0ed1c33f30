package observe

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/industryos/gateway/protocols/platform"
)

// uplinkCollector reads the platform client at scrape time. The client is
// replaced when the uplink actor restarts; the counters of a replaced client
// are carried into a base so the exported counters never go backwards.
type uplinkCollector struct {
	get func() *platform.Client

	mu   sync.Mutex
	last *platform.Client
	base platform.Stats
}

var (
	descUConnected = prometheus.NewDesc(Namespace+"_uplink_connected", "1 while the platform session is up (CONNACK and session limits done), else 0.", nil, nil)
	descUAttempts  = prometheus.NewDesc(Namespace+"_uplink_connect_attempts_total", "CONNECT attempts to the platform, successful or not.", nil, nil)
	descUReconn    = prometheus.NewDesc(Namespace+"_uplink_reconnects_total", "Successful platform connections after the first one of each client.", nil, nil)
	descUInflight  = prometheus.NewDesc(Namespace+"_uplink_inflight_messages", "Publishes waiting for their PUBACK.", nil, nil)
	descUPub       = prometheus.NewDesc(Namespace+"_uplink_publishes_total", "Messages the platform acknowledged (QoS 1) or that were written (QoS 0), journaled and direct.", nil, nil)
	descUPubErr    = prometheus.NewDesc(Namespace+"_uplink_publish_errors_total", "Failed publishes, rejections included.", nil, nil)
	descURejected  = prometheus.NewDesc(Namespace+"_uplink_rejected_total", "Publishes the platform refused with a negative PUBACK.", nil, nil)
	descUBytes     = prometheus.NewDesc(Namespace+"_uplink_bytes_sent_total", "Payload bytes of successful publishes.", nil, nil)
	descURecv      = prometheus.NewDesc(Namespace+"_uplink_received_total", "Messages received from the platform.", nil, nil)
	descUMaxPay    = prometheus.NewDesc(Namespace+"_uplink_session_max_payload_bytes", "Largest payload the session allows (after the 0.8 safety factor).", nil, nil)
	descUMaxInfl   = prometheus.NewDesc(Namespace+"_uplink_session_max_inflight", "QoS 1 publishes the session allows in flight.", nil, nil)
	descUFromPlat  = prometheus.NewDesc(Namespace+"_uplink_session_limits_from_platform", "1 when the platform answered getSessionLimits, 0 when defaults are in force.", nil, nil)
	descURLWaits   = prometheus.NewDesc(Namespace+"_uplink_rate_limited_publishes_total", "Publishes that had to wait for the platform's rate limits.", nil, nil)
	descURLWait    = prometheus.NewDesc(Namespace+"_uplink_rate_limit_wait_seconds_total", "Time publishes spent waiting for the platform's rate limits.", nil, nil)
	descUQuota     = prometheus.NewDesc(Namespace+"_uplink_quota_exceeded_total", "Publishes the platform refused for its rate limits (sent again), and sessions it closed for them.", nil, nil)
	descURate      = prometheus.NewDesc(Namespace+"_uplink_session_rate_limit", "Messages or data points allowed per window by the session's rate limits.",
		[]string{"scope", "limit", "window_seconds"}, nil)
)

func (c *uplinkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUConnected, descUAttempts, descUReconn, descUInflight, descUPub, descUPubErr,
		descURejected, descUBytes, descURecv, descUMaxPay, descUMaxInfl, descUFromPlat, descURate,
		descURLWaits, descURLWait, descUQuota} {
		ch <- d
	}
}

func addStats(a, b platform.Stats) platform.Stats {
	a.ConnectAttempts += b.ConnectAttempts
	a.Reconnects += b.Reconnects
	a.Publishes += b.Publishes
	a.PublishErrors += b.PublishErrors
	a.Rejected += b.Rejected
	a.BytesSent += b.BytesSent
	a.Received += b.Received
	a.RateLimited += b.RateLimited
	a.RateLimitWait += b.RateLimitWait
	a.QuotaExceeded += b.QuotaExceeded
	return a
}

func (c *uplinkCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.get()
	c.mu.Lock()
	if cur != nil && cur != c.last {
		if c.last != nil {
			// A replaced client is closed: its counters are final.
			c.base = addStats(c.base, c.last.Stats())
		}
		c.last = cur
	}
	client := c.last
	total := c.base
	c.mu.Unlock()
	var now platform.Stats
	if client != nil {
		now = client.Stats()
		total = addStats(total, now)
	}
	connected := 0.0
	if cur != nil && cur.Connected() {
		connected = 1
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descUConnected, connected)
	counter(descUAttempts, total.ConnectAttempts)
	counter(descUReconn, total.Reconnects)
	gauge(descUInflight, float64(now.Inflight))
	counter(descUPub, total.Publishes)
	counter(descUPubErr, total.PublishErrors)
	counter(descURejected, total.Rejected)
	counter(descUBytes, total.BytesSent)
	counter(descURecv, total.Received)
	counter(descURLWaits, total.RateLimited)
	ch <- prometheus.MustNewConstMetric(descURLWait, prometheus.CounterValue, total.RateLimitWait.Seconds())
	counter(descUQuota, total.QuotaExceeded)
	if cur == nil {
		return
	}
	lim := cur.Limits()
	gauge(descUMaxPay, float64(lim.MaxPayload))
	gauge(descUMaxInfl, float64(lim.MaxInflight))
	from := 0.0
	if lim.FromPlatform {
		from = 1
	}
	gauge(descUFromPlat, from)
	for _, s := range []struct {
		scope string
		rl    platform.RateLimits
	}{{"device", lim.Device}, {"gateway", lim.Gateway}} {
		for _, l := range []struct {
			name string
			list []platform.RateLimit
		}{{"messages", s.rl.Messages}, {"telemetry_messages", s.rl.TelemetryMessages}, {"telemetry_datapoints", s.rl.TelemetryDataPoints}} {
			seen := map[string]bool{}
			for _, r := range l.list {
				w := strconv.FormatFloat(r.Per.Seconds(), 'f', -1, 64)
				if seen[w] {
					continue // one series per window
				}
				seen[w] = true
				gauge(descURate, float64(r.Count), s.scope, l.name, w)
			}
		}
	}
}
