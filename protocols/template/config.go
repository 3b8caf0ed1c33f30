package template

import (
	_ "embed"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Sample is a complete connector file (sample.json), shown in the README.
//
//go:embed sample.json
var Sample []byte

// file names problems the way `iotgw check` prints them.
const file = "template.json"

// Config is a parsed connector file.
type Config struct {
	Name    string
	Report  protocols.ReportStrategy
	Devices []*DeviceConfig
}

// DeviceConfig is one devices[] entry.
type DeviceConfig struct {
	Path       string
	Name       string
	Type       string
	Address    string
	PollPeriod time.Duration
	Timeout    time.Duration
	Report     protocols.ReportStrategy
	Attributes []*KeyConfig
	Telemetry  []*KeyConfig
	// Writable are the attributeUpdates: platform keys written to registers.
	Writable []*KeyConfig
}

// KeyConfig maps a device register to a platform key.
type KeyConfig struct {
	Key      string
	Register string
}

// The field tables: the defaults applied, the ranges checked, and the
// README's configuration reference.
var (
	rootFields = spec.Section{Path: "", Fields: []spec.Field{
		{Key: "name", Type: spec.TypeString, Default: "Template Connector", Doc: "connector name when the main config gives none"},
		{Key: "reportStrategy", Type: spec.TypeObject, Doc: "report strategy inherited by the devices"},
		{Key: "devices", Type: spec.TypeList, Required: true, Doc: "the devices, see below"},
	}}
	deviceFields = spec.Section{Path: "devices[]", Doc: "one polled device", Fields: []spec.Field{
		{Key: "deviceName", Type: spec.TypeString, Required: true, Doc: "device name on the platform"},
		{Key: "deviceType", Type: spec.TypeString, Default: "default", Doc: "device profile"},
		{Key: "address", Type: spec.TypeString, Required: true, Doc: "where the device is (`fake://<anything>` for the fake device)"},
		{Key: "pollPeriod", Type: spec.TypeDuration, Default: 5 * time.Second,
			Dur: spec.Dur{Unit: time.Millisecond, MinExclusive: true}, Doc: "time between polls"},
		{Key: "timeout", Type: spec.TypeDuration, Default: 2 * time.Second,
			Dur: spec.Dur{MinExclusive: true, Max: 3600}, Doc: "one poll's time limit"},
		{Key: "reportStrategy", Type: spec.TypeObject, Doc: "overrides the connector's"},
		{Key: "attributes", Type: spec.TypeList, Doc: "keys read as attributes"},
		{Key: "timeseries", Type: spec.TypeList, Doc: "keys read as telemetry"},
		{Key: "attributeUpdates", Type: spec.TypeList, Doc: "shared attributes written to registers"},
	}}
	keyFields = spec.Section{Path: "devices[].attributes[], timeseries[], attributeUpdates[]", Fields: []spec.Field{
		{Key: "key", Type: spec.TypeString, Required: true, Doc: "platform key"},
		{Key: "register", Type: spec.TypeString, Required: true, Doc: "device register"},
	}}
)

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{rootFields, deviceFields, keyFields} }

// Parse reads a connector file's root object; problems go to o.Problems().
func Parse(o *spec.Obj, global protocols.ReportStrategy) *Config {
	c := &Config{Name: rootFields.Str(o, "name")}
	// Keys upstream files carry that mean nothing to a connector.
	o.Known("id", "logLevel", "enableRemoteLogging", "configVersion")
	c.Report = report.Parse(o).Or(global)
	if !o.Has("devices") {
		o.Errorf("devices", "is required")
	}
	for _, d := range o.List("devices") {
		c.Devices = append(c.Devices, parseDevice(d, c.Report))
	}
	o.Done()
	return c
}

func parseDevice(o *spec.Obj, inherited protocols.ReportStrategy) *DeviceConfig {
	d := &DeviceConfig{
		Path:       o.Path(),
		Name:       deviceFields.Str(o, "deviceName"),
		Type:       deviceFields.Str(o, "deviceType"),
		Address:    deviceFields.Str(o, "address"),
		PollPeriod: deviceFields.Duration(o, "pollPeriod"),
		Timeout:    deviceFields.Duration(o, "timeout"),
	}
	d.Report = report.Parse(o).Or(inherited)
	d.Attributes = parseKeys(o, "attributes")
	d.Telemetry = parseKeys(o, "timeseries")
	d.Writable = parseKeys(o, "attributeUpdates")
	o.Done()
	return d
}

func parseKeys(o *spec.Obj, section string) []*KeyConfig {
	var out []*KeyConfig
	for _, k := range o.List(section) {
		mark := k.Problems().Mark()
		kc := &KeyConfig{Key: keyFields.Str(k, "key"), Register: keyFields.Str(k, "register")}
		k.Done()
		// One broken key leaves the rest of the device working.
		if k.Problems().SkipSince(mark) {
			continue
		}
		out = append(out, kc)
	}
	return out
}
