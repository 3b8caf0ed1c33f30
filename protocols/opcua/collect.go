package opcua

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

// probeBase starts the client handles of liveness probes; node handles
// count up from 1 and never get there.
const probeBase = 0x80000000

// minSilence is the least silence before a subscription is probed, so a
// quiet server with a 100 ms publishing interval is not probed 3×/s.
const minSilence = 2 * time.Second

func (c *Connector) tickers() (scan <-chan time.Time, stop func()) {
	if c.cfg.Server.ScanPeriod <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(c.cfg.Server.ScanPeriod)
	return t.C, t.Stop
}

// poll reads every node each pollPeriodInMillis in batched Reads.
func (c *Connector) poll(ctx context.Context, s *session, p *plan, sink protocols.Sink, h *handoff) error {
	t := time.NewTicker(c.cfg.Server.PollPeriod)
	defer t.Stop()
	scanC, stopScan := c.tickers()
	defer stopScan()
	b := &batcher{c: c}
	for {
		if err := c.pollOnce(ctx, s, p, sink, h, b); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isConnectionError(err) {
				return err
			}
			c.log.Warn().Err(err).Msg("opcua: poll failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.lost:
			return connErr("opcua %s: connection lost", c.cfg.Server.URL)
		case <-scanC:
			np, err := c.rescan(ctx, s, sink, p)
			if err != nil {
				return err
			}
			p = np
		case <-t.C:
		}
	}
}

func (c *Connector) pollOnce(ctx context.Context, s *session, p *plan, sink protocols.Sink, h *handoff, b *batcher) error {
	if len(p.handles) == 0 {
		return nil
	}
	nodes := make([]*ua.NodeID, len(p.handles))
	for i, hd := range p.handles {
		nodes[i] = p.items[hd].node
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Server.Timeout*time.Duration(1+len(nodes)/max(s.limits.read, 1)))
	defer cancel()
	dvs, err := readValues(rctx, s.c, nodes, s.limits.read, ua.TimestampsToReturnBoth)
	if err != nil {
		return fmt.Errorf("opcua %s: poll: %w", c.cfg.Server.URL, err)
	}
	b.reset(time.Now())
	for i, hd := range p.handles {
		b.add(p.items[hd], dvs[i], sink)
	}
	var perr error
	b.each(func(push protocols.Push) {
		if perr == nil {
			perr = h.put(ctx, push)
		}
	})
	return perr
}

// subState is one server subscription and the items it carries.
type subState struct {
	sub      *opcua.Subscription
	items    map[uint32]uint32 // client handle → monitored item id
	full     bool              // the server refused more items
	lastSeen atomic.Int64      // unix nanos of the last notification
	probeH   uint32
	probeID  uint32
	probeAt  time.Time
	probeOK  atomic.Bool
}

// subMgr keeps the server's monitored items equal to the plan, in as many
// subscriptions as the server's limits need, and recreates subscriptions
// that went silent and fail a probe.
type subMgr struct {
	c       *Connector
	s       *session
	notify  chan *opcua.PublishNotificationData
	params  opcua.SubscriptionParameters
	perSub  int
	silence time.Duration

	mu     sync.RWMutex // guards subs and byID (read by the consumer)
	subs   []*subState
	byID   map[uint32]*subState
	where  map[uint32]*subState // client handle → its subscription
	probes uint32
}

func (c *Connector) newSubMgr(s *session) *subMgr {
	srv := c.cfg.Server
	interval := srv.SubCheckPeriod
	ka := uint32(max(1, int((10*time.Second)/interval)))
	if srv.SubKeepAlivePeriod > 0 {
		ka = uint32(max(1, int(srv.SubKeepAlivePeriod/interval)))
	}
	perSub := srv.MaxItemsPerSubscription
	if s.limits.itemsPerSub > 0 && (perSub == 0 || s.limits.itemsPerSub < perSub) {
		perSub = s.limits.itemsPerSub
	}
	return &subMgr{
		c: c, s: s,
		// Large enough that a burst of publish responses does not wait for
		// the consumer; the consumer itself never blocks (see handoff).
		notify: make(chan *opcua.PublishNotificationData, 1024),
		params: opcua.SubscriptionParameters{
			Interval:                   interval,
			MaxKeepAliveCount:          ka,
			LifetimeCount:              10 * ka,
			MaxNotificationsPerPublish: uint32(srv.SubDataMaxBatchSize),
		},
		perSub:  perSub,
		silence: max(3*interval, minSilence),
		byID:    map[uint32]*subState{},
		where:   map[uint32]*subState{},
	}
}

// subscribe runs subscription mode until the session ends.
func (c *Connector) subscribe(ctx context.Context, s *session, p *plan, sink protocols.Sink, h *handoff) error {
	m := c.newSubMgr(s)
	var cur atomic.Pointer[plan]
	cur.Store(p)
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.consume(cctx, &cur, h, sink)
	}()
	defer func() {
		stop()
		wg.Wait()
		m.cancelAll()
	}()
	if err := m.sync(ctx, p, sink); err != nil {
		return err
	}
	check := time.NewTicker(max(m.params.Interval, 250*time.Millisecond))
	defer check.Stop()
	scanC, stopScan := c.tickers()
	defer stopScan()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.lost:
			return connErr("opcua %s: connection lost", c.cfg.Server.URL)
		case <-scanC:
			np, err := c.rescan(ctx, s, sink, p)
			if err != nil {
				return err
			}
			p = np
			cur.Store(p)
			if err := m.sync(ctx, p, sink); err != nil {
				return err
			}
		case <-check.C:
			if err := m.check(ctx, sink); err != nil {
				return err
			}
		}
	}
}

func (m *subMgr) touch(subID uint32, probe bool) {
	m.mu.RLock()
	st := m.byID[subID]
	m.mu.RUnlock()
	if st == nil {
		return
	}
	st.lastSeen.Store(time.Now().UnixNano())
	if probe {
		st.probeOK.Store(true)
	}
}

// consume turns notifications into pushes. It never blocks on the sink.
func (m *subMgr) consume(ctx context.Context, cur *atomic.Pointer[plan], h *handoff, sink protocols.Sink) {
	b := &batcher{c: m.c}
	for {
		var n *opcua.PublishNotificationData
		select {
		case <-ctx.Done():
			return
		case n = <-m.notify:
		}
		if n == nil {
			continue
		}
		if n.Error != nil {
			m.c.log.Debug().Err(n.Error).Uint32("subscription", n.SubscriptionID).Msg("opcua: subscription error")
			continue
		}
		dcn, ok := n.Value.(*ua.DataChangeNotification)
		if !ok {
			m.touch(n.SubscriptionID, false)
			continue
		}
		probe := false
		p := cur.Load()
		b.reset(time.Now())
		for _, it := range dcn.MonitoredItems {
			if it == nil {
				continue
			}
			if it.ClientHandle >= probeBase {
				probe = true
				continue
			}
			if item := p.items[it.ClientHandle]; item != nil {
				b.add(item, it.Value, sink)
			}
		}
		m.touch(n.SubscriptionID, probe)
		b.each(func(push protocols.Push) {
			if k := h.offer(push); k > 0 {
				m.c.stats.Superseded.Add(int64(k))
				sink.Dropped("opcua backlog", k, fmt.Errorf("%w: %d values of device %q replaced by newer ones", ErrBacklog, k, push.Device))
			}
		})
	}
}

func (m *subMgr) newSub(ctx context.Context) (*subState, error) {
	params := m.params
	sub, err := m.s.c.Subscribe(ctx, &params, m.notify)
	if err != nil {
		return nil, fmt.Errorf("opcua %s: create subscription: %w", m.c.cfg.Server.URL, err)
	}
	st := &subState{sub: sub, items: map[uint32]uint32{}}
	st.lastSeen.Store(time.Now().UnixNano())
	m.mu.Lock()
	m.subs = append(m.subs, st)
	m.byID[sub.SubscriptionID] = st
	m.mu.Unlock()
	m.c.stats.Subscriptions.Add(1)
	return st, nil
}

// sync adds the plan's new nodes and removes the ones it dropped.
func (m *subMgr) sync(ctx context.Context, p *plan, sink protocols.Sink) error {
	// Removals first, so their room can be reused.
	bySub := map[*subState][]uint32{}
	for hd, st := range m.where {
		if _, keep := p.items[hd]; !keep {
			bySub[st] = append(bySub[st], hd)
		}
	}
	for st, hds := range bySub {
		ids := make([]uint32, 0, len(hds))
		for _, hd := range hds {
			ids = append(ids, st.items[hd])
			delete(st.items, hd)
			delete(m.where, hd)
		}
		for start := 0; start < len(ids); start += m.s.limits.monitorPerCall {
			part := ids[start:min(start+m.s.limits.monitorPerCall, len(ids))]
			if _, err := st.sub.Unmonitor(ctx, part...); err != nil && isConnectionError(err) {
				return fmt.Errorf("opcua %s: delete monitored items: %w", m.c.cfg.Server.URL, err)
			}
		}
	}
	var add []uint32
	for _, hd := range p.handles {
		if _, ok := m.where[hd]; !ok {
			add = append(add, hd)
		}
	}
	return m.monitor(ctx, p, add, sink)
}

// monitor creates items for handles, filling subscriptions up to the
// per-subscription limit and opening new ones when the server refuses more.
func (m *subMgr) monitor(ctx context.Context, p *plan, add []uint32, sink protocols.Sink) error {
	failures := 0
	for len(add) > 0 {
		st := m.roomy()
		if st == nil {
			var err error
			if st, err = m.newSub(ctx); err != nil {
				return err
			}
		}
		room := len(add)
		if m.perSub > 0 {
			room = min(room, m.perSub-len(st.items))
		}
		room = min(room, m.s.limits.monitorPerCall)
		part := add[:room]
		reqs := make([]*ua.MonitoredItemCreateRequest, len(part))
		for i, hd := range part {
			r := opcua.NewMonitoredItemCreateRequestWithDefaults(p.items[hd].node, ua.AttributeIDValue, hd)
			r.RequestedParameters.SamplingInterval = float64(m.params.Interval.Milliseconds())
			reqs[i] = r
		}
		res, err := st.sub.Monitor(ctx, ua.TimestampsToReturnBoth, reqs...)
		if err != nil {
			if isConnectionError(err) {
				return fmt.Errorf("opcua %s: create %d monitored items: %w", m.c.cfg.Server.URL, len(part), err)
			}
			// The subscription itself may be gone; start a fresh one for the rest.
			if failures++; failures > 2 {
				return fmt.Errorf("opcua %s: create %d monitored items: %w", m.c.cfg.Server.URL, len(part), err)
			}
			m.c.log.Warn().Err(err).Uint32("subscription", st.sub.SubscriptionID).Msg("opcua: create monitored items failed, using a new subscription")
			st.full = true
			continue
		}
		var retry []uint32
		for i, hd := range part {
			if i >= len(res.Results) || res.Results[i] == nil {
				retry = append(retry, hd)
				continue
			}
			r := res.Results[i]
			switch {
			case r.StatusCode == ua.StatusBadTooManyMonitoredItems:
				st.full = true
				retry = append(retry, hd)
			case isBad(r.StatusCode):
				it := p.items[hd]
				sink.Malformed("opcua monitored item", fmt.Errorf("opcua %s: monitor node %s for %s: %w", m.c.cfg.Server.URL, it.str, describeTargets(it), &badStatusError{status: r.StatusCode, node: it.str}))
			default:
				st.items[hd] = r.MonitoredItemID
				m.where[hd] = st
			}
		}
		if len(retry) > 0 && !st.full {
			// Answers missing without a reason: do not loop on this subscription.
			st.full = true
		}
		add = append(retry, add[room:]...)
	}
	return nil
}

func describeTargets(it *item) string {
	s := ""
	for i, t := range it.targets {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q/%q", t.dev.name, t.key)
	}
	return s
}

func (m *subMgr) roomy() *subState {
	for _, st := range m.subs {
		if !st.full && (m.perSub == 0 || len(st.items) < m.perSub) {
			return st
		}
	}
	return nil
}

// check probes silent subscriptions and recreates the dead ones. gopcua
// does not surface keep-alives, so silence alone cannot tell a quiet
// server from a subscription the server dropped (or one gopcua stopped
// publishing for): a probe item on Server_ServerStatus_CurrentTime must
// deliver its initial value within the silence window.
func (m *subMgr) check(ctx context.Context, sink protocols.Sink) error {
	now := time.Now()
	m.mu.RLock()
	subs := append([]*subState(nil), m.subs...)
	m.mu.RUnlock()
	for _, st := range subs {
		switch {
		case st.probeAt.IsZero():
			if now.Sub(time.Unix(0, st.lastSeen.Load())) <= m.silence {
				continue
			}
			m.probes++
			st.probeH = probeBase + m.probes
			st.probeOK.Store(false)
			st.probeAt = now
			m.c.stats.Probes.Add(1)
			req := opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewNumericNodeID(0, id.Server_ServerStatus_CurrentTime), ua.AttributeIDValue, st.probeH)
			res, err := st.sub.Monitor(ctx, ua.TimestampsToReturnNeither, req)
			if err != nil {
				// A server answers CreateMonitoredItems on a subscription it
				// dropped with a ServiceFault, and gopcua takes any ServiceFault
				// for a broken channel and ends the session; recreating here
				// would only leave a subscription behind on the dying session.
				return connErr("opcua %s: probe subscription %d: %w", m.c.cfg.Server.URL, st.sub.SubscriptionID, err)
			}
			if len(res.Results) != 1 || isBad(res.Results[0].StatusCode) {
				err = errors.New("probe item refused")
				if len(res.Results) == 1 {
					err = res.Results[0].StatusCode
				}
				if rerr := m.recreate(ctx, st, sink, err); rerr != nil {
					return rerr
				}
				continue
			}
			st.probeID = res.Results[0].MonitoredItemID
		case st.probeOK.Load():
			if _, err := st.sub.Unmonitor(ctx, st.probeID); err != nil && isConnectionError(err) {
				return fmt.Errorf("opcua %s: remove probe of subscription %d: %w", m.c.cfg.Server.URL, st.sub.SubscriptionID, err)
			}
			st.probeAt, st.probeID = time.Time{}, 0
		case now.Sub(st.probeAt) > m.silence:
			if err := m.recreate(ctx, st, sink, errors.New("probe value never arrived")); err != nil {
				return err
			}
		}
	}
	return nil
}

// recreate replaces a dead subscription by a new one with the same items
// under the same client handles; the old one is deleted first (best
// effort), so the server never carries both.
func (m *subMgr) recreate(ctx context.Context, st *subState, sink protocols.Sink, why error) error {
	m.c.log.Warn().Err(why).Uint32("subscription", st.sub.SubscriptionID).Int("items", len(st.items)).Msg("opcua: subscription is dead, recreating it")
	m.c.stats.Recreated.Add(1)
	dctx, cancel := context.WithTimeout(ctx, m.c.cfg.Server.Timeout)
	err := st.sub.Cancel(dctx)
	cancel()
	if err != nil && isConnectionError(err) {
		return fmt.Errorf("opcua %s: delete dead subscription %d: %w", m.c.cfg.Server.URL, st.sub.SubscriptionID, err)
	}
	m.mu.Lock()
	delete(m.byID, st.sub.SubscriptionID)
	for i, s := range m.subs {
		if s == st {
			m.subs = append(m.subs[:i], m.subs[i+1:]...)
			break
		}
	}
	m.mu.Unlock()
	handles := make([]uint32, 0, len(st.items))
	for hd := range st.items {
		handles = append(handles, hd)
		delete(m.where, hd)
	}
	sort.Slice(handles, func(i, j int) bool { return handles[i] < handles[j] })
	_, p := m.c.current()
	if p == nil {
		return connErr("opcua %s: no mapping while recreating a subscription", m.c.cfg.Server.URL)
	}
	var keep []uint32
	for _, hd := range handles {
		if _, ok := p.items[hd]; ok {
			keep = append(keep, hd)
		}
	}
	return m.monitor(ctx, p, keep, sink)
}

// cancelAll deletes the session's subscriptions before the session is
// closed. CloseSession asks the server to delete them too, but not every
// server honours that (gopcua's does not), and a session that gopcua gave
// up on after a ServiceFault still has a working channel: without this a
// reconnect could leave the old subscriptions publishing beside the new.
func (m *subMgr) cancelAll() {
	m.mu.Lock()
	subs := m.subs
	m.subs = nil
	clear(m.byID)
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, st := range subs {
		if err := st.sub.Cancel(ctx); err != nil {
			m.c.log.Debug().Err(err).Uint32("subscription", st.sub.SubscriptionID).Msg("opcua: delete subscription at session end")
			if isConnectionError(err) {
				return
			}
		}
	}
}
