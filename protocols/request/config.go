package request

import (
	"encoding/json"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/jsonexpr"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Config is the upstream "request" connector file.
type Config struct {
	Name string
	// Host is the base URL every relative url is joined to; a host given
	// without a scheme gets "http://", as upstream does.
	Host string
	// SSLVerify checks the server certificate. Unlike upstream (whose
	// default is false) it is on unless the file says "SSLVerify": false.
	SSLVerify bool
	// CAFile is SSLVerify given as a path (requests' verify=<path>): the
	// CA bundle that signs the server's certificate.
	CAFile           string
	Security         Security
	Mapping          []*Mapping
	AttributeUpdates []*AttributeUpdate
	ServerSideRPC    []*RPCRule
	Report           protocols.ReportStrategy
}

// Security types upstream supports.
const (
	SecurityAnonymous = "anonymous"
	SecurityBasic     = "basic"
)

// Security is the HTTP authentication sent with every request.
type Security struct {
	Type     string
	Username string
	Password string
}

// String never shows the password.
func (s Security) String() string {
	if s.Type != SecurityBasic {
		return s.Type
	}
	return "basic user " + s.Username + " password ***"
}

// Converter types.
const (
	TypeJSON   = "json"
	TypeCustom = "custom"
	// TypeScript runs a Starlark script (protocols/kit/script).
	TypeScript = script.TypeScript
)

// HTTP is what every request shares: the mapping's poll and the downlink.
type HTTP struct {
	Method         string
	Headers        map[string]string
	AllowRedirects bool
	Timeout        time.Duration
}

// Mapping is one mapping[] entry: an endpoint polled every ScanPeriod.
type Mapping struct {
	Path       string // JSON path in the file, for messages
	URL        string
	HTTP       HTTP
	ScanPeriod time.Duration
	// Content is sent as the JSON body of a request other than GET/HEAD.
	Content json.RawMessage
	// DataUnpack picks the part of the response the converter reads.
	DataUnpack  string
	SubRequests []SubRequest
	Converter   ConverterConfig
}

// SubRequest is one subRequests entry: after the main response, url
// (a template over each response item) is requested and its answer merged
// into the item under Key.
type SubRequest struct {
	Key  string
	URL  string
	Proc string // processingFunction as written
}

// ConverterConfig is mapping[].converter.
type ConverterConfig struct {
	Type            string
	DeviceName      string
	DeviceType      string
	Attributes      []KeyConfig
	Telemetry       []KeyConfig
	Report          protocols.ReportStrategy
	Extension       string
	ExtensionConfig json.RawMessage
	// Script is the Starlark file a custom or script converter runs, as
	// written (relative to the connector file).
	Script string
}

// KeyConfig is one attributes[] / telemetry[] item.
type KeyConfig struct {
	Key     string
	Type    string
	Value   string
	TsField string
	Report  protocols.ReportStrategy
}

// Downlink is what attributeUpdates and serverSideRpc entries share.
type Downlink struct {
	Path      string
	HTTP      HTTP
	Tries     int
	URLExpr   string
	ValueExpr string
	// Script, when set, is a Starlark file whose downlink(cmd) returns
	// the requests to send, in place of URLExpr and ValueExpr.
	Script string
}

// AttributeUpdate is one attributeUpdates[] entry.
type AttributeUpdate struct {
	Downlink
	DeviceFilter string
	AttrFilter   string
}

// RPCRule is one serverSideRpc[] entry.
type RPCRule struct {
	Downlink
	DeviceFilter    string
	MethodFilter    string
	ResponseTimeout time.Duration
	ResponseExpr    string
}

// Defaults upstream applies when a key is absent.
const (
	defaultTimeout         = time.Second
	defaultScanPeriod      = 10 * time.Second
	defaultResponseTimeout = 5 * time.Second
	defaultTries           = 1
)

// Env names upstream reads for basic credentials; set, they win over the file.
const (
	envUsername = "REQUEST_BASIC_USERNAME"
	envPassword = "REQUEST_BASIC_PASSWORD"
)

// ParseFile decodes a connector file. Warnings and skipped entries come
// back separately: they must not stop the connector.
func ParseFile(file string, raw []byte) (*Config, []spec.Problem, error) {
	var ps spec.Problems
	root := spec.Parse(&ps, file, raw)
	if root == nil {
		return nil, ps.NotErrors(), ps.Err()
	}
	c := Parse(root)
	return c, ps.NotErrors(), ps.Err()
}

// Parse reads a decoded connector object, recording problems in root. A
// bad mapping, attributeUpdates or serverSideRpc entry is skipped (with its
// reason) and the rest of the file loads, as upstream does.
// The field tables: the defaults and ranges Parse applies and the README's
// configuration reference.
var (
	rootFields = spec.Section{Path: "", Fields: []spec.Field{
		{Key: "name", Type: spec.TypeString, Default: "Request Connector", Doc: "connector name when the main config gives none"},
		{Key: "host", Type: spec.TypeString, Required: true, Doc: "base address; `http://` is added when no scheme is given"},
		{Key: "SSLVerify", Type: spec.TypeBoolean, Default: true, Doc: "verify the server certificate; a string is a CA bundle path"},
		{Key: "security", Type: spec.TypeObject, Doc: "`type` anonymous or basic (username, password)"},
		{Key: "reportStrategy", Type: spec.TypeObject, Doc: "report strategy inherited by the devices"},
		{Key: "mapping", Type: spec.TypeList, Doc: "polled requests, see below"},
		{Key: "attributeUpdates", Type: spec.TypeList, Doc: "shared attributes sent as requests"},
		{Key: "serverSideRpc", Type: spec.TypeList, Doc: "RPC methods sent as requests"},
	}}
	// mappingFields also covers the HTTP keys the downlink entries share.
	mappingFields = spec.Section{Path: "mapping[]", Doc: "one polled request", Fields: []spec.Field{
		{Key: "url", Type: spec.TypeString, Required: true, Doc: "path (or address) requested"},
		{Key: "httpMethod", Type: spec.TypeString, Default: "GET", Doc: "HTTP method"},
		{Key: "httpHeaders", Type: spec.TypeObject, Doc: "request headers"},
		{Key: "allowRedirects", Type: spec.TypeBoolean, Default: false, Doc: "follow redirects"},
		{Key: "timeout", Type: spec.TypeDuration, Default: defaultTimeout, Dur: secondsRange, Doc: "request time limit"},
		{Key: "scanPeriod", Type: spec.TypeDuration, Default: defaultScanPeriod, Dur: secondsRange, Doc: "time between requests"},
		{Key: "content", Type: spec.TypeObject, Doc: "request body"},
		{Key: "dataUnpackExpression", Type: spec.TypeString, Default: "", Doc: "JSONPath to the list of records in the answer"},
		{Key: "subRequests", Type: spec.TypeObject, Doc: "follow-up requests by key"},
		{Key: "converter", Type: spec.TypeObject, Doc: "the JSON (or custom) converter"},
	}}
)

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{rootFields, mappingFields} }

func Parse(root *spec.Obj) *Config {
	c := &Config{Name: rootFields.Str(root, "name")}
	root.Known("id", "type", "logLevel", "enableRemoteLogging", "configVersion")
	c.Report = report.Parse(root)
	host := strings.TrimSpace(rootFields.Str(root, "host"))
	if host != "" {
		lower := strings.ToLower(host)
		if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
			host = "http://" + host
		}
		if u, err := url.Parse(host); err != nil || u.Host == "" {
			root.Errorf("host", "%q is not an http(s) address", host)
		}
		c.Host = strings.TrimRight(host, "/")
	}
	c.SSLVerify = true
	if v, ok := root.Any("SSLVerify"); ok {
		switch t := v.(type) {
		case bool:
			c.SSLVerify = t
		case string:
			// requests takes a CA bundle path for verify; "true"/"false"
			// spelled as strings happen in hand-edited files.
			switch strings.ToLower(strings.TrimSpace(t)) {
			case "true":
			case "false":
				c.SSLVerify = false
			default:
				c.CAFile = t
				if _, err := os.Stat(t); err != nil {
					root.Errorf("SSLVerify", "%q is neither a boolean nor a readable CA file: %v", t, err)
				}
			}
		default:
			root.Errorf("SSLVerify", "%s is neither a boolean nor a CA file path", spec.Describe(v))
		}
	}
	c.Security.Type = SecurityAnonymous
	if s := root.Obj("security"); s != nil {
		c.Security.Type = s.Enum("type", SecurityAnonymous, SecurityAnonymous, SecurityBasic)
		user, pass := s.Str("username", ""), s.Str("password", "")
		if c.Security.Type == SecurityBasic {
			if eu, ep := os.Getenv(envUsername), os.Getenv(envPassword); eu != "" && ep != "" {
				user, pass = eu, ep
			}
			if user == "" {
				// Upstream falls back to anonymous with a warning.
				s.Warnf("username", "basic security without a username: requests are sent without authentication")
				c.Security.Type = SecurityAnonymous
			}
			c.Security.Username, c.Security.Password = user, pass
		}
		s.Done()
	}
	for _, m := range root.List("mapping") {
		mark := root.Problems().Mark()
		mp := parseMapping(m)
		if root.Problems().SkipSince(mark) {
			continue
		}
		c.Mapping = append(c.Mapping, mp)
	}
	for _, o := range root.List("attributeUpdates") {
		mark := root.Problems().Mark()
		u := &AttributeUpdate{Downlink: parseDownlink(o)}
		u.DeviceFilter = regexStr(o, "deviceNameFilter", ".*")
		u.AttrFilter = regexStr(o, "attributeFilter", ".*")
		if u.Script == "" {
			u.ValueExpr = exprStr(o, "requestValueExpression", "${attributeValue}")
		}
		o.Done()
		if root.Problems().SkipSince(mark) {
			continue
		}
		c.AttributeUpdates = append(c.AttributeUpdates, u)
	}
	for _, o := range root.List("serverSideRpc") {
		mark := root.Problems().Mark()
		r := &RPCRule{Downlink: parseDownlink(o)}
		r.DeviceFilter = regexStr(o, "deviceNameFilter", ".*")
		r.MethodFilter = regexStr(o, "methodFilter", "")
		if r.MethodFilter == "" {
			o.Errorf("methodFilter", "is required")
		}
		if r.Script == "" {
			r.ValueExpr = exprStr(o, "requestValueExpression", "${params}")
		}
		r.ResponseTimeout = o.Duration("responseTimeout", defaultResponseTimeout, secondsRange)
		r.ResponseExpr = exprStr(o, "responseValueExpression", "")
		o.Done()
		if root.Problems().SkipSince(mark) {
			continue
		}
		c.ServerSideRPC = append(c.ServerSideRPC, r)
	}
	root.Done()
	return c
}

func parseHTTP(o *spec.Obj, methodKey string) HTTP {
	h := HTTP{
		Method:         strings.ToUpper(strings.TrimSpace(o.Str(methodKey, "GET"))),
		AllowRedirects: mappingFields.Bool(o, "allowRedirects"),
		Timeout:        mappingFields.Duration(o, "timeout"),
	}
	if h.Method == "" || strings.ContainsAny(h.Method, " \t/:") {
		o.Errorf(methodKey, "%q is not an HTTP method", h.Method)
	}
	if v, ok := o.Any("httpHeaders"); ok {
		m, isObj := v.(map[string]any)
		if !isObj {
			o.Errorf("httpHeaders", "%s is not an object", spec.Describe(v))
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s, isStr := m[k].(string)
			if !isStr {
				// Numbers are common ("Content-Length": 0); their text is meant.
				if _, num := m[k].(json.Number); !num {
					o.Errorf("httpHeaders", "%q: %s is not a header value", k, spec.Describe(m[k]))
					continue
				}
				s = string(m[k].(json.Number))
			}
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			h.Headers[k] = s
		}
	}
	return h
}

// secondsRange is upstream's float seconds; zero or less is an error because
// it would poll in a busy loop or time out at once.
var secondsRange = spec.Dur{MinExclusive: true, Max: 1e7}

func parseMapping(o *spec.Obj) *Mapping {
	m := &Mapping{Path: o.Path()}
	m.URL = mappingFields.Str(o, "url")
	m.HTTP = parseHTTP(o, "httpMethod")
	m.ScanPeriod = mappingFields.Duration(o, "scanPeriod")
	if v, ok := o.Any("content"); ok {
		m.Content, _ = json.Marshal(v)
	}
	m.DataUnpack = exprStr(o, "dataUnpackExpression", "")
	if m.DataUnpack != "" && !strings.Contains(m.DataUnpack, "${") {
		// Upstream reads it as a JSONPath with or without ${}.
		m.DataUnpack = "${" + m.DataUnpack + "}"
		if _, err := jsonexpr.Compile(m.DataUnpack); err != nil {
			o.Errorf("dataUnpackExpression", "%v", err)
		}
	}
	if s := o.Obj("subRequests"); s != nil {
		keys := make([]string, 0, len(s.Raw()))
		for k := range s.Raw() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			so := s.Obj(k)
			if so == nil {
				continue
			}
			sr := SubRequest{Key: k, URL: exprStr(so, "url", ""), Proc: so.Str("processingFunction", "")}
			if sr.URL == "" {
				so.Errorf("url", "is required")
			}
			if sr.Proc != "" {
				if _, err := compileProc(sr.Proc); err != nil {
					so.Errorf("processingFunction", "%v", err)
				}
			}
			so.Done()
			m.SubRequests = append(m.SubRequests, sr)
		}
		s.Done()
	}
	if c := o.Obj("converter"); c != nil {
		m.Converter = parseConverter(c)
	} else {
		o.Errorf("converter", "is required")
	}
	o.Done()
	return m
}

func parseConverter(c *spec.Obj) ConverterConfig {
	cc := ConverterConfig{}
	cc.Type = c.Enum("type", TypeJSON, TypeJSON, TypeCustom, TypeScript)
	cc.Report = report.Parse(c)
	cc.DeviceName = exprStr(c, "deviceNameJsonExpression", "")
	cc.DeviceType = exprStr(c, "deviceTypeJsonExpression", "default")
	cc.Extension = c.Str("extension", "")
	cc.ExtensionConfig = jsonconv.ExtensionConfig(c, "extensionConfig", "extension-config")
	c.Known("extension-config")
	cc.Script = script.ParseRef(c, cc.Type, cc.Extension)
	if cc.Type == TypeCustom || cc.Type == TypeScript {
		c.Known("attributes", "telemetry", "timeseries")
		c.Done()
		return cc
	}
	if cc.DeviceName == "" {
		c.Errorf("deviceNameJsonExpression", "is required")
	}
	cc.Attributes = parseKeys(c, "attributes")
	cc.Telemetry = parseKeys(c, "telemetry")
	if c.Has("timeseries") && !c.Has("telemetry") {
		// The other connectors call it timeseries; accept that spelling.
		cc.Telemetry = parseKeys(c, "timeseries")
	}
	c.Done()
	return cc
}

func parseKeys(c *spec.Obj, section string) []KeyConfig {
	var out []KeyConfig
	for _, it := range c.List(section) {
		k := KeyConfig{
			Type:    strings.ToLower(it.Str("type", "raw")),
			Key:     it.RequiredStr("key"),
			Value:   it.RequiredStr("value"),
			TsField: it.Str("tsField", ""),
			Report:  report.Parse(it),
		}
		it.Known("dayfirst", "yearfirst")
		for _, e := range []struct{ key, s string }{{"key", k.Key}, {"value", k.Value}} {
			if _, err := jsonexpr.Compile(e.s); err != nil {
				it.Errorf(e.key, "%v", err)
			}
		}
		if k.TsField != "" {
			if _, err := jsonexpr.Compile(tsExpr(k.TsField)); err != nil {
				it.Errorf("tsField", "%v", err)
			}
		}
		it.Done()
		out = append(out, k)
	}
	return out
}

// tsExpr lets tsField be written either as "${time}" or as the bare key.
func tsExpr(s string) string {
	if strings.Contains(s, "${") {
		return s
	}
	return "${" + s + "}"
}

func parseDownlink(o *spec.Obj) Downlink {
	d := Downlink{Path: o.Path()}
	d.HTTP = parseHTTP(o, "httpMethod")
	if !o.Has("httpMethod") && o.Has("HTTPMethod") {
		// The REST connector's spelling, seen in hand-merged files.
		d.HTTP.Method = strings.ToUpper(o.Str("HTTPMethod", "GET"))
	}
	d.Tries = int(o.IntRange("tries", defaultTries, 1, 100))
	if d.Script = script.CommandRef(o, "requestUrlExpression", "requestValueExpression"); d.Script == "" {
		d.URLExpr = exprStr(o, "requestUrlExpression", "")
	}
	if d.Script == "" && d.URLExpr == "" {
		o.Errorf("requestUrlExpression", "is required (or \"script\": a Starlark file whose downlink(cmd) returns the request)")
	}
	o.Known("SSLVerify", "security", "converter")
	return d
}

func exprStr(o *spec.Obj, key, def string) string {
	s := o.Str(key, def)
	if s != "" {
		if _, err := jsonexpr.Compile(s); err != nil {
			o.Errorf(key, "%v", err)
		}
	}
	return s
}

func regexStr(o *spec.Obj, key, def string) string {
	s := o.Str(key, def)
	if s != "" {
		if err := pyre.Valid(s); err != nil {
			o.Errorf(key, "%v", err)
		}
	}
	return s
}

// ReportStrategies gives the mapping-level strategy and the per-key
// overrides for keys with a fixed name.
func (m *Mapping) ReportStrategies() (protocols.ReportStrategy, map[string]protocols.ReportStrategy) {
	var perKey map[string]protocols.ReportStrategy
	for _, list := range [][]KeyConfig{m.Converter.Attributes, m.Converter.Telemetry} {
		for _, k := range list {
			if !k.Report.IsSet() || strings.Contains(k.Key, "${") {
				continue
			}
			if perKey == nil {
				perKey = map[string]protocols.ReportStrategy{}
			}
			perKey[k.Key] = k.Report
		}
	}
	return m.Converter.Report, perKey
}
