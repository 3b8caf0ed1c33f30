package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("mqtt", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("mqtt", Sections())
}

// Defaults of the connection machinery; tests shorten them.
const (
	// defaultQueue bounds the messages between the client library and the
	// converter goroutine. For MQTT 5 it is also our Receive Maximum, so the
	// broker never has more unacknowledged QoS 1/2 messages in flight to us
	// than the queue holds.
	defaultQueue      = 2048
	defaultMinBackoff = time.Second
	defaultMaxBackoff = 2 * time.Minute
	// A connection that stayed up this long resets the backoff; a broker
	// that accepts and drops us at once keeps backing off.
	defaultStable = 30 * time.Second
	// attributeRequestTimeout bounds a platform round trip for one
	// attributeRequests message.
	attributeRequestTimeout = 10 * time.Second
	// maxAttributeRequests answered concurrently; more wait in the converter
	// goroutine, which pushes back on the broker.
	maxAttributeRequests = 8
)

// Connector is a configured mqtt connector: a push source whose devices
// appear as the broker names them.
type Connector struct {
	name     string
	cfg      *Config
	log      zerolog.Logger
	clientID string
	dial     dialFunc

	mappings    []*compiledMapping
	connects    []*deviceReq
	disconnects []*deviceReq
	attrReqs    []*attrReq
	updates     []*updateRule
	rpcs        []*rpcRule

	queue                  int
	minBackoff, maxBackoff time.Duration
	stable                 time.Duration

	cur atomic.Pointer[link] // the connection commands publish on; nil while down

	waitMu  sync.Mutex
	waiters map[*waiter]struct{} // two-way RPCs waiting for their response
	attrSem chan struct{}
}

type compiledMapping struct {
	m         *Mapping
	conv      Converter
	report    protocols.ReportStrategy
	keyReport map[string]protocols.ReportStrategy
}

// NewConnector parses and compiles the connector file. It does no I/O:
// Run connects.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "mqtt", func(o *spec.Obj) (*Config, string) {
		c := Parse(o)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{
		name: name, cfg: parsed,
		log:        cfg.Logger.With().Str("connector", name).Logger(),
		clientID:   parsed.Broker.ClientID,
		dial:       dialerFor(parsed.Broker.Version),
		queue:      defaultQueue,
		minBackoff: defaultMinBackoff, maxBackoff: defaultMaxBackoff, stable: defaultStable,
		waiters: map[*waiter]struct{}{},
		attrSem: make(chan struct{}, maxAttributeRequests),
	}
	if c.clientID == "" {
		c.clientID = newClientID()
	}
	connectorReport := parsed.Report.Or(cfg.Report)
	env := jsonconv.Env{Print: func(file, msg string) { c.log.Debug().Str("script", file).Msg(msg) }}
	if cfg.File != "" {
		env.Dir = filepath.Dir(cfg.File)
	}
	for _, m := range parsed.Mapping {
		conv, err := jsonconv.NewConverterEnv(m, env)
		if jsonconv.IsScriptError(err) {
			// file:line:column of the script, at the key that names it, so
			// `iotgw check` shows it with the other problems.
			cfg.Config.Problems().Errorf(cfg.Config.File(), m.Path+".converter.script", "%v", err)
			continue
		}
		if errors.Is(err, ErrNoConverter) {
			// Upstream loads the rest of the file when one mapping's
			// extension is missing; so do we, with one line naming it.
			cfg.Config.Problems().Skipf(cfg.Config.File(), m.Path+".converter.extension", "%v; mapping %q is not used", err, m.TopicFilter)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mqtt connector %q: %s: %w", name, m.Path, err)
		}
		def, perKey := m.ReportStrategies()
		c.mappings = append(c.mappings, &compiledMapping{m: m, conv: conv, report: def.Or(connectorReport), keyReport: perKey})
	}
	if err := c.compileRequests(&parsed.Requests, env, cfg.Config.Problems(), cfg.Config.File()); err != nil {
		return nil, fmt.Errorf("mqtt connector %q: %w", name, err)
	}
	if err := cfg.Config.Problems().Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Config is the parsed file.
func (c *Connector) Config() *Config { return c.cfg }

// ClientID is the MQTT client id in use (generated when the file has none).
func (c *Connector) ClientID() string { return c.clientID }

// Devices implements protocols.Connector: devices appear as messages name them.
func (c *Connector) Devices() []protocols.Device { return nil }

// Close implements protocols.Connector. Run owns the connection and ends it
// when its context ends, so there is nothing else to release.
func (c *Connector) Close() error { return nil }

// link is one broker connection as the connector sees it: the client, the
// QoS 1/2 messages received on it in arrival order that still await their
// ack, and the channel that tells the library callbacks to give up.
type link struct {
	cl     client
	inbox  chan<- *message
	closed chan struct{} // closed once the connection is over (or never came up)
	once   sync.Once
	// match answers two-way RPC responses before they queue behind data.
	match func(*message) bool

	mu      sync.Mutex
	unacked []*message
	wake    chan struct{}
	acked   atomic.Uint64 // acks handed to the library, for tests and stats
}

func newLink(inbox chan<- *message, match func(*message) bool) *link {
	return &link{inbox: inbox, closed: make(chan struct{}), wake: make(chan struct{}, 1), match: match}
}

func (l *link) shut() { l.once.Do(func() { close(l.closed) }) }

// deliver is the library callback's body. It runs on the client's routing
// goroutine, so it only queues: conversion and the blocking Sink.Push happen
// on the converter goroutine. It blocks while the queue is full (TCP
// back-pressure, nothing dropped) and gives up when the link ends, leaving
// the message unacknowledged for the broker to redeliver.
func (l *link) deliver(m *message) bool {
	m.link = l
	m.pending = 1
	select {
	case <-l.closed:
		return false
	default:
	}
	// Tracked before queuing, so the ack order is the arrival order that
	// MQTT requires.
	if m.qos > 0 {
		l.mu.Lock()
		l.unacked = append(l.unacked, m)
		l.mu.Unlock()
	}
	if l.match != nil && l.match(m) {
		m.release()
		return true
	}
	select {
	case l.inbox <- m:
		return true
	case <-l.closed:
		return false
	}
}

func (l *link) notify() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// ackLoop sends acks in arrival order: a message is acknowledged once it and
// every message received before it on this connection are committed. The
// 3.1.1 library's Ack can block, which is why this is a goroutine of its own
// and Push.Done only marks and wakes it.
func (l *link) ackLoop() {
	for {
		select {
		case <-l.wake:
		case <-l.closed:
			return
		}
		for {
			l.mu.Lock()
			n := 0
			for n < len(l.unacked) && l.unacked[n].isDone() {
				n++
			}
			batch := make([]*message, n)
			copy(batch, l.unacked[:n])
			clear(l.unacked[:n])
			l.unacked = l.unacked[n:]
			l.mu.Unlock()
			if n == 0 {
				break
			}
			var raw []byte
			var rawConn net.Conn
			flush := func() {
				if len(raw) > 0 {
					writeAcks(rawConn, raw)
					raw = raw[:0]
				}
			}
			for _, m := range batch {
				select {
				case <-l.closed:
					// Acks of a dead connection must not reach its successor;
					// the broker redelivers these.
					return
				default:
				}
				if m.rawAck != nil {
					if rawConn != m.rawAck {
						flush()
						rawConn = m.rawAck
					}
					// PUBACK, success, no properties: remaining length 2.
					raw = append(raw, 0x40, 2, byte(m.packetID>>8), byte(m.packetID))
				} else {
					flush()
					m.ack()
				}
				l.acked.Add(1)
			}
			flush()
		}
	}
}

// pushDone is Push.Done for every push the message yields: one closure per
// message rather than one per push. Only the converter goroutine calls it.
func (m *message) pushDone() func(error) {
	if m.doneFn == nil {
		m.doneFn = func(error) { m.release() }
	}
	return m.doneFn
}

func (m *message) isDone() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done
}

func (m *message) hold() {
	m.mu.Lock()
	m.pending++
	m.mu.Unlock()
}

// release drops one hold; the last one marks the message committed and
// wakes the acker. It never blocks, so it is safe as Push.Done.
func (m *message) release() {
	m.mu.Lock()
	m.pending--
	fire := m.pending == 0
	if fire {
		m.done = true
	}
	m.mu.Unlock()
	if fire && m.qos > 0 && m.link != nil {
		m.link.notify()
	}
}

// Run implements protocols.Source: it connects, subscribes, converts and
// pushes until ctx ends, reconnecting with capped exponential backoff.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	inbox := make(chan *message, c.queue)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.work(ctx, sink, inbox, &wg)
	}()

	b := &c.cfg.Broker
	var v5 *v5Shared
	if b.Version == 5 {
		v5 = newV5Shared()
		defer v5.close()
	}
	bo := backoff{min: c.minBackoff, max: c.maxBackoff}
	first := true
	for {
		l := newLink(inbox, c.matchResponse)
		o := &dialOptions{broker: b, clientID: c.clientID, cleanStart: c.cleanStart(first),
			receiveMaximum: uint16(c.queue), deliver: l.deliver, v5: v5}
		cl, err := c.dial(ctx, o)
		var upFor time.Duration
		if err == nil {
			first = false
			l.cl = cl
			upFor, err = c.serve(ctx, sink, l)
		}
		l.shut()
		if ctx.Err() != nil {
			return nil
		}
		if upFor >= c.stable {
			bo.reset()
		}
		sink.Link(false, fmt.Errorf("mqtt broker %s: %w", b.address(), err))
		t := time.NewTimer(bo.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// cleanStart decides CONNECT's clean flag. MQTT 3: cleanSession as
// configured, on every connection (the session ends with it anyway). MQTT 5:
// cleanStart applies to the first connection of a run only; with a session
// expiry the broker keeps our unacked messages for the reconnect, so
// wiping the session then would lose them.
func (c *Connector) cleanStart(first bool) bool {
	b := &c.cfg.Broker
	if b.Version != 5 {
		return b.CleanSession
	}
	return b.CleanStart && (first || b.SessionExpiryInterval == 0)
}

// serve runs one established connection until it is lost or ctx ends.
func (c *Connector) serve(ctx context.Context, sink protocols.Sink, l *link) (time.Duration, error) {
	defer l.cl.Close()
	defer l.shut()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	sctx, cancelUp := whileUp(sctx, l.cl)
	err := l.cl.Subscribe(sctx, c.subscriptions())
	err = upErr(sctx, err)
	cancelUp()
	cancel()
	if err != nil {
		if ctx.Err() != nil || isLost(l.cl) {
			return 0, fmt.Errorf("subscribe: %w", err)
		}
		// A refused filter (ACL) will not fix itself by reconnecting; the
		// others work, so stay up and say which one failed.
		c.log.Error().Err(err).Msg("broker refused a subscription; its messages will not arrive")
	}
	up := time.Now()
	c.cur.Store(l)
	defer c.cur.CompareAndSwap(l, nil)
	c.log.Info().Str("broker", c.cfg.Broker.address()).Str("clientId", c.clientID).
		Str("mqtt", versionName(c.cfg.Broker.Version)).Msg("connected and subscribed")
	sink.Link(true, nil)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		l.ackLoop()
	}()
	select {
	case <-l.cl.Lost():
	case <-l.closed:
	case <-ctx.Done():
	}
	l.shut()
	l.cl.Close()
	// The 3.1.1 library's Ack can wait on its writer; it lets go once the
	// client stopped, but a stuck library must not stall reconnecting.
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		c.log.Warn().Msg("ack goroutine of a closed connection did not finish; continuing")
	}
	return time.Since(up), l.cl.Err()
}

// subscriptions lists every filter the connector needs, each once with the
// highest QoS asked for: mappings, request topics and in-flight RPC
// response topics (so a reconnect during an RPC keeps waiting correctly).
func (c *Connector) subscriptions() []subscription {
	var out []subscription
	idx := map[string]int{}
	add := func(f string, qos int) {
		if i, ok := idx[f]; ok {
			out[i].qos = max(out[i].qos, byte(qos))
			return
		}
		idx[f] = len(out)
		out = append(out, subscription{filter: f, qos: byte(qos)})
	}
	for _, m := range c.mappings {
		add(m.m.TopicFilter, m.m.SubscriptionQos)
	}
	for _, r := range c.connects {
		add(r.filter, 1)
	}
	for _, r := range c.disconnects {
		add(r.filter, 1)
	}
	for _, r := range c.attrReqs {
		add(r.filter, 1)
	}
	c.waitMu.Lock()
	for w := range c.waiters {
		add(w.filter, w.qos)
	}
	c.waitMu.Unlock()
	return out
}

// work is the converter goroutine: one per run, so data of one device is
// pushed in the order the broker delivered it.
func (c *Connector) work(ctx context.Context, sink protocols.Sink, inbox <-chan *message, wg *sync.WaitGroup) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-inbox:
			if c.handle(ctx, sink, m, wg) {
				m.release()
			}
		}
	}
}

// handle converts one message and pushes what it yields. It returns false
// when ctx ended during a push: the message then stays unacknowledged.
func (c *Connector) handle(ctx context.Context, sink protocols.Sink, m *message, wg *sync.WaitGroup) bool {
	now := time.Now()
	matched := false
	for _, cm := range c.mappings {
		if !topicMatches(cm.m.TopicFilter, m.topic) {
			continue
		}
		matched = true
		var buf [1]Converted
		var out []Converted
		var err error
		if jc, ok := cm.conv.(*JSONConverter); ok {
			// A direct call lets the result live in buf, on the stack.
			out, err = jc.ConvertTo(buf[:0], m.topic, m.payload, now)
		} else {
			out, err = cm.conv.Convert(m.topic, m.payload, now)
		}
		if err != nil {
			// Partial results below are still pushed.
			sink.Malformed(cm.m.TopicFilter, err)
		}
		for i := range out {
			r := &out[i]
			if r.Device == "" || (len(r.Telemetry) == 0 && len(r.Attributes) == 0) {
				continue
			}
			m.hold()
			p := protocols.Push{
				Device: r.Device, Profile: r.Profile, Ts: time.UnixMilli(r.Ts),
				Reading: protocols.Reading{Telemetry: r.Telemetry, Attributes: r.Attributes},
				Pooled:  r.Pooled,
				Report:  cm.report, KeyReport: cm.keyReport,
				// A journal failure is counted and logged by the runtime;
				// holding the ack would stall every later message on this
				// connection, so it is released either way.
				Done: m.pushDone(),
			}
			if err := sink.Push(ctx, p); err != nil {
				if ctx.Err() == nil {
					// Not committed and never will be: acking it would lose
					// it, and leaving it unacked would hold back every later
					// ack on this connection. Dropping the connection makes
					// the broker redeliver it (with a session) instead.
					c.log.Warn().Err(err).Str("device", r.Device).Str("topic", m.topic).Msg("push refused; reconnecting so the broker redelivers")
					m.link.shut()
				}
				return false
			}
		}
	}
	if c.handleRequests(ctx, sink, m, wg) {
		matched = true
	}
	if !matched {
		sink.Unmatched()
	}
	return true
}

// mustRegex compiles a filter once per rule at construction.
func mustRegex(expr string, a pyre.Anchor) *pyre.Regexp {
	re, err := pyre.Compile(expr, a)
	if err != nil {
		// Parse already rejected invalid regexes.
		panic(err)
	}
	return re
}

// filterMatch applies a command filter. A filter that timed out takes
// nothing, and says so: the command is then refused or ignored.
func (c *Connector) filterMatch(re *pyre.Regexp, what, s string) bool {
	ok, err := re.MatchString(s)
	if err != nil {
		c.log.Warn().Err(err).Str("filter", what).Str("input", s).Msg("filter failed; treated as not matching")
		return false
	}
	return ok
}

var (
	_ protocols.Connector      = (*Connector)(nil)
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
)

// writeAcks writes encoded PUBACKs in one call, holding the connection's
// packet lock (packets.NewThreadSafeConn) so they never interleave with a
// packet paho is writing. A failed write means the connection is lost; the
// broker then redelivers what was not acknowledged.
func writeAcks(conn net.Conn, b []byte) {
	if lk, ok := conn.(sync.Locker); ok {
		lk.Lock()
		defer lk.Unlock()
	}
	_, _ = conn.Write(b)
}
