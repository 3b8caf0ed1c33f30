package can

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Sample is an example `can` connector file (sample.json).
//
//go:embed sample.json
var Sample []byte

// Defaults, as upstream.
const (
	DefaultReconnectPeriod = 30 * time.Second
	DefaultPollPeriod      = time.Second
	DefaultEncoding        = "ascii"
)

// Interfaces this gateway knows.
var interfaces = []string{"socketcan", "virtual", "slcan"}

// Config is a parsed `can` connector file.
type Config struct {
	Name      string
	Interface string // socketcan, virtual or slcan
	Channel   string
	// Backend is passed to the transport as written (for example {"fd": true}).
	Backend         map[string]any
	Reconnect       bool
	ReconnectPeriod time.Duration
	// ReconnectCount bounds consecutive failed (re)opens; 0 means no bound.
	ReconnectCount int
	// Report is the connector-level reportStrategy (zero when absent).
	Report protocols.ReportStrategy
	// Slcan holds the slcan transport's settings (backend keys and the
	// "path@baud" channel form of python-can).
	Slcan   SlcanConfig
	Devices []*DeviceConfig
}

// SlcanConfig is the slcan transport's part of the config.
type SlcanConfig struct {
	Path string // serial device
	// TTYBaudrate is the serial line speed (backend.ttyBaudrate or channel
	// "path@baud"; default 115200).
	TTYBaudrate int
	// Bitrate is the CAN bitrate (backend.bitrate); 0 leaves the adapter's
	// stored setting.
	Bitrate int
	// ListenOnly opens the channel with "L" (no acknowledgements, no sending).
	ListenOnly bool
}

// DefaultTTYBaudrate is python-can's slcan default.
const DefaultTTYBaudrate = 115200

// DeviceConfig is one devices[] entry.
type DeviceConfig struct {
	Path                 string
	Name                 string
	Type                 string
	SendDataOnlyOnChange bool
	EnableUnknownRPC     bool
	OverrideRPCConfig    bool
	StrictEval           bool
	Attributes           []*KeyConfig
	Timeseries           []*KeyConfig
	AttributeUpdates     []*DownlinkConfig
	RPC                  []*DownlinkConfig
	// Skipped are the attributeUpdates[] and serverSideRpc[] entries left
	// out at load (see spec.Problems.SkipSince): a write naming one is
	// answered with the reason instead of being treated as unknown.
	Skipped []*SkippedDownlink
	// Report is the device's own reportStrategy, or ON_CHANGE for
	// sendDataOnlyOnChange; zero means "inherit".
	Report protocols.ReportStrategy
	// Script (ours), when set, is a Starlark file that converts every
	// frame with one of ScriptIDs, as the device's entry is its config.
	Script       string
	ScriptIDs    []ScriptID
	ScriptConfig json.RawMessage
}

// ScriptID is a frame id a device's script reads.
type ScriptID struct {
	ID       uint32
	Extended bool
}

// SkippedDownlink is a downlink entry left out at load.
type SkippedDownlink struct {
	Path      string
	Attribute string // attributeUpdates[]: attributeOnThingsBoard, when readable
	Method    string // serverSideRpc[]: method, when readable
	Reason    string // the entry's errors, joined
}

// KeyConfig is one attributes[] or timeseries[] entry.
type KeyConfig struct {
	Path       string
	Device     *DeviceConfig
	Key        string
	Telemetry  bool
	NodeID     uint32
	Extended   bool
	FD         bool
	BRS        bool
	Command    *CommandSpec
	Value      ValueSpec
	Expression *Expression
	Polling    *Polling
	Report     protocols.ReportStrategy // the key's own reportStrategy (zero: inherit)
}

// Polling is a key's `polling` block: the frame to send to ask for the value.
type Polling struct {
	Once   bool
	Period time.Duration
	Data   []byte
}

// Frame is the polling request frame of k (nil when k does not poll).
func (k *KeyConfig) PollFrame() *Frame {
	if k.Polling == nil {
		return nil
	}
	return &Frame{ID: k.NodeID, Extended: k.Extended, FD: k.FD, BRS: k.BRS, Data: append([]byte(nil), k.Polling.Data...)}
}

// DownlinkConfig is one attributeUpdates[] or serverSideRpc[] entry.
type DownlinkConfig struct {
	Path string
	// Attribute is attributeOnThingsBoard (attribute updates); Method is the RPC method.
	Attribute string
	Method    string
	// Response: the RPC replies after sending (upstream `response`, default false).
	Response bool
	NodeID   uint32
	Extended bool
	FD       bool
	BRS      bool
	DownlinkSpec
	// raw is the entry as written, merged with the RPC params when the
	// device sets overrideRpcConfig.
	raw map[string]any
}

// Frame builds the frame for data (see DownlinkSpec.Encode) and checks the
// CAN limits; sending an FD frame is refused later by classic-only transports.
func (d *DownlinkConfig) Frame(data any) (Frame, error) {
	b, err := d.Encode(data)
	if err != nil {
		return Frame{}, err
	}
	if b, _, err = fitLen(b, d.FD); err != nil {
		return Frame{}, err
	}
	f := Frame{ID: d.NodeID, Extended: d.Extended, FD: d.FD, BRS: d.BRS, Data: b}
	return f, f.Validate()
}

// Load parses and validates a connector file. Warnings (unknown keys, empty
// devices) and skipped entries (an entry with errors that upstream would
// load and fail only when used) are returned beside the config; err joins
// every error that refuses the file.
func Load(file string, raw []byte) (*Config, []spec.Problem, error) {
	ps := &spec.Problems{}
	root := spec.Parse(ps, file, raw)
	var cfg *Config
	if root != nil {
		cfg = Parse(root)
	}
	return cfg, ps.NotErrors(), ps.Err()
}

// Parse reads the connector file rooted at o, recording problems in o's collector.
// rootFields is the top-level field table: the defaults and ranges Parse
// applies and the README's configuration reference.
var rootFields = spec.Section{Path: "", Fields: []spec.Field{
	{Key: "name", Type: spec.TypeString, Default: "", Doc: "connector name when the main config gives none"},
	{Key: "interface", Type: spec.TypeEnum, Default: "socketcan", Values: interfaces, Doc: "bus transport"},
	{Key: "channel", Type: spec.TypeString, Required: true, Doc: "interface name (`can0`), or serial path[@baud] for slcan"},
	{Key: "backend", Type: spec.TypeObject, Doc: "transport options (slcan: ttyBaudrate, bitrate)"},
	{Key: "reconnect", Type: spec.TypeBoolean, Default: true, Doc: "reopen the bus after a failure"},
	{Key: "reconnectPeriod", Type: spec.TypeDuration, Default: DefaultReconnectPeriod, Dur: secondsRange, Doc: "delay before reopening"},
	{Key: "reconnectCount", Type: spec.TypeInteger, Default: int64(0), Min: 0, Max: math.MaxInt32, Doc: "reopen attempts, 0 for no limit"},
	{Key: "reportStrategy", Type: spec.TypeObject, Doc: "report strategy inherited by the devices"},
	{Key: "devices", Type: spec.TypeList, Required: true, Doc: "the devices"},
}}

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{rootFields} }

func Parse(o *spec.Obj) *Config {
	c := &Config{
		Name:      rootFields.Str(o, "name"),
		Interface: rootFields.Enum(o, "interface"),
		Channel:   rootFields.Str(o, "channel"),
		Reconnect: rootFields.Bool(o, "reconnect"),
	}
	o.Known("id", "logLevel", "enableRemoteLogging", "configVersion")
	c.Report = report.Parse(o)
	c.ReconnectCount = int(rootFields.Int(o, "reconnectCount"))
	if b := o.Obj("backend"); b != nil {
		c.Backend = b.Raw()
		if c.Interface == "slcan" {
			c.Slcan = parseSlcanBackend(b)
		}
	}
	if c.Interface == "slcan" {
		c.Slcan.Path = c.Channel
		if path, baud, ok := strings.Cut(c.Channel, "@"); ok {
			n, err := strconv.Atoi(baud)
			if err != nil || n <= 0 {
				o.Errorf("channel", "%q: %q after @ is not a serial baud rate", c.Channel, baud)
			} else {
				c.Slcan.Path, c.Slcan.TTYBaudrate = path, n
			}
		}
		if c.Slcan.TTYBaudrate == 0 {
			c.Slcan.TTYBaudrate = DefaultTTYBaudrate
		}
		if _, ok := ttySpeeds[c.Slcan.TTYBaudrate]; !ok {
			o.Errorf("backend", "ttyBaudrate %d is not a supported serial speed (want one of: %s)", c.Slcan.TTYBaudrate, ttySpeedList())
		}
	}
	c.ReconnectPeriod = rootFields.Duration(o, "reconnectPeriod")
	commands := map[uint32]cmdOwner{}
	for _, d := range o.List("devices") {
		c.Devices = append(c.Devices, parseDevice(d, commands))
	}
	if _, ok := o.Raw()["devices"]; !ok {
		o.Errorf("devices", "is required")
	}
	if c.Interface != "virtual" {
		warnFD(o, c)
	}
	o.Done()
	return c
}

// parseSlcanBackend reads the python-can slcan keyword arguments we honour.
func parseSlcanBackend(b *spec.Obj) SlcanConfig {
	s := SlcanConfig{}
	if b.Has("ttyBaudrate") {
		s.TTYBaudrate = int(b.IntRange("ttyBaudrate", 0, 1, math.MaxInt32))
	}
	if b.Has("bitrate") {
		s.Bitrate = int(b.Int("bitrate", 0))
		if _, ok := slcanBitrates[s.Bitrate]; !ok {
			b.Errorf("bitrate", "%d is not an slcan bitrate (want one of: %s)", s.Bitrate, slcanBitrateList())
			s.Bitrate = 0
		}
	}
	s.ListenOnly = b.Bool("listenOnly", false)
	if b.Bool("fd", false) {
		b.Warnf("fd", "the slcan transport carries classic CAN frames only; FD frames are refused")
	}
	return s
}

// warnFD flags isFd entries on transports that carry classic frames only:
// they load (the file stays portable) but their frames are refused when sent.
func warnFD(o *spec.Obj, c *Config) {
	ps := o.Problems()
	msg := fmt.Sprintf("isFd: the %s transport carries classic CAN frames only; this entry's frames are refused (ErrFDUnsupported)", c.Interface)
	for _, d := range c.Devices {
		for _, list := range [][]*KeyConfig{d.Attributes, d.Timeseries} {
			for _, k := range list {
				if k.FD {
					ps.Warnf(o.File(), k.Path, "%s", msg)
				}
			}
		}
		for _, list := range [][]*DownlinkConfig{d.AttributeUpdates, d.RPC} {
			for _, dl := range list {
				if dl.FD {
					ps.Warnf(o.File(), dl.Path, "%s", msg)
				}
			}
		}
	}
}

type cmdOwner struct {
	spec CommandSpec
	path string
}

func parseDevice(o *spec.Obj, commands map[uint32]cmdOwner) *DeviceConfig {
	d := &DeviceConfig{
		Path:                 o.Path(),
		Name:                 o.RequiredStr("name"),
		Type:                 o.Str("type", "can"), // upstream: the connector type
		SendDataOnlyOnChange: o.Bool("sendDataOnlyOnChange", false),
		EnableUnknownRPC:     o.Bool("enableUnknownRpc", false),
		OverrideRPCConfig:    o.Bool("overrideRpcConfig", false),
		StrictEval:           o.Bool("strictEval", true),
	}
	o.Known("converters")
	d.Report = report.Parse(o)
	if !d.Report.IsSet() && d.SendDataOnlyOnChange {
		// The pre-reportStrategy spelling of ON_CHANGE.
		d.Report = protocols.ReportStrategy{Type: protocols.OnChange, Period: report.DefaultPeriod}
	}
	// One bad entry is left out (a Skipped problem), as upstream ignores
	// it or fails only when it is used; the device keeps its other entries.
	ps := o.Problems()
	skippedKeys := 0
	for _, list := range []struct {
		key string
		ts  bool
		out *[]*KeyConfig
	}{{"attributes", false, &d.Attributes}, {"timeseries", true, &d.Timeseries}} {
		for _, e := range o.List(list.key) {
			mark := ps.Mark()
			k := parseKey(e, d, list.ts, commands)
			if ps.SkipSince(mark) {
				skippedKeys++
				continue
			}
			if k.Command != nil {
				if _, seen := commands[k.NodeID]; !seen {
					commands[k.NodeID] = cmdOwner{spec: *k.Command, path: e.KeyPath("command")}
				}
			}
			*list.out = append(*list.out, k)
		}
	}
	for _, list := range []struct {
		key string
		rpc bool
		out *[]*DownlinkConfig
	}{{"attributeUpdates", false, &d.AttributeUpdates}, {"serverSideRpc", true, &d.RPC}} {
		for _, e := range o.List(list.key) {
			mark := ps.Mark()
			dl := parseDownlink(e, d, list.rpc)
			if ps.SkipSince(mark) {
				var why []string
				for _, p := range ps.List[mark:] {
					if p.Severity == spec.Skipped {
						why = append(why, p.Path+": "+p.Msg)
					}
				}
				d.Skipped = append(d.Skipped, &SkippedDownlink{Path: dl.Path, Attribute: dl.Attribute, Method: dl.Method, Reason: strings.Join(why, "; ")})
				continue
			}
			*list.out = append(*list.out, dl)
		}
	}
	parseScript(o, d)
	if len(d.Attributes)+len(d.Timeseries)+len(d.AttributeUpdates)+len(d.RPC)+len(d.Skipped)+skippedKeys == 0 && d.Script == "" {
		o.Warnf("", "device %q has no attributes, timeseries, attributeUpdates or serverSideRpc", d.Name)
	}
	o.Done()
	return d
}

// parseScript reads a device's "script" and the frame ids it takes
// ("nodeIds", each a number or a "0x" string; "isExtendedId" for all).
func parseScript(o *spec.Obj, d *DeviceConfig) {
	if d.Script = o.Str("script", ""); d.Script == "" {
		o.Known("nodeIds")
		return
	}
	if raw, ok := o.RawText(); ok {
		d.ScriptConfig = raw
	} else {
		d.ScriptConfig, _ = json.Marshal(o.Raw())
	}
	ext := o.Bool("isExtendedId", false)
	raw, _ := o.Any("nodeIds")
	ids, _ := raw.([]any)
	if len(ids) == 0 {
		o.Errorf("nodeIds", "is required with a script: the frame ids it converts (numbers or \"0x\" strings)")
	}
	for i, r := range ids {
		n, err := parseID(r)
		limit := uint64(MaxStandardID)
		if ext {
			limit = MaxExtendedID
		}
		if err != nil || n > limit {
			o.Errorf(fmt.Sprintf("nodeIds[%d]", i), "%s is not a CAN id (0..%d; isExtendedId: %v)", spec.Describe(r), limit, ext)
			continue
		}
		d.ScriptIDs = append(d.ScriptIDs, ScriptID{ID: uint32(n), Extended: ext})
	}
}

// frameHead reads nodeId, isExtendedId, isFd and bitrateSwitch.
func frameHead(o *spec.Obj) (id uint32, ext, fd, brs bool) {
	ext = o.Bool("isExtendedId", false)
	fd = o.Bool("isFd", false)
	brs = o.Bool("bitrateSwitch", false)
	if !o.Has("nodeId") {
		o.Errorf("nodeId", "is required")
	} else {
		raw, _ := o.Any("nodeId")
		n, err := parseID(raw)
		switch {
		case err != nil:
			o.Errorf("nodeId", "%s is not a CAN id", spec.Describe(raw))
		case ext && n > MaxExtendedID:
			o.Errorf("nodeId", "%d is out of range for an extended id (want 0..%d)", n, MaxExtendedID)
		case !ext && n > MaxStandardID:
			o.Errorf("nodeId", "%d is out of range for a standard id (want 0..%d, or set isExtendedId)", n, MaxStandardID)
		default:
			id = uint32(n)
		}
	}
	if brs && !fd {
		o.Errorf("bitrateSwitch", "needs isFd")
	}
	return
}

// parseID accepts a JSON number, a decimal string or a 0x hex string.
func parseID(raw any) (uint64, error) {
	s := strings.TrimSpace(fmt.Sprint(raw))
	if _, isStr := raw.(string); !isStr {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f != math.Trunc(f) || f > math.MaxUint32 {
			return 0, fmt.Errorf("bad id")
		}
		return uint64(f), nil
	}
	return strconv.ParseUint(s, 0, 32)
}

func parseKey(o *spec.Obj, d *DeviceConfig, ts bool, commands map[uint32]cmdOwner) *KeyConfig {
	k := &KeyConfig{Path: o.Path(), Device: d, Key: o.RequiredStr("key"), Telemetry: ts}
	k.NodeID, k.Extended, k.FD, k.BRS = frameHead(o)
	maxLen := MaxClassicLen
	if k.FD {
		maxLen = MaxFDLen
	}
	k.Report = report.Parse(o)
	if raw, ok := o.Any("value"); !ok {
		o.Errorf("value", "is required")
	} else if v, err := parseValue(raw, o); err != nil {
		o.Errorf("value", "%s", err)
	} else {
		k.Value = v
		n := v.Length
		switch v.Type {
		case TypeFloat:
			n = 4 // upstream reads 4 or 8 bytes whatever length says
		case TypeDouble:
			n = 8
		}
		if v.Start >= maxLen || (n > 0 && v.Start+n > maxLen) {
			o.Errorf("value", "%s reaches past the %d bytes of a frame", spec.Describe(raw), maxLen)
		}
	}
	if raw, ok := o.Any("command"); ok {
		cmd, err := parseCommand(raw, o)
		if err != nil {
			o.Errorf("command", "%s", err)
		} else if cmd.Start+cmd.Length > maxLen {
			o.Errorf("command", "%s reaches past the %d bytes of a frame", spec.Describe(raw), maxLen)
		} else {
			k.Command = &cmd
			// Upstream keeps the first layout of a nodeId and ignores keys
			// with another; the caller records the layout of kept keys.
			if prev, seen := commands[k.NodeID]; seen && (prev.spec.Start != cmd.Start || prev.spec.Length != cmd.Length || prev.spec.Order != cmd.Order) {
				o.Errorf("command", "%s has another layout than the command of nodeId %d at %s (one command layout per nodeId)", spec.Describe(raw), k.NodeID, prev.path)
			}
		}
	}
	if src := o.Str("expression", ""); strings.TrimSpace(src) != "" {
		e, warn, err := compileUplink(src, d.StrictEval)
		if err != nil {
			o.Errorf("expression", "%s", err)
		} else if warn != "" {
			o.Warnf("expression", "%q %s", src, warn)
		}
		k.Expression = e
	}
	if p := o.Obj("polling"); p != nil {
		// Upstream drops a polling block whose frame is bad and keeps the key.
		ps := o.Problems()
		mark := ps.Mark()
		k.Polling = parsePolling(p, k.FD)
		if ps.SkipSince(mark) {
			k.Polling = nil
		}
	}
	o.Done()
	return k
}

func parsePolling(o *spec.Obj, fd bool) *Polling {
	p := &Polling{
		Once:   o.Enum("type", "always", "always", "once") == "once",
		Period: o.Duration("period", DefaultPollPeriod, secondsRange),
	}
	hexStr := o.RequiredStr("dataInHex")
	if strings.TrimSpace(hexStr) != "" {
		b, err := parseHex(hexStr)
		if err != nil {
			o.Errorf("dataInHex", "%s", err)
		} else if b, padded, err := fitLen(b, fd); err != nil {
			o.Errorf("dataInHex", "%s", strings.TrimPrefix(err.Error(), ErrInvalidFrame.Error()+": "))
		} else {
			if padded != 0 {
				o.Warnf("dataInHex", fdPadNote, padded, len(b))
			}
			p.Data = b
		}
	}
	o.Done()
	return p
}

func parseDownlink(o *spec.Obj, d *DeviceConfig, rpc bool) *DownlinkConfig {
	dl := &DownlinkConfig{Path: o.Path(), raw: o.Raw()}
	if rpc {
		dl.Method = o.RequiredStr("method")
		dl.Response = o.Bool("response", false)
	} else {
		// Upstream reads attributeOnThingsBoard, else attribute.
		dl.Attribute = o.Str("attributeOnThingsBoard", "")
		if alt := o.Str("attribute", ""); dl.Attribute == "" {
			dl.Attribute = alt
		}
		if dl.Attribute == "" {
			o.Errorf("attributeOnThingsBoard", "is required (the shared attribute this entry writes; upstream also reads \"attribute\")")
		}
	}
	dl.NodeID, dl.Extended, dl.FD, dl.BRS = frameHead(o)
	var warns []specWarning
	dl.DownlinkSpec, warns = parseDownlinkSpec(o, d.StrictEval, dl.FD)
	for _, w := range warns {
		o.Warnf(w.key, "%s", w.msg)
	}
	o.Done()
	return dl
}

// specWarning is a warning parseDownlinkSpec leaves to its caller: a config
// entry reports it, RPC params (downlinkFromMap) do not.
type specWarning struct{ key, msg string }

// fdPadNote is the warning for an FD payload that is not a CAN FD length.
const fdPadNote = "%d bytes is not a CAN FD length: sent padded with zeros to %d bytes, the frame a CAN FD controller transmits (upstream hands python-can the short payload)"

func parseDownlinkSpec(o *spec.Obj, strict bool, fd bool) (DownlinkSpec, []specWarning) {
	var warns []specWarning
	s := DownlinkSpec{
		DataLength:    int(o.IntRange("dataLength", 1, 1, 8)),
		DataByteorder: order(o, "dataByteorder"),
		DataSigned:    o.Bool("dataSigned", false),
		DataEncoding:  DefaultEncoding,
	}
	if e := o.Str("dataEncoding", ""); e != "" {
		if c, ok := canonicalEncoding(e); ok {
			s.DataEncoding = c
		} else {
			o.Errorf("dataEncoding", "unknown encoding %q (want one of: %s)", e, strings.Join(encodingNames, ", "))
		}
	}
	s.DataInHex = hexField(o, "dataInHex")
	s.DataBefore = hexField(o, "dataBefore")
	s.DataAfter = hexField(o, "dataAfter")
	if s.DataInHex != nil {
		if b, padded, err := fitLen(s.DataInHex, fd); err != nil {
			o.Errorf("dataInHex", "%s", strings.TrimPrefix(err.Error(), ErrInvalidFrame.Error()+": "))
		} else {
			if padded != 0 {
				warns = append(warns, specWarning{"dataInHex", fmt.Sprintf(fdPadNote, padded, len(b))})
			}
			s.DataInHex = b
		}
	}
	if src := o.Str("dataExpression", ""); strings.TrimSpace(src) != "" {
		e, warn, err := compileDownlink(src, strict)
		if err != nil {
			o.Errorf("dataExpression", "%s", err)
		} else if warn != "" {
			warns = append(warns, specWarning{"dataExpression", fmt.Sprintf("%q %s", src, warn)})
		}
		s.DataExpression = e
	}
	o.Known("strictEval")
	return s, warns
}

func hexField(o *spec.Obj, key string) []byte {
	s := o.Str(key, "")
	if strings.TrimSpace(s) == "" {
		return nil
	}
	b, err := parseHex(s)
	if err != nil {
		o.Errorf(key, "%s", err)
		return nil
	}
	return b
}

func order(o *spec.Obj, key string) Order {
	if raw, ok := o.Any(key); ok && raw == "" {
		return BigEndian // upstream: an empty byteorder means the default
	}
	if o.Enum(key, "big", "big", "little") == "little" {
		return LittleEndian
	}
	return BigEndian
}

// secondsRange is how upstream writes periods: positive seconds, fractions allowed.
var secondsRange = spec.Dur{MinExclusive: true, Max: 1e6}

// parseValue reads the string or dict form of `value`.
func parseValue(raw any, o *spec.Obj) (ValueSpec, error) {
	switch t := raw.(type) {
	case string:
		return ParseValueSpec(t)
	case map[string]any:
		vo := spec.New(o.Problems(), o.File(), o.KeyPath("value"), t)
		v := ValueSpec{Order: order(vo, "byteorder"), Encoding: DefaultEncoding}
		if !vo.Has("start") {
			vo.Errorf("start", "is required")
		}
		v.Start = int(vo.IntRange("start", 0, 0, MaxFDLen-1))
		if !vo.Has("length") {
			vo.Errorf("length", "is required")
		}
		v.Length = int(vo.IntRange("length", -1, -1, MaxFDLen))
		if v.Length == 0 {
			vo.Errorf("length", "0 is not a length (want -1 or 1..%d)", MaxFDLen)
		}
		v.TypeName = strings.ToLower(vo.RequiredStr("type"))
		v.Signed = vo.Bool("signed", false)
		enc := vo.Str("encoding", "")
		vo.Done()
		if enc != "" {
			c, ok := canonicalEncoding(enc)
			if !ok {
				return v, fmt.Errorf("encoding: unknown encoding %q (want one of: %s)", enc, strings.Join(encodingNames, ", "))
			}
			v.Encoding = c
		}
		if v.TypeName == "" {
			return v, fmt.Errorf("type is required")
		}
		return v, finishValue(&v)
	}
	return ValueSpec{}, fmt.Errorf("expected a string or an object, got %s", spec.Describe(raw))
}

const valueForm = "start:length[:big|little]:type[:encoding]"

// ParseValueSpec parses the string form "start:length[:big|little]:type[:encoding]".
// For int and long the last field may be "signed" or "unsigned" (default
// unsigned, as upstream); for string it is the encoding (default ascii).
func ParseValueSpec(s string) (ValueSpec, error) {
	v := ValueSpec{Encoding: DefaultEncoding}
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) < 3 || len(parts) > 5 {
		return v, fmt.Errorf("%s does not match %s", strconv.Quote(s), valueForm)
	}
	start, err := strconv.Atoi(parts[0])
	if err != nil || start < 0 || start >= MaxFDLen {
		return v, fmt.Errorf("%s: start %q is not a byte index (want 0..%d)", strconv.Quote(s), parts[0], MaxFDLen-1)
	}
	length, err := strconv.Atoi(parts[1])
	if err != nil || length == 0 || length < -1 || length > MaxFDLen {
		return v, fmt.Errorf("%s: length %q is not a length (want -1 or 1..%d)", strconv.Quote(s), parts[1], MaxFDLen)
	}
	v.Start, v.Length = start, length
	rest := parts[2:]
	switch strings.ToLower(rest[0]) {
	case "big":
		rest = rest[1:]
	case "little":
		v.Order = LittleEndian
		rest = rest[1:]
	}
	if len(rest) == 0 || len(rest) > 2 {
		return v, fmt.Errorf("%s does not match %s", strconv.Quote(s), valueForm)
	}
	v.TypeName = strings.ToLower(rest[0])
	if _, known := typeOf(v.TypeName); !known && len(rest) == 2 {
		if _, isType := typeOf(strings.ToLower(rest[1])); isType {
			return v, fmt.Errorf("%s: unknown byte order %q (want big or little)", strconv.Quote(s), rest[0])
		}
	}
	if _, ok := typeOf(v.TypeName); ok && len(rest) == 2 {
		last := rest[1]
		t, _ := typeOf(v.TypeName)
		switch t {
		case TypeInt:
			switch strings.ToLower(last) {
			case "signed":
				v.Signed = true
			case "unsigned":
			default:
				return v, fmt.Errorf("%s: %q for %s (want signed or unsigned)", strconv.Quote(s), last, v.TypeName)
			}
		case TypeString, TypeRaw:
			c, ok := canonicalEncoding(last)
			if !ok {
				return v, fmt.Errorf("%s: unknown encoding %q (want one of: %s)", strconv.Quote(s), last, strings.Join(encodingNames, ", "))
			}
			v.Encoding = c
		default:
			return v, fmt.Errorf("%s: type %s takes no fifth field (got %q)", strconv.Quote(s), v.TypeName, last)
		}
	}
	return v, finishValue(&v)
}

func finishValue(v *ValueSpec) error {
	t, ok := typeOf(v.TypeName)
	if !ok {
		return fmt.Errorf("unknown type %q (want one of: %s)", v.TypeName, strings.Join(typeNames, ", "))
	}
	v.Type = t
	if t == TypeInt && v.Length > 8 {
		return fmt.Errorf("%s of %d bytes is too long (want 1..8 or -1)", v.TypeName, v.Length)
	}
	return nil
}

const commandForm = "start:length[:big|little]:value"

// ParseCommandSpec parses the string form "start:length[:big|little]:value".
func ParseCommandSpec(s string) (CommandSpec, error) {
	var c CommandSpec
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 && len(parts) != 4 {
		return c, fmt.Errorf("%s does not match %s", strconv.Quote(s), commandForm)
	}
	start, err1 := strconv.Atoi(parts[0])
	length, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return c, fmt.Errorf("%s does not match %s", strconv.Quote(s), commandForm)
	}
	c.Start, c.Length = start, length
	if len(parts) == 4 {
		switch strings.ToLower(parts[2]) {
		case "big":
		case "little":
			c.Order = LittleEndian
		default:
			return c, fmt.Errorf("%s: unknown byte order %q (want big or little)", strconv.Quote(s), parts[2])
		}
	}
	val, err := strconv.ParseUint(parts[len(parts)-1], 0, 64)
	if err != nil {
		return c, fmt.Errorf("%s: command value %q is not an unsigned integer", strconv.Quote(s), parts[len(parts)-1])
	}
	c.Value = val
	return c, checkCommand(c, s)
}

func checkCommand(c CommandSpec, s string) error {
	if c.Start < 0 || c.Start >= MaxFDLen {
		return fmt.Errorf("%s: start %d is not a byte index (want 0..%d)", strconv.Quote(s), c.Start, MaxFDLen-1)
	}
	if c.Length < 1 || c.Length > 8 {
		return fmt.Errorf("%s: length %d is out of range (want 1..8)", strconv.Quote(s), c.Length)
	}
	if c.Length < 8 && c.Value >= 1<<(8*uint(c.Length)) {
		return fmt.Errorf("%s: value %d does not fit in %d byte(s)", strconv.Quote(s), c.Value, c.Length)
	}
	return nil
}

func parseCommand(raw any, o *spec.Obj) (CommandSpec, error) {
	switch t := raw.(type) {
	case string:
		return ParseCommandSpec(t)
	case map[string]any:
		co := spec.New(o.Problems(), o.File(), o.KeyPath("command"), t)
		c := CommandSpec{Order: order(co, "byteorder")}
		for _, req := range []string{"start", "length", "value"} {
			if !co.Has(req) {
				co.Errorf(req, "is required")
			}
		}
		c.Start = int(co.Int("start", 0))
		c.Length = int(co.Int("length", 1))
		c.Value = uint64(co.IntRange("value", 0, 0, math.MaxInt64))
		co.Done()
		return c, checkCommand(c, fmt.Sprintf("%d:%d:%s:%d", c.Start, c.Length, c.Order, c.Value))
	}
	return CommandSpec{}, fmt.Errorf("expected a string or an object, got %s", spec.Describe(raw))
}

// ParseSetParams parses the reserved `set` RPC params, for example
// "nodeId=0x123;isExtendedId=true;dataInHex=01 02" or "nodeId=5;value=12;dataLength=2",
// into the downlink to run and the data to encode. strict is the device's strictEval.
func ParseSetParams(params string, strict bool) (*DownlinkConfig, map[string]any, error) {
	m := map[string]any{}
	for _, part := range strings.Split(params, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, nil, fmt.Errorf("set params: %q is not key=value", part)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	data := map[string]any{}
	if v, ok := m["value"]; ok {
		data["value"] = setValue(v.(string))
		delete(m, "value")
	}
	dl, err := downlinkFromMap("set params", m, strict)
	if err != nil {
		return nil, nil, err
	}
	dl.Method = "set"
	if dl.DataInHex == nil && dl.DataExpression == nil && data["value"] == nil {
		return nil, nil, fmt.Errorf("set params: want dataInHex, dataExpression or value")
	}
	return dl, data, nil
}

// setValue types a `value=` from set params: true/false, integers, floats, else a string.
func setValue(s string) any {
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	}
	if i, err := strconv.ParseInt(s, 0, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}

// downlinkFromMap parses an ad-hoc downlink: reserved set params, or RPC
// params merged over a serverSideRpc entry. what prefixes the messages.
func downlinkFromMap(what string, m map[string]any, strict bool) (*DownlinkConfig, error) {
	ps := &spec.Problems{}
	o := spec.New(ps, "", "", m)
	dl := &DownlinkConfig{raw: m}
	dl.NodeID, dl.Extended, dl.FD, dl.BRS = frameHead(o)
	dl.DownlinkSpec, _ = parseDownlinkSpec(o, strict, dl.FD)
	o.Done()
	var unknown []string
	for _, w := range ps.Warnings() {
		unknown = append(unknown, strconv.Quote(w.Path))
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s: unknown key(s) %s", what, strings.Join(unknown, ", "))
	}
	if err := ps.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s", what, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return dl, nil
}

// rpcOptions are the serverSideRpc fields an RPC's params may override when
// the device sets overrideRpcConfig (or enableUnknownRpc), as upstream.
var rpcOptions = []string{"nodeId", "isExtendedId", "isFd", "bitrateSwitch", "dataLength", "dataByteorder",
	"dataSigned", "dataExpression", "dataEncoding", "dataBefore", "dataAfter", "dataInHex"}

// mergeRPC overlays the option fields of params on base (nil for an unknown
// method) and parses the result.
func mergeRPC(method string, base, params map[string]any, strict bool) (*DownlinkConfig, error) {
	m := map[string]any{}
	for _, k := range rpcOptions {
		if v, ok := params[k]; ok {
			m[k] = v
		} else if v, ok := base[k]; ok {
			m[k] = v
		}
	}
	dl, err := downlinkFromMap("rpc "+strconv.Quote(method)+" params", m, strict)
	if err != nil {
		return nil, err
	}
	dl.Method = method
	return dl, nil
}
