package opcua

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

// plan is one scan's result: the devices found and the nodes to collect.
// It is immutable once built; a re-scan builds a new one.
type plan struct {
	devices []*device
	byName  map[string]*device
	items   map[uint32]*item // by client handle
	handles []uint32         // sorted, for stable batching
	browses int
}

type device struct {
	name, profile string
	node          *ua.NodeID
	mapping       *Device
	report        protocols.ReportStrategy
	keyReport     map[string]protocols.ReportStrategy
	consts        []constKey
	updates       map[string]*ua.NodeID // attributes_updates key → node
	unresolved    map[string]string     // attributes_updates key → why not
}

type constKey struct {
	attr bool
	dp   protocols.Datapoint
}

// item is one node collected once, whatever number of keys use it.
type item struct {
	node    *ua.NodeID
	str     string
	handle  uint32
	targets []target
}

type target struct {
	dev  *device
	key  string
	attr bool
	ts   string // timestampLocation
}

// handleFor gives a node the same client handle in every scan and session,
// so notifications in flight during a re-scan still find their item.
func (c *Connector) handleFor(node string) uint32 {
	c.handleMu.Lock()
	defer c.handleMu.Unlock()
	if h, ok := c.handles[node]; ok {
		return h
	}
	c.nextHandle++
	c.handles[node] = c.nextHandle
	return c.nextHandle
}

type devCandidate struct {
	m       *Device
	node    *ua.NodeID
	name    []*query
	profile []*query
	keys    []*query // parallel to keyRefs
	keyRefs []*Key
	keyAttr []bool
	updates []*query
	updRefs []*AttrUpdate
}

// scan browses the configured paths once and builds the plan.
func (c *Connector) scan(ctx context.Context, s *session, sink protocols.Sink) (*plan, error) {
	b := c.newBrowser(s)
	// Level 1: the device nodes of every mapping.
	devQs := make([]*query, len(c.cfg.Mapping))
	for i := range c.cfg.Mapping {
		devQs[i] = newQuery(c.cfg.Mapping[i].NodePattern, nil, true)
	}
	if err := b.resolve(ctx, devQs); err != nil {
		return nil, fmt.Errorf("opcua %s: resolve device nodes: %w", c.cfg.Server.URL, err)
	}
	// Level 2: everything below or beside each device node, all at once.
	var cands []*devCandidate
	var all []*query
	for i := range c.cfg.Mapping {
		m := &c.cfg.Mapping[i]
		if len(devQs[i].cur) == 0 {
			c.log.Warn().Str("pattern", m.NodePattern.Raw).Msg("opcua: no node matches deviceNodePattern (yet); re-scanned every scanPeriodInMillis")
		}
		for _, dn := range devQs[i].cur {
			d := &devCandidate{m: m, node: dn}
			for _, e := range m.Name.Refs {
				q := newQuery(e, dn, false)
				d.name = append(d.name, q)
				all = append(all, q)
			}
			if m.Profile.Source != SourceConstant {
				for _, e := range m.Profile.Refs {
					q := newQuery(e, dn, false)
					d.profile = append(d.profile, q)
					all = append(all, q)
				}
			}
			for _, list := range []struct {
				keys []Key
				attr bool
			}{{m.Attributes, true}, {m.Timeseries, false}} {
				for k := range list.keys {
					key := &list.keys[k]
					if key.Expr == nil {
						continue
					}
					q := newQuery(*key.Expr, dn, false)
					d.keys = append(d.keys, q)
					d.keyRefs = append(d.keyRefs, key)
					d.keyAttr = append(d.keyAttr, list.attr)
					all = append(all, q)
				}
			}
			for u := range m.AttrUpdates {
				au := &m.AttrUpdates[u]
				if au.Expr == nil {
					continue
				}
				q := newQuery(*au.Expr, dn, false)
				d.updates = append(d.updates, q)
				d.updRefs = append(d.updRefs, au)
				all = append(all, q)
			}
			cands = append(cands, d)
		}
	}
	if err := b.resolve(ctx, all); err != nil {
		return nil, fmt.Errorf("opcua %s: resolve key paths: %w", c.cfg.Server.URL, err)
	}
	// Names and profiles that come from node values: one batched read.
	var nameNodes []*ua.NodeID
	for _, d := range cands {
		for _, q := range append(append([]*query{}, d.name...), d.profile...) {
			if n := q.result(); n != nil {
				nameNodes = append(nameNodes, n)
			}
		}
	}
	values := map[string]string{}
	if len(nameNodes) > 0 {
		dvs, err := readValues(ctx, s.c, nameNodes, s.limits.read, ua.TimestampsToReturnNeither)
		if err != nil {
			return nil, fmt.Errorf("opcua %s: read device names: %w", c.cfg.Server.URL, err)
		}
		for i, dv := range dvs {
			if v, err := ConvertDataValue(dv, nameNodes[i].String()); err == nil {
				values[nameNodes[i].String()] = v.String()
			}
		}
	}
	p := &plan{byName: map[string]*device{}, items: map[uint32]*item{}, browses: b.requests}
	for _, d := range cands {
		name, err := expand(d.m.Name, d.name, values)
		if err != nil || strings.TrimSpace(name) == "" {
			if err == nil {
				err = fmt.Errorf("empty name")
			}
			sink.Malformed("opcua device name", fmt.Errorf("opcua %s: device node %s: deviceNameExpression %q: %w", c.cfg.Server.URL, d.node, d.m.Name.Text, err))
			continue
		}
		profile := d.m.Profile.Text
		if d.m.Profile.Source != SourceConstant {
			if profile, err = expand(d.m.Profile, d.profile, values); err != nil {
				sink.Malformed("opcua device profile", fmt.Errorf("opcua %s: device %q: deviceProfileExpression %q: %w", c.cfg.Server.URL, name, d.m.Profile.Text, err))
				profile = "default"
			}
		}
		if _, dup := p.byName[name]; dup {
			c.log.Warn().Str("device", name).Str("node", d.node.String()).Msg("opcua: two device nodes give the same device name; keeping the first")
			continue
		}
		dev := &device{name: name, profile: profile, node: d.node, mapping: d.m,
			report: d.m.ReportStrategy.Or(c.cfg.ReportStrategy), updates: map[string]*ua.NodeID{}, unresolved: map[string]string{}}
		for _, list := range []struct {
			keys []Key
			attr bool
		}{{d.m.Attributes, true}, {d.m.Timeseries, false}} {
			for _, k := range list.keys {
				if k.ReportStrategy.IsSet() {
					if dev.keyReport == nil {
						dev.keyReport = map[string]protocols.ReportStrategy{}
					}
					dev.keyReport[k.Key] = k.ReportStrategy
				}
				if k.Type == SourceConstant {
					dev.consts = append(dev.consts, constKey{attr: list.attr, dp: protocols.Datapoint{Key: k.Key, Value: protocols.String(k.Value)}})
				}
			}
		}
		for i, q := range d.keys {
			k := d.keyRefs[i]
			n := q.result()
			if n == nil {
				sink.Malformed("opcua path", fmt.Errorf("opcua %s: device %q key %q: %s %q matches no node", c.cfg.Server.URL, name, k.Key, k.Expr.Kind, k.Expr.Raw))
				continue
			}
			ns := n.String()
			h := c.handleFor(ns)
			it := p.items[h]
			if it == nil {
				it = &item{node: n, str: ns, handle: h}
				p.items[h] = it
			}
			it.targets = append(it.targets, target{dev: dev, key: k.Key, attr: d.keyAttr[i], ts: k.TimestampLocation})
		}
		for i, q := range d.updates {
			if n := q.result(); n != nil {
				dev.updates[d.updRefs[i].Key] = n
			} else {
				dev.unresolved[d.updRefs[i].Key] = fmt.Sprintf("%s %q matches no node", d.updRefs[i].Expr.Kind, d.updRefs[i].Expr.Raw)
			}
		}
		p.devices = append(p.devices, dev)
		p.byName[name] = dev
	}
	for h := range p.items {
		p.handles = append(p.handles, h)
	}
	sort.Slice(p.handles, func(i, j int) bool { return p.handles[i] < p.handles[j] })
	return p, nil
}

// newBrowser browses in the connector's current batch size, which starts
// at the server's MaxNodesPerBrowse (or 100) and halves whenever a batch
// fails as if its answer was too large; the next session uses the smaller
// size (the failure usually costs the connection).
func (c *Connector) newBrowser(s *session) *browser {
	n := int(c.browseBatch.Load())
	if n == 0 || n > s.limits.browse {
		n = s.limits.browse
	}
	b := newBrowser(s.c, n)
	b.shrink = func(failed int) {
		next := int64(max(1, failed/2))
		for {
			cur := c.browseBatch.Load()
			if cur != 0 && cur <= next {
				return
			}
			if c.browseBatch.CompareAndSwap(cur, next) {
				c.log.Warn().Int("batch", int(next)).Msg("opcua: a browse answer seems too large for the server, browsing in smaller batches")
				return
			}
		}
	}
	b.patternErr = func(err error) {
		c.log.Warn().Err(err).Msg("opcua: a browse name pattern could not be matched; the node is left out of this scan")
	}
	return b
}

// expand fills a name template: each ${...} is replaced by the value of
// its node; a template without ${} is one reference.
func expand(n NameExpr, qs []*query, values map[string]string) (string, error) {
	if n.Source == SourceConstant {
		return n.Text, nil
	}
	vals := make([]string, len(qs))
	for i, q := range qs {
		node := q.result()
		if node == nil {
			return "", fmt.Errorf("%q matches no node", n.Refs[i].Raw)
		}
		v, ok := values[node.String()]
		if !ok {
			return "", fmt.Errorf("node %s has no readable value", node)
		}
		vals[i] = v
	}
	if !strings.Contains(n.Text, "${") {
		if len(vals) == 0 {
			return n.Text, nil
		}
		return vals[0], nil
	}
	var b strings.Builder
	rest := n.Text
	for i := 0; ; i++ {
		s := strings.Index(rest, "${")
		if s < 0 || i >= len(vals) {
			b.WriteString(rest)
			return b.String(), nil
		}
		e := strings.IndexByte(rest[s:], '}')
		if e < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:s])
		b.WriteString(vals[i])
		rest = rest[s+e+1:]
	}
}

// readValues reads the Value attribute of nodes in batches of at most
// batch; results are in the order of nodes.
func readValues(ctx context.Context, cl *opcua.Client, nodes []*ua.NodeID, batch int, ts ua.TimestampsToReturn) ([]*ua.DataValue, error) {
	if batch <= 0 {
		batch = 100
	}
	out := make([]*ua.DataValue, 0, len(nodes))
	for start := 0; start < len(nodes); start += batch {
		part := nodes[start:min(start+batch, len(nodes))]
		req := &ua.ReadRequest{TimestampsToReturn: ts, NodesToRead: make([]*ua.ReadValueID, len(part))}
		for i, n := range part {
			req.NodesToRead[i] = &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDValue}
		}
		res, err := cl.Read(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("read %d nodes from %s: %w", len(part), part[0], err)
		}
		if res.ResponseHeader != nil && isBad(res.ResponseHeader.ServiceResult) {
			return nil, fmt.Errorf("read %d nodes from %s: %w", len(part), part[0], res.ResponseHeader.ServiceResult)
		}
		if len(res.Results) != len(part) {
			return nil, fmt.Errorf("read %d nodes from %s: server answered %d results", len(part), part[0], len(res.Results))
		}
		out = append(out, res.Results...)
	}
	return out, nil
}
