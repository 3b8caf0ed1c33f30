package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// deviceReq is a compiled connectRequests / disconnectRequests entry.
type deviceReq struct {
	filter        string
	name, profile source
}

// attrReq is a compiled attributeRequests entry.
type attrReq struct {
	filter      string
	name        source
	scope       *Expr // nil: constant scope in client
	client      bool
	attrs       source
	topic, body *Expr
	retain      bool
}

type updateRule struct {
	device, attr *pyre.Regexp // re.match, as upstream
	topic, body  *Expr
	script       *script.Script // instead of topic and body when set
	retain       bool
	qos          byte
}

type rpcRule struct {
	device, method   *pyre.Regexp // re.search, as upstream
	twoWay           bool
	reqTopic, body   *Expr
	script           *script.Script // instead of reqTopic and body when set
	respTopic        *Expr
	respQoS          byte
	timeout          time.Duration
	path, methodExpr string
}

// waiter is a two-way RPC waiting for a message on its response filter.
type waiter struct {
	filter string
	qos    int
	ch     chan []byte
}

func compileDeviceInfo(di DeviceInfo) (source, source, error) {
	name, err := newSource(di.NameSource, di.Name, "deviceNameExpression")
	if err != nil {
		return name, source{}, err
	}
	profile, psrc := di.Profile, di.ProfileSource
	if profile == "" {
		profile, psrc = "default", SourceConstant
	}
	prof, err := newSource(psrc, profile, "deviceProfileExpression")
	return name, prof, err
}

// loadScript loads a downlink script; one that does not load is recorded
// at the entry's "script" key (file:line:column) and nil returned.
func loadScript(ps *spec.Problems, file, path, ref string, env jsonconv.Env) *script.Script {
	s, err := script.LoadDownlink(script.Path(env.Dir, ref), script.Options{Print: env.Print})
	if err != nil {
		ps.Errorf(file, path+".script", "%v", err)
		return nil
	}
	return s
}

func (c *Connector) compileRequests(r *Requests, env jsonconv.Env, ps *spec.Problems, file string) error {
	var errs []error
	for _, list := range []struct {
		in  []*DeviceRequest
		out *[]*deviceReq
	}{{r.Connect, &c.connects}, {r.Disconnect, &c.disconnects}} {
		for _, d := range list.in {
			name, prof, err := compileDeviceInfo(d.DeviceInfo)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.Path, err))
				continue
			}
			*list.out = append(*list.out, &deviceReq{filter: d.TopicFilter, name: name, profile: prof})
		}
	}
	for _, a := range r.AttributeRequests {
		name, _, err := compileDeviceInfo(a.DeviceInfo)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.Path, err))
			continue
		}
		ar := &attrReq{filter: a.TopicFilter, name: name, retain: a.Retain, client: a.Scope == ScopeClient}
		if strings.Contains(a.Scope, "${") {
			ar.scope = MustCompile(a.Scope)
		}
		if ar.attrs, err = newSource(a.NameSource, a.NameExpr, "attributeNameExpression"); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.Path, err))
			continue
		}
		ar.topic, ar.body = MustCompile(a.TopicExpr), MustCompile(a.ValueExpr)
		c.attrReqs = append(c.attrReqs, ar)
	}
	for _, u := range r.AttributeUpdates {
		ur := &updateRule{
			device: mustRegex(u.DeviceNameFilter, pyre.Match), attr: mustRegex(u.AttributeFilter, pyre.Match),
			retain: u.Retain, qos: byte(u.QoS),
		}
		if u.Script != "" {
			ur.script = loadScript(ps, file, u.Path, u.Script, env)
		} else {
			ur.topic, ur.body = MustCompile(u.TopicExpr), MustCompile(u.ValueExpr)
		}
		c.updates = append(c.updates, ur)
	}
	for _, s := range r.RPC {
		rr := &rpcRule{
			device: mustRegex(s.DeviceNameFilter, pyre.Search), method: mustRegex(s.MethodFilter, pyre.Search),
			twoWay:  s.Type == RPCTwoWay,
			respQoS: byte(s.ResponseTopicQoS), timeout: s.ResponseTimeout, path: s.Path,
		}
		if s.Script != "" {
			rr.script = loadScript(ps, file, s.Path, s.Script, env)
		} else {
			rr.reqTopic, rr.body = MustCompile(s.RequestTopicExpr), MustCompile(s.ValueExpr)
		}
		if rr.twoWay {
			rr.respTopic = MustCompile(s.ResponseTopicExpr)
		}
		c.rpcs = append(c.rpcs, rr)
	}
	return errors.Join(errs...)
}

// handleRequests runs the requestsMapping sections whose topic filter
// matches m. It reports whether any did.
func (c *Connector) handleRequests(ctx context.Context, sink protocols.Sink, m *message, wg *sync.WaitGroup) bool {
	matched := false
	var msg any
	decoded := false
	var decodeErr error
	// The payload is decoded at most once, and only when an expression reads it.
	body := func() (any, error) {
		if !decoded {
			decoded = true
			msg, decodeErr = decodeJSON(m.payload)
			if decodeErr != nil {
				decodeErr = fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, decodeErr)
			}
		}
		return msg, decodeErr
	}
	resolve := func(s *source) (string, error) {
		var v any
		if s.Kind() == SourceMessage {
			var err error
			if v, err = body(); err != nil {
				return "", err
			}
		}
		out, err := s.Resolve(m.topic, v)
		if err == nil && out == "" {
			err = fmt.Errorf("%s is empty", s.What())
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			err = fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return out, err
	}
	for _, r := range c.connects {
		if !topicMatches(r.filter, m.topic) {
			continue
		}
		matched = true
		name, err := resolve(&r.name)
		var prof string
		if err == nil {
			prof, err = resolve(&r.profile)
		}
		if err != nil {
			sink.Malformed(r.filter, fmt.Errorf("connect request on %q: %w", m.topic, err))
			continue
		}
		sink.Connect(name, prof)
	}
	for _, r := range c.disconnects {
		if !topicMatches(r.filter, m.topic) {
			continue
		}
		matched = true
		name, err := resolve(&r.name)
		if err != nil {
			sink.Malformed(r.filter, fmt.Errorf("disconnect request on %q: %w", m.topic, err))
			continue
		}
		sink.Disconnect(name)
	}
	for _, r := range c.attrReqs {
		if !topicMatches(r.filter, m.topic) {
			continue
		}
		matched = true
		name, err := resolve(&r.name)
		var keys string
		if err == nil {
			keys, err = resolve(&r.attrs)
		}
		client := r.client
		if err == nil && r.scope != nil {
			var v any
			if v, err = body(); err == nil {
				var s string
				if s, err = r.scope.EvalString(v); err == nil {
					switch strings.ToLower(strings.TrimSpace(s)) {
					case ScopeClient:
						client = true
					case ScopeShared:
						client = false
					default:
						err = fmt.Errorf("%w: scope %q is neither shared nor client", ErrMalformed, s)
					}
				}
			}
		}
		if err != nil {
			sink.Malformed(r.filter, fmt.Errorf("attribute request on %q: %w", m.topic, err))
			continue
		}
		names := splitNames(keys)
		if len(names) == 0 {
			sink.Malformed(r.filter, fmt.Errorf("attribute request on %q: %w: no attribute names", m.topic, ErrMalformed))
			continue
		}
		// The platform round trip must not stall data, so it runs aside;
		// the semaphore bounds how many, and waiting for it is back-pressure.
		select {
		case c.attrSem <- struct{}{}:
		case <-ctx.Done():
			return matched
		}
		m.hold()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-c.attrSem }()
			defer m.release()
			if err := c.answerAttributes(ctx, sink, r, name, client, names); err != nil && ctx.Err() == nil {
				c.log.Warn().Err(err).Str("device", name).Msg("attribute request not answered")
			}
		}()
	}
	return matched
}

// splitNames reads "a, b" (upstream's several-attributes form) as a list.
func splitNames(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *Connector) answerAttributes(ctx context.Context, sink protocols.Sink, r *attrReq, device string, client bool, keys []string) error {
	rctx, cancel := context.WithTimeout(ctx, attributeRequestTimeout)
	defer cancel()
	vals, err := sink.RequestAttributes(rctx, device, client, keys)
	if err != nil {
		return fmt.Errorf("request attributes %q of %q from the platform: %w", keys, device, err)
	}
	var errs []error
	for _, k := range keys {
		raw, ok := vals[k]
		if !ok {
			continue // the platform has no such attribute; upstream answers nothing either
		}
		env := map[string]any{"deviceName": device, "attributeKey": k, "attributeValue": rawValue(raw)}
		topic, body, err := renderPublish(r.topic, r.body, env)
		if err == nil {
			err = c.publish(rctx, topic, []byte(body), 1, r.retain)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("attribute %q: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// rawValue decodes a platform value for templates: strings render without
// quotes, everything else as its JSON text.
func rawValue(raw json.RawMessage) any {
	v, err := decodeJSON(raw)
	if err != nil {
		return string(raw)
	}
	return v
}

func renderPublish(topic, body *Expr, env map[string]any) (string, string, error) {
	t, err := topic.EvalString(env)
	if err != nil {
		return "", "", fmt.Errorf("topic expression %q: %w", topic.String(), err)
	}
	if t == "" || strings.ContainsAny(t, "#+") {
		return "", "", fmt.Errorf("topic expression %q gives %q, not a topic to publish to", topic.String(), t)
	}
	b, err := body.EvalString(env)
	if err != nil {
		return "", "", fmt.Errorf("value expression %q: %w", body.String(), err)
	}
	return t, b, nil
}

// publish sends on the current connection.
func (c *Connector) publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	l := c.cur.Load()
	if l == nil {
		return fmt.Errorf("publish to %q on %s: %w: %w", topic, c.cfg.Broker.address(), ErrNotConnected, protocols.ErrIO)
	}
	pctx, cancel := whileUp(ctx, l.cl)
	defer cancel()
	if err := l.cl.Publish(pctx, topic, payload, qos, retain); err != nil {
		return fmt.Errorf("%w: %w", upErr(pctx, err), protocols.ErrIO)
	}
	return nil
}

// matchResponse hands a message on a two-way RPC's response topic to its
// waiter. It runs in the library callback, ahead of the data queue, so a
// busy sink cannot make an RPC time out.
func (c *Connector) matchResponse(m *message) bool {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	found := false
	for w := range c.waiters {
		if topicMatches(w.filter, m.topic) {
			select {
			case w.ch <- m.payload:
			default: // a second answer; the first one counts
			}
			found = true
		}
	}
	return found
}

// Commander implements protocols.DeviceCommands. The commander serves the
// attributeUpdates and serverSideRpc entries whose deviceNameFilter takes
// the device; nil when none does.
func (c *Connector) Commander(device, profile string) protocols.Commander {
	cm := &commander{c: c, device: device}
	for _, u := range c.updates {
		if c.filterMatch(u.device, "attributeUpdates deviceNameFilter", device) {
			cm.updates = append(cm.updates, u)
		}
	}
	for _, r := range c.rpcs {
		if c.filterMatch(r.device, "serverSideRpc deviceNameFilter", device) {
			cm.rpcs = append(cm.rpcs, r)
		}
	}
	if len(cm.updates) == 0 && len(cm.rpcs) == 0 {
		return nil
	}
	return cm
}

type commander struct {
	c       *Connector
	device  string
	updates []*updateRule
	rpcs    []*rpcRule
}

// SharedAttributeKeys implements protocols.Commander. attributeFilter is a
// regex, so there is no list of keys to request at connect time.
func (cm *commander) SharedAttributeKeys() []string { return nil }

// UpdateAttributes publishes each value to every attributeUpdates entry
// whose attributeFilter takes the key; keys no entry takes are ignored.
func (cm *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	return protocols.UpdateEach(values, cm.updates,
		func(u *updateRule, k string) bool {
			return cm.c.filterMatch(u.attr, "attributeUpdates attributeFilter", k)
		},
		func(u *updateRule, k string, raw json.RawMessage) error {
			if u.script != nil {
				err := cm.publishScript(ctx, u.script, script.Command{Kind: script.KindAttributes, Device: cm.device, Values: map[string]json.RawMessage{k: raw}}, u.qos, u.retain)
				if err != nil {
					return fmt.Errorf("mqtt device %q: attribute update %q: %w", cm.device, k, err)
				}
				return nil
			}
			env := map[string]any{"deviceName": cm.device, "attributeKey": k, "attributeValue": rawValue(raw)}
			topic, body, err := renderPublish(u.topic, u.body, env)
			if err == nil {
				err = cm.c.publish(ctx, topic, []byte(body), u.qos, u.retain)
			}
			if err != nil {
				return fmt.Errorf("mqtt device %q: attribute update %q: %w", cm.device, k, err)
			}
			return nil
		})
}

// RPC implements protocols.Commander: it publishes the request of the first
// serverSideRpc entry whose methodFilter takes the method and, for a
// two-way entry, waits for the device's answer on the response topic.
func (cm *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	var r *rpcRule
	for _, x := range cm.rpcs {
		ok, err := x.method.MatchString(req.Method)
		if err != nil {
			return nil, fmt.Errorf("mqtt device %q: rpc %q: serverSideRpc methodFilter: %w", cm.device, req.Method, err)
		}
		if ok {
			r = x
			break
		}
	}
	if r == nil {
		return nil, fmt.Errorf("mqtt device %q: %w %q (no serverSideRpc methodFilter takes it)", cm.device, protocols.ErrUnknownMethod, req.Method)
	}
	if r.script != nil {
		return cm.scriptRPC(ctx, r, req)
	}
	var params any
	if len(req.Params) > 0 {
		p, err := decodeJSON(req.Params)
		if err != nil {
			return nil, fmt.Errorf("mqtt device %q: rpc %q: params are not JSON: %v", cm.device, req.Method, err)
		}
		params = p
	}
	env := map[string]any{
		"deviceName": cm.device, "methodName": req.Method,
		"requestId": json.Number(strconv.FormatInt(req.ID, 10)), "params": params,
	}
	topic, body, err := renderPublish(r.reqTopic, r.body, env)
	if err != nil {
		return nil, fmt.Errorf("mqtt device %q: rpc %q: %s: %w", cm.device, req.Method, r.path, err)
	}
	if !r.twoWay {
		if err := cm.c.publish(ctx, topic, []byte(body), 1, false); err != nil {
			return nil, fmt.Errorf("mqtt device %q: rpc %q: %w", cm.device, req.Method, err)
		}
		return protocols.RPCResult(`{"success":true}`), nil
	}
	resp, err := responseTopic(r, env)
	if err != nil {
		return nil, fmt.Errorf("mqtt device %q: rpc %q: %w", cm.device, req.Method, err)
	}
	return cm.c.roundTrip(ctx, cm.device, req, r, topic, []byte(body), resp)
}

// responseTopic renders a two-way entry's responseTopicExpression.
func responseTopic(r *rpcRule, env map[string]any) (string, error) {
	resp, err := r.respTopic.EvalString(env)
	if err == nil && (resp == "" || validTopicFilter(resp) != nil) {
		err = fmt.Errorf("gives %q, not a topic filter", resp)
	}
	if err != nil {
		return "", fmt.Errorf("%s: responseTopicExpression %q: %w", r.path, r.respTopic.String(), err)
	}
	return resp, nil
}

// scriptRPC runs an entry's downlink script: a one-way RPC publishes what
// it returns and answers its "reply" (default {"success":true}); a two-way
// one publishes its single message and waits for the device's answer on
// responseTopicExpression, as without a script.
func (cm *commander) scriptRPC(ctx context.Context, r *rpcRule, req protocols.RPCRequest) (protocols.RPCResult, error) {
	fail := func(err error) error {
		return fmt.Errorf("mqtt device %q: rpc %q: %s: %w", cm.device, req.Method, r.path, err)
	}
	outs, err := r.script.Downlink(script.RPCCommand(req))
	if err != nil {
		return nil, fail(err)
	}
	if len(outs) == 0 {
		return nil, fail(fmt.Errorf("%s: downlink returned nothing to send", r.script.File))
	}
	for _, o := range outs {
		if o.Topic == "" || strings.ContainsAny(o.Topic, "#+") {
			return nil, fail(fmt.Errorf("%s: downlink returned topic %q, not a topic to publish to", r.script.File, o.Topic))
		}
	}
	if r.twoWay {
		if len(outs) != 1 {
			return nil, fail(fmt.Errorf("%s: downlink returned %d messages; a twoWay rpc sends one and waits for its answer", r.script.File, len(outs)))
		}
		var params any
		if len(req.Params) > 0 {
			params, _ = decodeJSON(req.Params)
		}
		resp, err := responseTopic(r, map[string]any{"deviceName": cm.device, "methodName": req.Method,
			"requestId": json.Number(strconv.FormatInt(req.ID, 10)), "params": params})
		if err != nil {
			return nil, fail(err)
		}
		return cm.c.roundTrip(ctx, cm.device, req, r, outs[0].Topic, outs[0].Payload, resp)
	}
	var reply protocols.RPCResult
	for _, o := range outs {
		if err := cm.c.publish(ctx, o.Topic, o.Payload, outQoS(o, 1), o.Retain); err != nil {
			return nil, fail(err)
		}
		if o.Reply != nil {
			reply = protocols.RPCResult(o.Reply)
		}
	}
	if reply == nil {
		reply = protocols.RPCResult(`{"success":true}`)
	}
	return reply, nil
}

// publishScript publishes what a downlink script returns for cmd; qos and
// retain are the entry's unless the script sets them.
func (cm *commander) publishScript(ctx context.Context, s *script.Script, cmd script.Command, qos byte, retain bool) error {
	outs, err := s.Downlink(cmd)
	if err != nil {
		return err
	}
	for _, o := range outs {
		if o.Topic == "" || strings.ContainsAny(o.Topic, "#+") {
			return fmt.Errorf("%s: downlink returned topic %q, not a topic to publish to", s.File, o.Topic)
		}
		if err := cm.c.publish(ctx, o.Topic, o.Payload, outQoS(o, qos), o.Retain || retain); err != nil {
			return err
		}
	}
	return nil
}

func outQoS(o script.Output, def byte) byte {
	if o.QoS < 0 {
		return def
	}
	return byte(o.QoS)
}

// roundTrip subscribes to the response filter, publishes the request and
// waits for the answer, the rule's responseTimeout or ctx, whichever first.
func (c *Connector) roundTrip(ctx context.Context, device string, req protocols.RPCRequest, r *rpcRule, topic string, body []byte, resp string) (protocols.RPCResult, error) {
	w := &waiter{filter: resp, qos: int(r.respQoS), ch: make(chan []byte, 1)}
	c.waitMu.Lock()
	c.waiters[w] = struct{}{}
	c.waitMu.Unlock()
	defer c.dropWaiter(w)

	wait := r.timeout
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	tctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	fail := func(err error) error {
		return fmt.Errorf("mqtt device %q: rpc %q (id %d): %w", device, req.Method, req.ID, err)
	}
	// Registered before subscribing, so a reconnect in between resubscribes it.
	l := c.cur.Load()
	if l == nil {
		return nil, fail(fmt.Errorf("%w: %w", ErrNotConnected, protocols.ErrIO))
	}
	sctx, cancelUp := whileUp(tctx, l.cl)
	err := l.cl.Subscribe(sctx, []subscription{{filter: resp, qos: r.respQoS}})
	err = upErr(sctx, err)
	cancelUp()
	if err != nil {
		return nil, fail(c.timeoutOr(tctx, wait, resp, err))
	}
	if err := c.publish(tctx, topic, body, 1, false); err != nil {
		return nil, fail(c.timeoutOr(tctx, wait, resp, err))
	}
	select {
	case p := <-w.ch:
		return rpcResult(p), nil
	case <-tctx.Done():
		return nil, fail(c.timeoutOr(tctx, wait, resp, nil))
	}
}

// timeoutOr turns an expired wait into the ErrTimeout the runtime answers
// with upstream's timeout reply; other errors pass unchanged.
func (c *Connector) timeoutOr(ctx context.Context, wait time.Duration, resp string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("no response on %q within %s: %w", resp, wait.Round(time.Millisecond), protocols.ErrTimeout)
	}
	return err
}

// dropWaiter forgets w and unsubscribes its filter when no other waiter and
// no mapping or request needs it.
func (c *Connector) dropWaiter(w *waiter) {
	c.waitMu.Lock()
	delete(c.waiters, w)
	inUse := false
	for o := range c.waiters {
		if o.filter == w.filter {
			inUse = true
			break
		}
	}
	c.waitMu.Unlock()
	if inUse || c.staticFilter(w.filter) {
		return
	}
	if l := c.cur.Load(); l != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx, cancelUp := whileUp(ctx, l.cl)
		defer cancelUp()
		if err := l.cl.Unsubscribe(ctx, w.filter); err != nil {
			c.log.Debug().Err(err).Msg("rpc response unsubscribe failed")
		}
	}
}

func (c *Connector) staticFilter(f string) bool {
	for _, s := range c.subscriptionsStatic() {
		if s == f {
			return true
		}
	}
	return false
}

func (c *Connector) subscriptionsStatic() []string {
	var out []string
	for _, m := range c.mappings {
		out = append(out, m.m.TopicFilter)
	}
	for _, r := range c.connects {
		out = append(out, r.filter)
	}
	for _, r := range c.disconnects {
		out = append(out, r.filter)
	}
	for _, r := range c.attrReqs {
		out = append(out, r.filter)
	}
	return out
}

// rpcResult is the device's answer as the reply's data: its JSON as is, or
// the text as a JSON string when it is not JSON.
func rpcResult(p []byte) protocols.RPCResult {
	if json.Valid(p) {
		return protocols.RPCResult(append([]byte(nil), p...))
	}
	return protocols.RPCResult(protocols.AppendJSONString(nil, string(p)))
}

var _ protocols.Commander = (*commander)(nil)
