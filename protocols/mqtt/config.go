package mqtt

import (
	"encoding/json"

	"github.com/industryos/gateway/protocols"
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
