// Package config loads the upstream gateway's main file (tb_gateway.json or
// YAML) and its connector files, applies TB_GW_* environment overrides and
// validates everything, collecting every problem with its file and path.
package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Security holds the platform credentials (thingsboard.security).
type Security struct {
	Type        string // accessToken | tlsAccessToken | usernamePassword | x509Certificate
	AccessToken string
	ClientID    string
	Username    string
	Password    string
	CACert      string // file path
	Cert        string // file path
	PrivateKey  string // file path
	Insecure    bool
}

// ThingsBoard is the platform connection (the thingsboard section).
type ThingsBoard struct {
	Host      string
	Port      int
	QoS       byte
	KeepAlive time.Duration
	Security  Security
	// Provisioning obtains credentials when Security has none (nil: absent).
	Provisioning        *Provisioning
	MaxPayloadSize      int
	MinPackSendDelay    time.Duration
	Report              protocols.ReportStrategy
	RemoteConfiguration bool
	// SyncSharedAttributes requests a device's declared shared attributes
	// when it connects (syncDevicesSharedAttributesOnConnect).
	SyncSharedAttributes bool
	StatsEnabled         bool
	StatsPeriod          time.Duration
}

// Storage is the journal configuration after mapping upstream storage types.
type Storage struct {
	UpstreamType string // memory | file | sqlite | badger
	Durable      bool   // false: the memory journal
	Dir          string // badger directory
	MaxRecords   int64
	MaxBytes     int64
	MaxAge       time.Duration
	ReadBatch    int
	// SyncWrites makes every group commit reach the disk before it counts as
	// accepted, so power loss loses nothing acknowledged to devices.
	SyncWrites bool
	// CommitInterval is how long the first event of a group commit waits for
	// company (commit_interval_ms). With SyncWrites every commit is a disk
	// sync that costs CPU, so a steady trickle of polls is batched longer.
	CommitInterval time.Duration
	// MinFreeBytes is the space the Badger journal leaves free on its
	// filesystem (min_free_mb): below it new events are refused and counted
	// as dropped (disk_full) rather than risking a full disk, on which
	// badger's mmap'ed writes would crash the process.
	MinFreeBytes int64
	// Note explains how an upstream storage type was mapped; logged once at start.
	Note string
}

// Connector is one entry of the connectors list, already built by its protocol.
type Connector struct {
	Name      string
	Type      string
	File      string // path of the connector file
	Connector protocols.Connector
	// Build rebuilds the connector from the same config; the connector actor
	// calls it on every (re)start so a restart starts from a clean state.
	Build func() (protocols.Connector, error)
	// RemoteLogging sends this connector's log lines to the platform
	// (enableRemoteLogging, as upstream).
	RemoteLogging bool
	// Sum is the SHA-256 of the connector file as loaded: Diff tells an
	// edited connector from an unchanged one by it, without keeping the file.
	Sum [sha256.Size]byte
}

// Gateway is the whole validated configuration.
type Gateway struct {
	File        string
	ThingsBoard ThingsBoard
	Storage     Storage
	Connectors  []Connector
	Filter      *DeviceFilter // nil: every device passes
	Activity    Activity
	HTTP        HTTP // observability endpoint (our own "http" section)
	// Services are the gateway-wide servers of the linked protocols that
	// the main file switches on (the gRPC connector server).
	Services []Service
	Logs     Logs // logs.level, when set
	// Unsupported lists the connectors of types this build does not have:
	// they are left out and reported, and the others run.
	Unsupported []Unsupported
	Resources   Resources
	Problems    *spec.Problems
}

// Unsupported is a configured connector this build cannot run.
type Unsupported struct {
	Name, Type, Path string
	// Reason is the line reported for it (also a Skipped problem).
	Reason string
}

// Load reads and validates the main file and every connector file. It returns
// the config and all problems; err is non-nil when there is any error (the
// warnings are in cfg.Problems either way). getenv is os.Getenv in production.
func Load(path string, getenv func(string) string) (*Gateway, error) {
	return load(path, os.ReadFile, getenv)
}

// load is Load with the main and connector files read by read, so a remote
// change is validated from memory before anything is written. Files the
// thingsboard section refers to (certificates, the filter list) are still
// checked on disk, and a connector's Build always reads its real file.
func load(path string, read func(string) ([]byte, error), getenv func(string) string) (*Gateway, error) {
	ps := &spec.Problems{}
	g := &Gateway{File: path, Problems: ps}
	raw, err := read(path)
	if err != nil {
		ps.Errorf(path, "", "cannot read: %v", unwrapPath(err))
		return g, ps.Err()
	}
	root := parseAny(ps, filepath.Base(path), raw, isYAML(path))
	if root == nil {
		return g, ps.Err()
	}
	dir := filepath.Dir(path)
	g.ThingsBoard = parseThingsBoard(root, dir, getenv)
	if tb := root.Obj("thingsboard"); tb != nil {
		// Parsed apart from the connection keys: they need the config
		// directory (the filter file) and are not part of the platform session.
		g.Filter = parseFilter(tb, dir)
		g.Activity = parseActivity(tb)
	}
	g.Storage = parseStorage(root, dir)
	g.HTTP = parseHTTP(root, getenv)
	g.Logs = parseLogs(root)
	g.Resources = parseResources(root)
	g.Services = parseServices(root)
	root.Known("connectors")
	g.Connectors, g.Unsupported = parseConnectors(root, dir, g.ThingsBoard.Report, read)
	if la := parseLocalAPI(root, path, g.ThingsBoard.Report, g.Connectors); la != nil {
		g.Connectors = append(g.Connectors, *la)
	}
	root.Done()
	return g, ps.Err()
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isYAML(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// parseAny parses JSON or YAML into an Obj.
func parseAny(ps *spec.Problems, file string, raw []byte, asYAML bool) *spec.Obj {
	if !asYAML {
		return spec.Parse(ps, file, raw)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		ps.Errorf(file, "", "invalid YAML: %v", err)
		return nil
	}
	if m == nil {
		ps.Errorf(file, "", "expected a mapping at the top level")
		return nil
	}
	return spec.New(ps, file, "", normalizeYAML(m).(map[string]any))
}

// normalizeYAML turns yaml.v3's map[any]any (non-string keys) into the
// map[string]any shape the JSON path uses.
func normalizeYAML(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeYAML(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalizeYAML(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = normalizeYAML(x)
		}
	}
	return v
}

var securityTypes = []string{"accessToken", "tlsAccessToken", "usernamePassword", "x509Certificate"}

func parseThingsBoard(root *spec.Obj, dir string, getenv func(string) string) ThingsBoard {
	tb := ThingsBoard{Port: 1883, QoS: 1, KeepAlive: 120 * time.Second, MaxPayloadSize: 8196,
		MinPackSendDelay: 50 * time.Millisecond, StatsPeriod: 60 * time.Second}
	o := root.Obj("thingsboard")
	if o == nil {
		if !root.Has("thingsboard") {
			root.Errorf("thingsboard", "is required")
		}
		o = spec.New(root.Problems(), root.File(), "thingsboard", map[string]any{})
	}
	applyEnv(o, getenv)
	provEnv := applyProvisioningEnv(o, getenv)
	tb.Host = o.RequiredStr("host")
	tb.Port = int(o.IntRange("port", 1883, 1, 65535))
	tb.QoS = byte(o.IntRange("qos", 1, 0, 1))
	tb.KeepAlive = time.Duration(o.IntRange("keep_alive", 120, 1, 65535)) * time.Second
	tb.MaxPayloadSize = int(o.IntRange("maxPayloadSizeBytes", 8196, 256, 256<<20))
	tb.MinPackSendDelay = time.Duration(o.IntRange("minPackSendDelayMS", 50, 0, 60000)) * time.Millisecond
	tb.RemoteConfiguration = o.Bool("remoteConfiguration", false)
	tb.SyncSharedAttributes = o.Bool("syncDevicesSharedAttributesOnConnect", true)
	tb.Report = report.Parse(o)
	tb.StatsEnabled = true
	if st := o.Obj("statistics"); st != nil {
		tb.StatsEnabled = st.Bool("enable", true)
		tb.StatsPeriod = time.Duration(st.IntRange("statsSendPeriodInSeconds", 60, 1, 86400)) * time.Second
		st.Known("enableCustom", "customStatsSendPeriodInSeconds", "configuration", "commands")
		st.Done()
	}
	// Accepted for compatibility; later issues give them meaning.
	o.Known("remoteShell", "latencyDebugMode", "deviceFiltering", "minPackSizeToSend",
		"checkConnectorsConfigurationInSeconds", "handleDeviceRenaming", "checkingDeviceActivity",
		"rateLimits", "dpRateLimits", "messagesRateLimits",
		"deviceMessagesRateLimits", "deviceRateLimits", "deviceDpRateLimits", "managerEnabled",
		"proxy_host", "proxy_port")
	tb.Provisioning = parseProvisioning(o, dir, provEnv)
	if provEnv && o.Has("security") {
		// As upstream: provisioning variables replace the file's credentials.
		o.Warnf("security", "ignored: TB_GW_PROVISIONING_DEVICE_KEY and _SECRET are set")
	} else {
		tb.Security = parseSecurity(o, tb.Provisioning != nil)
		if tb.Provisioning != nil && tb.Security.Type != "" {
			o.Warnf("provisioning", "ignored: security is set, and configured credentials win (as upstream)")
		}
	}
	if tb.Provisioning != nil && tb.Security.Type == "" {
		checkStoredCredentials(o, tb.Provisioning)
	}
	o.Done()
	return tb
}

func parseSecurity(o *spec.Obj, provisioning bool) Security {
	var s Security
	so := o.Obj("security")
	if so == nil {
		if !provisioning {
			o.Errorf("security", "is required (or set TB_GW_ACCESS_TOKEN)")
		}
		return s
	}
	s.AccessToken = so.Str("accessToken", "")
	s.ClientID = so.Str("clientId", "")
	s.Username = so.Str("username", "")
	s.Password = so.Str("password", "")
	s.CACert = so.Str("caCert", "")
	s.Cert = so.Str("cert", "")
	s.PrivateKey = so.Str("privateKey", "")
	s.Insecure = so.Bool("insecure", false)
	so.Known("checkCertPeriod", "certificateDaysLeft", "tls")
	def := ""
	switch {
	case s.Cert != "" || s.PrivateKey != "":
		def = "x509Certificate"
	case s.Username != "" || s.Password != "":
		def = "usernamePassword"
	case s.AccessToken != "" && s.CACert != "":
		def = "tlsAccessToken"
	case s.AccessToken != "":
		def = "accessToken"
	}
	s.Type = so.Enum("type", def, securityTypes...)
	switch s.Type {
	case "":
		so.Errorf("", "no credentials: set accessToken, username/password or cert/privateKey")
	case "accessToken", "tlsAccessToken":
		if s.AccessToken == "" {
			so.Errorf("accessToken", "is required for security type %q", s.Type)
		}
		if s.Type == "tlsAccessToken" && s.CACert == "" {
			so.Errorf("caCert", "is required for security type %q", s.Type)
		}
	case "usernamePassword":
		if s.Username == "" && s.ClientID == "" {
			so.Errorf("username", "is required for security type %q", s.Type)
		}
	case "x509Certificate":
		if s.Cert == "" {
			so.Errorf("cert", "is required for security type %q", s.Type)
		}
		if s.PrivateKey == "" {
			so.Errorf("privateKey", "is required for security type %q", s.Type)
		}
	}
	checkSecurityFiles(so, s)
	so.Done()
	return s
}

// envMap lists the TB_GW_* variables and where they land in the thingsboard section.
var envMap = []struct{ env, key string }{
	{"TB_GW_HOST", "host"},
	{"TB_GW_PORT", "port"},
	{"TB_GW_SECURITY_TYPE", "security.type"},
	{"TB_GW_ACCESS_TOKEN", "security.accessToken"},
	{"TB_GW_CA_CERT", "security.caCert"},
	{"TB_GW_PRIVATE_KEY", "security.privateKey"},
	{"TB_GW_CERT", "security.cert"},
	{"TB_GW_CLIENT_ID", "security.clientId"},
	{"TB_GW_USERNAME", "security.username"},
	{"TB_GW_PASSWORD", "security.password"},
	{"TB_GW_PROXY_HOST", "proxy_host"},
	{"TB_GW_PROXY_PORT", "proxy_port"},
}

// applyEnv writes environment overrides into the raw section before it is
// decoded, so they go through exactly the same validation as file values.
func applyEnv(o *spec.Obj, getenv func(string) string) {
	if getenv == nil {
		return
	}
	m := o.Raw()
	for _, e := range envMap {
		v := getenv(e.env)
		if v == "" {
			continue
		}
		target, key := m, e.key
		if sec, rest, ok := strings.Cut(e.key, "."); ok {
			sm, _ := m[sec].(map[string]any)
			if sm == nil {
				sm = map[string]any{}
				m[sec] = sm
			}
			target, key = sm, rest
		}
		target[key] = v
	}
	// Setting a credential through the environment switches the type unless
	// the type was also given, as upstream does.
	if getenv("TB_GW_SECURITY_TYPE") == "" {
		if sm, _ := m["security"].(map[string]any); sm != nil {
			switch {
			case getenv("TB_GW_CERT") != "":
				sm["type"] = "x509Certificate"
			case getenv("TB_GW_USERNAME") != "":
				sm["type"] = "usernamePassword"
			case getenv("TB_GW_ACCESS_TOKEN") != "":
				if _, ok := sm["caCert"]; ok {
					sm["type"] = "tlsAccessToken"
				} else {
					sm["type"] = "accessToken"
				}
			}
		}
	}
}

func parseStorage(root *spec.Obj, dir string) Storage {
	s := Storage{UpstreamType: "memory", MaxRecords: 100000, ReadBatch: 1000}
	o := root.Obj("storage")
	if o == nil {
		s.Note = "no storage section: using the memory journal (data is lost on restart)"
		return s
	}
	s.UpstreamType = o.Enum("type", "memory", "memory", "file", "sqlite", "badger")
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	switch s.UpstreamType {
	case "memory":
		s.ReadBatch = int(o.IntRange("read_records_count", 1000, 1, 1_000_000))
		s.MaxRecords = o.IntRange("max_records_count", 100000, 1, 1<<40)
		s.Note = "storage type memory: using the memory journal (data is lost on restart)"
	case "file":
		s.Durable = true
		s.Dir = abs(o.Str("data_folder_path", "./data/"))
		files := o.IntRange("max_file_count", 5, 1, 1<<20)
		per := o.IntRange("max_records_per_file", 3, 1, 1<<30)
		s.ReadBatch = int(o.IntRange("max_read_records_count", 1000, 1, 1_000_000))
		o.Known("max_records_between_fsync")
		s.MaxRecords = files * per
		s.Note = fmt.Sprintf("storage type file: using the Badger journal in %s, bounded to %d records (max_file_count × max_records_per_file)", s.Dir, s.MaxRecords)
	case "sqlite":
		s.Durable = true
		s.Dir = abs(o.Str("data_file_path", "./data/"))
		s.ReadBatch = int(o.IntRange("max_read_records_count", 1000, 1, 1_000_000))
		sizeMB := o.IntRange("size_limit", 1024, 1, 1<<30)
		dbs := o.IntRange("max_db_amount", 10, 1, 1<<20)
		days := o.IntRange("messages_ttl_in_days", 7, 0, 36500)
		o.Known("messages_ttl_check_in_hours", "writing_batch_size", "oversize_check_period")
		s.MaxBytes = sizeMB * dbs << 20
		s.MaxAge = time.Duration(days) * 24 * time.Hour
		s.Note = fmt.Sprintf("storage type sqlite: using the Badger journal in %s, bounded to %d MB (size_limit × max_db_amount) and %d days", s.Dir, s.MaxBytes>>20, days)
	case "badger":
		s.Durable = true
		s.Dir = abs(o.Str("path", "./data/"))
		s.ReadBatch = int(o.IntRange("read_records_count", 1000, 1, 1_000_000))
		s.MaxRecords = o.IntRange("max_records", 0, 0, 1<<50)
		s.MaxBytes = o.IntRange("max_bytes", 1<<30, 0, 1<<50)
		s.MaxAge = time.Duration(o.IntRange("max_age_hours", 7*24, 0, 1<<20)) * time.Hour
		s.Note = "storage type badger: using the Badger journal in " + s.Dir
	}
	linger := int64(5)
	if s.Durable {
		// 64 MB covers what badger may write after the last accepted event: the
		// rest of a write-ahead log (2 × the memtable, at most 2 × 3 MB), a
		// value-log file (2 × 16 MB) and the tables of a flush and a compaction.
		s.MinFreeBytes = o.IntRange("min_free_mb", 64, 0, 1<<30) << 20
		s.SyncWrites = o.Bool("sync_writes", true)
		if s.SyncWrites {
			linger = 20
		}
	}
	s.CommitInterval = time.Duration(o.IntRange("commit_interval_ms", linger, 1, 1000)) * time.Millisecond
	o.Done()
	return s
}

// upstreamTypes are the connector types the upstream gateway ships. A
// connector of one of them that this build lacks (or an upstream extension
// loaded by class) is left out and reported while the rest runs, as upstream
// does with a connector it cannot load; any other type is a typo and an error.
var upstreamTypes = []string{"bacnet", "ble", "can", "ftp", "knx", "modbus", "mqtt", "ocpp", "odbc", "opcua", "request", "rest", "snmp", "socket", "xmpp"}

// buildTags are the connector types this gateway implements, each linked
// by protocols/all under its tag: a build without one names the tag.
var buildTags = map[string]string{}

func init() {
	for _, typ := range []string{"can", "exec", "grpc", "localapi", "modbus", "mqtt", "opcua", "request", "rest", "snmp", "socket"} {
		buildTags[typ] = "protocols." + typ
	}
}

// BuildTag is the build tag that links the connector type typ, false for a
// type this gateway does not implement.
func BuildTag(typ string) (string, bool) {
	tag, ok := buildTags[typ]
	return tag, ok
}

// typeAliases maps upstream's older type names to the connector that reads
// the same files.
var typeAliases = map[string]string{"opcua_asyncio": "opcua"}

func parseConnectors(root *spec.Obj, dir string, global protocols.ReportStrategy, read func(string) ([]byte, error)) ([]Connector, []Unsupported) {
	var out []Connector
	var unsupported []Unsupported
	names, keys := map[string]string{}, map[string]string{}
	for _, co := range root.List("connectors") {
		name := co.RequiredStr("name")
		// Upstream lowercases the type ("MODBUS", "OPCUA" in its docs and UI exports).
		typ := strings.ToLower(strings.TrimSpace(co.RequiredStr("type")))
		if alias, ok := typeAliases[typ]; ok {
			typ = alias
		}
		if typ == localAPIType {
			co.Errorf("type", "%q is not a connector type: configure the local device API in the main file's %q section", typ, LocalAPISection)
			continue
		}
		file := co.RequiredStr("configuration")
		class := co.Str("class", "")
		key := co.Str("key", "")
		if typ == "grpc" {
			switch {
			case key == "":
				co.Errorf("key", "a grpc connector needs the key its process registers with")
			case key == "auto":
				co.Errorf("key", "%q (a generated key) is not supported; set the key the process registers with", key)
			case keys[key] != "":
				co.Errorf("key", "key already used by connector %q", keys[key])
			default:
				keys[key] = name
			}
		}
		co.Known("useGRPCForce", "id", "sendDataOnlyOnChange", "logLevel", "configVersion")
		remoteLogging := co.Bool("enableRemoteLogging", false)
		co.Done()
		if name != "" {
			if prev, dup := names[name]; dup {
				co.Errorf("name", "duplicate connector name %q (also at %s)", name, prev)
			}
			names[name] = co.Path()
		}
		if typ == "" || file == "" {
			continue
		}
		factory, ok := protocols.Lookup(typ)
		tag, tagged := BuildTag(typ)
		if !ok && (class != "" || tagged || slices.Contains(upstreamTypes, typ)) {
			what := fmt.Sprintf("connector type %q", typ)
			if class != "" {
				what = fmt.Sprintf("custom connector class %q (type %q)", class, typ)
			} else if tagged {
				what = fmt.Sprintf("connector type %q (build tag %s)", typ, tag)
			}
			u := Unsupported{Name: name, Type: typ, Path: co.Path(),
				Reason: fmt.Sprintf("%s is not supported by this build; connector %q is not started, the others run (supported: %s)",
					what, name, strings.Join(connectorTypes(), ", "))}
			root.Problems().Skipf(co.File(), co.KeyPath("type"), "%s", u.Reason)
			unsupported = append(unsupported, u)
			continue
		}
		if !ok {
			hint := ""
			if c := spec.Closest(typ, append(connectorTypes(), upstreamTypes...)); c != "" {
				hint = fmt.Sprintf("did you mean %q? ", c)
			}
			co.Errorf("type", "unknown connector type %q (%swant one of: %s)", typ, hint, strings.Join(connectorTypes(), ", "))
			continue
		}
		path := file
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		c := Connector{Name: name, Type: typ, File: path, RemoteLogging: remoteLogging}
		// configPath, not key: key is the connector's secret, passed below.
		mainFile, configPath := root.File(), co.KeyPath("configuration")
		build := func(ps *spec.Problems, read func(string) ([]byte, error)) (protocols.Connector, [sha256.Size]byte, error) {
			raw, err := read(path)
			if err != nil {
				// Named by the main file's key, which is what the reader has to fix.
				ps.Errorf(mainFile, configPath, "cannot read %q (connector %q): %v", file, name, unwrapPath(err))
				return nil, [sha256.Size]byte{}, ps.Err()
			}
			sum := sha256.Sum256(raw)
			obj := spec.Parse(ps, filepath.Base(path), raw)
			if obj == nil {
				return nil, sum, ps.Err()
			}
			conn, err := factory(protocols.ConnectorConfig{Name: name, Type: typ, Key: key, Config: obj, File: absPath(path), Report: global})
			if err == nil && ps.HasErrors() {
				err = ps.Err()
			}
			return conn, sum, err
		}
		conn, sum, err := build(root.Problems(), read)
		if err != nil {
			// The factory's problems are already collected; a factory error
			// without recorded problems still needs a line.
			if !root.Problems().HasErrors() {
				co.Errorf("configuration", "%v", err)
			}
			continue
		}
		c.Connector, c.Sum = conn, sum
		c.Build = func() (protocols.Connector, error) {
			conn, _, err := build(&spec.Problems{}, os.ReadFile)
			return conn, err
		}
		out = append(out, c)
	}
	return out, unsupported
}

// connectorTypes are the registered types a connectors entry may name:
// all but the local device API, which has its own section.
func connectorTypes() []string {
	return slices.DeleteFunc(protocols.Types(), func(t string) bool { return t == localAPIType })
}

// ParsePort is a helper for flags and env values.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number in 1..65535", s)
	}
	return p, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
