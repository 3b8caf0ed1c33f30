package opcua

import (
	_ "embed"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Sample is an example `opcua` connector file (sample.json).
//
//go:embed sample.json
var Sample []byte

// Upstream minimums, applied with a warning.
const (
	MinSubCheckPeriod              = 100 * time.Millisecond
	MinSubDataMinBatchCreationTime = 100 * time.Millisecond
)

// Security policies.
const (
	PolicyNone           = "None"
	PolicyBasic128Rsa15  = "Basic128Rsa15"
	PolicyBasic256       = "Basic256"
	PolicyBasic256Sha256 = "Basic256Sha256"
)

// Security modes.
const (
	ModeNone           = "None"
	ModeSign           = "Sign"
	ModeSignAndEncrypt = "SignAndEncrypt"
)

// Identity types (normalised).
const (
	IdentityAnonymous    = "anonymous"
	IdentityUsername     = "username"
	IdentityCertificates = "certificates"
)

// Sources for values and device names.
const (
	SourcePath       = "path"
	SourceIdentifier = "identifier"
	SourceConstant   = "constant"
)

// Timestamp locations.
const (
	TimestampGateway = "gateway"
	TimestampSource  = "sourceTimestamp"
	TimestampServer  = "serverTimestamp"
)

// Config is the upstream `opcua` connector file.
type Config struct {
	Name           string
	Server         Server
	Mapping        []Device
	ReportStrategy report.Strategy // connector level; zero when absent
}

// Server is the "server" section.
type Server struct {
	URL                          string
	Timeout                      time.Duration
	SessionTimeout               time.Duration
	ScanPeriod                   time.Duration
	PollPeriod                   time.Duration
	EnableSubscriptions          bool
	SubCheckPeriod               time.Duration
	SubDataMaxBatchSize          int
	SubDataMinBatchCreationTime  time.Duration
	SubscriptionProcessBatchSize int
	SubKeepAlivePeriod           time.Duration
	ReconnectRetriesCount        int
	ReconnectBackoffInitialDelay time.Duration
	ReconnectBackoffFactor       float64
	ShowMap                      bool
	// CertDir is where a generated client certificate is kept (our
	// extension "clientCertDir"); empty means next to the connector file.
	CertDir string
	// MaxItemsPerSubscription caps monitored items per subscription (our
	// extension); 0 leaves it to the server, which may still refuse items
	// with BadTooManyMonitoredItems (they then go to a new subscription).
	MaxItemsPerSubscription int
	Security                string // Policy* constant
	Mode                    string // Mode* constant
	URI                     string
	Identity                Identity
}

// Identity is server.identity. Certificate fields hold paths.
type Identity struct {
	Type       string // Identity* constant
	Username   string
	Password   string
	CACert     string
	PrivateKey string
	Cert       string
}

// Device is one mapping[] entry.
type Device struct {
	NodeSource     string // SourcePath or SourceIdentifier
	NodePattern    Expr
	Name           NameExpr
	Profile        NameExpr
	Attributes     []Key
	Timeseries     []Key
	AttrUpdates    []AttrUpdate
	RPCMethods     []RPCMethod
	ReportStrategy report.Strategy // device level; zero when absent
}

// NameExpr is a deviceNameExpression or deviceProfileExpression: a template
// whose ${...} parts are node ids or paths unless Source is constant.
type NameExpr struct {
	Source string
	Text   string
	Refs   []Expr // the parsed ${...} parts, in order
}

// Key is one attributes[] or timeseries[] entry.
type Key struct {
	Key               string
	Type              string // path, identifier or constant
	Value             string
	Expr              *Expr // nil for constants
	TimestampLocation string
	ReportStrategy    report.Strategy
}

// AttrUpdate is one attributes_updates[] entry.
type AttrUpdate struct {
	Key   string
	Type  string
	Value string
	Expr  *Expr
}

// RPCMethod is one rpc_methods[] entry.
type RPCMethod struct {
	Method    string
	Arguments []Argument
}

// Argument is a configured method argument.
type Argument struct {
	Type  string
	Value any
}

const file = "opcua.json"

// millis: upstream's *InMillis keys are whole, non-negative milliseconds.
var millis = spec.Dur{Unit: time.Millisecond, Whole: true}

func atLeast(o *spec.Obj, key string, d, min time.Duration) time.Duration {
	if d < min {
		o.Warnf(key, "%d is below the minimum of %d, using %d", d.Milliseconds(), min.Milliseconds(), min.Milliseconds())
		return min
	}
	return d
}

// Parse decodes an upstream opcua.json. Errors are returned joined (as a
// *spec.InvalidError); warnings (unknown keys, minimums applied) are in ps.
func Parse(ps *spec.Problems, raw []byte) (*Config, error) {
	root := spec.Parse(ps, file, raw)
	if root == nil {
		return nil, ps.Err()
	}
	return ParseObj(root)
}

// ParseObj decodes an already parsed connector file (what the runtime hands
// a factory). Problems go to root.Problems(); the returned error joins them.
func ParseObj(root *spec.Obj) (*Config, error) {
	ps := root.Problems()
	c := &Config{}
	c.Name = root.Str("name", "OPC-UA Connector")
	root.Known("id", "logLevel", "enableRemoteLogging", "configVersion", "type")
	c.ReportStrategy = report.Parse(root)
	if s := root.Obj("server"); s != nil {
		c.Server = parseServer(s)
	} else if !root.Has("server") {
		root.Errorf("server", "is required")
	}
	for _, m := range root.List("mapping") {
		c.Mapping = append(c.Mapping, parseDevice(m))
	}
	root.Done()
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// serverFields is the server field table: the defaults and ranges
// parseServer applies and the README's configuration reference.
var serverFields = spec.Section{Path: "server", Doc: "the OPC-UA server and session", Fields: []spec.Field{
	{Key: "url", Type: spec.TypeString, Required: true, Doc: "endpoint; `opc.tcp://` is added when missing"},
	{Key: "timeoutInMillis", Type: spec.TypeDuration, Default: 5000 * time.Millisecond, Dur: millis, Doc: "request timeout"},
	{Key: "sessionTimeoutInMillis", Type: spec.TypeDuration, Default: 120000 * time.Millisecond, Dur: millis, Doc: "session timeout asked of the server"},
	{Key: "scanPeriodInMillis", Type: spec.TypeDuration, Default: 3600000 * time.Millisecond, Dur: millis, Doc: "time between rescans of the address space"},
	{Key: "pollPeriodInMillis", Type: spec.TypeDuration, Default: 5000 * time.Millisecond, Dur: millis, Doc: "time between polls without subscriptions; must be positive"},
	{Key: "enableSubscriptions", Type: spec.TypeBoolean, Default: true, Doc: "subscribe instead of polling"},
	{Key: "subCheckPeriodInMillis", Type: spec.TypeDuration, Default: 100 * time.Millisecond, Dur: millis, Doc: "subscription publishing interval (at least 100)"},
	{Key: "subDataMaxBatchSize", Type: spec.TypeInteger, Default: int64(1000), Min: 1, Max: 1<<31 - 1, Doc: "data changes sent in one batch at most"},
	{Key: "subDataMinBatchCreationTimeMs", Type: spec.TypeDuration, Default: 200 * time.Millisecond, Dur: millis, Doc: "time a batch collects changes (at least 100)"},
	{Key: "subscriptionProcessBatchSize", Type: spec.TypeInteger, Default: int64(2000), Min: 1, Max: 1<<31 - 1, Doc: "monitored items created per request"},
	{Key: "subKeepAlivePeriodInSeconds", Type: spec.TypeDuration, Default: time.Duration(0), Dur: spec.Dur{Whole: true, Max: 1<<31 - 1}, Doc: "subscription keep-alive, 0 for the server's"},
	{Key: "reconnectRetriesCount", Type: spec.TypeInteger, Default: int64(8), Min: 0, Max: 1<<31 - 1, Doc: "reconnect attempts before backing off to the longest delay"},
	{Key: "reconnectBackoffInitialDelay", Type: spec.TypeDuration, Default: time.Second, Dur: spec.Dur{}, Doc: "first reconnect delay"},
	{Key: "reconnectBackoffFactor", Type: spec.TypeNumber, Default: 2.0, Doc: "delay growth per failed reconnect (at least 1)"},
	{Key: "showMap", Type: spec.TypeBoolean, Default: false, Doc: "log the address space after a scan"},
	{Key: "clientCertDir", Type: spec.TypeString, Default: "", Doc: "where a generated client certificate is kept"},
	{Key: "maxItemsPerSubscription", Type: spec.TypeInteger, Default: int64(0), Min: 0, Max: 1<<31 - 1, Doc: "monitored items per subscription, 0 for no limit"},
	{Key: "uri", Type: spec.TypeString, Default: "", Doc: "application URI of the client"},
	{Key: "security", Type: spec.TypeEnum, Default: "", Values: []string{PolicyNone, PolicyBasic128Rsa15, PolicyBasic256, PolicyBasic256Sha256}, Doc: "security policy"},
	{Key: "identity", Type: spec.TypeObject, Doc: "`type` anonymous, basic (username, password) or certificates"},
}}

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{serverFields} }

func parseServer(o *spec.Obj) Server {
	var s Server
	url := strings.TrimSpace(serverFields.Str(o, "url"))
	if url != "" && !strings.Contains(url, "://") {
		url = "opc.tcp://" + url
	}
	s.URL = url
	s.Timeout = serverFields.Duration(o, "timeoutInMillis")
	s.SessionTimeout = serverFields.Duration(o, "sessionTimeoutInMillis")
	s.ScanPeriod = serverFields.Duration(o, "scanPeriodInMillis")
	s.PollPeriod = serverFields.Duration(o, "pollPeriodInMillis")
	if s.PollPeriod == 0 {
		o.Errorf("pollPeriodInMillis", "must be positive")
		s.PollPeriod = 5 * time.Second
	}
	s.EnableSubscriptions = serverFields.Bool(o, "enableSubscriptions")
	s.SubCheckPeriod = atLeast(o, "subCheckPeriodInMillis", serverFields.Duration(o, "subCheckPeriodInMillis"), MinSubCheckPeriod)
	s.SubDataMaxBatchSize = int(serverFields.Int(o, "subDataMaxBatchSize"))
	s.SubDataMinBatchCreationTime = atLeast(o, "subDataMinBatchCreationTimeMs", serverFields.Duration(o, "subDataMinBatchCreationTimeMs"), MinSubDataMinBatchCreationTime)
	s.SubscriptionProcessBatchSize = int(serverFields.Int(o, "subscriptionProcessBatchSize"))
	s.SubKeepAlivePeriod = serverFields.Duration(o, "subKeepAlivePeriodInSeconds")
	s.ReconnectRetriesCount = int(serverFields.Int(o, "reconnectRetriesCount"))
	s.ReconnectBackoffInitialDelay = serverFields.Duration(o, "reconnectBackoffInitialDelay")
	s.ReconnectBackoffFactor = serverFields.Float(o, "reconnectBackoffFactor")
	if s.ReconnectBackoffFactor < 1 {
		o.Errorf("reconnectBackoffFactor", "%v must be at least 1", s.ReconnectBackoffFactor)
		s.ReconnectBackoffFactor = 2
	}
	s.ShowMap = serverFields.Bool(o, "showMap")
	s.CertDir = serverFields.Str(o, "clientCertDir")
	s.MaxItemsPerSubscription = int(serverFields.Int(o, "maxItemsPerSubscription"))
	s.URI = serverFields.Str(o, "uri")
	s.Security = serverFields.Enum(o, "security")
	if id := o.Obj("identity"); id != nil {
		s.Identity, s.Mode = parseIdentity(id)
	} else {
		s.Identity.Type = IdentityAnonymous
	}
	if o.Has("mode") {
		s.Mode = o.Enum("mode", s.Mode, ModeNone, ModeSign, ModeSignAndEncrypt)
	}
	certs := s.Identity.Type == IdentityCertificates
	switch {
	case !certs && s.Mode == "":
		// Upstream applies the policy only with a certificate identity, so the
		// upstream sample (anonymous + Basic128Rsa15) connects without security.
		// Setting "mode" explicitly opts in (a client certificate is generated).
		s.Security, s.Mode = PolicyNone, ModeNone
	case s.Security == "" && s.Mode != ModeNone:
		s.Security = PolicyBasic128Rsa15 // upstream default
	case s.Security == "":
		s.Security = PolicyNone
	}
	if s.Mode == "" {
		s.Mode = ModeSignAndEncrypt
		if s.Security == PolicyNone {
			s.Mode = ModeNone
		}
	}
	if (s.Security == PolicyNone) != (s.Mode == ModeNone) {
		o.Errorf("security", "policy %s does not fit mode %s (None goes with None only)", s.Security, s.Mode)
	}
	o.Done()
	return s
}

func parseIdentity(o *spec.Obj) (Identity, string) {
	var id Identity
	t := strings.ToLower(strings.TrimSpace(o.Str("type", "")))
	switch t {
	case "", "anonymous":
		id.Type = IdentityAnonymous
	case "basic", "username", "username/password":
		id.Type = IdentityUsername
	case "cert.pem", "certificates", "certificate", "cert":
		id.Type = IdentityCertificates
	default:
		o.Errorf("type", "unknown identity type %q (want anonymous, basic or certificates)", t)
		id.Type = IdentityAnonymous
	}
	id.Username = o.Str("username", "")
	id.Password = o.Str("password", "")
	if id.Username != "" {
		// Upstream logs in with username/password whenever a username is set.
		if id.Type == IdentityAnonymous {
			id.Type = IdentityUsername
		}
	} else if id.Type == IdentityUsername {
		o.Errorf("username", "is required for identity type %q", t)
	}
	alias := func(a, b string) string {
		va, vb := o.Str(a, ""), o.Str(b, "")
		if va != "" && vb != "" && va != vb {
			o.Warnf(b, "both %q and %q are set, using %q", a, b, a)
		}
		if va != "" {
			return va
		}
		return vb
	}
	id.CACert = alias("caCert", "pathToCACert")
	id.PrivateKey = alias("privateKey", "pathToPrivateKey")
	id.Cert = alias("cert", "pathToClientCert")
	if id.Type == IdentityCertificates {
		if id.Cert == "" {
			o.Errorf("cert", "is required for certificate identity")
		}
		if id.PrivateKey == "" {
			o.Errorf("privateKey", "is required for certificate identity")
		}
	}
	mode := ""
	if o.Has("mode") {
		mode = o.Enum("mode", "", ModeNone, ModeSign, ModeSignAndEncrypt)
	}
	o.Done()
	return id, mode
}

func parseDevice(o *spec.Obj) Device {
	var d Device
	d.NodeSource = o.Enum("deviceNodeSource", SourcePath, SourcePath, SourceIdentifier)
	pat := o.RequiredStr("deviceNodePattern")
	if strings.TrimSpace(pat) != "" {
		e, err := ParseExpr(pat)
		switch {
		case err != nil:
			o.Errorf("deviceNodePattern", "%v", err)
		case d.NodeSource == SourceIdentifier && e.Kind != ExprNodeID:
			o.Errorf("deviceNodePattern", "%q is not a node id (deviceNodeSource is identifier)", pat)
		case d.NodeSource == SourcePath && e.Kind == ExprRelative:
			o.Errorf("deviceNodePattern", "%q must be an absolute path starting with Root\\. or a node id", pat)
		}
		d.NodePattern = e
	}
	if info := o.Obj("deviceInfo"); info != nil {
		d.Name = parseName(info, "deviceNameExpression", "deviceNameExpressionSource", "")
		d.Profile = parseName(info, "deviceProfileExpression", "deviceProfileExpressionSource", "default")
		info.Done()
	} else {
		o.Errorf("deviceInfo", "is required")
	}
	d.ReportStrategy = report.Parse(o)
	for _, k := range o.List("attributes") {
		d.Attributes = append(d.Attributes, parseKey(k))
	}
	for _, k := range o.List("timeseries") {
		d.Timeseries = append(d.Timeseries, parseKey(k))
	}
	for _, u := range o.List("attributes_updates") {
		var a AttrUpdate
		a.Key = u.RequiredStr("key")
		a.Type = u.Enum("type", SourcePath, SourcePath, SourceIdentifier)
		a.Value = u.RequiredStr("value")
		a.Expr = parseValue(u, a.Type, a.Value)
		u.Done()
		d.AttrUpdates = append(d.AttrUpdates, a)
	}
	for _, r := range o.List("rpc_methods") {
		var m RPCMethod
		m.Method = r.RequiredStr("method")
		for _, a := range r.List("arguments") {
			m.Arguments = append(m.Arguments, Argument{Type: a.Str("type", ""), Value: anyOf(a, "value")})
			a.Done()
		}
		r.Done()
		d.RPCMethods = append(d.RPCMethods, m)
	}
	o.Done()
	return d
}

func anyOf(o *spec.Obj, key string) any {
	v, _ := o.Any(key)
	return v
}

func parseName(o *spec.Obj, key, srcKey, def string) NameExpr {
	n := NameExpr{Source: o.Enum(srcKey, SourceConstant, SourceConstant, SourcePath, SourceIdentifier)}
	if def == "" {
		n.Text = o.RequiredStr(key)
	} else {
		n.Text = o.Str(key, def)
	}
	if n.Source == SourceConstant {
		return n
	}
	refs, err := templateRefs(n.Text)
	if err != nil {
		o.Errorf(key, "%v", err)
		return n
	}
	if len(refs) == 0 {
		// A bare path or id without ${} is the whole expression.
		e, err := ParseExpr(n.Text)
		if err != nil {
			o.Errorf(key, "%v", err)
			return n
		}
		refs = []Expr{e}
	}
	for _, e := range refs {
		if n.Source == SourceIdentifier && e.Kind != ExprNodeID {
			o.Errorf(key, "%q is not a node id (source is identifier)", e.Raw)
		}
	}
	n.Refs = refs
	return n
}

// templateRefs parses every ${...} in s.
func templateRefs(s string) ([]Expr, error) {
	var out []Expr
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			return out, nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, &pathError{input: s, msg: "unterminated \"${\""}
		}
		e, err := ParseExpr(rest[i : i+j+1])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		rest = rest[i+j+1:]
	}
}

func parseKey(o *spec.Obj) Key {
	var k Key
	k.Key = o.RequiredStr("key")
	k.Type = o.Enum("type", SourcePath, SourcePath, SourceIdentifier, SourceConstant)
	if k.Type == SourceConstant {
		if v, ok := o.Any("value"); ok {
			k.Value = spec.Describe(v)
			if s, isStr := v.(string); isStr {
				k.Value = s
			}
		} else {
			o.Errorf("value", "is required")
		}
	} else {
		k.Value = o.RequiredStr("value")
		k.Expr = parseValue(o, k.Type, k.Value)
	}
	k.TimestampLocation = o.Enum("timestampLocation", TimestampGateway, TimestampGateway, TimestampSource, TimestampServer)
	k.ReportStrategy = report.Parse(o)
	o.Done()
	return k
}

func parseValue(o *spec.Obj, typ, v string) *Expr {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	e, err := ParseExpr(v)
	if err != nil {
		o.Errorf("value", "%v", err)
		return nil
	}
	// Upstream files often say type "path" for a node id; the value decides.
	if typ == SourceIdentifier && e.Kind != ExprNodeID {
		o.Errorf("value", "%q is not a node id (type is identifier)", v)
	}
	return &e
}
