package jsonconv

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Converter types.
const (
	TypeJSON   = "json"
	TypeBytes  = "bytes"
	TypeCustom = "custom"
	// TypeScript runs a Starlark script (protocols/kit/script); upstream
	// has no such type, its "custom" takes a script too.
	TypeScript = "script"
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
	// Script is the Starlark file a custom or script converter runs, as
	// written (relative to the connector file); empty for the others.
	Script string
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

// ParseMapping reads one mapping[] entry (old-format entries are rewritten
// first), recording problems in o.
func ParseMapping(o *spec.Obj) *Mapping {
	if isOldFormat(o.Raw()) {
		// Rewrite in place so the rest of parsing (and its error paths) is shared.
		o = spec.New(o.Problems(), o.File(), o.Path(), ConvertOldMapping(o.Raw()))
	}
	m := &Mapping{Path: o.Path()}
	m.TopicFilter = o.RequiredStr("topicFilter")
	if m.TopicFilter != "" {
		if err := ValidTopicFilter(m.TopicFilter); err != nil {
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

// ValidTopicFilter checks the MQTT wildcard rules of a topic filter.
func ValidTopicFilter(f string) error {
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
	cc.Type = c.Enum("type", TypeJSON, TypeJSON, TypeBytes, TypeCustom, TypeScript)
	cc.UseReceivedTs = c.Bool("useReceivedTs", false)
	cc.SendDataOnlyOnChange = c.Bool("sendDataOnlyOnChange", false)
	cc.TsField = c.Str("tsField", "")
	cc.HexMode = c.Bool("hexMode", false)
	cc.Report = report.Parse(c)
	c.Known("useEval", "timeout", "cached")
	cc.Extension = c.Str("extension", "")
	cc.ExtensionConfig = ExtensionConfig(c, "extensionConfig")
	ParseScript(c, &cc)
	if cc.Type == TypeScript {
		// The script names devices and keys itself.
		c.Known("deviceInfo", "attributes", "timeseries")
		c.Done()
		return cc
	}
	if cc.Type != TypeCustom {
		if d := c.Obj("deviceInfo"); d != nil {
			cc.DeviceInfo = ParseDeviceInfo(d, cc.Type)
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

// ExtensionConfig reads the first of keys present (upstream spells it
// extensionConfig, older files extension-config) as the file wrote it, so
// a script sees the keys in file order; nil when none is present.
func ExtensionConfig(c *spec.Obj, keys ...string) json.RawMessage {
	for _, k := range keys {
		if raw, ok := c.RawJSON(k); ok {
			return raw
		}
		if v, ok := c.Any(k); ok {
			raw, _ := json.Marshal(v)
			return raw
		}
	}
	return nil
}

// ParseScript reads the converter's script (see script.Ref) into cc and
// checks it against cc.Type and cc.Extension, which the caller has read:
// a custom converter needs an extension or a script, a script converter a
// script, and the other types take none.
func ParseScript(c *spec.Obj, cc *ConverterConfig) {
	cc.Script = script.ParseRef(c, cc.Type, cc.Extension)
}

// ParseDeviceInfo reads a deviceInfo object for a converter of type typ.
func ParseDeviceInfo(d *spec.Obj, typ string) DeviceInfo {
	di := DeviceInfo{}
	di.NameSource = d.Enum("deviceNameExpressionSource", SourceMessage, SourceMessage, SourceTopic, SourceConstant)
	di.Name = d.RequiredStr("deviceNameExpression")
	di.ProfileSource = d.Enum("deviceProfileExpressionSource", SourceConstant, SourceMessage, SourceTopic, SourceConstant)
	di.Profile = d.Str("deviceProfileExpression", "default")
	CheckSource(d, "deviceNameExpression", di.NameSource, di.Name, typ)
	CheckSource(d, "deviceProfileExpression", di.ProfileSource, di.Profile, typ)
	d.Done()
	return di
}

// CheckSource records in o a problem with an expression whose source is
// src, as a converter of type typ would read it.
func CheckSource(o *spec.Obj, key, src, expr, typ string) {
	if expr == "" {
		return
	}
	switch {
	case src == SourceTopic:
		if err := pyre.Valid(expr); err != nil {
			o.Errorf(key, "%v", err)
		}
	case src == SourceMessage && typ == TypeBytes:
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
