package opcua

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("opcua", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("opcua", Sections())
}

// ErrReconnectFailed is returned by Run after reconnectRetriesCount
// consecutive failed connection attempts; the runtime then restarts the
// connector.
var ErrReconnectFailed = errors.New("opcua: reconnect attempts exhausted")

// StableSession is how long a session must have collected for its loss to
// count as a first failure again.
const StableSession = 30 * time.Second

// MaxBackoff caps the reconnect delay (upstream's doubling is unbounded).
const MaxBackoff = time.Minute

// Connector is a configured OPC-UA connector. It is a protocols.Source
// (Run), a protocols.DeviceCommands and a protocols.ConnectorRPC; it has no
// polled Devices.
type Connector struct {
	name string
	file string
	cfg  *Config
	log  zerolog.Logger

	certMu sync.Mutex
	cert   *ClientCert

	handleMu   sync.Mutex
	handles    map[string]uint32
	nextHandle uint32

	mu   sync.Mutex
	sess *session // nil while not connected
	plan *plan

	types       dataTypes    // learnt on BadTypeMismatch
	browseBatch atomic.Int64 // see newBrowser; 0 until a batch failed

	running atomic.Bool
	stats   Stats
}

// Stats are counters for tests, benchmarks and logs.
type Stats struct {
	Sessions       atomic.Int64 // sessions established
	Scans          atomic.Int64 // completed scans
	Subscriptions  atomic.Int64 // subscriptions created (including recreations)
	Recreated      atomic.Int64 // subscriptions recreated after the watchdog found them dead
	Probes         atomic.Int64 // liveness probes of silent subscriptions
	Values         atomic.Int64 // values pushed
	Superseded     atomic.Int64 // values replaced in the backlog by newer ones
	BrowseRequests atomic.Int64
}

// NewConnector is New with the concrete type.
func NewConnector(cc protocols.ConnectorConfig) (*Connector, error) {
	cfg, name, err := protocols.Open(cc, "opcua", func(o *spec.Obj) (*Config, string) {
		// ParseObj's error is the problems Open reports.
		c, _ := ParseObj(o)
		if c == nil {
			return nil, ""
		}
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	// The global strategy (cc.Report) is layered by the runtime; pushes carry
	// device over connector.
	return &Connector{
		name:    name,
		file:    cmp.Or(cc.File, cc.Config.File()),
		cfg:     cfg,
		log:     cc.Logger.With().Str("connector", name).Logger(),
		handles: map[string]uint32{},
	}, nil
}

// NewFromJSON builds a connector from the bytes of an upstream opcua.json,
// for callers outside the runtime (tools, interop tests). Warnings are
// discarded; errors name the file and JSON path.
func NewFromJSON(name string, raw []byte, log zerolog.Logger) (*Connector, error) {
	ps := &spec.Problems{}
	root := spec.Parse(ps, file, raw)
	if root == nil {
		return nil, ps.Err()
	}
	return NewConnector(protocols.ConnectorConfig{Name: name, Type: "opcua", Config: root, Logger: log})
}

// Config is the parsed file.
func (c *Connector) Config() *Config { return c.cfg }

// Stats returns the connector's counters.
func (c *Connector) Stats() *Stats { return &c.stats }

// Devices returns nil: devices appear through Run.
func (c *Connector) Devices() []protocols.Device { return nil }

// Close has nothing to release: Run owns the session and ends it when its
// context ends.
func (c *Connector) Close() error { return nil }

func (c *Connector) current() (*session, *plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess, c.plan
}

func (c *Connector) setCurrent(s *session, p *plan) {
	c.mu.Lock()
	c.sess, c.plan = s, p
	c.mu.Unlock()
}

// Run connects, resolves the mapping, collects until ctx ends and
// reconnects with backoff whenever the session is lost.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("opcua: Run called twice on one connector")
	}
	defer c.running.Store(false)
	srv := c.cfg.Server
	// The hand-off outlives sessions so nothing queued is lost on reconnect.
	h := newHandoff(max(4*srv.SubscriptionProcessBatchSize, 2*srv.SubDataMaxBatchSize))
	pctx, stopPusher := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.pushLoop(pctx, h, sink)
	}()
	defer func() {
		stopPusher()
		wg.Wait()
	}()

	failures := 0
	for {
		began, batch := time.Now(), c.browseBatch.Load()
		up, err := c.runSession(ctx, sink, h)
		if ctx.Err() != nil {
			sink.Link(false, nil)
			return nil
		}
		if nb := c.browseBatch.Load(); nb != batch && !up {
			// The scan failed because a Browse answer was too large and the
			// batch has shrunk: retry at once; the batch only shrinks, so
			// this ends.
			c.log.Info().Err(err).Int64("browse_batch", nb).Msg("opcua: retrying the scan with smaller browse batches")
			continue
		}
		// Only a session that collected for a while resets the count: a
		// server that accepts sessions but fails every subscription must
		// still back off and, eventually, give up.
		if up && time.Since(began) >= StableSession {
			failures = 0
		}
		failures++
		sink.Link(false, err)
		if srv.ReconnectRetriesCount > 0 && failures > srv.ReconnectRetriesCount {
			return fmt.Errorf("%w after %d attempts to %s: %w", ErrReconnectFailed, failures, srv.URL, err)
		}
		delay := backoff(srv.ReconnectBackoffInitialDelay, srv.ReconnectBackoffFactor, failures-1)
		c.log.Warn().Err(err).Dur("retry_in", delay).Int("attempt", failures).Msg("opcua: session lost or not established")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			sink.Link(false, nil)
			return nil
		case <-t.C:
		}
	}
}

// backoff is initial × factor^n, capped at MaxBackoff.
func backoff(initial time.Duration, factor float64, n int) time.Duration {
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	d := float64(initial) * math.Pow(factor, float64(n))
	if d > float64(MaxBackoff) || math.IsInf(d, 0) || math.IsNaN(d) {
		return MaxBackoff
	}
	return time.Duration(d)
}

// runSession is one session's life. up reports whether it got as far as
// collecting, which resets the retry count.
func (c *Connector) runSession(ctx context.Context, sink protocols.Sink, h *handoff) (up bool, err error) {
	s, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		c.setCurrent(nil, nil)
		s.close()
	}()
	c.stats.Sessions.Add(1)
	start := time.Now()
	p, err := c.scan(ctx, s, sink)
	if err != nil {
		return false, err
	}
	c.stats.Scans.Add(1)
	c.stats.BrowseRequests.Add(int64(p.browses))
	c.setCurrent(s, p)
	sink.Link(true, nil)
	c.log.Info().Str("url", c.cfg.Server.URL).Int("devices", len(p.devices)).Int("nodes", len(p.items)).
		Int("browse_requests", p.browses).Dur("scan", time.Since(start)).Msg("opcua: connected and resolved")
	if c.cfg.Server.ShowMap {
		for _, d := range p.devices {
			c.log.Info().Str("device", d.name).Str("node", d.node.String()).Msg("opcua: device node")
		}
	}
	if err := c.pushConsts(ctx, h, p); err != nil {
		return true, err
	}
	if c.cfg.Server.EnableSubscriptions {
		return true, c.subscribe(ctx, s, p, sink, h)
	}
	return true, c.poll(ctx, s, p, sink, h)
}

// pushConsts sends the constant keys once per session.
func (c *Connector) pushConsts(ctx context.Context, h *handoff, p *plan) error {
	for _, d := range p.devices {
		if len(d.consts) == 0 {
			continue
		}
		push := c.newPush(d, time.Now())
		for _, k := range d.consts {
			if k.attr {
				push.Reading.Attributes = append(push.Reading.Attributes, k.dp)
			} else {
				push.Reading.Telemetry = append(push.Reading.Telemetry, k.dp)
			}
		}
		if err := h.put(ctx, push); err != nil {
			return err
		}
	}
	return nil
}

func (c *Connector) newPush(d *device, ts time.Time) protocols.Push {
	return protocols.Push{Device: d.name, Profile: d.profile, Ts: ts, Report: d.report, KeyReport: d.keyReport}
}

// rescan resolves again and returns the new plan, or the old one when the
// scan failed for a reason other than the connection.
func (c *Connector) rescan(ctx context.Context, s *session, sink protocols.Sink, old *plan) (*plan, error) {
	p, err := c.scan(ctx, s, sink)
	if err != nil {
		if isConnectionError(err) {
			return nil, err
		}
		c.log.Warn().Err(err).Msg("opcua: re-scan failed, keeping the previous mapping")
		return old, nil
	}
	c.stats.Scans.Add(1)
	c.stats.BrowseRequests.Add(int64(p.browses))
	c.setCurrent(s, p)
	if len(p.devices) != len(old.devices) || len(p.items) != len(old.items) {
		c.log.Info().Int("devices", len(p.devices)).Int("nodes", len(p.items)).Msg("opcua: re-scan changed the mapping")
	}
	return p, nil
}

// pushLoop is the only caller of Sink.Push for subscription data.
func (c *Connector) pushLoop(ctx context.Context, h *handoff, sink protocols.Sink) {
	for {
		p, err := h.take(ctx)
		if err != nil {
			return
		}
		if err := sink.Push(ctx, p); err != nil {
			return
		}
		c.stats.Values.Add(int64(size(&p)))
	}
}

// batcher groups converted values into one Push per device and timestamp.
type batcher struct {
	c      *Connector
	now    time.Time
	groups map[*device][]protocols.Push
	order  []*device
}

func (b *batcher) reset(now time.Time) {
	b.now = now
	if b.groups == nil {
		b.groups = map[*device][]protocols.Push{}
	}
	clear(b.groups)
	b.order = b.order[:0]
}

func (b *batcher) add(it *item, dv *ua.DataValue, sink protocols.Sink) {
	for _, t := range it.targets {
		v, err := ConvertDataValue(dv, it.str)
		if err != nil {
			sink.Malformed("opcua "+t.dev.name+"/"+t.key, fmt.Errorf("opcua device %q key %q: %w", t.dev.name, t.key, err))
			if dv == nil {
				continue
			}
		}
		ts := b.now
		if dv != nil {
			switch t.ts {
			case TimestampSource:
				if !dv.SourceTimestamp.IsZero() {
					ts = dv.SourceTimestamp
				}
			case TimestampServer:
				if !dv.ServerTimestamp.IsZero() {
					ts = dv.ServerTimestamp
				}
			}
		}
		pushes, seen := b.groups[t.dev]
		if !seen {
			b.order = append(b.order, t.dev)
		}
		i := len(pushes) - 1
		for ; i >= 0 && !pushes[i].Ts.Equal(ts); i-- {
		}
		if i < 0 {
			pushes = append(pushes, b.c.newPush(t.dev, ts))
			i = len(pushes) - 1
		}
		dp := protocols.Datapoint{Key: t.key, Value: v}
		if t.attr {
			pushes[i].Reading.Attributes = append(pushes[i].Reading.Attributes, dp)
		} else {
			pushes[i].Reading.Telemetry = append(pushes[i].Reading.Telemetry, dp)
		}
		b.groups[t.dev] = pushes
	}
}

// each calls fn for every push, devices in first-seen order.
func (b *batcher) each(fn func(protocols.Push)) {
	for _, d := range b.order {
		for _, p := range b.groups[d] {
			fn(p)
		}
	}
}

var _ protocols.Connector = (*Connector)(nil)
var _ protocols.Source = (*Connector)(nil)
