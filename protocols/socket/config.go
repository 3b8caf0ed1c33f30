package socket

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Sample is an example `socket` connector file (sample.json).
//
//go:embed sample.json
var Sample []byte

// Defaults, as upstream.
const (
	DefaultAddress    = "127.0.0.1"
	DefaultPort       = 50000
	DefaultBufferSize = 1024
	DefaultEncoding   = "utf-8"
	// DefaultMaxConnections bounds concurrent TCP peers (upstream has no
	// bound: one thread each). Connections over it are closed and counted.
	DefaultMaxConnections = 4096
	// maxBufferSize bounds one message; larger is a config error.
	maxBufferSize = 1 << 20
)

// Framing of a TCP stream into messages.
const (
	FramingLine  = "line"  // up to "\n" (a trailing "\r" is dropped too); the default
	FramingFixed = "fixed" // exactly bufferSize bytes
	FramingRead  = "read"  // whatever one read returns, at most bufferSize bytes (upstream)
)

// Config is a parsed `socket` connector file.
type Config struct {
	Name string
	// Type is "TCP" or "UDP".
	Type    string
	Address string
	Port    int
	// BufferSize is the longest message: a longer line or datagram is
	// counted as malformed and dropped.
	BufferSize     int
	Framing        string
	MaxConnections int
	// Old is set for upstream's older flat layout (type/address/port at
	// the top level, addressFilter on devices), which upstream converts.
	Old     bool
	Report  protocols.ReportStrategy
	Devices []*DeviceConfig
}

// ListenAddr is the address the server binds.
func (c *Config) ListenAddr() string {
	return netJoin(c.Address, c.Port)
}

func netJoin(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// DeviceConfig is one devices[] entry.
type DeviceConfig struct {
	Path string
	Name string
	Type string
	// Address is the filter as written; a peer "ip:port" matches when it
	// equals it or fully matches it with each `*` read as `.*`.
	Address  string
	match    *pyre.Regexp // nil when the filter is not a valid pattern (then compared as text)
	Encoding Encoding
	// Telemetry and Attributes are the keys, in file order.
	Telemetry  []*KeyConfig
	Attributes []*KeyConfig
	Requests   []*AttrRequest
	Updates    []*Downlink
	RPC        []*Downlink
	// Report is the device's reportStrategy (zero: inherit).
	Report protocols.ReportStrategy
	// Script, when set, is the Starlark file that converts the device's
	// messages instead of telemetry and attributes; ScriptConfig is the
	// device's entry, its msg.config.
	Script       string
	ScriptKey    string // the key that named it, for errors
	ScriptConfig json.RawMessage
}

// KeyConfig is one telemetry[] or attributes[] entry.
type KeyConfig struct {
	Path   string
	Key    string
	Slice  Slice
	Report protocols.ReportStrategy
}

// AttrRequest is one attributeRequests[] entry: a message whose Match
// slice decodes to Equal asks for the attributes named by the Names
// slices of the same message.
type AttrRequest struct {
	Path   string
	Client bool
	Match  Slice
	Equal  string
	Names  []Slice
}

// Downlink is one attributeUpdates[] or serverSideRpc[] entry.
type Downlink struct {
	Path      string
	Attribute string // attributeUpdates[]: attributeOnThingsBoard
	Method    string // serverSideRpc[]: methodRPC
	// WithResponse is accepted as upstream's; the gateway answers every RPC.
	WithResponse bool
	Encoding     Encoding
}

// Load parses and validates a connector file. Warnings and skipped entries
// are returned beside the config; err joins every error that refuses the file.
func Load(file string, raw []byte) (*Config, []spec.Problem, error) {
	ps := &spec.Problems{}
	root := spec.Parse(ps, file, raw)
	var cfg *Config
	if root != nil {
		cfg = Parse(root)
	}
	return cfg, ps.NotErrors(), ps.Err()
}

// Parse reads the connector file rooted at o, recording problems in o's
// collector. A device with errors is skipped (the others still run), as
// upstream logs and leaves out such a device.
// socketFields is the socket field table: the defaults and ranges Parse
// applies and the README's configuration reference.
var socketFields = spec.Section{Path: "socket", Doc: "the server the devices talk to (older files put these keys at the top level)", Fields: []spec.Field{
	{Key: "type", Type: spec.TypeEnum, Default: "TCP", Values: []string{"TCP", "UDP"}, Doc: "transport"},
	{Key: "address", Type: spec.TypeString, Default: DefaultAddress, Doc: "listen address (0.0.0.0 for every interface)"},
	{Key: "port", Type: spec.TypeInteger, Default: int64(DefaultPort), Min: 0, Max: 65535, Doc: "listen port"},
	{Key: "bufferSize", Type: spec.TypeInteger, Default: int64(DefaultBufferSize), Min: 1, Max: maxBufferSize, Doc: "largest message in bytes (`buffer_size` is read too)"},
	{Key: "framing", Type: spec.TypeEnum, Default: FramingLine, Values: []string{FramingLine, FramingFixed, FramingRead}, Doc: "how a TCP stream splits into messages (ours; ignored for UDP)"},
	{Key: "maxConnections", Type: spec.TypeInteger, Default: int64(DefaultMaxConnections), Min: 1, Max: math.MaxInt32, Doc: "concurrent TCP peers; more are closed and counted"},
}}

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{socketFields} }

func Parse(o *spec.Obj) *Config {
	c := &Config{Name: o.Str("name", "")}
	o.Known("id", "logLevel", "enableRemoteLogging", "configVersion")
	c.Report = report.Parse(o)
	srv := o.Obj("socket")
	if srv == nil {
		// Upstream's older layout: the server keys at the top level.
		c.Old = o.Has("type") || o.Has("port") || o.Has("address") || o.Has("bufferSize")
		srv = o
	}
	c.Type = socketFields.Enum(srv, "type")
	c.Address = socketFields.Str(srv, "address")
	if strings.TrimSpace(c.Address) == "" {
		srv.Errorf("address", "must not be empty (use 0.0.0.0 to listen on every interface)")
	}
	c.Port = int(socketFields.Int(srv, "port"))
	// Upstream reads "buffer_size" although its files say "bufferSize", so
	// it always uses 1024; both spellings are honoured here.
	bufKey := "bufferSize"
	if !srv.Has(bufKey) && srv.Has("buffer_size") {
		bufKey = "buffer_size"
	}
	srv.Known("bufferSize", "buffer_size")
	c.BufferSize = int(srv.IntRange(bufKey, DefaultBufferSize, 1, maxBufferSize))
	c.Framing = socketFields.Enum(srv, "framing")
	if c.Type == "UDP" && srv.Has("framing") {
		srv.Warnf("framing", "ignored for UDP: every datagram is one message")
	}
	c.MaxConnections = int(socketFields.Int(srv, "maxConnections"))
	if srv != o {
		srv.Done()
	}
	names := map[string]string{}
	for _, d := range o.List("devices") {
		ps := o.Problems()
		mark := ps.Mark()
		dev := parseDevice(d)
		if dev != nil {
			if prev, dup := names[dev.Name]; dup {
				d.Errorf("deviceName", "%q is already the name of %s", dev.Name, prev)
			}
		}
		if ps.SkipSince(mark) || dev == nil {
			continue
		}
		names[dev.Name] = d.Path()
		c.Devices = append(c.Devices, dev)
	}
	if len(c.Devices) == 0 {
		o.Warnf("devices", "no usable device: every message will be counted as unmatched")
	}
	o.Done()
	return c
}

func parseDevice(d *spec.Obj) *DeviceConfig {
	dev := &DeviceConfig{
		Path: d.Path(),
		Name: d.RequiredStr("deviceName"),
		Type: d.Str("deviceType", "default"),
	}
	// Upstream: addressFilter wins over address.
	key := "address"
	if d.Has("addressFilter") {
		key = "addressFilter"
	}
	d.Known("address", "addressFilter")
	dev.Address = d.Str(key, "")
	if dev.Address == "" {
		d.Errorf("address", "is required (a peer \"ip:port\"; * matches anything, e.g. \"*:*\")")
	} else if re, err := pyre.Compile(strings.ReplaceAll(dev.Address, "*", ".*"), pyre.FullMatch); err != nil {
		d.Warnf(key, "%q is not a valid pattern (%v): compared as text", dev.Address, err)
	} else {
		dev.match = re
	}
	dev.Encoding = parseEncoding(d, "encoding", DefaultEncoding)
	conv := d.Str("converter", "")
	if dev.Script = script.Ref(d, conv); dev.Script != "" {
		dev.ScriptKey = "script"
		if !d.Has("script") {
			dev.ScriptKey = "converter"
		}
		// The script gets the device's entry as msg.config, as upstream's
		// custom converters get their device's config.
		if raw, ok := d.RawText(); ok {
			dev.ScriptConfig = raw
		} else {
			dev.ScriptConfig, _ = json.Marshal(d.Raw())
		}
	} else if conv != "" && conv != "BytesSocketUplinkConverter" {
		d.Errorf("converter", "%q: custom converter classes are not supported (only the built-in BytesSocketUplinkConverter, or a Starlark script: \"script\" or a converter ending in .star)", conv)
	}
	dev.Report = report.Parse(d)
	dev.Telemetry = parseKeys(d, "telemetry")
	dev.Attributes = parseKeys(d, "attributes")
	for _, r := range d.List("attributeRequests") {
		if ar := parseAttrRequest(r); ar != nil {
			dev.Requests = append(dev.Requests, ar)
		}
	}
	for _, u := range d.List("attributeUpdates") {
		dl := &Downlink{Path: u.Path(), Attribute: u.RequiredStr("attributeOnThingsBoard")}
		dl.Encoding = parseEncoding(u, "encoding", dev.Encoding.Name)
		u.Done()
		dev.Updates = append(dev.Updates, dl)
	}
	for _, r := range d.List("serverSideRpc") {
		dl := &Downlink{Path: r.Path(), Method: r.RequiredStr("methodRPC"), WithResponse: r.Bool("withResponse", true)}
		dl.Encoding = parseEncoding(r, "encoding", dev.Encoding.Name)
		// Upstream writes the params for "write" only; its sample files
		// leave the key out (and then fail with a KeyError): absent is write.
		r.Enum("methodProcessing", "write", "write")
		r.Done()
		dev.RPC = append(dev.RPC, dl)
	}
	d.Done()
	return dev
}

func parseKeys(d *spec.Obj, section string) []*KeyConfig {
	var out []*KeyConfig
	for _, k := range d.List(section) {
		kc := &KeyConfig{Path: k.Path(), Key: k.RequiredStr("key")}
		if k.Has("byteFrom") {
			v := int(k.IntRange("byteFrom", 0, -maxBufferSize, maxBufferSize))
			kc.Slice.From = &v
		}
		if k.Has("byteTo") {
			v := int(k.IntRange("byteTo", -1, -maxBufferSize, maxBufferSize))
			// Upstream reads -1 as "to the end" (Python's -1 would drop the last byte).
			if v != -1 {
				kc.Slice.To = &v
			}
		}
		kc.Report = report.Parse(k)
		k.Done()
		out = append(out, kc)
	}
	return out
}

// sliceRe finds upstream's "[from:to]" / "[index]" expressions.
var sliceRe = regexp.MustCompile(`\[(\S[0-9:]*)\]`)

func parseAttrRequest(r *spec.Obj) *AttrRequest {
	ar := &AttrRequest{Path: r.Path()}
	ar.Client = r.Enum("type", "shared", "shared", "client") == "client"
	r.Known("requestExpressionSource", "attributeNameExpressionSource")
	expr := r.RequiredStr("requestExpression")
	names := r.RequiredStr("attributeNameExpression")
	r.Done()
	if expr == "" {
		return nil
	}
	inner, ok := strings.CutPrefix(strings.TrimSpace(expr), "${")
	inner, ok2 := strings.CutSuffix(inner, "}")
	sl, eq, ok3 := strings.Cut(inner, "==")
	m := sliceRe.FindStringSubmatch(sl)
	if !ok || !ok2 || !ok3 || m == nil || strings.TrimSpace(sl) != m[0] {
		r.Errorf("requestExpression", "%q is not of the form ${[from:to]==text}", expr)
		return nil
	}
	s, err := ParseSlice(m[1])
	if err != nil {
		r.Errorf("requestExpression", "%q: %v", expr, err)
		return nil
	}
	ar.Match, ar.Equal = s, eq
	for _, nm := range sliceRe.FindAllStringSubmatch(names, -1) {
		s, err := ParseSlice(nm[1])
		if err != nil {
			r.Errorf("attributeNameExpression", "%q: %v", names, err)
			return nil
		}
		ar.Names = append(ar.Names, s)
	}
	if len(ar.Names) == 0 && names != "" {
		r.Errorf("attributeNameExpression", "%q has no [from:to] slice naming the attributes", names)
		return nil
	}
	return ar
}

func parseEncoding(o *spec.Obj, key, def string) Encoding {
	name := o.Str(key, def)
	e, err := LookupEncoding(name)
	if err != nil {
		o.Errorf(key, "%v", err)
		e, _ = LookupEncoding(DefaultEncoding)
	}
	return e
}

// ParseSlice reads a Python slice or index body: "0:4", "3:", ":-1", "5".
func ParseSlice(s string) (Slice, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return Slice{}, fmt.Errorf("[%s]: a step is not supported (want [from:to] or [index])", s)
	}
	num := func(p string) (*int, error) {
		if p == "" {
			return nil, nil
		}
		n, err := strconv.Atoi(p)
		if err != nil || n > maxBufferSize || n < -maxBufferSize {
			return nil, fmt.Errorf("[%s]: %q is not a byte index", s, p)
		}
		return &n, nil
	}
	from, err := num(parts[0])
	if err != nil {
		return Slice{}, err
	}
	if len(parts) == 1 {
		if from == nil {
			return Slice{}, fmt.Errorf("[%s]: empty index", s)
		}
		// One byte, as a one-byte slice (upstream indexes an int and fails).
		to := *from + 1
		if to == 0 {
			return Slice{From: from}, nil
		}
		return Slice{From: from, To: &to}, nil
	}
	to, err := num(parts[1])
	if err != nil {
		return Slice{}, err
	}
	return Slice{From: from, To: to}, nil
}
