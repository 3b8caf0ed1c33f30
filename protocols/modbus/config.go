package modbus

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Defaults and limits. Upstream's timeout default (30 s) would let one dead
// device stall its poll period and every other slave on the same link for
// half a minute, so an absent timeout means 1 s here.
const (
	DefaultTimeout             = time.Second
	DefaultConnectAttemptTime  = time.Second
	MinConnectAttemptTime      = 500 * time.Millisecond
	MinConnectAttemptCount     = 2
	MinWaitAfterFailedAttempts = 30 * time.Second
	DefaultBaudrate            = 19200

	maxReadRegisters = 125
	maxReadBits      = 2000
)

// Config is a parsed modbus connector file.
type Config struct {
	Name string
	ID   string
	// Report is the connector-level strategy as written in the file (zero when absent).
	Report protocols.ReportStrategy
	Slaves []*SlaveConfig
	// Server is the `slave` section when the gateway serves it; its
	// reporting device is also in Slaves (first).
	Server *ServerConfig
}

// SlaveConfig is one master.slaves[] entry: one polled device.
type SlaveConfig struct {
	// Path is the entry's JSON path, for messages about it.
	Path string

	Type   string // tcp, udp or serial
	Method string // socket or rtu
	Host   string
	Port   int    // TCP/UDP port
	Device string // serial device path (upstream puts it in "port")
	UnitID uint8
	// Timeout bounds one request.
	Timeout  time.Duration
	Retries  int
	Baudrate int
	Stopbits int
	Bytesize int
	Parity   string // N, E or O

	DeviceName string
	DeviceType string
	ByteOrder  Order
	WordOrder  Order

	PollPeriod              time.Duration
	ConnectAttemptTime      time.Duration
	ConnectAttemptCount     int
	WaitAfterFailedAttempts time.Duration
	DelayBetweenRequests    time.Duration

	// Report is the device strategy after inheritance (slave > file > global).
	Report protocols.ReportStrategy

	Attributes       []*KeyConfig
	Timeseries       []*KeyConfig
	AttributeUpdates []*KeyConfig
	RPC              []*KeyConfig

	// reads is the read plan shared with the slaves of the same keys
	// (keyTables); nil gives the slave a plan of its own.
	reads *sharedPlan
}

// KeyConfig is one attributes/timeseries/attributeUpdates/rpc entry. It
// keeps no path of its own: problems name the key's path while the file is
// parsed, and at run time the slave's endpoint and the key's tag name it.
// There is one per register of every slave (10,000 at 1000 devices), and
// the path string was 0.5 MB of them.
type KeyConfig struct {
	Tag     string
	Address uint16
	Codec
	// Report is the key's own strategy; zero means it inherits the device's.
	Report protocols.ReportStrategy
	// Unusable is why an rpc entry cannot run (a type this build does not
	// know); calling it replies with this error.
	Unusable error
}

// Endpoint is the library URL of the slave's link; slaves with the same
// endpoint share one connection.
func (s *SlaveConfig) Endpoint() string {
	switch s.Type {
	case "serial":
		return "rtu://" + s.Device
	case "udp":
		if s.Method == "rtu" {
			return "rtuoverudp://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		}
		return "udp://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	}
	if s.Method == "rtu" {
		return "rtuovertcp://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	}
	return "tcp://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// Parse reads a modbus connector file. Problems go to root.Problems(); the
// result is usable as far as the file was. global is the inherited
// (thingsboard.reportStrategy) strategy.
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
	names := map[string]string{}
	endpoints := map[string]*SlaveConfig{}
	if cfg.Server = parseServer(root, inherited); cfg.Server != nil {
		s := cfg.Server.Slave
		cfg.Slaves = append(cfg.Slaves, s)
		names[s.DeviceName] = s.Path
		endpoints[s.Endpoint()] = s
	}
	master := root.Obj("master")
	if master == nil {
		if _, present := root.Raw()["master"]; !present && !root.Has("slave") {
			root.Errorf("master", "is required")
		}
		root.Done()
		return cfg
	}
	slaves := master.List("slaves")
	if _, present := master.Raw()["slaves"]; !present {
		master.Errorf("slaves", "is required")
	} else if len(slaves) == 0 {
		master.Warnf("slaves", "no slaves configured, the connector has no devices")
	}
	shared := newKeyTables()
	for _, so := range slaves {
		s := parseSlave(so, inherited)
		shared.share(s)
		if s.DeviceName != "" {
			if prev, dup := names[s.DeviceName]; dup {
				so.Errorf("deviceName", "%q is already used by %s", s.DeviceName, prev)
			}
			names[s.DeviceName] = so.Path()
		}
		if first, ok := endpoints[s.Endpoint()]; ok && cfg.Server != nil && first == cfg.Server.Slave && s.Type == "serial" {
			// The gateway answers on that line; it cannot also poll it.
			so.Errorf("port", "%q is the line the slave section serves", s.Device)
		} else if ok {
			checkSharedLink(so, first, s)
		} else {
			endpoints[s.Endpoint()] = s
		}
		cfg.Slaves = append(cfg.Slaves, s)
	}
	master.Done()
	root.Done()
	return cfg
}

// checkSharedLink warns when slaves on one link disagree on settings that
// belong to the link, since only the first slave's values can apply.
func checkSharedLink(o *spec.Obj, first, s *SlaveConfig) {
	if s.Timeout != first.Timeout {
		o.Warnf("timeout", "differs from %s on the same link %s; the first slave's value is used", first.Path, s.Endpoint())
	}
	if s.Type == "serial" && (s.Baudrate != first.Baudrate || s.Parity != first.Parity || s.Stopbits != first.Stopbits || s.Bytesize != first.Bytesize) {
		o.Warnf("", "serial settings differ from %s on the same port %s; the first slave's values are used", first.Path, s.Device)
	}
}

// slaveFields is the master.slaves[] field table: the defaults and ranges
// parseSlave applies and the README's configuration reference. Keys whose
// default depends on another key (method on type) are read by hand and
// listed here for the reference.
var slaveFields = spec.Section{Path: "master.slaves[]", Doc: "one polled slave", Fields: []spec.Field{
	{Key: "type", Type: spec.TypeEnum, Default: "tcp", Values: []string{"tcp", "udp", "serial"}, Doc: "transport"},
	{Key: "method", Type: spec.TypeEnum, Values: []string{"socket", "rtu"}, Doc: "framing; `socket` for tcp/udp, `rtu` for serial by default"},
	{Key: "host", Type: spec.TypeString, Doc: "slave host (tcp, udp; required there)"},
	{Key: "port", Type: spec.TypeInteger, Default: int64(502), Min: 1, Max: 65535, Doc: "TCP/UDP port, or the serial device path for type serial (required there)"},
	{Key: "unitId", Type: spec.TypeInteger, Default: int64(1), Min: 0, Max: 255, Doc: "Modbus unit id"},
	{Key: "deviceName", Type: spec.TypeString, Required: true, Doc: "device name on the platform"},
	{Key: "deviceType", Type: spec.TypeString, Default: "default", Doc: "device profile"},
	{Key: "timeout", Type: spec.TypeDuration, Default: DefaultTimeout, Dur: timeoutRange, Doc: "one request's time limit; shared by the slaves of a link"},
	{Key: "retries", Type: spec.TypeInteger, Doc: "resends of a failed request (a boolean is accepted as upstream's samples write it)"},
	{Key: "pollPeriod", Type: spec.TypeDuration, Required: true, Dur: requiredMillis, Doc: "time between polls"},
	{Key: "connectAttemptTimeMs", Type: spec.TypeDuration, Default: DefaultConnectAttemptTime, Dur: spec.Positive.In(time.Millisecond), Doc: "first delay after a failed poll (at least 500)"},
	{Key: "connectAttemptCount", Type: spec.TypeInteger, Doc: "failed polls before the device is reported disconnected (at least the minimum)"},
	{Key: "waitAfterFailedAttemptsMs", Type: spec.TypeDuration, Default: MinWaitAfterFailedAttempts, Dur: spec.Positive.In(time.Millisecond), Doc: "longest delay between failed polls (at least 30000)"},
	{Key: "delayBetweenRequestsMs", Type: spec.TypeDuration, Default: time.Duration(0), Dur: delayRange, Doc: "pause between the requests of one poll"},
	{Key: "byteOrder", Type: spec.TypeEnum, Default: "LITTLE", Values: []string{"BIG", "LITTLE"}, Doc: "byte order in a register"},
	{Key: "wordOrder", Type: spec.TypeEnum, Default: "LITTLE", Values: []string{"BIG", "LITTLE"}, Doc: "register order in a multi-register value"},
	{Key: "baudrate", Type: spec.TypeInteger, Default: int64(DefaultBaudrate), Min: 1, Max: 4000000, Doc: "serial speed"},
	{Key: "stopbits", Type: spec.TypeInteger, Default: int64(1), Min: 1, Max: 2, Doc: "serial stop bits"},
	{Key: "bytesize", Type: spec.TypeInteger, Default: int64(8), Min: 5, Max: 8, Doc: "serial data bits"},
	{Key: "parity", Type: spec.TypeEnum, Default: "N", Values: []string{"N", "E", "O"}, Doc: "serial parity"},
	{Key: "reportStrategy", Type: spec.TypeObject, Doc: "overrides the connector's"},
	{Key: "attributes", Type: spec.TypeList, Doc: "registers read as attributes"},
	{Key: "timeseries", Type: spec.TypeList, Doc: "registers read as telemetry"},
	{Key: "attributeUpdates", Type: spec.TypeList, Doc: "shared attributes written to registers"},
	{Key: "rpc", Type: spec.TypeList, Doc: "RPC methods"},
}}

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{slaveFields} }

func parseSlave(o *spec.Obj, inherited protocols.ReportStrategy) *SlaveConfig {
	s := &SlaveConfig{Path: o.Path()}
	s.Type = o.Enum("type", "tcp", "tcp", "udp", "serial")
	defMethod := "socket"
	if s.Type == "serial" {
		defMethod = "rtu"
	}
	s.Method = o.Enum("method", defMethod, "socket", "rtu", "ascii", "tls")
	switch {
	case s.Method == "ascii":
		o.Errorf("method", "\"ascii\" framing is not supported (want socket or rtu)")
	case s.Method == "tls":
		o.Errorf("method", "\"tls\" is not supported yet (want socket or rtu)")
	case s.Type == "serial" && s.Method == "socket":
		o.Errorf("method", "\"socket\" framing needs type tcp or udp; serial lines use \"rtu\"")
	}
	if s.Type == "serial" {
		s.Device = o.RequiredStr("port")
		o.Known("host")
	} else {
		s.Host = o.RequiredStr("host")
		s.Port = int(slaveFields.Int(o, "port"))
	}
	hasTLS := o.Has("tls")
	if o.Has("security") || hasTLS {
		if s.Method != "tls" {
			o.Warnf("tls", "TLS settings are ignored unless method is \"tls\"")
		}
	}
	s.UnitID = uint8(slaveFields.Int(o, "unitId"))
	s.Timeout = slaveFields.Duration(o, "timeout")
	s.Retries = retries(o)
	s.Baudrate = int(slaveFields.Int(o, "baudrate"))
	s.Stopbits = int(slaveFields.Int(o, "stopbits"))
	s.Bytesize = int(slaveFields.Int(o, "bytesize"))
	s.Parity = slaveFields.Enum(o, "parity")
	if o.Bool("handleLocalEcho", false) {
		o.Warnf("handleLocalEcho", "local echo handling is not supported yet, ignored")
	}
	// Upstream reads these but does not act on them either.
	o.Known("strict", "retryOnEmpty", "retryOnInvalid", "repack")
	for _, k := range []string{"uplink_converter", "downlink_converter"} {
		if o.Has(k) {
			o.Errorf(k, "custom converter classes are not supported")
		}
	}

	s.DeviceName = slaveFields.Str(o, "deviceName")
	s.DeviceType = slaveFields.Str(o, "deviceType")
	if s.DeviceType == "" {
		s.DeviceType = "default"
	}
	s.ByteOrder = order(o, "byteOrder", Little)
	s.WordOrder = order(o, "wordOrder", Little)

	s.PollPeriod = slaveFields.Duration(o, "pollPeriod")
	s.ConnectAttemptTime = slaveFields.Duration(o, "connectAttemptTimeMs")
	if s.ConnectAttemptTime < MinConnectAttemptTime {
		o.Warnf("connectAttemptTimeMs", "%d is below the minimum of %d, using the minimum", s.ConnectAttemptTime.Milliseconds(), MinConnectAttemptTime.Milliseconds())
		s.ConnectAttemptTime = MinConnectAttemptTime
	}
	s.ConnectAttemptCount = int(o.IntRange("connectAttemptCount", MinConnectAttemptCount, 0, math.MaxInt32))
	if s.ConnectAttemptCount < MinConnectAttemptCount {
		o.Warnf("connectAttemptCount", "%d is below the minimum of %d, using the minimum", s.ConnectAttemptCount, MinConnectAttemptCount)
		s.ConnectAttemptCount = MinConnectAttemptCount
	}
	s.WaitAfterFailedAttempts = slaveFields.Duration(o, "waitAfterFailedAttemptsMs")
	if s.WaitAfterFailedAttempts < MinWaitAfterFailedAttempts {
		s.WaitAfterFailedAttempts = MinWaitAfterFailedAttempts
	}
	if o.Has("delayBetweenRequestsMs") {
		s.DelayBetweenRequests = slaveFields.Duration(o, "delayBetweenRequestsMs")
	}

	own := report.Parse(o)
	if !own.IsSet() && o.Has("sendDataOnlyOnChange") && o.Bool("sendDataOnlyOnChange", false) {
		// The pre-reportStrategy spelling of ON_CHANGE.
		own = protocols.ReportStrategy{Type: protocols.OnChange, Period: report.DefaultPeriod}
	}
	s.Report = own.Or(inherited)

	s.Attributes = parseKeys(o, "attributes", readKey, s)
	s.Timeseries = parseKeys(o, "timeseries", readKey, s)
	s.AttributeUpdates = parseKeys(o, "attributeUpdates", writeKey, s)
	s.RPC = parseKeys(o, "rpc", rpcKey, s)
	o.Done()
	return s
}

type keyKind int

const (
	readKey keyKind = iota
	writeKey
	rpcKey
)

func parseKeys(o *spec.Obj, section string, kind keyKind, s *SlaveConfig) []*KeyConfig {
	var out []*KeyConfig
	seen := map[string]string{}
	for _, ko := range o.List(section) {
		mark := ko.Problems().Mark()
		k := parseKey(ko, kind, s)
		if kind == rpcKey && k != nil && k.Tag != "" {
			// Upstream loads an rpc entry it cannot run and fails when it
			// is called: keep the method, answer it with the reason.
			if bad := ko.Problems().WarnSince(mark); bad != nil {
				msgs := make([]string, len(bad))
				for i, p := range bad {
					msgs[i] = strings.TrimPrefix(p.Path, ko.Path()+".") + ": " + p.Msg
				}
				k.Unusable = paramErrorf("rpc entry %s is not usable: %s", ko.Path(), strings.Join(msgs, "; "))
			}
		} else if k == nil || ko.Problems().SkipSince(mark) {
			continue
		}
		if prev, dup := seen[k.Tag]; dup && k.Tag != "" {
			ko.Warnf("tag", "%q is also defined at %s", k.Tag, prev)
		}
		seen[k.Tag] = ko.Path()
		out = append(out, k)
	}
	return out
}

// parseKey returns nil only when the entry is unusable; every problem is recorded.
func parseKey(o *spec.Obj, kind keyKind, s *SlaveConfig) *KeyConfig {
	k := &KeyConfig{}
	k.Tag = o.RequiredStr("tag")

	count, hasCount := objectsCount(o)

	var allowed []int
	switch kind {
	case readKey:
		allowed = []int{1, 2, 3, 4}
	case writeKey:
		allowed = []int{5, 6, 15, 16}
	default:
		allowed = []int{1, 2, 3, 4, 5, 6, 15, 16}
	}
	k.FunctionCode = functionCode(o, kind, allowed)

	typeName := o.RequiredStr("type")
	t, err := ParseType(typeName, count, kind != readKey)
	if typeName != "" && err != nil {
		o.Errorf("type", "%s", err)
	}
	k.Type = t

	k.ByteOrder = order(o, "byteOrder", s.ByteOrder)
	k.WordOrder = order(o, "wordOrder", s.WordOrder)
	k.Bit = -1
	k.Round = DefaultRound

	if !hasCount {
		count = 0 // the type decides
	}
	k.Count = count
	if t != TypeInvalid && k.FunctionCode != 0 {
		k.Count = checkCount(o, k, hasCount, typeName, kind)
		// Upstream files use the single-object write codes for multi-object
		// values; the multiple-object codes write the same data correctly.
		switch {
		case k.FunctionCode == 6 && k.Count > 1:
			o.Warnf("functionCode", "6 writes a single register but the key has %d; functionCode 16 is used", k.Count)
			k.FunctionCode = 16
		case k.FunctionCode == 5 && k.Count > 1:
			o.Warnf("functionCode", "5 writes a single coil but the key has %d; functionCode 15 is used", k.Count)
			k.FunctionCode = 15
		}
	}

	address(o, k)

	if o.Has("bit") {
		b := int(o.IntRange("bit", -1, 0, 65535))
		if b >= 0 && t != TypeInvalid && t != TypeBits {
			o.Warnf("bit", "only applies to bits keys, ignored for %s", t)
		} else if b >= 0 && k.FunctionCode != 0 {
			limit := k.RequestCount()
			if !isBitFunction(k.FunctionCode) {
				limit *= 16
			}
			if b >= limit {
				o.Errorf("bit", "%d is out of range (the key has %d bits: 0..%d)", b, limit, limit-1)
			} else {
				k.Bit = b
			}
		}
	}
	k.BitsAsInt = o.Enum("bitTargetType", "bool", "bool", "int") == "int"

	if o.Has("divider") {
		k.Divider = o.Float("divider", 0)
		if k.Divider == 0 {
			o.Errorf("divider", "must not be zero")
		}
	}
	if o.Has("multiplier") {
		k.Multiplier = o.Float("multiplier", 0)
		if k.Multiplier == 0 {
			o.Warnf("multiplier", "0 multiplies every value to zero, ignored")
		}
	}
	if (k.Divider != 0 || k.Multiplier != 0) && k.FunctionCode != 3 && k.FunctionCode != 4 && kind == readKey {
		o.Warnf("", "divider and multiplier only apply to functionCode 3 and 4, ignored")
	}
	if o.Has("round") {
		k.Round = int(o.IntRange("round", DefaultRound, 0, 15))
	}
	k.Variants = variants(o)
	if kind == readKey {
		k.Report = report.Parse(o)
	} else {
		o.Known("value")
	}
	o.Done()
	return k
}

// objectsCount reads objectsCount or its upstream aliases.
func objectsCount(o *spec.Obj) (int, bool) {
	for _, key := range []string{"objectsCount", "registersCount", "registerCount"} {
		if _, ok := o.Raw()[key]; ok {
			n := int(o.IntRange(key, 1, 1, maxReadBits))
			for _, other := range []string{"objectsCount", "registersCount", "registerCount"} {
				o.Known(other)
			}
			return n, true
		}
	}
	o.Known("objectsCount", "registersCount", "registerCount")
	return 1, false
}

func functionCode(o *spec.Obj, kind keyKind, allowed []int) int {
	v, ok := o.Any("functionCode")
	if !ok {
		o.Errorf("functionCode", "is required")
		return 0
	}
	fc := int(o.Int("functionCode", 0))
	for _, a := range allowed {
		if fc == a {
			return fc
		}
	}
	list := make([]string, len(allowed))
	for i, a := range allowed {
		list[i] = strconv.Itoa(a)
	}
	what := "a read"
	switch kind {
	case writeKey:
		what = "a write"
	case rpcKey:
		what = "a read or write"
	}
	o.Errorf("functionCode", "%s is not %s function code (want one of: %s)", spec.Describe(v), what, strings.Join(list, ", "))
	return 0
}

// checkCount reconciles objectsCount with the type and function code and
// returns the count to use.
func checkCount(o *spec.Obj, k *KeyConfig, hasCount bool, typeName string, kind keyKind) int {
	fc, t := k.FunctionCode, k.Type
	bitFC := isBitFunction(fc)
	switch {
	case t == TypeBits:
		if !hasCount {
			return 1
		}
		limit := maxReadBits
		if !bitFC {
			limit = maxReadRegisters
		}
		if k.Count > limit {
			o.Errorf("objectsCount", "%d is more than one request can carry (max %d)", k.Count, limit)
		}
		return k.Count
	case t == TypeString || t == TypeBytes:
		if !hasCount {
			return 1
		}
		if !bitFC && k.Count > maxReadRegisters {
			o.Errorf("objectsCount", "%d is more than one request can carry (max %d)", k.Count, maxReadRegisters)
		}
		return k.Count
	}
	want := t.Registers()
	unit := "registers"
	if bitFC {
		want, unit = t.Width(), "bits"
	}
	if hasCount && k.Count > want && !isLegacyAlias(typeName, t) {
		// Upstream reads objectsCount objects and decodes what the type
		// takes from the start of them (its own default modbus_serial.json
		// reads a 16int from 2 registers). Reads keep the request as
		// configured; writes send only what the type encodes.
		needs := fmt.Sprintf("%d %s", want, unit)
		if want == 1 {
			needs = "1 " + strings.TrimSuffix(unit, "s")
		}
		if kind == readKey {
			o.Warnf("objectsCount", "%d is more than type %s needs (%s): %d are read and the first decoded", k.Count, t, needs, k.Count)
			return k.Count
		}
		o.Warnf("objectsCount", "%d is more than type %s needs (%s): only that is written", k.Count, t, needs)
		return want
	}
	if hasCount && k.Count != want {
		name := strings.ToLower(strings.TrimSpace(typeName))
		if name != t.String() {
			// Legacy alias: the count picked the width, so it cannot mismatch here
			// unless the function code reads bits.
			o.Errorf("objectsCount", "%d does not fit type %q read as %s (want %d %s)", k.Count, typeName, t, want, unit)
		} else {
			o.Errorf("objectsCount", "%d does not fit type %s (want %d %s)", k.Count, t, want, unit)
		}
	}
	return want
}

// isLegacyAlias reports whether typeName is an upstream alias (int, long...)
// whose width came from objectsCount rather than from the name.
func isLegacyAlias(typeName string, t DataType) bool {
	return strings.ToLower(strings.TrimSpace(typeName)) != t.String()
}

func address(o *spec.Obj, k *KeyConfig) {
	v, ok := o.Any("address")
	if !ok {
		o.Errorf("address", "is required")
		return
	}
	if s, isStr := v.(string); isStr {
		// A leading minus is a (bad) number, reported as out of range below.
		if t := strings.TrimSpace(s); len(t) > 1 && strings.Contains(t[1:], "-") {
			o.Errorf("address", "range %q is not supported yet (use one key per address)", s)
			return
		}
	}
	a := o.IntRange("address", 0, 0, 65535)
	k.Address = uint16(a)
	if n := k.RequestCount(); int(a)+n-1 > 65535 {
		o.Errorf("address", "%d with %d objects runs past address 65535", a, n)
	}
}

func variants(o *spec.Obj) map[string]protocols.Value {
	vo := o.Obj("variants")
	if vo == nil {
		return nil
	}
	out := map[string]protocols.Value{}
	for key, raw := range vo.Raw() {
		vo.Known(key)
		switch x := raw.(type) {
		case string:
			out[key] = protocols.String(x)
		case bool:
			out[key] = protocols.Bool(x)
		case json.Number:
			if i, err := x.Int64(); err == nil {
				out[key] = protocols.Int(i)
			} else if f, err := x.Float64(); err == nil {
				out[key] = protocols.Float(f)
			}
		case float64:
			out[key] = protocols.Float(x)
		default:
			vo.Errorf(key, "variant label must be a string, number or boolean, got %s", spec.Describe(raw))
		}
	}
	return out
}

// Duration keys as upstream writes them: timeout in seconds, the rest in
// milliseconds.
var (
	timeoutRange   = spec.Dur{MinExclusive: true, Max: 3600}
	requiredMillis = spec.Dur{Unit: time.Millisecond, MinExclusive: true, Required: true}
	delayRange     = spec.Dur{Unit: time.Millisecond, Max: 3600e3}
)

func order(o *spec.Obj, key string, def Order) Order {
	s := o.Enum(key, def.String(), "BIG", "LITTLE")
	if s == "BIG" {
		return Big
	}
	return Little
}

// retries accepts a count or, as some upstream samples write it, a boolean.
func retries(o *spec.Obj) int {
	v, ok := o.Any("retries")
	if !ok {
		return 3
	}
	if b, isBool := v.(bool); isBool {
		if b {
			return 3
		}
		return 0
	}
	return int(o.IntRange("retries", 3, 0, 100))
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Float64()
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(strings.TrimSpace(x), 64)
	}
	return 0, fmt.Errorf("not a number")
}
