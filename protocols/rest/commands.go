package rest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// maxReplyBytes bounds a device's answer to a command.
const maxReplyBytes = 1 << 20

// outRule is a compiled attributeUpdates or serverSideRpc entry.
type outRule struct {
	g         *Outgoing
	url, body *template
	script    *script.Script // instead of url and body when set
	client    *http.Client
}

type updateRule struct {
	outRule
	device, attr *pyre.Regexp
}

type rpcRule struct {
	outRule
	device, method *pyre.Regexp
}

func (c *Connector) compileOut(g *Outgoing, env jsonconv.Env, ps *spec.Problems, file string) (outRule, error) {
	o := outRule{g: g, client: newClient(g)}
	if g.Script != "" {
		s, err := script.LoadDownlink(script.Path(env.Dir, g.Script), script.Options{Print: env.Print})
		if err != nil {
			// Recorded at the entry's "script" key (file:line:column), as
			// iotgw check prints it.
			ps.Errorf(file, g.Path+".script", "%v", err)
		}
		o.script = s
		return o, nil
	}
	var err error
	if o.url, err = compileTemplate(g.URLExpr); err != nil {
		return o, fmt.Errorf("%s: requestUrlExpression: %w", g.Path, err)
	}
	if o.body, err = compileTemplate(g.ValueExpr); err != nil {
		return o, fmt.Errorf("%s: valueExpression: %w", g.Path, err)
	}
	return o, nil
}

func (c *Connector) compileCommands(env jsonconv.Env, ps *spec.Problems, file string) error {
	var errs []error
	for _, u := range c.cfg.Updates {
		o, err := c.compileOut(&u.Outgoing, env, ps, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Upstream matches both filters with re.fullmatch.
		c.updates = append(c.updates, &updateRule{outRule: o,
			device: pyre.MustCompile(u.DeviceFilter, pyre.FullMatch), attr: pyre.MustCompile(u.AttrFilter, pyre.FullMatch)})
	}
	for _, r := range c.cfg.RPC {
		o, err := c.compileOut(&r.Outgoing, env, ps, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.rpcs = append(c.rpcs, &rpcRule{outRule: o,
			device: pyre.MustCompile(r.DeviceFilter, pyre.FullMatch), method: pyre.MustCompile(r.MethodFilter, pyre.FullMatch)})
	}
	return errors.Join(errs...)
}

// newClient is the HTTP client of one entry: its TLS verification, client
// certificate (read when first needed, so a missing file fails that
// command, not the connector) and redirect policy.
func newClient(g *Outgoing) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: !g.SSLVerify} //nolint:gosec // the file asks for it (SSLVerify false)
	if g.Security.Type == SecurityCert {
		cert, key := expandHome(g.Security.Cert), expandHome(g.Security.Key)
		if key == "" {
			key = cert // upstream accepts one PEM file holding both
		}
		tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("client certificate %q: %w", cert, err)
			}
			return &c, nil
		}
	}
	cl := &http.Client{Transport: tr}
	if !g.AllowRedirects {
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return cl
}

// reply is what a device answered.
type reply struct {
	status int
	reason string
	body   []byte
}

// send makes the entry's request with env filled in (or the requests its
// script returns for cmd); for a script it also returns its last "reply"
// (nil when it gave none).
func (c *Connector) send(ctx context.Context, o *outRule, env map[string]any, cmd script.Command) (reply, json.RawMessage, error) {
	if o.script == nil {
		rep, err := c.sendTemplate(ctx, o, env)
		return rep, nil, err
	}
	outs, err := o.script.HTTPRequests(cmd, o.g.Method, o.g.Headers)
	if err != nil {
		return reply{}, nil, fmt.Errorf("%s: %w", o.g.Path, err)
	}
	var rep reply
	for _, out := range outs {
		req := *o
		g := *o.g
		g.Method, g.Headers = out.Method, out.Headers
		req.g = &g
		if rep, err = c.try(ctx, &req, withScheme(out.URL), string(out.Payload)); err != nil {
			return reply{}, nil, err
		}
		if rep.status >= 300 {
			break // the device refused: the reply says so, as without a script
		}
	}
	return rep, script.Reply(outs, nil), nil
}

func withScheme(u string) string {
	if !strings.HasPrefix(strings.ToLower(u), "http") {
		return "http://" + u
	}
	return u
}

// sendTemplate makes the entry's request with env filled in.
func (c *Connector) sendTemplate(ctx context.Context, o *outRule, env map[string]any) (reply, error) {
	u, err := o.url.render(env, escapeURL)
	if err != nil {
		return reply{}, fmt.Errorf("%s: requestUrlExpression: %w", o.g.Path, err)
	}
	body, err := o.body.render(env, nil)
	if err != nil {
		return reply{}, fmt.Errorf("%s: valueExpression: %w", o.g.Path, err)
	}
	return c.try(ctx, o, withScheme(u), body)
}

// try makes one request, trying up to the entry's tries times when the
// device cannot be reached (an answer, any status, ends it).
func (c *Connector) try(ctx context.Context, o *outRule, u, body string) (reply, error) {
	var last error
	for try := 0; try < max(o.g.Tries, 1); try++ {
		rctx, cancel := context.WithTimeout(ctx, o.g.Timeout)
		rep, err := c.do(rctx, o, u, body)
		cancel()
		if err == nil {
			return rep, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return reply{}, last
}

func (c *Connector) do(ctx context.Context, o *outRule, u, body string) (reply, error) {
	var rd io.Reader
	if body != "" && o.g.Method != http.MethodGet && o.g.Method != http.MethodHead {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, o.g.Method, u, rd)
	if err != nil {
		return reply{}, fmt.Errorf("request to %q: %w", u, err)
	}
	for k, v := range o.g.Headers {
		req.Header.Set(k, v)
	}
	if o.g.Security.Type == SecurityBasic {
		req.SetBasicAuth(o.g.Security.Username, o.g.Security.Password)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return reply{}, fmt.Errorf("%s %s: no answer within %s: %w", o.g.Method, u, o.g.Timeout, protocols.ErrTimeout)
		}
		return reply{}, fmt.Errorf("%s %s: %w: %w", o.g.Method, u, err, protocols.ErrIO)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: reading the answer: %w: %w", o.g.Method, u, err, protocols.ErrIO)
	}
	return reply{status: resp.StatusCode, reason: http.StatusText(resp.StatusCode), body: b}, nil
}

// Commander implements protocols.DeviceCommands. Every device gets one:
// the reserved get/set methods and responseAttribute answers work for any.
func (c *Connector) Commander(device, profile string) protocols.Commander {
	cm := &commander{c: c, device: device}
	for _, u := range c.updates {
		if ok, _ := u.device.MatchString(device); ok {
			cm.updates = append(cm.updates, u)
		}
	}
	for _, r := range c.rpcs {
		if ok, _ := r.device.MatchString(device); ok {
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

// SharedAttributeKeys implements protocols.Commander: attributeFilter is a
// regex, so there is no list of keys to request at connect time.
func (cm *commander) SharedAttributeKeys() []string { return nil }

// UpdateAttributes sends each value to every attributeUpdates entry whose
// attributeFilter takes its key. A responseAttribute value also answers
// the device's oldest request waiting for it.
func (cm *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	answered := map[string]bool{}
	for k, raw := range values {
		if cm.c.respKeys[k] && cm.c.deliverResponse(cm.device, textOf(raw)) {
			answered[k] = true
		}
	}
	ignored, err := protocols.UpdateEach(values, cm.updates,
		func(u *updateRule, k string) bool {
			ok, _ := u.attr.MatchString(k)
			return ok
		},
		func(u *updateRule, k string, raw json.RawMessage) error {
			env := map[string]any{"deviceName": cm.device, "attributeKey": k, "attributeValue": rawValue(raw)}
			cmd := script.Command{Kind: script.KindAttributes, Device: cm.device, Values: map[string]json.RawMessage{k: raw}}
			rep, _, err := cm.c.send(ctx, &u.outRule, env, cmd)
			if err == nil && rep.status >= 300 {
				err = fmt.Errorf("device answered %d %s", rep.status, rep.reason)
			}
			if err != nil {
				return fmt.Errorf("rest device %q: attribute update %q: %w", cm.device, k, err)
			}
			return nil
		})
	out := ignored[:0]
	for _, k := range ignored {
		if !answered[k] {
			out = append(out, k)
		}
	}
	return out, err
}

// RPC implements protocols.Commander: the first serverSideRpc entry whose
// methodFilter takes the method sends the request, and the reply carries
// the device's answer as {"result": ...}, as upstream's does.
func (cm *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	var params any
	if len(req.Params) > 0 {
		p, err := decodeDoc(req.Params)
		if err != nil {
			return nil, fmt.Errorf("rest device %q: rpc %q: params are not JSON: %v", cm.device, req.Method, err)
		}
		params = p
	}
	if raw := bytes.TrimSpace(req.Params); len(raw) > 0 && raw[0] == '[' {
		// decodeDoc takes a list's first element for requests; params stay whole.
		var l any
		_ = json.Unmarshal(raw, &l)
		params = l
	}
	env := map[string]any{
		"deviceName": cm.device, "methodName": req.Method, "method": req.Method,
		"requestId": json.Number(strconv.FormatInt(req.ID, 10)), "id": json.Number(strconv.FormatInt(req.ID, 10)),
		"params": params,
	}
	var o *outRule
	for _, r := range cm.rpcs {
		ok, err := r.method.MatchString(req.Method)
		if err != nil {
			return nil, fmt.Errorf("rest device %q: rpc %q: serverSideRpc methodFilter: %w", cm.device, req.Method, err)
		}
		if ok {
			o = &r.outRule
			break
		}
	}
	if o == nil && (req.Method == "get" || req.Method == "set") {
		r, err := reservedRule(req.Params)
		if err != nil {
			return nil, fmt.Errorf("rest device %q: rpc %q: %w", cm.device, req.Method, err)
		}
		o = r
	}
	if o == nil {
		return nil, fmt.Errorf("rest device %q: %w %q (no serverSideRpc methodFilter takes it)", cm.device, protocols.ErrUnknownMethod, req.Method)
	}
	rep, scriptReply, err := cm.c.send(ctx, o, env, script.RPCCommand(req))
	if err != nil {
		return nil, fmt.Errorf("rest device %q: rpc %q: %w", cm.device, req.Method, err)
	}
	if scriptReply != nil && rep.status < 300 {
		return protocols.RPCResult(scriptReply), nil
	}
	return rpcResult(rep), nil
}

// reservedRule builds the request of a reserved get/set RPC from its
// params, "requestUrlExpression=http://…;HTTPMethod=POST;value=…;timeout=5;".
func reservedRule(params json.RawMessage) (*outRule, error) {
	s, ok := protocols.JSONString(params)
	if !ok {
		return nil, errors.New(`params must be a string like "requestUrlExpression=http://host/path;HTTPMethod=GET;value=...;"`)
	}
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if k = strings.TrimSpace(k); ok && k != "" && v != "" {
			kv[k] = v
		}
	}
	g := &Outgoing{Path: "rpc params", Method: strings.ToUpper(kv["HTTPMethod"]), URLExpr: kv["requestUrlExpression"],
		ValueExpr: kv["value"], Timeout: defaultReqTimeout, Tries: 1, SSLVerify: true}
	if g.URLExpr == "" {
		g.URLExpr = kv["url"]
	}
	if g.URLExpr == "" {
		return nil, errors.New("params name no requestUrlExpression")
	}
	if g.Method == "" {
		g.Method = http.MethodGet
	}
	if t, err := strconv.ParseFloat(kv["timeout"], 64); err == nil && t > 0 {
		g.Timeout = time.Duration(t * float64(time.Second))
	}
	o := &outRule{g: g, client: newClient(g)}
	var err error
	if o.url, err = compileTemplate(g.URLExpr); err != nil {
		return nil, err
	}
	if o.body, err = compileTemplate(g.ValueExpr); err != nil {
		return nil, err
	}
	return o, nil
}

// rpcResult is upstream's reply: {"result": answer} where the answer is
// the device's JSON (or its text), or {"error": reason, "code": status}
// when it answered with an error status.
func rpcResult(rep reply) protocols.RPCResult {
	b := []byte(`{"result":`)
	switch {
	case rep.status >= 400:
		b = append(b, `{"error":`...)
		b = protocols.AppendJSONString(b, rep.reason)
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(rep.status), 10)
		b = append(b, '}')
	case json.Valid(rep.body):
		b = append(b, bytes.TrimSpace(rep.body)...)
	default:
		b = protocols.AppendJSONString(b, string(rep.body))
	}
	return protocols.RPCResult(append(b, '}'))
}

// rawValue decodes a platform value for templates: strings render without
// quotes, everything else as its JSON text.
func rawValue(raw json.RawMessage) any {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return string(raw)
	}
	return v
}

// textOf is a value as upstream's str() shows it in a response body.
func textOf(raw json.RawMessage) string {
	if s, ok := protocols.JSONString(raw); ok {
		return s
	}
	return string(bytes.TrimSpace(raw))
}

var _ protocols.Commander = (*commander)(nil)

// ConnectorRPC runs "rest_get" and "rest_set" on the gateway device: the
// params name the device first, then the reserved request,
// "device=SN-1 requestUrlExpression=http://…;HTTPMethod=GET;".
func (c *Connector) ConnectorRPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	name := strings.TrimPrefix(req.Method, "rest_")
	if name != "get" && name != "set" {
		return nil, fmt.Errorf("%w %q for rest connector %q (want rest_get or rest_set)", protocols.ErrUnknownMethod, req.Method, c.name)
	}
	s, ok := protocols.JSONString(req.Params)
	if !ok {
		return nil, fmt.Errorf("rest connector %q: rpc %q: params must be a string like \"device=SN-1 requestUrlExpression=http://host/path;HTTPMethod=GET;\"", c.name, req.Method)
	}
	first, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	k, device, _ := strings.Cut(first, "=")
	if k != "device" || device == "" {
		return nil, fmt.Errorf("rest connector %q: rpc %q: params do not start with device=<name>", c.name, req.Method)
	}
	raw, _ := json.Marshal(rest)
	return c.Commander(device, "").RPC(ctx, protocols.RPCRequest{ID: req.ID, Device: device, Method: name, Params: raw})
}

var _ protocols.ConnectorRPC = (*Connector)(nil)
