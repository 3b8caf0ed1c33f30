package rest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Defaults for keys upstream leaves to its code.
const (
	DefaultHost = "127.0.0.1"
	DefaultPort = 5000
	// DefaultMaxBodyBytes bounds one request body ("maxBodySize", our key):
	// device pushes are small, and an unbounded body is a memory hazard.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxInFlight bounds requests waiting for their commit
	// ("maxInFlight", our key); one more is answered 503.
	DefaultMaxInFlight = 256
	defaultReqTimeout  = 10 * time.Second
	defaultRespTimeout = 120 * time.Second
)

// Security types.
const (
	SecurityAnonymous = "anonymous"
	SecurityBasic     = "basic"
	SecurityCert      = "cert"
)

// Config is the upstream "rest" connector file.
type Config struct {
	Name         string
	Server       Server
	Mapping      []*Endpoint
	AttrRequests []*AttrRequest
	Updates      []*UpdateRule
	RPC          []*RPCRule
	Report       protocols.ReportStrategy
	MaxBodyBytes int64
	MaxInFlight  int
}

// Server is the listening side.
type Server struct {
	Host string
	Port int
	// HostSet is true when the file names the host; the connector then
	// honours a wildcard address (with a warning).
	HostSet  bool
	SSL      bool
	CertFile string
	KeyFile  string
}

// Security is an endpoint's or an outgoing request's authentication.
type Security struct {
	Type     string
	Username string
	Password string
	Cert     string // outgoing "cert" only
	Key      string
}

// Response is mapping[].response.
type Response struct {
	Expected  bool
	Timeout   time.Duration
	Success   string // body of a 200; empty means none
	Failure   string // body of an error answer; empty means a generated text
	Attribute string // responseAttribute: the shared attribute that answers a responseExpected request
}

// Endpoint is one mapping[] entry: a path devices push to.
type Endpoint struct {
	Path     string // JSON path in the file
	Endpoint string
	Methods  []string
	Security Security
	Response Response
	// Mapping is the converter in the MQTT connector's terms, whose JSON
	// converter is shared: the endpoint stands for the topic filter and
	// the "request" source for "message".
	Mapping *jsonconv.Mapping
}

// AttrRequest is requestsMapping.attributeRequests[]: an endpoint that
// answers with the platform's attribute values.
type AttrRequest struct {
	Path       string
	Endpoint   string
	Methods    []string
	Security   Security
	Client     bool
	Timeout    time.Duration
	DeviceExpr string
	NameExpr   string
}

// Outgoing is what attributeUpdates and serverSideRpc entries share: an
// HTTP request the gateway makes to a device.
type Outgoing struct {
	Path      string
	Method    string
	URLExpr   string
	ValueExpr string
	// Script, when set, is a Starlark file whose downlink(cmd) returns
	// the requests to send, in place of URLExpr and ValueExpr.
	Script         string
	Headers        map[string]string
	Security       Security
	Timeout        time.Duration
	Tries          int
	AllowRedirects bool
	SSLVerify      bool
}

// UpdateRule is requestsMapping.attributeUpdates[].
type UpdateRule struct {
	Outgoing
	DeviceFilter string
	AttrFilter   string
}

// RPCRule is requestsMapping.serverSideRpc[].
type RPCRule struct {
	Outgoing
	DeviceFilter string
	MethodFilter string
}

var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// ParseFile decodes a connector file; warnings come back separately.
func ParseFile(file string, raw []byte) (*Config, []spec.Problem, error) {
	var ps spec.Problems
	root := spec.Parse(&ps, file, raw)
	if root == nil {
		return nil, ps.NotErrors(), ps.Err()
	}
	c := Parse(root)
	return c, ps.NotErrors(), ps.Err()
}

// Parse reads a decoded connector object, recording problems in root. One
// bad mapping or request entry is skipped with its problem, not the file.
// The field tables: the defaults and ranges Parse applies and the README's
// configuration reference.
var (
	rootFields = spec.Section{Path: "", Fields: []spec.Field{
		{Key: "name", Type: spec.TypeString, Default: "REST Connector", Doc: "connector name when the main config gives none"},
		{Key: "maxBodySize", Type: spec.TypeInteger, Default: int64(DefaultMaxBodyBytes), Min: 1, Max: 1 << 30, Doc: "largest request body accepted, in bytes"},
		{Key: "maxInFlight", Type: spec.TypeInteger, Default: int64(DefaultMaxInFlight), Min: 1, Max: 1 << 20, Doc: "requests handled at once; more are answered 503"},
		{Key: "server", Type: spec.TypeObject, Doc: "the listener, see below (older files put its keys at the top level)"},
		{Key: "reportStrategy", Type: spec.TypeObject, Doc: "report strategy inherited by the devices"},
		{Key: "mapping", Type: spec.TypeList, Doc: "endpoints devices push to"},
		{Key: "requestsMapping", Type: spec.TypeObject, Doc: "attributeRequests, attributeUpdates, serverSideRpc"},
	}}
	serverFields = spec.Section{Path: "server", Doc: "the HTTP(S) listener", Fields: []spec.Field{
		{Key: "host", Type: spec.TypeString, Default: "", Doc: "listen address; empty for " + DefaultHost},
		{Key: "port", Type: spec.TypeInteger, Default: int64(DefaultPort), Min: 0, Max: 65535, Doc: "listen port"},
		{Key: "SSL", Type: spec.TypeBoolean, Default: false, Doc: "serve HTTPS"},
		{Key: "security", Type: spec.TypeObject, Doc: "`cert` and `key` files for HTTPS (generated when absent)"},
	}}
)

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{rootFields, serverFields} }

func Parse(root *spec.Obj) *Config {
	c := &Config{Name: rootFields.Str(root, "name")}
	root.Known("id", "type", "logLevel", "enableRemoteLogging", "configVersion", "debugMode")
	c.Report = report.Parse(root)
	c.MaxBodyBytes = rootFields.Int(root, "maxBodySize")
	c.MaxInFlight = int(rootFields.Int(root, "maxInFlight"))
	// Files before upstream 3.6 keep the server keys at the top level.
	if s := root.Obj("server"); s != nil {
		c.Server = parseServer(s)
		s.Done()
	} else {
		c.Server = parseServer(root)
	}
	ps := root.Problems()
	seen := map[string]string{}
	for _, m := range root.List("mapping") {
		mark := ps.Mark()
		e := parseEndpoint(m)
		claimRoutes(m, e.Endpoint, e.Methods, seen)
		if ps.SkipSince(mark) {
			continue
		}
		c.Mapping = append(c.Mapping, e)
	}
	reqs := root
	if r := root.Obj("requestsMapping"); r != nil {
		reqs = r
	}
	for _, a := range reqs.List("attributeRequests") {
		mark := ps.Mark()
		ar := parseAttrRequest(a)
		claimRoutes(a, ar.Endpoint, ar.Methods, seen)
		if !ps.SkipSince(mark) {
			c.AttrRequests = append(c.AttrRequests, ar)
		}
	}
	for _, u := range reqs.List("attributeUpdates") {
		mark := ps.Mark()
		r := &UpdateRule{Outgoing: parseOutgoing(u, http.MethodPost)}
		r.DeviceFilter = regexKey(u, "deviceNameFilter")
		r.AttrFilter = regexKey(u, "attributeFilter")
		u.Done()
		if !ps.SkipSince(mark) {
			c.Updates = append(c.Updates, r)
		}
	}
	for _, s := range reqs.List("serverSideRpc") {
		mark := ps.Mark()
		r := &RPCRule{Outgoing: parseOutgoing(s, http.MethodGet)}
		r.DeviceFilter = regexKey(s, "deviceNameFilter")
		r.MethodFilter = regexKey(s, "methodFilter")
		s.Known("responseTimeout")
		s.Done()
		if !ps.SkipSince(mark) {
			c.RPC = append(c.RPC, r)
		}
	}
	if reqs != root {
		reqs.Done()
	}
	root.Known("attributeRequests", "attributeUpdates", "serverSideRpc")
	root.Done()
	return c
}

func parseServer(s *spec.Obj) Server {
	sv := Server{Host: strings.TrimSpace(serverFields.Str(s, "host")), Port: int(serverFields.Int(s, "port"))}
	sv.HostSet = s.Has("host")
	if sv.Host == "" {
		sv.Host = DefaultHost
	}
	sv.SSL = serverFields.Bool(s, "SSL")
	if sec := s.Obj("security"); sec != nil {
		sv.CertFile = sec.Str("cert", "")
		sv.KeyFile = sec.Str("key", "")
		if sv.SSL && (sv.CertFile == "") != (sv.KeyFile == "") {
			sec.Errorf("", "cert and key must be set together")
		}
		sec.Done()
	}
	return sv
}

// claimRoutes reports a method and endpoint that an earlier entry already
// serves: upstream's router would refuse the second route too.
func claimRoutes(o *spec.Obj, endpoint string, ms []string, seen map[string]string) {
	if endpoint == "" {
		return
	}
	for _, m := range ms {
		k := m + " " + endpoint
		if prev, dup := seen[k]; dup {
			o.Errorf("endpoint", "%s %q is already served by %s", m, endpoint, prev)
			continue
		}
		seen[k] = o.Path()
	}
}

func parseEndpointPath(o *spec.Obj) string {
	ep := o.RequiredStr("endpoint")
	if ep != "" && !strings.HasPrefix(ep, "/") {
		o.Errorf("endpoint", "%q must start with '/'", ep)
	}
	return ep
}

func parseMethods(o *spec.Obj) []string {
	var out []string
	for _, m := range o.Strings("HTTPMethods") {
		u := strings.ToUpper(strings.TrimSpace(m))
		ok := false
		for _, a := range methods {
			ok = ok || a == u
		}
		if !ok {
			o.Errorf("HTTPMethods", "unknown HTTP method %q (want one of: %s)", m, strings.Join(methods, ", "))
			continue
		}
		out = append(out, u)
	}
	if !o.Has("HTTPMethods") {
		out = []string{http.MethodPost}
	} else if len(out) == 0 {
		o.Errorf("HTTPMethods", "names no method")
	}
	return out
}

func parseSecurity(o *spec.Obj, outgoing bool) Security {
	sec := Security{Type: SecurityAnonymous}
	s := o.Obj("security")
	if s == nil {
		return sec
	}
	allowed := []string{SecurityAnonymous, SecurityBasic}
	if outgoing {
		allowed = append(allowed, SecurityCert)
	}
	sec.Type = s.Enum("type", SecurityAnonymous, allowed...)
	switch sec.Type {
	case SecurityBasic:
		sec.Username = s.RequiredStr("username")
		sec.Password = s.Str("password", "")
	case SecurityCert:
		sec.Cert = s.RequiredStr("cert")
		sec.Key = s.Str("key", "")
	}
	s.Known("username", "password", "cert", "key")
	s.Done()
	return sec
}

// secondsRange: upstream's timeouts are float seconds; zero means none.
var secondsRange = spec.Dur{}

func parseEndpoint(o *spec.Obj) *Endpoint {
	e := &Endpoint{Path: o.Path(), Endpoint: parseEndpointPath(o), Methods: parseMethods(o), Security: parseSecurity(o, false)}
	e.Response.Timeout = defaultRespTimeout
	if r := o.Obj("response"); r != nil {
		e.Response.Expected = r.Bool("responseExpected", false)
		e.Response.Timeout = r.Duration("timeout", defaultRespTimeout, secondsRange)
		e.Response.Success = anyText(r, "successResponse")
		e.Response.Failure = anyText(r, "unsuccessfulResponse")
		e.Response.Attribute = r.Str("responseAttribute", "")
		if e.Response.Expected && e.Response.Attribute == "" {
			r.Warnf("responseAttribute", "is not set: a responseExpected request is answered 408 after its timeout")
		}
		r.Done()
	}
	m := &jsonconv.Mapping{Path: o.Path(), TopicFilter: e.Endpoint}
	if c := o.Obj("converter"); c != nil {
		m.Converter = parseConverter(c)
	} else {
		o.Errorf("converter", "is required")
	}
	e.Mapping = m
	o.Known("reportStrategy")
	if rs := report.Parse(o); rs.IsSet() && !m.Converter.Report.IsSet() {
		m.Converter.Report = rs
	}
	o.Done()
	return e
}

// anyText reads a response body that upstream renders with str(): a
// string stays as it is, anything else becomes its JSON text.
func anyText(o *spec.Obj, key string) string {
	v, ok := o.Any(key)
	if !ok || v == nil {
		return ""
	}
	if s, isStr := v.(string); isStr {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Converter types.
const (
	TypeJSON   = "json"
	TypeCustom = "custom"
	TypeScript = jsonconv.TypeScript
)

// Device name and profile sources; "request" is the pushed data.
const (
	SourceRequest  = "request"
	SourceConstant = "constant"
)

var refRe = regexp.MustCompile(`\$\{[^}]*\}`)

func sourceOf(expr string) string {
	if refRe.MatchString(expr) {
		return SourceRequest
	}
	return SourceConstant
}

func parseConverter(c *spec.Obj) jsonconv.ConverterConfig {
	cc := jsonconv.ConverterConfig{}
	cc.Type = c.Enum("type", TypeJSON, TypeJSON, TypeCustom, TypeScript)
	cc.Report = report.Parse(c)
	cc.Extension = c.Str("extension", "")
	cc.ExtensionConfig = jsonconv.ExtensionConfig(c, "extensionConfig", "extension-config")
	c.Known("extension-config", "useEval")
	jsonconv.ParseScript(c, &cc)
	if cc.Type == TypeScript {
		// The script names devices and keys itself.
		c.Known("deviceInfo", "deviceNameExpression", "deviceTypeExpression", "attributes", "timeseries")
		c.Done()
		return cc
	}
	if d := c.Obj("deviceInfo"); d != nil {
		cc.DeviceInfo = parseDeviceInfo(d)
		d.Done()
	} else if c.Has("deviceNameExpression") {
		// The pre-3.6 shape: the expressions sit in the converter and their
		// source follows from whether they hold a ${}.
		name := c.RequiredStr("deviceNameExpression")
		prof := c.Str("deviceTypeExpression", "default")
		cc.DeviceInfo = jsonconv.DeviceInfo{NameSource: toMappingSource(sourceOf(name)), Name: name,
			ProfileSource: toMappingSource(sourceOf(prof)), Profile: prof}
		checkExpr(c, "deviceNameExpression", name)
		checkExpr(c, "deviceTypeExpression", prof)
	} else if cc.Type != TypeCustom {
		c.Errorf("deviceInfo", "is required")
	}
	cc.Attributes = parseKeys(c, "attributes")
	cc.Timeseries = parseKeys(c, "timeseries")
	c.Done()
	return cc
}

func toMappingSource(s string) string {
	if s == SourceConstant {
		return jsonconv.SourceConstant
	}
	return jsonconv.SourceMessage
}

func parseDeviceInfo(d *spec.Obj) jsonconv.DeviceInfo {
	di := jsonconv.DeviceInfo{}
	di.NameSource = toMappingSource(d.Enum("deviceNameExpressionSource", SourceRequest, SourceRequest, SourceConstant))
	di.Name = d.RequiredStr("deviceNameExpression")
	di.ProfileSource = toMappingSource(d.Enum("deviceProfileExpressionSource", SourceConstant, SourceRequest, SourceConstant))
	di.Profile = d.Str("deviceProfileExpression", "default")
	if di.NameSource == jsonconv.SourceMessage {
		checkExpr(d, "deviceNameExpression", di.Name)
	}
	if di.ProfileSource == jsonconv.SourceMessage {
		checkExpr(d, "deviceProfileExpression", di.Profile)
	}
	return di
}

func checkExpr(o *spec.Obj, key, expr string) {
	if _, err := jsonconv.Compile(expr); err != nil {
		o.Errorf(key, "%v", err)
	}
}

func parseKeys(c *spec.Obj, section string) []jsonconv.KeyConfig {
	var out []jsonconv.KeyConfig
	for _, it := range c.List(section) {
		k := jsonconv.KeyConfig{
			Type:      strings.ToLower(it.Str("type", "raw")),
			Key:       it.RequiredStr("key"),
			KeySource: jsonconv.SourceMessage,
			Value:     it.RequiredStr("value"),
			TsField:   it.Str("tsField", ""),
			Report:    report.Parse(it),
		}
		it.Known("dayfirst", "yearfirst")
		checkExpr(it, "key", k.Key)
		checkExpr(it, "value", k.Value)
		it.Done()
		out = append(out, k)
	}
	return out
}

func parseAttrRequest(o *spec.Obj) *AttrRequest {
	a := &AttrRequest{Path: o.Path(), Endpoint: parseEndpointPath(o), Methods: parseMethods(o), Security: parseSecurity(o, false)}
	a.Client = o.Enum("type", "shared", "shared", "client") == "client"
	a.Timeout = o.Duration("timeout", defaultReqTimeout, secondsRange)
	a.DeviceExpr = o.RequiredStr("deviceNameExpression")
	a.NameExpr = o.RequiredStr("attributeNameExpression")
	checkExpr(o, "deviceNameExpression", a.DeviceExpr)
	checkExpr(o, "attributeNameExpression", a.NameExpr)
	o.Done()
	return a
}

func parseOutgoing(o *spec.Obj, defMethod string) Outgoing {
	g := Outgoing{Path: o.Path()}
	g.Method = strings.ToUpper(o.Str("HTTPMethod", defMethod))
	ok := false
	for _, m := range methods {
		ok = ok || m == g.Method
	}
	if !ok {
		o.Errorf("HTTPMethod", "unknown HTTP method %q", g.Method)
	}
	if g.Script = script.CommandRef(o, "requestUrlExpression", "valueExpression"); g.Script == "" {
		g.URLExpr = o.RequiredStr("requestUrlExpression")
		g.ValueExpr = o.Str("valueExpression", "")
		checkExpr(o, "requestUrlExpression", g.URLExpr)
		checkExpr(o, "valueExpression", g.ValueExpr)
	}
	g.Security = parseSecurity(o, true)
	g.Timeout = o.Duration("timeout", defaultReqTimeout, secondsRange)
	g.Tries = int(o.IntRange("tries", 1, 1, 100))
	g.AllowRedirects = o.Bool("allowRedirects", false)
	g.SSLVerify = o.Bool("SSLVerify", true)
	if h := o.Obj("httpHeaders"); h != nil {
		g.Headers = map[string]string{}
		for k := range h.Raw() {
			g.Headers[k] = h.Str(k, "")
		}
		h.Done()
	}
	return g
}

func regexKey(o *spec.Obj, key string) string {
	s := o.Str(key, ".*")
	if err := pyre.Valid(s); err != nil {
		o.Errorf(key, "%v", err)
	}
	return s
}
