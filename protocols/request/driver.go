package request

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/jsonexpr"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("request", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("request", Sections())
}

// maxBody bounds what one response may hold: an endpoint that streams
// without end must not exhaust memory.
const maxBody = 16 << 20

// ErrHTTPStatus is matched by errors about a response whose status is not 2xx.
var ErrHTTPStatus = errors.New("http status")

// StatusError is an answer outside 2xx. It is an I/O failure for the
// runtime (the endpoint answered, but not with data).
type StatusError struct {
	URL    string
	Status int
	Body   string // the start of the body, for the log
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Is makes a StatusError match ErrHTTPStatus and protocols.ErrIO.
func (e *StatusError) Is(target error) bool {
	return target == ErrHTTPStatus || target == protocols.ErrIO
}

// Connector is a configured request connector: a push source that polls
// each mapping's endpoint on its own schedule.
type Connector struct {
	name string
	cfg  *Config
	log  zerolog.Logger

	follow, noFollow *http.Client

	pollers []*poller
	updates []*updateRule
	rpcs    []*rpcRule

	linkMu  sync.Mutex
	failing map[*poller]bool
	linkUp  bool
	sink    protocols.Sink
}

// poller is one mapping: its own goroutine, schedule and timeout, so a
// slow endpoint delays nobody else.
type poller struct {
	m         *Mapping
	conv      Converter
	json      *JSONConverter // conv when it is the json converter
	unpack    *jsonexpr.Expr
	subs      []subRequest
	report    protocols.ReportStrategy
	keyReport map[string]protocols.ReportStrategy
	failed    bool // last poll failed; only its goroutine touches it
}

type subRequest struct {
	key  string
	url  *jsonexpr.Expr
	proc *proc
}

// NewConnector parses and compiles the connector file. It does no I/O
// beyond reading the CA file SSLVerify names: Run polls.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "request", func(o *spec.Obj) (*Config, string) {
		c := Parse(o)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{
		name: name, cfg: parsed,
		log:     cfg.Logger.With().Str("connector", name).Logger(),
		failing: map[*poller]bool{},
		linkUp:  true,
	}
	tr, err := transport(parsed)
	if err != nil {
		return nil, fmt.Errorf("request connector %q: %w", name, err)
	}
	c.follow = &http.Client{Transport: tr}
	c.noFollow = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		// allowRedirects false: the redirect itself is the answer.
		return http.ErrUseLastResponse
	}}
	connectorReport := parsed.Report.Or(cfg.Report)
	env := jsonconv.Env{Print: func(file, msg string) { c.log.Debug().Str("script", file).Msg(msg) }}
	if cfg.File != "" {
		env.Dir = filepath.Dir(cfg.File)
	}
	for _, m := range parsed.Mapping {
		conv, err := NewConverterEnv(m, env)
		if jsonconv.IsScriptError(err) {
			cfg.Config.Problems().Errorf(cfg.Config.File(), m.Path+".converter.script", "%v", err)
			continue
		}
		if errors.Is(err, ErrNoConverter) {
			// Upstream loads the rest of the file when one mapping's
			// extension is missing; so do we, with one line naming it.
			cfg.Config.Problems().Skipf(cfg.Config.File(), m.Path+".converter.extension", "%v; mapping %q is not polled", err, m.URL)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("request connector %q: %s: %w", name, m.Path, err)
		}
		p := &poller{m: m, conv: conv}
		p.json, _ = conv.(*JSONConverter)
		if m.DataUnpack != "" {
			p.unpack = jsonexpr.MustCompile(m.DataUnpack)
		}
		for _, s := range m.SubRequests {
			sr := subRequest{key: s.Key, url: jsonexpr.MustCompile(s.URL)}
			if s.Proc != "" {
				sr.proc, _ = compileProc(s.Proc) // checked by Parse
			}
			p.subs = append(p.subs, sr)
		}
		def, perKey := m.ReportStrategies()
		p.report, p.keyReport = def.Or(connectorReport), perKey
		c.pollers = append(c.pollers, p)
	}
	if err := c.compileDownlinks(env, cfg.Config.Problems(), cfg.Config.File()); err != nil {
		return nil, fmt.Errorf("request connector %q: %w", name, err)
	}
	if err := cfg.Config.Problems().Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func transport(cfg *Config) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if !cfg.SSLVerify {
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // the file asked for it ("SSLVerify": false)
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("SSLVerify CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("SSLVerify CA file %q holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr.TLSClientConfig = tlsCfg
	return tr, nil
}

// Config is the parsed file.
func (c *Connector) Config() *Config { return c.cfg }

// Devices implements protocols.Connector: devices appear as responses name them.
func (c *Connector) Devices() []protocols.Device { return nil }

// Close implements protocols.Connector.
func (c *Connector) Close() error {
	c.follow.CloseIdleConnections()
	return nil
}

// Run implements protocols.Source: every mapping polls on its own
// goroutine until ctx ends.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	c.linkMu.Lock()
	c.sink = sink
	c.linkMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range c.pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, sink, p)
		}()
	}
	wg.Wait()
	c.follow.CloseIdleConnections()
	return nil
}

// loop polls at start and then every scanPeriod measured from the start
// of the previous poll, as upstream does; a poll that overruns its period
// is followed at once by the next, never by a burst of missed ones.
func (c *Connector) loop(ctx context.Context, sink protocols.Sink, p *poller) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		c.poll(ctx, sink, p)
		t.Reset(time.Until(start.Add(p.m.ScanPeriod)))
	}
}

// poll requests the endpoint once and pushes what its answer converts to.
func (c *Connector) poll(ctx context.Context, sink protocols.Sink, p *poller) {
	now := time.Now()
	body, err := c.fetch(ctx, p.m.URL, p.m.HTTP, p.m.Content)
	if ctx.Err() != nil {
		return
	}
	c.state(p, err)
	if err != nil {
		return
	}
	var out []Converted
	if p.json == nil {
		out, err = p.conv.Convert(body, now)
	} else {
		out, err = c.convertJSON(ctx, p, body, now)
	}
	if err != nil {
		// Partial results below are still pushed.
		sink.Malformed(p.m.URL, err)
	}
	for i := range out {
		r := &out[i]
		if r.Device == "" || (len(r.Telemetry) == 0 && len(r.Attributes) == 0) {
			continue
		}
		push := protocols.Push{
			Device: r.Device, Profile: r.Profile, Ts: time.UnixMilli(r.Ts),
			Reading: protocols.Reading{Telemetry: r.Telemetry, Attributes: r.Attributes},
			Report:  p.report, KeyReport: p.keyReport,
		}
		if err := sink.Push(ctx, push); err != nil {
			if ctx.Err() == nil {
				sink.Dropped(p.m.URL, len(r.Telemetry)+len(r.Attributes), err)
			}
			return
		}
	}
}

// convertJSON decodes, unpacks and completes (subRequests) a response
// before the json converter reads it.
func (c *Connector) convertJSON(ctx context.Context, p *poller, body []byte, now time.Time) ([]Converted, error) {
	v, err := DecodeJSON(body)
	if err != nil {
		return nil, p.json.malformed("response is not JSON", err)
	}
	if p.unpack != nil {
		if v, err = p.unpack.Eval(v); err != nil {
			return nil, p.json.malformed("dataUnpackExpression", err)
		}
	}
	var errs []error
	if len(p.subs) > 0 {
		items, isList := v.([]any)
		if !isList {
			items = []any{v}
		}
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				errs = append(errs, c.subRequests(ctx, p, m))
			}
		}
	}
	out, err := p.json.ConvertValue(v, now)
	return out, errors.Join(append(errs, err)...)
}

// subRequests fetches each subRequest for one response item and merges
// the (processed) answer into it under the subRequest's key.
func (c *Connector) subRequests(ctx context.Context, p *poller, item map[string]any) error {
	var errs []error
	for _, s := range p.subs {
		u, err := renderURL(s.url, item)
		if err != nil {
			errs = append(errs, p.json.malformed("subRequests."+s.key+".url", err))
			continue
		}
		if !strings.HasPrefix(strings.ToLower(u), "http") {
			// Relative to the main request's URL, as upstream does.
			u = c.url(p.m.URL) + ensureSlash(u)
		}
		body, err := c.fetch(ctx, u, p.m.HTTP, nil)
		if err != nil {
			errs = append(errs, p.json.malformed("subRequests."+s.key, err))
			continue
		}
		ans, err := DecodeJSON(body)
		if err != nil {
			ans = string(body)
		}
		if s.proc == nil {
			if m, ok := ans.(map[string]any); ok {
				for k, v := range m {
					item[k] = v
				}
			} else {
				item[s.key] = ans
			}
			continue
		}
		val, err := s.proc.run(ans, s.key)
		if err != nil {
			errs = append(errs, p.json.malformed("subRequests."+s.key+".processingFunction", err))
			continue
		}
		dv, _ := DecodeJSON(val.AppendJSON(nil))
		item[s.key] = dv
	}
	return errors.Join(errs...)
}

// state logs a poller's transitions (not every failure of a down endpoint)
// and reports the link down while every endpoint fails.
func (c *Connector) state(p *poller, err error) {
	switch {
	case err != nil && !p.failed:
		c.log.Warn().Err(err).Str("url", p.m.URL).Msg("poll failed; retrying every scanPeriod")
	case err != nil:
		c.log.Debug().Err(err).Str("url", p.m.URL).Msg("poll failed again")
	case p.failed:
		c.log.Info().Str("url", p.m.URL).Msg("poll succeeds again")
	}
	p.failed = err != nil
	c.linkMu.Lock()
	defer c.linkMu.Unlock()
	if err != nil {
		c.failing[p] = true
	} else {
		delete(c.failing, p)
	}
	up := len(c.failing) < len(c.pollers)
	if up != c.linkUp && c.sink != nil {
		c.linkUp = up
		if up {
			c.sink.Link(true, nil)
		} else {
			c.sink.Link(false, err)
		}
	}
}

// url joins a configured url to host, unless it is absolute.
func (c *Connector) url(u string) string {
	if strings.HasPrefix(strings.ToLower(u), "http") {
		return u
	}
	return c.cfg.Host + ensureSlash(u)
}

func ensureSlash(s string) string {
	if strings.HasPrefix(s, "/") {
		return s
	}
	return "/" + s
}

// fetch sends one request and returns the body of a 2xx answer.
func (c *Connector) fetch(ctx context.Context, rawURL string, h HTTP, content []byte) ([]byte, error) {
	_, body, err := c.do(ctx, rawURL, h, content)
	return body, err
}

// do sends one request within h.Timeout; an answer outside 2xx is a
// *StatusError (the status comes back with it).
func (c *Connector) do(ctx context.Context, rawURL string, h HTTP, body []byte) (int, []byte, error) {
	u := c.url(rawURL)
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil && h.Method != http.MethodGet && h.Method != http.MethodHead {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("request %s %s: %w", h.Method, u, err)
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	if rd != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Security.Type == SecurityBasic {
		req.SetBasicAuth(c.cfg.Security.Username, c.cfg.Security.Password)
	}
	cl := c.noFollow
	if h.AllowRedirects {
		cl = c.follow
	}
	resp, err := cl.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return 0, nil, fmt.Errorf("%s %s: no answer within %s: %w", h.Method, u, h.Timeout, protocols.ErrTimeout)
		}
		return 0, nil, fmt.Errorf("%s %s: %w: %w", h.Method, u, err, protocols.ErrIO)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: body not read within %s: %w", h.Method, u, h.Timeout, protocols.ErrTimeout)
		}
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the body: %w: %w", h.Method, u, err, protocols.ErrIO)
	}
	if len(b) > maxBody {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: body larger than %d bytes: %w", h.Method, u, maxBody, protocols.ErrIO)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		excerpt := strings.TrimSpace(string(b))
		if len(excerpt) > 200 {
			excerpt = excerpt[:200] + "..."
		}
		return resp.StatusCode, b, &StatusError{URL: u, Status: resp.StatusCode, Body: excerpt}
	}
	return resp.StatusCode, b, nil
}

var (
	_ protocols.Connector      = (*Connector)(nil)
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
	_ protocols.ConnectorRPC   = (*Connector)(nil)
)
