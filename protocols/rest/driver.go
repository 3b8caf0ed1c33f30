package rest

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("rest", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("rest", Sections())
}

// Defaults of the serving machinery; tests shorten them.
const (
	// defaultPushWait bounds how long a request waits for the runtime to
	// take its data; past it the device is told to come back (503).
	defaultPushWait = 5 * time.Second
	// retryAfter is the Retry-After of a 503, in seconds.
	retryAfter        = "1"
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	minBackoff        = time.Second
	maxBackoff        = 30 * time.Second
)

// Connector is a configured rest connector: an HTTP server devices push
// to, and an HTTP client for the platform's writes to them.
type Connector struct {
	name string
	cfg  *Config
	log  zerolog.Logger
	file string

	endpoints []*endpoint
	attrReqs  []*attrEndpoint
	updates   []*updateRule
	rpcs      []*rpcRule

	slots    chan struct{}
	pushWait time.Duration

	addr atomic.Pointer[string]

	// busy counts 503 answers; busyLogged rate-limits the line about them.
	busy, busyLogged atomic.Int64

	respMu   sync.Mutex
	respWait map[string][]chan string // device -> responseExpected requests, oldest first
	respKeys map[string]bool          // responseAttribute names
}

type endpoint struct {
	e         *Endpoint
	conv      jsonconv.Converter
	report    protocols.ReportStrategy
	keyReport map[string]protocols.ReportStrategy
}

type attrEndpoint struct {
	a            *AttrRequest
	device, keys *template
}

// NewConnector parses and compiles the connector file. It does no I/O:
// Run listens.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "rest", func(o *spec.Obj) (*Config, string) {
		c := Parse(o)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{
		name: name, cfg: parsed, file: cfg.File,
		log:      cfg.Logger.With().Str("connector", name).Logger(),
		slots:    make(chan struct{}, parsed.MaxInFlight),
		pushWait: defaultPushWait,
		respWait: map[string][]chan string{},
		respKeys: map[string]bool{},
	}
	connectorReport := parsed.Report.Or(cfg.Report)
	env := jsonconv.Env{Print: func(file, msg string) { c.log.Debug().Str("script", file).Msg(msg) }}
	if cfg.File != "" {
		env.Dir = filepath.Dir(cfg.File)
	}
	for _, e := range parsed.Mapping {
		conv, err := jsonconv.NewConverterEnv(e.Mapping, env)
		if jsonconv.IsScriptError(err) {
			cfg.Config.Problems().Errorf(cfg.Config.File(), e.Path+".converter.script", "%v", err)
			continue
		}
		if errors.Is(err, jsonconv.ErrNoConverter) {
			// Upstream serves the other endpoints when one extension is
			// missing; so do we, with one line naming it.
			cfg.Config.Problems().Skipf(cfg.Config.File(), e.Path+".converter.extension", "%v; endpoint %q is not served", err, e.Endpoint)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rest connector %q: %s: %w", name, e.Path, err)
		}
		def, perKey := e.Mapping.ReportStrategies()
		c.endpoints = append(c.endpoints, &endpoint{e: e, conv: conv, report: def.Or(connectorReport), keyReport: perKey})
		if e.Response.Expected && e.Response.Attribute != "" {
			c.respKeys[e.Response.Attribute] = true
		}
	}
	if err := c.compileCommands(env, cfg.Config.Problems(), cfg.Config.File()); err != nil {
		return nil, fmt.Errorf("rest connector %q: %w", name, err)
	}
	if err := cfg.Config.Problems().Err(); err != nil {
		return nil, err
	}
	for _, a := range parsed.AttrRequests {
		ae := &attrEndpoint{a: a}
		var err error
		if ae.device, err = compileTemplate(a.DeviceExpr); err == nil {
			ae.keys, err = compileTemplate(a.NameExpr)
		}
		if err != nil {
			return nil, fmt.Errorf("rest connector %q: %s: %w", name, a.Path, err)
		}
		c.attrReqs = append(c.attrReqs, ae)
	}
	return c, nil
}

// Config is the parsed file.
func (c *Connector) Config() *Config { return c.cfg }

// Addr is the address the server listens on, "" while it does not.
func (c *Connector) Addr() string {
	if p := c.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Devices implements protocols.Connector: devices appear as they push.
func (c *Connector) Devices() []protocols.Device { return nil }

// Close implements protocols.Connector; Run owns the server.
func (c *Connector) Close() error { return nil }

// Run implements protocols.Source: it serves until ctx ends, listening
// again with capped backoff when the port cannot be had.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	h, err := c.Handler(sink)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		// Requests see ctx end, so a handler waiting for a commit answers
		// 503 at shutdown instead of holding it up.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    nil,
	}
	backoff := minBackoff
	for {
		ln, err := c.listen()
		if err == nil {
			err = c.serve(ctx, srv, ln, sink)
			if ctx.Err() != nil {
				return nil
			}
			backoff = minBackoff
		}
		sink.Link(false, err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Connector) serve(ctx context.Context, srv *http.Server, ln net.Listener, sink protocols.Sink) error {
	a := ln.Addr().String()
	c.addr.Store(&a)
	defer c.addr.Store(nil)
	scheme := "http"
	if c.cfg.Server.SSL {
		scheme = "https"
	}
	c.log.Info().Str("listen", scheme+"://"+a).Int("endpoints", len(c.endpoints)+len(c.attrReqs)).Msg("rest server listening")
	sink.Link(true, nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("rest server on %s: %w", a, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-errc
		return nil
	}
}

// listen binds the configured address. A wildcard host is honoured only
// because the file asks for it, and said out loud: device pushes are
// unauthenticated unless an endpoint sets basic security.
func (c *Connector) listen() (net.Listener, error) {
	s := &c.cfg.Server
	host := s.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "*" {
		if host == "*" {
			host = ""
		}
		c.log.Warn().Str("host", s.Host).Msg("rest server listens on every interface, as the connector file says")
	}
	addr := net.JoinHostPort(host, strconv.Itoa(s.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rest server: listen on %s: %w", addr, err)
	}
	if !s.SSL {
		return ln, nil
	}
	cert, err := c.serverCert()
	if err != nil {
		ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// serverCert loads the configured pair or, as upstream does when the file
// names none, a self-signed one generated next to the connector file.
func (c *Connector) serverCert() (tls.Certificate, error) {
	s := &c.cfg.Server
	certFile, keyFile := expandHome(s.CertFile), expandHome(s.KeyFile)
	if certFile == "" {
		dir := os.TempDir()
		if c.file != "" {
			dir = filepath.Dir(c.file)
		}
		certFile, keyFile = filepath.Join(dir, "domain_srv.crt"), filepath.Join(dir, "domain_srv.key")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := generateCert(certFile, keyFile, s.Host); err != nil {
				return tls.Certificate{}, fmt.Errorf("rest server: generate a certificate: %w", err)
			}
			c.log.Info().Str("cert", certFile).Msg("generated a self-signed server certificate")
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, fmt.Errorf("rest server: load certificate %q and key %q: %w", certFile, keyFile, err)
	}
	return cert, nil
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return p
}

// route is one path: the method it serves and what serves it.
type route struct {
	pattern string
	methods map[string]func(http.ResponseWriter, *http.Request)
	allow   string
}

// Handler builds the server's handler; it is what Run serves, exported
// for embedding and benchmarks.
func (c *Connector) Handler(sink protocols.Sink) (http.Handler, error) {
	routes := map[string]*route{}
	var order []string
	add := func(path string, ms []string, sec Security, h func(http.ResponseWriter, *http.Request)) {
		r := routes[path]
		if r == nil {
			r = &route{pattern: path, methods: map[string]func(http.ResponseWriter, *http.Request){}}
			routes[path] = r
			order = append(order, path)
		}
		h = c.guard(sec, h)
		for _, m := range ms {
			r.methods[m] = h
			if m == http.MethodGet && r.methods[http.MethodHead] == nil {
				// net/http answers HEAD with GET's headers; upstream's
				// router does the same.
				r.methods[http.MethodHead] = h
			}
		}
	}
	for _, ep := range c.endpoints {
		add(ep.e.Endpoint, ep.e.Methods, ep.e.Security, func(w http.ResponseWriter, r *http.Request) { c.servePush(w, r, ep, sink) })
	}
	for _, ae := range c.attrReqs {
		add(ae.a.Endpoint, ae.a.Methods, ae.a.Security, func(w http.ResponseWriter, r *http.Request) { c.serveAttrRequest(w, r, ae, sink) })
	}
	mux := http.NewServeMux()
	for _, p := range order {
		r := routes[p]
		var ms []string
		for m := range r.methods {
			ms = append(ms, m)
		}
		r.allow = strings.Join(sortStrings(ms), ", ")
		if err := handle(mux, p, r); err != nil {
			c.log.Error().Err(err).Str("endpoint", p).Msg("endpoint is not served")
		}
	}
	return mux, nil
}

// handle registers a route; ServeMux panics on a pattern it cannot take
// (upstream's aiohttp syntax differs in corners), which becomes an error.
func handle(mux *http.ServeMux, path string, r *route) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	pattern := path
	if strings.HasSuffix(pattern, "/") {
		// A trailing slash is a subtree to ServeMux; upstream's router
		// matches the path exactly.
		pattern += "{$}"
	}
	mux.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
		h := r.methods[req.Method]
		if h == nil {
			w.Header().Set("Allow", r.allow)
			http.Error(w, fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", req.Method, path, r.allow), http.StatusMethodNotAllowed)
			return
		}
		h(w, req)
	})
	return nil
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// guard applies an endpoint's security before its handler.
func (c *Connector) guard(sec Security, h func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request) {
	if sec.Type != SecurityBasic {
		return h
	}
	user, pass := []byte(sec.Username), []byte(sec.Password)
	return func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), user)&subtle.ConstantTimeCompare([]byte(p), pass) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="gateway"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// overloaded answers 503 with Retry-After: the device keeps its data and
// sends it again; nothing is dropped here. It says so at most every 10 s.
func (c *Connector) overloaded(w http.ResponseWriter, why string) {
	n := c.busy.Add(1)
	now := time.Now().UnixNano()
	if last := c.busyLogged.Load(); now-last >= int64(10*time.Second) && c.busyLogged.CompareAndSwap(last, now) {
		c.log.Warn().Int64("total", n).Str("why", why).Msg("answering 503: devices are asked to send again")
	}
	w.Header().Set("Retry-After", retryAfter)
	http.Error(w, why, http.StatusServiceUnavailable)
}

// Busy is how many requests were answered 503 so far.
func (c *Connector) Busy() int64 { return c.busy.Load() }

// readInput reads a request's body within the size limit. It has answered
// the request when it returns false.
func (c *Connector) readInput(w http.ResponseWriter, r *http.Request, path string) (Input, bool) {
	in := Input{ContentType: r.Header.Get("Content-Type"), Query: r.URL.Query()}
	for _, name := range pathVars(path) {
		if in.PathValues == nil {
			in.PathValues = map[string]string{}
		}
		in.PathValues[name] = r.PathValue(name)
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return in, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.cfg.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			http.Error(w, fmt.Sprintf("body is larger than %d bytes", mb.Limit), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		}
		return in, false
	}
	in.Body = body
	return in, true
}

// pathVars are the {name} parts of a pattern.
func pathVars(p string) []string {
	var out []string
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(p[i:], '}')
		if j < 0 {
			return out
		}
		name := strings.TrimSuffix(p[i+1:i+j], "...")
		if name != "" && name != "$" {
			out = append(out, name)
		}
		p = p[i+j+1:]
	}
}

// fail answers an error, with the endpoint's unsuccessfulResponse as the
// body when it has one.
func fail(w http.ResponseWriter, resp *Response, status int, msg string) {
	if resp != nil && resp.Failure != "" {
		msg = resp.Failure
	}
	http.Error(w, msg, status)
}

// servePush converts a device's push and answers 200 only once every value
// it yields is committed to the journal.
func (c *Connector) servePush(w http.ResponseWriter, r *http.Request, ep *endpoint, sink protocols.Sink) {
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	default:
		c.overloaded(w, "too many requests in progress")
		return
	}
	resp := &ep.e.Response
	in, ok := c.readInput(w, r, ep.e.Endpoint)
	if !ok {
		return
	}
	payload, err := in.Payload()
	if err != nil {
		sink.Malformed(ep.e.Endpoint, err)
		fail(w, resp, http.StatusBadRequest, err.Error())
		return
	}
	if payload == nil {
		fail(w, resp, http.StatusUnsupportedMediaType, "no data: the request has neither a body nor query parameters")
		return
	}
	out, cerr := convert(ep.conv, ep.e.Endpoint, payload, time.Now())
	var pushes []protocols.Push
	for i := range out {
		o := &out[i]
		if o.Device == "" || len(o.Telemetry) == 0 && len(o.Attributes) == 0 {
			continue
		}
		if resp.Expected {
			o.Attributes = append(o.Attributes, protocols.Datapoint{Key: "responseExpected", Value: protocols.Bool(true)})
		}
		pushes = append(pushes, protocols.Push{Device: o.Device, Profile: o.Profile, Ts: time.UnixMilli(o.Ts),
			Reading: protocols.Reading{Telemetry: o.Telemetry, Attributes: o.Attributes},
			Report:  ep.report, KeyReport: ep.keyReport})
	}
	if cerr != nil {
		sink.Malformed(ep.e.Endpoint, cerr)
		if len(pushes) == 0 {
			fail(w, resp, http.StatusBadRequest, cerr.Error())
			return
		}
	}
	var device string
	if len(pushes) > 0 {
		device = pushes[0].Device
	}
	var waitResp chan string
	if resp.Expected && resp.Attribute != "" && device != "" {
		// Registered before the data goes out, so a platform that answers
		// at once is not missed.
		waitResp = c.expectResponse(device)
		defer c.dropResponse(device, waitResp)
	}
	if !c.commit(w, r, pushes, sink) {
		return
	}
	if resp.Expected {
		t := time.NewTimer(resp.Timeout)
		defer t.Stop()
		select {
		case v := <-waitResp:
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, v)
		case <-t.C:
			fail(w, resp, http.StatusRequestTimeout, "no response from the platform within "+resp.Timeout.String())
		case <-r.Context().Done():
			c.overloaded(w, "the gateway is stopping")
		}
		return
	}
	w.WriteHeader(http.StatusOK)
	if resp.Success != "" {
		io.WriteString(w, resp.Success)
	}
}

// commit pushes and waits for every Done. It has answered the request
// when it returns false.
func (c *Connector) commit(w http.ResponseWriter, r *http.Request, pushes []protocols.Push, sink protocols.Sink) bool {
	if len(pushes) == 0 {
		return true
	}
	ctx := r.Context()
	done := make(chan error, len(pushes))
	pctx, cancel := context.WithTimeout(ctx, c.pushWait)
	defer cancel()
	for i := range pushes {
		pushes[i].Done = func(err error) { done <- err }
		if err := sink.Push(pctx, pushes[i]); err != nil {
			// Earlier pushes of this request may be committed; the device
			// re-sends the whole request and the platform sees those values
			// twice, which at-least-once allows.
			c.overloaded(w, "the gateway cannot take the data now: "+err.Error())
			return false
		}
	}
	for range pushes {
		select {
		case err := <-done:
			if err != nil {
				c.overloaded(w, "the data was not stored: "+err.Error())
				return false
			}
		case <-ctx.Done():
			c.overloaded(w, "the gateway is stopping")
			return false
		}
	}
	return true
}

func (c *Connector) expectResponse(device string) chan string {
	ch := make(chan string, 1)
	c.respMu.Lock()
	c.respWait[device] = append(c.respWait[device], ch)
	c.respMu.Unlock()
	return ch
}

func (c *Connector) dropResponse(device string, ch chan string) {
	c.respMu.Lock()
	defer c.respMu.Unlock()
	l := c.respWait[device]
	for i, x := range l {
		if x == ch {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(c.respWait, device)
	} else {
		c.respWait[device] = l
	}
}

// deliverResponse hands a responseAttribute value to the device's oldest
// waiting request; it reports whether one took it.
func (c *Connector) deliverResponse(device, value string) bool {
	c.respMu.Lock()
	defer c.respMu.Unlock()
	l := c.respWait[device]
	if len(l) == 0 {
		return false
	}
	l[0] <- value
	if len(l) == 1 {
		delete(c.respWait, device)
	} else {
		c.respWait[device] = l[1:]
	}
	return true
}

// serveAttrRequest answers with the platform's values of the attributes
// the request names.
func (c *Connector) serveAttrRequest(w http.ResponseWriter, r *http.Request, ae *attrEndpoint, sink protocols.Sink) {
	in, ok := c.readInput(w, r, ae.a.Endpoint)
	if !ok {
		return
	}
	payload, err := in.Payload()
	if err != nil {
		sink.Malformed(ae.a.Endpoint, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if payload == nil {
		http.Error(w, "no data: the request has neither a body nor query parameters", http.StatusUnsupportedMediaType)
		return
	}
	doc, err := decodeDoc(payload)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	device, err := ae.device.render(doc, nil)
	if err == nil && device == "" {
		err = errors.New("deviceNameExpression gives an empty name")
	}
	if err != nil {
		err = badf("device name: %v", err)
		sink.Malformed(ae.a.Endpoint, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	keys := ae.keys.refs(doc)
	if len(keys) == 0 {
		err := badf("attributeNameExpression %q finds no attribute name in the request", ae.keys.src)
		sink.Malformed(ae.a.Endpoint, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ae.a.Timeout)
	defer cancel()
	vals, err := sink.RequestAttributes(ctx, device, ae.a.Client, keys)
	if err != nil {
		if ctx.Err() != nil && r.Context().Err() == nil {
			http.Error(w, fmt.Sprintf("the platform did not answer within %s", ae.a.Timeout), http.StatusRequestTimeout)
			return
		}
		c.overloaded(w, "attribute request failed: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(attrAnswer(device, keys, vals))
}

// attrAnswer is the platform's attribute response as upstream relays it:
// one key as "value", several as "values".
func attrAnswer(device string, keys []string, vals map[string]json.RawMessage) []byte {
	b := []byte(`{"device":`)
	b = protocols.AppendJSONString(b, device)
	if len(keys) == 1 {
		if v, ok := vals[keys[0]]; ok {
			b = append(b, `,"value":`...)
			b = append(b, v...)
		}
		return append(b, '}')
	}
	b = append(b, `,"values":{`...)
	first := true
	for _, k := range keys {
		v, ok := vals[k]
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = protocols.AppendJSONString(b, k)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, "}}"...)
}

func decodeDoc(payload []byte) (any, error) {
	var doc any
	d := json.NewDecoder(strings.NewReader(string(payload)))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, badf("invalid JSON: %v", err)
	}
	if l, ok := doc.([]any); ok && len(l) > 0 {
		// Upstream reads the first object of a list here.
		doc = l[0]
	}
	return doc, nil
}

var (
	_ protocols.Connector      = (*Connector)(nil)
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
)
