package mqtt

import (
	"strings"
	"time"

	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Requests is the parsed requestsMapping section (COMPAT.md §3.2): what
// devices ask of the gateway over the broker, and how platform writes reach
// them.
type Requests struct {
	Connect           []*DeviceRequest
	Disconnect        []*DeviceRequest
	AttributeRequests []*AttributeRequest
	AttributeUpdates  []*AttributeUpdateRule
	RPC               []*RPCRule
}

// DeviceRequest is one connectRequests[] / disconnectRequests[] entry.
type DeviceRequest struct {
	Path        string
	TopicFilter string
	DeviceInfo  DeviceInfo
}

// Attribute request scopes.
const (
	ScopeShared = "shared"
	ScopeClient = "client"
)

// AttributeRequest is one attributeRequests[] entry.
type AttributeRequest struct {
	Path        string
	TopicFilter string
	DeviceInfo  DeviceInfo
	// Scope is "shared", "client" or a ${} expression over the message
	// whose value is one of those.
	Scope      string
	NameSource string // message or topic
	// NameExpr yields the attribute names; several are separated by commas
	// ("${a}, ${b}") as upstream documents.
	NameExpr  string
	TopicExpr string // ${deviceName}, ${attributeKey}, ${attributeValue}
	ValueExpr string
	Retain    bool
}

// AttributeUpdateRule is one attributeUpdates[] entry.
type AttributeUpdateRule struct {
	Path             string
	DeviceNameFilter string // regex, matched against the whole name
	AttributeFilter  string // regex, matched against the whole key
	TopicExpr        string
	ValueExpr        string
	Retain           bool
	QoS              int
	// Script, when set, is a Starlark file whose downlink(cmd) says what to
	// publish instead of topicExpression and valueExpression.
	Script string
}

// RPC types.
const (
	RPCTwoWay = "twoWay"
	RPCOneWay = "oneWay"
)

// DefaultRPCResponseTimeout applies when a two-way serverSideRpc entry has
// no responseTimeout.
const DefaultRPCResponseTimeout = 10 * time.Second

// RPCRule is one serverSideRpc[] entry.
type RPCRule struct {
	Path              string
	Type              string // twoWay or oneWay
	DeviceNameFilter  string
	MethodFilter      string
	RequestTopicExpr  string
	ResponseTopicExpr string
	ResponseTopicQoS  int
	ResponseTimeout   time.Duration
	ValueExpr         string
	// Script, when set, is a Starlark file whose downlink(cmd) says what to
	// publish instead of requestTopicExpression and valueExpression.
	Script string
}

// requestSections are the requestsMapping keys, also accepted at the top
// level of an old-format file.
var requestSections = []string{"connectRequests", "disconnectRequests", "attributeRequests", "attributeUpdates", "serverSideRpc"}

// parseRequests reads requestsMapping, or the old top-level sections when
// the file has no requestsMapping.
func parseRequests(root *spec.Obj) Requests {
	src := root
	if root.Has("requestsMapping") {
		if o := root.Obj("requestsMapping"); o != nil {
			src = o
		} else {
			return Requests{}
		}
	}
	var r Requests
	for _, o := range src.List("connectRequests") {
		r.Connect = append(r.Connect, parseDeviceRequest(o))
	}
	for _, o := range src.List("disconnectRequests") {
		r.Disconnect = append(r.Disconnect, parseDeviceRequest(o))
	}
	for _, o := range src.List("attributeRequests") {
		r.AttributeRequests = append(r.AttributeRequests, parseAttributeRequest(o))
	}
	for _, o := range src.List("attributeUpdates") {
		r.AttributeUpdates = append(r.AttributeUpdates, parseAttributeUpdate(o))
	}
	for _, o := range src.List("serverSideRpc") {
		r.RPC = append(r.RPC, parseRPCRule(o))
	}
	if src != root {
		src.Done()
	}
	return r
}

// requestDeviceInfo reads deviceInfo, its keys written flat into the entry,
// or the old keys deviceNameJsonExpression / deviceNameTopicExpression (and
// the profile counterparts), into one DeviceInfo.
func requestDeviceInfo(o *spec.Obj) DeviceInfo {
	if o.Has("deviceInfo") {
		if d := o.Obj("deviceInfo"); d != nil {
			return jsonconv.ParseDeviceInfo(d, TypeJSON)
		}
		return DeviceInfo{}
	}
	di := DeviceInfo{ProfileSource: SourceConstant, Profile: "default"}
	var ok bool
	if di.NameSource, di.Name, ok = sourcedExpr(o, "deviceName"); !ok {
		o.Errorf("deviceInfo", "is required")
	} else if o.Has("deviceNameExpression") && o.Has("deviceProfileExpression") {
		// deviceInfo's keys written flat into the entry.
		di.ProfileSource = o.Enum("deviceProfileExpressionSource", SourceConstant, SourceMessage, SourceTopic, SourceConstant)
		di.Profile = o.Str("deviceProfileExpression", "default")
		checkSource(o, "deviceProfileExpression", di.ProfileSource, di.Profile, TypeJSON)
	}
	switch {
	case o.Has("deviceTypeJsonExpression"):
		di.ProfileSource, di.Profile = SourceMessage, o.Str("deviceTypeJsonExpression", "default")
		checkSource(o, "deviceTypeJsonExpression", di.ProfileSource, di.Profile, TypeJSON)
	case o.Has("deviceTypeTopicExpression"):
		di.ProfileSource, di.Profile = SourceTopic, o.Str("deviceTypeTopicExpression", "default")
		checkSource(o, "deviceTypeTopicExpression", di.ProfileSource, di.Profile, TypeJSON)
	}
	return di
}

func requestTopicFilter(o *spec.Obj) string {
	f := o.RequiredStr("topicFilter")
	if f != "" {
		if err := validTopicFilter(f); err != nil {
			o.Errorf("topicFilter", "%q %v", f, err)
		}
	}
	return f
}

func parseDeviceRequest(o *spec.Obj) *DeviceRequest {
	r := &DeviceRequest{Path: o.Path(), TopicFilter: requestTopicFilter(o)}
	r.DeviceInfo = requestDeviceInfo(o)
	o.Done()
	return r
}

func parseAttributeRequest(o *spec.Obj) *AttributeRequest {
	r := &AttributeRequest{Path: o.Path(), TopicFilter: requestTopicFilter(o)}
	r.DeviceInfo = requestDeviceInfo(o)
	r.Retain = o.Bool("retain", false)
	// Upstream spells the scope "retrieveType" in the UI's files and
	// "scope" in older ones; both take a constant or a ${} expression.
	r.Scope = ScopeShared
	for _, k := range []string{"retrieveType", "scope"} {
		if o.Has(k) {
			r.Scope = o.Str(k, ScopeShared)
			if !strings.Contains(r.Scope, "${") {
				r.Scope = strings.ToLower(strings.TrimSpace(r.Scope))
				if r.Scope != ScopeShared && r.Scope != ScopeClient {
					o.Errorf(k, "unknown value %q (want shared, client or a ${} expression)", r.Scope)
				}
			} else if _, err := Compile(r.Scope); err != nil {
				o.Errorf(k, "%v", err)
			}
			break
		}
	}
	var ok bool
	if r.NameSource, r.NameExpr, ok = sourcedExpr(o, "attributeName"); !ok {
		o.Errorf("attributeNameExpression", "is required")
	}
	r.TopicExpr = requiredTemplate(o, "topicExpression", true)
	r.ValueExpr = requiredTemplate(o, "valueExpression", false)
	o.Done()
	return r
}

func parseAttributeUpdate(o *spec.Obj) *AttributeUpdateRule {
	r := &AttributeUpdateRule{Path: o.Path()}
	r.DeviceNameFilter = regexKey(o, "deviceNameFilter")
	r.AttributeFilter = regexKey(o, "attributeFilter")
	if r.Script = script.CommandRef(o, "topicExpression", "valueExpression"); r.Script == "" {
		r.TopicExpr = requiredTemplate(o, "topicExpression", true)
		r.ValueExpr = requiredTemplate(o, "valueExpression", false)
	}
	r.Retain = o.Bool("retain", false)
	r.QoS = int(o.IntRange("qos", 0, 0, 2))
	o.Done()
	return r
}

func parseRPCRule(o *spec.Obj) *RPCRule {
	r := &RPCRule{Path: o.Path()}
	r.DeviceNameFilter = regexKey(o, "deviceNameFilter")
	r.MethodFilter = regexKey(o, "methodFilter")
	if r.Script = script.CommandRef(o, "requestTopicExpression", "valueExpression"); r.Script == "" {
		r.RequestTopicExpr = requiredTemplate(o, "requestTopicExpression", true)
		r.ValueExpr = requiredTemplate(o, "valueExpression", false)
	}
	if o.Has("responseTopicExpression") {
		r.ResponseTopicExpr = requiredTemplate(o, "responseTopicExpression", false)
	}
	// Upstream decides two-way by "type" when given, otherwise by the
	// presence of a response topic.
	def := RPCOneWay
	if r.ResponseTopicExpr != "" {
		def = RPCTwoWay
	}
	r.Type = o.Enum("type", def, RPCTwoWay, RPCOneWay)
	if r.Type == RPCTwoWay && r.ResponseTopicExpr == "" && o.Has("type") {
		o.Errorf("responseTopicExpression", "is required for a twoWay rpc")
	}
	r.ResponseTopicQoS = int(o.IntRange("responseTopicQoS", 1, 0, 2))
	r.ResponseTimeout = o.Duration("responseTimeout", DefaultRPCResponseTimeout, wholeMillis)
	o.Done()
	return r
}

// scriptReplaces refuses the keys a downlink script replaces: with both,
// one of them would silently not be used.
// regexKey reads an optional regex filter; absent means "everything".
func regexKey(o *spec.Obj, key string) string {
	s := o.Str(key, ".*")
	if err := pyre.Valid(s); err != nil {
		o.Errorf(key, "%v", err)
	}
	return s
}

// requiredTemplate reads a ${} template; a topic template must not produce
// wildcards from its literal text.
func requiredTemplate(o *spec.Obj, key string, topic bool) string {
	s := o.RequiredStr(key)
	if s == "" {
		return s
	}
	e, err := Compile(s)
	if err != nil {
		o.Errorf(key, "%v", err)
		return s
	}
	if topic {
		for _, op := range e.Parts() {
			if !op.Ref && strings.ContainsAny(op.Lit, "#+") {
				o.Errorf(key, "%q: a topic to publish to must not contain wildcards", s)
				break
			}
		}
	}
	return s
}

// sourcedExpr reads an expression given in one of the three upstream
// spellings: <base>Expression with <base>ExpressionSource (default
// message), <base>JsonExpression, or <base>TopicExpression. ok is false
// when none is present.
func sourcedExpr(o *spec.Obj, base string) (source, expr string, ok bool) {
	switch key := base + "Expression"; {
	case o.Has(key):
		source = o.Enum(key+"Source", SourceMessage, SourceMessage, SourceTopic, SourceConstant)
		expr = o.RequiredStr(key)
		checkSource(o, key, source, expr, TypeJSON)
	case o.Has(base + "JsonExpression"):
		key = base + "JsonExpression"
		source, expr = SourceMessage, o.RequiredStr(key)
		checkSource(o, key, source, expr, TypeJSON)
	case o.Has(base + "TopicExpression"):
		key = base + "TopicExpression"
		source, expr = SourceTopic, o.RequiredStr(key)
		checkSource(o, key, source, expr, TypeJSON)
	default:
		return "", "", false
	}
	return source, expr, true
}

// wholeMillis: responseTimeout is a positive whole number of milliseconds.
var wholeMillis = spec.Dur{Unit: time.Millisecond, MinExclusive: true, Whole: true}
