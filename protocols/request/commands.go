package request

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/jsonexpr"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Reserved-RPC defaults, as upstream's __format_rpc_reqeust.
const (
	reservedResponseTimeout = time.Second
	reservedTimeout         = 500 * time.Millisecond
	reservedTries           = 3
)

// downlink is a compiled request of attributeUpdates, serverSideRpc or a
// reserved get/set.
type downlink struct {
	path      string
	http      HTTP
	tries     int
	url, body *jsonexpr.Expr
	script    *script.Script // instead of url and body when set
}

type updateRule struct {
	downlink
	device, attr *pyre.Regexp
}

type rpcRule struct {
	downlink
	device, method *pyre.Regexp
	respTimeout    time.Duration
	resp           *jsonexpr.Expr // nil: the whole answer
}

func compileDownlink(d Downlink) (downlink, error) {
	out := downlink{path: d.Path, http: d.HTTP, tries: d.Tries}
	if d.Script != "" {
		return out, nil // loaded by compileDownlinks
	}
	var err error
	if out.url, err = jsonexpr.Compile(d.URLExpr); err != nil {
		return out, fmt.Errorf("%s: requestUrlExpression: %w", d.Path, err)
	}
	if out.body, err = jsonexpr.Compile(d.ValueExpr); err != nil {
		return out, fmt.Errorf("%s: requestValueExpression: %w", d.Path, err)
	}
	return out, nil
}

// compileDownlinks compiles the attributeUpdates and serverSideRpc
// entries; a script that does not load is recorded in ps at the entry's
// "script" key (file:line:column), as iotgw check prints it.
func (c *Connector) compileDownlinks(env jsonconv.Env, ps *spec.Problems, file string) error {
	load := func(d *downlink, src Downlink) {
		if src.Script == "" {
			return
		}
		s, err := script.LoadDownlink(script.Path(env.Dir, src.Script), script.Options{Print: env.Print})
		if err != nil {
			ps.Errorf(file, src.Path+".script", "%v", err)
			return
		}
		d.script = s
	}
	for _, u := range c.cfg.AttributeUpdates {
		d, err := compileDownlink(u.Downlink)
		if err != nil {
			return err
		}
		load(&d, u.Downlink)
		r := &updateRule{downlink: d}
		if r.device, err = pyre.Compile(u.DeviceFilter, pyre.FullMatch); err != nil {
			return fmt.Errorf("%s: deviceNameFilter: %w", u.Path, err)
		}
		if r.attr, err = pyre.Compile(u.AttrFilter, pyre.FullMatch); err != nil {
			return fmt.Errorf("%s: attributeFilter: %w", u.Path, err)
		}
		c.updates = append(c.updates, r)
	}
	for _, x := range c.cfg.ServerSideRPC {
		d, err := compileDownlink(x.Downlink)
		if err != nil {
			return err
		}
		load(&d, x.Downlink)
		r := &rpcRule{downlink: d, respTimeout: x.ResponseTimeout}
		if r.device, err = pyre.Compile(x.DeviceFilter, pyre.FullMatch); err != nil {
			return fmt.Errorf("%s: deviceNameFilter: %w", x.Path, err)
		}
		if r.method, err = pyre.Compile(x.MethodFilter, pyre.FullMatch); err != nil {
			return fmt.Errorf("%s: methodFilter: %w", x.Path, err)
		}
		if x.ResponseExpr != "" {
			if r.resp, err = jsonexpr.Compile(x.ResponseExpr); err != nil {
				return fmt.Errorf("%s: responseValueExpression: %w", x.Path, err)
			}
		}
		c.rpcs = append(c.rpcs, r)
	}
	return nil
}

// match applies a filter; a match that times out (a pathological pattern)
// counts as no match and is logged.
func (c *Connector) match(re *pyre.Regexp, what, s string) bool {
	ok, err := re.MatchString(s)
	if err != nil {
		c.log.Warn().Err(err).Str("filter", what).Str("input", s).Msg("filter match failed; treated as no match")
	}
	return ok
}

// Commander implements protocols.DeviceCommands. Every device has one:
// the reserved get/set RPC works without any serverSideRpc entry.
func (c *Connector) Commander(device, profile string) protocols.Commander {
	cm := &commander{c: c, device: device}
	for _, u := range c.updates {
		if c.match(u.device, "attributeUpdates deviceNameFilter", device) {
			cm.updates = append(cm.updates, u)
		}
	}
	for _, r := range c.rpcs {
		if c.match(r.device, "serverSideRpc deviceNameFilter", device) {
			cm.rpcs = append(cm.rpcs, r)
		}
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

// UpdateAttributes sends one request per value to every attributeUpdates
// entry whose attributeFilter takes the key. A non-2xx answer is an error.
func (cm *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	return protocols.UpdateEach(values, cm.updates,
		func(u *updateRule, k string) bool {
			return cm.c.match(u.attr, "attributeUpdates attributeFilter", k)
		},
		func(u *updateRule, k string, raw json.RawMessage) error {
			v := rawValue(raw)
			env := map[string]any{"deviceName": cm.device, "attributeKey": k, "attributeValue": v, k: v}
			cmd := script.Command{Kind: script.KindAttributes, Device: cm.device, Values: map[string]json.RawMessage{k: raw}}
			if _, _, _, err := cm.c.send(ctx, &u.downlink, env, cmd); err != nil {
				return fmt.Errorf("request device %q: attribute update %q: %w", cm.device, k, err)
			}
			return nil
		})
}

// RPC implements protocols.Commander: the reserved get/set, then the first
// serverSideRpc entry whose methodFilter takes the method. The reply
// carries the endpoint's answer: {"result":{"value":<answer>}}.
func (cm *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	fail := func(err error) error {
		return fmt.Errorf("request device %q: rpc %q (id %d): %w", cm.device, req.Method, req.ID, err)
	}
	params, err := decodeParams(req.Params)
	if err != nil {
		return nil, fail(err)
	}
	var r *rpcRule
	if m := strings.ToLower(req.Method); m == "get" || m == "set" {
		if r, err = reservedRule(m, req.Params); err != nil {
			return nil, fail(err)
		}
	} else {
		for _, x := range cm.rpcs {
			if cm.c.match(x.method, "serverSideRpc methodFilter", req.Method) {
				r = x
				break
			}
		}
	}
	if r == nil {
		return nil, fmt.Errorf("request device %q: %w %q (no serverSideRpc methodFilter takes it)", cm.device, protocols.ErrUnknownMethod, req.Method)
	}
	env := rpcEnv(cm.device, req, params)
	v, reply, _, err := cm.c.call(ctx, r, env, script.RPCCommand(req))
	if err != nil {
		return nil, fail(err)
	}
	if reply != nil {
		return protocols.RPCResult(reply), nil
	}
	return protocols.RPCResult(`{"result":{"value":` + string(v) + `}}`), nil
}

// ConnectorRPC implements protocols.ConnectorRPC: "request_<name>" on the
// gateway device with params naming the request as the reserved RPC does
// (requestUrlExpression, httpMethod, requestValueExpression, ...). The
// reply is upstream's [{"success":..., "result"|"error":..., "status":...}].
func (c *Connector) ConnectorRPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	params, err := decodeParams(req.Params)
	if err != nil {
		return nil, fmt.Errorf("request connector %q: rpc %q: %w", c.name, req.Method, err)
	}
	r, err := reservedRule("connector", req.Params)
	if err != nil {
		return nil, fmt.Errorf("request connector %q: rpc %q: %w", c.name, req.Method, err)
	}
	v, _, status, err := c.call(ctx, r, rpcEnv("", req, params), script.RPCCommand(req))
	b := []byte(`[{"success":`)
	if err != nil {
		b = append(b, `false,"error":`...)
		b = protocols.AppendJSONString(b, err.Error())
	} else {
		b = append(b, `true,"result":`...)
		b = append(b, v...)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	return protocols.RPCResult(append(b, "}]"...)), nil
}

func rpcEnv(device string, req protocols.RPCRequest, params any) map[string]any {
	id := json.Number(strconv.FormatInt(req.ID, 10))
	return map[string]any{
		"deviceName": device, "methodName": req.Method, "requestId": id,
		"params": params, "id": id, "method": req.Method,
	}
}

func decodeParams(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	v, err := DecodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("params are not JSON: %v", err)
	}
	return v, nil
}

func rawValue(raw json.RawMessage) any {
	v, err := DecodeJSON(raw)
	if err != nil {
		return string(raw)
	}
	return v
}

// reservedRule builds the request a reserved get/set (params
// "requestUrlExpression=...;httpMethod=...;value=...;") or a connector RPC
// (params as an object or that string) names.
func reservedRule(method string, raw json.RawMessage) (*rpcRule, error) {
	p := map[string]string{}
	if s, ok := protocols.JSONString(raw); ok {
		for _, pair := range strings.Split(s, ";") {
			k, v, found := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !found || k == "" || v == "" {
				continue
			}
			p[k] = v
		}
	} else if obj, ok := rawValue(raw).(map[string]any); ok {
		for k, v := range obj {
			if s, isStr := v.(string); isStr {
				p[strings.TrimSpace(k)] = s
			} else {
				p[strings.TrimSpace(k)] = string(jsonexpr.AppendText(nil, v))
			}
		}
	} else {
		return nil, errors.New(`params must be "requestUrlExpression=...;httpMethod=...;" or an object with requestUrlExpression`)
	}
	if method == "set" {
		if v, ok := p["value"]; ok {
			p["requestValueExpression"] = v
		}
	}
	if p["requestUrlExpression"] == "" {
		return nil, errors.New("requestUrlExpression parameter is required; please check your RPC params")
	}
	d := Downlink{
		Path:      "rpc params",
		HTTP:      HTTP{Method: strings.ToUpper(orDefault(p["httpMethod"], "GET")), Timeout: reservedTimeout},
		Tries:     reservedTries,
		URLExpr:   p["requestUrlExpression"],
		ValueExpr: orDefault(p["requestValueExpression"], "${params}"),
	}
	r := &rpcRule{respTimeout: reservedResponseTimeout}
	var err error
	for _, t := range []struct {
		key string
		dst *time.Duration
	}{{"timeout", &d.HTTP.Timeout}, {"responseTimeout", &r.respTimeout}} {
		if s, ok := p[t.key]; ok {
			f, perr := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if perr != nil || f <= 0 || f > 1e6 {
				return nil, fmt.Errorf("%s %q is not a positive number of seconds", t.key, s)
			}
			*t.dst = time.Duration(f * float64(time.Second))
		}
	}
	if s, ok := p["tries"]; ok {
		n, perr := strconv.Atoi(strings.TrimSpace(s))
		if perr != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("tries %q is not a number from 1 to 100", s)
		}
		d.Tries = n
	}
	d.HTTP.Headers = map[string]string{"Content-Type": "application/json"}
	if s, ok := p["httpHeaders"]; ok {
		h := map[string]string{}
		if err := json.Unmarshal([]byte(s), &h); err != nil {
			return nil, fmt.Errorf("httpHeaders %q is not a JSON object of strings: %v", s, err)
		}
		d.HTTP.Headers = h
	}
	if r.downlink, err = compileDownlink(d); err != nil {
		return nil, err
	}
	if s := p["responseValueExpression"]; s != "" {
		if r.resp, err = jsonexpr.Compile(s); err != nil {
			return nil, fmt.Errorf("responseValueExpression: %w", err)
		}
	}
	return r, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// call runs an RPC's request within its responseTimeout and renders the
// answer as the reply's value (JSON): the whole answer, or
// responseValueExpression over it. reply is a script's "reply", which
// replaces the whole RPC reply; nil without one.
func (c *Connector) call(ctx context.Context, r *rpcRule, env map[string]any, cmd script.Command) (value, reply json.RawMessage, status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.respTimeout)
	defer cancel()
	status, body, reply, err := c.send(ctx, &r.downlink, env, cmd)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded && !errors.Is(err, protocols.ErrTimeout) {
			err = fmt.Errorf("no answer within responseTimeout %s: %w", r.respTimeout, protocols.ErrTimeout)
		}
		return nil, nil, status, err
	}
	if reply != nil {
		return nil, reply, status, nil
	}
	ans, jerr := DecodeJSON(body)
	if r.resp == nil {
		if jerr != nil {
			return protocols.AppendJSONString(nil, string(body)), nil, status, nil
		}
		return json.RawMessage(body), nil, status, nil
	}
	if jerr != nil {
		return nil, nil, status, fmt.Errorf("responseValueExpression %q: the answer is not JSON: %v", r.resp.String(), jerr)
	}
	v, err := r.resp.Eval(ans)
	if err != nil {
		return nil, nil, status, fmt.Errorf("responseValueExpression: %w", err)
	}
	if len(r.resp.Parts()) > 1 {
		// A template gives text, as upstream's string replacement does.
		return protocols.AppendJSONString(nil, v.(string)), nil, status, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, status, err
	}
	return b, nil, status, nil
}

// send renders a downlink request (or runs its script with cmd) and sends
// it. It returns the status and body of the last answer and, for a
// script, its last "reply" (nil when it gave none).
func (c *Connector) send(ctx context.Context, d *downlink, env map[string]any, cmd script.Command) (int, []byte, json.RawMessage, error) {
	if d.script != nil {
		return c.sendScript(ctx, d, cmd)
	}
	u, err := renderURL(d.url, env)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: requestUrlExpression: %w", d.path, err)
	}
	body, err := renderBody(d.body, env)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: requestValueExpression: %w", d.path, err)
	}
	status, ans, err := c.try(ctx, d, u, d.http, body)
	return status, ans, nil, err
}

// sendScript sends the requests the entry's script returns, in order,
// stopping at the first that fails. Each takes the entry's httpMethod,
// headers and timeout unless the script gives "method" or "headers".
func (c *Connector) sendScript(ctx context.Context, d *downlink, cmd script.Command) (int, []byte, json.RawMessage, error) {
	outs, err := d.script.HTTPRequests(cmd, d.http.Method, d.http.Headers)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", d.path, err)
	}
	var status int
	var ans []byte
	for _, o := range outs {
		h := d.http
		h.Method, h.Headers = o.Method, o.Headers
		if status, ans, err = c.try(ctx, d, o.URL, h, o.Payload); err != nil {
			return status, ans, nil, err
		}
	}
	return status, ans, script.Reply(outs, nil), nil
}

// try sends one request, trying again (up to the entry's tries) when the
// endpoint could not be reached or did not answer in time; an answer, even
// a failing status, is not retried.
func (c *Connector) try(ctx context.Context, d *downlink, u string, h HTTP, body []byte) (int, []byte, error) {
	for try := 1; ; try++ {
		status, ans, err := c.do(ctx, u, h, body)
		if err == nil || errors.Is(err, ErrHTTPStatus) || try >= d.tries || ctx.Err() != nil {
			return status, ans, err
		}
		c.log.Debug().Err(err).Int("try", try).Msg("downlink request failed; trying again")
	}
}

// renderURL fills a URL template; every substituted value is escaped as
// one path segment, so a device or attribute name cannot change the path.
func renderURL(e *jsonexpr.Expr, env any) (string, error) {
	var b strings.Builder
	for _, p := range e.Parts() {
		if !p.Ref {
			b.WriteString(p.Lit)
			continue
		}
		v, ok := p.Lookup(env)
		if !ok {
			return "", &jsonexpr.MissingError{Expr: e.String()}
		}
		b.WriteString(url.PathEscape(string(jsonexpr.AppendText(nil, v))))
	}
	return b.String(), nil
}

// renderBody fills the body template. A lone ${} of an object or a list
// is sent as JSON, as upstream's literal_eval/dumps step does.
func renderBody(e *jsonexpr.Expr, env any) ([]byte, error) {
	v, err := e.Eval(env)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return []byte("null"), nil
	}
	return jsonexpr.AppendText(nil, v), nil
}

var _ protocols.Commander = (*commander)(nil)
