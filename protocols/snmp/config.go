package snmp

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Defaults as upstream: port 161, pollPeriod 10 s, timeout 6 s. Retries is
// ours; upstream's library retried, which multiplied a dead agent's cost.
const (
	DefaultPort       = 161
	DefaultPollPeriod = 10 * time.Second
	DefaultTimeout    = 6 * time.Second
	DefaultBulkSize   = 10
	// maxOIDs is what one request carries at most (the library's MaxOids).
	maxOIDs = gosnmp.MaxOids
)

// Read methods (attributes and telemetry) and write methods.
var (
	readMethods  = []string{"get", "multiget", "getnext", "multigetnext", "walk", "multiwalk", "bulkget", "bulkwalk", "table", "bulktable"}
	writeMethods = []string{"set", "multiset"}
)

// Config is a parsed snmp connector file.
type Config struct {
	Name    string
	ID      string
	Report  protocols.ReportStrategy
	Devices []*DeviceConfig
	// Traps is the trap receiver; nil when the file has no traps section.
	Traps *TrapConfig
}

// DeviceConfig is one devices[] entry: one polled agent.
type DeviceConfig struct {
	Path       string
	DeviceName string
	DeviceType string
	IP         string
	Port       int
	PollPeriod time.Duration
	Timeout    time.Duration
	Retries    int
	Report     protocols.ReportStrategy

	// Version is gosnmp.Version1 (upstream's only one), Version2c or Version3.
	Version   gosnmp.SnmpVersion
	Community string
	// V3 holds the user when Version is 3.
	V3 *V3User

	Attributes []*KeyConfig
	Telemetry  []*KeyConfig
	AttrWrites []*WriteConfig
	RPC        []*WriteConfig
}

// V3User is an SNMPv3 USM user (our extension: upstream speaks v1 only).
type V3User struct {
	User         string
	Level        gosnmp.SnmpV3MsgFlags
	AuthProtocol gosnmp.SnmpV3AuthProtocol
	AuthKey      string
	PrivProtocol gosnmp.SnmpV3PrivProtocol
	PrivKey      string
	ContextName  string
}

// KeyConfig is one attributes[] or telemetry[] entry.
type KeyConfig struct {
	Path   string
	Key    string
	Method string
	OIDs   []string // oid as a list; one element for single-OID methods
	// ScalarOIDs and RepeatingOIDs are bulkget's.
	ScalarOIDs    []string
	RepeatingOIDs []string
	MaxListSize   int
	BulkSize      int
	Community     string // empty: the device's
	Timeout       time.Duration
	Report        protocols.ReportStrategy
}

// WriteConfig is one attributeUpdateRequests[] or serverSideRpcRequests[]
// entry.
type WriteConfig struct {
	Path   string
	Filter *pyre.Regexp // attributeFilter or requestFilter
	Method string
	OIDs   []string
	// Mappings is multiset's {oid: value}; "${attribute}" (any ${...})
	// stands for the value received.
	Mappings map[string]string
	Read     *KeyConfig // for read methods in serverSideRpcRequests
	Timeout  time.Duration
}

// Parse reads an snmp connector file. Problems go to root.Problems().
func Parse(root *spec.Obj, global protocols.ReportStrategy) *Config {
	cfg := &Config{}
	if root == nil {
		return cfg
	}
	cfg.Name = root.Str("name", "")
	cfg.ID = root.Str("id", "")
	root.Known("logLevel", "enableRemoteLogging", "configVersion")
	cfg.Report = report.Parse(root)
	inherited := cfg.Report.Or(global)
	if _, present := root.Raw()["devices"]; !present {
		root.Errorf("devices", "is required")
	}
	ps := root.Problems()
	names := map[string]string{}
	for _, do := range root.List("devices") {
		mark := ps.Mark()
		d := parseDevice(do, inherited)
		if d != nil && d.DeviceName != "" {
			if prev, dup := names[d.DeviceName]; dup {
				do.Errorf("deviceName", "%q is already used by %s", d.DeviceName, prev)
			}
		}
		if ps.SkipSince(mark) || d == nil {
			continue
		}
		names[d.DeviceName] = d.Path
		cfg.Devices = append(cfg.Devices, d)
	}
	if to := root.Obj("traps"); to != nil {
		cfg.Traps = parseTraps(to)
	}
	root.Done()
	return cfg
}

// deviceFields is the devices[] field table: the defaults and ranges Parse
// applies and the README's configuration reference.
var deviceFields = spec.Section{Path: "devices[]", Doc: "one polled agent", Fields: []spec.Field{
	{Key: "deviceName", Type: spec.TypeString, Required: true, Doc: "device name on the platform"},
	{Key: "deviceType", Type: spec.TypeString, Default: "default", Doc: "device profile"},
	{Key: "ip", Type: spec.TypeString, Required: true, Doc: "agent host name or address"},
	{Key: "port", Type: spec.TypeInteger, Default: int64(DefaultPort), Min: 1, Max: 65535, Doc: "agent UDP port"},
	{Key: "pollPeriod", Type: spec.TypeDuration, Default: DefaultPollPeriod, Dur: pollRange, Doc: "time between polls"},
	{Key: "timeout", Type: spec.TypeDuration, Default: DefaultTimeout, Dur: timeoutRange, Doc: "one request's time limit (keys may override)"},
	{Key: "retries", Type: spec.TypeInteger, Default: int64(0), Min: 0, Max: 10, Doc: "resends of an unanswered request"},
	{Key: "version", Type: spec.TypeString, Default: "1", Doc: "SNMP version: `1`, `2c` or `3` (2c and 3 are ours; upstream speaks v1)"},
	{Key: "community", Type: spec.TypeString, Default: "public", Doc: "v1/v2c community (a warning when absent)"},
	{Key: "user", Type: spec.TypeString, Doc: "v3 user; with securityLevel, authProtocol, authKey, privacyProtocol, privacyKey, contextName"},
	{Key: "reportStrategy", Type: spec.TypeObject, Doc: "overrides the connector's"},
	{Key: "attributes", Type: spec.TypeList, Doc: "keys read as attributes"},
	{Key: "telemetry", Type: spec.TypeList, Doc: "keys read as telemetry"},
	{Key: "attributeUpdateRequests", Type: spec.TypeList, Doc: "shared attributes written with set/multiset"},
	{Key: "serverSideRpcRequests", Type: spec.TypeList, Doc: "RPC methods"},
}}

// Sections are the field tables in README order.
func Sections() []spec.Section {
	return []spec.Section{deviceFields, trapFields, trapUserFields, trapMappingFields, trapKeyFields}
}

func parseDevice(o *spec.Obj, inherited protocols.ReportStrategy) *DeviceConfig {
	d := &DeviceConfig{Path: o.Path()}
	d.DeviceName = deviceFields.Str(o, "deviceName")
	d.DeviceType = deviceFields.Str(o, "deviceType")
	d.IP = deviceFields.Str(o, "ip")
	d.Port = int(deviceFields.Int(o, "port"))
	d.PollPeriod = deviceFields.Duration(o, "pollPeriod")
	d.Timeout = deviceFields.Duration(o, "timeout")
	d.Retries = int(deviceFields.Int(o, "retries"))
	d.Report = report.Parse(o).Or(inherited)
	if o.Has("converter") {
		// Upstream loads a Python class here; its output shape is the
		// class's own, so guessing with the default would send wrong data.
		o.Errorf("converter", "custom converter class %q is not supported; device skipped", o.Str("converter", ""))
	}
	switch v := strings.ToLower(strings.TrimPrefix(strings.ToLower(o.Str("version", "1")), "v")); v {
	case "1":
		d.Version = gosnmp.Version1
	case "2", "2c":
		d.Version = gosnmp.Version2c
	case "3":
		d.Version = gosnmp.Version3
	default:
		o.Errorf("version", "unknown SNMP version %q (want 1, 2c or 3)", v)
	}
	if d.Version == gosnmp.Version3 {
		d.V3 = parseV3(o)
		o.Known("community")
	} else {
		d.Community = o.Str("community", "")
		if !o.Has("community") {
			o.Warnf("community", "absent; using \"public\"")
			d.Community = "public"
		}
		o.Known("user", "securityLevel", "authProtocol", "authKey", "privacyProtocol", "privacyKey", "contextName")
	}
	for _, sec := range []string{"attributes", "telemetry"} {
		for _, ko := range o.List(sec) {
			mark := o.Problems().Mark()
			k := parseKey(ko, d, true)
			if o.Problems().SkipSince(mark) {
				continue
			}
			if sec == "attributes" {
				d.Attributes = append(d.Attributes, k)
			} else {
				d.Telemetry = append(d.Telemetry, k)
			}
		}
	}
	for _, wo := range o.List("attributeUpdateRequests") {
		mark := o.Problems().Mark()
		w := parseWrite(wo, d, "attributeFilter", false)
		if !o.Problems().SkipSince(mark) {
			d.AttrWrites = append(d.AttrWrites, w)
		}
	}
	for _, wo := range o.List("serverSideRpcRequests") {
		mark := o.Problems().Mark()
		w := parseWrite(wo, d, "requestFilter", true)
		if !o.Problems().SkipSince(mark) {
			d.RPC = append(d.RPC, w)
		}
	}
	o.Done()
	return d
}

func parseV3(o *spec.Obj) *V3User {
	u := &V3User{}
	u.User = o.RequiredStr("user")
	u.AuthKey = o.Str("authKey", "")
	u.PrivKey = o.Str("privacyKey", "")
	u.ContextName = o.Str("contextName", "")
	auth := o.Enum("authProtocol", "", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
	priv := o.Enum("privacyProtocol", "", "DES", "AES", "AES192", "AES256", "AES192C", "AES256C")
	u.AuthProtocol = map[string]gosnmp.SnmpV3AuthProtocol{"": gosnmp.NoAuth, "MD5": gosnmp.MD5, "SHA": gosnmp.SHA,
		"SHA224": gosnmp.SHA224, "SHA256": gosnmp.SHA256, "SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512}[auth]
	u.PrivProtocol = map[string]gosnmp.SnmpV3PrivProtocol{"": gosnmp.NoPriv, "DES": gosnmp.DES, "AES": gosnmp.AES,
		"AES192": gosnmp.AES192, "AES256": gosnmp.AES256, "AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C}[priv]
	def := "noAuthNoPriv"
	switch {
	case u.PrivProtocol != gosnmp.NoPriv:
		def = "authPriv"
	case u.AuthProtocol != gosnmp.NoAuth:
		def = "authNoPriv"
	}
	switch o.Enum("securityLevel", def, "noAuthNoPriv", "authNoPriv", "authPriv") {
	case "noAuthNoPriv":
		u.Level = gosnmp.NoAuthNoPriv
	case "authNoPriv":
		u.Level = gosnmp.AuthNoPriv
		if u.AuthProtocol == gosnmp.NoAuth {
			o.Errorf("authProtocol", "is required for securityLevel authNoPriv")
		}
	case "authPriv":
		u.Level = gosnmp.AuthPriv
		if u.AuthProtocol == gosnmp.NoAuth || u.PrivProtocol == gosnmp.NoPriv {
			o.Errorf("privacyProtocol", "authProtocol and privacyProtocol are required for securityLevel authPriv")
		}
	}
	// Never echo the keys: only their length matters to the check.
	if u.Level&gosnmp.AuthNoPriv != 0 && len(u.AuthKey) < 8 {
		o.Errorf("authKey", "must be at least 8 characters")
	}
	if u.Level == gosnmp.AuthPriv && len(u.PrivKey) < 8 {
		o.Errorf("privacyKey", "must be at least 8 characters")
	}
	return u
}

// timeoutRange: a timeout in seconds (upstream's unit), fractions allowed.
// pollRange: pollPeriod is whole milliseconds.
var pollRange = spec.Dur{Unit: time.Millisecond, Min: 1, Max: 1 << 40, Whole: true}

var timeoutRange = spec.Dur{MinExclusive: true, Max: 3600}

// oids reads key as one OID or a list of OIDs.
func oids(o *spec.Obj, key string, required bool) []string {
	v, ok := o.Any(key)
	if !ok {
		if required {
			o.Errorf(key, "is required")
		}
		return nil
	}
	var out []string
	switch t := v.(type) {
	case string:
		out = []string{t}
	case []any:
		out = o.Strings(key)
	default:
		o.Errorf(key, "expected an OID string or a list of them, got %s", spec.Describe(v))
		return nil
	}
	for i, s := range out {
		n, err := normOID(s)
		if err != nil {
			o.Errorf(key, "%v", err)
			return nil
		}
		out[i] = n
	}
	if required && len(out) == 0 {
		o.Errorf(key, "must name at least one OID")
	}
	return out
}

// normOID checks a numeric OID and gives it the leading dot gosnmp uses.
func normOID(s string) (string, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), ".")
	if t == "" {
		return "", fmt.Errorf("empty OID %q", s)
	}
	for _, part := range strings.Split(t, ".") {
		if part == "" || len(part) > 10 || strings.Trim(part, "0123456789") != "" {
			return "", fmt.Errorf("%q is not a numeric OID (want e.g. \"1.3.6.1.2.1.1.1.0\")", s)
		}
	}
	return "." + t, nil
}

func parseKey(o *spec.Obj, d *DeviceConfig, needKey bool) *KeyConfig {
	k := &KeyConfig{Path: o.Path()}
	if needKey {
		k.Key = o.RequiredStr("key")
	}
	k.Method = strings.ToLower(o.RequiredStr("method"))
	known := false
	for _, m := range readMethods {
		known = known || m == k.Method
	}
	if !known && k.Method != "" {
		if k.Method == "set" || k.Method == "multiset" {
			o.Errorf("method", "%q writes; it belongs in attributeUpdateRequests or serverSideRpcRequests", k.Method)
		} else {
			o.Errorf("method", "unknown method %q (want one of: %s)", k.Method, strings.Join(readMethods, ", "))
		}
	}
	if k.Method == "bulkget" {
		k.ScalarOIDs = oids(o, "scalarOid", false)
		k.RepeatingOIDs = oids(o, "repeatingOid", false)
		k.MaxListSize = int(o.IntRange("maxListSize", 1, 1, 1000))
		if len(k.ScalarOIDs)+len(k.RepeatingOIDs) == 0 {
			o.Errorf("scalarOid", "bulkget needs scalarOid or repeatingOid")
		}
		o.Known("oid")
	} else {
		k.OIDs = oids(o, "oid", true)
		o.Known("scalarOid", "repeatingOid", "maxListSize")
	}
	if len(k.OIDs) > 1 && (k.Method == "get" || k.Method == "getnext" || k.Method == "walk" || k.Method == "table" || k.Method == "bulktable") {
		o.Errorf("oid", "method %q takes one OID, got %d (use multiget, multiwalk or bulkwalk)", k.Method, len(k.OIDs))
	}
	k.BulkSize = int(o.IntRange("bulkSize", DefaultBulkSize, 1, 255))
	o.Known("numBaseNodes")
	k.Community = o.Str("community", "")
	k.Timeout = o.Duration("timeout", d.Timeout, timeoutRange)
	k.Report = report.Parse(o)
	if needKey {
		o.Done()
	}
	return k
}

func parseWrite(o *spec.Obj, d *DeviceConfig, filterKey string, rpc bool) *WriteConfig {
	w := &WriteConfig{Path: o.Path()}
	f := o.RequiredStr(filterKey)
	if f != "" {
		re, err := pyre.Compile(f, pyre.FullMatch)
		if err != nil {
			o.Errorf(filterKey, "invalid pattern %q: %v", f, err)
		}
		w.Filter = re
	}
	w.Method = strings.ToLower(o.RequiredStr("method"))
	w.Timeout = o.Duration("timeout", d.Timeout, timeoutRange)
	switch w.Method {
	case "set":
		w.OIDs = oids(o, "oid", true)
		if len(w.OIDs) > 1 {
			o.Errorf("oid", "set takes one OID, got %d (use multiset)", len(w.OIDs))
		}
	case "multiset":
		if m := o.Obj("mappings"); m != nil {
			w.Mappings = map[string]string{}
			for oid := range m.Raw() {
				n, err := normOID(oid)
				if err != nil {
					m.Errorf(oid, "%v", err)
					continue
				}
				w.Mappings[n] = m.Str(oid, "")
			}
		} else if !rpc {
			o.Errorf("mappings", "multiset needs mappings {oid: value}")
		}
		o.Known("oid")
	default:
		if !rpc {
			o.Errorf("method", "unknown method %q (want set or multiset)", w.Method)
			break
		}
		k := parseKey(o, d, false)
		w.Read = k
		w.OIDs = k.OIDs
	}
	o.Done()
	return w
}

// valueTemplate reports whether a multiset mapping stands for the value
// received ("${attribute}", or any "${...}").
func valueTemplate(s string) bool {
	return strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}")
}

// DefaultTrapPort is the standard SNMP trap port. Binding it needs
// privileges; files usually name another (the sample uses 1162).
const DefaultTrapPort = 162

// TrapConfig is the traps section: a receiver of traps and informs. Upstream
// 3.8 has none, so the keys are ours (README: differences from upstream).
type TrapConfig struct {
	Path string
	Host string
	Port int
	// Communities are the v1/v2c communities accepted; Users the v3 users.
	Communities []string
	Users       []*V3User
	// EngineID is the receiver's own snmpEngineID (raw bytes), which v3
	// senders of informs discover; empty: v3 informs are not answered.
	EngineID string
	// DeviceName receives traps from a source that is no polled device's
	// ip; empty: such traps are counted as unmatched.
	DeviceName string
	DeviceType string
	Mapping    []*TrapMapping
}

// TrapMapping is one traps.mapping[] entry: what a trap's varbinds become.
type TrapMapping struct {
	Path string
	// TrapOID selects the traps this entry applies to (leading dot, as
	// gosnmp names OIDs); empty: every trap.
	TrapOID string
	// TrapKey, when set, is a telemetry key that receives the trap's OID.
	TrapKey    string
	Attributes []*TrapKey
	Telemetry  []*TrapKey
}

// TrapKey maps the varbind whose OID is OID, or lies under it (an
// instance such as ifIndex.3), to Key.
type TrapKey struct {
	Key    string
	OID    string
	Report protocols.ReportStrategy
}

// trapFields is the traps section's field table.
var trapFields = spec.Section{Path: "traps", Doc: "trap and inform receiver (ours: upstream 3.8 has none)", Fields: []spec.Field{
	{Key: "host", Type: spec.TypeString, Default: "127.0.0.1", Doc: "address to listen on (UDP); `0.0.0.0` for every interface"},
	{Key: "port", Type: spec.TypeInteger, Default: int64(DefaultTrapPort), Min: 1, Max: 65535, Doc: "UDP port (below 1024 needs privileges)"},
	{Key: "communities", Type: spec.TypeList, Doc: "v1/v2c communities accepted (`[\"public\"]`, with a warning, when absent)"},
	{Key: "users", Type: spec.TypeList, Doc: "v3 users accepted"},
	{Key: "engineId", Type: spec.TypeString, Doc: "the receiver's snmpEngineID in hex (10 to 64 digits); needed for v3 informs"},
	{Key: "deviceName", Type: spec.TypeString, Doc: "device for traps whose source is no device's `ip` (absent: counted as unmatched)"},
	{Key: "deviceType", Type: spec.TypeString, Default: "default", Doc: "profile of that device"},
	{Key: "mapping", Type: spec.TypeList, Required: true, Doc: "what traps' varbinds become"},
}}

// trapUserFields: traps.users[].
var trapUserFields = spec.Section{Path: "traps.users[]", Doc: "one v3 user (keys as in devices[]; never logged)", Fields: []spec.Field{
	{Key: "user", Type: spec.TypeString, Required: true, Doc: "user name"},
	{Key: "securityLevel", Type: spec.TypeString, Doc: "`noAuthNoPriv`, `authNoPriv` or `authPriv` (derived from the protocols when absent)"},
	{Key: "authProtocol", Type: spec.TypeString, Doc: "MD5, SHA, SHA224, SHA256, SHA384 or SHA512"},
	{Key: "authKey", Type: spec.TypeString, Doc: "authentication passphrase (8 characters or more)"},
	{Key: "privacyProtocol", Type: spec.TypeString, Doc: "DES, AES, AES192, AES256, AES192C or AES256C"},
	{Key: "privacyKey", Type: spec.TypeString, Doc: "privacy passphrase (8 characters or more)"},
}}

// trapMappingFields: traps.mapping[].
var trapMappingFields = spec.Section{Path: "traps.mapping[]", Doc: "the traps one entry applies to and the keys it makes", Fields: []spec.Field{
	{Key: "trapOid", Type: spec.TypeString, Doc: "trap OID (v1 traps as RFC 3584 translates them); absent: every trap"},
	{Key: "trapKey", Type: spec.TypeString, Doc: "telemetry key that receives the trap's OID"},
	{Key: "attributes", Type: spec.TypeList, Doc: "varbinds sent as attributes"},
	{Key: "telemetry", Type: spec.TypeList, Doc: "varbinds sent as telemetry"},
}}

// trapKeyFields: traps.mapping[].attributes[] and telemetry[].
var trapKeyFields = spec.Section{Path: "traps.mapping[].telemetry[]", Doc: "one varbind (attributes[] alike)", Fields: []spec.Field{
	{Key: "key", Type: spec.TypeString, Required: true, Doc: "key on the platform"},
	{Key: "oid", Type: spec.TypeString, Required: true, Doc: "varbind OID; a varbind under it (an instance) matches too"},
	{Key: "reportStrategy", Type: spec.TypeObject, Doc: "default `ON_RECEIVED`: every trap is reported"},
}}

func parseTraps(o *spec.Obj) *TrapConfig {
	t := &TrapConfig{Path: o.Path()}
	t.Host = trapFields.Str(o, "host")
	t.Port = int(trapFields.Int(o, "port"))
	if o.Has("communities") {
		t.Communities = o.Strings("communities")
	} else {
		o.Warnf("communities", "absent; accepting v1/v2c traps with community \"public\"")
		t.Communities = []string{"public"}
	}
	users := map[string]bool{}
	for _, uo := range o.List("users") {
		u := parseV3(uo)
		if u.User != "" && users[u.User] {
			uo.Errorf("user", "%q is listed twice", u.User)
		}
		users[u.User] = true
		uo.Known("contextName")
		uo.Done()
		t.Users = append(t.Users, u)
	}
	if id := trapFields.Str(o, "engineId"); id != "" {
		raw, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(id, "0x"), "0X"))
		if err != nil || len(raw) < 5 || len(raw) > 32 {
			o.Errorf("engineId", "%q is not 5 to 32 bytes in hex (e.g. \"80001f8880c0ffee0001\")", id)
		} else {
			t.EngineID = string(raw)
		}
	}
	t.DeviceName = trapFields.Str(o, "deviceName")
	t.DeviceType = trapFields.Str(o, "deviceType")
	if !o.Has("mapping") {
		o.Errorf("mapping", "is required")
	}
	for _, mo := range o.List("mapping") {
		mark := o.Problems().Mark()
		m := parseTrapMapping(mo)
		if !o.Problems().SkipSince(mark) {
			t.Mapping = append(t.Mapping, m)
		}
	}
	o.Done()
	return t
}

func parseTrapMapping(o *spec.Obj) *TrapMapping {
	m := &TrapMapping{Path: o.Path()}
	if o.Has("trapOid") {
		if ids := oids(o, "trapOid", true); len(ids) == 1 {
			m.TrapOID = ids[0]
		} else if len(ids) > 1 {
			o.Errorf("trapOid", "takes one OID, got %d (use one mapping entry per trap)", len(ids))
		}
	}
	m.TrapKey = trapMappingFields.Str(o, "trapKey")
	for _, sec := range []string{"attributes", "telemetry"} {
		for _, ko := range o.List(sec) {
			k := &TrapKey{Key: ko.RequiredStr("key"), Report: report.Parse(ko)}
			if ids := oids(ko, "oid", true); len(ids) == 1 {
				k.OID = ids[0]
			} else if len(ids) > 1 {
				ko.Errorf("oid", "takes one OID, got %d", len(ids))
			}
			ko.Done()
			if sec == "attributes" {
				m.Attributes = append(m.Attributes, k)
			} else {
				m.Telemetry = append(m.Telemetry, k)
			}
		}
	}
	if m.TrapKey == "" && len(m.Attributes)+len(m.Telemetry) == 0 {
		o.Errorf("telemetry", "the entry maps nothing (give telemetry, attributes or trapKey)")
	}
	o.Done()
	return m
}
