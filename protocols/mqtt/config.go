package mqtt

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Config is the upstream "mqtt" connector file.
type Config struct {
	Name    string
	Broker  Broker
	Mapping []*Mapping
	// RequestsMapping is the section as written, for tools that show it.
	RequestsMapping json.RawMessage
	// Requests is requestsMapping (or the old top-level sections) parsed.
	Requests Requests
	Report   protocols.ReportStrategy
}

// Broker holds the connection settings; nothing here does I/O.
type Broker struct {
	Name                  string
	Host                  string
	Port                  int
	ClientID              string
	Version               int // 3, 4 or 5
	KeepAlive             int // seconds
	CleanSession          bool
	CleanStart            bool
	SessionExpiryInterval int64 // seconds
	Security              Security
}

// Security types.
const (
	SecurityAnonymous    = "anonymous"
	SecurityBasic        = "basic"
	SecurityCertificates = "certificates"
)

// Security is broker authentication.
type Security struct {
	Type             string
	Username         string
	Password         string
	PathToCACert     string
	PathToPrivateKey string
	PathToClientCert string
	Insecure         bool
}

// Converter types.
const (
	TypeJSON   = "json"
	TypeBytes  = "bytes"
	TypeCustom = "custom"
)

// Expression sources.
const (
	SourceMessage  = "message"
	SourceTopic    = "topic"
	SourceConstant = "constant"
)

// Mapping is one mapping[] entry.
type Mapping struct {
	Path            string // JSON path in the file, for messages
	TopicFilter     string
	SubscriptionQos int
	Converter       ConverterConfig
}

// ConverterConfig is mapping[].converter.
type ConverterConfig struct {
	Type                 string
	DeviceInfo           DeviceInfo
	Attributes           []KeyConfig
	Timeseries           []KeyConfig
	AllAttributes        bool // "*"
	AllTimeseries        bool // "*"
	UseReceivedTs        bool
	SendDataOnlyOnChange bool
	TsField              string
	HexMode              bool
	Report               protocols.ReportStrategy
	Extension            string
	ExtensionConfig      json.RawMessage
}

// DeviceInfo says where device name and profile come from.
type DeviceInfo struct {
	NameSource    string
	Name          string
	ProfileSource string
	Profile       string
}

// KeyConfig is one attributes[] / timeseries[] item.
type KeyConfig struct {
	Type      string
	Key       string
	KeySource string // message or topic
	Value     string
	TsField   string
	Report    protocols.ReportStrategy
}

// ParseFile decodes a connector file. Warnings (unknown keys) come back
// separately because they must not stop the connector.
func ParseFile(file string, raw []byte) (*Config, []spec.Problem, error) {
	var ps spec.Problems
	root := spec.Parse(&ps, file, raw)
	if root == nil {
		return nil, ps.Warnings(), ps.Err()
	}
	c := Parse(root)
	return c, ps.Warnings(), ps.Err()
}

// Parse reads a decoded connector object, recording problems in root.
func Parse(root *spec.Obj) *Config {
	c := &Config{Name: root.Str("name", "MQTT Connector")}
	root.Known("id", "type", "logLevel", "enableRemoteLogging", "configVersion", "sendDataOnlyOnChange")
	c.Report = report.Parse(root)
	if b := root.Obj("broker"); b != nil {
		c.Broker = parseBroker(b)
	} else {
		root.Errorf("broker", "is required")
	}
	key := "mapping"
	if !root.Has("mapping") && root.Has("dataMapping") {
		key = "dataMapping"
	}
	root.Known("mapping", "dataMapping")
	for _, m := range root.List(key) {
		c.Mapping = append(c.Mapping, parseMapping(m))
	}
	if v, ok := root.Any("requestsMapping"); ok {
		c.RequestsMapping, _ = json.Marshal(v)
	}
	c.Requests = parseRequests(root)
	// Old-format request sections sit at the top level upstream; with a
	// requestsMapping present they are ignored.
	root.Known(requestSections...)
	root.Done()
	return c
}

// brokerFields is the broker field table: the defaults and ranges
// parseBroker applies and the README's configuration reference.
var brokerFields = spec.Section{Path: "broker", Doc: "the broker the devices publish to", Fields: []spec.Field{
	{Key: "name", Type: spec.TypeString, Default: "", Doc: "label for logs"},
	{Key: "host", Type: spec.TypeString, Required: true, Doc: "broker host"},
	{Key: "port", Type: spec.TypeInteger, Default: int64(1883), Min: 1, Max: 65535, Doc: "broker port"},
	{Key: "clientId", Type: spec.TypeString, Default: "", Doc: "client id; generated when empty"},
	{Key: "version", Type: spec.TypeInteger, Default: int64(5), Doc: "MQTT protocol version: 3, 4 (3.1.1) or 5"},
	{Key: "keepAlive", Type: spec.TypeInteger, Default: int64(60), Min: 0, Max: 65535, Doc: "keep-alive in seconds"},
	{Key: "cleanSession", Type: spec.TypeBoolean, Default: true, Doc: "MQTT 3 clean session"},
	{Key: "cleanStart", Type: spec.TypeBoolean, Default: true, Doc: "MQTT 5 clean start"},
	{Key: "sessionExpiryInterval", Type: spec.TypeInteger, Default: int64(0), Min: 0, Max: 1<<32 - 1, Doc: "MQTT 5 session expiry in seconds"},
	{Key: "security", Type: spec.TypeObject, Doc: "`type` anonymous, basic (username, password) or certificates (pathToCACert, pathToPrivateKey, pathToClientCert, insecure)"},
}}

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{brokerFields} }

func parseBroker(b *spec.Obj) Broker {
	br := Broker{
		Name:     brokerFields.Str(b, "name"),
		Host:     brokerFields.Str(b, "host"),
		Port:     int(brokerFields.Int(b, "port")),
		ClientID: brokerFields.Str(b, "clientId"),
	}
	br.Version = int(b.Int("version", 5))
	if br.Version != 3 && br.Version != 4 && br.Version != 5 {
		b.Errorf("version", "%d is not an MQTT version (want 3, 4 or 5)", br.Version)
		br.Version = 5
	}
	br.KeepAlive = int(brokerFields.Int(b, "keepAlive"))
	br.CleanSession = brokerFields.Bool(b, "cleanSession")
	br.CleanStart = brokerFields.Bool(b, "cleanStart")
	br.SessionExpiryInterval = brokerFields.Int(b, "sessionExpiryInterval")
	b.Known("maxMessageNumberPerWorker", "maxNumberOfWorkers", "maxMessageQueue", "maxProcessingMessageQueue", "sendDataOnlyOnChange")
	if s := b.Obj("security"); s != nil {
		br.Security.Type = s.Enum("type", SecurityAnonymous, SecurityAnonymous, SecurityBasic, SecurityCertificates)
		switch br.Security.Type {
		case SecurityBasic:
			br.Security.Username = s.RequiredStr("username")
			br.Security.Password = s.Str("password", "")
		case SecurityCertificates:
			br.Security.PathToCACert = s.RequiredStr("pathToCACert")
			br.Security.PathToPrivateKey = s.Str("pathToPrivateKey", "")
			br.Security.PathToClientCert = s.Str("pathToClientCert", "")
			br.Security.Insecure = s.Bool("insecure", false)
			if (br.Security.PathToPrivateKey == "") != (br.Security.PathToClientCert == "") {
				s.Errorf("", "pathToPrivateKey and pathToClientCert must be set together")
			}
		}
		s.Known("username", "password", "pathToCACert", "pathToPrivateKey", "pathToClientCert", "insecure")
		s.Done()
	} else {
		br.Security.Type = SecurityAnonymous
	}
	b.Done()
	return br
}

func parseMapping(o *spec.Obj) *Mapping {
	if isOldFormat(o.Raw()) {
		// Rewrite in place so the rest of parsing (and its error paths) is shared.
		o = spec.New(o.Problems(), o.File(), o.Path(), ConvertOldMapping(o.Raw()))
	}
	m := &Mapping{Path: o.Path()}
	m.TopicFilter = o.RequiredStr("topicFilter")
	if m.TopicFilter != "" {
		if err := validTopicFilter(m.TopicFilter); err != nil {
			o.Errorf("topicFilter", "%q %v", m.TopicFilter, err)
		}
	}
	m.SubscriptionQos = int(o.IntRange("subscriptionQos", 1, 0, 2))
	if c := o.Obj("converter"); c != nil {
		m.Converter = parseConverter(c)
	} else {
		o.Errorf("converter", "is required")
	}
	o.Done()
	return m
}

func validTopicFilter(f string) error {
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if l == "#" && i != len(levels)-1 {
			return fmt.Errorf("has '#' before the last level")
		}
		if l != "#" && l != "+" && strings.ContainsAny(l, "#+") {
			return fmt.Errorf("has a wildcard inside a level")
		}
	}
	return nil
}

func parseConverter(c *spec.Obj) ConverterConfig {
	cc := ConverterConfig{}
	cc.Type = c.Enum("type", TypeJSON, TypeJSON, TypeBytes, TypeCustom)
	cc.UseReceivedTs = c.Bool("useReceivedTs", false)
	cc.SendDataOnlyOnChange = c.Bool("sendDataOnlyOnChange", false)
	cc.TsField = c.Str("tsField", "")
	cc.HexMode = c.Bool("hexMode", false)
	cc.Report = report.Parse(c)
	c.Known("useEval", "timeout", "cached")
	cc.Extension = c.Str("extension", "")
	if v, ok := c.Any("extensionConfig"); ok {
		cc.ExtensionConfig, _ = json.Marshal(v)
	}
	if cc.Type == TypeCustom {
		if cc.Extension == "" {
			c.Errorf("extension", "is required for a custom converter")
		}
	}
	if cc.Type != TypeCustom {
		if d := c.Obj("deviceInfo"); d != nil {
			cc.DeviceInfo = parseDeviceInfo(d, cc.Type)
		} else {
			c.Errorf("deviceInfo", "is required")
		}
	} else {
		c.Known("deviceInfo")
	}
	cc.Attributes, cc.AllAttributes = parseKeys(c, "attributes", cc.Type)
	cc.Timeseries, cc.AllTimeseries = parseKeys(c, "timeseries", cc.Type)
	c.Done()
	return cc
}

func parseDeviceInfo(d *spec.Obj, typ string) DeviceInfo {
	di := DeviceInfo{}
	di.NameSource = d.Enum("deviceNameExpressionSource", SourceMessage, SourceMessage, SourceTopic, SourceConstant)
	di.Name = d.RequiredStr("deviceNameExpression")
	di.ProfileSource = d.Enum("deviceProfileExpressionSource", SourceConstant, SourceMessage, SourceTopic, SourceConstant)
	di.Profile = d.Str("deviceProfileExpression", "default")
	checkSource(d, "deviceNameExpression", di.NameSource, di.Name, typ)
	checkSource(d, "deviceProfileExpression", di.ProfileSource, di.Profile, typ)
	d.Done()
	return di
}

func checkSource(o *spec.Obj, key, source, expr, typ string) {
	if expr == "" {
		return
	}
	switch {
	case source == SourceTopic:
		if err := pyre.Valid(expr); err != nil {
			o.Errorf(key, "%v", err)
		}
	case source == SourceMessage && typ == TypeBytes:
		if err := checkTemplate(expr); err != nil {
			o.Errorf(key, "%v", err)
		}
	default:
		if _, err := Compile(expr); err != nil {
			o.Errorf(key, "%v", err)
		}
	}
}

func parseKeys(c *spec.Obj, section, typ string) ([]KeyConfig, bool) {
	v, ok := c.Any(section)
	if !ok {
		return nil, false
	}
	if s, isStr := v.(string); isStr {
		if s == "*" {
			return nil, true
		}
		c.Errorf(section, "%s is neither a list nor \"*\"", spec.Describe(v))
		return nil, false
	}
	var out []KeyConfig
	for _, it := range c.List(section) {
		k := KeyConfig{
			Type:      strings.ToLower(it.Str("type", "raw")),
			Key:       it.RequiredStr("key"),
			KeySource: it.Enum("keySource", SourceMessage, SourceMessage, SourceTopic, SourceConstant),
			Value:     it.RequiredStr("value"),
			TsField:   it.Str("tsField", ""),
			Report:    report.Parse(it),
		}
		it.Known("dayfirst", "yearfirst")
		if k.KeySource == SourceTopic {
			if err := pyre.Valid(k.Key); err != nil {
				it.Errorf("key", "%v", err)
			}
		} else if _, err := Compile(k.Key); err != nil {
			it.Errorf("key", "%v", err)
		}
		if typ == TypeBytes {
			if _, err := parseSlice(k.Value); err != nil {
				it.Errorf("value", "%q %v", k.Value, err)
			}
		} else if _, err := Compile(k.Value); err != nil {
			it.Errorf("value", "%v", err)
		}
		if k.TsField != "" {
			if _, err := Compile(tsExpr(k.TsField)); err != nil {
				it.Errorf("tsField", "%v", err)
			}
		}
		it.Done()
		out = append(out, k)
	}
	return out, false
}

// tsExpr lets tsField be written either as "${time}" or as the bare key.
func tsExpr(s string) string {
	if strings.Contains(s, "${") {
		return s
	}
	return "${" + s + "}"
}

// oldKeys are the upstream pre-3.0 mapping keys that mark the old format.
var oldKeys = []string{
	"deviceNameJsonExpression", "deviceTypeJsonExpression",
	"deviceNameTopicExpression", "deviceTypeTopicExpression",
	"deviceNameExpression", "deviceTypeExpression",
}

func isOldFormat(m map[string]any) bool {
	conv, _ := m["converter"].(map[string]any)
	if conv == nil {
		return false
	}
	if _, ok := conv["deviceInfo"]; ok {
		return false
	}
	for _, k := range oldKeys {
		if _, ok := conv[k]; ok {
			return true
		}
	}
	return false
}

// ConvertOldMapping turns an old-format mapping entry into the current shape.
// It copies rather than mutates so the caller's map stays as the file said.
// Entries already in the new shape come back unchanged (as a copy).
func ConvertOldMapping(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	conv, _ := m["converter"].(map[string]any)
	if conv == nil || !isOldFormat(m) {
		return out
	}
	nc := make(map[string]any, len(conv))
	di := map[string]any{}
	for k, v := range conv {
		switch k {
		case "deviceNameJsonExpression":
			di["deviceNameExpressionSource"] = SourceMessage
			di["deviceNameExpression"] = v
		case "deviceNameTopicExpression":
			di["deviceNameExpressionSource"] = SourceTopic
			di["deviceNameExpression"] = v
		case "deviceTypeJsonExpression":
			di["deviceProfileExpressionSource"] = SourceMessage
			di["deviceProfileExpression"] = v
		case "deviceTypeTopicExpression":
			di["deviceProfileExpressionSource"] = SourceTopic
			di["deviceProfileExpression"] = v
		case "deviceNameExpression":
			// Bytes converters used the bare keys; their source is the payload.
			di["deviceNameExpressionSource"] = SourceMessage
			di["deviceNameExpression"] = v
		case "deviceTypeExpression":
			di["deviceProfileExpressionSource"] = SourceMessage
			di["deviceProfileExpression"] = v
		default:
			nc[k] = v
		}
	}
	if _, ok := di["deviceProfileExpression"]; !ok {
		di["deviceProfileExpressionSource"] = SourceConstant
		di["deviceProfileExpression"] = "default"
	}
	nc["deviceInfo"] = di
	out["converter"] = nc
	return out
}

// ReportStrategies gives the mapping-level strategy and the per-key
// overrides, for report.NewFilter. The legacy sendDataOnlyOnChange means
// ON_CHANGE when no reportStrategy is set. Keys whose name is an expression
// are only known per message, so they follow the mapping-level strategy.
func (m *Mapping) ReportStrategies() (protocols.ReportStrategy, map[string]protocols.ReportStrategy) {
	def := m.Converter.Report
	if !def.IsSet() && m.Converter.SendDataOnlyOnChange {
		def = protocols.ReportStrategy{Type: report.OnChange, Period: report.DefaultPeriod}
	}
	var perKey map[string]protocols.ReportStrategy
	for _, list := range [][]KeyConfig{m.Converter.Attributes, m.Converter.Timeseries} {
		for _, k := range list {
			if !k.Report.IsSet() || k.KeySource == SourceTopic || strings.Contains(k.Key, "${") {
				continue
			}
			if perKey == nil {
				perKey = map[string]protocols.ReportStrategy{}
			}
			perKey[k.Key] = k.Report
		}
	}
	return def, perKey
}
